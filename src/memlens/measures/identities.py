"""Feldman's identities checked on a population (Feldman 2020, "Does learning require memorization?", §4).

**Lemma 4.2** (memorization equals the generalization gap):
``(1/n) E_S Σ_i mem(A, S, i) = E_{S'}[err_P(A, S')] − E_S[err_S(A, S)]``: the average label memorization equals
the error on unseen examples of the distribution minus the training error. On a population of subset-trained
models (:func:`memorization_gap`), the left side is the mean Feldman–Zhang memorization over the training pool;
the right side is measured two ways: each model's error on the pool examples it did not train on minus its error
on those it did (the same distribution by construction; the two sides are algebraically equal when every example is IN for the same
number of models and every model has the same number of IN examples — our observation — and close otherwise, as
tested), and each model's test error minus its training error (the held-out test split).
"""
from __future__ import annotations

import numpy as np

from .._validation import MemlensInputError
from ..population import Population
from .feldman_zhang import memorization

__all__ = ["memorization_gap"]


def memorization_gap(pop: Population) -> dict:
    """Both sides of Lemma 4.2 on a population with a ``correct`` signal (see the module docstring).

    Returns
    -------
    dict
        ``mean_memorization`` (left side), ``gap_pool`` (error on non-member pool examples minus error on members,
        mean over models) with ``gap_pool_se``, ``gap_test`` (test error minus training error, mean over models)
        with ``gap_test_se``, ``n_models``.
    """
    if not isinstance(pop, Population):
        raise MemlensInputError(f"pop must be a memlens.Population; got {type(pop).__name__}")
    if "correct" not in pop.signals.get("train", {}):
        raise MemlensInputError("pop needs a 'correct' signal on its 'train' split (label memorization)")
    masks = pop.masks
    c = pop.signal("train", "correct").astype(np.float64)
    mem = memorization(pop, signal="correct").scores
    err_in = 1 - (c * masks).sum(1) / masks.sum(1)
    err_out = 1 - (c * ~masks).sum(1) / np.maximum((~masks).sum(1), 1)
    gap_pool = err_out - err_in
    out = {"mean_memorization": float(np.nanmean(mem)), "gap_pool": float(gap_pool.mean()),
           "gap_pool_se": float(gap_pool.std(ddof=1) / np.sqrt(len(gap_pool))) if len(gap_pool) > 1 else None,
           "n_models": int(masks.shape[0])}
    if "correct" in pop.signals.get("test", {}):
        gap_test = (1 - pop.signal("test", "correct").astype(np.float64).mean(1)) - err_in
        out["gap_test"] = float(gap_test.mean())
        out["gap_test_se"] = float(gap_test.std(ddof=1) / np.sqrt(len(gap_test))) if len(gap_test) > 1 else None
    return out
