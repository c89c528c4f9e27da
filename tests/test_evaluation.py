"""ROC, AUC, TPR at fixed FPR, bootstrap CIs and aggregation over targets."""
import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import roc_auc_score

from memlens import MemlensInputError, MemlensWarning
from memlens.attacks import AttackResult
from memlens.evaluation import (
    aggregate,
    auc_null_stderr,
    bootstrap_ci,
    bootstrap_metrics,
    roc,
    roc_auc,
    tpr_at_fpr,
    tpr_at_fpr_from_roc,
)
from memlens.evaluation.metrics import _weighted_metrics


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=60))
def test_auc_equals_sklearn_roc_auc_score_with_ties(pairs):
    scores = np.array([p[0] for p in pairs], dtype=float)
    labels = np.array([p[1] for p in pairs])
    if labels.all() or not labels.any():
        return
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_tpr_at_fpr_on_a_hand_made_roc():
    fpr = np.array([0.0, 0.0, 0.1, 0.2, 0.5, 1.0])
    tpr = np.array([0.0, 0.3, 0.4, 0.45, 0.9, 1.0])
    assert tpr_at_fpr_from_roc(fpr, tpr, 0.0) == 0.3
    assert tpr_at_fpr_from_roc(fpr, tpr, 0.05) == 0.3       # no interpolation towards (0.1, 0.4)
    assert tpr_at_fpr_from_roc(fpr, tpr, 0.1) == 0.4        # FPR <= target, inclusive
    assert tpr_at_fpr_from_roc(fpr, tpr, 0.49) == 0.45
    assert tpr_at_fpr_from_roc(fpr, tpr, 1.0) == 1.0
    np.testing.assert_array_equal(tpr_at_fpr_from_roc(fpr, tpr, [0.05, 0.2]), [0.3, 0.45])


def test_tpr_at_fpr_from_scores_by_hand():
    # 4 members, 5 non-members; descending: m m n m n m n n n
    scores = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    labels = np.array([1, 1, 0, 1, 0, 1, 0, 0, 0], dtype=bool)
    assert tpr_at_fpr(scores, labels, 0.2) == 0.75     # threshold 6: 3 of 4 members, 1 of 5 non-members
    assert tpr_at_fpr(scores, labels, 0.39) == 0.75
    assert tpr_at_fpr(scores, labels, 0.4) == 1.0
    with pytest.warns(MemlensWarning, match="below the resolution"):
        assert tpr_at_fpr(scores, labels, 0.1) == 0.5   # 0.1 < 1/5: TPR at zero false positives


def test_collinear_roc_points_are_kept():
    # ties between a member and a non-member at each score: the ROC is the diagonal; with sklearn's default
    # drop_intermediate the middle points would vanish and TPR@0.5 would drop from 0.5 to 0
    scores = np.array([3, 3, 2, 2, 1, 1], dtype=float)
    labels = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    curve = roc(scores, labels)
    assert len(curve.fpr) == 4
    assert curve.tpr_at(0.34) == pytest.approx(1 / 3)
    assert curve.tpr_at(0.67) == pytest.approx(2 / 3)
    assert curve.auc == pytest.approx(0.5)


def test_roc_with_one_class_is_nan_with_a_warning():
    with pytest.warns(MemlensWarning, match="both members and non-members"):
        assert np.isnan(roc_auc([0.1, 0.2], [True, True]))


def test_bad_metric_input():
    with pytest.raises(MemlensInputError, match="NaN"):
        roc_auc([0.1, np.nan, 0.3], [True, False, True])
    with pytest.raises(MemlensInputError, match="same shape"):
        roc_auc([0.1, 0.2, 0.3], [True, False])
    with pytest.raises(MemlensInputError, match="fpr"):
        tpr_at_fpr([0.1, 0.2], [True, False], 1.5)
    with pytest.raises(MemlensInputError, match="boolean"):
        roc_auc([0.1, 0.2], [2, 1])


def test_auc_null_stderr_is_the_exact_permutation_stderr():
    scores = np.arange(7, dtype=float)
    aucs = []
    for members in itertools.combinations(range(7), 3):
        labels = np.zeros(7, dtype=bool)
        labels[list(members)] = True
        aucs.append(roc_auc_score(labels, scores))
    assert np.std(aucs) == pytest.approx(auc_null_stderr(3, 4), rel=1e-12)


# ------------------------------------------------------------------------------------------- bootstrap
def test_weighted_engine_equals_sklearn_on_duplicated_samples():
    rng = np.random.default_rng(0)
    for _ in range(25):
        n = int(rng.integers(5, 80))
        scores = rng.integers(0, 8, n).astype(float)
        labels = rng.random(n) < 0.5
        w = rng.integers(0, 3, n)
        s2, l2 = np.repeat(scores, w), np.repeat(labels, w)
        if l2.all() or not l2.any():
            continue
        got = _weighted_metrics(scores, labels, w[None, :].astype(float), np.array([0.05, 0.3]))[0]
        assert got[0] == pytest.approx(roc_auc_score(l2, s2), abs=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MemlensWarning)
            np.testing.assert_allclose(got[1:], tpr_at_fpr(s2, l2, [0.05, 0.3]))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    labels = rng.random(3000) < 0.5
    scores = rng.normal(size=3000) + 0.8 * labels
    a = bootstrap_metrics(scores, labels, n_boot=300, seed=5)
    b = bootstrap_metrics(scores, labels, n_boot=300, seed=5)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.auc.estimate == pytest.approx(roc_auc_score(labels, scores))
    assert a.auc.low < a.auc.estimate < a.auc.high
    assert a.tpr[1].low <= a.tpr[1].estimate <= a.tpr[1].high
    # stratified resampling keeps the class sizes: the resampled AUCs vary around the estimate
    assert abs(np.mean(a.samples[:, 0]) - a.auc.estimate) < 0.01
    ci = bootstrap_ci(scores, labels, fpr=0.01, n_boot=300, seed=5)
    assert ci.metric == "tpr@0.01" and ci.estimate == a.tpr[1].estimate


def test_bootstrap_stderr_matches_the_null_stderr():
    rng = np.random.default_rng(2)
    labels = rng.random(2000) < 0.4
    scores = rng.normal(size=2000)
    res = bootstrap_metrics(scores, labels, n_boot=2000, seed=3)
    se = auc_null_stderr(int(labels.sum()), int((~labels).sum()))
    # the bootstrap SD estimates the AUC's sampling SD; with 2000 resamples it is within ~5% (+ estimator bias)
    assert np.std(res.samples[:, 0]) == pytest.approx(se, rel=0.15)


# ------------------------------------------------------------------------------------------- aggregation
def test_aggregate_mean_ci_and_pooled_by_hand():
    rng = np.random.default_rng(4)
    results = []
    for t in range(5):
        labels = rng.random(400) < 0.5
        scores = rng.normal(size=400) + (0.3 + 0.2 * t) * labels
        results.append(AttackResult("demo", scores, labels, target=t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MemlensWarning)
        agg = aggregate(results, fprs=(0.01, 0.1), level=0.9)
    aucs = np.array([roc_auc_score(r.labels, r.scores) for r in results])
    np.testing.assert_allclose(agg.auc, aucs)
    half = stats.t.ppf(0.95, 4) * aucs.std(ddof=1) / np.sqrt(5)
    assert agg.mean_auc == pytest.approx(aucs.mean())
    np.testing.assert_allclose(agg.auc_ci, [aucs.mean() - half, aucs.mean() + half])
    pooled_s = np.concatenate([r.scores for r in results])
    pooled_l = np.concatenate([r.labels for r in results])
    assert agg.pooled_auc == pytest.approx(roc_auc_score(pooled_l, pooled_s))
    assert agg.pooled_tpr[1] == tpr_at_fpr(pooled_s, pooled_l, 0.1)
    np.testing.assert_array_equal(agg.targets, np.arange(5))
    d = agg.to_dict()
    assert d["n_targets"] == 5 and set(d["tpr"]) == {"0.01", "0.1"}


def test_aggregate_undefined_targets_and_single_target():
    good = (np.array([0.9, 0.1, 0.8, 0.2]), np.array([True, False, True, False]))
    bad = (np.array([0.5, 0.6]), np.array([True, True]))
    with pytest.warns(MemlensWarning, match="no members or no non-members"):
        agg = aggregate([good, bad, good], fprs=(0.5,))
    assert np.isnan(agg.auc[1]) and agg.mean_auc == 1.0
    with pytest.warns(MemlensWarning, match="at least two target models"):
        one = aggregate([good], fprs=(0.5,))
    assert np.isnan(one.auc_ci).all()
    with pytest.raises(MemlensInputError, match="at least one"):
        aggregate([])
