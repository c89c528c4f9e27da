"""Explicit randomness: every random function takes ``seed`` (int or ``numpy.random.Generator``).

Per-model seeds are spawned from one :class:`numpy.random.SeedSequence`, so model ``k`` of a run gets the
same seed whatever the shard size, the backend or the order in which shards finish.
"""
from __future__ import annotations

import numbers

import numpy as np

from ._validation import MemlensInputError

__all__ = ["as_generator", "model_seeds", "check_seed", "check_int_seed"]


def check_seed(seed, name: str = "seed"):
    """Accept an int >= 0, a Generator or a SeedSequence; reject anything else with a clear message."""
    if isinstance(seed, (np.random.Generator, np.random.SeedSequence)):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (numbers.Integral, np.integer)) or int(seed) < 0:
        raise MemlensInputError(
            f"{name} must be a non-negative integer or a numpy.random.Generator; got {seed!r}")
    return int(seed)


def check_int_seed(seed, *, why: str, name: str = "seed") -> int:
    """An int seed >= 0 where a Generator will not do (``why`` says what the integer is needed for)."""
    seed = check_seed(seed, name)
    if not isinstance(seed, int):
        raise MemlensInputError(f"{name} must be an integer >= 0 ({why}); got {type(seed).__name__}")
    return seed


def as_generator(seed) -> np.random.Generator:
    """A :class:`numpy.random.Generator` from an int seed, a SeedSequence or a Generator (returned as is)."""
    seed = check_seed(seed)
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def model_seeds(seed, n_models: int, *, start: int = 0) -> np.ndarray:
    """Seeds ``(n_models,)`` uint32x2-derived int64 for models ``start .. start + n_models - 1``.

    Model ``k``'s seed is ``SeedSequence(seed).spawn(k + 1)[k]`` reduced to 63 bits, so it depends only on the
    run seed and ``k``.
    """
    seed = check_seed(seed)
    if isinstance(seed, np.random.Generator):
        raise MemlensInputError("seed must be an integer for per-model seeds (they must be reproducible "
                                "from the run's manifest); got a Generator")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    out = np.empty(n_models, dtype=np.int64)
    for j in range(n_models):
        child = np.random.SeedSequence(root.entropy, spawn_key=root.spawn_key + (start + j,))
        out[j] = int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return out
