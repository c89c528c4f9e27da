"""The numerics of strong data processing inequalities: binary entropy and KL terms to full relative precision,
maximal correlation, mutual information, and the SDPI constant of a finite pair (exponential tilts for a binary
side, a pattern search for the general case). Every information quantity is in nats.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy.special import expit, log_expit, xlogy

from ..._math import binary_entropy as _binary_entropy
from ..._random import as_generator
from ..._validation import MemlensInputError, check_array

__all__ = ["LN2", "binary_entropy", "logsumexp", "maximal_correlation_squared", "mutual_information", "sdpi_constant"]


LN2 = math.log(2.0)


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
