"""``memlens show DIR``: a finished run's summary as tables in the terminal (rich), or as JSON."""
from __future__ import annotations

import json
from pathlib import Path

from .._display import attack_rows, summary_rows
from .._validation import MemlensInputError

__all__ = ["read_summary", "show"]


def read_summary(out) -> dict:
    """The ``summary.json`` of the run in ``out``; a one-line error when there is none or it is unreadable."""
    path = Path(out)
    f = path / "summary.json"
    if not path.is_dir():
        raise MemlensInputError(f"DIR must be a run directory; got {str(path)!r}, which is not a folder", param="DIR")
    if not f.is_file():
        hint = ("it holds an unfinished run: continue it with `memlens audit --resume --out DIR`"
                if (path / "manifest.json").is_file() else "it holds no memlens run")
        raise MemlensInputError(f"DIR {str(path)!r} has no summary.json: {hint}", param="DIR")
    try:
        summary = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise MemlensInputError(f"DIR {str(path)!r}: summary.json is unreadable ({exc})", param="DIR") from None
    if not isinstance(summary, dict):
        raise MemlensInputError(f"DIR {str(path)!r}: summary.json does not hold a run summary", param="DIR")
    return summary


def show(out, *, as_json: bool = False, file=None) -> None:
    """Print the summary of the run in ``out``: tables (rich) or, with ``as_json``, the summary.json itself."""
    s = read_summary(out)
    if as_json:
        print(json.dumps(s, indent=2), file=file)
        return
    from rich.console import Console  # deferred: only this command draws tables
    from rich.table import Table  # deferred: as above

    console = Console(file=file, highlight=False)
    t = Table(title=f"memlens run {out}", show_header=False, title_justify="left")
    t.add_column("", style="bold")
    t.add_column("")
    for k, v in summary_rows(s):
        t.add_row(k, v)
    console.print(t)
    rows = attack_rows(s)
    if rows:
        a = Table(title="membership attacks" + ("" if s.get("kind") == "lm-audit" else " (mean over target models)"),
                  title_justify="left")
        for col in ("attack", "AUC", "95% CI", "TPR @ 0.1% FPR", "TPR @ 1% FPR"):
            a.add_column(col, justify="left" if col == "attack" else "right")
        for r in rows:
            a.add_row(*r)
        console.print(a)
    console.print(f"report: {Path(out) / 'report.html'}")
