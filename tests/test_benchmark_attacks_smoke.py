"""Smoke test of ``benchmarks/attacks.py --quick``: structure of its JSON and markdown, and the invariants of the
design that hold whatever the load (complementary mask pairs, which scores are defined, pooled counts, DP budget).
No timing assertions."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "attacks.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_attacks", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paired_masks_are_complementary_and_balanced():
    masks = _module().paired_masks(8, 50, seed=3)
    assert masks.shape == (8, 50)
    assert np.array_equal(masks[1::2], ~masks[0::2])      # each pair partitions the examples
    assert np.all(masks.sum(0) == 4)                       # every example IN for exactly half the models
    assert np.all(masks[0::2].sum(0) == 2)                 # balanced base rows (p = 0.5)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("attacks")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "attacks.json").read_text()), (out / "attacks.md").read_text()


def test_quick_run_results(quick):
    res, md = quick
    assert res["quick"] is True
    d = res["datasets"]["digits"]
    T, n = d["n_targets"], d["n_train"]
    assert set(d["settings"]) == {"non-private", "ε=8", "ε=1"}
    for label, st in d["settings"].items():
        if st["epsilon"] is not None:
            assert st["dp"]["epsilon_accountant"] <= st["epsilon"] + 1e-9
        rows = st["rows"]
        assert len(rows) == 1 + 5 * len(d["refs"])
        for r in rows:
            online = r["attack"] in ("LiRA online", "RMIA online")
            if online and r["R"] == 1:
                assert r["auc"] is None and r["defined"] == 0.0
                continue
            if r["R"] == 1:     # one reference: only the examples OUT of it have an offline score
                assert 0.3 < r["defined"] < 0.7
            else:               # complementary pairs: every example has IN and OUT references
                assert r["defined"] == 1.0
                assert r["n_pooled_nonmembers"] == T * n // 2 and r["n_pooled_members"] == T * n // 2
            assert 0.0 <= r["auc"]["mean"] <= 1.0 and math.isfinite(r["auc"]["pooled"])
            for f in ("0.001", "0.01"):
                t = r["tpr"][f]
                assert 0.0 <= t["ci"][0] <= t["ci"][1] <= 1.0 and 0.0 <= t["pooled"] <= 1.0
    # the non-private models memorize: the online attacks beat chance clearly on the pooled ROC
    best = max(r["auc"]["pooled"] for r in d["settings"]["non-private"]["rows"] if r["auc"])
    assert best > 0.6
    assert "| LiRA online | 2 |" in md and "TPR@0.1%" in md


def test_from_json_merges_runs(quick, tmp_path):
    res, _ = quick
    a, b = dict(res), dict(res)
    b["datasets"] = {"digits-copy": {**res["datasets"]["digits"], "dataset": "digits-copy"}}
    for name, r in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(r))
    mod = _module()
    merged = mod.main(["--from-json", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path)])
    assert list(merged["datasets"]) == ["digits", "digits-copy"]
    assert merged["total_s"] == pytest.approx(2 * res["total_s"])
    assert json.loads((tmp_path / "attacks.json").read_text())["datasets"]["digits-copy"]["n_targets"] == \
        res["datasets"]["digits"]["n_targets"]
    assert "**digits-copy**" in (tmp_path / "attacks.md").read_text()
