"""The full-data start: every model of a population starts from the full-data fit, and L-BFGS's initial inverse
Hessian is the exact full-data Hessian's inverse, computed once per process and data set (cached).
"""
from __future__ import annotations

import hashlib
import warnings

import numpy as np
import torch

from ..._validation import MemlensInputError, check_array, check_float, check_int, check_labels
from .lbfgs import _lbfgs_phases
from .objective import _Objective
from .preconditioners import _full_hessian_inverse, _SharedHessian, check_shared_hessian_size

__all__ = ["full_hessian_start"]


_SHARED_CACHE: dict = {}


_SHARED_STAGE1_TOL = 1e-4


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
