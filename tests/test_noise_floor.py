"""Noise floors of the memorization and influence counts (memlens.measures.noise_floor)."""
import json

import numpy as np
import pytest

from memlens import MemlensInputError
from memlens.cli.main import main
from memlens.data import make_masks
from memlens.measures import memorization_from_arrays, models_for_stderr, noise_floor, null_masks


def test_null_masks_keep_every_examples_in_count_and_break_the_link():
    masks = make_masks(40, 300, p=0.7, seed=0)
    null = null_masks(masks, seed=1)
    np.testing.assert_array_equal(null.sum(axis=0), masks.sum(axis=0))
    assert null.dtype == bool and null.shape == masks.shape
    assert (null != masks).mean() > 0.3       # memberships really moved


def test_models_for_stderr_hand_computed():
    # stderr 0.1 with 32 models: the variance falls as 1/n, so (0.1/0.05)^2 * 32 = 128 models
    assert models_for_stderr(0.1, 32) == pytest.approx(128.0)
    assert models_for_stderr(0.05, 10) == pytest.approx(10.0)


def test_floor_matches_the_count_when_nothing_is_memorized():
    """Signals independent of the masks: the real count is noise, and the floor estimates it."""
    rng = np.random.default_rng(0)
    masks = make_masks(16, 4000, p=0.5, seed=1)
    values = (rng.random((16, 4000)) < 0.8).astype(float)       # correct with prob 0.8, whatever the masks
    real = memorization_from_arrays(masks, values).n_memorized(0.25)
    nf = noise_floor(masks, values, n_draws=5, seed=2)
    # each count is a sum of ~4000 rare indicators: Poisson-like, sd ~ sqrt(count)
    assert abs(real - nf.n_memorized) <= 4 * np.sqrt(max(nf.n_memorized, 1.0)) + 2
    assert nf.n_memorized > 10            # with 16 models the floor is far from 0


def test_floor_stays_low_where_memorization_is_planted():
    rng = np.random.default_rng(3)
    masks = make_masks(64, 2000, p=0.5, seed=4)
    values = (rng.random((64, 2000)) < 0.9).astype(float)
    planted = np.arange(200)
    values[:, planted] = masks[:, planted]            # correct exactly when trained on: memorization 1
    real = memorization_from_arrays(masks, values).n_memorized(0.25)
    nf = noise_floor(masks, values, seed=5)
    assert real >= 200 and nf.n_memorized < 20


def test_pair_floor_counts_only_same_label_pairs():
    rng = np.random.default_rng(6)
    masks = make_masks(12, 500, p=0.5, seed=7)
    train = (rng.random((12, 500)) < 0.7).astype(float)
    test = (rng.random((12, 300)) < 0.7).astype(float)
    y_tr, y_te = rng.integers(0, 3, 500), rng.integers(0, 3, 300)
    all_labels = noise_floor(masks, train, test_values=test, seed=8)
    same_label = noise_floor(masks, train, test_values=test, train_labels=y_tr, test_labels=y_te, seed=8)
    np.testing.assert_array_equal(all_labels.n_memorized_draws, same_label.n_memorized_draws)
    assert same_label.n_pairs <= all_labels.n_pairs and all_labels.n_pairs > 0


def test_bad_input():
    with pytest.raises(MemlensInputError, match="n_draws"):
        noise_floor(np.ones((4, 3), bool), np.ones((4, 3)), n_draws=0)
    with pytest.raises(MemlensInputError, match="target_stderr"):
        noise_floor(np.ones((4, 3), bool), np.ones((4, 3)), target_stderr=-1)


def test_audit_reports_the_floors(data_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["audit", "--data", str(data_file), "--models", "8", "--out", str(out), "--no-progress",
                 "--no-attacks"]) == 0
    printed = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert s["n_memorized_noise_floor"] == s["noise_floor"]["n_memorized"] >= 0
    assert s["n_pairs_noise_floor"] == s["noise_floor"]["n_pairs"] >= 0
    assert s["noise_floor"]["models_for_target_stderr_every_example"] >= 8
    assert "noise floor" in printed
    assert "noise floor" in (out / "report.html").read_text()
