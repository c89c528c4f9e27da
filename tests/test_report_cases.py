"""The report separates cases: what the OUT models predict beside every memorized example, feature names for
tabular data, '<0.001' for standard errors where all models agree, no padding rows."""
import re

import numpy as np

from memlens.data import load_dataset, make_masks
from memlens.measures import (
    high_influence_pairs,
    influence_from_arrays,
    memorization_from_arrays,
    out_predictions,
)
from memlens.report.html import render_report


def test_out_predictions_hand_computed():
    masks = np.array([[1, 0], [0, 0], [0, 1], [0, 0]], dtype=bool)
    pred = np.array([[3, 1], [2, 1], [2, 0], [1, 0]], dtype=np.float32)
    r = out_predictions(masks, pred, 4)
    # example 0: OUT models 1, 2, 3 predict 2, 2, 1 -> class 2, share 2/3; example 1: OUT 0, 1, 3 -> 1, 1, 0
    np.testing.assert_array_equal(r.majority, [2, 1])
    np.testing.assert_allclose(r.share, [2 / 3, 2 / 3])
    np.testing.assert_array_equal(r.n_out, [3, 3])
    # no OUT model, or no recorded prediction: undefined
    r2 = out_predictions(np.ones((2, 1), bool), np.zeros((2, 1)), 2)
    assert r2.majority[0] == -1 and np.isnan(r2.share[0])
    r3 = out_predictions(np.zeros((2, 1), bool), np.full((2, 1), np.nan), 2)
    assert r3.majority[0] == -1


def test_tabular_report_shows_out_predictions_feature_names_and_tiny_stderr():
    ds = load_dataset("wine")
    n_models = 40
    masks = make_masks(n_models, ds.n_train, p=0.5, seed=0)
    rng = np.random.default_rng(0)
    correct = (rng.random(masks.shape) < 0.95).astype(float)
    correct[:, :3] = masks[:, :3]                     # three examples memorized exactly (stderr 0)
    pred = np.where(correct > 0, ds.y_train[None, :], (ds.y_train[None, :] + 1) % ds.n_classes).astype(np.float32)
    mem = memorization_from_arrays(masks, correct)
    infl = influence_from_arrays(masks, (rng.random((n_models, ds.n_test)) < 0.9).astype(float), threshold=0.15)
    pairs = high_influence_pairs(mem, infl, train_labels=ds.y_train, test_labels=ds.y_test)
    summary = {"dataset": ds.name, "n_train": ds.n_train, "n_test": ds.n_test, "n_classes": ds.n_classes,
               "model": "logreg", "model_config": {}, "n_models": n_models, "subset_ratio": 0.5, "seed": 0,
               "train_accuracy": 1.0, "test_accuracy": 0.9, "mem_threshold": 0.25, "infl_threshold": 0.15,
               "n_memorized": mem.n_memorized(0.25), "n_pairs": len(pairs), "n_pairs_unique_test": pairs.n_unique_test}
    page = render_report(summary=summary, dataset=ds, memorization=mem, influence=infl, pairs=pairs,
                         out_pred=out_predictions(masks, pred, ds.n_classes))
    table = page[page.index("most memorized training examples</h2>"):page.index("least memorized training examples")]
    assert "OUT models predict" in table and "alcohol" in table and "x[0]" not in table
    assert "&lt;0.001" in table                        # stderr of the exactly memorized examples
    # example 0 is memorized and its OUT models always predict the next class
    other = ds.class_names[(int(ds.y_train[0]) + 1) % ds.n_classes]
    assert f"{other} (100%)" in table
    # no padding: every listed example has positive memorization
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td>", table)
    assert rows and all(mem.scores[int(i)] > 0 for i in rows)
