"""``fit_logistic``: many L2 logistic regressions at once, to a certified tolerance (see :mod:`memlens.train.logreg`).
"""
from __future__ import annotations

import numpy as np
import torch

from ..._validation import MemlensInputError, check_array, check_float, check_int, check_labels
from .lbfgs import _lbfgs_phases
from .newton_cg import _fit_newton
from .objective import LogisticFit, _Objective
from .preconditioners import PRECONDITIONERS, check_shared_hessian_size, resolve_preconditioner
from .shared_start import _given_shared_start, _shared_start

__all__ = ["SOLVERS", "fit_logistic"]


#: Solvers of :func:`fit_logistic` (``LogisticConfig.solver``).
SOLVERS = ("lbfgs", "newton-cg")


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
        number of iterations would leave the held-out example's influence in the start (docs/performance.md, "Many
        logistic regressions at once").
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
