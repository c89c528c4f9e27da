"""What every reproduction writes: results.json, README.md and figures in one output folder."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..population import atomic_write_bytes

__all__ = ["prepare_out_dir", "write_results", "write_readme", "save_figure", "to_jsonable"]


def prepare_out_dir(out_dir) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def to_jsonable(obj):
    """numpy scalars/arrays -> Python numbers/lists; NaN and inf -> None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_results(out_dir, results: dict) -> Path:
    """Write ``results.json`` atomically."""
    path = Path(out_dir) / "results.json"
    atomic_write_bytes(path, json.dumps(to_jsonable(results), indent=2).encode())
    return path


def write_readme(out_dir, text: str) -> Path:
    path = Path(out_dir) / "README.md"
    atomic_write_bytes(path, text.encode())
    return path


def save_figure(fig, out_dir, name: str) -> Path:
    """Save a matplotlib figure as PNG (``name`` without extension) and close it."""
    import matplotlib.pyplot as plt

    path = Path(out_dir) / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
