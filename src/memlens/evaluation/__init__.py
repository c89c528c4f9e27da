"""memlens.evaluation."""
