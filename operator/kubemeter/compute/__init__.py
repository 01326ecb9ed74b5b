"""kubemeter.compute."""
