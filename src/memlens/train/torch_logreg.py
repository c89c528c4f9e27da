"""Compatibility alias: the batched logistic-regression solver moved to :mod:`memlens.train.logreg`; the old module
path keeps working (the same module object, so its names can be read and patched here)."""
import sys as _sys

from . import logreg  # noqa: F401

_sys.modules[__name__] = _sys.modules["memlens.train.logreg"]
