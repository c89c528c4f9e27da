"""Datasets, masks, Population persistence and signals."""
import numpy as np
import pytest

from memlens import MemlensInputError, Population
from memlens._random import model_seeds
from memlens.data import from_arrays, load_dataset, make_masks
from memlens.population import signals_from_logits, signals_from_proba


def test_digits_split_and_fingerprint():
    d = load_dataset("digits")
    assert (d.n_train, d.n_test, d.n_features, d.n_classes) == (1347, 450, 64, 10)
    assert d.image_shape == (8, 8) and 0 <= d.X_train.min() and d.X_train.max() <= 1
    assert d.fingerprint() == load_dataset("digits").fingerprint()
    assert d.subset(train_index=np.arange(10)).fingerprint() != d.fingerprint()


def test_unknown_dataset_names_the_choices():
    with pytest.raises(MemlensInputError, match="dataset must be one of .*got 'cifar'"):
        load_dataset("cifar")


def test_from_arrays_rejects_bad_input():
    X = np.random.default_rng(0).normal(size=(10, 3))
    y = np.array([0, 1] * 5)
    with pytest.raises(MemlensInputError, match="X_train contains 1 NaN"):
        bad = X.copy(); bad[2, 1] = np.nan; from_arrays(bad, y)
    with pytest.raises(MemlensInputError, match="one label per row"):
        from_arrays(X, y[:-1])
    with pytest.raises(MemlensInputError, match="at least 2 classes"):
        from_arrays(X, np.zeros(10, dtype=int))
    with pytest.raises(MemlensInputError, match="must be >= 0"):
        from_arrays(X, y - 1)
    with pytest.raises(MemlensInputError, match="same number of features"):
        from_arrays(X, y, X[:, :2], y)
    d = from_arrays(X, y, X[:4], y[:4])
    assert d.n_classes == 2 and d.n_test == 4


@pytest.mark.parametrize("p", [0.3, 0.5, 0.7])
def test_masks_exact_subset_sizes(p):
    m = make_masks(50, 101, p=p, seed=0)
    assert m.dtype == bool and m.shape == (50, 101)
    np.testing.assert_array_equal(m.sum(1), round(p * 101))


def test_balanced_masks_every_example_half_in():
    m = make_masks(64, 300, p=0.5, seed=1, balanced=True)
    np.testing.assert_array_equal(m.sum(0), 32)
    assert abs(m.sum(1).mean() - 150) < 1e-9  # total IN count is exact


def test_masks_reproducible_and_validated():
    np.testing.assert_array_equal(make_masks(8, 20, seed=3), make_masks(8, 20, seed=3))
    assert not np.array_equal(make_masks(8, 20, seed=3), make_masks(8, 20, seed=4))
    with pytest.raises(MemlensInputError, match="n_models must be >= 2"):
        make_masks(1, 10)
    with pytest.raises(MemlensInputError, match="p must be strictly between 0 and 1"):
        make_masks(4, 10, p=1.0)


def test_model_seeds_depend_only_on_run_seed_and_index():
    full = model_seeds(7, 10)
    np.testing.assert_array_equal(np.concatenate([model_seeds(7, 4), model_seeds(7, 6, start=4)]), full)
    assert len(set(full.tolist())) == 10 and np.all(full >= 0)


def test_signals_from_logits_hand_computed():
    z = np.log(np.array([[[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]]]))
    s = signals_from_logits(z, np.array([0, 1]))
    np.testing.assert_allclose(s["logit"][0], [np.log(0.7 / 0.3), np.log(0.25 / 0.75)], rtol=1e-6)
    np.testing.assert_allclose(s["loss"][0], [-np.log(0.7), -np.log(0.25)], rtol=1e-6)
    np.testing.assert_array_equal(s["correct"][0], [1, 0])
    sp = signals_from_proba(np.exp(z), np.array([0, 1]))
    np.testing.assert_allclose(sp["logit"], s["logit"], rtol=1e-5)


def test_population_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    masks = make_masks(6, 9, seed=0)
    pop = Population(masks, {"train": {"logit": rng.normal(size=(6, 9))}, "test": {"logit": rng.normal(size=(6, 4))}},
                     seeds=np.arange(6) * 11, labels={"train": np.arange(9) % 3, "test": [0, 1, 2, 0]},
                     provenance={"dataset": "toy", "n": 1})
    pop.save(tmp_path / "p")
    back = Population.load(tmp_path / "p")
    np.testing.assert_array_equal(back.masks, pop.masks)
    np.testing.assert_array_equal(back.signal("test", "logit"), pop.signal("test", "logit"))
    np.testing.assert_array_equal(back.seeds, pop.seeds)
    np.testing.assert_array_equal(back.labels["train"], pop.labels["train"])
    assert back.provenance["dataset"] == "toy"
    both = Population.concat([pop.select(slice(0, 2)), pop.select(slice(2, 6))])
    np.testing.assert_array_equal(both.signal("train", "logit"), pop.signal("train", "logit"))


def test_population_rejects_mismatched_shapes_and_corrupt_files(tmp_path):
    masks = make_masks(4, 5, seed=0)
    with pytest.raises(MemlensInputError, match="n_models=4"):
        Population(masks, {"train": {"x": np.zeros((3, 5))}})
    with pytest.raises(MemlensInputError, match="one column per training example"):
        Population(masks, {"train": {"x": np.zeros((4, 6))}})
    f = tmp_path / "population.npz"
    f.write_bytes(b"not a zip")
    with pytest.raises(MemlensInputError, match="corrupted or truncated"):
        Population.load(tmp_path)


def test_population_file_with_damaged_zip_structure_is_a_clear_error(tmp_path):
    pop = Population(make_masks(3, 4, seed=0), {"train": {"x": np.zeros((3, 4))}})
    pop.save(tmp_path)
    raw = bytearray((tmp_path / "population.npz").read_bytes())
    raw[-10:] = b"\x00" * 10  # break the zip's end-of-central-directory record
    (tmp_path / "population.npz").write_bytes(bytes(raw))
    with pytest.raises(MemlensInputError, match="corrupted or truncated"):
        Population.load(tmp_path)


def test_signals_from_logits_against_scipy_logsumexp_with_extreme_margins():
    """logit = z_y - logsumexp(z_{-y}), loss = logsumexp(z) - z_y (scipy), also where the other classes' terms
    underflow (margins of +-2000, the fallback path) and for float32 input."""
    from scipy.special import logsumexp

    from memlens.population import signals_from_logits

    rng = np.random.default_rng(5)
    z = rng.normal(scale=6.0, size=(3, 40, 4))
    y = rng.integers(0, 4, size=40)
    z[0, 0] = -1000.0
    z[0, 0, y[0]] = 1000.0                               # confident and right: logit 2000 - log(3)
    z[1, 1] = 1000.0
    z[1, 1, y[1]] = -1000.0                              # confident and wrong
    z[2, 2] = 0.0                                        # a tie: argmax picks the first class
    out = signals_from_logits(z.astype(np.float32), y)
    z32 = z.astype(np.float32).astype(np.float64)
    for k in range(3):
        for i in range(40):
            rest = np.delete(z32[k, i], y[i])
            assert out["logit"][k, i] == pytest.approx(z32[k, i, y[i]] - logsumexp(rest), rel=1e-6, abs=1e-5)
            assert out["loss"][k, i] == pytest.approx(logsumexp(z32[k, i]) - z32[k, i, y[i]], rel=1e-6, abs=1e-5)
            assert out["correct"][k, i] == float(np.argmax(z32[k, i]) == y[i])
    assert out["logit"][0, 0] == pytest.approx(2000.0 - np.log(3.0))
