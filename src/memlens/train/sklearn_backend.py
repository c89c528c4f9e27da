"""Population training with any scikit-learn classifier: one clone per model, joblib processes, 1 BLAS thread.

This is the reference path (and the way to audit models memlens does not batch): each model is a fresh
``sklearn.base.clone`` of the estimator fitted on its IN rows; ``predict_proba`` on both splits is mapped
into the full class set (a class absent from a model's subset gets probability 0) and turned into the
standard signals in the worker, so only ``(n_models, n_examples)`` arrays travel between processes.
BLAS is limited to one thread per process (docs/performance.md, "BLAS threads": default threading makes small
scikit-learn fits 15-18x slower on this machine).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from .._threads import limit_threads
from .._validation import MemlensInputError
from ..population import signals_from_proba

__all__ = ["is_sklearn_classifier", "fit_predict_block", "check_sklearn_classifier"]


def is_sklearn_classifier(obj) -> bool:
    """True for an (unfitted) object with ``fit``, ``predict_proba`` and ``get_params`` (a classifier)."""
    return all(callable(getattr(obj, a, None)) for a in ("fit", "predict_proba", "get_params"))


def check_sklearn_classifier(estimator):
    if not is_sklearn_classifier(estimator):
        raise MemlensInputError(
            f"model must be 'logreg', a LogisticConfig, or a scikit-learn classifier with fit and predict_proba "
            f"for backend='sklearn'; got {type(estimator).__name__}")
    return estimator


def _full_proba(est, X, n_classes: int) -> np.ndarray:
    proba = np.asarray(est.predict_proba(X), dtype=np.float64)
    out = np.zeros((X.shape[0], n_classes))
    out[:, np.asarray(est.classes_, dtype=np.int64)] = proba
    return out


def fit_predict_block(estimator, X_train, y_train, X_test, y_test, masks, seeds, n_classes: int) -> dict:
    """Fit one clone per mask row and return its signals.

    Parameters
    ----------
    estimator : scikit-learn classifier (unfitted template; it is cloned, never fitted itself)
    X_train, y_train, X_test, y_test : arrays
    masks : bool array, shape (k, n_train)
    seeds : int array, shape (k,)
        Passed as ``random_state = seed % 2**32`` to estimators that have a ``random_state`` parameter.
    n_classes : int

    Returns
    -------
    dict with ``train`` and ``test`` signal dicts (``(k, n)`` float32 each), ``n_iter`` (k,) (-1 where the
    estimator reports none), ``not_converged`` (k,) bool (a ``ConvergenceWarning`` was raised) and ``proba``, a
    function ``proba(X_rows) -> (k, rows, n_classes)`` of the fitted clones (for label-only queries).
    """
    k = masks.shape[0]
    p_tr = np.empty((k, X_train.shape[0], n_classes))
    p_te = np.empty((k, X_test.shape[0], n_classes))
    n_iter = np.full(k, -1, dtype=np.int64)
    not_conv = np.zeros(k, dtype=bool)
    has_rs = "random_state" in estimator.get_params()
    fitted = []
    with limit_threads(1):
        for j in range(k):
            est = clone(estimator)
            fitted.append(est)
            if has_rs:
                est.set_params(random_state=int(seeds[j]) % (2 ** 32))
            rows = masks[j]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                est.fit(X_train[rows], y_train[rows])
            not_conv[j] = any(issubclass(w.category, ConvergenceWarning) for w in caught)
            it = getattr(est, "n_iter_", None)
            if it is not None:
                n_iter[j] = int(np.max(it))
            p_tr[j] = _full_proba(est, X_train, n_classes)
            if X_test.shape[0]:
                p_te[j] = _full_proba(est, X_test, n_classes)
    def proba(X):
        with limit_threads(1):
            return np.stack([_full_proba(est, X, n_classes) for est in fitted])

    return {"train": signals_from_proba(p_tr, y_train), "test": signals_from_proba(p_te, y_test),
            "n_iter": n_iter, "not_converged": not_conv, "proba": proba}
