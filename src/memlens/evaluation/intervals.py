"""Confidence intervals of proportions: the exact (Clopper–Pearson) binomial interval."""
from __future__ import annotations

import numpy as np
from scipy.stats import beta

from .._validation import MemlensInputError, check_float

__all__ = ["clopper_pearson"]


def clopper_pearson(k, n, *, level: float = 0.95):
    """Exact (Clopper–Pearson) two-sided confidence interval of a binomial proportion.

    ``low = Beta.ppf((1 − level)/2; k, n − k + 1)`` (0 when k = 0) and
    ``high = Beta.ppf((1 + level)/2; k + 1, n − k)`` (1 when k = n). Each end alone is a one-sided bound at
    confidence ``(1 + level)/2``.

    Parameters
    ----------
    k : int or array of int
        Successes, ``0 <= k <= n``.
    n : int or array of int
        Trials, ``n >= 1``.
    level : float in (0, 1)

    Returns
    -------
    (low, high) : floats, or arrays of the broadcast shape.
    """
    level = check_float("level", level, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
    k_arr = np.asarray(k)
    n_arr = np.asarray(n)
    if not (np.issubdtype(k_arr.dtype, np.integer) and np.issubdtype(n_arr.dtype, np.integer)):
        if not (np.all(np.asarray(k_arr, float) == np.round(np.asarray(k_arr, float)))
                and np.all(np.asarray(n_arr, float) == np.round(np.asarray(n_arr, float)))):
            raise MemlensInputError(f"k and n must be integer counts; got k={k!r}, n={n!r}")
    k_arr = np.asarray(k_arr, dtype=np.float64)
    n_arr = np.asarray(n_arr, dtype=np.float64)
    if np.any(n_arr < 1) or np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise MemlensInputError(f"clopper_pearson needs 0 <= k <= n and n >= 1; got k={k!r}, n={n!r}")
    alpha = 1.0 - level
    with np.errstate(invalid="ignore"):
        low = np.where(k_arr > 0, beta.ppf(alpha / 2, np.maximum(k_arr, 1), n_arr - k_arr + 1), 0.0)
        high = np.where(k_arr < n_arr, beta.ppf(1 - alpha / 2, k_arr + 1, np.maximum(n_arr - k_arr, 1)), 1.0)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high
