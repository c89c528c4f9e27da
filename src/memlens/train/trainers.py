"""The trainer protocol: what :func:`memlens.train.train_population` needs to know about a kind of model.

A :class:`Trainer` is a small frozen record of plain functions (in the spirit of Optax's ``GradientTransformation``):
it is composed, not configured by flags, and ``train_population`` never branches on a model's name. A trainer says

* which configuration it takes (``config_type``, a frozen dataclass whose ``to_dict()`` is part of a run's
  identity, and ``make_config(**overrides)``);
* how to fit a block of models at once (``fit_block``), which returns either a function from feature rows to the
  block's logits ``(k, rows, n_classes)`` or the block's signals directly;
* how to summarize its convergence diagnostics (``convergence``);
* what it supports: DP-SGD (``dp_model``: the network DP-SGD trains in its place), a closed-form or approximate
  leave-one-out (``loo``), text (``text``), and whether it trains a whole population itself (``population``:
  closed forms and the byte-level language model, which do not go through the generic block loop).

:data:`TRAINERS` is the registry of the built-in trainers (``logreg``, ``mlp``, ``ridge``, ``kernel-ridge``,
``sklearn``, ``char-lm``); :func:`get_trainer` resolves a name, a configuration or a trainer. A new kind of model
is a new :class:`Trainer`, registered with :func:`register_trainer`.
"""
from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .._validation import MemlensInputError, did_you_mean

__all__ = [
    "Trainer", "BlockFit", "Prepared", "TRAINERS", "get_trainer", "register_trainer", "trainer_for_config", "config_from_dict"
]


@dataclass(frozen=True)
class BlockFit:
    """What ``Trainer.fit_block`` returns for a block of ``k`` models.

    Attributes
    ----------
    logits : callable or None
        ``logits(X_rows) -> (k, rows, n_classes)``: the block's class scores on any rows (signals are computed
        from them chunk by chunk, unless ``signals`` is given). Label-only queries
        (:mod:`memlens.train.label_queries`) need it: None only for a trainer that keeps no model.
    signals : mapping or None
        ``{"train": {name: (k, n_train)}, "test": {name: (k, n_test)}}`` when the trainer computes signals itself
        (then used as they are, even when ``logits`` is given too).
    diag : mapping of str to ndarray (k,)
        Convergence diagnostics per model (``n_iter``, ``converged``, ``grad_norm``, ``final_loss``, ...).
    """

    logits: Callable | None
    signals: Mapping | None
    diag: Mapping[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class Prepared:
    """Work a trainer does once per population and shares with every block (``Trainer.prepare``'s result).

    For logistic regression with the ``full-hessian`` preconditioner: the full-data model and the shared inverse
    Hessian. It depends on the data, the configuration and the population's mean subset ratio only, so an audit
    computes it once per run (with every core), stores it in the run directory and hands it to every shard
    (:func:`memlens.train.prepare_population`, ``train_population(prepared=...)``).

    Attributes
    ----------
    arrays : tuple of ndarray
        What ``fit_block`` receives as ``shared``.
    record : mapping
        Merged into the population's convergence record (e.g. the preconditioner used).
    """

    arrays: tuple
    record: Mapping[str, Any]

    def to_npz_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, *self.arrays, record=np.array(json.dumps(dict(self.record))))
        return buf.getvalue()

    @classmethod
    def from_npz_bytes(cls, data: bytes) -> "Prepared":
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            n = sum(1 for name in z.files if name.startswith("arr_"))
            return cls(tuple(z[f"arr_{i}"] for i in range(n)), json.loads(str(z["record"])))


@dataclass(frozen=True)
class Trainer:
    """One kind of model that :func:`memlens.train.train_population` trains, as a few plain functions.

    Attributes
    ----------
    name : str
        Registry name (``--model NAME`` on the command line).
    config_type : type or None
        The frozen configuration dataclass (its ``to_dict()`` is recorded in provenance and in a run's identity);
        None for a trainer configured by an object it is given (a scikit-learn estimator).
    make_config : callable
        ``make_config(**overrides) -> config``; refuses unknown fields naming them.
    fit_block : callable or None
        ``fit_block(config, X_train, y_train, X_test, y_test, *, n_classes, masks, seeds, shared, input_shape,
        first_model) -> BlockFit``. Trains the models of one block (rows of ``masks``), each with its own seed;
        ``input_shape`` is ``(C, H, W)`` for images and ``(d,)`` for rows, ``first_model`` the run's index of the
        block's first model (for error messages). None for trainers with ``population``.
    convergence : callable
        ``convergence(config, diag) -> dict``: the provenance's ``convergence`` record from the concatenated
        diagnostics.
    block_size : int
        Models per vectorized pass by default (speed and memory only).
    feature_dtype : numpy dtype
        The dtype of the (standardized) features ``fit_block`` receives.
    prepare : callable, optional
        ``prepare(config, X_train, y_train, *, n_classes, masks, n_workers) -> Prepared | None``: work done once
        per population and shared by every block (the full-data start of logistic regression).
    dp_model : callable, optional
        ``dp_model(config, n_max) -> dict`` with ``hidden``, ``weight_decay``, ``init``, ``model_family``: the
        network DP-SGD trains for this configuration (:mod:`memlens.train.dp_sgd`). None: DP-SGD is refused.
    population : callable, optional
        ``population(dataset, config, masks, *, seed, model_offset, progress, block_size, **options) ->
        Population`` for trainers that fit a whole population their own way (exact closed forms, the byte-level
        language model). ``train_population`` validates the common inputs and delegates.
    check : callable, optional
        ``check(config, dataset)``: a cheap preflight (build one model, run it on two rows) that an audit calls
        before it creates its run directory, so a broken user model is refused before any work.
    loo : bool
        A closed-form (ridge, kernel ridge) or one-Newton-step (logistic regression) leave-one-out exists.
    exact_loo : bool
        The leave-one-out is exact.
    text : bool
        Trains on a :class:`memlens.data.TextDataset` (documents), not on feature arrays.
    backends : tuple of str
        Training backends the trainer accepts (``torch``; ``sklearn`` for the scikit-learn reference path).
    """

    name: str
    config_type: type | None
    make_config: Callable[..., Any]
    fit_block: Callable[..., BlockFit] | None
    convergence: Callable[[Any, Mapping], dict]
    block_size: int = 32
    feature_dtype: Any = np.float64
    prepare: Callable | None = None
    dp_model: Callable | None = None
    population: Callable | None = None
    check: Callable | None = None
    loo: bool = False
    exact_loo: bool = False
    text: bool = False
    backends: tuple = ("torch",)

    @property
    def supports_dp(self) -> bool:
        return self.dp_model is not None

    @property
    def closed_form(self) -> bool:
        """Fitted without iterations (exact subset refits), so DP-SGD and convergence settings do not apply."""
        return self.population is not None and not self.text


#: The built-in trainers, filled by :mod:`memlens.train.builtin` when :mod:`memlens.train` is imported.
TRAINERS: dict[str, Trainer] = {}


def register_trainer(trainer: Trainer, *, replace: bool = False) -> Trainer:
    """Add ``trainer`` to :data:`TRAINERS` under ``trainer.name`` (refused if taken, unless ``replace``)."""
    if not isinstance(trainer, Trainer):
        raise MemlensInputError(f"trainer must be a memlens.train.Trainer; got {type(trainer).__name__}",
                                param="trainer")
    if trainer.name in TRAINERS and not replace:
        raise MemlensInputError(f"trainer name {trainer.name!r} is taken by a built-in trainer; choose another name "
                                "or pass replace=True", param="trainer")
    TRAINERS[trainer.name] = trainer
    return trainer


def get_trainer(model) -> Trainer:
    """The trainer for a registry name, a configuration instance, or a :class:`Trainer` (returned as is)."""
    if isinstance(model, Trainer):
        return model
    if isinstance(model, str):
        if model not in TRAINERS:
            raise MemlensInputError(f"model must be one of {', '.join(TRAINERS)}; got {model!r}"
                                    + did_you_mean(model, TRAINERS), param="model")
        return TRAINERS[model]
    trainer = trainer_for_config(model)
    if trainer is None:
        raise MemlensInputError(f"model must be a trainer name ({', '.join(TRAINERS)}), a model configuration or a "
                                f"memlens.train.Trainer; got {model!r}", param="model")
    return trainer


def trainer_for_config(config) -> Trainer | None:
    """The registered trainer whose ``config_type`` is ``type(config)`` (None if there is none)."""
    for trainer in TRAINERS.values():
        if trainer.config_type is not None and type(config) is trainer.config_type:
            return trainer
    return None


def config_from_dict(record: Mapping[str, Any]):
    """Rebuild a configuration from its ``to_dict()`` record (``{"name": ..., fields...}``)."""
    record = dict(record)
    trainer = get_trainer(record.pop("name", None))
    fields = {f.name for f in dataclasses.fields(trainer.config_type)}
    return trainer.make_config(**{k: v for k, v in record.items() if k in fields})

