"""Compatibility alias: this module moved to :mod:`memlens.storage.runs`; the old import path keeps working."""
import sys as _sys

from .storage import runs  # noqa: F401

_sys.modules[__name__] = _sys.modules["memlens.storage.runs"]
