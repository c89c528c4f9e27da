"""Shared math: the binary entropy that the information bounds and the theory problems both use."""
from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from ._validation import MemlensInputError

__all__ = ["binary_entropy"]


def binary_entropy(p, *, base: float = 2.0) -> np.ndarray:
    """Binary entropy ``h(p) = −p log p − (1 − p) log(1 − p)``, elementwise, with ``h(0) = h(1) = 0``.

    Parameters
    ----------
    p : array_like of float in [0, 1]
    base : float
        Logarithm base: 2 (default) gives bits, ``math.e`` gives nats.
    """
    p = np.asarray(p, dtype=np.float64)
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise MemlensInputError("p must hold probabilities in [0, 1]; got values outside that range")
    return -(xlogy(p, p) + xlogy(1.0 - p, 1.0 - p)) / np.log(base)
