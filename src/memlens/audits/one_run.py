"""One-run privacy audit with inserted canaries (Steinke, Nasr & Jagielski 2023).

Workflow: draw ``m`` canaries (:func:`memlens.data.make_canaries`), append them to the training split, and train
each model on the *whole* base training set plus an independent random half of the canaries (each canary IN
with probability 1/2). Each canary is scored by the trained model's minus loss (higher = more likely a member);
the auditor guesses "in" for the ``k₊`` highest scores and "out" for the ``k₋`` lowest, and the main theorem of
Steinke et al. (arXiv:2305.08846; the p-value of their Appendix D, :func:`memlens.evaluation.one_run_audit`)
turns the number of correct guesses into a lower bound on ε with confidence ``1 − beta`` — from a single
training run. Each model is one independent audit; the accountant's ε (an upper bound, for DP-SGD runs) is
reported beside the audited lower bounds.

With ``out`` the audit is a recipe on the audit pipeline (:mod:`memlens.audits.pipeline`): the models are trained
shard by shard into a run directory (resumable, its identity checked), and ``canaries.csv`` and ``summary.json``
are written there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from .._random import as_generator, check_int_seed
from .._validation import MemlensInputError, check_int, check_level
from ..data import Dataset, make_canaries, with_canaries
from ..privacy.empirical import _check_delta, one_run_audit
from ..report.tables import csv_text, fmt
from ..train import get_trainer
from . import pipeline

__all__ = ["CanaryAudit", "canary_masks", "one_run_canary_audit"]


def canary_masks(n_models: int, n_base: int, n_canaries: int, *, seed=0) -> np.ndarray:
    """Masks ``(n_models, n_base + n_canaries)``: every base example IN, each canary IN with probability 1/2.

    Columns ``n_base ..`` are the canaries (the layout of :func:`memlens.data.with_canaries`); every model's
    canary inclusions are independent Bernoulli(1/2) draws from ``seed``.
    """
    n_models = check_int("n_models", n_models, min_value=1)
    n_base = check_int("n_base", n_base, min_value=0)
    n_canaries = check_int("n_canaries", n_canaries, min_value=1)
    rng = as_generator(seed)
    masks = np.ones((n_models, n_base + n_canaries), dtype=bool)
    masks[:, n_base:] = rng.random((n_models, n_canaries)) < 0.5
    return masks


@dataclass(frozen=True, eq=False)
class CanaryAudit:
    """One-run audits of ``n_models`` training runs with inserted canaries.

    Attributes
    ----------
    audits : tuple of OneRunAudit, length n_models
        The one-run audit of each model (one independent training run each).
    scores : ndarray, shape (n_models, m)
        Audit score of each canary under each model: minus its loss (higher = more likely a member).
    included : ndarray of bool, shape (n_models, m)
        Whether each canary was in each model's training set.
    accountant_epsilon : float or None
        The privacy accountant's ε of the DP-SGD run (an upper bound), None for non-private training.
    delta : float
        δ used by the audit (the accountant's δ for DP runs).
    beta : float
        Significance level of every audit.
    kind : str
        Canary kind.
    model : str
    dp : dict or None
        ``provenance["dp"]`` of the trained population.
    provenance : dict
        The population's provenance plus the canary summary.
    """

    audits: tuple
    scores: np.ndarray
    included: np.ndarray
    accountant_epsilon: float | None
    delta: float
    beta: float
    kind: str
    model: str
    dp: dict | None = None
    provenance: dict = field(default_factory=dict)

    @property
    def level(self) -> float:
        """Confidence of every audited ε, ``1 − beta``."""
        return 1.0 - self.beta

    @property
    def n_models(self) -> int:
        return len(self.audits)

    @property
    def n_canaries(self) -> int:
        return int(self.scores.shape[1])

    @property
    def epsilons(self) -> np.ndarray:
        """Audited ε lower bound of each model, shape (n_models,)."""
        return np.array([a.epsilon for a in self.audits], dtype=np.float64)

    @property
    def epsilon_mean(self) -> float:
        """Mean audited ε over the models (each bound holds at confidence ``1 − beta`` on its own)."""
        return float(self.epsilons.mean())

    @property
    def epsilon_max(self) -> float:
        return float(self.epsilons.max())

    @property
    def consistent(self) -> bool | None:
        """True when no audited ε exceeds the accountant's ε (None without an accountant)."""
        if self.accountant_epsilon is None:
            return None
        return bool(np.all(self.epsilons <= self.accountant_epsilon))

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "one-run audit with inserted canaries (Steinke, Nasr & Jagielski 2023)",
            "kind": self.kind, "model": self.model, "n_models": self.n_models, "n_canaries": self.n_canaries,
            "delta": self.delta, "beta": self.beta, "accountant_epsilon": self.accountant_epsilon,
            "epsilon_per_model": self.epsilons.tolist(), "epsilon_mean": self.epsilon_mean,
            "epsilon_max": self.epsilon_max, "consistent": self.consistent,
            "n_included": self.included.sum(1).tolist(),
            "audits": [a.to_dict() for a in self.audits],
        }


def _default_k(m: int) -> list[int]:
    return sorted({k for k in (m // 20, m // 10, m // 4, m // 2) if k >= 1})


@pipeline.holds_run_locks
def one_run_canary_audit(dataset, *, model="logreg", n_canaries: int = 500, kind: str = "mislabeled", dp=None,
                         seed: int = 0, n_models: int = 1, k_pos=None, k_neg=None, level: float | None = None,
                         beta: float | None = None, delta: float | None = None, out=None, resume: bool = False,
                         overwrite: bool = False, shard_size: int = 4, progress: bool = False) -> CanaryAudit:
    """Insert canaries, train, and audit ε from each single training run (Steinke, Nasr & Jagielski 2023).

    Parameters
    ----------
    dataset : memlens.data.Dataset
        Base data; every base training example is in every model's training set.
    model : str or config
        As in :func:`memlens.train.train_population` (``"logreg"``, ``"mlp"`` or a config).
    n_canaries : int >= 2
        ``m``, drawn by :func:`memlens.data.make_canaries` and appended to the training split.
    kind : {"mislabeled", "random-label"}
    dp : memlens.train.DPConfig, optional
        Train by DP-SGD; the accountant's ε is reported beside the audited ε. None: non-private training.
    seed : int
        Draws the canaries, the inclusions and the training seeds (independent streams).
    n_models : int >= 1
        Independent training runs, each audited on its own (each its own random half of the canaries).
    k_pos, k_neg : int or sequence of int, optional
        Numbers of "in" / "out" guesses (top / bottom scores). Default: both from
        ``{m/20, m/10, m/4, m/2}``, every combination tried with a Bonferroni-corrected level.
    level : float in (0, 1), default 0.95
        Each audited ε holds with this confidence (``beta = 1 − level``).
    beta : float in (0, 1), optional
        The older name, as the error probability ``1 − level``.
    delta : float in [0, 1), optional
        δ of the audit. None: the accountant's δ for DP runs, else ``1 / (10 n_train)`` (the DP default rule).
    out : str or Path, optional
        A run directory: the models are trained shard by shard into it (``resume`` continues a killed run,
        ``overwrite`` replaces one) and ``canaries.csv`` (per model and canary: inclusion and score) and
        ``summary.json`` (:meth:`CanaryAudit.to_dict` and the run's record) are written. None: in memory only.
    resume, overwrite, shard_size, progress :
        As in :func:`memlens.audits.image.run_audit` (with ``out`` only).

    Returns
    -------
    CanaryAudit
        ``.epsilons`` (n_models,), ``.epsilon_mean``, ``.accountant_epsilon``, ``.scores`` and ``.included``
        (n_models, m), ``.to_dict()``.
    """
    t0 = time.perf_counter()
    if not isinstance(dataset, Dataset):
        raise MemlensInputError(f"dataset must be a memlens.data.Dataset (from load_dataset(...) or "
                                f"from_arrays(...)); got {type(dataset).__name__}")
    seed = check_int_seed(seed, why="the training seeds derive from it")
    n_models = check_int("n_models", n_models, min_value=1)
    beta = check_level(level, error_name="beta", error_value=beta)
    if delta is not None:
        delta = _check_delta(delta)
    trainer = get_trainer(model)
    model_config = model if not isinstance(model, str) else trainer.make_config()
    opts = None
    if out is not None:
        opts = pipeline.check_run_options(out=out, resume=resume, overwrite=overwrite, shard_size=shard_size,
                                          progress=progress)
        pipeline.check_target(opts, files=("canaries.csv",))  # and lock the run directory for this call
    ss_canary, ss_mask = np.random.SeedSequence(seed).spawn(2)
    canaries = make_canaries(dataset, n_canaries=n_canaries, kind=kind, seed=np.random.default_rng(ss_canary))
    m = canaries.n_canaries
    kp = _default_k(m) if k_pos is None else k_pos
    kn = _default_k(m) if k_neg is None else k_neg
    data, idx = with_canaries(dataset, canaries)
    masks = canary_masks(n_models, dataset.n_train, m, seed=np.random.default_rng(ss_mask))
    job = pipeline.ShardJob(pipeline.train_population_shard, shared={"dataset": data},
                            fixed={"model": model, "seed": seed, "dp": dp}, desc=f"training {trainer.name} on {data.name}",
                            setup=partial(pipeline.prepare_shared, dataset=data, model=model, dp=dp,
                                          progress=progress))
    if opts is None:
        pop = job.fn(data, masks=masks, model_offset=0, **job.fixed)
    else:
        config = {"kind": "one-run-canary-audit", "dataset": dataset.name, "model": trainer.name,
                  "model_config": model_config.to_dict(), "n_models": n_models, "n_canaries": m,
                  "canary_kind": kind, "seed": seed, "dp": None if dp is None else dp.to_dict(),
                  "masks": "every base example IN; each canary IN with probability 1/2, SeedSequence(seed).spawn(2)[1]"}
        trained = pipeline.train_run(opts, config=config, data=data, masks=masks, job=job,
                                     result_files=("canaries.csv",))
        pop = trained.population
        provs = [p.provenance for p in trained.shards]
        record = pipeline.merge_provenance(provs)
        if dp is not None:   # the guarantee of all shards: the largest accountant ε
            record["dp"] = pipeline.merge_dp_records(provs)
        pop = type(pop)(pop.masks, pop.signals, pop.seeds, dict(pop.labels), record)

    dp_info = pop.provenance.get("dp")
    if dp_info is not None:
        acc_eps = float(dp_info.get("epsilon_accountant", dp_info["epsilon"]))
        if delta is None:
            delta = float(dp_info["delta"])
    else:
        acc_eps = None
        if delta is None:
            delta = 1.0 / (10 * data.n_train)
    scores = -np.asarray(pop.signal("train", "loss"), dtype=np.float64)[:, idx]
    included = pop.masks[:, idx]
    audits = tuple(one_run_audit(scores[k], included[k], k_pos=kp, k_neg=kn, delta=delta, beta=beta)
                   for k in range(n_models))
    prov = {**pop.provenance, "canaries": canaries.to_dict()}
    res = CanaryAudit(audits, scores, included, acc_eps, float(delta), beta, kind, trainer.name, dp_info, prov)
    if opts is not None:
        rows = ([k, c, int(included[k, c]), fmt(scores[k, c])] for k in range(n_models) for c in range(m))
        pipeline.write_results(trained.run, files={"canaries.csv": csv_text(["model", "canary", "included", "score"],
                                                                            rows)},
                               summary={**res.to_dict(), **pipeline.RunRecord.of(trained, opts).to_json()},
                               t0=t0)
    return res
