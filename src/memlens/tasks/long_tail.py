"""Feldman's long-tail model: why fitting rare examples is necessary for near-optimal accuracy.

Feldman, *Does Learning Require Memorization? A Short Tale about a Long Tail*, STOC 2020 (arXiv:1906.05271).
The model (Sec. 2 of the paper; the theorem numbers below are those of the arXiv version):

- a domain ``X`` of ``N`` points and ``m`` labels;
- a **frequency prior** ``π = (π_1, …, π_N)``; a random distribution ``D ~ D_π^X`` gives each point a
  frequency drawn uniformly from the list ``π`` and normalizes (``D(x) = p_x / Σ p_x'``); ``π̄^N`` is the
  marginal distribution of ``D(x)``;
- a **labeling prior** ``F`` (here: every point gets an independent uniform label, the paper's running
  example), optionally observed through random classification noise;
- a dataset ``S ~ (D, f)^n``.

**Cost of not fitting** (Thm 2.3): for every algorithm ``A`` and dataset ``Z``,
``err(A | Z) ≥ opt(Z) + Σ_ℓ τ_ℓ · errn_Z(A, ℓ)`` with

    τ_ℓ = E_{α~π̄^N}[α^{ℓ+1} (1−α)^{n−ℓ}] / E_{α~π̄^N}[α^ℓ (1−α)^{n−ℓ}],

the expected frequency of a point seen exactly ``ℓ`` times (``errn_Z(A, ℓ)`` counts the ``ℓ``-times-seen points
that ``A`` does not fit). The closed forms here follow the paper's numerical examples (spec §2.3) and
approximate ``π̄^N`` by the uniform distribution over the normalized list ``α_i = π_i / Σ_j π_j``; that
approximation is exact for :func:`sample_distribution` with ``model="permuted"``. For the paper's own
``D_π^X`` (``model="prior"``) use :func:`prior_marginal_sample` with :func:`tau_from_marginal`.

Everything in this module is a small pure function over arrays. The *simulated learners* map per-point vote
counts ``votes (k, m)`` (how often each label was observed for each point) to the prediction distribution
``proba (k, m)`` of ``h(x)`` for ``h ~ A(S)``; because they act point by point, errors, unfit counts and exact
leave-one-out memorization are computed exactly, without sampling ``h``.

A long-tailed mixture of Gaussian subpopulations in ``R^d`` (:func:`make_long_tail_mixture`) carries the
same structure to real learners (Feldman, Sec. 3, mixture models).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln, logsumexp, xlog1py, xlogy

from .._random import as_generator
from .._validation import MemlensInputError, check_array, check_float, check_int, warn
from ..data import Dataset

__all__ = [
    # priors
    "zipf_prior",
    "frequency_prior",
    "mixture_prior",
    # closed forms
    "tau",
    "tau_from_marginal",
    "prior_marginal_sample",
    "expected_count",
    "expected_singletons",
    "expected_mass",
    "unseen_mass",
    "opt_error",
    "tail_weight",
    "tau_tail_lower_bound",
    "cost_of_not_fitting",
    "cost_memorization_limited",
    "cost_label_private",
    "GroupCosts",
    "group_costs",
    "LongTailNumbers",
    "long_tail_numbers",
    # sampling
    "sample_distribution",
    "sample_labeling",
    "LongTailSample",
    "sample_long_tail",
    # simulated learners and their evaluation
    "memorize_all",
    "fit_seen_at_least",
    "memorization_limited",
    "memorization_limited_weights",
    "randomized_response",
    "randomized_response_keep_probability",
    "sample_hypothesis",
    "population_error",
    "unfit_counts",
    "theorem_bound",
    "loo_memorization",
    # real-data analogue
    "LongTailMixture",
    "make_long_tail_mixture",
]

_MODELS = ("prior", "permuted", "fixed")
_ELL_CHUNK = 64  # rows of (ell, N) evaluated at once in the log-space moments


# ----------------------------------------------------------------------------------------------- priors
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


# ---------------------------------------------------------------------------------------- closed forms
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
    normalized list ``α_i = π_i / Σ π`` (the approximation of the paper's numerical examples, spec §2.3; exact
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


def prior_marginal_sample(frequencies, *, n_draws: int = 20, seed=0) -> np.ndarray:
    """Monte Carlo sample of the exact marginal ``π̄^N`` of ``D(x)`` under ``D ~ D_π^X``.

    Draws ``n_draws`` distributions with :func:`sample_distribution` (``model="prior"``) and returns all their
    point frequencies, shape ``(n_draws * N,)``; pass it to :func:`tau_from_marginal`.
    """
    n_draws = check_int("n_draws", n_draws, min_value=1)
    rng = as_generator(seed)
    pi = _alpha(frequencies)
    return np.concatenate([sample_distribution(pi, seed=rng, model="prior") for _ in range(n_draws)])


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
    """Expected number of points seen exactly once: ``n Σ_i α_i (1−α_i)^{n−1}`` (spec §2.3)."""
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
    """Expected probability mass of points absent from ``S``: ``Σ_i α_i (1−α_i)^n`` (spec §2.3)."""
    return expected_mass(frequencies, n=n, ell=0)


def _check_classes(n_classes) -> int:
    return check_int("n_classes", n_classes, min_value=2, hint="(the number of labels m)")


def opt_error(frequencies, *, n: int, n_classes: int) -> float:
    """Bayes-optimal error ``opt(π, F)`` for uniform labels and clean training labels: ``(1 − 1/m) · unseen mass``.

    The optimal algorithm predicts the observed label of every seen point and guesses elsewhere (spec §2.3:
    ``opt ≈ 0.9 · unseen mass`` for 10 classes). With label noise the optimum also errs on seen points; the
    simulation computes it exactly (:func:`memorize_all` is the Bayes-optimal learner).
    """
    m = _check_classes(n_classes)
    return (1.0 - 1.0 / m) * unseen_mass(frequencies, n=n)


def tail_weight(frequencies, *, n: int, low: float | None = None, high: float | None = None) -> float:
    """``weight(π̄^N, [β1, β2])``: expected total mass of points with frequency in ``[β1, β2]``.

    Defaults ``β1 = 1/(3n)``, ``β2 = 2/n``, the interval of the tail lemma (Feldman 2020, Sec. 2; spec §2.1).
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
    (spec §2.3: 0.0804 × 0.9 = 0.072 for Zipf ``N = n = 50,000``).
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
    """The closed-form quantities of one setting (one row of the spec §2.3 table)."""

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
    """All spec §2.3 quantities for one prior and sample size (``n·τ_1``, singleton fraction, opt, costs)."""
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


# -------------------------------------------------------------------------------------------- sampling
def sample_distribution(frequencies, *, seed=0, model: str = "prior") -> np.ndarray:
    """Draw a distribution ``D`` over the ``N`` domain points.

    ``model="prior"``: Feldman's ``D ~ D_π^X`` — each point draws ``p_x`` uniformly (with replacement) from the
    list ``π``, then ``D = p / Σ p``. ``model="permuted"``: ``D`` is a uniformly random permutation of
    ``π / Σ π``, so ``π̄^N`` is exactly uniform over the list (the approximation of :func:`tau`).
    ``model="fixed"``: ``D = π / Σ π`` itself (point ``i`` keeps frequency ``π_i``, e.g. to follow the groups of
    :func:`mixture_prior`); with i.i.d. uniform labels this has the same statistics as ``"permuted"``.

    Returns ndarray of float64, shape (N,), summing to 1.
    """
    pi = _alpha(frequencies)
    if model not in _MODELS:
        raise MemlensInputError(f"model must be one of {_MODELS}; got {model!r}")
    rng = as_generator(seed)
    if model == "fixed":
        return pi
    if model == "permuted":
        return rng.permutation(pi)
    p = pi[rng.integers(0, pi.shape[0], size=pi.shape[0])]
    return p / p.sum()


def sample_labeling(N: int, *, n_classes: int = 10, seed=0) -> np.ndarray:
    """The labeling prior ``F``: an independent uniform label ``f(x) ∈ [0, m)`` for each point, shape (N,)."""
    N = check_int("N", N, min_value=1)
    m = _check_classes(n_classes)
    return as_generator(seed).integers(0, m, size=N).astype(np.int64)


@dataclass(frozen=True)
class LongTailSample:
    """A dataset ``S ~ (D, f)^n`` with its ground truth.

    Attributes
    ----------
    ids : ndarray of int64, shape (n,)
        Domain point of each example.
    labels : ndarray of int64, shape (n,)
        Observed (possibly noisy) training labels.
    clean_labels : ndarray of int64, shape (n,)
        ``f(ids)``.
    distribution : ndarray of float64, shape (N,)
        ``D``.
    labeling : ndarray of int64, shape (N,)
        ``f``.
    n_classes : int
    label_noise : float
        Probability that a training label was replaced by a uniform random label.
    """

    ids: np.ndarray
    labels: np.ndarray
    clean_labels: np.ndarray
    distribution: np.ndarray
    labeling: np.ndarray
    n_classes: int
    label_noise: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    @property
    def domain_size(self) -> int:
        return int(self.distribution.shape[0])

    @property
    def counts(self) -> np.ndarray:
        """How many times each domain point was seen, shape (N,)."""
        if "counts" not in self._cache:
            self._cache["counts"] = np.bincount(self.ids, minlength=self.domain_size)
        return self._cache["counts"]

    @property
    def votes(self) -> np.ndarray:
        """Observed label counts per domain point, shape (N, m), int64."""
        if "votes" not in self._cache:
            m = self.n_classes
            self._cache["votes"] = np.bincount(self.ids * m + self.labels,
                                               minlength=self.domain_size * m).reshape(-1, m)
        return self._cache["votes"]

    @property
    def example_counts(self) -> np.ndarray:
        """For each example, how many times its point was seen, shape (n,)."""
        return self.counts[self.ids]

    @property
    def is_singleton(self) -> np.ndarray:
        """True for examples whose point appears exactly once in ``S``, shape (n,)."""
        return self.example_counts == 1

    def with_labels(self, labels) -> "LongTailSample":
        """The same examples with other training labels, e.g. after :func:`randomized_response`."""
        y = np.asarray(labels, dtype=np.int64)
        if y.shape != self.labels.shape:
            raise MemlensInputError(f"labels must have one entry per example ({self.n}); got shape {y.shape}")
        return LongTailSample(self.ids, y, self.clean_labels, self.distribution, self.labeling, self.n_classes,
                              self.label_noise)

    def subset(self, index) -> "LongTailSample":
        """The dataset restricted to some examples (bool mask or indices): ``S_I`` of Feldman–Zhang."""
        idx = np.asarray(index)
        return LongTailSample(self.ids[idx], self.labels[idx], self.clean_labels[idx], self.distribution,
                              self.labeling, self.n_classes, self.label_noise)


def sample_long_tail(frequencies, *, n: int, n_classes: int = 10, label_noise: float = 0.0,
                     model: str = "prior", seed=0) -> LongTailSample:
    """Draw ``D`` (:func:`sample_distribution`), ``f`` (:func:`sample_labeling`) and ``S ~ (D, f)^n``.

    Each training label is replaced, with probability ``label_noise``, by a uniform random label (random
    classification noise; the true label ``f(x)`` is what test error is measured against).
    """
    n = _check_n(n)
    eta = _check_noise(label_noise)
    rng = as_generator(seed)
    D = sample_distribution(frequencies, seed=rng, model=model)
    f = sample_labeling(D.shape[0], n_classes=n_classes, seed=rng)
    cdf = np.cumsum(D)
    ids = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), D.shape[0] - 1)
    clean = f[ids]
    labels = clean.copy()
    if eta > 0:
        flip = rng.random(n) < eta
        labels[flip] = rng.integers(0, n_classes, size=int(flip.sum()))
    return LongTailSample(ids.astype(np.int64), labels, clean, D, f, int(n_classes), eta)


# ---------------------------------------------------------------------------------- simulated learners
def _check_votes(votes) -> np.ndarray:
    v = np.asarray(votes)
    if v.ndim != 2 or v.shape[1] < 2 or not np.issubdtype(v.dtype, np.integer) or (v.size and v.min() < 0):
        raise MemlensInputError("votes must be a non-negative integer array (n_points, n_classes) of observed "
                                f"label counts (LongTailSample.votes); got shape {v.shape}, dtype {v.dtype}")
    return v


def _plurality(v: np.ndarray) -> np.ndarray:
    is_max = v == v.max(axis=1, keepdims=True)
    return is_max / is_max.sum(axis=1, keepdims=True)


def memorize_all(votes) -> np.ndarray:
    """The lookup learner: predict the most frequent observed label of each seen point, guess elsewhere.

    Ties are broken uniformly at random; unseen points get the uniform distribution. With uniform labels and
    symmetric label noise this is the Bayes-optimal algorithm (it attains ``opt``). Without noise its
    memorization is exactly ``1 − 1/m`` on singletons and 0 on points seen twice or more.

    Parameters
    ----------
    votes : int array, shape (k, m)
        Observed label counts per point.

    Returns
    -------
    proba : float64 array, shape (k, m)
        Distribution of ``h(x)`` for ``h ~ A(S)``.
    """
    return _plurality(_check_votes(votes))


def fit_seen_at_least(votes, *, min_count: int = 2) -> np.ndarray:
    """Fit only points seen at least ``min_count`` times (plurality label); guess on all others.

    ``min_count=2`` is the learner that ignores singletons; its excess error is the cost of not fitting
    them, ``τ_1 · E#singletons · (1 − 1/m)`` in expectation (Feldman 2020, Thm 2.3). Shapes as :func:`memorize_all`.
    """
    v = _check_votes(votes)
    min_count = check_int("min_count", min_count, min_value=1)
    proba = _plurality(v)
    proba[v.sum(axis=1) < min_count] = 1.0 / v.shape[1]
    return proba


def memorization_limited_weights(max_count: int, *, gamma: float, n_classes: int) -> np.ndarray:
    """Weights ``w_ℓ`` (ℓ = 0..max_count) of an accurate vote-share learner whose memorization is ≤ γ.

    The learner predicts ``P(h(x) = y) = (1 − w_ℓ)/m + w_ℓ · v_y / ℓ`` for a point with ``ℓ`` observed labels,
    ``v_y`` of them equal to ``y``. Removing one example with label ``y`` changes that probability by
    ``(w_{ℓ−1} − w_ℓ)/m + w_ℓ v/ℓ − w_{ℓ−1}(v − 1)/(ℓ − 1)``, linear in ``v ∈ [1, ℓ]``, so ``mem ≤ γ`` for every
    labelling iff it holds at both ends:

    - ``v = ℓ``: ``(w_ℓ − w_{ℓ−1})(1 − 1/m) ≤ γ``;
    - ``v = 1``: ``w_ℓ (1/ℓ − 1/m) + w_{ℓ−1}/m ≤ γ``.

    Each ``w_ℓ`` (``w_0 = 0``) is the largest value meeting both, capped at 1 and at ``(ℓ + 1)γ``; the last cap
    keeps every later step feasible (a constant continuation then satisfies ``w/k ≤ γ`` for all ``k > ℓ``), so
    the schedule is one fixed algorithm, independent of the data. On clean data the learner fits a point seen
    ``ℓ`` times with probability ``1/m + w_ℓ (1 − 1/m)``: ``min(1, 1/m + ℓγ)`` whenever
    ``ℓ γ m/(m−1) ≤ (ℓ+1)γ`` or the cap 1 is reached first (always for ``m = 10``, ``γ ≥ 0.1``).
    """
    max_count = check_int("max_count", max_count, min_value=0)
    gamma = check_float("gamma", gamma, min_value=0.0)
    m = _check_classes(n_classes)
    w = np.zeros(max_count + 1)
    for ell in range(1, max_count + 1):
        prev = w[ell - 1]
        hi = min(1.0, prev + gamma / (1.0 - 1.0 / m), (ell + 1) * gamma)
        slope = 1.0 / ell - 1.0 / m
        if slope > 0:
            hi = min(hi, (gamma - prev / m) / slope)
        # slope <= 0: the v = 1 constraint is a lower bound, met by prev (prev <= ell*gamma) and so by hi >= prev
        w[ell] = hi  # >= prev, which is feasible, so hi is too
    return w


def memorization_limited(votes, *, gamma: float) -> np.ndarray:
    """A γ-memorization-limited learner: ``mem(A, S, i) ≤ γ`` for every dataset and example.

    Feldman (2020), Sec. 4: ``mem(A,S,i) = Pr_{h~A(S)}[h(x_i)=y_i] − Pr_{h~A(S∖i)}[h(x_i)=y_i]``. The learner
    mixes the vote shares with the uniform guess using :func:`memorization_limited_weights`; on clean data it
    fits a singleton with probability ``1/m + γ``, so its excess error meets Cor. 4.6's bound
    ``τ_1 · E#singletons · (1 − 1/m − γ)``, plus the cost of points seen twice or more when ``1/m + 2γ < 1``.
    Shapes as :func:`memorize_all`.
    """
    v = _check_votes(votes)
    m = v.shape[1]
    counts = v.sum(axis=1)
    w = memorization_limited_weights(int(counts.max(initial=0)), gamma=gamma, n_classes=m)[counts][:, None]
    share = v / np.maximum(counts, 1)[:, None]
    return (1.0 - w) / m + w * share


def randomized_response(labels, *, epsilon: float, n_classes: int, seed=0) -> np.ndarray:
    """ε-label-DP randomized response on training labels: keep each with probability ``e^ε/(e^ε + m − 1)``.

    Otherwise the label is replaced by one of the other ``m − 1`` labels, uniformly (Warner 1965; the label-DP
    training of Ghazi et al. 2021). Every output probability changes by a factor of at most ``e^ε`` when one
    input label changes, and anything computed from the randomized labels is ε-label-private (Feldman 2020,
    Sec. 4.3). The ε-label-private simulated learner is :func:`memorize_all` on the randomized labels: it fits
    a singleton with probability ``e^ε/(e^ε + m − 1) ≤ e^ε/m`` (Thm 4.8), and points seen often almost surely.

    Parameters
    ----------
    labels : int array, shape (n,)
    epsilon : float >= 0
    n_classes : int
    seed : int or Generator

    Returns
    -------
    int64 array, shape (n,)
    """
    m = _check_classes(n_classes)
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= m)):
        raise MemlensInputError(f"labels must be a 1-d integer array with values in [0, {m}); got shape {y.shape}")
    epsilon = check_float("epsilon", epsilon, min_value=0.0)
    rng = as_generator(seed)
    e = np.exp(-epsilon)
    keep_p = 1.0 / (1.0 + (m - 1) * e)
    change = rng.random(y.shape[0]) >= keep_p
    shift = rng.integers(1, m, size=y.shape[0])  # uniform over the m - 1 other labels
    return np.where(change, (y + shift) % m, y).astype(np.int64)


def randomized_response_keep_probability(epsilon: float, *, n_classes: int) -> float:
    """``e^ε / (e^ε + m − 1)``: the probability that :func:`randomized_response` keeps a label."""
    m = _check_classes(n_classes)
    epsilon = check_float("epsilon", epsilon, min_value=0.0)
    return float(1.0 / (1.0 + (m - 1) * np.exp(-epsilon)))


def sample_hypothesis(proba, *, seed=0) -> np.ndarray:
    """Draw ``h ~ A(S)``: one label per row of ``proba (k, m)``; returns int64 of shape (k,)."""
    p = check_array("proba", proba, ndim=2)
    rng = as_generator(seed)
    cdf = np.cumsum(p, axis=1)
    u = rng.random(p.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), p.shape[1] - 1).astype(np.int64)


def _check_proba(proba, sample: LongTailSample) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.shape != (sample.domain_size, sample.n_classes):
        raise MemlensInputError(f"proba must have shape (N, m) = {(sample.domain_size, sample.n_classes)} "
                                f"(one prediction distribution per domain point); got {p.shape}")
    return p


def population_error(proba, sample: LongTailSample) -> float:
    """``err_D(A) = Σ_x D(x) · Pr_{h~A(S)}[h(x) ≠ f(x)]``, exact given ``D`` and ``f`` (no test sampling)."""
    p = _check_proba(proba, sample)
    return float(np.dot(sample.distribution, 1.0 - p[np.arange(p.shape[0]), sample.labeling]))


def unfit_counts(proba, sample: LongTailSample, *, max_count: int | None = None) -> np.ndarray:
    """``errn_S(A, ℓ)`` for ℓ = 0..max_count (index ℓ; entry 0 is 0): expected unfit ``ℓ``-times-seen points.

    Counted per example, ``Σ_{i: count(x_i)=ℓ} Pr[h(x_i) ≠ y_i] / ℓ``, which equals Feldman's per-point count
    ``Σ_{x ∈ X_S#ℓ} Pr[h(x) ≠ y_x]`` when a point's observed labels agree (always, without label noise).
    """
    p = _check_proba(proba, sample)
    c = sample.example_counts
    max_count = int(c.max(initial=0)) if max_count is None else check_int("max_count", max_count, min_value=0)
    miss = 1.0 - p[sample.ids, sample.labels]
    keep = c <= max_count
    out = np.bincount(c[keep], weights=miss[keep] / c[keep], minlength=max_count + 1)
    out[0] = 0.0
    return out


def theorem_bound(errn, tau_values) -> float:
    """``Σ_ℓ τ_ℓ · errn_S(A, ℓ)`` (Feldman 2020, Thm 2.3): arrays indexed by ℓ (entry 0 ignored)."""
    e = np.asarray(errn, dtype=np.float64)
    t = np.asarray(tau_values, dtype=np.float64)
    if e.shape != t.shape:
        raise MemlensInputError(f"errn and tau_values must be indexed alike (by ell); got {e.shape} and {t.shape}")
    return float(np.dot(e[1:], t[1:]))


def loo_memorization(learner, sample: LongTailSample, *, trained_labels=None, **params) -> np.ndarray:
    """Exact label memorization ``mem(A, S, i)`` of a simulated learner for every example, shape (n,).

    ``Pr_{h~A(S)}[h(x_i)=y_i] − Pr_{h~A(S∖i)}[h(x_i)=y_i]`` (Feldman 2020, Def. 4.1), computed by removing
    example ``i``'s vote from its point; ``learner`` is one of the functions above (``params`` its keywords).
    ``trained_labels`` (shape (n,)): the labels the learner actually sees, e.g. :func:`randomized_response`
    output; memorization is still measured on ``sample.labels`` (the result is then exact given that draw and
    unbiased over it). Higher = more memorized.
    """
    seen = sample.labels if trained_labels is None else np.asarray(trained_labels, dtype=np.int64)
    if seen.shape != sample.labels.shape:
        raise MemlensInputError(f"trained_labels must have one label per example ({sample.n}); got {seen.shape}")
    m = sample.n_classes
    votes_all = np.bincount(sample.ids * m + seen, minlength=sample.domain_size * m).reshape(-1, m)
    votes = votes_all[sample.ids]
    rows = np.arange(sample.n)
    with_i = learner(votes, **params)[rows, sample.labels]
    minus = votes.copy()
    minus[rows, seen] -= 1
    without_i = learner(minus, **params)[rows, sample.labels]
    return with_i - without_i


# ------------------------------------------------------------------------------------ real-data analogue
@dataclass(frozen=True)
class LongTailMixture:
    """A long-tailed mixture of Gaussian subpopulations in ``R^d`` with its ground truth.

    Attributes
    ----------
    dataset : memlens.data.Dataset
        ``X_train (n, d)``, ``y_train (n,)``; the test set holds ``n_test_per_subpopulation`` points of every
        subpopulation (so accuracy can be read per subpopulation; weight it by ``frequencies`` for the
        error on ``D``).
    train_subpopulation : int64 (n,)
        Subpopulation of each training example.
    test_subpopulation : int64 (n_test,)
    frequencies : float64 (N,)
        ``D``: the probability of each subpopulation.
    subpopulation_labels : int64 (N,)
        The label of each subpopulation (uniform over classes).
    centers : float32 (N, d)
    counts : int64 (N,)
        Training examples per subpopulation.
    exponent : float
        Zipf exponent of the frequency prior (``zipf_prior(N, exponent=...)`` is the prior ``π``).
    """

    dataset: object
    train_subpopulation: np.ndarray
    test_subpopulation: np.ndarray
    frequencies: np.ndarray
    subpopulation_labels: np.ndarray
    centers: np.ndarray
    counts: np.ndarray
    exponent: float = 1.0

    @property
    def train_counts(self) -> np.ndarray:
        """Training count of each training example's subpopulation, shape (n,)."""
        return self.counts[self.train_subpopulation]

    @property
    def test_counts(self) -> np.ndarray:
        """Training count of each test example's subpopulation, shape (n_test,)."""
        return self.counts[self.test_subpopulation]


def make_long_tail_mixture(*, n_train: int = 1000, n_subpopulations: int = 500, n_features: int = 200,
                           n_classes: int = 10, exponent: float = 1.0, cluster_std: float = 0.5,
                           n_test_per_subpopulation: int = 4, label_noise: float = 0.0,
                           model: str = "permuted", seed=0) -> LongTailMixture:
    """A long-tailed mixture of subpopulations in ``R^d`` (Feldman 2020, Sec. 3), ready for real learners.

    Subpopulation ``j`` has a center ``c_j`` uniform on the unit sphere of ``R^d``, a uniform random label and
    frequency ``D_j`` from a Zipf prior (:func:`sample_distribution` with ``model``). An example of ``j`` is
    ``c_j + (cluster_std/√d) · N(0, I_d)`` labelled ``j``'s label (training labels flipped to a uniform label
    with probability ``label_noise``). Centers are nearly orthogonal for large ``d``, so a subpopulation's
    label says nothing about any other's: fitting a rare subpopulation requires memorizing its examples.

    Returns
    -------
    LongTailMixture
    """
    n = _check_n(n_train)
    N = check_int("n_subpopulations", n_subpopulations, min_value=2)
    d = check_int("n_features", n_features, min_value=1)
    m = _check_classes(n_classes)
    std = check_float("cluster_std", cluster_std, min_value=0.0)
    k_test = check_int("n_test_per_subpopulation", n_test_per_subpopulation, min_value=1)
    eta = _check_noise(label_noise)
    rng = as_generator(seed)
    D = sample_distribution(zipf_prior(N, exponent=exponent), seed=rng, model=model)
    labels = sample_labeling(N, n_classes=m, seed=rng)
    centers = rng.standard_normal((N, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    cdf = np.cumsum(D)
    sub_tr = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), N - 1).astype(np.int64)
    sub_te = np.repeat(np.arange(N, dtype=np.int64), k_test)
    scale = std / np.sqrt(d)
    X_tr = (centers[sub_tr] + scale * rng.standard_normal((n, d))).astype(np.float32)
    X_te = (centers[sub_te] + scale * rng.standard_normal((sub_te.shape[0], d))).astype(np.float32)
    y_tr = labels[sub_tr].copy()
    if eta > 0:
        flip = rng.random(n) < eta
        y_tr[flip] = rng.integers(0, m, size=int(flip.sum()))
    ds = Dataset(name=f"long-tail-mixture(n={n},N={N},d={d},m={m},s={exponent})", X_train=X_tr,
                 y_train=y_tr.astype(np.int64), X_test=X_te, y_test=labels[sub_te].astype(np.int64),
                 class_names=tuple(str(c) for c in range(m)),
                 description="Zipf mixture of Gaussian subpopulations with random labels (Feldman 2020, Sec. 3)")
    return LongTailMixture(dataset=ds, train_subpopulation=sub_tr, test_subpopulation=sub_te, frequencies=D,
                           subpopulation_labels=labels, centers=centers.astype(np.float32),
                           counts=np.bincount(sub_tr, minlength=N).astype(np.int64), exponent=exponent)
