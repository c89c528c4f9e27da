"""Batched Newton-CG vs batched L-BFGS for the logistic population, side by side in one process.

    OMP_NUM_THREADS=1 python benchmarks/newton_cg.py --case digits --models 256
    OMP_NUM_THREADS=1 python benchmarks/newton_cg.py --case fmnist --rows 10000 --models 8
    OMP_NUM_THREADS=1 python benchmarks/newton_cg.py --case fmnist --rows 60000 --models 4 --solvers newton-cg

Both solvers fit ``LogisticRegression(C=1)``'s objective on the same masks (random 70% subsets) and the same
standardized features to ``max |grad F_k| <= tol`` (default 1e-6) with the float64 certification; 1 thread.
Reported per solver: wall and CPU seconds (this process), models/s, outer iterations and Hessian-vector products
per model (mean/max), convergence, CPU s per model and per model-iteration; on digits also the Pearson r of the
Feldman-Zhang memorization scores (``correct`` signal) against a tight scikit-learn reference (tol 1e-8) on
the same masks. Writes ``benchmarks/out/newton_cg_<case>_<rows>_<K>.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _mem(fit, X, y, masks):
    from memlens.measures import memorization_from_arrays
    from memlens.population import signals_from_logits

    sig = signals_from_logits(fit.logits(X), y)
    return memorization_from_arrays(masks, sig["correct"]).scores, sig


def main(argv=None) -> dict:
    from memlens.data import load_dataset, make_masks
    from memlens.train import fit_logistic, standardized_features

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=("digits", "fmnist"), required=True)
    ap.add_argument("--models", type=int, required=True)
    ap.add_argument("--rows", type=int, default=None, help="first ROWS training rows (Fashion-MNIST subset)")
    ap.add_argument("--solvers", default="lbfgs,newton-cg")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--reference", action="store_true", help="digits: also fit the tight sklearn reference")
    ap.add_argument("--hessian-params", type=int, default=None,
                    help="Newton-CG: use the mean-Hessian preconditioner up to this many parameters per model "
                         "(default: the solver's own threshold)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.hessian_params is not None:
        from memlens.train.logreg import newton_cg

        newton_cg._HESS_PARAMS = args.hessian_params
    ds = load_dataset("digits" if args.case == "digits" else "fashion-mnist")
    if args.rows is not None:
        ds = ds.subset(train_index=np.arange(args.rows))
    X, _ = standardized_features(ds)
    y = ds.y_train
    masks = make_masks(args.models, ds.n_train, p=0.7, seed=0)
    res = {"case": args.case, "rows": int(ds.n_train), "features": int(X.shape[1]), "K": args.models,
           "tol": args.tol, "max_iter": args.max_iter, "threads": torch.get_num_threads(),
           "omp": os.environ.get("OMP_NUM_THREADS"), "runs": []}
    mems = {}
    for solver in args.solvers.split(","):
        load0 = os.getloadavg()[0]
        c0, t0 = _cpu(), time.perf_counter()
        fit = fit_logistic(X, y, masks.astype(np.float64), C=1.0, tol=args.tol, max_iter=args.max_iter, solver=solver)
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        run = {"solver": solver, "wall_s": wall, "cpu_s": cpu, "models_per_s": args.models / wall,
               "cpu_s_per_model": cpu / args.models,
               "cpu_s_per_model_iteration": cpu / max(1, int(fit.n_iter.sum())),
               "iter_mean": float(fit.n_iter.mean()), "iter_max": int(fit.n_iter.max()),
               "hvp_mean": None if fit.n_hvp is None else float(fit.n_hvp.mean()),
               "hvp_max": None if fit.n_hvp is None else int(fit.n_hvp.max()),
               "not_converged": int((~fit.converged).sum()), "max_grad": float(fit.grad_norm.max()),
               "load_before": load0, "load_after": os.getloadavg()[0]}
        if args.case == "digits":
            mems[solver], sig = _mem(fit, X, y, masks)
            run["train_correct_in"] = float(sig["correct"][masks].mean())
        res["runs"].append(run)
        print(json.dumps(run), flush=True)
    if args.reference and args.case == "digits":
        from memlens.population import signals_from_proba
        from memlens.measures import memorization_from_arrays
        from sklearn.linear_model import LogisticRegression
        import warnings

        c0 = _cpu()
        corr = np.empty(masks.shape, dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in range(args.models):
                m = LogisticRegression(C=1.0, tol=1e-8, max_iter=10000).fit(X[masks[k]], y[masks[k]])
                corr[k] = signals_from_proba(m.predict_proba(X)[None], y)["correct"][0]
        ref = memorization_from_arrays(masks, corr).scores
        res["reference_cpu_s"] = _cpu() - c0
        ok = np.isfinite(ref)
        for run in res["runs"]:
            m = mems[run["solver"]]
            run["r_mem_vs_tight_ref"] = float(np.corrcoef(m[ok], ref[ok])[0, 1])
            run["max_abs_dmem_vs_tight_ref"] = float(np.abs(m[ok] - ref[ok]).max())
            print(run["solver"], "r(mem) vs tight sklearn", run["r_mem_vs_tight_ref"], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    res["hessian_params"] = args.hessian_params
    tag = "" if args.hessian_params is None else f"_h{args.hessian_params}"
    path = args.out / f"newton_cg_{args.case}_{ds.n_train}_{args.models}{tag}.json"
    path.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
