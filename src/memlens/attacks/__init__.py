"""memlens.attacks."""
