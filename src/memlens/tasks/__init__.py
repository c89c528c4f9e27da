"""memlens.tasks."""
