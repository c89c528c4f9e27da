"""The audit's ``report.html``: one self-contained page (PNG figures inlined as base64, no external assets).

Sections: a summary table, the memorization histogram, the most and least memorized training examples (image
grids for image datasets, tables for tabular ones), and the high-influence pairs (each memorized training
example beside the test examples it influences most, Feldman & Zhang 2020, §3 and Figs. 4–6).
"""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..population import atomic_write_bytes
from . import figures

__all__ = ["figure_to_data_uri", "render_report", "write_report"]

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
td, th { border: 1px solid #ddd; padding: 3px 9px; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.fig { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
p.note { color: #555; font-size: 0.92em; } code { background: #f3f3f3; padding: 0 3px; }
"""


def figure_to_data_uri(fig, *, dpi: int = 110) -> str:
    """PNG of a matplotlib figure as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig, alt: str) -> str:
    return f'<img class="fig" alt="{html.escape(alt)}" src="{figure_to_data_uri(fig)}">'


def _num(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    x = float(x)
    return "–" if not math.isfinite(x) else f"{x:.{digits}f}"


def _table(header, rows) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for row in rows:
        cells = []
        for v in row:
            numeric = isinstance(v, (int, float, np.integer, np.floating))
            text = _num(v) if numeric else html.escape(str(v))
            cells.append(f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _label(dataset, y) -> str:
    name = str(dataset.class_names[int(y)])
    return name if len(name) <= 12 else name[:11] + "…"


def _summary_rows(s: Mapping[str, Any]):
    def pct(a, b):
        return f"{a:,} ({100 * a / b:.1f}%)" if b else f"{a:,}"

    rows = [
        ("dataset", f"{s['dataset']} ({s['n_train']:,} training, {s['n_test']:,} test examples, "
                    f"{s['n_classes']} classes)"),
        ("model", f"{s['model']} ({', '.join(f'{k}={v}' for k, v in s.get('model_config', {}).items())})"),
        ("population", f"{s['n_models']:,} models, each trained on a random {100 * s['subset_ratio']:.0f}% of the "
                       f"training set (seed {s['seed']})"),
        ("train accuracy (on each model's own training examples)", f"{100 * s['train_accuracy']:.2f}%"),
        ("test accuracy", f"{100 * s['test_accuracy']:.2f}%" if s['test_accuracy'] is not None
         and math.isfinite(s['test_accuracy']) else "–"),
        (f"examples with memorization ≥ {s['mem_threshold']:g}", pct(s["n_memorized"], s["n_train"])),
        (f"high-influence pairs (mem ≥ {s['mem_threshold']:g}, infl ≥ {s['infl_threshold']:g}, same label)",
         f"{s['n_pairs']:,} ({s['n_pairs_unique_test']:,} distinct test examples)"),
    ]
    if s.get("n_undefined"):
        rows.append(("examples without a score (no IN or no OUT model)", f"{s['n_undefined']:,}"))
    if s.get("runtime_seconds") is not None:
        train_s = s.get("training_seconds")
        rows.append(("runtime", (f"training {train_s:.1f} s, " if train_s is not None else "")
                     + f"{s.get('shards_trained', '?')} shards trained, {s.get('shards_reused', 0)} reused "
                     "(full runtime in summary.json)"))
    trainer = s.get("trainer") or {}
    if "n_not_converged" in trainer:
        rows.append(("models not converged to the trainer's tolerance", f"{trainer['n_not_converged']:,}"))
    versions = s.get("versions", {})
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    rows.append(("run id", str(s.get("run_id", ""))[:16]))
    return rows


def _example_section(dataset, mem, index, title: str, alt: str) -> str:
    index = np.asarray(index, dtype=np.int64)
    if dataset.image_shape is not None:
        captions = [f"#{i} y={_label(dataset, dataset.y_train[i])}\nmem {_num(mem.scores[i], 2)}"
                    for i in index]
        fig = figures.image_grid(dataset.X_train[index], image_shape=dataset.image_shape, captions=captions,
                                 n_cols=8)
        return _img(fig, alt)
    n_feat = min(dataset.n_features, 6)
    header = ["index", "label", "memorization", "stderr", "n_in", "n_out"] + [f"x[{j}]" for j in range(n_feat)]
    rows = [[int(i), _label(dataset, dataset.y_train[i]), float(mem.scores[i]), float(mem.stderr[i]),
             int(mem.n_in[i]), int(mem.n_out[i])] + [float(v) for v in dataset.X_train[i, :n_feat]]
            for i in index]
    more = f" (first {n_feat} of {dataset.n_features} features)" if dataset.n_features > n_feat else ""
    return f'<p class="note">{html.escape(title)}{html.escape(more)}</p>' + _table(header, rows)


def _pairs_section(dataset, mem, infl, pairs, *, max_rows: int) -> str:
    parts = []
    n = len(pairs)
    if n:
        # training examples of the pairs, strongest pair first
        order = np.argsort(-pairs.influence, kind="stable")
        train_rows = list(dict.fromkeys(int(i) for i in pairs.train_index[order]))[:max_rows]
        parts.append(f"<p>{n:,} pair(s) pass both thresholds, involving {len(set(pairs.train_index.tolist())):,} "
                     f"training and {pairs.n_unique_test:,} test examples. Each row shows a memorized training "
                     "example (red frame) and the test examples it influences most: influence is the accuracy on "
                     "the test example of models trained with it minus models trained without it.</p>")
        caption = "Training examples of the high-influence pairs"
    else:
        parts.append("<p>No pair passes both thresholds. Shown instead: the most memorized training examples and the "
                     "test examples they influence most, for comparison.</p>")
        train_rows = [int(i) for i in mem.ranking()[:min(max_rows, 8)]]
        caption = "Most memorized training examples"
    train_rows = [i for i in train_rows if 0 <= i < infl.top_index.shape[0]]
    if dataset.image_shape is not None and train_rows and infl.top_index.shape[1] > 0:
        k = infl.top_index.shape[1]
        d = dataset.n_features
        test_imgs = np.full((len(train_rows), k, d), np.nan)
        test_caps = [[""] * k for _ in train_rows]
        for r, i in enumerate(train_rows):
            for c in range(k):
                j = int(infl.top_index[i, c])
                if j >= 0:
                    test_imgs[r, c] = dataset.X_test[j]
                    test_caps[r][c] = f"#{j} y={_label(dataset, dataset.y_test[j])}\ninfl {_num(infl.top_value[i, c], 2)}"
        train_caps = [f"#{i} y={_label(dataset, dataset.y_train[i])}\nmem {_num(mem.scores[i], 2)}" for i in train_rows]
        fig = figures.pair_figure(dataset.X_train[train_rows], test_imgs, image_shape=dataset.image_shape,
                                  train_captions=train_caps, test_captions=test_caps)
        parts.append(_img(fig, caption))
    if n:
        shown = min(n, 60)
        rows = [[int(pairs.train_index[r]), int(pairs.test_index[r]), _label(dataset, pairs.label[r]),
                 float(pairs.memorization[r]), float(pairs.influence[r])] for r in range(shown)]
        parts.append(_table(["train index", "test index", "label", "memorization", "influence"], rows))
        if shown < n:
            parts.append(f'<p class="note">First {shown} of {n:,} pairs; all are in <code>pairs.csv</code>.</p>')
    return "\n".join(parts)


def render_report(*, summary: Mapping[str, Any], dataset, memorization, influence, pairs, n_show: int = 24,
                  max_pair_rows: int = 12) -> str:
    """The HTML text of the audit report.

    Parameters
    ----------
    summary : mapping
        The audit summary (``summary.json``'s content).
    dataset : memlens.data.Dataset
        Images are drawn when ``dataset.image_shape`` is set; tabular datasets get tables.
    memorization : MemorizationResult
        Scores of shape (n_train,), higher = more memorized.
    influence : InfluenceResult
        ``top_index``/``top_value`` of shape (n_train, k).
    pairs : HighInfluencePairs
    n_show : int
        How many most and least memorized examples to show.
    max_pair_rows : int
        How many training examples the pair figure shows.
    """
    s = summary
    mem = memorization
    ranking = mem.ranking()
    finite = ranking[np.isfinite(mem.scores[ranking])]
    n_show = min(n_show, finite.size)
    top = finite[:n_show]
    # least memorized: lowest scores first; the many exact ties (typically at 0) in a fixed random order rather
    # than by index, so the grid shows a spread of classes
    shuffle = np.random.default_rng(0).permutation(mem.scores.shape[0])
    bottom = finite[np.lexsort((shuffle[finite], mem.scores[finite]))][:n_show]
    n_ties = int(np.sum(mem.scores[finite] <= mem.scores[bottom[-1]])) if n_show else 0
    title = f"memlens audit: {s['dataset']} · {s['model']} · {s['n_models']:,} models"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        '<p class="note">Feldman–Zhang memorization (Feldman &amp; Zhang 2020, “What Neural Networks Memorize and '
        "Why”, Algorithm 1): for each training example, the accuracy on it of the models that trained on it minus "
        "the accuracy of the models that did not. 0 means the example is predicted as well without it (typical); "
        "near 1 means the models get it right only when they saw it (atypical or mislabeled).</p>",
        "<h2>Summary</h2>", _table(None, _summary_rows(s)),
        "<h2>Memorization histogram</h2>",
        _img(figures.memorization_histogram(mem.scores, threshold=s["mem_threshold"]), "memorization histogram"),
        f"<h2>The {n_show} most memorized training examples</h2>",
        '<p class="note">Captions: training index, the dataset’s label y, and the memorization estimate '
        f"(standard error ≤ {_num(_worst_stderr(s), 2)} with {s['n_models']} models). Mislabeled and atypical "
        "examples rank here.</p>",
        _example_section(dataset, mem, top, "Most memorized", "most memorized training examples"),
        f"<h2>The {n_show} least memorized training examples</h2>",
        f'<p class="note">{n_ties:,} training examples have memorization ≤ {_num(mem.scores[bottom[-1]], 2) if n_show else "–"}; '
        "examples with equal scores are shown in a fixed random order. These are predicted as well by the models "
        "that never saw them: typical examples.</p>" if n_show else "",
        _example_section(dataset, mem, bottom, "Least memorized", "least memorized training examples"),
        "<h2>High-influence pairs</h2>",
        _pairs_section(dataset, mem, influence, pairs, max_rows=max_pair_rows),
        '<p class="note">Files beside this page: <code>examples.csv</code> (every training example), '
        "<code>pairs.csv</code>, <code>summary.json</code>, <code>population/</code> (per-model signals, "
        "readable with <code>memlens.Population.load</code>).</p>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _worst_stderr(s) -> float:
    p, t = s["subset_ratio"], s["n_models"]
    return 0.5 * math.sqrt(1 / (p * t) + 1 / ((1 - p) * t))


def write_report(path, **kwargs) -> Path:
    """Render :func:`render_report` (same keyword arguments) and write it atomically to ``path``."""
    path = Path(path)
    atomic_write_bytes(path, render_report(**kwargs).encode("utf-8"))
    return path
