"""Full-size Fashion-MNIST runs (60,000 x 10,000), one at a time, with the peak memory of the process tree.

    python benchmarks/fmnist_full.py --model mlp --models 256 --epochs 2 --block-size 64 --tag _k256

Runs ``fmnist_e2e.py`` through ``run.fmnist_run`` (which polls the resident size of the whole process tree)
and writes ``benchmarks/out/fmnist_<model><tag>.json`` with wall time, load average before/after and peak
memory. Meant to run in the background (``nohup``) next to other work; ``benchmarks/run.py --fmnist-json``
puts the results into BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import fmnist_run  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("logreg", "mlp"), required=True)
    ap.add_argument("--models", type=int, required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--block-size", type=int, default=None)
    ap.add_argument("--init", choices=("zeros", "full"), default="zeros")
    ap.add_argument("--max-iter", type=int, default=None, help="logistic: a timing run of this many iterations")
    ap.add_argument("--C", type=float, default=None, help="logistic regression: C (default 1.0)")
    ap.add_argument("--preconditioner", choices=("kron", "full-hessian"), default="kron")
    ap.add_argument("--influence-models", type=int, default=0)
    ap.add_argument("--tag", default="")
    ap.add_argument("--timeout", type=int, default=6 * 3600)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    extra = ["--init", args.init] + (["--block-size", args.block_size] if args.block_size else []) \
        + (["--max-iter", args.max_iter] if args.max_iter else []) \
        + (["--C", args.C] if args.C is not None else []) + ["--preconditioner", args.preconditioner]
    res = fmnist_run(args.model, args.models, args.out, epochs=args.epochs, influence_models=args.influence_models,
                     jobs=args.jobs, timeout=args.timeout, extra=extra, tag=args.tag)
    out = args.out / f"fmnist_{args.model}{args.tag}.json"
    if "error" not in res:                       # add wall time, CPU time, peak memory and load to the run's file
        out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
