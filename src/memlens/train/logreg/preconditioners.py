"""Preconditioners of the logistic solvers: the choice (``auto``, ``kron``, ``full-hessian``), the exact Hessian of
the objective, the inverse shared by a population, the block's mean Hessian and the diagonal fallback.
"""
from __future__ import annotations

import torch

from ..._validation import MemlensInputError
from .objective import _KronPreconditioner, _Objective

__all__ = ["PRECONDITIONERS", "SHARED_HESSIAN_MAX_PARAMS", "resolve_preconditioner", "check_shared_hessian_size"]

_HESS_ROWS = 8192


#: Initial inverse Hessians of the L-BFGS solver (``LogisticConfig.preconditioner``).
PRECONDITIONERS = ("auto", "kron", "full-hessian")


#: Largest parameter count ``(d + 1) * n_out`` per model for ``preconditioner="full-hessian"``: its inverse
#: holds ``p^2`` numbers (8,192 parameters: 256 MiB in float32, factorized from a 512 MiB float64 matrix).
SHARED_HESSIAN_MAX_PARAMS = 8192


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


def _full_hessian_inverse(full: _Objective, W: torch.Tensor, rho: float) -> torch.Tensor:
    """``(H + lambda I)^{-1}`` (float64 factorization, float32 result) of the weight-``rho`` full-data objective at
    ``W (1, d + 1, n_out)``."""
    X1 = full.X1
    n = X1.shape[0]
    P = torch.softmax(full._scores(X1, W[0], 1, W.shape[2]), dim=1)         # (n, C, 1)
    H = _hessian_matrix(X1, P, torch.full((n, 1), 1.0 / n, dtype=X1.dtype), full.binary)
    H.diagonal().add_(1.0 / (full.C * rho * n))
    return _spd_inverse(H).float()


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
