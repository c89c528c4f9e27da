"""Options the command line's audits share."""
from __future__ import annotations

import argparse
import os

from .._validation import MemlensInputError

__all__ = ["jobs_arg", "jobs_of"]


def jobs_arg(text: str) -> int:
    """``--jobs``: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def jobs_of(args):
    """The local backend's worker processes: --jobs, else $MEMLENS_JOBS, else every usable CPU (None). With
    --backend ray only an explicit --jobs is passed on (and refused by :func:`memlens.storage.make_executor`):
    the environment's default does not apply to Ray, which sizes itself."""
    if args.jobs is not None or getattr(args, "backend", "local") == "ray":
        return args.jobs
    env = os.environ.get("MEMLENS_JOBS")
    if env:
        try:
            return jobs_arg(env)
        except argparse.ArgumentTypeError as exc:
            raise MemlensInputError(f"MEMLENS_JOBS {exc}") from None
    return None
