"""The simulated world: vehicle arrivals and scenario files."""
