"""Attack scores to numbers with uncertainty: ROC, AUC, TPR at a fixed FPR, bootstrap CIs, aggregation.

Every function takes ``scores`` (higher = more likely a member) and boolean ``labels`` (True = member), both of
shape ``(n,)``, and follows one written-down rule:

* **ROC** is :func:`sklearn.metrics.roc_curve` with ``drop_intermediate=False`` (one point per distinct score,
  so no point that the TPR-at-FPR rule could use is dropped).
* **AUC** is the trapezoidal area under that ROC; it equals :func:`sklearn.metrics.roc_auc_score`, i.e. the
  Mann–Whitney probability that a random member outscores a random non-member, ties counting one half.
* **TPR at FPR ``t``** is the largest TPR among the ROC points whose FPR is ``<= t`` (no interpolation between
  points: the attacker can only choose thresholds that exist). The point (0, 0) is always on the ROC, so the
  value is defined for every ``t >= 0``. When ``t < 1/n_negatives`` the only admissible points have zero false
  positives and a :class:`~memlens.MemlensWarning` says the requested FPR is below the ROC's resolution.
  (Carlini et al. 2022's plotting script uses ``fpr < t`` instead of ``<=``; the two differ only when ``t`` is an
  exact multiple of ``1/n_negatives``.)
* **Bootstrap CIs** resample members and non-members separately (stratified: the class sizes are fixed by the
  experiment), recompute the metric on every resample from one sorted pass, and report percentile intervals.
* **Aggregation over target models** reports the mean over targets with a Student-t interval
  ``mean ± t_{T−1, (1+level)/2} · sd / sqrt(T)``, beside the metrics of the pooled scores of all targets (the
  LiRA paper pools the scores of its target models into one ROC).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import roc_curve

from .._random import as_generator
from .._validation import MemlensInputError, check_float, check_int, warn

__all__ = [
    "DEFAULT_FPRS",
    "RocCurve",
    "ConfidenceInterval",
    "BootstrapResult",
    "AggregateResult",
    "mean_ci",
    "roc",
    "roc_auc",
    "tpr_at_fpr",
    "tpr_at_fpr_from_roc",
    "bootstrap_metrics",
    "bootstrap_ci",
    "aggregate",
    "auc_null_stderr",
]

#: The false-positive rates at which membership attacks are reported (0.1% and 1%, Carlini et al. 2022).
DEFAULT_FPRS = (1e-3, 1e-2)

# Relative slack when comparing an ROC point's FPR (k / n_neg computed in floating point) with a target FPR.
_FPR_SLACK = 1e-9


# --------------------------------------------------------------------------------------------- validation
def _check_scores_labels(scores, labels, *, names=("scores", "labels"),
                         allow_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    s_name, l_name = names
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise MemlensInputError(f"{s_name} must be a 1-d array (n_examples,); got shape {scores.shape}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise MemlensInputError(f"{l_name} must be a 1-d array (n_examples,); got shape {labels.shape}")
    if labels.shape != scores.shape:
        raise MemlensInputError(f"{l_name} must have the same shape as {s_name} {scores.shape}; "
                                f"got {labels.shape}")
    if labels.dtype != bool:
        if labels.size and not np.all(np.isin(labels, (0, 1))):
            raise MemlensInputError(f"{l_name} must be boolean (True = member) or 0/1; got values "
                                    f"{np.unique(labels)[:5]}")
        labels = labels.astype(bool)
    if scores.size and not allow_nan and not np.all(np.isfinite(scores)):
        bad = int(scores.size - np.count_nonzero(np.isfinite(scores)))
        raise MemlensInputError(f"{s_name} contains {bad} NaN or infinite value(s); drop undefined scores first "
                                "(AttackResult metrics do this for you)")
    return scores, labels


def _check_fprs(fprs) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(fprs, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise MemlensInputError(f"fpr must be a number or a 1-d sequence of numbers in [0, 1]; got {fprs!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise MemlensInputError(f"fpr must lie in [0, 1] (a false-positive rate, e.g. 1e-3 for 0.1%); got {fprs!r}")
    return arr


def _both_classes(n_pos: int, n_neg: int, what: str) -> bool:
    if n_pos == 0 or n_neg == 0:
        warn(f"{what} is undefined (NaN): it needs both members and non-members, got {n_pos} member(s) and "
             f"{n_neg} non-member(s)", stacklevel=4)
        return False
    return True


def _resolution_warning(fprs: np.ndarray, n_neg: int) -> None:
    low = fprs[(fprs > 0) & (fprs * n_neg < 1 - _FPR_SLACK)]
    if low.size:
        warn(f"FPR {low.min():g} is below the resolution 1/n_negatives = {1.0 / n_neg:g} of this ROC "
             f"({n_neg} non-members); the TPR reported is the TPR at zero false positives. Use more non-members "
             "(more target models or examples) to resolve it", stacklevel=4)


# --------------------------------------------------------------------------------------------- ROC
@dataclass(frozen=True, eq=False)
class RocCurve:
    """A receiver operating characteristic curve.

    Attributes
    ----------
    fpr, tpr : ndarray, shape (n_points,)
        Non-decreasing false- and true-positive rates, starting at (0, 0) and ending at (1, 1).
    thresholds : ndarray, shape (n_points,)
        Predict "member" when ``score >= threshold`` (the first threshold is ``+inf``).
    n_pos, n_neg : int
        Number of members and non-members.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    n_pos: int
    n_neg: int

    @property
    def auc(self) -> float:
        """Trapezoidal area under the curve (equals ``sklearn.metrics.roc_auc_score``)."""
        if self.n_pos == 0 or self.n_neg == 0:
            return float("nan")
        return float(np.trapezoid(self.tpr, self.fpr))

    def tpr_at(self, fpr):
        """Largest TPR among ROC points with FPR <= ``fpr`` (a float, or an array for an array of FPRs)."""
        return tpr_at_fpr_from_roc(self.fpr, self.tpr, fpr, n_neg=self.n_neg)

    @property
    def advantage(self) -> float:
        """Membership advantage ``max(TPR − FPR)`` over thresholds (Yeom et al. 2018)."""
        if self.n_pos == 0 or self.n_neg == 0:
            return float("nan")
        return float(np.max(self.tpr - self.fpr))


def roc(scores, labels) -> RocCurve:
    """ROC curve of membership scores.

    Parameters
    ----------
    scores : array, shape (n,)
        Higher = more likely a member. Must be finite.
    labels : array of bool, shape (n,)
        True for members.

    Returns
    -------
    RocCurve
        From :func:`sklearn.metrics.roc_curve` with ``drop_intermediate=False``. With only one class the curve is
        NaN and a :class:`~memlens.MemlensWarning` is issued.
    """
    scores, labels = _check_scores_labels(scores, labels)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if not _both_classes(n_pos, n_neg, "the ROC curve"):
        nan = np.array([np.nan])
        return RocCurve(nan, nan, nan, n_pos, n_neg)
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    return RocCurve(fpr, tpr, thr, n_pos, n_neg)


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve; equals :func:`sklearn.metrics.roc_auc_score` (NaN + warning with one class)."""
    return roc(scores, labels).auc


def tpr_at_fpr_from_roc(fpr, tpr, target, *, n_neg: int | None = None):
    """The TPR-at-FPR rule on a given ROC: the largest ``tpr[j]`` with ``fpr[j] <= target``.

    Parameters
    ----------
    fpr, tpr : array, shape (n_points,)
        An ROC curve (any order; the point (0, 0) is added if absent).
    target : float or array of float in [0, 1]
    n_neg : int, optional
        Number of non-members; when given, a :class:`~memlens.MemlensWarning` is issued for targets below
        ``1/n_neg``.

    Returns
    -------
    float, or ndarray of the shape of ``target``.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    scalar = np.ndim(target) == 0
    targets = _check_fprs(target)
    if fpr.shape != tpr.shape or fpr.ndim != 1:
        raise MemlensInputError(f"fpr and tpr must be 1-d arrays of the same shape; got {fpr.shape} and {tpr.shape}")
    if fpr.size == 0 or np.all(np.isnan(fpr)):
        out = np.full(targets.shape, np.nan)
        return float(out[0]) if scalar else out
    if n_neg is not None:
        _resolution_warning(targets, n_neg)
    fpr = np.r_[0.0, fpr]
    tpr = np.r_[0.0, tpr]
    ok = fpr[None, :] <= targets[:, None] * (1 + _FPR_SLACK) + 1e-15
    out = np.max(np.where(ok, tpr[None, :], -np.inf), axis=1)
    return float(out[0]) if scalar else out


def tpr_at_fpr(scores, labels, fpr=DEFAULT_FPRS):
    """TPR at a fixed FPR: the largest TPR among ROC points with FPR <= ``fpr``.

    Parameters
    ----------
    scores : array, shape (n,)
        Higher = more likely a member.
    labels : array of bool, shape (n,)
    fpr : float or sequence of float
        Target false-positive rate(s), e.g. ``1e-3`` for 0.1%.

    Returns
    -------
    float (for a scalar ``fpr``) or ndarray of shape (len(fpr),). A :class:`~memlens.MemlensWarning` is issued
    when ``fpr < 1/n_negatives``.
    """
    return roc(scores, labels).tpr_at(fpr)


def auc_null_stderr(n_pos: int, n_neg: int) -> float:
    """Standard error of the AUC of a score independent of membership: ``sqrt((n_pos + n_neg + 1) / (12 n_pos n_neg))``.

    This is the null standard deviation of the Mann–Whitney statistic divided by ``n_pos · n_neg`` (no ties).
    """
    n_pos = check_int("n_pos", n_pos, min_value=1)
    n_neg = check_int("n_neg", n_neg, min_value=1)
    return float(np.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg)))


# --------------------------------------------------------------------------------------------- bootstrap
def _weighted_metrics(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, fprs: np.ndarray) -> np.ndarray:
    """AUC and TPR@FPR of ``weights.shape[0]`` weighted versions of one sample, in one sorted pass.

    ``weights`` (B, n): multiplicity of each example in each resample. Returns (B, 1 + len(fprs)): AUC, then TPRs.
    Same rules as :func:`roc` / :func:`tpr_at_fpr_from_roc` (ties form one ROC point and count one half in the AUC).
    """
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    w = weights[:, order]
    lab = labels[order]
    pos = np.add.reduceat(np.where(lab[None, :], w, 0.0), starts, axis=1)   # (B, G): member weight per score
    neg = np.add.reduceat(np.where(lab[None, :], 0.0, w), starts, axis=1)
    tp = np.cumsum(pos, axis=1)
    fp = np.cumsum(neg, axis=1)
    P = tp[:, -1:]
    N = fp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.sum(pos * (N - fp + 0.5 * neg), axis=1) / (P[:, 0] * N[:, 0])
        tpr = tp / P
        fpr = fp / N
    out = np.empty((weights.shape[0], 1 + fprs.size))
    out[:, 0] = auc
    for j, t in enumerate(fprs):
        ok = fpr <= t * (1 + _FPR_SLACK) + 1e-15
        out[:, 1 + j] = np.max(np.where(ok, tpr, 0.0), axis=1, initial=0.0)
    bad = (P[:, 0] == 0) | (N[:, 0] == 0)
    out[bad] = np.nan
    return out


@dataclass(frozen=True, eq=False)
class ConfidenceInterval:
    """A point estimate with a two-sided confidence interval.

    Attributes
    ----------
    estimate, low, high : float
    level : float
        Confidence level, e.g. 0.95.
    metric : str
        What was estimated (``auc``, ``tpr@0.001``, ...).
    method : str
        How the interval was obtained.
    """

    estimate: float
    low: float
    high: float
    level: float
    metric: str
    method: str = "percentile bootstrap"

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.estimate, self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level,
                "metric": self.metric, "method": self.method}


@dataclass(frozen=True, eq=False)
class BootstrapResult:
    """Bootstrap distribution of AUC and TPR@FPR for one set of scores.

    Attributes
    ----------
    fprs : ndarray, shape (n_fprs,)
    auc : ConfidenceInterval
    tpr : tuple of ConfidenceInterval, one per FPR
    samples : ndarray, shape (n_boot, 1 + n_fprs)
        The resampled metrics: column 0 is the AUC, column ``1 + j`` the TPR at ``fprs[j]``.
    stratified : bool
    """

    fprs: np.ndarray
    auc: ConfidenceInterval
    tpr: tuple
    samples: np.ndarray
    stratified: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"auc": self.auc.to_dict(), "tpr": {f"{f:g}": c.to_dict() for f, c in zip(self.fprs, self.tpr)}}


def _metric_name(fpr: float | None) -> str:
    return "auc" if fpr is None else f"tpr@{fpr:g}"


def bootstrap_metrics(scores, labels, *, fprs=DEFAULT_FPRS, n_boot: int = 1000, level: float = 0.95, seed=0,
                      stratified: bool = True, chunk_elements: int = 4_000_000) -> BootstrapResult:
    """Percentile-bootstrap confidence intervals for the AUC and the TPR at each FPR in ``fprs``.

    Parameters
    ----------
    scores : array, shape (n,)
        Higher = more likely a member.
    labels : array of bool, shape (n,)
    fprs : sequence of float
        FPRs at which the TPR is reported (default 0.1% and 1%).
    n_boot : int
        Number of resamples.
    level : float in (0, 1)
        Confidence level of the two-sided percentile interval.
    seed : int or numpy.random.Generator
    stratified : bool
        Resample members and non-members separately (default), keeping their counts fixed; otherwise resample
        all examples together (a resample without members or non-members gives NaN and is ignored).
    chunk_elements : int
        Resamples are processed in chunks of about this many ``(resample, example)`` weights.

    Returns
    -------
    BootstrapResult
        Point estimates are the metrics of the original sample (as :func:`roc_auc` / :func:`tpr_at_fpr`).
    """
    scores, labels = _check_scores_labels(scores, labels)
    fprs = _check_fprs(fprs)
    n_boot = check_int("n_boot", n_boot, min_value=1)
    level = check_float("level", level, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
    rng = as_generator(seed)
    n = scores.size
    n_pos = int(labels.sum())
    n_neg = n - n_pos
    curve = roc(scores, labels)
    if not (n_pos and n_neg):
        nan_ci = ConfidenceInterval(np.nan, np.nan, np.nan, level, "auc")
        return BootstrapResult(fprs, nan_ci, tuple(ConfidenceInterval(np.nan, np.nan, np.nan, level, _metric_name(f))
                                                   for f in fprs), np.full((0, 1 + fprs.size), np.nan), stratified)
    _resolution_warning(fprs, n_neg)
    estimate = np.r_[curve.auc, tpr_at_fpr_from_roc(curve.fpr, curve.tpr, fprs)]
    pos_idx = np.flatnonzero(labels)
    neg_idx = np.flatnonzero(~labels)
    chunk = max(1, int(chunk_elements) // max(n, 1))
    samples = np.empty((n_boot, 1 + fprs.size))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = np.zeros((b, n))
        if stratified:
            w[:, pos_idx] = rng.multinomial(n_pos, np.full(n_pos, 1.0 / n_pos), size=b)
            w[:, neg_idx] = rng.multinomial(n_neg, np.full(n_neg, 1.0 / n_neg), size=b)
        else:
            w[:] = rng.multinomial(n, np.full(n, 1.0 / n), size=b)
        samples[start:start + b] = _weighted_metrics(scores, labels, w, fprs)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore"):
        lo = np.nanquantile(samples, alpha / 2, axis=0)
        hi = np.nanquantile(samples, 1 - alpha / 2, axis=0)
    cis = [ConfidenceInterval(float(estimate[j]), float(lo[j]), float(hi[j]), level,
                              _metric_name(None if j == 0 else float(fprs[j - 1])))
           for j in range(1 + fprs.size)]
    return BootstrapResult(fprs, cis[0], tuple(cis[1:]), samples, stratified)


def bootstrap_ci(scores, labels, *, fpr: float | None = None, n_boot: int = 1000, level: float = 0.95, seed=0,
                 stratified: bool = True) -> ConfidenceInterval:
    """Percentile-bootstrap CI of the AUC (``fpr=None``) or of the TPR at ``fpr``. See :func:`bootstrap_metrics`."""
    if fpr is None:
        res = bootstrap_metrics(scores, labels, fprs=DEFAULT_FPRS[:1], n_boot=n_boot, level=level, seed=seed,
                                stratified=stratified)
        return res.auc
    fpr = check_float("fpr", fpr, min_value=0.0, max_value=1.0)
    res = bootstrap_metrics(scores, labels, fprs=(fpr,), n_boot=n_boot, level=level, seed=seed,
                            stratified=stratified)
    return res.tpr[0]


# --------------------------------------------------------------------------------------------- aggregation
@dataclass(frozen=True, eq=False)
class AggregateResult:
    """Attack metrics over many target models.

    Attributes
    ----------
    name : str
        The attack (and variant) aggregated.
    targets : ndarray of int, shape (n_targets,)
        Target-model indices (or 0..n_targets-1 when unknown).
    fprs : ndarray, shape (n_fprs,)
    auc : ndarray, shape (n_targets,)
        AUC of each target (NaN where undefined).
    tpr : ndarray, shape (n_targets, n_fprs)
        TPR at each FPR for each target.
    level : float
        Confidence level of the intervals.
    mean_auc : float
    auc_ci : ndarray, shape (2,)
        Student-t interval of the mean AUC over targets (NaN with fewer than two targets).
    mean_tpr : ndarray, shape (n_fprs,)
    tpr_ci : ndarray, shape (n_fprs, 2)
    pooled_auc : float
        AUC of all targets' scores pooled into one ROC.
    pooled_tpr : ndarray, shape (n_fprs,)
    n_pooled_pos, n_pooled_neg : int
        Members and non-members in the pooled ROC (its FPR resolution is ``1/n_pooled_neg``).
    """

    name: str
    targets: np.ndarray
    fprs: np.ndarray
    auc: np.ndarray
    tpr: np.ndarray
    level: float
    mean_auc: float
    auc_ci: np.ndarray
    mean_tpr: np.ndarray
    tpr_ci: np.ndarray
    pooled_auc: float
    pooled_tpr: np.ndarray
    n_pooled_pos: int = 0
    n_pooled_neg: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_targets(self) -> int:
        return int(self.auc.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (NaN stays NaN; ``experiments._common.write_results`` turns it into null)."""
        return {
            "name": self.name,
            "n_targets": self.n_targets,
            "level": self.level,
            "auc": {"mean": self.mean_auc, "ci": [float(x) for x in self.auc_ci], "pooled": self.pooled_auc,
                    "per_target": [float(x) for x in self.auc]},
            "tpr": {f"{f:g}": {"mean": float(m), "ci": [float(x) for x in ci], "pooled": float(p)}
                    for f, m, ci, p in zip(self.fprs, self.mean_tpr, self.tpr_ci, self.pooled_tpr)},
            "n_pooled_pos": self.n_pooled_pos,
            "n_pooled_neg": self.n_pooled_neg,
        }


def mean_ci(values, *, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval ``(mean, low, high)`` of independent values.

    Non-finite values are dropped; with fewer than 2 values the interval is ``(NaN, NaN)``.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return mean, mean - half, mean + half


def _scores_labels_of(item) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(item, "scores") and hasattr(item, "labels"):
        scores, labels = np.asarray(item.scores, np.float64), np.asarray(item.labels)
    else:
        try:
            scores, labels = item
        except (TypeError, ValueError):
            raise MemlensInputError("results must hold AttackResult objects or (scores, labels) pairs; got "
                                    f"{type(item).__name__}") from None
        scores = np.asarray(scores, np.float64)
        labels = np.asarray(labels)
    if scores.shape != labels.shape:
        raise MemlensInputError(f"scores and labels of one target must have the same shape; got {scores.shape} "
                                f"and {labels.shape}")
    ok = np.isfinite(scores)
    return scores[ok], labels[ok]


def aggregate(results: Sequence, *, fprs=DEFAULT_FPRS, level: float = 0.95, name: str | None = None,
              targets=None) -> AggregateResult:
    """Aggregate attack metrics over target models: mean ± CI across targets, and the pooled ROC.

    Parameters
    ----------
    results : sequence of AttackResult or of (scores, labels) pairs
        One entry per target model; undefined (NaN) scores are left out of each target's metrics.
    fprs : sequence of float
        FPRs at which TPR is reported (default 0.1% and 1%).
    level : float in (0, 1)
        Confidence level of the Student-t interval of the mean over targets.
    name : str, optional
        Defaults to the ``name`` of the first result.
    targets : array of int, optional
        Target indices; defaults to each result's ``target`` attribute, else 0..n-1.

    Returns
    -------
    AggregateResult
    """
    results = list(results)
    if not results:
        raise MemlensInputError("results must contain at least one target's result; got an empty sequence")
    fprs = _check_fprs(fprs)
    level = check_float("level", level, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
    if name is None:
        name = str(getattr(results[0], "name", "attack"))
    if targets is None:
        tg = [getattr(r, "target", None) for r in results]
        targets = np.array([t if t is not None else k for k, t in enumerate(tg)], dtype=np.int64)
    else:
        targets = np.asarray(targets, dtype=np.int64)
        if targets.shape != (len(results),):
            raise MemlensInputError(f"targets must have one entry per result ({len(results)}); got {targets.shape}")
    aucs = np.full(len(results), np.nan)
    tprs = np.full((len(results), fprs.size), np.nan)
    all_s, all_l = [], []
    low_res = []
    undefined = 0
    for k, item in enumerate(results):
        s, lab = _scores_labels_of(item)
        all_s.append(s)
        all_l.append(lab)
        n_pos = int(lab.sum())
        n_neg = lab.size - n_pos
        if n_pos == 0 or n_neg == 0:
            undefined += 1
            continue
        if np.any((fprs > 0) & (fprs * n_neg < 1 - _FPR_SLACK)):
            low_res.append(n_neg)

        fpr, tpr, _ = roc_curve(lab, s, drop_intermediate=False)
        aucs[k] = float(np.trapezoid(tpr, fpr))
        tprs[k] = tpr_at_fpr_from_roc(fpr, tpr, fprs)
    if undefined:
        warn(f"{undefined} of {len(results)} target(s) have no members or no non-members among their defined "
             "scores; their metrics are NaN and left out of the mean", stacklevel=3)
    if low_res:
        warn(f"for {len(low_res)} target(s) (as few as {min(low_res)} non-members) an FPR in "
             f"{[float(f) for f in fprs]} is below the per-target resolution 1/n_negatives: their TPR is the TPR "
             "at zero false positives; the pooled ROC resolves lower FPRs", stacklevel=3)
    if len(results) < 2:
        warn("a confidence interval over targets needs at least two target models; the interval is NaN",
             stacklevel=3)
    mean_auc, *auc_ci = mean_ci(aucs, level=level)
    auc_ci = np.array(auc_ci)
    mean_tpr = np.empty(fprs.size)
    tpr_ci = np.empty((fprs.size, 2))
    for j in range(fprs.size):
        mean_tpr[j], *ci = mean_ci(tprs[:, j], level=level)
        tpr_ci[j] = ci
    pooled_s = np.concatenate(all_s)
    pooled_l = np.concatenate(all_l).astype(bool)
    n_pos = int(pooled_l.sum())
    n_neg = int(pooled_l.size - n_pos)
    if n_pos and n_neg:
        curve = roc(pooled_s, pooled_l)
        pooled_auc = curve.auc
        pooled_tpr = curve.tpr_at(fprs)
    else:
        pooled_auc, pooled_tpr = float("nan"), np.full(fprs.size, np.nan)
    return AggregateResult(name, targets, fprs, aucs, tprs, level, mean_auc, auc_ci, mean_tpr, tpr_ci,
                           float(pooled_auc), np.asarray(pooled_tpr, dtype=np.float64), n_pos, n_neg)
