"""The audit's ``report.html``: one self-contained page (PNG figures inlined as base64, no external assets).

Sections: a summary table, the memorization histogram, the most and least memorized training examples (image
grids for image datasets, tables for tabular ones), and the high-influence pairs (each memorized training
example beside the test examples it influences most, Feldman & Zhang 2020, §3 and Figs. 4–6). With the audit's
membership attacks: their ROC curves on log–log axes and the table of AUC and TPR at 0.1% / 1% FPR, the audited ε
lower bound (beside the accountant's ε for DP-SGD runs), memorization against the LiRA score as a member, and the
examples that are both highly memorized and flagged by LiRA. With the audit's leave-one-out option: leave-one-out memorization
(Feldman 2020, Def. 4.1) beside the subset estimate, and the most leave-one-out-memorized examples.
"""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._io import atomic_write_bytes
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


def figure_to_data_uri(fig, *, dpi: int = figures.DPI) -> str:
    """PNG of a matplotlib figure as a ``data:image/png;base64,...`` URI.

    memlens's figures are laid out with fixed margins (or to the pixel) and saved as they are; a figure from
    elsewhere is saved with a tight bounding box."""
    buf = io.BytesIO()
    exact = getattr(fig, "_memlens_exact", False) or getattr(fig, "_memlens_margins", False)
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=None if exact else "tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CONTROL = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)}
_CONTROL[0x7F] = "\u2421"
_CONTROL.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})


def escape(text) -> str:
    """HTML-escape ``text`` and make control characters visible (C0 as Unicode control pictures such as ␇, DEL as
    ␡, C1 as ``\\x85``): a corpus's bytes never reach the page as raw control characters, which HTML forbids."""
    return html.escape(str(text)).translate(_CONTROL)


def _img(fig, alt: str) -> str:
    return f'<img class="fig" alt="{escape(alt)}" src="{figure_to_data_uri(fig)}">'


def _num(x, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    x = float(x)
    return "–" if not math.isfinite(x) else f"{x:.{digits}f}"


def _table(header, rows) -> str:
    head = "<tr>" + "".join(f"<th>{escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = []
    for row in rows:
        cells = []
        for v in row:
            numeric = isinstance(v, (int, float, np.integer, np.floating))
            text = _num(v) if numeric else escape(str(v))
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
    nf = s.get("noise_floor")
    if nf:
        need = nf.get("models_for_target_stderr_median_memorized")
        rows.append(("noise floor (the same counts with memberships shuffled among the models)",
                     f"{nf['n_memorized']:.0f} examples, {_num(nf.get('n_pairs'), 0)} pairs (mean of "
                     f"{nf['n_draws']} draws): counts near these are noise"))
        rows.append(("standard error of a memorized example (median)",
                     f"{_se(nf.get('stderr_median'))}"
                     + (f"; about {need:,} models would bring it to ±{nf['target_stderr']:g}" if need else "")))
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
    dp = s.get("dp")
    if dp:
        rows.append(("training", f"DP-SGD, target ε = {_num(dp.get('epsilon'), 2)}, δ = {dp.get('delta', 0):.3g}, "
                                 f"noise multiplier {_num(dp.get('noise_multiplier'), 3)}, accountant "
                                 f"{dp.get('accountant', '?')}: ε = {_num(dp.get('epsilon_accountant'), 3)}"))
    versions = s.get("versions", {})
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    rows.append(("run id", str(s.get("run_id", ""))[:16]))
    return rows


def _se(x) -> str:
    """A standard error as text: '<0.001' where the models agree, '–' where undefined."""
    if x is None or not math.isfinite(float(x)):
        return "–"
    return "<0.001" if float(x) < 0.001 else f"{float(x):.3f}"


def _out_text(dataset, out_pred, i: int, *, short: bool = False) -> str:
    """What the models that did not see example ``i`` predict: 'OUT: 7 (88%)' ('' when not recorded)."""
    if out_pred is None or out_pred.majority[i] < 0:
        return ""
    return f"{'OUT' if short else 'OUT models'}: {_label(dataset, out_pred.majority[i])} ({100 * out_pred.share[i]:.0f}%)"


def _example_section(dataset, mem, index, title: str, alt: str, out_pred=None) -> str:
    index = np.asarray(index, dtype=np.int64)
    if index.size == 0:
        return f'<p class="note">{escape(title)}: none.</p>'
    if dataset.image_shape is not None:
        captions = [f"#{i} y={_label(dataset, dataset.y_train[i])}\nmem {_num(mem.scores[i], 2)}"
                    + (f"\n{_out_text(dataset, out_pred, i, short=True)}" if out_pred is not None else "")
                    for i in index]
        fig = figures.image_grid(dataset.X_train[index], image_shape=dataset.image_shape, captions=captions,
                                 n_cols=8)
        return _img(fig, alt)
    n_feat = min(dataset.n_features, 6)
    names = dataset.feature_names or tuple(f"x[{j}]" for j in range(dataset.n_features))
    header = (["index", "label"] + (["OUT models predict"] if out_pred is not None else [])
              + ["memorization", "stderr", "n_in", "n_out"] + [str(n)[:18] for n in names[:n_feat]])
    rows = [[int(i), _label(dataset, dataset.y_train[i])]
            + ([_out_text(dataset, out_pred, i).removeprefix("OUT models: ") or "–"] if out_pred is not None else [])
            + [float(mem.scores[i]), _se(mem.stderr[i]), int(mem.n_in[i]), int(mem.n_out[i])]
            + [float(v) for v in dataset.X_train[i, :n_feat]]
            for i in index]
    more = f" (first {n_feat} of {dataset.n_features} features)" if dataset.n_features > n_feat else ""
    return f'<p class="note">{escape(title)}{escape(more)}</p>' + _table(header, rows)


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
        parts.append("<p>No pair passes both thresholds (memorization, influence and the same label), so none is "
                     "shown.</p>")
        train_rows = []
        caption = ""
    if dataset.image_shape is not None and train_rows:
        # each row: the training example and only the test examples it forms a high-influence pair with
        k = max(1, infl.top_index.shape[1])
        d = dataset.n_features
        test_imgs = np.full((len(train_rows), k, d), np.nan)
        test_caps = [[""] * k for _ in train_rows]
        for r, i in enumerate(train_rows):
            sel = np.flatnonzero(pairs.train_index == i)
            sel = sel[np.argsort(-pairs.influence[sel], kind="stable")][:k]
            for c, p in enumerate(sel):
                j = int(pairs.test_index[p])
                test_imgs[r, c] = dataset.X_test[j]
                test_caps[r][c] = f"#{j} y={_label(dataset, dataset.y_test[j])}\ninfl {_num(pairs.influence[p], 2)}"
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


def _ci(entry) -> str:
    mean, ci = entry.get("mean"), entry.get("ci") or [None, None]
    if mean is None or not math.isfinite(float(mean)):
        return "–"
    lo, hi = ci
    if lo is None or hi is None or not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return f"{100 * float(mean):.2f}%"
    return f"{100 * float(mean):.2f}% [{100 * float(lo):.2f}, {100 * float(hi):.2f}]"


def _auc_ci(entry) -> str:
    mean, (lo, hi) = entry.get("mean"), entry.get("ci") or [None, None]
    if mean is None or not math.isfinite(float(mean)):
        return "–"
    if lo is None or hi is None or not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return f"{float(mean):.3f}"
    return f"{float(mean):.3f} [{float(lo):.3f}, {float(hi):.3f}]"


def _pct(x) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.2f}%"


def _attack_section(s: Mapping[str, Any], attacks) -> str:
    a = s["attacks"]
    level = a.get("level", 0.95)
    rows = []
    for name, t in a["table"].items():
        tpr = t["tpr"]
        rows.append([name, _auc_ci(t["auc"]), _ci(tpr.get("0.001", {})), _ci(tpr.get("0.01", {})),
                     _pct(tpr.get("0.001", {}).get("pooled")), _pct(tpr.get("0.01", {}).get("pooled")),
                     _num(t.get("epsilon_lower_bound"), 2)])
    header = ["attack", f"AUC, mean [{100 * level:.0f}% CI]", "TPR @ 0.1% FPR, mean [CI]", "TPR @ 1% FPR, mean [CI]",
              "TPR @ 0.1% pooled", "TPR @ 1% pooled", "audited ε ≥"]
    lira = "one global variance" if a.get("lira_fix_variance") else "per-example variances"
    parts = [
        "<h2>Membership attacks</h2>",
        f'<p class="note">Each attack scores every training example for {a["n_targets"]} target model(s) in turn '
        f'(rows {", ".join(str(t) for t in a["targets"][:8])}{"…" if a["n_targets"] > 8 else ""}), each with the '
        f'other {a["n_reference_models"]} models of the population as reference models. LiRA online and offline '
        f"(Carlini et al. 2022, stable logit, {lira}), RMIA (Zarifzadeh et al. 2024, online, test split as population "
        "samples), loss (Yeom et al. 2018). Mean over targets with a Student-t interval; “pooled” uses all "
        "targets' "
        "scores in one ROC, whose finer FPR resolution resolves 0.1%.</p>",
        '<table class="tpr">' + _table(header, rows)[len("<table>"):],
    ]
    notes = [n for n in a.get("notes", []) if "resolution" in n]
    n_pooled_neg = min((t.get("n_pooled_neg") or 0 for t in a["table"].values()), default=0)
    if notes:
        pooled = ("the pooled column is the reliable one." if n_pooled_neg >= 1000 else
                  f"the pooled ROC too has only {n_pooled_neg:,} non-members, so its TPR at 0.1% FPR is also the TPR "
                  "at zero false positives (attack more targets with --attack-targets).")
        parts.append('<p class="note">Per target, 0.1% FPR is below the ROC’s resolution (fewer than 1,000 '
                     "non-members per model): there the per-target TPR is the TPR at zero false positives; "
                     f"{pooled}</p>")
    if attacks is not None:
        parts.append(_img(figures.roc_curves(attacks.pooled_roc, title=f"Membership attacks on {s['dataset']}: "
                                             f"ROC pooled over {a['n_targets']} target models"), "ROC curves"))
    return "\n".join(parts)


def _privacy_section(s: Mapping[str, Any]) -> str:
    p = s.get("privacy")
    if not p:
        return ""
    conf = f"{100 * p['confidence']:.0f}%"
    rows = []
    if p.get("dp"):
        rows.append(("accountant's ε (upper bound, Opacus " + str(p.get("accountant") or "") + ")",
                     f"{_num(p.get('accountant_epsilon'), 3)} at δ = {p['delta']:.3g} (target ε "
                     f"{_num(p.get('target_epsilon'), 2)})"))
    else:
        rows.append(("accountant's ε", "none: the models were trained without differential privacy "
                                      "(--dp-epsilon E trains them with DP-SGD)"))
    by = p.get("audited_by")
    blk = (p.get("by_attack") or {}).get(by) or {}
    rows.append((f"audited ε lower bound ({conf} confidence)",
                 f"{_num(p['audited_epsilon_lower_bound'], 3)} (best attack: {by}, target model "
                 f"{blk.get('best_target', '–')}, δ = {p['delta']:.3g})"))
    if blk:
        rows.append(("trials the bound used", f"{blk.get('n_pairs')} IN/OUT pairs of distinct examples "
                     f"({blk.get('n_members')} members, {blk.get('n_nonmembers')} non-members); "
                     f"{blk.get('n_correct')} of {blk.get('n_guesses')} guesses right"))
    invalid = [k for k, b in (p.get("by_attack") or {}).items() if b and not b.get("valid", True)]
    if invalid:
        rows.append(("not covered by the proof", f"{', '.join(invalid)}: {(p['by_attack'][invalid[0]] or {}).get('why')}"))
    if p.get("dp"):
        rows.append(("consistent (audited ≤ accountant)", "yes" if p.get("consistent") else
                     f"no: {', '.join(p.get('violations', []))}"))
    return ("<h2>Privacy: audited ε</h2>"
            '<p class="note">The audited ε is a <b>lower bound</b> that holds with the stated confidence '
            "(a paired one-run audit, after Steinke, Nasr &amp; Jagielski 2023). For each attacked target model, "
            "every example of the smaller side (IN or OUT) is matched to a random example of the other side; which "
            "one of a pair the model trained on is then a fair coin. The attack guesses the member of each pair "
            "(higher score), on its most confident pairs; if the training were ε-DP, such guesses could be right "
            "with probability at most e<sup>2ε</sup>/(1 + e<sup>2ε</sup>) (swapping a pair changes two examples). "
            "The largest ε that the count of right guesses rejects is the bound; the error probability is "
            f"shared among all attacks, targets and guess counts, so the best of them holds at {conf}. Each example "
            "is one trial at most. Assumptions: " + escape(str(p.get("assumptions", ""))) + ". "
            "The accountant's ε is an upper bound; an audited value above it would reveal a privacy bug.</p>"
            + _table(None, rows))


def _flag_section(s, dataset, mem, attacks, *, n_show: int = 24) -> str:
    flagged = np.asarray(attacks.flagged, dtype=np.int64)
    parts = [
        "<h2>Memorization and the LiRA attack</h2>",
        '<p class="note">LiRA score of an example as a member: its mean online LiRA score over the attacked target models that '
        "trained on it (how strongly the attack flags it when it is a member). Flagged: a LiRA score as a member at least the "
        f"pooled online-LiRA threshold at 1% FPR ({_num(attacks.flag_threshold, 2)}). <code>examples.csv</code> "
        f"holds this as <code>lira_online_in</code>, and <code>lira_online</code>: the online LiRA score against "
        f"target model {int(attacks.targets[0])} (<code>in_target</code> says whether it trained on the example).</p>",
        _img(figures.flag_scatter(mem.scores, attacks.lira_online_in, mem_threshold=s["mem_threshold"],
                                      flag_threshold=attacks.flag_threshold, highlight=flagged),
             "memorization vs LiRA score as a member"),
        f"<h3>{flagged.size:,} examples both highly memorized (≥ {s['mem_threshold']:g}) and flagged by LiRA</h3>",
    ]
    shown = flagged[:n_show]
    if shown.size == 0:
        parts.append("<p>None.</p>")
        return "\n".join(parts)
    if dataset.image_shape is not None:
        caps = [f"#{i} y={_label(dataset, dataset.y_train[i])}\nmem {_num(mem.scores[i], 2)} "
                f"LiRA {_num(attacks.lira_online_in[i], 1)}" for i in shown]
        parts.append(_img(figures.image_grid(dataset.X_train[shown], image_shape=dataset.image_shape, captions=caps,
                                             n_cols=8), "highly memorized examples flagged by LiRA"))
    rows = [[int(i), _label(dataset, dataset.y_train[i]), float(mem.scores[i]), float(attacks.lira_online_in[i])]
            for i in shown]
    parts.append(_table(["index", "label", "memorization", "LiRA score as a member (mean)"], rows))
    if flagged.size > shown.size:
        parts.append(f'<p class="note">Highest LiRA scores: {shown.size} of {flagged.size:,}; all are listed in '
                     "<code>summary.json</code> (<code>attacks.flagged</code>).</p>")
    return "\n".join(parts)


def _loo_section(s: Mapping[str, Any], dataset, mem, loo, *, n_show: int = 24) -> str:
    b = s["loo"]
    exact = b.get("method") == "exact"
    agree = b.get("agreement", {})
    a_c = agree.get("loo_memorization_vs_subset", {})
    a_m = agree.get("loo_margin_memorization_vs_subset", {})
    how = ("exactly, from one fit, by the hat-matrix (PRESS) identity" if exact else
           "approximately, from one fit, by one Newton step on each leave-one-out objective with the Hessian "
           "downdated by Sherman–Morrison–Woodbury (ALO, Rad &amp; Maleki 2020)")
    thr = b.get("mem_threshold", s["mem_threshold"])
    rows = [
        ("method", str(b.get("method_detail") or b.get("method"))),   # _table escapes it
        ("time (one fit + all n leave-one-out models)", f"{b['seconds']:.3f} s"),
        ("full fit: train / leave-one-out / test accuracy",
         f"{_pct(b.get('full_fit_train_accuracy'))} / {_pct(b.get('loo_accuracy'))} / "
         f"{_pct(b.get('full_fit_test_accuracy'))}"),
        (f"memorized (≥ {thr:g}): leave-one-out / subset estimate / both",
         f"{b['n_memorized_loo']:,} / {b['n_memorized_subset']:,} / {b['n_memorized_both']:,}"),
        ("agreement with the subset estimate, Pearson r / Spearman ρ",
         f"leave-one-out correctness: {_num(a_c.get('pearson'), 3)} / {_num(a_c.get('spearman'), 3)}; "
         f"margin: {_num(a_m.get('pearson'), 3)} / {_num(a_m.get('spearman'), 3)}"),
    ]
    if b.get("n_negative_loo"):
        rows.append(("examples correct only without themselves (score −1)", f"{b['n_negative_loo']:,}"))
    if b.get("n_undefined_loo"):
        rows.append(("examples without a leave-one-out model (leverage 1)", f"{b['n_undefined_loo']:,}"))
    parts = [
        "<h2>Leave-one-out memorization</h2>",
        '<p class="note">Leave-one-out memorization (Feldman 2020, “Does learning require memorization?”, Def. 4.1) '
        "compares the model trained on the whole training set with the model trained on all of it except the "
        f"example, computed here {how}: 1 when the example is classified correctly only because it is in the "
        "training set, 0 when it is predicted as well without it. The subset estimate above (Feldman &amp; Zhang "
        f"2020) instead averages over models trained on random {100 * s['subset_ratio']:.0f}% subsets: it measures "
        "memorization at a smaller training set and over the randomness of the subset, so an example whose "
        "near-duplicate is in the training set scores 0 at leave-one-out (the duplicate still teaches its label) "
        "but can score high in the subset estimate when subsets miss both. The vertical axis grades "
        "leave-one-out memorization by the score margin (the full fit's margin on the example minus that of the "
        "fit without it); <code>examples.csv</code> holds <code>loo_memorization</code>, "
        "<code>loo_margin_memorization</code>, <code>loo_margin</code> and <code>loo_loss</code>.</p>",
        _table(None, rows),
    ]
    if loo is not None:
        parts.append(_img(figures.loo_scatter(mem.scores, loo.margin_memorization.scores,
                                              loo_memorized=np.nan_to_num(loo.memorization.scores) >= thr,
                                              mem_threshold=s["mem_threshold"]),
                          "leave-one-out vs subset memorization"))
        shown = np.asarray(loo.ranking[:n_show], dtype=np.int64)
        shown = shown[np.isfinite(loo.memorization.scores[shown])]
        parts.append(f"<h3>The {shown.size} most leave-one-out-memorized training examples</h3>")
        parts.append('<p class="note">Ranked by leave-one-out memorization, ties by the margin version. Captions: '
                     "index, label, leave-one-out memorization (margin version) and the subset estimate.</p>")
        if dataset.image_shape is not None and shown.size:
            caps = [f"#{i} y={_label(dataset, dataset.y_train[i])}\nloo {_num(loo.memorization.scores[i], 0)} "
                    f"({_num(loo.margin_memorization.scores[i], 2)})\nsubset {_num(mem.scores[i], 2)}" for i in shown]
            parts.append(_img(figures.image_grid(dataset.X_train[shown], image_shape=dataset.image_shape,
                                                 captions=caps, n_cols=8), "most leave-one-out-memorized examples"))
        rows = [[int(i), _label(dataset, dataset.y_train[i]), float(loo.memorization.scores[i]),
                 float(loo.margin_memorization.scores[i]), float(loo.loo_margin[i]), float(mem.scores[i])]
                for i in shown]
        parts.append(_table(["index", "label", "leave-one-out memorization", "margin version",
                             "margin without the example", "subset estimate"], rows))
    return "\n".join(parts)


def render_report(*, summary: Mapping[str, Any], dataset, memorization, influence, pairs, n_show: int = 24,
                  max_pair_rows: int = 12, attacks=None, loo=None, out_pred=None, proxies=None,
                  long_tail=None) -> str:
    """The HTML text of the audit report (``summary``: an :class:`~memlens.audits.summaries.AuditSummary` or
    its ``to_json()`` dict).

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
    attacks : memlens.audits.image.AuditAttacks, optional
        With ``summary["attacks"]``: the membership-attack, privacy and LiRA-flag sections (pooled ROC curves,
        ``flagged`` examples, ``lira_online_in``). Without it the page has none of them.
    loo : memlens.audits.image.AuditLOO, optional
        With ``summary["loo"]``: the leave-one-out section (its table from the summary; the scatter against the
        subset estimate and the most leave-one-out-memorized examples from ``loo``).
    out_pred : memlens.measures.OutPredictions, optional
        What the models that did not see each example predict; shown beside every memorized example.
    proxies : memlens.audits.proxies.AuditProxies, optional
        With ``summary["proxies"]``: the proxies section (agreement table, scatter of the best proxy).
    """
    summary = summary.to_json() if hasattr(summary, "to_json") else summary
    s = summary
    mem = memorization
    ranking = mem.ranking()
    finite = ranking[np.isfinite(mem.scores[ranking])]
    n_show = min(n_show, finite.size)
    top = finite[:n_show]
    top = top[mem.scores[top] > 0]          # no padding with examples that are not memorized at all
    # least memorized: lowest scores first; the many exact ties (typically at 0) in a fixed random order rather
    # than by index, so the grid shows a spread of classes
    shuffle = np.random.default_rng(0).permutation(mem.scores.shape[0])
    bottom = finite[np.lexsort((shuffle[finite], mem.scores[finite]))][:n_show]
    n_ties = int(np.sum(mem.scores[finite] <= mem.scores[bottom[-1]])) if n_show else 0
    title = f"memlens audit: {s['dataset']} · {s['model']} · {s['n_models']:,} models"
    body = [
        f"<h1>{escape(title)}</h1>",
        '<p class="note">Feldman–Zhang memorization (Feldman &amp; Zhang 2020, “What Neural Networks Memorize and '
        "Why”, Algorithm 1): for each training example, the accuracy on it of the models that trained on it minus "
        "the accuracy of the models that did not. 0 means the example is predicted as well without it (typical); "
        "near 1 means the models get it right only when they saw it (atypical or mislabeled).</p>",
        "<h2>Summary</h2>", _table(None, _summary_rows(s)),
        "<h2>Memorization histogram</h2>",
        _img(figures.memorization_histogram(mem.scores, threshold=s["mem_threshold"]), "memorization histogram"),
        f"<h2>The {top.size} most memorized training examples</h2>",
        '<p class="note">Captions: training index, the dataset’s label y, the memorization estimate '
        f"(standard error ≤ {_num(_worst_stderr(s), 2)} with {s['n_models']} models)"
        + (", and what the models that did not train on the example predict (majority class and its share). "
           "OUT models agreeing on another class than y suggest a mislabeled example (or a near-duplicate of another "
           "class); OUT models split among classes suggest an atypical one" if out_pred is not None else "")
        + ". Only examples with positive memorization are listed.</p>",
        _example_section(dataset, mem, top, "Most memorized", "most memorized training examples", out_pred),
        f"<h2>The {n_show} least memorized training examples</h2>",
        f'<p class="note">{n_ties:,} training examples have memorization ≤ {_num(mem.scores[bottom[-1]], 2) if n_show else "–"}; '
        "examples with equal scores are shown in a fixed random order. These are predicted as well by the models "
        "that never saw them: typical examples.</p>" if n_show else "",
        _example_section(dataset, mem, bottom, "Least memorized", "least memorized training examples"),
        "<h2>High-influence pairs</h2>",
        _pairs_section(dataset, mem, influence, pairs, max_rows=max_pair_rows),
        _attack_section(s, attacks) if s.get("attacks") else "",
        _privacy_section(s) if s.get("attacks") else "",
        _flag_section(s, dataset, mem, attacks) if attacks is not None and s.get("attacks") else "",
        _loo_section(s, dataset, mem, loo, n_show=n_show) if s.get("loo") else "",
        _proxies_section(s, mem, proxies) if s.get("proxies") and proxies is not None else "",
        _long_tail_section(s) if s.get("long_tail") else "",
        _attribute_section(s) if s.get("attribute") else "",
        '<p class="note">Files beside this page: <code>examples.csv</code> (every training example), '
        "<code>pairs.csv</code>, <code>summary.json</code>, <code>population/</code> (per-model signals, "
        "readable with <code>memlens.Population.load</code>).</p>",
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _proxies_section(s: Mapping[str, Any], mem, proxies) -> str:
    p = s["proxies"]
    ceil = p["noise_ceiling"]
    rows = []
    for name, a in p["table"].items():
        rows.append([name, a["spearman"], a["auc"] if a["auc"] is not None else "–",
                     a["top_k_precision"] if a["top_k_precision"] is not None else "–", a["top_1pct_overlap"],
                     f"{a['seconds']:.2f} s" + (f" ({a['cost_models']:.1f} models, {100 * a['cost_fraction_of_population']:.1f}% "
                                               "of the population)" if a.get("cost_models") else "")])
    best = p["best"]
    return "".join([
        "<h2>Memorization proxies: what one model tells</h2>",
        f'<p class="note">Each proxy scores every training example from {escape(p["from"])}; higher = more '
        f"memorized. Compared with the population's memorization: Spearman correlation (the <b>noise ceiling</b>, "
        f"the Spearman correlation between two halves of the population corrected to its full size, is "
        f"{_num(ceil['ceiling'])}: no proxy can agree better with an estimate than the estimate with itself), AUC "
        f"and top-k precision for the {p['table'][best]['n_memorized']:,} examples with memorization ≥ "
        f"{p['threshold']:g} (k = their number), overlap of the top 1%, and the cost (seconds on one core; in units "
        "of one population model's training and as a share of the population's core-seconds).</p>",
        _table(["proxy", "Spearman", "AUC (memorized)", "top-k precision", "top-1% overlap", "cost"], rows),
        (f'<p class="note">Pairwise attributions against the population\'s {p["pairs"]["n_pairs"]:,} high-influence '
         "pairs (precision of each method's as many highest-attributed same-label test–train pairs): "
         + ", ".join(f"{escape(k)} {_num(v)}" for k, v in p["pairs"]["precision"].items()) + ".</p>")
        if p.get("pairs") else "",
        _img(figures.proxy_scatter(proxies.scores[best], mem.scores, name=best, threshold=p["threshold"]),
             f"{best} against memorization"),
    ])


def _long_tail_section(s: Mapping[str, Any]) -> str:
    lt = s["long_tail"]
    cost = lt.get("cost_of_not_fitting_total") is not None
    rows = [[b["l"], b["n_subpopulations"], b["n_examples"],
             b["mean_memorization"] if b["mean_memorization"] is not None else "–",
             _pct(b["fraction_memorized"]) if b["fraction_memorized"] is not None else "–"]
            + ([_pct(b.get("train_error_in")) if b.get("train_error_in") is not None else "–",
                _pct(b["cost_of_not_fitting"]) if b.get("cost_of_not_fitting") is not None else "–"] if cost else [])
            for b in lt["buckets"]]
    return "".join([
        "<h2>The long tail of this data</h2>",
        f'<p class="note">Subpopulations: {escape(lt["method"])}. {lt["n_subpopulations"]:,} subpopulations, '
        f'{lt["n_singletons"]:,} of them singletons; a Zipf prior fitted to their sizes has exponent '
        f'{_num(lt["zipf_exponent"], 2)} (τ₁·n = {_num(lt["tau_1_times_n"], 2)}: the test accuracy an example seen '
        "once is worth, in units of 1/n, Feldman 2020, Thm 2.3). Feldman's theory predicts that examples of rare "
        "subpopulations must be memorized; the table shows what the population measured, by subpopulation size ℓ "
        f'(Spearman of the prediction 1/ℓ with memorization: {_num(lt["spearman_prediction_vs_memorization"], 2)}).</p>',
        _table(["ℓ (examples in the subpopulation)", "subpopulations", "examples", "mean memorization",
                "memorized (≥ 0.25)"] + (["training error (IN models)", "cost of not fitting (τ_ℓ · errn)"]
                                         if cost else []), rows),
        (f'<p class="note">Cost of not fitting (Feldman 2020, Thm 2.3, err ≥ opt + Σ_ℓ τ_ℓ errn_ℓ, with τ_ℓ of the '
         f'fitted prior; our operationalization counts subpopulations: one of ℓ examples adds the fraction of them the '
         f'models misclassify): the training errors of the models cost at '
         f'least {_pct(lt["cost_of_not_fitting_total"])} of test accuracy under this prior.</p>' if cost else ""),
    ])


def _attribute_section(s: Mapping[str, Any]) -> str:
    a = s["attribute"]
    rows = [[who, _pct(a[key]["accuracy"]), _pct(a[key]["baseline"]), _pct(a[key]["advantage"])]
            for who, key in (("members (models that trained on the example)", "members"),
                             ("non-members", "nonmembers"))]
    rho = a.get("spearman_with_label_memorization")
    return "".join([
        f"<h2>Attribute inference: sensitive column {escape(str(a['column']))}</h2>",
        f'<p class="note">{escape(a["method"])}. The baseline guesses the most frequent value '
        f'({escape(str(a["baseline_value"]))}) without the model. {a["n_high"]:,} examples have attribute memorization '
        f'≥ {a["threshold"]:g}'
        + (f' against a noise floor of {a["n_high_noise_floor"]:.0f} (the same count with the memberships permuted '
           f'among the models)' if a.get("n_high_noise_floor") is not None else "")
        + ' (their value is guessed right much more often by the models that trained on them; '
        f'column <code>attribute_memorization</code> of examples.csv)'
        + (f"; its Spearman correlation with label memorization is {_num(rho, 2)}" if rho is not None else "")
        + ".</p>",
        _table(["examples as", "attack accuracy", "baseline accuracy", "advantage"], rows),
    ])


def _worst_stderr(s) -> float:
    p, t = s["subset_ratio"], s["n_models"]
    return 0.5 * math.sqrt(1 / (p * t) + 1 / ((1 - p) * t))


def write_report(path, **kwargs) -> Path:
    """Render :func:`render_report` (same keyword arguments) and write it atomically to ``path``."""
    path = Path(path)
    atomic_write_bytes(path, render_report(**kwargs).encode("utf-8"))
    return path
