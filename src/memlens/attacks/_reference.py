"""Leave-one-model-out reference statistics shared by every membership attack.

The target model is one row ``target`` of the population; its reference (shadow) models are the other rows (or the
rows given in ``references``). The IN/OUT means and sums of squares of every example over the references are
computed once for the whole pool (:class:`_Sums`) and the target's own row subtracted per target, so attacking every
model in turn costs one pass over the population.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .._validation import MemlensInputError, check_int
from ..population import SIGNAL_SIGN
from .results import AttackResult

__all__ = []


_CHUNK_ELEMENTS = 2_000_000


def _check_pop(pop) -> None:
    if not (hasattr(pop, "masks") and hasattr(pop, "signal")):
        raise MemlensInputError(f"pop must be a memlens Population; got {type(pop).__name__}; build one with "
                                "memlens.train or memlens.attacks.population_from_signals")


def _check_target(pop, target) -> int:
    n = pop.masks.shape[0]
    return check_int("target", target, min_value=0, max_value=n - 1,
                     hint=f"(it is the row of the model to attack, 0 .. n_models-1 = {n - 1})")


def _pool(pop, targets: np.ndarray, references) -> np.ndarray:
    """Boolean (n_models,) of the rows usable as references; the target's own row is removed later."""
    n_models = pop.masks.shape[0]
    if references is None:
        pool = np.asarray(pop.known_rows, dtype=bool).copy()   # a model of unknown membership is no reference
        if n_models < 2:
            raise MemlensInputError("the population must have at least 2 models (a target and a reference); "
                                    f"got n_models={n_models}")
        return pool
    refs = np.asarray(references)
    if refs.dtype == bool:
        if refs.shape != (n_models,):
            raise MemlensInputError(f"references as a boolean mask must have shape ({n_models},); got {refs.shape}")
        refs = np.flatnonzero(refs)
    if refs.ndim != 1 or refs.size == 0 or not np.issubdtype(refs.dtype, np.integer):
        raise MemlensInputError(f"references must be a non-empty 1-d array of model rows; got {references!r}")
    if refs.min() < 0 or refs.max() >= n_models:
        raise MemlensInputError(f"references must be model rows in 0 .. {n_models - 1}; got values from "
                                f"{refs.min()} to {refs.max()}")
    clash = np.intersect1d(refs, targets)
    if clash.size:
        raise MemlensInputError(f"references must not contain the target model; got target {int(clash[0])} "
                                "among them")
    pool = np.zeros(n_models, dtype=bool)
    pool[refs] = True
    return pool


def _sign(signal: str) -> float:
    return SIGNAL_SIGN.get(signal, 1.0)


def _values(pop, signal: str, split: str = "train") -> np.ndarray:
    values = np.asarray(pop.signal(split, signal), dtype=np.float64)
    if not np.all(np.isfinite(values)):
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        raise MemlensInputError(f"signal {signal!r} of split {split!r} contains {bad} NaN or infinite value(s); "
                                "every model needs a finite signal on every example (recompute the signals, e.g. "
                                "with memlens.population.signals_from_logits)")
    return values


def _chunks(targets: np.ndarray, n_examples: int):
    size = max(1, _CHUNK_ELEMENTS // max(n_examples, 1))
    for start in range(0, targets.size, size):
        yield targets[start:start + size]


@dataclass
class _Stats:
    """Per-target leave-one-model-out IN/OUT statistics, arrays (n_targets, n_examples)."""

    n_in: np.ndarray
    n_out: np.ndarray
    mean_in: np.ndarray
    mean_out: np.ndarray
    ss_in: np.ndarray   # sum of squared deviations from mean_in
    ss_out: np.ndarray


class _Sums:
    """Column sums over the reference pool, computed once; per-target statistics subtract the target's row.

    Values are centred per example first (the centre cancels in every variance and is added back to the means),
    which keeps ``sum(v²) − (sum v)²/n`` accurate.
    """

    def __init__(self, masks: np.ndarray, values: np.ndarray, pool: np.ndarray, squares: bool = True):
        self.masks = masks
        self.values = values
        self.pool = pool
        m = masks[pool]
        v = values[pool]
        self.center = v.mean(axis=0) if v.shape[0] else np.zeros(values.shape[1])
        c = v - self.center
        mf = m.astype(np.float64)
        self.N_in = mf.sum(axis=0)
        self.N_all = float(m.shape[0])
        self.S_in = np.einsum("ki,ki->i", mf, c)
        self.S_all = c.sum(axis=0)
        if squares:
            c2 = c * c
            self.Q_in = np.einsum("ki,ki->i", mf, c2)
            self.Q_all = c2.sum(axis=0)
        self.squares = squares

    def stats(self, targets: np.ndarray) -> _Stats:
        mt = self.masks[targets]                                   # (T, n) bool
        inpool = self.pool[targets][:, None].astype(np.float64)    # 1 where the target's row is in the sums
        vt = (self.values[targets] - self.center) * inpool
        mtf = mt.astype(np.float64) * inpool
        otf = (~mt).astype(np.float64) * inpool
        n_in = self.N_in[None, :] - mtf
        n_out = (self.N_all - self.N_in)[None, :] - otf
        s_in = self.S_in[None, :] - mtf * vt
        s_out = (self.S_all - self.S_in)[None, :] - otf * vt
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_in = s_in / n_in
            mean_out = s_out / n_out
            if self.squares:
                q_in = self.Q_in[None, :] - mtf * vt * vt
                q_out = (self.Q_all - self.Q_in)[None, :] - otf * vt * vt
                ss_in = np.maximum(q_in - s_in * mean_in, 0.0)
                ss_out = np.maximum(q_out - s_out * mean_out, 0.0)
            else:
                ss_in = ss_out = None
        mean_in = np.where(n_in > 0, mean_in + self.center, np.nan)
        mean_out = np.where(n_out > 0, mean_out + self.center, np.nan)
        return _Stats(n_in, n_out, mean_in, mean_out, ss_in, ss_out)


def _median_stats(masks, values, pool, targets, base: _Stats) -> _Stats:
    """Replace the means of ``base`` by medians over the same IN/OUT reference models (one target at a time)."""
    mean_in = np.empty_like(base.mean_in)
    mean_out = np.empty_like(base.mean_out)

    for j, t in enumerate(targets):
        rows = pool.copy()
        rows[t] = False
        m = masks[rows]
        v = values[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN columns are the n == 0 examples
            mean_in[j] = np.nanmedian(np.where(m, v, np.nan), axis=0)
            mean_out[j] = np.nanmedian(np.where(m, np.nan, v), axis=0)
    # sums of squared deviations about the median: ss_mean + n (mean − median)²
    mu_in = base.mean_in
    mu_out = base.mean_out
    with np.errstate(invalid="ignore"):
        ss_in = base.ss_in + base.n_in * (mu_in - mean_in) ** 2
        ss_out = base.ss_out + base.n_out * (mu_out - mean_out) ** 2
    return _Stats(base.n_in, base.n_out, mean_in, mean_out, ss_in, ss_out)


def _result(name, scores, labels, target, params, details) -> AttackResult:
    return AttackResult(name, scores, labels, int(target), params, details)
