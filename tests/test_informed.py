"""Informed-adversary reconstruction (Balle et al. 2022) on planted, exactly reconstructible models."""
import numpy as np
import pytest

from memlens._validation import MemlensInputError, MemlensWarning
from memlens.attacks.informed import reconstruct_logistic, reconstruct_ridge
from memlens.data import load_dataset
from memlens.train.logreg import fit_logistic
from memlens.train.population_training import standardized_features


def _ridge(X, y, alpha):
    Xt = np.hstack([X, np.ones((len(X), 1))])
    pen = np.diag(np.r_[np.full(X.shape[1], alpha), 0.0])
    theta = np.linalg.solve(Xt.T @ Xt + pen, Xt.T @ y)
    return theta[:-1], theta[-1]


@pytest.mark.parametrize("i", [0, 7, 29])
def test_ridge_reconstruction_is_exact(i):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    y = X @ rng.normal(size=5) + rng.normal(size=30)
    w, b = _ridge(X, y, alpha=2.0)
    rest = np.arange(30) != i
    rec = reconstruct_ridge(w, b, X[rest], y[rest], alpha=2.0)
    assert rec.error(X[i]) < 1e-8 and rec.y == pytest.approx(y[i], abs=1e-8)


def test_ridge_example_fitted_exactly_leaves_no_trace():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 3))
    w0 = rng.normal(size=3)
    y = X @ w0                     # alpha = 0 and noiseless: every residual is 0
    w, b = _ridge(X, y, alpha=0.0)
    with pytest.warns(MemlensWarning, match="no trace"):
        rec = reconstruct_ridge(w, b, X[1:], y[1:], alpha=0.0)
    assert np.isnan(rec.x).all()


@pytest.mark.parametrize("binary", [False, True])
def test_logistic_reconstruction_of_a_converged_model(binary):
    ds = load_dataset("digits")
    X, _ = standardized_features(ds)
    y = ds.y_train
    if binary:
        keep = np.isin(y, (1, 7))
        X, y = X[keep][:150], (y[keep][:150] == 7).astype(np.int64)
    else:
        X, y = X[:300], y[:300]
    nc = 2 if binary else 10
    fit = fit_logistic(X, y, np.ones((1, len(y))), n_classes=nc, C=1.0, tol=1e-12, precision="float64",
                       max_iter=5000)
    for i in (0, 5, 11):
        rest = np.arange(len(y)) != i
        rec = reconstruct_logistic(fit.coef[0], fit.intercept[0], X[rest], y[rest], C=1.0)
        assert rec.y == y[i]
        assert rec.error(X[i]) < 1e-3


def test_reconstruction_degrades_with_a_looser_model():
    ds = load_dataset("digits")
    X, _ = standardized_features(ds)
    X, y = X[:300], ds.y_train[:300]
    errs = []
    for tol in (1e-12, 1e-4):
        fit = fit_logistic(X, y, np.ones((1, 300)), n_classes=10, C=1.0, tol=tol, precision="float64", max_iter=5000)
        errs.append(reconstruct_logistic(fit.coef[0], fit.intercept[0], X[1:], y[1:], C=1.0).error(X[0]))
    assert errs[0] < 1e-3 < errs[1]


def test_bad_input_names_the_parameter():
    with pytest.raises(MemlensInputError, match="X_rest has 3 features"):
        reconstruct_ridge(np.zeros(2), 0.0, np.zeros((4, 3)), np.zeros(4), alpha=1.0)
    with pytest.raises(MemlensInputError, match="^C must"):
        reconstruct_logistic(np.zeros((2, 3)), np.zeros(3), np.zeros((4, 2)), np.zeros(4, int), C=0)


def test_lemma_4_2_on_populations():
    from memlens.data import make_masks
    from memlens.measures.identities import memorization_gap
    from memlens.train import train_population

    ds = load_dataset("digits")
    balanced = make_masks(16, ds.n_train, p=0.5, seed=0, balanced=True)
    pop = train_population(ds, model="logreg", masks=balanced, seed=0)
    r = memorization_gap(pop)
    assert abs(r["mean_memorization"] - r["gap_pool"]) < 1e-3     # balanced over examples: equal up to model sizes
    assert abs(r["gap_test"] - r["gap_pool"]) < 4 * np.hypot(r["gap_test_se"], r["gap_pool_se"]) + 0.01
    pop2 = train_population(ds, model="logreg", masks=make_masks(16, ds.n_train, p=0.7, seed=1), seed=1)
    r2 = memorization_gap(pop2)
    assert abs(r2["mean_memorization"] - r2["gap_pool"]) < 0.01                # uniform subsets: approximately


def test_attribute_inference_finds_a_memorized_attribute_on_members_only():
    from sklearn.neighbors import KNeighborsClassifier

    from memlens.attacks.attribute import attribute_inference

    rng = np.random.default_rng(0)
    n = 400
    X = rng.normal(size=(n, 4))
    X[:, 3] = rng.integers(0, 2, size=n)            # the sensitive binary attribute, independent of the label
    y = rng.integers(0, 3, size=n)                   # random labels: only memorization links them to anything
    members = np.arange(n) < n // 2
    # a 1-nearest-neighbour model memorizes its members exactly (the planted ground truth)
    knn = KNeighborsClassifier(n_neighbors=1).fit(X[members] * np.r_[1, 1, 1, 5.0], y[members])
    res = attribute_inference(lambda Z: knn.predict_proba(Z * np.r_[1, 1, 1, 5.0]), X, y, column=3)
    adv = res.advantage(members)
    # 0.85: when both values give the right label under 1-NN (1 in 3), the tie goes to the first value
    assert adv["members"]["accuracy"] > 0.8 and adv["members"]["advantage"] > 0.25
    assert abs(adv["nonmembers"]["advantage"]) < 0.15           # chance: the model knows nothing about them
    # a model that ignores the attribute gives no advantage to anyone
    flat = attribute_inference(lambda Z: np.full((len(Z), 3), 1 / 3), X, y, column=3)
    assert flat.advantage(members)["members"]["accuracy"] == flat.advantage(members)["members"]["baseline"]
    with pytest.raises(MemlensInputError, match="column must be <= 3"):
        attribute_inference(knn.predict_proba, X, y, column=4)


def test_label_only_membership_inference():
    from sklearn.neighbors import KNeighborsClassifier

    from memlens.attacks.label_only import calibrated_label_only, label_robustness
    from memlens.evaluation import auc_null_stderr, roc_auc

    rng = np.random.default_rng(0)
    n, d = 400, 5
    X = rng.normal(size=(n, d))
    y = rng.integers(0, 4, size=n)                       # random labels: only memorization makes a label robust
    members = rng.random(n) < 0.5
    target = KNeighborsClassifier(n_neighbors=1).fit(X[members], y[members])
    r = label_robustness(target.predict, X, y, sigma=0.3, n_queries=16, seed=1)
    assert roc_auc(r, members) > 0.85                    # members keep their label under noise, non-members do not
    # calibration with reference models trained on random halves
    K = 8
    ref_masks = rng.random((K, n)) < 0.5
    R = np.stack([label_robustness(KNeighborsClassifier(n_neighbors=1).fit(X[m], y[m]).predict, X, y, sigma=0.3,
                                   n_queries=16, seed=2 + k) for k, m in enumerate(ref_masks)])
    z = calibrated_label_only(r, R, ref_masks)
    ok = np.isfinite(z)
    assert roc_auc(z[ok], members[ok]) > 0.85
    # a model that ignores its input: robustness tells nothing (chance, 4 null standard errors)
    const = label_robustness(lambda Z: np.zeros(len(Z), int), X, y, n_queries=4, seed=0)
    assert abs(roc_auc(const, members) - 0.5) < 4 * auc_null_stderr(int(members.sum()), int((~members).sum()))
    with pytest.raises(MemlensInputError, match="reference_robustness"):
        calibrated_label_only(r, R[:, :10], ref_masks)


def test_required_memorization_inverts_the_cost_bounds():
    from memlens.tasks.long_tail import (
        cost_memorization_limited,
        cost_of_not_fitting,
        expected_singletons,
        required_memorization,
        tau,
        zipf_prior,
    )

    pri = zipf_prior(5000, exponent=1.0)
    n, m = 5000, 10
    for eps in (0.0, 0.01, 0.03):
        r = required_memorization(pri, n=n, n_classes=m, excess_error=eps)
        if 0 < r["min_gamma"] < 1 - 1 / m:     # plugging the required gamma back gives the excess error
            assert cost_memorization_limited(pri, n=n, n_classes=m, gamma=r["min_gamma"]) == pytest.approx(eps)
        # leaving unfit every singleton beyond the required ones costs exactly eps
        unfit = r["expected_singletons"] - r["min_fitted_singletons"]
        assert unfit * tau(pri, n=n, ell=1) * (1 - 1 / m) == pytest.approx(eps, abs=1e-12)
    zero = required_memorization(pri, n=n, n_classes=m, excess_error=0.0)
    assert zero["min_gamma"] == pytest.approx(1 - 1 / m)
    assert zero["min_fitted_singletons"] == pytest.approx(expected_singletons(pri, n=n))
    big = required_memorization(pri, n=n, n_classes=m, excess_error=cost_of_not_fitting(pri, n=n, n_classes=m))
    assert big["min_gamma"] == pytest.approx(0.0, abs=1e-9) and big["min_fitted_singletons"] == pytest.approx(0, abs=1e-6)
