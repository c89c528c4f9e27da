"""memlens.report."""
