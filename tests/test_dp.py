"""DP-SGD populations: the vectorized clipped step against a per-example loop and Opacus, Opacus accounting,
memorization and audited ε of DP populations."""
import warnings

import numpy as np
import pytest
import torch

from memlens import MemlensInputError, MemlensWarning
from memlens.attacks import attack_all_targets
from memlens.data import load_dataset, make_masks
from memlens.evaluation import empirical_epsilon, one_run_audit
from memlens.measures import memorization
from memlens.train import (
    DPConfig,
    accountant_epsilon,
    clipped_grad_sum,
    dp_plan,
    fit_dp_sgd,
    noise_multiplier_for,
    train_population,
)
from memlens.train.torch_mlp import init_mlp


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _stacked(K, sizes, seed=0):
    rng = np.random.default_rng(seed)
    inits = [init_mlp(rng, sizes) for _ in range(K)]
    Ws = [torch.tensor(np.stack([w[j] for w, _ in inits])) for j in range(len(sizes) - 1)]
    bs = [torch.tensor(np.stack([b[j] for _, b in inits])) for j in range(len(sizes) - 1)]
    return Ws, bs


def _torch_model(Ws, bs, k):
    """Model ``k`` of stacked parameters as a torch.nn.Sequential (Linear weight = W.T)."""
    layers = []
    for j, (W, b) in enumerate(zip(Ws, bs)):
        lin = torch.nn.Linear(W.shape[1], W.shape[2])
        with torch.no_grad():
            lin.weight.copy_(W[k].T)
            lin.bias.copy_(b[k])
        layers.append(lin)
        if j < len(Ws) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _loop_clipped_sum(model, X, y, C):
    """Per-example autograd gradients, one example at a time, clipped as Opacus does, summed."""
    total = [torch.zeros_like(p) for p in model.parameters()]
    for i in range(X.shape[0]):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(X[i:i + 1]), y[i:i + 1], reduction="sum").backward()
        g = [p.grad.detach().clone() for p in model.parameters()]
        norm = torch.sqrt(sum((t * t).sum() for t in g))
        f = min(1.0, C / (float(norm) + 1e-6))
        total = [a + f * t for a, t in zip(total, g)]
    return total


def _ours_as_torch(grads, k, n_layers):
    """Our clipped sums for model k in torch.nn.Sequential's parameter order (weight.T, bias per layer)."""
    out = []
    for j in range(n_layers):
        out += [grads[j][k].T, grads[n_layers + j][k]]
    return out


# ------------------------------------------------------------------------------------ the clipped step
@pytest.mark.parametrize("hidden", [(), (7,), (6, 5)])
def test_clipped_sum_equals_per_example_loop_and_opacus(hidden):
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    warnings.filterwarnings("ignore", message="Full backward hook", category=UserWarning)
    K, B, d, n_classes = 3, 9, 4, 3
    sizes = [d, *hidden, n_classes]
    Ws, bs = _stacked(K, sizes)
    g = torch.Generator().manual_seed(1)
    X = 3.0 * torch.randn(K, B, d, generator=g)
    y = torch.randint(0, n_classes, (K, B), generator=g)
    valid = torch.ones(K, B, dtype=torch.bool)
    valid[1, 6:] = False                                     # model 1 has a padded batch of 6
    _, norms, _ = clipped_grad_sum(Ws, bs, X, y, valid, max_grad_norm=1e9)
    C = float(norms[valid].median())                         # about half of the examples get clipped
    grads, norms, loss = clipped_grad_sum(Ws, bs, X, y, valid, max_grad_norm=C)
    assert (norms[valid] > C).any() and (norms[valid] < C).any()   # some examples are clipped, some not
    L = len(sizes) - 1
    for k in range(K):
        nb = int(valid[k].sum())
        Xk, yk = X[k, :nb], y[k, :nb]
        ours = _ours_as_torch(grads, k, L)
        ref = _loop_clipped_sum(_torch_model(Ws, bs, k), Xk, yk, C)
        for a, b in zip(ours, ref):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
        # Opacus: GradSampleModule per-sample gradients, DPOptimizer clipping with noise off
        gsm = GradSampleModule(_torch_model(Ws, bs, k), loss_reduction="sum")
        opt = DPOptimizer(torch.optim.SGD(gsm.parameters(), lr=1.0), noise_multiplier=0.0, max_grad_norm=C,
                          expected_batch_size=nb, loss_reduction="sum")
        opt.zero_grad()
        torch.nn.functional.cross_entropy(gsm(Xk), yk, reduction="sum").backward()
        opt.pre_step()                                       # clip, sum, add (zero) noise; no division ("sum")
        for a, p in zip(ours, gsm.parameters()):
            np.testing.assert_allclose(a.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-5)
        ce = torch.nn.functional.cross_entropy(_torch_model(Ws, bs, k)(Xk), yk, reduction="sum")
        assert float(loss[k]) == pytest.approx(float(ce.detach()), rel=1e-5)


def test_fit_without_noise_and_subsampling_is_plain_clipped_sgd():
    """sigma = 0, q = 1: fit_dp_sgd equals clipped SGD with momentum and weight decay, one model at a time."""
    rng = np.random.default_rng(3)
    n, d, n_classes, C = 30, 5, 3, 0.5
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = rng.integers(0, n_classes, n)
    masks = rng.random((3, n)) < 0.6
    seeds = np.array([11, 12, 13])
    lr, mom, wd, steps, norm = 0.3, 0.8, 0.01, 6, 10.0
    fit = fit_dp_sgd(X, y, masks, seeds=seeds, n_classes=n_classes, hidden=(4,), steps=steps, sample_rate=1.0,
                     noise_multiplier=0.0, max_grad_norm=C, lr=lr, momentum=mom, weight_decay=wd, normalizer=norm)
    for k in range(3):
        Wk, bk = init_mlp(np.random.default_rng(seeds[k]), [d, 4, n_classes])
        model = _torch_model([torch.tensor(w)[None] for w in Wk], [torch.tensor(b)[None] for b in bk], 0)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=mom, weight_decay=wd)
        Xk, yk = torch.tensor(X[masks[k]]), torch.tensor(y[masks[k]])
        for _ in range(steps):
            total = _loop_clipped_sum(model, Xk, yk, C)
            for p, t in zip(model.parameters(), total):
                p.grad = t / norm
            opt.step()
        ref = [p.detach().numpy() for p in model.parameters()]
        np.testing.assert_allclose(fit.weights[0][k], ref[0].T, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fit.biases[0][k], ref[1], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fit.weights[1][k], ref[2].T, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fit.biases[1][k], ref[3], rtol=1e-4, atol=1e-5)


def test_noise_is_gaussian_with_scale_sigma_times_clip():
    """One step from zero weights: (noisy - noiseless) / (lr sigma C / normalizer) is standard normal."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 20)).astype(np.float32)
    y = rng.integers(0, 10, 40)
    masks = np.ones((8, 40), dtype=bool)
    kw = dict(seeds=np.arange(8), n_classes=10, steps=1, sample_rate=1.0, max_grad_norm=0.5, lr=0.1,
              normalizer=4.0, init="zeros")
    a = fit_dp_sgd(X, y, masks, noise_multiplier=0.0, **kw)
    b = fit_dp_sgd(X, y, masks, noise_multiplier=3.0, **kw)
    z = (b.weights[0] - a.weights[0]) / -(0.1 * 3.0 * 0.5 / 4.0)            # 8 * 200 draws
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.std() - 1) < 4 / np.sqrt(2 * z.size)
    assert not np.allclose(z[0], z[1])                                      # each model its own noise


def test_out_examples_never_reach_a_model():
    """Poisson sampling draws only among IN examples: changing an OUT example leaves the model unchanged."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 6)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    masks = rng.random((4, 50)) < 0.5
    kw = dict(seeds=np.arange(4), n_classes=3, hidden=(5,), steps=20, sample_rate=0.3, noise_multiplier=1.0,
              lr=0.2, momentum=0.5)
    a = fit_dp_sgd(X, y, masks, **kw)
    i = int(np.flatnonzero(~masks[2])[0])
    X2, y2 = X.copy(), y.copy()
    X2[i] += 100.0
    y2[i] = (y[i] + 1) % 3
    b = fit_dp_sgd(X2, y2, masks, **kw)
    np.testing.assert_array_equal(a.weights[0][2], b.weights[0][2])
    in_models = np.flatnonzero(masks[:, i])
    assert not np.array_equal(a.weights[0][in_models[0]], b.weights[0][in_models[0]])


# ------------------------------------------------------------------------------------ accounting
@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_accountant_epsilon_equals_opacus_stepwise(accountant):
    from opacus.accountants import PRVAccountant, RDPAccountant

    sigma, q, steps, delta = 1.1, 0.02, 300, 1e-5
    acc = {"rdp": RDPAccountant, "prv": PRVAccountant}[accountant]()
    for _ in range(steps):
        acc.step(noise_multiplier=sigma, sample_rate=q)
    ours = accountant_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant=accountant)
    assert ours == pytest.approx(acc.get_epsilon(delta=delta), rel=1e-9)
    assert 0.5 < ours < 5                                     # a non-trivial budget
    assert accountant_epsilon(noise_multiplier=0.0, sample_rate=q, steps=steps, delta=delta) == np.inf


def test_rdp_epsilon_matches_opacus_analysis_functions():
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
    from opacus.accountants.rdp import RDPAccountant

    alphas = RDPAccountant.DEFAULT_ALPHAS
    rdp = compute_rdp(q=0.05, noise_multiplier=2.0, steps=500, orders=alphas)
    eps, _ = get_privacy_spent(orders=alphas, rdp=rdp, delta=1e-6)
    assert accountant_epsilon(noise_multiplier=2.0, sample_rate=0.05, steps=500, delta=1e-6) == pytest.approx(eps)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
@pytest.mark.parametrize("epsilon", [1.0, 8.0])
def test_calibrated_noise_meets_the_target_tightly(accountant, epsilon):
    q, steps, delta = 0.1, 200, 1e-5
    sigma = noise_multiplier_for(epsilon=epsilon, delta=delta, sample_rate=q, steps=steps, accountant=accountant)
    eps = accountant_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, accountant=accountant)
    assert eps <= epsilon
    assert eps > epsilon - 0.05
    assert accountant_epsilon(noise_multiplier=0.95 * sigma, sample_rate=q, steps=steps, delta=delta,
                              accountant=accountant) > epsilon


def test_dp_plan_and_config_validation():
    cfg = DPConfig(epsilon=2.0, batch_size=50, epochs=3)
    assert DPConfig(**cfg.to_dict()) == cfg
    plan = dp_plan(cfg, n_max=200, n_train=400)
    assert plan["sample_rate"] == 0.25 and plan["steps"] == 12
    assert plan["delta"] == pytest.approx(1 / 4000) and plan["delta_rule"] == "1 / (10 n_train)"
    assert plan["epsilon_accountant"] <= 2.0 and plan["noise_multiplier"] > 0
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(MemlensInputError, match="epsilon must be > 0"):
            DPConfig(epsilon=bad)
    with pytest.raises(MemlensInputError, match="accountant"):
        DPConfig(epsilon=1.0, accountant="gdp")
    with pytest.raises(MemlensInputError, match="delta"):
        DPConfig(epsilon=1.0, delta=1.5)
    with pytest.raises(MemlensInputError, match="DPConfig"):
        dp_plan({"epsilon": 1.0}, n_max=10, n_train=10)
    with pytest.warns(MemlensWarning, match="sampling rate set to 1"):
        full = dp_plan(DPConfig(epsilon=1.0, batch_size=500, epochs=4), n_max=100, n_train=100)
    assert full["sample_rate"] == 1.0 and full["steps"] == 4


# ------------------------------------------------------------------------------------ populations
def test_train_population_dp_provenance_and_reproducibility(digits):
    small = digits.subset(train_index=np.arange(300), test_index=np.arange(100))
    masks = make_masks(6, 300, p=0.5, seed=0, balanced=True)
    dp = DPConfig(epsilon=4.0, epochs=3, batch_size=30)
    pop = train_population(small, model="mlp", masks=masks, seed=5, dp=dp)
    rec = pop.provenance["dp"]
    assert rec["epsilon"] == 4.0 and rec["delta"] == pytest.approx(1 / 3000)
    q = 30 / masks.sum(1).max()                              # one rate for all: the largest IN count
    assert rec["sample_rate"] == pytest.approx(q) and rec["steps"] == int(np.ceil(3 / q))
    assert rec["epsilon_accountant"] <= 4.0 and rec["noise_multiplier"] > 0
    assert rec["preprocessing"].startswith("z-score")
    assert pop.signals["train"]["loss"].shape == (6, 300)
    again = train_population(small, model="mlp", masks=masks, seed=5, dp=dp, block_size=4)
    np.testing.assert_allclose(pop.signals["test"]["logit"], again.signals["test"]["logit"], rtol=1e-4, atol=1e-4)
    other = train_population(small, model="mlp", masks=masks, seed=6, dp=dp)
    assert not np.allclose(pop.signals["test"]["logit"], other.signals["test"]["logit"])
    with pytest.raises(MemlensInputError, match="backend='torch'"):
        train_population(small, model="logreg", masks=masks, backend="sklearn", dp=dp)


@pytest.fixture(scope="module")
def digit_pops(digits):
    """Non-private and DP (ε = 1, 8) logistic populations of 16 models on digits, two mask seeds."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for seed in (0, 1):
            masks = make_masks(16, digits.n_train, p=0.5, seed=seed, balanced=True)
            for eps in (None, 1.0, 8.0):
                dp = None if eps is None else DPConfig(epsilon=eps)
                out[seed, eps] = train_population(digits, model="logreg", masks=masks, seed=seed, dp=dp)
    return out


def test_dp_populations_memorize_less(digit_pops):
    for seed in (0, 1):
        base = memorization(digit_pops[seed, None]).scores
        for eps in (1.0, 8.0):
            pop = digit_pops[seed, eps]
            mem = memorization(pop).scores
            assert mem.mean() < base.mean()
            # the long tail: examples memorized by more than half of the models
            assert (mem > 0.5).mean() < 0.5 * (base > 0.5).mean()
            assert pop.signal("test", "correct").mean() > (0.7 if eps == 1.0 else 0.9)


def _audits(pop, delta):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = attack_all_targets(pop, "lira", online=True)
    S, L = res.scores, res.labels
    ok = np.isfinite(S)
    pooled = empirical_epsilon(S[ok], L[ok], delta=delta).epsilon
    one = max(one_run_audit(np.nan_to_num(S[t], nan=0.0), L[t], k_pos=[20, 100], k_neg=[0, 100],
                            delta=delta).epsilon for t in range(3))
    return pooled, one


def test_audited_epsilon_never_exceeds_the_accountant(digit_pops):
    for seed in (0, 1):
        base_pooled, _ = _audits(digit_pops[seed, None], 1e-5)
        assert base_pooled > 2.0                              # the audit does detect a non-private population
        for eps in (1.0, 8.0):
            pop = digit_pops[seed, eps]
            acc_eps = pop.provenance["dp"]["epsilon_accountant"]
            pooled, one = _audits(pop, pop.provenance["dp"]["delta"])
            assert pooled <= acc_eps and one <= acc_eps
