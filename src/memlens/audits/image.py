"""The audit: train a population on random subsets, measure memorization and influence, write a report.

This is ``memlens audit`` as a library function. It estimates Feldman–Zhang memorization and influence
(Feldman & Zhang 2020, "What Neural Networks Memorize and Why", §2, Algorithm 1): ``n_models`` models are
trained on random subsets of ``subset_ratio · n_train`` training examples, and for every training example ``i``

    mem(i)     = mean correctness on x_i over models trained with i − mean over models trained without i,
    infl(i, j) = the same difference measured on test example j.

High-influence pairs use the paper's thresholds (mem >= 0.25, infl >= 0.15, same label; §3).

By default the same population is also attacked (:func:`audit_attacks`): LiRA online and offline (Carlini et al.
2022), RMIA (Zarifzadeh et al. 2024) and the loss attack (Yeom et al. 2018) against up to ``attack_targets``
target models in turn, each with all other models as references; the audited ε lower bound of Jagielski et al.
(2020) is computed from the pooled scores and, for a DP-SGD population (``dp_epsilon``), put beside the
accountant's ε.

Ridge and kernel-ridge populations (``model="ridge"`` / ``"kernel-ridge"``) are not trained but fitted exactly on
every subset in closed form (:func:`memlens.train.closed_form_population`). With ``loo=True`` the audit adds
Feldman's leave-one-out memorization (Feldman 2020, Def. 4.1) of every training example from one fit (exact for
ridge and kernel ridge, one Newton step for logistic regression; :func:`audit_loo`) and compares it with the
subset estimate.

The population is trained shard by shard into a run directory (:mod:`memlens.storage.runs`): every shard is written
atomically as soon as it is trained, so a killed run continues with ``resume=True`` without retraining finished
shards, and a run directory whose config or data differ is refused.
"""
from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .._random import check_int_seed
from .._threads import physical_memory
from .._validation import MemlensInputError, check_array, check_fraction, check_int, check_labels, warn
from ..population import Population
from ..storage.runs import RunDir, check_writable, package_versions

__all__ = ["AuditResult", "AuditAttacks", "run_audit", "audit_attacks", "MODELS", "MEM_THRESHOLD",
           "INFL_THRESHOLD", "ATTACK_SUITE", "DEFAULT_ATTACK_TARGETS", "LIRA_FIXED_VARIANCE_BELOW", "audit_masks",
           "population_accuracy"]
__all__ += ["AuditLOO", "audit_loo", "LOO_MODELS"]

#: Model names the audit accepts (``memlens.train.make_model_config``); ridge and kernel ridge are fitted in
#: closed form (exact subset refits) instead of trained.
MODELS = ("logreg", "mlp", "ridge", "kernel-ridge")
#: Models with a leave-one-out memorization (``loo=True``): exact for ridge / kernel ridge, approximate (one
#: Newton step, ALO) for logistic regression.
LOO_MODELS = ("ridge", "kernel-ridge", "logreg")
_CLOSED_FORM = ("ridge", "kernel-ridge")
#: Feldman & Zhang (2020, §3) thresholds: memorized examples and high-influence pairs.
MEM_THRESHOLD = 0.25
INFL_THRESHOLD = 0.15
#: Number of most-influenced test examples kept per training example.
TOP_K = 4
#: The attacks of the audit: (name in summary.json, attack of :func:`memlens.attacks.attack_all_targets`, kwargs).
ATTACK_SUITE = (
    ("lira-online", "lira", {"online": True}),
    ("lira-offline", "lira", {"online": False}),
    ("rmia", "rmia", {"online": True}),
    ("loss", "loss", {}),
)
#: Target models attacked by default (the first rows of the population).
DEFAULT_ATTACK_TARGETS = 16
#: LiRA uses one global variance when it has fewer reference models than this (Carlini et al. 2022, §VI-A:
#: per-example variances need many shadow models; with few, a fixed variance does better).
LIRA_FIXED_VARIANCE_BELOW = 64
#: Confidence of the audited ε lower bound (Clopper–Pearson, error probability 1 − 0.95).
EPSILON_CONFIDENCE = 0.95
#: Seed-sequence entry separating the mask stream from the per-model seeds (``model_seeds(seed, ...)``).
_MASK_STREAM = 0x6D61736B  # "mask"


@dataclass(frozen=True, eq=False)
class AuditResult:
    """Everything an audit computed, with the files it wrote.

    Attributes
    ----------
    out : Path
        The run directory (``manifest.json``, ``population/``, ``examples.csv``, ``pairs.csv``,
        ``summary.json``, ``report.html``).
    summary : dict
        The content of ``summary.json``.
    dataset : memlens.data.Dataset
    population : Population
        ``n_models`` models; signals ``logit``, ``loss``, ``correct`` on ``train`` and ``test``.
    memorization : memlens.measures.MemorizationResult
        Per-training-example scores, shape (n_train,), higher = more memorized.
    influence : memlens.measures.InfluenceResult
        Top-``4`` most influenced test examples per training example and all pairs with influence >= 0.15.
    pairs : memlens.measures.HighInfluencePairs
    shards_trained : tuple of int
        Shards trained by this call (the others were reused from an interrupted run).
    attacks : AuditAttacks or None
        The membership attacks on the population (None with ``attacks=False``).
    loo : AuditLOO or None
        Leave-one-out memorization beside the subset estimate (``loo=True``; None otherwise).
    """

    out: Path
    summary: Mapping[str, Any]
    dataset: Any
    population: Population
    memorization: Any
    influence: Any
    pairs: Any
    shards_trained: tuple = field(default=())
    attacks: Any = None
    loo: Any = None


@dataclass(frozen=True, eq=False)
class AuditAttacks:
    """Membership attacks on an audit's population, with the per-example LiRA exposure and the audited ε.

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
        Exposure: the mean online LiRA score of the example over the attacked targets that trained on it (how
        strongly LiRA flags it when it is a member); NaN when no attacked target trained on it. The mean over
        *all* targets is not used: the OUT targets' large negative log-likelihood ratios dominate it (on digits,
        256 logreg models, its Spearman correlation with memorization is −0.29, against +0.55 for this one).
    exposure_threshold : float
        The pooled online-LiRA threshold at 1% FPR: a member scoring at least this is flagged at 1% FPR.
    exposed : ndarray of int
        Training examples that are both highly memorized (memorization >= :data:`MEM_THRESHOLD`) and highly
        exposed (``lira_online_in >= exposure_threshold``), most exposed first.
    epsilon : mapping of str to memlens.evaluation.EpsilonLowerBound or None
        Audited ε lower bound per attack from its pooled scores (Jagielski et al. 2020); None where the attack has
        no defined scores for members and non-members (too few reference models).
    privacy : memlens.evaluation.PrivacyAudit
        The lower bounds beside the accountant's ε (None for a non-private population).
    """

    results: Mapping[str, Any]
    targets: np.ndarray
    pooled_roc: Mapping[str, Any]
    lira_online: np.ndarray
    in_target: np.ndarray
    lira_online_in: np.ndarray
    exposure_threshold: float
    exposed: np.ndarray
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
            agg["epsilon_lower_bound"] = math.nan if self.epsilon[key] is None else self.epsilon[key].epsilon
            out[key] = agg
        return out


# ---------------------------------------------------------------------------------------------- pieces
def audit_masks(n_models: int, n_train: int, *, subset_ratio: float, seed: int) -> np.ndarray:
    """The audit's training subsets: ``(n_models, n_train)`` bool, each row exactly ``round(p n)`` examples.

    Drawn from ``SeedSequence([seed, "mask"])``, a stream apart from the per-model training seeds.
    """
    from ..data import make_masks

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _MASK_STREAM]))
    return make_masks(n_models, n_train, p=subset_ratio, seed=rng)


def population_accuracy(pop: Population) -> tuple[float, float]:
    """``(train accuracy, test accuracy)`` of a population, each a mean over models.

    Train accuracy is measured on each model's own training (IN) examples; test accuracy on the whole test split.
    """
    correct_train = pop.signal("train", "correct").astype(np.float64)
    per_model_train = (correct_train * pop.masks).sum(axis=1) / np.maximum(pop.masks.sum(axis=1), 1)
    test = float(pop.signal("test", "correct").astype(np.float64).mean()) if "test" in pop.signals else math.nan
    return float(per_model_train.mean()), test


def _check_dataset(dataset):
    """A Dataset by name or instance, validated (finite features, integer labels, a test split)."""
    from ..data import DATASETS, Dataset, load_dataset

    if isinstance(dataset, str):
        if dataset not in DATASETS:
            raise MemlensInputError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r} "
                                    "(or pass your own arrays with --data FILE.npz)")
        return load_dataset(dataset)
    if not isinstance(dataset, Dataset):
        raise MemlensInputError(f"dataset must be a dataset name or a memlens.data.Dataset; got "
                                f"{type(dataset).__name__}; build one with memlens.data.from_arrays")
    X_train = check_array("X_train", dataset.X_train, ndim=2, dtype=np.float32, min_rows=2)
    check_labels("y_train", dataset.y_train, n_rows=X_train.shape[0], n_classes=dataset.n_classes)
    X_test = check_array("X_test", dataset.X_test, ndim=2, dtype=np.float32)
    check_labels("y_test", dataset.y_test, n_rows=X_test.shape[0], n_classes=dataset.n_classes)
    if X_test.shape[0] < 1:
        raise MemlensInputError("X_test must have at least 1 row: influence and test accuracy are measured on "
                                "the test split; pass X_test and y_test")
    return dataset


def _model_config(model: str, params: Mapping[str, Any] | None = None) -> dict:
    if not isinstance(model, str) or model not in MODELS:
        raise MemlensInputError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if params is not None and (not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params)):
        raise MemlensInputError(f"model_params must be a mapping of field names to values, e.g. {{'C': 0.01}}; "
                                f"got {params!r}")
    from ..train import make_model_config

    return dict(make_model_config(model, **dict(params or {})).to_dict())


def _fmt(x) -> str:
    x = float(x)
    return "nan" if not math.isfinite(x) else f"{x:.6g}"


def examples_csv(mem, labels, attacks=None, loo=None) -> str:
    """``examples.csv``: index, label, memorization, stderr, n_in, n_out (one row per training example).

    With ``attacks`` (an :class:`AuditAttacks`) three columns follow: ``lira_online``, the online LiRA score
    against the first target model (``summary.json``'s ``attacks.targets[0]``); ``in_target``, 1 if the example
    is in that model's training set; ``lira_online_in``, the mean online LiRA score over the attacked targets
    that trained on the example (its exposure as a member).

    With ``loo`` (an :class:`AuditLOO`) four columns follow: ``loo_memorization`` (Feldman 2020, Def. 4.1 at
    leave-one-out, in {−1, 0, 1}), ``loo_margin_memorization`` (full-fit margin minus leave-one-out margin),
    ``loo_margin`` and ``loo_loss`` (margin and loss on the example of the model trained without it).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["index", "label", "memorization", "stderr", "n_in", "n_out"]
    if attacks is not None:
        header += ["lira_online", "in_target", "lira_online_in"]
    if loo is not None:
        header += ["loo_memorization", "loo_margin_memorization", "loo_margin", "loo_loss"]
    w.writerow(header)
    for i in range(mem.scores.shape[0]):
        row = [i, int(labels[i]), _fmt(mem.scores[i]), _fmt(mem.stderr[i]), int(mem.n_in[i]), int(mem.n_out[i])]
        if attacks is not None:
            row += [_fmt(attacks.lira_online[i]), int(attacks.in_target[i]), _fmt(attacks.lira_online_in[i])]
        if loo is not None:
            row += [_fmt(loo.memorization.scores[i]), _fmt(loo.margin_memorization.scores[i]),
                    _fmt(loo.loo_margin[i]), _fmt(loo.loo_loss[i])]
        w.writerow(row)
    return buf.getvalue()


def pairs_csv(pairs) -> str:
    """``pairs.csv``: train_index, test_index, train_label, test_label, memorization, influence."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["train_index", "test_index", "train_label", "test_label", "memorization", "influence"])
    for r in range(len(pairs)):
        # high-influence pairs share their label by definition (Feldman & Zhang 2020, §3)
        w.writerow([int(pairs.train_index[r]), int(pairs.test_index[r]), int(pairs.label[r]), int(pairs.label[r]),
                    _fmt(pairs.memorization[r]), _fmt(pairs.influence[r])])
    return buf.getvalue()



# ---------------------------------------------------------------------------------------------- attacks
def _dp_provenance(pop: Population) -> dict | None:
    """The DP-SGD record of a population (``provenance["dp"]``), or None for a non-private one."""
    dp = (pop.provenance or {}).get("dp")
    return dict(dp) if isinstance(dp, Mapping) else None


def audit_attacks(pop: Population, *, memorization_scores, n_targets: int = DEFAULT_ATTACK_TARGETS,
                  level: float = 0.95, delta: float = 0.0, accountant_epsilon: float | None = None) -> AuditAttacks:
    """Run the audit's membership attacks on a population and measure each example's exposure.

    Every attack of :data:`ATTACK_SUITE` attacks the first ``min(n_targets, n_models)`` models in turn, each with
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

    Returns
    -------
    AuditAttacks

    Notes
    -----
    The audited ε is :func:`memlens.evaluation.empirical_epsilon` (Jagielski, Ullman & Oprea 2020) on each attack's
    scores pooled over targets: a lower bound at confidence ``EPSILON_CONFIDENCE`` (Clopper–Pearson), with the
    threshold chosen on the same data and the examples of one model counted as separate trials, both of which
    make it optimistic; it is a heuristic audit, not a proof.
    """
    import warnings

    from .._validation import MemlensWarning
    from ..attacks import attack_all_targets
    from ..evaluation import RocCurve, empirical_epsilon, privacy_audit, roc

    n_targets = check_int("attack_targets", n_targets, min_value=1)
    n_models = pop.masks.shape[0]
    targets = np.arange(min(n_targets, n_models), dtype=np.int64)
    n_ref = n_models - 1
    fixed = n_ref < LIRA_FIXED_VARIANCE_BELOW
    results, pooled, eps = {}, {}, {}
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MemlensWarning)
        for key, attack, kwargs in ATTACK_SUITE:
            kw = dict(kwargs)
            if attack == "lira":
                kw["fix_variance"] = fixed
            res = attack_all_targets(pop, attack, targets=targets, level=level, keep_details=False, **kw)
            results[key] = res
            sc, lab = res.scores.ravel(), res.labels.ravel()
            ok = np.isfinite(sc)
            if lab[ok].any() and not lab[ok].all():
                pooled[key] = roc(sc[ok], lab[ok])
                eps[key] = empirical_epsilon(sc[ok], lab[ok], delta=delta, alpha=1 - EPSILON_CONFIDENCE)
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
    exposed = both[np.argsort(-lira_in[both], kind="stable")]
    privacy = None
    defined = {k: e for k, e in eps.items() if e is not None}
    if accountant_epsilon is not None and defined:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MemlensWarning)   # a violation is reported in the summary
            privacy = privacy_audit(defined, accountant_epsilon=accountant_epsilon, delta=delta)
    settings = {"n_targets": int(targets.size), "targets": targets.tolist(), "n_reference_models": int(n_ref),
                "references": "every other model of the population (leave-one-model-out)",
                "lira_fix_variance": bool(fixed), "level": level,
                "lira_online_column": f"online LiRA score against target model {int(targets[0])}",
                "lira_online_in_column": "mean online LiRA score over the attacked targets that trained on the "
                                         "example",
                "exposure_threshold": threshold,
                "exposure_rule": "lira_online_in >= pooled online-LiRA threshold at 1% FPR"}
    return AuditAttacks(results, targets, pooled, scores[0].copy(), labels[0].copy(), lira_in, threshold, exposed,
                        eps, privacy, settings, tuple(notes))


def _privacy_summary(att: AuditAttacks, *, dp: dict | None, delta: float) -> dict:
    """``summary.json``'s ``privacy``: the accountant's ε (DP runs) beside the audited ε lower bounds."""
    by_attack = {k: None if e is None else e.to_dict() for k, e in att.epsilon.items()}
    defined = [k for k, e in att.epsilon.items() if e is not None]
    best_key = max(defined, key=lambda k: att.epsilon[k].epsilon) if defined else None
    out = {
        "dp": dp is not None,
        "accountant_epsilon": None if dp is None else dp.get("epsilon_accountant"),
        "target_epsilon": None if dp is None else dp.get("epsilon"),
        "delta": delta,
        "accountant": None if dp is None else dp.get("accountant"),
        "audited_epsilon_lower_bound": att.epsilon[best_key].epsilon if best_key else math.nan,
        "audited_by": best_key,
        "confidence": EPSILON_CONFIDENCE,
        "method": "Jagielski et al. 2020: Clopper-Pearson bounds on TPR and FPR of the best threshold of each "
                  "attack's scores pooled over target models",
        "caveat": "a lower bound on epsilon at 95% confidence per attack; the threshold and the attack are chosen "
                  "on the same data and the examples of one model are not independent trials, so the bound is "
                  "optimistic (a heuristic audit)",
        "by_attack": by_attack,
    }
    if att.privacy is not None:
        out["consistent"] = att.privacy.consistent
        out["violations"] = list(att.privacy.violations)
    return out


# ---------------------------------------------------------------------------------------------- leave-one-out
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


def _correlations(a, b) -> dict:
    """Pearson and Spearman r of two score vectors over the entries finite in both (NaN when either is constant)."""
    from scipy.stats import rankdata

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


def _check_kernel_memory(n_train: int, n_test: int) -> None:
    """Refuse kernel ridge where its n_train x n_train matrices (kernel, regularized kernel, inverse, and the
    test-by-train kernel) would take more than half of the machine's memory."""
    need = 8 * n_train * (3 * n_train + n_test)
    have = physical_memory()
    if have is not None and need > have // 2:
        raise MemlensInputError(f"model 'kernel-ridge' needs the {n_train:,} x {n_train:,} kernel matrix and its "
                                f"inverse, about {need / 2**30:.1f} GiB, more than half of this machine's memory "
                                f"({have / 2**30:.1f} GiB): use --model ridge, or audit a subset of the data "
                                "(--data FILE.npz)")


def _check_loo(loo, model: str, dp) -> bool:
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
    from ..measures import loo_memorization
    from ..train import closed_form_loo

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
        "agreement": {"loo_memorization_vs_subset": _correlations(scores, fz),
                      "loo_margin_memorization_vs_subset": _correlations(mem_margin.scores, fz)},
        "most_memorized": ranking[:n_top].tolist(),
    }
    if not exact:
        summary["approximation"] = ("one Newton step from the full fit with the Hessian downdated by "
                                    "Sherman-Morrison-Woodbury (ALO, Rad & Maleki 2020); error grows when the "
                                    "example's share of the Hessian is large")
    return AuditLOO(res, mem, mem_margin, sig["margin"], sig["loss"], ranking, seconds, summary)


# ---------------------------------------------------------------------------------------------- the audit
def run_audit(*, dataset="digits", model: str = "logreg", model_params: Mapping[str, Any] | None = None,
              n_models: int = 256, subset_ratio: float = 0.7,
              seed: int = 0, out="runs/audit", resume: bool = False, overwrite: bool = False,
              shard_size: int = 32, progress: bool = True, backend: str = "torch",
              on_shard: Callable[[int, int, int], None] | None = None, attacks: bool = True,
              attack_targets: int = DEFAULT_ATTACK_TARGETS, dp_epsilon: float | None = None,
              dp_delta: float | None = None, loo: bool = False, executor="local", ray_address: str | None = None,
              ray_num_cpus: int | None = None) -> AuditResult:
    """Train a population, estimate memorization and influence, and write the audit into ``out``.

    Every input is validated before any work starts; a refused start writes nothing and leaves an existing run
    directory as it was.

    Parameters
    ----------
    dataset : str or memlens.data.Dataset
        A name from :data:`memlens.data.DATASETS` or arrays wrapped by :func:`memlens.data.from_arrays`
        (it needs a test split).
    model : {"logreg", "mlp", "ridge", "kernel-ridge"}
        Trainer configuration from :func:`memlens.train.make_model_config` (defaults of that module). ``ridge``
        and ``kernel-ridge`` (least-squares classification on one-hot targets) are fitted exactly on every subset
        in closed form (:func:`memlens.train.closed_form_population`) instead of trained, through the same
        sharded run directory.
    model_params : mapping, optional
        Fields of that configuration to override, e.g. ``{"C": 0.01}`` for ``logreg`` or ``{"alpha": 10.0}`` for
        ``ridge`` (``make_model_config(model, **model_params)``); they are part of the run's identity.
    n_models : int, >= 2
        Population size ``t``. The estimator's standard error is at most
        ``0.5 sqrt(1/(p t) + 1/((1 − p) t))`` (Feldman & Zhang 2020, §2): 0.07 for t = 256, p = 0.7.
    subset_ratio : float in (0, 1)
        Fraction ``p = m / n`` of the training set each model trains on (the paper uses 0.7).
    seed : int >= 0
        Determines the masks and every model's seed; the same seed gives the same population.
    out : str or Path
        Run directory: new, empty, or (with ``resume`` / ``overwrite``) an existing memlens run.
    resume : bool
        Continue the run in ``out``: finished shards are reused, missing or damaged ones trained. Refused when
        the run's config, dataset or masks differ from this call's.
    overwrite : bool
        Replace the memlens run in ``out`` (files it does not own are kept).
    shard_size : int
        Models per shard file (part of the run's config).
    progress : bool
        Show a tqdm progress bar on stderr.
    backend : str
        Training backend of :func:`memlens.train.train_population`.
    on_shard : callable, optional
        ``on_shard(k, n_done, n_shards)`` after shard ``k`` is written (``n_done`` shards done in total).
    attacks : bool
        Run the membership attacks of :func:`audit_attacks` (LiRA online and offline, RMIA, loss) and the ε
        audit; they add the ``attacks`` and ``privacy`` tables to ``summary.json``, three LiRA columns to
        ``examples.csv`` and ROC curves, a memorization-vs-exposure scatter and the exposed examples to
        ``report.html``. They read the trained population only (not part of the run's identity).
    attack_targets : int >= 1
        Number of target models attacked in turn (the first rows; capped at ``n_models``).
    dp_epsilon : float > 0, optional
        Train by DP-SGD (:class:`memlens.train.DPConfig`) with noise calibrated for this ε; part of the run's
        config and identity. The report shows the accountant's ε beside the audited lower bound.
    dp_delta : float in (0, 1), optional
        δ of the DP guarantee (default of ``DPConfig``: ``1 / (10 n_train)``); needs ``dp_epsilon``.
    loo : bool
        Also compute Feldman's leave-one-out memorization of every training example (:func:`audit_loo`): exact
        for ridge and kernel ridge, approximate (one Newton step) for logreg; refused for mlp and DP-SGD. It
        adds four ``loo_*`` columns to ``examples.csv``, a ``loo`` block to ``summary.json`` (method, time,
        agreement with the subset estimate) and a section to ``report.html``. It reads the dataset and the
        model configuration only (not part of the run's identity).
    executor : {"local", "ray"} or memlens.storage.executors.Executor
        Where the shards are trained (:mod:`memlens.storage.executors`): ``"local"`` in this process, one after the other;
        ``"ray"`` as Ray tasks, each shard written to ``out`` as soon as its task completes. Not part of the run's
        identity: the results are identical, and a run started on one executor resumes on the other. (The CLI's
        ``--backend local|ray`` sets this; ``backend`` here is the training backend.)
    ray_address : str, optional
        With ``executor="ray"``: the address of a running Ray cluster (``HOST:PORT``, ``ray://HOST:PORT`` or
        ``"auto"``); without it a local Ray instance is started for the run.
    ray_num_cpus : int, optional
        With ``executor="ray"`` and no ``ray_address``: CPUs of the local Ray instance (default all).

    Returns
    -------
    AuditResult
    """
    t0 = time.perf_counter()
    # ---- validate everything before any work
    n_models = check_int("n_models", n_models, min_value=2,
                         hint="to have both IN and OUT models for every example")
    subset_ratio = check_fraction("subset_ratio", subset_ratio,
                                  hint="(the fraction of the training set each model trains on)")
    seed = check_int_seed(seed, why="it is recorded in the run's manifest")
    shard_size = check_int("shard_size", shard_size, min_value=1)
    if resume and overwrite:
        raise MemlensInputError("resume and overwrite exclude each other; got both: pass --resume to continue "
                                "the run, or --overwrite to replace it")
    if not isinstance(out, (str, Path)) or str(out) == "":
        raise MemlensInputError(f"out must be a folder path; got {out!r}")
    out = Path(out)
    if backend not in ("torch", "sklearn"):
        raise MemlensInputError(f"backend must be 'torch' or 'sklearn'; got {backend!r}")
    attacks = bool(attacks)
    attack_targets = check_int("attack_targets", attack_targets, min_value=1,
                               hint="(the number of target models to attack)")
    dp = _dp_config(dp_epsilon, dp_delta)
    from ..storage.executors import make_executor

    executor = make_executor(executor, ray_address=ray_address, ray_num_cpus=ray_num_cpus)
    model_config = _model_config(model, model_params)
    if model in _CLOSED_FORM and dp is not None:
        raise MemlensInputError(f"dp_epsilon (DP-SGD) trains by noisy gradient descent; model {model!r} is fitted in "
                                "closed form: use --model logreg or mlp with --dp-epsilon, or drop --dp-epsilon")
    if model in _CLOSED_FORM and backend != "torch":
        raise MemlensInputError(f"backend must be 'torch' (the default) for model {model!r}, which is fitted in "
                                f"closed form; got backend={backend!r}")
    loo = _check_loo(loo, model, dp)
    ds = _check_dataset(dataset)
    if model == "kernel-ridge":
        _check_kernel_memory(ds.n_train, ds.n_test)
    n_in = int(round(subset_ratio * ds.n_train))
    if not 1 <= n_in <= ds.n_train - 1:
        raise MemlensInputError(f"subset_ratio * n_train must round to between 1 and n_train - 1 so that every "
                                f"model leaves examples out; got subset_ratio={subset_ratio}, n_train={ds.n_train}")
    if dp is not None:  # a target epsilon the accountant cannot calibrate is refused before anything is written
        from ..privacy.accountant import check_dp_target

        check_dp_target(dp, n_max=n_in, n_train=ds.n_train, name="dp_epsilon")
    if resume:
        check_writable(out)
    else:
        RunDir.check_new(out, overwrite=overwrite)

    config = {"dataset": ds.name, "model": model, "model_config": model_config, "backend": backend,
              "n_models": n_models, "subset_ratio": subset_ratio, "seed": seed,
              "masks": "uniform subsets of round(subset_ratio * n_train), SeedSequence([seed, 'mask'])"}
    if dp is not None:   # only DP runs carry the key, so non-private runs keep their identity
        config["dp"] = dp.to_dict()
    masks = audit_masks(n_models, ds.n_train, subset_ratio=subset_ratio, seed=seed)
    if resume:
        run = RunDir.open_for_resume(out, config, ds, masks, shard_size=shard_size)
    else:
        run = RunDir.create(out, config, ds, masks, shard_size=shard_size, overwrite=overwrite)

    # ---- train the missing shards, each written as soon as it is done
    t_start = time.perf_counter()
    from ..train import make_model_config

    trainer_model = make_model_config(**model_config) if model_params else model
    trained = _train_missing(run, ds, model=trainer_model, seed=seed, backend=backend, progress=progress,
                             on_shard=on_shard, dp=dp, executor=executor)
    t_train = time.perf_counter() - t_start
    shards = run.load_shards()
    pop = Population.concat(shards)
    trainer = _trainer_provenance([p.provenance for p in shards])
    dp_record = _dp_record([p.provenance for p in shards]) if dp is not None else None
    if dp_record is not None:
        trainer["dp"] = dp_record
    pop = Population(pop.masks, pop.signals, pop.seeds, dict(pop.labels), trainer)
    if trainer.get("n_not_converged"):
        warn(f"{trainer['n_not_converged']} of {n_models} models did not reach the trainer's convergence "
             "tolerance; their scores are less reliable (raise max_iter in the model config)")
    run.save_population(pop)

    # ---- measure
    from ..measures import high_influence_pairs, influence, memorization

    mem = memorization(pop, signal="correct")
    # Thresholded pairs are only needed for memorized training examples (high_influence_pairs keeps no others).
    infl = influence(pop, signal="correct", split="test", top_k=TOP_K, threshold=INFL_THRESHOLD,
                     pair_columns=np.nan_to_num(mem.scores, nan=-np.inf) >= MEM_THRESHOLD)
    pairs = high_influence_pairs(mem, infl, train_labels=ds.y_train, test_labels=ds.y_test,
                                 mem_threshold=MEM_THRESHOLD, infl_threshold=INFL_THRESHOLD)
    train_acc, test_acc = population_accuracy(pop)
    finite = np.isfinite(mem.scores)
    summary = {
        "dataset": ds.name, "n_train": ds.n_train, "n_test": ds.n_test, "n_classes": ds.n_classes,
        "model": model, "model_config": model_config, "backend": backend,
        "n_models": n_models, "subset_ratio": subset_ratio, "seed": seed,
        "train_accuracy": train_acc, "test_accuracy": test_acc,
        "mem_threshold": MEM_THRESHOLD, "infl_threshold": INFL_THRESHOLD,
        "n_memorized": mem.n_memorized(MEM_THRESHOLD),
        "n_undefined": int((~finite).sum()),
        "mean_memorization": float(np.mean(mem.scores[finite])) if finite.any() else math.nan,
        "n_pairs": len(pairs), "n_pairs_unique_test": pairs.n_unique_test,
        "n_shards": run.n_shards, "shards_trained": len(trained), "shards_reused": run.n_shards - len(trained),
        "training_seconds": t_train, "runtime_seconds": None, "executor": executor.name,
        "run_id": run.run_id, "versions": package_versions(),
        "trainer": trainer,
        "dp": dp_record,
    }
    att = None
    if attacks:
        t_att = time.perf_counter()
        delta = float(dp_record.get("delta") or 0.0) if dp_record else 0.0
        acc_eps = dp_record.get("epsilon_accountant") if dp_record else None
        acc_eps = float(acc_eps) if acc_eps is not None and math.isfinite(float(acc_eps)) else None
        att = audit_attacks(pop, memorization_scores=mem.scores, n_targets=attack_targets, delta=delta,
                            accountant_epsilon=acc_eps)
        summary["attacks"] = {**att.settings, "fprs": [1e-3, 1e-2], "table": att.table(),
                              "n_exposed": int(att.exposed.size), "exposed": att.exposed.tolist(),
                              "notes": list(att.notes)}
        summary["privacy"] = _privacy_summary(att, dp=dp_record, delta=delta)
        summary["attack_seconds"] = time.perf_counter() - t_att

    loo_res = None
    if loo:
        loo_res = audit_loo(ds, model=model, model_config=model_config, subset_memorization=mem)
        summary["loo"] = dict(loo_res.summary)

    # ---- write results
    run.write_text("examples.csv", examples_csv(mem, ds.y_train, att, loo_res))
    run.write_text("pairs.csv", pairs_csv(pairs))
    from ..report.html import write_report

    summary["runtime_seconds"] = time.perf_counter() - t0
    write_report(out / "report.html", summary=summary, dataset=ds, memorization=mem, influence=infl, pairs=pairs,
                 attacks=att, loo=loo_res)
    summary["runtime_seconds"] = time.perf_counter() - t0
    run.write_json("summary.json", summary)
    return AuditResult(out, summary, ds, pop, mem, infl, pairs, tuple(trained), att, loo_res)


def _trainer_provenance(provs: list) -> dict:
    """The shards' provenance merged: shared fields once, convergence diagnostics per shard and in total."""
    provs = [dict(p) for p in provs]
    if not provs:
        return {}
    merged = {k: v for k, v in provs[0].items()
              if k not in ("model_offset", "n_models", "convergence") and all(p.get(k) == v for p in provs)}
    conv = [p.get("convergence") for p in provs]
    if all(isinstance(c, Mapping) for c in conv):
        merged["convergence_by_shard"] = conv
        not_conv = [c.get("n_not_converged") for c in conv]
        if all(isinstance(n, (int, np.integer)) for n in not_conv):
            merged["n_not_converged"] = int(sum(not_conv))
    return merged


def _dp_config(dp_epsilon, dp_delta):
    """A :class:`memlens.train.DPConfig` from the audit's DP arguments (None without ``dp_epsilon``)."""
    if dp_epsilon is None:
        if dp_delta is not None:
            raise MemlensInputError(f"dp_delta needs dp_epsilon; got dp_delta={dp_delta} alone: pass --dp-epsilon "
                                    "as well (e.g. --dp-epsilon 8)")
        return None
    from .._validation import check_float

    eps = check_float("dp_epsilon", dp_epsilon, min_value=0.0, min_inclusive=False,
                      hint="(the DP-SGD privacy budget, e.g. 1 or 8)")
    delta = None
    if dp_delta is not None:
        delta = check_float("dp_delta", dp_delta, min_value=0.0, max_value=1.0, min_inclusive=False,
                            max_inclusive=False, hint="(δ of (ε, δ)-DP, usually below 1/n_train)")
    from .. import train as _train

    if not hasattr(_train, "DPConfig"):
        raise MemlensInputError("dp_epsilon needs DP-SGD training (memlens.train.DPConfig), which this "
                                "installation lacks; update memlens or run without --dp-epsilon")
    return _train.DPConfig(epsilon=eps, delta=delta)


def _dp_record(provs: list) -> dict | None:
    """The shards' ``provenance["dp"]`` merged: the largest accountant ε over shards (the guarantee of all)."""
    recs = [dict(p["dp"]) for p in provs if isinstance(p, Mapping) and isinstance(p.get("dp"), Mapping)]
    if not recs:
        return None
    out = dict(recs[0])
    eps = [r.get("epsilon_accountant") for r in recs]
    if all(isinstance(e, (int, float)) for e in eps):
        out["epsilon_accountant"] = float(max(eps))
    return out


def _train_shard(dataset, *, model, masks, seed, backend, model_offset, dp=None, progress=None) -> Population:
    """Train the models of one shard (rows ``model_offset ...`` of the run): the function every executor runs."""
    from .. import train as _train  # looked up at call time, so tests can count training calls

    extra = {} if dp is None else {"dp": dp}
    return _train.train_population(dataset, model=model, masks=masks, seed=seed, backend=backend,
                                   model_offset=model_offset, progress=progress, **extra)


def _train_missing(run: RunDir, ds, *, model, seed, backend, progress, on_shard, dp=None,
                   executor=None) -> list[int]:
    """Train every missing or damaged shard of ``run`` on ``executor`` (:mod:`memlens.storage.executors`; default local),
    writing each shard as soon as it is done; return their indices in ascending order."""
    from ..storage.executors import train_missing_shards

    return train_missing_shards(run, _train_shard, shared={"dataset": ds},
                                fixed={"model": model, "seed": seed, "backend": backend, "dp": dp},
                                executor=executor, progress=progress, on_shard=on_shard,
                                desc=f"training {getattr(model, 'name', model)} on {ds.name}")
