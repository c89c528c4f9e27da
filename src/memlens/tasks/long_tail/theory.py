"""Feldman's long-tail theory in closed form: frequency priors, the weight tau_ell of examples seen ell times, expected
counts and masses, and the costs of not fitting rare examples (Feldman 2020, Thm 2.3 and its corollaries).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, logsumexp, xlog1py, xlogy

from ..._validation import MemlensInputError, check_array, check_float, check_int, warn

__all__ = [
    "zipf_prior", "frequency_prior", "mixture_prior", "tau_from_marginal", "tau", "expected_count",
    "expected_singletons", "expected_mass", "unseen_mass", "opt_error", "tail_weight", "tau_tail_lower_bound",
    "cost_of_not_fitting", "cost_memorization_limited", "cost_label_private", "required_memorization", "GroupCosts",
    "group_costs",
    "LongTailNumbers", "long_tail_numbers"
]


_ELL_CHUNK = 64  # rows of (ell, N) evaluated at once in the log-space moments


def zipf_prior(N: int, *, exponent: float = 1.0) -> np.ndarray:
    """Zipf frequency prior ``π_i ∝ i^{−exponent}``, ``i = 1..N``, normalized to sum to 1.

    Feldman (2020), Sec. 2.3: the running example is Zipf with exponent 1 (``α_i = (1/i)/H_N``).

    Parameters
    ----------
    N : int
        Domain size (number of points / subpopulations), >= 1.
    exponent : float, >= 0
        0 gives the uniform prior; larger values a lighter tail.

    Returns
    -------
    ndarray of float64, shape (N,), decreasing, summing to 1.
    """
    N = check_int("N", N, min_value=1, hint="(the domain size)")
    exponent = check_float("exponent", exponent, min_value=0.0)
    logw = -exponent * np.log(np.arange(1, N + 1, dtype=np.float64))
    return np.exp(logw - logsumexp(logw))


def frequency_prior(values) -> np.ndarray:
    """A user-given frequency list ``π``, validated and normalized to sum to 1 (shape (N,))."""
    arr = check_array("frequencies", values, ndim=1, dtype=np.float64)
    if arr.size == 0:
        raise MemlensInputError("frequencies must hold at least one value; got an empty list")
    if np.any(arr < 0):
        raise MemlensInputError(f"frequencies must be >= 0; got minimum {arr.min()}")
    total = arr.sum()
    if not total > 0:
        raise MemlensInputError("frequencies must have a positive sum; got all zeros")
    return arr / total


def mixture_prior(priors, *, weights) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate subgroup frequency lists into one prior (Feldman 2020, Sec. 4, disparate effects).

    Group ``g`` gets total mass ``weights[g]`` spread over its own list: ``P = Σ_g w_g P_g``, e.g.
    ``mixture_prior([zipf_prior(5000), zipf_prior(5000)], weights=[5/6, 1/6])``.

    Returns
    -------
    frequencies : ndarray, shape (Σ N_g,), summing to 1
    groups : ndarray of int64, shape (Σ N_g,), the group of each point
    """
    priors = [frequency_prior(p) for p in priors]
    w = check_array("weights", weights, ndim=1)
    if len(priors) < 1 or w.shape[0] != len(priors):
        raise MemlensInputError(f"weights must have one entry per prior ({len(priors)}); got {w.shape[0]}")
    if np.any(w <= 0):
        raise MemlensInputError(f"weights must be > 0; got {w.tolist()}")
    w = w / w.sum()
    freqs = np.concatenate([wg * p for wg, p in zip(w, priors)])
    groups = np.concatenate([np.full(p.shape[0], g, dtype=np.int64) for g, p in enumerate(priors)])
    return freqs, groups


def _check_n(n) -> int:
    return check_int("n", n, min_value=1, hint="(the number of training examples)")


def _check_ell(ell, n: int, *, min_value: int = 1):
    arr = np.asarray(ell)
    if arr.ndim > 1 or arr.size == 0:
        raise MemlensInputError(f"ell must be an integer or a 1-d array of integers; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise MemlensInputError(f"ell must hold integers (how many times a point was seen); got dtype {arr.dtype}")
    if arr.min() < min_value or arr.max() > n:
        raise MemlensInputError(f"ell must lie in [{min_value}, n={n}]; got values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int64), arr.ndim == 0


def _log_moments(alpha: np.ndarray, logw: np.ndarray, n: int, powers: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``log E_w[α^powers (1−α)^rest]`` for each pair (powers[j], rest[j]), in chunks over j."""
    out = np.empty(powers.shape[0], dtype=np.float64)
    for s in range(0, powers.shape[0], _ELL_CHUNK):
        p = powers[s:s + _ELL_CHUNK, None].astype(np.float64)
        r = rest[s:s + _ELL_CHUNK, None].astype(np.float64)
        with np.errstate(divide="ignore"):
            terms = xlogy(p, alpha[None, :]) + xlog1py(r, -alpha[None, :]) + logw[None, :]
        out[s:s + _ELL_CHUNK] = logsumexp(terms, axis=1)
    return out


def _alpha(frequencies) -> np.ndarray:
    return frequency_prior(frequencies)


def _marginal(alpha, weights):
    a = check_array("alpha", alpha, ndim=1, dtype=np.float64)
    if a.size == 0 or np.any(a < 0) or np.any(a > 1):
        raise MemlensInputError("alpha must be a non-empty 1-d array of frequencies in [0, 1]")
    if weights is None:
        logw = np.full(a.shape[0], -np.log(a.shape[0]))
    else:
        w = check_array("weights", weights, ndim=1, dtype=np.float64)
        if w.shape != a.shape or np.any(w < 0) or not w.sum() > 0:
            raise MemlensInputError(f"weights must be non-negative, one per alpha value ({a.shape[0]}), with a "
                                    f"positive sum; got shape {w.shape}")
        with np.errstate(divide="ignore"):
            logw = np.log(w / w.sum())
    return a, logw


def tau_from_marginal(alpha, *, n: int, ell=1, weights=None):
    """τ_ℓ for an arbitrary marginal ``π̄^N`` given as values ``alpha`` with probabilities ``weights``.

    ``τ_ℓ = E[α^{ℓ+1}(1−α)^{n−ℓ}] / E[α^ℓ(1−α)^{n−ℓ}]`` (Feldman 2020, Thm 2.3), computed in log space
    (log-sum-exp of ``(ℓ+1) log α + (n−ℓ) log(1−α)``), so it is accurate for ``n`` up to 1e6 and beyond.

    Parameters
    ----------
    alpha : array, shape (K,)
        Support of ``π̄^N`` (values in [0, 1]), e.g. a Monte Carlo sample from :func:`prior_marginal_sample`.
    n : int
        Sample size.
    ell : int or array of int in [1, n]
    weights : array, shape (K,), optional
        Probabilities of the values (uniform when omitted).

    Returns
    -------
    float, or ndarray of shape ``ell.shape``. NaN (with a warning) where no value of ``α`` makes a point
    seen ``ℓ`` times possible.
    """
    n = _check_n(n)
    a, logw = _marginal(alpha, weights)
    ells, scalar = _check_ell(ell, n)
    ells = np.atleast_1d(ells)
    num = _log_moments(a, logw, n, ells + 1, n - ells)
    den = _log_moments(a, logw, n, ells, n - ells)
    with np.errstate(invalid="ignore"):
        out = np.exp(num - den)
    if np.any(~np.isfinite(den)):
        warn("tau is undefined (NaN) where no point can be seen exactly ell times under this prior")
        out = np.where(np.isfinite(den), out, np.nan)
    return float(out[0]) if scalar else out


def tau(frequencies, *, n: int, ell=1):
    """τ_ℓ, the expected frequency of a point seen exactly ``ℓ`` times in ``n`` samples (Feldman 2020, Thm 2.3).

    It is the excess error an algorithm pays, per ``ℓ``-times-seen training point it does not fit:
    ``err ≥ opt + Σ_ℓ τ_ℓ errn(A, ℓ)``. ``π̄^N`` is approximated by the uniform distribution over the
    normalized list ``α_i = π_i / Σ π`` (the approximation of the paper's numerical examples, docs/theory.md, "The
    long tail in numbers"; exact
    for ``model="permuted"``). Zipf with ``N = n = 50,000`` gives ``τ_1 = 0.472 / n``.

    Parameters
    ----------
    frequencies : array, shape (N,)
        The frequency prior ``π`` (any positive scale).
    n : int
        Sample size.
    ell : int or array of int in [1, n]

    Returns
    -------
    float (or ndarray shaped like ``ell``): a probability, higher = costlier to leave such a point unfit.
    """
    return tau_from_marginal(_alpha(frequencies), n=n, ell=ell)


def expected_count(frequencies, *, n: int, ell=1):
    """Expected number of domain points seen exactly ``ℓ`` times: ``N · C(n, ℓ) · E[α^ℓ (1−α)^{n−ℓ}]``.

    ``ell`` may be 0 (unseen points). Same approximation of ``π̄^N`` as :func:`tau`. Returns float or array.
    """
    n = _check_n(n)
    alpha = _alpha(frequencies)
    ells, scalar = _check_ell(ell, n, min_value=0)
    ells = np.atleast_1d(ells)
    logw = np.full(alpha.shape[0], -np.log(alpha.shape[0]))
    logc = gammaln(n + 1) - gammaln(ells + 1) - gammaln(n - ells + 1)
    out = alpha.shape[0] * np.exp(logc + _log_moments(alpha, logw, n, ells, n - ells))
    return float(out[0]) if scalar else out


def expected_singletons(frequencies, *, n: int) -> float:
    """Expected number of points seen exactly once: ``n Σ_i α_i (1−α_i)^{n−1}`` (docs/theory.md, "The long tail in numbers")."""
    return expected_count(frequencies, n=n, ell=1)


def expected_mass(frequencies, *, n: int, ell=1):
    """Expected total probability ``E[Σ_{x seen ℓ times} D(x)] = τ_ℓ · E#ℓ`` (``ell=0``: the unseen mass)."""
    n = _check_n(n)
    alpha = _alpha(frequencies)
    ells, scalar = _check_ell(ell, n, min_value=0)
    ells = np.atleast_1d(ells)
    logw = np.zeros(alpha.shape[0])  # a sum over the list, not a mean
    logc = gammaln(n + 1) - gammaln(ells + 1) - gammaln(n - ells + 1)
    out = np.exp(logc + _log_moments(alpha, logw, n, ells + 1, n - ells))
    return float(out[0]) if scalar else out


def unseen_mass(frequencies, *, n: int) -> float:
    """Expected probability mass of points absent from ``S``: ``Σ_i α_i (1−α_i)^n`` (docs/theory.md, "The long tail in numbers")."""
    return expected_mass(frequencies, n=n, ell=0)


def _check_classes(n_classes) -> int:
    return check_int("n_classes", n_classes, min_value=2, hint="(the number of labels m)")


def opt_error(frequencies, *, n: int, n_classes: int) -> float:
    """Bayes-optimal error ``opt(π, F)`` for uniform labels and clean training labels: ``(1 − 1/m) · unseen mass``.

    The optimal algorithm predicts the observed label of every seen point and guesses elsewhere (docs/theory.md,
    "The long tail in numbers":
    ``opt ≈ 0.9 · unseen mass`` for 10 classes). With label noise the optimum also errs on seen points; the
    simulation computes it exactly (:func:`memorize_all` is the Bayes-optimal learner).
    """
    m = _check_classes(n_classes)
    return (1.0 - 1.0 / m) * unseen_mass(frequencies, n=n)


def tail_weight(frequencies, *, n: int, low: float | None = None, high: float | None = None) -> float:
    """``weight(π̄^N, [β1, β2])``: expected total mass of points with frequency in ``[β1, β2]``.

    Defaults ``β1 = 1/(3n)``, ``β2 = 2/n``, the interval of the tail lemma (Feldman 2020, Sec. 2; docs/theory.md).
    """
    n = _check_n(n)
    alpha = _alpha(frequencies)
    low = 1.0 / (3 * n) if low is None else check_float("low", low, min_value=0.0)
    high = 2.0 / n if high is None else check_float("high", high, min_value=low)
    return float(alpha[(alpha >= low) & (alpha <= high)].sum())


def tau_tail_lower_bound(frequencies, *, n: int) -> float:
    """The tail lemma's lower bound ``τ_1 ≥ weight(π̄^N, [1/(3n), 2/n]) / (5n)`` (Feldman 2020, Sec. 2)."""
    return tail_weight(frequencies, n=n) / (5.0 * _check_n(n))


def _check_noise(label_noise) -> float:
    return check_float("label_noise", label_noise, min_value=0.0, max_value=1.0,
                       hint="(the probability that a training label is replaced by a uniform random label)")


def _conf(label_noise: float) -> float:
    """Confidence margin of a singleton's observed label under random classification noise: ``1 − η``.

    With label noise η (a training label is replaced by a uniform label with probability η), the posterior of
    the true label of a singleton is ``1 − η + η/m`` on the observed label and ``η/m`` on each other label;
    the margin ``conf(S, i, F)`` of Feldman (2020, Thm 2.4) is their difference, ``1 − η`` (``κ`` in the paper).
    """
    return 1.0 - label_noise


def cost_of_not_fitting(frequencies, *, n: int, n_classes: int, max_count: int = 1,
                        unfit_fraction: float | None = None, label_noise: float = 0.0) -> float:
    """Excess-error lower bound for an algorithm that does not fit points seen at most ``max_count`` times.

    ``Σ_{ℓ ≤ max_count} τ_ℓ · E#ℓ · conf · unfit_fraction`` (Feldman 2020, Thm 2.3; Thm 2.4 with label noise).
    ``unfit_fraction`` is the probability that such a point's label is not predicted; it defaults to
    ``1 − 1/m`` (an algorithm that ignores those points guesses). ``max_count = 1``: ignoring singletons
    (docs/theory.md, "The long tail in numbers": 0.0804 × 0.9 = 0.072 for Zipf ``N = n = 50,000``).
    Label noise is supported for ``max_count = 1`` only (points seen more often have data-dependent margins).
    """
    n = _check_n(n)
    m = _check_classes(n_classes)
    max_count = check_int("max_count", max_count, min_value=1, max_value=n)
    eta = _check_noise(label_noise)
    if eta > 0 and max_count > 1:
        raise MemlensInputError("label_noise > 0 is supported for max_count=1 only (the margin of a point seen "
                                f"several times depends on its observed labels); got max_count={max_count}")
    frac = 1.0 - 1.0 / m if unfit_fraction is None else check_float("unfit_fraction", unfit_fraction,
                                                                     min_value=0.0, max_value=1.0)
    mass = expected_mass(frequencies, n=n, ell=np.arange(1, max_count + 1))
    return float(mass.sum() * _conf(eta) * frac)


def cost_memorization_limited(frequencies, *, n: int, n_classes: int, gamma: float,
                              label_noise: float = 0.0) -> float:
    """Excess-error lower bound for a γ-memorization-limited algorithm (Feldman 2020, Cor. 4.6).

    ``τ_1 · E#singletons · conf · max(0, 1 − 1/m − γ)``: with uniform labels, a singleton left out of ``S``
    is unseen, so ``‖F(x_i | S∖i)‖_∞ = 1/m``. Spec §2.3: 0.015, 0.035, 0.031 for the three γ = 0.5 rows.
    """
    m = _check_classes(n_classes)
    gamma = check_float("gamma", gamma, min_value=0.0)
    eta = _check_noise(label_noise)
    return float(expected_mass(frequencies, n=n, ell=1) * _conf(eta) * max(0.0, 1.0 - 1.0 / m - gamma))


def cost_label_private(frequencies, *, n: int, n_classes: int, epsilon: float, delta: float = 0.0,
                       label_noise: float = 0.0) -> float:
    """Excess-error lower bound for an (ε, δ)-label-private prediction algorithm (Feldman 2020, Thm 4.8).

    ``τ_1 · E#singletons · conf · max(0, 1 − e^ε/m − δ)``; with 10 classes, ε = ln 6 matches γ = 0.5.
    """
    m = _check_classes(n_classes)
    epsilon = check_float("epsilon", epsilon, min_value=0.0)
    delta = check_float("delta", delta, min_value=0.0, max_value=1.0)
    eta = _check_noise(label_noise)
    return float(expected_mass(frequencies, n=n, ell=1) * _conf(eta)
                 * max(0.0, 1.0 - np.exp(epsilon) / m - delta))


def required_memorization(frequencies, *, n: int, n_classes: int, excess_error: float,
                          label_noise: float = 0.0) -> dict:
    """What an algorithm with excess error at most ``excess_error`` must memorize (Feldman 2020, inverted).

    Two readings, each the forward bound solved for the memorization it implies (the inversion is ours):

    * ``min_gamma`` — Cor. 4.6 solved for γ: a γ-memorization-limited algorithm pays at least
      ``τ_1 · E#singletons · conf · max(0, 1 − 1/m − γ)``, so excess error ``ε`` needs
      ``γ ≥ 1 − 1/m − ε / (τ_1 · E#singletons · conf)``: the label memorization some singleton must reach.
    * ``min_fitted_singletons`` — Thm 2.3 solved for the number of fitted singletons: each singleton whose label is
      not predicted costs ``τ_1 · conf · (1 − 1/m)`` in expectation, so at most ``ε / (τ_1 · conf · (1 − 1/m))``
      singletons can be left unfit, and the rest, ``E#singletons`` minus that, must be fitted — memorized, since a
      singleton's label cannot be inferred from the other examples (Lemma 4.3).

    Returns
    -------
    dict with ``min_gamma`` (in [0, 1 − 1/m]), ``min_fitted_singletons``, ``expected_singletons``, ``tau_1_times_n``.
    """
    n = _check_n(n)
    m = _check_classes(n_classes)
    eps = check_float("excess_error", excess_error, min_value=0.0, max_value=1.0)
    eta = _check_noise(label_noise)
    t1 = float(tau(frequencies, n=n, ell=1))
    e1 = float(expected_singletons(frequencies, n=n))
    per = t1 * _conf(eta)
    denom = per * e1
    gamma = 1.0 - 1.0 / m - (eps / denom if denom > 0 else np.inf)
    unfit = eps / (per * (1.0 - 1.0 / m)) if per > 0 else np.inf
    return {"min_gamma": float(min(max(gamma, 0.0), 1.0 - 1.0 / m)),
            "min_fitted_singletons": float(max(0.0, e1 - unfit)), "expected_singletons": e1,
            "tau_1_times_n": t1 * n}


@dataclass(frozen=True)
class GroupCosts:
    """Per-subgroup costs of limited memorization in a mixture prior (Feldman 2020, Sec. 4, disparate effects).

    All arrays have shape (n_groups,); rates are *within* each group (divided by the group's weight).

    Attributes
    ----------
    weight : total probability of each group
    expected_samples : ``n · weight``
    tau1 : τ_1 restricted to the group, ``Σ_g α² (1−α)^{n−1} / Σ_g α (1−α)^{n−1}``
    singletons : expected number of the group's singletons
    opt : ``(1 − 1/m) ·`` unseen mass of the group / weight
    cost_not_fitting : error added within the group by ignoring its singletons
    cost_limited : error added within the group by a γ-limited algorithm, ``… · (1 − 1/m − γ)``
    gamma : the γ used
    """

    weight: np.ndarray
    expected_samples: np.ndarray
    tau1: np.ndarray
    singletons: np.ndarray
    opt: np.ndarray
    cost_not_fitting: np.ndarray
    cost_limited: np.ndarray
    gamma: float

    def ratio(self, a: int = 1, b: int = 0) -> float:
        """``cost_limited[a] / cost_limited[b]``: how much more the limit costs group ``a`` than group ``b``."""
        return float(self.cost_limited[a] / self.cost_limited[b])


def group_costs(frequencies, groups, *, n: int, n_classes: int, gamma: float) -> GroupCosts:
    """Costs of not fitting singletons and of γ-limited memorization, per subgroup of a mixture prior.

    Parameters
    ----------
    frequencies, groups : from :func:`mixture_prior`, shape (N,)
    n : int
        Total sample size (group ``g`` receives ``n · weight_g`` samples on average).
    n_classes, gamma : as in :func:`cost_memorization_limited`.
    """
    n = _check_n(n)
    m = _check_classes(n_classes)
    gamma = check_float("gamma", gamma, min_value=0.0)
    alpha = _alpha(frequencies)
    g = np.asarray(groups)
    if g.shape != alpha.shape or not np.issubdtype(g.dtype, np.integer) or g.min() < 0:
        raise MemlensInputError(f"groups must be non-negative integers, one per frequency ({alpha.shape[0]}); "
                                f"got shape {g.shape}, dtype {g.dtype}")
    n_groups = int(g.max()) + 1
    with np.errstate(divide="ignore"):
        la, l1 = np.log(alpha), np.log1p(-alpha)
    cols = {"w": [], "s_mass": [], "s_count": [], "unseen": []}
    for k in range(n_groups):
        sel = g == k
        a, la_k, l1_k = alpha[sel], la[sel], l1[sel]
        cols["w"].append(a.sum())
        cols["s_mass"].append(n * np.exp(logsumexp(2 * la_k + (n - 1) * l1_k)))
        cols["s_count"].append(n * np.exp(logsumexp(la_k + (n - 1) * l1_k)))
        cols["unseen"].append(np.exp(logsumexp(la_k + n * l1_k)))
    w, s_mass, s_count, unseen = (np.array(cols[c]) for c in ("w", "s_mass", "s_count", "unseen"))
    return GroupCosts(weight=w, expected_samples=n * w, tau1=s_mass / s_count, singletons=s_count,
                      opt=(1 - 1 / m) * unseen / w, cost_not_fitting=(1 - 1 / m) * s_mass / w,
                      cost_limited=max(0.0, 1 - 1 / m - gamma) * s_mass / w, gamma=gamma)


@dataclass(frozen=True)
class LongTailNumbers:
    """The closed-form quantities of one setting (one row of the table in docs/theory.md, "The long tail in numbers")."""

    N: int
    n: int
    n_classes: int
    tau1: float
    n_tau1: float
    expected_singletons: float
    singleton_fraction: float
    unseen_mass: float
    opt: float
    cost_not_fitting: float
    gamma: float
    cost_limited: float
    tail_lower_bound: float

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def long_tail_numbers(frequencies, *, n: int, n_classes: int = 10, gamma: float = 0.5) -> LongTailNumbers:
    """All the quantities of docs/theory.md's long-tail table for one prior and sample size (``n·τ_1``, singleton fraction, opt, costs)."""
    n = _check_n(n)
    alpha = _alpha(frequencies)
    t1 = tau(alpha, n=n)
    es = expected_singletons(alpha, n=n)
    um = unseen_mass(alpha, n=n)
    m = _check_classes(n_classes)
    return LongTailNumbers(
        N=int(alpha.shape[0]), n=n, n_classes=m, tau1=t1, n_tau1=n * t1, expected_singletons=es,
        singleton_fraction=es / n, unseen_mass=um, opt=(1 - 1 / m) * um,
        cost_not_fitting=cost_of_not_fitting(alpha, n=n, n_classes=m), gamma=float(gamma),
        cost_limited=cost_memorization_limited(alpha, n=n, n_classes=m, gamma=gamma),
        tail_lower_bound=tau_tail_lower_bound(alpha, n=n))
