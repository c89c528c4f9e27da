"""benchmarks/torch_module.py --quick runs and writes its table (no timing assertions)."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_writes_the_table(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_torch_module", ROOT / "benchmarks" / "torch_module.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--quick", "--out", str(tmp_path)])
    assert [r["module"] for r in res["a"]] == ["residual CNN (width 8)", "MLP 784-128-10 as nn.Module"]
    for r in res["a"]:   # the vectorized block and the loop train the same models
        assert r["max_logit_difference"] < 0.05 and r["vectorized_cpu_s"] > 0 and r["loop_cpu_s"] > 0
    assert json.loads((tmp_path / "torch_module.json").read_text())["quick"] is True
    assert "## (a) Vectorized block vs per-model loop" in (tmp_path / "torch_module.md").read_text()
