"""kubemeter.publish."""
