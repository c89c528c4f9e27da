"""Small I/O helpers every layer shares: atomic writes and JSON that survives NaN and numpy types."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["atomic_write_bytes", "to_jsonable", "canonical_json"]

_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _FILE_MODE)  # mkstemp creates 0600; written files get the umask's usual mode
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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


def canonical_json(obj) -> bytes:
    """Key-sorted, whitespace-free JSON bytes of ``obj`` (what run identities hash)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
