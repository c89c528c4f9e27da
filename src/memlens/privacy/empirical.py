"""Empirical privacy auditing: lower bounds on ε from membership-attack outcomes.

A training algorithm that is (ε, δ)-differentially private bounds every membership test: for any threshold,
``TPR <= e^ε · FPR + δ`` and, for the complementary test, ``TNR <= e^ε · FNR + δ`` (Kairouz, Oh & Viswanath 2015;
see docs/theory.md, "Auditing differential privacy"). An attack that beats these inequalities with statistical
confidence proves a lower bound on
ε. Two ways are implemented:

* :func:`empirical_epsilon`: **many training runs** (Jagielski, Ullman & Oprea 2020, NeurIPS, "Auditing
  differentially private machine learning: how private is private SGD?"): from the counts
  of true and false positives of a thresholded attack, Clopper–Pearson bounds give ``TPR_low`` and ``FPR_high``
  and ``ε_LB = ln((TPR_low − δ) / FPR_high)``; the complementary bound
  ``ln((1 − FPR_high − δ) / (1 − TPR_low))`` is also taken (their code flips to this test when
  ``TPR_low + FPR_high > 1``, citing their Appendix A).
  Their code counts ``score > threshold``; here "member" means ``score >= threshold``.
* :func:`one_run_audit`: **one training run** (Steinke, Nasr & Jagielski 2023, NeurIPS, "Privacy auditing with
  one (1) training run", arXiv:2305.08846): m canaries are each included independently with probability 1/2; the
  auditor guesses "in" for the k₊ highest scores and "out" for the k₋ lowest and abstains on the rest. Their main
  theorem: under (ε, δ)-DP the number of correct guesses among r guesses is stochastically dominated by
  ``Binomial(r, e^ε / (1 + e^ε))``, up to a δ term; the ε lower bound is the largest ε whose p-value for the
  observed count is below β (the p-value and search of their Appendix D, :func:`one_run_p_value`).

The accountant's ε (an *upper* bound, e.g. from Opacus) is supplied as a number to :func:`privacy_audit`, which
puts it beside the audited lower bounds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from scipy.stats import binom

from .._validation import MemlensInputError, check_float, check_int, check_level, warn
from ..evaluation.intervals import clopper_pearson
from ..evaluation.metrics import _check_scores_labels

__all__ = [
    "epsilon_from_counts",
    "EpsilonLowerBound",
    "empirical_epsilon",
    "one_run_p_value",
    "one_run_epsilon",
    "OneRunAudit",
    "one_run_audit",
    "PrivacyAudit",
    "privacy_audit",
]


def _check_delta(delta) -> float:
    return check_float("delta", delta, min_value=0.0, max_value=1.0, max_inclusive=False,
                       hint="(the δ of (ε, δ)-DP, usually 1e-5 or 1/n)")


def _epsilon_arrays(tp, n_pos, fp, n_neg, delta, alpha):
    """ε lower bounds (both directions) for arrays of counts; −inf where a bound is vacuous."""
    tpr_lo, _ = clopper_pearson(tp, n_pos, level=1 - alpha)
    _, fpr_hi = clopper_pearson(fp, n_neg, level=1 - alpha)
    tpr_lo = np.asarray(tpr_lo, dtype=np.float64)
    fpr_hi = np.asarray(fpr_hi, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = np.where((tpr_lo - delta > 0) & (fpr_hi > 0), np.log((tpr_lo - delta) / fpr_hi), -np.inf)
        fnr_hi = 1.0 - tpr_lo
        tnr_lo = 1.0 - fpr_hi
        e2 = np.where((tnr_lo - delta > 0) & (fnr_hi > 0), np.log((tnr_lo - delta) / fnr_hi), -np.inf)
    return e1, e2, tpr_lo, fpr_hi


def epsilon_from_counts(*, tp: int, n_pos: int, fp: int, n_neg: int, delta: float = 0.0,
                        level: float | None = None, alpha: float | None = None) -> float:
    """Jagielski et al. 2020's ε lower bound for one threshold, from attack counts.

    ``max(0, ln((TPR_low − δ)/FPR_high), ln((1 − FPR_high − δ)/(1 − TPR_low)))`` with Clopper–Pearson bounds
    ``TPR_low`` on ``tp/n_pos`` and ``FPR_high`` on ``fp/n_neg``, each at one-sided confidence ``1 − alpha/2``,
    so that the bound holds with probability at least ``1 − alpha``.

    Parameters
    ----------
    tp, n_pos : int
        Members flagged as members, and members.
    fp, n_neg : int
        Non-members flagged as members, and non-members.
    delta : float in [0, 1)
    alpha : float in (0, 1)
        Total error probability of the bound.
    """
    n_pos = check_int("n_pos", n_pos, min_value=1)
    n_neg = check_int("n_neg", n_neg, min_value=1)
    tp = check_int("tp", tp, min_value=0, max_value=n_pos)
    fp = check_int("fp", fp, min_value=0, max_value=n_neg)
    delta = _check_delta(delta)
    alpha = check_level(level, error_name="alpha", error_value=alpha)
    e1, e2, _, _ = _epsilon_arrays(tp, n_pos, fp, n_neg, delta, alpha)
    return float(max(0.0, float(e1), float(e2)))


@dataclass(frozen=True, eq=False)
class EpsilonLowerBound:
    """An empirical lower bound on ε from a thresholded membership attack (Jagielski et al. 2020).

    Attributes
    ----------
    epsilon : float
        The largest lower bound over the thresholds considered (0 when none is informative).
    threshold : float
        The threshold achieving it ("member" iff ``score >= threshold``); NaN when ``epsilon`` is 0.
    direction : str
        ``"tpr/fpr"`` (``ln((TPR_low − δ)/FPR_high)``) or ``"tnr/fnr"`` (the complementary test).
    tp, fp, n_pos, n_neg : int
        Counts at that threshold.
    tpr_lower, fpr_upper : float
        Clopper–Pearson bounds at that threshold.
    delta, alpha : float
    thresholds, epsilons : ndarray, shape (n_thresholds,)
        Every threshold tried and its lower bound (−inf where vacuous).
    selected_on_data : bool
        True when the threshold was chosen as the best on the same data (optimistic: a valid (1 − alpha) bound
        needs a threshold fixed in advance, e.g. chosen on other models).
    """

    epsilon: float
    threshold: float
    direction: str
    tp: int
    fp: int
    n_pos: int
    n_neg: int
    tpr_lower: float
    fpr_upper: float
    delta: float
    alpha: float
    thresholds: np.ndarray
    epsilons: np.ndarray
    selected_on_data: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"method": "clopper-pearson (Jagielski et al. 2020)", "epsilon": self.epsilon,
                "threshold": self.threshold, "direction": self.direction, "tp": self.tp, "fp": self.fp,
                "n_pos": self.n_pos, "n_neg": self.n_neg, "tpr_lower": self.tpr_lower, "fpr_upper": self.fpr_upper,
                "delta": self.delta, "alpha": self.alpha, "selected_on_data": self.selected_on_data}


def empirical_epsilon(scores, labels, *, delta: float = 0.0, level: float | None = None, alpha: float | None = None,
                      thresholds=None) -> EpsilonLowerBound:
    """ε lower bound from attack scores on independent trials (Jagielski, Ullman & Oprea 2020).

    Each (score, label) pair is one trial: e.g. the score of a canary on one of many independently trained models
    and whether that model trained on it. For every threshold τ the attack "member iff score >= τ" gives counts
    ``tp``, ``fp`` and the bound of :func:`epsilon_from_counts`; the result is the best threshold.

    Parameters
    ----------
    scores : array, shape (n_trials,)
        Attack scores, higher = more likely a member.
    labels : array of bool, shape (n_trials,)
        True where the trial's model trained on the audited example.
    delta : float in [0, 1)
    level : float in (0, 1), default 0.95
        Confidence of the bound; the Clopper–Pearson bounds get error probability ``alpha = 1 − level`` (``alpha/2``
        for each rate).
    alpha : float in (0, 1), optional
        The older name of the same setting as an error probability (``level = 1 − alpha``).
    thresholds : array, optional
        Thresholds to try. Default: every distinct score — the best of these on the same data is optimistic
        (``selected_on_data=True``), as in Jagielski et al.'s code; fix the threshold on separate trials for a
        bound that holds with probability ``1 − alpha``.

    Notes
    -----
    The Clopper–Pearson intervals assume independent trials (one training run per trial). Pooling many examples
    of the same models, as a Population attack does, is a heuristic: the trials are then correlated.
    """
    scores, labels = _check_scores_labels(scores, labels)
    delta = _check_delta(delta)
    alpha = check_level(level, error_name="alpha", error_value=alpha)
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise MemlensInputError(f"labels must contain members and non-members to audit; got {n_pos} member(s) and "
                                f"{n_neg} non-member(s)")
    selected = thresholds is None
    if thresholds is None:
        thr = np.unique(scores)[::-1]
    else:
        thr = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
        if thr.ndim != 1 or thr.size == 0 or not np.all(np.isfinite(thr)):
            raise MemlensInputError(f"thresholds must be a non-empty 1-d array of finite numbers; got {thresholds!r}")
        selected = thr.size > 1
    pos_sorted = np.sort(scores[labels])
    neg_sorted = np.sort(scores[~labels])
    tp = n_pos - np.searchsorted(pos_sorted, thr, side="left")    # members with score >= thr
    fp = n_neg - np.searchsorted(neg_sorted, thr, side="left")
    e1, e2, tpr_lo, fpr_hi = _epsilon_arrays(tp, n_pos, fp, n_neg, delta, alpha)
    eps = np.maximum(e1, e2)
    best = int(np.argmax(eps))
    if not np.isfinite(eps[best]) or eps[best] <= 0:
        return EpsilonLowerBound(0.0, float("nan"), "none", 0, 0, n_pos, n_neg, 0.0, 1.0, delta, alpha, thr, eps,
                                 selected)
    direction = "tpr/fpr" if e1[best] >= e2[best] else "tnr/fnr"
    return EpsilonLowerBound(float(eps[best]), float(thr[best]), direction, int(tp[best]), int(fp[best]), n_pos,
                             n_neg, float(np.atleast_1d(tpr_lo)[best]), float(np.atleast_1d(fpr_hi)[best]), delta,
                             alpha, thr, eps, selected)


# ============================================================================================ one-run audit
def one_run_p_value(*, m: int, r: int, v: int, epsilon: float, delta: float = 0.0) -> float:
    """p-value of ``v`` correct guesses out of ``r`` under the null "the algorithm is (ε, δ)-DP".

    Steinke, Nasr & Jagielski 2023 (arXiv:2305.08846), main theorem and Appendix D: with
    ``q = e^ε / (1 + e^ε)`` (the accuracy of ε-DP randomized response),

    ``p = P[Binomial(r, q) >= v] + 2 m δ · max_{1 <= i <= v} P[v − i <= Binomial(r, q) < v] / i``

    capped at 1.

    Parameters
    ----------
    m : int
        Number of canaries, each included independently with probability 1/2.
    r : int
        Number of guesses (non-abstentions), ``r <= m``.
    v : int
        Number of correct guesses, ``v <= r``.
    epsilon : float >= 0
    delta : float in [0, 1)
    """
    m = check_int("m", m, min_value=1)
    r = check_int("r", r, min_value=0, max_value=m, hint="(guesses cannot outnumber canaries)")
    v = check_int("v", v, min_value=0, max_value=r, hint="(correct guesses cannot outnumber guesses)")
    epsilon = check_float("epsilon", epsilon, min_value=0.0, hint="(the null hypothesis' privacy parameter)")
    delta = _check_delta(delta)
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(binom.sf(v - 1, r, q))                 # P[Binomial(r, q) >= v]
    extra = 0.0
    if delta > 0 and v > 0:
        i = np.arange(1, v + 1)
        cum = np.cumsum(binom.pmf(v - i, r, q))         # P[v − i <= Binomial < v]
        extra = float(np.max(cum / i))
    return min(tail + extra * delta * 2 * m, 1.0)


def one_run_epsilon(*, m: int, r: int, v: int, delta: float = 0.0, level: float | None = None,
                    beta: float | None = None, tol: float = 1e-6) -> float:
    """Largest ε rejected at level ``beta``: the one-run audit's lower bound (Steinke et al. 2023, Appendix D).

    Bisection keeps ``one_run_p_value(ε_low) < beta <= one_run_p_value(ε_high)`` and returns ``ε_low``, so the
    returned value is itself rejected (0 when even ε = 0 is not rejected).

    Parameters
    ----------
    m, r, v : int
        Canaries, guesses and correct guesses (see :func:`one_run_p_value`).
    delta : float in [0, 1)
    level : float in (0, 1), default 0.95
        Confidence of the bound (``beta = 1 − level``).
    beta : float in (0, 1), optional
        The older name, as the significance level: the algorithm is not (ε, δ)-DP for this ε, with confidence ``1 − beta``.
    tol : float
        Bisection stops when the bracket is narrower than this.
    """
    beta = check_level(level, error_name="beta", error_value=beta)
    tol = check_float("tol", tol, min_value=0.0, min_inclusive=False)
    if one_run_p_value(m=m, r=r, v=v, epsilon=0.0, delta=delta) >= beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while one_run_p_value(m=m, r=r, v=v, epsilon=hi, delta=delta) < beta:
        lo, hi = hi, 2 * hi
        if hi > 1e4:             # v = r = m huge: the bound is effectively unbounded
            return lo
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if one_run_p_value(m=m, r=r, v=v, epsilon=mid, delta=delta) < beta:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True, eq=False)
class OneRunAudit:
    """Result of a one-run audit (Steinke, Nasr & Jagielski 2023).

    Attributes
    ----------
    epsilon : float
        Lower bound on ε at confidence ``1 − beta`` (for the best (k₊, k₋) when several were tried, at a
        Bonferroni-corrected level).
    m, r, v : int
        Canaries, guesses, correct guesses (of the reported (k₊, k₋)).
    k_pos, k_neg : int
        Number of "in" and "out" guesses.
    delta, beta : float
    guesses : ndarray of int8, shape (m,)
        +1 (guessed in), −1 (guessed out), 0 (abstained), for the reported (k₊, k₋).
    candidates : tuple of (k_pos, k_neg, r, v, epsilon)
        Every (k₊, k₋) tried.
    """

    epsilon: float
    m: int
    r: int
    v: int
    k_pos: int
    k_neg: int
    delta: float
    beta: float
    guesses: np.ndarray
    candidates: tuple = ()

    @property
    def accuracy(self) -> float:
        """Fraction of the guesses that are correct (NaN without guesses)."""
        return self.v / self.r if self.r else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"method": "one-run (Steinke, Nasr & Jagielski 2023)", "epsilon": self.epsilon, "m": self.m,
                "r": self.r, "v": self.v, "k_pos": self.k_pos, "k_neg": self.k_neg, "delta": self.delta,
                "beta": self.beta, "accuracy": self.accuracy, "n_candidates": len(self.candidates)}


def _guesses(order: np.ndarray, m: int, k_pos: int, k_neg: int) -> np.ndarray:
    g = np.zeros(m, dtype=np.int8)
    if k_neg:
        g[order[:k_neg]] = -1
    if k_pos:
        g[order[m - k_pos:]] = 1
    return g


def one_run_audit(scores, included, *, k_pos, k_neg=0, delta: float = 0.0, level: float | None = None,
                  beta: float | None = None) -> OneRunAudit:
    """One-run privacy audit from canary scores (Steinke, Nasr & Jagielski 2023).

    Each of the ``m`` canaries was inserted into the (single) training run independently with probability 1/2
    (``included``). The auditor guesses "in" for the ``k_pos`` highest scores and "out" for the ``k_neg`` lowest,
    abstaining on the rest; with ``r = k_pos + k_neg`` guesses of which ``v`` are correct, the lower bound is
    :func:`one_run_epsilon` ``(m, r, v, delta, beta)``.

    Parameters
    ----------
    scores : array, shape (m,)
        Audit score of every canary, higher = more likely included (e.g. minus the loss, or a LiRA score).
    included : array of bool, shape (m,)
        Whether each canary was in the training set.
    k_pos, k_neg : int or sequence of int
        Numbers of "in" / "out" guesses. Sequences try every combination and report the best; the level is then
        Bonferroni-corrected (``beta / n_combinations``) so the reported bound keeps confidence ``1 − beta``.
    delta : float in [0, 1)
    level : float in (0, 1), default 0.95
        Confidence of the reported bound (``beta = 1 − level``).
    beta : float in (0, 1), optional
        The older name, as an error probability:

    Returns
    -------
    OneRunAudit
    """
    scores, included = _check_scores_labels(scores, included, names=("scores", "included"))
    m = scores.size
    if m == 0:
        raise MemlensInputError("scores must hold at least one canary; got an empty array")
    delta = _check_delta(delta)
    beta = check_level(level, error_name="beta", error_value=beta)
    kp = [check_int("k_pos", k, min_value=0, max_value=m) for k in np.atleast_1d(k_pos).tolist()]
    kn = [check_int("k_neg", k, min_value=0, max_value=m) for k in np.atleast_1d(k_neg).tolist()]
    pairs = [(a, b) for a in kp for b in kn if a + b <= m and a + b > 0]
    if not pairs:
        raise MemlensInputError(f"k_pos + k_neg must be between 1 and the number of canaries m={m}; got k_pos={k_pos}, "
                                f"k_neg={k_neg}")
    level = beta / len(pairs)
    order = np.argsort(scores, kind="mergesort")
    truth = np.where(included, 1, -1).astype(np.int8)
    cands = []
    best = None
    for a, b in pairs:
        g = _guesses(order, m, a, b)
        r = a + b
        v = int(np.sum(g * truth == 1))
        eps = one_run_epsilon(m=m, r=r, v=v, delta=delta, beta=level)
        cands.append((a, b, r, v, eps))
        if best is None or eps > best[4]:
            best = (a, b, r, v, eps, g)
    a, b, r, v, eps, g = best
    return OneRunAudit(float(eps), m, r, v, a, b, delta, beta, g, tuple(cands))


# ============================================================================================ report
@dataclass(frozen=True, eq=False)
class PrivacyAudit:
    """Audited ε lower bounds beside the accountant's ε (an upper bound).

    Attributes
    ----------
    accountant_epsilon : float or None
        The ε the privacy accountant reports for the training run (e.g. Opacus' RDP or PRV accountant).
    delta : float
    lower_bounds : mapping of str to float
        Audited ε lower bounds, by method/attack name.
    details : mapping of str to dict
        ``to_dict()`` of each bound's full result, where available.
    """

    accountant_epsilon: float | None
    delta: float
    lower_bounds: Mapping[str, float]
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def max_lower_bound(self) -> float:
        vals = [v for v in self.lower_bounds.values() if np.isfinite(v)]
        return max(vals) if vals else float("nan")

    @property
    def violations(self) -> tuple[str, ...]:
        """Names whose lower bound exceeds the accountant's ε (a bug in the accounting or the training code)."""
        if self.accountant_epsilon is None:
            return ()
        return tuple(k for k, v in self.lower_bounds.items() if v > self.accountant_epsilon * (1 + 1e-9))

    @property
    def consistent(self) -> bool | None:
        """True when no audited lower bound exceeds the accountant's ε (None without an accountant ε)."""
        return None if self.accountant_epsilon is None else not self.violations

    @property
    def tightness(self) -> float:
        """``max_lower_bound / accountant_epsilon``: 1 means the audit meets the accountant's bound."""
        if self.accountant_epsilon is None:
            return float("nan")
        return self.max_lower_bound / self.accountant_epsilon

    def to_dict(self) -> dict[str, Any]:
        return {"accountant_epsilon": self.accountant_epsilon, "delta": self.delta,
                "lower_bounds": dict(self.lower_bounds), "max_lower_bound": self.max_lower_bound,
                "consistent": self.consistent, "violations": list(self.violations), "tightness": self.tightness,
                "details": dict(self.details)}


def privacy_audit(lower_bounds: Mapping[str, Any], *, accountant_epsilon: float | None = None,
                  delta: float = 0.0) -> PrivacyAudit:
    """Put audited ε lower bounds beside the accountant's ε.

    Parameters
    ----------
    lower_bounds : mapping of str to EpsilonLowerBound, OneRunAudit or float
        The audits to report, by name (e.g. ``{"lira, 64 models": empirical_epsilon(...)}``).
    accountant_epsilon : float > 0, optional
        The accountant's ε for the same (δ) — a number, e.g. from Opacus.
    delta : float in [0, 1)

    Returns
    -------
    PrivacyAudit
        ``.consistent`` is False (and a :class:`~memlens.MemlensWarning` is issued) when an audited lower bound
        exceeds the accountant's ε.
    """
    if accountant_epsilon is not None:
        accountant_epsilon = check_float("accountant_epsilon", accountant_epsilon, min_value=0.0,
                                         min_inclusive=False,
                                         hint="(a DP guarantee needs ε > 0; use None for a non-private model)")
    delta = _check_delta(delta)
    if not isinstance(lower_bounds, Mapping) or not lower_bounds:
        raise MemlensInputError("lower_bounds must be a non-empty mapping name -> EpsilonLowerBound, OneRunAudit "
                                f"or number; got {lower_bounds!r}")
    values: dict[str, float] = {}
    details: dict[str, Any] = {}
    for name, item in lower_bounds.items():
        if isinstance(item, (EpsilonLowerBound, OneRunAudit)):
            values[str(name)] = float(item.epsilon)
            details[str(name)] = item.to_dict()
            if item.delta != delta:
                warn(f"lower bound {name!r} was computed with delta={item.delta}, the report uses delta={delta}",
                     stacklevel=3)
        else:
            values[str(name)] = check_float(f"lower_bounds[{name!r}]", item, min_value=0.0)
    report = PrivacyAudit(accountant_epsilon, delta, values, details)
    if report.violations:
        warn(f"audited ε lower bound(s) {', '.join(report.violations)} exceed the accountant's ε = "
             f"{accountant_epsilon}: the training run is not as private as accounted (or the bound's assumptions "
             "fail)", stacklevel=3)
    return report
