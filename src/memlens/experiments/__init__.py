"""Reproductions of the seed papers' experiments, one module per figure or table.

Each module defines ``NAME``, ``DESCRIPTION`` (one line) and ``run(out_dir, *, quick=False, seed=0) -> dict``,
which writes PNG figures, ``results.json`` (every reported number, with the paper's value beside it where the
paper gives one) and a short ``README.md`` into ``out_dir`` and returns the results dictionary.
``memlens reproduce NAME`` and ``memlens list`` read :data:`REGISTRY`.
"""
from __future__ import annotations

import importlib

from .._validation import MemlensInputError, did_you_mean

__all__ = ["REGISTRY", "DESCRIPTIONS", "get_experiment", "list_experiments"]

#: reproduction name -> module (imported only to run one, so ``memlens list`` is instant)
REGISTRY = {
    "feldman-long-tail": "memlens.experiments.feldman_long_tail",
    "brown-logreg": "memlens.experiments.brown_logreg",
    "brown-mlp": "memlens.experiments.brown_mlp",
    "brown-next-symbol": "memlens.experiments.brown_next_symbol",
    "fkl-tradeoffs": "memlens.experiments.fkl_tradeoffs",
    "canary-exposure": "memlens.experiments.canary_exposure",
    "long-tail-diagnostic": "memlens.experiments.long_tail_diagnostic",
    "informed-reconstruction": "memlens.experiments.informed_reconstruction",
}
#: reproduction name -> its one-line description (``tests/test_experiments_registry.py`` checks that each is the
#: module's own ``DESCRIPTION``)
DESCRIPTIONS = {
    "feldman-long-tail": ("Feldman 2020 long tail: Zipf numbers, simulated learners vs the cost-of-not-fitting bound, "
                          "subgroup costs, memorization of rare subpopulations by real models"),
    "brown-logreg": ("Brown et al. STOC'21, logistic-regression figure: a sign attack on the goal log-probability "
                     "recovers singleton training points, noise bits included"),
    "brown-mlp": ("Brown et al. STOC'21, MLP figure: coordinate ascent on the goal log-probability of a 1500-unit "
                  "sigmoid network recovers singleton training points"),
    "brown-next-symbol": ("Brown et al. next-symbol prediction: singleton vs frequent accuracy of a small language "
                          "model and the bits of singleton noise it memorizes, over training time and model size"),
    "fkl-tradeoffs": ("Feldman-Kornowski-Lyu SDPI trade-offs: memorization lower bound vs simple learners against n "
                      "(Gaussian, Boolean, sparse hypercube, mixtures)"),
    "canary-exposure": ("Carlini et al. Secret Sharer: canary exposure and greedy extraction of a small byte-level "
                        "language model against repetitions, training steps and model size"),
    "long-tail-diagnostic": ("Feldman 2020 on real data: Fashion-MNIST subpopulations by clustering, their long-tailed "
                             "spectrum and fitted prior, and measured memorization by subpopulation size"),
    "informed-reconstruction": ("Balle et al. 2022 informed adversary: exact reconstruction of training examples "
                                "from an L2 logistic regression, against DP epsilon (output perturbation) and "
                                "Feldman-Zhang memorization"),
}


def get_experiment(name: str):
    """The experiment module for ``name`` (it has ``NAME``, ``DESCRIPTION`` and ``run``)."""
    if name not in REGISTRY:
        raise MemlensInputError(f"reproduction must be one of {', '.join(REGISTRY)}; got {name!r} "
                                "(`memlens list` shows them)" + did_you_mean(name, REGISTRY))
    return importlib.import_module(REGISTRY[name])


def list_experiments() -> list[tuple[str, str]]:
    """``[(name, one-line description), ...]`` for every registered reproduction (no module is imported)."""
    return [(name, DESCRIPTIONS[name]) for name in REGISTRY]
