"""``train_population``: one model per mask row, trained a block of models at a time, into a Population.

Models are trained in blocks of ``block_size`` rows; every model of a block advances in one vectorized pass
(stacked parameters, shared data, membership as a per-example weight; docs/architecture.md, "Performance").
What a block is trained with comes from the model's :class:`~memlens.train.trainers.Trainer` (the registry
:data:`~memlens.train.trainers.TRAINERS`); nothing here branches on a model's name.
Model ``k`` of a run (global index ``model_offset + k``) gets the seed
``memlens._random.model_seeds(seed, n, start=model_offset)[k]``, so its result does not depend on how the
rows are cut into shards or blocks, or on the number of processes: a run may train shards of rows with
``model_offset`` and concatenate them (:meth:`Population.concat`). For logistic regression, "the same" means
up to the convergence tolerance (the shared GEMMs round differently for different block widths and the
preconditioner is shared by a block, so the iterates differ slightly; the optimum does not). For the MLP each
model's arithmetic is its own slice of the batched products: shards reproduce a full run bit for bit here.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from .._random import check_int_seed, model_seeds
from .._threads import limit_threads, physical_memory, usable_cpus
from .._validation import MemlensInputError, check_int, check_masks
from .._version import __version__
from ..data import Dataset, TextDataset
from ..population import SIGNALS, Population, signals_from_logits
from ..privacy.accountant import dp_plan
from .builtin import SKLEARN, sgd_convergence
from .configs import LogisticConfig
from .dp_sgd import fit_dp_sgd
from .label_queries import (
    ATTRIBUTE,
    ROBUST,
    AttributeQueries,
    LabelQueries,
    attribute_signal,
    check_queryable,
    label_robustness_signal,
)
from .sklearn_backend import check_sklearn_classifier, is_sklearn_classifier
from .torch_module import input_shape_of
from .trainers import TRAINERS, BlockFit, Prepared, Trainer, get_trainer, trainer_for_config

__all__ = ["train_population", "prepare_population", "standardized_features", "DEFAULT_BLOCK_SIZE"]

#: Models per vectorized pass when ``block_size`` is None, per block-trained trainer (``Trainer.block_size``).
#: logreg 256: on digits 256 models take 0.85-0.87 CPU s in one block, 0.84-0.87 in blocks of 128 and 0.91-0.92 in
#: blocks of 64 (1 thread, median of 3); on all 60,000 Fashion-MNIST rows a block of 128 costs 1.75 CPU s per model
#: against 1.49 for 256 (each L-BFGS iteration applies the shared 7,850 x 7,850 inverse Hessian to the whole block,
#: a memory-bound product that a wider block amortizes).
DEFAULT_BLOCK_SIZE = {name: t.block_size for name, t in TRAINERS.items() if t.fit_block is not None}
_SIGNAL_ROWS = 4096


def standardized_features(dataset, *, standardize: bool = True, dtype=np.float64):
    """``(X_train, X_test)`` z-scored with the mean and standard deviation of the *full* training split.

    Every model of a population sees the same preprocessing, fixed before any subset is drawn; the two
    statistics are the only way an OUT example reaches a model. Constant features get scale 1. The
    scikit-learn reference path fits on exactly these arrays.

    Returns
    -------
    X_train : ndarray, shape (n_train, n_features)
    X_test : ndarray, shape (n_test, n_features)
    """
    Xtr = np.asarray(dataset.X_train, dtype=np.float64)
    Xte = np.asarray(dataset.X_test, dtype=np.float64)
    if standardize:
        mu = Xtr.mean(0)
        sd = Xtr.std(0)
        sd[sd <= 1e-12 * max(1.0, float(np.abs(mu).max(initial=0.0)))] = 1.0
        Xtr = (Xtr - mu) / sd
        Xte = (Xte - mu) / sd
    return Xtr.astype(dtype, copy=False), Xte.astype(dtype, copy=False)


def _signals_in_chunks(logits_fn, X, y, k: int) -> dict:
    """Standard signals ``(k, n)`` of ``logits_fn(X_rows) -> (k, rows, C)``, row chunk by row chunk."""
    out = {name: np.empty((k, X.shape[0]), dtype=np.float32) for name in SIGNALS}
    for r0 in range(0, X.shape[0], _SIGNAL_ROWS):
        sig = signals_from_logits(logits_fn(X[r0:r0 + _SIGNAL_ROWS]), y[r0:r0 + _SIGNAL_ROWS])
        for name, arr in sig.items():
            out[name][:, r0:r0 + arr.shape[1]] = arr
    return out


def _train_block(trainer: Trainer, model, Xtr, ytr, Xte, yte, n_classes: int, masks, seeds, dp_run=None,
                 dp_net=None, shared=None, input_shape=None, first_model=0, label_queries=None,
                 attribute_queries=None) -> dict:
    """Train the models of one block (rows of ``masks``) and return their signals and diagnostics (with
    ``label_queries``, also the train split's ``robust`` signal, :mod:`memlens.train.label_queries`)."""
    with limit_threads(1):
        if dp_run is not None:
            # The network DP-SGD trains for this configuration (``trainer.dp_model``); optimizer settings come from
            # the DPConfig.
            fit = fit_dp_sgd(Xtr, ytr, masks, seeds=seeds, n_classes=n_classes, hidden=dp_net["hidden"],
                             steps=dp_run["steps"], sample_rate=dp_run["sample_rate"],
                             noise_multiplier=dp_run["noise_multiplier"], max_grad_norm=dp_run["max_grad_norm"],
                             lr=dp_run["lr"], momentum=dp_run["momentum"], normalizer=dp_run["normalizer"],
                             weight_decay=dp_run["weight_decay"], init=dp_net["init"])
            res = BlockFit(fit.logits, None, {"n_iter": fit.n_steps, "final_loss": fit.final_loss})
        else:
            res = trainer.fit_block(model, Xtr, ytr, Xte, yte, n_classes=n_classes, masks=masks, seeds=seeds,
                                    shared=shared, input_shape=input_shape, first_model=first_model)
        k = masks.shape[0]
        if res.signals is not None:
            out = {"train": dict(res.signals["train"]), "test": dict(res.signals["test"]), "diag": dict(res.diag)}
        else:
            out = {"train": _signals_in_chunks(res.logits, Xtr, ytr, k),
                   "test": _signals_in_chunks(res.logits, Xte, yte, k), "diag": dict(res.diag)}
        if (label_queries is not None or attribute_queries is not None) and res.logits is None:
            raise MemlensInputError(f"label-only and attribute queries need the models' class scores on new inputs, "
                                    f"and trainer {trainer.name!r} returns its signals only (BlockFit.logits is None); "
                                    "drop them for this model", param="label_queries")
        if label_queries is not None:
            out["train"][ROBUST] = label_robustness_signal(res.logits, Xtr, ytr, queries=label_queries, n_models=k,
                                                           input_shape=input_shape or (Xtr.shape[1],))
        if attribute_queries is not None:
            out["train"][ATTRIBUTE] = attribute_signal(res.logits, Xtr, ytr, queries=attribute_queries, n_models=k)
        return out


def _resolve_model(model, backend: str):
    """``(trainer, model, config)``: the trainer, what it fits (a configuration or a scikit-learn estimator) and the
    memlens configuration it came from (None for a user's estimator)."""
    if backend not in ("torch", "sklearn"):
        raise MemlensInputError(f"backend must be 'torch' or 'sklearn'; got {backend!r}")
    if is_sklearn_classifier(model) and not isinstance(model, (str, Trainer)):
        if backend != "sklearn":
            raise MemlensInputError(f"model is a scikit-learn estimator ({type(model).__name__}); pass "
                                    "backend='sklearn' to train it, or use model='logreg'/'mlp' for the torch backend")
        return SKLEARN, check_sklearn_classifier(model), None
    if isinstance(model, (str, Trainer)):
        trainer = get_trainer(model)
        if trainer.config_type is None:
            raise MemlensInputError(f"model {trainer.name!r} needs a configured estimator: pass the scikit-learn "
                                    "classifier itself as model=... with backend='sklearn'", param="model")
        model = trainer.make_config()
    else:
        trainer = trainer_for_config(model)
        if trainer is None:
            raise MemlensInputError(f"model must be 'logreg', 'mlp', a LogisticConfig/MLPConfig, or (backend='sklearn') "
                                    f"a scikit-learn classifier; got {model!r}")
    if backend == "sklearn":
        if isinstance(model, LogisticConfig):
            return SKLEARN, LogisticRegression(C=model.C, tol=model.tol, max_iter=model.max_iter), model
        if trainer.closed_form:
            raise MemlensInputError(f"model {trainer.name!r} is fitted in closed form (exact subset refits); "
                                    f"backend={backend!r} does not apply: use backend='torch' (the default)")
        raise MemlensInputError(f"model {trainer.name!r} has no scikit-learn equivalent with the same training "
                                "procedure; use backend='torch', or pass a configured scikit-learn estimator "
                                "(e.g. sklearn.neural_network.MLPClassifier)")
    return trainer, model, model


def train_population(dataset, *, model=None, masks, seed=0, backend: str = "torch", model_offset: int = 0,
                     progress=None, n_jobs: int = 1, block_size: int | None = None, dp=None,
                     prepared: Prepared | None = None, label_queries: LabelQueries | None = None,
                     attribute_queries: AttributeQueries | None = None) -> Population:
    """Train one model per mask row and collect the per-example signals of every model.

    Parameters
    ----------
    dataset : memlens.data.Dataset
    model : str, LogisticConfig, MLPConfig or scikit-learn classifier, optional
        Default: ``"logreg"`` for a Dataset, ``"char-lm"`` for a TextDataset. ``"logreg"`` (multinomial L2 logistic regression, exactly scikit-learn's objective, tightly
        converged), ``"mlp"`` (ReLU MLP, SGD with momentum), a configuration from
        :func:`make_model_config`, or, with ``backend="sklearn"``, any classifier with ``fit`` and
        ``predict_proba`` (cloned per model and fitted on the raw features: put preprocessing in a Pipeline).
        ``"ridge"`` / ``"kernel-ridge"`` (or a ``RidgeConfig`` / ``KernelRidgeConfig``) are not trained but
        fitted exactly in closed form on every mask row (:func:`memlens.train.closed_form_population`): their
        signals ``logit`` (the score margin), ``loss`` (squared error) and ``correct`` follow
        :func:`memlens.train.score_signals`, plus ``margin``.
    masks : array of bool, shape (n_models, n_train)
        ``masks[k, i]`` is True when training example ``i`` is in model ``k``'s training set; every row needs
        at least one True.
    seed : int
        Run seed. Model ``k`` uses ``model_seeds(seed, n_models, start=model_offset)[k]`` (its initialization
        and minibatch order; scikit-learn's ``random_state`` where the estimator has one).
    backend : {"torch", "sklearn"}
        ``torch``: vectorized many-model training. ``sklearn``: one scikit-learn fit per model (the reference).
    model_offset : int
        Global index of the first row, when ``masks`` is a shard of a larger run.
    progress : callable, optional
        ``progress(n_models_done)`` is called with the cumulative number of finished models of this call
        each time a block finishes.
    n_jobs : int
        Processes (joblib/loky, one BLAS thread each) over which blocks are spread; -1 for one per CPU.
    block_size : int, optional
        Models per vectorized pass (default :data:`DEFAULT_BLOCK_SIZE`); it changes speed and memory only.
    dp : DPConfig, optional
        Train by DP-SGD (:mod:`memlens.train.dp_sgd`) with noise calibrated by Opacus's accountant for
        ``(dp.epsilon, dp.delta)`` instead of the non-private optimizer (torch backend, ``logreg`` or ``mlp``).
        ``logreg`` becomes multinomial softmax regression from zero weights with L2 coefficient
        ``1 / (C n_max)``; ``mlp`` keeps its architecture and weight decay. Epochs, batch size, learning rate and
        momentum come from ``dp``. All models share one sampling rate ``q = dp.batch_size / n_max`` (``n_max``:
        the largest IN count among ``masks``' rows), one noise multiplier and one number of steps, so the
        guarantee holds for every model; ``provenance["dp"]`` records δ, σ, q, steps and the accountant's ε.
        The guarantee covers training on the given features: the default standardization uses statistics of
        the full training split, outside it (use a config with ``standardize=False`` for end-to-end DP).
    prepared : Prepared, optional
        The work shared by every model, from :func:`prepare_population` on the *whole* run's masks (a shard of
        a run passes the run's, so that every shard starts from the same full-data model). Default: computed
        here from ``masks``.
    label_queries : LabelQueries, optional
        Also record the train split's ``robust`` signal: the fraction of perturbed copies of each example that each
        model labels correctly (label-only membership inference, :mod:`memlens.train.label_queries`). Not for
        closed-form or text trainers.
    attribute_queries : AttributeQueries, optional
        Also record the train split's ``attribute`` signal: whether each model's attribute-inference guess of the
        sensitive column is right on each example (same module). Not for closed-form or text trainers.

    Returns
    -------
    Population
        Masks, seeds, signals ``logit``, ``loss``, ``correct`` of shape ``(n_models, n)`` on splits ``train``
        and ``test``, labels, and provenance (dataset name and fingerprint, backend, model configuration,
        memlens version, standardization, convergence diagnostics).

    Notes
    -----
    Features are standardized (``config.standardize``, default True) with the statistics of the *full*
    training split (:func:`standardized_features`), so every model sees the same fixed preprocessing. The
    weight-0 invariant "masking an example OUT equals deleting it" holds given that preprocessing (deleting
    a row from the dataset also changes the statistics: compare with ``standardize=False``).
    """
    if model is None:   # the default trainer of the kind of data
        model = "char-lm" if isinstance(dataset, TextDataset) else "logreg"
    if isinstance(dataset, TextDataset):
        trainer = get_trainer(model)
        if not trainer.text:
            raise MemlensInputError(f"model {trainer.name!r} trains on feature arrays; a TextDataset needs a text "
                                    "trainer (model='char-lm')", param="model")
        config = model if isinstance(model, trainer.config_type or ()) else trainer.make_config()
        return trainer.population(dataset, config, masks, seed=seed, model_offset=model_offset, progress=progress,
                                  block_size=block_size)
    if not isinstance(dataset, Dataset):
        raise MemlensInputError(f"dataset must be a memlens.data.Dataset (from load_dataset(...) or from_arrays(...)); "
                                f"got {type(dataset).__name__}")
    trainer, model, config = _resolve_model(model, backend)
    if trainer.text:
        raise MemlensInputError(f"model {trainer.name!r} trains on documents; pass a memlens.data.TextDataset "
                                "(load_text_dataset(...))", param="model")
    masks = check_masks("masks", masks, n_examples=dataset.n_train, min_models=1, nonempty_rows="training example")
    seed = check_int_seed(seed, why="per-model seeds must be reproducible from the run's manifest")
    model_offset = check_int("model_offset", model_offset, min_value=0)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or not (n_jobs >= 1 or n_jobs == -1):
        raise MemlensInputError(f"n_jobs must be a positive integer or -1 (one process per CPU); got {n_jobs!r}")
    if block_size is not None:
        block_size = check_int("block_size", block_size, min_value=1)
    if progress is not None and not callable(progress):
        raise MemlensInputError(f"progress must be a callable progress(n_models_done) or None; got {progress!r}")
    if label_queries is not None and not isinstance(label_queries, LabelQueries):
        raise MemlensInputError(f"label_queries must be a memlens.train.LabelQueries or None; got "
                                f"{type(label_queries).__name__}", param="label_queries")
    if attribute_queries is not None and not isinstance(attribute_queries, AttributeQueries):
        raise MemlensInputError(f"attribute_queries must be a memlens.train.AttributeQueries or None; got "
                                f"{type(attribute_queries).__name__}", param="attribute_queries")
    if label_queries is not None:
        check_queryable(trainer, "label-only", param="label_queries")
        label_queries.check_input(input_shape_of(dataset))
    if attribute_queries is not None:
        check_queryable(trainer, "attribute", param="attribute_queries")
        attribute_queries.values(dataset.X_train)
    if trainer.closed_form:
        if dp is not None:
            raise MemlensInputError(f"dp (DP-SGD) trains models by noisy gradient descent; model {trainer.name!r} is "
                                    "fitted in closed form: use model 'logreg' or 'mlp' with dp, or drop dp")
        return _closed_form_population(trainer, dataset, model, masks, seed=seed, model_offset=model_offset,
                                       progress=progress, block_size=block_size)
    n_classes = dataset.n_classes
    ytr = np.asarray(dataset.y_train, dtype=np.int64)
    yte = np.asarray(dataset.y_test, dtype=np.int64)
    if trainer is SKLEARN:
        few = [k for k in range(masks.shape[0]) if np.unique(ytr[masks[k]]).size < 2]
        if few:
            raise MemlensInputError(f"mask rows {few[:5]} contain a single class; scikit-learn classifiers need at "
                                    "least 2 classes in every training subset (use larger subsets)")

    dp_run = dp_net = None
    if dp is not None:
        if not trainer.supports_dp:
            raise MemlensInputError("dp (DP-SGD) needs backend='torch' and model 'logreg' or 'mlp'; got "
                                    f"backend={backend!r}, model={type(model).__name__}")
        dp_run = dp_plan(dp, n_max=int(masks.sum(1).max()), n_train=dataset.n_train)
        dp_net = trainer.dp_model(model, dp_run["n_max"])
        dp_run["weight_decay"] = dp_net["weight_decay"]
        dp_run["model_family"] = dp_net["model_family"]
        dp_run["preprocessing"] = ("z-score with full-split statistics: not covered by the DP guarantee"
                                   if config.standardize else "none: the guarantee covers the whole pipeline")

    n_models = masks.shape[0]
    seeds = model_seeds(seed, n_models, start=model_offset)
    # memlens configurations fit standardized features (the sklearn reference too); a user's estimator fits raw.
    standardize = config is not None and config.standardize
    Xtr, Xte = standardized_features(dataset, standardize=standardize, dtype=trainer.feature_dtype)

    n_workers = _n_workers(n_jobs)
    bs = block_size or trainer.block_size
    if n_workers > 1:
        bs = min(bs, -(-n_models // n_workers))
    hidden = dp_net["hidden"] if dp_net is not None else getattr(model, "hidden", None)
    if hidden is not None:
        _check_parameter_memory(hidden, dataset.n_features, n_classes, min(bs, n_models))
    blocks = [(b, min(b + bs, n_models)) for b in range(0, n_models, bs)]
    if prepared is not None and not isinstance(prepared, Prepared):
        raise MemlensInputError(f"prepared must be a memlens.train.Prepared from prepare_population(...) or None; "
                                f"got {type(prepared).__name__}", param="prepared")
    if prepared is None and trainer.prepare is not None and dp_run is None:
        prepared = trainer.prepare(model, Xtr, ytr, n_classes=n_classes, masks=masks, n_workers=n_workers)
    if dp_run is not None or trainer.prepare is None:   # nothing is shared by DP-SGD or by a trainer without it
        prepared = None
    shared, record = (prepared.arrays, dict(prepared.record)) if prepared is not None else (None, {})
    input_shape = input_shape_of(dataset)
    args = [(trainer, model, Xtr, ytr, Xte, yte, n_classes, masks[a:b], seeds[a:b], dp_run, dp_net, shared,
             input_shape, model_offset + a, label_queries, attribute_queries) for a, b in blocks]
    if n_workers == 1:
        results = _collect((_train_block(*a) for a in args), blocks, progress)
    else:
        from joblib import Parallel, delayed, parallel_config  # process pools only when n_jobs > 1

        with parallel_config(backend="loky", inner_max_num_threads=1):
            gen = Parallel(n_jobs=n_workers, return_as="generator")(delayed(_train_block)(*a) for a in args)
            results = _collect(gen, blocks, progress)

    signals = {split: {name: np.concatenate([r[split][name] for r in results])
                       for name in (*SIGNALS, ROBUST, ATTRIBUTE) if all(name in r[split] for r in results)}
               for split in ("train", "test")}
    diag = {key: np.concatenate([r["diag"][key] for r in results]) for key in results[0]["diag"]}
    convergence = sgd_convergence(model, diag) if dp_run is not None else trainer.convergence(model, diag)
    provenance = {
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(),
        "backend": backend,
        "model": _model_dict(model, config),
        "memlens_version": __version__,
        "seed": seed,
        "model_offset": model_offset,
        "n_models": n_models,
        "standardize": standardize,
        "standardization": "z-score with the full training split's mean and std" if standardize else "none",
        "convergence": {**convergence, **record},
    }
    if dp_run is not None:
        provenance["dp"] = dp_run
    if label_queries is not None:
        provenance["label_queries"] = label_queries.to_dict()
    if attribute_queries is not None:
        provenance["attribute_queries"] = attribute_queries.to_dict()
    return Population(masks=masks, signals=signals, seeds=seeds,
                      labels={"train": ytr, "test": yte}, provenance=provenance)


def prepare_population(dataset, *, model=None, masks, backend: str = "torch", dp=None,
                       n_jobs: int = 1) -> Prepared | None:
    """The work every model of a population shares, computed once (``Trainer.prepare``), or None.

    Logistic regression with the ``full-hessian`` preconditioner (the default up to 8,192 parameters per model)
    starts every model from the full-data model and preconditions L-BFGS with the full-data Hessian's inverse;
    both depend on the data, the configuration and the mean of ``masks`` only. An audit calls this once per run
    with every core and passes the result to each shard's :func:`train_population` (``prepared=``), instead of
    every worker process computing it again. None for trainers with nothing to share, DP-SGD and the sklearn
    backend.

    Parameters
    ----------
    dataset, model, masks, backend, dp
        As :func:`train_population` (``masks``: the whole run's).
    n_jobs : int
        Threads used for the computation (-1: one per CPU).

    Returns
    -------
    Prepared or None
    """
    if isinstance(dataset, TextDataset) or not isinstance(dataset, Dataset):
        return None
    trainer, model, config = _resolve_model("logreg" if model is None else model, backend)
    if trainer.prepare is None or dp is not None or trainer is SKLEARN or trainer.closed_form:
        return None
    masks = check_masks("masks", masks, n_examples=dataset.n_train, min_models=1, nonempty_rows="training example")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or not (n_jobs >= 1 or n_jobs == -1):
        raise MemlensInputError(f"n_jobs must be a positive integer or -1 (one thread per CPU); got {n_jobs!r}")
    Xtr, _ = standardized_features(dataset, standardize=config is not None and config.standardize,
                                   dtype=trainer.feature_dtype)
    ytr = np.asarray(dataset.y_train, dtype=np.int64)
    return trainer.prepare(model, Xtr, ytr, n_classes=dataset.n_classes, masks=masks, n_workers=_n_workers(n_jobs))


def _closed_form_population(trainer: Trainer, dataset, config, masks, *, seed: int, model_offset: int, progress,
                            block_size) -> Population:
    """Ridge / kernel-ridge populations: exact refits on every mask row by the trainer's own population function.

    The models are deterministic; the seeds recorded are the run's per-model seeds all the same, so shards of a
    closed-form run carry the same identity fields as trained ones.
    """
    pop = trainer.population(dataset, config, masks, seed=seed, model_offset=model_offset, progress=progress,
                             block_size=block_size)
    prov = pop.provenance
    params = dict(prov.get("params", {}))
    provenance = {
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(),
        "backend": "closed-form",
        "model": config.to_dict(),
        "memlens_version": __version__,
        "seed": seed,
        "model_offset": model_offset,
        "n_models": int(masks.shape[0]),
        "standardize": config.standardize,
        "standardization": ("z-score with the full training split's mean and std" if config.standardize
                            else "none"),
        "fit": "exact closed-form subset refits (Woodbury / rank-k downdate, no iterations)",
        "params": params,   # resolved values (the RBF gamma when the config leaves it None)
        "convergence": {**trainer.convergence(config, {}), "routes": dict(prov.get("routes", {}))},
    }
    seeds = model_seeds(seed, masks.shape[0], start=model_offset)
    return Population(masks=pop.masks, signals=pop.signals, seeds=seeds, labels=dict(pop.labels),
                      provenance=provenance)


def _check_parameter_memory(hidden, n_features: int, n_classes: int, block: int) -> None:
    """Refuse layer widths whose stacked parameters cannot fit in memory (a clear error instead of a crash).

    A block of models holds its weights, gradients, momentum and float64 initial values: about 32 bytes per
    parameter per model.
    """
    widths = [n_features, *hidden, n_classes]
    n_params = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
    need = 32 * n_params * block
    have = physical_memory()
    if have is not None and need > have:
        raise MemlensInputError(f"hidden={tuple(hidden)} gives {n_params:.3g} parameters per model; a block of {block} "
                                f"models needs about {need / 2**30:,.0f} GiB, more than this machine's "
                                f"{have / 2**30:,.0f} GiB of memory: use narrower layers or a smaller block_size")


def _collect(it, blocks, progress) -> list:
    results, done = [], 0
    for (a, b), res in zip(blocks, it):
        results.append(res)
        done += b - a
        if progress is not None:
            progress(done)
    return results


def _n_workers(n_jobs: int) -> int:
    return usable_cpus() if n_jobs == -1 else int(n_jobs)


def _model_dict(model, config) -> dict:
    if config is not None:
        return config.to_dict() if model is config else {**config.to_dict(), "estimator": type(model).__name__}
    params = {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
              for k, v in model.get_params(deep=False).items()}
    return {"name": "sklearn", "estimator": f"{type(model).__module__}.{type(model).__name__}", "params": params}
