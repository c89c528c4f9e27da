"""Reproductions of the seed papers' experiments, one module per figure or table.

Each module defines ``NAME``, ``DESCRIPTION`` (one line) and ``run(out_dir, *, quick=False, seed=0) -> dict``,
which writes PNG figures, ``results.json`` (every reported number, with the paper's value beside it where the
paper gives one) and a short ``README.md`` into ``out_dir`` and returns the results dictionary.
``memlens reproduce NAME`` and ``memlens list`` read :data:`REGISTRY`.
"""
from __future__ import annotations

import importlib

from .._validation import MemlensInputError

__all__ = ["REGISTRY", "get_experiment", "list_experiments"]

#: reproduction name -> module (imported lazily so ``memlens list`` is instant)
REGISTRY = {
    "feldman-long-tail": "memlens.experiments.feldman_long_tail",
    "brown-logreg": "memlens.experiments.brown_logreg",
    "brown-mlp": "memlens.experiments.brown_mlp",
    "brown-next-symbol": "memlens.experiments.brown_next_symbol",
    "fkl-tradeoffs": "memlens.experiments.fkl_tradeoffs",
    "canary-exposure": "memlens.experiments.canary_exposure",
}


def get_experiment(name: str):
    """The experiment module for ``name`` (it has ``NAME``, ``DESCRIPTION`` and ``run``)."""
    if name not in REGISTRY:
        raise MemlensInputError(f"reproduction must be one of {', '.join(REGISTRY)}; got {name!r} "
                                "(`memlens list` shows them)")
    return importlib.import_module(REGISTRY[name])


def list_experiments() -> list[tuple[str, str]]:
    """``[(name, one-line description), ...]`` for every registered reproduction."""
    out = []
    for name in REGISTRY:
        try:
            out.append((name, get_experiment(name).DESCRIPTION))
        except ImportError as exc:  # a module not written yet, or a missing optional dependency
            out.append((name, f"(unavailable: {exc})"))
    return out
