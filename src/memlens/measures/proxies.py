"""Cheap proxies of memorization, and how far to trust each one on the user's own data.

Feldman–Zhang memorization needs a population of models. The proxies below need one model's training run (or its
checkpoints) instead; every proxy score is oriented "higher = more memorized", like memorization itself.

Training dynamics (arrays ``(n_epochs, n)`` recorded while one model trains on every example: whether each example
was classified correctly, its loss and its margin when its minibatch was processed, before the update):

* :func:`forgetting_events` (Toneva et al. 2019, "An empirical study of example forgetting", §2): how often an
  example goes from correct to incorrect; an example never learned gets ``n_epochs`` (Toneva et al. count it as
  forgotten infinitely often; any number above the largest possible count, ``n_epochs // 2``, ranks the same).
* :func:`first_learned_epoch` (learning speed): the first epoch from which the example stays correct; never
  learned: ``n_epochs``.
* :func:`cumulative_loss` (Carlini et al. 2019, "Prototypical examples", and the issue's "cumulative sample loss"):
  the sum of the example's losses over the epochs.
* :func:`mean_margin_proxy`: minus the mean margin (true-class logit minus the largest other) over the epochs.

How well a proxy agrees with memorization (:func:`proxy_agreement`): Spearman correlation; AUC and top-k precision
for the examples whose memorization reaches the threshold (k = how many do); overlap of the top 1%. Beside the
Spearman correlation, the **noise ceiling** (:func:`noise_ceiling`): the Spearman correlation between the
memorization estimates of two disjoint halves of the population, Spearman–Brown corrected to the full population
(``2 r / (1 + r)``; our use of the classical reliability correction for a rank correlation): no proxy can agree
with the estimate better than the estimate agrees with itself.

C-scores (:func:`c_scores`, Jiang et al. 2021, "Characterizing structural regularities of labeled data", Eq. 1):
the expected held-out accuracy on an example of models trained on random subsets, averaged over subset ratios;
``1 − C`` is the memorization proxy. The linear datamodeling score (:func:`linear_datamodeling_score`, Park et al.
2023, "TRAK", Def. 2.3) scores attributions ``τ(j, i)`` by the Spearman correlation, over held-out subsets ``S``,
between ``Σ_{i ∈ S} τ(j, i)`` and the output on ``j`` of the model trained on ``S``, averaged over ``j``.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from .._validation import MemlensInputError, MemlensWarning, check_array, check_float, check_masks
from ..evaluation import roc_auc
from .feldman_zhang import memorization_from_arrays

__all__ = ["forgetting_events", "first_learned_epoch", "cumulative_loss", "mean_margin_proxy", "proxy_agreement",
           "noise_ceiling", "c_scores", "linear_datamodeling_score", "pair_precision", "DYNAMICS_PROXIES"]

#: The training-dynamics proxies, by name (each a function of the recorded arrays).
DYNAMICS_PROXIES = ("forgetting", "first_learned", "cumulative_loss", "mean_margin")


def _history(name: str, values, dtype) -> np.ndarray:
    arr = check_array(name, values, ndim=2, dtype=dtype)
    if arr.shape[0] < 1:
        raise MemlensInputError(f"{name} needs at least one epoch (rows); got shape {arr.shape}")
    return arr


def forgetting_events(correct) -> np.ndarray:
    """``(n,)`` forgetting events per example from ``correct (n_epochs, n)`` (see the module docstring)."""
    c = _history("correct", correct, bool)
    events = np.sum(c[:-1] & ~c[1:], axis=0).astype(np.float64)
    return np.where(c.any(axis=0), events, float(c.shape[0]))


def first_learned_epoch(correct) -> np.ndarray:
    """``(n,)`` first epoch (0-based) from which the example stays correct; ``n_epochs`` if it never does."""
    c = _history("correct", correct, bool)
    E = c.shape[0]
    stays = np.flip(np.cumprod(np.flip(c, axis=0), axis=0), axis=0).astype(bool)   # correct from e to the end
    return np.where(stays.any(axis=0), np.argmax(stays, axis=0), E).astype(np.float64)


def cumulative_loss(loss) -> np.ndarray:
    """``(n,)`` sum over epochs of the example's loss, from ``loss (n_epochs, n)``."""
    return _history("loss", loss, np.float64).sum(axis=0)


def mean_margin_proxy(margin) -> np.ndarray:
    """``(n,)`` minus the mean margin over epochs, from ``margin (n_epochs, n)``."""
    return -_history("margin", margin, np.float64).mean(axis=0)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(a[ok], b[ok]).statistic)


def proxy_agreement(proxy, memorization, *, threshold: float = 0.25) -> dict:
    """How well a proxy ranks the examples as memorization does.

    Parameters
    ----------
    proxy, memorization : array, shape (n,)
        Both "higher = more memorized"; NaN entries (an example without an estimate) are left out.
    threshold : float
        Memorization at or above which an example counts as memorized.

    Returns
    -------
    dict
        ``spearman``; ``auc`` and ``top_k_precision`` for the memorized examples (``k`` = how many there are;
        None without both classes); ``top_1pct_overlap`` (fraction of the proxy's top 1% that is among
        memorization's top 1%); ``n``, ``n_memorized``.
    """
    p = check_array("proxy", proxy, ndim=1, dtype=np.float64, finite=False)
    m = check_array("memorization", memorization, ndim=1, dtype=np.float64, finite=False)
    if p.shape != m.shape:
        raise MemlensInputError(f"proxy and memorization must have the same shape; got {p.shape} and {m.shape}")
    threshold = check_float("threshold", threshold)
    ok = np.isfinite(p) & np.isfinite(m)
    p, m = p[ok], m[ok]
    pos = m >= threshold
    k = int(pos.sum())
    out = {"n": int(ok.sum()), "n_memorized": k, "spearman": _spearman(p, m), "auc": None, "top_k_precision": None}
    if 0 < k < p.size:
        out["auc"] = roc_auc(p, pos)
        top = np.argsort(-p, kind="stable")[:k]
        out["top_k_precision"] = float(pos[top].mean())
    t = max(1, int(round(0.01 * p.size)))
    top_p = set(np.argsort(-p, kind="stable")[:t].tolist())
    top_m = set(np.argsort(-m, kind="stable")[:t].tolist())
    out["top_1pct_overlap"] = len(top_p & top_m) / t if p.size else float("nan")
    return out


def noise_ceiling(masks, values, *, signal: str = "correct", seed=0, memorization=None) -> dict:
    """The Spearman correlation memorization can reach with itself: two disjoint random halves of the models,
    memorization from each, their Spearman correlation ``r`` and its Spearman–Brown correction ``2r / (1 + r)``.

    Returns
    -------
    dict with ``half_spearman`` and ``ceiling`` (the corrected value), ``n_models_per_half``, and ``tie_limit``:
    the Spearman correlation of the full estimate (``memorization``, ``(n,)``, when the caller has it; else
    computed from ``masks`` and ``values``) with itself with its ties broken at random, the most a proxy
    with distinct values can reach against an estimate with many exact ties (our diagnostic: on a 0/1 signal most
    examples have memorization exactly 0).
    """
    masks = check_masks("masks", masks, min_models=4)
    values = check_array("values", values, ndim=2, dtype=np.float64, finite=False)
    if values.shape != masks.shape:
        raise MemlensInputError(f"values must have the masks' shape {masks.shape}; got {values.shape}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(masks.shape[0])
    a, b = order[: masks.shape[0] // 2], order[masks.shape[0] // 2:2 * (masks.shape[0] // 2)]
    with warnings.catch_warnings():      # examples without IN or OUT models in a half: NaN, left out
        warnings.simplefilter("ignore", MemlensWarning)
        ma = memorization_from_arrays(masks[a], values[a], signal=signal).scores
        mb = memorization_from_arrays(masks[b], values[b], signal=signal).scores
        full = (memorization_from_arrays(masks, values, signal=signal).scores if memorization is None
                else check_array("memorization", memorization, ndim=1, dtype=np.float64, finite=False))
    r = _spearman(ma, mb)
    # a proxy with continuous values cannot reproduce the estimate's ties (most examples sit exactly at 0 on a 0/1
    # signal): the Spearman of the estimate with itself, ties broken at random, is the most such a proxy can reach
    jitter = rng.random(full.shape) * 1e-9 * max(1.0, float(np.nanmax(np.abs(full), initial=0.0)))
    tie_limit = _spearman(full + jitter, full)
    return {"half_spearman": r, "ceiling": 2 * r / (1 + r) if np.isfinite(r) and r > -1 else float("nan"),
            "tie_limit": tie_limit, "n_models_per_half": int(a.size)}


def c_scores(masks_by_ratio, correct_by_ratio) -> np.ndarray:
    """``(n,)`` C-scores: for each subset ratio, the mean correctness on each example of the models that did not
    train on it; then the mean over ratios (Jiang et al. 2021, Eq. 1, with the ratios as the subset sizes).

    Parameters
    ----------
    masks_by_ratio : sequence of bool arrays, each (K_r, n)
    correct_by_ratio : sequence of arrays, each (K_r, n), 1 where model k classifies example i correctly

    Returns
    -------
    ndarray, shape (n,)
        NaN (with no warning) for an example without held-out models at every ratio.
    """
    if len(masks_by_ratio) != len(correct_by_ratio) or not len(masks_by_ratio):
        raise MemlensInputError("masks_by_ratio and correct_by_ratio must be equally long, non-empty sequences")
    per = []
    for r, (mk, cr) in enumerate(zip(masks_by_ratio, correct_by_ratio)):
        mk = check_masks(f"masks_by_ratio[{r}]", mk, min_models=1)
        cr = check_array(f"correct_by_ratio[{r}]", cr, ndim=2, dtype=np.float64)
        if cr.shape != mk.shape:
            raise MemlensInputError(f"correct_by_ratio[{r}] must have shape {mk.shape}; got {cr.shape}")
        out = ~mk
        n_out = out.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            per.append(np.where(n_out > 0, (cr * out).sum(0) / n_out, np.nan))
    per = np.vstack(per)
    with np.errstate(invalid="ignore"):
        cnt = np.isfinite(per).sum(0)
        return np.where(cnt > 0, np.nansum(per, 0) / np.maximum(cnt, 1), np.nan)


def linear_datamodeling_score(attributions, masks, outputs) -> dict:
    """The linear datamodeling score of attributions (Park et al. 2023, Def. 2.3).

    Parameters
    ----------
    attributions : array, shape (n_eval, n_train)
        ``τ(j, i)``: predicted effect of training example ``i`` on the output for evaluation example ``j``.
    masks : bool array, shape (m, n_train)
        Held-out subsets (models not used to compute the attributions).
    outputs : array, shape (m, n_eval)
        Output of each held-out model on each evaluation example (e.g. the margin).

    Returns
    -------
    dict
        ``lds``: mean over evaluation examples of the Spearman correlation (over the ``m`` subsets) between the
        predicted ``Σ_{i ∈ S} τ(j, i)`` and the actual output; ``per_example`` (n_eval,).
    """
    tau = check_array("attributions", attributions, ndim=2, dtype=np.float64)
    masks = check_masks("masks", masks, n_examples=tau.shape[1], min_models=3)
    out = check_array("outputs", outputs, ndim=2, dtype=np.float64)
    if out.shape != (masks.shape[0], tau.shape[0]):
        raise MemlensInputError(f"outputs must have shape (m, n_eval) = {(masks.shape[0], tau.shape[0])}; got "
                                f"{out.shape}")
    pred = masks.astype(np.float64) @ tau.T                    # (m, n_eval)
    per = np.array([_spearman(pred[:, j], out[:, j]) for j in range(tau.shape[0])])
    return {"lds": float(np.nanmean(per)) if np.isfinite(per).any() else float("nan"), "per_example": per}


def pair_precision(attributions, train_index, test_index, *, train_labels=None, test_labels=None) -> float | None:
    """Precision of an attribution method's top (training, test) pairs among given high-influence pairs.

    Parameters
    ----------
    attributions : array, shape (n_test, n_train)
        Higher = training example ``i`` helps test example ``j`` more (its removal hurts ``j`` more).
    train_index, test_index : int arrays, shape (P,)
        The reference pairs (e.g. Feldman–Zhang high-influence pairs).
    train_labels, test_labels : optional int arrays
        When given, only same-label pairs are ranked (as the reference pairs are).

    Returns
    -------
    float or None
        Fraction of the method's ``P`` highest-attributed pairs that are reference pairs (None when ``P = 0``).
    """
    tau = check_array("attributions", attributions, ndim=2, dtype=np.float64, finite=False)
    tr = np.asarray(train_index, dtype=np.int64)
    te = np.asarray(test_index, dtype=np.int64)
    if tr.shape != te.shape:
        raise MemlensInputError(f"train_index and test_index must be equally long; got {tr.shape} and {te.shape}")
    P = tr.size
    if P == 0:
        return None
    score = np.nan_to_num(tau, nan=-np.inf).copy()
    if train_labels is not None and test_labels is not None:
        same = np.asarray(test_labels)[:, None] == np.asarray(train_labels)[None, :]
        score[~same] = -np.inf
    top = np.argpartition(-score.ravel(), P - 1)[:P]
    ref = set(zip(te.tolist(), tr.tolist()))
    hits = sum((int(o // tau.shape[1]), int(o % tau.shape[1])) in ref for o in top)
    return hits / P
