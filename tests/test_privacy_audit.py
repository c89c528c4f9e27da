"""Empirical privacy auditing: Clopper–Pearson ε lower bounds and the one-run audit, on ε-DP mechanisms."""
import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from memlens import MemlensInputError, MemlensWarning, Population
from memlens.attacks import attack_all_targets
from memlens.data import make_masks
from memlens.evaluation import (
    clopper_pearson,
    empirical_epsilon,
    epsilon_from_counts,
    one_run_audit,
    one_run_epsilon,
    one_run_p_value,
    privacy_audit,
)


def _randomized_response(bits, epsilon, rng):
    """ε-DP randomized response: report each bit truthfully with probability e^ε/(1+e^ε)."""
    keep = rng.random(bits.shape) < 1.0 / (1.0 + math.exp(-epsilon))
    return np.where(keep, bits, ~bits)


# ------------------------------------------------------------------------------------------- Clopper–Pearson
@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (1, 1), (17, 250), (999, 1000)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_clopper_pearson_matches_scipy_beta_quantiles(k, n, level):
    lo, hi = clopper_pearson(k, n, level=level)
    a = 1 - level
    assert lo == (0.0 if k == 0 else pytest.approx(stats.beta.ppf(a / 2, k, n - k + 1), rel=1e-12))
    assert hi == (1.0 if k == n else pytest.approx(stats.beta.ppf(1 - a / 2, k + 1, n - k), rel=1e-12))
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    assert (lo, hi) == (pytest.approx(ci.low, abs=1e-12), pytest.approx(ci.high, abs=1e-12))


def test_clopper_pearson_vectorized_and_bad_counts():
    lo, hi = clopper_pearson(np.array([0, 5, 10]), 10)
    assert lo.shape == (3,) and lo[0] == 0 and hi[2] == 1
    with pytest.raises(MemlensInputError, match="0 <= k <= n"):
        clopper_pearson(11, 10)
    with pytest.raises(MemlensInputError, match="integer"):
        clopper_pearson(2.5, 10)


def test_epsilon_from_counts_by_hand():
    tp, n_pos, fp, n_neg, delta, alpha = 900, 1000, 50, 1000, 1e-5, 0.05
    tpr_lo = stats.beta.ppf(alpha / 2, tp, n_pos - tp + 1)
    fpr_hi = stats.beta.ppf(1 - alpha / 2, fp + 1, n_neg - fp)
    expect = max(math.log((tpr_lo - delta) / fpr_hi), math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    assert epsilon_from_counts(tp=tp, n_pos=n_pos, fp=fp, n_neg=n_neg, delta=delta, alpha=alpha) == \
        pytest.approx(expect, rel=1e-12)
    # the complementary test is the stronger one here: few false negatives, many false positives
    tp, fp = 995, 600
    tpr_lo = stats.beta.ppf(alpha / 2, tp, n_pos - tp + 1)
    fpr_hi = stats.beta.ppf(1 - alpha / 2, fp + 1, n_neg - fp)
    expect = math.log((1 - fpr_hi) / (1 - tpr_lo))
    assert epsilon_from_counts(tp=tp, n_pos=n_pos, fp=fp, n_neg=n_neg, alpha=alpha) == pytest.approx(expect)
    assert epsilon_from_counts(tp=500, n_pos=1000, fp=500, n_neg=1000) == 0.0


def test_empirical_epsilon_is_the_best_threshold_by_brute_force():
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.5
    scores = np.round(rng.normal(size=300) + 1.5 * labels, 1)
    res = empirical_epsilon(scores, labels, delta=1e-3)
    best = 0.0
    for t in np.unique(scores):
        best = max(best, epsilon_from_counts(tp=int(np.sum(scores[labels] >= t)), n_pos=int(labels.sum()),
                                             fp=int(np.sum(scores[~labels] >= t)), n_neg=int((~labels).sum()),
                                             delta=1e-3))
    assert res.epsilon == pytest.approx(best)
    assert res.tp == np.sum(scores[labels] >= res.threshold) and res.selected_on_data
    fixed = empirical_epsilon(scores, labels, delta=1e-3, thresholds=[res.threshold])
    assert fixed.epsilon == pytest.approx(best) and not fixed.selected_on_data


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_clopper_pearson_audit_of_randomized_response_stays_below_epsilon(epsilon):
    # randomized response is exactly tight (TPR/FPR = e^ε), so the bound exceeds ε with probability <= alpha:
    # with alpha = 0.001 five seeds all stay below ε with probability >= 99.5%
    estimates = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        bits = rng.random(20_000) < 0.5
        guess = _randomized_response(bits, epsilon, rng)
        res = empirical_epsilon(guess.astype(float), bits, alpha=0.001)
        assert res.epsilon <= epsilon
        estimates.append(res.epsilon)
    assert min(estimates) > 0.75 * epsilon         # 20,000 trials: within the CP margin of the true ε


def test_clopper_pearson_audit_exceeds_epsilon_at_most_alpha_of_the_time():
    epsilon, alpha, runs = 1.0, 0.05, 300
    exceed = 0
    for seed in range(runs):
        rng = np.random.default_rng(10_000 + seed)
        bits = rng.random(2000) < 0.5
        guess = _randomized_response(bits, epsilon, rng)
        exceed += empirical_epsilon(guess.astype(float), bits, alpha=alpha).epsilon > epsilon
    assert exceed / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_audit_of_a_dp_population_never_exceeds_epsilon():
    # every model's signal on every example is ε-DP randomized response of its membership bit: a population
    # whose training is exactly ε-DP per example; attacking all targets must not certify more than ε
    epsilon = 1.0
    for seed in range(3):
        rng = np.random.default_rng([seed, 1])          # independent of the masks' stream
        masks = make_masks(8, 2000, p=0.5, seed=seed)
        noisy = _randomized_response(masks, epsilon, rng)
        logit = np.where(noisy, 1.0, -1.0) + 0.01 * rng.normal(size=masks.shape)
        pop = Population(masks, {"train": {"logit": logit}})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MemlensWarning)
            every = attack_all_targets(pop, "loss", signal="logit")
        res = empirical_epsilon(every.scores.ravel(), every.labels.ravel(), delta=0.0, alpha=0.001)
        assert 0.7 * epsilon < res.epsilon <= epsilon


def test_empirical_epsilon_bad_input():
    with pytest.raises(MemlensInputError, match="members and non-members"):
        empirical_epsilon([0.1, 0.2], [True, True])
    with pytest.raises(MemlensInputError, match="delta"):
        empirical_epsilon([0.1, 0.2], [True, False], delta=1.0)


# ------------------------------------------------------------------------------------------- one run
def _p_value_loop(m, r, v, eps, delta):
    """Steinke, Nasr & Jagielski 2023, Appendix D, written as a loop."""
    q = 1 / (1 + math.exp(-eps))
    beta = stats.binom.sf(v - 1, r, q)
    alpha, total = 0.0, 0.0
    for i in range(1, v + 1):
        total += stats.binom.pmf(v - i, r, q)
        if total > i * alpha:
            alpha = total / i
    return min(beta + alpha * delta * 2 * m, 1.0)


@pytest.mark.parametrize("m,r,v,eps,delta", [(1000, 100, 80, 1.0, 0.0), (1000, 100, 80, 1.0, 1e-5),
                                             (500, 500, 300, 0.3, 1e-4), (100, 10, 10, 2.0, 1e-3),
                                             (50, 0, 0, 1.0, 0.0), (200, 40, 0, 0.5, 1e-5)])
def test_one_run_p_value_matches_appendix_d(m, r, v, eps, delta):
    assert one_run_p_value(m=m, r=r, v=v, epsilon=eps, delta=delta) == \
        pytest.approx(_p_value_loop(m, r, v, eps, delta), rel=1e-12, abs=1e-300)


def test_one_run_epsilon_is_the_rejection_boundary():
    for m, r, v, delta in [(1000, 100, 80, 0.0), (1000, 600, 600, 1e-5), (10_000, 2000, 1400, 1e-6)]:
        eps = one_run_epsilon(m=m, r=r, v=v, delta=delta, beta=0.05)
        assert one_run_p_value(m=m, r=r, v=v, epsilon=eps, delta=delta) < 0.05
        assert one_run_p_value(m=m, r=r, v=v, epsilon=eps + 1e-5, delta=delta) >= 0.05
    # δ only weakens the bound; chance-level guessing certifies nothing
    assert one_run_epsilon(m=1000, r=100, v=80, delta=1e-4) < one_run_epsilon(m=1000, r=100, v=80)
    assert one_run_epsilon(m=1000, r=100, v=50) == 0.0


def _rr_canaries(m, epsilon, seed):
    rng = np.random.default_rng(seed)
    included = rng.random(m) < 0.5
    return _randomized_response(included, epsilon, rng).astype(float), included


def test_one_run_audit_of_randomized_response_never_exceeds_epsilon():
    epsilon = 1.0
    for seed in range(10):
        scores, included = _rr_canaries(1000, epsilon, seed)
        res = one_run_audit(scores, included, k_pos=500, k_neg=500)
        assert res.epsilon <= epsilon
    # the guarantee is statistical: P[ε_LB > ε] <= β. Over 300 runs the exceedance rate stays within 3 SE of β.
    beta, runs = 0.05, 300
    exceed = sum(one_run_audit(*_rr_canaries(400, epsilon, 1000 + s), k_pos=200, k_neg=200, beta=beta).epsilon
                 > epsilon for s in range(runs))
    assert exceed / runs <= beta + 3 * math.sqrt(beta * (1 - beta) / runs)


def test_one_run_audit_approaches_epsilon_with_many_canaries():
    epsilon = 1.0
    small = one_run_audit(*_rr_canaries(1_000, epsilon, 0), k_pos=500, k_neg=500).epsilon
    large = one_run_audit(*_rr_canaries(100_000, epsilon, 0), k_pos=50_000, k_neg=50_000).epsilon
    assert small < large <= epsilon
    assert large > 0.93 * epsilon


def test_one_run_audit_guesses_and_bonferroni():
    scores = np.array([0.9, 0.1, 0.8, 0.3, 0.7, 0.2])
    included = np.array([True, False, True, False, False, False])
    res = one_run_audit(scores, included, k_pos=2, k_neg=2)
    np.testing.assert_array_equal(res.guesses, [1, -1, 1, 0, 0, -1])
    assert (res.m, res.r, res.v) == (6, 4, 4)
    sweep = one_run_audit(scores, included, k_pos=[1, 2, 3], k_neg=[0, 2])
    assert len(sweep.candidates) == 6
    assert sweep.epsilon == pytest.approx(one_run_epsilon(m=6, r=sweep.r, v=sweep.v, beta=0.05 / 6))
    with pytest.raises(MemlensInputError, match="k_pos"):
        one_run_audit(scores, included, k_pos=7)
    with pytest.raises(MemlensInputError, match="k_pos \\+ k_neg"):
        one_run_audit(scores, included, k_pos=0, k_neg=0)


def test_one_run_bad_input():
    with pytest.raises(MemlensInputError, match="v must be <="):
        one_run_p_value(m=10, r=5, v=6, epsilon=1.0)
    with pytest.raises(MemlensInputError, match="r must be <="):
        one_run_p_value(m=10, r=11, v=6, epsilon=1.0)
    with pytest.raises(MemlensInputError, match="epsilon must be >= 0"):
        one_run_p_value(m=10, r=5, v=3, epsilon=-0.5)
    with pytest.raises(MemlensInputError, match="beta"):
        one_run_epsilon(m=10, r=5, v=3, beta=1.5)


# ------------------------------------------------------------------------------------------- report
def test_privacy_audit_report():
    scores, included = _rr_canaries(5000, 2.0, 1)
    one = one_run_audit(scores, included, k_pos=2500, k_neg=2500, delta=1e-5)
    multi = empirical_epsilon(scores, included, delta=1e-5)
    rep = privacy_audit({"one-run": one, "clopper-pearson": multi, "given": 0.5}, accountant_epsilon=2.0,
                        delta=1e-5)
    assert rep.consistent and rep.violations == ()
    assert rep.max_lower_bound == max(one.epsilon, multi.epsilon, 0.5)
    assert 0 < rep.tightness <= 1
    json.dumps(rep.to_dict())
    with pytest.warns(MemlensWarning, match="exceed the accountant"):
        bad = privacy_audit({"one-run": one}, accountant_epsilon=0.5, delta=1e-5)
    assert bad.consistent is False and bad.violations == ("one-run",)
    assert privacy_audit({"x": 1.0}).consistent is None


@pytest.mark.parametrize("eps", [0.0, -1.0, float("nan")])
def test_accountant_epsilon_must_be_positive(eps):
    with pytest.raises(MemlensInputError, match="accountant_epsilon"):
        privacy_audit({"x": 1.0}, accountant_epsilon=eps)
