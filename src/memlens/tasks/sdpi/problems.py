"""The three clustering problems (Gaussian, Boolean, sparse hypercube; instantiations derived for this project):
samplers, matching learners, and their exact SDPI constants.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats
from scipy.special import expit

from ..._random import as_generator
from ..._validation import MemlensInputError, check_array, check_float, check_int
from .bounds import accuracy_information, fkl_lower_bound
from .numerics import LN2, _entropy_increment, _sdpi_binary_output, binary_entropy, mutual_information

__all__ = [
    "SDPIConstants", "sdpi_constants", "ClusterSample", "GaussianClustering", "BooleanClustering", "SparseHypercube"
]


@dataclass(frozen=True)
class ClusterSample:
    """``n`` labelled examples from one cluster, with the ground truth.

    Attributes
    ----------
    problem : the problem instance that generated it
    theta : array (d,)
        The cluster parameter: real (Gaussian), ``±1`` (Boolean) or ``{−1, 0, +1}`` with 0 = free coordinate
        (sparse hypercube).
    X : float32 array (n, d)
    y : int64 array (n,), labels in ``{−1, +1}``
    """

    problem: object
    theta: np.ndarray
    X: np.ndarray
    y: np.ndarray

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @property
    def aligned(self) -> np.ndarray:
        """Label-aligned examples ``y_i x_i`` (n, d)."""
        return self.y[:, None].astype(self.X.dtype) * self.X


def _check_n(n):
    arr = np.atleast_1d(np.asarray(n))
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1):
        if arr.size and np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)) and np.all(arr >= 1):
            return arr.astype(np.int64)
        raise MemlensInputError(f"n must be a positive integer or an array of them (samples per cluster); got {n!r}")
    return arr.astype(np.int64)


def _check_accuracy(accuracy):
    return check_float("accuracy", accuracy, min_value=0.5, max_value=1.0, min_inclusive=False,
                       max_inclusive=False, hint="(a target strictly between chance and perfect)")


def _random_signs(rng, shape):
    return (2 * rng.integers(0, 2, size=shape, dtype=np.int8) - 1).astype(np.float32)


def _sign_with_random_ties(score, rng):
    out = np.sign(score)
    ties = out == 0
    if np.any(ties):
        out[ties] = _random_signs(rng, int(ties.sum()))
    return out.astype(np.int64)


def _binomial_majority_accuracy(d, p_plus, p_minus):
    """``P(N₊ > N₋) + ½ P(N₊ = N₋)`` for ``(N₊, N₋, N₀) ~ Multinomial(d; p₊, p₋, 1 − p₊ − p₋)``."""
    a = np.arange(d + 1)
    pa = stats.binom.pmf(a, d, p_plus)
    if p_plus >= 1.0:
        return 1.0
    cond = min(max(p_minus / (1.0 - p_plus), 0.0), 1.0)
    lower = stats.binom.cdf(a - 1, d - a, cond)  # P(N₋ < a | N₊ = a)
    tie = stats.binom.pmf(a, d - a, cond)
    return float(pa @ (lower + 0.5 * tie))


_SDPI_CACHE: dict = {}


def _cached_sdpi(problem, n_arr, compute_one):
    """Per-``n`` SDPI constants with a process-wide cache keyed by the (frozen, hashable) problem."""
    out = np.empty((3, n_arr.size))
    for i, nn in enumerate(n_arr):
        key = (problem, int(nn))
        if key not in _SDPI_CACHE:
            _SDPI_CACHE[key] = compute_one(int(nn))
        out[:, i] = _SDPI_CACHE[key]
    return out[0], out[1], out[2]


class _ClusterProblem:
    """Shared machinery: sampling, SDPI-based bound, Monte Carlo accuracy of the matching learner."""

    name = ""
    noise_name = ""
    learner_name = ""

    # subclasses implement: _draw_theta(shape, rng), _sample_aligned(theta, m, rng) -> (T, m, d),
    # _sample_learner_output(n, noise, theta, rng) -> (T, d), fit, sdpi, learner_* closed forms.

    def sample(self, n: int, *, seed=0, theta=None) -> ClusterSample:
        """Draw ``θ`` (unless given) and ``n`` labelled examples ``(x_i, y_i)`` from ``P_θ``.

        Returns a :class:`ClusterSample` with ``X (n, d)`` float32, ``y (n,)`` in ``{−1, +1}`` and ``theta``.
        """
        n = check_int("n", n, min_value=1)
        rng = as_generator(seed)
        if theta is None:
            theta = self._draw_theta((1, self.d), rng)[0]
        else:
            theta = np.asarray(theta, dtype=np.float32)
            if theta.shape != (self.d,):
                raise MemlensInputError(f"theta must have shape ({self.d},); got {theta.shape}")
        aligned = self._sample_aligned(theta[None, :], n, rng)[0]
        y = (2 * rng.integers(0, 2, size=n) - 1).astype(np.int64)
        X = (y[:, None].astype(np.float32) * aligned).astype(np.float32)
        return ClusterSample(problem=self, theta=theta, X=X, y=y)

    def predict(self, model, X, *, seed=0) -> np.ndarray:
        """``ŷ = sign⟨x, M⟩`` for each row of ``X (m, d)``, ties broken by a fair coin; labels in ``{−1, +1}``."""
        model = check_array("model", model, ndim=1)
        X = check_array("X", X, ndim=2)
        if X.shape[1] != model.size:
            raise MemlensInputError(f"X must have {model.size} columns (the model's dimension); got {X.shape}")
        return _sign_with_random_ties(X @ model, as_generator(seed))

    def lower_bound(self, n, *, accuracy):
        """FKL lower bound (nats) on ``I(M; X_{1:n} | θ)`` for any learner of accuracy ``accuracy``; shape of ``n``."""
        c = sdpi_constants(self, n)
        return fkl_lower_bound(accuracy_information(_check_accuracy(accuracy)), tau=c.tau, rho=c.rho,
                               one_minus_tau=c.one_minus_tau)

    def learner_accuracy_mc(self, n: int, *, noise, n_trials: int = 400, n_test: int = 16, seed=0,
                            chunk: int = 128):
        """Monte Carlo test accuracy of the matching learner: ``(mean, stderr)``.

        Each trial draws ``θ``, the learner's output (sampled through the sufficient statistic of the
        training data, which has exactly the distribution of fitting on ``n`` raw examples) and ``n_test``
        fresh labelled test points, and predicts with :meth:`predict`'s rule. The standard error is
        computed from the per-trial accuracies (test points of one trial share the model).
        """
        n = check_int("n", n, min_value=1)
        n_trials = check_int("n_trials", n_trials, min_value=2)
        n_test = check_int("n_test", n_test, min_value=1)
        self._check_noise(noise)
        rng = as_generator(seed)
        per_trial = []
        for start in range(0, n_trials, chunk):
            t = min(chunk, n_trials - start)
            theta = self._draw_theta((t, self.d), rng)
            model = self._sample_learner_output(n, noise, theta, rng)
            aligned = self._sample_aligned(theta, n_test, rng)
            y = _random_signs(rng, (t, n_test))
            X = y[:, :, None] * aligned
            score = np.einsum("tmd,td->tm", X, model.astype(np.float32), optimize=True)
            pred = _sign_with_random_ties(score, rng)
            per_trial.append(np.mean(pred == y, axis=1))
        per_trial = np.concatenate(per_trial)
        return float(per_trial.mean()), float(per_trial.std(ddof=1) / math.sqrt(n_trials))

    def _check_noise(self, noise):  # pragma: no cover - overridden
        return noise


class _CorrelationProblem(_ClusterProblem):
    """A problem of dimension ``d`` whose label-aligned examples have correlation ``r`` with ``θ`` (the Gaussian and
    the Boolean clustering): the checks of ``d`` and ``r``, and their parameters."""

    def __post_init__(self):
        object.__setattr__(self, "d", check_int("d", self.d, min_value=1))
        object.__setattr__(self, "r", check_float("r", self.r, min_value=0.0, max_value=1.0, min_inclusive=False,
                                                  max_inclusive=False, hint="(a correlation)"))

    @property
    def params(self) -> dict:
        return {"d": self.d, "r": self.r, "r2": self.r ** 2}


@dataclass(frozen=True)
class GaussianClustering(_CorrelationProblem):
    """Gaussian clustering (docs/theory.md, problem (G); an interpretation of FKL App. B, derived).

    ``θ ~ N(0, I_d)``, ``y ~ Unif{±1}``, ``x | θ, y ~ N(y r θ, (1 − r²) I_d)``; the label-aligned example
    ``y x`` has per-coordinate correlation ``r`` with ``θ`` and unit variance.

    Matching learner (noise ``q2 = q²``): ``M = (1/n) Σ y_i x_i + N(0, q² I_d)``, ``ŷ = sign⟨x, M⟩``.

    Parameters
    ----------
    d : int
        Dimension.
    r : float in (0, 1)
        Correlation of a label-aligned example with ``θ``; ``calibrated(d, c=c)`` sets ``r² = c/√d``.
    """

    d: int
    r: float
    name: str = field(default="gaussian", init=False)
    noise_name: str = field(default="q2", init=False)
    learner_name: str = field(default="noisy mean", init=False)

    @classmethod
    def calibrated(cls, d: int, *, c: float = 1.0) -> "GaussianClustering":
        """``r² = c/√d``: one example gives constant accuracy (≈ Φ(c) for large d)."""
        d = check_int("d", d, min_value=1)
        c = check_float("c", c, min_value=0.0, min_inclusive=False)
        r2 = c / math.sqrt(d)
        if r2 >= 1:
            raise MemlensInputError(f"c must be < sqrt(d) = {math.sqrt(d):.3g} so that r² = c/√d < 1; got {c}")
        return cls(d=d, r=math.sqrt(r2))

    # --- generator -----------------------------------------------------------------------------------
    def _draw_theta(self, shape, rng):
        return rng.standard_normal(shape, dtype=np.float32)

    def _sample_aligned(self, theta, m, rng):
        t, d = theta.shape
        z = rng.standard_normal((t, m, d), dtype=np.float32)
        return (self.r * theta[:, None, :] + math.sqrt(1 - self.r ** 2) * z).astype(np.float32)

    # --- SDPI constants (closed forms) ----------------------------------------------------------------
    def sdpi(self, n):
        """``(τ_n, 1 − τ_n, ρ_n)`` arrays: ``τ_n = n r²/(1 + (n−1) r²)``, ``ρ_n = n r⁴/(1 + (n−1) r²)``.

        Squared maximal correlations of ``(θ_j, x̄_j)`` and ``(x̃_j, x̄_j)`` (docs/theory.md, problem (G)); for jointly
        Gaussian pairs they equal the mutual-information SDPI constants, and they tensorize over coordinates.
        """
        n = _check_n(n).astype(np.float64)
        r2 = self.r ** 2
        den = 1.0 + (n - 1.0) * r2
        return n * r2 / den, (1.0 - r2) / den, n * r2 * r2 / den

    # --- matching learner: noisy mean ---------------------------------------------------------------
    def _check_noise(self, q2):
        return check_float("noise", q2, min_value=0.0, hint="(the noise variance q² of the noisy mean)")

    def _total_noise(self, n, q2):
        return (1.0 - self.r ** 2) / np.asarray(n, dtype=np.float64) + q2

    def fit(self, sample: ClusterSample, *, noise: float, seed=0) -> np.ndarray:
        """Noisy mean ``M = (1/n) Σ y_i x_i + N(0, q² I_d)`` (d,), with ``noise = q²``."""
        q2 = self._check_noise(noise)
        rng = as_generator(seed)
        mean = sample.aligned.astype(np.float64).mean(axis=0)
        return mean + math.sqrt(q2) * rng.standard_normal(self.d)

    def _sample_learner_output(self, n, q2, theta, rng):
        s = math.sqrt(float(self._total_noise(n, q2)))
        return self.r * theta + s * rng.standard_normal(theta.shape, dtype=np.float32)

    def learner_memorization(self, n, *, noise):
        """Exact ``I(M; X_{1:n} | θ) = (d/2) ln(1 + ((1 − r²)/n)/q²)`` nats (``inf`` at ``q² = 0``)."""
        n = _check_n(n).astype(np.float64)
        q2 = np.asarray(noise, dtype=np.float64)
        with np.errstate(divide="ignore"):
            return 0.5 * self.d * np.log1p(((1 - self.r ** 2) / n) / q2)

    def learner_test_information(self, n, *, noise):
        """Exact ``I(M; X)`` (nats) for a fresh test example.

        ``−(d/2) ln(1 − r⁴/(r² + s²))`` with ``s² = (1 − r²)/n + q²``.
        """
        s2 = self._total_noise(_check_n(n), np.asarray(noise, dtype=np.float64))
        r2 = self.r ** 2
        return -0.5 * self.d * np.log1p(-r2 * r2 / (r2 + s2))

    def learner_accuracy(self, n, *, noise):
        """Exact accuracy of ``sign⟨x, M⟩``: ``P(F_{d,d} > (1 − κ)/(1 + κ))`` with ``κ = r²/√(r² + s²)``.

        Per coordinate ``(x̃_j, M_j)`` are jointly Gaussian with correlation ``κ``; ``Σ_j x̃_j M_j`` is a
        difference of two independent scaled ``χ²_d`` variables, so its sign is an F-distribution tail.
        """
        s2 = self._total_noise(_check_n(n), np.asarray(noise, dtype=np.float64))
        r2 = self.r ** 2
        kappa = r2 / np.sqrt(r2 + s2)
        return stats.f.sf((1 - kappa) / (1 + kappa), self.d, self.d)

    def noise_for_accuracy(self, n, *, accuracy):
        """The ``q²`` giving exactly ``accuracy`` (closed form); NaN where even ``q² = 0`` is less accurate."""
        accuracy = _check_accuracy(accuracy)
        n = _check_n(n).astype(np.float64)
        t = stats.f.isf(accuracy, self.d, self.d)
        kappa = (1 - t) / (1 + t)
        r2 = self.r ** 2
        s2_target = r2 * r2 / kappa ** 2 - r2
        q2 = s2_target - (1 - r2) / n
        return np.where(q2 >= 0, q2, np.nan)

    def store_all_memorization(self, n):
        """Storing the raw real-valued sample keeps infinite information (differential entropy)."""
        return np.full(_check_n(n).shape, np.inf)


@dataclass(frozen=True)
class BooleanClustering(_CorrelationProblem):
    """Boolean clustering (docs/theory.md, problem (B); an interpretation of FKL App. C, derived).

    ``θ ~ Unif{±1}^d``, ``y ~ Unif{±1}``; each coordinate of the label-aligned example ``x̃ = y x`` equals
    ``θ_j`` with probability ``a = (1 + r)/2``, independently.

    Matching learner (noise ``η``): the coordinate-wise majority ``maj_j = sign(Σ_i x̃_ij)`` (ties: fair
    coin) with each bit flipped with probability ``η`` (randomized response); ``ŷ = sign⟨x, M⟩``.
    """

    d: int
    r: float
    name: str = field(default="boolean", init=False)
    noise_name: str = field(default="eta", init=False)
    learner_name: str = field(default="majority + randomized response", init=False)

    @classmethod
    def calibrated(cls, d: int, *, c: float = 1.0) -> "BooleanClustering":
        """``r² = c/√d``: one example gives constant accuracy."""
        g = GaussianClustering.calibrated(d, c=c)
        return cls(d=g.d, r=g.r)

    @property
    def _a(self):
        return (1 + self.r) / 2

    def _draw_theta(self, shape, rng):
        return _random_signs(rng, shape)

    def _sample_aligned(self, theta, m, rng):
        t, d = theta.shape
        agree = rng.random((t, m, d), dtype=np.float32) < self._a
        return np.where(agree, theta[:, None, :], -theta[:, None, :]).astype(np.float32)

    # --- SDPI constants (exact, per coordinate on the count S) ---------------------------------------
    def _count_model(self, n):
        s = np.arange(n + 1)
        a, b = self._a, 1 - self._a
        lp_plus = stats.binom.logpmf(s, n, a)
        lp_minus = stats.binom.logpmf(s, n, b)
        log_ps = np.logaddexp(lp_plus, lp_minus) - LN2
        logit_theta = (2 * s - n) * math.log(a / b)  # log P(θ=+|s) − log P(θ=−|s)
        return log_ps, logit_theta

    def sdpi(self, n):
        """``(τ_n, 1 − τ_n, ρ_n)`` arrays, exact per coordinate.

        ``τ_n``: SDPI constant of ``(θ_j, S_j)``, ``S_j`` the number of ``+1`` among the label-aligned
        training coordinates (a sufficient statistic, so it equals the constant of ``(θ_j, X_{1:n,j})``).
        ``ρ_n``: of ``(x̃_j, S_j)`` for a fresh test coordinate. Both reverse channels have a binary output,
        so the supremum over exponential tilts is exact.
        """
        def one(nn):
            log_ps, logit = self._count_model(nn)
            tau, om = _sdpi_binary_output(log_ps, logit)
            k1 = 0.5 + self.r * (expit(logit) - 0.5)  # P(x̃_test = +1 | s)
            rho, _ = _sdpi_binary_output(log_ps, np.log(k1) - np.log1p(-k1))
            return tau, om, rho

        return _cached_sdpi(self, _check_n(n), one)

    # --- matching learner: majority + randomized response -------------------------------------------
    def _check_noise(self, eta):
        return check_float("noise", eta, min_value=0.0, max_value=0.5,
                           hint="(the flip probability eta of randomized response)")

    def _majority_error(self, n):
        """``(p_err, p_tie)``: ``P(maj ≠ θ)`` (ties count ½) and ``P(tie)`` for one coordinate."""
        n = np.asarray(n)
        a = self._a
        half = n / 2.0
        even = (n % 2) == 0
        p_tie = np.where(even, stats.binom.pmf(np.floor(half), n, a), 0.0)
        p_less = stats.binom.cdf(np.ceil(half) - 1, n, a)  # P(S < n/2)
        return p_less + 0.5 * p_tie, p_tie

    def fit(self, sample: ClusterSample, *, noise: float, seed=0) -> np.ndarray:
        """Majority vote of the label-aligned examples, ties by a fair coin, each bit flipped w.p. ``η``; (d,) ±1."""
        eta = self._check_noise(noise)
        rng = as_generator(seed)
        total = sample.aligned.sum(axis=0)
        maj = _sign_with_random_ties(total, rng).astype(np.float64)
        flips = rng.random(self.d) < eta
        return np.where(flips, -maj, maj)

    def _sample_learner_output(self, n, eta, theta, rng):
        agree_count = rng.binomial(n, self._a, size=theta.shape)
        score = (2 * agree_count - n).astype(np.float32)
        maj_rel = _sign_with_random_ties(score, rng).astype(np.float32)  # +1: majority equals θ_j
        flips = rng.random(theta.shape) < eta
        return theta * np.where(flips, -maj_rel, maj_rel)

    def _bit_error(self, n, eta):
        p_err, p_tie = self._majority_error(n)
        eta = np.asarray(eta, dtype=np.float64)
        return eta + p_err * (1 - 2 * eta), p_err, p_tie

    def learner_memorization(self, n, *, noise):
        """Exact ``I(M; X_{1:n} | θ) = d [h(e) − h(η) + p_tie (h(η) − ln 2)]`` nats.

        Per coordinate ``M_j`` depends on the data only through ``S_j``; with ``p_err`` the majority's
        error (ties counted ½), ``e = η + p_err(1 − 2η)`` is ``P(M_j ≠ θ_j)``, ``H(M_j | θ_j) = h(e)`` and
        ``H(M_j | S_j) = (1 − p_tie) h(η) + p_tie ln 2``. Computed with full relative precision when
        ``p_err`` is astronomically small.
        """
        n = _check_n(n)
        eta = np.asarray(noise, dtype=np.float64)
        _, p_err, p_tie = self._bit_error(n, eta)
        inc = _entropy_increment(eta, p_err * (1 - 2 * eta))
        return self.d * (inc + p_tie * (binary_entropy(eta) - LN2))

    def learner_test_information(self, n, *, noise):
        """Exact ``I(M; X) = d (ln 2 − h(π))`` nats, ``π = P(M_j = x̃_j) = a(1 − e) + (1 − a) e``."""
        e, _, _ = self._bit_error(_check_n(n), noise)
        pi = self._a - self.r * e
        return self.d * (LN2 - binary_entropy(pi))

    def learner_accuracy(self, n, *, noise):
        """Exact accuracy of ``sign⟨x, M⟩``: ``P(K > d/2) + ½ P(K = d/2)``, ``K ~ Bin(d, π)``."""
        e, _, _ = self._bit_error(_check_n(n), noise)
        pi = np.atleast_1d(self._a - self.r * e)
        acc = np.array([_binomial_majority_accuracy(self.d, p, 1 - p) for p in pi])
        return acc

    def _accuracy_of_pi(self, pi):
        return _binomial_majority_accuracy(self.d, pi, 1 - pi)

    def noise_for_accuracy(self, n, *, accuracy):
        """The flip probability ``η`` giving exactly ``accuracy``; NaN where even ``η = 0`` falls short."""
        accuracy = _check_accuracy(accuracy)
        n = _check_n(n)
        if self._accuracy_of_pi(1.0) <= accuracy:
            return np.full(n.shape, np.nan)
        pi_star = optimize.brentq(lambda p: self._accuracy_of_pi(p) - accuracy, 0.5, 1.0, xtol=1e-15)
        e_star = (self._a - pi_star) / self.r
        p_err, _ = self._majority_error(n)
        eta = (e_star - p_err) / (1 - 2 * p_err)
        return np.where((eta >= 0) & (p_err < 0.5), np.clip(eta, 0.0, 0.5), np.nan)

    def store_all_memorization(self, n):
        """Storing the raw sample: ``H(X_{1:n} | θ) = n (d h((1+r)/2) + ln 2)`` nats (labels included)."""
        n = _check_n(n).astype(np.float64)
        return n * (self.d * binary_entropy(self._a) + LN2)


@dataclass(frozen=True)
class SparseHypercube(_ClusterProblem):
    """Sparse Boolean hypercube / subcube (docs/theory.md, problem (S); an interpretation of FKL App. D, derived).

    ``θ_j ∈ {−1, 0, +1}`` independently: *fixed* (``±1``, each with probability ``p_fixed/2``) or *free*
    (0, probability ``1 − p_fixed``), so ``|F| ~ Bin(d, p_fixed)``. The label-aligned example ``x̃ = y x`` has
    ``x̃_j = θ_j`` on fixed coordinates and a uniform sign on free ones. (Brown et al.'s subcube with
    independent fixing; the paper's exact sparse problem — possibly ``|F| = k`` exactly — was not
    available; docs/theory.md, problem (S).)

    Matching learner (noise ``η``): per coordinate the statistic ``T_j ∈ {all −1, mixed, all +1}`` of the
    label-aligned training column; ``M_j = 0`` when mixed, else the common sign flipped w.p. ``η``;
    ``ŷ = sign⟨x, M⟩``.
    """

    d: int
    p_fixed: float
    name: str = field(default="sparse_hypercube", init=False)
    noise_name: str = field(default="eta", init=False)
    learner_name: str = field(default="subcube learner + randomized response", init=False)

    def __post_init__(self):
        object.__setattr__(self, "d", check_int("d", self.d, min_value=1))
        object.__setattr__(self, "p_fixed", check_float("p_fixed", self.p_fixed, min_value=0.0, max_value=1.0,
                                                        min_inclusive=False, max_inclusive=False,
                                                        hint="(the probability that a coordinate is fixed)"))

    @classmethod
    def calibrated(cls, d: int, *, c: float = 1.0) -> "SparseHypercube":
        """``p_fixed = c/√d`` (about ``c√d`` fixed coordinates): one example gives constant accuracy."""
        d = check_int("d", d, min_value=1)
        c = check_float("c", c, min_value=0.0, min_inclusive=False)
        if c / math.sqrt(d) >= 1:
            raise MemlensInputError(f"c must be < sqrt(d) = {math.sqrt(d):.3g}; got {c}")
        return cls(d=d, p_fixed=c / math.sqrt(d))

    @property
    def params(self) -> dict:
        return {"d": self.d, "p_fixed": self.p_fixed}

    def _draw_theta(self, shape, rng):
        fixed = rng.random(shape) < self.p_fixed
        return np.where(fixed, _random_signs(rng, shape), 0.0).astype(np.float32)

    def _sample_aligned(self, theta, m, rng):
        t, d = theta.shape
        free = _random_signs(rng, (t, m, d))
        return np.where(theta[:, None, :] != 0, theta[:, None, :], free).astype(np.float32)

    # --- SDPI constants ------------------------------------------------------------------------------
    def _stat_model(self, n):
        """log P(T) over (all−, mixed, all+) and log P(θ | T) over θ ∈ (−1, 0, +1)."""
        p = self.p_fixed
        log_agree = np.logaddexp(math.log(p / 2), math.log1p(-p) - n * LN2)  # P(all+) = P(all−)
        with np.errstate(divide="ignore"):
            log_mixed = math.log1p(-p) + (np.log(-np.expm1((1 - n) * LN2)) if n > 1 else -np.inf)
        log_pt = np.array([log_agree, log_mixed, log_agree])
        log_fixed_given_agree = math.log(p / 2) - log_agree
        log_free_given_agree = math.log1p(-p) - n * LN2 - log_agree
        kern = np.full((3, 3), -np.inf)
        kern[0, 0], kern[0, 1] = log_fixed_given_agree, log_free_given_agree
        kern[1, 1] = 0.0
        kern[2, 2], kern[2, 1] = log_fixed_given_agree, log_free_given_agree
        return log_pt, kern

    def sdpi(self, n):
        """``(τ_n, 1 − τ_n, ρ_n)`` arrays per coordinate on the sufficient statistic ``T_j``.

        ``τ_n = π_n = P(θ_j fixed | column agrees) = p / (p + (1 − p) 2^{1−n})`` in closed form (derived):
        the reverse channel ``T_j → θ_j`` keeps an agreeing sign with probability ``π_n`` and outputs 0
        otherwise (always 0 for a mixed column), i.e. it is an erasure channel with keep-probability
        ``π_n`` followed by a fixed map, so ``τ_n ≤ π_n``; and the squared correlation of ``θ_j`` with the
        sign of ``T_j`` equals ``π_n``, so ``τ_n ≥ η_χ² ≥ π_n``. ``ρ_n`` (binary test coordinate) is exact by
        the exponential-tilt search; it exceeds its χ² value, its supremum sits near a vertex.
        """
        n_arr = _check_n(n).astype(np.float64)
        p = self.p_fixed
        q = (1 - p) * np.exp2(1 - n_arr)
        tau, om = p / (p + q), q / (p + q)

        def one(nn):
            log_pt, kern = self._stat_model(nn)
            log_plus = np.logaddexp(kern[:, 2], kern[:, 1] - LN2)   # log P(x̃_test = +1 | T)
            log_minus = np.logaddexp(kern[:, 0], kern[:, 1] - LN2)  # log P(x̃_test = −1 | T), no cancellation
            rho, _ = _sdpi_binary_output(log_pt, log_plus - log_minus)
            return 0.0, 0.0, rho

        return tau, om, _cached_sdpi(self, n_arr.astype(np.int64), one)[2]

    # --- matching learner: subcube + randomized response --------------------------------------------
    def _check_noise(self, eta):
        return check_float("noise", eta, min_value=0.0, max_value=0.5,
                           hint="(the flip probability eta of randomized response)")

    def fit(self, sample: ClusterSample, *, noise: float, seed=0) -> np.ndarray:
        """``M_j`` = common sign of the label-aligned column (flipped w.p. ``η``), 0 where it is mixed; (d,)."""
        eta = self._check_noise(noise)
        rng = as_generator(seed)
        al = sample.aligned
        plus, minus = np.all(al > 0, axis=0), np.all(al < 0, axis=0)
        m = np.where(plus, 1.0, np.where(minus, -1.0, 0.0))
        flips = rng.random(self.d) < eta
        return np.where(flips, -m, m)

    def _sample_learner_output(self, n, eta, theta, rng):
        u = rng.random(theta.shape)
        q = 2.0 ** (-n)
        free_stat = np.where(u < q, 1.0, np.where(u < 2 * q, -1.0, 0.0))
        stat = np.where(theta != 0, theta, free_stat)
        flips = rng.random(theta.shape) < eta
        return np.where(flips, -stat, stat).astype(np.float32)

    def _z_probs(self, n, eta):
        """``(p₊, p₋)`` of ``Z_j = x̃_j M_j`` for a test coordinate."""
        p = self.p_fixed
        q = 2.0 ** (-np.asarray(n, dtype=np.float64))
        eta = np.asarray(eta, dtype=np.float64)
        return p * (1 - eta) + (1 - p) * q, p * eta + (1 - p) * q

    def learner_memorization(self, n, *, noise):
        """Exact ``I(M; X_{1:n} | θ) = d (1 − p) [h(2^{1−n}) + 2^{1−n} (ln 2 − h(η))]`` nats.

        Only free coordinates carry sample information: whether the column agrees (probability ``2^{1−n}``)
        and, if so, its sign (through randomized response).
        """
        n = _check_n(n).astype(np.float64)
        eta = np.asarray(noise, dtype=np.float64)
        q2 = np.exp2(1 - n)
        return self.d * (1 - self.p_fixed) * (binary_entropy(q2) + q2 * (LN2 - binary_entropy(eta)))

    def learner_test_information(self, n, *, noise):
        """Exact ``I(M; X) = d · I(M_j; x̃_j)`` nats, from the 3 × 2 joint table of one coordinate."""
        n_arr = _check_n(n)
        eta = np.broadcast_to(np.asarray(noise, dtype=np.float64), n_arr.shape)
        out = np.empty(n_arr.shape)
        p = self.p_fixed
        for i, (nn, e) in enumerate(zip(n_arr, eta)):
            q = 2.0 ** (-float(nn))
            # rows M ∈ (−1, 0, +1), columns x̃ ∈ (−1, +1)
            joint = np.zeros((3, 2))
            for s in (0, 1):  # fixed at −1 / +1
                joint[2 if s else 0, s] += p / 2 * (1 - e)
                joint[0 if s else 2, s] += p / 2 * e
            for s in (0, 1):  # free: x̃ uniform, M independent of it
                joint[1, s] += (1 - p) * (1 - 2 * q) / 2
                joint[0, s] += (1 - p) * q / 2
                joint[2, s] += (1 - p) * q / 2
            out[i] = self.d * mutual_information(joint)
        return out

    def learner_accuracy(self, n, *, noise):
        """Exact accuracy of ``sign⟨x, M⟩`` from the multinomial law of ``(#Z_j = +1, #Z_j = −1)``."""
        n_arr = _check_n(n)
        pp, pm = self._z_probs(n_arr, noise)
        pp, pm = np.broadcast_arrays(pp, pm)
        return np.array([_binomial_majority_accuracy(self.d, a, b) for a, b in zip(pp, pm)])

    def noise_for_accuracy(self, n, *, accuracy):
        """The flip probability ``η`` giving exactly ``accuracy``; NaN where even ``η = 0`` falls short."""
        accuracy = _check_accuracy(accuracy)
        n_arr = _check_n(n)
        out = np.full(n_arr.shape, np.nan)
        for i, nn in enumerate(n_arr):
            f = lambda e, nn=nn: float(self.learner_accuracy(nn, noise=e)[0]) - accuracy  # noqa: E731
            if f(0.0) > 0:
                out[i] = optimize.brentq(f, 0.0, 0.5, xtol=1e-14)
        return out

    def store_all_memorization(self, n):
        """Storing the raw sample: ``H(X_{1:n} | θ) = n (d (1 − p) ln 2 + ln 2)`` nats (labels included)."""
        n = _check_n(n).astype(np.float64)
        return n * (self.d * (1 - self.p_fixed) * LN2 + LN2)


_PROBLEMS = (GaussianClustering, BooleanClustering, SparseHypercube)


def _check_problem(problem):
    if not isinstance(problem, _PROBLEMS):
        raise MemlensInputError("problem must be a GaussianClustering, BooleanClustering or SparseHypercube; "
                                f"got {type(problem).__name__}")
    return problem


@dataclass(frozen=True)
class SDPIConstants:
    """SDPI constants of a problem over a grid of sample sizes (each array has shape ``(len(n),)``).

    ``tau``: constant of ``(θ, X_{1:n})``; ``one_minus_tau``: ``1 − τ_n`` computed directly (precise when
    ``τ_n`` is within ``1e-16`` of 1); ``rho``: constant of ``(X, X_{1:n})`` for a fresh test example.
    """

    problem: str
    n: np.ndarray
    tau: np.ndarray
    one_minus_tau: np.ndarray
    rho: np.ndarray

    @property
    def factor(self) -> np.ndarray:
        """``(1 − τ_n)/ρ_n``, the multiplier of ``I(M; X)`` in the FKL bound."""
        return self.one_minus_tau / self.rho


def sdpi_constants(problem, n) -> SDPIConstants:
    """SDPI constants ``τ_n, ρ_n`` of ``problem`` for each sample size in ``n`` (int or array)."""
    problem = _check_problem(problem)
    n = _check_n(n)
    tau, om, rho = problem.sdpi(n)
    return SDPIConstants(problem=problem.name, n=n, tau=np.asarray(tau), one_minus_tau=np.asarray(om),
                         rho=np.asarray(rho))
