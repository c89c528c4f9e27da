"""Feldman–Kornowski–Lyu SDPI trade-offs: closed forms, exact sums, SDPI constants, learners, reproduction."""
import itertools
import json
import math

import numpy as np
import pytest
from scipy.special import expit, log_expit

from memlens import MemlensInputError, MemlensWarning
from memlens.tasks import sdpi as S
from memlens.tasks.sdpi import (
    LN2,
    BooleanClustering,
    GaussianClustering,
    SparseHypercube,
    accuracy_information,
    binary_entropy,
    expected_mixture_lower_bound,
    fkl_lower_bound,
    maximal_correlation_squared,
    mixture_lower_bound,
    mutual_information,
    sample_cluster_counts,
    sdpi_constant,
    sdpi_constants,
    tradeoff_curve,
)

# ------------------------------------------------------------------------------------------------ helpers

def _gauss_mi(signal_var, noise_var):
    """I(U; U + N) for independent Gaussians, nats."""
    return 0.5 * math.log1p(signal_var / noise_var)


def _cond_mi(joint):
    """I(M; X | θ) from a table joint[θ, x, m]."""
    total = 0.0
    for t in range(joint.shape[0]):
        pt = joint[t].sum()
        if pt > 0:
            total += pt * mutual_information(joint[t] / pt)
    return total


# ------------------------------------------------------------------------------------ Gaussian closed forms

def test_gaussian_sdpi_hand_values():
    g = GaussianClustering(d=3, r=0.5)  # r² = 1/4
    tau, om, rho = g.sdpi(4)
    # τ = 4·(1/4)/(1 + 3/4) = 4/7, ρ = 4·(1/16)/(7/4) = 1/7
    assert tau[0] == pytest.approx(4 / 7, rel=1e-14)
    assert om[0] == pytest.approx(3 / 7, rel=1e-14)
    assert rho[0] == pytest.approx(1 / 7, rel=1e-14)
    # (1 − τ)/ρ = (1 − r²)/(n r⁴) = (3/4)/(4/16) = 3
    assert sdpi_constants(g, 4).factor[0] == pytest.approx(3.0, rel=1e-14)
    # (d/2) ln(1 + ((1 − r²)/n)/q²) = 1.5 ln(1 + 0.1875/0.5) = 1.5 ln 1.375
    assert g.learner_memorization(4, noise=0.5)[0] == pytest.approx(1.5 * math.log(1.375), rel=1e-14)
    assert g.learner_memorization(4, noise=0.5)[0] == pytest.approx(0.4776806, abs=1e-7)


def test_gaussian_sdpi_constants_match_information_ratios():
    """τ_n and ρ_n are the suprema of I(M;θ)/I(M;x̄) and I(M;x̃)/I(M;x̄) over noisy views M = x̄ + N(0, v)."""
    r2, n = 0.3, 5
    g = GaussianClustering(d=1, r=math.sqrt(r2))
    tau, _, rho = (v[0] for v in g.sdpi(n))
    sigma2 = (1 - r2) / n
    for v in (1e-2, 1.0, 1e2, 1e6):
        i_theta = _gauss_mi(r2, sigma2 + v)          # M = r θ + noise(σ² + v)
        i_xbar = _gauss_mi(r2 + sigma2, v)           # M = x̄ + noise(v)
        i_test = -0.5 * math.log1p(-(r2 * r2) / ((r2 + sigma2 + v) * 1.0))  # corr² of x̃ (var 1) and M
        assert i_theta <= tau * i_xbar * (1 + 1e-12)
        assert i_test <= rho * i_xbar * (1 + 1e-12)
    # the ratios approach the constants as the view becomes uninformative
    v = 1e8
    assert _gauss_mi(r2, sigma2 + v) / _gauss_mi(r2 + sigma2, v) == pytest.approx(tau, rel=1e-6)
    assert -0.5 * math.log1p(-(r2 * r2) / (r2 + sigma2 + v)) / _gauss_mi(r2 + sigma2, v) == pytest.approx(rho, rel=1e-6)


def test_gaussian_generator_and_tau_by_monte_carlo():
    """Squared correlation of θ_j with the label-aligned mean, estimated from generated data, equals τ_n."""
    g = GaussianClustering(d=4000, r=math.sqrt(0.2))
    n = 3
    thetas, means, firsts = [], [], []
    for k in range(10):
        s = g.sample(n, seed=k)
        assert s.X.shape == (n, 4000) and s.X.dtype == np.float32 and set(np.unique(s.y)) <= {-1, 1}
        thetas.append(s.theta)
        means.append(s.aligned.mean(axis=0))
        firsts.append(s.aligned[0])
    th, xb, x1 = (np.concatenate(v).astype(np.float64) for v in (thetas, means, firsts))
    tau, _, rho = (v[0] for v in g.sdpi(n))
    n_pts = th.size
    corr_th = np.corrcoef(th, xb)[0, 1] ** 2
    assert abs(corr_th - tau) < 4 * 2 * math.sqrt(tau) * (1 - tau) / math.sqrt(n_pts)
    assert np.corrcoef(th, x1)[0, 1] == pytest.approx(g.r, abs=4 / math.sqrt(n_pts))
    assert np.var(x1) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize("d", [1, 2])
def test_gaussian_excess_memorization_matches_nested_monte_carlo(d):
    """(d/2) ln(1 + ((1−r²)/n)/q²) vs a Monte Carlo estimate of I(M; X_{1:n} | θ) from raw samples.

    E[log p(M | X) − log p(M | θ)], with p(M | X) the algorithm's Gaussian kernel and p(M | θ) estimated by
    averaging that kernel over K fresh datasets from the same θ (no closed form for the marginal is used).
    """
    rng = np.random.default_rng(123 + d)
    r, n, q2 = math.sqrt(0.5), 2, 0.3
    g = GaussianClustering(d=d, r=r)
    outer, inner = 2000, 2000
    vals = np.empty(outer)
    for i in range(outer):
        theta = rng.standard_normal(d)
        def draw_means(k):
            aligned = r * theta + math.sqrt(1 - r * r) * rng.standard_normal((k, n, d))
            y = rng.choice([-1.0, 1.0], size=(k, n, 1))
            x = y * aligned                  # raw examples x_i = y_i x̃_i
            return (y * x).mean(axis=1)      # the learner's mean (1/n) Σ y_i x_i
        xbar = draw_means(1)[0]
        m = xbar + math.sqrt(q2) * rng.standard_normal(d)
        log_kernel = lambda c: -0.5 * np.sum((m - c) ** 2, axis=-1) / q2  # noqa: E731 (constants cancel)
        fresh = draw_means(inner)
        lk = log_kernel(fresh)
        vals[i] = log_kernel(xbar) - (np.log(np.mean(np.exp(lk - lk.max()))) + lk.max())
    est, se = vals.mean(), vals.std(ddof=1) / math.sqrt(outer)
    exact = g.learner_memorization(n, noise=q2)[0]
    assert exact == pytest.approx(0.5 * d * math.log1p(0.25 / 0.3))
    # nested-MC bias is positive and O(1/inner); allow 4 standard errors plus 0.01 nats
    assert abs(est - exact) < 4 * se + 0.01, (est, se, exact)


def test_gaussian_accuracy_exact_vs_raw_data():
    """The F-distribution accuracy equals the accuracy of fit/predict on generated data."""
    g = GaussianClustering.calibrated(64, c=1.0)
    n = 3
    q2 = float(g.noise_for_accuracy(n, accuracy=0.72)[0])
    assert g.learner_accuracy(n, noise=q2)[0] == pytest.approx(0.72, abs=1e-10)
    rng = np.random.default_rng(0)
    per = []
    for k in range(600):
        s = g.sample(n, seed=rng)
        m = g.fit(s, noise=q2, seed=rng)
        test = g.sample(20, seed=rng, theta=s.theta)
        per.append(np.mean(g.predict(m, test.X, seed=rng) == test.y))
    per = np.array(per)
    assert abs(per.mean() - 0.72) < 4 * per.std(ddof=1) / math.sqrt(per.size)


def test_gaussian_noise_for_accuracy_infeasible_is_nan():
    g = GaussianClustering.calibrated(256, c=0.5)   # one example gives ≈ Φ(0.5) ≈ 0.69
    q = g.noise_for_accuracy(np.array([1, 64]), accuracy=0.75)
    assert np.isnan(q[0]) and q[1] > 0
    with pytest.warns(MemlensWarning, match="cannot reach accuracy"):
        tc = tradeoff_curve(g, [1, 64], accuracy=0.75, monte_carlo=False)
    assert np.isnan(tc.learner_nats[0]) and np.isfinite(tc.learner_nats[1])


# ------------------------------------------------------------------------------ SDPI constants, finite case

def _boolean_full_alphabet(n, r):
    """P(x̃_{1:n,j}) over {±1}^n and P(θ | x̃) columns (θ=−1, θ=+1), without reducing to the count."""
    a = (1 + r) / 2
    xs = np.array(list(itertools.product([-1, 1], repeat=n)))
    k = (xs == 1).sum(axis=1)
    p_plus, p_minus = a ** k * (1 - a) ** (n - k), (1 - a) ** k * a ** (n - k)
    pb = (p_plus + p_minus) / 2
    kern = np.stack([p_minus / 2 / pb, p_plus / 2 / pb], axis=1)
    return xs, pb, kern


def test_boolean_sdpi_hand_values_n1():
    """n = 1: the reverse channel of a uniform BSC(r) is a BSC(r): τ_1 = r²; test vs train is BSC(r²): ρ_1 = r⁴."""
    for r in (0.1, 0.3, 0.7):
        tau, om, rho = BooleanClustering(d=5, r=r).sdpi(1)
        assert tau[0] == pytest.approx(r * r, rel=1e-9)
        assert om[0] == pytest.approx(1 - r * r, rel=1e-9)
        assert rho[0] == pytest.approx(r ** 4, rel=1e-9)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_boolean_sdpi_reduction_to_count_and_brute_force(n):
    r = 0.4
    xs, pb, kern = _boolean_full_alphabet(n, r)
    tau_full = sdpi_constant(pb, kern)
    tau_count = BooleanClustering(d=3, r=r).sdpi(n)[0][0]
    assert tau_full == pytest.approx(tau_count, rel=1e-8)      # sufficiency of the count
    assert tau_full >= maximal_correlation_squared(pb[:, None] * kern) - 1e-12
    # no distribution Q on the full alphabet beats it (random search over the simplex)
    rng = np.random.default_rng(n)
    pa = pb @ kern
    for _ in range(3000):
        q = rng.dirichlet(np.full(pb.size, rng.choice([0.2, 1.0, 5.0])))
        qa = q @ kern
        ratio = np.sum(qa * np.log(qa / pa)) / np.sum(q * np.log(q / pb))
        assert ratio <= tau_full * (1 + 1e-9)


def test_sdpi_holds_for_random_algorithms_on_raw_data():
    """I(M; θ) ≤ τ_n I(M; X) and I(M; x̃_test) ≤ ρ_n I(M; X) for random channels M | X on {±1}^n."""
    n, r = 3, 0.5
    b = BooleanClustering(d=1, r=r)
    tau, _, rho = (v[0] for v in b.sdpi(n))
    xs, pb, kern = _boolean_full_alphabet(n, r)
    k_test = 0.5 + r * (kern[:, 1] - 0.5)                     # P(x̃_test = +1 | x)
    kern_test = np.stack([1 - k_test, k_test], axis=1)
    rng = np.random.default_rng(7)
    best_tau = best_rho = 0.0
    for _ in range(400):
        chan = rng.dirichlet(np.full(3, 0.3), size=pb.size)    # M ∈ {0,1,2}
        joint_xm = pb[:, None] * chan
        i_x = mutual_information(joint_xm)
        i_theta = mutual_information(kern.T @ joint_xm)
        i_test = mutual_information(kern_test.T @ joint_xm)
        assert i_theta <= tau * i_x * (1 + 1e-9)
        assert i_test <= rho * i_x * (1 + 1e-9)
        best_tau, best_rho = max(best_tau, i_theta / i_x), max(best_rho, i_test / i_x)
    assert best_tau > 0.5 * tau and best_rho > 0.5 * rho     # the constants are not loose by much


def test_one_minus_tau_precision_against_bounds_and_high_precision():
    """1 − τ_n stays precise when τ_n is within 1e-16 of 1.

    Checked against Dobrushin (1 − τ ≥ 1 − η_TV = 2σ(−nL)), against 1 − η_χ² = 4E[g(1 − g)] ≥ 1 − τ, and
    the tilted-ratio computation at one λ against an 80-digit mpmath evaluation.
    """
    r = 0.3
    b = BooleanClustering(d=10, r=r)
    big_l = math.log((1 + r) / (1 - r))
    ns = np.array([50, 200, 600, 1000])
    tau, om, _ = b.sdpi(ns)
    for n, o in zip(ns, om):
        log_ps, logit = b._count_model(int(n))
        g = expit(logit)
        upper = 4 * np.exp(log_ps) @ (g * expit(-logit))
        lower = 2 * expit(-n * big_l)
        assert lower <= o <= upper * (1 + 1e-12)
    assert om[-1] < 1e-20 and np.all(np.diff(np.log(om)) < 0) and np.all(tau <= 1.0)

    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60
    n, lam = 400, 3.0
    a = (1 + mp.mpf(r)) / 2
    pp = [mp.binomial(n, s) * a ** s * (1 - a) ** (n - s) for s in range(n + 1)]
    pm = [mp.binomial(n, s) * (1 - a) ** s * a ** (n - s) for s in range(n + 1)]
    pb = [(x + y) / 2 for x, y in zip(pp, pm)]
    gg = [x / (x + y) for x, y in zip(pp, pm)]
    w = [p * mp.e ** (lam * v) for p, v in zip(pb, gg)]
    q = [x / sum(w) for x in w]
    den = sum(x * mp.log(x / p) for x, p in zip(q, pb))
    num = 0
    for branch in (0, 1):
        h = [v if branch else 1 - v for v in gg]
        pa, qa = sum(p * v for p, v in zip(pb, h)), sum(x * v for x, v in zip(q, h))
        num += qa * sum((x * v / qa) * mp.log((x * v / qa) / (p * v / pa)) for x, p, v in zip(q, pb, h) if x * v > 0)
    ref = float(num / den)
    log_ps, logit = b._count_model(n)
    lk = np.stack([log_expit(-logit), log_expit(logit)], axis=1)
    log_pb, lk, log_pa, log_pbga = S._prepare_pair(log_ps, lk)
    g1, g0 = expit(logit), expit(-logit)
    lam_v = np.array([[lam]])
    _, num_f, den_f = S._tilt_terms(log_pb, log_pbga, log_pa, np.stack([lam_v * g1, -lam_v * g0], axis=-1),
                                    lam_v * (g1 - np.exp(log_pb) @ g1))
    assert num_f[0] / den_f[0] == pytest.approx(ref, rel=1e-10)
    assert ref < 1e-8


def test_general_optimizer_agrees_with_exact_tilt_and_bounds():
    rng = np.random.default_rng(3)
    for _ in range(4):
        pb = rng.dirichlet(np.ones(3))
        kern2 = rng.dirichlet(np.ones(2), size=3)
        exact = sdpi_constant(pb, kern2)
        with np.errstate(divide="ignore"):
            general, _ = S._sdpi_general(np.log(pb), np.log(kern2))
        assert general == pytest.approx(exact, rel=1e-6, abs=1e-9)
        kern3 = rng.dirichlet(np.ones(3), size=3)
        eta3 = sdpi_constant(pb, kern3)
        assert eta3 >= maximal_correlation_squared(pb[:, None] * kern3) - 1e-10
        pa = pb @ kern3
        q = rng.dirichlet(np.full(3, 0.5), size=20000)
        qa = q @ kern3
        ratio = np.sum(qa * np.log(qa / pa), axis=1) / np.sum(q * np.log(q / pb), axis=1)
        assert ratio.max() <= eta3 * (1 + 1e-7)
        assert ratio.max() >= 0.9 * eta3


def test_subcube_sdpi_hand_values_and_monotonicity():
    p = 0.2
    sc = SparseHypercube(d=100, p_fixed=p)
    tau, om, rho = sc.sdpi(np.array([1, 2, 4, 8, 16]))
    # n = 1: θ_j is x̃_j kept with probability p and erased (0) otherwise — an erasure channel: τ_1 = p;
    # a test coordinate equals x̃_j with probability (1 + p)/2 — a BSC with correlation p: ρ_1 = p²
    assert tau[0] == pytest.approx(p, rel=1e-6)
    assert rho[0] == pytest.approx(p * p, rel=1e-8)
    assert np.all(np.diff(tau) > 0) and np.all(np.diff(om) < 0) and np.all((rho > 0) & (rho < 1))
    # the closed form τ_n = p/(p + (1−p) 2^{1−n}) equals the numerical supremum over the 3-point simplex
    for i, n in enumerate([1, 2, 4, 8, 16]):
        log_pt, kern = sc._stat_model(n)
        keep = np.isfinite(log_pt)
        eta, one_minus = sdpi_constant(np.exp(log_pt[keep]), np.exp(kern[keep]), return_one_minus=True)
        assert tau[i] == pytest.approx(p / (p + (1 - p) * 2.0 ** (1 - n)), rel=1e-14)
        assert eta == pytest.approx(tau[i], rel=1e-8)
        assert one_minus == pytest.approx(om[i], rel=1e-6)
    # ρ_∞ is the vertex limit ln 2 / ln(2/p) (a fixed coordinate is revealed exactly by an agreeing column)
    assert sc.sdpi(60)[2][0] == pytest.approx(LN2 / math.log(2 / p), rel=1e-6)


# ------------------------------------------------------------------------- learners: exact sums vs brute force

def _enumerate_boolean(d, n, r, eta):
    """joint[θ, x̃-pattern, m] and the test accuracy by full enumeration (θ uniform, ties by a fair coin)."""
    a = (1 + r) / 2
    thetas = list(itertools.product([-1, 1], repeat=d))
    patterns = list(itertools.product([-1, 1], repeat=n * d))
    models = list(itertools.product([-1, 1], repeat=d))
    joint = np.zeros((len(thetas), len(patterns), len(models)))
    acc = 0.0
    for ti, th in enumerate(thetas):
        th = np.array(th)
        for pi, pat in enumerate(patterns):
            xt = np.array(pat).reshape(n, d)
            p_data = np.prod(np.where(xt == th, a, 1 - a)) / len(thetas)
            total = xt.sum(axis=0)
            for mi, m in enumerate(models):
                m = np.array(m)
                pm = 1.0
                for j in range(d):
                    p_maj_plus = 1.0 if total[j] > 0 else 0.0 if total[j] < 0 else 0.5
                    p_plus = p_maj_plus * (1 - eta) + (1 - p_maj_plus) * eta
                    pm *= p_plus if m[j] == 1 else 1 - p_plus
                joint[ti, pi, mi] += p_data * pm
                # accuracy of sign<x̃_test, m> over the test point (label-aligned, y cancels)
                for test in itertools.product([-1, 1], repeat=d):
                    test = np.array(test)
                    pt = np.prod(np.where(test == th, a, 1 - a))
                    sc = test @ m
                    acc += p_data * pm * pt * (1.0 if sc > 0 else 0.5 if sc == 0 else 0.0)
    return joint, acc


@pytest.mark.parametrize("n,eta", [(2, 0.0), (3, 0.15), (2, 0.3)])
def test_boolean_learner_exact_sums_vs_enumeration(n, eta):
    d, r = 2, 0.4
    b = BooleanClustering(d=d, r=r)
    joint, acc = _enumerate_boolean(d, n, r, eta)
    assert b.learner_memorization(n, noise=eta)[0] == pytest.approx(_cond_mi(joint), rel=1e-10, abs=1e-14)
    assert b.learner_accuracy(n, noise=eta)[0] == pytest.approx(acc, rel=1e-10)
    # I(M; x̃_test) by enumeration: x̃_test depends on θ only
    a = (1 + r) / 2
    p_tm = joint.sum(axis=1)                                  # [θ, m]
    thetas = np.array(list(itertools.product([-1, 1], repeat=d)))
    tests = np.array(list(itertools.product([-1, 1], repeat=d)))
    p_test_given_theta = np.prod(np.where(tests[None, :, :] == thetas[:, None, :], a, 1 - a), axis=2)
    joint_tm = p_test_given_theta.T @ p_tm                    # [test, m]
    assert b.learner_test_information(n, noise=eta)[0] == pytest.approx(mutual_information(joint_tm), rel=1e-10)


@pytest.mark.parametrize("n,eta", [(1, 0.1), (2, 0.0), (3, 0.2)])
def test_subcube_learner_exact_sums_vs_enumeration(n, eta):
    d, p = 2, 0.3
    sc = SparseHypercube(d=d, p_fixed=p)
    prior = {-1: p / 2, 0: 1 - p, 1: p / 2}
    thetas = list(itertools.product([-1, 0, 1], repeat=d))
    patterns = list(itertools.product([-1, 1], repeat=n * d))
    models = list(itertools.product([-1, 0, 1], repeat=d))
    joint = np.zeros((len(thetas), len(patterns), len(models)))
    acc = 0.0
    tests = [np.array(t) for t in itertools.product([-1, 1], repeat=d)]
    for ti, th in enumerate(thetas):
        th = np.array(th)
        p_th = np.prod([prior[v] for v in th])
        for pi, pat in enumerate(patterns):
            xt = np.array(pat).reshape(n, d)
            p_data = p_th * np.prod([1.0 if th[j] == 0 or np.all(xt[:, j] == th[j]) else 0.0 for j in range(d)]
                                    ) * 0.5 ** (n * int(np.sum(th == 0)))
            if p_data == 0:
                continue
            stat = np.where(np.all(xt > 0, axis=0), 1, np.where(np.all(xt < 0, axis=0), -1, 0))
            for mi, m in enumerate(models):
                m = np.array(m)
                pm = np.prod([(1.0 if m[j] == 0 else 0.0) if stat[j] == 0 else
                              ((1 - eta) if m[j] == stat[j] else eta if m[j] == -stat[j] else 0.0)
                              for j in range(d)])
                if pm == 0:
                    continue
                joint[ti, pi, mi] += p_data * pm
                for test in tests:
                    pt = np.prod([0.5 if th[j] == 0 else float(test[j] == th[j]) for j in range(d)])
                    s_ = test @ m
                    acc += p_data * pm * pt * (1.0 if s_ > 0 else 0.5 if s_ == 0 else 0.0)
    assert sc.learner_memorization(n, noise=eta)[0] == pytest.approx(_cond_mi(joint), rel=1e-10, abs=1e-14)
    assert sc.learner_accuracy(n, noise=eta)[0] == pytest.approx(acc, rel=1e-10)


def test_boolean_memorization_precise_when_majority_is_almost_sure():
    """At large n the excess memorization is ~ d p_err (1−2η) ln((1−η)/η); it must not round to 0."""
    b = BooleanClustering.calibrated(256, c=1.0)
    n, eta = 4000, 0.3
    p_err, p_tie = b._majority_error(np.array([n]))
    assert 0 < p_err[0] < 1e-30
    approx = b.d * p_err[0] * (1 - 2 * eta) * math.log((1 - eta) / eta)
    assert b.learner_memorization(n, noise=eta)[0] == pytest.approx(approx, rel=1e-6)


@pytest.mark.parametrize("problem", [GaussianClustering.calibrated(256, c=1.0),
                                     BooleanClustering.calibrated(256, c=1.0),
                                     SparseHypercube.calibrated(256, c=1.0)], ids=lambda p: p.name)
def test_learners_reach_the_stated_accuracy_and_bound_is_below(problem):
    ns = np.array([1, 2, 5, 12, 40]) if problem.name == "sparse_hypercube" else np.array([1, 3, 16, 128, 256])
    tc = tradeoff_curve(problem, ns, accuracy=0.75, n_trials=300, n_test=8, seed=5)
    assert np.all(tc.feasible)
    assert np.allclose(tc.accuracy_exact, 0.75, atol=1e-8)
    z = (tc.accuracy_mc - 0.75) / tc.accuracy_mc_stderr
    assert np.all(np.abs(z) < 4.5), z
    assert np.all(tc.lower_bound_nats <= tc.bound_with_learner_info_nats * (1 + 1e-9))
    assert np.all(tc.bound_with_learner_info_nats <= tc.learner_nats * (1 + 1e-9))
    assert np.all(tc.learner_nats <= tc.plain_nats + 1e-9)
    assert np.all(tc.plain_nats <= tc.store_all_nats)


@pytest.mark.parametrize("problem", [BooleanClustering.calibrated(64, c=1.5), SparseHypercube.calibrated(64, c=1.5)],
                         ids=lambda p: p.name)
def test_fit_on_raw_data_matches_exact_accuracy(problem):
    n = 3
    eta = float(problem.noise_for_accuracy(n, accuracy=0.7)[0])
    rng = np.random.default_rng(11)
    per = []
    for _ in range(500):
        s = problem.sample(n, seed=rng)
        assert s.X.shape == (n, 64)
        if problem.name == "sparse_hypercube":   # ground truth: fixed coordinates agree across the sample
            fixed = s.theta != 0
            assert np.all(s.aligned[:, fixed] == s.theta[fixed])
        m = problem.fit(s, noise=eta, seed=rng)
        test = problem.sample(16, seed=rng, theta=s.theta)
        per.append(np.mean(problem.predict(m, test.X, seed=rng) == test.y))
    per = np.array(per)
    assert abs(per.mean() - 0.7) < 4 * per.std(ddof=1) / math.sqrt(per.size)


def test_slopes_gaussian_minus_one_and_boolean_collapse():
    g = GaussianClustering.calibrated(1024, c=1.0)
    tc = tradeoff_curve(g, 2 ** np.arange(11), accuracy=0.75, monte_carlo=False)
    assert tc.slope("lower_bound") == pytest.approx(-1.0, abs=1e-9)
    assert tc.slope("learner", n_min=4) == pytest.approx(-1.0, abs=0.03)
    b = BooleanClustering.calibrated(256, c=1.0)
    ns = np.array([1, 2, 4, 64, 128, 256])
    lb = b.lower_bound(ns, accuracy=0.75)
    small_law = (1 - b.r ** 2) / (ns * b.r ** 4) * accuracy_information(0.75)
    assert lb[:3] == pytest.approx(small_law[:3], rel=0.02)       # d/n regime
    assert lb[-1] / small_law[-1] < 5e-3                           # collapse once n r² ≫ 1
    assert np.log(lb[-1] / lb[-2]) < 1.5 * np.log(lb[-2] / lb[-3])  # accelerating decay: exponential, not power


# ----------------------------------------------------------------------------------- reduction and mixtures

def test_fkl_bound_formula_and_accuracy_information():
    assert accuracy_information(0.5) == 0.0 and accuracy_information(0.4) == 0.0
    assert accuracy_information(1.0 - 1e-15) == pytest.approx(LN2, rel=1e-9)
    assert accuracy_information(0.75) == pytest.approx(LN2 + 0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert binary_entropy(0.5) == pytest.approx(LN2)
    assert fkl_lower_bound(2.0, tau=0.6, rho=0.1) == pytest.approx(8.0)
    # neg_n = 8δ((1−τ)/ρ) log(|M|/δ) + 8ε log(|M|/ε)
    val = fkl_lower_bound(2.0, tau=0.6, rho=0.1, delta=0.01, eps=0.02, log_range=5.0)
    assert val == pytest.approx(8.0 - 8 * 0.01 * 4.0 * (5.0 - math.log(0.01)) - 8 * 0.02 * (5.0 - math.log(0.02)))
    with pytest.raises(MemlensInputError, match="log_range"):
        fkl_lower_bound(1.0, tau=0.5, rho=0.1, delta=0.1)


def test_mixture_sums_per_cluster_bounds_and_expectation():
    g = GaussianClustering.calibrated(64, c=1.0)
    counts = np.array([0, 1, 1, 3, 10])
    mb = mixture_lower_bound(g, counts, accuracy=0.75)
    f = g.lower_bound(np.array([1, 3, 10]), accuracy=0.75)
    assert mb.per_cluster_nats[0] == 0.0
    assert mb.total_nats == pytest.approx(2 * f[0] + f[1] + f[2])
    assert mb.n_singletons == 2 and mb.singleton_nats == pytest.approx(2 * f[0])
    assert mb.total_nats <= mb.learner_total_nats
    freq = 1.0 / np.arange(1, 31)
    exp = expected_mixture_lower_bound(g, freq, 60, accuracy=0.75)
    sampled = [mixture_lower_bound(g, sample_cluster_counts(freq, 60, seed=s), accuracy=0.75).total_nats
               for s in range(400)]
    assert exp["lower_bound_nats"] == pytest.approx(np.mean(sampled), abs=4 * np.std(sampled) / 20)
    assert exp["lower_bound_nats"] <= exp["learner_nats"]


def test_input_validation():
    with pytest.raises(MemlensInputError, match="r must be"):
        GaussianClustering(d=10, r=1.5)
    with pytest.raises(MemlensInputError, match="accuracy"):
        GaussianClustering(d=10, r=0.5).lower_bound(3, accuracy=0.5)
    with pytest.raises(MemlensInputError, match="n must be"):
        BooleanClustering(d=10, r=0.5).sdpi(0)
    with pytest.raises(MemlensInputError, match="p_fixed"):
        SparseHypercube(d=10, p_fixed=0.0)
    with pytest.raises(MemlensInputError, match="noise"):
        BooleanClustering(d=10, r=0.5).learner_accuracy_mc(3, noise=0.7)
    with pytest.raises(MemlensInputError, match="problem"):
        tradeoff_curve("gaussian", [1], accuracy=0.7)
    with pytest.raises(MemlensInputError, match="kernel"):
        sdpi_constant([0.5, 0.5], [[0.5, 0.5]])


# ------------------------------------------------------------------------------------------- reproduction

def test_quick_reproduction_writes_its_files(tmp_path):
    from memlens.experiments import fkl_tradeoffs, get_experiment

    assert get_experiment("fkl-tradeoffs") is fkl_tradeoffs
    res = fkl_tradeoffs.run(tmp_path, quick=True, seed=0)
    for name in ("results.json", "README.md", "gaussian_tradeoff.png", "boolean_tradeoff.png",
                 "sparse_hypercube_tradeoff.png", "mixture_of_clusters.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["all_bounds_below_learners"] is True
    for d, v in saved["gaussian"].items():
        assert v["slope_lower_bound"] == pytest.approx(-1.0, abs=1e-6)
        assert v["slope_learner_n_ge_4"] == pytest.approx(-1.0, abs=0.05)
    for d, v in saved["boolean"].items():
        assert v["slope_small_n_lower_bound"] == pytest.approx(-1.0, abs=0.1)
        assert v["decay_rate_per_unit_n_r2_lower_bound"] > 0.2
    assert res["mixture"]["bound_le_learner"]
    assert "fkl-tradeoffs" in (tmp_path / "README.md").read_text()
