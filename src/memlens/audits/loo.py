"""Leave-one-out memorization beside the subset estimate: the ``loo=True`` step of an audit.

Feldman (2020), "Does learning require memorization?", Def. 4.1, at ``S \\ i`` for every training example ``i``,
from one fit: exactly for ridge and kernel ridge (PRESS / hat-matrix identities), approximately for L2 logistic
regression (one Newton step, Rad & Maleki 2020); see :func:`memlens.train.closed_form_loo`. Which models have it is
the trainer's declaration (``Trainer.loo``, ``Trainer.exact_loo``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy.stats import rankdata

from .._threads import physical_memory
from .._validation import MemlensInputError
from ..measures import loo_memorization
from ..train import TRAINERS, closed_form_loo

__all__ = ["AuditLOO", "audit_loo", "LOO_MODELS", "check_loo", "check_kernel_memory", "correlations"]

#: Models with a leave-one-out memorization: exact (ridge, kernel ridge) first, then approximate (logreg).
LOO_MODELS = tuple(sorted((name for name, t in TRAINERS.items() if t.loo), key=lambda n: not TRAINERS[n].exact_loo))
#: Feldman & Zhang (2020, §3) threshold of a memorized example, for both estimators.
MEM_THRESHOLD = 0.25


@dataclass(frozen=True, eq=False)
class AuditLOO:
    """Leave-one-out memorization of every training example, beside the audit's subset (Feldman–Zhang) estimate.

    Attributes
    ----------
    result : memlens.train.LOOResult
        Full-fit and leave-one-out class scores of every training example (:func:`memlens.train.closed_form_loo`).
    memorization : memlens.measures.LOOMemorizationResult
        Feldman (2020, Def. 4.1) at leave-one-out: correctness of the full fit on ``x_i`` minus correctness of
        the fit without ``i``, shape (n_train,), values in {−1, 0, 1}, higher = more memorized (the
        ``loo_memorization`` column of ``examples.csv``).
    margin_memorization : memlens.measures.LOOMemorizationResult
        The graded version: score margin ``f_y − max_{c≠y} f_c`` of the full fit minus that of the fit without
        ``i`` (``loo_margin_memorization``).
    loo_margin, loo_loss : ndarray, shape (n_train,)
        Margin and loss (cross-entropy for logreg, squared error for ridge / kernel ridge) on ``x_i`` of the model
        trained without ``i``; a negative margin means that model misclassifies ``x_i``.
    ranking : ndarray of int, shape (n_train,)
        Training examples from most to least leave-one-out-memorized (by ``memorization``, ties broken by
        ``margin_memorization``; undefined last).
    seconds : float
        Wall time of the leave-one-out computation (one fit and the closed form / ALO for all n).
    summary : mapping
        ``summary.json``'s ``loo`` block.
    """

    result: Any
    memorization: Any
    margin_memorization: Any
    loo_margin: np.ndarray
    loo_loss: np.ndarray
    ranking: np.ndarray
    seconds: float
    summary: Mapping[str, Any]


def correlations(a, b) -> dict:
    """Pearson and Spearman r of two score vectors over the entries finite in both (NaN when either is constant)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    out = {"pearson": math.nan, "spearman": math.nan, "n": int(ok.sum())}
    if ok.sum() < 3:
        return out
    a, b = a[ok], b[ok]

    def r(x, y):
        x, y = x - x.mean(), y - y.mean()
        den = math.sqrt(float(x @ x) * float(y @ y))
        return float(x @ y) / den if den > 0 else math.nan

    out["pearson"] = r(a, b)
    out["spearman"] = r(rankdata(a), rankdata(b))
    return out


def check_kernel_memory(n_train: int, n_test: int) -> None:
    """Refuse kernel ridge where its n_train x n_train matrices (kernel, regularized kernel, inverse, and the
    test-by-train kernel) would take more than half of the machine's memory."""
    need = 8 * n_train * (3 * n_train + n_test)
    have = physical_memory()
    if have is not None and need > have // 2:
        raise MemlensInputError(f"model 'kernel-ridge' needs the {n_train:,} x {n_train:,} kernel matrix and its "
                                f"inverse, about {need / 2**30:.1f} GiB, more than half of this machine's memory "
                                f"({have / 2**30:.1f} GiB): use --model ridge, or audit a subset of the data "
                                "(--data FILE.npz)")


def check_loo(loo, model: str, dp) -> bool:
    """``loo`` as a bool, refused for models without a leave-one-out closed form or approximation."""
    if not isinstance(loo, (bool, np.bool_)):
        raise MemlensInputError(f"loo must be True or False; got {loo!r}")
    loo = bool(loo)
    if loo and model not in LOO_MODELS:
        raise MemlensInputError(f"loo (leave-one-out memorization) needs a model with a closed-form or approximate "
                                f"leave-one-out: {', '.join(LOO_MODELS)} (exact for ridge and kernel-ridge, one "
                                f"Newton step for logreg); got model {model!r}: use --model ridge, kernel-ridge or "
                                "logreg, or drop --loo")
    if loo and dp is not None:
        raise MemlensInputError("loo (leave-one-out memorization) holds for the deterministic, exactly optimized "
                                "model; DP-SGD models are noisy and not at the optimum: drop --loo or --dp-epsilon")
    return loo


def audit_loo(dataset, *, model: str, model_config: Mapping[str, Any], subset_memorization,
              mem_threshold: float = MEM_THRESHOLD, n_top: int = 24) -> AuditLOO:
    """Leave-one-out memorization of every training example, and its agreement with the subset estimate.

    Feldman (2020), "Does learning require memorization?", Def. 4.1, at ``S \\ i`` for every ``i``, from one fit:
    exactly for ridge and kernel ridge (PRESS / hat-matrix identities), approximately for L2 logistic regression
    (one Newton step from the full fit, Rad & Maleki 2020); see :func:`memlens.train.closed_form_loo` and
    :func:`memlens.measures.loo_memorization`. The model is the audit's, with its configuration (``alpha``,
    ``kernel``, ``gamma``, ``C``, ``standardize``) fitted on the whole training split.

    Parameters
    ----------
    dataset : memlens.data.Dataset
    model : {"ridge", "kernel-ridge", "logreg"}
    model_config : mapping
        The audit's model configuration (``make_model_config(model).to_dict()``).
    subset_memorization : memlens.measures.MemorizationResult
        The audit's Feldman–Zhang estimate, shape (n_train,), compared with the leave-one-out scores.
    mem_threshold : float
        Memorized = score >= this, for both estimators.
    n_top : int
        How many most leave-one-out-memorized examples ``summary["most_memorized"]`` lists.

    Returns
    -------
    AuditLOO
    """
    if model not in LOO_MODELS:
        raise MemlensInputError(f"model must be one of {', '.join(LOO_MODELS)} for leave-one-out memorization; "
                                f"got {model!r}")
    cfg = dict(model_config)
    kw = {"standardize": bool(cfg.get("standardize", True))}
    if model == "logreg":
        kw["C"] = float(cfg["C"])
    else:
        kw["alpha"] = float(cfg["alpha"])
    if model == "kernel-ridge":
        kw.update(kernel=cfg.get("kernel", "rbf"), gamma=cfg.get("gamma"))
    t0 = time.perf_counter()
    res = closed_form_loo(dataset, model=model, **kw)
    mem = loo_memorization(res, signal="correct")
    mem_margin = loo_memorization(res, signal="margin")
    sig = res.signals("loo")
    seconds = time.perf_counter() - t0
    scores = mem.scores
    key_a = np.nan_to_num(scores, nan=-np.inf)
    key_b = np.nan_to_num(mem_margin.scores, nan=-np.inf)
    ranking = np.lexsort((np.arange(scores.size), -key_b, -key_a))
    fz = np.asarray(subset_memorization.scores, dtype=np.float64)
    loo_memo = np.nan_to_num(scores, nan=-np.inf) >= mem_threshold
    fz_memo = np.nan_to_num(fz, nan=-np.inf) >= mem_threshold
    exact = bool(res.exact)
    summary = {
        "model": model,
        "method": "exact" if exact else "approximate",
        "method_detail": res.method,
        "params": {k: (v if isinstance(v, (str, int, float, bool, type(None))) else repr(v))
                   for k, v in res.params.items()},
        "seconds": seconds,
        "definition": "Feldman 2020, Def. 4.1 at leave-one-out: correct(full fit, x_i) - correct(fit without i, "
                      "x_i), for every training example",
        "full_fit_train_accuracy": res.train_accuracy,
        "loo_accuracy": res.loo_accuracy,
        "full_fit_test_accuracy": res.test_accuracy,
        "n_memorized_loo": int(loo_memo.sum()),
        "n_memorized_subset": int(fz_memo.sum()),
        "n_memorized_both": int((loo_memo & fz_memo).sum()),
        "n_negative_loo": int(np.sum(np.nan_to_num(scores) < 0)),
        "n_undefined_loo": int((~np.isfinite(scores)).sum()),
        "mem_threshold": mem_threshold,
        "agreement": {"loo_memorization_vs_subset": correlations(scores, fz),
                      "loo_margin_memorization_vs_subset": correlations(mem_margin.scores, fz)},
        "most_memorized": ranking[:n_top].tolist(),
    }
    if not exact:
        summary["approximation"] = ("one Newton step from the full fit with the Hessian downdated by "
                                    "Sherman-Morrison-Woodbury (ALO, Rad & Maleki 2020); error grows when the "
                                    "example's share of the Hessian is large")
    return AuditLOO(res, mem, mem_margin, sig["margin"], sig["loss"], ranking, seconds, summary)
