"""Small I/O helpers every layer shares: atomic writes and JSON that survives NaN and numpy types."""
from __future__ import annotations

import json
import math
import os
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ._threads import physical_memory
from ._validation import MemlensInputError

__all__ = ["atomic_write_bytes", "to_jsonable", "canonical_json", "check_regular_file", "check_npy_file",
           "check_npz_file", "read_budget"]

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


# ---------------------------------------------------------------------------------------------- bounded reads
def read_budget() -> int:
    """Bytes an input file may expand to in memory: half of this machine's memory (8 GiB if unknown)."""
    have = physical_memory()
    return (have // 2) if have else 8 * 2**30


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular_file(path, what: str, *, max_bytes: int | None = None) -> int:
    """Refuse anything but an existing regular file (a FIFO would block, ``/dev/zero`` never ends) no larger than
    ``max_bytes``; returns its size. Raises :class:`~memlens.MemlensInputError` naming ``what``."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise MemlensInputError(f"{what} must be an existing file; got {str(path)!r} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise MemlensInputError(f"{what} must be a regular file; got {str(path)!r}, which is {_kind(st.st_mode)}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise MemlensInputError(f"{what} is too large to read: {str(path)!r} holds {st.st_size / 2**30:,.2f} GiB, "
                                f"more than the {max_bytes / 2**30:,.2f} GiB this machine can hold in memory")
    return int(st.st_size)


def _npy_header(f) -> tuple[tuple, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        shape, _, dtype = np.lib.format._read_array_header(f, version)
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _declared(shape, dtype) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n * int(dtype.itemsize)


def check_npy_file(path, what: str, *, max_bytes: int | None = None) -> None:
    """Check a ``.npy`` file before loading it: a regular file, a readable header, no pickled objects, and a
    declared size that the file holds and memory can take."""
    size = check_regular_file(path, what, max_bytes=max_bytes)
    budget = read_budget() if max_bytes is None else max_bytes
    try:
        with open(path, "rb") as f:
            shape, dtype = _npy_header(f)
            offset = f.tell()
    except Exception as exc:  # noqa: BLE001 - any header that numpy cannot parse is bad input
        raise MemlensInputError(f"{what}: {str(path)!r} is not a .npy file written by numpy.save ({exc})") from None
    if dtype.hasobject:
        raise MemlensInputError(f"{what}: {str(path)!r} holds Python objects (pickles), which memlens never loads; "
                                "save numeric arrays")
    need = _declared(shape, dtype)
    if need > budget:
        raise MemlensInputError(f"{what}: {str(path)!r} declares an array of shape {shape} ({need / 2**30:,.1f} GiB), "
                                f"more than the {budget / 2**30:,.1f} GiB this machine can hold")
    if need > size - offset:
        raise MemlensInputError(f"{what}: {str(path)!r} declares an array of shape {shape} ({need:,} bytes) but holds "
                                f"only {size - offset:,} bytes of data: the file is truncated or damaged")


#: A compressed member larger than this whose data compress more than :data:`BOMB_RATIO`-fold is refused unread.
BOMB_BYTES = 256 * 2**20
BOMB_RATIO = 200


def check_npz_file(path, what: str) -> dict:
    """Check an ``.npz`` before loading it: a regular file whose members' declared array sizes (read from their
    headers, without inflating them) fit in memory, with no pickled objects; a zip bomb (a large member compressed
    more than :data:`BOMB_RATIO`-fold) is refused unread. Returns ``{name: (shape, dtype)}`` of the members, for
    checks of their shapes before anything is inflated."""
    check_regular_file(path, what)
    budget = read_budget()
    total = 0
    headers = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with z.open(info) as f:
                    shape, dtype = _npy_header(f)
                if dtype.hasobject:
                    raise MemlensInputError(f"{what}: {str(path)!r} member {info.filename} holds Python objects "
                                            "(pickles), which memlens never loads; save numeric arrays")
                need = max(_declared(shape, dtype), int(info.file_size))
                headers[info.filename[:-4]] = (shape, dtype)
                if need > BOMB_BYTES and need > BOMB_RATIO * max(int(info.compress_size), 1):
                    raise MemlensInputError(f"{what}: {str(path)!r} member {info.filename} would inflate "
                                            f"{int(info.compress_size):,} compressed bytes to {need / 2**30:,.2f} GiB "
                                            f"(more than {BOMB_RATIO}-fold): refused unread as a likely zip bomb; if "
                                            "the data are real, save them uncompressed with numpy.savez")
                total += need
                if total > budget:
                    raise MemlensInputError(f"{what}: {str(path)!r} expands to more than {budget / 2**30:,.1f} GiB "
                                            f"(member {info.filename}: shape {shape}, {need / 2**30:,.1f} GiB), more "
                                            "than this machine can hold; refused without inflating it")
    except MemlensInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable archive is bad input
        raise MemlensInputError(f"{what} must be an .npz file written by numpy.savez; could not read {str(path)!r} "
                                f"({type(exc).__name__}: {exc})") from None
    return headers
