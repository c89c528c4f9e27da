"""One child process timed as a whole: wall time, CPU time and peak resident size of its process tree.

The tree (the process, its threads' children, recursively: worker processes included) is read from /proc every
``interval`` seconds while the child runs; CPU time is user + system per process, its largest value seen.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time

__all__ = ["run_tree"]


def _tree(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            pass
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0


def run_tree(cmd, *, env=None, cwd=None, timeout: float = 7200, interval: float = 0.2) -> dict:
    """Run ``cmd``; ``{rc, stdout, stderr, wall_s, cpu_s, peak_bytes, timed_out}`` of its whole process tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd)
    peak, ticks = [0], {}

    def poll():
        while proc.poll() is None:
            pids = _tree(proc.pid)
            peak[0] = max(peak[0], sum(_rss(p) for p in pids))
            for p in pids:
                ticks[p] = max(ticks.get(p, 0), _ticks(p))
            time.sleep(interval)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        timed_out = True
    wall = time.perf_counter() - t0
    th.join()
    return {"rc": proc.returncode, "stdout": out, "stderr": err, "wall_s": wall, "timed_out": timed_out,
            "cpu_s": sum(ticks.values()) / os.sysconf("SC_CLK_TCK"), "peak_bytes": peak[0]}
