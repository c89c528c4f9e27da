"""Trade-offs over the sample size: SDPI constants and lower bounds as functions of n, log-log slopes, and the
mixture bound over the number of examples per cluster.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..._random import as_generator
from ..._validation import MemlensInputError, check_array, check_int, warn
from .bounds import accuracy_information, fkl_lower_bound
from .numerics import LN2
from .problems import _check_accuracy, _check_n, _check_problem, sdpi_constants

__all__ = [
    "loglog_slope", "TradeoffCurve", "tradeoff_curve", "MixtureBound", "sample_cluster_counts",
    "mixture_lower_bound", "expected_mixture_lower_bound"
]


def loglog_slope(x, y) -> float:
    """Least-squares slope of ``log y`` against ``log x`` over the finite, positive entries (NaN if < 2)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


@dataclass(frozen=True)
class TradeoffCurve:
    """Lower bound and matching learner over a grid of sample sizes, at one target accuracy.

    Every array has shape ``(len(n),)``; information is in nats (``*_bits`` properties divide by ln 2).

    Attributes
    ----------
    problem, params : the problem's name and parameters
    n : sample sizes
    accuracy : the target accuracy
    tau, one_minus_tau, rho : SDPI constants
    info_needed_nats : ``ln 2 − h(accuracy)``, the information about a test example the target forces
    lower_bound_nats : ``((1 − τ_n)/ρ_n) · info_needed`` (FKL Thm 3.7 with exact SDPIs)
    noise : the learner's noise giving the target accuracy exactly (NaN where unreachable)
    learner_nats : the learner's exact excess memorization at that noise
    learner_test_info_nats : its exact ``I(M; X)``
    accuracy_exact : its exact accuracy (equals ``accuracy`` where feasible)
    accuracy_mc, accuracy_mc_stderr : Monte Carlo accuracy and its standard error
    plain_nats : memorization of the learner without added noise
    store_all_nats : memorization of storing the raw sample (``inf`` for real-valued data)
    """

    problem: str
    params: dict
    n: np.ndarray
    accuracy: float
    tau: np.ndarray
    one_minus_tau: np.ndarray
    rho: np.ndarray
    info_needed_nats: float
    lower_bound_nats: np.ndarray
    noise: np.ndarray
    learner_nats: np.ndarray
    learner_test_info_nats: np.ndarray
    accuracy_exact: np.ndarray
    accuracy_mc: np.ndarray
    accuracy_mc_stderr: np.ndarray
    plain_nats: np.ndarray
    store_all_nats: np.ndarray

    @property
    def feasible(self) -> np.ndarray:
        """Where the learner reaches the target accuracy."""
        return np.isfinite(self.noise)

    @property
    def lower_bound_bits(self) -> np.ndarray:
        return self.lower_bound_nats / LN2

    @property
    def learner_bits(self) -> np.ndarray:
        return self.learner_nats / LN2

    @property
    def bound_with_learner_info_nats(self) -> np.ndarray:
        """``((1 − τ_n)/ρ_n) · I(M; X)`` with the learner's own exact ``I(M; X)`` (tighter than Fano)."""
        return self.one_minus_tau / self.rho * self.learner_test_info_nats

    def slope(self, of: str = "lower_bound", *, n_min: float = 1, n_max: float = np.inf) -> float:
        """Log–log slope of ``lower_bound`` or ``learner`` against ``n`` over ``n_min ≤ n ≤ n_max``."""
        values = {"lower_bound": self.lower_bound_nats, "learner": self.learner_nats}
        if of not in values:
            raise MemlensInputError(f"of must be 'lower_bound' or 'learner'; got {of!r}")
        sel = (self.n >= n_min) & (self.n <= n_max)
        return loglog_slope(self.n[sel], values[of][sel])


def tradeoff_curve(problem, n, *, accuracy: float, n_trials: int = 400, n_test: int = 16, seed=0,
                   monte_carlo: bool = True) -> TradeoffCurve:
    """The memorization/sample trade-off of ``problem`` at a fixed target ``accuracy``.

    For each ``n``: the SDPI constants, the FKL lower bound, the matching learner's noise chosen so that
    its exact accuracy equals the target, its exact excess memorization, and its accuracy measured by
    Monte Carlo (``n_trials`` independent clusters × ``n_test`` test points, explicit seeds spawned from
    ``seed``). Sample sizes where the learner cannot reach the target carry NaN and one warning.
    """
    problem = _check_problem(problem)
    n = _check_n(n)
    accuracy = _check_accuracy(accuracy)
    consts = sdpi_constants(problem, n)
    info = float(accuracy_information(accuracy))
    lb = fkl_lower_bound(info, tau=consts.tau, rho=consts.rho, one_minus_tau=consts.one_minus_tau)
    noise = np.asarray(problem.noise_for_accuracy(n, accuracy=accuracy), dtype=np.float64)
    feas = np.isfinite(noise)
    if not np.all(feas):
        warn(f"{problem.name}: the {problem.learner_name} cannot reach accuracy {accuracy} at n = "
             f"{n[~feas].tolist()} (even without added noise); those entries are NaN")
    learner = np.full(n.shape, np.nan)
    test_info = np.full(n.shape, np.nan)
    acc_exact = np.full(n.shape, np.nan)
    acc_mc = np.full(n.shape, np.nan)
    acc_se = np.full(n.shape, np.nan)
    if np.any(feas):
        learner[feas] = problem.learner_memorization(n[feas], noise=noise[feas])
        test_info[feas] = problem.learner_test_information(n[feas], noise=noise[feas])
        acc_exact[feas] = problem.learner_accuracy(n[feas], noise=noise[feas])
    if monte_carlo:
        seeds = np.random.SeedSequence(seed if not isinstance(seed, np.random.Generator)
                                       else int(seed.integers(2 ** 63))).spawn(n.size)
        for i in np.flatnonzero(feas):
            acc_mc[i], acc_se[i] = problem.learner_accuracy_mc(int(n[i]), noise=float(noise[i]), n_trials=n_trials,
                                                               n_test=n_test, seed=np.random.default_rng(seeds[i]))
    plain = np.asarray(problem.learner_memorization(n, noise=0.0), dtype=np.float64)
    return TradeoffCurve(problem=problem.name, params=problem.params, n=n, accuracy=accuracy, tau=consts.tau,
                         one_minus_tau=consts.one_minus_tau, rho=consts.rho, info_needed_nats=info,
                         lower_bound_nats=np.asarray(lb, dtype=np.float64), noise=noise, learner_nats=learner,
                         learner_test_info_nats=test_info, accuracy_exact=acc_exact, accuracy_mc=acc_mc,
                         accuracy_mc_stderr=acc_se, plain_nats=plain,
                         store_all_nats=np.asarray(problem.store_all_memorization(n), dtype=np.float64))


@dataclass(frozen=True)
class MixtureBound:
    """Per-cluster FKL bounds summed over a mixture of independent clusters (nats).

    Attributes
    ----------
    counts : int array (K,)
        Training examples per cluster.
    per_cluster_nats : array (K,)
        ``f(n_c)`` = single-cluster lower bound at ``n_c`` (0 for unseen clusters).
    learner_per_cluster_nats : array (K,)
        The matching learner's memorization per cluster at the same accuracy (NaN where unreachable).
    """

    problem: str
    accuracy: float
    counts: np.ndarray
    per_cluster_nats: np.ndarray
    learner_per_cluster_nats: np.ndarray

    @property
    def total_nats(self) -> float:
        return float(self.per_cluster_nats.sum())

    @property
    def learner_total_nats(self) -> float:
        return float(np.nansum(self.learner_per_cluster_nats))

    @property
    def n_singletons(self) -> int:
        return int(np.sum(self.counts == 1))

    @property
    def singleton_nats(self) -> float:
        """The part of the bound contributed by clusters seen exactly once."""
        return float(self.per_cluster_nats[self.counts == 1].sum())


def sample_cluster_counts(frequencies, n: int, *, seed=0) -> np.ndarray:
    """Multinomial counts ``(K,)`` of ``n`` examples over clusters with probabilities ``frequencies`` (K,)."""
    freq = check_array("frequencies", frequencies, ndim=1)
    if np.any(freq < 0) or freq.sum() <= 0:
        raise MemlensInputError("frequencies must be non-negative with a positive sum")
    n = check_int("n", n, min_value=0)
    return as_generator(seed).multinomial(n, freq / freq.sum())


def _per_count(problem, counts_unique, accuracy, with_learner=True):
    lb = np.zeros(counts_unique.shape)
    lr = np.zeros(counts_unique.shape)
    pos = counts_unique > 0
    if np.any(pos):
        c = counts_unique[pos]
        lb[pos] = problem.lower_bound(c, accuracy=accuracy)
        if with_learner:
            noise = np.asarray(problem.noise_for_accuracy(c, accuracy=accuracy), dtype=np.float64)
            vals = np.full(c.shape, np.nan)
            ok = np.isfinite(noise)
            if np.any(ok):
                vals[ok] = problem.learner_memorization(c[ok], noise=noise[ok])
            lr[pos] = vals
    return lb, lr


def mixture_lower_bound(problem, counts, *, accuracy: float) -> MixtureBound:
    """Lower bound for a mixture of independent clusters: ``Σ_c f(n_c)`` (nats).

    Derived (docs/theory.md, "Mixtures"; FKL Sec. 5 states such an extension): with independent cluster
    parameters and the cluster assignments given, ``I(M; X | θ) ≥ Σ_c I(M; X_c | θ_c)`` (chain rule; the
    other clusters' data act as independent randomness of the algorithm), and each term obeys the
    single-cluster bound at ``n_c`` samples when cluster ``c`` is predicted with accuracy ``accuracy``.

    Parameters
    ----------
    problem : one cluster's problem (every cluster is an independent copy)
    counts : int array (K,)
        Training examples per cluster (e.g. :func:`sample_cluster_counts`).
    """
    problem = _check_problem(problem)
    counts = np.asarray(counts)
    if counts.ndim != 1 or (counts.size and (not np.issubdtype(counts.dtype, np.integer) or counts.min() < 0)):
        raise MemlensInputError(f"counts must be a 1-d array of non-negative integers; got {counts!r:.80}")
    accuracy = _check_accuracy(accuracy)
    uniq, inv = np.unique(counts, return_inverse=True)
    lb, lr = _per_count(problem, uniq, accuracy)
    return MixtureBound(problem=problem.name, accuracy=accuracy, counts=counts.astype(np.int64),
                        per_cluster_nats=lb[inv], learner_per_cluster_nats=lr[inv])


def expected_mixture_lower_bound(problem, frequencies, n: int, *, accuracy: float, tail: float = 1e-12) -> dict:
    """Expectation over the multinomial cluster counts of :func:`mixture_lower_bound` (nats).

    ``E Σ_c f(n_c) = Σ_c Σ_{m ≥ 1} Bin(m; n, p_c) f(m)``, summed over the counts carrying all but ``tail``
    of each cluster's probability. Returns ``{"lower_bound_nats", "learner_nats", "singleton_nats",
    "expected_singletons"}``; ``learner_nats`` is NaN if the learner cannot reach the target at some
    count that carries probability.
    """
    problem = _check_problem(problem)
    freq = check_array("frequencies", frequencies, ndim=1)
    freq = freq / freq.sum()
    n = check_int("n", n, min_value=1)
    accuracy = _check_accuracy(accuracy)
    lo = np.maximum(1, stats.binom.ppf(tail, n, freq)).astype(np.int64)
    hi = np.maximum(lo, stats.binom.isf(tail, n, freq)).astype(np.int64)
    ms = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(lo, hi)] + [np.array([1])]))
    lb, lr = _per_count(problem, ms, accuracy)
    lookup_lb = dict(zip(ms.tolist(), lb))
    lookup_lr = dict(zip(ms.tolist(), lr))
    total_lb = total_lr = 0.0
    for p, a, b in zip(freq, lo, hi):
        m = np.arange(a, b + 1)
        w = stats.binom.pmf(m, n, p)
        total_lb += float(w @ np.array([lookup_lb[k] for k in m.tolist()]))
        total_lr += float(w @ np.array([lookup_lr[k] for k in m.tolist()]))
    single_p = stats.binom.pmf(1, n, freq)
    return {"lower_bound_nats": total_lb, "learner_nats": total_lr,
            "singleton_nats": float(single_p.sum() * lookup_lb[1]), "expected_singletons": float(single_p.sum())}
