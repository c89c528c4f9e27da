"""Membership inference vs number of reference models and DP: digits and a Fashion-MNIST subset.

    python benchmarks/attacks.py [--quick] [--out DIR]

Trains one population of logistic-regression models per dataset and privacy setting (non-private, DP-SGD at
ε = 8 and ε = 1) on the same masks, then attacks the same target models with every attack (loss, calibrated
loss, LiRA offline/online, RMIA offline/online) while the reference set grows, R ∈ {1, 2, 4, 16, 64}.

Design
------
* Masks: ``n_pairs`` rows from ``make_masks(..., p=0.5, balanced=True)``, each followed by its complement, so
  models come in complementary pairs. Rows ``0 .. T-1`` (T/2 pairs) are the targets; the next ``R_max`` rows are
  the reference pool. The reference set of size R is the first R rows of the pool (nested sets): R = 1 is one
  model (every example is OUT for it with probability 1/2, so offline attacks score about half the examples and
  online attacks are undefined); from R = 2 on, every example has exactly R/2 IN and R/2 OUT references.
* LiRA uses the fixed (global) variance below 64 references and per-example variances at 64 (32 IN / 32 OUT),
  the rule of Carlini et al. 2022 (§VI-B: per-example variances need many shadow models).
* RMIA: ``gamma = 1``, ``offline_a = 0.3`` (Privacy Meter's default; the paper tunes ``a`` per dataset),
  population samples z = the test split (no model trained on them).
* Metrics per (attack, R, setting): mean AUC over the T targets with a Student-t 95% interval, and the TPR at
  0.1% and 1% FPR of the ROC pooled over targets (resolution 1 / n_pooled_nonmembers) with a stratified
  percentile bootstrap interval over (target, example) pairs. Undefined (NaN) scores are left out and their
  share is reported.

Writes ``DIR/attacks.json`` and ``DIR/attacks.md`` (default DIR: ``benchmarks``; ``--quick``:
``benchmarks/out/attacks-quick``). ``--quick`` runs a tiny digits subset (< 1 minute) to check the pipeline.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import warnings  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FPRS = (1e-3, 1e-2)
SETTINGS = (("non-private", None), ("ε=8", 8.0), ("ε=1", 1.0))
# (label, attack name, kwargs, uses references)
ATTACKS = (
    ("loss", "loss", {}, False),
    ("calibrated loss", "calibrated_loss", {}, True),
    ("LiRA offline", "lira", {"online": False}, True),
    ("LiRA online", "lira", {"online": True}, True),
    ("RMIA offline", "rmia", {"online": False, "gamma": 1.0, "offline_a": 0.3}, True),
    ("RMIA online", "rmia", {"online": True, "gamma": 1.0}, True),
)
LIRA_PER_EXAMPLE_MIN = 64      # LiRA fits per-example variances from this many references on

FULL = {
    "datasets": {
        "digits": {"n_train": None, "n_test": None},
        "fashion-mnist": {"n_train": 5000, "n_test": 1000},
    },
    "n_targets": 16, "refs": (1, 2, 4, 16, 64), "n_boot": 200,
}
QUICK = {
    "datasets": {"digits": {"n_train": 300, "n_test": 100}},
    "n_targets": 4, "refs": (1, 2, 4), "n_boot": 50,
}


def load(name: str, n_train, n_test, seed: int):
    """The dataset, or a stratified subset of ``n_train`` training and ``n_test`` test rows (fixed seed)."""
    from sklearn.model_selection import train_test_split

    from memlens.data import load_dataset

    ds = load_dataset(name)
    tr = te = None
    if n_train is not None and n_train < ds.n_train:
        tr, _ = train_test_split(np.arange(ds.n_train), train_size=n_train, stratify=ds.y_train, random_state=seed)
        tr = np.sort(tr)
    if n_test is not None and n_test < ds.y_test.size:
        te, _ = train_test_split(np.arange(ds.y_test.size), train_size=n_test, stratify=ds.y_test,
                                 random_state=seed)
        te = np.sort(te)
    if tr is None and te is None:
        return ds
    return ds.subset(train_index=tr, test_index=te)


def paired_masks(n_models: int, n_examples: int, seed: int) -> np.ndarray:
    """``(n_models, n_examples)`` masks in complementary pairs (rows 2j and 2j+1 partition the examples)."""
    from memlens.data import make_masks

    base = make_masks(n_models // 2, n_examples, p=0.5, seed=seed, balanced=True)
    masks = np.empty((n_models, n_examples), dtype=bool)
    masks[0::2] = base
    masks[1::2] = ~base
    return masks


def evaluate(pop, targets, refs, attack, kwargs, n_boot: int, seed: int) -> dict:
    """Attack every target with the given references; mean AUC over targets and pooled TPR with intervals."""
    from memlens.attacks import attack_all_targets
    from memlens.evaluation import bootstrap_metrics

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # NaN shares and resolution limits are reported in the table
        res = attack_all_targets(pop, attack, targets=targets, fprs=FPRS, keep_details=False,
                                 **({} if refs is None else {"references": refs}), **kwargs)
        scores, labels = res.scores.ravel(), res.labels.ravel()
        ok = np.isfinite(scores)
        out = {"defined": float(ok.mean()), "n_pooled_members": int(labels[ok].sum()),
               "n_pooled_nonmembers": int((~labels[ok]).sum())}
        if ok.sum() == 0 or labels[ok].all() or not labels[ok].any():
            out.update(auc=None, tpr=None)
            return out
        boot = bootstrap_metrics(scores[ok], labels[ok], fprs=FPRS, n_boot=n_boot, seed=seed)
    s_ok, l_ok = scores[ok], labels[ok]
    # Share of non-members tied at the highest score: when it exceeds an FPR, the TPR there is that of zero
    # false positives (RMIA's score is a fraction over |z| population samples, so it saturates at 1).
    out["top_tie_nonmembers"] = float(np.mean(s_ok[~l_ok] == s_ok.max()))
    agg = res.aggregate
    out["auc"] = {"mean": agg.mean_auc, "ci": [float(x) for x in agg.auc_ci], "pooled": agg.pooled_auc,
                  "per_target": [float(x) for x in agg.auc]}
    out["tpr"] = {f"{f:g}": {"pooled": float(ci.estimate), "ci": [ci.low, ci.high],
                             "mean_over_targets": float(m)}
                  for f, ci, m in zip(FPRS, boot.tpr, agg.mean_tpr)}
    out["params"] = {k: v for k, v in res.results[0].params.items() if isinstance(v, (str, int, float, bool))}
    out["seconds"] = time.perf_counter() - t0
    return out


def run_dataset(name: str, spec: dict, cfg: dict, seed: int, log) -> dict:
    from memlens._threads import limit_threads
    from memlens.train import train_population
    from memlens.privacy.accountant import DPConfig

    t0 = time.perf_counter()
    ds = load(name, spec["n_train"], spec["n_test"], seed)
    load_s = time.perf_counter() - t0
    T, refs_list = cfg["n_targets"], cfg["refs"]
    r_max = max(refs_list)
    n_models = T + r_max + (r_max % 2)
    masks = paired_masks(n_models, ds.n_train, seed)
    targets = np.arange(T)
    pool = np.arange(T, n_models)
    out = {"dataset": name, "n_train": int(ds.n_train), "n_test": int(ds.y_test.size),
           "subset": spec, "n_models": n_models, "n_targets": T, "refs": list(refs_list),
           "load_s": load_s, "settings": {}}
    log(f"{name}: {ds.n_train} train / {ds.y_test.size} test, {n_models} models")
    for label, eps in SETTINGS:
        t1 = time.perf_counter()
        with limit_threads(1):
            pop = train_population(ds, model="logreg", masks=masks, seed=seed,
                                   dp=None if eps is None else DPConfig(epsilon=eps))
        train_s = time.perf_counter() - t1
        acc_tr = pop.signal("train", "correct")
        acc_te = pop.signal("test", "correct")
        st = {"epsilon": eps, "train_s": train_s,
              "train_acc_in": float(acc_tr[masks].mean()), "train_acc_out": float(acc_tr[~masks].mean()),
              "test_acc": float(acc_te.mean()), "dp": pop.provenance.get("dp"), "rows": []}
        log(f"  {label}: trained in {train_s:.1f} s, test acc {st['test_acc']:.3f}, "
            f"IN acc {st['train_acc_in']:.3f}")
        t2 = time.perf_counter()
        with limit_threads(1):
            for att_label, attack, kwargs, uses_refs in ATTACKS:
                for R in (refs_list if uses_refs else (0,)):
                    kw = dict(kwargs)
                    if attack == "lira":
                        kw["fix_variance"] = R < LIRA_PER_EXAMPLE_MIN
                    if kw.get("online") and R < 2:
                        st["rows"].append({"attack": att_label, "R": R, "defined": 0.0, "auc": None,
                                           "tpr": None, "note": "online needs an IN and an OUT reference"})
                        continue
                    refs = pool[:R] if uses_refs else None
                    row = evaluate(pop, targets, refs, attack, kw, cfg["n_boot"], seed)
                    row.update(attack=att_label, R=R)
                    st["rows"].append(row)
        st["attack_s"] = time.perf_counter() - t2
        log(f"  {label}: attacks in {st['attack_s']:.1f} s")
        out["settings"][label] = st
    return out


# ----------------------------------------------------------------------------------------------- markdown
def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _cell(row, *, ci: bool) -> list[str]:
    if row.get("auc") is None:
        return ["—", "—", "—"]
    a = row["auc"]
    auc = f"{a['mean']:.3f}"
    if ci and a["ci"][0] is not None and np.isfinite(a["ci"][0]):
        auc += f"±{(a['ci'][1] - a['ci'][0]) / 2:.3f}"
    cells = [auc]
    for f in FPRS:
        t = row["tpr"][f"{f:g}"]
        c = _pct(t["pooled"])
        if ci:
            c += f" [{_pct(t['ci'][0])}, {_pct(t['ci'][1])}]"
        cells.append(c)
    return cells


def table(d: dict) -> list[str]:
    """Full table: AUC ± half-width, pooled TPR (%) with bootstrap intervals, every attack and R."""
    labels = list(d["settings"])
    head = "| attack | R | " + " | ".join(f"{s} AUC | {s} TPR@0.1% | {s} TPR@1%" for s in labels) + " |"
    lines = [head, "|" + "---|" * (2 + 3 * len(labels))]
    for j, row0 in enumerate(d["settings"][labels[0]]["rows"]):
        cells = [row0["attack"], str(row0["R"]) if row0["R"] else "–"]
        for s in labels:
            cells += _cell(d["settings"][s]["rows"][j], ci=True)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def caption(d: dict) -> str:
    s = d["settings"]
    sub = ("full split" if d["subset"]["n_train"] is None else
           f"stratified subset of {d['n_train']:,} training and {d['n_test']:,} test images (seed 0)")
    accs = "; ".join(f"{k}: test acc {v['test_acc']:.3f}, IN-train acc {v['train_acc_in']:.3f}, trained in "
                     f"{v['train_s']:.0f} s" for k, v in s.items())
    res = {k: v for k, v in s.items()}
    row = next(r for r in res[next(iter(res))]["rows"] if r.get("n_pooled_nonmembers"))
    return (f"**{d['dataset']}** ({sub}; {d['n_train']:,} train / {d['n_test']:,} test): {d['n_models']} "
            f"logistic-regression models per setting in complementary pairs, {d['n_targets']} targets, R references "
            f"from the other models. {accs}. AUC: mean over targets ± 95% t half-width; TPR (%): pooled over "
            f"targets, resolution 1/{row['n_pooled_nonmembers']:,} non-members.")


def compact_table(d: dict, attacks=("loss", "LiRA offline", "LiRA online", "RMIA offline", "RMIA online")):
    """README table: AUC ± half-width and pooled TPRs (%) per setting; rows with no defined score left out."""
    labels = list(d["settings"])
    head = "| attack | R | " + " | ".join(f"AUC {s} | 0.1% | 1%" for s in labels) + " |"
    lines = [head, "|---|--:|" + "--:|" * (3 * len(labels))]
    for j, row0 in enumerate(d["settings"][labels[0]]["rows"]):
        if row0["attack"] not in attacks or row0.get("auc") is None:
            continue
        cells = [row0["attack"], str(row0["R"]) if row0["R"] else "–"]
        for s in labels:
            c = _cell(d["settings"][s]["rows"][j], ci=True)
            cells += [c[0]] + [x.split(" [")[0] for x in c[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(res: dict) -> str:
    lines = ["# Membership inference vs reference models and DP", "",
             f"Generated by `python benchmarks/attacks.py{' --quick' if res['quick'] else ''}` "
             + ("(one run per dataset with `--datasets NAME --out DIR`, merged with `--from-json`) "
                if res.get("runs") else "")
             + f"({res['date']}, {res['machine']}; total {res['total_s'] / 60:.1f} min, one BLAS thread). "
             "Design and definitions: the docstring of `benchmarks/attacks.py`. TPR cells: pooled TPR in % with a "
             f"stratified bootstrap 95% interval ({res['n_boot']} resamples of (target, example) pairs). "
             "R = 1: offline attacks score only the examples OUT of the single reference ('defined' column of "
             "`attacks.json`, ≈ 50%); online attacks need an IN and an OUT reference (—). "
             "LiRA: fixed variance for R < 64, per-example variance at R = 64.", ""]
    for d in res["datasets"].values():
        lines += [caption(d), ""] + table(d) + [""]
        for k, v in d["settings"].items():
            if v["dp"]:
                dp = v["dp"]
                lines.append(f"- {k}: DP-SGD σ = {dp['noise_multiplier']:.3f}, q = {dp['sample_rate']:.4f}, "
                             f"{dp['steps']} steps, δ = {dp['delta']:.2e}, accountant ({dp['accountant']}) ε = "
                             f"{dp['epsilon_accountant']:.3f}, C = {dp['max_grad_norm']}")
        lines.append("")
        lines.append("Share of (target, example) pairs with a defined score at R = 1 (offline attacks): " + ", ".join(
            f"{r['attack']} {100 * r['defined']:.1f}%" for r in d["settings"]["non-private"]["rows"]
            if r["R"] == 1 and r.get("auc") is not None) + ".")
        lines.append("Share of non-members tied at the top score (a TPR@FPR is 0 when it exceeds the FPR), "
                     "RMIA offline by R: " + "; ".join(
                         f"{k}: " + ", ".join(f"{r['R']}: {100 * r['top_tie_nonmembers']:.2f}%" for r in v["rows"]
                                              if r["attack"] == "RMIA offline" and r.get("top_tie_nonmembers")
                                              is not None)
                         for k, v in d["settings"].items()) + ".")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny digits subset (< 1 minute)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--datasets", nargs="*", default=None, help="subset of the datasets to run")
    ap.add_argument("--from-json", nargs="+", type=Path, default=None, metavar="JSON",
                    help="no training: merge the datasets of earlier runs' attacks.json (one --datasets each) "
                         "and write DIR/attacks.json and DIR/attacks.md")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    out_dir = args.out or (ROOT / "benchmarks" / "out" / "attacks-quick" if args.quick else ROOT / "benchmarks")
    out_dir.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    t0 = time.perf_counter()
    if args.from_json:
        parts = [json.loads(f.read_text()) for f in args.from_json]
        res = {**parts[0], "datasets": {}, "total_s": sum(r["total_s"] for r in parts),
               "machine": "; ".join(dict.fromkeys(r["machine"] for r in parts)),
               "runs": "separate processes, one per dataset, merged with --from-json"}
        for r in parts:
            if r["quick"] != parts[0]["quick"] or r["seed"] != parts[0]["seed"]:
                raise SystemExit("--from-json: the runs differ in --quick or --seed")
            res["datasets"].update(r["datasets"])
    else:
        names = args.datasets or list(cfg["datasets"])
        res = {"quick": bool(args.quick), "seed": args.seed, "fprs": list(FPRS), "n_boot": cfg["n_boot"],
               "lira_per_example_min_refs": LIRA_PER_EXAMPLE_MIN,
               "date": time.strftime("%Y-%m-%d", time.gmtime()),
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
               "datasets": {}}
        for name in names:
            res["datasets"][name] = run_dataset(name, cfg["datasets"][name], cfg, args.seed, log)
        res["total_s"] = time.perf_counter() - t0

    from memlens.experiments._common import to_jsonable
    from memlens.population import atomic_write_bytes

    atomic_write_bytes(out_dir / "attacks.json",
                       json.dumps(to_jsonable(res), indent=1, allow_nan=False).encode())
    atomic_write_bytes(out_dir / "attacks.md", markdown(res).encode())
    log(f"wrote {out_dir / 'attacks.json'} and {out_dir / 'attacks.md'} in {res['total_s']:.0f} s")
    return res


if __name__ == "__main__":
    main()
