"""Text from the data (a corpus, class names, feature names) reaches the reports escaped, control characters made
visible: HTML forbids raw control characters, and markup in the data must not become markup in the page."""
import re

import numpy as np

from memlens.audits.text import run_text_audit
from memlens.data import from_arrays, make_masks
from memlens.measures import high_influence_pairs, influence_from_arrays, memorization_from_arrays
from memlens.report.html import escape, render_report

RAW_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")


def test_escape_makes_control_characters_visible():
    assert escape("a<b>&\x07\x00\x1b\x7f\x85\tz\n") == "a&lt;b&gt;&amp;\u2407\u2400\u241b\u2421\\x85\tz\n"
    assert not RAW_CONTROL.search(escape("".join(map(chr, range(0, 0xA0)))))


def test_text_report_has_no_raw_control_characters(tmp_path):
    docs = [f"line {i} \x07bell \x1b[31mred\x1b[0m <script>alert({i})</script> \x00nul \x85next" for i in range(40)]
    corpus = tmp_path / "ctl.txt"
    corpus.write_text("\n".join(docs))
    res = run_text_audit(text_file=corpus, out=tmp_path / "run", n_models=2, shard_size=1, progress=False,
                         canary_repetitions=(), n_documents=None,
                         config={"steps": 5, "width": 16, "depth": 1, "n_heads": 2, "context_length": 64})
    page = (res.out / "report.html").read_text()
    assert not RAW_CONTROL.search(page)
    assert "<script>alert(" not in page and "\u2407bell" in page


def test_image_report_escapes_class_and_feature_names(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = np.arange(40) % 2
    ds = from_arrays(X, y, X[:10], y[:10], class_names=["ok\x07", "<b>bold</b>"],
                     feature_names=["f\x1b0", "<i>f1</i>", "f2"])
    masks = make_masks(20, 40, p=0.5, seed=0)
    correct = np.where(np.arange(40) < 5, masks, rng.random(masks.shape) < 0.9).astype(float)
    mem = memorization_from_arrays(masks, correct)
    infl = influence_from_arrays(masks, (rng.random((20, 10)) < 0.9).astype(float), threshold=0.15)
    pairs = high_influence_pairs(mem, infl, train_labels=ds.y_train, test_labels=ds.y_test)
    summary = {"dataset": "d\x07", "n_train": 40, "n_test": 10, "n_classes": 2, "model": "logreg", "model_config": {},
               "n_models": 20, "subset_ratio": 0.5, "seed": 0, "train_accuracy": 1.0, "test_accuracy": 0.9,
               "mem_threshold": 0.25, "infl_threshold": 0.15, "n_memorized": mem.n_memorized(0.25),
               "n_pairs": len(pairs), "n_pairs_unique_test": pairs.n_unique_test}
    page = render_report(summary=summary, dataset=ds, memorization=mem, influence=infl, pairs=pairs)
    assert not RAW_CONTROL.search(page)
    assert "<b>bold</b>" not in page and "&lt;i&gt;f1&lt;/i&gt;" in page
