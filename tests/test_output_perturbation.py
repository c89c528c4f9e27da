"""Output perturbation: the exact Gaussian mechanism (against Opacus's GDP dual and the classical bound), the
sensitivity of L2 logistic regression (against brute-force leave-one-out refits), and the all-examples informed
reconstruction (against one example at a time); the informed-reconstruction reproduction."""
import json
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from memlens import MemlensInputError
from memlens.attacks.informed import reconstruct_logistic, reconstruct_logistic_all
from memlens.privacy.output_perturbation import (
    gaussian_mechanism_delta,
    gaussian_mechanism_sigma,
    logistic_l2_sensitivity,
)


@pytest.mark.parametrize("eps,sigma", [(0.5, 3.0), (1.0, 1.0), (4.0, 0.4), (20.0, 0.1), (50.0, 0.05)])
def test_delta_agrees_with_opacus_gdp_dual(eps, sigma):
    from opacus.accountants.analysis.gdp import delta_eps_mu

    want = float(delta_eps_mu(eps=eps, mu=2.0 / sigma))
    assert gaussian_mechanism_delta(epsilon=eps, sigma=sigma, sensitivity=2.0) == pytest.approx(want, rel=1e-8,
                                                                                                 abs=1e-300)


@pytest.mark.parametrize("eps", [0.1, 0.5, 0.9, 3.0, 1e3, 1e9])
def test_sigma_inverts_delta_and_beats_the_classical_bound(eps):
    sigma = gaussian_mechanism_sigma(epsilon=eps, delta=1e-5, sensitivity=3.0)
    assert gaussian_mechanism_delta(epsilon=eps, sigma=sigma, sensitivity=3.0) == pytest.approx(1e-5, rel=1e-6)
    assert gaussian_mechanism_delta(epsilon=eps, sigma=sigma * 0.99, sensitivity=3.0) > 1e-5   # the smallest σ
    if eps < 1:   # Dwork & Roth Thm A.1 (valid for ε < 1) is sufficient, never smaller than the exact calibration
        assert sigma <= 3.0 * math.sqrt(2 * math.log(1.25 / 1e-5)) / eps
    assert math.isfinite(sigma) and sigma > 0


def test_bad_mechanism_inputs():
    with pytest.raises(MemlensInputError, match="delta"):
        gaussian_mechanism_sigma(epsilon=1.0, delta=0.0, sensitivity=1.0)
    with pytest.raises(MemlensInputError, match="epsilon"):
        gaussian_mechanism_sigma(epsilon=-1.0, delta=1e-5, sensitivity=1.0)
    with pytest.raises(MemlensInputError, match="feature_norm"):
        logistic_l2_sensitivity(C=1.0, feature_norm=0.0)


def test_logistic_sensitivity_bounds_brute_force_leave_one_out():
    """‖θ(S) − θ(S \\ i)‖ ≤ √2 C R for every i, with every parameter penalized; and the bound is not vacuous."""
    rng = np.random.default_rng(0)
    n, d, C = 60, 4, 5.0
    X = rng.standard_normal((n, d))
    X /= np.maximum(1.0, np.linalg.norm(X, axis=1))[:, None]
    Xt = np.hstack([X, np.ones((n, 1))])
    y = rng.integers(0, 3, n)
    y[:3] = [0, 1, 2]

    def fit(rows):
        return LogisticRegression(C=C, fit_intercept=False, tol=1e-12, max_iter=20000).fit(Xt[rows], y[rows]).coef_

    full = fit(np.arange(n))
    moves = [np.linalg.norm(full - fit(np.delete(np.arange(n), i))) for i in range(3, n)]
    bound = logistic_l2_sensitivity(C=C, feature_norm=float(np.linalg.norm(Xt, axis=1).max()))
    assert max(moves) <= bound and max(moves) > 0.02 * bound


@pytest.mark.parametrize("n_classes,penalize", [(2, False), (3, False), (4, True)])
def test_reconstruct_all_equals_one_at_a_time(n_classes, penalize):
    rng = np.random.default_rng(n_classes)
    n, d, C = 80, 5, 2.0
    X = rng.standard_normal((n, d))
    y = rng.integers(0, n_classes, n)
    if penalize:
        m = LogisticRegression(C=C, fit_intercept=False, tol=1e-12, max_iter=20000).fit(np.hstack([X, np.ones((n, 1))]), y)
        W, b = m.coef_.T[:-1], m.coef_.T[-1]
    else:
        m = LogisticRegression(C=C, tol=1e-12, max_iter=20000).fit(X, y)
        W, b = m.coef_.T, m.intercept_
    W = W + 0.01 * rng.standard_normal(W.shape)       # a noisy release: not the exact minimizer
    xs, labels = reconstruct_logistic_all(W, b, X, y, C=C, penalize_intercept=penalize)
    for i in range(0, n, 7):
        rest = np.delete(np.arange(n), i)
        one = reconstruct_logistic(W, b, X[rest], y[rest], C=C, penalize_intercept=penalize)
        np.testing.assert_allclose(xs[i], one.x, rtol=1e-8, atol=1e-10)
        assert labels[i] == one.y
    ex, el = reconstruct_logistic_all(m.coef_.T[:-1] if penalize else m.coef_.T,
                                      m.coef_.T[-1] if penalize else m.intercept_, X, y, C=C,
                                      penalize_intercept=penalize)
    assert np.median(np.linalg.norm(ex - X, axis=1) / np.linalg.norm(X, axis=1)) < 1e-4 and np.all(el == y)


def test_informed_reconstruction_reproduction(tmp_path):
    from memlens.experiments import get_experiment

    res = get_experiment("informed-reconstruction").run(tmp_path, quick=True, seed=0)
    rows = res["by_epsilon"]
    assert rows[-1]["epsilon"] == "inf" and rows[-1]["median_error"] < 1e-3 and rows[-1]["label_accuracy"] == 1.0
    assert rows[0]["fraction_reconstructed"] == 0.0 and abs(rows[0]["spearman_error_vs_memorization"]) < 0.15
    errs = [r["median_error"] for r in rows]
    assert errs[-2] < errs[2]                                                 # less noise, smaller error
    mid = next(r for r in rows if 0.02 < r["fraction_reconstructed"] < 0.98)
    assert mid["spearman_error_vs_memorization"] < -0.2                      # memorized examples exposed first
    assert (tmp_path / "reconstruction_vs_epsilon.png").exists()
    assert json.loads((tmp_path / "results.json").read_text())["config"]["C"] == 10.0
    mlp = {r["setting"]: r for r in res["mlp"]["settings"]}
    known, unknown = mlp["SGD, training randomness known"], mlp["SGD, training randomness unknown"]
    assert known["identified"] > unknown["identified"] + 0.1 and unknown["identified"] <= 0.1
    assert known["median_error"] < res["mlp"]["prior_median_error"]
    assert (tmp_path / "reconstructor_mlp.png").exists()


def test_full_batch_noise_multiplier_is_exact_gdp_composition():
    from memlens.privacy.accountant import noise_multiplier_for
    from memlens.privacy.output_perturbation import full_batch_noise_multiplier

    for eps, T in ((1.0, 10), (8.0, 60), (100.0, 60)):
        z = full_batch_noise_multiplier(epsilon=eps, delta=1e-5, steps=T)
        # T Gaussian steps of sensitivity 1 and noise z = one of noise z / sqrt(T): δ(ε) is the target
        assert gaussian_mechanism_delta(epsilon=eps, sigma=z / math.sqrt(T), sensitivity=1.0) == pytest.approx(
            1e-5, rel=1e-6)
        if eps <= 8:   # Opacus's RDP accountant (an upper bound on ε) needs at least as much noise
            z_rdp = noise_multiplier_for(epsilon=eps, delta=1e-5, sample_rate=1.0, steps=T, accountant="rdp")
            assert z <= z_rdp * 1.01 and z >= 0.7 * z_rdp


def test_fit_reconstructor_recovers_a_planted_linear_map():
    from memlens.attacks.informed import fit_reconstructor, flatten_parameters

    rng = np.random.default_rng(0)
    S, d, p = 300, 6, 40
    Zs = rng.standard_normal((S, d))
    A = rng.standard_normal((d, p))
    P = 5.0 + Zs @ A + 1e-3 * rng.standard_normal((S, p))     # parameters move linearly with the example
    rec = fit_reconstructor(P[:250], Zs[:250], seed=1)
    pred = rec.predict(P[250:])
    assert np.median(np.linalg.norm(pred - Zs[250:], axis=1) / np.linalg.norm(Zs[250:], axis=1)) < 0.01
    assert rec.validation_error < 0.01
    noise = fit_reconstructor(rng.standard_normal((250, p)), Zs[:250], seed=1)   # parameters carry nothing
    err = np.linalg.norm(noise.predict(rng.standard_normal((50, p))) - Zs[250:], axis=1) / np.linalg.norm(Zs[250:],
                                                                                                          axis=1)
    assert np.median(err) > 0.9
    W = (np.ones((3, 2, 2)), np.zeros((3, 2, 1)))
    b = (np.ones((3, 2)), np.ones((3, 1)))
    assert flatten_parameters(W, b).shape == (3, 4 + 2 + 2 + 1)
    with pytest.raises(MemlensInputError, match="one row per shadow model"):
        fit_reconstructor(P[:10], Zs[:9])


def test_dp_sgd_init_seeds_share_the_initialization():
    from memlens.train import fit_dp_sgd

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4)).astype(np.float32)
    y = rng.integers(0, 2, 30)
    masks = np.ones((3, 30), dtype=bool)
    kw = dict(n_classes=2, hidden=(5,), steps=3, sample_rate=1.0, noise_multiplier=0.0, lr=0.1)
    same = fit_dp_sgd(X, y, masks, seeds=np.array([1, 2, 3]), init_seeds=np.array([7, 7, 7]), **kw)
    for W in same.weights:
        np.testing.assert_array_equal(W[0], W[1])
        np.testing.assert_array_equal(W[0], W[2])
    own = fit_dp_sgd(X, y, masks, seeds=np.array([1, 2, 3]), **kw)
    assert not np.array_equal(own.weights[0][0], own.weights[0][1])
    with pytest.raises(MemlensInputError, match="init_seeds"):
        fit_dp_sgd(X, y, masks, seeds=np.array([1, 2, 3]), init_seeds=np.array([1, 2]), **kw)
