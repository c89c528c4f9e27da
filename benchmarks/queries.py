"""What label-only and attribute queries cost during training, and what the attacks find, side by side in one run.

    python benchmarks/queries.py [--quick] [--out DIR] [--repeats R]

For each setting (digits and Caravan, 64 MLPs on random 70% subsets, one thread): the population trained without
queries, with label-only queries (32 noisy copies, σ = 0.5) and with attribute queries (a sensitive column), each
``--repeats`` times (median and range of the wall time), the same models every time (fixed seeds). Reported: the
training time of each, the ratio to training without queries, the signals' agreement between the runs (the
non-query signals must be identical: the queries only read the trained models), and the attacks' mean AUC over 16
targets (label-only, label-only-calibrated, LiRA online for reference) and the attribute attack's accuracy on
members and non-members against its baseline.

Writes ``DIR/queries.json`` and ``DIR/queries.md`` (default ``benchmarks/``; ``--quick``: 16 models, 1 repeat, into
``benchmarks/out``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from memlens.attacks import attack_all_targets  # noqa: E402
from memlens.attacks.attribute import attribute_memorization  # noqa: E402
from memlens.data import load_dataset, make_masks  # noqa: E402
from memlens.train import AttributeQueries, LabelQueries, MLPConfig, train_population  # noqa: E402

SETTINGS = (("digits", None), ("caravan", "MGEMLEEF"))


def _timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def _auc(pop, attack, **kw):
    res = attack_all_targets(pop, attack, targets=np.arange(min(16, pop.n_models)), keep_details=False, **kw)
    return float(res.aggregate.to_dict()["auc"]["mean"])


def run_setting(name, column, n_models, repeats, seed=0):
    ds = load_dataset(name)
    masks = make_masks(n_models, ds.n_train, p=0.7, seed=seed)
    cfg = MLPConfig()
    base, t_base = _timed(lambda: train_population(ds, model=cfg, masks=masks, seed=seed), repeats)
    lq = LabelQueries(n_queries=32, sigma=0.5, seed=seed)
    lab, t_lab = _timed(lambda: train_population(ds, model=cfg, masks=masks, seed=seed, label_queries=lq), repeats)
    same = all(np.array_equal(base.signal("train", s), lab.signal("train", s)) for s in ("logit", "loss", "correct"))
    row = {"dataset": name, "n_train": ds.n_train, "n_models": n_models, "repeats": repeats,
           "train_s": {"median": float(np.median(t_base)), "range": [min(t_base), max(t_base)]},
           "label_only_s": {"median": float(np.median(t_lab)), "range": [min(t_lab), max(t_lab)]},
           "label_only_ratio": float(np.median(t_lab) / np.median(t_base)),
           "signals_identical_with_label_queries": bool(same),
           "auc": {"label-only": _auc(lab, "label_only", calibrated=False),
                   "label-only-calibrated": _auc(lab, "label_only", calibrated=True),
                   "lira-online": _auc(lab, "lira", online=True, fix_variance=n_models - 1 < 64)}}
    if column is not None:
        j = list(ds.feature_names).index(column)
        aq = AttributeQueries(column=j)
        att, t_att = _timed(lambda: train_population(ds, model=cfg, masks=masks, seed=seed, attribute_queries=aq),
                            repeats)
        a = attribute_memorization(att, ds.X_train[:, j], column=column).summary
        row.update(attribute_s={"median": float(np.median(t_att)), "range": [min(t_att), max(t_att)]},
                   attribute_ratio=float(np.median(t_att) / np.median(t_base)), attribute_column=column,
                   attribute_values=a["n_values"],
                   attribute={"members": a["members"], "nonmembers": a["nonmembers"], "n_high": a["n_high"]},
                   signals_identical_with_attribute_queries=bool(all(
                       np.array_equal(base.signal("train", s), att.signal("train", s))
                       for s in ("logit", "loss", "correct"))))
    return row


def markdown(res) -> str:
    lines = ["## (j) Label-only and attribute queries during training", "",
             f"`python benchmarks/queries.py` ({res['date']}, commit {res['commit']}, one thread, load average "
             f"{res['load']:.1f} at the start): MLPs (128 hidden, 20 epochs) on random 70% subsets; the same models "
             "with and without queries (the non-query signals are identical: the queries only read the trained "
             "models). Median wall time of the training over the repeats, its range, and the ratio to training "
             "without queries.", "",
             "| dataset | models | training | + label-only (32 queries) | ratio | + attribute queries | ratio | "
             "signals identical | AUC label-only / calibrated / LiRA online |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        att = (f"{r['attribute_s']['median']:.2f} s ({r['attribute_values']} values of {r['attribute_column']})"
               if "attribute_s" in r else "–")
        ratio = f"{r['attribute_ratio']:.2f}×" if "attribute_ratio" in r else "–"
        same = r["signals_identical_with_label_queries"] and r.get("signals_identical_with_attribute_queries", True)
        a = r["auc"]
        lines.append(f"| {r['dataset']} ({r['n_train']:,}) | {r['n_models']} | {r['train_s']['median']:.2f} s "
                     f"[{r['train_s']['range'][0]:.2f}, {r['train_s']['range'][1]:.2f}] | "
                     f"{r['label_only_s']['median']:.2f} s | {r['label_only_ratio']:.2f}× | {att} | {ratio} | "
                     f"{'yes' if same else 'NO'} | {a['label-only']:.3f} / {a['label-only-calibrated']:.3f} / "
                     f"{a['lira-online']:.3f} |")
    for r in res["rows"]:
        if "attribute" in r:
            m, o = r["attribute"]["members"], r["attribute"]["nonmembers"]
            lines += ["", f"Attribute inference on {r['dataset']} (`{r['attribute_column']}`): right on "
                          f"{100 * m['accuracy']:.1f}% of members and {100 * o['accuracy']:.1f}% of non-members, "
                          f"baseline {100 * m['baseline']:.1f}%; {r['attribute']['n_high']} examples with attribute "
                          "memorization ≥ 0.25."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = args.out or (ROOT / "benchmarks" / ("out" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    n_models = 16 if args.quick else 64
    repeats = args.repeats or (1 if args.quick else 3)
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    res = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
           "load": os.getloadavg()[0], "rows": [run_setting(n, c, n_models, repeats) for n, c in SETTINGS]}
    (out / "queries.json").write_text(json.dumps(res, indent=2))
    (out / "queries.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
