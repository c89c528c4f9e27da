"""Kill a dead driver's processes: the reaper of a local Ray instance started by memlens.

Run as a script (``python _reaper.py DRIVER_PID``, standard library only, started in its own session by
:class:`memlens.storage.RayExecutor` when it starts a local Ray instance). Every half second it records the driver's
descendants (pid and start time, from ``/proc``); when the driver is gone (killed, even by SIGKILL, which no handler
in the driver can catch), it kills those that still run, so that a local Ray instance never outlives its driver. A
SIGTERM (sent by the executor after ``ray.shutdown()``) ends it without killing anything. Linux only.
"""
import os
import signal
import sys
import time

POLL_S = 0.5


def _stat(pid: int):
    """``(ppid, start_time, state)`` of ``pid`` from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2:].split()
    return int(rest[1]), int(rest[19]), rest[0]


def _children_map() -> dict:
    out: dict = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                out.setdefault(st[0], []).append((int(name), st[1]))
    return out


def _descendants(roots, cmap) -> set:
    seen, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        for child in cmap.get(pid, []):
            if child not in seen:
                seen.add(child)
                todo.append(child[0])
    return seen


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] == start and st[2] != "Z"


def main(driver: int) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    me = os.getpid()
    first = _stat(driver)
    if first is None:
        return 0
    start = first[1]
    known: set = set()
    while _alive(driver, start):
        known |= {c for c in _descendants([driver], _children_map()) if c[0] != me}
        time.sleep(POLL_S)
    cmap = _children_map()
    targets = known | _descendants([p for p, _ in known], cmap)
    for pid, st in targets:
        if pid != me and _alive(pid, st):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
