"""Results of membership attacks: one target (:class:`AttackResult`) and every target (:class:`AllTargetsResult`).

Scores are **higher = more likely a member** of the target model's training set; the results keep the raw arrays
and derive ROC curves, AUC and TPR at fixed FPR with their uncertainty.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .._display import html_table
from .._validation import MemlensInputError
from ..evaluation.metrics import (
    DEFAULT_FPRS,
    AggregateResult,
    BootstrapResult,
    RocCurve,
    bootstrap_metrics,
    roc,
)

__all__ = ["AttackResult", "AllTargetsResult"]


@dataclass(frozen=True, eq=False)
class AttackResult:
    """Membership scores of one target model's training examples.

    Attributes
    ----------
    name : str
        Attack and variant, e.g. ``lira-online`` or ``rmia-offline``.
    scores : ndarray, shape (n_examples,)
        Higher = more likely a member. NaN where the attack is undefined (a warning said why).
    labels : ndarray of bool, shape (n_examples,)
        True where the example is in the target model's training set (the target's row of the masks).
    target : int or None
        Row of the target model in the population.
    params : mapping
        Every setting the score depends on (signal, variant, number of reference models, ...).
    details : mapping of str to ndarray, shape (n_examples,)
        Per-example intermediate quantities (LiRA's μ and σ, RMIA's likelihood ratio, ...).
    """

    name: str
    scores: np.ndarray
    labels: np.ndarray
    target: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        scores = np.asarray(self.scores, dtype=np.float64)
        labels = np.asarray(self.labels)
        if scores.ndim != 1:
            raise MemlensInputError(f"scores must be a 1-d array (n_examples,); got shape {scores.shape}")
        if labels.shape != scores.shape:
            raise MemlensInputError(f"labels must have the shape of scores {scores.shape}; got {labels.shape}")
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels.astype(bool))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))

    @property
    def defined(self) -> np.ndarray:
        """Boolean mask ``(n_examples,)`` of examples with a finite score; metrics use only these."""
        return np.isfinite(self.scores)

    @property
    def n_undefined(self) -> int:
        return int(self.scores.size - np.count_nonzero(self.defined))

    def roc(self) -> RocCurve:
        """ROC curve over the examples with a defined score."""
        d = self.defined
        return roc(self.scores[d], self.labels[d])

    @property
    def auc(self) -> float:
        """Area under the ROC curve (equals ``sklearn.metrics.roc_auc_score`` on the defined examples)."""
        return self.roc().auc

    def tpr_at(self, fpr=DEFAULT_FPRS):
        """Largest TPR among ROC points with FPR <= ``fpr`` (see :mod:`memlens.evaluation.metrics`)."""
        return self.roc().tpr_at(fpr)

    @property
    def advantage(self) -> float:
        """Membership advantage ``max_threshold (TPR − FPR)`` (Yeom et al. 2018)."""
        return self.roc().advantage

    def bootstrap(self, *, fprs=DEFAULT_FPRS, n_boot: int = 1000, level: float = 0.95, seed=0) -> BootstrapResult:
        """Stratified percentile-bootstrap CIs of AUC and TPR@FPR (:func:`memlens.evaluation.bootstrap_metrics`)."""
        d = self.defined
        return bootstrap_metrics(self.scores[d], self.labels[d], fprs=fprs, n_boot=n_boot, level=level, seed=seed)

    def _repr_html_(self) -> str:
        d = self.defined
        rows = [("attack", self.name), ("target model", "–" if self.target is None else str(self.target)),
                ("examples (members)", f"{int(d.sum()):,} ({int(self.labels[d].astype(bool).sum()):,})")]
        if 0 < self.labels[d].astype(bool).sum() < d.sum():
            with warnings.catch_warnings():     # a display: the resolution warning was given where it was computed
                warnings.simplefilter("ignore")
                tpr = self.tpr_at(DEFAULT_FPRS)
            rows += [("AUC", f"{self.auc:.4f}")] + [(f"TPR at {100 * f:g}% FPR", f"{100 * float(t):.2f}%")
                                                   for f, t in zip(DEFAULT_FPRS, np.atleast_1d(tpr))]
        return html_table("AttackResult", rows)

    def summary(self, fprs=DEFAULT_FPRS) -> dict[str, Any]:
        """JSON-friendly numbers: name, target, AUC, TPR at each FPR, advantage, counts."""
        curve = self.roc()
        return {"name": self.name, "target": self.target, "auc": curve.auc,
                "tpr": {f"{f:g}": float(t) for f, t in zip(np.atleast_1d(fprs), np.atleast_1d(curve.tpr_at(fprs)))},
                "advantage": curve.advantage, "n_members": curve.n_pos, "n_nonmembers": curve.n_neg,
                "n_undefined": self.n_undefined, "params": dict(self.params)}


@dataclass(frozen=True, eq=False)
class AllTargetsResult:
    """One attack run against many target models of a population.

    Attributes
    ----------
    results : tuple of AttackResult
        One per target, in the order of ``targets``.
    aggregate : AggregateResult
        Mean ± CI over targets and the pooled ROC (:func:`memlens.evaluation.aggregate`).
    """

    results: tuple
    aggregate: AggregateResult

    @property
    def targets(self) -> np.ndarray:
        return np.array([r.target for r in self.results], dtype=np.int64)

    @property
    def scores(self) -> np.ndarray:
        """``(n_targets, n_examples)`` scores, one row per target."""
        return np.stack([r.scores for r in self.results])

    @property
    def labels(self) -> np.ndarray:
        """``(n_targets, n_examples)`` membership of each example in each target."""
        return np.stack([r.labels for r in self.results])

    @property
    def name(self) -> str:
        return self.aggregate.name
