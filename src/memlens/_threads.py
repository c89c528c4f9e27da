"""The machine's resources: one BLAS thread per process (docs/architecture.md, "Performance"), its memory and CPUs.

threadpoolctl and torch are imported inside :func:`limit_threads`: torch is heavy, and the base layer must import
in an instant.
"""
from __future__ import annotations

import contextlib
import os

__all__ = ["limit_threads", "physical_memory", "usable_cpus"]


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@contextlib.contextmanager
def limit_threads(n: int = 1):
    """Limit BLAS/OpenMP (numpy, scipy, sklearn) and torch intra-op threads to ``n`` inside the block."""
    from threadpoolctl import threadpool_limits  # deferred with torch: both load native libraries

    try:
        import torch  # heavy: deferred until threads are limited
    except ImportError:  # pragma: no cover - torch is a hard dependency
        torch = None
    old = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(old)
