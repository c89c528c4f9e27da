"""The lower bounds of Feldman, Kornowski & Lyu (COLT 2025): the accuracy link ``I(M; X) >= ln 2 - h(alpha)``
(derived, Fano) and the reduction of Thm 3.7, ``mem_n >= ((1 - tau_n) / rho_n) I(M; X)``.
"""
from __future__ import annotations

import math

import numpy as np

from ..._validation import MemlensInputError, check_float
from .numerics import LN2, binary_entropy

__all__ = ["accuracy_information", "fkl_lower_bound"]


def accuracy_information(accuracy):
    """Information (nats) about the test example that a predictor of accuracy ``α`` must carry.

    ``I(M; X) ≥ I(M; y | x) = H(y | x) − H(y | x, M) ≥ ln 2 − h(α)`` when ``y`` is a fair coin independent
    of ``x`` (true for all three problems here) and ``α ≥ 1/2`` (Fano's inequality for a binary label).
    Derived for this project (docs/theory.md, "The link to accuracy"); 0 for ``α ≤ 1/2``.
    """
    a = np.asarray(accuracy, dtype=np.float64)
    return np.where(a > 0.5, LN2 - binary_entropy(np.clip(a, 0.0, 1.0)), 0.0)


def fkl_lower_bound(info_test, *, tau, rho, one_minus_tau=None, delta=0.0, eps=0.0, log_range=None):
    """Lower bound of Feldman–Kornowski–Lyu Thm 3.7 on excess memorization ``I(M; X_{1:n} | θ)`` (nats).

    ``((1 − τ_n)/ρ_n) · I(M; X) − neg_n`` with
    ``neg_n = 8 δ ((1 − τ_n)/ρ_n) log(|𝓜|/δ) + 8 ε log(|𝓜|/ε)`` for a ``(τ_n, ε)``-SDPI of
    ``(θ, X_{1:n})`` and a ``(ρ_n, δ)``-SDPI of ``(X, X_{1:n})``. The last term of ``neg_n`` is truncated in
    the available source and completed by symmetry (docs/theory.md, "The reduction", derived). With exact SDPIs
    (``delta = eps = 0``, the problems of this module) ``neg_n = 0``.

    Parameters
    ----------
    info_test : float or array
        ``I(M; X)`` in nats (e.g. :func:`accuracy_information` of the required accuracy).
    tau, rho : float or array
        The SDPI constants. ``one_minus_tau`` (optional) replaces ``1 − tau`` where it was computed to
        higher precision.
    delta, eps : float
        Approximation slacks of the two approximate SDPIs.
    log_range : float, optional
        ``ln |𝓜|`` (nats), required when ``delta`` or ``eps`` is positive.

    Returns
    -------
    float or array
        The bound in nats (it may be negative, i.e. vacuous, when ``neg_n`` dominates).
    """
    rho = np.asarray(rho, dtype=np.float64)
    om = 1.0 - np.asarray(tau, dtype=np.float64) if one_minus_tau is None else np.asarray(one_minus_tau, float)
    delta = check_float("delta", delta, min_value=0.0, max_value=1.0)
    eps = check_float("eps", eps, min_value=0.0, max_value=1.0)
    if np.any(rho <= 0):
        raise MemlensInputError("rho must be > 0 (an SDPI constant of 0 means the test point is independent "
                                "of the data and no accuracy is possible)")
    factor = om / rho
    bound = factor * np.asarray(info_test, dtype=np.float64)
    if delta > 0 or eps > 0:
        if log_range is None:
            raise MemlensInputError("log_range (ln |M|, nats) is required when delta or eps > 0")
        log_range = check_float("log_range", log_range, min_value=0.0)
        if delta > 0:
            bound = bound - 8 * delta * factor * (log_range - math.log(delta))
        if eps > 0:
            bound = bound - 8 * eps * (log_range - math.log(eps))
    return bound[()] if isinstance(bound, np.ndarray) and bound.ndim == 0 else bound
