"""The README's Python snippet runs as written and gives the numbers `memlens audit` gives for the same settings."""
import contextlib
import io
import re
from pathlib import Path

from memlens.audits.image import run_audit

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippet() -> str:
    text = README.read_text()
    head = text.index("## Python API")
    start = text.index("```python\n", head) + len("```python\n")
    return text[start:text.index("```", start)]


def test_readme_snippet_matches_the_audit(tmp_path):
    code = _snippet()
    assert "audit_masks" in code and "print(" in code
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, str(README), "exec"), {})
    printed = [int(x) for x in buf.getvalue().split()[:2]]
    res = run_audit(dataset="digits", n_models=256, out=tmp_path / "demo", progress=False, attacks=False)
    assert printed == [res.record.n_memorized, res.record.n_pairs]
    # and the numbers the README states beside the print are the ones it prints
    stated = re.search(r"# (\d+) (\d+), as `memlens audit`", code)
    assert stated and [int(stated.group(1)), int(stated.group(2))] == printed
