"""memlens.train."""
