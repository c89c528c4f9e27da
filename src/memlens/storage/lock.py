"""One writer per run directory: an exclusive lock held for the whole run.

The lock is ``DIR/.memlens.lock``, locked with ``flock(LOCK_EX | LOCK_NB)`` on an open descriptor. The kernel
releases it when the holder exits in any way (return, exception, SIGINT, SIGKILL), so a lock never outlives its
process; the file records the holder (pid, host, start time, command) so that a refused writer can say who holds
it, and is emptied on a clean release, so that a later run can tell that the previous holder died while holding
it ("taken over"). A second writer is refused at once, before it changes anything.

What the lock guarantees: between processes of one machine, on any local file system, exclusion is enforced by the
kernel. On NFS, Linux implements ``flock`` with the server's byte-range locks (NFSv4, or NFSv3 with ``lockd``),
so processes on different clients exclude each other too; on network file systems without lock support (some SMB
and FUSE mounts) ``flock`` only excludes processes of the same machine, and two machines can still write the same
directory: run one writer per directory there.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import functools
import json
import os
import socket
import sys
import time
from pathlib import Path

from .._validation import MemlensInputError, warn

__all__ = ["LOCK_NAME", "RunLock", "acquire_run_lock", "holds_run_locks", "lock_run"]

LOCK_NAME = ".memlens.lock"

try:  # POSIX only; elsewhere the lock is a no-op with a warning
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class RunLock:
    """A held lock on a run directory (see the module docstring); :meth:`release` is idempotent."""

    def __init__(self, directory: Path, fd: int | None, created_dir: bool):
        self.directory = directory
        self.path = directory / LOCK_NAME
        self._fd = fd
        self._created_dir = created_dir

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empty the record, unlock and close; remove the lock file (and the folder, if this lock created it and
        nothing else was written there)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _write_record(self.path, b"")      # a clean release leaves no holder behind
            names = None
            with contextlib.suppress(OSError):
                names = [p.name for p in self.directory.iterdir()]
            # no run was written here (the start was refused or failed): leave the folder as it was found
            if names is not None and "manifest.json" not in names:
                with contextlib.suppress(OSError):
                    self.path.unlink()
            if names == [LOCK_NAME]:
                if self._created_dir:
                    with contextlib.suppress(OSError):
                        self.directory.rmdir()
        finally:
            with contextlib.suppress(OSError):
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __del__(self):
        with contextlib.suppress(Exception):
            self.release()

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _write_record(path: Path, data: bytes) -> None:
    """Replace the lock file's content (the holder's record) in place; best effort (a read-only file system keeps
    the old record, which then only names a process that no longer holds the lock)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            os.ftruncate(fd, 0)
            if data:
                os.pwrite(fd, data, 0)
            os.fsync(fd)
        finally:
            os.close(fd)


def _holder(text: str) -> str:
    try:
        rec = json.loads(text)
    except ValueError:
        return "another process"
    if not isinstance(rec, dict):
        return "another process"
    since = rec.get("since")
    cmd = rec.get("command")
    return (f"process {rec.get('pid', '?')} on {rec.get('host', '?')}"
            + (f", since {since}" if since else "")
            + (f" ({cmd})" if cmd else ""))


def _record() -> bytes:
    cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200]
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "since": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()), "command": cmd}).encode()


def acquire_run_lock(directory, *, param: str = "out") -> RunLock:
    """Lock ``directory`` (created if missing) for this process, or refuse with one line naming the holder.

    Raises
    ------
    MemlensInputError
        Another process holds the lock (``param`` names the setting, e.g. ``out``).
    """
    directory = Path(directory)
    created = False
    if not directory.exists():
        try:
            directory.mkdir(parents=True)
            created = True
        except FileExistsError:
            pass
    if fcntl is None:  # pragma: no cover - Windows
        warn("run directories cannot be locked on this platform: run one memlens process per --out directory")
        return RunLock(directory, None, created)
    path = directory / LOCK_NAME
    for _ in range(5):   # the file may be removed by a holder releasing it between our open and flock: retry
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise MemlensInputError(f"{param}: {str(path)!r} must be the run's lock file; it is a folder, a link or a "
                                    "special file: remove it", param=param)
        try:
            # read-only: a lock needs no write access, and an open-for-writing file would keep an administrator
            # from remounting the file system read-only (the record is written through a separate descriptor)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise MemlensInputError(f"{param}: cannot create the run's lock file {str(path)!r} "
                                    f"({exc.strerror or exc}); fix the folder's permissions or choose another --out "
                                    "directory", param=param) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            text = ""
            with contextlib.suppress(OSError):
                text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise MemlensInputError(f"{param}: {str(directory)!r} is in use by {_holder(text)}; wait for it to "
                                        "finish, or choose another --out directory", param=param) from None
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                warn(f"the file system of {str(directory)!r} does not support locks: run one memlens process per "
                     "--out directory there")
                return RunLock(directory, None, created)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:               # we locked a file another holder had just removed
            os.close(fd)
            continue
        previous = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        if previous.strip():
            warn(f"took over the lock of {str(directory)!r} from {_holder(previous)}, which ended without "
                 "releasing it (killed?); its finished shards are reused with --resume")
        _write_record(path, _record())
        return RunLock(directory, fd, created)
    raise MemlensInputError(f"{param}: could not lock {str(directory)!r} (its lock file kept changing); another "
                            "process is starting or ending a run there: try again", param=param)


#: Locks taken during the current call of a recipe decorated with :func:`holds_run_locks`.
_HELD: contextvars.ContextVar[list | None] = contextvars.ContextVar("memlens_run_locks", default=None)


def lock_run(directory, *, param: str = "out") -> RunLock:
    """Take the lock of ``directory`` for the rest of the enclosing :func:`holds_run_locks` call.

    Inside such a call the lock is released when the call ends, however it ends; taking the same directory's lock
    twice in one call is a no-op. Outside one, the caller must :meth:`RunLock.release` it.
    """
    held = _HELD.get()
    directory = Path(directory)
    if held is not None:
        for lock in held:
            if lock.held and lock.directory.resolve() == directory.resolve():
                return lock
    lock = acquire_run_lock(directory, param=param)
    if held is not None:
        held.append(lock)
    return lock


def holds_run_locks(fn):
    """Decorate a recipe so that every run lock taken during the call (:func:`lock_run`) is released at its end."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        token = _HELD.set([])
        try:
            return fn(*args, **kwargs)
        finally:
            for lock in _HELD.get() or []:
                lock.release()
            _HELD.reset(token)

    return wrapper
