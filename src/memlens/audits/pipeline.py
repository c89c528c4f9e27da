"""The one audit pipeline: validate, open the run directory, train the missing shards, load the population, write.

Every audit (the image/tabular audit :mod:`memlens.audits.image`, the text audit :mod:`memlens.audits.text`, and any
new kind) is a *recipe* on these steps:

1. :func:`check_run_options` validates where and how the run is stored (``out``, ``resume``/``overwrite``,
   ``shard_size``, the executor), and :func:`check_target` refuses a bad ``out`` before any work;
2. the recipe builds its run **identity** (a JSON-able ``config``), the data and the membership ``masks``, and a
   :class:`ShardJob`: the function that trains one shard of models and its inputs;
3. :func:`train_run` creates or resumes the run directory (refusing one whose identity differs), trains every
   missing or damaged shard on the executor, each written atomically as soon as it is done, and loads the
   population (:class:`TrainedRun`);
4. the recipe measures the population;
5. :func:`write_results` writes the recipe's files, the report and ``summary.json`` last (its presence marks a
   finished run), with the run's common record (:class:`RunRecord`) in the summary.

The steps are plain functions, so a recipe reads top to bottom and a new audit is a new recipe, not a copy.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .. import train as _train  # train_population looked up at call time (tests count training calls)
from .._threads import physical_memory
from .._validation import MemlensInputError, check_int
from ..population import Population
from ..storage.executors import Executor, make_executor, train_missing_shards
from ..storage.lock import holds_run_locks, lock_run
from ..storage.runs import RunDir, check_owned_paths, check_writable, package_versions, read_manifest

__all__ = ["RunOptions", "check_run_options", "check_target", "holds_run_locks", "check_subset_size", "ShardJob",
           "TrainedRun", "train_run", "RunRecord", "write_results", "check_training_memory", "training_bytes",
           "train_population_shard", "merge_provenance", "merge_dp_records"]


@dataclass(frozen=True)
class RunOptions:
    """Where and how a run is stored and trained: not part of its identity.

    Attributes
    ----------
    out : Path
        The run directory.
    resume, overwrite : bool
        Continue the run in ``out`` (finished shards reused), or replace it.
    shard_size : int
        Models per shard file (recorded in the manifest; part of the identity of the stored run).
    progress : bool
        Show a progress bar on stderr.
    on_shard : callable or None
        ``on_shard(k, n_done, n_shards)`` after shard ``k`` is written.
    executor : memlens.storage.Executor
        Where the shards are trained (this process, or Ray tasks).
    """

    out: Path
    resume: bool
    overwrite: bool
    shard_size: int
    progress: bool
    on_shard: Callable[[int, int, int], None] | None
    executor: Executor


def check_run_options(*, out, resume: bool, overwrite: bool, shard_size: int | None, progress: bool = True,
                      on_shard=None, executor="local", ray_address: str | None = None,
                      ray_num_cpus: int | None = None, jobs: int | None = 1,
                      default_shard_size: int = 32) -> RunOptions:
    """Validate the storage and execution arguments every audit takes, before any work.

    ``shard_size=None``: the run's own when resuming (its manifest), else ``default_shard_size`` (an audit passes
    its trainer's block size, so that a shard is one vectorized block)."""
    if shard_size is None:
        shard_size = default_shard_size
        if resume and isinstance(out, (str, Path)) and str(out):
            try:
                manifest = read_manifest(Path(out))
            except MemlensInputError:   # an unusable run is refused with its reason by check_target
                manifest = None
            if manifest is not None:
                shard_size = manifest["shard_size"]
    shard_size = check_int("shard_size", shard_size, min_value=1)
    if resume and overwrite:
        raise MemlensInputError("resume and overwrite exclude each other; got both: pass --resume to continue "
                                "the run, or --overwrite to replace it", param="resume and overwrite")
    if not isinstance(out, (str, Path)) or str(out) == "":
        raise MemlensInputError(f"out must be a folder path; got {out!r}", param="out")
    if on_shard is not None and not callable(on_shard):
        raise MemlensInputError(f"on_shard must be a callable on_shard(k, n_done, n_shards) or None; got {on_shard!r}",
                                param="on_shard")
    executor = make_executor(executor, ray_address=ray_address, ray_num_cpus=ray_num_cpus, jobs=jobs)
    return RunOptions(Path(out), bool(resume), bool(overwrite), shard_size, bool(progress), on_shard, executor)


def check_target(opts: RunOptions, *, files=()) -> None:
    """Refuse an ``out`` that cannot hold this run (a file, a foreign folder, an existing run without
    ``overwrite``, an unwritable place, a symbolic link or a folder where the run writes a file, ``files`` being the
    recipe's own result files) before anything is trained or written; then take the run directory's lock
    (:mod:`memlens.storage.lock`) for the rest of the recipe's call: a second writer is refused with one line naming
    the holder."""
    if opts.resume:
        RunDir.check_resumable(opts.out)
        check_writable(opts.out)
    else:
        RunDir.check_new(opts.out, overwrite=opts.overwrite)
    check_owned_paths(opts.out, files)
    lock_run(opts.out)


def check_subset_size(subset_ratio: float, n: int, *, what: str = "n_train", unit: str = "examples") -> int:
    """``round(subset_ratio * n)``, refused unless every model both trains on and leaves out some of the ``n``."""
    n_in = int(round(subset_ratio * n))
    if not 1 <= n_in <= n - 1:
        raise MemlensInputError(f"subset_ratio * {what} must round to between 1 and {what} - 1 so that every model "
                                f"leaves {unit} out; got subset_ratio={subset_ratio}, {what}={n}",
                                param="subset_ratio")
    return n_in


def training_bytes(*, block: int, n_rows: int, n_features: int, n_classes: int) -> int:
    """A rough lower estimate of the memory training one block of models needs: the block's class scores on every
    row (``block · n_rows · n_classes`` float64) and its linear head's parameters with gradients and optimizer or
    L-BFGS history (``20 · block · (n_features + 1) · n_classes`` float64). Our estimate, meant to refuse
    impossible runs (a million classes) before any work, not to predict the peak."""
    return 8 * block * n_classes * (n_rows + 20 * (n_features + 1))


def check_training_memory(trainer, dataset, *, shard_size: int) -> None:
    """Refuse, before anything is written, a population whose training cannot fit in this machine's memory."""
    have = physical_memory()
    if have is None:
        return
    block = max(1, min(int(trainer.block_size or 1), int(shard_size)))
    need = training_bytes(block=block, n_rows=dataset.n_train + dataset.n_test, n_features=dataset.n_features,
                          n_classes=dataset.n_classes)
    if need > have:
        raise MemlensInputError(f"too many classes for this machine: training {block} {trainer.name} models at once "
                                f"on {dataset.n_train + dataset.n_test:,} rows with {dataset.n_classes:,} classes and "
                                f"{dataset.n_features:,} features needs "
                                f"at least {need / 2**30:,.1f} GiB, more than this machine's {have / 2**30:,.1f} GiB; "
                                "use fewer classes (labels 0..n_classes-1 actually used) or fewer examples")


@dataclass(frozen=True)
class ShardJob:
    """How a recipe trains one shard of models.

    ``fn(**shared, **fixed, masks=..., model_offset=..., [progress=...]) -> Population`` is what every executor
    runs; ``shared`` holds the large inputs every shard reads (sent to Ray workers once), ``fixed`` the small
    per-run arguments. ``setup(run, threads)``, when given, computes further shared inputs, only when some shard is
    missing (the text audit's reference model; logistic regression's full-data start, which it stores in the run
    so that a resumed run reuses it), with ``threads`` cores: the executor's worker count, idle at that point.
    """

    fn: Callable[..., Population]
    shared: Mapping[str, Any]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    desc: str = "training"
    setup: Callable[[RunDir, int], Mapping[str, Any]] | None = None


def train_population_shard(dataset, *, model, masks, seed, model_offset, backend: str = "torch", dp=None,
                           prepared=None, progress=None, label_queries=None,
                           attribute_queries=None) -> Population:
    """Train the models of one shard (rows ``model_offset ...`` of the run) with
    :func:`memlens.train.train_population`: the shard function of every audit of feature-array data.
    ``prepared``: the run's shared work (:func:`prepare_shared`); ``label_queries``: record the ``robust`` signal
    of label-only membership inference; ``attribute_queries``: the ``attribute`` signal of attribute inference."""
    extra = {} if dp is None else {"dp": dp}
    if label_queries is not None:
        extra["label_queries"] = label_queries
    if attribute_queries is not None:
        extra["attribute_queries"] = attribute_queries
    return _train.train_population(dataset, model=model, masks=masks, seed=seed, backend=backend,
                                   model_offset=model_offset, progress=progress, prepared=prepared, **extra)


@contextmanager
def phase(opts: RunOptions, what: str):
    """A phase line on stderr: ``what ...`` when the step starts and its elapsed time when it ends (with
    ``opts.progress``), so that no step of an audit is silent."""
    t0 = time.perf_counter()
    if opts.progress:
        print(f"{what} ...", file=sys.stderr, flush=True)
    yield
    if opts.progress:
        print(f"{what}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def executor_threads(opts: RunOptions) -> int:
    """The cores the run's executor trains on (``--jobs``; 1 in this process or with Ray): the threads of the work
    done in this process before the shards (the shared start) and after them (measures, attacks, report)."""
    return max(1, int(getattr(opts.executor, "jobs", 1) or 1))


#: Shared work that took at least this long (seconds) is stored in the run directory for a resumed run.
STORE_SHARED_S = 2.0


def prepare_shared(run: RunDir, threads: int, *, dataset, model, backend: str = "torch", dp=None,
                   progress: bool = True) -> dict:
    """``{"prepared": Prepared}``: the work every shard of ``run`` shares (:func:`memlens.train.prepare_population`
    on the run's masks), read from the run when an earlier call stored it, else computed once with ``threads``
    cores, and stored when it took at least :data:`STORE_SHARED_S` seconds (a cheaper one is recomputed on
    resume); ``{}`` when the trainer shares nothing."""
    data = run.read_shared("prepared")
    if data is not None:
        try:
            return {"prepared": _train.Prepared.from_npz_bytes(data)}
        except Exception:  # noqa: BLE001 - a damaged copy is recomputed
            pass
    t0 = time.perf_counter()
    prepared = _train.prepare_population(dataset, model=model, masks=run.masks, backend=backend, dp=dp,
                                         n_jobs=threads)
    if prepared is None:
        return {}
    seconds = time.perf_counter() - t0
    if prepared.arrays and seconds >= STORE_SHARED_S:   # worth its disk space (Fashion-MNIST: 250 MB for 65 s)
        run.write_shared("prepared", prepared.to_npz_bytes())
        if progress:
            print(f"start shared by every model ({', '.join(f'{k}: {v}' for k, v in prepared.record.items())}): "
                  f"{seconds:.1f} s on {threads} core(s), stored in the run", file=sys.stderr)
    return {"prepared": prepared}


@dataclass(frozen=True, eq=False)
class TrainedRun:
    """A run directory with every shard trained, and its population.

    Attributes
    ----------
    run : memlens.storage.RunDir
    shards : list of Population
        One per shard file, in row order (their provenance is per shard).
    population : Population
        The shards concatenated along the model axis.
    trained : tuple of int
        Shards trained by this call (the others were reused from an interrupted run).
    seconds : float
        Wall time of the training step.
    """

    run: RunDir
    shards: list
    population: Population
    trained: tuple
    seconds: float


def train_run(opts: RunOptions, *, config: Mapping[str, Any], data, masks, job: ShardJob,
              result_files: tuple = ()) -> TrainedRun:
    """Create (or, with ``opts.resume``, reopen) the run directory and train its missing shards.

    Parameters
    ----------
    opts : RunOptions
    config : mapping
        The run's identity (everything that determines the population); ``resume`` refuses a run made with
        another, and so do changed ``data`` and ``masks``.
    data : object with ``name``, ``fingerprint()``, ``n_train``, ``n_test``, ``n_features``, ``n_classes``
    masks : ndarray of bool, shape (n_models, n_train)
    job : ShardJob
    result_files : tuple of str
        The recipe's own result files beside the common ones; a new run removes stale copies.
    """
    if opts.resume:
        run = RunDir.open_for_resume(opts.out, config, data, masks, shard_size=opts.shard_size)
    else:
        run = RunDir.create(opts.out, config, data, masks, shard_size=opts.shard_size, overwrite=opts.overwrite)
        for name in result_files:
            (opts.out / name).unlink(missing_ok=True)
    t0 = time.perf_counter()
    trained: list = []
    if run.missing_shards():
        shared = dict(job.shared)
        if job.setup is not None:
            shared.update(job.setup(run, executor_threads(opts)))
        trained = train_missing_shards(run, job.fn, shared=shared, fixed=job.fixed, executor=opts.executor,
                                       progress=opts.progress, on_shard=opts.on_shard, desc=job.desc)
    seconds = time.perf_counter() - t0
    shards = run.load_shards()
    return TrainedRun(run, shards, Population.concat(shards), tuple(trained), seconds)


@dataclass(frozen=True)
class RunRecord:
    """What every audit's ``summary.json`` says about its run: shards, timing, executor, identity, versions."""

    n_shards: int
    shards_trained: int
    shards_reused: int
    training_seconds: float
    executor: str
    run_id: str
    versions: Mapping[str, str]

    @classmethod
    def of(cls, trained: TrainedRun, opts: RunOptions) -> "RunRecord":
        run = trained.run
        return cls(run.n_shards, len(trained.trained), run.n_shards - len(trained.trained), trained.seconds,
                   opts.executor.name, run.run_id, package_versions())

    def to_json(self) -> dict:
        return {"n_shards": self.n_shards, "shards_trained": self.shards_trained,
                "shards_reused": self.shards_reused, "training_seconds": self.training_seconds,
                "executor": self.executor, "run_id": self.run_id, "versions": dict(self.versions)}


def write_results(run: RunDir, *, files: Mapping[str, str], summary, t0: float,
                  report: Callable[[Any], str] | None = None):
    """Write the recipe's files, then the report, then ``summary.json`` (last: it marks a finished run).

    ``report(summary) -> str`` renders ``report.html``; like every file of the run it is written atomically through
    :meth:`memlens.storage.RunDir.write_text`, so a full disk or a forbidden write gives the one-line storage error.

    ``summary`` is a typed summary (:mod:`memlens.audits.summaries`: ``with_runtime``, ``to_json``) or a dict. Its
    runtime is the wall time since ``t0``, set before the report (which shows it) and again before ``summary.json``
    is written. Returns the summary as written (typed in, typed out).
    """
    for name, text in files.items():
        run.write_text(name, text)
    typed = hasattr(summary, "to_json")

    def stamped():
        seconds = time.perf_counter() - t0
        if typed:
            return summary.with_runtime(seconds)
        summary["runtime_seconds"] = seconds
        return summary

    summary = stamped()
    if report is not None:
        run.write_text("report.html", report(summary))
    summary = stamped()
    run.write_json("summary.json", summary.to_json() if typed else summary)
    return summary


# ---------------------------------------------------------------------------------------------- provenance
def merge_provenance(provs: list) -> dict:
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


def merge_dp_records(provs: list) -> dict | None:
    """The shards' ``provenance["dp"]`` merged: the largest accountant ε over shards (the guarantee of all)."""
    recs = [dict(p["dp"]) for p in provs if isinstance(p, Mapping) and isinstance(p.get("dp"), Mapping)]
    if not recs:
        return None
    out = dict(recs[0])
    eps = [r.get("epsilon_accountant") for r in recs]
    if all(isinstance(e, (int, float)) for e in eps):
        out["epsilon_accountant"] = float(max(eps))
    return out
