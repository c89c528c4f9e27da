"""Choose the logistic-regression C for the full Fashion-MNIST benchmark by validation accuracy.

    python benchmarks/fmnist_choose_c.py [--grid 0.001 0.01 0.1 1]

Fits one model per C on the first 50,000 training rows (weight 0.84 on every row, so the penalty
``1 / (C * 0.84 * 50,000)`` is that of a population model of 42,000 = 0.7 x 60,000 examples: the same
regularization as the benchmark's models) and scores it on the last 10,000 training rows, never on the test
split. Same standardization, objective and tolerance (max |grad| <= 1e-6) as the population. Writes
``benchmarks/out/fmnist_choose_c.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from memlens.data import load_dataset  # noqa: E402
from memlens.train import fit_logistic, standardized_features  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=float, nargs="+", default=[0.001, 0.01, 0.1, 1.0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "fmnist_choose_c.json")
    args = ap.parse_args(argv)
    ds = load_dataset("fashion-mnist")
    X, _ = standardized_features(ds)
    y = ds.y_train
    fit_rows, val_rows = np.arange(50_000), np.arange(50_000, 60_000)
    rows = []
    for C in args.grid:
        t0 = time.process_time()
        fit = fit_logistic(X[fit_rows], y[fit_rows], np.full((1, fit_rows.size), 0.84), n_classes=10, C=C, tol=1e-6,
                           preconditioner="full-hessian")
        acc = lambda r: float((fit.logits(X[r])[0].argmax(1) == y[r]).mean())  # noqa: E731
        rows.append({"C": C, "validation_accuracy": acc(val_rows), "fit_accuracy": acc(fit_rows),
                     "converged": bool(fit.converged[0]), "cpu_s": time.process_time() - t0})
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: r["validation_accuracy"])
    out = {"rows": rows, "best_C": best["C"], "fit_rows": int(fit_rows.size), "validation_rows": int(val_rows.size)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
