"""Report figures and the self-contained HTML page, on synthetic results (no training)."""
import base64
import re

import numpy as np
import pytest

from memlens import MemlensInputError
from memlens.data import from_arrays, load_dataset, make_masks
from memlens.measures import high_influence_pairs, influence_from_arrays, memorization_from_arrays
from memlens.report import figures
from memlens.report.html import figure_to_data_uri, render_report

PNG = b"\x89PNG\r\n\x1a\n"


def _images(html_text):
    return [base64.b64decode(u) for u in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html_text)]


def _results(ds, n_models=40, seed=0):
    """Planted memorization: models are right on train example i only when they saw it, for i < 10."""
    rng = np.random.default_rng(seed)
    masks = make_masks(n_models, ds.n_train, p=0.5, seed=seed)
    correct_train = np.where(np.arange(ds.n_train) < 10, masks, rng.random(masks.shape) < 0.9).astype(float)
    # test example j (< 5) is right exactly when training example j was in: a near-duplicate with influence 1
    correct_test = (rng.random((n_models, ds.n_test)) < 0.9).astype(float)
    correct_test[:, :5] = masks[:, :5]
    mem = memorization_from_arrays(masks, correct_train)
    infl = influence_from_arrays(masks, correct_test, top_k=4, threshold=0.15)
    pairs = high_influence_pairs(mem, infl, train_labels=ds.y_train, test_labels=ds.y_test)
    summary = {"dataset": ds.name, "n_train": ds.n_train, "n_test": ds.n_test, "n_classes": ds.n_classes,
               "model": "logreg", "model_config": {"C": 1.0}, "n_models": n_models, "subset_ratio": 0.5,
               "seed": seed, "train_accuracy": 0.99, "test_accuracy": 0.9, "mem_threshold": 0.25,
               "infl_threshold": 0.15, "n_memorized": mem.n_memorized(0.25), "n_pairs": len(pairs),
               "n_pairs_unique_test": pairs.n_unique_test, "runtime_seconds": 1.5, "versions": {"numpy": "x"},
               "run_id": "abc"}
    return summary, mem, infl, pairs


@pytest.fixture(scope="module")
def digits_small():
    d = load_dataset("digits")
    ds = d.subset(train_index=np.arange(120), test_index=np.arange(40))
    # make test examples 0..4 copies of train examples 0..4 with the same label (near-duplicates)
    X_test = ds.X_test.copy()
    y_test = ds.y_test.copy()
    X_test[:5], y_test[:5] = ds.X_train[:5], ds.y_train[:5]
    return from_arrays(ds.X_train, ds.y_train, X_test, y_test, name="digits-small", image_shape=(8, 8))


def test_histogram_counts_threshold_and_nan():
    scores = np.array([0.0, 0.1, 0.3, 0.9, np.nan, 0.25])
    fig = figures.memorization_histogram(scores, threshold=0.25)
    ax = fig.axes[0]
    assert sum(p.get_height() for p in ax.patches) == 5  # the NaN is not binned
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("3 of 6" in t for t in labels)  # 0.3, 0.9 and 0.25 are >= 0.25
    assert any("1 undefined" in t for t in labels)
    assert figure_to_data_uri(fig).startswith("data:image/png;base64,")


def _painted(fig, image_shape):
    """Every tile of a canvas figure read back from its one RGB image: (n_tiles, h, w, 3) uint8, sampled at the
    centre of each image pixel."""
    canvas = np.asarray(fig.axes[0].images[0].get_array())
    h, w = image_shape
    out = []
    for r0, r1, c0, c1 in fig._memlens_tiles:
        rows = r0 + ((np.arange(h) + 0.5) * (r1 - r0) / h).astype(int)
        cols = c0 + ((np.arange(w) + 0.5) * (c1 - c0) / w).astype(int)
        out.append(canvas[np.ix_(rows, cols)])
    return np.array(out)


def _expected(img, cmap="gray_r"):
    from matplotlib import colormaps

    return np.round(colormaps[cmap](np.clip(img / max(1.0, img.max()), 0, 1))[..., :3] * 255).astype(np.uint8)


def test_image_grid_draws_every_image_with_its_caption():
    imgs = np.random.default_rng(0).random((10, 12))
    fig = figures.image_grid(imgs, image_shape=(3, 4), captions=[f"c{k}" for k in range(10)], n_cols=4)
    ax = fig.axes[0]
    assert len(ax.images) == 1 and len(fig._memlens_tiles) == 10     # one canvas image holds every tile
    painted = _painted(fig, (3, 4))
    for k in range(10):
        np.testing.assert_allclose(painted[k], _expected(imgs[k].reshape(3, 4)), atol=1)
    # tiles do not overlap
    boxes = fig._memlens_tiles
    for a in range(10):
        for b in range(a + 1, 10):
            (r0, r1, c0, c1), (s0, s1, d0, d1) = boxes[a], boxes[b]
            assert r1 <= s0 or s1 <= r0 or c1 <= d0 or d1 <= c0
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"c{k}" for k in range(10))
    with pytest.raises(MemlensInputError, match="image_shape"):
        figures.image_grid(imgs, image_shape=(5, 5))
    with pytest.raises(MemlensInputError, match="captions"):
        figures.image_grid(imgs, image_shape=(3, 4), captions=["a"])


def test_pair_figure_skips_blank_cells():
    rng = np.random.default_rng(1)
    train = rng.random((2, 16))
    test = rng.random((2, 3, 16))
    test[1, 2] = np.nan  # fewer than k influenced test examples
    caps = [["a", "b", "c"], ["d", "e", "f"]]
    fig = figures.pair_figure(train, test, image_shape=(4, 4), train_captions=["T0", "T1"], test_captions=caps)
    ax = fig.axes[0]
    assert len(fig._memlens_tiles) == 2 + 5        # the NaN cell is left blank
    painted = _painted(fig, (4, 4))
    np.testing.assert_allclose(painted[0], _expected(train[0].reshape(4, 4)), atol=1)
    texts = {t.get_text() for t in ax.texts}
    assert {"T0", "T1", "a", "e"} <= texts and "f" not in texts
    with pytest.raises(MemlensInputError):
        figures.pair_figure(train, test[:1], image_shape=(4, 4))


def test_report_is_self_contained_with_inlined_pngs(digits_small):
    summary, mem, infl, pairs = _results(digits_small)
    assert len(pairs) >= 5  # the planted near-duplicates
    page = render_report(summary=summary, dataset=digits_small, memorization=mem, influence=infl, pairs=pairs)
    imgs = _images(page)
    assert len(imgs) == 4  # histogram, most, least, pairs
    assert all(b.startswith(PNG) for b in imgs)
    # no external assets: every src/href is a data URI
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<link" not in page and "<script" not in page
    # the pairs table lists the planted near-duplicates (train j, test j) with influence 1
    for j in range(5):
        assert re.search(rf'<tr><td class="num">{j}</td><td class="num">{j}</td><td>[^<]*</td>'
                         r'<td class="num">1\.000</td><td class="num">1\.000</td></tr>', page), j
    assert f"{summary['n_memorized']:,} (" in page


def test_report_grid_shows_the_most_memorized_first(digits_small):
    summary, mem, infl, pairs = _results(digits_small)
    fig = figures.image_grid(digits_small.X_train[mem.ranking()[:10]], image_shape=(8, 8),
                             captions=[str(i) for i in mem.ranking()[:10]])
    shown = sorted(int(t.get_text()) for t in fig.axes[0].texts)
    assert shown == list(range(10))  # the planted examples are exactly the top 10


def test_tabular_dataset_gets_tables_not_images():
    rng = np.random.default_rng(3)
    ds = from_arrays(rng.normal(size=(60, 9)), rng.integers(0, 2, 60), rng.normal(size=(20, 9)),
                     rng.integers(0, 2, 20), name="table", class_names=["no", "yes"])
    summary, mem, infl, pairs = _results(ds)
    page = render_report(summary=summary, dataset=ds, memorization=mem, influence=infl, pairs=pairs)
    assert len(_images(page)) == 1  # only the histogram
    assert "first 6 of 9 features" in page
    top = int(mem.ranking()[0])
    assert f"<td class=\"num\">{top}</td>" in page


def test_report_without_pairs_says_so(digits_small):
    summary, mem, infl, _ = _results(digits_small)
    no_pairs = high_influence_pairs(mem, infl, train_labels=digits_small.y_train,
                                    test_labels=digits_small.y_test, mem_threshold=2.0)
    assert len(no_pairs) == 0
    page = render_report(summary={**summary, "n_pairs": 0, "n_pairs_unique_test": 0}, dataset=digits_small,
                         memorization=mem, influence=infl, pairs=no_pairs)
    assert "No pair passes both thresholds" in page
    # histogram, most and least memorized: no pair figure (it would show pairs below the thresholds)
    assert len(_images(page)) == 3
