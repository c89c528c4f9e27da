"""Exact ridge and kernel-ridge refits on every row of a mask matrix: n models for the price of one factorization.

``β_S = β̂ − A⁻¹ X̃_Oᵀ (I − H_OO)⁻¹ (Y_O − Ŷ_O)`` (Woodbury, k = |O| left out) or a rank-k downdate of the normal
equations ``A_S = A − X̃_OᵀX̃_O``; ``a_S = a − G[:, O] G_OO⁻¹ a_O`` for kernel ridge, whichever is cheaper per model.
"""
from __future__ import annotations

import hashlib

import numpy as np
import scipy.linalg as sla

from .._validation import MemlensInputError, check_array, check_int, check_masks
from ..population import Population
from .closed_form_base import (
    _BLOCK_ENTRIES,
    _augment,
    _check_alpha,
    _check_kernel,
    _dataset_arrays,
    _kernel,
    _kernel_ridge_inverse,
    _onehot,
    _prepare,
    _resolve_gamma,
    _signals_classfirst,
    _spd_inverse,
    _standardizer,
    _version,
)

__all__ = ["subset_refit_scores", "closed_form_population"]


def _ridge_subset_coefs(Xa, Y, masks, alpha):
    """Exact ridge coefficients ``(K, D, C)`` for every mask row, choosing per row the cheapest exact route."""
    n, D = Xa.shape
    A0 = Xa.T @ Xa
    b0 = Xa.T @ Y
    A = A0.copy()
    A[np.arange(D - 1), np.arange(D - 1)] += alpha
    Ainv = _spd_inverse(A, "the ridge normal matrix X'X + alpha R")
    beta = Ainv @ b0
    E = Y - Xa @ beta
    reg = np.full(D, alpha)
    reg[-1] = 0.0
    out = np.empty((masks.shape[0], D, Y.shape[1]))
    counts = {"full": 0, "woodbury": 0, "downdate": 0, "direct": 0}
    for k, row in enumerate(masks):
        out_idx = np.flatnonzero(~row)
        ko, m = out_idx.size, n - out_idx.size
        if ko == 0:
            out[k] = beta
            counts["full"] += 1
            continue
        cost_wood = ko * D * D + ko**3 / 3.0
        cost_gram = min(ko, m) * D * D + D**3 / 3.0
        if cost_wood < cost_gram:
            # leave-k-out PRESS: β_S = β − A⁻¹X̃_Oᵀ (I − H_OO)⁻¹ E_O
            XO = Xa[out_idx]
            WO = Ainv @ XO.T  # (D, k)
            IH = np.eye(ko) - XO @ WO
            out[k] = beta - WO @ sla.solve(IH, E[out_idx], assume_a="sym")
            counts["woodbury"] += 1
            continue
        if ko <= m:
            XO = Xa[out_idx]
            AS = A0 - XO.T @ XO
            bS = b0 - XO.T @ Y[out_idx]
            counts["downdate"] += 1
        else:
            in_idx = np.flatnonzero(row)
            XS = Xa[in_idx]
            AS = XS.T @ XS
            bS = XS.T @ Y[in_idx]
            counts["direct"] += 1
        AS[np.arange(D), np.arange(D)] += reg
        out[k] = sla.cho_solve(sla.cho_factor(AS), bS)
    return out, counts


def _kernel_setup(Z, K, Y, alpha, kernel):
    """``(K + alpha I, G = (K + alpha I)⁻¹, a = G Y)``: the per-dataset part of kernel-ridge subset refits."""
    n = K.shape[0]
    Kr = K.copy()
    Kr[np.arange(n), np.arange(n)] += alpha
    G = _kernel_ridge_inverse(Z, K, alpha, kernel)
    return Kr, G, G @ Y


def _kernel_subset_coefs(Z, K, Y, masks, alpha, kernel, setup=None):
    """Exact dual coefficients ``(K_models, n, C)`` (zero on left-out rows) for every mask row.

    ``setup``: :func:`_kernel_setup`'s result for these arguments, when the caller has it already."""
    n = K.shape[0]
    Kr, G, a = _kernel_setup(Z, K, Y, alpha, kernel) if setup is None else setup
    out = np.zeros((masks.shape[0], n, Y.shape[1]))
    counts = {"full": 0, "woodbury": 0, "direct": 0}
    for k, row in enumerate(masks):
        out_idx = np.flatnonzero(~row)
        ko = out_idx.size
        if ko == 0:
            out[k] = a
            counts["full"] += 1
        elif ko < n - ko:
            # a_S = a − G[:, O] G_OO⁻¹ a_O (block inverse of G)
            GO = G[out_idx]  # rows O (contiguous gather); G is symmetric, so G[:, O] = GOᵀ
            out[k] = a - GO.T @ sla.cho_solve(sla.cho_factor(GO[:, out_idx]), a[out_idx])
            out[k, out_idx] = 0.0
            counts["woodbury"] += 1
        else:
            in_idx = np.flatnonzero(row)
            out[k, in_idx] = sla.cho_solve(sla.cho_factor(Kr[np.ix_(in_idx, in_idx)]), Y[in_idx])
            counts["direct"] += 1
    return out, counts


def _check_subset_inputs(X, y, masks, model, alpha, kernel, gamma, standardize, n_classes, X_eval):
    X, y, _, _, n_classes = _prepare(X, y, None, None, n_classes)
    masks = check_masks("masks", masks, n_examples=X.shape[0])
    if model not in ("ridge", "kernel-ridge"):
        raise MemlensInputError(f"model must be 'ridge' or 'kernel-ridge' for exact subset refits; got "
                                f"{model!r}; logistic regression has no exact closed form: use "
                                "memlens.train.train_population(..., model='logreg')")
    empty = np.flatnonzero(masks.sum(axis=1) == 0)
    if empty.size:
        raise MemlensInputError(f"masks rows {empty[:5].tolist()} select no training example; every model "
                                "needs at least one example")
    alpha = _check_alpha(alpha)
    kernel = _check_kernel(kernel)
    mean, scale = _standardizer(X, standardize)
    Z = (X - mean) / scale
    gamma = _resolve_gamma(Z, kernel, gamma) if model == "kernel-ridge" else None
    evals = []
    for name, Xe in X_eval:
        Xe = check_array(name, Xe, ndim=2, dtype=np.float64)
        if Xe.shape[1] != X.shape[1]:
            raise MemlensInputError(f"{name} must have {X.shape[1]} features (as X); got {Xe.shape[1]}")
        evals.append((Xe - mean) / scale)
    return Z, y, masks, alpha, kernel, gamma, n_classes, evals


#: The last kernel-ridge setup (kernel matrices, inverse), reused by the next call on the same data: a population
#: fitted shard by shard factorizes the n x n kernel once instead of once per shard. One entry, at most this size.
_KERNEL_CACHE: dict = {}


_KERNEL_CACHE_BYTES = 512 * 2**20


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1))
    return h.hexdigest()


def _kernel_designs_and_setup(Z, Y, alpha, kernel, gamma, evals):
    """``(K, designs, setup)`` of kernel ridge on ``Z``, from the one-entry cache when the data are the same."""
    key = (_digest(Z, Y, *evals), float(alpha), kernel, gamma)
    hit = _KERNEL_CACHE.get(key)
    if hit is not None:
        return hit
    K = _kernel(Z, Z, kernel, gamma)
    designs = [K if E.shape == Z.shape and np.array_equal(E, Z) else _kernel(E, Z, kernel, gamma) for E in evals]
    out = (K, designs, _kernel_setup(Z, K, Y, alpha, kernel))
    _KERNEL_CACHE.clear()
    arrays = list({id(a): a for a in (K, *designs, *out[2])}.values())
    if sum(a.nbytes for a in arrays) <= _KERNEL_CACHE_BYTES:
        for a in arrays:
            a.setflags(write=False)   # shared by later calls: nobody may change them in place
        _KERNEL_CACHE[key] = out
    return out


def _subset_scores(Z, y, masks, model, alpha, kernel, gamma, n_classes, evals):
    """Class-first scores ``(n_classes, n_models, m)`` of every mask row's exact refit on each eval set."""
    Y = _onehot(y, n_classes)
    if model == "ridge":
        coefs, counts = _ridge_subset_coefs(_augment(Z), Y, masks, alpha)
        designs = [_augment(E) for E in evals]
    else:
        K, designs, setup = _kernel_designs_and_setup(Z, Y, alpha, kernel, gamma, evals)
        coefs, counts = _kernel_subset_coefs(Z, K, Y, masks, alpha, kernel, setup=setup)
    # one GEMM per class: (n_models, F) @ (F, m)
    return [np.stack([coefs[:, :, c] @ Phi.T for c in range(n_classes)]) for Phi in designs], counts


def subset_refit_scores(X, y, masks, *, model: str = "ridge", alpha: float = 1.0, kernel: str = "rbf",
                        gamma: float | None = None, X_eval=None, standardize: bool = True,
                        n_classes: int | None = None) -> np.ndarray:
    """Exact scores of ridge / kernel ridge refit on every mask row, without refitting from scratch.

    Row k's model is the fit on ``{i : masks[k, i]}``. Ridge uses, per row, whichever exact route costs fewer
    flops: leave-k-out PRESS by Woodbury, ``β_S = β̂ − A⁻¹X̃_Oᵀ(I − H_OO)⁻¹(Y_O − Ŷ_O)`` (k = |O| left out,
    cheapest when k < d), or a rank-k downdate ``A_S = A − X̃_OᵀX̃_O`` of the normal equations (or the direct
    Gram when the subset is the smaller side). Kernel ridge uses the block inverse
    ``a_S = a − G[:, O] G_OO⁻¹ a_O`` with ``G = (K + alpha I)⁻¹`` when |O| < |S| (cost |O|³ instead of |S|³),
    else a direct solve.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array of int, shape (n,)
    masks : array of bool, shape (n_models, n)
    model : ``"ridge"`` or ``"kernel-ridge"``
    alpha, kernel, gamma, standardize, n_classes
        As in :func:`ridge_loo` / :func:`kernel_ridge_loo` (standardization statistics and the default gamma
        come from all n rows, as for the population trainers).
    X_eval : array, shape (m, d), optional
        Where to evaluate the models (default: ``X``).

    Returns
    -------
    ndarray of float64, shape (n_models, m, n_classes)
    """
    X_eval = X if X_eval is None else X_eval
    Z, y, masks, alpha, kernel, gamma, n_classes, evals = _check_subset_inputs(
        X, y, masks, model, alpha, kernel, gamma, standardize, n_classes, [("X_eval", X_eval)])
    (scores,), _ = _subset_scores(Z, y, masks, model, alpha, kernel, gamma, n_classes, evals)
    return np.moveaxis(scores, 0, 2)


def closed_form_population(dataset, *, masks, model: str = "ridge", alpha: float = 1.0, kernel: str = "rbf",
                           gamma: float | None = None, standardize: bool = True, model_offset: int = 0,
                           block_size: int | None = None, progress=None) -> Population:
    """A population of exact ridge / kernel-ridge refits, one model per mask row, as a :class:`~memlens.Population`.

    The models are exactly those of refitting on each subset (see :func:`subset_refit_scores` for the
    Woodbury / downdate routes), so every measure and attack runs on them as on a trained population.

    Parameters
    ----------
    dataset : memlens.data.Dataset
    masks : array of bool, shape (n_models, n_train)
    model : ``"ridge"`` or ``"kernel-ridge"``
    alpha, kernel, gamma, standardize
        As in :func:`ridge_loo` / :func:`kernel_ridge_loo`.
    model_offset : int
        Global index of the first row (recorded as the model's seed; the fits are deterministic).
    block_size : int, optional
        Models per block (bounds memory); default: as many as fit in about 64 MiB of scores.
    progress : callable, optional
        ``progress(n_models_done)`` after each block.

    Returns
    -------
    Population
        Signals ``logit`` (score margin), ``loss`` (squared error), ``correct``, ``margin`` on ``train`` and
        ``test`` (see :func:`score_signals`); provenance records the routes used per model.
    """
    X, y, X_test, y_test, n_classes = _dataset_arrays(dataset)
    model_offset = check_int("model_offset", model_offset, min_value=0)
    evals_in = [("X_train", X)] + ([("X_test", X_test)] if X_test is not None else [])
    Z, y, masks, alpha, kernel, gamma, n_classes, evals = _check_subset_inputs(
        X, y, masks, model, alpha, kernel, gamma, standardize, n_classes, evals_in)
    n_models = masks.shape[0]
    n_eval = sum(E.shape[0] for E in evals)
    if block_size is None:
        block_size = max(1, _BLOCK_ENTRIES // max(1, n_eval * n_classes))
    block_size = check_int("block_size", block_size, min_value=1)
    labels = [y] + ([y_test] if y_test is not None else [])
    names = ["train", "test"][:len(evals)]
    parts: dict = {s: [] for s in names}
    totals: dict = {}
    for start in range(0, n_models, block_size):
        block = masks[start:start + block_size]
        scores, counts = _subset_scores(Z, y, block, model, alpha, kernel, gamma, n_classes, evals)
        for s, sc, yy in zip(names, scores, labels):
            parts[s].append(_signals_classfirst(sc, yy, probabilistic=False))
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        if progress is not None:
            progress(min(start + block_size, n_models))
    signals = {s: {k: np.concatenate([p[k] for p in parts[s]]) for k in parts[s][0]} for s in names}
    params = {"alpha": alpha, "standardize": bool(standardize)}
    if model == "kernel-ridge":
        params.update({"kernel": kernel, "gamma": gamma})
    prov = {"source": "exact closed-form subset refits", "model": model, "params": params,
            "routes": totals, "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
            "memlens_version": _version()}
    return Population(masks, signals, model_offset + np.arange(n_models, dtype=np.int64),
                      dict(zip(names, labels)), prov)
