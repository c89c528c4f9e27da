"""Label-only membership inference (Choquette-Choo, Tramèr, Carlini & Papernot 2021, "Label-only membership
inference attacks", §4): the attacker sees only predicted labels. A training example's label tends to survive
perturbations of the input better than a non-member's, so the membership score is the **robustness** of the
correct prediction: the fraction of ``n_queries`` noisy copies ``x + σ ε`` (and/or augmentations) that the model
still labels ``y`` (:func:`label_robustness`).

Calibration by reference models (:func:`calibrated_label_only`, our combination of the paper's robustness score with
the offline calibration of LiRA, Carlini et al. 2022): a perturbation-robust example is not evidence of membership if
models that never saw it find it just as robust, so the target's robustness is standardized by the mean and standard
deviation of the reference models' robustness on the same example (OUT references only, as in offline LiRA).
Higher = more likely a member.

On a population (every model a target in turn, the others its references; :func:`memlens.attacks.attack_all_targets`)
the same two scores read the ``robust`` signal that training records with label-only queries
(:mod:`memlens.train.label_queries`): :func:`label_only_attack` (``calibrated=False``: the paper's threshold on the
target's robustness; ``True``: standardized by the OUT reference models, as above).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .._random import as_generator
from .._validation import MemlensInputError, check_array, check_float, check_int, check_masks, warn
from ._reference import _check_pop, _check_target, _chunks, _pool, _result, _Sums, _values
from .results import AttackResult

__all__ = ["label_robustness", "calibrated_label_only", "label_only_attack", "ROBUST_SIGNAL", "MIN_STD"]

#: The population signal the attacks read (recorded by :func:`memlens.train.label_queries.label_robustness_signal`).
ROBUST_SIGNAL = "robust"
#: Floor of the reference standard deviation of a robustness fraction.
MIN_STD = 0.05


def label_robustness(predict: Callable, X, y, *, sigma: float = 0.5, n_queries: int = 32, seed=0,
                     augment: Callable | None = None) -> np.ndarray:
    """``(n,)`` fraction of perturbed queries the model labels correctly.

    Parameters
    ----------
    predict : callable
        ``predict(X) -> (rows,)`` predicted labels (label-only access), or ``(rows, n_classes)`` scores whose argmax
        is taken.
    X : array, shape (n, d); y : int array, shape (n,)
    sigma : float >= 0
        Gaussian noise scale (in the units of ``X``; 0 with ``augment`` for augmentations only).
    n_queries : int
    seed : int or Generator
    augment : callable, optional
        ``augment(X, rng) -> X'`` applied before the noise (e.g. shifts and flips of images).
    """
    X = check_array("X", X, ndim=2, dtype=np.float64)
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise MemlensInputError(f"y must hold one label per row of X ({X.shape[0]}); got shape {y.shape}")
    sigma = check_float("sigma", sigma, min_value=0.0)
    n_queries = check_int("n_queries", n_queries, min_value=1)
    rng = as_generator(seed)
    hits = np.zeros(X.shape[0])
    for _ in range(n_queries):
        Xq = X if augment is None else np.asarray(augment(X, rng), dtype=np.float64)
        if sigma:
            Xq = Xq + sigma * rng.standard_normal(X.shape)
        p = np.asarray(predict(Xq))
        lab = p.argmax(1) if p.ndim == 2 else p
        if lab.shape != y.shape:
            raise MemlensInputError(f"predict must return one label (or one row of scores) per row; got {p.shape}")
        hits += lab == y
    return hits / n_queries


def calibrated_label_only(target_robustness, reference_robustness, reference_masks, *, min_std: float = MIN_STD):
    """``(n,)`` calibrated label-only membership scores (see the module docstring).

    Parameters
    ----------
    target_robustness : array, shape (n,)
    reference_robustness : array, shape (K, n)
        The same robustness under ``K`` reference models.
    reference_masks : bool array, shape (K, n)
        Which examples each reference model trained on (only OUT references calibrate).
    min_std : float
        Floor of the reference standard deviation (robustness is a fraction: references that agree exactly would
        divide by 0).

    Returns
    -------
    ndarray, shape (n,)
        ``(r_target − mean_OUT r_ref) / max(std_OUT r_ref, min_std)``; NaN where fewer than 2 OUT references.
    """
    t = check_array("target_robustness", target_robustness, ndim=1, dtype=np.float64)
    R = check_array("reference_robustness", reference_robustness, ndim=2, dtype=np.float64)
    M = check_masks("reference_masks", reference_masks, n_examples=t.size, min_models=1)
    if R.shape != M.shape:
        raise MemlensInputError(f"reference_robustness must have the masks' shape {M.shape}; got {R.shape}")
    min_std = check_float("min_std", min_std, min_value=0.0, min_inclusive=False)
    out = ~M
    k = out.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = (R * out).sum(0) / k
        var = ((R - mu) ** 2 * out).sum(0) / np.maximum(k - 1, 1)
        z = (t - mu) / np.maximum(np.sqrt(var), min_std)
    return np.where(k >= 2, z, np.nan)


def _robust_values(pop, signal: str) -> np.ndarray:
    if signal not in pop.signals.get("train", {}):
        raise MemlensInputError(f"the population has no {signal!r} signal on its train split: train it with "
                                "label-only queries (train_population(..., label_queries=LabelQueries(...)), or "
                                "memlens audit --label-only)", param="signal")
    return _values(pop, signal)


def _label_only_batch(pop, targets, *, calibrated: bool = True, signal: str = ROBUST_SIGNAL, references=None,
                      min_std: float = MIN_STD):
    """Scores ``(T, n)`` of every target: its robustness, or its robustness standardized by the OUT references."""
    values = _robust_values(pop, signal)
    min_std = check_float("min_std", min_std, min_value=0.0, min_inclusive=False)
    if not calibrated:
        params = {"signal": signal, "calibration": "none (threshold on the target's robustness)", "n_reference": 0}
        return values[targets].copy(), [{} for _ in targets], params, {"few_out": 0}
    pool = _pool(pop, targets, references)
    sums = _Sums(pop.masks, values, pool, squares=True)
    out = np.empty((targets.size, values.shape[1]))
    details, few, pos = [], 0, 0
    for tg in _chunks(targets, values.shape[1]):
        st = sums.stats(tg)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(st.ss_out / np.maximum(st.n_out - 1, 1))
            z = (values[tg] - st.mean_out) / np.maximum(sd, min_std)
        out[pos:pos + tg.size] = np.where(st.n_out >= 2, z, np.nan)
        pos += tg.size
        few += int(np.sum(st.n_out < 2))
        details.extend({"reference_mean_out": st.mean_out[j], "reference_std_out": sd[j]} for j in range(tg.size))
    params = {"signal": signal, "calibration": "standardized by the OUT reference models' robustness",
              "min_std": min_std, "n_reference": int(pool.sum()) - (1 if references is None else 0)}
    return out, details, params, {"few_out": few}


def _warn_label_only(counts, n_targets, **_):
    if counts["few_out"]:
        warn(f"{counts['few_out']} (target, example) pair(s) over {n_targets} target(s) have fewer than 2 OUT "
             "reference models, so their calibrated label-only score is undefined (NaN); train more models",
             stacklevel=4)


def _label_only_name(calibrated: bool = True, **_) -> str:
    return "label-only-calibrated" if calibrated else "label-only"


def label_only_attack(pop, *, target: int, calibrated: bool = True, signal: str = ROBUST_SIGNAL, references=None,
                      min_std: float = MIN_STD) -> AttackResult:
    """Label-only membership inference against one model of a population (see the module docstring).

    Parameters
    ----------
    pop : Population
        With the train split's ``robust`` signal (training with label-only queries).
    target : int
        Row of the model to attack.
    calibrated : bool
        False: the score is the target's robustness (Choquette-Choo et al. 2021, §4: member iff at least a
        threshold of the perturbed queries keep the label). True: ``(r_target − mean_OUT r) / max(std_OUT r,
        min_std)`` over the reference models that did not train on the example (NaN with fewer than 2).
    references : array of int, optional
        Reference rows (default: every row but the target).

    Returns
    -------
    AttackResult
        ``scores`` shape ``(n_train,)``, higher = more likely a member.
    """
    _check_pop(pop)
    target = _check_target(pop, target)
    scores, det, params, counts = _label_only_batch(pop, np.array([target]), calibrated=calibrated, signal=signal,
                                                    references=references, min_std=min_std)
    _warn_label_only(counts, 1)
    return _result(_label_only_name(calibrated), scores[0], pop.masks[target], target, params, det[0])
