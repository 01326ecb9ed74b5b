"""Scrape stage: fetch kubelet payloads and decode them into typed samples, behind ``scraper.Scraper``."""
