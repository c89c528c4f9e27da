"""The whole audit on full Fashion-MNIST (60,000 × 10,000) with a closed-form linear population, measured.

    python benchmarks/fmnist_audit.py                        # 512 ridge models, --loo, local executor (1 core)
    python benchmarks/fmnist_audit.py --backend ray --cpus 2 # the same on a local 2-CPU Ray instance

Runs ``memlens audit --dataset fashion-mnist --model ridge --models K --loo`` as a child process: exact subset
refits (``memlens.train.closed_form``: Woodbury / rank-k downdates of the normal matrix, no iterations), then
Feldman–Zhang memorization, influence, the membership attacks, exact leave-one-out and the report. Records wall
time, the audit's own phase times (summary.json), CPU time and peak resident size of the child (``getrusage`` of
waited children: with ``--backend ray`` the Ray workers are not children of the audit, so only the wall time and
the driver's memory are comparable), the load average, accuracy and what was found; merges the row into
``benchmarks/results.json`` (key ``fmnist_audit``) and re-renders ``BENCHMARKS.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _load() -> float:
    return os.getloadavg()[0]


def measure(*, models: int, backend: str, cpus: int, out: Path, model: str = "ridge") -> dict:
    """Run one audit in a child process and return its measured row."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [str(Path(sys.executable).with_name("memlens")), "audit", "--dataset", "fashion-mnist", "--model", model,
           "--models", str(models), "--loo", "--out", str(out), "--no-progress", "--backend", backend]
    if backend == "ray":
        cmd += ["--ray-num-cpus", str(cpus)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, t0 = _load(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        return {"model": model, "n_models": models, "backend": backend, "error": proc.stderr.strip()[-500:]}
    s = json.loads((out / "summary.json").read_text())
    loo = s.get("loo") or {}
    return {
        "model": model, "n_models": models, "backend": backend, "cpus": cpus if backend == "ray" else 1,
        "n_train": s["n_train"], "n_test": s["n_test"], "wall_s": wall,
        "cpu_s_child": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_gib": after.ru_maxrss / 2**20,
        "training_s": s["training_seconds"], "attack_s": s.get("attack_seconds"), "loo_s": loo.get("seconds"),
        "runtime_s": s["runtime_seconds"], "train_accuracy": s["train_accuracy"], "test_accuracy": s["test_accuracy"],
        "n_memorized": s["n_memorized"], "n_pairs": s["n_pairs"], "n_loo_memorized": loo.get("n_memorized_loo"),
        "fit": (s.get("trainer") or {}).get("fit"), "load_before": load0, "load_after": _load(),
        "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=512)
    ap.add_argument("--backend", choices=("local", "ray"), default="local")
    ap.add_argument("--cpus", type=int, default=2, help="Ray CPUs (with --backend ray)")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "fmnist_ridge_audit")
    ap.add_argument("--results", type=Path, default=HERE / "results.json")
    args = ap.parse_args(argv)
    row = measure(models=args.models, backend=args.backend, cpus=args.cpus, out=args.out)
    print(json.dumps(row, indent=2))
    res = json.loads(args.results.read_text())
    rows = [r for r in res.get("fmnist_audit", []) if (r["backend"], r["n_models"]) != (row["backend"], row["n_models"])]
    res["fmnist_audit"] = rows + [row]
    args.results.write_text(json.dumps(res, indent=2, default=float))
    subprocess.run([sys.executable, str(HERE / "run.py"), "--render", str(args.results)], check=True)
    return row


if __name__ == "__main__":
    main()
