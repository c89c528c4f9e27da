"""The batched L2 logistic objective of a block of models, its Kronecker-factored curvature, the per-model Armijo
line search and the stopping test shared by the L-BFGS and Newton-CG solvers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LogisticFit", "logistic_logits"]


_ARMIJO_C1 = 1e-4


_MAX_BACKTRACK = 40


_CHUNK_ELEMENTS = 1 << 20


_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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


def _outputs(W0: torch.Tensor, *counters: str) -> dict:
    """The per-model result buffers of a solver over ``K`` models: final weights, objective, max |grad|, iterations,
    converged, and one int64 counter per name in ``counters``."""
    K = W0.shape[0]
    out = {"W": W0.clone(), "f": torch.full((K,), float("nan"), dtype=W0.dtype),
           "g": torch.full((K,), float("nan"), dtype=W0.dtype), "it": torch.zeros(K, dtype=torch.int64),
           "conv": torch.zeros(K, dtype=torch.bool)}
    out.update({name: torch.zeros(K, dtype=torch.int64) for name in counters})
    return out
