"""Canaries and the one-run audit with inserted canaries (Steinke, Nasr & Jagielski 2023)."""
import json

import numpy as np
import pytest

from memlens import MemlensInputError
from memlens.data import CanarySet, from_arrays, load_dataset, make_canaries, with_canaries
from memlens.evaluation import canary_masks, one_run_audit, one_run_canary_audit
from memlens.train import DPConfig


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_mislabeled_canaries_copy_inputs_with_other_labels(digits):
    c = make_canaries(digits, n_canaries=300, kind="mislabeled", seed=3)
    assert isinstance(c, CanarySet) and c.n_canaries == 300
    assert np.unique(c.source_index).size == 300                      # distinct rows
    np.testing.assert_array_equal(c.X, digits.X_train[c.source_index])
    np.testing.assert_array_equal(c.original_label, digits.y_train[c.source_index])
    assert np.all(c.y != c.original_label)
    assert c.y.min() >= 0 and c.y.max() < digits.n_classes
    # the new label is uniform over the 9 other classes: every class offset occurs
    assert np.unique((c.y - c.original_label) % 10).size == 9
    c2 = make_canaries(digits, n_canaries=300, kind="mislabeled", seed=3)
    np.testing.assert_array_equal(c.y, c2.y)


def test_random_label_canaries_lie_in_the_feature_box(digits):
    c = make_canaries(digits, n_canaries=200, kind="random-label", seed=0)
    lo, hi = digits.X_train.min(0), digits.X_train.max(0)
    assert np.all(c.X >= lo) and np.all(c.X <= hi)
    assert np.all(c.source_index == -1)
    assert np.unique(c.y).size == digits.n_classes


def test_with_canaries_appends_to_training_split(digits):
    c = make_canaries(digits, n_canaries=50, seed=1)
    d2, idx = with_canaries(digits, c)
    n = digits.n_train
    np.testing.assert_array_equal(idx, np.arange(n, n + 50))
    np.testing.assert_array_equal(d2.X_train[:n], digits.X_train)
    np.testing.assert_array_equal(d2.y_train[:n], digits.y_train)
    np.testing.assert_array_equal(d2.X_train[idx], c.X)
    np.testing.assert_array_equal(d2.y_train[idx], c.y)
    assert np.all(d2.y_train[idx] != digits.y_train[c.source_index])
    np.testing.assert_array_equal(d2.X_test, digits.X_test)
    assert d2.fingerprint() != digits.fingerprint()


def test_canary_masks_base_always_in_canaries_half():
    masks = canary_masks(20, 100, 500, seed=0)
    assert masks.shape == (20, 600)
    assert masks[:, :100].all()
    frac = masks[:, 100:].mean()
    assert abs(frac - 0.5) < 4 * np.sqrt(0.25 / 10_000)             # 4 standard errors of 10,000 Bernoulli(1/2)
    c = np.corrcoef(masks[:, 100:].astype(float))[np.triu_indices(20, 1)]
    assert np.abs(c).max() < 4 / np.sqrt(500)                       # rows independent


def test_nonprivate_audit_finds_positive_epsilon(digits):
    r = one_run_canary_audit(digits, n_canaries=500, kind="mislabeled", seed=0, n_models=2)
    assert r.accountant_epsilon is None and r.consistent is None
    assert r.scores.shape == r.included.shape == (2, 500)
    assert r.included[:, :].mean() == pytest.approx(0.5, abs=0.06)
    assert np.all(r.epsilons > 0.5) and r.epsilon_mean > 0.7
    # each audit is one_run_audit on the scores (minus loss) and inclusions
    a = one_run_audit(r.scores[0], r.included[0], k_pos=[25, 50, 125, 250], k_neg=[25, 50, 125, 250],
                      delta=r.delta, beta=0.05)
    assert a.epsilon == pytest.approx(r.audits[0].epsilon)
    # members score higher: the top-scored canaries are mostly included
    top = np.argsort(-r.scores[0])[:100]
    assert r.included[0, top].mean() > 0.65
    d = r.to_dict()
    json.dumps(d)
    assert d["epsilon_mean"] == pytest.approx(r.epsilon_mean)


def test_random_label_canaries_audit_above_one(digits):
    r = one_run_canary_audit(digits, n_canaries=200, kind="random-label", seed=0)
    assert r.epsilons[0] > 1.0


@pytest.mark.parametrize("eps", [1.0, 2.0])
def test_dp_audit_stays_below_accountant(digits, eps):
    for seed in (0, 1, 2):
        r = one_run_canary_audit(digits, n_canaries=300, seed=seed, dp=DPConfig(epsilon=eps, epochs=3))
        assert r.accountant_epsilon is not None and r.accountant_epsilon <= eps + 0.02
        assert r.delta == pytest.approx(r.dp["delta"])
        assert r.consistent
        assert np.all(r.epsilons <= r.accountant_epsilon)


def test_bad_input(digits):
    with pytest.raises(MemlensInputError, match="n_canaries"):
        make_canaries(digits, n_canaries=1)
    with pytest.raises(MemlensInputError, match="kind"):
        make_canaries(digits, n_canaries=10, kind="poison")
    with pytest.raises(MemlensInputError, match="n_canaries"):
        make_canaries(digits, n_canaries=digits.n_train + 1, kind="mislabeled")
    with pytest.raises(MemlensInputError, match="n_canaries"):
        one_run_canary_audit(digits, n_canaries=1)
    with pytest.raises(MemlensInputError, match="kind"):
        one_run_canary_audit(digits, n_canaries=10, kind="poison")
    with pytest.raises(MemlensInputError, match="seed"):
        one_run_canary_audit(digits, n_canaries=10, seed=-1)
    other = from_arrays(np.random.default_rng(0).random((20, 3)), np.arange(20) % 2)
    with pytest.raises(MemlensInputError, match="features"):
        with_canaries(other, make_canaries(digits, n_canaries=5))
    with pytest.raises(MemlensInputError, match="CanarySet"):
        with_canaries(digits, np.zeros((5, 64)))


def test_one_run_audit_as_a_run_directory_equals_in_memory_and_resumes(tmp_path, monkeypatch):
    """With ``out`` the audit is a recipe on the audit pipeline: the same scores as in memory (one shard, the same
    block), canaries.csv and summary.json written, and a second call with resume trains nothing."""
    import json

    import memlens.train
    from memlens.data import load_dataset

    data = load_dataset("digits").subset(train_index=np.arange(300), test_index=np.arange(60))
    kw = dict(model="logreg", n_canaries=40, kind="mislabeled", seed=3, n_models=3)
    mem = one_run_canary_audit(data, **kw)
    out = tmp_path / "run"
    disk = one_run_canary_audit(data, out=out, shard_size=3, **kw)
    np.testing.assert_array_equal(disk.scores, mem.scores)
    np.testing.assert_array_equal(disk.included, mem.included)
    np.testing.assert_array_equal(disk.epsilons, mem.epsilons)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epsilon_per_model"] == mem.epsilons.tolist() and summary["n_shards"] == 1
    lines = (out / "canaries.csv").read_text().splitlines()
    assert lines[0] == "model,canary,included,score" and len(lines) == 1 + 3 * 40
    calls = []
    real = memlens.train.train_population
    monkeypatch.setattr(memlens.train, "train_population", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = one_run_canary_audit(data, out=out, resume=True, shard_size=3, **kw)
    assert calls == [] and np.array_equal(again.epsilons, mem.epsilons)
    with pytest.raises(MemlensInputError, match="resume"):   # another seed: another run, refused
        one_run_canary_audit(data, out=out, resume=True, shard_size=3, **{**kw, "seed": 4})
