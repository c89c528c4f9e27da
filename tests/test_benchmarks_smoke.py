"""Smoke test of the benchmark runner: ``benchmarks/run.py --quick`` writes valid JSON and markdown.

No timing assertions: the runner's numbers depend on the machine's load. The checks are structural, plus
the invariants that hold whatever the load (the population and the per-model loop train the same models;
closed-form LOO agrees with refits; memlens and scikit-learn fit the same objective).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_quick_run_writes_json_and_markdown(quick_run):
    res = json.loads((quick_run / "results.json").read_text())
    assert res["quick"] is True
    assert res["machine"]["cores"] >= 1 and math.isfinite(res["load_start"])
    # (a) every K row has memlens, sklearn and the tight reference; memlens fits sklearn's objective.
    solvers = {r["solver"] for r in res["logreg"]}
    assert {"memlens", "memlens 1 proc", "sklearn", "sklearn reference (tol 1e-8)"} <= solvers
    for r in res["logreg"]:
        assert r["models_per_s"] > 0 and r["convergence"]["n_iter_mean"] > 0
        if r["solver"].startswith("memlens"):
            assert r["convergence"]["n_not_converged"] == 0
            assert r["vs_sklearn_tight_reference"]["pearson_r_mem"] >= 0.99
    # (b) the loop reproduces the population's first models (same init, subsets, minibatch order).
    assert res["mlp"]["test_prediction_agreement_same_models"] >= 0.99
    # (c) exact closed forms agree with refits to rounding; ALO flags agree.
    for r in res["loo"]:
        if r["exact"]:
            assert r["max_abs_diff_scores"] < 1e-8
        assert r["loo_correct_flag_agreement"] >= 0.9
    # (d) a positive, finite GEMM rate and a fraction below the physical limit (with headroom for noise).
    assert res["gemm_peak"]["gflops_1t_best"] > 0
    for r in res["gemm_fraction"]:
        assert 0 < r["fraction_of_1t_peak"] < 3
    assert "fmnist" not in res
    assert res["targets"] and all({"target", "measured", "verdict"} <= set(t) for t in res["targets"])

    md = (quick_run / "BENCHMARKS.md").read_text()
    assert md.startswith("# memlens benchmarks")
    for heading in ("(a) Population logistic regression", "(b) MLP population", "(c) Closed-form",
                    "(d) Achieved fraction", "(e) Fashion-MNIST", "Targets"):
        assert heading in md
    # Every table row has as many cells as its header.
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            n = lines[i - 1].replace("\\|", "").count("|")
            j = i + 1
            while j < len(lines) and lines[j].startswith("|"):
                assert lines[j].replace("\\|", "").count("|") == n, lines[j]
                j += 1
