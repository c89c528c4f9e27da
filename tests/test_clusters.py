"""Brown et al.'s cluster labeling generator: calibration, singletons, ground truth, test sets."""
import math

import numpy as np
import pytest

from memlens import MemlensInputError, MemlensWarning
from memlens.tasks.clusters import calibrated_rho, find_singletons, make_cluster_instance, make_cluster_labeling


def test_calibrated_rho_matches_the_paper():
    # docs/theory.md: rho(n=500, d=1000, a=50000) = 0.17390, about 174 fixed coordinates per cluster
    rho = calibrated_rho(500, 1000, a=50000)
    assert rho == pytest.approx(0.17390, abs=5e-6)
    by_hand = math.sqrt((2 * math.log(50000 * 0.368 * 500) - math.log(math.log(500))) / 1000)
    assert rho == pytest.approx(by_hand, rel=1e-12)
    assert round(rho * 1000) == 174
    # rho scales as 1/sqrt(d) and grows with a
    assert calibrated_rho(500, 4000) == pytest.approx(rho / 2, rel=1e-12)
    assert calibrated_rho(500, 1000, a=1e6) > rho


@pytest.mark.parametrize("kwargs", [dict(n=1, d=10), dict(n=500, d=10), dict(n=500, d=0),
                                    dict(n=500, d=1000, a=0.0), dict(n=500, d=1000, a=1e-9)])
def test_calibrated_rho_rejects_bad_input(kwargs):
    with pytest.raises(MemlensInputError):
        calibrated_rho(kwargs.pop("n"), kwargs.pop("d"), **kwargs)


def test_generator_has_about_174_fixed_coordinates_per_cluster():
    data = make_cluster_labeling(n=500, seed=3)
    inst = data.instance
    assert data.d == 1000 and data.n_clusters == 500 and inst.rho == pytest.approx(0.17390, abs=5e-6)
    k = inst.n_fixed
    # k_j ~ Binomial(1000, rho): the mean of 500 draws has sd sqrt(1000 rho (1 - rho) / 500) ~ 0.54
    sd = math.sqrt(1000 * inst.rho * (1 - inst.rho) / 500)
    assert abs(k.mean() - 1000 * inst.rho) < 4.5 * sd
    assert abs(k.var(ddof=1) / (1000 * inst.rho * (1 - inst.rho)) - 1) < 0.3
    # fixed values are signs on F_j and 0 elsewhere; F_j is uniform: every coordinate fixed with rate rho
    assert np.all(np.abs(inst.values[inst.fixed]) == 1) and np.all(inst.values[~inst.fixed] == 0)
    per_coord = inst.fixed.mean(axis=0)
    assert abs(per_coord.mean() - inst.rho) < 0.01
    assert np.all(np.abs(per_coord - inst.rho) < 5 * math.sqrt(inst.rho * (1 - inst.rho) / 500))


def _singleton_moments(n, N):
    """Exact mean and variance of the number of singleton clusters when n points pick uniformly among N."""
    p1 = n / N * (1 - 1 / N) ** (n - 1)
    p11 = n * (n - 1) / N ** 2 * (1 - 2 / N) ** (n - 2)
    return N * p1, N * p1 * (1 - p1) + N * (N - 1) * (p11 - p1 ** 2)


def test_singleton_fraction_is_about_0_368():
    n = N = 500
    mean, var = _singleton_moments(n, N)
    assert mean / N == pytest.approx(0.368, abs=1e-3)
    counts = np.array([make_cluster_labeling(n=n, d=60, rho=0.5, n_test=0, seed=s).singletons.size
                       for s in range(20)])
    # the average of 20 independent counts is within 4 standard errors of the exact mean
    assert abs(counts.mean() - mean) < 4 * math.sqrt(var / counts.size)
    assert abs(counts.mean() / N - 0.368) < 0.02


def test_find_singletons_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 30, size=rng.integers(1, 60))
        brute = [i for i in range(len(y)) if sum(int(v == y[i]) for v in y) == 1]
        assert find_singletons(y).tolist() == brute
    assert find_singletons(np.array([], dtype=np.int64)).size == 0
    assert find_singletons([4, 4, 4]).size == 0
    assert find_singletons([2, 0, 2, 1]).tolist() == [1, 3]
    with pytest.raises(MemlensInputError):
        find_singletons([0.5, 1.0])
    with pytest.raises(MemlensInputError):
        find_singletons([0, 5], n_clusters=3)


def test_samples_hold_the_fixed_coordinates_and_free_bits_are_uniform():
    inst = make_cluster_instance(n_clusters=40, d=300, rho=0.3, seed=1)
    labels = np.repeat(np.arange(40), 50)
    X = inst.sample(labels, seed=2)
    assert X.dtype == np.float32 and X.shape == (2000, 300) and set(np.unique(X)) == {-1.0, 1.0}
    fixed = inst.fixed[labels]
    assert np.array_equal(X[fixed], inst.values[labels][fixed].astype(np.float32))
    free = X[~fixed]
    # free bits are fair coins: the mean of m signs has sd 1/sqrt(m)
    assert abs(free.mean()) < 4 / math.sqrt(free.size)
    # ... and independent of the cluster's values (no leakage of v_j into free coordinates)
    assert np.array_equal(inst.free_mask(labels), ~fixed)
    assert np.array_equal(inst.bit_entropy(labels[:3]), (~fixed[:3]).astype(float))
    assert inst.fixed_indices(5).tolist() == np.flatnonzero(inst.fixed[5]).tolist()


def test_correlated_variant_agrees_with_the_centre_at_rate_one_plus_rho_over_two():
    rho = 0.4
    inst = make_cluster_instance(n_clusters=10, d=500, rho=rho, variant="correlated", seed=0)
    assert not inst.fixed.any() and set(np.unique(inst.values)) == {-1, 1}
    labels = np.repeat(np.arange(10), 40)
    X = inst.sample(labels, seed=1)
    agree = (X == inst.values[labels]).mean()
    m = X.size
    assert abs(agree - (1 + rho) / 2) < 4 * math.sqrt(0.7 * 0.3 / m)
    h = -(0.3 * math.log2(0.3) + 0.7 * math.log2(0.7))
    assert np.allclose(inst.bit_entropy([0, 1]), h)


def test_test_sets_draw_from_the_right_clusters():
    data = make_cluster_labeling(n=200, d=100, n_test=300, seed=5)
    assert data.X_test.shape == data.X_represented.shape == data.X_singles.shape == (300, 100)
    assert np.array_equal(data.counts, np.bincount(data.y, minlength=200))
    assert np.all(data.counts[data.y_represented] >= 1)
    assert np.all(data.counts[data.y_singles] == 1)
    assert set(data.y_singles) <= set(data.singleton_clusters.tolist())
    # the singles set covers most singleton clusters (300 draws among ~74)
    assert len(set(data.y_singles)) > 0.9 * data.singletons.size
    assert np.array_equal(data.represented_clusters, np.flatnonzero(data.counts > 0))
    # every test point satisfies its cluster's fixed coordinates
    for X, y in data.test_sets().values():
        fixed = data.instance.fixed[y]
        assert np.array_equal(X[fixed], data.instance.values[y][fixed].astype(np.float32))


def test_upsampling_and_seeds():
    data = make_cluster_labeling(n=100, seed=7)
    X2, y2 = data.upsampled(2)
    assert X2.shape[0] == 100 + data.singletons.size
    assert np.array_equal(X2[100:], data.X[data.singletons]) and np.array_equal(y2[100:], data.y[data.singletons])
    assert find_singletons(y2).size == 0  # every singleton now appears twice
    again = make_cluster_labeling(n=100, seed=7)
    other = make_cluster_labeling(n=100, seed=8)
    assert np.array_equal(again.X, data.X) and np.array_equal(again.X_singles, data.X_singles)
    assert not np.array_equal(other.X, data.X)
    ds = data.to_dataset(test="singles")
    assert ds.n_train == 100 and ds.n_test == data.y_singles.size and ds.n_classes == 100


def test_bad_input_is_named():
    with pytest.raises(MemlensInputError, match="variant"):
        make_cluster_instance(n_clusters=3, d=5, rho=0.2, variant="gaussian")
    with pytest.raises(MemlensInputError, match="rho"):
        make_cluster_instance(n_clusters=3, d=5, rho=1.5)
    with pytest.raises(MemlensInputError, match="labels"):
        make_cluster_instance(n_clusters=3, d=50, rho=0.2).sample([0, 3])
    with pytest.warns(MemlensWarning, match="fix no coordinate"):
        make_cluster_instance(n_clusters=50, d=5, rho=0.01, seed=0)
