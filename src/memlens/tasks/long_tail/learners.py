"""Simulated learners on a long-tail sample (memorize all, fit what is seen often enough, memorization-limited,
label-private by randomized response) and their evaluation against the theorem's bound.
"""
from __future__ import annotations

import numpy as np

from ..._random import as_generator
from ..._validation import MemlensInputError, check_array, check_float, check_int
from .sampling import LongTailSample
from .theory import _check_classes

__all__ = [
    "memorize_all", "fit_seen_at_least", "memorization_limited_weights", "memorization_limited",
    "randomized_response", "randomized_response_keep_probability", "sample_hypothesis", "population_error",
    "unfit_counts", "theorem_bound", "loo_memorization"
]


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
