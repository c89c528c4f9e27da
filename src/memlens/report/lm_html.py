"""The language-model audit's ``report.html``: one self-contained page.

Sections: the model and data; each attack's AUC and TPR at 0.1% and 1% FPR with bootstrap intervals; the ROC
curves on log-log axes; per attack, the documents it finds most likely members (with whether they are); the
extraction table and figure (discoverable memorization against the prefix length, by copies, with the
non-member control); the untargeted attack's best-ranked samples.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..evaluation import roc
from . import figures
from .html import _CSS, _img, _num, _table, escape
from .text_html import _TEXT_CSS, _doc, _rows_table

__all__ = ["render_lm_report", "extraction_figure"]

ATTACK_TITLES = {"loss": "loss", "zlib": "zlib ratio", "lowercase": "lowercase ratio", "min_k": "Min-K% Prob",
                 "min_k_plus_plus": "Min-K%++", "reference": "reference model", "recall": "ReCaLL",
                 "neighbourhood": "neighbourhood"}


def extraction_figure(rows, *, title: str = ""):
    """Discoverable memorization (exact-match rate) against the prefix length: one line per copies bucket of the
    members of the first model, the non-members dashed (``rows``: ``summary["extraction"]``)."""
    import matplotlib.pyplot as plt  # noqa: F401  (matplotlib is imported only to draw)

    fig = figures._figure(6.4, 4.2)
    ax = fig.add_subplot()
    model = rows[0]["model"] if rows else ""
    groups: dict[tuple, list] = {}
    for r in rows:
        if r["model"] != model or r.get("exact_rate") is None:
            continue
        groups.setdefault((r["set"], r["copies"]), []).append((r["prefix_len"], r["exact_rate"]))
    colors = ["#4c72b0", "#55a868", "#dd8452", "#c44e52", "#8172b3", "#937860", "#da8bc3"]
    k = 0
    for (set_name, copies), pts in sorted(groups.items(), key=lambda kv: (kv[0][0] != "member",
                                                                          kv[0][1] == "all",
                                                                          int(kv[0][1].split("-")[0])
                                                                          if kv[0][1] != "all" else 0)):
        pts.sort()
        x, y = [p for p, _ in pts], [v for _, v in pts]
        if set_name == "non-member":
            ax.plot(x, y, "k--", marker="x", label="non-members (control)")
        elif copies == "all":
            ax.plot(x, y, color="#333333", linewidth=2.2, marker="o", label="members, all")
        else:
            ax.plot(x, y, color=colors[k % len(colors)], marker="o", label=f"members, {copies} cop{'y' if copies == '1' else 'ies'}")
            k += 1
    ax.set_ylim(-0.02, 1.02)
    return figures._finish(fig, ax, xlabel="prefix length (tokens)",
                           ylabel="suffix reproduced exactly (fraction)", legend="best",
                           title=title or "Discoverable memorization against prefix length")


def _attack_table(attacks: Mapping[str, Any]) -> str:
    rows = []
    for a, e in attacks.items():
        def ci(key):
            lo, hi = e.get(f"{key}_ci", [None, None])
            return f"{_num(e.get(key))} [{_num(lo)}, {_num(hi)}]"
        rows.append([ATTACK_TITLES.get(a, a), ci("auc"), ci("tpr@0.001"), ci("tpr@0.01")])
    return _table(["attack", "AUC [95% CI]", "TPR @ 0.1% FPR", "TPR @ 1% FPR"], rows)


def _top_documents(texts, labels, scores, *, n_show: int) -> str:
    parts = []
    for a, s in scores.items():
        order = np.argsort(-np.nan_to_num(s, nan=-np.inf), kind="stable")[:n_show]
        rows = [[int(i), "member" if labels[i] else "non-member", float(s[i]), _doc(texts[i], 240)] for i in order]
        hit = sum(bool(labels[i]) for i in order)
        parts.append(f"<h3>{escape(ATTACK_TITLES.get(a, a))}: {hit} of the top {order.size} are members</h3>"
                     + _rows_table(["#", "truth", "score", "document"], rows,
                                   row_classes=["extracted" if labels[i] else "" for i in order]))
    return "\n".join(parts)


def render_lm_report(*, summary: Mapping[str, Any], texts, labels, copies, scores, metrics, untargeted=None,
                     n_show: int = 5) -> str:
    """The page as a string (see the module docstring). ``scores`` is a :class:`memlens.attacks.lm.LMScores`."""
    s = summary
    labels = np.asarray(labels, dtype=bool)
    m = s["model"]
    title = f"memlens LM audit: {m['name']} · {s['n_members']:,} members / {s['n_nonmembers']:,} non-members"
    info = [["model", f"{m['name']} ({m['architecture']}, {m['n_parameters']:,} parameters, context "
                      f"{m['max_length']}, {m['dtype']} on {m['device']})"],
            ["documents", f"{s['n_members']:,} members ({s['members_with_copies']:,} with several copies), "
                          f"{s['n_nonmembers']:,} non-members"
                          + (f"; {s['recall_shots']} more non-members form ReCaLL's prefix" if s["recall_shots"] else "")],
            ["mean token log-likelihood", f"members {_num(s['mean_logprob_members'])}, non-members "
                                          f"{_num(s['mean_logprob_nonmembers'])} nats"],
            ["scoring", f"{s['tokens_scored']:,} tokens in {_num(s['scoring_seconds'], 1)} s "
                        f"({_num(s['tokens_per_second'], 0)} tokens/s with every attack's passes), window "
                        f"{s['settings']['window']}, stride {s['settings']['stride']}"]]
    if s.get("reference"):
        info.append(["reference model", s["reference"]["name"]])
    if s.get("mask_model"):
        info.append(["masked LM (neighbours)", s["mask_model"]])
    curves = {ATTACK_TITLES.get(a, a): roc(v[np.isfinite(v)], labels[np.isfinite(v)])
              for a, v in scores.scores.items()}
    body = [
        f"<h1>{escape(title)}</h1>",
        '<p class="note">Every attack scores a document; higher = more likely a training member. AUC 0.5 is '
        "chance; the TPR at a low FPR says how many members an attacker finds while wrongly accusing few "
        "non-members (intervals: stratified percentile bootstrap).</p>",
        "<h2>Model and data</h2>", _table(None, info),
        "<h2>Membership attacks</h2>", _attack_table(s["attacks"]),
        _img(figures.roc_curves(curves, title="Membership attacks on the language model"), "ROC curves"),
        "<h2>The documents each attack finds most likely members</h2>",
        _top_documents(texts, labels, scores.scores, n_show=n_show),
    ]
    if s.get("extraction"):
        rows = s["extraction"]
        cols = ["model", "set", "copies", "prefix_len", "n", "exact_rate", "similarity", "bleu", "approx_rate"]
        body += ["<h2>Extraction: discoverable memorization</h2>",
                 f'<p class="note">Greedy decoding from a document\'s first k tokens reproduces its next '
                 f'{s["settings"]["suffix_len"]} tokens exactly (Carlini et al. 2023); similarity is the normalized '
                 "edit similarity of the continuation, approx_rate the fraction with BLEU ≥ 0.75 (Ippolito et al. "
                 "2023). Non-members are the control: what the model reproduces without having seen it.</p>",
                 _img(extraction_figure(rows), "extraction against prefix length"),
                 _table(cols, [[r.get(c) if r.get(c) is not None else "–" for c in cols] for r in rows])]
    if untargeted is not None and s.get("untargeted"):
        u = s["untargeted"]
        best = np.argsort(-np.nan_to_num(untargeted.scores.get("zlib", next(iter(untargeted.scores.values()))),
                                         nan=-np.inf), kind="stable")[:n_show * 2]
        body += ["<h2>Untargeted extraction (generate, rank, verify)</h2>",
                 f'<p class="note">{u["n_samples"]} samples generated from the BOS token (top-k sampling), ranked by '
                 f'each score; precision = fraction of the top {u["n_check"]} that contain {u["n_bytes"]} '
                 f'consecutive bytes of a member (all samples: {_num(u["base_rate"])}).</p>',
                 _table(["ranking", "precision of the top"], [[ATTACK_TITLES.get(a, a), v]
                                                               for a, v in u["precision"].items()]),
                 _rows_table(["#", "verbatim", "sample"], [[int(i), "yes" if untargeted.verbatim[i] else "no",
                                                             _doc(untargeted.samples[i], 240)] for i in best],
                             row_classes=["extracted" if untargeted.verbatim[i] else "" for i in best])]
    body.append('<p class="note">Files beside this page: <code>scores.csv</code> (every document with its scores '
                "and extraction flags), <code>extraction.csv</code>, <code>summary.json</code>"
                + (", <code>samples.csv</code>" if untargeted is not None else "") + ".</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}{_TEXT_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
