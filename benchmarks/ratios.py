"""The 10x targets in repeated runs, side by side: logistic populations against scikit-learn, MLP populations
against a per-model torch loop.

    python benchmarks/ratios.py --runs 3          # about 5 minutes per run on 2 cores

Each run measures, in this one process (sections (a) and (b) of ``run.py``, the same code): digits, logistic
regression at K = 64, 256 and 1,024 (memlens and scikit-learn, 1 thread x 2 processes, the same masks, the same
convergence test max |grad| <= 1e-6, r of the memorization scores against scikit-learn), and 256 MLPs against the
per-model loop (1 process, 1 thread; wall and CPU-time ratios). Writes ``benchmarks/ratios.json`` and
``benchmarks/ratios.md``, which ``run.py --render`` puts into BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import _load, logreg_rows, mlp_rows  # noqa: E402


def markdown(res: dict) -> str:
    runs = res["runs"]
    L = [f"Measured by `python benchmarks/ratios.py --runs {len(runs)}` on {res['utc']} UTC ({res['seconds']:.0f} s; "
         "2 CPUs). Each run is the whole of sections (a) and (b) again, in one process; the target is 10x.\n",
         "| run | load before/after | logreg K=64 | logreg K=256 | logreg K=1024 | min r(mem) vs sklearn | MLP wall | "
         "MLP CPU time |", "|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for i, r in enumerate(runs, 1):
        lr = {row["K"]: row for row in r["logreg"] if row["solver"] == "memlens"}
        rs = min(row["vs_sklearn_same_tol"]["pearson_r_mem"] for row in lr.values())
        L.append(f"| {i} | {r['load_before']:.2f}/{r['load_after']:.2f} | "
                 + " | ".join(f"{lr[k]['speedup_vs_sklearn']:.2f}x" for k in sorted(lr))
                 + f" | {rs:.4f} | {r['mlp']['speedup']:.2f}x | {r['mlp']['speedup_cpu']:.2f}x |")
    med = res["median"]
    L.append(f"| median | | {med['logreg'][64]:.2f}x | {med['logreg'][256]:.2f}x | {med['logreg'][1024]:.2f}x | | "
             f"{med['mlp_wall']:.2f}x | {med['mlp_cpu']:.2f}x |")
    L.append("")
    L += [f"- {n}" for n in res.get("notes", [])]
    if res.get("notes"):
        L.append("")
    return "\n".join(L)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--render", action="store_true", help="measure nothing: rewrite ratios.md from ratios.json")
    args = ap.parse_args(argv)
    if args.render:
        res = json.loads((HERE / "ratios.json").read_text())
        res["median"]["logreg"] = {int(k): v for k, v in res["median"]["logreg"].items()}
        (HERE / "ratios.md").write_text(markdown(res))
        print(markdown(res))
        return res
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    runs = []
    for i in range(args.runs):
        load0 = _load()
        r = {"logreg": logreg_rows(False), "mlp": mlp_rows(False), "load_before": load0}
        r["load_after"] = _load()
        runs.append(r)
        print(f"run {i + 1}: logreg " + ", ".join(f"K={row['K']} {row['speedup_vs_sklearn']:.2f}x"
                                                 for row in r["logreg"] if row["solver"] == "memlens")
              + f"; mlp {r['mlp']['speedup']:.2f}x wall, {r['mlp']['speedup_cpu']:.2f}x CPU", flush=True)
    med = {"logreg": {k: statistics.median(row["speedup_vs_sklearn"] for r in runs for row in r["logreg"]
                                           if row["solver"] == "memlens" and row["K"] == k) for k in (64, 256, 1024)},
           "mlp_wall": statistics.median(r["mlp"]["speedup"] for r in runs),
           "mlp_cpu": statistics.median(r["mlp"]["speedup_cpu"] for r in runs)}
    res = {"utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "seconds": time.perf_counter() - t0,
           "runs": runs, "median": med}
    (HERE / "ratios.json").write_text(json.dumps(res, indent=2, default=float))
    (HERE / "ratios.md").write_text(markdown(res))
    print(markdown(res))
    return res


if __name__ == "__main__":
    main()
