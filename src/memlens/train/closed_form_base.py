"""What the closed-form models share: input checks, the full-split standardization, the kernels, symmetric
positive-definite inverses, and the signals of class scores (:func:`score_signals`).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .._validation import MemlensInputError, check_array, check_float, check_int, check_labels
from .._version import __version__
from ..data import Dataset

__all__ = ["MODELS", "KERNELS", "score_signals"]


#: Model families with a closed-form (ridge, kernel ridge) or approximate (logreg) leave-one-out.
MODELS = ("ridge", "kernel-ridge", "logreg")


#: Kernels of kernel ridge.
KERNELS = ("rbf", "linear")


#: 1 − leverage below this makes a leave-one-out model undefined (the example is interpolated exactly).
_LEVERAGE_EPS = 1e-10


#: Work arrays of at most this many float64 entries per block (64 MiB).
_BLOCK_ENTRIES = 8 * 2**20


def _version() -> str:
    return __version__


def _check_model(model: str) -> str:
    if model not in MODELS:
        raise MemlensInputError(f"model must be one of {list(MODELS)}; got {model!r}")
    return model


def _check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise MemlensInputError(f"kernel must be one of {list(KERNELS)}; got {kernel!r}")
    return kernel


def _check_alpha(alpha) -> float:
    return check_float("alpha", alpha, min_value=0.0, min_inclusive=False,
                       hint="(the ridge penalty; use a small positive value such as 1e-3 for near-least-squares)")


def _check_C(C) -> float:
    return check_float("C", C, min_value=0.0, min_inclusive=False,
                       hint="(sklearn's inverse regularization strength; larger C = weaker penalty)")


def _prepare(X, y, X_test, y_test, n_classes, *, min_rows: int = 2):
    """Validated float64 features and int64 labels; ``n_classes`` from the labels if not given."""
    X = check_array("X", X, ndim=2, dtype=np.float64, min_rows=min_rows)
    y = check_labels("y", y, n_rows=X.shape[0])
    if X_test is not None:
        X_test = check_array("X_test", X_test, ndim=2, dtype=np.float64)
        if X_test.shape[1] != X.shape[1]:
            raise MemlensInputError(f"X_test must have the same number of features as X ({X.shape[1]}); "
                                    f"got {X_test.shape[1]}")
        if y_test is None:
            raise MemlensInputError("y_test must be given with X_test (one label per test row)")
        y_test = check_labels("y_test", y_test, n_rows=X_test.shape[0])
    elif y_test is not None:
        raise MemlensInputError("y_test was given without X_test; pass both or neither")
    if np.unique(y).size < 2:
        raise MemlensInputError(f"y must contain at least two distinct classes to fit a classifier; "
                                f"got only class {int(y[0])}")
    top = int(max(y.max(initial=-1), -1 if y_test is None else y_test.max(initial=-1))) + 1
    if n_classes is None:
        n_classes = top
    n_classes = check_int("n_classes", n_classes, min_value=2, hint="(a classifier needs two classes)")
    if top > n_classes:
        raise MemlensInputError(f"labels must be < n_classes={n_classes}; got maximum label {top - 1}")
    return X, y, X_test, y_test, n_classes


def _standardizer(X: np.ndarray, standardize: bool):
    if not standardize:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    # constant features get scale 1, with the same rule as memlens.train.standardized_features
    scale[scale <= 1e-12 * max(1.0, float(np.abs(mean).max(initial=0.0)))] = 1.0
    return mean, scale


def _augment(Z: np.ndarray) -> np.ndarray:
    return np.hstack([Z, np.ones((Z.shape[0], 1))])


def _onehot(y: np.ndarray, n_classes: int) -> np.ndarray:
    Y = np.zeros((y.shape[0], n_classes))
    Y[np.arange(y.shape[0]), y] = 1.0
    return Y


def _kernel(A: np.ndarray, B: np.ndarray, kernel: str, gamma: float) -> np.ndarray:
    if kernel == "linear":
        return A @ B.T
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    np.maximum(sq, 0.0, out=sq)
    return np.exp(-gamma * sq)


def _spd_inverse(A: np.ndarray, what: str) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix via Cholesky (LAPACK potrf + potri)."""
    c, info = sla.lapack.dpotrf(A, lower=False, clean=False)
    if info != 0:
        raise MemlensInputError(f"{what} is not positive definite in floating point; raise the regularization")
    inv, info = sla.lapack.dpotri(c, lower=False)
    if info != 0:  # pragma: no cover - potrf succeeded, so the factor is invertible
        raise MemlensInputError(f"{what} could not be inverted; raise the regularization")
    upper = np.triu(inv)
    return upper + np.triu(inv, 1).T


def _kernel_ridge_inverse(Z: np.ndarray, K: np.ndarray, alpha: float, kernel: str) -> np.ndarray:
    """``G = (K + alpha I)⁻¹``, shape (n, n). For the linear kernel with d < n, by Woodbury through the d×d
    primal system, ``G = (I − Z (ZᵀZ + alpha I)⁻¹ Zᵀ) / alpha`` (O(n² d) instead of O(n³))."""
    n, d = Z.shape
    if kernel == "linear" and d < n:
        S = Z.T @ Z
        S[np.arange(d), np.arange(d)] += alpha
        Q = Z @ _spd_inverse(S, "Z'Z + alpha I")
        G = -(Q @ Z.T)
        G[np.arange(n), np.arange(n)] += 1.0
        return G / alpha
    Kr = K.copy()
    Kr[np.arange(n), np.arange(n)] += alpha
    return _spd_inverse(Kr, "K + alpha I")


def score_signals(scores, y, *, probabilistic: bool, dtype=np.float32) -> dict[str, np.ndarray]:
    """Per-example signals of class scores, higher = the model fits the example better (``loss``: lower).

    Parameters
    ----------
    scores : array, shape (n_models, n_examples, n_classes)
        Class scores: logits (``probabilistic=True``, logistic regression) or least-squares outputs (ridge,
        kernel ridge).
    y : array of int, shape (n_examples,)
    probabilistic : bool
        True for logits: ``logit`` (LiRA's stable logit ``z_y − log Σ_{c≠y} exp z_c``, Carlini et al. 2022,
        §IV-B), ``loss`` (cross-entropy) and ``correct``, as :func:`memlens.population.signals_from_logits`.
        False for least-squares scores, which are no probabilities: ``logit`` is the score margin
        ``f_y − max_{c≠y} f_c`` (monotone in the fit, the role LiRA's logit plays), ``loss`` is the squared
        error ``½‖f − e_y‖²`` the model minimizes, ``correct`` is ``argmax f = y``.
    dtype : numpy dtype
        float32 (as stored in a Population) or float64 (for differences of nearly equal signals, as in
        leave-one-out memorization of confident examples).

    Returns
    -------
    dict of arrays, shape (n_models, n_examples): ``logit``, ``loss``, ``correct``, ``pred`` (argmax) and ``margin``
    (``score_y − max_{c≠y} score_c`` in both cases). Rows with a NaN score (an undefined LOO model) are NaN.
    """
    z = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if z.ndim != 3 or z.shape[1] != y.shape[0]:
        raise MemlensInputError(f"scores must have shape (n_models, n_examples={y.shape[0]}, n_classes); "
                                f"got {z.shape}")
    return _signals_classfirst(np.ascontiguousarray(np.moveaxis(z, 2, 0)), y, probabilistic, dtype)


def _signals_classfirst(zt: np.ndarray, y: np.ndarray, probabilistic: bool, dtype=np.float32) -> dict:
    """:func:`score_signals` on class-first scores ``(n_classes, n_models, n_examples)`` (contiguous per class).

    One pass over the classes with elementwise operations: much faster than reductions over a short last axis.
    ``correct`` follows ``argmax`` (the first maximal class wins ties).
    """
    C = zt.shape[0]
    bad = ~np.isfinite(zt).all(axis=0)
    if bad.any():
        zt = np.where(bad[None], 0.0, zt)
    z_y = np.zeros(zt.shape[1:])
    omax = np.full(zt.shape[1:], -np.inf)
    best = np.full(zt.shape[1:], -np.inf)
    best_c = np.zeros(zt.shape[1:], dtype=np.int64)
    for c in range(C):
        is_y = (y == c)[None, :]
        zc = zt[c]
        np.copyto(z_y, zc, where=is_y)
        np.maximum(omax, np.where(is_y, -np.inf, zc), out=omax)
        up = zc > best
        np.copyto(best, zc, where=up)
        best_c[up] = c
    out = {"margin": z_y - omax, "correct": (best_c == y[None, :]).astype(np.float64), "pred": best_c}
    if probabilistic:
        acc = np.zeros(zt.shape[1:])
        for c in range(C):
            acc += np.where((y == c)[None, :], 0.0, np.exp(zt[c] - omax))
        lse_others = omax + np.log(acc)
        out["logit"] = z_y - lse_others
        out["loss"] = np.logaddexp(z_y, lse_others) - z_y
    else:
        out["logit"] = out["margin"]
        sq = np.zeros(zt.shape[1:])
        for c in range(C):
            sq += (zt[c] - (y == c)[None, :]) ** 2
        out["loss"] = 0.5 * sq
    out = {k: out[k].astype(dtype) for k in ("logit", "loss", "correct", "margin", "pred")}
    if bad.any():
        for v in out.values():
            v[bad] = np.nan
    return out


def _check_index(index, n: int, name: str = "index") -> np.ndarray:
    if index is None:
        return np.arange(n)
    idx = np.asarray(index)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise MemlensInputError(f"{name} as a boolean mask must have shape ({n},); got {idx.shape}")
        return np.flatnonzero(idx)
    if idx.ndim == 0:
        idx = idx[None]
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise MemlensInputError(f"{name} must be a 1-d array of training-example indices; got {idx!r:.60}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise MemlensInputError(f"{name} must hold indices in [0, {n}); got range [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64)


def _resolve_gamma(Z: np.ndarray, kernel: str, gamma) -> float | None:
    if kernel == "linear":
        return None
    if gamma is None:
        var = float(Z.var())
        return 1.0 / (Z.shape[1] * var) if var > 0 else 1.0
    return check_float("gamma", gamma, min_value=0.0, min_inclusive=False,
                       hint="(the RBF width: k(x, x') = exp(-gamma ||x - x'||^2))")


def _log_softmax(Zl: np.ndarray) -> np.ndarray:
    m = Zl.max(axis=1, keepdims=True)
    return Zl - m - np.log(np.exp(Zl - m).sum(axis=1, keepdims=True))


def _dataset_arrays(dataset):
    if not isinstance(dataset, Dataset):
        raise MemlensInputError(f"dataset must be a memlens.data.Dataset (load_dataset(name) or "
                                f"memlens.data.from_arrays(...)); got {type(dataset).__name__}")
    X_test = dataset.X_test if dataset.n_test else None
    y_test = dataset.y_test if dataset.n_test else None
    return dataset.X_train, dataset.y_train, X_test, y_test, dataset.n_classes
