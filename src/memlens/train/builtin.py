"""The built-in trainers, each a :class:`~memlens.train.trainers.Trainer` registered under its name.

``logreg``
    Multinomial L2 logistic regression, scikit-learn's objective, tightly converged (:mod:`memlens.train.logreg`).
``mlp``
    ReLU MLP trained by SGD with momentum, every model of a block in one batched pass (:mod:`memlens.train.torch_mlp`).
``ridge``, ``kernel-ridge``
    Least-squares classification fitted exactly on every subset in closed form (:mod:`memlens.train.closed_form`).
``sklearn``
    Any scikit-learn classifier, cloned and fitted once per model: the reference path
    (:mod:`memlens.train.sklearn_backend`).
``char-lm``
    The byte-level language model of the text audit (:mod:`memlens.train.text_population`).
``torch-module``
    The user's own ``torch.nn.Module`` from a factory ``PATH.py:FUNC``, vectorized over a block of models
    (:mod:`memlens.train.torch_module`).
``cnn``
    The built-in residual CNN for 8x8 / 28x28 grey and 32x32 colour images, with data augmentation
    (:mod:`memlens.train.cnn`), trained like ``torch-module``.
``function``
    Any training function ``fit(X, y, seed) -> predict`` (JAX, TensorFlow, XGBoost, ...), one model per call
    (:mod:`memlens.train.function`).
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Mapping

import numpy as np

from .._threads import limit_threads
from .._validation import MemlensInputError
from . import cnn, function, torch_module
from .closed_form import closed_form_population
from .configs import KernelRidgeConfig, LogisticConfig, MLPConfig, RidgeConfig, make_model_config
from .logreg import fit_logistic, full_hessian_start, resolve_preconditioner
from .sklearn_backend import fit_predict_block
from .text_population import CharLMConfig, train_text_population
from .torch_mlp import fit_mlp
from .trainers import TRAINERS, BlockFit, Prepared, Trainer, get_trainer, register_trainer, trainer_for_config

__all__ = ["LOGREG", "MLP", "RIDGE", "KERNEL_RIDGE", "SKLEARN", "CHAR_LM", "TORCH_MODULE", "CNN", "FUNCTION", "configure_model"]


def _char_lm_config(**overrides) -> CharLMConfig:
    fields = [f.name for f in dataclasses.fields(CharLMConfig)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise MemlensInputError(f"unknown field(s) {', '.join(unknown)} for model 'char-lm'; valid fields: "
                                f"{', '.join(fields)}", param="model_params")
    return CharLMConfig(**overrides)


# ---------------------------------------------------------------------------------------------- logistic regression
def _logreg_prepare(config, X, y, *, n_classes, masks, n_workers):
    """The full-data start and shared inverse Hessian (preconditioner ``full-hessian``), once per call."""
    precond = resolve_preconditioner(config.preconditioner, X.shape[1], n_classes, config.solver)
    shared = ()
    if precond == "full-hessian":   # once here, with every worker's core, instead of once per worker process
        with limit_threads(n_workers):
            shared = full_hessian_start(X, y, n_classes=n_classes, C=config.C, rho=float(masks.mean()),
                                        tol=config.tol, max_iter=config.max_iter)
    return Prepared(tuple(shared), {"preconditioner": precond})


def _logreg_fit(config, X, y, X_test, y_test, *, n_classes, masks, seeds, shared, **context):
    fit = fit_logistic(X, y, masks.astype(np.float64), n_classes=n_classes, C=config.C, tol=config.tol,
                       max_iter=config.max_iter, init="full" if config.warm_start else None, solver=config.solver,
                       preconditioner=config.preconditioner, shared_start=shared or None)
    return BlockFit(fit.logits, None, {"n_iter": fit.n_iter, "grad_norm": fit.grad_norm, "converged": fit.converged})


def _logreg_convergence(config, diag):
    n_iter = diag["n_iter"]
    return {"n_iter_max": int(n_iter.max()), "n_iter_mean": float(n_iter.mean()), "tol": config.tol,
            "max_grad_norm": float(np.max(diag["grad_norm"])), "n_not_converged": int((~diag["converged"]).sum())}


def _logreg_dp(config, n_max):
    """DP-SGD trains multinomial softmax regression from zero weights with the normalized objective's L2 term."""
    return {"hidden": (), "weight_decay": 1.0 / (config.C * n_max), "init": "zeros",
            "model_family": "softmax regression (zero init)"}


LOGREG = register_trainer(Trainer(
    name="logreg", config_type=LogisticConfig, make_config=partial(make_model_config, 'logreg'), fit_block=_logreg_fit,
    convergence=_logreg_convergence, block_size=256, prepare=_logreg_prepare, dp_model=_logreg_dp, loo=True,
    backends=("torch", "sklearn")))


# ---------------------------------------------------------------------------------------------- MLP
def _mlp_fit(config, X, y, X_test, y_test, *, n_classes, masks, seeds, shared, **context):
    fit = fit_mlp(X, y, masks, seeds=seeds, n_classes=n_classes, hidden=config.hidden, epochs=config.epochs,
                  batch_size=config.batch_size, lr=config.lr, momentum=config.momentum,
                  weight_decay=config.weight_decay)
    return BlockFit(fit.logits, None, {"n_iter": fit.n_steps, "final_loss": fit.final_loss})


def sgd_convergence(config, diag):
    """Convergence record of SGD-trained models (the MLP, and every DP-SGD population)."""
    n_iter = diag["n_iter"]
    return {"n_iter_max": int(n_iter.max()), "n_iter_mean": float(n_iter.mean()), "unit": "SGD steps",
            "final_loss_mean": float(np.mean(diag["final_loss"])), "final_loss_max": float(np.max(diag["final_loss"]))}


def _mlp_dp(config, n_max):
    return {"hidden": tuple(config.hidden), "weight_decay": config.weight_decay, "init": "uniform",
            "model_family": "mlp"}


MLP = register_trainer(Trainer(
    name="mlp", config_type=MLPConfig, make_config=partial(make_model_config, 'mlp'), fit_block=_mlp_fit, convergence=sgd_convergence,
    block_size=32, feature_dtype=np.float32, dp_model=_mlp_dp))


# ---------------------------------------------------------------------------------------------- closed forms
def _closed_form(dataset, config, masks, *, seed, model_offset, progress, block_size, **_):
    extra = {"kernel": config.kernel, "gamma": config.gamma} if isinstance(config, KernelRidgeConfig) else {}
    return closed_form_population(dataset, masks=masks, model=config.name, alpha=config.alpha,
                                  standardize=config.standardize, model_offset=model_offset, block_size=block_size,
                                  progress=progress, **extra)


def _exact_convergence(config, diag):
    return {"exact": True}


RIDGE = register_trainer(Trainer(
    name="ridge", config_type=RidgeConfig, make_config=partial(make_model_config, 'ridge'), fit_block=None,
    convergence=_exact_convergence, population=_closed_form, loo=True, exact_loo=True))
KERNEL_RIDGE = register_trainer(Trainer(
    name="kernel-ridge", config_type=KernelRidgeConfig, make_config=partial(make_model_config, 'kernel-ridge'), fit_block=None,
    convergence=_exact_convergence, population=_closed_form, loo=True, exact_loo=True))


# ---------------------------------------------------------------------------------------------- scikit-learn
def _sklearn_fit(estimator, X, y, X_test, y_test, *, n_classes, masks, seeds, shared, **context):
    res = fit_predict_block(estimator, X, y, X_test, y_test, masks, seeds, n_classes)
    return BlockFit(res["proba"], {"train": res["train"], "test": res["test"]},
                    {"n_iter": res["n_iter"], "converged": ~res["not_converged"]})


def _sklearn_convergence(estimator, diag):
    n_iter = diag["n_iter"]
    return {"n_iter_max": int(n_iter.max()), "n_iter_mean": float(n_iter.mean()),
            "n_not_converged": int((~diag["converged"]).sum())}


def _no_config(**overrides):
    raise MemlensInputError("model 'sklearn' takes a configured scikit-learn classifier, not fields: pass the "
                            "estimator itself as model=... with backend='sklearn'", param="model")


SKLEARN = register_trainer(Trainer(
    name="sklearn", config_type=None, make_config=_no_config, fit_block=_sklearn_fit,
    convergence=_sklearn_convergence, block_size=16, backends=("sklearn",)))


# ---------------------------------------------------------------------------------------------- text
def _char_lm(dataset, config, masks, *, seed, model_offset, progress, block_size, **options):
    return train_text_population(dataset, masks=masks, config=config, seed=seed, model_offset=model_offset,
                                 progress=progress, block_size=block_size, **options)


CHAR_LM = register_trainer(Trainer(
    name="char-lm", config_type=CharLMConfig, make_config=_char_lm_config, fit_block=None,
    convergence=_exact_convergence, population=_char_lm, text=True))


# ---------------------------------------------------------------------------------------------- the user's model
def module_convergence(config, diag):
    """SGD's record, and how many models trained in vectorized blocks (the rest one at a time)."""
    return {**sgd_convergence(config, diag), "n_vectorized": int(np.sum(diag["vectorized"]))}


TORCH_MODULE = register_trainer(Trainer(
    name="torch-module", config_type=torch_module.TorchModuleConfig, make_config=torch_module.make_config,
    fit_block=torch_module.fit_block, convergence=module_convergence, block_size=32, feature_dtype=np.float32,
    check=torch_module.preflight))


CNN = register_trainer(Trainer(
    name="cnn", config_type=cnn.CNNConfig, make_config=cnn.make_config, fit_block=torch_module.fit_block,
    convergence=module_convergence, block_size=32, feature_dtype=np.float32, check=torch_module.preflight))


def _function_convergence(config, diag):
    return {"unit": "one call of the user's fit per model", "n_models": int(diag["n_rows"].size),
            "rows_per_model_mean": float(np.mean(diag["n_rows"]))}


FUNCTION = register_trainer(Trainer(
    name="function", config_type=function.FitFunctionConfig, make_config=function.make_config,
    fit_block=function.fit_block, convergence=_function_convergence, block_size=8, feature_dtype=np.float32))


def configure_model(model, params=None):
    """``(trainer, config)`` of an audit's ``model`` argument with ``params`` overriding fields of its configuration.

    ``model`` is a registered trainer name (``"logreg"``), a factory spec of the user's own module
    (``"net.py:make_net"`` or ``"package.module:make_net"``: the ``torch-module`` trainer), a training-function spec
    (``"fit:train.py:fit"``: the ``function`` trainer), or a configuration object (``LogisticConfig(...)``,
    ``TorchModule(factory, ...)``, ``FitFunction(fit, ...)``).
    """
    if params is not None and (not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params)):
        raise MemlensInputError(f"model_params must be a mapping of field names to values, e.g. {{'C': 0.01}}; "
                                f"got {params!r}", param="model_params")
    params = dict(params or {})
    if isinstance(model, str) and model.startswith(function.SPEC_PREFIX):
        return FUNCTION, FUNCTION.make_config(fit=model[len(function.SPEC_PREFIX):], **params)
    if isinstance(model, str) and ":" in model:
        return TORCH_MODULE, TORCH_MODULE.make_config(factory=model, **params)
    if isinstance(model, str):
        trainer = get_trainer(model)
        if trainer.config_type is None or trainer.text:
            usable = [n for n, t in TRAINERS.items() if t.config_type is not None and not t.text]
            raise MemlensInputError(f"model must be one of {', '.join(usable)} or a factory PATH.py:FUNC of your "
                                    f"own torch module; got {model!r}", param="model")
        return trainer, trainer.make_config(**params)
    trainer = trainer_for_config(model)
    if trainer is None or trainer.text:
        raise MemlensInputError(f"model must be a trainer name, a factory spec PATH.py:FUNC or a model "
                                f"configuration (LogisticConfig, TorchModule(...), ...); got {model!r}",
                                param="model")
    if params:
        model = dataclasses.replace(model, **params)
    return trainer, model
