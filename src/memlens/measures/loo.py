"""Leave-one-out label memorization, exactly (ridge, kernel ridge) or approximately (logistic regression).

Feldman (2020), "Does learning require memorization? A short tale about a long tail", Definition 4.1
(docs/theory.md, "Label memorization"):

    mem(A, S, i) = Pr_{h~A(S)}[h(xᵢ) = yᵢ] − Pr_{h~A(S \\ i)}[h(xᵢ) = yᵢ].

For a deterministic learner (ridge, kernel ridge, L2 logistic regression at its optimum) both probabilities are
0/1 indicators: mem is +1 when the model classifies xᵢ correctly only because xᵢ is in its training set, −1 in
the rare opposite case, and 0 otherwise. The continuous versions replace correctness by the margin, the stable
logit or the loss (negated), so that every example gets a graded score. Given a
:class:`~memlens.train.closed_form.LOOResult`, all n scores cost nothing beyond the one fit that produced it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import MemlensInputError, warn
from .feldman_zhang import SIGNAL_SIGN, MemorizationResult

__all__ = ["LOOMemorizationResult", "loo_memorization"]

_SIGNALS = ("correct", "margin", "logit", "loss")


@dataclass(frozen=True, eq=False)
class LOOMemorizationResult(MemorizationResult):
    """Leave-one-out memorization of every training example: a :class:`MemorizationResult` with one IN model
    (the full fit) and one OUT model (the fit without the example).

    Attributes
    ----------
    scores : ndarray, shape (n,)
        ``signal(full fit, xᵢ) − signal(fit without i, xᵢ)``, sign-adjusted so higher = more memorized (in
        {−1, 0, 1} for ``correct``); NaN where the leave-one-out model is undefined (leverage 1).
    stderr : ndarray, shape (n,)
        Zero: the learner is deterministic, so there is no Monte-Carlo error. For ``exact=False`` (ALO) the
        approximation error of the leave-one-out model is not included.
    n_in, n_out : ndarray of int, shape (n,)
        All ones.
    mean_in, mean_out : ndarray, shape (n,)
        The (sign-adjusted) signal of the full fit and of the leave-one-out model.
    signal : str
    model : str
        ``ridge``, ``kernel-ridge`` or ``logreg``.
    exact : bool
        True for the closed forms, False for the one-Newton-step approximation.
    """

    model: str = ""
    exact: bool = True


def loo_memorization(loo, *, signal: str = "correct") -> LOOMemorizationResult:
    """Feldman's label memorization ``mem(A, S, i)`` at leave-one-out, for all n training examples at once.

    Parameters
    ----------
    loo : memlens.train.closed_form.LOOResult
        From :func:`memlens.train.closed_form_loo` (or ``ridge_loo``, ``kernel_ridge_loo``, ``logistic_alo``).
    signal : str
        ``correct`` (Feldman 2020, Def. 4.1: correctness with i minus correctness without i), ``margin``
        (``score_y − max_{c≠y} score_c``), ``logit`` (LiRA's stable logit for logistic regression; the margin for
        least-squares models) or ``loss`` (cross-entropy / squared error, negated so higher = more memorized).

    Returns
    -------
    LOOMemorizationResult
        A :class:`MemorizationResult` (higher = more memorized), usable wherever one is expected.

    Examples
    --------
    >>> from memlens.data import load_dataset
    >>> from memlens.train import closed_form_loo
    >>> mem = loo_memorization(closed_form_loo(load_dataset("digits"), model="ridge", alpha=10.0))
    >>> mem.n_memorized(0.5)   # examples correct only when included
    """
    if not (hasattr(loo, "signals") and hasattr(loo, "loo_scores") and hasattr(loo, "model")):
        raise MemlensInputError(f"loo must be a LOOResult (memlens.train.closed_form_loo(...)); "
                                f"got {type(loo).__name__}")
    if signal not in _SIGNALS:
        raise MemlensInputError(f"signal must be one of {list(_SIGNALS)}; got {signal!r}")
    sign = SIGNAL_SIGN.get(signal, 1.0)
    full = sign * loo.signals("full")[signal].astype(np.float64)
    out = sign * loo.signals("loo")[signal].astype(np.float64)
    undefined = ~np.isfinite(out)
    if undefined.any():
        warn(f"{int(undefined.sum())} example(s) have an undefined leave-one-out model (leverage 1), so their "
             "memorization is NaN; raise the regularization")
    n = full.shape[0]
    ones = np.ones(n, dtype=np.int64)
    return LOOMemorizationResult(full - out, np.zeros(n), ones, ones.copy(), full, out, signal,
                                 model=str(loo.model), exact=bool(loo.exact))
