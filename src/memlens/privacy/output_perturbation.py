"""Differentially private release of a convex model by output perturbation: the exact Gaussian mechanism and the
L2 sensitivity of L2-regularized logistic regression.

Output perturbation (Chaudhuri, Monteleoni & Sarwate 2011, JMLR, §3) releases the exact minimizer ``θ`` of a
strongly convex objective plus noise calibrated to how far one example can move it.

* :func:`logistic_l2_sensitivity` — for scikit-learn's objective ``½‖θ‖² + C Σ_j ℓ_j(θ)`` with *every* parameter
  penalized (the intercept as a constant feature, ``fit_intercept=False``), which is 1-strongly convex: removing
  example ``i`` moves the minimizer by at most ``C · sup ‖∇ℓ_i‖``, and for the multinomial cross-entropy
  ``∇_W ℓ = x̃ (p − e_y)ᵀ`` has Frobenius norm ``‖x̃‖ ‖p − e_y‖ ≤ √2 ‖x̃‖``. So the add/remove L2 sensitivity is
  ``Δ = √2 C R`` for rows of norm ``‖x̃‖ ≤ R`` (our derivation of the constant, by the standard strong-convexity
  argument of Chaudhuri et al. 2011, Cor. 8, written for the add/remove neighbourhood and the sum-form objective).
  The guarantee needs the *exact* minimizer; a solver stopped at a tolerance adds a (tiny) unaccounted error.
* :func:`gaussian_mechanism_delta` / :func:`gaussian_mechanism_sigma` — the Gaussian mechanism with sensitivity
  ``Δ`` and noise ``σ`` is exactly ``μ``-GDP with ``μ = Δ/σ`` (Dong, Roth & Su 2022, Thm 2.7), and ``μ``-GDP is
  ``(ε, δ(ε))``-DP with ``δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2)`` (their Cor. 2.13; Balle & Wang 2018, Thm 8).
  This is Opacus's ``delta_eps_mu`` (``opacus.accountants.analysis.gdp``), evaluated here in log space so that it
  stays finite for the very large ε at which an informed adversary's reconstruction starts to succeed (Opacus's
  version overflows above ε ≈ 700 and its inverse is bracketed at ε ≤ 500); the tests check the two agree.
* :func:`full_batch_noise_multiplier` — ``T`` steps of *full-batch* noisy gradient descent with clipping norm ``C``
  and noise ``N(0, z² C²)`` compose to exactly ``√T / z``-GDP (Dong, Roth & Su 2022, Cor. 3.3): no subsampling,
  so no accountant's approximation is involved.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy.special import log_ndtr

from .._validation import check_float, check_int

__all__ = ["gaussian_mechanism_delta", "gaussian_mechanism_sigma", "logistic_l2_sensitivity",
           "full_batch_noise_multiplier"]


def _log_delta(epsilon: float, mu: float) -> float:
    """``log δ(ε; μ)`` of μ-GDP, computed without overflow (``-inf`` where δ underflows)."""
    a = log_ndtr(-epsilon / mu + mu / 2)
    b = epsilon + log_ndtr(-epsilon / mu - mu / 2)
    if not np.isfinite(a):
        return -math.inf
    diff = b - a                   # < 0 always (δ > 0)
    if diff >= 0:
        return -math.inf
    return float(a + np.log(-np.expm1(diff)))


def gaussian_mechanism_delta(*, epsilon: float, sigma: float, sensitivity: float) -> float:
    """δ at which the Gaussian mechanism (noise ``N(0, σ² I)``, L2 sensitivity ``Δ``) is ``(ε, δ)``-DP (exact).

    Parameters
    ----------
    epsilon : float >= 0
    sigma : float > 0
        Noise standard deviation per coordinate.
    sensitivity : float > 0
        L2 sensitivity ``Δ`` of the released vector.
    """
    epsilon = check_float("epsilon", epsilon, min_value=0.0)
    sigma = check_float("sigma", sigma, min_value=0.0, min_inclusive=False)
    sensitivity = check_float("sensitivity", sensitivity, min_value=0.0, min_inclusive=False)
    return math.exp(_log_delta(epsilon, sensitivity / sigma))


def gaussian_mechanism_sigma(*, epsilon: float, delta: float, sensitivity: float) -> float:
    """The smallest noise ``σ`` for which the Gaussian mechanism with L2 sensitivity ``Δ`` is ``(ε, δ)``-DP (exact,
    to a relative 1e-10; ``math.inf`` never: every ε > 0 is reachable).

    Parameters
    ----------
    epsilon : float > 0 (may be very large, e.g. 1e9)
    delta : float in (0, 1)
    sensitivity : float > 0
    """
    epsilon = check_float("epsilon", epsilon, min_value=0.0, min_inclusive=False)
    delta = check_float("delta", delta, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
    sensitivity = check_float("sensitivity", sensitivity, min_value=0.0, min_inclusive=False)
    target = math.log(delta)

    def f(log_mu):
        return _log_delta(epsilon, math.exp(log_mu)) - target   # increasing in μ

    lo, hi = math.log(1e-8), math.log(2.0 * (math.sqrt(2.0 * epsilon + 50.0) + 10.0))
    while f(lo) > 0:               # δ already above the target at tiny μ: cannot happen for δ < 1, but be safe
        lo -= 5.0
    while f(hi) < 0:
        hi += 1.0
    log_mu = optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12)
    return sensitivity / math.exp(log_mu)


def logistic_l2_sensitivity(*, C: float, feature_norm: float) -> float:
    """Add/remove L2 sensitivity ``√2 C R`` of the minimizer of ``½‖θ‖² + C Σ_j CE_j(θ)`` (every parameter
    penalized, rows ``x̃`` — the constant feature included — of norm at most ``R = feature_norm``); see the module
    docstring for the derivation (ours)."""
    C = check_float("C", C, min_value=0.0, min_inclusive=False)
    feature_norm = check_float("feature_norm", feature_norm, min_value=0.0, min_inclusive=False)
    return math.sqrt(2.0) * C * feature_norm


def full_batch_noise_multiplier(*, epsilon: float, delta: float, steps: int) -> float:
    """Noise multiplier ``z`` of ``steps`` full-batch Gaussian steps (sensitivity = the clipping norm, noise
    ``z`` times it) that compose to exactly ``(ε, δ)``-DP: ``z = √T / μ`` with ``μ`` the GDP parameter of ``(ε, δ)``
    (module docstring)."""
    steps = check_int("steps", steps, min_value=1)
    mu = 1.0 / gaussian_mechanism_sigma(epsilon=epsilon, delta=delta, sensitivity=1.0)
    return math.sqrt(steps) / mu
