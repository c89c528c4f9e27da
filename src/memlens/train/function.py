"""Any training function as a population: models of other frameworks (JAX, TensorFlow, XGBoost, a scikit-learn
pipeline), one model per call, through the same sharded, resumable, Ray-capable run.

The user gives ``fit(X, y, seed) -> predict``: it trains one model on the rows ``X`` (float32, ``(m, n_features)``;
reshape them with the dataset's ``image_shape`` if the model wants images) and labels ``y`` (int, ``(m,)``) with its
own seed, and returns ``predict(X) -> (rows, n_classes)`` class scores of the trained model: raw logits
(``output="logits"``) or probabilities (``output="proba"``). memlens calls it once per model with that model's
training rows, turns the scores into the standard signals (``logit``, ``loss``, ``correct``) on the training and
test splits, and keeps no model.

On the command line: ``memlens audit --model fit:PATH.py:FUNC`` (the file is imported, which runs it, as a test
runner runs ``conftest.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .._validation import MemlensInputError
from ..population import SIGNALS, output_kind, signals_from_logits, signals_from_proba
from .trainers import BlockFit
from .user_code import config_dict, load_checked, make_user_config, user_config

__all__ = ["FitFunctionConfig", "FitFunction", "make_config", "fit_block", "SPEC_PREFIX"]

#: Prefix of a training-function spec on the command line: ``--model fit:PATH.py:FUNC``.
SPEC_PREFIX = "fit:"
OUTPUTS = ("logits", "proba")


@dataclass(frozen=True)
class FitFunctionConfig:
    """A training function ``fit(X, y, seed) -> predict`` (every field but the callable is part of a run's identity).

    Attributes
    ----------
    fit : str
        ``PATH.py:FUNC`` or ``package.module:FUNC`` (for a callable given in Python, its ``module:qualname``).
    fit_sha256 : str
        Hash of the function's file (or source).
    output : {"logits", "proba"}
        What ``predict`` returns: raw class scores, or probabilities (clipped at 1e-12 before the logarithm).
    standardize : bool
        Z-score the features with the full training split's statistics before ``fit`` sees them.
    """

    fit: str
    fit_sha256: str = ""
    output: str = "logits"
    standardize: bool = False
    callable_: Any = field(default=None, compare=False, repr=False)

    name = "function"

    def __post_init__(self):
        if self.output not in OUTPUTS:
            raise MemlensInputError(f"output must be 'logits' or 'proba' (what predict returns); got "
                                    f"{self.output!r}", param="output")
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise MemlensInputError(f"standardize must be True or False; got {self.standardize!r}",
                                    param="standardize")

    def to_dict(self) -> dict:
        return config_dict(self)

    def function(self) -> Callable:
        if self.callable_ is not None:
            return self.callable_
        return load_checked(self.fit, self.fit_sha256)


def FitFunction(fit, **settings) -> FitFunctionConfig:  # noqa: N802 - reads as the trainer it configures
    """A :class:`FitFunctionConfig` for ``train_population(..., model=FitFunction(fit, output="proba"))``.

    ``fit`` is a callable ``fit(X, y, seed) -> predict`` or a spec ``PATH.py:FUNC`` / ``package.module:FUNC``.
    """
    return user_config(FitFunctionConfig, "fit", fit, settings, model="function", prefix=SPEC_PREFIX)


def make_config(**fields) -> FitFunctionConfig:
    """The registry's ``make_config``: ``fit`` is required (a spec or a callable)."""
    return make_user_config(FitFunction, "fit", fields, model="function",
                            how="a training function: pass --model fit:PATH.py:FUNC (or FitFunction(fit, ...))")


def _scores(predict, X, n_classes: int, what: str, model: int) -> np.ndarray:
    try:
        out = np.asarray(predict(X), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - the user's predict failed
        raise MemlensInputError(f"model: predict of model {model} failed on the {what} rows ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); it must map "
                                "(rows, n_features) to (rows, n_classes) class scores", param="model") from None
    if out.shape != (X.shape[0], n_classes):
        raise MemlensInputError(f"model: predict must return class scores of shape (rows, n_classes) = "
                                f"({X.shape[0]}, {n_classes}) on the {what} rows; got {out.shape} from model {model}",
                                param="model")
    return out


def fit_block(config: FitFunctionConfig, X, y, X_test, y_test, *, n_classes, masks, seeds, shared,
              input_shape=None, first_model=0) -> BlockFit:
    """Call ``fit`` once per mask row (its rows, its seed), and the signals of each returned ``predict``."""
    fit = config.function()
    k = masks.shape[0]
    sig = {"train": {}, "test": {}}
    per = {"train": [], "test": []}
    predicts = []
    for j in range(k):
        rows = np.flatnonzero(masks[j])
        try:
            predict = fit(np.ascontiguousarray(X[rows], dtype=np.float32), np.asarray(y[rows], dtype=np.int64),
                          int(seeds[j]))
        except MemlensInputError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's training failed: name the model
            raise MemlensInputError(f"model: fit failed for model {first_model + j} ({type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:160] if str(exc) else ''})", param="model") from None
        if not callable(predict):
            raise MemlensInputError(f"model: fit must return a function predict(X) -> (rows, n_classes) scores; got "
                                    f"{type(predict).__name__} for model {first_model + j}", param="model")
        predicts.append(predict)
        for split, (Xs, ys) in (("train", (X, y)), ("test", (X_test, y_test))):
            s = _scores(predict, np.ascontiguousarray(Xs, dtype=np.float32), n_classes, split, first_model + j)
            seen = output_kind(s)
            if config.output == "logits" and seen == "proba":
                raise MemlensInputError(f"model: predict of model {first_model + j} returns probabilities (rows in "
                                        "[0, 1] summing to 1) but output='logits'; pass --model-param output=proba "
                                        "(FitFunction(..., output='proba'))", param="model")
            if config.output == "proba" and seen == "log-proba":
                raise MemlensInputError(f"model: predict of model {first_model + j} returns log-probabilities but "
                                        "output='proba'; use output='logits' (exact for log-probabilities)",
                                        param="model")
            to_signals = signals_from_logits if config.output == "logits" else signals_from_proba
            per[split].append(to_signals(s[None], ys))
    for split in ("train", "test"):
        for name in SIGNALS:
            sig[split][name] = np.concatenate([p[name] for p in per[split]])
    n_rows = masks.sum(1)

    def scores(Xr):   # the block's scores on new rows (label-only queries)
        Xr = np.ascontiguousarray(Xr, dtype=np.float32)
        return np.stack([_scores(p, Xr, n_classes, "queries", first_model + j) for j, p in enumerate(predicts)])

    return BlockFit(scores, sig, {"n_iter": np.full(k, -1, dtype=np.int64), "converged": np.ones(k, dtype=bool),
                                "n_rows": n_rows})
