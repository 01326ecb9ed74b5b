"""kubemeter.sim.apiserver."""
