"""The noise floor of the memorization and influence counts: what the same estimator finds where there is nothing.

With few models the subsampled estimators of Feldman & Zhang (2020, Algorithm 1) are noisy, and a count such as
"65 examples with memorization >= 0.25" mixes memorized examples with examples whose estimate crossed the threshold
by chance. The noise floor is the count the same estimator gives on a **null population**: the same models and
signals, with each example's memberships reassigned at random among the models (an independent permutation of every
column of the masks, so every example keeps its number of IN models). Membership is then independent of every
signal, so every example's expected memorization and influence are 0, and whatever the estimator reports is noise.
This null construction is ours (a permutation test over models); the issue of small populations is the paper's
(Feldman & Zhang 2020, §3 choose thousands of models for this reason). The floor counts pure noise; near the
threshold the same noise also moves truly borderline examples across it, in both directions, which a null
population cannot show: that part is what the standard error (and the models it needs) describes.

It also says how many models bring a standard error to a target: the estimator's variance is
``s²_in/n_in + s²_out/n_out`` (Feldman & Zhang 2020, Algorithm 1), which with the same subset ratio falls as
``1/n_models``, so ``n_models · (stderr / target)²`` models reach the target.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._random import as_generator
from .._validation import MemlensInputError, check_int
from .feldman_zhang import influence_from_arrays, memorization_from_arrays

__all__ = ["NoiseFloor", "null_masks", "noise_floor", "models_for_stderr", "TARGET_STDERR"]

#: The standard error the audit says how many models would reach.
TARGET_STDERR = 0.05


def null_masks(masks, seed=0) -> np.ndarray:
    """Reassign every example's memberships at random among the models (each column permuted independently).

    Parameters
    ----------
    masks : array of bool, shape (n_models, n_examples)
    seed : int or numpy.random.Generator

    Returns
    -------
    ndarray of bool, shape (n_models, n_examples)
        Every column has the same number of IN models as in ``masks``.
    """
    masks = np.asarray(masks, dtype=bool)
    rng = as_generator(seed)
    keys = rng.random(masks.shape)
    order = np.argsort(keys, axis=0)
    return np.take_along_axis(masks, order, axis=0)


def models_for_stderr(stderr, n_models: int, target: float = TARGET_STDERR) -> float:
    """Models needed for a standard error ``target``, from standard errors measured with ``n_models`` models.

    ``n_models · (stderr / target)²`` (the variance falls as ``1/n_models`` at a fixed subset ratio); NaN where
    the standard error is undefined.
    """
    se = np.asarray(stderr, dtype=np.float64)
    return n_models * (se / target) ** 2


@dataclass(frozen=True, eq=False)
class NoiseFloor:
    """Counts of the memorization and influence estimators on null populations (see the module docstring).

    Attributes
    ----------
    n_memorized : float
        Mean over the null draws of the number of examples with memorization >= ``mem_threshold``.
    n_memorized_draws : ndarray of int, shape (n_draws,)
    n_pairs : float or None
        Mean number of high-influence pairs (memorization and influence over their thresholds, same label); None
        without evaluation signals.
    n_pairs_draws : ndarray of int, shape (n_draws,) or None
    stderr_median : float
        Median standard error of the real population's estimates over the examples it counts as memorized (over
        every example when it counts none).
    models_needed_median : float
        Models for which that median standard error would be ``target_stderr``.
    models_needed_max : float
        Models for which every example's standard error would be at most ``target_stderr``.
    n_models : int
    target_stderr, mem_threshold, infl_threshold : float
    """

    n_memorized: float
    n_memorized_draws: np.ndarray
    n_pairs: float | None
    n_pairs_draws: np.ndarray | None
    stderr_median: float
    models_needed_median: float
    models_needed_max: float
    n_models: int
    target_stderr: float
    mem_threshold: float
    infl_threshold: float

    def to_dict(self) -> dict[str, Any]:
        def up(x):
            return None if not math.isfinite(x) else int(math.ceil(x))
        return {"method": "the same estimators with every example's memberships permuted at random among the "
                          "models (its IN count kept); mean over draws",
                "n_draws": int(self.n_memorized_draws.size),
                "n_memorized": self.n_memorized, "n_memorized_draws": self.n_memorized_draws.tolist(),
                "n_pairs": self.n_pairs,
                "n_pairs_draws": None if self.n_pairs_draws is None else self.n_pairs_draws.tolist(),
                "stderr_median": self.stderr_median, "target_stderr": self.target_stderr,
                "models_for_target_stderr_median_memorized": up(self.models_needed_median),
                "models_for_target_stderr_every_example": up(self.models_needed_max),
                "n_models": self.n_models}


def noise_floor(masks, train_values, *, signal: str = "correct", test_values=None, train_labels=None,
                test_labels=None, mem_threshold: float = 0.25, infl_threshold: float = 0.15, n_draws: int = 3,
                seed=0, target_stderr: float = TARGET_STDERR, columns=None, memorization=None) -> NoiseFloor:
    """Noise floor of the memorization count (and of the high-influence pair count) of a population.

    Parameters
    ----------
    masks : array of bool, shape (n_models, n_train)
    train_values : array, shape (n_models, n_train)
        The signal the memorization estimate reads (e.g. correctness).
    signal : str
        Its name (the sign of ``loss`` is flipped, as in :func:`memlens.measures.memorization`).
    test_values : array, shape (n_models, n_test), optional
        The same signal on evaluation examples; with ``train_labels`` and ``test_labels`` it gives the pair floor.
    train_labels, test_labels : array, shape (n_train,), (n_test,), optional
        Pairs count only where the labels agree (Feldman & Zhang 2020, §3); None counts every pair.
    mem_threshold, infl_threshold : float
    n_draws : int >= 1
        Null populations drawn (the floor is their mean).
    seed : int or numpy.random.Generator
    target_stderr : float > 0
    columns : array of int, optional
        Training columns the counts are over (default: all); the others still train, as in the real audit.
    memorization : MemorizationResult, optional
        The real population's estimate on ``train_values``, when the caller has it (computed here otherwise).

    Returns
    -------
    NoiseFloor
    """
    masks = np.asarray(masks, dtype=bool)
    train_values = np.asarray(train_values, dtype=np.float64)
    n_draws = check_int("n_draws", n_draws, min_value=1)
    if not (isinstance(target_stderr, (int, float)) and target_stderr > 0):
        raise MemlensInputError(f"target_stderr must be a positive number; got {target_stderr!r}")
    cols = np.arange(masks.shape[1]) if columns is None else np.asarray(columns, dtype=np.int64)
    rng = as_generator(seed)
    with warnings.catch_warnings():     # undefined examples were reported by the real estimate already
        warnings.simplefilter("ignore")
        real = memorization if memorization is not None else memorization_from_arrays(masks, train_values,
                                                                                       signal=signal)
        return _floor(masks, train_values, signal, test_values, train_labels, test_labels, mem_threshold,
                      infl_threshold, n_draws, rng, target_stderr, cols, real)


def _floor(masks, train_values, signal, test_values, train_labels, test_labels, mem_threshold, infl_threshold,
           n_draws, rng, target_stderr, cols, real) -> NoiseFloor:
    se_all = real.stderr[cols]
    se_all = se_all[np.isfinite(se_all)]
    over = cols[np.nan_to_num(real.scores[cols], nan=-np.inf) >= mem_threshold]
    se = real.stderr[over]
    se = se[np.isfinite(se)]
    if not se.size:
        se = se_all
    n_models = int(masks.shape[0])
    stderr_median = float(np.median(se)) if se.size else math.nan
    need = models_for_stderr(se, n_models, target_stderr)
    need_all = models_for_stderr(se_all, n_models, target_stderr)
    mems, prs = [], []
    pairs_wanted = test_values is not None
    for _ in range(n_draws):
        null = null_masks(masks, rng)
        mem = memorization_from_arrays(null, train_values, signal=signal)
        hit = np.zeros(masks.shape[1], dtype=bool)
        hit[cols] = np.nan_to_num(mem.scores[cols], nan=-np.inf) >= mem_threshold
        mems.append(int(hit.sum()))
        if pairs_wanted:
            # pairs need only the training examples memorized under this draw: influence on those columns alone
            # (a few hundred of Fashion-MNIST's 60,000), not the whole train x test matrix
            hit_idx = np.flatnonzero(hit)
            if not hit_idx.size:
                prs.append(0)
                continue
            infl = influence_from_arrays(null[:, hit_idx], test_values, signal=signal, top_k=0,
                                         threshold=infl_threshold)
            i, j, v = hit_idx[infl.pair_train], infl.pair_eval, infl.pair_value
            keep = v >= infl_threshold
            if train_labels is not None and test_labels is not None:
                keep &= np.asarray(train_labels)[i] == np.asarray(test_labels)[j]
            prs.append(int(keep.sum()))
    return NoiseFloor(float(np.mean(mems)), np.array(mems, dtype=np.int64),
                      float(np.mean(prs)) if pairs_wanted else None,
                      np.array(prs, dtype=np.int64) if pairs_wanted else None,
                      stderr_median, float(np.median(need)) if need.size else math.nan,
                      float(np.max(need_all)) if need_all.size else math.nan, n_models, float(target_stderr),
                      float(mem_threshold), float(infl_threshold))
