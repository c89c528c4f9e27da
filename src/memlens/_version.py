"""The package version, in one place (the package root and every provenance record read it)."""
__version__ = "0.1.0"
