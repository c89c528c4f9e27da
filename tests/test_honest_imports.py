"""External imports never read unknown membership as OUT, and refuse probabilities passed as logits."""
import numpy as np
import pytest

from memlens import MemlensInputError, Population
from memlens.attacks import lira
from memlens.attacks.external import population_from_logits, population_from_signals
from memlens.measures import influence, memorization
from memlens.population import output_kind, signals_from_logits


def _arrays(seed=0, n_ref=12, n=60, n_test=20, C=3):
    rng = np.random.default_rng(seed)
    masks = rng.random((n_ref + 2, n)) < 0.5
    y = rng.integers(0, C, n)
    logits = rng.normal(size=(n_ref + 2, n, C))
    logits[np.arange(n_ref + 2)[:, None], np.arange(n)[None, :], y[None, :]] += 2.0 * masks
    test_logits = rng.normal(size=(n_ref + 2, n_test, C))
    return masks, y, logits, test_logits, rng.integers(0, C, n_test)


def test_unknown_target_membership_is_left_out_not_read_as_out():
    masks, y, logits, test_logits, y_test = _arrays()
    with pytest.warns(UserWarning, match="unknown"):
        pop = population_from_logits(logits[:2], logits[2:], y, target_mask=None, reference_masks=masks[2:],
                                     target_test_logits=test_logits[:2], reference_test_logits=test_logits[2:],
                                     test_labels=y_test)
    np.testing.assert_array_equal(pop.known_rows, [False, False] + [True] * 12)
    refs_only = pop.select(np.arange(2, 14))
    assert refs_only.known_rows.all()
    mem = memorization(pop)
    np.testing.assert_array_equal(mem.scores, memorization(refs_only).scores)
    np.testing.assert_array_equal(mem.n_out, (~masks[2:]).sum(axis=0))      # the targets are not counted as OUT
    inf_all = influence(pop, top_k=2, threshold=None)
    np.testing.assert_array_equal(inf_all.top_value, influence(refs_only, top_k=2, threshold=None).top_value)
    # attacks: target 0's references are the known models only (not the other unknown target)
    a = lira(pop, target=0, online=True, fix_variance=True)
    known = Population(np.concatenate([masks[:1], masks[2:]]),
                       {s: {k: np.concatenate([v[:1], v[2:]]) for k, v in d.items()} for s, d in pop.signals.items()},
                       None, dict(pop.labels), {})
    b = lira(known, target=0, online=True, fix_variance=True)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6, equal_nan=True)


def test_select_and_concat_keep_track_of_unknown_rows():
    masks, y, logits, _, _ = _arrays(1)
    with pytest.warns(UserWarning):
        pop = population_from_logits(logits[:2], logits[2:], y, target_mask=None, reference_masks=masks[2:])
    sel = pop.select([5, 1, 0])
    np.testing.assert_array_equal(sel.known_rows, [True, False, False])
    both = Population.concat([pop.select([3, 4]), pop.select([0, 1])])
    np.testing.assert_array_equal(both.known_rows, [True, True, False, False])


def test_known_target_membership_changes_nothing():
    masks, y, logits, _, _ = _arrays(2)
    pop = population_from_logits(logits[:2], logits[2:], y, target_mask=masks[:2], reference_masks=masks[2:])
    assert pop.known_rows.all()
    assert memorization(pop).n_in.sum() == masks.sum()


def test_probabilities_passed_as_logits_are_refused_with_the_fix():
    masks, y, logits, _, _ = _arrays(3)
    proba = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    assert output_kind(proba) == "proba" and output_kind(np.log(proba)) == "log-proba"
    assert output_kind(logits) == "logits"
    with pytest.raises(MemlensInputError, match="probabilities.*target_proba.npy"):
        population_from_logits(proba[:1], proba[1:], y, target_mask=masks[:1], reference_masks=masks[1:])
    # log-probabilities are logits up to a constant per row: accepted, with exactly the signals of the logits
    a = population_from_logits(np.log(proba[:1]), np.log(proba[1:]), y, target_mask=masks[:1],
                               reference_masks=masks[1:])
    b = population_from_logits(logits[:1], logits[1:], y, target_mask=masks[:1], reference_masks=masks[1:])
    for k in ("logit", "loss", "correct", "pred"):
        np.testing.assert_allclose(a.signal("train", k), b.signal("train", k), rtol=1e-4, atol=1e-4)
    # and log-probabilities passed as probabilities are refused, naming the fix
    with pytest.raises(MemlensInputError, match="log-probabilities"):
        population_from_logits(np.log(proba[:1]), np.log(proba[1:]), y, target_mask=masks[:1],
                               reference_masks=masks[1:], kind="proba")


def test_signals_include_the_predicted_class():
    z = np.array([[[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]]])
    s = signals_from_logits(z, np.array([1, 2]))
    np.testing.assert_array_equal(s["pred"], [[1.0, 0.0]])
    np.testing.assert_array_equal(s["correct"], [[1.0, 0.0]])


def test_population_from_signals_unknown_rows_recorded():
    rng = np.random.default_rng(4)
    with pytest.warns(UserWarning):
        pop = population_from_signals(rng.normal(size=30), rng.normal(size=(5, 30)), target_mask=None,
                                      reference_masks=rng.random((5, 30)) < 0.5)
    assert pop.provenance["unknown_membership_rows"] == [0]
    assert memorization(pop, signal="logit").n_in.sum() == pop.masks[1:].sum()
