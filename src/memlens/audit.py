"""Compatibility alias: this module moved to :mod:`memlens.audits.image`; the old import path keeps working."""
import sys as _sys

from .audits import image  # noqa: F401

_sys.modules[__name__] = _sys.modules["memlens.audits.image"]
