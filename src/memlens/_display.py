"""Displays of a run's summary: rows for a terminal table (``memlens show``) and HTML for notebooks.

Pure functions of ``summary.json``'s content; no heavy import, so ``memlens show`` starts fast.
"""
from __future__ import annotations

import html
from typing import Mapping

__all__ = ["summary_rows", "attack_rows", "html_table"]


def _pct(x) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"


def _num(x, spec: str = ".3f") -> str:
    return "–" if x is None else format(float(x), spec)


def summary_rows(s: Mapping) -> list[tuple[str, str]]:
    """``(setting, value)`` rows of a run's summary (``summary.json``), for a terminal or notebook table."""
    return _summary_rows(s)


def _lm_summary_rows(s) -> list[tuple[str, str]]:
    """Rows of an ``lm-audit`` summary (a Hugging Face model scored on members and non-members)."""
    m = s.get("model") or {}
    rows = [("model", f"{m.get('name')} ({m.get('architecture')}, {m.get('n_parameters', 0):,} parameters)"),
            ("documents", f"{s.get('n_members', 0):,} members, {s.get('n_nonmembers', 0):,} non-members"),
            ("scoring", f"{s.get('tokens_scored', 0):,} tokens, {_num(s.get('tokens_per_second'), ',.0f')} tokens/s")]
    for r in s.get("extraction") or []:
        if r.get("copies") == "all" and r.get("exact_rate") is not None and r.get("model") == m.get("name"):
            rows.append((f"extraction, {r['set']}s, prefix {r['prefix_len']}",
                         f"{_pct(r['exact_rate'])} of {r['n']} reproduce the suffix"))
    return rows


def _summary_rows(s) -> list[tuple[str, str]]:
    if s.get("kind") == "lm-audit":
        return _lm_summary_rows(s)
    rows = [("dataset", f"{s.get('dataset')} ({s.get('n_train', '?'):,} train / {s.get('n_test', '?'):,} test)"
             if isinstance(s.get("n_train"), int) else str(s.get("dataset")))]
    if "model" in s:
        cfg = {k: v for k, v in (s.get("model_config") or {}).items() if k != "name"}
        rows.append(("model", f"{s['model']} " + ", ".join(f"{k}={v}" for k, v in cfg.items())))
    for key, label in (("n_models", "models"), ("subset_ratio", "subset ratio"), ("seed", "seed")):
        if key in s:
            rows.append((label, str(s[key])))
    if "train_accuracy" in s:
        rows.append(("accuracy (train / test)", f"{_pct(s['train_accuracy'])} / {_pct(s.get('test_accuracy'))}"))
    if "n_memorized" in s:
        floor = s.get("n_memorized_noise_floor")
        rows.append((f"memorized (≥ {s.get('mem_threshold', 0.25):g})",
                     f"{s['n_memorized']:,}" + (f"  (noise floor {floor:.0f})" if floor is not None else "")))
    if "n_pairs" in s:
        floor = s.get("n_pairs_noise_floor")
        rows.append(("high-influence pairs",
                     f"{s['n_pairs']:,}" + (f"  (noise floor {floor:.0f})" if floor is not None else "")))
    priv = s.get("privacy") or {}
    if priv.get("audited_epsilon_lower_bound") is not None:
        rows.append(("audited ε (lower bound)", f"{priv['audited_epsilon_lower_bound']:.3f} at "
                     f"{100 * priv.get('confidence', 0.95):.0f}% confidence ({priv.get('audited_by')})"))
    if priv.get("accountant_epsilon") is not None:
        rows.append(("accountant ε (DP-SGD)", f"{priv['accountant_epsilon']:.3f}, δ = {priv.get('delta')}"))
    can = s.get("canaries") or ((s.get("analysis") or {}).get("canaries")) or {}
    for b in can.get("by_repetition") or []:       # the text audit: exposure and extraction by repetitions
        rows.append((f"canaries inserted {b.get('repetitions')}x",
                     f"exposure {_num(b.get('exposure_in'), '.1f')} of {_num(can.get('max_exposure_bits'), '.1f')} "
                     f"bits, {_pct(b.get('extracted_in'))} extracted (models that saw them)"))
    prox = s.get("proxies") or {}
    for name, a in (prox.get("table") or {}).items():      # --proxies: each proxy's agreement with memorization
        rows.append((f"proxy {name}", f"Spearman {_num(a.get('spearman'), '.2f')} (ceiling "
                     f"{_num((prox.get('noise_ceiling') or {}).get('ceiling'), '.2f')}), top-k precision "
                     f"{_num(a.get('top_k_precision'), '.2f')}, {_num(a.get('seconds'), '.1f')} s"))
    for b in (s.get("long_tail") or {}).get("buckets") or []:   # --long-tail: memorization by subpopulation size
        rows.append((f"subpopulations of size {b['l']}", f"{b['n_examples']:,} examples, mean memorization "
                     f"{_num(b.get('mean_memorization'), '.3f')}"))
    att = s.get("attribute") or {}
    if att:                                                     # --sensitive-column: attribute inference
        rows.append((f"attribute inference, column {att.get('column')}",
                     f"members {_pct((att.get('members') or {}).get('accuracy'))} vs non-members "
                     f"{_pct((att.get('nonmembers') or {}).get('accuracy'))} (baseline "
                     f"{_pct((att.get('members') or {}).get('baseline'))}); {att.get('n_high')} examples with "
                     f"attribute memorization >= {att.get('threshold')} (noise floor {_num(att.get('n_high_noise_floor'), '.0f')})"))
    for key, label in (("training_seconds", "training"), ("attack_seconds", "attacks"),
                       ("runtime_seconds", "whole audit")):
        if s.get(key) is not None:
            rows.append((f"time: {label}", f"{s[key]:.1f} s"))
    return rows


def attack_rows(s: Mapping) -> list[tuple[str, ...]]:
    """``(attack, AUC, 95% CI, TPR at 0.1% FPR, TPR at 1% FPR)`` rows of a summary's attacks table."""
    return _attack_rows(s)


def _attack_rows(s) -> list[tuple[str, ...]]:
    rows = []
    if s.get("kind") == "lm-audit":           # one model: the attack's own interval, no mean over targets
        for name, a in (s.get("attacks") or {}).items():
            ci = a.get("auc_ci") or [None, None]
            rows.append((name, _num(a.get("auc")), f"[{_num(ci[0])}, {_num(ci[1])}]", _pct(a.get("tpr@0.001")),
                         _pct(a.get("tpr@0.01"))))
        return rows
    table = ((s.get("attacks") or {}).get("table")) or {}
    for name, a in table.items():
        auc = (a.get("auc") or {})
        tpr = a.get("tpr") or {}
        ci = auc.get("ci") or [None, None]
        rows.append((name, _num(auc.get("mean")), f"[{_num(ci[0])}, {_num(ci[1])}]",
                     _pct((tpr.get("0.001") or {}).get("mean")), _pct((tpr.get("0.01") or {}).get("mean"))))
    return rows


def html_table(title: str, rows, header=None) -> str:
    """A small HTML table (a notebook's display of a result): ``rows`` of cells, an optional ``header``."""
    head = "" if header is None else "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><caption style='text-align:left'><b>{html.escape(title)}</b></caption>{head}{body}</table>"
