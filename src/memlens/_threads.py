"""One BLAS thread per process (DESIGN.md, performance principle 2)."""
from __future__ import annotations

import contextlib

__all__ = ["limit_threads"]


@contextlib.contextmanager
def limit_threads(n: int = 1):
    """Limit BLAS/OpenMP (numpy, scipy, sklearn) and torch intra-op threads to ``n`` inside the block."""
    from threadpoolctl import threadpool_limits

    try:
        import torch
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
