"""Closed-form / approximate leave-one-out and exact subset refits, against brute-force refits."""
import warnings

import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, Ridge

from memlens import MemlensInputError, MemlensWarning, Population
from memlens.data import from_arrays, load_dataset
from memlens.measures import MemorizationResult, loo_memorization, memorization
from memlens.train.closed_form import (
    _Logistic,
    brute_force_loo,
    closed_form_loo,
    closed_form_population,
    kernel_ridge_loo,
    logistic_alo,
    ridge_loo,
    score_signals,
    subset_refit_scores,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def cancer():
    return load_dataset("breast-cancer")


def standardized(X, X_other=None):
    X = np.asarray(X, np.float64)
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1.0
    Z = (X - mean) / std
    return Z if X_other is None else (Z, (np.asarray(X_other, np.float64) - mean) / std)


def without(n, i):
    keep = np.ones(n, bool)
    keep[i] = False
    return keep


def centered(scores):
    """Logits are defined up to a per-row constant (multinomial intercepts)."""
    return scores - scores.mean(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------------ ridge
@pytest.mark.parametrize("standardize", [True, False])
def test_ridge_loo_matches_sklearn_refits(digits, standardize):
    X, y = digits.X_train.astype(np.float64), digits.y_train
    loo = ridge_loo(X, y, alpha=10.0, X_test=digits.X_test, y_test=digits.y_test, standardize=standardize)
    Z, Zt = standardized(X, digits.X_test) if standardize else (X, digits.X_test.astype(np.float64))
    Y = np.eye(10)[y]
    full = Ridge(alpha=10.0).fit(Z, Y)
    np.testing.assert_allclose(loo.full_scores, full.predict(Z), atol=1e-8, rtol=0)
    np.testing.assert_allclose(loo.test_scores, full.predict(Zt), atol=1e-8, rtol=0)
    idx = np.r_[np.argsort(-loo.leverage)[:5], np.arange(0, len(y), 131)]
    models = loo.loo_model_scores(idx, digits.X_test)
    for j, i in enumerate(idx):
        keep = without(len(y), i)
        ref = Ridge(alpha=10.0).fit(Z[keep], Y[keep])
        np.testing.assert_allclose(loo.loo_scores[i], ref.predict(Z[i:i + 1])[0], atol=1e-8, rtol=0)
        np.testing.assert_allclose(models[j], ref.predict(Zt), atol=1e-8, rtol=0)
    # the LOO model evaluated at its own left-out example is the LOO prediction
    np.testing.assert_allclose(loo.loo_model_scores(idx)[np.arange(idx.size), idx], loo.loo_scores[idx], atol=1e-12)


def test_ridge_loo_hand_computed_intercept_only_limit():
    # with an enormous penalty the weights vanish and the model is the class frequency (the unpenalized
    # intercept): the LOO prediction of class c at i is (count_c - [y_i = c]) / (n - 1).
    rng = np.random.default_rng(0)
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    X = rng.normal(size=(10, 3))
    loo = ridge_loo(X, y, alpha=1e13)
    counts = np.bincount(y, minlength=3).astype(float)
    expect = (counts[None, :] - np.eye(3)[y]) / 9.0
    np.testing.assert_allclose(loo.loo_scores, expect, atol=1e-9)
    np.testing.assert_allclose(loo.full_scores, np.tile(counts / 10, (10, 1)), atol=1e-9)
    np.testing.assert_allclose(loo.leverage, 0.1, atol=1e-9)  # h_ii = 1/n for the mean


def test_ridge_loo_loss_never_below_full_fit(digits):
    # PRESS residual e_i / (1 - h_ii) is never smaller than e_i, so squared-error memorization is >= 0
    loo = closed_form_loo(digits, model="ridge", alpha=1.0)
    mem = loo_memorization(loo, signal="loss")
    assert np.all(mem.scores >= -1e-12)
    assert np.all((loo.leverage > 0) & (loo.leverage < 1))


# ------------------------------------------------------------------------------------------------ kernel ridge
@pytest.mark.parametrize("kernel,alpha", [("rbf", 1.0), ("rbf", 0.05), ("linear", 1.0)])
def test_kernel_ridge_loo_matches_sklearn_refits(digits, kernel, alpha):
    X, y = digits.X_train[:500].astype(np.float64), digits.y_train[:500]
    Xt = digits.X_test[:60]
    loo = kernel_ridge_loo(X, y, alpha=alpha, kernel=kernel, X_test=Xt, y_test=digits.y_test[:60],
                           n_classes=10)
    Z, Zt = standardized(X, Xt)
    gamma = loo.params["gamma"]
    if kernel == "rbf":
        assert gamma == pytest.approx(1.0 / (Z.shape[1] * Z.var()))
    Y = np.eye(10)[y]
    full = KernelRidge(alpha=alpha, kernel=kernel, gamma=gamma).fit(Z, Y)
    np.testing.assert_allclose(loo.full_scores, full.predict(Z), atol=1e-8, rtol=0)
    np.testing.assert_allclose(loo.test_scores, full.predict(Zt), atol=1e-8, rtol=0)
    idx = np.r_[np.argsort(-loo.leverage)[:4], np.arange(3, 500, 61)]
    models = loo.loo_model_scores(idx, Xt)
    for j, i in enumerate(idx):
        keep = without(len(y), i)
        ref = KernelRidge(alpha=alpha, kernel=kernel, gamma=gamma).fit(Z[keep], Y[keep])
        np.testing.assert_allclose(loo.loo_scores[i], ref.predict(Z[i:i + 1])[0], atol=1e-8, rtol=0)
        np.testing.assert_allclose(models[j], ref.predict(Zt), atol=1e-8, rtol=0)
    np.testing.assert_allclose(loo.leverage, 1.0 - alpha * np.diag(np.linalg.inv(
        full._get_kernel(Z) + alpha * np.eye(len(y)))), atol=1e-10)


def test_linear_kernel_ridge_equals_ridge_without_intercept(digits):
    X, y = digits.X_train[:300], digits.y_train[:300]
    k = kernel_ridge_loo(X, y, alpha=3.0, kernel="linear", n_classes=10)
    ref = brute_force_loo(X, y, model="kernel-ridge", kernel="linear", alpha=3.0, index=[0, 7, 299], n_classes=10)
    np.testing.assert_allclose(k.loo_scores[[0, 7, 299]], ref, atol=1e-8, rtol=0)
    Z = standardized(X)
    primal = Ridge(alpha=3.0, fit_intercept=False).fit(Z, np.eye(10)[y])
    np.testing.assert_allclose(k.full_scores, primal.predict(Z), atol=1e-8, rtol=0)


# ------------------------------------------------------------------------------------------------ subset refits
def _route_masks(n, seed):
    rng = np.random.default_rng(seed)
    rows = [np.ones(n, bool)]                            # the full fit
    for k_out in (1, 5, 30):                             # few left out: Woodbury / block inverse
        r = np.ones(n, bool)
        r[rng.choice(n, k_out, replace=False)] = False
        rows.append(r)
    for p in (0.7, 0.5, 0.15):                           # rank-k downdate, and the direct solve on small subsets
        rows.append(rng.random(n) < p)
    return np.array(rows)


def test_ridge_subset_refits_match_sklearn(digits):
    X, y = digits.X_train[:600].astype(np.float64), digits.y_train[:600]
    Xt = digits.X_test[:100]
    masks = _route_masks(600, 1)
    scores = subset_refit_scores(X, y, masks, model="ridge", alpha=2.0, X_eval=Xt, n_classes=10)
    assert scores.shape == (masks.shape[0], 100, 10)
    Z, Zt = standardized(X, Xt)
    for k, row in enumerate(masks):
        ref = Ridge(alpha=2.0).fit(Z[row], np.eye(10)[y[row]])
        np.testing.assert_allclose(scores[k], ref.predict(Zt), atol=1e-8, rtol=0, err_msg=f"mask row {k}")


def test_kernel_ridge_subset_refits_match_sklearn(digits):
    X, y = digits.X_train[:400].astype(np.float64), digits.y_train[:400]
    masks = _route_masks(400, 2)
    scores = subset_refit_scores(X, y, masks, model="kernel-ridge", alpha=0.5, gamma=0.02, n_classes=10)
    Z = standardized(X)
    for k, row in enumerate(masks):
        ref = KernelRidge(alpha=0.5, kernel="rbf", gamma=0.02).fit(Z[row], np.eye(10)[y[row]])
        np.testing.assert_allclose(scores[k], ref.predict(Z), atol=1e-8, rtol=0, err_msg=f"mask row {k}")


def test_closed_form_population_is_a_population(digits):
    ds = digits.subset(train_index=np.arange(500), test_index=np.arange(80))
    masks = _route_masks(500, 3)
    seen = []
    pop = closed_form_population(ds, masks=masks, model="ridge", alpha=2.0, block_size=3, model_offset=10,
                                 progress=seen.append)
    assert isinstance(pop, Population)
    assert seen == [3, 6, 7]
    np.testing.assert_array_equal(pop.masks, masks)
    np.testing.assert_array_equal(pop.seeds, 10 + np.arange(7))
    routes = pop.provenance["routes"]
    assert routes["full"] == 1 and routes["woodbury"] >= 2 and routes["downdate"] >= 1 and routes["direct"] >= 1
    for split, X, yy in (("train", ds.X_train, ds.y_train), ("test", ds.X_test, ds.y_test)):
        sc = subset_refit_scores(ds.X_train, ds.y_train, masks, model="ridge", alpha=2.0, X_eval=X, n_classes=10)
        ref = score_signals(sc, yy, probabilistic=False)
        for name in ("logit", "loss", "correct", "margin"):
            np.testing.assert_allclose(pop.signal(split, name), ref[name], rtol=1e-6, atol=1e-6)
    with pytest.warns(MemlensWarning, match="no IN or no OUT"):  # 7 masks leave some examples never OUT
        mem = memorization(pop, signal="correct")  # the measures run on it
    assert mem.scores.shape == (500,)
    assert np.isnan(mem.scores).sum() == int(np.sum(masks.all(axis=0) | ~masks.any(axis=0)))
    # kernel ridge population: same masks, block size does not change the result
    a = closed_form_population(ds, masks=masks, model="kernel-ridge", alpha=0.5)
    b = closed_form_population(ds, masks=masks, model="kernel-ridge", alpha=0.5, block_size=2)
    np.testing.assert_array_equal(a.signal("test", "margin"), b.signal("test", "margin"))


# ------------------------------------------------------------------------------------------------ LOO population
def test_loo_to_population_holds_exact_loo_models(digits):
    ds = digits.subset(train_index=np.arange(400), test_index=np.arange(50))
    loo = closed_form_loo(ds, model="ridge", alpha=5.0)
    idx = np.array([3, 50, 399])
    pop = loo.to_population(index=idx)
    assert pop.n_models == 4 and pop.masks[0].all()
    for j, i in enumerate(idx):
        assert np.flatnonzero(~pop.masks[j + 1]).tolist() == [i]
    # every LOO model's signals on every example (train and test) equal those of an explicit refit
    for j, i in enumerate(idx):
        ref = brute_force_loo(ds.X_train, ds.y_train, model="ridge", alpha=5.0, index=[i], n_classes=10)
        assert pop.signal("train", "margin")[j + 1, i] == pytest.approx(
            score_signals(ref[None], ds.y_train[[i]], probabilistic=False)["margin"][0, 0], abs=1e-6)
        Z, Zt = standardized(ds.X_train, ds.X_test)
        keep = without(400, i)
        refit = Ridge(alpha=5.0).fit(Z[keep], np.eye(10)[ds.y_train[keep]])
        for split, E, yy in (("train", Z, ds.y_train), ("test", Zt, ds.y_test)):
            want = score_signals(refit.predict(E)[None], yy, probabilistic=False)
            np.testing.assert_allclose(pop.signal(split, "loss")[j + 1], want["loss"][0], rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(pop.signal(split, "correct")[j + 1], want["correct"][0])
    big = loo.to_population()
    assert big.n_models == 401
    with pytest.raises(MemlensInputError, match="max_bytes"):
        loo.to_population(max_bytes=1000)


# ------------------------------------------------------------------------------------------------ ALO for logistic
def _sk_logits(Z, y, C, Zeval):
    lr = LogisticRegression(C=C, tol=1e-10, max_iter=100_000).fit(Z, y)
    d = lr.decision_function(Zeval)
    return np.stack([np.zeros_like(d), d], axis=1) if d.ndim == 1 else d


def _alo_vs_refits(X, y, C, idx):
    alo = logistic_alo(X, y, C=C)
    assert alo.provenance["fit"]["converged"]
    Z = standardized(X)
    np.testing.assert_allclose(centered(alo.full_scores), centered(_sk_logits(Z, y, C, Z)), atol=2e-3)
    exact = brute_force_loo(X, y, model="logreg", C=C, index=idx)
    flags_alo = alo.loo_scores[idx].argmax(1) == y[idx]
    flags_exact = exact.argmax(1) == y[idx]
    err = np.abs(centered(alo.loo_scores[idx]) - centered(exact)).max()
    shift = np.abs(centered(alo.full_scores[idx]) - centered(exact)).max()
    return alo, np.mean(flags_alo == flags_exact), err, shift


def test_alo_binary_breast_cancer_all_n(cancer):
    X, y = cancer.X_train, cancer.y_train
    alo, agree, err, shift = _alo_vs_refits(X, y, 1.0, np.arange(len(y)))
    assert agree >= 0.99
    assert err < 0.3 * shift  # the Newton step removes most of the full-fit -> LOO change
    assert alo.params["formulation"] == "binary"


def test_alo_binary_digits_3_vs_8_all_n(digits):
    keep = np.isin(digits.y_train, (3, 8))
    X, y = digits.X_train[keep], (digits.y_train[keep] == 8).astype(np.int64)
    alo, agree, err, shift = _alo_vs_refits(X, y, 1.0, np.arange(len(y)))
    assert agree >= 0.99
    assert err < 0.3 * shift


def test_alo_multinomial_digits_subset(digits):
    X, y = digits.X_train[:600], digits.y_train[:600]  # 650 parameters: n must stay well above d for ALO
    alo = logistic_alo(X, y, C=1.0)
    assert alo.params["formulation"] == "multinomial"
    # every example whose LOO prediction may flip (top leverage or small margin) plus a spread of the others
    margin = alo.signals("full")["margin"]
    idx = np.unique(np.r_[np.argsort(-alo.leverage)[:15], np.argsort(margin)[:15], np.arange(0, 600, 40)])
    _, agree, err, shift = _alo_vs_refits(X, y, 1.0, idx)
    assert agree >= 0.99
    assert err < 0.3 * shift


def test_alo_loo_models_match_newton_step(cancer):
    # θ₋ᵢ from loo_model_scores is one Newton step on the leave-i-out objective (no Woodbury): check directly
    X, y = cancer.X_train, cancer.y_train
    alo = logistic_alo(X, y, C=0.5)
    Z = standardized(X)
    Xa = np.hstack([Z, np.ones((len(y), 1))])
    obj = _Logistic(Xa, y, 2, 0.5)
    theta = alo._state["theta"]
    for i in (0, int(np.argmax(alo.leverage))):
        w = np.ones(len(y))
        w[i] = 0.0
        _, g = obj.value_grad(theta, w)
        step = np.linalg.solve(obj.hessian(theta, w), g)
        want = Xa @ (theta - step)
        np.testing.assert_allclose(alo.loo_model_scores([i])[0][:, 1], want, atol=1e-8)


def test_alo_equals_exact_loo_under_heavy_regularization(cancer):
    # the ALO error is second order in the per-example curvature C s_i m_i, so relative to the LOO change it
    # vanishes as C -> 0 (Rad & Maleki 2020, Thm. 3) down to the floor of the unpenalized intercept-only model
    # (O(1/n)). Exact LOO: Newton refits to a scaled gradient of 1e-12, warm-started at the full fit.
    X, y = cancer.X_train, cancer.y_train
    Z = standardized(X)
    Xa = np.hstack([Z, np.ones((len(y), 1))])
    idx = np.arange(0, len(y), 7)
    rel, abs_err = [], []
    for C in (1.0, 1e-1, 1e-2, 1e-3):
        alo = logistic_alo(X, y, C=C)
        obj = _Logistic(Xa, y, 2, C)
        theta = alo._state["theta"]
        errs, moves = [], []
        for i in idx:
            w = np.ones(len(y))
            w[i] = 0.0
            th_i, info = obj.fit(w, theta, tol=1e-12)
            assert info["converged"]
            z_exact = Xa[i] @ th_i
            errs.append(abs(alo.loo_scores[i, 1] - z_exact))
            moves.append(abs(alo.full_scores[i, 1] - z_exact))
        rel.append(max(errs) / max(moves))
        abs_err.append(max(errs))
    assert all(b < a for a, b in zip(rel, rel[1:])), rel
    assert all(b < a for a, b in zip(abs_err, abs_err[1:])), abs_err
    assert rel[0] < 0.1 and rel[-1] < 1e-3, rel


def test_newton_fit_matches_sklearn_multinomial(digits):
    X, y = digits.X_train[:300], digits.y_train[:300]
    alo = logistic_alo(X, y, C=0.3)
    Z = standardized(X)
    lr = LogisticRegression(C=0.3, tol=1e-10, max_iter=100_000).fit(Z, y)
    np.testing.assert_allclose(alo._state["coef"][:-1].T, lr.coef_, atol=1e-4)
    np.testing.assert_allclose(centered(alo.full_scores), centered(lr.decision_function(Z)), atol=1e-4)


# ------------------------------------------------------------------------------------------------ memorization
def test_loo_memorization_is_correct_with_minus_correct_without(digits):
    loo = closed_form_loo(digits, model="ridge", alpha=10.0)
    mem = loo_memorization(loo)
    assert isinstance(mem, MemorizationResult)
    full_ok = loo.full_scores.argmax(1) == loo.y
    loo_ok = loo.loo_scores.argmax(1) == loo.y
    np.testing.assert_array_equal(mem.scores, full_ok.astype(float) - loo_ok.astype(float))
    assert set(np.unique(mem.scores)) <= {-1.0, 0.0, 1.0}
    assert mem.n_memorized(0.5) == int(np.sum(full_ok & ~loo_ok)) > 0
    np.testing.assert_array_equal(mem.stderr, 0.0)
    assert mem.exact and mem.model == "ridge"
    # Feldman's Lemma 4.2 at one sample: mean mem = LOO error - training error
    assert np.mean(mem.scores) == pytest.approx((1 - loo.loo_accuracy) - (1 - loo.train_accuracy))
    margin = loo_memorization(loo, signal="margin")
    np.testing.assert_allclose(margin.scores, margin.mean_in - margin.mean_out)
    # memorized examples lose margin when left out; the most memorized by margin include the flipped ones
    assert np.all(margin.scores[mem.scores == 1] > 0)
    # Feldman-Zhang on the LOO population (full fit + n LOO models) agrees on the flipped examples
    flipped = np.flatnonzero(mem.scores == 1)
    with pytest.warns(MemlensWarning, match="no IN or no OUT"):  # only the flipped examples have an OUT model
        fz = memorization(loo.to_population(index=flipped), signal="correct")
    assert np.all(fz.scores[flipped] > 0.5)


def test_loo_memorization_logistic_and_kernel(digits, cancer):
    alo = closed_form_loo(cancer, model="logreg", C=1.0)
    mem = loo_memorization(alo, signal="logit")
    assert not mem.exact and mem.signal == "logit"
    # leaving an example out lowers the logit of its own label (the Newton step moves against its gradient);
    # for examples fitted with |logit| > 30 the residual p - y is below float64 resolution and the change is 0
    assert np.all(mem.scores >= 0)
    assert np.all(mem.scores[np.abs(alo.full_scores[:, 1]) < 30] > 0)
    np.testing.assert_allclose(mem.mean_in, alo.signals("full")["logit"])
    loss = loo_memorization(alo, signal="loss")
    assert np.all(loss.scores >= 0)
    assert np.all(loss.scores[np.abs(alo.full_scores[:, 1]) < 10] > 0)  # (beyond, exp(-|z|) underflows the change)
    kr = closed_form_loo(digits, model="kernel-ridge", alpha=1.0)
    kmem = loo_memorization(kr)
    assert kmem.scores.shape == (digits.n_train,)
    assert kr.train_accuracy > kr.loo_accuracy > 0.9
    assert kmem.n_memorized(0.5) == int(round((kr.train_accuracy - kr.loo_accuracy) * digits.n_train)) + \
        int(np.sum(kmem.scores == -1))


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input(digits):
    X, y = digits.X_train[:50], digits.y_train[:50]
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(MemlensInputError, match="X contains 1 NaN"):
        ridge_loo(Xn, y)
    with pytest.raises(MemlensInputError, match="alpha must be > 0"):
        ridge_loo(X, y, alpha=0.0)
    with pytest.raises(MemlensInputError, match="C must be > 0"):
        logistic_alo(X, y, C=-1.0)
    with pytest.raises(MemlensInputError, match="kernel must be one of"):
        kernel_ridge_loo(X, y, kernel="poly")
    with pytest.raises(MemlensInputError, match="gamma must be > 0"):
        kernel_ridge_loo(X, y, gamma=0.0)
    with pytest.raises(MemlensInputError, match="one label per row"):
        ridge_loo(X, y[:-1])
    with pytest.raises(MemlensInputError, match="two distinct classes"):
        ridge_loo(X, np.zeros(50, dtype=int))
    with pytest.raises(MemlensInputError, match="every class"):
        logistic_alo(X, y, n_classes=12)
    with pytest.raises(MemlensInputError, match="model must be one of"):
        closed_form_loo(digits, model="svm")
    with pytest.raises(MemlensInputError, match="Dataset"):
        closed_form_loo(X, model="ridge")
    with pytest.raises(MemlensInputError, match="one column per training example"):
        subset_refit_scores(X, y, np.ones((3, 49), bool))
    with pytest.raises(MemlensInputError, match="select no training example"):
        subset_refit_scores(X, y, np.zeros((2, 50), bool))
    with pytest.raises(MemlensInputError, match="train_population"):
        subset_refit_scores(X, y, np.ones((2, 50), bool), model="logreg")
    with pytest.raises(MemlensInputError, match="X_eval must have 64 features"):
        subset_refit_scores(X, y, np.ones((2, 50), bool), X_eval=X[:, :5])
    loo = ridge_loo(X, y)
    with pytest.raises(MemlensInputError, match=r"indices in \[0, 50\)"):
        loo.loo_model_scores([50])
    with pytest.raises(MemlensInputError, match="64 features"):
        loo.predict(X[:, :10])
    with pytest.raises(MemlensInputError, match="signal must be one of"):
        loo_memorization(loo, signal="accuracy")
    with pytest.raises(MemlensInputError, match="LOOResult"):
        loo_memorization(np.zeros(3))


def test_interpolated_examples_are_nan_with_warning():
    # example 0 is the only one with a non-zero first feature: with a vanishing penalty the fit interpolates
    # it (leverage 1 - O(alpha)) and its leave-one-out prediction is undefined; the others are fine
    rng = np.random.default_rng(0)
    X = np.hstack([np.eye(20)[:, :1], rng.normal(size=(20, 2))])
    y = np.array([0, 1] * 10)
    with pytest.warns(MemlensWarning, match="1 training example"):
        loo = ridge_loo(X, y, alpha=1e-13, standardize=False)
    assert np.isnan(loo.loo_scores[0]).all()
    assert loo.defined.tolist() == [False] + [True] * 19
    with pytest.warns(MemlensWarning, match="undefined"):
        mem = loo_memorization(loo)
    assert np.isnan(mem.scores[0]) and np.isfinite(mem.scores[1:]).all()
    with pytest.warns(MemlensWarning, match="left out of the population"):
        pop = loo.to_population()
    assert pop.n_models == 20 and pop.masks[:, 0].all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = ridge_loo(X, y, alpha=1.0, standardize=False)  # a real penalty: defined, no warning
    assert ok.defined.all()
    ref = brute_force_loo(X, y, model="ridge", alpha=1.0, standardize=False, index=[0])
    np.testing.assert_allclose(ok.loo_scores[0], ref[0], atol=1e-8)


def test_from_arrays_dataset_roundtrip():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    ds = from_arrays(X, y, X[:10], y[:10], name="toy")
    for model in ("ridge", "kernel-ridge", "logreg"):
        res = closed_form_loo(ds, model=model)
        assert res.provenance["dataset"] == "toy" and res.test_scores.shape == (10, 2)
        pop = res.to_population()
        assert pop.n_models == 61 and set(pop.signals) == {"train", "test"}
        np.testing.assert_array_equal(pop.signal("train", "correct")[0], res.full_scores.argmax(1) == y)


@pytest.mark.slow
def test_alo_multinomial_digits_all_n(digits):
    # every digits training example (1,347 sklearn refits, several minutes)
    X, y = digits.X_train, digits.y_train
    _, agree, err, shift = _alo_vs_refits(X, y, 1.0, np.arange(len(y)))
    assert agree >= 0.99
