"""Feldman–Zhang estimators: hand-computed values, a planted-memorization learner, brute force, invariants."""
import warnings

import numpy as np
import pytest

from memlens import MemlensInputError, MemlensWarning, Population
from memlens.data import make_masks
from memlens.measures import (
    high_influence_pairs,
    influence,
    influence_from_arrays,
    memorization,
    memorization_from_arrays,
    worst_case_stderr,
)


def toy_population():
    # 4 models x 3 training examples, 2 test examples; values computed by hand below.
    masks = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [0, 0, 1]], dtype=bool)
    correct_train = np.array([[1, 0, 1], [1, 1, 1], [0, 1, 0], [1, 0, 1]], dtype=float)
    correct_test = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)
    loss_train = np.array([[0.1, 2.0, 0.3], [0.2, 0.5, 1.0], [3.0, 0.4, 2.0], [1.0, 1.5, 0.2]])
    return Population(masks, {"train": {"correct": correct_train, "loss": loss_train},
                              "test": {"correct": correct_test}},
                      labels={"train": [0, 1, 0], "test": [0, 1]})


def test_memorization_hand_computed():
    res = memorization(toy_population())
    # example 0: IN models 0,1 -> (1+1)/2 = 1; OUT models 2,3 -> (0+1)/2 = 0.5; mem = 0.5
    # example 1: IN models 1,2 -> (1+1)/2 = 1; OUT models 0,3 -> 0; mem = 1
    # example 2: IN models 0,2,3 -> (1+0+1)/3 = 2/3; OUT model 1 -> 1; mem = -1/3
    np.testing.assert_allclose(res.scores, [0.5, 1.0, -1.0 / 3.0])
    np.testing.assert_array_equal(res.n_in, [2, 2, 3])
    np.testing.assert_array_equal(res.n_out, [2, 2, 1])
    # stderr of example 0: s2_in = 0, s2_out = var([0, 1], ddof=1) = 0.5 -> sqrt(0 + 0.5/2) = 0.5
    assert res.stderr[0] == pytest.approx(0.5)
    # example 2 has a single OUT model: variance undefined -> NaN stderr, score still defined
    assert np.isnan(res.stderr[2])
    assert res.n_memorized(0.25) == 2
    np.testing.assert_array_equal(res.ranking(), [1, 0, 2])


def test_loss_signal_is_negated():
    res = memorization(toy_population(), signal="loss")
    # example 0: IN loss mean (0.1+0.2)/2 = 0.15, OUT mean (3.0+1.0)/2 = 2.0 -> mem = 2.0 - 0.15 = 1.85
    assert res.scores[0] == pytest.approx(1.85)


def test_influence_hand_computed_and_matrix():
    pop = toy_population()
    res = influence(pop, top_k=2, threshold=0.4, return_matrix=True)
    # infl(i=0, j=0): IN models 0,1 test-correct (1,1) -> 1; OUT models 2,3 -> (0,0) -> 0; = 1
    # infl(i=0, j=1): IN (0,1) -> 0.5; OUT (1,0) -> 0.5; = 0
    # infl(i=1, j=0): IN models 1,2 -> (1,0) .5; OUT 0,3 -> (1,0) .5; = 0
    # infl(i=1, j=1): IN (1,1) -> 1; OUT (0,0) -> 0; = 1
    # infl(i=2, j=0): IN models 0,2,3 -> (1,0,0) 1/3; OUT model 1 -> 1; = -2/3
    # infl(i=2, j=1): IN (0,1,0) -> 1/3; OUT 1 -> 1; = -2/3
    expected = np.array([[1.0, 0.0, -2 / 3], [0.0, 1.0, -2 / 3]])
    np.testing.assert_allclose(res.matrix, expected)
    np.testing.assert_array_equal(res.top_index[:, 0], [0, 1, 0])
    assert sorted(zip(res.pair_train.tolist(), res.pair_eval.tolist())) == [(0, 0), (1, 1)]
    pairs = high_influence_pairs(memorization(pop), res, train_labels=pop.labels["train"],
                                 test_labels=pop.labels["test"], mem_threshold=0.25, infl_threshold=0.5)
    assert len(pairs) == 2 and pairs.n_unique_test == 2


def brute_force_influence(masks, values):
    n_models, n_train = masks.shape
    out = np.empty((values.shape[1], n_train))
    for i in range(n_train):
        out[:, i] = values[masks[:, i]].mean(0) - values[~masks[:, i]].mean(0)
    return out


@pytest.mark.parametrize("binary", [True, False])
def test_chunked_influence_matches_brute_force(binary):
    rng = np.random.default_rng(0)
    masks = make_masks(40, 37, p=0.6, seed=1)
    values = (rng.random((40, 23)) < 0.7).astype(float) if binary else rng.normal(size=(40, 23))
    res = influence_from_arrays(masks, values, top_k=3, threshold=0.1, return_matrix=True, chunk_size=5)
    bf = brute_force_influence(masks, values)
    np.testing.assert_allclose(res.matrix, bf, atol=1e-6)
    # top-k per training column and the thresholded pairs agree with the matrix
    for i in range(37):
        best = np.sort(bf[:, i])[::-1][:3]
        np.testing.assert_allclose(res.top_value[i], best, atol=1e-6)
    assert res.n_pairs == int((bf >= 0.1).sum())
    assert np.all(np.diff(res.pair_value) <= 0)


def test_influence_of_train_split_diagonal_is_memorization():
    rng = np.random.default_rng(3)
    masks = make_masks(30, 12, p=0.5, seed=2)
    values = (rng.random((30, 12)) < 0.5).astype(float)
    pop = Population(masks, {"train": {"correct": values}})
    res = influence(pop, split="train", return_matrix=True, top_k=1, threshold=None)
    np.testing.assert_allclose(np.diag(res.matrix), memorization(pop).scores, atol=1e-6)


def test_planted_memorization_lookup_learner():
    """A learner that memorizes only its singletons: mem = 1 - 1/m on them, 0 elsewhere (within variance)."""
    n_classes, n_models, n, p = 10, 600, 200, 0.7
    rng = np.random.default_rng(0)
    is_singleton = np.zeros(n, dtype=bool)
    is_singleton[rng.choice(n, 60, replace=False)] = True
    masks = make_masks(n_models, n, p=p, seed=1)
    # typical examples are always predicted correctly (a rule the learner generalizes); a singleton is
    # correct when it was trained on (lookup) and a uniform guess over the classes otherwise.
    guess_right = rng.random((n_models, n)) < 1.0 / n_classes
    correct = np.where(is_singleton, masks | guess_right, True).astype(float)
    res = memorization_from_arrays(masks, correct)
    target = 1 - 1 / n_classes
    # per-example: |score - target| within 4 standard errors of a Bernoulli(1/m) mean over n_out models
    se = np.sqrt((1 / n_classes) * (1 - 1 / n_classes) / res.n_out[is_singleton])
    assert np.all(np.abs(res.scores[is_singleton] - target) <= 4 * se)
    # mean over singletons: tolerance 4 SE of the average
    assert abs(res.scores[is_singleton].mean() - target) <= 4 * np.sqrt(np.mean(se**2) / is_singleton.sum())
    np.testing.assert_array_equal(res.scores[~is_singleton], 0.0)
    assert res.n_memorized(0.25) == is_singleton.sum()
    assert worst_case_stderr(n_models, p) >= np.nanmax(res.stderr)


def test_duplicate_test_point_has_influence_equal_to_memorization():
    """infl[j, i] for a test point j that duplicates train point i equals mem[i] (docs/theory.md, "Label memorization")."""
    rng = np.random.default_rng(5)
    masks = make_masks(500, 50, p=0.7, seed=6)
    correct_train = np.where(masks, 1.0, (rng.random(masks.shape) < 0.3).astype(float))
    pop = Population(masks, {"train": {"correct": correct_train}, "test": {"correct": correct_train[:, :10]}})
    res = influence(pop, top_k=1, threshold=None, return_matrix=True)
    np.testing.assert_allclose(res.matrix[np.arange(10), np.arange(10)], memorization(pop).scores[:10])


def test_permutation_equivariance_and_model_duplication():
    rng = np.random.default_rng(7)
    masks = make_masks(20, 15, p=0.5, seed=8)
    values = rng.normal(size=(20, 15))
    base = memorization_from_arrays(masks, values, signal="logit")
    perm = rng.permutation(15)
    permuted = memorization_from_arrays(masks[:, perm], values[:, perm], signal="logit")
    np.testing.assert_allclose(permuted.scores, base.scores[perm])
    doubled = memorization_from_arrays(np.vstack([masks, masks]), np.vstack([values, values]), signal="logit")
    np.testing.assert_allclose(doubled.scores, base.scores)
    model_perm = rng.permutation(20)
    np.testing.assert_allclose(memorization_from_arrays(masks[model_perm], values[model_perm]).scores,
                               base.scores)


def test_missing_out_models_give_nan_and_warning():
    masks = np.array([[1, 1], [1, 0], [1, 1]], dtype=bool)
    values = np.ones((3, 2))
    with pytest.warns(MemlensWarning, match="no IN or no OUT"):
        res = memorization_from_arrays(masks, values)
    assert np.isnan(res.scores[0]) and not np.isnan(res.scores[1])
    with pytest.warns(MemlensWarning):
        infl = influence_from_arrays(masks, values, top_k=1)
    assert infl.top_index[0, 0] == -1 and np.isnan(infl.top_value[0, 0])


def test_bad_inputs():
    masks = make_masks(4, 5, p=0.5, seed=0)
    with pytest.raises(MemlensInputError, match="values must have the same shape"):
        memorization_from_arrays(masks, np.zeros((4, 6)))
    with pytest.raises(MemlensInputError, match="NaN"):
        memorization_from_arrays(masks, np.full((4, 5), np.nan))
    with pytest.raises(MemlensInputError, match="split must be 'train'"):
        memorization(Population(masks, {"train": {"correct": np.zeros((4, 5))}}), split="test")
    with pytest.raises(MemlensInputError, match="signal must be one of"):
        memorization(Population(masks, {"train": {"correct": np.zeros((4, 5))}}), signal="nope")
    pop = toy_population()
    infl = influence(pop, threshold=0.5)
    with pytest.raises(MemlensInputError, match="recompute influence"):
        high_influence_pairs(memorization(pop), infl, train_labels=[0, 1, 0], test_labels=[0, 1],
                             infl_threshold=0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        memorization(pop)  # well-defined population: no warning


def test_pair_columns_restrict_collected_pairs_but_not_top_k():
    rng = np.random.default_rng(11)
    masks = make_masks(12, 30, p=0.5, seed=12)
    values = (rng.random((12, 20)) < 0.5).astype(float)
    full = influence_from_arrays(masks, values, top_k=3, threshold=0.1)
    cols = np.zeros(30, dtype=bool)
    cols[::3] = True
    part = influence_from_arrays(masks, values, top_k=3, threshold=0.1, pair_columns=cols)
    np.testing.assert_array_equal(part.top_value, full.top_value)
    keep = cols[full.pair_train]
    assert part.n_pairs == int(keep.sum()) and part.n_pairs < full.n_pairs
    assert set(zip(part.pair_train.tolist(), part.pair_eval.tolist())) == \
        set(zip(full.pair_train[keep].tolist(), full.pair_eval[keep].tolist()))
    with pytest.raises(MemlensInputError, match="pair_columns must be a boolean array"):
        influence_from_arrays(masks, values, pair_columns=np.ones(29, dtype=bool))
