"""Property-based tests (hypothesis): the mask maker, the Feldman–Zhang estimators' invariants, the weight-0
invariant of the trainer, the run-file reader under arbitrary byte corruption, and the signals of logits.

Settings: ``derandomize=True`` (the same examples on every run, for CI), ``deadline=None`` (a shared 2-core
machine), and small ``max_examples`` so that the file runs well under a minute.
"""
import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlens import MemlensInputError, MemlensWarning, Population, RunDir
from memlens.data import from_arrays, make_masks
from memlens.measures import influence_from_arrays, memorization_from_arrays
from memlens.population import signals_from_logits

PROPS = settings(max_examples=40, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FEW = settings(PROPS, max_examples=15)


# ------------------------------------------------------------------------------------------------ make_masks
@PROPS
@given(n_models=st.integers(2, 40), n_examples=st.integers(2, 60), p=st.floats(0.05, 0.95),
       seed=st.integers(0, 2**32 - 1))
def test_make_masks_exact_subset_sizes_and_determinism(n_models, n_examples, p, seed):
    m = int(round(p * n_examples))
    if not 1 <= m <= n_examples - 1:
        with pytest.raises(MemlensInputError, match="p \\* n_examples"):
            make_masks(n_models, n_examples, p=p, seed=seed)
        return
    masks = make_masks(n_models, n_examples, p=p, seed=seed)
    assert masks.shape == (n_models, n_examples) and masks.dtype == bool
    np.testing.assert_array_equal(masks.sum(axis=1), m)  # Feldman & Zhang: subsets of exactly m examples
    np.testing.assert_array_equal(masks, make_masks(n_models, n_examples, p=p, seed=seed))
    np.testing.assert_array_equal(masks, make_masks(n_models, n_examples, p=p, seed=np.random.default_rng(seed)))


@PROPS
@given(n_models=st.integers(2, 40), n_examples=st.integers(1, 60), p=st.floats(0.05, 0.95),
       seed=st.integers(0, 2**32 - 1))
def test_balanced_masks_exact_column_counts(n_models, n_examples, p, seed):
    k = int(round(p * n_models))
    if not 1 <= k <= n_models - 1:
        with pytest.raises(MemlensInputError, match="p \\* n_models"):
            make_masks(n_models, n_examples, p=p, seed=seed, balanced=True)
        return
    masks = make_masks(n_models, n_examples, p=p, seed=seed, balanced=True)
    assert masks.shape == (n_models, n_examples) and masks.dtype == bool
    np.testing.assert_array_equal(masks.sum(axis=0), k)  # every example IN for exactly k models
    np.testing.assert_array_equal(masks, make_masks(n_models, n_examples, p=p, seed=seed, balanced=True))


@PROPS
@given(seed=st.integers(0, 2**32 - 2))
def test_make_masks_different_seeds_differ(seed):
    a = make_masks(16, 40, p=0.5, seed=seed)
    b = make_masks(16, 40, p=0.5, seed=seed + 1)
    # two independent draws of 16 subsets of 20 out of 40 coincide with probability C(40, 20)^-16
    assert not np.array_equal(a, b)


# ------------------------------------------------------------------------------------------------ estimators
@st.composite
def populations(draw, min_models=3, max_models=16, max_examples=12, max_eval=6):
    """Masks (every example IN and OUT at least once), train values and evaluation values."""
    n_models = draw(st.integers(min_models, max_models))
    n = draw(st.integers(1, max_examples))
    n_eval = draw(st.integers(1, max_eval))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    masks = rng.random((n_models, n)) < 0.5
    masks[0], masks[1] = True, False  # every column has an IN and an OUT model
    binary = draw(st.booleans())
    values = (rng.random((n_models, n)) < 0.6).astype(np.float64) if binary else rng.normal(size=(n_models, n))
    evals = (rng.random((n_models, n_eval)) < 0.6).astype(np.float64) if binary else rng.normal(size=(n_models, n_eval))
    return masks, values, evals, rng


def _infl(masks, evals):
    return influence_from_arrays(masks, evals, top_k=0, threshold=None, return_matrix=True).matrix


@PROPS
@given(populations())
def test_permuting_examples_permutes_scores(pop):
    masks, values, evals, rng = pop
    perm = rng.permutation(masks.shape[1])
    a = memorization_from_arrays(masks, values)
    b = memorization_from_arrays(masks[:, perm], values[:, perm])
    np.testing.assert_allclose(b.scores, a.scores[perm], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.stderr, a.stderr[perm], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(b.n_in, a.n_in[perm])
    # influence: permuting training columns permutes its columns; permuting evaluation examples its rows
    pe = rng.permutation(evals.shape[1])
    np.testing.assert_allclose(_infl(masks[:, perm], evals[:, pe]), _infl(masks, evals)[pe][:, perm],
                               rtol=1e-9, atol=1e-12)


@PROPS
@given(populations())
def test_permuting_models_leaves_scores_unchanged(pop):
    masks, values, evals, rng = pop
    perm = rng.permutation(masks.shape[0])
    a = memorization_from_arrays(masks, values)
    b = memorization_from_arrays(masks[perm], values[perm])
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.stderr, a.stderr, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_infl(masks[perm], evals[perm]), _infl(masks, evals), rtol=1e-9, atol=1e-12)


@PROPS
@given(populations(), st.integers(2, 4))
def test_duplicating_the_model_axis_leaves_estimates_unchanged(pop, copies):
    masks, values, evals, _ = pop
    a = memorization_from_arrays(masks, values)
    b = memorization_from_arrays(np.tile(masks, (copies, 1)), np.tile(values, (copies, 1)))
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.mean_in, a.mean_in, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(b.n_in, copies * a.n_in)
    np.testing.assert_allclose(_infl(np.tile(masks, (copies, 1)), np.tile(evals, (copies, 1))), _infl(masks, evals),
                               rtol=1e-9, atol=1e-12)


@PROPS
@given(populations())
def test_memorization_is_the_influence_diagonal_and_brute_force(pop):
    masks, values, _, _ = pop
    mem = memorization_from_arrays(masks, values)
    brute = np.array([values[masks[:, i], i].mean() - values[~masks[:, i], i].mean()
                      for i in range(masks.shape[1])])
    np.testing.assert_allclose(mem.scores, brute, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.diag(_infl(masks, values)), mem.scores, rtol=1e-9, atol=1e-9)


@PROPS
@given(populations(), st.sampled_from(["all-in", "all-out"]))
def test_undefined_columns_are_nan_and_do_not_touch_the_others(pop, kind):
    masks, values, evals, rng = pop
    j = int(rng.integers(masks.shape[1]))
    masks = masks.copy()
    masks[:, j] = kind == "all-in"
    with pytest.warns(MemlensWarning):
        mem = memorization_from_arrays(masks, values)
    assert np.isnan(mem.scores[j])
    others = np.arange(masks.shape[1]) != j
    ok = masks[:, others].any(0) & (~masks[:, others]).any(0)
    assert np.all(np.isfinite(mem.scores[others][ok]))
    with pytest.warns(MemlensWarning):
        res = influence_from_arrays(masks, evals, top_k=1, threshold=-np.inf, return_matrix=True)
    assert np.all(np.isnan(res.matrix[:, j])) and j not in res.pair_train and np.isnan(res.pair_value).sum() == 0


@FEW
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(12, 30))
def test_weight_zero_equals_removing_the_example(seed, n):
    """docs/architecture.md, "Performance": weighted training with weight 0 equals training without the example."""
    from memlens.train import fit_logistic

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = np.arange(n) % 3
    w = (rng.random(n) < 0.7).astype(np.float64)
    w[:3] = 1.0  # every class keeps an example
    keep = w > 0
    a = fit_logistic(X, y, w[None], n_classes=3, C=0.5, tol=1e-10, max_iter=2000, precision="float64")
    b = fit_logistic(X[keep], y[keep], np.ones((1, int(keep.sum()))), n_classes=3, C=0.5, tol=1e-10,
                     max_iter=2000, precision="float64")
    # strictly convex objective: both certify max|grad| <= 1e-10, so the optima agree to about tol / lambda
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-7)
    np.testing.assert_allclose(a.intercept, b.intercept, atol=1e-7)


# ------------------------------------------------------------------------------------------------ run files
N_TRAIN, N_MODELS, SHARD = 10, 6, 3
_DS = from_arrays(np.arange(N_TRAIN * 2, dtype=np.float32).reshape(N_TRAIN, 2), np.arange(N_TRAIN) % 2,
                  np.ones((3, 2), np.float32), np.array([0, 1, 0]))
_MASKS = make_masks(N_MODELS, N_TRAIN, seed=3)
_CONFIG = {"dataset": "toy", "model": "none", "seed": 0}


def _shard_pop(k):
    rows = slice(k * SHARD, (k + 1) * SHARD)
    rng = np.random.default_rng(k)
    return Population(_MASKS[rows], {"train": {"logit": rng.normal(size=(SHARD, N_TRAIN))},
                                     "test": {"logit": rng.normal(size=(SHARD, 3))}},
                      seeds=np.arange(k * SHARD, (k + 1) * SHARD), labels={"train": _DS.y_train},
                      provenance={"shard": k})


@pytest.fixture(scope="module")
def run_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "run"
    run = RunDir.create(path, _CONFIG, _DS, _MASKS, shard_size=SHARD)
    for k in range(run.n_shards):
        run.write_shard(k, _shard_pop(k))
    files = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    return files


def _materialize(files, root):
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _corrupt(data: bytes, how, pos: float, byte: int) -> bytes:
    i = min(int(pos * len(data)), len(data) - 1)
    if how == "truncate":
        return data[:i]
    if how == "flip":
        return data[:i] + bytes([data[i] ^ (byte or 1)]) + data[i + 1:]
    if how == "insert":
        return data[:i] + bytes([byte]) + data[i:]
    return data[:i] + data[i + 1:]  # delete


CORRUPTION = dict(how=st.sampled_from(["truncate", "flip", "insert", "delete"]), pos=st.floats(0, 1),
                  byte=st.integers(0, 255))


@settings(PROPS, max_examples=100)
@given(which=st.sampled_from(["npz", "json"]), k=st.integers(0, 1), **CORRUPTION)
def test_corrupted_shard_is_detected_or_round_trips(run_template, tmp_path_factory, which, k, how, pos, byte):
    root = _materialize(run_template, tmp_path_factory.mktemp("c"))
    target = root / "population" / "shards" / f"shard-{k:05d}.{which}"
    target.write_bytes(_corrupt(target.read_bytes(), how, pos, byte))
    run = RunDir.open(root)
    other = 1 - k
    assert run.has_shard(other)  # the intact shard is unaffected
    if run.has_shard(k):  # accepted: then it must read back exactly what was written
        got, want = run.load_shard(k), _shard_pop(k)
        for split in ("train", "test"):
            np.testing.assert_array_equal(got.signal(split, "logit"), want.signal(split, "logit"))
        np.testing.assert_array_equal(got.masks, want.masks)
        np.testing.assert_array_equal(got.seeds, want.seeds)
    else:  # detected: listed as missing and never half-read
        assert k in run.missing_shards()
        with pytest.raises(MemlensInputError, match=f"shard {k}"):
            run.load_shard(k)
        with pytest.raises(MemlensInputError, match="missing or damaged"):
            run.load_population()


#: What identifies a run and locates its shards. Descriptive fields (the dataset's name and sizes as recorded,
#: versions, creation time) are not part of the identity: a damaged one is not detected, and nothing reads it back.
_IDENTITY = ("format", "run_id", "config", "n_models", "shard_size", "n_shards", "masks_sha256")


@settings(PROPS, max_examples=100)
@given(**CORRUPTION)
def test_corrupted_manifest_is_refused_or_round_trips(run_template, tmp_path_factory, how, pos, byte):
    root = _materialize(run_template, tmp_path_factory.mktemp("m"))
    original = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_bytes(_corrupt((root / "manifest.json").read_bytes(), how, pos, byte))
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MemlensWarning)  # e.g. a damaged package-versions record
            run = RunDir.open_for_resume(root, _CONFIG, _DS, _MASKS, shard_size=SHARD)
    except MemlensInputError:
        # refused: nothing in the run was changed
        assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
        return
    # accepted: every field that identifies the run is exactly as written, and the shards still verify
    for key in _IDENTITY:
        assert run.manifest[key] == original[key], key
    assert run.manifest["dataset"]["fingerprint"] == original["dataset"]["fingerprint"]
    assert run.missing_shards() == []


# ------------------------------------------------------------------------------------------------ signals
@st.composite
def logits_and_labels(draw):
    k = draw(st.integers(1, 3))
    n = draw(st.integers(1, 6))
    c = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0, 50.0]))
    rng = np.random.default_rng(seed)
    return rng.normal(size=(k, n, c)) * scale, rng.integers(0, c, size=n), rng


@PROPS
@given(logits_and_labels(), st.floats(-100, 100))
def test_signals_from_logits_invariants(data, shift):
    z, y, rng = data
    s = signals_from_logits(z, y)
    k, n, c = z.shape
    for name in ("logit", "loss", "correct"):
        assert s[name].shape == (k, n) and s[name].dtype == np.float32
    # a constant added to every class score of a row changes nothing
    s2 = signals_from_logits(z + shift + rng.normal(size=(k, n, 1)), y)
    np.testing.assert_allclose(s2["logit"], s["logit"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(s2["loss"], s["loss"], rtol=1e-4, atol=1e-3)
    # relabeling the classes (permuting the last axis and the labels together) changes nothing
    perm = rng.permutation(c)
    inv = np.argsort(perm)
    s3 = signals_from_logits(z[..., perm], inv[y])
    for name in ("logit", "loss", "correct"):
        np.testing.assert_allclose(s3[name], s[name], rtol=1e-6, atol=1e-6)
    # definitions: loss = -log p_y >= 0; stable logit = log p_y - log(1 - p_y); correct = argmax hits y
    p = np.exp(z - z.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    p_y = np.take_along_axis(p, np.broadcast_to(y[None, :, None], (k, n, 1)), axis=2)[..., 0]
    assert np.all(s["loss"] >= 0)
    np.testing.assert_allclose(s["loss"], -np.log(p_y), rtol=1e-5, atol=1e-5)
    moderate = (p_y > 1e-6) & (p_y < 1 - 1e-6)
    np.testing.assert_allclose(s["logit"][moderate], np.log(p_y[moderate]) - np.log1p(-p_y[moderate]), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_array_equal(s["correct"], (z.argmax(axis=2) == y[None]).astype(np.float32))
    # the stable logit is monotone in p_y: positive exactly when p_y > 1/2
    assert np.all((s["logit"] > 0)[moderate] == (p_y > 0.5)[moderate])
