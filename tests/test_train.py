"""Population training: exact objectives, the weight-0 invariant, reproducibility, sklearn agreement."""
import warnings

import numpy as np
import pytest
import torch

from memlens import MemlensInputError, Population
from memlens.data import from_arrays, load_dataset, make_masks
from memlens.measures import memorization
from memlens.train import (
    LogisticConfig,
    MLPConfig,
    fit_logistic,
    fit_mlp,
    make_model_config,
    standardized_features,
    train_population,
)
from memlens.train.torch_mlp import init_mlp


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def small(digits):
    """400 training and 100 test digits: fast, still 10 classes."""
    return digits.subset(train_index=np.arange(400), test_index=np.arange(100))


def _sk_logreg(X, y, C, tol=1e-10):
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(C=C, tol=tol, max_iter=10000).fit(X, y)


# ---------------------------------------------------------------------------------------------- configs
def test_make_model_config_round_trip_and_errors():
    cfg = make_model_config("logreg", C=0.1, tol=1e-7)
    assert cfg == LogisticConfig(C=0.1, tol=1e-7)
    assert make_model_config(**cfg.to_dict()) == cfg
    mlp = make_model_config("mlp", hidden=[64, 32], epochs=3)
    assert mlp.hidden == (64, 32) and isinstance(mlp, MLPConfig)
    assert make_model_config(**mlp.to_dict()) == mlp
    assert mlp.to_dict()["hidden"] == [64, 32]
    with pytest.raises(MemlensInputError, match="model must be one of"):
        make_model_config("resnet")
    with pytest.raises(MemlensInputError, match="unknown field.*lr.*valid fields"):
        make_model_config("logreg", lr=0.1)
    with pytest.raises(MemlensInputError, match="C must be > 0"):
        LogisticConfig(C=0)
    with pytest.raises(MemlensInputError, match="momentum"):
        MLPConfig(momentum=1.0)
    with pytest.raises(MemlensInputError, match=r"hidden\[1\]"):
        MLPConfig(hidden=(8, 0))


# ---------------------------------------------------------------------------------------------- logistic regression
@pytest.mark.parametrize("name,C", [("wine", 1.0), ("breast-cancer", 10.0), ("iris", 0.5)])
def test_torch_logreg_matches_sklearn_per_model(name, C):
    ds = load_dataset(name)
    X, _ = standardized_features(ds)
    masks = make_masks(4, ds.n_train, p=0.7, seed=3)
    fit = fit_logistic(X, ds.y_train, masks.astype(float), n_classes=ds.n_classes, C=C, tol=1e-9)
    assert fit.converged.all() and fit.grad_norm.max() <= 1e-9
    Z = fit.logits(X)
    P = np.exp(Z - Z.max(2, keepdims=True))
    P /= P.sum(2, keepdims=True)
    for k in range(4):
        ref = _sk_logreg(X[masks[k]], ds.y_train[masks[k]], C)
        # Same parametrization as sklearn (binary: one weight vector): the coefficients themselves agree.
        np.testing.assert_allclose(fit.coef[k].T, ref.coef_, atol=2e-5 * max(1.0, np.abs(ref.coef_).max()))
        np.testing.assert_allclose(P[k], ref.predict_proba(X), atol=1e-5)


def test_logreg_objective_is_sklearns_minimum():
    """At the returned parameters the gradient of C*sum CE + 0.5||W||^2 vanishes (checked with autograd)."""
    ds = load_dataset("wine")
    X, _ = standardized_features(ds)
    w = np.random.default_rng(0).integers(0, 3, size=(2, ds.n_train)).astype(float)  # integer sample weights
    fit = fit_logistic(X, ds.y_train, w, C=2.0, tol=1e-10)
    for k in range(2):
        W = torch.tensor(fit.coef[k], requires_grad=True)
        b = torch.tensor(fit.intercept[k], requires_grad=True)
        Z = torch.as_tensor(X) @ W + b
        ce = torch.nn.functional.cross_entropy(Z, torch.as_tensor(ds.y_train), reduction="none")
        F = 2.0 * (torch.as_tensor(w[k]) * ce).sum() + 0.5 * (W * W).sum()
        gW, gb = torch.autograd.grad(F, (W, b))
        # The normalized gradient (divided by C * n_k) is below tol; the raw one by C * n_k * tol.
        assert gW.abs().max() <= 2.0 * w[k].sum() * 1e-10 * 1.01
        assert gb.abs().max() <= 2.0 * w[k].sum() * 1e-10 * 1.01


def test_logreg_weight_zero_equals_removal(small):
    """Masking example i OUT of every model equals deleting it from the dataset (fixed preprocessing)."""
    cfg = make_model_config("logreg", standardize=False, tol=1e-9)
    masks = make_masks(5, small.n_train, p=0.7, seed=1)
    i = 17
    masks[:, i] = False
    keep = np.setdiff1d(np.arange(small.n_train), [i])
    full = train_population(small, model=cfg, masks=masks, seed=4)
    removed = train_population(small.subset(train_index=keep), model=cfg, masks=masks[:, keep], seed=4)
    for name in ("logit", "loss"):
        np.testing.assert_allclose(full.signal("train", name)[:, keep], removed.signal("train", name), atol=1e-5)
        np.testing.assert_allclose(full.signal("test", name), removed.signal("test", name), atol=1e-5)
    np.testing.assert_array_equal(full.signal("test", "correct"), removed.signal("test", "correct"))


def test_memorization_agrees_with_tight_sklearn_on_digits(digits):
    """FZ memorization from the batched solver vs sklearn LogisticRegression(tol=1e-8, max_iter=10000)."""
    masks = make_masks(64, digits.n_train, p=0.7, seed=11)
    pop = train_population(digits, model="logreg", masks=masks, seed=0)
    ref = train_population(digits, model=make_model_config("logreg", tol=1e-8, max_iter=10000), masks=masks,
                           seed=0, backend="sklearn")
    conv = pop.provenance["convergence"]
    assert conv["n_not_converged"] == 0 and conv["max_grad_norm"] <= 1e-6
    m, m_ref = memorization(pop).scores, memorization(ref).scores
    r = np.corrcoef(m, m_ref)[0, 1]
    assert r >= 0.99, r
    # Per-model predictions agree on (almost) every example: the score differences come from few flips.
    agree = (pop.signal("train", "correct") == ref.signal("train", "correct")).mean()
    assert agree >= 0.9995, agree


def test_logreg_warm_start_reaches_the_cold_start_optimum(small):
    """Strict convexity: starting from the full-data model changes the path, not the converged answer.

    Both runs certify max |grad F_k| <= tol, so each is within ||g||_2 / mu_k <= sqrt(p) tol / mu_k of the unique
    optimum (modulo the intercepts' softmax shift). The penalty gives mu_k >= 1 / (C n_k) on the weights; the
    check below uses that value for the whole vector (the intercepts' curvature here is larger). In practice the
    runs agree far more tightly, and so do the memorization scores.
    """
    X, _ = standardized_features(small)
    y, C, tol = small.y_train, 1.0, 1e-8
    masks = make_masks(24, small.n_train, p=0.7, seed=5)
    w = masks.astype(float)
    kw = dict(C=C, tol=tol, preconditioner="kron")     # "auto" would start every model from a full-data model
    cold = fit_logistic(X, y, w, **kw)
    warm = fit_logistic(X, y, w, init="full", **kw)
    full = fit_logistic(X, y, np.ones((1, small.n_train)), **kw)
    explicit = fit_logistic(X, y, w, init=(full.coef, full.intercept), **kw)
    assert cold.converged.all() and warm.converged.all() and explicit.converged.all()
    p = X.shape[1] * 10
    bound = 2.0 * np.sqrt(p) * tol * C * w.sum(1)                 # both within sqrt(p) tol / mu_k of the optimum
    dist = np.sqrt(((warm.coef - cold.coef) ** 2).sum((1, 2)))
    assert np.all(dist <= bound), (dist.max(), bound.min())
    assert dist.max() <= 1e-4, dist.max()                         # and observed: far tighter than the bound
    # Intercepts are unique up to the softmax's common shift: compare them centred over classes.
    centred = lambda b: b - b.mean(1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(centred(warm.intercept), centred(cold.intercept), atol=1e-4)
    np.testing.assert_allclose(explicit.coef, warm.coef, atol=1e-4)
    # The full-data start is not already a subset model's optimum: the warm runs still iterate.
    assert warm.n_iter.min() >= 5
    mem = lambda f: memorization(Population(  # noqa: E731
        masks=masks, signals={"train": _signals(f, X, y)}, labels={"train": y})).scores
    np.testing.assert_allclose(mem(warm), mem(cold), atol=1e-12, equal_nan=True)


def _signals(fit, X, y):
    from memlens.population import signals_from_logits

    return signals_from_logits(fit.logits(X), y)


def test_logreg_warm_start_in_train_population_and_bad_init(small):
    masks = make_masks(8, small.n_train, p=0.7, seed=2)
    cold = train_population(small, model=make_model_config("logreg", tol=1e-8), masks=masks, seed=1)
    warm = train_population(small, model=make_model_config("logreg", tol=1e-8, warm_start=True), masks=masks, seed=1)
    assert warm.provenance["model"]["warm_start"] is True
    np.testing.assert_array_equal(warm.signal("train", "correct"), cold.signal("train", "correct"))
    np.testing.assert_allclose(warm.signal("test", "logit"), cold.signal("test", "logit"), atol=1e-3)
    X, _ = standardized_features(small)
    with pytest.raises(MemlensInputError, match="init must be None, 'full'"):
        fit_logistic(X, small.y_train, masks.astype(float), init="zeros")
    with pytest.raises(MemlensInputError, match=r"init=\(coef, intercept\) must have"):
        fit_logistic(X, small.y_train, masks.astype(float), init=(np.zeros((3, 64, 10)), np.zeros((3, 10))))
    with pytest.raises(MemlensInputError, match="warm_start must be True or False"):
        LogisticConfig(warm_start=1)


# ---------------------------------------------------------------------------------------------- MLP
def test_mlp_matches_sequential_torch_sgd():
    """The batched trainer equals, model by model, a plain torch.optim.SGD loop on the same minibatches."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=60)
    masks = rng.random((3, 60)) < np.array([[0.3], [0.6], [0.9]])         # unequal IN counts
    seeds = np.array([5, 6, 7])
    kw = dict(hidden=(8, 4), epochs=3, batch_size=7, lr=0.1, momentum=0.9, weight_decay=1e-3)
    fit = fit_mlp(X, y, masks, seeds=seeds, n_classes=3, **kw)
    for k in range(3):
        g = np.random.default_rng(seeds[k])
        Ws, bs = init_mlp(g, [5, 8, 4, 3])
        params = [torch.tensor(a, requires_grad=True) for a in Ws + bs]
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)
        in_idx = np.flatnonzero(masks[k])
        for _ in range(3):
            order = in_idx[g.permutation(len(in_idx))]
            for s in range(0, len(order), 7):
                b = order[s:s + 7]
                h = torch.as_tensor(X[b])
                for j in range(3):
                    h = h @ params[j] + params[3 + j]
                    h = torch.relu(h) if j < 2 else h
                loss = torch.nn.functional.cross_entropy(h, torch.as_tensor(y[b]))
                opt.zero_grad()
                loss.backward()
                opt.step()
        for j in range(3):
            np.testing.assert_allclose(fit.weights[j][k], params[j].detach().numpy(), atol=1e-5)
            np.testing.assert_allclose(fit.biases[j][k], params[3 + j].detach().numpy(), atol=1e-5)
    assert fit.n_steps.tolist() == [3 * -(-int(c) // 7) for c in masks.sum(1)]


def _sgd_loop_reference(X, y, mask, seed, sizes, *, epochs, batch_size, lr, momentum, weight_decay):
    """One model trained by a plain torch.optim.SGD loop on fit_mlp's minibatches: its weights, biases and the
    mean minibatch loss of its last epoch."""
    g = np.random.default_rng(seed)
    Ws, bs = init_mlp(g, sizes)
    L = len(Ws)
    params = [torch.tensor(a, requires_grad=True) for a in Ws + bs]
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    in_idx = np.flatnonzero(mask)
    for _ in range(epochs):
        order = in_idx[g.permutation(len(in_idx))]
        losses = []
        for s in range(0, len(order), batch_size):
            b = order[s:s + batch_size]
            h = torch.as_tensor(X[b])
            for j in range(L):
                h = h @ params[j] + params[L + j]
                h = torch.relu(h) if j < L - 1 else h
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(h, torch.as_tensor(y[b]))
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return [p.detach().numpy() for p in params[:L]], [p.detach().numpy() for p in params[L:]], np.mean(losses)


@pytest.mark.parametrize("hidden, batch_size, momentum, weight_decay", [
    ((3,), 5, 0.0, 0.0),        # first layer stored transposed (3 units < 5 rows); plain SGD (no momentum buffer)
    ((16,), 4, 0.5, 1e-2),      # first layer row-major, output layer (3 classes < 4 rows) transposed
    ((6, 5), 2, 0.9, 1e-3),     # every layer row-major (fan_out >= 2 rows): softmax along the class axis
])
def test_mlp_layouts_match_torch_sgd(hidden, batch_size, momentum, weight_decay):
    """Each storage layout of the batched trainer (transposed or not, per layer) is torch.optim.SGD's arithmetic."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 7)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    masks = rng.random((3, 40)) < np.array([[0.4], [0.7], [1.0]])         # unequal IN counts: idle models
    seeds = np.array([11, 12, 13])
    kw = dict(epochs=2, batch_size=batch_size, lr=0.1, momentum=momentum, weight_decay=weight_decay)
    fit = fit_mlp(X, y, masks, seeds=seeds, n_classes=3, hidden=hidden, **kw)
    sizes = [7, *hidden, 3]
    for k in range(3):
        Ws, bs, last_loss = _sgd_loop_reference(X, y, masks[k], seeds[k], sizes, **kw)
        assert fit.final_loss[k] == pytest.approx(last_loss, rel=1e-5)
        for j in range(len(Ws)):
            assert fit.weights[j][k].shape == Ws[j].shape
            np.testing.assert_allclose(fit.weights[j][k], Ws[j], atol=1e-5)
            np.testing.assert_allclose(fit.biases[j][k], bs[j], atol=1e-5)
    # the logits agree with a per-model numpy forward pass, in row chunks smaller than X (one GEMM per chunk)
    ref = np.stack([_numpy_forward([W[k] for W in fit.weights], [b[k] for b in fit.biases], X) for k in range(3)])
    np.testing.assert_allclose(fit.logits(X), ref, atol=1e-5)


def _numpy_forward(Ws, bs, X):
    h = X.astype(np.float64)
    for j, (W, b) in enumerate(zip(Ws, bs)):
        h = h @ W + b
        h = np.maximum(h, 0) if j < len(Ws) - 1 else h
    return h


@pytest.mark.parametrize("hidden", [(), (9,), (12, 4)])
def test_mlp_logits_matches_per_model_forward(monkeypatch, hidden):
    """mlp_logits (the shared first layer as one GEMM over all models, row chunks) = each model's own forward."""
    from memlens.train import torch_mlp

    monkeypatch.setattr(torch_mlp, "_EVAL_ROWS", 7)                        # several chunks, a ragged last one
    rng = np.random.default_rng(3)
    sizes = [5, *hidden, 4]
    K = 6
    Ws = [rng.normal(size=(K, a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(size=(K, b)).astype(np.float32) for b in sizes[1:]]
    X = rng.normal(size=(23, 5)).astype(np.float32)
    out = torch_mlp.mlp_logits(Ws, bs, X)
    assert out.shape == (K, 23, 4) and out.dtype == np.float32
    for k in range(K):
        np.testing.assert_allclose(out[k], _numpy_forward([W[k] for W in Ws], [b[k] for b in bs], X),
                                   rtol=1e-5, atol=1e-5)


def test_mlp_weight_zero_equals_removal(small):
    cfg = make_model_config("mlp", hidden=(32,), epochs=3, standardize=False)
    masks = make_masks(6, small.n_train, p=0.6, seed=2)
    i = 5
    masks[:, i] = False
    masks[0, :50] = False                                               # unequal IN counts across models
    keep = np.setdiff1d(np.arange(small.n_train), [i])
    full = train_population(small, model=cfg, masks=masks, seed=9)
    removed = train_population(small.subset(train_index=keep), model=cfg, masks=masks[:, keep], seed=9)
    np.testing.assert_allclose(full.signal("train", "logit")[:, keep], removed.signal("train", "logit"), atol=1e-5)
    np.testing.assert_allclose(full.signal("test", "loss"), removed.signal("test", "loss"), atol=1e-5)
    np.testing.assert_array_equal(full.signal("test", "correct"), removed.signal("test", "correct"))


def test_mlp_learns_and_memorizes(small):
    masks = make_masks(16, small.n_train, p=0.5, seed=0, balanced=True)   # every example has IN and OUT models
    pop = train_population(small, model=make_model_config("mlp", hidden=(64,), epochs=10), masks=masks, seed=0)
    correct = pop.signal("train", "correct")
    assert correct[masks].mean() > 0.97                     # (nearly) fits its own subset
    assert 0.8 < correct[~masks].mean() < correct[masks].mean() - 0.05
    assert pop.signal("test", "correct").mean() > 0.8               # chance is 0.1
    assert np.nanmean(memorization(pop).scores) > 0.0


# ---------------------------------------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("model", [LogisticConfig(tol=1e-9), MLPConfig(hidden=(16,), epochs=2)])
def test_same_seed_same_population_and_shards_concatenate(small, model):
    """Model k's result depends on its global index only (logistic regression: up to the tolerance)."""
    masks = make_masks(10, small.n_train, p=0.7, seed=5)
    full = train_population(small, model=model, masks=masks, seed=3, block_size=4)
    again = train_population(small, model=model, masks=masks, seed=3, block_size=4)
    for split in ("train", "test"):
        for name in ("logit", "loss", "correct"):
            np.testing.assert_array_equal(full.signal(split, name), again.signal(split, name))
    shards = [train_population(small, model=model, masks=masks[a:b], seed=3, model_offset=a, block_size=3)
              for a, b in [(0, 3), (3, 7), (7, 10)]]
    cat = Population.concat(shards)
    np.testing.assert_array_equal(cat.seeds, full.seeds)
    np.testing.assert_array_equal(cat.masks, full.masks)
    atol = 1e-6 if isinstance(model, MLPConfig) else 1e-4      # MLP: each model's own slice of the products
    for split in ("train", "test"):
        np.testing.assert_allclose(cat.signal(split, "logit"), full.signal(split, "logit"), atol=atol)
        np.testing.assert_array_equal(cat.signal(split, "correct"), full.signal(split, "correct"))
    if isinstance(model, MLPConfig):
        other = train_population(small, model=model, masks=masks, seed=4, block_size=4)
        assert not np.array_equal(other.signal("train", "logit"), full.signal("train", "logit"))


def test_progress_and_provenance(small):
    calls = []
    masks = make_masks(7, small.n_train, p=0.7, seed=0)
    pop = train_population(small, masks=masks, seed=1, block_size=3, progress=calls.append)
    assert calls == [3, 6, 7]
    prov = pop.provenance
    assert prov["dataset"] == "digits" and prov["dataset_fingerprint"] == small.fingerprint()
    assert prov["backend"] == "torch" and prov["model"]["name"] == "logreg" and prov["standardize"] is True
    assert prov["convergence"]["n_not_converged"] == 0
    assert set(pop.labels) == {"train", "test"}
    assert pop.signal("test", "logit").shape == (7, small.n_test)


# ---------------------------------------------------------------------------------------------- sklearn backend
def test_sklearn_backend_estimators_and_missing_classes():
    from sklearn.naive_bayes import GaussianNB

    ds = load_dataset("iris")
    masks = make_masks(4, ds.n_train, p=0.7, seed=0)
    masks[0, ds.y_train == 2] = False                                # model 0 never sees class 2
    pop = train_population(ds, model=GaussianNB(), masks=masks, backend="sklearn")
    corr = pop.signal("train", "correct")
    assert corr[0, ds.y_train == 2].sum() == 0                       # probability 0 for the absent class
    assert corr[1:].mean() > 0.9
    assert pop.provenance["model"]["estimator"].endswith("GaussianNB")
    # Direct check of one model against a hand fit on the IN rows.
    ref = GaussianNB().fit(ds.X_train[masks[1]], ds.y_train[masks[1]]).predict_proba(ds.X_test)
    p_y = ref[np.arange(ds.n_test), ds.y_test]
    np.testing.assert_allclose(pop.signal("test", "loss")[1], -np.log(np.clip(p_y, 1e-12, 1)), rtol=1e-5, atol=1e-5)


def test_sklearn_logreg_backend_equals_torch(small):
    masks = make_masks(3, small.n_train, p=0.7, seed=8)
    cfg = make_model_config("logreg", tol=1e-9, C=0.5)
    a = train_population(small, model=cfg, masks=masks)
    b = train_population(small, model=cfg, masks=masks, backend="sklearn")
    assert b.provenance["standardize"] is True
    np.testing.assert_allclose(a.signal("test", "loss"), b.signal("test", "loss"), atol=1e-4)


# ---------------------------------------------------------------------------------------------- bad inputs
def test_bad_inputs_raise(small):
    from sklearn.naive_bayes import GaussianNB

    ok = make_masks(3, small.n_train, p=0.5, seed=0)
    bad = [
        (dict(masks=ok[:, :-1]), "one column per training example"),
        (dict(masks=np.zeros((2, small.n_train), bool)), "at least one training example"),
        (dict(masks=ok, backend="jax"), "backend must be"),
        (dict(masks=ok, model="svm"), "model must be one of"),
        (dict(masks=ok, model=GaussianNB()), "backend='sklearn'"),
        (dict(masks=ok, model="mlp", backend="sklearn"), "no scikit-learn equivalent"),
        (dict(masks=ok, seed=np.random.default_rng(0)), "seed must be an integer"),
        (dict(masks=ok, seed=-1), "seed must be"),
        (dict(masks=ok, n_jobs=0), "n_jobs"),
        (dict(masks=ok, block_size=0), "block_size must be >= 1"),
        (dict(masks=ok, model_offset=-2), "model_offset must be >= 0"),
        (dict(masks=ok, progress=5), "progress must be a callable"),
    ]
    for kwargs, msg in bad:
        with pytest.raises(MemlensInputError, match=msg):
            train_population(small, **kwargs)
    with pytest.raises(MemlensInputError, match="memlens.data.Dataset"):
        train_population((small.X_train, small.y_train), masks=ok)
    one_class = from_arrays(np.arange(8.0)[:, None], [0, 0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(MemlensInputError, match="single class"):
        train_population(one_class, model=GaussianNB(), masks=np.repeat([[1, 1, 1, 0, 0, 0, 0, 0]], 2, 0).astype(bool),
                         backend="sklearn")
    with pytest.raises(MemlensInputError, match="weights must be >= 0"):
        fit_logistic(np.ones((4, 2)), [0, 1, 0, 1], -np.ones((1, 4)))


# ---------------------------------------------------------------------------------------------- Newton-CG solver
def _tol_bound(w, X, n_out, C, tol):
    """Distance between two points certified to ``max |grad F_k| <= tol``: each is within
    ``||g||_2 / mu_k <= sqrt(p) tol C n_k`` of the optimum (mu_k >= 1 / (C n_k) from the penalty on the weights)."""
    p = (X.shape[1] + 1) * n_out
    return 2.0 * np.sqrt(p) * tol * C * w.sum(1)


@pytest.mark.parametrize("name,C,K", [("breast-cancer", 10.0, 12), ("digits", 1.0, 16)])
def test_newton_cg_reaches_the_lbfgs_and_sklearn_optimum(name, C, K):
    ds = load_dataset(name)
    X, _ = standardized_features(ds)
    y, tol = ds.y_train, 1e-8
    masks = make_masks(K, ds.n_train, p=0.7, seed=7, balanced=True)
    w = masks.astype(float)
    newton = fit_logistic(X, y, w, C=C, tol=tol, solver="newton-cg")
    lbfgs = fit_logistic(X, y, w, C=C, tol=tol)
    assert newton.converged.all() and newton.grad_norm.max() <= tol
    assert lbfgs.n_hvp is None and (newton.n_hvp >= newton.n_iter).all()
    assert newton.n_iter.max() <= 30                              # Newton: a few dozen iterations at most
    n_out = newton.coef.shape[2]
    bound = _tol_bound(w, X, n_out, C, tol)
    dist = np.sqrt(((newton.coef - lbfgs.coef) ** 2).sum((1, 2)))
    assert np.all(dist <= bound), (dist.max(), bound.min())
    assert dist.max() <= 1e-4, dist.max()
    for k in (0, K - 1):                                          # against scikit-learn's own solver
        ref = _sk_logreg(X[masks[k]], y[masks[k]], C)
        assert np.sqrt(((newton.coef[k].T - ref.coef_) ** 2).sum()) <= bound[k]
        np.testing.assert_allclose(newton.coef[k].T, ref.coef_, atol=2e-5 * max(1.0, np.abs(ref.coef_).max()))
    # Memorization scores: the Newton population against the tight scikit-learn reference on the same masks.
    sub = ds.subset(test_index=np.arange(50))
    pop = train_population(sub, model=make_model_config("logreg", tol=tol, solver="newton-cg"), masks=masks)
    ref = train_population(sub, model=make_model_config("logreg", tol=tol, max_iter=10000), masks=masks,
                           backend="sklearn")
    assert pop.provenance["model"]["solver"] == "newton-cg"
    m, m_ref = memorization(pop, signal="loss").scores, memorization(ref, signal="loss").scores
    assert np.corrcoef(m, m_ref)[0, 1] >= 0.999
    # (the sklearn backend's signals come from predict_proba, whose rounding near p = 1 distorts large logits)
    np.testing.assert_allclose(pop.signal("test", "loss"), ref.signal("test", "loss"), atol=1e-4)


def _three_examples_out(small):
    """Standardized features, labels, weights of 6 models with examples 4, 17, 250 OUT of all, and the rest."""
    X, _ = standardized_features(small)
    w = make_masks(6, small.n_train, p=0.7, seed=3).astype(float)
    drop = [4, 17, 250]
    w[:, drop] = 0.0
    return X, small.y_train, w, np.setdiff1d(np.arange(small.n_train), drop)


def test_newton_cg_weight_zero_equals_removal(small):
    X, y, w, keep = _three_examples_out(small)
    tol = 1e-9
    full = fit_logistic(X, y, w, C=1.0, tol=tol, solver="newton-cg")
    removed = fit_logistic(X[keep], y[keep], w[:, keep], n_classes=10, C=1.0, tol=tol, solver="newton-cg")
    assert full.converged.all() and removed.converged.all()
    np.testing.assert_allclose(full.coef, removed.coef, atol=1e-6)
    centred = lambda Z: Z - Z.mean(2, keepdims=True)  # noqa: E731  (intercepts: unique up to a common shift)
    np.testing.assert_allclose(centred(full.logits(X)), centred(removed.logits(X)), atol=1e-5)


def test_newton_cg_converged_models_leave_without_changing_results(small):
    """A model's answer does not depend on its block mates, nor on when they converge and leave the block."""
    X, _ = standardized_features(small)
    y, C, tol = small.y_train, 1.0, 1e-9
    w = make_masks(6, small.n_train, p=0.7, seed=9).astype(float)
    w[0] = 0.0
    w[0, :12] = 1.0                                               # a tiny subset: a very different iteration count
    block = fit_logistic(X, y, w, C=C, tol=tol, solver="newton-cg")
    assert block.converged.all() and len(set(block.n_iter.tolist())) > 1    # models leave the block at different times
    assert len(set(block.n_hvp.tolist())) > 1                     # per-model CG: models stop at their own step
    bound = _tol_bound(w, X, 10, C, tol)
    for k in range(6):
        alone = fit_logistic(X, y, w[k:k + 1], C=C, tol=tol, solver="newton-cg")
        dist = np.sqrt(((alone.coef[0] - block.coef[k]) ** 2).sum())
        assert dist <= bound[k] and dist <= 1e-5, (k, dist)
    # A model that starts at its own optimum leaves at once (0 iterations) and keeps its parameters exactly.
    init = (block.coef, block.intercept)
    again = fit_logistic(X, y, w, C=C, tol=1e-6, init=init, solver="newton-cg", precision="float64")
    assert (again.n_iter == 0).all() and (again.n_hvp == 0).all()
    np.testing.assert_array_equal(again.coef, block.coef)


def test_newton_cg_bad_solver():
    with pytest.raises(MemlensInputError, match="solver must be"):
        LogisticConfig(solver="sag")
    with pytest.raises(MemlensInputError, match="solver must be"):
        fit_logistic(np.ones((4, 2)), [0, 1, 0, 1], np.ones((1, 4)), solver="newton")
    assert make_model_config(**LogisticConfig(solver="newton-cg").to_dict()).solver == "newton-cg"


@pytest.mark.parametrize("precondition", ["kron", "diag", "none", "hessian"])
def test_newton_cg_preconditioners_reach_the_same_optimum(small, precondition):
    """Every preconditioner (the default picks 'hessian' for few parameters, 'kron' for many) only changes the path."""
    from memlens.train.logreg import _fit_newton, _Objective

    X, _ = standardized_features(small)
    y, tol = small.y_train, 1e-9
    w = make_masks(5, small.n_train, p=0.7, seed=4).astype(float)
    X1 = torch.cat([torch.as_tensor(X), torch.ones(len(X), 1, dtype=torch.float64)], dim=1)
    obj = _Objective(X1, torch.as_tensor(y), 10, torch.as_tensor(w.T.copy()), 1.0)
    fit = _fit_newton(obj, torch.zeros(5, X.shape[1] + 1, 10, dtype=torch.float64), X.shape[1], 10, tol=tol,
                      max_iter=200, precision="mixed", precondition=precondition)
    ref = fit_logistic(X, y, w, C=1.0, tol=tol)
    assert fit.converged.all() and fit.grad_norm.max() <= tol
    dist = np.sqrt(((fit.coef - ref.coef) ** 2).sum((1, 2)))
    assert np.all(dist <= _tol_bound(w, X, 10, 1.0, tol)) and dist.max() <= 1e-5, dist.max()


# ------------------------------------------------------------------------------ shared full-data Hessian
@pytest.mark.parametrize("name,C,K", [("breast-cancer", 10.0, 12), ("digits", 1.0, 16)])
def test_full_hessian_preconditioner_reaches_the_kron_and_sklearn_optimum(name, C, K):
    """The shared full-data Hessian and the full-data start change the path, not the optimum (binary and
    multinomial); they take fewer iterations than the per-model Kronecker factorization."""
    ds = load_dataset(name)
    X, _ = standardized_features(ds)
    y, tol = ds.y_train, 1e-8
    w = make_masks(K, ds.n_train, p=0.7, seed=7, balanced=True).astype(float)
    shared = fit_logistic(X, y, w, C=C, tol=tol, preconditioner="full-hessian")
    kron = fit_logistic(X, y, w, C=C, tol=tol, preconditioner="kron")
    assert fit_logistic(X, y, w[:2], C=C, tol=tol).n_iter.tolist() == shared.n_iter[:2].tolist()  # "auto" = this
    assert shared.converged.all() and shared.grad_norm.max() <= tol
    assert shared.n_iter.mean() < kron.n_iter.mean(), (shared.n_iter.mean(), kron.n_iter.mean())
    dist = np.sqrt(((shared.coef - kron.coef) ** 2).sum((1, 2)))
    assert np.all(dist <= _tol_bound(w, X, shared.coef.shape[2], C, tol)) and dist.max() <= 1e-4, dist.max()
    for k in (0, K - 1):
        ref = _sk_logreg(X[w[k] > 0], y[w[k] > 0], C)
        np.testing.assert_allclose(shared.coef[k].T, ref.coef_, atol=2e-5 * max(1.0, np.abs(ref.coef_).max()))


def test_full_hessian_weight_zero_equals_removal_and_cache(small):
    """Weight 0 = removal still holds: the data enters the shared start and matrix, never the optimum. The start
    and matrix are cached per data set: a second call reuses them (identical result), other data replaces them."""
    from memlens.train import logreg as torch_logreg

    X, y, w, keep = _three_examples_out(small)
    tol = 1e-9
    full = fit_logistic(X, y, w, C=1.0, tol=tol, preconditioner="full-hessian")
    key = torch_logreg._SHARED_CACHE["key"]
    again = fit_logistic(X, y, w, C=1.0, tol=tol, preconditioner="full-hessian")
    np.testing.assert_array_equal(again.coef, full.coef)
    removed = fit_logistic(X[keep], y[keep], w[:, keep], n_classes=10, C=1.0, tol=tol, preconditioner="full-hessian")
    assert torch_logreg._SHARED_CACHE["key"] != key               # other data: a new start and matrix
    assert full.converged.all() and removed.converged.all()
    np.testing.assert_allclose(full.coef, removed.coef, atol=1e-6)
    centred = lambda Z: Z - Z.mean(2, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(centred(full.logits(X)), centred(removed.logits(X)), atol=1e-5)


def test_full_hessian_in_train_population_memorization_and_refusals(digits):
    masks = make_masks(32, digits.n_train, p=0.7, seed=11)
    cfg = make_model_config("logreg", preconditioner="full-hessian")
    pop = train_population(digits, model=cfg, masks=masks, seed=0, block_size=16)
    ref = train_population(digits, model=make_model_config("logreg", tol=1e-8, max_iter=10000), masks=masks,
                           seed=0, backend="sklearn")
    assert pop.provenance["model"]["preconditioner"] == "full-hessian"
    assert pop.provenance["convergence"]["n_not_converged"] == 0
    assert np.corrcoef(memorization(pop).scores, memorization(ref).scores)[0, 1] >= 0.99
    assert (pop.signal("train", "correct") == ref.signal("train", "correct")).mean() >= 0.9995
    assert "preconditioner" not in LogisticConfig().to_dict()      # default left out: old run identities hold
    assert pop.provenance["convergence"]["preconditioner"] == "full-hessian"
    kron = train_population(digits, model=make_model_config("logreg", preconditioner="kron"), masks=masks[:4])
    assert kron.provenance["convergence"]["preconditioner"] == "kron"
    assert make_model_config(**cfg.to_dict()).preconditioner == "full-hessian"
    with pytest.raises(MemlensInputError, match="preconditioner must be"):
        LogisticConfig(preconditioner="lbfgs")
    with pytest.raises(MemlensInputError, match="needs solver='lbfgs'"):
        LogisticConfig(preconditioner="full-hessian", solver="newton-cg")
    X = np.random.default_rng(0).normal(size=(20, 900))
    with pytest.raises(MemlensInputError, match=r"at most 8192 parameters per model.*p = .*9010"):
        fit_logistic(X, np.arange(20) % 10, np.ones((1, 20)), preconditioner="full-hessian")
