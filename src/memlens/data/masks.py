"""Membership masks: which model trains on which example."""
from __future__ import annotations

import numpy as np

from .._random import as_generator
from .._threads import physical_memory
from .._validation import MemlensInputError, check_fraction, check_int

__all__ = ["make_masks"]


def _check_memory(n_models: int, n_examples: int, *, bytes_per_entry: int) -> None:
    """Refuse a mask matrix whose drawing needs more memory than the machine has (a clear error, not a crash)."""
    need = n_models * n_examples * bytes_per_entry
    have = physical_memory()
    if have is not None and need > have:
        raise MemlensInputError(f"n_models * n_examples = {n_models} * {n_examples} mask entries need about "
                                f"{need / 2**30:,.0f} GiB to draw, more than this machine's {have / 2**30:,.0f} GiB "
                                f"of memory; got n_models={n_models}: use fewer models or fewer examples")


def make_masks(n_models: int, n_examples: int, *, p: float = 0.7, seed=0, balanced: bool = False) -> np.ndarray:
    """Random training subsets, one row per model.

    Parameters
    ----------
    n_models : int
        Number of models (rows), >= 2 so every example can have both IN and OUT models.
    n_examples : int
        Number of training examples (columns).
    p : float in (0, 1)
        Subset ratio. Unbalanced (default): each row is a uniformly random subset of exactly
        ``round(p * n_examples)`` examples (Feldman & Zhang 2020, Algorithm 1). Balanced: see below.
    seed : int or numpy.random.Generator
    balanced : bool
        If True, every example is IN for exactly ``round(p * n_models)`` models (with ``p = 0.5``, exactly half,
        as LiRA's online attack wants). Columns are independent random permutations, so row sizes are only
        approximately ``p * n_examples``.

    Returns
    -------
    masks : ndarray of bool, shape (n_models, n_examples)
        True where the example is in that model's training set.
    """
    n_models = check_int("n_models", n_models, min_value=2,
                         hint="to have both IN and OUT models for every example")
    n_examples = check_int("n_examples", n_examples, min_value=1)
    p = check_fraction("p", p, hint="it is the fraction of examples each model trains on")
    if not isinstance(balanced, (bool, np.bool_)):
        raise MemlensInputError(f"balanced must be True or False; got {balanced!r}")
    _check_memory(n_models, n_examples, bytes_per_entry=25 if balanced else 17)
    rng = as_generator(seed)
    if balanced:
        k = int(round(p * n_models))
        if not 1 <= k <= n_models - 1:
            raise MemlensInputError(f"p * n_models must round to between 1 and n_models - 1 for balanced masks "
                                    f"(every example needs IN and OUT models); got p={p}, n_models={n_models}")
        keys = rng.random((n_models, n_examples))
        ranks = np.argsort(np.argsort(keys, axis=0), axis=0)
        return ranks < k
    m = int(round(p * n_examples))
    if not 1 <= m <= n_examples - 1:
        raise MemlensInputError(f"p * n_examples must round to between 1 and n_examples - 1; got p={p}, "
                                f"n_examples={n_examples}")
    keys = rng.random((n_models, n_examples))
    kth = np.partition(keys, m - 1, axis=1)[:, m - 1: m]
    return keys <= kth
