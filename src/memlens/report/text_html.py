"""The text audit's ``report.html``: one self-contained page, text where the image audit shows image grids.

Sections: a summary table; the inserted canaries (exposure and extraction against repetitions, one row per canary,
extracted canaries highlighted); the counterfactual-memorization histogram; the most memorized documents with
their text and the reasons (duplicates, overlap with other documents, length, rare characters); documents that
greedy decoding reproduces (discoverable memorization); the ranking attack's membership AUCs; and the training
documents that most influence test documents.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._io import atomic_write_bytes
from . import figures
from .html import _CSS, _img, _num, _table, escape
from .tables import explanation_text

__all__ = ["render_text_report", "write_text_report", "exposure_figure"]

_TEXT_CSS = """
pre.doc { white-space: pre-wrap; margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.88em; }
tr.extracted td { background: #fff3cd; } mark.extracted { background: #ffc107; font-weight: bold; padding: 0 2px; }
span.tag { display: inline-block; background: #c62828; color: white; border-radius: 3px; padding: 0 5px;
           font-size: 0.8em; margin-left: 4px; }
td.reason { color: #444; font-size: 0.88em; max-width: 320px; }
"""


def _doc(text: str, max_chars: int = 400) -> str:
    t = text if len(text) <= max_chars else text[:max_chars] + "…"
    return f'<pre class="doc">{escape(t)}</pre>'


def _rows_table(header, rows, *, row_classes=None) -> str:
    """A table whose cells are pre-rendered HTML (strings) or numbers; ``row_classes`` per row."""
    head = "<tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in header) + "</tr>"
    body = []
    for r, row in enumerate(rows):
        cells = []
        for v in row:
            if isinstance(v, (int, float, np.integer, np.floating)):
                cells.append(f'<td class="num">{_num(v)}</td>')
            else:
                cells.append(f"<td>{v}</td>")
        cls = f' class="{row_classes[r]}"' if row_classes and row_classes[r] else ""
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def exposure_figure(rows: Mapping[str, np.ndarray], *, max_exposure: float, title: str = ""):
    """Exposure (bits) and extraction rate against the number of repetitions, IN models beside OUT models.

    ``rows`` is :func:`memlens.audits.text.canary_table`'s output; one point per canary, lines through the means.
    """
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    reps = np.asarray(rows["repetitions"], dtype=np.float64)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    uniq = np.unique(reps)
    for key, style, label in (("exposure_in", "o-", "models trained on the canary (IN)"),
                              ("exposure_out", "s--", "models that never saw it (OUT)")):
        vals = np.asarray(rows[key], dtype=np.float64)
        axes[0].plot(reps, vals, style[0], alpha=0.4, color="C0" if key.endswith("in") else "C1")
        means = [np.nanmean(vals[reps == r]) if np.isfinite(vals[reps == r]).any() else np.nan for r in uniq]
        axes[0].plot(uniq, means, style, color="C0" if key.endswith("in") else "C1", label=label)
    axes[0].axhline(max_exposure, color="black", lw=1, ls=":", label=f"log2(space) = {max_exposure:.1f} bits")
    axes[0].set(xscale="log", xlabel="copies of the canary in the training set", ylabel="exposure (bits)",
                title="Exposure (Carlini et al. 2019)", ylim=(0, max_exposure * 1.08))
    axes[0].set_xticks(uniq, [str(int(r)) for r in uniq])
    for key, style, label in (("extracted_in", "o-", "IN models"), ("extracted_out", "s--", "OUT models")):
        vals = np.asarray(rows[key], dtype=np.float64)
        means = [np.nanmean(vals[reps == r]) if np.isfinite(vals[reps == r]).any() else np.nan for r in uniq]
        axes[1].plot(uniq, means, style, label=label, color="C0" if key.endswith("in") else "C1")
    axes[1].set(xscale="log", xlabel="copies of the canary in the training set",
                ylabel="fraction of models extracting the secret", title="Greedy extraction from the prefix",
                ylim=(-0.03, 1.03))
    axes[1].set_xticks(uniq, [str(int(r)) for r in uniq])
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _summary_rows(s: Mapping[str, Any]):
    rows = [
        ("corpus", f"{s['dataset']} ({s['n_documents']:,} training documents, {s['n_test']:,} test documents; "
                   f"{s.get('corpus', '')})"),
        ("model", f"{s['model']} ({', '.join(f'{k}={v}' for k, v in s.get('model_config', {}).items())})"),
        ("population", f"{s['n_models']:,} models, each trained on a random {100 * s['subset_ratio']:.0f}% of the "
                       f"documents (seed {s['seed']})"),
        ("per-token accuracy", f"{100 * s['token_accuracy_in']:.1f}% on each model's own documents, "
                               f"{100 * s['token_accuracy_out']:.1f}% on the documents it did not see, "
                               f"{100 * s['token_accuracy_test']:.1f}% on test documents"),
        ("test loss", f"{_num(s['loss_test_nats'])} nats per byte ({_num(s['bits_per_byte_test'])} bits per byte)"),
        (f"documents with counterfactual memorization ≥ {s['mem_threshold']:g}",
         f"{s['n_memorized']:,} of {s['n_documents']:,}"
         + (f" (noise floor: {s['noise_floor']['n_memorized']:.0f}, the count with memberships shuffled among the "
            "models)" if s.get("noise_floor") else "")),
        (f"discoverable memorization ({s['prefix_len']}-byte prefix → next {s['suffix_len']} bytes exactly)",
         f"{_pct(s.get('discoverable_in'))} of documents a model trained on, {_pct(s.get('discoverable_out'))} of "
         f"those it did not ({s.get('n_documents_extractable', 0):,} documents long enough)"),
    ]
    c = s.get("canaries")
    if c:
        rows.append(("canaries", f"{c['n_canaries']} secrets of the format “{escape(c['template'])}” "
                                 f"(space of {c['space_size']:,}, at most {c['max_exposure_bits']:.1f} bits of "
                                 f"exposure); {len(c['extracted'])} extracted by at least one model that trained on it"))
    if s.get("runtime_seconds") is not None:
        rows.append(("runtime", f"training {s.get('training_seconds', 0):.1f} s, {s.get('shards_trained', '?')} "
                                f"shards trained, {s.get('shards_reused', 0)} reused (full runtime in summary.json)"))
    versions = s.get("versions", {})
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    rows.append(("run id", str(s.get("run_id", ""))[:16]))
    return rows


def _pct(x) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.1f}%"


def _canary_section(s, canaries, rows) -> str:
    c = s["canaries"]
    parts = [
        "<h2>Canaries: exposure and extraction</h2>",
        f'<p class="note">{c["n_canaries"]} random secrets of the format <code>NAME: {escape(c["template"])}</code> '
        "were inserted into the training documents, each repeated a chosen number of times; each canary has its own "
        "name, so its own prefix, and is ranked within its own space of secrets. All copies of a canary "
        "are in the training set of the same half of the models (IN) and absent from the other half (OUT), so an IN "
        "model saw it exactly that many times and an OUT model never. <b>Exposure</b> (Carlini et al. 2019, “The "
        "Secret Sharer”, Definition 4) is log2 of the space size minus log2 of the rank of the true secret among "
        f"all {c['space_size']:,} candidates ordered by the model's log-perplexity: "
        f"{c['max_exposure_bits']:.1f} bits means the secret is the model's most likely completion; a model that never "
        "saw it shows 1.44 bits on average (Pr[exposure ≥ e] = 2<sup>−e</sup>). <b>Extracted</b>: greedy decoding from the canary's prefix "
        "reproduces the secret exactly. Rows of canaries extracted by at least one IN model are "
        '<mark class="extracted">highlighted</mark>.</p>',
        _img(exposure_figure(rows, max_exposure=c["max_exposure_bits"]), "exposure and extraction vs repetitions"),
    ]
    by_rep = c["by_repetition"]
    parts.append(_rows_table(
        ["copies", "canaries", "exposure IN (bits)", "exposure OUT (bits)", "extracted IN", "extracted OUT"],
        [[b["repetitions"], b["n_canaries"], float(b["exposure_in"]), float(b["exposure_out"]),
          _pct(b["extracted_in"]), _pct(b["extracted_out"])] for b in by_rep]))
    thr = c.get("extraction_threshold_repetitions")
    parts.append(f'<p class="note">Extraction threshold: '
                 + (f"from {thr} copies on (at every larger count), at least half of the IN models extract the secret."
                    if thr is not None
                    else "no repetition count reaches extraction by half of the IN models.") + "</p>")
    table, classes = [], []
    for i, secret in enumerate(canaries.secrets):
        extracted = bool(np.nan_to_num(rows["extracted_in"][i]) > 0)
        text = escape(canaries.texts[i])
        esc_secret = escape(str(secret))
        shown = (text.replace(esc_secret, f'<mark class="extracted">{esc_secret}</mark>', 1) if extracted else text)
        tag = '<span class="tag">extracted</span>' if extracted else ""
        table.append([f"{i}", f"<code>{shown}</code>{tag}", int(rows["repetitions"][i]),
                      f"{int(rows['n_in'][i])} / {int(rows['n_out'][i])}", float(rows["exposure_in"][i]),
                      float(rows["exposure_out"][i]), _pct(rows["extracted_in"][i]), _pct(rows["extracted_out"][i])])
        classes.append("extracted" if extracted else "")
    parts.append(_rows_table(["#", "canary", "copies", "IN / OUT models", "exposure IN", "exposure OUT",
                              "extracted IN", "extracted OUT"], table, row_classes=classes))
    return "\n".join(parts)


def _documents_table(dataset, index, analysis, *, max_chars: int = 400) -> str:
    mem, mem_ll = analysis["memorization"], analysis["memorization_ll"]
    rows, classes = [], []
    for rank, i in enumerate(index, 1):
        i = int(i)
        ext_in = analysis["extracted_in"][i]
        extracted = bool(np.nan_to_num(ext_in) > 0)
        rows.append([rank, i, float(mem.scores[i]), float(mem.stderr[i]), float(mem_ll.scores[i]),
                     int(dataset.train_counts[i]), _pct(ext_in),
                     f'<span class="reason">{escape(explanation_text(analysis["explanations"], i))}</span>',
                     _doc(dataset.train_texts[i], max_chars)])
        classes.append("extracted" if extracted else "")
    return _rows_table(["rank", "index", "memorization (token acc.)", "stderr", "memorization (nats/token)",
                        "copies in raw corpus", "extracted by IN models", "why", "document"], rows,
                       row_classes=classes)


def _ranking_section(s) -> str:
    r = s.get("ranking_attack") or {}
    if not r:
        return ""
    names = {"loss (Yeom et al.)": "loss (perplexity of the model)", "perplexity": "perplexity",
             "zlib": "zlib ratio (log-perplexity / zlib entropy)", "lowercase": "ratio to the lowercased text",
             "reference": "ratio to a smaller reference model (trained on the test documents)"}
    rows = [[names.get(k, k), float(v["auc"]), _pct(v.get("tpr_at_1pct_fpr")), v["n_pos"], v["n_neg"]]
            for k, v in r.items()]
    return ("<h2>Ranking attack: finding memorized text without knowing it</h2>"
            '<p class="note">The scores of Carlini et al. (2021, “Extracting Training Data from Large Language '
            "Models”, §5.1), higher = more likely memorized, used to tell each model's training documents (IN) from "
            "documents it did not see (OUT), pooled over models. AUC 0.5 is chance.</p>"
            + _rows_table(["score", "AUC", "TPR at 1% FPR", "IN pairs", "OUT pairs"], rows))


def _samples_section(s) -> str:
    x = s.get("sample_extraction") or {}
    if not x:
        return ""
    names = {"perplexity": "perplexity", "zlib": "zlib ratio", "lowercase": "lowercase ratio",
             "reference": "ratio to the smaller reference model"}
    rows = [[names.get(k, k), _pct(v["precision"]), _pct(v["unseen_precision"])] for k, v in x["by_score"].items()]
    rows.append(["(all samples, unranked)", _pct(x["base_rate"]), _pct(x["unseen_rate"])])
    return ("<h3>Extraction from generated samples</h3>"
            f'<p class="note">The full pipeline of Carlini et al. (2021, §5): every model generated {x["n_samples"]} '
            f"samples from the beginning-of-document token (top-{x['sampling_top_k']} sampling); each score ranks them and the "
            f'top {x["top"]} of every model are checked for {x["verbatim_bytes"]} consecutive bytes of one of the '
            "model's own training documents (canary copies included). The second column is the control: matches to "
            "training documents that model never saw (text generic enough to be generated without memorizing it).</p>"
            + _rows_table(["ranked by", "reproduce own training text", "match unseen documents (control)"], rows))


def _pairs_section(dataset, analysis, *, max_rows: int = 10) -> str:
    pairs = analysis["pairs"][:max_rows]
    if not pairs:
        return ("<h2>Counterfactual influence</h2><p>No memorized training document has influence ≥ "
                f"{analysis.get('infl_threshold', 0.15):g} on a test document.</p>")
    rows = [[i, j, float(m), float(v), _doc(dataset.train_texts[i], 200), _doc(dataset.test_texts[j], 200)]
            for i, j, m, v in pairs]
    return ("<h2>Counterfactual influence on test documents</h2>"
            '<p class="note">Influence of training document i on test document j (Zhang et al. 2021, §4): per-token '
            "accuracy on j of the models trained with i minus that of the models trained without i. High values "
            "flag near-duplicates across the split.</p>"
            + _rows_table(["train", "test", "memorization", "influence", "training document", "test document"],
                          rows))


def render_text_report(*, summary: Mapping[str, Any], dataset, copy_of, canaries, analysis,
                       n_show: int = 20) -> str:
    """The HTML text of the text-audit report.

    Parameters
    ----------
    summary : mapping
        ``summary.json``'s content.
    dataset : memlens.data.text.TextDataset
        The training corpus with the canary copies (``copy_of``).
    copy_of : int array, shape (n_train,)
        Canary index per training column, -1 for a corpus document.
    canaries : TextCanarySet or None
    analysis : dict
        The text audit's measures: ``memorization``, ``memorization_ll`` (MemorizationResult, shape (n_train,)),
        ``extracted_in``/``extracted_out`` (n_train,), ``explanations``, ``pairs``, ``canary_rows``.
    n_show : int
        How many most memorized documents to list.
    """
    summary = summary.to_json() if hasattr(summary, "to_json") else summary
    s = summary
    mem = analysis["memorization"]
    copy_of = np.asarray(copy_of)
    docs = np.flatnonzero(copy_of < 0)
    order = docs[np.argsort(-np.nan_to_num(mem.scores[docs], nan=-np.inf), kind="stable")]
    finite = order[np.isfinite(mem.scores[order])]
    top = finite[:n_show]
    bottom = finite[::-1][:min(5, finite.size)]
    ext_in = np.nan_to_num(analysis["extracted_in"][docs])
    extracted_docs = docs[np.argsort(-ext_in, kind="stable")]
    extracted_docs = extracted_docs[np.nan_to_num(analysis["extracted_in"][extracted_docs]) > 0][:n_show]
    title = f"memlens text audit: {s['dataset']} · {s['model']} · {s['n_models']:,} models"
    body = [
        f"<h1>{escape(title)}</h1>",
        '<p class="note">Counterfactual memorization (Zhang et al. 2021, “Counterfactual Memorization in Neural '
        "Language Models”, §2; the Feldman–Zhang estimator): for each training document, the per-token accuracy "
        "of the models that trained on it minus that of the models that did not. 0: the document is predicted as "
        "well without it (common phrasing); high: the models reproduce it only when they saw it.</p>",
        "<h2>Summary</h2>", _table(None, _summary_rows(s)),
        _canary_section(s, canaries, analysis["canary_rows"]) if canaries is not None and s.get("canaries") else "",
        "<h2>Counterfactual memorization histogram</h2>",
        _img(figures.memorization_histogram(mem.scores[docs], threshold=s["mem_threshold"]),
             "counterfactual memorization histogram"),
        f"<h2>The {top.size} most memorized documents</h2>",
        '<p class="note">“Why” lists what explains memorization: copies in the raw corpus (duplicates), overlap '
        "with the nearest other training document, length, rare characters or formatting. Rows highlighted: "
        "reproduced by greedy decoding in at least one model that trained on them.</p>",
        _documents_table(dataset, top, analysis),
        f"<h2>The {bottom.size} least memorized documents</h2>",
        _documents_table(dataset, bottom, analysis),
        "<h2>Discoverable memorization: documents the models reproduce</h2>",
        (f'<p class="note">Greedy decoding from the first {s["prefix_len"]} bytes reproduces the next '
         f'{s["suffix_len"]} bytes exactly (Carlini et al. 2023, “Quantifying Memorization Across Neural Language '
         "Models”), shown with the fraction of IN models that do.</p>"
         + (_documents_table(dataset, extracted_docs, analysis) if extracted_docs.size
            else "<p>No document is reproduced by any model that trained on it.</p>")),
        _ranking_section(s),
        _samples_section(s),
        _pairs_section(dataset, analysis),
        '<p class="note">Files beside this page: <code>examples.csv</code> (every training document and canary '
        "copy, with its text), <code>canaries.csv</code>, <code>pairs.csv</code>, <code>summary.json</code>, "
        "<code>population/</code> (per-model signals, readable with <code>memlens.Population.load</code>).</p>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}{_TEXT_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_text_report(path, **kwargs) -> Path:
    """Render :func:`render_text_report` (same keyword arguments) and write it atomically to ``path``."""
    path = Path(path)
    atomic_write_bytes(path, render_text_report(**kwargs).encode("utf-8"))
    return path
