"""memlens.measures."""
