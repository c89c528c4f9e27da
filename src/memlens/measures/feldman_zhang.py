"""Feldman–Zhang subsampled memorization and influence estimators.

Feldman & Zhang (2020), "What Neural Networks Memorize and Why", §2 and Algorithm 1: train ``t`` models on
random subsets ``I_k`` of the training set and estimate, for every training example ``i`` at once,

    mem(i)      = mean_k{ M[k, i] : i ∈ I_k } − mean_k{ M[k, i] : i ∉ I_k }            (label memorization, Def. 4.1
                                                                                     of Feldman 2020, subsampled)
    infl(i, j)  = mean_k{ M'[k, j] : i ∈ I_k } − mean_k{ M'[k, j] : i ∉ I_k }          (influence on test point j)

where ``M`` is a per-model, per-example signal: correctness ``1[h_k(x_i) = y_i]`` in the paper, or any
continuous signal (LiRA's stable logit, minus the loss). The influence matrix is one matrix product,
``infl = (Vᵀ M)/n_in − (Vᵀ (1 − M))/n_out``, computed here in chunks of training columns so that only the
top-k entries per training example and the entries above a threshold are kept.

Sign convention: higher = more memorized. Signals that run the other way (``loss``) are negated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import MemlensInputError, check_array, check_float, check_int, check_masks, warn
from ..population import SIGNAL_SIGN, Population

__all__ = [
    "MemorizationResult",
    "InfluenceResult",
    "HighInfluencePairs",
    "memorization",
    "memorization_from_arrays",
    "influence",
    "influence_from_arrays",
    "high_influence_pairs",
    "SIGNAL_SIGN",
    "worst_case_stderr",
    "OutPredictions",
    "out_predictions",
]



def _sign(signal: str, higher_is_better: bool | None) -> float:
    if higher_is_better is not None:
        return 1.0 if higher_is_better else -1.0
    return SIGNAL_SIGN.get(signal, 1.0)


@dataclass(frozen=True, eq=False)
class MemorizationResult:
    """Per-example Feldman–Zhang memorization estimates.

    Attributes
    ----------
    scores : ndarray, shape (n_examples,)
        ``mean_in − mean_out`` (higher = more memorized); NaN where the example has no IN or no OUT model.
    stderr : ndarray, shape (n_examples,)
        Standard error ``sqrt(s²_in/n_in + s²_out/n_out)`` (sample variances); NaN where n_in or n_out < 2.
    n_in, n_out : ndarray of int, shape (n_examples,)
        Number of models that did / did not train on each example.
    mean_in, mean_out : ndarray, shape (n_examples,)
        Mean (sign-adjusted) signal over IN and OUT models.
    signal : str
        The signal the estimate is based on.
    """

    scores: np.ndarray
    stderr: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    mean_in: np.ndarray
    mean_out: np.ndarray
    signal: str = "correct"

    def n_memorized(self, threshold: float = 0.25) -> int:
        """Number of examples with memorization >= ``threshold`` (Feldman & Zhang use 0.25)."""
        return int(np.sum(np.nan_to_num(self.scores, nan=-np.inf) >= threshold))

    def ranking(self) -> np.ndarray:
        """Example indices from most to least memorized (NaN scores last)."""
        return np.argsort(-np.nan_to_num(self.scores, nan=-np.inf), kind="stable")


def _check_population(pop) -> None:
    if not isinstance(pop, Population):
        raise MemlensInputError(f"pop must be a memlens Population; got {type(pop).__name__}; for raw arrays use "
                                "memorization_from_arrays / influence_from_arrays")


def _mean_var(masks: np.ndarray, values: np.ndarray):
    m = masks.astype(np.float64)
    v = values.astype(np.float64)
    n_in = masks.sum(axis=0)
    n_out = masks.shape[0] - n_in
    s_in = np.einsum("ki,ki->i", m, v)
    s_all = v.sum(axis=0)
    q_in = np.einsum("ki,ki->i", m, v * v)
    q_all = (v * v).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_in = s_in / n_in
        mean_out = (s_all - s_in) / n_out
        var_in = np.maximum(q_in - n_in * mean_in**2, 0.0) / (n_in - 1)
        var_out = np.maximum((q_all - q_in) - n_out * mean_out**2, 0.0) / (n_out - 1)
    var_in[n_in < 2] = np.nan
    var_out[n_out < 2] = np.nan
    return n_in, n_out, mean_in, mean_out, var_in, var_out


def memorization_from_arrays(masks, values, *, signal: str = "correct",
                             higher_is_better: bool | None = None) -> MemorizationResult:
    """Feldman–Zhang memorization from raw arrays (Feldman & Zhang 2020, Algorithm 1).

    Parameters
    ----------
    masks : array of bool, shape (n_models, n_examples)
        True where the example was in the model's training set.
    values : array, shape (n_models, n_examples)
        The signal of each model on each example (correctness in {0, 1}, or a continuous score).
    signal : str
        Name of the signal, used for the sign (``loss`` is negated) and recorded in the result.
    higher_is_better : bool, optional
        Override the sign: True if larger values mean the model fits the example better.

    Returns
    -------
    MemorizationResult
        Examples with no IN or no OUT model get NaN and a :class:`~memlens.MemlensWarning`.
    """
    masks = check_masks("masks", masks)
    values = check_array("values", values, dtype=np.float64, finite=False)
    if values.shape != masks.shape:
        raise MemlensInputError(f"values must have the same shape as masks {masks.shape} "
                                f"(n_models, n_examples); got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise MemlensInputError("values contains NaN or infinite entries; the estimator needs every model's "
                                "signal on every example")
    values = _sign(signal, higher_is_better) * values
    n_in, n_out, mean_in, mean_out, var_in, var_out = _mean_var(masks, values)
    undefined = (n_in == 0) | (n_out == 0)
    if undefined.any():
        warn(f"{int(undefined.sum())} example(s) have no IN or no OUT model, so their memorization is "
             "undefined (NaN); train more models or use balanced masks")
    scores = mean_in - mean_out
    stderr = np.sqrt(var_in / n_in + var_out / n_out)
    scores[undefined] = np.nan
    return MemorizationResult(scores, stderr, n_in.astype(np.int64), n_out.astype(np.int64),
                              mean_in, mean_out, signal)


def memorization(pop, *, signal: str = "correct", split: str = "train",
                 higher_is_better: bool | None = None) -> MemorizationResult:
    """Feldman–Zhang memorization of every training example of a :class:`~memlens.Population`.

    ``mem(i) = mean signal of models trained with i − mean signal of models trained without i``
    (Feldman & Zhang 2020, Eq. 1 and Algorithm 1; with ``signal="correct"`` this estimates Feldman's
    label memorization ``mem(A, S, i)`` for subsets of size ``m``). Higher = more memorized.

    Parameters
    ----------
    pop : Population
    signal : str
        ``correct`` (the paper's estimator), ``logit`` or ``loss`` (negated), or any signal in the population.
    split : str
        Must be ``train`` (the masks index the training split).
    """
    _check_population(pop)
    if split != "train":
        raise MemlensInputError(f"split must be 'train' for memorization (masks index the training split); "
                                f"got {split!r}; use influence() for other splits")
    known = pop.known_rows          # models of unknown membership are left out, never read as OUT
    return memorization_from_arrays(pop.masks[known], pop.signal("train", signal)[known], signal=signal,
                                    higher_is_better=higher_is_better)


def worst_case_stderr(n_models: int, p: float) -> float:
    """Worst-case standard error of a correctness-based mem estimate: ``0.5 sqrt(1/(p t) + 1/((1−p) t))``."""
    return 0.5 * float(np.sqrt(1.0 / (p * n_models) + 1.0 / ((1.0 - p) * n_models)))


@dataclass(frozen=True, eq=False)
class InfluenceResult:
    """Feldman–Zhang influence of training examples on evaluation examples.

    Attributes
    ----------
    top_index : ndarray of int, shape (n_train, top_k)
        For each training example, the evaluation examples it influences most (descending); −1 where undefined.
    top_value : ndarray, shape (n_train, top_k)
        Their influence values (NaN where undefined).
    pair_train, pair_eval, pair_value : ndarray, shape (n_pairs,)
        Every (train i, eval j) pair with influence >= ``threshold``, sorted by decreasing value.
    threshold : float
        The threshold used to collect pairs (``inf`` if none were collected).
    matrix : ndarray, shape (n_eval, n_train), or None
        The full matrix, only if requested with ``return_matrix=True``.
    signal, split : str
    """

    top_index: np.ndarray
    top_value: np.ndarray
    pair_train: np.ndarray
    pair_eval: np.ndarray
    pair_value: np.ndarray
    threshold: float
    matrix: np.ndarray | None = None
    signal: str = "correct"
    split: str = "test"

    @property
    def n_pairs(self) -> int:
        return int(self.pair_value.shape[0])


def influence_from_arrays(masks, values, *, signal: str = "correct", split: str = "test", top_k: int = 4,
                          threshold: float | None = 0.15, pair_columns=None, return_matrix: bool = False,
                          chunk_size: int = 1024, higher_is_better: bool | None = None) -> InfluenceResult:
    """Subsampled influence ``infl(i, j)`` of training example ``i`` on evaluation example ``j``.

    Feldman & Zhang (2020), Eq. 2 and Algorithm 1: ``infl[j, i] = mean_k{V[k, j] | mask[k, i]} −
    mean_k{V[k, j] | ¬mask[k, i]}``, computed as ``A = Vᵀ M``; ``infl = A / n_in − (Σ_k V[k, j] − A) / n_out``,
    one chunk of ``chunk_size`` training columns at a time (memory ``n_eval × chunk_size``).

    Parameters
    ----------
    masks : array of bool, shape (n_models, n_train)
    values : array, shape (n_models, n_eval)
        Signal of every model on every evaluation example.
    top_k : int
        How many most-influenced evaluation examples to keep per training example.
    threshold : float or None
        Keep every pair with influence >= threshold (None: keep none).
    pair_columns : array of bool, shape (n_train,), optional
        Collect thresholded pairs only for these training examples (e.g. ``mem.scores >= 0.25``, all that
        :func:`high_influence_pairs` needs). With few models many pairs pass a threshold by chance, and keeping
        them all can take gigabytes; the top-k lists are computed for every training example regardless.
    return_matrix : bool
        Also return the full ``(n_eval, n_train)`` matrix (memory ``8 n_eval n_train`` bytes).

    Returns
    -------
    InfluenceResult
        Training examples with no IN or no OUT model have NaN influence and a warning.
    """
    masks = check_masks("masks", masks)
    values = check_array("values", values, dtype=np.float64, finite=False)
    if values.ndim != 2 or values.shape[0] != masks.shape[0]:
        raise MemlensInputError(f"values must have shape (n_models={masks.shape[0]}, n_eval); got {values.shape}")
    if not np.all(np.isfinite(values)):
        raise MemlensInputError("values contains NaN or infinite entries")
    n_models, n_train = masks.shape
    n_eval = values.shape[1]
    top_k = check_int("top_k", top_k, min_value=0)
    top_k = min(top_k, n_eval)
    chunk_size = check_int("chunk_size", chunk_size, min_value=1)
    if threshold is not None and not (isinstance(threshold, (int, float, np.integer, np.floating))
                                      and not isinstance(threshold, bool) and np.isinf(threshold)):
        threshold = check_float("threshold", threshold, hint="the smallest influence of a kept pair, e.g. 0.15 "
                                "(-inf keeps every pair); None keeps no pairs")
    if pair_columns is not None:
        pair_columns = np.asarray(pair_columns)
        if pair_columns.shape != (n_train,) or pair_columns.dtype != bool:
            raise MemlensInputError(f"pair_columns must be a boolean array of shape ({n_train},) (one entry per "
                                    f"training example); got dtype {pair_columns.dtype}, shape {pair_columns.shape}")
    # 0/1 signals sum exactly in float32 (n_models < 2**24); continuous ones in float64.
    binary = np.all((values == 0) | (values == 1))
    dtype = np.float32 if binary and n_models < 2**24 else np.float64
    V = (_sign(signal, higher_is_better) * values).astype(dtype)
    colsum = V.sum(axis=0, dtype=np.float64)
    n_in = masks.sum(axis=0).astype(np.float64)
    n_out = n_models - n_in
    undefined = (n_in == 0) | (n_out == 0)
    if undefined.any():
        warn(f"{int(undefined.sum())} training example(s) have no IN or no OUT model; their influence is NaN")
    top_index = np.full((n_train, top_k), -1, dtype=np.int64)
    top_value = np.full((n_train, top_k), np.nan)
    pairs_i, pairs_j, pairs_v = [], [], []
    matrix = np.empty((n_eval, n_train)) if return_matrix else None
    Vt = np.ascontiguousarray(V.T)
    for start in range(0, n_train, chunk_size):
        stop = min(start + chunk_size, n_train)
        A = (Vt @ masks[:, start:stop].astype(dtype)).astype(np.float64)  # (n_eval, chunk)
        with np.errstate(invalid="ignore", divide="ignore"):
            block = A / n_in[start:stop] - (colsum[:, None] - A) / n_out[start:stop]
        block[:, undefined[start:stop]] = np.nan
        if matrix is not None:
            matrix[:, start:stop] = block
        if top_k:
            filled = np.nan_to_num(block, nan=-np.inf)
            part = np.argpartition(-filled, top_k - 1, axis=0)[:top_k]  # (top_k, chunk)
            vals = np.take_along_axis(filled, part, axis=0)
            order = np.argsort(-vals, axis=0, kind="stable")
            idx = np.take_along_axis(part, order, axis=0).T
            val = np.take_along_axis(vals, order, axis=0).T
            ok = ~undefined[start:stop]
            top_index[start:stop][ok] = idx[ok]
            top_value[start:stop][ok] = val[ok]
        if threshold is not None:
            with np.errstate(invalid="ignore"):
                above = block >= threshold  # NaN (undefined) never passes, even threshold=-inf
            if pair_columns is not None:
                above &= pair_columns[start:stop]
            jj, ii = np.nonzero(above)
            pairs_i.append(ii + start)
            pairs_j.append(jj)
            pairs_v.append(block[jj, ii])
    if pairs_v:
        pi, pj, pv = np.concatenate(pairs_i), np.concatenate(pairs_j), np.concatenate(pairs_v)
        order = np.argsort(-pv, kind="stable")
        pi, pj, pv = pi[order], pj[order], pv[order]
    else:
        pi = pj = np.empty(0, dtype=np.int64)
        pv = np.empty(0)
    return InfluenceResult(top_index, top_value, pi.astype(np.int64), pj.astype(np.int64), pv,
                           np.inf if threshold is None else float(threshold), matrix, signal, split)


def influence(pop, *, signal: str = "correct", split: str = "test", top_k: int = 4,
              threshold: float | None = 0.15, pair_columns=None, return_matrix: bool = False,
              chunk_size: int = 1024, higher_is_better: bool | None = None) -> InfluenceResult:
    """Feldman–Zhang influence of each training example on each example of ``split`` of a Population.

    See :func:`influence_from_arrays`. With ``split="train"`` the diagonal ``infl(i, i)`` equals ``mem(i)``.
    """
    _check_population(pop)
    known = pop.known_rows          # models of unknown membership are left out, never read as OUT
    return influence_from_arrays(pop.masks[known], pop.signal(split, signal)[known], signal=signal, split=split,
                                 top_k=top_k,
                                 threshold=threshold, pair_columns=pair_columns, return_matrix=return_matrix,
                                 chunk_size=chunk_size,
                                 higher_is_better=higher_is_better)


@dataclass(frozen=True, eq=False)
class HighInfluencePairs:
    """High-influence pairs (Feldman & Zhang 2020, §3): mem(i) >= θ_mem, infl(i, j) >= θ_infl, same label.

    Attributes
    ----------
    train_index, test_index : ndarray of int, shape (n_pairs,)
    memorization, influence : ndarray, shape (n_pairs,)
    label : ndarray of int, shape (n_pairs,)
    mem_threshold, infl_threshold : float
    """

    train_index: np.ndarray
    test_index: np.ndarray
    memorization: np.ndarray
    influence: np.ndarray
    label: np.ndarray
    mem_threshold: float
    infl_threshold: float

    def __len__(self) -> int:
        return int(self.train_index.shape[0])

    @property
    def n_unique_test(self) -> int:
        return int(np.unique(self.test_index).size)


def high_influence_pairs(mem: MemorizationResult, infl: InfluenceResult, *, train_labels, test_labels,
                         mem_threshold: float = 0.25, infl_threshold: float = 0.15) -> HighInfluencePairs:
    """Select the pairs (train i, test j) with mem(i) >= 0.25, infl(i, j) >= 0.15 and ``y_i = y'_j``.

    The thresholds are the paper's (Feldman & Zhang 2020, §3: θ_mem = 0.25, θ_infl = 0.15). ``infl`` must have
    been computed with ``threshold <= infl_threshold`` so that every candidate pair was kept.
    """
    if infl.threshold > infl_threshold:
        raise MemlensInputError(f"infl was computed with threshold={infl.threshold}, above infl_threshold="
                                f"{infl_threshold}; recompute influence(..., threshold={infl_threshold})")
    train_labels = np.asarray(train_labels)
    test_labels = np.asarray(test_labels)
    if train_labels.shape[0] != mem.scores.shape[0]:
        raise MemlensInputError(f"train_labels must have one label per training example "
                                f"({mem.scores.shape[0]}); got {train_labels.shape[0]}")
    i, j, v = infl.pair_train, infl.pair_eval, infl.pair_value
    m = mem.scores[i]
    keep = (v >= infl_threshold) & (np.nan_to_num(m, nan=-np.inf) >= mem_threshold) & \
           (train_labels[i] == test_labels[j])
    return HighInfluencePairs(i[keep], j[keep], m[keep], v[keep], train_labels[i[keep]],
                              float(mem_threshold), float(infl_threshold))


@dataclass(frozen=True, eq=False)
class OutPredictions:
    """What the models that did not train on each example predict for it.

    Attributes
    ----------
    majority : ndarray of int, shape (n_examples,)
        The class most OUT models predict (−1 where the example has no OUT model or no recorded prediction).
    share : ndarray, shape (n_examples,)
        The fraction of OUT models predicting it (NaN where undefined).
    n_out : ndarray of int, shape (n_examples,)

    Notes
    -----
    A memorized example whose OUT models agree on another class than its label reads as mislabeled (or as a
    near-duplicate of another class); one whose OUT models are split reads as atypical. This reading is ours,
    after Feldman & Zhang (2020, §3, Figure 2), who show both kinds among the most memorized examples.
    """

    majority: np.ndarray
    share: np.ndarray
    n_out: np.ndarray


def out_predictions(masks, pred, n_classes: int) -> OutPredictions:
    """The majority prediction of the OUT models of every example, and its share.

    Parameters
    ----------
    masks : array of bool, shape (n_models, n_examples)
    pred : array, shape (n_models, n_examples)
        Predicted class of each model on each example (the ``pred`` signal; NaN where undefined).
    n_classes : int

    Returns
    -------
    OutPredictions
    """
    masks = np.asarray(masks, dtype=bool)
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape != masks.shape:
        raise MemlensInputError(f"pred must have the same shape as masks {masks.shape}; got {pred.shape}")
    out = ~masks & np.isfinite(pred)
    n_out = out.sum(axis=0)
    best = np.full(masks.shape[1], -1, dtype=np.int64)
    best_count = np.zeros(masks.shape[1], dtype=np.int64)
    for c in range(int(n_classes)):
        cnt = ((pred == c) & out).sum(axis=0)
        up = cnt > best_count
        best[up] = c
        best_count[up] = cnt[up]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n_out > 0, best_count / np.maximum(n_out, 1), np.nan)
    best[n_out == 0] = -1
    return OutPredictions(best, share, n_out.astype(np.int64))
