"""Smoke test of ``benchmarks/queries.py --quick``: it writes JSON and markdown, and the invariant that holds whatever
the load — label-only and attribute queries only read the trained models, so every other signal is identical."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_queries_benchmark_quick(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "queries.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "queries.json").read_text())
    assert [r["dataset"] for r in res["rows"]] == ["digits", "caravan"]
    for r in res["rows"]:
        assert r["signals_identical_with_label_queries"] and r.get("signals_identical_with_attribute_queries", True)
        assert r["label_only_ratio"] > 0 and 0.3 < r["auc"]["label-only-calibrated"] < 1.0
    assert "## (j) Label-only and attribute queries" in (tmp_path / "queries.md").read_text()
