"""Measures of a population of language models with inserted canaries (the text audit's tables).

Pure functions from a :class:`~memlens.Population` (signals on the ``train``, ``canary`` and ``samples`` splits) to
per-canary and per-score tables: exposure and extraction among the models that trained on each canary and those
that did not (Carlini et al. 2019), the membership AUC of the ranking attack's scores (Carlini et al. 2021, §5.1),
and the precision of the generate-rank-verify extraction pipeline (Carlini et al. 2021, §5).
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping

import numpy as np

from .._validation import MemlensWarning
from ..evaluation import roc, tpr_at_fpr_from_roc
from ..population import Population

__all__ = ["masked_mean", "canary_membership", "canary_table", "exposure_by_repetition", "ranking_attack_auc", "sample_extraction",
           "RANKING_SCORES", "TOP_SAMPLES", "VERBATIM_BYTES"]

#: The ranking attack's scores (Carlini et al. 2021, §5.1), all oriented higher = more likely memorized.
RANKING_SCORES = ("perplexity", "zlib", "lowercase", "reference")
#: Top-ranked samples checked per model, and the verbatim window (bytes) that counts as reproduced training data.
TOP_SAMPLES, VERBATIM_BYTES = 8, 16


def canary_membership(masks, copy_of, n_canaries: int) -> np.ndarray:
    """``(n_models, n_canaries)`` bool: model k trained on canary c (on all of its copies, by construction)."""
    masks = np.asarray(masks, dtype=bool)
    copy_of = np.asarray(copy_of, dtype=np.int64)
    out = np.zeros((masks.shape[0], n_canaries), dtype=bool)
    for c in range(n_canaries):
        cols = np.flatnonzero(copy_of == c)
        if cols.size:
            out[:, c] = masks[:, cols].any(axis=1)
    return out


def masked_mean(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Column means of ``values`` over rows where ``where`` is True (NaN where none); NaN values are skipped."""
    v = np.where(where & np.isfinite(values), values, 0.0)
    n = (where & np.isfinite(values)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, v.sum(axis=0) / np.maximum(n, 1), np.nan)


def canary_table(pop: Population, canary_in: np.ndarray, repetitions) -> dict[str, np.ndarray]:
    """Per canary: exposure and extraction among the models that trained on it (IN) and that did not (OUT).

    Parameters
    ----------
    pop : Population
        With a ``canary`` split holding ``exposure`` (bits) and ``extracted`` (0/1), shape (n_models, n_canaries).
    canary_in : bool array, shape (n_models, n_canaries)
    repetitions : int array, shape (n_canaries,)

    Returns
    -------
    dict of arrays of shape (n_canaries,)
        ``repetitions``, ``n_in``, ``n_out``, ``exposure_in``/``exposure_out`` (mean bits), ``extracted_in``/
        ``extracted_out`` (fraction of models whose greedy decoding from the prefix gives the secret),
        ``exposure_gain`` = exposure_in − exposure_out (counterfactual exposure, higher = more memorized).
    """
    exp = pop.signal("canary", "exposure").astype(np.float64)
    ext = pop.signal("canary", "extracted").astype(np.float64)
    canary_in = np.asarray(canary_in, dtype=bool)
    rows = {
        "repetitions": np.asarray(repetitions, dtype=np.int64),
        "n_in": canary_in.sum(axis=0), "n_out": (~canary_in).sum(axis=0),
        "exposure_in": masked_mean(exp, canary_in), "exposure_out": masked_mean(exp, ~canary_in),
        "extracted_in": masked_mean(ext, canary_in), "extracted_out": masked_mean(ext, ~canary_in),
    }
    rows["exposure_gain"] = rows["exposure_in"] - rows["exposure_out"]
    return rows


def sample_extraction(pop: Population, *, top: int = TOP_SAMPLES, verbatim_bytes: int = VERBATIM_BYTES) -> dict:
    """The generate-rank-verify pipeline of Carlini et al. 2021 (§5), per model and pooled.

    Each model generated ``n_samples`` samples (split ``samples``); they are ranked by each ranking-attack score
    and the ``top`` best of every model are checked: ``precision`` is the fraction of them that contain
    ``VERBATIM_BYTES`` consecutive bytes of one of that model's own training documents (extracted training data),
    ``unseen_precision`` the fraction matching a training document the model did *not* train on (text common enough
    to be generated without memorization: the control). ``base_rate`` is the fraction over all samples.

    Returns
    -------
    dict (empty without a ``samples`` split)
    """
    if "samples" not in pop.signals:
        return {}
    v = pop.signal("samples", "verbatim").astype(np.float64)
    u = pop.signal("samples", "verbatim_unseen").astype(np.float64)
    top = min(int(top), v.shape[1])
    out = {"n_samples": int(v.shape[1]), "top": top, "verbatim_bytes": int(verbatim_bytes),
           "base_rate": float(v.mean()), "unseen_rate": float(u.mean()), "by_score": {}}
    for name in RANKING_SCORES:
        key = f"rank_{name}"
        if key not in pop.signals["samples"]:
            continue
        order = np.argsort(-np.nan_to_num(pop.signal("samples", key).astype(np.float64), nan=-np.inf), axis=1,
                           kind="stable")[:, :top]
        out["by_score"][name] = {"precision": float(np.take_along_axis(v, order, axis=1).mean()),
                                 "unseen_precision": float(np.take_along_axis(u, order, axis=1).mean())}
    return out


def exposure_by_repetition(rows: Mapping[str, np.ndarray]) -> list[dict]:
    """One entry per repetition count: mean exposure IN/OUT and extraction rates, pooled over its canaries."""
    out = []
    reps = np.asarray(rows["repetitions"])
    for r in np.unique(reps):
        sel = reps == r
        out.append({"repetitions": int(r), "n_canaries": int(sel.sum()),
                    "exposure_in": float(np.nanmean(rows["exposure_in"][sel])) if np.isfinite(
                        rows["exposure_in"][sel]).any() else math.nan,
                    "exposure_out": float(np.nanmean(rows["exposure_out"][sel])) if np.isfinite(
                        rows["exposure_out"][sel]).any() else math.nan,
                    "extracted_in": float(np.nanmean(rows["extracted_in"][sel])) if np.isfinite(
                        rows["extracted_in"][sel]).any() else math.nan,
                    "extracted_out": float(np.nanmean(rows["extracted_out"][sel])) if np.isfinite(
                        rows["extracted_out"][sel]).any() else math.nan})
    return out


def ranking_attack_auc(pop: Population, columns) -> dict[str, dict]:
    """Membership AUC of each ranking-attack score, pooled over models: IN versus OUT documents.

    Parameters
    ----------
    pop : Population
        ``train`` signals ``rank_<score>`` for each score of :data:`RANKING_SCORES` present (higher = more likely
        memorized) and ``extracted``.
    columns : int array
        The training columns to evaluate (the corpus documents, not the canary copies).

    Returns
    -------
    dict score -> {"auc", "n_pos", "n_neg", "tpr_at_1pct_fpr", "fpr_resolution"}
        With fewer than 100 OUT pairs, 1% FPR is below the ROC's resolution (``fpr_resolution = 1 / n_neg``) and
        the TPR is the TPR at zero false positives.
    """
    columns = np.asarray(columns, dtype=np.int64)
    labels = pop.masks[:, columns].reshape(-1)
    out = {}
    for name in ("loss",) + tuple(f"rank_{s}" for s in RANKING_SCORES):
        if name not in pop.signals.get("train", {}):
            continue
        s = pop.signal("train", name)[:, columns].astype(np.float64).reshape(-1)
        if name == "loss":
            s, name = -s, "loss (Yeom et al.)"
        ok = np.isfinite(s)
        if ok.sum() < 2 or labels[ok].all() or not labels[ok].any():
            continue
        curve = roc(s[ok], labels[ok])
        with warnings.catch_warnings():  # below the ROC's resolution: stated by "fpr_resolution" instead
            warnings.simplefilter("ignore", MemlensWarning)
            tpr = tpr_at_fpr_from_roc(curve.fpr, curve.tpr, 0.01, n_neg=curve.n_neg)
        out[name.replace("rank_", "")] = {"auc": float(curve.auc), "n_pos": int(curve.n_pos),
                                          "n_neg": int(curve.n_neg), "tpr_at_1pct_fpr": float(np.asarray(tpr)),
                                          "fpr_resolution": 1.0 / curve.n_neg}
    return out
