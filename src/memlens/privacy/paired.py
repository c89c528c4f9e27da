"""A valid audited ε from a population's target models: the paired one-run audit.

Why a new bound. Pooling an attack's scores over every (target model, example) pair and bounding TPR and FPR with
Clopper–Pearson (Jagielski et al. 2020) counts each example once per target as an independent trial. They are not:
the examples of one model share its training run, and the same example recurs across targets. The confidence such
a bound states does not hold.

The construction (memlens's own, built on the theorem of Steinke, Nasr & Jagielski 2023, "Privacy auditing with one
(1) training run", NeurIPS, Theorem 3.1 and its Appendix D p-value, as implemented in
:func:`memlens.privacy.empirical.one_run_p_value`):

1. **Pairs whose orientation is a fair coin.** A target model's training set is a random subset of the ``n``
   examples whose law is exchangeable (a uniformly random subset of fixed size, as memlens's masks draw, or each
   example in independently with one probability). Match every example of the smaller side (IN or OUT) to a distinct,
   uniformly random example of the larger side. Given the unordered pairs and the unmatched examples, which member of
   each pair is IN is an independent fair coin: every orientation gives a subset of the same size, all such subsets
   are equally likely, and the number of matchings does not depend on the orientation.
2. **Swapping a pair is a replacement.** Flipping one pair's orientation removes one example and adds another, so
   a training algorithm that is (ε, δ)-DP under adding or removing one example is (2ε, (1 + e^ε) δ)-DP with respect
   to each pair's coin (group privacy for two changes).
3. **Guesses.** For each pair the auditor guesses that the example with the higher attack score is the member; it
   ranks pairs by the score difference and guesses on the ``r`` most confident, abstaining on the rest and on ties
   and undefined scores. The attack may read anything independent of the target's coins (other models and their
   masks, the data), never the target's mask.
4. **Bound.** By Steinke et al.'s theorem applied to the pair coins (m = number of pairs), the number of correct
   guesses is dominated by ``Binomial(r, e^{2ε}/(1 + e^{2ε}))`` up to the δ term, so the largest ε whose p-value is
   below ``β`` is a lower bound on ε with confidence ``1 − β``. Several guess counts (and, in the audit, several
   targets and attacks) are tried with a Bonferroni-corrected ``β``, so the best of them keeps the stated confidence.

Each example enters at most one pair, so the trials never outnumber the distinct examples. The factor 2 of step 2
costs half the bound: for randomized response on each example's membership the construction is tight at 2ε, which
the coverage test in ``tests/test_paired_audit.py`` checks by simulation.

Assumptions, stated wherever the bound is reported: the target's membership is exchangeable across examples and
independent of everything the attack reads. Masks balanced over models (every example IN for exactly k models)
break the second for attacks that read other models' masks, since those masks then reveal the target's; the audit
marks such bounds as not valid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from .._random import as_generator
from .._validation import MemlensInputError, check_float, check_level
from ..evaluation.metrics import _check_scores_labels

__all__ = ["PairedOneRunAudit", "paired_one_run_audit", "paired_epsilon", "match_pairs", "GUESS_FRACTIONS",
           "PAIRED_METHOD", "PAIRED_ASSUMPTIONS"]

#: Fractions of the usable pairs the auditor guesses on (the most confident first); each is one test.
GUESS_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
PAIRED_METHOD = ("paired one-run audit: Steinke, Nasr & Jagielski 2023 (Thm 3.1) over randomly matched "
                 "IN/OUT pairs of each target model, 2*epsilon per pair swap (memlens's construction)")
PAIRED_ASSUMPTIONS = ("each target's membership is an exchangeable random subset (fixed size or independent "
                      "inclusion), independent of everything the attack reads; DP is add/remove-one")


def _p_value(m: int, r: int, v: int, eps_pair: float, delta_pair: float) -> float:
    """Steinke et al.'s p-value (Appendix D) for ``v`` correct of ``r`` guesses among ``m`` coins; any δ >= 0."""
    q = 1.0 / (1.0 + math.exp(-eps_pair)) if eps_pair < 700 else 1.0
    tail = float(binom.sf(v - 1, r, q))
    if delta_pair <= 0 or v == 0:
        return min(tail, 1.0)
    if delta_pair * 2 * m >= 1.0:
        return 1.0
    i = np.arange(1, v + 1)
    extra = float(np.max(np.cumsum(binom.pmf(v - i, r, q)) / i))
    return min(tail + 2 * m * delta_pair * extra, 1.0)


def paired_epsilon(*, m: int, r: int, v: int, delta: float = 0.0, beta: float = 0.05, tol: float = 1e-4) -> float:
    """Largest ε (add/remove DP) rejected at level ``beta`` by ``v`` correct of ``r`` pair guesses among ``m`` pairs.

    Each pair's swap is (2ε, (1 + e^ε) δ)-DP, so the null "the algorithm is (ε, δ)-DP" is tested with Steinke
    et al.'s p-value at ``(2ε, (1 + e^ε) δ)``; the p-value grows with ε and bisection returns the largest
    rejected ε (0 when ε = 0 is not rejected).

    Parameters
    ----------
    m, r, v : int
        Pairs (coins), guesses, correct guesses; ``0 <= v <= r <= m``.
    delta : float in [0, 1)
    beta : float in (0, 1)
        Error probability of this one test.
    tol : float
        Width of the final bisection bracket.
    """
    if not (0 <= v <= r <= m and m >= 1):
        raise MemlensInputError(f"need 0 <= v <= r <= m and m >= 1; got m={m}, r={r}, v={v}")

    def p(eps: float) -> float:
        return _p_value(m, r, v, 2.0 * eps, (1.0 + math.exp(min(eps, 700.0))) * delta)

    if r == 0 or p(0.0) >= beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while p(hi) < beta:
        lo, hi = hi, 2.0 * hi
        if hi > 1e3:
            return lo
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if p(mid) < beta:
            lo = mid
        else:
            hi = mid
    return lo


def match_pairs(included: np.ndarray, seed=0) -> np.ndarray:
    """Match every example of the smaller side (IN or OUT) to a distinct random example of the other side.

    Parameters
    ----------
    included : array of bool, shape (n,)
    seed : int or numpy.random.Generator

    Returns
    -------
    pairs : ndarray of int, shape (n_pairs, 2)
        ``pairs[i] = (member, non-member)``; ``n_pairs = min(#IN, #OUT)``. The order of the pairs is random.
    """
    rng = as_generator(seed)
    members = np.flatnonzero(included)
    others = np.flatnonzero(~included)
    k = min(members.size, others.size)
    members = rng.permutation(members)[:k]
    others = rng.permutation(others)[:k]
    return np.stack([members, others], axis=1)


@dataclass(frozen=True, eq=False)
class PairedOneRunAudit:
    """Audited ε lower bound of one target model from paired guesses (see the module docstring).

    Attributes
    ----------
    epsilon : float
        Lower bound on ε (add/remove DP), valid at ``level`` for the best guess count (Bonferroni over
        ``n_tests``); 0 when nothing is rejected.
    level : float
        Confidence of ``epsilon`` as reported (the overall level; each test ran at ``1 − (1 − level)/n_tests``).
    n_tests : int
        Tests the level is shared among (guess counts here, times any targets and attacks of the caller).
    n_pairs : int
        IN/OUT pairs formed (each example in at most one): the coins of the bound.
    n_usable : int
        Pairs with two finite, different scores.
    r, v : int
        Guesses and correct guesses at the best guess count.
    delta : float
    candidates : tuple of (r, v, epsilon)
        Every guess count tried.
    """

    epsilon: float
    level: float
    n_tests: int
    n_pairs: int
    n_usable: int
    r: int
    v: int
    delta: float
    candidates: tuple = ()

    @property
    def n_members(self) -> int:
        """Members in the pairs the bound used (= ``n_pairs``; never more than the distinct members)."""
        return self.n_pairs

    @property
    def n_nonmembers(self) -> int:
        """Non-members in the pairs the bound used (= ``n_pairs``)."""
        return self.n_pairs

    def to_dict(self) -> dict[str, Any]:
        return {"method": PAIRED_METHOD, "assumptions": PAIRED_ASSUMPTIONS, "epsilon": self.epsilon,
                "level": self.level, "n_tests": self.n_tests, "n_members": self.n_members,
                "n_nonmembers": self.n_nonmembers, "n_pairs": self.n_pairs, "n_usable_pairs": self.n_usable,
                "n_guesses": self.r, "n_correct": self.v, "delta": self.delta}


def paired_one_run_audit(scores, included, *, delta: float = 0.0, level: float = 0.95, n_other_tests: int = 1,
                         fractions=GUESS_FRACTIONS, seed=0) -> PairedOneRunAudit:
    """Audited ε lower bound of one model from its attack scores and its (random) membership.

    Parameters
    ----------
    scores : array, shape (n,)
        Attack score of every example against this model, higher = more likely a member; NaN where undefined
        (such pairs are abstained on).
    included : array of bool, shape (n,)
        The model's membership, drawn exchangeably and independently of what ``scores`` read besides the model.
    delta : float in [0, 1)
        δ of the null (ε, δ)-DP (0 for pure DP; use the DP run's δ).
    level : float in (0, 1)
        Overall confidence; the error ``1 − level`` is shared among ``len(fractions) * n_other_tests`` tests.
    n_other_tests : int >= 1
        Further tests the caller takes the best of (targets × attacks), for the Bonferroni correction.
    fractions : sequence of float in (0, 1]
        Guess counts, as fractions of the usable pairs.
    seed : int or numpy.random.Generator
        Seed of the random matching (drawn independently of the scores).

    Returns
    -------
    PairedOneRunAudit
    """
    scores, included = _check_scores_labels(scores, included, names=("scores", "included"), allow_nan=True)
    delta = check_float("delta", delta, min_value=0.0, max_value=1.0, max_inclusive=False,
                        hint="(the δ of (ε, δ)-DP, usually 1e-5 or 1/n)")
    alpha = check_level(level)
    if not isinstance(n_other_tests, (int, np.integer)) or n_other_tests < 1:
        raise MemlensInputError(f"n_other_tests must be an integer >= 1; got {n_other_tests!r}")
    fr = sorted({float(f) for f in np.atleast_1d(fractions)})
    if not fr or fr[0] <= 0 or fr[-1] > 1:
        raise MemlensInputError(f"fractions must be numbers in (0, 1]; got {fractions!r}")
    pairs = match_pairs(included, seed)
    m = int(pairs.shape[0])
    n_tests = len(fr) * int(n_other_tests)
    if m == 0:
        return PairedOneRunAudit(0.0, 1 - alpha, n_tests, 0, 0, 0, 0, delta, ())
    diff = scores[pairs[:, 0]] - scores[pairs[:, 1]]          # > 0: the guess (higher score = member) is right
    usable = np.isfinite(diff) & (diff != 0)
    d = diff[usable]
    order = np.argsort(-np.abs(d), kind="stable")
    correct = np.cumsum(d[order] > 0)
    n_usable = int(d.size)
    beta = alpha / n_tests
    cands, best = [], (0.0, 0, 0)
    for r in sorted({max(1, int(math.ceil(f * n_usable))) for f in fr}) if n_usable else []:
        v = int(correct[r - 1])
        eps = paired_epsilon(m=m, r=r, v=v, delta=delta, beta=beta)
        cands.append((r, v, eps))
        if eps > best[0]:
            best = (eps, r, v)
    return PairedOneRunAudit(float(best[0]), 1 - alpha, n_tests, m, n_usable, best[1], best[2], delta, tuple(cands))
