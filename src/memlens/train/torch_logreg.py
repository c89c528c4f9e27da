"""Many L2 logistic regressions at once: batched, preconditioned L-BFGS over stacked parameters (torch).

All models of a block share the data matrix ``X``; model ``k`` sees example ``i`` through a per-example weight
``w[k, i]`` (1 = IN, 0 = OUT), so one function evaluation for every model is two shared GEMMs,
``X @ [W_1 .. W_K]`` and ``X^T @ G``, evaluated over row chunks so that the ``(rows, classes, models)``
intermediate stays in cache (spec/performance.md §2.3). A weight of 0 removes the example from the objective
exactly.

Each model minimizes scikit-learn's objective (``LogisticRegression(C=C)``, lbfgs, multinomial)::

    C * sum_i w_ki * CE(y_i, softmax(W_k^T x_i + b_k)) + 0.5 * ||W_k||^2        (b_k unpenalized)

in the normalized form ``F_k = (1/n_k) sum_i w_ki CE_i + ||W_k||^2 / (2 C n_k)``, ``n_k = sum_i w_ki`` (the
scaling of scikit-learn's ``LinearModelLoss``; the minimizer is unchanged). With two classes the binary
parametrization is used (class 0 has logit 0, one weight vector): scikit-learn's binary model.

Optimizer: L-BFGS (Nocedal & Wright 2006, Alg. 7.4-7.5, two-loop recursion) vectorized over the model axis.
Every model keeps its own curvature pairs and takes its own Armijo backtracking step; converged models
(``max |grad F_k| <= tol``) leave the active set. The initial inverse Hessian of the recursion is a
Kronecker-factored approximation of each model's Hessian, ``H_k ~ Sigma (x) A_k + lambda_k I`` with
``Sigma`` the curvature-weighted feature second moment (shared by the block), ``A_k = mean_{i in S_k}
(diag p_i - p_i p_i^T)`` and ``lambda_k = 1 / (C n_k)`` (a Kronecker factorization in the spirit of K-FAC,
Martens & Grosse 2015). As ``Sigma`` is shared, a model's iterates depend slightly on its block mates; its
solution does not, up to ``tol``. The preconditioner is refreshed every few iterations and cuts the
iteration count 1.1-2.7x against the same L-BFGS without it (measured at tol 1e-6: digits 80 -> 51 at
C = 1, breast-cancer 89 -> 33 at C = 100; scikit-learn's L-BFGS-B needs 3,359 iterations where this solver
needs ~600 on a 10,000-image Fashion-MNIST subset). Iterations run in
float32 until ``max |grad F_k| <= max(tol, 1e-6)`` (or until float32 stops making progress: no halving of the
best gradient in 20 iterations) and in float64 after that, which re-evaluates the gradient and certifies
``tol``: memorization scores need tight convergence (spec/performance.md §2.3), which float32 alone cannot
certify. Running float32 down to 1e-6 instead of 1e-4 leaves the iteration count unchanged and cut the time
per fit 1.6x on digits, 2x on breast cancer and 2.3x on a 3,000-image Fashion-MNIST subset (measured side by
side, tol 1e-6): the float64 phase then needs only a few evaluations.

``preconditioner="full-hessian"`` replaces the per-model Kronecker factorization by one matrix shared by the
whole population: the inverse of the exact Hessian of the full-data objective (every row at the population's
mean weight ``rho``, so its penalty is a model's) at the full-data model, and starts every model there. A model
trained on a random ``rho``-subset has, row for row, an unbiased estimate of that Hessian, so the shared matrix is
nearly each model's own Newton step; unlike a block-mean or a sampled Hessian it keeps the curvature of every
rare example, which is where a subset model differs from the full one. Measured (1 thread, tol 1e-6, all 60,000
Fashion-MNIST rows, C = 0.01, K = 8): 29 L-BFGS iterations per model against 274 with the Kronecker
factorization, 16 against 226 CPU s for the block, after a one-off 110 CPU s for the full-data fit, the
``n_out (n_out + 1) / 2 = 55`` Hessian GEMMs and the Cholesky inverse (cached per process and data set: every
later block reuses them). The Hessian must come from every row: built from 16,384 sampled rows it gave 87
iterations, and taken at the full-data fit's ``max |grad| <= 1e-3`` point instead of ``1e-4``, 43. Digits
(K = 256, C = 1): 15 iterations against 49, 0.9 against 2.9 CPU s. The optimum, the ``tol`` test and the float64
certification are unchanged.

``solver="newton-cg"`` (:func:`_newton_cg`) replaces the L-BFGS direction by a truncated Newton step: per-model
preconditioned CG on the exact Hessian, whose products for all models still in CG are two shared GEMMs
(``X V`` then ``X^T (...)``), stopped by the Eisenstat-Walker forcing term; the same Armijo search, convergence
test, removal of converged models and float32 -> float64 certification. Preconditioner: the block's mean exact
Hessian (Cholesky, shared by the block) for at most 2,048 parameters per model, the Kronecker factorization above
for more. Measured (1 thread, tol 1e-6, digits, K = 256): 8.2 Newton iterations and 40 Hessian-vector products per
model against 49 L-BFGS iterations, the same CPU time (2.70 s vs 2.81 s), memorization r vs a tol-1e-8
scikit-learn reference 1.0000000 vs 0.9999978. It does not pay on ill-conditioned data: on a 10,000-row
Fashion-MNIST subset (K = 8, tol 1e-6, Kronecker preconditioner) it needed 20.5 Newton iterations but 1,394
Hessian-vector products per model against 552 L-BFGS iterations, 64 against 14 CPU s per model (4.5x slower);
with the mean-Hessian preconditioner (7,850 parameters, refreshes of ~8 s each) the same run had not finished
after 15 minutes. L-BFGS stays the default.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import MemlensInputError, check_array, check_float, check_int, check_labels

__all__ = ["LogisticFit", "fit_logistic", "logistic_logits", "full_hessian_start", "SHARED_HESSIAN_MAX_PARAMS"]

_ARMIJO_C1 = 1e-4
_MAX_BACKTRACK = 40
# Target size (elements) of one (rows, classes, models) chunk of the forward pass. Measured (1 thread, one
# evaluation of 256 models on 60,000 x 785 rows): 2^17 -> 65, 2^20 -> 77 GFLOP/s (the chunk's GEMM re-reads the
# (d + 1) x (n_out k) weights once per chunk, 8 MB here); digits shapes unchanged (21-24 GFLOP/s either way).
_CHUNK_ELEMENTS = 1 << 20
# Gradient level at which the mixed-precision solver switches from float32 to float64 (the float64 phase
# re-evaluates the gradient, so this only moves work between precisions; it never loosens ``tol``).
_SWITCH_TOL = 1e-6
# Float32 phase: a model whose best gradient has not halved in this many iterations moves on to float64.
_PATIENCE32 = 20
# Iterations between refreshes of the Kronecker preconditioner.
_REFRESH = 10

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Solvers of :func:`fit_logistic` (``LogisticConfig.solver``).
SOLVERS = ("lbfgs", "newton-cg")
#: Initial inverse Hessians of the L-BFGS solver (``LogisticConfig.preconditioner``).
PRECONDITIONERS = ("auto", "kron", "full-hessian")


@dataclass(frozen=True, eq=False)
class LogisticFit:
    """Parameters and convergence diagnostics of ``K`` logistic regressions fitted at once.

    Attributes
    ----------
    coef : ndarray, shape (K, n_features, n_outputs)
        Weights in the (possibly standardized) feature space the models were fitted in. ``n_outputs`` is
        ``n_classes``, or 1 for two classes (the logit of class 1 against class 0, as scikit-learn's binary
        ``coef_``). ``coef[k].T`` is comparable with scikit-learn's ``coef_``.
    intercept : ndarray, shape (K, n_outputs)
    n_iter : ndarray of int, shape (K,)
        L-BFGS iterations each model used (both precision phases).
    grad_norm : ndarray, shape (K,)
        Final ``max |grad F_k|`` of the normalized objective.
    converged : ndarray of bool, shape (K,)
        ``grad_norm <= tol``.
    objective : ndarray, shape (K,)
        Final normalized objective ``F_k``.
    n_classes : int
    """

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: np.ndarray
    grad_norm: np.ndarray
    converged: np.ndarray
    objective: np.ndarray
    n_classes: int
    n_hvp: np.ndarray | None = None
    """Hessian-vector products per model (``solver="newton-cg"``; None for L-BFGS)."""

    def logits(self, X, *, dtype=torch.float64) -> np.ndarray:
        """Class scores ``(K, n, n_classes)`` for rows ``X (n, n_features)`` (binary: ``[0, z]``)."""
        return logistic_logits(self.coef, self.intercept, X, n_classes=self.n_classes, dtype=dtype)


def logistic_logits(coef, intercept, X, *, n_classes: int, dtype=torch.float64) -> np.ndarray:
    """Class scores ``(K, n, n_classes)`` of stacked linear models ``coef (K, d, n_out)``, ``intercept (K, n_out)``."""
    W = torch.as_tensor(np.asarray(coef), dtype=dtype)
    b = torch.as_tensor(np.asarray(intercept), dtype=dtype)
    Xt = torch.as_tensor(np.asarray(X), dtype=dtype)
    with torch.no_grad():
        Z = torch.matmul(Xt, W) + b[:, None, :]
        if n_classes == 2 and W.shape[2] == 1:
            Z = torch.cat([torch.zeros_like(Z), Z], dim=2)
    return Z.numpy()


class _Objective:
    """Normalized objectives and gradients of a block of models sharing ``X``; evaluates any subset of them."""

    def __init__(self, X1: torch.Tensor, y: torch.Tensor, n_classes: int, weights: torch.Tensor, C: float):
        self.X1 = X1                                   # (n, d + 1), last column = 1 (intercept)
        self.y = y                                     # (n,) int64
        self.binary = n_classes == 2
        self.n_classes = n_classes
        self.Y1h = torch.nn.functional.one_hot(y, n_classes).to(X1.dtype)  # (n, C)
        self.weights = weights                         # (n, K): example-major, so a row chunk is contiguous
        self.n_k = weights.sum(0)                      # (K,)
        self.C = C
        self.pen = torch.ones(X1.shape[1], 1, dtype=X1.dtype)
        self.pen[-1] = 0.0                             # the intercept is not penalized

    def to(self, dtype) -> "_Objective":
        return _Objective(self.X1.to(dtype), self.y, self.n_classes, self.weights.to(dtype), self.C)

    def _select(self, idx: torch.Tensor):
        """Weights ``(n, k)`` and sizes ``(k,)`` of models ``idx``; no copy while every model is still active."""
        if idx.numel() == self.weights.shape[1]:       # ids are sorted and unique: all models, in order
            return self.weights, self.n_k
        return self.weights[:, idx], self.n_k[idx]

    def _chunks(self, k: int):
        rows = max(16, _CHUNK_ELEMENTS // max(1, k * self.n_classes))
        return range(0, self.X1.shape[0], rows), rows

    def _scores(self, Xr, Wm, k, n_out):
        """Class scores ``(rows, n_classes, k)`` of a row chunk."""
        Z = (Xr @ Wm).view(Xr.shape[0], n_out, k)
        if self.binary:
            Z = torch.cat([torch.zeros(Xr.shape[0], 1, k, dtype=Z.dtype), Z], dim=1)
        return Z

    def __call__(self, W: torch.Tensor, idx: torch.Tensor):
        """``(F, grad)`` for models ``idx`` at stacked parameters ``W (k, d + 1, n_out)``.

        The forward pass works in the ``(rows, classes, models)`` layout: reductions over the few classes
        then run over contiguous model vectors, several times faster than reducing a short last axis.
        """
        k, dp, n_out = W.shape
        wts, n_k = self._select(idx)
        Wm = W.permute(1, 2, 0).reshape(dp, n_out * k)
        f = torch.zeros(k, dtype=W.dtype)
        G = torch.zeros(dp, n_out * k, dtype=W.dtype)
        starts, rows = self._chunks(k)
        for r0 in starts:
            Xr = self.X1[r0:r0 + rows]
            nr = Xr.shape[0]
            Z = self._scores(Xr, Wm, k, n_out)
            yr = self.y[r0:r0 + rows]
            wr = wts[r0:r0 + rows].unsqueeze(1)                              # (nr, 1, k)
            zmax = Z.amax(1, keepdim=True)
            zy = Z.gather(1, yr.view(nr, 1, 1).expand(nr, 1, k))             # (nr, 1, k)
            E = Z.sub_(zmax).exp_()
            s = E.sum(1, keepdim=True)
            f += ((s.log() + zmax - zy) * wr).sum((0, 1))                    # CE = logsumexp(z) - z_y
            P = E.div_(s)
            P.sub_(self.Y1h[r0:r0 + rows].unsqueeze(2)).mul_(wr)
            if self.binary:
                P = P[:, 1:, :]
            G.addmm_(Xr.T, P.reshape(nr, n_out * k))
        G = G.view(dp, n_out, k).permute(2, 0, 1)
        inv_n = (1.0 / n_k).view(k, 1, 1)
        Wp = W * self.pen
        f = f / n_k + (Wp * Wp).sum((1, 2)) / (2.0 * self.C * n_k)
        G = G * inv_n + Wp * (inv_n / self.C)
        return f, G

    def preconditioner(self, W: torch.Tensor, idx: torch.Tensor, sigma=None) -> "_KronPreconditioner":
        """Kronecker-factored inverse-Hessian approximation at ``W`` for models ``idx`` (see module docstring).

        ``sigma``: the eigendecomposition ``(e, U)`` of a previous ``Sigma`` to reuse (``Sigma`` costs
        ``n d^2``, more than an evaluation when ``d`` exceeds ``n_classes * k``); ``A_k`` is always recomputed.
        """
        k, dp, n_out = W.shape
        wts, n_k = self._select(idx)
        Wm = W.permute(1, 2, 0).reshape(dp, n_out * k)
        Sig = torch.zeros(dp, dp, dtype=W.dtype) if sigma is None else None
        A = torch.zeros(k, n_out, n_out, dtype=W.dtype)
        mass = torch.zeros((), dtype=W.dtype)
        starts, rows = self._chunks(k)
        for r0 in starts:
            Xr = self.X1[r0:r0 + rows]
            P = torch.softmax(self._scores(Xr, Wm, k, n_out), dim=1)         # (nr, C, k)
            wr = wts[r0:r0 + rows]                                           # (nr, k)
            if self.binary:
                b = P[:, 0] * P[:, 1] * wr                                   # (nr, k)
                A[:, 0, 0] += b.sum(0)
                c = b.mean(1)
            else:
                Pw = P * wr.unsqueeze(1)
                A += torch.diag_embed(Pw.sum(0).T) - torch.einsum("nck,nek->kce", Pw, P)
                c = (Pw * (1.0 - P)).sum(1).mean(1) if Sig is not None else None  # mean_k w_ik tr(B_ik)
            if Sig is not None:
                Sig.addmm_(Xr.T * c, Xr)
                mass += c.sum()
        if Sig is not None:
            sigma = torch.linalg.eigh(Sig / torch.clamp(mass, min=torch.finfo(W.dtype).tiny))
        A /= n_k.view(k, 1, 1)
        return _KronPreconditioner(sigma, A, 1.0 / (self.C * n_k))


class _KronPreconditioner:
    """The inverse of ``Sigma (x) A_k + lambda_k I``: ``H0 Q = U [(U^T Q V_k) / (e_S e_A,k^T + lambda_k)] V_k^T``."""

    def __init__(self, sigma, A, lam):
        self.sigma = sigma
        es, self.U = sigma
        ea, self.V = torch.linalg.eigh(A)
        self.den = es.clamp(min=0).view(1, -1, 1) * ea.clamp(min=0).unsqueeze(1) + lam.view(-1, 1, 1)

    def keep(self, mask):
        self.V, self.den = self.V[mask], self.den[mask]

    def __call__(self, Q):
        k, dp, n_out = Q.shape
        T = (self.U.T @ Q.transpose(0, 1).reshape(dp, k * n_out)).view(dp, k, n_out).transpose(0, 1) @ self.V
        T = ((T / self.den) @ self.V.transpose(1, 2)).transpose(0, 1).reshape(dp, k * n_out)
        return (self.U @ T).view(dp, k, n_out).transpose(0, 1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum((1, 2))


def _armijo(obj: _Objective, W: torch.Tensor, f: torch.Tensor, G: torch.Tensor, D: torch.Tensor, gd: torch.Tensor,
            ids: torch.Tensor, eps_f: float):
    """Armijo backtracking along ``D`` (K, d, C), each model with its own step; only unfinished models are
    re-evaluated. Returns ``(W_new, f_new, G_new, ok)``: models with ``ok`` False found no decrease and keep
    ``W``. Shared by the L-BFGS and Newton-CG solvers."""
    k_act = ids.numel()
    t = torch.ones(k_act, dtype=W.dtype)
    W_new, f_new, G_new = W.clone(), f.clone(), G.clone()
    pending = torch.arange(k_act)
    ok = torch.zeros(k_act, dtype=torch.bool)
    for _ in range(_MAX_BACKTRACK):
        if pending.numel() == k_act:                 # every model still searching: no gather copies
            Wt = torch.addcmul(W, t.view(-1, 1, 1), D)
        else:
            Wt = W[pending] + t[pending].view(-1, 1, 1) * D[pending]
        ft, Gt = obj(Wt, ids[pending])
        f0, gd0 = f[pending], gd[pending]
        acc = ft <= f0 + _ARMIJO_C1 * t[pending] * gd0
        # Near the optimum the decrease falls below the rounding of F: accept on the approximate Armijo
        # condition of Hager & Zhang (2005), phi'(t) <= (2 c1 - 1) phi'(0), while F is unchanged to rounding.
        flat = ft <= f0 + eps_f * f0.abs()
        acc |= flat & (_dot(Gt, D[pending]) <= (2.0 * _ARMIJO_C1 - 1.0) * gd0)
        acc &= torch.isfinite(ft)
        sel = pending[acc]
        W_new[sel], f_new[sel], G_new[sel] = Wt[acc], ft[acc], Gt[acc]
        ok[sel] = True
        if acc.all():
            break
        rej = ~acc
        pr = pending[rej]
        # Safeguarded quadratic interpolation of the step, within [0.1 t, 0.5 t].
        tt, dd, df = t[pr], gd[pr], ft[rej] - f[pr]
        t_q = -dd * tt * tt / (2.0 * (df - dd * tt))
        t_q = torch.where(torch.isfinite(t_q), t_q, 0.5 * tt)
        t[pr] = torch.minimum(torch.maximum(t_q, 0.1 * tt), 0.5 * tt)
        pending = pr
    return W_new, f_new, G_new, ok


def _progress(G: torch.Tensor, tol: float, patience: int | None, best: torch.Tensor, since: torch.Tensor):
    """After an iteration: ``(converged, best, since, slow)``. ``converged``: ``max |grad| <= tol``; with
    ``patience``, ``slow`` marks models whose best ``max |grad|`` (``best``) has not halved for ``patience``
    iterations (``since``); without it, no model is slow. Shared by the L-BFGS and Newton-CG solvers."""
    gmax = G.abs().amax((1, 2))
    converged = gmax <= tol
    if patience is None:
        return converged, best, since, torch.zeros_like(converged)
    better = gmax <= 0.5 * best
    best = torch.where(better, gmax, best)
    since = torch.where(better, torch.zeros_like(since), since + 1)
    return converged, best, since, since >= patience


def _lbfgs(obj: _Objective, W0: torch.Tensor, *, tol: float, max_iter, history: int, patience: int | None = None,
           H0_fixed=None):
    """Vectorized preconditioned L-BFGS with per-model Armijo backtracking; converged models leave.

    ``H0_fixed``: an initial inverse Hessian shared by every model and never refreshed (:class:`_SharedHessian`);
    None: the Kronecker factorization, refreshed every ``_REFRESH`` iterations.

    ``patience``: a model also leaves (unconverged) when its best ``max |grad|`` has not halved in that many
    iterations (used for the float32 phase, whose gradients stop improving at the float32 rounding level).
    Returns ``(W, n_iter, grad_max, converged, f)`` for every model (``max_iter`` is per model, an array).
    """
    K, dp, n_out = W0.shape
    dtype = W0.dtype
    W_out = W0.clone()
    f_out = torch.full((K,), float("nan"), dtype=dtype)
    g_out = torch.full((K,), float("nan"), dtype=dtype)
    it_out = torch.zeros(K, dtype=torch.int64)
    conv_out = torch.zeros(K, dtype=torch.bool)

    ids = torch.arange(K)                        # global index of each active model
    W = W0.clone()
    f, G = obj(W, ids)
    S = torch.zeros(history, K, dp, n_out, dtype=dtype)
    Yh = torch.zeros(history, K, dp, n_out, dtype=dtype)
    rho = torch.zeros(history, K, dtype=dtype)   # 0 marks an empty or rejected pair (a no-op in the recursion)
    gamma = torch.ones(K, dtype=dtype)
    pos = 0
    it = torch.zeros(K, dtype=torch.int64)
    budget = torch.as_tensor(max_iter, dtype=torch.int64).expand(K).clone()
    H0 = None
    eps_f = min(1e3 * torch.finfo(dtype).eps, 1e-6)     # relative rounding level of F (float64: 2e-13)

    best = torch.full((K,), float("inf"), dtype=dtype)    # best max |grad| so far (patience)
    since = torch.zeros(K, dtype=torch.int64)             # iterations since it last halved

    def retire(done: torch.Tensor, converged: torch.Tensor):
        nonlocal ids, W, f, G, S, Yh, rho, gamma, it, budget, best, since
        if not bool(done.any()):
            return
        gid = ids[done]
        W_out[gid] = W[done]
        f_out[gid] = f[done]
        g_out[gid] = G[done].abs().amax((1, 2))
        it_out[gid] = it[done]
        conv_out[gid] = converged[done]
        keep = ~done
        ids, W, f, G, it, budget = ids[keep], W[keep], f[keep], G[keep], it[keep], budget[keep]
        best, since = best[keep], since[keep]
        S, Yh, rho, gamma = S[:, keep], Yh[:, keep], rho[:, keep], gamma[keep]
        if H0 is not None:
            H0.keep(keep)

    gmax = G.abs().amax((1, 2))
    retire((gmax <= tol) | (budget <= 0), gmax <= tol)
    n_step = sigma_step = 0
    while ids.numel():
        if H0_fixed is not None:
            H0 = H0_fixed
        elif n_step % _REFRESH == 0:
            # Sigma is refreshed less often when it costs more than ~10% of the evaluations in between.
            k_act = ids.numel()
            renew = H0 is None or n_step - sigma_step >= _REFRESH * max(1.0, dp / (2.0 * obj.n_classes * k_act))
            H0 = obj.preconditioner(W, ids, sigma=None if renew else H0.sigma)
            sigma_step = n_step if renew else sigma_step
        n_step += 1
        # Two-loop recursion (newest pair first), vectorized over the active models.
        q = -G
        order = [(pos - 1 - j) % history for j in range(history)]
        alpha = []
        for j in order:
            a = rho[j] * _dot(S[j], q)
            q = q - a.view(-1, 1, 1) * Yh[j]
            alpha.append(a)
        D = H0(q) * gamma.view(-1, 1, 1)
        for j, a in zip(reversed(order), reversed(alpha)):
            b = rho[j] * _dot(Yh[j], D)
            D = D + (a - b).view(-1, 1, 1) * S[j]
        gd = _dot(G, D)
        bad = ~(gd < 0)
        if bad.any():                            # not a descent direction: restart from the preconditioned gradient
            D[bad] = -H0(G)[bad]
            rho[:, bad] = 0.0
            gamma[bad] = 1.0
            gd = _dot(G, D)
            bad = ~(gd < 0)
            D[bad] = -G[bad]
            gd = _dot(G, D)

        W_new, f_new, G_new, ok = _armijo(obj, W, f, G, D, gd, ids, eps_f)
        stalled = ~ok                            # no decrease found: the model is at working precision

        s = W_new - W
        yv = G_new - G
        stalled |= ok & (s.abs().amax((1, 2)) == 0)    # a step too small to change W: no progress possible
        sy = _dot(s, yv)
        valid = ok & (sy > 0)
        safe_sy = torch.where(valid, sy, torch.ones_like(sy))
        S[pos], Yh[pos] = s, yv
        rho[pos] = torch.where(valid, 1.0 / safe_sy, torch.zeros_like(sy))
        yHy = _dot(yv, H0(yv))
        gamma = torch.where(valid & (yHy > 0), sy / torch.where(yHy > 0, yHy, torch.ones_like(yHy)), gamma)
        pos = (pos + 1) % history
        W, f, G = W_new, f_new, G_new
        it = it + ok.to(torch.int64)

        converged, best, since, slow = _progress(G, tol, patience, best, since)
        retire(converged | stalled | slow | (it >= budget), converged)
    return W_out, it_out, g_out, conv_out, f_out


def fit_logistic(X, y, weights, *, n_classes: int | None = None, C: float = 1.0, tol: float = 1e-6,
                 max_iter: int = 1000, history: int = 10, precision: str = "mixed", init=None,
                 solver: str = "lbfgs", preconditioner: str = "auto", shared_start=None) -> LogisticFit:
    """Fit ``K`` weighted L2 logistic regressions on shared data in one vectorized L-BFGS run.

    Parameters
    ----------
    X : array, shape (n, d)
        Features (already standardized if wanted); shared by all models.
    y : array of int, shape (n,)
        Labels in ``[0, n_classes)``.
    weights : array, shape (K, n)
        Per-model example weights (``masks.astype(float)`` for subset training; 0 removes an example exactly,
        positive values act as scikit-learn's ``sample_weight``). Every row needs a positive sum.
    n_classes : int, optional
        Defaults to ``y.max() + 1``. Classes absent from a model's subset keep their parameters (their scores
        are pushed down by the loss, bounded by the penalty).
    C : float
        scikit-learn's inverse regularization strength.
    tol : float
        Stop a model when ``max |grad F_k| <= tol`` (normalized objective; scikit-learn's ``tol`` for lbfgs).
    max_iter : int
        Maximum L-BFGS iterations per model (both precision phases together).
    history : int
        Number of L-BFGS curvature pairs.
    precision : {"mixed", "float64", "float32"}
        ``mixed``: float32 iterations until ``max |grad F_k| <= max(tol, 1e-6)`` or until float32 stops
        making progress, then float64, which certifies ``tol`` (the default). ``float32`` alone cannot
        certify gradients much below 1e-5.
    init : None, "full" or (coef, intercept), optional
        Starting point. None: zeros (cold start). ``"full"``: every model starts from the model fitted to all
        ``n`` rows with weight 1, itself fitted first (cold, to ``tol``; its accuracy only moves the start). A
        pair of arrays: ``coef`` of shape ``(K or 1, d, n_out)`` and ``intercept`` of shape ``(K or 1, n_out)``,
        e.g. a previous :class:`LogisticFit`'s. ``F_k`` is strongly convex on the parameters ``z`` modulo the
        softmax's common shift of the intercepts (which changes no prediction), with a modulus ``mu_k > 0``
        on the level set of the start (the penalty alone contributes ``1 / (C n_k)`` along the weights, the
        cross-entropy's curvature along the intercepts). So the start changes the path, not the answer: any
        returned point satisfies ``||z - z*||_2 <= ||grad F_k||_2 / mu_k <= sqrt(p) tol / mu_k`` (``p``
        parameters) whatever the start, and the memorization scores of warm and cold starts agree
        (tests/test_train.py). The bound is a worst case; the observed differences are far smaller. Starting
        from the full-data model is safe *because* each model is then run to ``tol``: stopping after a fixed
        number of iterations would leave the held-out example's influence in the start (spec/performance.md §2.3).
    solver : {"lbfgs", "newton-cg"}
        ``lbfgs`` (the default): the preconditioned L-BFGS above. ``newton-cg``: batched truncated Newton
        (:func:`_newton_cg`): per-model preconditioned CG on the exact Hessian (Hessian-vector products of all
        models as two shared GEMMs), Eisenstat-Walker forcing terms, Armijo line search, the same convergence
        test, precision phases and ``max_iter`` (counting Newton iterations). ``history`` is unused there.
    preconditioner : {"auto", "kron", "full-hessian"}
        Initial inverse Hessian of L-BFGS. ``auto`` (the default): ``full-hessian`` for L-BFGS with at most
        :data:`SHARED_HESSIAN_MAX_PARAMS` parameters per model, else ``kron``. ``kron``: each model's Kronecker
        factorization, refreshed every few iterations (module docstring). ``full-hessian``: one matrix shared by every model, the inverse of
        the exact Hessian of the full-data objective (every row, weight ``rho`` = the mean of ``weights``) at the
        full-data model, and every model starts from that model (unless ``init`` is given). A model trained on a
        random subset has nearly the full-data Hessian scaled to its size, so the shared matrix is close to each
        model's own Newton step: on all 60,000 Fashion-MNIST rows (C = 0.01, tol 1e-6) 30 iterations per model
        instead of 274. Costs, once per process and data set (cached): the full-data fit, ``n_out (n_out + 1) / 2``
        GEMMs of ``n x (d + 1) x (d + 1)`` for the Hessian and a ``p x p`` Cholesky inverse, ``p = (d + 1) n_out``
        at most :data:`SHARED_HESSIAN_MAX_PARAMS`; then one ``(k, p) @ (p, p)`` GEMM per L-BFGS step. The optimum,
        the convergence test and the float64 certification are unchanged, so the answer is the same up to ``tol``.
    shared_start : (coef, inverse_hessian), optional
        With ``preconditioner="full-hessian"``: the full-data model ``(d + 1, n_out)`` (intercept last) and the
        inverse Hessian ``(p, p)`` from :func:`full_hessian_start`, computed once by the caller (e.g. in the parent
        of several worker processes) instead of in this call.

    Returns
    -------
    LogisticFit
    """
    X = check_array("X", X, ndim=2, dtype=np.float64, min_rows=1)
    y = check_labels("y", y, n_rows=X.shape[0])
    n_classes = int(y.max()) + 1 if n_classes is None else check_int("n_classes", n_classes, min_value=2)
    if n_classes < 2 or y.max() >= n_classes:
        raise MemlensInputError(f"n_classes must be >= 2 and > every label; got n_classes={n_classes}, "
                                f"largest label {y.max()}")
    weights = check_array("weights", weights, ndim=2, dtype=np.float64)
    if weights.shape[1] != X.shape[0]:
        raise MemlensInputError(f"weights must have shape (n_models, n_examples={X.shape[0]}); got {weights.shape}")
    if np.any(weights < 0):
        raise MemlensInputError("weights must be >= 0 (0 = example not in the model's training set)")
    empty = np.flatnonzero(weights.sum(1) <= 0)
    if empty.size:
        raise MemlensInputError(f"every model needs at least one training example; model row(s) "
                                f"{empty[:5].tolist()} have none; drop those rows of the masks")
    C = check_float("C", C, min_value=0.0, min_inclusive=False)
    tol = check_float("tol", tol, min_value=0.0, min_inclusive=False)
    max_iter = check_int("max_iter", max_iter, min_value=1)
    history = check_int("history", history, min_value=1)
    if precision not in ("mixed", "float64", "float32"):
        raise MemlensInputError(f"precision must be 'mixed', 'float64' or 'float32'; got {precision!r}")
    if solver not in SOLVERS:
        raise MemlensInputError(f"solver must be one of {', '.join(map(repr, SOLVERS))}; got {solver!r}")

    if preconditioner not in PRECONDITIONERS:
        raise MemlensInputError(f"preconditioner must be one of {', '.join(map(repr, PRECONDITIONERS))}; "
                                f"got {preconditioner!r}")

    K, (n, d) = weights.shape[0], X.shape
    n_out = 1 if n_classes == 2 else n_classes
    shared = resolve_preconditioner(preconditioner, d, n_classes, solver) == "full-hessian"
    if shared:
        check_shared_hessian_size(d, n_classes)
        if solver != "lbfgs":
            raise MemlensInputError(f"preconditioner='full-hessian' is an L-BFGS preconditioner; got solver={solver!r}; "
                                    f"use solver='lbfgs' or preconditioner='kron'")
    X1 = torch.cat([torch.as_tensor(X), torch.ones(n, 1, dtype=torch.float64)], dim=1)
    obj64 = _Objective(X1, torch.as_tensor(y), n_classes, torch.as_tensor(weights.T.copy()), C)
    H0 = None
    if shared:
        if shared_start is not None:
            W_full, H0 = _given_shared_start(shared_start, d + 1, n_out)
        else:
            W_full, H0 = _shared_start(obj64, float(weights.mean()), tol=tol, max_iter=max_iter, history=history,
                                       precision=precision)
        from_full = init is None or (isinstance(init, str) and init == "full")
        W = W_full.expand(K, -1, -1).clone() if from_full else None
    if not shared or not from_full:
        W = _initial_point(init, X, y, K, d, n_out, n_classes=n_classes, C=C, tol=tol, max_iter=max_iter,
                           history=history, precision=precision, solver=solver)
    if solver == "newton-cg":
        return _fit_newton(obj64, W, d, n_classes, tol=tol, max_iter=max_iter, precision=precision)
    W, n_iter, g, conv, f = _lbfgs_phases(obj64, W, tol=tol, max_iter=max_iter, history=history,
                                          precision=precision, H0_fixed=H0)
    W = W.numpy()
    return LogisticFit(coef=W[:, :d, :].copy(), intercept=W[:, d, :].copy(), n_iter=n_iter.numpy(),
                       grad_norm=g.double().numpy(), converged=conv.numpy(), objective=f.double().numpy(),
                       n_classes=n_classes)


def _lbfgs_phases(obj64: _Objective, W: torch.Tensor, *, tol: float, max_iter: int, history: int, precision: str,
                  H0_fixed=None):
    """L-BFGS in float32 until ``max(tol, 1e-6)`` (or no progress), then float64 certifying ``tol`` (``mixed``)."""
    K = W.shape[0]
    n_iter = torch.zeros(K, dtype=torch.int64)
    with torch.no_grad():
        if precision in ("mixed", "float32"):
            tol32 = tol if precision == "float32" else max(tol, _SWITCH_TOL)
            W32, n_iter, g, conv, f = _lbfgs(obj64.to(torch.float32), W.float(), tol=tol32, max_iter=max_iter,
                                             history=history, patience=_PATIENCE32 if precision == "mixed" else None,
                                             H0_fixed=H0_fixed)
            W = W32.double()
        if precision in ("mixed", "float64"):
            W, it2, g, conv, f = _lbfgs(obj64, W, tol=tol, max_iter=torch.clamp(max_iter - n_iter, min=0),
                                        history=history, H0_fixed=H0_fixed)
            n_iter = n_iter + it2
    return W, n_iter, g, conv, f


# ------------------------------------------------------------------------------- shared full-data Hessian
#: Largest parameter count ``(d + 1) * n_out`` per model for ``preconditioner="full-hessian"``: its inverse
#: holds ``p^2`` numbers (8,192 parameters: 256 MiB in float32, factorized from a 512 MiB float64 matrix).
SHARED_HESSIAN_MAX_PARAMS = 8192
# The start and inverse Hessian of the last population fitted in this process (one entry): a sharded run fits
# the same data block after block, and every block reuses them.
_SHARED_CACHE: dict = {}
# Gradient level of the first stage of the full-data fit, where its Hessian is taken.
_SHARED_STAGE1_TOL = 1e-4


def _n_params(d: int, n_classes: int) -> int:
    """Parameters per model: ``(d + 1)`` weights-and-intercept rows times the outputs (1 for two classes)."""
    return (d + 1) * (1 if n_classes == 2 else n_classes)


def resolve_preconditioner(preconditioner: str, d: int, n_classes: int, solver: str = "lbfgs") -> str:
    """``"kron"`` or ``"full-hessian"``: what ``preconditioner="auto"`` means for ``d`` features and ``n_classes``."""
    if preconditioner != "auto":
        return preconditioner
    return "full-hessian" if solver == "lbfgs" and _n_params(d, n_classes) <= SHARED_HESSIAN_MAX_PARAMS else "kron"


def check_shared_hessian_size(d: int, n_classes: int) -> int:
    """The parameter count per model, or a ``MemlensInputError`` when the shared Hessian would be too large."""
    p = _n_params(d, n_classes)
    if p > SHARED_HESSIAN_MAX_PARAMS:
        raise MemlensInputError(
            f"preconditioner='full-hessian' needs at most {SHARED_HESSIAN_MAX_PARAMS} parameters per model (its "
            f"inverse Hessian holds p^2 numbers); got p = (n_features + 1) * outputs = {p}; use preconditioner='kron'")
    return p


class _SharedHessian:
    """Initial inverse Hessian of L-BFGS shared by every model: ``(H_full + lambda I)^{-1}``, applied as one GEMM.

    Stored in float32 only (computed in float64): a preconditioner needs no more, and the float64 phase applies
    it to a float32 copy of its directions (half the memory of a float64 copy: 256 MiB at 8,192 parameters).
    Fixed: never refreshed.
    """

    def __init__(self, inv: torch.Tensor):
        self.inv = inv.float()
        self.sigma = None

    def keep(self, mask):
        pass

    def __call__(self, Q):
        k, dp, n_out = Q.shape
        return (Q.reshape(k, dp * n_out).float() @ self.inv).to(Q.dtype).view(k, dp, n_out)


def _digest(*tensors) -> str:
    h = hashlib.blake2b(digest_size=16)
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(memoryview(np.ascontiguousarray(t.numpy())).cast("B"))     # no copy of a contiguous tensor
    return h.hexdigest()


def _shared_start(obj64: _Objective, rho: float, *, tol: float, max_iter: int, history: int, precision: str):
    """The full-data model and the shared inverse Hessian at it, for ``preconditioner="full-hessian"``.

    The full-data model minimizes the objective with weight ``rho`` (the population's mean weight, rounded to
    0.01) on every row: the mean cross-entropy over all rows with the penalty ``1 / (C rho n)`` of a model of
    ``rho n`` examples. It is fitted in two stages: Kronecker-preconditioned L-BFGS to ``max |grad| <= 1e-3``,
    where the Hessian is taken, then L-BFGS with that Hessian to ``tol``. The Hessian is the exact one of the
    normalized objective, ``(1/n) sum_i (x_i x_i^T) (x) B_i + I / (C rho n)`` (the ridge on the intercepts too, which
    makes the softmax's shift direction positive definite), inverted once in float64. The result is cached per
    process (one entry, keyed by a digest of the data, ``C``, ``rho`` and ``tol``).
    Returns ``(W (1, d + 1, n_out) float64, _SharedHessian)``.
    """
    rho = max(0.01, round(rho, 2))
    X1, y = obj64.X1, obj64.y
    n = X1.shape[0]
    key = (_digest(X1, y), obj64.n_classes, obj64.C, rho, tol, precision)
    if _SHARED_CACHE.get("key") == key:
        return _SHARED_CACHE["W"], _SHARED_CACHE["H0"]
    _SHARED_CACHE.clear()                          # free the previous inverse before building a new one
    full = _Objective(X1, y, obj64.n_classes, torch.full((n, 1), rho, dtype=X1.dtype), obj64.C)
    n_out = 1 if obj64.binary else obj64.n_classes
    W = torch.zeros(1, X1.shape[1], n_out, dtype=torch.float64)
    with torch.no_grad():
        W, *_ = _lbfgs_phases(full, W, tol=max(tol, _SHARED_STAGE1_TOL), max_iter=max_iter, history=history,
                              precision="float32" if precision != "float64" else "float64")
        H0 = _SharedHessian(_full_hessian_inverse(full.to(torch.float32), W.float(), rho))
        W, *_ = _lbfgs_phases(full, W, tol=tol, max_iter=max_iter, history=history, precision=precision,
                              H0_fixed=H0)
    _SHARED_CACHE.update(key=key, W=W, H0=H0)
    return W, H0


def full_hessian_start(X, y, *, n_classes: int, C: float, rho: float, tol: float = 1e-6, max_iter: int = 1000,
                       history: int = 10, precision: str = "mixed") -> tuple[np.ndarray, np.ndarray]:
    """The full-data model and shared inverse Hessian of ``preconditioner="full-hessian"``, as arrays.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array of int, shape (n,)
    n_classes : int
    C, tol, max_iter, history, precision
        As :func:`fit_logistic`.
    rho : float in (0, 1]
        The population's mean example weight (its subset ratio): the full-data objective gives every row this
        weight, so its penalty is that of a model of ``rho n`` examples.

    Returns
    -------
    coef : ndarray, shape (d + 1, n_out)
        The full-data model, intercept in the last row.
    inverse_hessian : ndarray of float32, shape (p, p), p = (d + 1) n_out
        Pass both to :func:`fit_logistic` as ``shared_start``. Cached per process like the start of
        :func:`fit_logistic` itself.
    """
    X = check_array("X", X, ndim=2, dtype=np.float64, min_rows=1)
    y = check_labels("y", y, n_rows=X.shape[0])
    n_classes = check_int("n_classes", n_classes, min_value=2)
    check_shared_hessian_size(X.shape[1], n_classes)
    rho = check_float("rho", rho, min_value=0.0, max_value=1.0, min_inclusive=False)
    n = X.shape[0]
    X1 = torch.cat([torch.as_tensor(X), torch.ones(n, 1, dtype=torch.float64)], dim=1)
    obj = _Objective(X1, torch.as_tensor(y), n_classes, torch.full((n, 1), rho, dtype=torch.float64), C)
    W, H0 = _shared_start(obj, rho, tol=tol, max_iter=max_iter, history=history, precision=precision)
    return W[0].numpy(), H0.inv.numpy()


def _given_shared_start(pair, dp: int, n_out: int):
    try:
        coef, inv = pair
    except (TypeError, ValueError):
        raise MemlensInputError("shared_start must be the pair (coef, inverse_hessian) from full_hessian_start") from None
    coef = np.asarray(coef, dtype=np.float64)
    inv = np.asarray(inv)
    if coef.shape != (dp, n_out) or inv.shape != (dp * n_out, dp * n_out):
        raise MemlensInputError(f"shared_start must hold arrays of shapes ({dp}, {n_out}) and {(dp * n_out,) * 2}; "
                                f"got {coef.shape} and {inv.shape}")
    with warnings.catch_warnings():
        # joblib hands the matrix to worker processes as a read-only memory map; it is only ever read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        inv = torch.as_tensor(inv, dtype=torch.float32)
    return torch.as_tensor(coef).unsqueeze(0), _SharedHessian(inv)


def _full_hessian_inverse(full: _Objective, W: torch.Tensor, rho: float) -> torch.Tensor:
    """``(H + lambda I)^{-1}`` (float64 factorization, float32 result) of the weight-``rho`` full-data objective at
    ``W (1, d + 1, n_out)``."""
    X1 = full.X1
    n = X1.shape[0]
    P = torch.softmax(full._scores(X1, W[0], 1, W.shape[2]), dim=1)         # (n, C, 1)
    H = _hessian_matrix(X1, P, torch.full((n, 1), 1.0 / n, dtype=X1.dtype), full.binary)
    H.diagonal().add_(1.0 / (full.C * rho * n))
    return _spd_inverse(H).float()


def _initial_point(init, X, y, K: int, d: int, n_out: int, **fit_kw) -> torch.Tensor:
    """Stacked starting parameters ``(K, d + 1, n_out)`` float64 for ``fit_logistic``'s ``init``."""
    if init is None:
        return torch.zeros(K, d + 1, n_out, dtype=torch.float64)
    if isinstance(init, str):
        if init != "full":
            raise MemlensInputError(f"init must be None, 'full' or a (coef, intercept) pair; got {init!r}")
        full = fit_logistic(X, y, np.ones((1, X.shape[0])), init=None, **fit_kw)
        coef, intercept = full.coef, full.intercept
    else:
        try:
            coef, intercept = init
        except (TypeError, ValueError):
            raise MemlensInputError(f"init must be None, 'full' or a (coef, intercept) pair; got {type(init).__name__}")
        coef = np.asarray(coef, dtype=np.float64)
        intercept = np.asarray(intercept, dtype=np.float64)
        if coef.ndim != 3 or coef.shape[0] not in (1, K) or coef.shape[1:] != (d, n_out) \
                or intercept.shape != (coef.shape[0], n_out) or not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise MemlensInputError(f"init=(coef, intercept) must have finite values and shapes (K or 1, {d}, {n_out}) "
                                    f"and (K or 1, {n_out}) for K={K}; got {coef.shape} and {intercept.shape}")
    W = np.concatenate([coef, intercept[:, None, :]], axis=1)
    return torch.as_tensor(np.array(np.broadcast_to(W, (K, d + 1, n_out))))   # a writable copy


# ---------------------------------------------------------------------------------------------- Newton-CG
# Batched truncated Newton (``solver="newton-cg"``): the same objective, convergence test and float32 -> float64
# certification as the L-BFGS solver above; only the search direction differs.
_MAX_CG = 200          # CG iterations per Newton step and model (scikit-learn's newton-cg: maxinner = 200)
# Rows sampled to build the mean-Hessian preconditioner on large data sets.
_HESS_ROWS = 8192
# Largest parameter count per model for which the mean-Hessian preconditioner is the default.
_HESS_PARAMS = 2048
_ETA_MAX = 0.5         # Eisenstat-Walker forcing term eta_k = min(0.5, sqrt(||g_k||_2)) (as scikit-learn)


def _probabilities(obj: _Objective, W: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(n, n_classes, k)`` of models ``idx`` at ``W (k, d + 1, n_out)`` (one GEMM)."""
    k, dp, n_out = W.shape
    Wm = W.permute(1, 2, 0).reshape(dp, n_out * k)
    return torch.softmax(obj._scores(obj.X1, Wm, k, n_out), dim=1)


def _curvature(obj: _Objective, P: torch.Tensor, wts: torch.Tensor) -> torch.Tensor:
    """Per-row curvature factor: binary ``w p0 p1`` of shape ``(n, 1, k)``; multinomial ``w P`` ``(n, C, k)``."""
    if obj.binary:
        return (P[:, 0] * P[:, 1] * wts).unsqueeze(1)
    return P * wts.unsqueeze(1)


def _hvp(obj: _Objective, P: torch.Tensor, Pw: torch.Tensor, n_k: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Hessian-vector products ``H_k V_k`` of the normalized objectives, all models at once: two GEMMs.

    ``P (n, C, k)`` probabilities and ``Pw`` their curvature factor (:func:`_curvature`) at the current point;
    ``V (k, d + 1, n_out)``. The multinomial Hessian of ``CE_i`` acts on the scores' direction ``u_i = V^T x_i``
    as ``diag(p_i) u_i - p_i (p_i . u_i)``; the binary one as ``p0 p1 u_i``.
    """
    k, dp, n_out = V.shape
    n = obj.X1.shape[0]
    U = (obj.X1 @ V.permute(1, 2, 0).reshape(dp, n_out * k)).view(n, n_out, k)
    R = U.mul_(Pw)                                   # w p_c u_c  (binary: w p0 p1 u)
    if not obj.binary:
        R.sub_(P * R.sum(1, keepdim=True))           # - w p_c (p . u)
    H = (obj.X1.T @ R.view(n, n_out * k)).view(dp, n_out, k).permute(2, 0, 1)
    inv_n = (1.0 / n_k).view(k, 1, 1)
    return H * inv_n + V * obj.pen * (inv_n / obj.C)


class _DiagPreconditioner:
    """Inverse of the Hessian's diagonal: ``(1/n_k) sum_i w_ki x_ij^2 B_i[c, c] + pen_j / (C n_k)``."""

    def __init__(self, obj: _Objective, X1sq: torch.Tensor, P: torch.Tensor, Pw: torch.Tensor, n_k: torch.Tensor):
        n, C_, k = P.shape
        B = Pw if obj.binary else Pw * (1.0 - P)
        n_out = B.shape[1]
        D = (X1sq.T @ B.reshape(n, n_out * k)).view(-1, n_out, k).permute(2, 0, 1) / n_k.view(k, 1, 1)
        D = D + obj.pen / (obj.C * n_k).view(k, 1, 1)
        self.inv = 1.0 / D

    def subset(self, sel):
        new = object.__new__(_DiagPreconditioner)
        new.inv = self.inv[sel]
        return new

    def __call__(self, Q):
        return Q * self.inv


def _hessian_matrix(X1: torch.Tensor, P: torch.Tensor, a: torch.Tensor, binary: bool) -> torch.Tensor:
    """``sum_i (x_i x_i^T) (x) sum_k a_ik B_ik``, the data part of a weighted multinomial Hessian, float64.

    ``X1 (n, d + 1)``, ``P (n, C, k)`` probabilities, ``a (n, k)`` per-row weights; ``B_ik = diag(p_ik) -
    p_ik p_ik^T`` (binary: ``p0 p1``). Flattened in the ``(d + 1) * n_out`` parameter order of ``W.reshape``.
    Averaging over the models first, ``b_i = sum_k a_ik B_ik``, the whole matrix costs ``n_out (n_out + 1) / 2``
    GEMMs ``X^T diag(b_i[c, e]) X`` in the working dtype of ``X1``.
    """
    n, dp = X1.shape
    if binary:
        b = (P[:, 0] * P[:, 1] * a).sum(1).view(n, 1, 1)
    else:
        Q = P * a.unsqueeze(1)                                           # (n, C, k)
        b = torch.diag_embed(Q.sum(2)) - torch.bmm(Q, P.transpose(1, 2))
    n_out = b.shape[1]
    H = torch.empty(dp, n_out, dp, n_out, dtype=torch.float64)
    for c in range(n_out):
        for e in range(c, n_out):
            blk = (X1.T @ (X1 * b[:, c, e:e + 1])).double()
            H[:, c, :, e] = blk
            if e != c:
                H[:, e, :, c] = blk
    return H.view(dp * n_out, dp * n_out)


def _spd_inverse(H: torch.Tensor) -> torch.Tensor:
    """Inverse of a symmetric positive-definite float64 matrix (Cholesky); ``RuntimeError`` if it is not.

    Overwrites ``H`` (the factor is computed into it), so only two ``p x p`` matrices exist at a time."""
    _, info = torch.linalg.cholesky_ex(H, out=(H, torch.empty((), dtype=torch.int32)))
    if int(info) != 0:
        raise RuntimeError("Hessian is not positive definite to working precision")
    return torch.cholesky_inverse(H)


class _MeanHessianPreconditioner:
    """Inverse of the block's mean exact Hessian, ``(1/k) sum_k H_k + lambda I`` (float64, applied as one GEMM).

    ``H_k = (1/n_k) sum_i w_ki (x_i x_i^T) (x) B_ik + pen / (C n_k)`` with ``B_ik = diag(p_ik) - p_ik p_ik^T``
    (binary: ``p0 p1``), in the flattened ``(d + 1) * n_out`` parameter order; the mean costs one Hessian
    (:func:`_hessian_matrix`). Models train on overlapping random subsets, so each ``H_k`` is close to the mean
    and CG on the preconditioned system needs few steps. ``lambda = mean_k 1 / (C n_k)`` on every coordinate
    (the intercepts too, which makes the softmax's shift direction positive definite). Shared by all models:
    no per-model state, so nothing to gather as models leave. The inverse is stored explicitly: one
    ``(k, p) @ (p, p)`` GEMM per application (``cholesky_solve`` copies its factor on every call). Raises
    ``RuntimeError`` if the factorization fails.
    """

    def __init__(self, obj: _Objective, P: torch.Tensor, wts: torch.Tensor, n_k: torch.Tensor):
        n, _, k = P.shape
        X1 = obj.X1
        a = wts / (n_k * k)                                              # (n, k)
        if n > _HESS_ROWS:                     # an evenly strided sample of rows, reweighted: an approximation
            rows = torch.linspace(0, n - 1, _HESS_ROWS).round().long()  # is all a preconditioner needs
            X1, P, a = X1[rows], P[rows], a[rows] * (n / _HESS_ROWS)
        H = _hessian_matrix(X1, P, a, obj.binary)
        H.diagonal().add_((1.0 / (obj.C * n_k.double())).mean())
        self.inv = _spd_inverse(H).to(obj.X1.dtype)
        self.sigma = None

    def keep(self, mask):
        pass

    def __call__(self, Q):
        k, dp, n_out = Q.shape
        inv = self.inv if self.inv.dtype == Q.dtype else self.inv.to(Q.dtype)
        return (Q.reshape(k, dp * n_out) @ inv).view(k, dp, n_out)


def _kron_subset(pc: _KronPreconditioner, sel) -> _KronPreconditioner:
    new = object.__new__(_KronPreconditioner)
    new.sigma, new.U, new.V, new.den = pc.sigma, pc.U, pc.V[sel], pc.den[sel]
    return new


def _newton_cg(obj: _Objective, W0: torch.Tensor, *, tol: float, max_iter, patience: int | None = None,
               precondition: str = "kron", max_cg: int = _MAX_CG, cache: dict | None = None):
    """Vectorized truncated Newton (Newton-CG) with per-model CG, forcing terms and Armijo line search.

    Each model's direction solves ``H_k d = -g_k`` by preconditioned conjugate gradients (Nocedal & Wright 2006,
    Alg. 7.1 / 5.3), stopped when ``||r||_2 <= eta_k ||g_k||_2`` with the Eisenstat-Walker forcing term
    ``eta_k = min(0.5, sqrt(||g_k||_2))`` (superlinear local convergence; scikit-learn's ``newton-cg``), on
    negative or zero curvature, or after ``max_cg`` steps. The Hessian-vector products of all models still in
    CG are two shared GEMMs per CG step (:func:`_hvp`); a model whose CG has stopped leaves the product. The
    step length is found by the same per-model Armijo backtracking as the L-BFGS solver (first trial 1).
    Converged models (``max |grad F_k| <= tol``) leave the block.

    ``precondition``: ``kron`` (the L-BFGS solver's Kronecker factorization, refreshed every Newton step),
    ``diag`` (the Hessian's diagonal), ``hessian`` (:class:`_MeanHessianPreconditioner`, refreshed at Newton
    steps 0, 1, 2, 4, 8, ...; ``cache`` carries it from the float32 to the float64 phase) or ``none``.

    Returns ``(W, n_iter, grad_max, converged, f, n_hvp)`` for every model.
    """
    K, dp, n_out = W0.shape
    dtype = W0.dtype
    W_out = W0.clone()
    f_out = torch.full((K,), float("nan"), dtype=dtype)
    g_out = torch.full((K,), float("nan"), dtype=dtype)
    it_out = torch.zeros(K, dtype=torch.int64)
    hv_out = torch.zeros(K, dtype=torch.int64)
    conv_out = torch.zeros(K, dtype=torch.bool)

    ids = torch.arange(K)
    W = W0.clone()
    f, G = obj(W, ids)
    it = torch.zeros(K, dtype=torch.int64)
    nhv = torch.zeros(K, dtype=torch.int64)
    budget = torch.as_tensor(max_iter, dtype=torch.int64).expand(K).clone()
    eps_f = min(1e3 * torch.finfo(dtype).eps, 1e-6)
    best = torch.full((K,), float("inf"), dtype=dtype)
    since = torch.zeros(K, dtype=torch.int64)
    X1sq = obj.X1 * obj.X1 if precondition == "diag" else None
    sigma, sigma_step, n_step = None, 0, 0

    def retire(done: torch.Tensor, converged: torch.Tensor):
        nonlocal ids, W, f, G, it, nhv, budget, best, since
        if not bool(done.any()):
            return
        gid = ids[done]
        W_out[gid], f_out[gid] = W[done], f[done]
        g_out[gid] = G[done].abs().amax((1, 2))
        it_out[gid], hv_out[gid], conv_out[gid] = it[done], nhv[done], converged[done]
        keep = ~done
        ids, W, f, G, it, nhv, budget = ids[keep], W[keep], f[keep], G[keep], it[keep], nhv[keep], budget[keep]
        best, since = best[keep], since[keep]

    gmax = G.abs().amax((1, 2))
    retire((gmax <= tol) | (budget <= 0), gmax <= tol)
    while ids.numel():
        k_act = ids.numel()
        wts, n_k = obj._select(ids)
        P = _probabilities(obj, W, ids)
        Pw = _curvature(obj, P, wts)
        if precondition == "hessian":
            if cache is not None and "hessian" in cache and (n_step & (n_step - 1) or cache.get("frozen")):
                M = cache["hessian"]
            else:
                try:
                    M = _MeanHessianPreconditioner(obj, P, wts, n_k)
                except RuntimeError:                 # not positive definite in this precision: no preconditioner
                    M = None
                if cache is not None:
                    cache["hessian"] = M
        elif precondition == "kron":
            renew = sigma is None or n_step - sigma_step >= max(1.0, dp / (2.0 * obj.n_classes * k_act))
            M = obj.preconditioner(W, ids, sigma=None if renew else sigma)
            sigma, sigma_step = M.sigma, (n_step if renew else sigma_step)
        elif precondition == "diag":
            M = _DiagPreconditioner(obj, X1sq, P, Pw, n_k)
        else:
            M = None
        n_step += 1

        # Preconditioned CG on H_k d = -g_k, vectorized; models leave as their own CG stops.
        gnorm = G.flatten(1).norm(dim=1)
        target = torch.clamp(torch.sqrt(gnorm), max=_ETA_MAX) * gnorm
        D = torch.zeros_like(W)
        R = -G
        Z = M(R) if M is not None else R.clone()
        Pd = Z.clone()
        rz = _dot(R, Z)
        act = torch.arange(k_act)
        P_act, Pw_act, n_act = P, Pw, n_k             # gathered again only when the CG active set shrinks
        for j in range(max_cg):
            full = act.numel() == k_act
            if P_act.shape[2] != act.numel():
                P_act, Pw_act, n_act = P[:, :, act], Pw[:, :, act], n_k[act]
            Pa = Pd if full else Pd[act]
            Hp = _hvp(obj, P_act, Pw_act, n_act, Pa)
            nhv[act] += 1
            pHp = _dot(Pa, Hp)
            neg = ~(pHp > 0)
            if neg.any() and j == 0:             # no curvature information: fall back to the preconditioned gradient
                D[act[neg]] = Pa[neg]
            alpha = torch.where(neg, torch.zeros_like(pHp), rz[act] / torch.where(neg, torch.ones_like(pHp), pHp))
            D[act] += alpha.view(-1, 1, 1) * Pa
            Ra = R[act] - alpha.view(-1, 1, 1) * Hp
            R[act] = Ra
            done = neg | (Ra.flatten(1).norm(dim=1) <= target[act])
            if M is None:
                Za = Ra.clone()
            else:
                Za = (M if full or precondition == "hessian" else
                      (_kron_subset(M, act) if precondition == "kron" else M.subset(act)))(Ra)
            rz_new = _dot(Ra, Za)
            beta = rz_new / torch.where(rz[act] != 0, rz[act], torch.ones_like(rz_new))
            Pd[act] = Za + beta.view(-1, 1, 1) * Pa
            rz[act] = rz_new
            act = act[~done]
            if act.numel() == 0:
                break
        gd = _dot(G, D)
        bad = ~(gd < 0)
        if bad.any():                            # rounding: fall back to steepest descent for those models
            D[bad] = -G[bad]
            gd = _dot(G, D)

        W_new, f_new, G_new, ok = _armijo(obj, W, f, G, D, gd, ids, eps_f)
        stalled = ~ok
        stalled |= ok & ((W_new - W).abs().amax((1, 2)) == 0)
        W, f, G = W_new, f_new, G_new
        it = it + ok.to(torch.int64)

        converged, best, since, slow = _progress(G, tol, patience, best, since)
        retire(converged | stalled | slow | (it >= budget), converged)
    return W_out, it_out, g_out, conv_out, f_out, hv_out


# Newton iterations without halving the best gradient before the float32 phase hands over to float64.
_PATIENCE32_NEWTON = 4


def _fit_newton(obj64: _Objective, W: torch.Tensor, d: int, n_classes: int, *, tol: float, max_iter: int,
                precision: str, precondition: str | None = None) -> LogisticFit:
    """``fit_logistic(..., solver="newton-cg")``: float32 Newton-CG, then float64 Newton-CG certifying ``tol``.

    ``precondition`` None: the mean exact Hessian while the parameter count ``(d + 1) n_out`` is at most
    ``_HESS_PARAMS`` (measured on digits, 650 parameters: 98 -> 36 Hessian-vector products per model, 1.4x less
    time than the Kronecker factorization), else the Kronecker factorization (its ``(d + 1)^2 n_out^2``
    factorization and solves cost more than they save at Fashion-MNIST's 7,850 parameters).
    """
    K = W.shape[0]
    if precondition is None:
        precondition = "hessian" if W.shape[1] * W.shape[2] <= _HESS_PARAMS else "kron"
    n_iter = torch.zeros(K, dtype=torch.int64)
    n_hvp = torch.zeros(K, dtype=torch.int64)
    cache = {}
    with torch.no_grad():
        if precision in ("mixed", "float32"):
            tol32 = tol if precision == "float32" else max(tol, _SWITCH_TOL)
            W32, n_iter, g, conv, f, n_hvp = _newton_cg(
                obj64.to(torch.float32), W.float(), tol=tol32, max_iter=max_iter, precondition=precondition,
                patience=_PATIENCE32_NEWTON if precision == "mixed" else None, cache=cache)
            W = W32.double()
            cache["frozen"] = True                   # the float64 phase reuses the last mean Hessian
        if precision in ("mixed", "float64"):
            W, it2, g, conv, f, hv2 = _newton_cg(obj64, W, tol=tol, max_iter=torch.clamp(max_iter - n_iter, min=0),
                                                 precondition=precondition, cache=cache)
            n_iter, n_hvp = n_iter + it2, n_hvp + hv2
    W = W.numpy()
    return LogisticFit(coef=W[:, :d, :].copy(), intercept=W[:, d, :].copy(), n_iter=n_iter.numpy(),
                       grad_norm=g.double().numpy(), converged=conv.numpy(), objective=f.double().numpy(),
                       n_classes=n_classes, n_hvp=n_hvp.numpy())
