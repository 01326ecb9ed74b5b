"""kubemeter.sim."""
