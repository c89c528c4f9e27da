"""Label-only membership inference on a population: the ``robust`` signal recorded while training and the two
attacks that read it (memlens.train.label_queries, memlens.attacks.label_only)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from memlens import MemlensInputError
from memlens.attacks import attack_all_targets, calibrated_label_only, label_only_attack
from memlens.data import from_arrays
from memlens.train import FitFunction, LabelQueries, train_population
from memlens.train.label_queries import QUERY_ROWS, _shift_flip, label_robustness_signal, perturb_rows


def _blobs(n=160, d=12, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 60, d)).astype(np.float32)
    y = X[:, :n_classes].argmax(1)           # labels a function of the features (the oracle can avoid them)
    return from_arrays(X[:n], y[:n], X[n:], y[n:], name="blobs")


def memorizer(X, y, seed):
    """A label-only oracle: the nearest training row's label within radius 1.5, else a label that the labelling rule
    says is wrong."""
    Xt, yt = np.asarray(X), np.asarray(y)

    def predict(Z):
        d2 = ((Z[:, None, :] - Xt[None]) ** 2).sum(-1)
        j = d2.argmin(1)
        lab = np.where(d2[np.arange(len(Z)), j] < 1.5 ** 2, yt[j], (Z[:, :3].argmax(1) + 1) % 3)
        return np.eye(3)[lab] * 5.0
    return predict


def constant_model(X, y, seed):
    """Ignores its training set: the same fixed linear classifier for every model (the null attack's model)."""
    W = np.random.default_rng(123).standard_normal((X.shape[1], 3))

    def predict(Z):
        return np.asarray(Z) @ W
    return predict


def test_shift_flip_equals_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 6, 7))
    dy, dx = np.array([-2, 0, 1, 2, -1]), np.array([1, -2, 0, 2, 0])
    flip = np.array([False, True, False, True, False])
    out = _shift_flip(x, dy, dx, flip, 2)
    for r in range(5):
        ref = np.zeros_like(x[r])
        for i in range(6):
            for j in range(7):
                si, sj = i - dy[r], j - dx[r]   # out[i, j] = x[i - dy, j - dx] (a shift by (dy, dx)), zero outside
                if 0 <= si < 6 and 0 <= sj < 7:
                    ref[:, i, j] = x[r, :, si, sj]
        if flip[r]:
            ref = ref[..., ::-1]
        np.testing.assert_array_equal(out[r], ref)


def test_perturbations_are_a_function_of_seed_query_and_row():
    q = LabelQueries(n_queries=3, sigma=0.7, seed=5)
    X = np.zeros((10, 4), dtype=np.float32)
    a = perturb_rows(X, queries=q, query=1, row_offset=0, input_shape=(4,))
    np.testing.assert_array_equal(a, perturb_rows(X, queries=q, query=1, row_offset=0, input_shape=(4,)))
    assert a.dtype == np.float32 and not np.array_equal(a, perturb_rows(X, queries=q, query=2, row_offset=0,
                                                                      input_shape=(4,)))
    assert abs(float(a.std()) - 0.7) < 0.25
    # the chunk's first row is part of the seed: the next chunk's rows get fresh noise, not the first chunk's again
    assert not np.array_equal(a, perturb_rows(X, queries=q, query=1, row_offset=QUERY_ROWS, input_shape=(4,)))


def test_robust_signal_counts_correct_perturbed_labels():
    """Scores from a known rule: label = sign of the first feature; the fraction correct under the same
    perturbations, recomputed by hand."""
    q = LabelQueries(n_queries=5, sigma=1.0, seed=2)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)

    def scores(Z):
        s = np.stack([-Z[:, 0], Z[:, 0]], axis=1)
        return np.stack([s, -s])            # model 0 the rule, model 1 its opposite

    r = label_robustness_signal(scores, X, y, queries=q, n_models=2, input_shape=(3,))
    hand = np.mean([(perturb_rows(X, queries=q, query=k, row_offset=0, input_shape=(3,))[:, 0] > 0) == y
                    for k in range(5)], axis=0)
    np.testing.assert_allclose(r[0], hand, atol=1e-7)
    np.testing.assert_allclose(r[1], 1 - hand, atol=1e-7)


def test_oracle_population_auc_is_one_and_null_is_chance():
    ds = _blobs()
    rng = np.random.default_rng(3)
    masks = rng.random((10, ds.n_train)) < 0.5
    q = LabelQueries(n_queries=6, sigma=0.02)
    pop = train_population(ds, model=FitFunction(memorizer), masks=masks, label_queries=q)
    assert pop.provenance["label_queries"]["n_queries"] == 6
    assert "robust" in pop.signals["train"] and "robust" not in pop.signals["test"]
    r = pop.signal("train", "robust")
    assert np.all(r[masks] == 1.0) and r[~masks].max() < 1.0     # members always robust, non-members (almost) never
    for cal in (False, True):
        res = attack_all_targets(pop, "label_only", calibrated=cal)
        assert res.aggregate.to_dict()["auc"]["mean"] == pytest.approx(1.0)
    null = train_population(ds, model=FitFunction(constant_model), masks=masks, label_queries=q)
    raw = attack_all_targets(null, "label_only", calibrated=False)
    aucs = np.array(raw.aggregate.to_dict()["auc"]["per_target"])
    n_in, n_out = masks.sum(1), (~masks).sum(1)
    se = np.sqrt((n_in + n_out + 1) / (12 * n_in * n_out))          # null standard error of the AUC
    assert np.all(np.abs(aucs - 0.5) < 4 * se)
    cal = attack_all_targets(null, "label_only", calibrated=True)
    assert np.all(cal.results[0].scores[np.isfinite(cal.results[0].scores)] == 0.0)   # identical to its references


def test_calibrated_batch_equals_the_single_target_function():
    ds = _blobs(seed=1)
    masks = np.random.default_rng(4).random((8, ds.n_train)) < 0.5
    pop = train_population(ds, model="logreg", masks=masks, label_queries=LabelQueries(n_queries=4, sigma=1.5))
    R = pop.signal("train", "robust").astype(np.float64)
    for t in (0, 5):
        refs = np.delete(np.arange(8), t)
        want = calibrated_label_only(R[t], R[refs], masks[refs])
        got = label_only_attack(pop, target=t).scores
        np.testing.assert_allclose(got, want, atol=1e-9, equal_nan=True)


def test_images_modules_and_sklearn_record_the_signal():
    import torch

    rng = np.random.default_rng(0)
    X = rng.random((48, 1 * 6 * 6)).astype(np.float32)
    y = rng.integers(0, 2, 48)
    ds = from_arrays(X[:32], y[:32], X[32:], y[32:], name="tiny-images", image_shape=(1, 6, 6))
    masks = rng.random((3, 32)) < 0.6
    from memlens.train import TorchModule

    def net(input_shape, n_classes):
        return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 16, n_classes))

    pop = train_population(ds, model=TorchModule(net, epochs=2, batch_size=16), masks=masks,
                           label_queries=LabelQueries(n_queries=3, sigma=0.0, max_shift=1, flip=True))
    r = pop.signal("train", "robust")
    assert r.shape == (3, 32) and set(np.unique(r * 3).round(6)) <= {0.0, 1.0, 2.0, 3.0}
    from sklearn.linear_model import LogisticRegression
    pop2 = train_population(_blobs(), model=LogisticRegression(max_iter=200), backend="sklearn",
                            masks=np.random.default_rng(1).random((3, 160)) < 0.5,
                            label_queries=LabelQueries(n_queries=2, sigma=0.5))
    assert pop2.signal("train", "robust").shape == (3, 160)


def test_bad_label_queries_refused_before_work():
    ds = _blobs()
    masks = np.ones((2, ds.n_train), dtype=bool)
    masks[0, 0] = masks[1, 1] = False
    with pytest.raises(MemlensInputError, match="label_sigma"):
        LabelQueries(sigma=0.0)
    with pytest.raises(MemlensInputError, match="label_shift"):
        train_population(ds, model="logreg", masks=masks, label_queries=LabelQueries(max_shift=1))
    with pytest.raises(MemlensInputError, match="closed form"):
        train_population(ds, model="ridge", masks=masks, label_queries=LabelQueries())
    pop = train_population(ds, model="logreg", masks=masks)
    with pytest.raises(MemlensInputError, match="label-only queries"):
        label_only_attack(pop, target=0)


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "memlens", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_label_only_audit_and_resume(tmp_path):
    out = tmp_path / "run"
    r = _cli("audit", "--dataset", "digits", "--models", "8", "--label-only", "--label-queries", "4",
             "--no-progress", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    table = s["attacks"]["table"]
    assert {"label-only", "label-only-calibrated"} <= set(table)
    assert 0.45 < table["label-only"]["auc"]["mean"] < 0.8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["label_queries"]["n_queries"] == 4
    r = _cli("audit", "--resume", "--out", str(out), "--no-progress", cwd=tmp_path)   # settings from the manifest
    assert r.returncode == 0, r.stderr
    s2 = json.loads((out / "summary.json").read_text())
    assert s2["shards_trained"] == 0 and "label-only" in s2["attacks"]["table"]


@pytest.mark.parametrize("args,needle", [
    (("--label-shift", "2"), "--label-only"),
    (("--label-only", "--label-shift", "8"), "--label-shift must"),
    (("--label-only", "--model", "ridge"), "closed form"),
    (("--label-only", "--label-queries", "0"), "--label-queries"),
])
def test_cli_label_only_errors(tmp_path, args, needle):
    r = _cli("audit", "--dataset", "digits", "--models", "4", "--out", str(tmp_path / "x"), *args, cwd=tmp_path)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_label_only_audited_epsilon_stays_valid_on_balanced_masks():
    """The plain label-only attack reads the target only, so its audited ε holds even where every example is IN for
    the same number of models (the masks then reveal membership to attacks that read other models)."""
    from memlens.audits.attacks import audit_attacks

    ds = _blobs(seed=2)
    rng = np.random.default_rng(5)
    masks = np.zeros((6, ds.n_train), dtype=bool)
    for i in range(ds.n_train):
        masks[rng.permutation(6)[:3], i] = True                   # every example IN for exactly 3 of 6 models
    pop = train_population(ds, model="logreg", masks=masks, label_queries=LabelQueries(n_queries=4, sigma=1.0))
    att = audit_attacks(pop, memorization_scores=np.zeros(ds.n_train), n_targets=2)
    assert att.epsilon["label-only"].valid and att.epsilon["loss"].valid
    assert not att.epsilon["label-only-calibrated"].valid and not att.epsilon["lira-online"].valid
