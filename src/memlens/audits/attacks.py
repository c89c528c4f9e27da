"""The audit's membership attacks: LiRA, RMIA and the loss attack against target models of the population, each
example's LiRA score as a member, the examples LiRA flags, and the audited ε lower bound beside the accountant's ε.

LiRA online and offline (Carlini et al. 2022), RMIA (Zarifzadeh et al. 2024) and the loss attack (Yeom et al. 2018)
attack up to ``n_targets`` target models in turn, each with all other models of the population as its references.
The audited ε lower bound is the paired one-run audit of :mod:`memlens.privacy.paired` (Steinke, Nasr & Jagielski
2023 over random IN/OUT pairs of each target), Bonferroni-corrected over attacks, targets and guess counts, so its
confidence holds for how the masks were drawn. These read a trained population only, so any audit recipe can add
them.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from .._validation import MemlensInputError, MemlensWarning, check_int, warn
from ..attacks import attack_all_targets
from ..attacks.lira import CONVENTIONS
from ..evaluation import RocCurve, roc
from ..population import Population
from ..privacy.empirical import privacy_audit
from ..privacy.paired import GUESS_FRACTIONS, PAIRED_ASSUMPTIONS, PAIRED_METHOD, paired_one_run_audit

__all__ = ["AuditAttacks", "AuditedEpsilon", "audit_attacks", "audited_epsilon", "check_lira_convention", "privacy_summary", "ATTACK_SUITE", "DEFAULT_ATTACK_TARGETS",
           "LIRA_FIXED_VARIANCE_BELOW", "LABEL_ONLY_SUITE", "EPSILON_LEVEL", "EPSILON_CONFIDENCE", "MEM_THRESHOLD"]

#: Feldman & Zhang (2020, §3) threshold of a memorized example (the flagged examples are memorized ones).
MEM_THRESHOLD = 0.25
#: The attacks of the audit: (name in summary.json, attack of :func:`memlens.attacks.attack_all_targets`, kwargs).
ATTACK_SUITE = (
    ("lira-online", "lira", {"online": True}),
    ("lira-offline", "lira", {"online": False}),
    ("rmia", "rmia", {"online": True}),
    ("loss", "loss", {}),
)
#: Added to the suite when the population has the ``robust`` signal (label-only queries, Choquette-Choo et al. 2021).
LABEL_ONLY_SUITE = (
    ("label-only", "label_only", {"calibrated": False}),
    ("label-only-calibrated", "label_only", {"calibrated": True}),
)
#: Target models attacked by default (the first rows of the population).
DEFAULT_ATTACK_TARGETS = 16
#: LiRA uses one global variance when it has fewer reference models than this (Carlini et al. 2022, §VI-A:
#: per-example variances need many shadow models; with few, a fixed variance does better).
LIRA_FIXED_VARIANCE_BELOW = 64
#: Confidence level of the audited ε lower bound (Clopper–Pearson, error probability 1 − 0.95).
EPSILON_LEVEL = 0.95
EPSILON_CONFIDENCE = EPSILON_LEVEL   # the older name
#: Attacks that read only the target model (valid even when other models' masks reveal the target's).
_TARGET_ONLY = frozenset({"loss", "label-only"})


@dataclass(frozen=True, eq=False)
class AuditedEpsilon:
    """One attack's audited ε lower bound over the attacked targets (the ``epsilon`` block of ``summary.json``).

    Attributes
    ----------
    best : memlens.privacy.PairedOneRunAudit
        The paired one-run audit of the target with the largest bound.
    best_target : int
        Its model row.
    per_target : ndarray, shape (n_targets,)
        Every target's bound (each at the same Bonferroni-corrected level).
    level : float
        Confidence of ``epsilon`` (and of the largest over attacks): the error is shared among attacks × targets ×
        guess counts.
    valid : bool
        False where the proof's assumption fails for this attack (masks balanced over models reveal a target's
        membership to attacks that read the other models' masks); ``epsilon`` is then NaN.
    why : str
        Why not valid ('' when valid).
    """

    best: Any
    best_target: int
    per_target: np.ndarray
    level: float
    valid: bool = True
    why: str = ""

    @property
    def epsilon(self) -> float:
        return float(self.best.epsilon) if self.valid else math.nan

    @property
    def delta(self) -> float:
        return float(self.best.delta)

    def to_dict(self) -> dict[str, Any]:
        d = self.best.to_dict()
        d.update(epsilon=self.epsilon, level=self.level, valid=self.valid, why=self.why or None,
                 best_target=self.best_target, per_target=[float(e) for e in self.per_target],
                 n_targets=int(self.per_target.size))
        return d


def audited_epsilon(scores: np.ndarray, labels: np.ndarray, *, targets, delta: float = 0.0,
                    level: float = EPSILON_LEVEL, n_attacks: int = 1, reads_other_masks: bool = True,
                    balanced_masks: bool = False, seed: int = 0) -> AuditedEpsilon:
    """An attack's audited ε lower bound: the best paired one-run audit over its targets.

    Parameters
    ----------
    scores : array, shape (n_targets, n_train)
        The attack's scores against each target (higher = member; NaN where undefined).
    labels : array of bool, shape (n_targets, n_train)
        Each target's membership.
    targets : sequence of int
        The targets' model rows (seeds of the random matching).
    delta : float
        δ of the null hypothesis.
    level : float
        Overall confidence, shared (Bonferroni) among ``n_attacks`` × targets × guess counts.
    n_attacks : int
        Attacks the caller takes the best of.
    reads_other_masks, balanced_masks : bool
        An attack reading other models' masks on masks balanced over models is not covered by the proof.
    seed : int
        Base seed of the matchings (target ``t`` uses ``seed + t``, the same pairs for every attack).
    """
    n_t = scores.shape[0]
    audits = [paired_one_run_audit(scores[i], labels[i], delta=delta, level=level, n_other_tests=n_t * n_attacks,
                                   seed=seed + int(targets[i])) for i in range(n_t)]
    per = np.array([a.epsilon for a in audits], dtype=np.float64)
    best = int(np.argmax(per))
    valid = not (reads_other_masks and balanced_masks)
    why = "" if valid else ("every example is IN for the same number of models, so the other models' masks, "
                            "which this attack reads, reveal the target's membership")
    return AuditedEpsilon(audits[best], int(targets[best]), per, level, valid, why)


@dataclass(frozen=True, eq=False)
class AuditAttacks:
    """Membership attacks on an audit's population, with each example's LiRA score as a member, the flagged examples and the audited ε.

    Attributes
    ----------
    results : mapping of str to memlens.attacks.AllTargetsResult
        One entry per attack of :data:`ATTACK_SUITE` (``lira-online``, ``lira-offline``, ``rmia``, ``loss``):
        every target's scores (higher = more likely a member) and the aggregate over targets.
    targets : ndarray of int, shape (n_targets,)
        The attacked model rows (the first ``n_targets`` rows; each uses every other model as a reference).
    pooled_roc : mapping of str to memlens.evaluation.RocCurve
        The ROC of each attack's scores pooled over all targets (Carlini et al. 2022 pool their targets).
    lira_online : ndarray, shape (n_train,)
        Online LiRA score of every training example against the first target model ``targets[0]``
        (the ``lira_online`` column of ``examples.csv``; NaN where undefined).
    in_target : ndarray of bool, shape (n_train,)
        Whether the example is in the training set of ``targets[0]``.
    lira_online_in : ndarray, shape (n_train,)
        LiRA score as a member: the mean online LiRA score of the example over the attacked targets that trained on it (how
        strongly LiRA flags it when it is a member); NaN when no attacked target trained on it. The mean over
        *all* targets is not used: the OUT targets' large negative log-likelihood ratios dominate it (on digits,
        256 logreg models, its Spearman correlation with memorization is −0.29, against +0.55 for this one).
    flag_threshold : float
        The pooled online-LiRA threshold at 1% FPR: a member scoring at least this is flagged at 1% FPR.
    flagged : ndarray of int
        Training examples that are both highly memorized (memorization >= :data:`MEM_THRESHOLD`) and highly
        flagged by LiRA (``lira_online_in >= flag_threshold``), highest LiRA score first. ("Exposure" is kept for
        Carlini et al.'s canary exposure, :mod:`memlens.measures.exposure`.)
    epsilon : mapping of str to AuditedEpsilon or None
        Audited ε lower bound per attack (paired one-run audit over the targets, :func:`audited_epsilon`); None
        where the attack has no defined scores for members and non-members (too few reference models).
    privacy : memlens.evaluation.PrivacyAudit
        The lower bounds beside the accountant's ε (None for a non-private population).
    """

    results: Mapping[str, Any]
    targets: np.ndarray
    pooled_roc: Mapping[str, Any]
    lira_online: np.ndarray
    in_target: np.ndarray
    lira_online_in: np.ndarray
    flag_threshold: float
    flagged: np.ndarray
    epsilon: Mapping[str, Any]
    privacy: Any
    settings: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple = field(default=())

    def table(self) -> dict:
        """``summary.json``'s attack table: per attack, mean AUC and TPR at 0.1% / 1% FPR with their confidence
        intervals over targets, the pooled values, and the audited ε lower bound."""
        out = {}
        for key, res in self.results.items():
            agg = res.aggregate.to_dict()
            first = res.results[0].params
            agg["params"] = {k: v for k, v in first.items() if isinstance(v, (str, int, float, bool, type(None)))}
            e = self.epsilon[key]
            agg["epsilon_lower_bound"] = math.nan if e is None else e.epsilon
            agg["epsilon"] = None if e is None else e.to_dict()
            out[key] = agg
        return out


def check_lira_convention(value) -> str:
    """``lira_convention`` validated before any work (one of :data:`memlens.attacks.lira.CONVENTIONS`)."""
    if value not in CONVENTIONS:
        raise MemlensInputError(f"lira_convention must be one of {', '.join(CONVENTIONS)}; got {value!r} ('reference': "
                                "the conventions of tensorflow/privacy's mi_lira_2021 script)", param="lira_convention")
    return value


def _dp_provenance(pop: Population) -> dict | None:
    """The DP-SGD record of a population (``provenance["dp"]``), or None for a non-private one."""
    dp = (pop.provenance or {}).get("dp")
    return dict(dp) if isinstance(dp, Mapping) else None


def audit_attacks(pop: Population, *, memorization_scores, n_targets: int = DEFAULT_ATTACK_TARGETS,
                  level: float = 0.95, delta: float = 0.0, accountant_epsilon: float | None = None,
                  lira_convention: str = "memlens") -> AuditAttacks:
    """Run the audit's membership attacks on a population and measure each example's LiRA score as a member.

    Every attack of :data:`ATTACK_SUITE` (and :data:`LABEL_ONLY_SUITE` when the population has the ``robust``
    signal of label-only queries) attacks the first ``min(n_targets, n_models)`` models in turn, each with
    all other models of the population as references (:func:`memlens.attacks.attack_all_targets`). LiRA uses
    one global variance (``fix_variance=True``) when there are fewer than :data:`LIRA_FIXED_VARIANCE_BELOW`
    reference models, per-example variances otherwise.

    Parameters
    ----------
    pop : Population
        Train-split signals ``logit`` and ``loss``; a ``test`` split (RMIA's population samples z).
    memorization_scores : array, shape (n_train,)
        Feldman–Zhang memorization, higher = more memorized (selects the highly memorized examples).
    n_targets : int >= 1
        Number of target models (capped at ``n_models``).
    level : float
        Confidence level of the intervals over targets.
    delta : float in [0, 1)
        δ of the audited ε lower bound (the DP run's δ; 0 for a non-private population).
    accountant_epsilon : float, optional
        The accountant's ε of a DP-SGD population, reported beside the audited lower bounds.
    lira_convention : {"memlens", "reference"}
        LiRA's conventions (:func:`memlens.attacks.lira`).

    Returns
    -------
    AuditAttacks

    Notes
    -----
    The audited ε of each attack is :func:`audited_epsilon`: the paired one-run audit of
    :mod:`memlens.privacy.paired` on every target, the best of them, with the error ``1 − EPSILON_LEVEL`` shared
    among attacks × targets × guess counts, so the largest bound over all attacks holds at ``EPSILON_LEVEL``. Its
    trials are IN/OUT pairs of distinct examples of one target, never more than the examples.
    """
    n_targets = check_int("attack_targets", n_targets, min_value=1)
    n_models = pop.masks.shape[0]
    targets = np.arange(min(n_targets, n_models), dtype=np.int64)
    n_ref = n_models - 1
    fixed = n_ref < LIRA_FIXED_VARIANCE_BELOW
    results, pooled, eps = {}, {}, {}
    notes = []
    col = pop.masks.sum(axis=0)
    balanced = bool(n_models > 2 and col.size > 1 and np.all(col == col[0]))
    suite = ATTACK_SUITE + (LABEL_ONLY_SUITE if "robust" in pop.signals.get("train", {}) else ())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MemlensWarning)
        for key, attack, kwargs in suite:
            kw = dict(kwargs)
            if attack == "lira":
                kw["fix_variance"] = fixed
                kw["convention"] = lira_convention
            res = attack_all_targets(pop, attack, targets=targets, level=level, keep_details=False, **kw)
            results[key] = res
            sc, lab = res.scores.ravel(), res.labels.ravel()
            ok = np.isfinite(sc)
            if lab[ok].any() and not lab[ok].all():
                pooled[key] = roc(sc[ok], lab[ok])
                eps[key] = audited_epsilon(res.scores, res.labels, targets=targets, delta=delta, level=EPSILON_LEVEL,
                                           n_attacks=len(suite), reads_other_masks=key not in _TARGET_ONLY,
                                           balanced_masks=balanced)
            else:   # too few reference models: no defined score for members and non-members alike
                nan = np.array([np.nan])
                pooled[key] = RocCurve(nan, nan, nan, int(lab[ok].sum()), int((~lab[ok]).sum()))
                eps[key] = None
                warnings.warn(f"{key}: no target has defined scores for both members and non-members, so its ROC "
                              "and audited epsilon are undefined (NaN); train more models", MemlensWarning)
    for w in caught:
        msg = str(w.message)
        if not issubclass(w.category, MemlensWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        elif "resolution" in msg or "confidence interval over targets" in msg:
            if msg not in notes:
                notes.append(msg)           # expected with few targets or non-members; said in the report
        else:
            warn(msg)
            notes.append(msg)
    lira_res = results["lira-online"]
    scores = lira_res.scores                      # (n_targets, n_train)
    labels = lira_res.labels
    with np.errstate(invalid="ignore"):
        member = labels & np.isfinite(scores)
        count = member.sum(axis=0)
        lira_in = np.where(count > 0, np.where(member, scores, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    curve = pooled["lira-online"]
    ok = curve.fpr <= 0.01 + 1e-12
    threshold = float(curve.thresholds[np.flatnonzero(ok)[-1]]) if np.any(ok) and curve.n_neg else math.nan
    mem_scores = np.asarray(memorization_scores, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        both = np.flatnonzero((mem_scores >= MEM_THRESHOLD) & (lira_in >= threshold))
    flagged = both[np.argsort(-lira_in[both], kind="stable")]
    privacy = None
    defined = {k: e.epsilon for k, e in eps.items() if e is not None and e.valid}
    if accountant_epsilon is not None and defined:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MemlensWarning)   # a violation is reported in the summary
            privacy = privacy_audit(defined, accountant_epsilon=accountant_epsilon, delta=delta)
    settings = {"n_targets": int(targets.size), "targets": targets.tolist(), "n_reference_models": int(n_ref),
                "references": "every other model of the population (leave-one-model-out)",
                "lira_fix_variance": bool(fixed), "lira_convention": lira_convention, "level": level,
                "lira_online_column": f"online LiRA score against target model {int(targets[0])}",
                "lira_online_in_column": "mean online LiRA score over the attacked targets that trained on the "
                                         "example",
                "flag_threshold": threshold,
                "flag_rule": "lira_online_in >= pooled online-LiRA threshold at 1% FPR"}
    return AuditAttacks(results, targets, pooled, scores[0].copy(), labels[0].copy(), lira_in, threshold, flagged,
                        eps, privacy, settings, tuple(notes))


def privacy_summary(att: AuditAttacks, *, dp: dict | None, delta: float) -> dict:
    """``summary.json``'s ``privacy``: the accountant's ε (DP runs) beside the audited ε lower bounds."""
    by_attack = {k: None if e is None else e.to_dict() for k, e in att.epsilon.items()}
    defined = [k for k, e in att.epsilon.items() if e is not None and e.valid]
    best_key = max(defined, key=lambda k: att.epsilon[k].epsilon) if defined else None
    out = {
        "dp": dp is not None,
        "accountant_epsilon": None if dp is None else dp.get("epsilon_accountant"),
        "target_epsilon": None if dp is None else dp.get("epsilon"),
        "delta": delta,
        "accountant": None if dp is None else dp.get("accountant"),
        "audited_epsilon_lower_bound": att.epsilon[best_key].epsilon if best_key else math.nan,
        "audited_by": best_key,
        "confidence": EPSILON_LEVEL,
        "method": PAIRED_METHOD,
        "method_short": "paired one-run audit",
        "assumptions": PAIRED_ASSUMPTIONS,
        "caveat": (f"a lower bound on epsilon holding with probability {EPSILON_LEVEL:g} for the best of all attacks, "
                   f"targets and {len(GUESS_FRACTIONS)} guess counts (Bonferroni); each trial is a pair of distinct "
                   "examples of one target model, and a pair swap costs 2*epsilon, so the bound is conservative"),
        "by_attack": by_attack,
    }
    if att.privacy is not None:
        out["consistent"] = att.privacy.consistent
        out["violations"] = list(att.privacy.violations)
    return out
