"""Feldman–Kornowski–Lyu: memorization/sample trade-offs via strong data processing inequalities.

Feldman, Kornowski, Lyu, *Trade-offs in Data Memorization via Strong Data Processing Inequalities*,
COLT 2025 (arXiv:2506.01855).

**Setting** (paper Sec. 2): a parameter ``θ ~ Ψ``, training data ``X_{1:n} ~ P_θ^n``, a fresh test example
``X ~ P_θ``, an algorithm's output ``M = A(X_{1:n})``. The *excess data memorization* is

    mem_n(A, P) = I(M; X_{1:n} | θ),

the information ``M`` keeps about the particular sample beyond what the distribution explains.

**Main reduction** (paper Thm 3.7): if ``(θ, X_{1:n})`` satisfies a ``τ_n``-SDPI and ``(X, X_{1:n})`` a
``ρ_n``-SDPI (a pair ``(A, B)`` satisfies a ``ρ``-SDPI when ``I(M; A) ≤ ρ I(M; B)`` for every ``M`` with
``A — B — M``), then for every algorithm

    mem_n(A, P) ≥ ((1 − τ_n) / ρ_n) · I(M; X)  − neg_n.

With exact SDPIs (the case implemented by the problems below) ``neg_n = 0``: ``M ⊥ θ | X_{1:n}`` gives
``I(M; X_{1:n} | θ) = I(M; X_{1:n}) − I(M; θ) ≥ (1 − τ_n) I(M; X_{1:n}) ≥ ((1 − τ_n)/ρ_n) I(M; X)``.

**What is an interpretation.** The paper's exact parametrizations of its three applications were not
available when this module was written. The three problems below are the instantiations of
``spec/seeds.md`` §3.4, which are *derived for this project and are not quotes of the paper*:

- :class:`GaussianClustering` — ``θ ~ N(0, I_d)``, ``y ~ Unif{±1}``, ``x | θ, y ~ N(y r θ, (1 − r²) I_d)``;
  matching learner: the noisy mean ``M = (1/n) Σ y_i x_i + N(0, q² I_d)`` with ``ŷ = sign⟨x, M⟩``.
- :class:`BooleanClustering` — ``θ ~ Unif{±1}^d``; each coordinate of the label-aligned example ``y x``
  equals ``θ_j`` with probability ``(1 + r)/2``; matching learner: the coordinate-wise majority vote
  passed through randomized response (each bit flipped with probability ``η``).
- :class:`SparseHypercube` — a Brown et al.-style subcube: each coordinate is *fixed* with probability
  ``p_fixed`` (independently; ``|F| ≈ p_fixed·d``) to a uniform sign, the label-aligned example is uniform
  on the subcube; matching learner: the subcube learner (coordinates on which all label-aligned training
  examples agree, their values passed through randomized response with flip probability ``η``).

Calibrations ``r² = c/√d`` (and ``p_fixed = c/√d``) make one example enough for constant accuracy
(``.calibrated(d, c=...)``). Every parameter stays open.

**The accuracy link** (derived). In all three problems the label is independent of the unlabeled point
(``x`` is marginally symmetric), so ``H(y | x) = ln 2`` and, by the chain rule and Fano's inequality, any
predictor ``ŷ = f(M, x, noise)`` with accuracy ``α ≥ 1/2`` has ``I(M; X) ≥ I(M; y | x) ≥ ln 2 − h(α)``
(:func:`accuracy_information`). The lower bound reported here is ``((1 − τ_n)/ρ_n)(ln 2 − h(α))``.

**SDPI constants.** All three problems are products of ``d`` i.i.d. coordinate pairs, so the constants
tensorize (the per-coordinate value, not ``d`` times it). Gaussian: closed forms (squared maximal
correlations). Boolean and subcube: the mutual-information SDPI constant equals the KL contraction
coefficient ``η_KL(P_B, P_{A|B}) = sup_Q D(Q_A‖P_A)/D(Q_B‖P_B)`` (Anantharam et al. 2013; Polyanskiy–Wu),
computed exactly on the per-coordinate sufficient statistic. For a binary ``A`` the supremum is over the
one-parameter family of exponential tilts (the I-projection onto ``{Q: Q_A = q}``), a 1-D search; ``1 − τ``
is computed directly from the chain rule ``D(Q_B‖P_B) − D(Q_A‖P_A) = D(Q_{B|A}‖P_{B|A} | Q_A)`` so that it
keeps full relative precision when it is ``10⁻³⁰``. For a ternary ``A`` (the subcube's ``τ_n``) the
supremum has a closed form (see :meth:`SparseHypercube.sdpi`); :func:`sdpi_constant` also offers a numerical
maximization over ``Q_B`` for any small finite pair, which the tests check against that closed form.

Units: every information quantity is in **nats** unless the name says ``bits`` (divide by ``ln 2``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats
from scipy.special import expit, log_expit, xlogy

from .._math import binary_entropy as _binary_entropy
from .._random import as_generator
from .._validation import MemlensInputError, check_array, check_float, check_int, warn

__all__ = [
    # information-theoretic helpers
    "LN2",
    "binary_entropy",
    "accuracy_information",
    "fkl_lower_bound",
    "sdpi_constant",
    "maximal_correlation_squared",
    "mutual_information",
    # problems
    "ClusterSample",
    "GaussianClustering",
    "BooleanClustering",
    "SparseHypercube",
    # curves and mixtures
    "SDPIConstants",
    "sdpi_constants",
    "TradeoffCurve",
    "tradeoff_curve",
    "loglog_slope",
    "MixtureBound",
    "sample_cluster_counts",
    "mixture_lower_bound",
    "expected_mixture_lower_bound",
]

LN2 = math.log(2.0)


# ---------------------------------------------------------------------------------------------------------
# numerically careful primitives
# ---------------------------------------------------------------------------------------------------------

def binary_entropy(p):
    """Binary entropy ``h(p) = −p ln p − (1 − p) ln(1 − p)`` in nats (``h(0) = h(1) = 0``); array in, array out."""
    return _binary_entropy(p, base=np.e)


def _entropy_increment(eta, delta):
    """``h(eta + delta) − h(eta)`` to full relative precision for tiny ``delta`` (nats, ``0 ≤ eta < 1``)."""
    eta = np.asarray(eta, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    e = eta + delta
    with np.errstate(divide="ignore", invalid="ignore"):
        # −η log1p(δ/η) − (1−η) log1p(−δ/(1−η)) + δ ln((1−η−δ)/(η+δ))
        a = np.where(eta > 0, -eta * np.log1p(delta / np.where(eta > 0, eta, 1.0)), 0.0)
        b = -(1.0 - eta) * np.log1p(-delta / (1.0 - eta))
        c = xlogy(delta, 1.0 - e) - xlogy(delta, e)
        direct = binary_entropy(e) - binary_entropy(eta)
    careful = a + b + c
    return np.where(np.abs(delta) < 1e-6, careful, direct)


def logsumexp(x, axis=-1):
    """``log Σ exp(x)`` along ``axis`` (plain numpy; ``-inf`` entries allowed)."""
    x = np.asarray(x, dtype=np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    out = np.squeeze(out, axis=axis)
    return float(out) if out.ndim == 0 else out


def _expm1_series_ok(x):
    return np.abs(x) < 1e-2


def _phi_exp(u):
    """``φ(e^u) = e^u (u − 1) + 1 ≥ 0`` (the integrand of KL in the form ``E_P[φ(Q/P)]``), precise near 0."""
    u = np.asarray(u, dtype=np.float64)
    small = _expm1_series_ok(u)
    us = np.where(small, u, 0.0)
    # Σ_{k≥2} (k−1) u^k / k!
    series = us * us * (1 / 2 + us * (1 / 3 + us * (1 / 8 + us * (1 / 30 + us * (1 / 144 + us / 840)))))
    with np.errstate(over="ignore", invalid="ignore"):
        big = np.exp(np.where(small, 0.0, u)) * (u - 1.0) + 1.0
    return np.where(small, series, big)


def _kl_terms(log_w, u):
    """``Σ_b w_b φ(e^{u_b}) = D(Q‖P)`` for ``P = w`` (m,) and ``log(Q/P) = u`` (..., m); zero weights skipped.

    Returns an array of the leading shape of ``u`` (a float for 1-d ``u``).
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    keep = np.isfinite(log_w)
    lw, uu = log_w[keep], u[..., keep]
    small = _expm1_series_ok(uu)
    with np.errstate(over="ignore", invalid="ignore"):
        # small |u|: w φ(e^u) by its series; otherwise w e^u (u − 1) + w with w e^u = exp(log w + u) <= 1
        big_terms = np.exp(lw + np.where(small, 0.0, uu)) * (uu - 1.0) + np.exp(lw)
    terms = np.where(small, np.exp(lw) * _phi_exp(np.where(small, uu, 0.0)), big_terms)
    out = np.maximum(np.sum(terms, axis=-1), 0.0)
    return float(out) if out.ndim == 0 else out


def _log_expectation_exp(log_w, t):
    """``log E_w[e^t]`` for normalized log-weights ``w`` (m,) and exponents ``t`` (..., m).

    Precise when ``t`` is tiny where the mass is (``log1p(E[e^t − 1])``), else a log-sum-exp.
    """
    log_w = np.asarray(log_w, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    keep = np.isfinite(log_w)
    lw, tt = log_w[keep], t[..., keep]
    if lw.size == 0:
        return np.zeros(t.shape[:-1]) if t.ndim > 1 else 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        mean_expm1 = np.expm1(np.minimum(tt, 30.0)) @ np.exp(lw)
    use_log1p = (np.max(tt, axis=-1) <= 30.0) & (mean_expm1 > -0.5)
    out = np.where(use_log1p, np.log1p(np.where(use_log1p, mean_expm1, 0.0)), logsumexp(lw + tt, axis=-1))
    return float(out) if out.ndim == 0 else out


def _kl_of_tilt(log_w, t):
    """``D(Q‖P)`` for ``P = w`` (m,) and the tilts ``Q ∝ P e^t`` (t: (..., m))."""
    t = np.asarray(t, dtype=np.float64)
    return _kl_terms(log_w, t - np.expand_dims(_log_expectation_exp(log_w, t), -1))


def _log_normalize(x, axis=0):
    """``x − logsumexp(x)`` along ``axis`` keeping full precision at the largest entry (``−log1p(rest)``)."""
    x = np.asarray(x, dtype=np.float64)
    x_moved = np.moveaxis(x, axis, 0)
    m = np.max(x_moved, axis=0)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    shifted = x_moved - m_safe
    arg = np.argmax(x_moved, axis=0)
    e = np.exp(shifted)
    onehot = np.arange(x_moved.shape[0]).reshape((-1,) + (1,) * (x_moved.ndim - 1)) == arg
    rest = np.sum(np.where(onehot, 0.0, e), axis=0)
    out = shifted - np.log1p(rest)
    return np.moveaxis(out, 0, axis)


def _binary_kl(q, p):
    """``d(q‖p)`` in nats for Bernoulli parameters."""
    return float(xlogy(q, q) - xlogy(q, p) + xlogy(1 - q, 1 - q) - xlogy(1 - q, 1 - p))


# ---------------------------------------------------------------------------------------------------------
# SDPI constants of finite pairs
# ---------------------------------------------------------------------------------------------------------

def maximal_correlation_squared(joint) -> float:
    """Squared Hirschfeld–Gebelein–Rényi maximal correlation of a finite joint pmf ``joint (m, k)``.

    It equals the χ²-contraction coefficient ``η_χ²`` and lower-bounds the KL/mutual-information SDPI
    constant (:func:`sdpi_constant`); the two coincide for jointly Gaussian pairs and for the binary
    symmetric channel with uniform input. Computed as the second singular value of
    ``diag(p_B)^{-1/2} · joint · diag(p_A)^{-1/2}``.
    """
    joint = check_array("joint", joint, ndim=2)
    if np.any(joint < 0) or not np.isclose(joint.sum(), 1.0):
        raise MemlensInputError("joint must be a probability table (non-negative, summing to 1); "
                                f"got total {joint.sum():.6g} and minimum {joint.min():.3g}")
    pb, pa = joint.sum(axis=1), joint.sum(axis=0)
    joint = joint[pb > 0][:, pa > 0]
    pb, pa = pb[pb > 0], pa[pa > 0]
    mat = joint / np.sqrt(pb)[:, None] / np.sqrt(pa)[None, :]
    sv = np.linalg.svd(mat, compute_uv=False)
    return float(sv[1] ** 2) if sv.size > 1 else 0.0


def mutual_information(joint) -> float:
    """Mutual information (nats) of a finite joint pmf ``joint (m, k)``."""
    joint = np.asarray(joint, dtype=np.float64)
    pb, pa = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(xlogy(joint, joint) - xlogy(joint, pb * pa)))


def _tilt_terms(log_pb, log_pb_given_a, log_pa, v_branch, v_b):
    """SDPI ratio terms for tilts ``Q_B ∝ P_B e^{v_b}``, batched over leading axes.

    ``v_b`` has shape (..., m); ``v_branch`` (..., m, k) equals ``v_b`` up to an additive constant per
    branch ``a`` (chosen so that it is represented precisely where ``P_{B|A=a}`` puts its mass).
    Returns ``(D(Q_A‖P_A), E_{Q_A} D(Q_{B|A}‖P_{B|A}), D(Q_B‖P_B))``, each of the leading shape.
    """
    v_b = np.asarray(v_b, dtype=np.float64)
    den = np.asarray(_kl_of_tilt(log_pb, v_b))
    log_ez = np.asarray(_log_expectation_exp(log_pb, v_b))
    k = log_pa.size
    lead = v_b.shape[:-1]
    log_qa = np.full(lead + (k,), -np.inf)
    num_a = np.zeros(lead + (k,))
    for a in range(k):
        if not np.isfinite(log_pa[a]):
            continue
        va = v_branch[..., a]
        log_ez_a = _log_expectation_exp(log_pb_given_a[:, a], va)
        shift = np.mean(v_b - va, axis=-1)
        log_qa[..., a] = log_pa[a] + (log_ez_a + shift) - log_ez
        num_a[..., a] = _kl_of_tilt(log_pb_given_a[:, a], va)
    log_qa = _log_normalize(log_qa, axis=-1)
    finite = np.isfinite(log_pa)
    d_a = np.asarray(_kl_terms(log_pa[finite], (log_qa - np.where(finite, log_pa, 0.0))[..., finite]))
    num = np.sum(np.exp(log_qa) * num_a, axis=-1)
    return d_a, num, den


def _prepare_pair(log_pb, log_kernel):
    log_pb = np.asarray(log_pb, dtype=np.float64)
    log_kernel = np.asarray(log_kernel, dtype=np.float64)
    keep = np.isfinite(log_pb)
    log_pb = _log_normalize(log_pb[keep])
    log_kernel = _log_normalize(log_kernel[keep], axis=1)
    log_joint = log_pb[:, None] + log_kernel
    with np.errstate(divide="ignore"):
        log_pa = np.array([logsumexp(log_joint[:, a]) if np.any(np.isfinite(log_joint[:, a])) else -np.inf
                           for a in range(log_joint.shape[1])])
    log_pb_given_a = np.full_like(log_joint, -np.inf)
    for a in range(log_joint.shape[1]):
        if np.isfinite(log_pa[a]):
            log_pb_given_a[:, a] = _log_normalize(log_joint[:, a])
    return log_pb, log_kernel, log_pa, log_pb_given_a


def _pattern_search(fun, x0, *, width=1.0, points=5, max_iter=400, tol=1e-9):
    """Minimize a batched function of a low-dimensional point by a grid pattern search (no gradients).

    Each step evaluates a ``points``-per-axis grid of half-width ``width`` around the current point, moves
    to the best candidate (doubling the width when it lies on the grid's edge), and halves the width when
    no candidate improves; it stops when the width falls below ``tol``.
    """
    x = np.asarray(x0, dtype=np.float64)
    dim = x.size
    offsets = np.linspace(-1.0, 1.0, points)
    mesh = np.stack(np.meshgrid(*([offsets] * dim), indexing="ij"), axis=-1).reshape(-1, dim)
    edge = np.any(np.abs(mesh) == 1.0, axis=1)
    best = float(fun(x[None, :])[0])
    for _ in range(max_iter):
        if width < tol:
            break
        cand = x + width * mesh
        vals = fun(cand)
        j = int(np.argmin(vals))
        if vals[j] < best:
            x, best = cand[j], float(vals[j])
            if edge[j]:
                width *= 2.0
        else:
            width *= 0.5
    return x, best


def _sdpi_binary_output(log_pb, logit_a, *, grid=None):
    """Exact SDPI constant of ``(A, B)`` with binary ``A``: sup over exponential tilts of ``P_B`` by ``g``.

    ``logit_a[b] = log P(A=1|B=b) − log P(A=0|B=b)``. Returns ``(eta, one_minus_eta)``.
    """
    logit_a = np.asarray(logit_a, dtype=np.float64)
    keep = np.isfinite(np.asarray(log_pb, dtype=np.float64))
    logit_a = logit_a[keep]
    log_kernel = np.stack([log_expit(-logit_a), log_expit(logit_a)], axis=1)  # columns: A=0, A=1
    log_pb, log_kernel, log_pa, log_pbga = _prepare_pair(np.asarray(log_pb)[keep], log_kernel)
    g1, g0 = expit(logit_a), expit(-logit_a)  # P(A=1|b), P(A=0|b) = 1 − g1, both precise
    pb = np.exp(log_pb)
    pa1 = float(np.exp(log_pa[1]))
    if not (0.0 < pa1 < 1.0) or np.ptp(g1) == 0.0:
        return 0.0, 1.0
    # λ → 0 limit: η_χ² = Var(g)/Var(A), and 1 − η_χ² = E[g(1 − g)]/Var(A) computed without cancellation
    var_a = pa1 * (1 - pa1)
    chi2 = min(float(pb @ (g1 - pb @ g1) ** 2) / var_a, 1.0)
    best = (min(float(pb @ (g1 * g0)) / var_a, 1.0), chi2, 0.0)  # (one_minus, ratio, lam)

    def terms(lam):
        lam = np.atleast_1d(np.asarray(lam, dtype=np.float64))[:, None]
        v_b = lam * (g1 - pb @ g1)
        # branch A=1 is tilted by −λ(1−g) (precise where g ≈ 1); branch A=0 by λ g (precise where g ≈ 0)
        v_branch = np.stack([lam * g1, -lam * g0], axis=-1)
        d_a, num, den = _tilt_terms(log_pb, log_pbga, log_pa, v_branch, v_b)
        ok = den > 0
        return np.where(ok, num / np.where(ok, den, 1.0), 1.0), np.where(ok, d_a / np.where(ok, den, 1.0), 0.0)

    # λ → ±∞ limits: Q_B = P_B restricted to the arg max / arg min of g
    for sel in (g1 >= g1.max() * (1 - 1e-15), g1 <= g1.min() * (1 + 1e-15) + 1e-300):
        d_b = -float(logsumexp(log_pb[sel]))
        if d_b > 0:
            q1 = float(np.exp(logsumexp(log_pb[sel] + log_expit(logit_a[sel])) + d_b))
            rat = _binary_kl(q1, pa1) / d_b
            if 1.0 - rat < best[0]:
                best = (1.0 - rat, rat, np.inf)
    grid = np.concatenate([-np.logspace(-2, 4, 49)[::-1], np.logspace(-2, 4, 49)]) if grid is None else grid
    om, rat = terms(grid)
    i = int(np.argmin(om))
    if om[i] < best[0]:
        best = (float(om[i]), float(rat[i]), float(grid[i]))
    # refine in log|λ| around the best grid point (batched pattern search)
    if best[2] != 0.0 and np.isfinite(best[2]):
        sgn = np.sign(best[2])

        def obj(z):
            o, _ = terms(sgn * np.exp(z[:, 0]))
            return np.log(np.maximum(o, 1e-300))

        z, _ = _pattern_search(obj, np.array([np.log(abs(best[2]))]), width=0.15, points=9, tol=1e-7)
        o, r_ = terms(sgn * np.exp(z))
        if o[0] < best[0]:
            best = (float(o[0]), float(r_[0]), float(sgn * np.exp(z[0])))
    one_minus = float(best[0])
    eta = float(1.0 - one_minus) if one_minus < 0.5 else float(best[1])
    return eta, one_minus


def _sdpi_general(log_pb, log_kernel, *, n_starts=2, seed=0):
    """SDPI constant of a finite pair by numerical optimization over ``Q_B`` (log-tilts ``v`` of ``P_B``)."""
    log_pb, log_kernel, log_pa, log_pbga = _prepare_pair(log_pb, log_kernel)
    m = log_pb.size
    if m == 1:
        return 0.0, 1.0
    joint = np.exp(log_pb[:, None] + log_kernel)
    chi2 = maximal_correlation_squared(joint / joint.sum())
    best = [1.0 - chi2, np.zeros(m)]  # λ → 0 limit (imprecise only when η is within ~1e-8 of 1)
    # vertex limits Q_B → δ_b: 1 − ratio → Σ_a P(a|b) (−log P(b|a)) / (−log P(b))
    for b in range(m):
        ka = np.exp(log_kernel[b])
        fin = ka > 0
        val = float(ka[fin] @ (-log_pbga[b, fin])) / float(-log_pb[b])
        if val < best[0]:
            best = [val, None]

    def one_minus(vfree):
        vfree = np.atleast_2d(vfree)
        v = np.concatenate([np.zeros((vfree.shape[0], 1)), vfree], axis=1)
        v_b = v - (v @ np.exp(log_pb))[:, None]
        v_branch = np.repeat(v_b[:, :, None], log_pa.size, axis=2)
        _, num, den = _tilt_terms(log_pb, log_pbga, log_pa, v_branch, v_b)
        ok = den > 0
        return np.where(ok, num / np.where(ok, den, 1.0), 1.0)

    axis = np.concatenate([-np.logspace(-1.5, 1.7, 12)[::-1], np.logspace(-1.5, 1.7, 12)])
    if m <= 3:
        grid = np.stack(np.meshgrid(*([axis] * (m - 1)), indexing="ij"), axis=-1).reshape(-1, m - 1)
    else:
        grid = as_generator(seed).normal(scale=3.0, size=(4000, m - 1))
    vals = one_minus(grid)
    starts = [grid[i] for i in np.argsort(vals)[:n_starts]]
    for v0 in starts:
        if m <= 3:
            x, val = _pattern_search(one_minus, v0, width=0.5, tol=1e-7)
        else:
            res = optimize.minimize(lambda z: float(np.log(max(one_minus(z)[0], 1e-300))), v0,
                                    method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 2000})
            x, val = res.x, float(one_minus(res.x)[0])
        if val < best[0]:
            best = [val, x]
    om = float(best[0])
    return 1.0 - om, om


def sdpi_constant(p_b, kernel, *, return_one_minus=False):
    """Mutual-information SDPI constant of a finite pair ``(A, B)``.

    The smallest ``η`` with ``I(M; A) ≤ η I(M; B)`` for every ``M`` with ``A — B — M``; it equals the KL
    contraction coefficient ``η_KL(P_B, P_{A|B}) = sup_{Q_B} D(Q_A‖P_A) / D(Q_B‖P_B)``
    (Anantharam, Gohari, Kamath, Nair 2013). Feldman–Kornowski–Lyu (2025) Def. 3.3 uses it as the ``ρ`` of
    a ``ρ``-SDPI.

    Parameters
    ----------
    p_b : array (m,)
        Distribution of ``B`` (zero entries are dropped).
    kernel : array (m, k)
        ``kernel[b, a] = P(A = a | B = b)``; rows sum to 1.
    return_one_minus : bool
        Also return ``1 − η`` computed directly (precise when ``η`` is within ``1e-16`` of 1).

    Returns
    -------
    float, or (float, float)
        ``η`` (and ``1 − η``). For binary ``A`` the value is exact (1-D search over the exponential tilts,
        which attain the supremum); otherwise it is a numerical maximization over ``Q_B`` with multiple
        starts, intended for small ``m`` (<= 10).
    """
    p_b = check_array("p_b", p_b, ndim=1)
    kernel = check_array("kernel", kernel, ndim=2)
    if kernel.shape[0] != p_b.size:
        raise MemlensInputError(f"kernel must have one row per value of B ({p_b.size}); got shape {kernel.shape}")
    if np.any(p_b < 0) or not np.isclose(p_b.sum(), 1.0):
        raise MemlensInputError(f"p_b must be a probability vector; got total {p_b.sum():.6g}")
    if np.any(kernel < 0) or not np.allclose(kernel.sum(axis=1), 1.0):
        raise MemlensInputError("kernel rows must be probability vectors P(A | B = b) summing to 1")
    with np.errstate(divide="ignore"):
        log_pb, log_k = np.log(p_b), np.log(kernel)
    if kernel.shape[1] == 2:
        eta, om = _sdpi_binary_output(log_pb, log_k[:, 1] - log_k[:, 0])
    else:
        eta, om = _sdpi_general(log_pb, log_k)
    return (eta, om) if return_one_minus else eta


# ---------------------------------------------------------------------------------------------------------
# the reduction
# ---------------------------------------------------------------------------------------------------------

def accuracy_information(accuracy):
    """Information (nats) about the test example that a predictor of accuracy ``α`` must carry.

    ``I(M; X) ≥ I(M; y | x) = H(y | x) − H(y | x, M) ≥ ln 2 − h(α)`` when ``y`` is a fair coin independent
    of ``x`` (true for all three problems here) and ``α ≥ 1/2`` (Fano's inequality for a binary label).
    Derived for this project (spec/seeds.md §3.2, "link to accuracy"); 0 for ``α ≤ 1/2``.
    """
    a = np.asarray(accuracy, dtype=np.float64)
    return np.where(a > 0.5, LN2 - binary_entropy(np.clip(a, 0.0, 1.0)), 0.0)


def fkl_lower_bound(info_test, *, tau, rho, one_minus_tau=None, delta=0.0, eps=0.0, log_range=None):
    """Lower bound of Feldman–Kornowski–Lyu Thm 3.7 on excess memorization ``I(M; X_{1:n} | θ)`` (nats).

    ``((1 − τ_n)/ρ_n) · I(M; X) − neg_n`` with
    ``neg_n = 8 δ ((1 − τ_n)/ρ_n) log(|𝓜|/δ) + 8 ε log(|𝓜|/ε)`` for a ``(τ_n, ε)``-SDPI of
    ``(θ, X_{1:n})`` and a ``(ρ_n, δ)``-SDPI of ``(X, X_{1:n})``. The last term of ``neg_n`` is truncated in
    the available source and completed by symmetry (spec §3.2, derived). With exact SDPIs
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


# ---------------------------------------------------------------------------------------------------------
# problems
# ---------------------------------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class GaussianClustering(_ClusterProblem):
    """Gaussian clustering (spec/seeds.md §3.4 (G); an interpretation of FKL App. B, derived).

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

    def __post_init__(self):
        object.__setattr__(self, "d", check_int("d", self.d, min_value=1))
        object.__setattr__(self, "r", check_float("r", self.r, min_value=0.0, max_value=1.0, min_inclusive=False,
                                                  max_inclusive=False, hint="(a correlation)"))

    @classmethod
    def calibrated(cls, d: int, *, c: float = 1.0) -> "GaussianClustering":
        """``r² = c/√d``: one example gives constant accuracy (≈ Φ(c) for large d)."""
        d = check_int("d", d, min_value=1)
        c = check_float("c", c, min_value=0.0, min_inclusive=False)
        r2 = c / math.sqrt(d)
        if r2 >= 1:
            raise MemlensInputError(f"c must be < sqrt(d) = {math.sqrt(d):.3g} so that r² = c/√d < 1; got {c}")
        return cls(d=d, r=math.sqrt(r2))

    @property
    def params(self) -> dict:
        return {"d": self.d, "r": self.r, "r2": self.r ** 2}

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

        Squared maximal correlations of ``(θ_j, x̄_j)`` and ``(x̃_j, x̄_j)`` (spec §3.4 (G)); for jointly
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
class BooleanClustering(_ClusterProblem):
    """Boolean clustering (spec/seeds.md §3.4 (B); an interpretation of FKL App. C, derived).

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

    def __post_init__(self):
        object.__setattr__(self, "d", check_int("d", self.d, min_value=1))
        object.__setattr__(self, "r", check_float("r", self.r, min_value=0.0, max_value=1.0, min_inclusive=False,
                                                  max_inclusive=False, hint="(a correlation)"))

    @classmethod
    def calibrated(cls, d: int, *, c: float = 1.0) -> "BooleanClustering":
        """``r² = c/√d``: one example gives constant accuracy."""
        g = GaussianClustering.calibrated(d, c=c)
        return cls(d=g.d, r=g.r)

    @property
    def params(self) -> dict:
        return {"d": self.d, "r": self.r, "r2": self.r ** 2}

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
    """Sparse Boolean hypercube / subcube (spec/seeds.md §3.4 (S); an interpretation of FKL App. D, derived).

    ``θ_j ∈ {−1, 0, +1}`` independently: *fixed* (``±1``, each with probability ``p_fixed/2``) or *free*
    (0, probability ``1 − p_fixed``), so ``|F| ~ Bin(d, p_fixed)``. The label-aligned example ``x̃ = y x`` has
    ``x̃_j = θ_j`` on fixed coordinates and a uniform sign on free ones. (Brown et al.'s subcube with
    independent fixing; the paper's exact sparse problem — possibly ``|F| = k`` exactly — was not
    available, spec §3.4.)

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


# ---------------------------------------------------------------------------------------------------------
# curves
# ---------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------
# mixtures of clusters (FKL Sec. 5, derived interpretation)
# ---------------------------------------------------------------------------------------------------------

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

    Derived (spec §3.4, "Mixtures"; FKL Sec. 5 states such an extension): with independent cluster
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
