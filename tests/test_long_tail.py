"""Feldman's long-tail model: the paper's numbers, independent evaluations of τ, simulations, learners."""
import json
import math

import mpmath
import numpy as np
import pytest

from memlens import MemlensInputError
from memlens.data import make_masks
from memlens.measures import memorization_from_arrays
from memlens.tasks import long_tail as lt

M = 10


# ------------------------------------------------------------------------------- the §2.3 table (exact)
@pytest.mark.parametrize("N, n, n_tau1, frac, opt", [
    (50_000, 50_000, 0.472, 0.170, 0.153),
    (5_000, 50_000, 1.789, 0.020, 0.018),
    (5_000, 10_000, 0.700, 0.126, 0.113),
    (25_000, 50_000, 0.649, 0.119, 0.107),
])
def test_paper_table_rows(N, n, n_tau1, frac, opt):
    pi = lt.zipf_prior(N)
    assert n * lt.tau(pi, n=n) == pytest.approx(n_tau1, abs=5e-4)
    assert lt.expected_singletons(pi, n=n) / n == pytest.approx(frac, abs=5e-4)
    # the table of docs/theory.md truncates (0.10752 is printed 0.107), so allow one unit in the last place
    assert lt.opt_error(pi, n=n, n_classes=M) == pytest.approx(opt, abs=1e-3)


def test_paper_costs():
    # N = n = 50,000: singleton mass 0.0804, cost of ignoring singletons 0.0804 * 0.9 = 0.072
    pi = lt.zipf_prior(50_000)
    assert lt.expected_mass(pi, n=50_000, ell=1) == pytest.approx(0.0804, abs=5e-4)
    assert lt.cost_of_not_fitting(pi, n=50_000, n_classes=M) == pytest.approx(0.072, abs=5e-4)
    # gamma = 0.5 rows: 0.015, 0.035, 0.031 (paper: ≈0.015, ≈0.035, ≈0.031)
    for N, n, cost in [(5_000, 50_000, 0.015), (5_000, 10_000, 0.035), (25_000, 50_000, 0.031)]:
        got = lt.cost_memorization_limited(lt.zipf_prior(N), n=n, n_classes=M, gamma=0.5)
        assert got == pytest.approx(cost, abs=6e-4)
        # label DP with epsilon = ln 6 is the same bound as gamma = 0.5 for 10 classes
        assert lt.cost_label_private(lt.zipf_prior(N), n=n, n_classes=M, epsilon=math.log(6)) == pytest.approx(got)
    # least frequent element: alpha_min * n ≈ 0.088
    assert lt.zipf_prior(50_000)[-1] * 50_000 == pytest.approx(0.088, abs=5e-4)


def test_disparate_costs_of_two_subgroups():
    # 5/6 P1 + 1/6 P2, n = 60,000: the small group pays more than twice as much
    f, g = lt.mixture_prior([lt.zipf_prior(5000), lt.zipf_prior(5000)], weights=[5 / 6, 1 / 6])
    gc = lt.group_costs(f, g, n=60_000, n_classes=M, gamma=0.5)
    np.testing.assert_allclose(gc.expected_samples, [50_000, 10_000])
    assert gc.ratio(1, 0) > 2.0
    # each group behaves like the matching single-group row of the table (Poisson limit)
    assert gc.cost_limited[0] == pytest.approx(0.0146, abs=5e-4)
    assert gc.cost_limited[1] == pytest.approx(0.0353, abs=5e-4)
    # 1/2 P1 + 1/2 P3 (P3 with five times as many subpopulations), n = 100,000: about twice as much
    f, g = lt.mixture_prior([lt.zipf_prior(5000), lt.zipf_prior(25_000)], weights=[0.5, 0.5])
    gc = lt.group_costs(f, g, n=100_000, n_classes=M, gamma=0.5)
    assert 1.9 < gc.ratio(1, 0) < 2.3
    # group rates average to the overall cost
    overall = lt.cost_memorization_limited(f, n=100_000, n_classes=M, gamma=0.5)
    assert float(np.dot(gc.weight, gc.cost_limited)) == pytest.approx(overall, rel=1e-9)


# --------------------------------------------------------------------------- τ: independent evaluations
def _tau_mpmath(alpha, n, ell):
    mpmath.mp.dps = 60
    a = [mpmath.mpf(float(x)) for x in alpha]
    num = mpmath.fsum(x ** (ell + 1) * (1 - x) ** (n - ell) for x in a)
    den = mpmath.fsum(x ** ell * (1 - x) ** (n - ell) for x in a)
    return float(num / den)


@pytest.mark.parametrize("N, n, ell, s", [(300, 1_000, 1, 1.0), (300, 1_000, 4, 1.0),
                                          (500, 1_000_000, 1, 0.7), (400, 200_000, 3, 1.5)])
def test_tau_matches_high_precision_direct_sum(N, n, ell, s):
    pi = lt.zipf_prior(N, exponent=s)
    assert lt.tau(pi, n=n, ell=ell) == pytest.approx(_tau_mpmath(pi, n, ell), rel=1e-10)


def test_tau_direct_float_small_n_and_vector_ell():
    pi = lt.zipf_prior(50)
    n = 40
    ells = np.arange(1, n + 1)
    a = pi
    direct = [np.sum(a ** (l + 1) * (1 - a) ** (n - l)) / np.sum(a ** l * (1 - a) ** (n - l)) for l in ells]
    np.testing.assert_allclose(lt.tau(pi, n=n, ell=ells), direct, rtol=1e-12)
    # the naive float formula underflows at n = 1e6 while the log-space one stays finite and exact
    big = lt.zipf_prior(1_000_000)
    t = lt.tau(big, n=1_000_000)
    assert np.isfinite(t) and 0.3 < t * 1e6 < 0.6
    assert np.sum(big[:10] * (1 - big[:10]) ** (1e6 - 1)) == 0.0


def test_tau_is_expected_frequency_of_points_seen_ell_times_monte_carlo():
    # Under the permuted model pi-bar is exactly uniform over the list, so tau_ell = E[sum D(x) 1{c_x=ell}] /
    # E[#{c_x=ell}]; estimate both by simulation (ratio estimator, delta-method standard error).
    pi = lt.zipf_prior(2000)
    n, R = 2000, 400
    rng = np.random.default_rng(7)
    for ell in (1, 2):
        mass, cnt = np.empty(R), np.empty(R)
        for r in range(R):
            D = rng.permutation(pi)
            c = rng.multinomial(n, D)
            mass[r], cnt[r] = D[c == ell].sum(), (c == ell).sum()
        est = mass.mean() / cnt.mean()
        resid = mass - est * cnt
        se = resid.std(ddof=1) / np.sqrt(R) / cnt.mean()
        assert abs(est - lt.tau(pi, n=n, ell=ell)) < 4 * se


def test_tau_under_exact_prior_model_matches_its_marginal():
    # D ~ D_pi^X (random normalization): tau_from_marginal of a Monte Carlo sample of pi-bar^N agrees with a
    # direct simulation of E[D(x) | x seen once], and differs from the uniform-list approximation by < 3%.
    pi = lt.zipf_prior(1000)
    n, R = 1000, 300
    marg = lt.prior_marginal_sample(pi, n_draws=400, seed=1)
    t_exact = lt.tau_from_marginal(marg, n=n)
    rng = np.random.default_rng(2)
    mass, cnt = np.empty(R), np.empty(R)
    for r in range(R):
        s = lt.sample_long_tail(pi, n=n, seed=rng)
        once = s.counts == 1
        mass[r], cnt[r] = s.distribution[once].sum(), once.sum()
    est = mass.mean() / cnt.mean()
    se = (mass - est * cnt).std(ddof=1) / np.sqrt(R) / cnt.mean()
    assert abs(est - t_exact) < 4 * se + 0.01 * t_exact  # + MC error of the marginal sample itself
    assert abs(t_exact / lt.tau(pi, n=n) - 1) < 0.03


def test_tail_lemma_lower_bound_holds():
    for N, n, s in [(50_000, 50_000, 1.0), (5_000, 10_000, 1.0), (20_000, 5_000, 0.5), (1_000, 50_000, 2.0)]:
        pi = lt.zipf_prior(N, exponent=s)
        assert lt.tau(pi, n=n) >= lt.tau_tail_lower_bound(pi, n=n)
    # no tail: frequencies all far above 1/n leave almost nothing near 1/n
    assert lt.tail_weight(np.ones(10), n=100_000) == 0.0


# ----------------------------------------------------------------------------- counts against simulation
def test_expected_counts_and_masses_match_simulation():
    pi = lt.zipf_prior(3000)
    n, R = 2500, 300
    rng = np.random.default_rng(3)
    single, unseen, twice, s_mass, u_mass = (np.empty(R) for _ in range(5))
    for r in range(R):
        s = lt.sample_long_tail(pi, n=n, model="permuted", seed=rng)
        c = s.counts
        single[r], twice[r], unseen[r] = (c == 1).sum(), (c == 2).sum(), (c == 0).sum()
        s_mass[r], u_mass[r] = s.distribution[c == 1].sum(), s.distribution[c == 0].sum()
    # multinomial occupancy indicators are negatively correlated: Var(count) <= sum p(1-p) <= E[count]
    for sim, ell in ((single, 1), (twice, 2), (unseen, 0)):
        expected = lt.expected_count(pi, n=n, ell=ell)
        assert abs(sim.mean() - expected) < 4 * np.sqrt(expected / R)
    for sim, expected in ((s_mass, lt.expected_mass(pi, n=n, ell=1)), (u_mass, lt.unseen_mass(pi, n=n))):
        assert abs(sim.mean() - expected) < 4 * sim.std(ddof=1) / np.sqrt(R)
    # the vector form agrees with the scalar form, and counts over all ell sum to N
    ells = np.arange(0, n + 1)
    assert lt.expected_count(pi, n=n, ell=ells).sum() == pytest.approx(3000, rel=1e-9)
    assert lt.expected_mass(pi, n=n, ell=ells).sum() == pytest.approx(1.0, rel=1e-9)


# ---------------------------------------------------------------------------------------- the learners
def _sample(seed=0, n=3000, N=3000, noise=0.0, m=M):
    return lt.sample_long_tail(lt.zipf_prior(N), n=n, n_classes=m, label_noise=noise, seed=seed)


def test_lookup_learner_memorization_exact():
    s = _sample()
    mem = lt.loo_memorization(lt.memorize_all, s)
    np.testing.assert_allclose(mem[s.is_singleton], 1 - 1 / M, atol=1e-12)
    np.testing.assert_allclose(mem[~s.is_singleton], 0.0, atol=1e-12)
    # ignoring singletons: memorization moves to the points seen exactly twice
    mem2 = lt.loo_memorization(lt.fit_seen_at_least, s, min_count=2)
    np.testing.assert_allclose(mem2[s.is_singleton], 0.0, atol=1e-12)
    np.testing.assert_allclose(mem2[s.example_counts == 2], 1 - 1 / M, atol=1e-12)


def test_feldman_zhang_estimator_recovers_lookup_memorization():
    s = _sample(seed=1, n=1500, N=1500)
    T, p = 400, 0.7
    masks = make_masks(T, s.n, p=p, seed=2)
    rng = np.random.default_rng(3)
    correct = np.empty((T, s.n))
    for k in range(T):
        sub = s.subset(masks[k])
        h = lt.sample_hypothesis(lt.memorize_all(sub.votes), seed=rng)
        correct[k] = h[s.ids] == s.labels
    res = memorization_from_arrays(masks, correct)
    single = s.is_singleton
    # each singleton: IN -> always correct, OUT -> correct w.p. 1/m; the mean over many singletons is tight
    z = (res.scores[single] - (1 - 1 / M)) / res.stderr[single]
    assert np.all(np.abs(res.scores[single] - (1 - 1 / M)) < 5 * res.stderr[single] + 1e-9)
    assert abs(z.mean()) < 4 / np.sqrt(single.sum())
    # points with c copies: subsampled memorization (1 - 1/m) * Pr[all other copies OUT | i OUT]
    n_in = int(round(p * s.n))
    for c in (2, 3):
        sel = s.example_counts == c
        prob_out = math.comb(s.n - c, n_in) / math.comb(s.n - 1, n_in)
        expected = (1 - 1 / M) * prob_out
        se = np.sqrt(np.sum(res.stderr[sel] ** 2)) / sel.sum()
        assert abs(res.scores[sel].mean() - expected) < 4 * se + 0.02


@pytest.mark.parametrize("m", [2, 3, 10])
def test_memorization_limited_learner_respects_gamma(m):
    for gamma in (0.02, 0.05, 0.1, 0.3, 0.5, 0.9):
        for noise in (0.0, 0.5, 1.0):
            s = _sample(seed=int(100 * gamma) + m, n=1500, N=300, noise=noise, m=m)
            mem = lt.loo_memorization(lt.memorization_limited, s, gamma=gamma)
            assert mem.max() <= gamma + 1e-12
            p = lt.memorization_limited(s.votes, gamma=gamma)
            np.testing.assert_allclose(p.sum(axis=1), 1.0)
            assert p.min() >= -1e-15
        w = lt.memorization_limited_weights(200, gamma=gamma, n_classes=m)
        assert np.all(np.diff(w) >= -1e-15) and w.max() <= 1.0
    # clean labels, m = 10: a singleton is fitted w.p. 1/m + gamma, a point seen l times w.p. min(1, 1/m + l gamma)
    s = _sample(seed=5)
    for gamma in (0.1, 0.25, 0.5):
        p = lt.memorization_limited(s.votes, gamma=gamma)
        fit = p[np.arange(s.domain_size), s.labeling]
        seen = s.counts > 0
        np.testing.assert_allclose(fit[seen], np.minimum(1, 1 / M + s.counts[seen] * gamma), atol=1e-12)
        mem = lt.loo_memorization(lt.memorization_limited, s, gamma=gamma)
        np.testing.assert_allclose(mem[s.is_singleton], gamma, atol=1e-12)


def test_randomized_response_is_epsilon_label_private():
    eps = math.log(6)
    keep = lt.randomized_response_keep_probability(eps, n_classes=M)
    assert keep == pytest.approx(6 / 15)
    # output ratios between any two inputs are at most e^eps: keep / other = e^eps exactly
    other = (1 - keep) / (M - 1)
    assert keep / other == pytest.approx(math.exp(eps))
    y = np.repeat(np.arange(M), 5000)
    out = lt.randomized_response(y, epsilon=eps, n_classes=M, seed=0)
    frac_kept = np.mean(out == y)
    assert abs(frac_kept - keep) < 4 * np.sqrt(keep * (1 - keep) / y.size)
    changed = out[(y == 3) & (out != 3)]
    counts = np.bincount(changed, minlength=M)
    assert counts[3] == 0 and np.delete(counts, 3).min() > 0.8 * changed.size / (M - 1)
    # the learner memorize_all-on-randomized-labels fits singletons with probability keep
    s = _sample(seed=4)
    rr = lt.randomized_response(s.labels, epsilon=eps, n_classes=M, seed=1)
    mem = lt.loo_memorization(lt.memorize_all, s, trained_labels=rr)
    k = s.is_singleton.sum()
    assert abs(mem[s.is_singleton].mean() - (keep - 1 / M)) < 4 * np.sqrt(keep * (1 - keep) / k)


def _excess(learner_proba, s, opt_err):
    return lt.population_error(learner_proba, s) - opt_err


def test_simulated_excess_error_meets_the_bounds():
    pi = lt.zipf_prior(4000)
    n, R, gamma, eps = 4000, 120, 0.3, math.log(4)
    rng = np.random.default_rng(11)
    ex = {k: np.empty(R) for k in ("seen2", "gamma", "rr")}
    rhs = {k: np.empty(R) for k in ex}
    for r in range(R):
        s = lt.sample_long_tail(pi, n=n, model="permuted", seed=rng)
        opt = lt.population_error(lt.memorize_all(s.votes), s)
        rr_labels = lt.randomized_response(s.labels, epsilon=eps, n_classes=M, seed=rng)
        probas = {"seen2": lt.fit_seen_at_least(s.votes, min_count=2),
                  "gamma": lt.memorization_limited(s.votes, gamma=gamma),
                  "rr": lt.memorize_all(s.with_labels(rr_labels).votes)}
        for k, p in probas.items():
            ex[k][r] = _excess(p, s, opt)
            errn = lt.unfit_counts(p, s)
            tv = np.zeros_like(errn)
            nz = np.flatnonzero(errn[1:] > 0) + 1
            if nz.size:
                tv[nz] = lt.tau(pi, n=n, ell=nz)
            rhs[k][r] = lt.theorem_bound(errn, tv)
    bounds = {"seen2": lt.cost_of_not_fitting(pi, n=n, n_classes=M),
              "gamma": lt.cost_memorization_limited(pi, n=n, n_classes=M, gamma=gamma),
              "rr": lt.cost_label_private(pi, n=n, n_classes=M, epsilon=eps)}
    for k in ex:
        se = ex[k].std(ddof=1) / np.sqrt(R)
        assert ex[k].mean() >= bounds[k] - 4 * se, k
        # Thm 2.3 with every ell is an equality in expectation for learners that act on counts alone
        d = ex[k] - rhs[k]
        assert abs(d.mean()) < 4 * d.std(ddof=1) / np.sqrt(R), k
    # ignoring singletons costs exactly the bound (the theorem is tight for it)
    assert abs(ex["seen2"].mean() - bounds["seen2"]) < 4 * ex["seen2"].std(ddof=1) / np.sqrt(R)
    # gamma = 0.3, m = 10: points seen twice are fitted w.p. 0.7 only, so the excess exceeds Cor. 4.6's bound
    assert ex["gamma"].mean() > bounds["gamma"] * 1.05


def test_label_noise_cost_and_bayes_learner():
    pi = lt.zipf_prior(3000)
    n, R, eta = 3000, 150, 0.4
    rng = np.random.default_rng(5)
    ex = np.empty(R)
    for r in range(R):
        s = lt.sample_long_tail(pi, n=n, label_noise=eta, model="permuted", seed=rng)
        ex[r] = lt.population_error(lt.fit_seen_at_least(s.votes), s) - lt.population_error(
            lt.memorize_all(s.votes), s)
    bound = lt.cost_of_not_fitting(pi, n=n, n_classes=M, label_noise=eta)
    assert bound == pytest.approx((1 - eta) * lt.cost_of_not_fitting(pi, n=n, n_classes=M))
    assert abs(ex.mean() - bound) < 4 * ex.std(ddof=1) / np.sqrt(R)


# ------------------------------------------------------------------------------ generators, validation
def test_sampling_ground_truth():
    s = _sample(seed=9, noise=0.3)
    assert s.counts.sum() == s.n and s.votes.sum() == s.n
    np.testing.assert_array_equal(s.votes.sum(axis=1), s.counts)
    np.testing.assert_array_equal(s.clean_labels, s.labeling[s.ids])
    flipped = np.mean(s.labels != s.clean_labels)
    expect = 0.3 * (1 - 1 / M)
    assert abs(flipped - expect) < 4 * np.sqrt(expect * (1 - expect) / s.n)
    assert s.distribution.sum() == pytest.approx(1.0)
    perm = lt.sample_distribution(lt.zipf_prior(100), seed=0, model="permuted")
    np.testing.assert_allclose(np.sort(perm)[::-1], lt.zipf_prior(100))
    h = lt.sample_hypothesis(np.tile([0.2, 0.8], (20_000, 1)), seed=0)
    assert abs(h.mean() - 0.8) < 4 * np.sqrt(0.16 / 20_000)


def test_long_tail_mixture_ground_truth():
    mix = lt.make_long_tail_mixture(n_train=400, n_subpopulations=150, n_features=64, n_test_per_subpopulation=3,
                                    seed=0)
    ds = mix.dataset
    assert ds.X_train.shape == (400, 64) and ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.X_test.shape == (450, 64)
    np.testing.assert_array_equal(ds.y_train, mix.subpopulation_labels[mix.train_subpopulation])
    np.testing.assert_array_equal(ds.y_test, mix.subpopulation_labels[mix.test_subpopulation])
    np.testing.assert_array_equal(np.bincount(mix.test_subpopulation), np.full(150, 3))
    assert mix.counts.sum() == 400 and np.array_equal(mix.train_counts, mix.counts[mix.train_subpopulation])
    # examples sit next to their own center: nearest-center classification recovers the subpopulation
    nearest = np.argmax(ds.X_test @ mix.centers.T, axis=1)
    assert np.mean(nearest == mix.test_subpopulation) > 0.99
    again = lt.make_long_tail_mixture(n_train=400, n_subpopulations=150, n_features=64,
                                      n_test_per_subpopulation=3, seed=0)
    assert again.dataset.fingerprint() == ds.fingerprint()


@pytest.mark.parametrize("call, match", [
    (lambda: lt.tau(lt.zipf_prior(10), n=5, ell=0), "ell"),
    (lambda: lt.tau(lt.zipf_prior(10), n=5, ell=6), "ell"),
    (lambda: lt.tau([1.0, -1.0], n=5), "frequencies"),
    (lambda: lt.tau([np.nan, 1.0], n=5), "frequencies"),
    (lambda: lt.tau(lt.zipf_prior(10), n=0), "n must be"),
    (lambda: lt.zipf_prior(0), "N must be"),
    (lambda: lt.cost_memorization_limited(lt.zipf_prior(10), n=5, n_classes=1, gamma=0.5), "n_classes"),
    (lambda: lt.cost_of_not_fitting(lt.zipf_prior(10), n=5, n_classes=10, max_count=2, label_noise=0.1),
     "label_noise"),
    (lambda: lt.sample_distribution(lt.zipf_prior(10), model="zipf"), "model"),
    (lambda: lt.memorize_all(np.ones((3, 2))), "votes"),
    (lambda: lt.mixture_prior([lt.zipf_prior(3)], weights=[1, 2]), "weights"),
])
def test_bad_input_names_the_parameter(call, match):
    with pytest.raises(MemlensInputError, match=match):
        call()


def test_tau_undefined_is_nan_with_warning():
    from memlens import MemlensWarning
    with pytest.warns(MemlensWarning):
        t = lt.tau_from_marginal([1.0], n=5, ell=2)  # a point of mass 1 is seen 5 times, never twice
    assert math.isnan(t)


# ------------------------------------------------------------------------------------- the reproduction
def test_quick_reproduction_writes_its_files(tmp_path):
    from memlens.experiments import feldman_long_tail as exp

    res = exp.run(tmp_path, quick=True, seed=0)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"results.json", "README.md"} <= files
    assert any(f.endswith(".png") for f in files)
    data = json.loads((tmp_path / "results.json").read_text())
    row = data["table"][0]
    assert row["n_tau1"] == pytest.approx(0.472, abs=5e-4) and row["paper"]["n_tau1"] == 0.47
    assert res["table"][0]["n_tau1"] == pytest.approx(row["n_tau1"])
