"""The audit: train a population on random subsets, measure memorization and influence, write a report.

This is ``memlens audit`` as a library function. It estimates Feldman–Zhang memorization and influence
(Feldman & Zhang 2020, "What Neural Networks Memorize and Why", §2, Algorithm 1): ``n_models`` models are
trained on random subsets of ``subset_ratio · n_train`` training examples, and for every training example ``i``

    mem(i)     = mean correctness on x_i over models trained with i − mean over models trained without i,
    infl(i, j) = the same difference measured on test example j.

High-influence pairs use the paper's thresholds (mem >= 0.25, infl >= 0.15, same label; §3).

By default the same population is also attacked (:func:`audit_attacks`): LiRA online and offline (Carlini et al.
2022), RMIA (Zarifzadeh et al. 2024) and the loss attack (Yeom et al. 2018) against up to ``attack_targets``
target models in turn, each with all other models as references; the audited ε lower bound of Jagielski et al.
(2020) is computed from the pooled scores and, for a DP-SGD population (``dp_epsilon``), put beside the
accountant's ε.

Ridge and kernel-ridge populations (``model="ridge"`` / ``"kernel-ridge"``) are not trained but fitted exactly on
every subset in closed form (:func:`memlens.train.closed_form_population`). With ``loo=True`` the audit adds
Feldman's leave-one-out memorization (Feldman 2020, Def. 4.1) of every training example from one fit (exact for
ridge and kernel ridge, one Newton step for logistic regression; :func:`audit_loo`) and compares it with the
subset estimate.

It is a recipe on the one audit pipeline (:mod:`memlens.audits.pipeline`): the population is trained shard by shard
into a run directory (:mod:`memlens.storage.runs`), every shard written atomically as soon as it is trained, so a
killed run continues with ``resume=True`` without retraining finished shards, and a run directory whose config or
data differ is refused. The attacks are :mod:`memlens.audits.attacks`, the leave-one-out step
:mod:`memlens.audits.loo`, the CSV files :mod:`memlens.report.tables`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .._display import attack_rows, html_table, summary_rows
from .._random import check_int_seed
from .._threads import limit_threads
from .._validation import (
    MemlensInputError,
    check_array,
    check_float,
    check_fraction,
    check_int,
    check_labels,
    did_you_mean,
    warn,
)
from ..attacks.attribute import attribute_memorization
from ..data import DATASETS, Dataset, load_dataset, make_masks
from ..measures import high_influence_pairs, influence, memorization, noise_floor, out_predictions
from ..population import Population
from ..privacy.accountant import DPConfig, check_dp_target
from ..report.html import render_report
from ..report.tables import image_examples_csv as examples_csv
from ..report.tables import image_pairs_csv as pairs_csv
from ..train import TRAINERS, AttributeQueries, LabelQueries, configure_model
from ..train.label_queries import check_queryable
from ..train.torch_module import TorchModuleConfig, input_shape_of
from . import pipeline
from .attacks import (  # noqa: F401  (re-exported: their first home was this module)
    ATTACK_SUITE,
    DEFAULT_ATTACK_TARGETS,
    EPSILON_CONFIDENCE,
    LIRA_FIXED_VARIANCE_BELOW,
    AuditAttacks,
    audit_attacks,
    check_lira_convention,
    privacy_summary,
)
from .long_tail import check_long_tail_space, long_tail_diagnostic, representation
from .loo import LOO_MODELS, AuditLOO, audit_loo, check_kernel_memory, check_loo  # noqa: F401  (re-exported)
from .proxies import audit_proxies, check_proxies
from .summaries import AuditSummary

__all__ = ["AuditResult", "AuditAttacks", "run_audit", "audit_attacks", "MODELS", "MEM_THRESHOLD",
           "INFL_THRESHOLD", "ATTACK_SUITE", "DEFAULT_ATTACK_TARGETS", "LIRA_FIXED_VARIANCE_BELOW", "audit_masks",
           "population_accuracy", "AuditLOO", "audit_loo", "LOO_MODELS", "examples_csv", "pairs_csv",
           "measure_and_write"]

#: Model names the audit accepts: every registered trainer with a configuration that trains on feature arrays
#: (logreg, mlp, and ridge / kernel-ridge, fitted in closed form instead of trained).
MODELS = tuple(name for name, t in TRAINERS.items() if t.config_type is not None and not t.text)
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
        The content of ``summary.json`` (``record.to_json()``).
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
    attacks : AuditAttacks or None
        The membership attacks on the population (None with ``attacks=False``).
    loo : AuditLOO or None
        Leave-one-out memorization beside the subset estimate (``loo=True``; None otherwise).
    proxies : memlens.audits.proxies.AuditProxies or None
        Memorization proxies from one model and their agreement with the estimate (``proxies=True``).
    record : memlens.audits.summaries.AuditSummary
        The summary, typed (what the report and the command line read).
    """

    out: Path
    summary: Mapping[str, Any]
    dataset: Any
    population: Population
    memorization: Any
    influence: Any
    pairs: Any
    shards_trained: tuple = field(default=())
    attacks: Any = None
    loo: Any = None
    record: Any = None
    proxies: Any = None
    long_tail: Any = None

    def _repr_html_(self) -> str:
        out = html_table(f"memlens audit — {self.out}", summary_rows(self.summary))
        rows = attack_rows(self.summary)
        if rows:
            out += html_table("membership attacks (mean over target models)", rows,
                              header=("attack", "AUC", "95% CI", "TPR @ 0.1% FPR", "TPR @ 1% FPR"))
        return out


# ---------------------------------------------------------------------------------------------- pieces
def audit_masks(n_models: int, n_train: int, *, subset_ratio: float, seed: int) -> np.ndarray:
    """The audit's training subsets: ``(n_models, n_train)`` bool, each row exactly ``round(p n)`` examples.

    Drawn from ``SeedSequence([seed, "mask"])``, a stream apart from the per-model training seeds.
    """
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
    if isinstance(dataset, str):
        if dataset not in DATASETS:
            raise MemlensInputError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r} "
                                    "(or pass your own arrays with --data FILE.npz)" + did_you_mean(dataset, DATASETS))
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


def _model_config(model, params: Mapping[str, Any] | None = None) -> dict:
    """The audit's model configuration as recorded in the run's identity."""
    return dict(configure_model(model, params)[1].to_dict())


# ---------------------------------------------------------------------------------------------- the audit
@pipeline.holds_run_locks
def run_audit(*, dataset="digits", model: str = "logreg", model_params: Mapping[str, Any] | None = None,
              n_models: int = 256, subset_ratio: float = 0.7,
              seed: int = 0, out="runs/audit", resume: bool = False, overwrite: bool = False,
              shard_size: int | None = None, progress: bool = True, backend: str = "torch",
              on_shard: Callable[[int, int, int], None] | None = None, attacks: bool = True,
              attack_targets: int = DEFAULT_ATTACK_TARGETS, dp_epsilon: float | None = None,
              dp_delta: float | None = None, loo: bool = False, proxies: bool = False, long_tail: bool = False,
              long_tail_space: str = "features", label_only=False, sensitive_column=None,
              attribute_prior: bool = True, executor="local", ray_address: str | None = None,
              ray_num_cpus: int | None = None, lira_convention: str = "memlens", jobs: int | None = 1) -> AuditResult:
    """Train a population, estimate memorization and influence, and write the audit into ``out``.

    Every input is validated before any work starts; a refused start writes nothing and leaves an existing run
    directory as it was.

    Parameters
    ----------
    dataset : str or memlens.data.Dataset
        A name from :data:`memlens.data.DATASETS` or arrays wrapped by :func:`memlens.data.from_arrays`
        (it needs a test split).
    model : {"logreg", "mlp", "ridge", "kernel-ridge"}
        Trainer configuration from :func:`memlens.train.make_model_config` (defaults of that module). ``ridge``
        and ``kernel-ridge`` (least-squares classification on one-hot targets) are fitted exactly on every subset
        in closed form (:func:`memlens.train.closed_form_population`) instead of trained, through the same
        sharded run directory.
    model_params : mapping, optional
        Fields of that configuration to override, e.g. ``{"C": 0.01}`` for ``logreg`` or ``{"alpha": 10.0}`` for
        ``ridge`` (``make_model_config(model, **model_params)``); they are part of the run's identity.
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
    shard_size : int, optional
        Models per shard file (part of the run's config). Default: the trainer's block size (models trained in
        one vectorized pass: logreg 256, mlp and torch modules 32; 32 for closed forms), or, with ``resume``, the
        run's own.
    progress : bool
        Show a tqdm progress bar on stderr.
    backend : str
        Training backend of :func:`memlens.train.train_population`.
    on_shard : callable, optional
        ``on_shard(k, n_done, n_shards)`` after shard ``k`` is written (``n_done`` shards done in total).
    attacks : bool
        Run the membership attacks of :func:`audit_attacks` (LiRA online and offline, RMIA, loss) and the ε
        audit; they add the ``attacks`` and ``privacy`` tables to ``summary.json``, three LiRA columns to
        ``examples.csv`` and ROC curves, a memorization-vs-LiRA scatter and the flagged examples to
        ``report.html``. They read the trained population only (not part of the run's identity).
    attack_targets : int >= 1
        Number of target models attacked in turn (the first rows; capped at ``n_models``).
    lira_convention : {"memlens", "reference"}
        LiRA's conventions (:func:`memlens.attacks.lira`): memlens's (the paper's one-sided offline test, mean and
        unbiased variance) or those of tensorflow/privacy's ``mi_lira_2021`` script, to compare with published
        numbers. Not part of the run's identity.
    dp_epsilon : float > 0, optional
        Train by DP-SGD (:class:`memlens.train.DPConfig`) with noise calibrated for this ε; part of the run's
        config and identity. The report shows the accountant's ε beside the audited lower bound.
    dp_delta : float in (0, 1), optional
        δ of the DP guarantee (default of ``DPConfig``: ``1 / (10 n_train)``); needs ``dp_epsilon``.
    loo : bool
        Also compute Feldman's leave-one-out memorization of every training example (:func:`audit_loo`): exact
        for ridge and kernel ridge, approximate (one Newton step) for logreg; refused for mlp and DP-SGD. It
        adds four ``loo_*`` columns to ``examples.csv``, a ``loo`` block to ``summary.json`` (method, time,
        agreement with the subset estimate) and a section to ``report.html``. It reads the dataset and the
        model configuration only (not part of the run's identity).
    proxies : bool
        Also compute cheap memorization proxies from one model trained on every example (logreg: influence
        functions; mlp: training dynamics, TracIn, EK-FAC, curvature; :mod:`memlens.audits.proxies`) and compare
        each with the population's memorization. Adds ``proxy_<name>`` columns to ``examples.csv``, a ``proxies``
        block to ``summary.json`` and a section to ``report.html``; not part of the run's identity.
    sensitive_column : int or str, optional
        Also run attribute inference on this feature (an index, or a name of ``dataset.feature_names``): while
        training, every model guesses every training example's value of it from the other features and the label
        (:mod:`memlens.train.label_queries`); ``summary.json`` gains an ``attribute`` block (accuracy on members and
        non-members against the most-frequent-value baseline) and examples.csv the per-example attribute
        memorization. The column must take 2 to 64 distinct values. Part of the run's identity.
    attribute_prior : bool
        Add the value's frequency as a prior to the model's score (Mehnaz et al.); False: Yeom et al.'s attack.
    long_tail_space : {"features", "penultimate"}
        Where the long-tail diagnostic clusters the examples: the standardized input features, or the penultimate
        layer of one model of the population's configuration trained on every example (mlp, cnn, your module).
    label_only : bool, memlens.train.LabelQueries or mapping
        Also run label-only membership inference (Choquette-Choo et al. 2021): while training, every model labels
        perturbed copies of every training example (:mod:`memlens.train.label_queries`; True: 32 noisy copies,
        σ = 0.5 in standardized units; a LabelQueries or a mapping of its fields for other queries, e.g.
        ``{"max_shift": 2, "sigma": 0}`` for image shifts), and the attacks gain ``label-only`` (the threshold on
        robustness) and ``label-only-calibrated`` (standardized by the reference models). Part of the run's
        identity. Not for ridge / kernel-ridge (closed form).
    long_tail : bool
        Also run the long-tail diagnostic (:mod:`memlens.audits.long_tail`): subpopulations by clustering, the
        frequency spectrum, Feldman's prior fitted to it, and the measured memorization by subpopulation size.
        Adds a ``subpopulation_size`` column to ``examples.csv``, a ``long_tail`` block to ``summary.json`` and a
        report section; not part of the run's identity.
    executor : {"local", "ray"} or memlens.storage.executors.Executor
        Where the shards are trained (:mod:`memlens.storage.executors`): ``"local"`` in this process, one after the other;
        ``"ray"`` as Ray tasks, each shard written to ``out`` as soon as its task completes. Not part of the run's
        identity: the results are identical, and a run started on one executor resumes on the other. (The CLI's
        ``--backend local|ray`` sets this; ``backend`` here is the training backend.)
    ray_address : str, optional
        With ``executor="ray"``: the address of a running Ray cluster (``HOST:PORT``, ``ray://HOST:PORT`` or
        ``"auto"``); without it a local Ray instance is started for the run.
    ray_num_cpus : int, optional
        With ``executor="ray"`` and no ``ray_address``: CPUs of the local Ray instance (default all).
    jobs : int or None
        With ``executor="local"``: worker processes training shards in parallel, one BLAS/torch thread each (1: this
        process, the default in Python; None: every usable CPU, the command line's default). The population is the
        same for any number. Not part of the run's identity.

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
    seed = check_int_seed(seed, why="it is recorded in the run's manifest")
    trainer, trainer_model = configure_model(model, model_params)
    opts = pipeline.check_run_options(out=out, resume=resume, overwrite=overwrite, shard_size=shard_size,
                                      progress=progress, on_shard=on_shard, executor=executor,
                                      ray_address=ray_address, ray_num_cpus=ray_num_cpus, jobs=jobs,
                                      default_shard_size=trainer.block_size if trainer.fit_block else 32)
    if backend not in ("torch", "sklearn"):
        raise MemlensInputError(f"backend must be 'torch' or 'sklearn'; got {backend!r}")
    attacks = bool(attacks)
    attack_targets = check_int("attack_targets", attack_targets, min_value=1,
                               hint="(the number of target models to attack)")
    check_lira_convention(lira_convention)
    dp = _dp_config(dp_epsilon, dp_delta)
    model_config = dict(trainer_model.to_dict())
    model = model if isinstance(model, str) else trainer.name
    if dp is not None and not trainer.supports_dp:
        why = "is fitted in closed form" if trainer.closed_form else "has no DP-SGD training in memlens"
        raise MemlensInputError(f"dp_epsilon (DP-SGD) trains by noisy gradient descent; model {model!r} {why}: use "
                                "--model logreg or mlp with --dp-epsilon, or drop --dp-epsilon", param="dp_epsilon")
    if trainer.closed_form and backend != "torch":
        raise MemlensInputError(f"backend must be 'torch' (the default) for model {model!r}, which is fitted in "
                                f"closed form; got backend={backend!r}")
    loo = check_loo(loo, model, dp)
    proxies = check_proxies(proxies, model, dp, trainer_model)
    if not isinstance(long_tail, (bool, np.bool_)):
        raise MemlensInputError(f"long_tail must be True or False; got {long_tail!r}")
    long_tail_space = check_long_tail_space(long_tail_space, model, trainer_model)
    label_queries = check_label_only(label_only, trainer)
    ds = _check_dataset(dataset)
    if label_queries is not None:
        label_queries.check_input(input_shape_of(ds))
    attribute_queries = check_sensitive_column(sensitive_column, attribute_prior, ds, trainer)
    if model == "kernel-ridge":
        check_kernel_memory(ds.n_train, ds.n_test)
    n_in = pipeline.check_subset_size(subset_ratio, ds.n_train)
    pipeline.check_training_memory(trainer, ds, shard_size=opts.shard_size)
    if trainer.check is not None:   # a user's model: built and run on two rows before anything is written
        trainer.check(trainer_model, ds)
    if dp is not None:  # a target epsilon the accountant cannot calibrate is refused before anything is written
        check_dp_target(dp, n_max=n_in, n_train=ds.n_train, name="dp_epsilon")
    pipeline.check_target(opts)  # and lock the run directory for the rest of this call

    # ---- the run's identity, masks and shard job; train the missing shards
    # the identity holds the data's content (the fingerprint), not where it came from: a built-in name, or "arrays"
    config = {"dataset": ds.name if ds.name in DATASETS else "arrays", "model": model, "model_config": model_config,
              "backend": backend, "n_models": n_models, "subset_ratio": subset_ratio, "seed": seed,
              "masks": "uniform subsets of round(subset_ratio * n_train), SeedSequence([seed, 'mask'])"}
    if dp is not None:   # only DP runs carry the key, so non-private runs keep their identity
        config["dp"] = dp.to_dict()
    if label_queries is not None:   # likewise: runs without label-only queries keep theirs
        config["label_queries"] = label_queries.to_dict()
    if attribute_queries is not None:
        config["attribute_queries"] = attribute_queries.to_dict()
    masks = audit_masks(n_models, ds.n_train, subset_ratio=subset_ratio, seed=seed)
    job = pipeline.ShardJob(_train_shard, shared={"dataset": ds},
                            fixed={"model": trainer_model, "seed": seed, "backend": backend, "dp": dp,
                                   "label_queries": label_queries, "attribute_queries": attribute_queries},
                            desc=f"training {model} on {ds.name}",
                            setup=partial(pipeline.prepare_shared, dataset=ds, model=trainer_model, backend=backend,
                                          dp=dp, progress=opts.progress))
    trained = pipeline.train_run(opts, config=config, data=ds, masks=masks, job=job)
    run = trained.run
    provs = [p.provenance for p in trained.shards]
    trainer_record = pipeline.merge_provenance(provs)
    dp_record = pipeline.merge_dp_records(provs) if dp is not None else None
    if dp_record is not None:
        trainer_record["dp"] = dp_record
    pop = trained.population
    pop = Population(pop.masks, pop.signals, pop.seeds, dict(pop.labels), trainer_record)
    if trainer_record.get("n_not_converged"):
        warn(f"{trainer_record['n_not_converged']} of {n_models} models did not reach the trainer's convergence "
             "tolerance; their scores are less reliable (raise max_iter in the model config)")
    run.save_population(pop)

    head = {"model": model, "model_config": model_config, "backend": backend, "n_models": n_models,
            "subset_ratio": subset_ratio, "seed": seed}
    loo_fn = (lambda mem: audit_loo(ds, model=model, model_config=model_config, subset_memorization=mem)) \
        if loo else None
    # the population's cost in core-seconds (its training wall time on every core it used; 0 when all shards were
    # reused, and then the proxies' relative cost is not reported)
    pop_core_s = trained.seconds * pipeline.executor_threads(opts) if trained.trained else None
    proxy_config = trainer_model if isinstance(trainer_model, TorchModuleConfig) else model_config
    proxies_fn = (lambda mem, pairs: audit_proxies(ds, model=model, model_config=proxy_config, memorization=mem,
                                                   pop=pop, seed=seed, population_seconds=pop_core_s, pairs=pairs)) \
        if proxies else None
    def diagnose_long_tail(mem):
        c = pop.signal("train", "correct").astype(np.float64)
        with np.errstate(invalid="ignore"):
            acc_in = (c * pop.masks).sum(0) / np.where(pop.masks.sum(0) > 0, pop.masks.sum(0), np.nan)
        X, what = representation(ds, space=long_tail_space, config=trainer_model, seed=seed)
        return long_tail_diagnostic(X, ds.y_train, mem.scores, in_accuracy=acc_in, seed=seed, representation=what)

    long_tail_fn = diagnose_long_tail if long_tail else None
    return measure_and_write(opts, trained, pop, ds, head=head, tail={"trainer": trainer_record, "dp": dp_record},
                             attacks=attacks, attack_targets=attack_targets, dp_record=dp_record, loo_fn=loo_fn,
                             lira_convention=lira_convention, proxies_fn=proxies_fn, long_tail_fn=long_tail_fn,
                             t0=t0)


def measure_and_write(opts, trained, pop: Population, ds, *, head: Mapping, tail: Mapping, attacks: bool,
                      attack_targets: int, dp_record=None, loo_fn=None, t0: float, lira_convention="memlens",
                      signal: str = "correct", proxies_fn=None, long_tail_fn=None) -> AuditResult:
    """The measuring and writing steps of the image/tabular audit on a trained run, shared by every recipe whose
    population has ``train`` and ``test`` signals (trained here or computed elsewhere, :mod:`.external`):
    Feldman–Zhang memorization and influence on ``signal``, high-influence pairs, the attacks and the ε audit, the
    optional leave-one-out step (``loo_fn(memorization) -> AuditLOO``), then examples.csv, pairs.csv, the report and
    summary.json (``head`` and ``tail`` are the recipe's own summary fields around the measured ones)."""
    with limit_threads(pipeline.executor_threads(opts)):   # the cores the training used, now idle
        return _measure_and_write(opts, trained, pop, ds, head=head, tail=tail, attacks=attacks,
                                  attack_targets=attack_targets, dp_record=dp_record, loo_fn=loo_fn, t0=t0,
                                  lira_convention=lira_convention, signal=signal, proxies_fn=proxies_fn,
                                  long_tail_fn=long_tail_fn)


def _measure_and_write(opts, trained, pop, ds, *, head, tail, attacks, attack_targets, dp_record, loo_fn, t0,
                       lira_convention, signal, proxies_fn=None, long_tail_fn=None) -> AuditResult:
    with pipeline.phase(opts, "memorization, influence and high-influence pairs"):
        mem = memorization(pop, signal=signal)
        # Thresholded pairs are only needed for memorized training examples (high_influence_pairs keeps no others).
        infl = influence(pop, signal=signal, split="test", top_k=TOP_K, threshold=INFL_THRESHOLD,
                         pair_columns=np.nan_to_num(mem.scores, nan=-np.inf) >= MEM_THRESHOLD)
        pairs = high_influence_pairs(mem, infl, train_labels=ds.y_train, test_labels=ds.y_test,
                                     mem_threshold=MEM_THRESHOLD, infl_threshold=INFL_THRESHOLD)
        train_acc, test_acc = population_accuracy(pop)
        out_pred = (out_predictions(pop.masks, pop.signal("train", "pred"), ds.n_classes)
                    if "pred" in pop.signals.get("train", {}) else None)
    finite = np.isfinite(mem.scores)
    with pipeline.phase(opts, "noise floor (the same estimates with memberships permuted)"):
        floor = noise_floor(pop.masks, pop.signal("train", signal), signal=signal,
                            test_values=pop.signal("test", signal), train_labels=ds.y_train, test_labels=ds.y_test,
                            mem_threshold=MEM_THRESHOLD, infl_threshold=INFL_THRESHOLD,
                            seed=np.random.SeedSequence([int(head.get("seed") or 0), 7]), memorization=mem)
    summary = AuditSummary(
        dataset=ds.name, n_train=ds.n_train, n_test=ds.n_test, n_classes=ds.n_classes, **head,
        train_accuracy=train_acc, test_accuracy=test_acc, mem_threshold=MEM_THRESHOLD, infl_threshold=INFL_THRESHOLD,
        n_memorized=mem.n_memorized(MEM_THRESHOLD), n_undefined=int((~finite).sum()),
        mean_memorization=float(np.mean(mem.scores[finite])) if finite.any() else math.nan,
        n_pairs=len(pairs), n_pairs_unique_test=pairs.n_unique_test, run=pipeline.RunRecord.of(trained, opts),
        noise_floor=floor.to_dict(), **tail)
    att = None
    if attacks:
        with pipeline.phase(opts, "membership attacks and the ε audit"):
            t_att = time.perf_counter()
            delta = float(dp_record.get("delta") or 0.0) if dp_record else 0.0
            acc_eps = dp_record.get("epsilon_accountant") if dp_record else None
            acc_eps = float(acc_eps) if acc_eps is not None and math.isfinite(float(acc_eps)) else None
            att = audit_attacks(pop, memorization_scores=mem.scores, n_targets=attack_targets, delta=delta,
                                lira_convention=lira_convention,
                                accountant_epsilon=acc_eps)
            summary = dataclasses.replace(
                summary, attacks={**att.settings, "fprs": [1e-3, 1e-2], "table": att.table(),
                                  "n_flagged": int(att.flagged.size), "flagged": att.flagged.tolist(),
                                  "notes": list(att.notes)},
                privacy=privacy_summary(att, dp=dp_record, delta=delta), attack_seconds=time.perf_counter() - t_att)

    loo_res = None
    if loo_fn is not None:
        with pipeline.phase(opts, "leave-one-out"):
            loo_res = loo_fn(mem)
        summary = dataclasses.replace(summary, loo=dict(loo_res.summary))
    prox = None
    if proxies_fn is not None:
        with pipeline.phase(opts, "memorization proxies (one model, one core)"), limit_threads(1):
            prox = proxies_fn(mem, pairs)
        summary = dataclasses.replace(summary, proxies=dict(prox.summary))
    attr = None
    aq = (pop.provenance or {}).get("attribute_queries")
    if "attribute" in pop.signals.get("train", {}) and isinstance(aq, Mapping):
        with pipeline.phase(opts, "attribute inference"):
            col = int(aq["column"])
            names = list(getattr(ds, "feature_names", None) or [])
            attr = attribute_memorization(pop, np.asarray(ds.X_train)[:, col], label_memorization=mem.scores,
                                          column=names[col] if col < len(names) else col)
            known = pop.known_rows      # the count with memberships permuted among the models: its noise floor
            attr_floor = noise_floor(pop.masks[known], pop.signal("train", "attribute")[known], signal="attribute",
                                     mem_threshold=attr.summary["threshold"],
                                     seed=np.random.SeedSequence([int(head.get("seed") or 0), 8])).n_memorized
        summary = dataclasses.replace(summary, attribute={**attr.summary, "n_high_noise_floor": float(attr_floor)})
    lt = None
    if long_tail_fn is not None:
        with pipeline.phase(opts, "long-tail diagnostic (subpopulations, Feldman's prior)"):
            lt = long_tail_fn(mem)
        summary = dataclasses.replace(summary, long_tail=dict(lt.summary))

    # ---- write results: the CSVs, the report, summary.json last
    with pipeline.phase(opts, "examples.csv, pairs.csv, report.html"):
        summary = pipeline.write_results(
            trained.run, files={"examples.csv": examples_csv(mem, ds.y_train, att, loo_res, out_pred, proxies=prox,
                                                        long_tail=lt, attribute=attr),
                                "pairs.csv": pairs_csv(pairs)},
            summary=summary, t0=t0,
            report=lambda s: render_report(summary=s, dataset=ds, memorization=mem,
                                          influence=infl, pairs=pairs, attacks=att, loo=loo_res, out_pred=out_pred,
                                          proxies=prox, long_tail=lt))
    return AuditResult(opts.out, summary.to_json(), ds, pop, mem, infl, pairs, trained.trained, att, loo_res,
                       summary, prox, lt)


def check_sensitive_column(sensitive_column, attribute_prior, ds, trainer):
    """``sensitive_column`` (None, an index or a feature name) as AttributeQueries or None, refused before any work
    when it names no feature, is not categorical, or the model keeps no model to query."""
    if sensitive_column is None:
        return None
    names = list(getattr(ds, "feature_names", None) or [])
    if isinstance(sensitive_column, str) and not sensitive_column.lstrip("-").isdigit():
        if sensitive_column not in names:
            hint = f"; the features are named {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}" if names \
                else "; this dataset has no feature names: pass an index"
            raise MemlensInputError(f"sensitive_column {sensitive_column!r} is not a feature name{hint}",
                                    param="sensitive_column")
        column = names.index(sensitive_column)
    else:
        try:
            column = int(sensitive_column)
        except (TypeError, ValueError):
            raise MemlensInputError(f"sensitive_column must be a feature index or name; got {sensitive_column!r}",
                                    param="sensitive_column") from None
    check_queryable(trainer, "attribute", param="sensitive_column")
    queries = AttributeQueries(column=column, prior=attribute_prior)
    queries.values(ds.X_train)
    return queries


def check_label_only(label_only, trainer):
    """``label_only`` (False, True, a LabelQueries or a mapping of its fields) as a LabelQueries or None, refused
    for trainers that keep no model to query (closed forms) before any work."""
    if label_only is False or label_only is None or (isinstance(label_only, np.bool_) and not label_only):
        return None
    if label_only is True or isinstance(label_only, np.bool_):
        queries = LabelQueries()
    elif isinstance(label_only, LabelQueries):
        queries = label_only
    elif isinstance(label_only, Mapping):
        fields = {f.name for f in dataclasses.fields(LabelQueries)}
        unknown = sorted(set(label_only) - fields)
        if unknown:
            raise MemlensInputError(f"label_only has unknown field(s) {unknown}; the fields are {sorted(fields)}",
                                    param="label_only")
        queries = LabelQueries(**dict(label_only))
    else:
        raise MemlensInputError(f"label_only must be True/False, a memlens.train.LabelQueries or a mapping of its "
                                f"fields; got {label_only!r}", param="label_only")
    check_queryable(trainer, "label-only", param="label_only")
    return queries


def _dp_config(dp_epsilon, dp_delta):
    """A :class:`memlens.train.DPConfig` from the audit's DP arguments (None without ``dp_epsilon``)."""
    if dp_epsilon is None:
        if dp_delta is not None:
            raise MemlensInputError(f"dp_delta needs dp_epsilon; got dp_delta={dp_delta} alone: pass --dp-epsilon "
                                    "as well (e.g. --dp-epsilon 8)")
        return None
    eps = check_float("dp_epsilon", dp_epsilon, min_value=0.0, min_inclusive=False,
                      hint="(the DP-SGD privacy budget, e.g. 1 or 8)")
    delta = None
    if dp_delta is not None:
        delta = check_float("dp_delta", dp_delta, min_value=0.0, max_value=1.0, min_inclusive=False,
                            max_inclusive=False, hint="(δ of (ε, δ)-DP, usually below 1/n_train)")
    return DPConfig(epsilon=eps, delta=delta)


#: The function every executor runs for a shard of this audit (a module attribute, so tests can replace it).
_train_shard = pipeline.train_population_shard



