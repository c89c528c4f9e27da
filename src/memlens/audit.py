"""The audit: train a population on random subsets, measure memorization and influence, write a report.

This is ``memlens audit`` as a library function. It estimates Feldman–Zhang memorization and influence
(Feldman & Zhang 2020, "What Neural Networks Memorize and Why", §2, Algorithm 1): ``n_models`` models are
trained on random subsets of ``subset_ratio · n_train`` training examples, and for every training example ``i``

    mem(i)     = mean correctness on x_i over models trained with i − mean over models trained without i,
    infl(i, j) = the same difference measured on test example j.

High-influence pairs use the paper's thresholds (mem >= 0.25, infl >= 0.15, same label; §3).

The population is trained shard by shard into a run directory (:mod:`memlens.runs`): every shard is written
atomically as soon as it is trained, so a killed run continues with ``resume=True`` without retraining finished
shards, and a run directory whose config or data differ is refused.
"""
from __future__ import annotations

import csv
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ._random import check_seed
from ._validation import MemlensInputError, check_array, check_fraction, check_int, check_labels, warn
from .population import Population
from .runs import RunDir, check_writable, package_versions

__all__ = ["AuditResult", "run_audit", "MODELS", "MEM_THRESHOLD", "INFL_THRESHOLD", "audit_masks",
           "population_accuracy"]

#: Model names the audit accepts (``memlens.train.make_model_config``).
MODELS = ("logreg", "mlp")
#: Feldman & Zhang (2020, §3) thresholds: memorized examples and high-influence pairs.
MEM_THRESHOLD = 0.25
INFL_THRESHOLD = 0.15
#: Number of most-influenced test examples kept per training example.
TOP_K = 4
#: Seed-sequence entry separating the mask stream from the per-model seeds (``model_seeds(seed, ...)``).
_MASK_STREAM = 0x6D61736B  # "mask"


@dataclass(frozen=True, eq=False)
class AuditResult:
    """Everything an audit computed, with the files it wrote.

    Attributes
    ----------
    out : Path
        The run directory (``manifest.json``, ``population/``, ``examples.csv``, ``pairs.csv``,
        ``summary.json``, ``report.html``).
    summary : dict
        The content of ``summary.json``.
    dataset : memlens.data.Dataset
    population : Population
        ``n_models`` models; signals ``logit``, ``loss``, ``correct`` on ``train`` and ``test``.
    memorization : memlens.measures.MemorizationResult
        Per-training-example scores, shape (n_train,), higher = more memorized.
    influence : memlens.measures.InfluenceResult
        Top-``4`` most influenced test examples per training example and all pairs with influence >= 0.15.
    pairs : memlens.measures.HighInfluencePairs
    shards_trained : tuple of int
        Shards trained by this call (the others were reused from an interrupted run).
    """

    out: Path
    summary: Mapping[str, Any]
    dataset: Any
    population: Population
    memorization: Any
    influence: Any
    pairs: Any
    shards_trained: tuple = field(default=())


# ---------------------------------------------------------------------------------------------- pieces
def audit_masks(n_models: int, n_train: int, *, subset_ratio: float, seed: int) -> np.ndarray:
    """The audit's training subsets: ``(n_models, n_train)`` bool, each row exactly ``round(p n)`` examples.

    Drawn from ``SeedSequence([seed, "mask"])``, a stream apart from the per-model training seeds.
    """
    from .data import make_masks

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _MASK_STREAM]))
    return make_masks(n_models, n_train, p=subset_ratio, seed=rng)


def population_accuracy(pop: Population) -> tuple[float, float]:
    """``(train accuracy, test accuracy)`` of a population, each a mean over models.

    Train accuracy is measured on each model's own training (IN) examples; test accuracy on the whole test split.
    """
    correct_train = pop.signal("train", "correct").astype(np.float64)
    per_model_train = (correct_train * pop.masks).sum(axis=1) / np.maximum(pop.masks.sum(axis=1), 1)
    test = float(pop.signal("test", "correct").astype(np.float64).mean()) if "test" in pop.signals else math.nan
    return float(per_model_train.mean()), test


def _check_dataset(dataset):
    """A Dataset by name or instance, validated (finite features, integer labels, a test split)."""
    from .data import DATASETS, Dataset, load_dataset

    if isinstance(dataset, str):
        if dataset not in DATASETS:
            raise MemlensInputError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r} "
                                    "(or pass your own arrays with --data FILE.npz)")
        return load_dataset(dataset)
    if not isinstance(dataset, Dataset):
        raise MemlensInputError(f"dataset must be a dataset name or a memlens.data.Dataset; got "
                                f"{type(dataset).__name__}; build one with memlens.data.from_arrays")
    X_train = check_array("X_train", dataset.X_train, ndim=2, dtype=np.float32, min_rows=2)
    check_labels("y_train", dataset.y_train, n_rows=X_train.shape[0], n_classes=dataset.n_classes)
    X_test = check_array("X_test", dataset.X_test, ndim=2, dtype=np.float32)
    check_labels("y_test", dataset.y_test, n_rows=X_test.shape[0], n_classes=dataset.n_classes)
    if X_test.shape[0] < 1:
        raise MemlensInputError("X_test must have at least 1 row: influence and test accuracy are measured on "
                                "the test split; pass X_test and y_test")
    return dataset


def _model_config(model: str) -> dict:
    if not isinstance(model, str) or model not in MODELS:
        raise MemlensInputError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    from .train import make_model_config

    return dict(make_model_config(model).to_dict())


def _fmt(x) -> str:
    x = float(x)
    return "nan" if not math.isfinite(x) else f"{x:.6g}"


def examples_csv(mem, labels) -> str:
    """``examples.csv``: index, label, memorization, stderr, n_in, n_out (one row per training example)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "label", "memorization", "stderr", "n_in", "n_out"])
    for i in range(mem.scores.shape[0]):
        w.writerow([i, int(labels[i]), _fmt(mem.scores[i]), _fmt(mem.stderr[i]), int(mem.n_in[i]),
                    int(mem.n_out[i])])
    return buf.getvalue()


def pairs_csv(pairs) -> str:
    """``pairs.csv``: train_index, test_index, train_label, test_label, memorization, influence."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["train_index", "test_index", "train_label", "test_label", "memorization", "influence"])
    for r in range(len(pairs)):
        # high-influence pairs share their label by definition (Feldman & Zhang 2020, §3)
        w.writerow([int(pairs.train_index[r]), int(pairs.test_index[r]), int(pairs.label[r]), int(pairs.label[r]),
                    _fmt(pairs.memorization[r]), _fmt(pairs.influence[r])])
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------- the audit
def run_audit(*, dataset="digits", model: str = "logreg", n_models: int = 256, subset_ratio: float = 0.7,
              seed: int = 0, out="runs/audit", resume: bool = False, overwrite: bool = False,
              shard_size: int = 32, progress: bool = True, backend: str = "torch",
              on_shard: Callable[[int, int, int], None] | None = None) -> AuditResult:
    """Train a population, estimate memorization and influence, and write the audit into ``out``.

    Every input is validated before any work starts; a refused start writes nothing and leaves an existing run
    directory as it was.

    Parameters
    ----------
    dataset : str or memlens.data.Dataset
        A name from :data:`memlens.data.DATASETS` or arrays wrapped by :func:`memlens.data.from_arrays`
        (it needs a test split).
    model : {"logreg", "mlp"}
        Trainer configuration from :func:`memlens.train.make_model_config` (defaults of that module).
    n_models : int, >= 2
        Population size ``t``. The estimator's standard error is at most
        ``0.5 sqrt(1/(p t) + 1/((1 − p) t))`` (Feldman & Zhang 2020, §2): 0.07 for t = 256, p = 0.7.
    subset_ratio : float in (0, 1)
        Fraction ``p = m / n`` of the training set each model trains on (the paper uses 0.7).
    seed : int >= 0
        Determines the masks and every model's seed; the same seed gives the same population.
    out : str or Path
        Run directory: new, empty, or (with ``resume`` / ``overwrite``) an existing memlens run.
    resume : bool
        Continue the run in ``out``: finished shards are reused, missing or damaged ones trained. Refused when
        the run's config, dataset or masks differ from this call's.
    overwrite : bool
        Replace the memlens run in ``out`` (files it does not own are kept).
    shard_size : int
        Models per shard file (part of the run's config).
    progress : bool
        Show a tqdm progress bar on stderr.
    backend : str
        Training backend of :func:`memlens.train.train_population`.
    on_shard : callable, optional
        ``on_shard(k, n_done, n_shards)`` after shard ``k`` is written (``n_done`` shards done in total).

    Returns
    -------
    AuditResult
    """
    t0 = time.perf_counter()
    # ---- validate everything before any work
    n_models = check_int("n_models", n_models, min_value=2,
                         hint="to have both IN and OUT models for every example")
    subset_ratio = check_fraction("subset_ratio", subset_ratio,
                                  hint="(the fraction of the training set each model trains on)")
    seed = check_seed(seed)
    if not isinstance(seed, int):
        raise MemlensInputError(f"seed must be a non-negative integer (it is recorded in the run's manifest); "
                                f"got {type(seed).__name__}")
    shard_size = check_int("shard_size", shard_size, min_value=1)
    if resume and overwrite:
        raise MemlensInputError("resume and overwrite exclude each other; got both: pass --resume to continue "
                                "the run, or --overwrite to replace it")
    if not isinstance(out, (str, Path)) or str(out) == "":
        raise MemlensInputError(f"out must be a folder path; got {out!r}")
    out = Path(out)
    if backend not in ("torch", "sklearn"):
        raise MemlensInputError(f"backend must be 'torch' or 'sklearn'; got {backend!r}")
    model_config = _model_config(model)
    ds = _check_dataset(dataset)
    n_in = int(round(subset_ratio * ds.n_train))
    if not 1 <= n_in <= ds.n_train - 1:
        raise MemlensInputError(f"subset_ratio * n_train must round to between 1 and n_train - 1 so that every "
                                f"model leaves examples out; got subset_ratio={subset_ratio}, n_train={ds.n_train}")
    if resume:
        check_writable(out)
    else:
        RunDir.check_new(out, overwrite=overwrite)

    config = {"dataset": ds.name, "model": model, "model_config": model_config, "backend": backend,
              "n_models": n_models, "subset_ratio": subset_ratio, "seed": seed,
              "masks": "uniform subsets of round(subset_ratio * n_train), SeedSequence([seed, 'mask'])"}
    masks = audit_masks(n_models, ds.n_train, subset_ratio=subset_ratio, seed=seed)
    if resume:
        run = RunDir.open_for_resume(out, config, ds, masks, shard_size=shard_size)
    else:
        run = RunDir.create(out, config, ds, masks, shard_size=shard_size, overwrite=overwrite)

    # ---- train the missing shards, each written as soon as it is done
    t_start = time.perf_counter()
    trained = _train_missing(run, ds, model=model, seed=seed, backend=backend, progress=progress,
                             on_shard=on_shard)
    t_train = time.perf_counter() - t_start
    shards = run.load_shards()
    pop = Population.concat(shards)
    trainer = _trainer_provenance([p.provenance for p in shards])
    pop = Population(pop.masks, pop.signals, pop.seeds, dict(pop.labels), trainer)
    if trainer.get("n_not_converged"):
        warn(f"{trainer['n_not_converged']} of {n_models} models did not reach the trainer's convergence "
             "tolerance; their scores are less reliable (raise max_iter in the model config)")
    pop.save(out / "population")

    # ---- measure
    from .measures import high_influence_pairs, influence, memorization

    mem = memorization(pop, signal="correct")
    infl = influence(pop, signal="correct", split="test", top_k=TOP_K, threshold=INFL_THRESHOLD)
    pairs = high_influence_pairs(mem, infl, train_labels=ds.y_train, test_labels=ds.y_test,
                                 mem_threshold=MEM_THRESHOLD, infl_threshold=INFL_THRESHOLD)
    train_acc, test_acc = population_accuracy(pop)
    finite = np.isfinite(mem.scores)
    summary = {
        "dataset": ds.name, "n_train": ds.n_train, "n_test": ds.n_test, "n_classes": ds.n_classes,
        "model": model, "model_config": model_config, "backend": backend,
        "n_models": n_models, "subset_ratio": subset_ratio, "seed": seed,
        "train_accuracy": train_acc, "test_accuracy": test_acc,
        "mem_threshold": MEM_THRESHOLD, "infl_threshold": INFL_THRESHOLD,
        "n_memorized": mem.n_memorized(MEM_THRESHOLD),
        "n_undefined": int((~finite).sum()),
        "mean_memorization": float(np.mean(mem.scores[finite])) if finite.any() else math.nan,
        "n_pairs": len(pairs), "n_pairs_unique_test": pairs.n_unique_test,
        "n_shards": run.n_shards, "shards_trained": len(trained), "shards_reused": run.n_shards - len(trained),
        "training_seconds": t_train, "runtime_seconds": None,
        "run_id": run.run_id, "versions": package_versions(),
        "trainer": trainer,
    }

    # ---- write results
    run.write_text("examples.csv", examples_csv(mem, ds.y_train))
    run.write_text("pairs.csv", pairs_csv(pairs))
    from .report.html import write_report

    summary["runtime_seconds"] = time.perf_counter() - t0
    write_report(out / "report.html", summary=summary, dataset=ds, memorization=mem, influence=infl, pairs=pairs)
    summary["runtime_seconds"] = time.perf_counter() - t0
    run.write_json("summary.json", summary)
    return AuditResult(out, summary, ds, pop, mem, infl, pairs, tuple(trained))


def _trainer_provenance(provs: list) -> dict:
    """The shards' provenance merged: shared fields once, convergence diagnostics per shard and in total."""
    provs = [dict(p) for p in provs]
    if not provs:
        return {}
    merged = {k: v for k, v in provs[0].items()
              if k not in ("model_offset", "n_models", "convergence") and all(p.get(k) == v for p in provs)}
    conv = [p.get("convergence") for p in provs]
    if all(isinstance(c, Mapping) for c in conv):
        merged["convergence_by_shard"] = conv
        not_conv = [c.get("n_not_converged") for c in conv]
        if all(isinstance(n, (int, np.integer)) for n in not_conv):
            merged["n_not_converged"] = int(sum(not_conv))
    return merged


def _train_missing(run: RunDir, ds, *, model, seed, backend, progress, on_shard) -> list[int]:
    """Train every missing or damaged shard of ``run``; return their indices."""
    from . import train as _train  # looked up at call time, so tests can count training calls
    from tqdm.auto import tqdm

    missing = run.missing_shards()
    done_models = run.n_models - sum(stop - start for start, stop in map(run.shard_rows, missing))
    bar = tqdm(total=run.n_models, initial=done_models, unit="model", desc=f"training {model} on {ds.name}",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    trained = []
    try:
        for k in missing:
            start, stop = run.shard_rows(k)
            base = bar.n

            def tick(n_done, base=base, stop=stop, start=start):
                bar.n = base + min(int(n_done), stop - start)
                bar.refresh()

            pop = _train.train_population(ds, model=model, masks=run.masks[start:stop], seed=seed, backend=backend,
                                          model_offset=start, progress=tick if progress else None)
            run.write_shard(k, pop)
            trained.append(k)
            bar.n = base + (stop - start)
            bar.refresh()
            if on_shard is not None:
                on_shard(k, run.n_shards - len(missing) + len(trained), run.n_shards)
    finally:
        bar.close()
    return trained
