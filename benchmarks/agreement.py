"""Batched torch logistic regression vs scikit-learn on digits: speed and memorization-score agreement.

Same masks, same standardized features, same objective (``LogisticRegression(C=1)``). Reported side by side
in one run (docs/architecture.md, "Performance"):

* fits/s of the batched torch solver (default tolerance) in 1 and ``--jobs`` processes of 1 thread each;
* fits/s of scikit-learn, 1 BLAS thread per process, ``--jobs`` processes, at the same tolerance, at its
  default ``tol=1e-4`` and at the tight reference tolerance (``tol=1e-8, max_iter=10000``);
* the torch solver at the loose tolerance 1e-4 too, to show what convergence buys;
* Pearson r and max |difference| of Feldman–Zhang memorization scores (``correct`` signal) against the tight
  scikit-learn reference, and per-model prediction agreement.

    python benchmarks/agreement.py --models 256 --jobs 2

Writes ``benchmarks/out/agreement.json``. Timings vary with the machine's load (recorded): compare ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from memlens.data import load_dataset, make_masks  # noqa: E402
from memlens.measures import memorization  # noqa: E402
from memlens.train import make_model_config, train_population  # noqa: E402


def _load() -> float:
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return float("nan")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=256, help="number of models K (default 256)")
    ap.add_argument("--p", type=float, default=0.7, help="subset ratio (default 0.7)")
    ap.add_argument("--C", type=float, default=1.0, help="inverse regularization strength (default 1)")
    ap.add_argument("--jobs", type=int, default=2, help="processes of 1 BLAS thread each (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "agreement.json")
    args = ap.parse_args(argv)

    ds = load_dataset("digits")
    masks = make_masks(args.models, ds.n_train, p=args.p, seed=args.seed)
    torch_cfg = make_model_config("logreg", C=args.C)
    runs = [
        ("torch", torch_cfg, "torch", 1),
        ("torch", torch_cfg, "torch", args.jobs),
        ("sklearn", make_model_config("logreg", C=args.C, tol=torch_cfg.tol), "sklearn", args.jobs),
        ("torch (loose)", make_model_config("logreg", C=args.C, tol=1e-4), "torch", 1),
        ("sklearn (default)", make_model_config("logreg", C=args.C, tol=1e-4, max_iter=10000), "sklearn", args.jobs),
        ("sklearn (reference)", make_model_config("logreg", C=args.C, tol=1e-8, max_iter=10000), "sklearn", args.jobs),
    ]
    # Start the worker processes once (loky reuses them across calls, as a sharded run does): the rows then
    # compare steady-state throughput; the start-up is reported on its own.
    t0 = time.perf_counter()
    train_population(ds, model=make_model_config("logreg", tol=1e-3), masks=masks[:2 * args.jobs],
                     n_jobs=args.jobs)
    startup = time.perf_counter() - t0
    pops, rows = [], []
    for label, cfg, backend, jobs in runs:
        load0 = _load()
        t0 = time.perf_counter()
        pop = train_population(ds, model=cfg, masks=masks, seed=args.seed, backend=backend, n_jobs=jobs)
        dt = time.perf_counter() - t0
        pops.append(pop)
        rows.append({"solver": label, "backend": backend, "tol": cfg.tol, "processes": jobs, "seconds": dt,
                     "fits_per_s": args.models / dt, "load_before": load0, "load_after": _load(),
                     "convergence": dict(pop.provenance["convergence"])})

    ref = pops[-1]
    mem_ref = memorization(ref).scores
    for row, pop in zip(rows, pops):
        mem = memorization(pop).scores
        ok = np.isfinite(mem) & np.isfinite(mem_ref)
        row["pearson_r_mem"] = float(np.corrcoef(mem[ok], mem_ref[ok])[0, 1])
        row["max_abs_diff_mem"] = float(np.abs(mem[ok] - mem_ref[ok]).max())
        row["prediction_agreement"] = float((pop.signal("train", "correct") == ref.signal("train", "correct")).mean())
        row["test_accuracy"] = float(pop.signal("test", "correct").mean())
    sk_same = next(r for r in rows if r["solver"] == "sklearn")
    for row in rows:
        row["speedup_vs_sklearn_same_tol"] = row["fits_per_s"] / sk_same["fits_per_s"]
        row["speedup_vs_sklearn_reference"] = row["fits_per_s"] / rows[-1]["fits_per_s"]
        row["fits_per_s_per_process"] = row["fits_per_s"] / row["processes"]

    header = (f"{'solver':<20} {'tol':>7} {'proc':>4} {'s':>7} {'fits/s':>7} {'x skl':>6} {'x ref':>6} "
              f"{'r(mem)':>7} {'max|dmem|':>9} {'agree':>7} {'iters':>6}")
    print(f"digits, K={args.models} models, p={args.p}, C={args.C}; ratios against scikit-learn at the same "
          f"tolerance (x skl) and against the tight reference (x ref)")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['solver']:<20} {r['tol']:>7.0e} {r['processes']:>4} {r['seconds']:>7.1f} {r['fits_per_s']:>7.1f} "
              f"{r['speedup_vs_sklearn_same_tol']:>6.2f} {r['speedup_vs_sklearn_reference']:>6.2f} "
              f"{r['pearson_r_mem']:>7.4f} {r['max_abs_diff_mem']:>9.3f} {r['prediction_agreement']:>7.5f} "
              f"{r['convergence']['n_iter_mean']:>6.1f}")
    print(f"worker start-up (once per session, not in the rows): {startup:.1f} s")
    print(f"load average before/after each run: {[(r['load_before'], r['load_after']) for r in rows]}")
    result = {"dataset": "digits", "n_models": args.models, "p": args.p, "C": args.C, "seed": args.seed,
              "jobs": args.jobs, "worker_startup_s": startup, "cpu_count": os.cpu_count(),
              "platform": platform.platform(),
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
