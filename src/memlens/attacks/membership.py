"""Membership-inference attacks as pure functions of a Population's masks and signals.

The target model is one row ``target`` of the population; its reference (shadow) models are the other rows (or
the rows given in ``references``), so every model can be attacked in turn with the same trained population
(leave-one-model-out). Every attack scores every training example and returns an :class:`AttackResult`; every
score is **higher = more likely a member** of the target's training set.

=====================  ==================================================================================
attack                 score of example x for target model θ
=====================  ==================================================================================
``loss_attack``        ``−ℓ_θ(x)`` (Yeom et al. 2018, CSF: the adversary that thresholds the loss)
``calibrated_loss``    ``−(ℓ_θ(x) − mean_OUT ℓ(x))``: difficulty calibration with OUT reference models
                       (Watson et al. 2022, ICLR, with the mean over reference models trained without x)
``lira``               Carlini et al. 2022 (S&P), likelihood-ratio attack on the stable logit φ; online:
                       ``log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²)``; offline: ``−log P[Z > φ]``,
                       ``Z ~ N(μ_out, σ_out²)``
``rmia``               Zarifzadeh, Liu & Shokri 2024 (ICML): ``P_z[ (p_θ(x)/p(x)) / (p_θ(z)/p(z)) ≥ γ ]``
                       over population samples z
``shadow_attack``      Shokri et al. 2017 (S&P): a classifier trained on the reference models' (signal,
                       membership) pairs, per class, applied to the target's signals
=====================  ==================================================================================

Exact variants (peers differ here, spec/peers.md): LiRA's Gaussians are fitted with the mean and the unbiased
(ddof=1) variance by default (``estimator="median"`` uses the median for the centre, as in the authors'
``plot.py``); the offline score is the *one-sided* test of the paper, not the two-sided ``−logpdf`` of that
script; the fixed-variance variant uses one global variance shared by both Gaussians. All of this is recorded
in each result's ``params``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
from scipy.special import expit, log_ndtr
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier

from .._random import as_generator
from .._validation import MemlensInputError, check_float, check_int, warn
from ..evaluation.metrics import (
    DEFAULT_FPRS,
    AggregateResult,
    BootstrapResult,
    RocCurve,
    aggregate,
    bootstrap_metrics,
    roc,
)
from ..population import SIGNAL_SIGN

__all__ = [
    "AttackResult",
    "AllTargetsResult",
    "ATTACKS",
    "loss_attack",
    "calibrated_loss_attack",
    "lira",
    "rmia",
    "shadow_attack",
    "attack_all_targets",
]

# Arrays of at most about this many (target, example) entries are processed at once.
_CHUNK_ELEMENTS = 2_000_000


# =============================================================================================== result
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


# =============================================================================================== helpers
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
        pool = np.ones(n_models, dtype=bool)
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


# =============================================================================================== loss attacks
def _loss_batch(pop, targets, *, signal="loss", references=None):
    values = _values(pop, signal)
    sign = _sign(signal)
    scores = sign * values[targets]
    params = {"signal": signal, "sign": sign, "n_reference": 0}
    return scores, [{} for _ in targets], params, {}


def loss_attack(pop, *, target: int, signal: str = "loss") -> AttackResult:
    """The loss-threshold attack of Yeom et al. 2018 (CSF): member iff ``ℓ_θ(x) <= τ``.

    Parameters
    ----------
    pop : Population
    target : int
        Row of the model to attack.
    signal : str
        ``loss`` (default; the score is ``−loss``), or any other train-split signal (``logit`` and ``correct`` are
        used as they are, since higher means a better fit).

    Returns
    -------
    AttackResult
        ``scores[i] = −ℓ_target(x_i)`` (shape ``(n_train,)``); no reference model is used.
    """
    _check_pop(pop)
    target = _check_target(pop, target)
    scores, det, params, _ = _loss_batch(pop, np.array([target]), signal=signal)
    return _result("loss", scores[0], pop.masks[target], target, params, det[0])


def _calibrated_batch(pop, targets, *, signal="loss", references=None):
    values = _values(pop, signal)
    sign = _sign(signal)
    pool = _pool(pop, targets, references)
    sums = _Sums(pop.masks, values, pool, squares=False)
    out = np.empty((targets.size, values.shape[1]))
    details = []
    undefined = 0
    pos = 0
    for tg in _chunks(targets, values.shape[1]):
        st = sums.stats(tg)
        out[pos:pos + tg.size] = sign * (values[tg] - st.mean_out)
        pos += tg.size
        undefined += int(np.sum(st.n_out == 0))
        details.extend({"reference_mean_out": st.mean_out[j], "n_out": st.n_out[j]} for j in range(tg.size))
    params = {"signal": signal, "sign": sign, "calibration": "mean over OUT reference models",
              "n_reference": int(pool.sum()) - (1 if references is None else 0)}
    return out, details, params, {"no_out": undefined}


def _warn_calibrated(counts, n_targets):
    if counts["no_out"]:
        warn(f"{counts['no_out']} (target, example) pair(s) over {n_targets} target(s) have no OUT reference model, "
             "so their calibrated loss is undefined (NaN); train more reference models", stacklevel=4)


def calibrated_loss_attack(pop, *, target: int, signal: str = "loss", references=None) -> AttackResult:
    """Difficulty-calibrated loss attack: the target's loss minus the mean loss of OUT reference models.

    Watson, Guo, Cormode & Sablayrolles 2022 (ICLR), "On the importance of difficulty calibration in membership
    inference attacks": ``s_cal(x) = s(x) − E_ref[s(x)]``, here with the expectation over reference models that
    did not train on x (the offline calibration also used by Ye et al. 2022, Attack R).

    Parameters
    ----------
    pop : Population
    target : int
    signal : str
        ``loss`` (default, negated so that higher = member) or another train-split signal.
    references : array of int, optional
        Rows to use as reference models (default: every row except the target).

    Returns
    -------
    AttackResult
        ``scores[i] = −(ℓ_target(x_i) − mean_{k OUT for i} ℓ_k(x_i))``; NaN (with a warning) where no reference
        model is OUT for ``x_i``.
    """
    _check_pop(pop)
    target = _check_target(pop, target)
    scores, det, params, counts = _calibrated_batch(pop, np.array([target]), signal=signal, references=references)
    _warn_calibrated(counts, 1)
    return _result("calibrated_loss", scores[0], pop.masks[target], target, params, det[0])


# =============================================================================================== LiRA
def _lira_name(online: bool, fix_variance: bool) -> str:
    return "lira-" + ("online" if online else "offline") + ("-fixed-variance" if fix_variance else "")


def _lira_batch(pop, targets, *, online=True, fix_variance=False, signal="logit", estimator="mean",
                references=None, min_variance=1e-10):
    if estimator not in ("mean", "median"):
        raise MemlensInputError(f"estimator must be 'mean' or 'median'; got {estimator!r}")
    min_variance = check_float("min_variance", min_variance, min_value=0.0)
    values = _values(pop, signal)
    pool = _pool(pop, targets, references)
    sums = _Sums(pop.masks, values, pool)
    n = values.shape[1]
    out = np.empty((targets.size, n))
    details = []
    counts = {"few_in": 0, "few_out": 0, "no_in": 0, "no_out": 0, "total_variance": 0}
    pos = 0
    for tg in _chunks(targets, n):
        st = sums.stats(tg)
        if estimator == "median":
            st = _median_stats(pop.masks, values, pool, tg, st)
        phi = values[tg]
        with np.errstate(invalid="ignore", divide="ignore"):
            if fix_variance:
                # one global variance per target, pooled over examples (and over IN and OUT when online)
                dof = np.maximum(st.n_out - 1, 0).sum(axis=1)
                ss = np.where(st.n_out >= 2, st.ss_out, 0.0).sum(axis=1)
                if online:
                    dof = dof + np.maximum(st.n_in - 1, 0).sum(axis=1)
                    ss = ss + np.where(st.n_in >= 2, st.ss_in, 0.0).sum(axis=1)
                var = ss / dof
                # no example has two reference models in a group (e.g. one reference model): fall back to the
                # variance of the reference signal over all examples (the authors' plot.py ``np.std(dat)``)
                fallback = dof == 0
                if fallback.any():
                    counts["total_variance"] += int(fallback.sum())
                    for j in np.flatnonzero(fallback):
                        rows = pool.copy()
                        rows[tg[j]] = False
                        sel = ~pop.masks[rows] if not online else np.ones_like(pop.masks[rows])
                        vals = values[rows][sel]
                        var[j] = vals.var() if vals.size else np.nan
                var_in = var_out = np.maximum(var, min_variance)[:, None]
            else:
                var_in = np.where(st.n_in >= 2, st.ss_in / (st.n_in - 1), np.nan)
                var_out = np.where(st.n_out >= 2, st.ss_out / (st.n_out - 1), np.nan)
                var_in = np.maximum(var_in, min_variance)
                var_out = np.maximum(var_out, min_variance)
            var_in = np.broadcast_to(var_in, phi.shape)
            var_out = np.broadcast_to(var_out, phi.shape)
            z_out = (phi - st.mean_out) / np.sqrt(var_out)
            if online:
                log_in = -0.5 * np.log(2 * np.pi * var_in) - 0.5 * (phi - st.mean_in) ** 2 / var_in
                log_out = -0.5 * np.log(2 * np.pi * var_out) - 0.5 * z_out ** 2
                sc = log_in - log_out
            else:
                sc = -log_ndtr(-z_out)          # −log P[Z > φ] for Z ~ N(μ_out, σ_out²)
        sc = np.where(np.isfinite(sc), sc, np.nan)
        out[pos:pos + tg.size] = sc
        pos += tg.size
        counts["no_out"] += int(np.sum(st.n_out == 0))
        if online:
            counts["no_in"] += int(np.sum(st.n_in == 0))
        if not fix_variance:
            counts["few_out"] += int(np.sum(st.n_out < 2))
            if online:
                counts["few_in"] += int(np.sum(st.n_in < 2))
        for j in range(tg.size):
            details.append({"mu_in": st.mean_in[j], "mu_out": st.mean_out[j], "sd_in": np.sqrt(var_in[j]),
                            "sd_out": np.sqrt(var_out[j]), "n_in": st.n_in[j], "n_out": st.n_out[j]})
    params = {"signal": signal, "online": bool(online), "fix_variance": bool(fix_variance), "estimator": estimator,
              "variance": ("global, pooled within-example" if fix_variance else "per-example") + ", ddof=1",
              "offline_score": None if online else "-log P[Z > phi], Z ~ N(mu_out, sd_out^2) (one-sided)",
              "min_variance": min_variance,
              "n_reference": int(pool.sum()) - (1 if references is None else 0)}
    if counts["total_variance"]:
        params["variance"] = "global, total variance of the reference signal (too few reference models to pool)"
    return out, details, params, counts


def _warn_lira(counts, n_targets, online, fix_variance):
    if online and (counts["no_in"] or counts["no_out"]):
        warn(f"{counts['no_in']} (target, example) pair(s) have no IN and {counts['no_out']} no OUT reference model "
             f"over {n_targets} target(s): their online LiRA score is undefined (NaN); use more reference models or "
             "online=False", stacklevel=4)
    elif not online and counts["no_out"]:
        warn(f"{counts['no_out']} (target, example) pair(s) have no OUT reference model over {n_targets} target(s): "
             "their offline LiRA score is undefined (NaN); use more reference models", stacklevel=4)
    if not fix_variance and (counts["few_in"] or counts["few_out"]):
        warn(f"{counts['few_in']} IN and {counts['few_out']} OUT per-example variance(s) need at least 2 reference "
             f"models and are undefined (NaN scores) over {n_targets} target(s); use fix_variance=True (recommended "
             "with few reference models, Carlini et al. 2022) or more reference models", stacklevel=4)


def lira(pop, *, target: int, online: bool = True, fix_variance: bool = False, signal: str = "logit",
         estimator: str = "mean", references=None, min_variance: float = 1e-10) -> AttackResult:
    """The Likelihood Ratio Attack (LiRA) of Carlini, Chien, Nasr, Song, Terzis & Tramèr 2022 (S&P).

    For every example x the reference models give the signal φ (default: the stable logit
    ``φ = log p_y − log Σ_{y'≠y} p_{y'}``, the paper's §IV-B logit scaling) of the models trained with x (IN) and
    without x (OUT); each group is fitted with a Gaussian. For the target's value φ_θ(x):

    * **online** (Algorithm 1): ``Λ = log N(φ_θ; μ_in, σ_in²) − log N(φ_θ; μ_out, σ_out²)``, the log of the
      likelihood ratio of the two Gaussians (the authors' ``plot.py`` computes the same difference of
      ``scipy.stats.norm.logpdf``).
    * **offline** (the paper's one-sided test against the OUT Gaussian): ``Λ = −log P[Z > φ_θ]``,
      ``Z ~ N(μ_out, σ_out²)``, i.e. minus the log of the upper-tail p-value. It is an increasing function of the
      standardized ``z = (φ_θ − μ_out)/σ_out``, so it ranks examples exactly as ``z`` and as the paper's
      ``1 − P[Z > φ_θ]``, without that form's saturation at 1. (The authors' ``plot.py`` instead scores offline
      with the two-sided ``−logpdf`` under the OUT Gaussian; memlens follows the paper.)
    * **fix_variance**: one global variance instead of per-example variances (recommended with few reference
      models): the pooled within-example variance, over the IN and OUT groups together when online and over the
      OUT group offline. Since it is shared by all examples and both Gaussians, it rescales the scores without
      changing their ranking. With too few models to pool (e.g. one reference model) it falls back to the
      variance of the reference signal over all examples (the authors' ``np.std(dat)``).

    Parameters
    ----------
    pop : Population
    target : int
        Row of the model to attack; every other row (or ``references``) is a reference model.
    online : bool
        Online (IN and OUT Gaussians) or offline (OUT only).
    fix_variance : bool
        Global instead of per-example variance.
    signal : str
        Train-split signal to model (default ``logit``, LiRA's stable logit).
    estimator : {"mean", "median"}
        Centre of each Gaussian: the mean (maximum likelihood; computed for all targets in one pass) or the
        median (as in the authors' code). Variances are the unbiased (ddof=1) variance about the centre.
    references : array of int, optional
        Rows to use as reference models (must not contain the target).
    min_variance : float
        Floor on every variance (signals that are constant over models, e.g. saturated probabilities).

    Returns
    -------
    AttackResult
        ``scores`` of shape ``(n_train,)``, higher = more likely a member. NaN (with a
        :class:`~memlens.MemlensWarning`) where a needed group has no model, or, with per-example variance, fewer
        than two models. ``details`` holds ``mu_in, mu_out, sd_in, sd_out, n_in, n_out``.
    """
    _check_pop(pop)
    target = _check_target(pop, target)
    scores, det, params, counts = _lira_batch(pop, np.array([target]), online=online, fix_variance=fix_variance,
                                              signal=signal, estimator=estimator, references=references,
                                              min_variance=min_variance)
    _warn_lira(counts, 1, online, fix_variance)
    return _result(_lira_name(online, fix_variance), scores[0], pop.masks[target], target, params, det[0])


# =============================================================================================== RMIA
def _probability(values: np.ndarray, signal: str) -> np.ndarray:
    """p_θ(x): the model's probability of the true label, from a stored signal."""
    if signal == "loss":
        return np.exp(-values)
    if signal == "logit":                                # stable logit φ = log p − log(1 − p)

        return expit(values)
    if signal in ("prob", "proba", "probability", "confidence"):
        return values
    raise MemlensInputError(f"signal must be 'loss', 'logit' or a probability signal ('prob', 'confidence') for "
                            f"RMIA, which needs the probability of the true label; got {signal!r}")


def _rmia_batch(pop, targets, *, gamma=1.0, offline_a=0.3, online=True, signal="loss", z_split="test",
                references=None):
    gamma = check_float("gamma", gamma, min_value=0.0, min_inclusive=False,
                        hint="(the likelihood-ratio threshold; the paper uses 1 or 2)")
    a = check_float("offline_a", offline_a, min_value=0.0, max_value=1.0,
                    hint="(p_IN(x) is approximated by a·p_OUT(x) + 1 − a)")
    if z_split not in pop.signals:
        raise MemlensInputError(f"z_split must name a split of the population holding population samples z "
                                f"(examples no model trained on); got {z_split!r}, available: {list(pop.signals)}; "
                                "pass z_split='train' to compare against all training examples")
    p = _probability(_values(pop, signal), signal)
    pool = _pool(pop, targets, references)
    sums = _Sums(pop.masks, p, pool, squares=False)
    z_is_train = z_split == "train"
    if not z_is_train:
        pz = _probability(_values(pop, signal, z_split), signal)
        if pz.shape[1] == 0:
            raise MemlensInputError(f"split {z_split!r} has no examples to use as population samples z")
        z_masks = np.zeros(pz.shape, dtype=bool)      # population samples are OUT for every model
        zsums = _Sums(z_masks, pz, pool, squares=False)
    n = p.shape[1]
    out = np.empty((targets.size, n))
    details = []
    counts = {"undefined": 0}

    def marginal(st):
        with np.errstate(invalid="ignore"):
            if online:
                return 0.5 * (st.mean_in + st.mean_out)
            return 0.5 * ((1 + a) * st.mean_out + (1 - a))

    pos = 0
    for tg in _chunks(targets, n):
        st = sums.stats(tg)
        px = marginal(st)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio_x = p[tg] / px
        if z_is_train:
            ratio_z_all = ratio_x
        else:
            zst = zsums.stats(tg)
            with np.errstate(invalid="ignore", divide="ignore"):
                pzm = zst.mean_out if online else 0.5 * ((1 + a) * zst.mean_out + (1 - a))
                ratio_z_all = pz[tg] / pzm
        for j in range(tg.size):
            rz = ratio_z_all[j]
            rz = np.sort(rz[np.isfinite(rz)])
            rx = ratio_x[j]
            ok = np.isfinite(rx)
            sc = np.full(n, np.nan)
            if rz.size:
                # LR(x, z) = ratio_x / ratio_z >= gamma  <=>  ratio_z <= ratio_x / gamma
                sc[ok] = np.searchsorted(rz, rx[ok] / gamma, side="right") / rz.size
            out[pos + j] = sc
            counts["undefined"] += int(np.sum(~np.isfinite(sc)))
            details.append({"likelihood_ratio": rx, "p_target": p[tg[j]], "p_marginal": px[j]})
        pos += tg.size
    params = {"signal": signal, "gamma": gamma, "online": bool(online), "offline_a": None if online else a,
              "z_split": z_split, "p_x": "(p_in + p_out)/2" if online else "((1+a) p_out + 1 - a)/2",
              "n_reference": int(pool.sum()) - (1 if references is None else 0)}
    return out, details, params, counts


def _warn_rmia(counts, n_targets, online):
    if counts["undefined"]:
        need = "an IN and an OUT" if online else "an OUT"
        warn(f"{counts['undefined']} (target, example) pair(s) over {n_targets} target(s) have an undefined RMIA score "
             f"(NaN): p(x) needs {need} reference model; use more reference models"
             + (" or online=False" if online else ""), stacklevel=4)


def rmia(pop, *, target: int, gamma: float = 1.0, offline_a: float = 0.3, online: bool = True,
         signal: str = "loss", z_split: str = "test", references=None) -> AttackResult:
    """The Robust Membership Inference Attack (RMIA) of Zarifzadeh, Liu & Shokri 2024 (ICML).

    ``Score(x) = P_z[ LR_θ(x, z) ≥ γ ]`` with the pairwise likelihood ratio
    ``LR_θ(x, z) = (p_θ(x) / p(x)) / (p_θ(z) / p(z))`` over population samples z, where ``p_θ(x)`` is the target
    model's probability of x's true label and ``p(x)`` its average over reference models (the paper's Eqs. for
    ``Score_MIA`` and ``LR_θ``).

    * **online**: ``p(x) = (p̄_IN(x) + p̄_OUT(x)) / 2``, the average over reference models half of which trained
      on x (it equals the plain average in the paper's paired setting and removes the bias of unbalanced masks).
    * **offline**: only OUT models; ``p_IN`` is approximated linearly, ``p(x) = ((1 + a) p̄_OUT(x) + 1 − a) / 2``
      (the paper's offline approximation with parameter ``a = offline_a``).
    * **population samples z**: the examples of split ``z_split`` (default ``test``: no model trained on them),
      with ``p(z)`` the average over the reference models (offline: the same linear approximation, as in the
      authors' Privacy Meter). ``z_split="train"`` compares with all training examples, using the same ``p(x)``
      rule; it does not use the target's membership labels.

    Parameters
    ----------
    pop : Population
    target : int
    gamma : float > 0
        Threshold on the pairwise likelihood ratio (``LR >= gamma`` counts; Privacy Meter uses ``>`` and 1).
    offline_a : float in [0, 1]
        The offline approximation's ``a`` (ignored when ``online``); the paper tunes it per dataset, Privacy
        Meter's default is 0.3.
    online : bool
    signal : str
        Where ``p_θ(x)`` comes from: ``loss`` (``exp(−loss)``, default) or ``logit`` (``sigmoid`` of the stable
        logit); both equal the softmax probability of the true label.
    z_split : str
    references : array of int, optional

    Returns
    -------
    AttackResult
        ``scores`` in [0, 1] (fraction of z dominated), shape ``(n_train,)``; ``details["likelihood_ratio"]`` holds
        ``p_θ(x)/p(x)``. NaN (with a warning) where ``p(x)`` is undefined.
    """
    _check_pop(pop)
    target = _check_target(pop, target)
    scores, det, params, counts = _rmia_batch(pop, np.array([target]), gamma=gamma, offline_a=offline_a,
                                              online=online, signal=signal, z_split=z_split, references=references)
    _warn_rmia(counts, 1, online)
    return _result("rmia-" + ("online" if online else "offline"), scores[0], pop.masks[target], target, params,
                   det[0])


# =============================================================================================== shadow
_DEFAULT_FEATURES = ("logit", "loss", "correct")


def _default_classifier(seed: int):
    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, early_stopping=False, random_state=seed)


def shadow_attack(pop, *, target: int, features=None, classifier=None, by_class: bool | None = None,
                  max_train: int = 50_000, seed=0, references=None) -> AttackResult:
    """Shokri-style shadow-model attack: a classifier learns membership from the reference models' signals.

    Shokri, Stronati, Song & Shmatikov 2017 (S&P), shadow training: every reference model gives one labelled row per
    example, ``(signals of model k on x, x ∈ train_k)``; an attack classifier is trained on these rows (one per
    class of x when ``by_class``, as in the paper) and applied to the target model's signals. Here the
    features are the population's per-example signals (the paper used the full prediction vector).

    Parameters
    ----------
    pop : Population
    target : int
    features : sequence of str, optional
        Train-split signals used as features (default: those of ``logit``, ``loss``, ``correct`` present).
    classifier : sklearn classifier, optional
        Cloned for every fit; must implement ``predict_proba``. Default: ``HistGradientBoostingClassifier``.
    by_class : bool, optional
        One attack model per class (default: True when the population has train labels).
    max_train : int
        At most this many (model, example) rows per attack model, sampled without replacement.
    seed : int or numpy.random.Generator
        For the subsample and the classifier's ``random_state``.
    references : array of int, optional

    Returns
    -------
    AttackResult
        ``scores``: the attack model's probability that the target trained on the example.
    """
    from threadpoolctl import threadpool_limits  # loads native thread pools: only when limiting them

    _check_pop(pop)
    target = _check_target(pop, target)
    max_train = check_int("max_train", max_train, min_value=2)
    rng = as_generator(seed)
    if features is None:
        features = tuple(f for f in _DEFAULT_FEATURES if f in pop.signals.get("train", {}))
        if not features:
            features = tuple(pop.signals.get("train", {}))
    features = tuple(features)
    if not features:
        raise MemlensInputError("features must name at least one train-split signal; the population has none")
    X_all = np.stack([_values(pop, f) for f in features], axis=-1)          # (n_models, n, F)
    pool = _pool(pop, np.array([target]), references)
    pool[target] = False
    if not pool.any():
        raise MemlensInputError("the shadow attack needs at least one reference model besides the target")
    labels_train = pop.labels.get("train") if hasattr(pop, "labels") else None
    if by_class is None:
        by_class = labels_train is not None and len(labels_train) == pop.masks.shape[1]
    if by_class and (labels_train is None or len(labels_train) != pop.masks.shape[1]):
        raise MemlensInputError("by_class=True needs the population's train labels (pop.labels['train']); "
                                "pass by_class=False")
    groups = np.asarray(labels_train) if by_class else np.zeros(pop.masks.shape[1], dtype=np.int64)
    base = _default_classifier(int(rng.integers(2**31 - 1))) if classifier is None else classifier
    ref_rows = np.flatnonzero(pool)
    scores = np.full(pop.masks.shape[1], np.nan)
    n_fits = 0
    with threadpool_limits(limits=1):
        for g in np.unique(groups):
            cols = np.flatnonzero(groups == g)
            Xg = X_all[np.ix_(ref_rows, cols)].reshape(-1, len(features))
            yg = pop.masks[np.ix_(ref_rows, cols)].reshape(-1)
            if yg.size > max_train:
                pick = rng.choice(yg.size, size=max_train, replace=False)
                Xg, yg = Xg[pick], yg[pick]
            Xt = X_all[target, cols]
            if yg.all() or not yg.any():
                scores[cols] = float(yg.all())            # one class seen: constant prediction
                continue
            model = clone(base)
            if classifier is None:
                model.set_params(random_state=int(rng.integers(2**31 - 1)))
            model.fit(Xg, yg)
            classes = list(model.classes_)
            scores[cols] = model.predict_proba(Xt)[:, classes.index(True)]
            n_fits += 1
    params = {"features": list(features), "by_class": bool(by_class), "max_train": max_train,
              "classifier": type(base).__name__, "n_attack_models": n_fits, "n_reference": int(pool.sum())}
    return _result("shadow", scores, pop.masks[target], target, params, {})


# =============================================================================================== all targets
_BATCHED: dict[str, tuple[Callable, Callable, Callable]] = {
    "loss": (_loss_batch, lambda c, t, **k: None, lambda **k: "loss"),
    "calibrated_loss": (_calibrated_batch, lambda c, t, **k: _warn_calibrated(c, t), lambda **k: "calibrated_loss"),
    "lira": (_lira_batch,
             lambda c, t, **k: _warn_lira(c, t, k.get("online", True), k.get("fix_variance", False)),
             lambda **k: _lira_name(k.get("online", True), k.get("fix_variance", False))),
    "rmia": (_rmia_batch, lambda c, t, **k: _warn_rmia(c, t, k.get("online", True)),
             lambda **k: "rmia-" + ("online" if k.get("online", True) else "offline")),
}

#: Attack name -> function ``f(pop, *, target, **kwargs) -> AttackResult``.
ATTACKS: dict[str, Callable[..., AttackResult]] = {
    "loss": loss_attack,
    "calibrated_loss": calibrated_loss_attack,
    "lira": lira,
    "rmia": rmia,
    "shadow": shadow_attack,
}


def attack_all_targets(pop, attack, *, targets=None, fprs=DEFAULT_FPRS, level: float = 0.95,
                       keep_details: bool = True, **kwargs) -> AllTargetsResult:
    """Attack every target model of a population in turn (leave-one-model-out) and aggregate.

    For the built-in ``loss``, ``calibrated_loss``, ``lira`` (mean estimator) and ``rmia`` the per-example IN/OUT
    sums are computed once and each target's statistics are obtained by subtracting its own row, so all targets
    cost about as much as a few.

    Parameters
    ----------
    pop : Population
    attack : str or callable
        A name in :data:`ATTACKS` or a function ``f(pop, *, target, **kwargs) -> AttackResult``.
    targets : array of int, optional
        Rows to attack (default: all rows).
    fprs : sequence of float
        FPRs of the aggregate's TPR (default 0.1% and 1%).
    level : float
        Confidence level of the aggregate's intervals.
    keep_details : bool
        Keep each result's per-example ``details`` (LiRA's μ, σ, ...); False saves memory on large populations.
    **kwargs
        Passed to the attack (``online=False``, ``fix_variance=True``, ``gamma=2`` ...).

    Returns
    -------
    AllTargetsResult
        ``results`` (one :class:`AttackResult` per target) and ``aggregate`` (mean ± CI over targets, pooled ROC).
    """
    _check_pop(pop)
    n_models = pop.masks.shape[0]
    if targets is None:
        targets = np.arange(n_models)
    else:
        targets = np.atleast_1d(np.asarray(targets))
        if targets.ndim != 1 or targets.size == 0 or not np.issubdtype(targets.dtype, np.integer):
            raise MemlensInputError(f"targets must be a non-empty 1-d array of model rows; got {targets!r}")
        for t in targets:
            _check_target(pop, t)
    targets = targets.astype(np.int64)
    if isinstance(attack, str):
        if attack not in ATTACKS:
            raise MemlensInputError(f"attack must be one of {sorted(ATTACKS)} or a callable; got {attack!r}")
        batched = _BATCHED.get(attack)
        if attack == "lira" and kwargs.get("estimator", "mean") != "mean":
            batched = None
        if batched is not None:
            fn, warner, namer = batched
            scores, details, params, counts = fn(pop, targets, **kwargs)
            warner(counts, targets.size, **kwargs)
            name = namer(**kwargs)
            results = tuple(_result(name, scores[j], pop.masks[t], t, params, details[j])
                            for j, t in enumerate(targets))
        else:
            fn = ATTACKS[attack]
            results = tuple(fn(pop, target=int(t), **kwargs) for t in targets)
    elif callable(attack):
        results = tuple(attack(pop, target=int(t), **kwargs) for t in targets)
        for r in results:
            if not isinstance(r, AttackResult):
                raise MemlensInputError(f"attack must return an AttackResult; got {type(r).__name__}")
    else:
        raise MemlensInputError(f"attack must be a name in {sorted(ATTACKS)} or a callable; got {attack!r}")
    if not keep_details:
        results = tuple(AttackResult(r.name, r.scores, r.labels, r.target, r.params, {}) for r in results)
    agg = aggregate(results, fprs=fprs, level=level, targets=targets)
    return AllTargetsResult(results, agg)
