"""What every reproduction writes: results.json, README.md and figures in one output folder."""
from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from .._io import atomic_write_bytes, to_jsonable

__all__ = ["prepare_out_dir", "write_results", "write_readme", "save_figure", "to_jsonable", "step", "PROGRESS"]

#: Phase lines on stderr (``memlens reproduce`` turns them on; silent in Python by default).
PROGRESS = {"on": False}


@contextmanager
def step(what: str):
    """A reproduction's phase line: ``what ...`` when a step starts and its elapsed time when it ends."""
    t0 = time.perf_counter()
    if PROGRESS["on"]:
        print(f"  {what} ...", file=sys.stderr, flush=True)
    yield
    if PROGRESS["on"]:
        print(f"  {what}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def prepare_out_dir(out_dir) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


#: Where the "paper" values of the reproductions come from (said in every results.json that has any).
PAPER_VALUES_SOURCE = ("secondary summaries of the papers (docs/theory.md), not transcribed from the papers' text; "
                       "a discrepancy may be the summary's")


def _mentions_paper(obj) -> bool:
    if isinstance(obj, dict):
        return any(("paper" in str(k)) or _mentions_paper(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return any(_mentions_paper(v) for v in obj)
    return False


def write_results(out_dir, results: dict) -> Path:
    """Write ``results.json`` atomically (with ``paper_values_source`` wherever it quotes a paper's values)."""
    if _mentions_paper(results) and "paper_values_source" not in results:
        results = {**results, "paper_values_source": PAPER_VALUES_SOURCE}
    path = Path(out_dir) / "results.json"
    atomic_write_bytes(path, json.dumps(to_jsonable(results), indent=2).encode())
    return path


def write_readme(out_dir, text: str) -> Path:
    path = Path(out_dir) / "README.md"
    atomic_write_bytes(path, text.encode())
    return path


def save_figure(fig, out_dir, name: str) -> Path:
    """Save a matplotlib figure as PNG (``name`` without extension) and close it."""
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    path = Path(out_dir) / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
