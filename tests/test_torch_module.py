"""The user's own torch module as a population (memlens.train.torch_module): vectorized equals a plain torch loop,
weight 0 equals removal, the audit runs on a factory file, and bad factories get one clear line."""
import json
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from memlens import MemlensInputError, MemlensTrainingError
from memlens.cli import main
from memlens.data import from_arrays, load_dataset
from memlens.train import TorchModule, train_population
from memlens.train.torch_module import _build, _lr_factor, _streams, fit_module_block, input_shape_of

NET_FILE = '''
from torch import nn


def make_net(input_shape, n_classes):
    c, h, w = input_shape
    return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * h * w, n_classes))


def not_a_module(input_shape, n_classes):
    return "a string"


def no_parameters(input_shape, n_classes):
    return nn.Flatten()


def wrong_shape(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], n_classes + 1))
'''


def cnn(input_shape, n_classes):
    c, h, w = input_shape
    return nn.Sequential(nn.Conv2d(c, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * h * w, n_classes))


class Residual(nn.Module):
    def __init__(self, d, n_classes):
        super().__init__()
        self.inp = nn.Linear(d, 16)
        self.block = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16))
        self.out = nn.Linear(16, n_classes)

    def forward(self, x):
        h = torch.relu(self.inp(x.flatten(1)))
        return self.out(h + self.block(h))


def residual(input_shape, n_classes):
    return Residual(int(np.prod(input_shape)), n_classes)


class DataDependent(nn.Module):
    """Control flow on the data: not vectorizable."""

    def __init__(self, d, n_classes):
        super().__init__()
        self.lin = nn.Linear(d, n_classes)

    def forward(self, x):
        x = x.flatten(1)
        if x.sum() > 0:
            return self.lin(x)
        return self.lin(-x)


def data_dependent(input_shape, n_classes):
    return DataDependent(int(np.prod(input_shape)), n_classes)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    X = (d.X_train[:200] / 16.0).astype(np.float32)
    return X, d.y_train[:200].astype(np.int64)


def _reference(factory, X, y, masks, seeds, config, input_shape):
    """Each model trained alone by a plain torch loop with the same seed and minibatches."""
    streams, n_steps = _streams(masks, seeds, config.epochs, config.batch_size)
    Xt = torch.as_tensor(X).reshape(-1, *input_shape)
    yt = torch.as_tensor(y)
    out = []
    for k in range(masks.shape[0]):
        m = _build(factory, input_shape, 10, seeds[k], "cpu")
        m.train()
        if config.optimizer == "sgd":
            opt = torch.optim.SGD(m.parameters(), lr=config.lr, momentum=config.momentum,
                                  weight_decay=config.weight_decay, nesterov=config.nesterov)
        else:
            opt = torch.optim.Adam(m.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        for t, batch in enumerate(streams[k]):
            for g in opt.param_groups:
                g["lr"] = config.lr * _lr_factor(config.schedule, t, n_steps)
            loss = nn.functional.cross_entropy(m(Xt[batch]), yt[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        with torch.no_grad():
            out.append(m(Xt).double().numpy())
    return np.stack(out)


@pytest.mark.parametrize("factory,shape,settings", [
    (cnn, (1, 8, 8), dict(optimizer="sgd", momentum=0.9, weight_decay=5e-4, schedule="cosine", nesterov=True)),
    (residual, (64,), dict(optimizer="adam", lr=0.01, weight_decay=0.0, schedule="linear")),
])
def test_vectorized_block_equals_a_plain_torch_loop(digits, factory, shape, settings):
    X, y = digits
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 200), dtype=bool)
    for k, size in enumerate((140, 140, 120, 97)):   # unequal subsets: models finish their epochs at other steps
        masks[k, rng.choice(200, size, replace=False)] = True
    seeds = np.array([11, 12, 13, 14])
    cfg = TorchModule(factory, epochs=2, batch_size=32, vectorize=True, **{"lr": 0.05, **settings})
    fit = fit_module_block(cfg, X, y, masks=masks, seeds=seeds, n_classes=10, input_shape=shape)
    assert fit.vectorized
    ref = _reference(factory, X, y, masks, seeds, cfg, shape)
    np.testing.assert_allclose(fit.logits(X), ref, atol=2e-4, rtol=1e-4)
    loop = fit_module_block(TorchModule(factory, epochs=2, batch_size=32, vectorize=False, **{"lr": 0.05, **settings}),
                            X, y, masks=masks, seeds=seeds, n_classes=10, input_shape=shape)
    assert not loop.vectorized
    np.testing.assert_allclose(loop.logits(X), ref, atol=2e-4, rtol=1e-4)
    steps = np.array([len(s) for s in _streams(masks, seeds, 2, 32)[0]])
    np.testing.assert_array_equal(fit.n_steps, steps)


def test_weight_zero_equals_removal(digits):
    """An example outside a model's mask is never drawn: training on the mask equals training on the data with the
    OUT rows deleted (same seed, same minibatch order of the remaining rows)."""
    X, y = digits
    mask = np.random.default_rng(1).random(200) < 0.6
    cfg = TorchModule(cnn, epochs=2, batch_size=16, lr=0.05)
    with_mask = fit_module_block(cfg, X, y, masks=mask[None], seeds=np.array([5]), n_classes=10,
                                 input_shape=(1, 8, 8))
    removed = fit_module_block(cfg, X[mask], y[mask], masks=np.ones((1, int(mask.sum())), dtype=bool),
                               seeds=np.array([5]), n_classes=10, input_shape=(1, 8, 8))
    np.testing.assert_array_equal(with_mask.logits(X), removed.logits(X))


def test_train_population_of_a_module_and_its_identity(digits):
    X, y = digits
    ds = from_arrays(X, y, X[:50], y[:50], image_shape=(8, 8), name="d")
    assert input_shape_of(ds) == (1, 8, 8)
    masks = np.random.default_rng(2).random((3, 200)) < 0.7
    pop = train_population(ds, model=TorchModule(cnn, epochs=1, batch_size=32), masks=masks, seed=0)
    assert pop.signal("train", "logit").shape == (3, 200) and pop.signal("test", "loss").shape == (3, 50)
    rec = pop.provenance["model"]
    assert rec["name"] == "torch-module" and rec["factory"].endswith(":cnn") and len(rec["factory_sha256"]) == 64
    assert pop.provenance["convergence"]["unit"] == "SGD steps"
    # shards reproduce the whole run: model k depends on its own seed and rows only
    part = train_population(ds, model=TorchModule(cnn, epochs=1, batch_size=32), masks=masks[1:], seed=0,
                            model_offset=1)
    np.testing.assert_allclose(part.signal("train", "logit"), pop.signal("train", "logit")[1:], atol=1e-4)


def test_not_vectorizable_module_falls_back_with_one_line(digits):
    X, y = digits
    masks = np.random.default_rng(3).random((2, 200)) < 0.7
    with pytest.warns(UserWarning, match="cannot be vectorized"):
        fit = fit_module_block(TorchModule(data_dependent, epochs=1, batch_size=32), X, y, masks=masks,
                               seeds=np.array([1, 2]), n_classes=10, input_shape=(64,))
    assert not fit.vectorized
    with pytest.raises(MemlensInputError, match="cannot be vectorized"):
        fit_module_block(TorchModule(data_dependent, epochs=1, vectorize=True), X, y, masks=masks,
                         seeds=np.array([1, 2]), n_classes=10, input_shape=(64,))


def test_bad_factories_are_refused_with_one_line(digits, tmp_path):
    X, y = digits
    path = tmp_path / "net.py"
    path.write_text(NET_FILE)
    masks = np.ones((2, 200), dtype=bool)
    cases = [(f"{tmp_path}/missing.py:make_net", "does not exist"), (f"{path}:nothing", "has no function 'nothing'"),
             (f"{path}:not_a_module", "must return a torch.nn.Module"),
             (f"{path}:no_parameters", "no trainable parameters"),
             (f"{path}:wrong_shape", "n_classes=10"), ("justaname", "factory spec")]
    for spec, msg in cases:
        with pytest.raises(MemlensInputError, match=msg):
            cfg = TorchModule(spec, epochs=1)
            fit_module_block(cfg, X, y, masks=masks, seeds=np.array([1, 2]), n_classes=10, input_shape=(1, 8, 8))
    with pytest.raises(MemlensInputError, match="optimizer must be one of"):
        TorchModule(cnn, optimizer="lbfgs")
    with pytest.raises(MemlensInputError, match="unknown field"):
        TorchModule(cnn, epoch=3)


def test_non_finite_loss_names_the_model_and_the_step(digits):
    X, y = digits
    with pytest.raises(MemlensTrainingError, match=r"model [0-9]+ has a non-finite training loss at step [0-9]+"):
        fit_module_block(TorchModule(residual, epochs=5, lr=1e8, momentum=0.9, weight_decay=0.0), X, y,
                         masks=np.ones((2, 200), dtype=bool), seeds=np.array([1, 2]), n_classes=10,
                         input_shape=(64,), model_offset=3)


def test_audit_of_a_module_file_end_to_end_and_resume_refuses_a_changed_architecture(data_file, tmp_path, capsys):
    net = tmp_path / "net.py"
    net.write_text(NET_FILE)
    out = tmp_path / "run"
    args = ["audit", "--data", str(data_file), "--model", f"{net}:make_net", "--models", "4", "--shard-size", "2",
            "--model-param", "epochs=2", "--model-param", "batch_size=32", "--attack-targets", "2", "--out",
            str(out), "--no-progress"]
    assert main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["model"] == f"{net}:make_net" and s["model_config"]["name"] == "torch-module"
    assert s["model_config"]["epochs"] == 2 and len(s["model_config"]["factory_sha256"]) == 64
    assert (out / "examples.csv").exists() and (out / "report.html").exists() and s["n_shards"] == 2
    assert 0.3 < s["test_accuracy"] <= 1.0
    before = (out / "summary.json").read_bytes()
    net.write_text(NET_FILE.replace("nn.Conv2d(c, 4", "nn.Conv2d(c, 5").replace("4 * h * w", "5 * h * w"))
    capsys.readouterr()
    assert main(args[:-2] + ["--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "memlens: error:" in err
    assert (out / "summary.json").read_bytes() == before
    assert main(["audit", "--data", str(data_file), "--model", f"{net}:make_net", "--dp-epsilon", "8",
                 "--out", str(tmp_path / "dp")]) == 2
    assert "no DP-SGD" in capsys.readouterr().err


def test_warnings_do_not_leak_from_the_speed_trial(digits):
    X, y = digits
    masks = np.random.default_rng(4).random((3, 200)) < 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_module_block(TorchModule(residual, epochs=1, batch_size=32), X, y, masks=masks,
                               seeds=np.array([1, 2, 3]), n_classes=10, input_shape=(64,))
    assert fit.n_steps.min() >= 1


# ---------------------------------------------------------------------------------------------- augmentation, cnn
def test_shift_flip_by_hand():
    from memlens.train.torch_module import shift_flip

    x = torch.arange(9, dtype=torch.float32).reshape(1, 1, 3, 3)          # B=1, C=1, H=W=3
    same = shift_flip(x, np.array([1]), np.array([1]), np.array([False]), 1)
    assert torch.equal(same, x)
    down_right = shift_flip(x, np.array([0]), np.array([0]), np.array([False]), 1)   # content moves down-right
    assert down_right[0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 3, 4]]
    mirrored = shift_flip(x, np.array([1]), np.array([1]), np.array([True]), 1)
    assert mirrored[0, 0].tolist() == [[2, 1, 0], [5, 4, 3], [8, 7, 6]]


def test_augmented_vectorized_block_equals_the_plain_loop_with_the_same_draws(digits):
    from memlens.train.torch_module import _augment_draws, shift_flip

    X, y = digits
    masks = np.random.default_rng(5).random((3, 200)) < 0.7
    seeds = np.array([21, 22, 23])
    cfg = TorchModule(cnn, epochs=2, batch_size=32, lr=0.05, augment=True, flip=True, crop_padding=1,
                      vectorize=True)
    fit = fit_module_block(cfg, X, y, masks=masks, seeds=seeds, n_classes=10, input_shape=(1, 8, 8))
    streams, n_steps = _streams(masks, seeds, 2, 32)
    draws = _augment_draws(streams, seeds, 1, True)
    Xt, yt = torch.as_tensor(X).reshape(-1, 1, 8, 8), torch.as_tensor(y)
    for k in range(3):
        m = _build(cnn, (1, 8, 8), 10, seeds[k], "cpu")
        opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        for t, batch in enumerate(streams[k]):
            dy, dx, fl = draws[k][t]
            loss = nn.functional.cross_entropy(m(shift_flip(Xt[batch], dy, dx, fl, 1)), yt[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        with torch.no_grad():
            np.testing.assert_allclose(fit.logits(X)[k], m(Xt).double().numpy(), atol=2e-4, rtol=1e-4)


def test_query_augmentation_averages_the_signals(digits):
    from memlens.population import signals_from_logits
    from memlens.train.torch_module import augmented_queries, query_signals

    X, y = digits
    fit = fit_module_block(TorchModule(cnn, epochs=1, batch_size=32), X, y, masks=np.ones((2, 200), dtype=bool),
                           seeds=np.array([1, 2]), n_classes=10, input_shape=(1, 8, 8))
    plain = signals_from_logits(fit.logits(X), y)
    one = query_signals(fit, X, y, [(1, 1, False, 1)])          # the identity query alone: the plain signals
    for name in ("logit", "loss", "correct"):
        np.testing.assert_allclose(one[name], plain[name], rtol=1e-6, atol=1e-6)
    queries = augmented_queries(1, True)
    assert queries == [(1, 1, False, 1), (1, 1, True, 1), (0, 0, False, 1), (2, 2, False, 1)]
    many = query_signals(fit, X, y, queries)
    per = [signals_from_logits(fit.logits(X, query=q), y) for q in queries]
    np.testing.assert_allclose(many["logit"], np.mean([p["logit"] for p in per], axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(many["correct"], plain["correct"])


def test_builtin_cnn_audit_and_its_refusals(data_file, tmp_path, capsys):
    from memlens.train import get_trainer

    out = tmp_path / "cnn"
    assert main(["audit", "--data", str(data_file), "--model", "cnn", "--models", "4", "--model-param", "epochs=2",
                 "--model-param", "query_augment=true", "--attack-targets", "2", "--out", str(out),
                 "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["model"] == "cnn" and s["model_config"]["augment"] is True and s["model_config"]["width"] == 16
    assert s["trainer"]["convergence_by_shard"][0]["unit"] == "SGD steps" and 0 <= s["test_accuracy"] <= 1
    with pytest.raises(MemlensInputError, match="unknown field"):
        get_trainer("cnn").make_config(widht=8)
    tab = from_arrays(np.zeros((20, 5), np.float32), np.arange(20) % 2, np.zeros((4, 5), np.float32),
                      np.arange(4) % 2, name="tab")
    with pytest.raises(MemlensInputError, match="needs images"):
        train_population(tab, model=get_trainer("cnn").make_config(epochs=1, augment=False),
                         masks=np.ones((2, 20), dtype=bool), seed=0)


@pytest.mark.parametrize("spec,msg", [("missing.py:make_net", "does not exist"), ("{net}:nothing", "no function"),
                                      ("{net}:wrong_shape", "n_classes=10"), ("{net}:not_a_module", "nn.Module")])
def test_cli_refuses_bad_factories_in_one_line_before_any_work(data_file, tmp_path, capsys, spec, msg):
    net = tmp_path / "net.py"
    net.write_text(NET_FILE)
    out = tmp_path / "run"
    code = main(["audit", "--data", str(data_file), "--model", spec.format(net=net), "--models", "2",
                 "--model-param", "epochs=1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("memlens: error: --model") and err.count("\n") == 1 and msg in err
    assert "Traceback" not in err and not out.exists()


def dropout_net(input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 32), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(32, n_classes))


def test_dropout_draws_per_model_masks_and_evaluation_is_deterministic(digits):
    X, y = digits
    masks = np.ones((3, 200), dtype=bool)
    seeds = np.array([7, 7, 7])        # the same seed and rows: only dropout's per-model masks can separate them
    fit = fit_module_block(TorchModule(dropout_net, epochs=2, batch_size=32, vectorize=True), X, y, masks=masks,
                           seeds=seeds, n_classes=10, input_shape=(64,))
    logits = fit.logits(X)
    assert not np.allclose(logits[0], logits[1])            # randomness="different": each model its own masks
    np.testing.assert_array_equal(logits, fit.logits(X))    # eval mode: no dropout
    no_drop = fit_module_block(TorchModule(residual, epochs=1, batch_size=32, vectorize=True), X, y, masks=masks,
                               seeds=seeds, n_classes=10, input_shape=(64,)).logits(X)
    np.testing.assert_allclose(no_drop[0], no_drop[1], atol=1e-6)   # without dropout the three models coincide


def test_cuda_is_refused_where_torch_sees_no_gpu(digits):
    X, y = digits
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(MemlensInputError, match="no GPU"):
        fit_module_block(TorchModule(residual, epochs=1, device="cuda"), X, y, masks=np.ones((2, 200), dtype=bool),
                         seeds=np.array([1, 2]), n_classes=10, input_shape=(64,))


def test_strided_cnn_arch(digits):
    from memlens.train import get_trainer

    X, y = digits
    ds = from_arrays(X, y, X[:40], y[:40], image_shape=(8, 8), name="d")
    cfg = get_trainer("cnn").make_config(arch="strided", epochs=1, batch_size=32)
    pop = train_population(ds, model=cfg, masks=np.ones((2, 200), dtype=bool), seed=0)
    assert pop.signal("test", "logit").shape == (2, 40) and pop.provenance["model"]["arch"] == "strided"
    with pytest.raises(MemlensInputError, match="arch must be one of"):
        get_trainer("cnn").make_config(arch="vgg")
