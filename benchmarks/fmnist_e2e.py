"""End-to-end Feldman–Zhang memorization + influence on full Fashion-MNIST (60,000 train x 10,000 test).

Run by ``benchmarks/run.py`` in a child process so that its peak resident memory is its own:

    python benchmarks/fmnist_e2e.py --model logreg --models 8 --jobs 2 --out out.json

Phases, each timed: load + standardize, population training (``train_population``, ``--jobs`` processes of
one BLAS thread), memorization (``correct`` signal) and influence on the test split. ``--epochs`` shortens
the MLP (the caller extrapolates linearly in epochs and says so). ``--train-rows`` trains on the first rows of the
training split only (the caller extrapolates and says so). ``--influence-models`` additionally times
memorization + influence on a population of that many models over the *full* 60,000 x 10,000 split, with
random masks and random 0/1 ``correct`` signals: the cost of those two measures depends only on the array
shapes, so this times them at the full size without training it (their scores are not used).
Prints one JSON object and writes it to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def _peak_rss_gib() -> float:
    """Peak resident set size of this process and of its waited-for children (loky workers), GiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / 2**20, kids / 2**20


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("logreg", "mlp"), required=True)
    ap.add_argument("--models", type=int, required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="MLP epochs (default: the MLPConfig default)")
    ap.add_argument("--influence-models", type=int, default=0)
    ap.add_argument("--train-rows", type=int, default=None, help="train on the first N training rows only")
    ap.add_argument("--block-size", type=int, default=None,
                    help="models per vectorized block (default: models / jobs, one block per process)")
    ap.add_argument("--init", choices=("zeros", "full"), default="zeros",
                    help="logistic regression: cold start, or warm start from the full-data model (warm_start)")
    ap.add_argument("--max-iter", type=int, default=None,
                    help="logistic regression: stop every model after this many iterations (a timing run: the "
                         "models are not converged, and the run says so)")
    ap.add_argument("--C", type=float, default=None, help="logistic regression: C (default: LogisticConfig's, 1.0)")
    ap.add_argument("--preconditioner", choices=("kron", "full-hessian"), default="kron",
                    help="logistic regression: L-BFGS preconditioner (LogisticConfig.preconditioner)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    from memlens.data import load_dataset, make_masks
    from memlens.measures import influence, memorization
    from memlens.population import Population
    from memlens.train import make_model_config, train_population

    out = {"model": args.model, "n_models": args.models, "jobs": args.jobs}
    t0 = time.perf_counter()
    ds = load_dataset("fashion-mnist")
    out["load_s"] = time.perf_counter() - t0
    full = ds
    if args.train_rows is not None and args.train_rows < ds.n_train:
        ds = ds.subset(train_index=np.arange(args.train_rows))
    out["n_train"], out["n_test"], out["n_features"] = ds.n_train, int(ds.X_test.shape[0]), int(ds.X_train.shape[1])
    cfg = make_model_config("mlp", **({} if args.epochs is None else {"epochs": args.epochs})) \
        if args.model == "mlp" else make_model_config("logreg", warm_start=args.init == "full",
                                                      preconditioner=args.preconditioner,
                                                      **({} if args.max_iter is None else {"max_iter": args.max_iter}),
                                                      **({} if args.C is None else {"C": args.C}))
    out["config"] = cfg.to_dict()
    masks = make_masks(args.models, ds.n_train, p=0.7, seed=args.seed)
    out["block_size"] = args.block_size or -(-args.models // args.jobs)
    t0, c0 = time.perf_counter(), time.process_time()
    pop = train_population(ds, model=cfg, masks=masks, seed=args.seed, n_jobs=args.jobs, block_size=out["block_size"])
    out["train_s"] = time.perf_counter() - t0
    # CPU seconds of this process (all of the training with --jobs 1; loky workers are not included).
    out["train_cpu_s_main"] = time.process_time() - c0
    out["convergence"] = dict(pop.provenance["convergence"])
    out["test_accuracy"] = float(pop.signal("test", "correct").mean())
    t0 = time.perf_counter()
    mem = memorization(pop)
    out["memorization_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    infl = influence(pop)
    out["influence_s"] = time.perf_counter() - t0
    out["mem_mean"] = float(np.nanmean(mem.scores))
    out["influence_pairs"] = infl.n_pairs
    if args.influence_models:
        k = args.influence_models
        rng = np.random.default_rng(args.seed + 1)
        sig = {split: {"correct": (rng.random((k, len(y))) < 0.85).astype(np.float32)}
               for split, y in (("train", full.y_train), ("test", full.y_test))}
        big = Population(masks=make_masks(k, full.n_train, p=0.7, seed=args.seed + 1), signals=sig,
                         labels={"train": full.y_train, "test": full.y_test},
                         provenance={"note": "timing only: random signals of the full shape"})
        del sig
        t0 = time.perf_counter()
        memorization(big)
        out["memorization_full_k_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        influence(big)
        out["influence_full_k_s"] = time.perf_counter() - t0
        out["influence_full_k"] = k
    out["cpu_s_main_total"] = time.process_time()
    out["peak_rss_gib_main"], out["peak_rss_gib_workers"] = _peak_rss_gib()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
