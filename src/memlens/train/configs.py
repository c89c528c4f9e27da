"""Model configurations for population training: plain frozen dataclasses, JSON round-trippable.

``make_model_config("logreg", C=0.1)`` builds one by name; ``config.to_dict()`` goes into a run's manifest
and ``make_model_config(**config.to_dict())`` rebuilds it.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

from .._validation import MemlensInputError, check_float, check_int

__all__ = ["LogisticConfig", "MLPConfig", "MODEL_CONFIGS", "make_model_config"]


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise MemlensInputError(f"{name} must be True or False; got {value!r}")
    return value


@dataclass(frozen=True)
class LogisticConfig:
    """Multinomial L2-regularized logistic regression, exactly scikit-learn's objective.

    Each model ``k`` minimizes ``C * sum_{i in S_k} CE_i + 0.5 * ||W_k||^2`` (intercepts unpenalized), the
    objective of ``sklearn.linear_model.LogisticRegression(C=C)``; with two classes, sklearn's binary
    parametrization (one weight vector) is used, so the optimum is the same as sklearn's.

    Attributes
    ----------
    C : float > 0
        Inverse regularization strength (scikit-learn's ``C``).
    max_iter : int >= 1
        Maximum number of L-BFGS iterations per model.
    tol : float > 0
        Convergence threshold on the largest absolute entry of the gradient of the normalized objective
        ``mean_{i in S_k} CE_i + ||W_k||^2 / (2 C |S_k|)`` (the quantity scikit-learn's ``tol`` bounds for the
        ``lbfgs`` solver). Memorization scores need tight convergence (docs/performance.md, "Many logistic
        regressions at once").
    standardize : bool
        Z-score the features with the mean and standard deviation of the *full* training split (constant
        features are left centred, with scale 1).
    warm_start : bool
        Start every model of a block from the model fitted to all training rows (fitted once per block)
        instead of from zeros. The objective is strictly convex, so only the path changes: every model is
        still run to ``tol`` (see :func:`memlens.train.fit_logistic`, ``init``). Measured: 1.2x fewer
        iterations on digits and on a Fashion-MNIST subset (BENCHMARKS.md). With ``preconditioner="full-hessian"``
        (the default ``auto`` up to 8,192 parameters) every model starts from the full-data model anyway.
    solver : {"lbfgs", "newton-cg"}
        ``lbfgs`` (the default): batched preconditioned L-BFGS. ``newton-cg``: batched truncated Newton with
        exact Hessian-vector products (per-model CG, Eisenstat-Walker forcing terms, Armijo line search); same
        objective, same ``tol`` test and float64 certification, ``max_iter`` counts Newton iterations (see
        :func:`memlens.train.fit_logistic`). Measured: as fast as L-BFGS on digits, 4.5x slower on a
        10,000-row Fashion-MNIST subset (see ``memlens.train.logreg``).
    preconditioner : {"auto", "kron", "full-hessian"}
        L-BFGS's initial inverse Hessian (see :func:`memlens.train.fit_logistic`). ``kron``: each model's
        Kronecker factorization. ``full-hessian``: the inverse of the exact Hessian of the full-data objective at
        the full-data model, shared by every model, which also starts from that model; at most 8,192 parameters
        per model ``(n_features + 1) * n_classes``. ``auto`` (the default): ``full-hessian`` up to that size
        (measured 3x faster on digits and 9x fewer iterations on full Fashion-MNIST), ``kron`` above it and with
        ``solver="newton-cg"``. Same optimum and ``tol`` test either way.
    """

    C: float = 1.0
    max_iter: int = 1000
    tol: float = 1e-6
    standardize: bool = True
    warm_start: bool = False
    solver: str = "lbfgs"
    preconditioner: str = "auto"

    name = "logreg"

    def __post_init__(self):
        object.__setattr__(self, "C", check_float("C", self.C, min_value=0.0, min_inclusive=False,
                                                  hint="(it is the inverse regularization strength)"))
        object.__setattr__(self, "max_iter", check_int("max_iter", self.max_iter, min_value=1))
        object.__setattr__(self, "tol", check_float("tol", self.tol, min_value=0.0, min_inclusive=False))
        object.__setattr__(self, "standardize", _check_bool("standardize", self.standardize))
        object.__setattr__(self, "warm_start", _check_bool("warm_start", self.warm_start))
        if self.solver not in ("lbfgs", "newton-cg"):
            raise MemlensInputError(f"solver must be 'lbfgs' or 'newton-cg'; got {self.solver!r}")
        if self.preconditioner not in ("auto", "kron", "full-hessian"):
            raise MemlensInputError(f"preconditioner must be 'auto', 'kron' or 'full-hessian'; "
                                    f"got {self.preconditioner!r}")
        if self.preconditioner == "full-hessian" and self.solver != "lbfgs":
            raise MemlensInputError(f"preconditioner='full-hessian' needs solver='lbfgs'; got solver={self.solver!r}")

    def to_dict(self) -> dict:
        """JSON-serializable fields plus ``name``; ``make_model_config(**d)`` rebuilds the config.

        Options added after the first release (``warm_start``, ``solver``, ``preconditioner``) appear only when they
        differ from their defaults, so a run directory made before they existed keeps its identity and still
        resumes (a resumed run may then train its remaining shards with the newer default preconditioner: the same
        optimum, to ``tol``).
        """
        d = dataclasses.asdict(self)
        for key, default in _LATER_LOGISTIC_DEFAULTS.items():
            if d.get(key) == default:
                del d[key]
        return {"name": self.name, **d}


#: LogisticConfig fields added after run directories existed, with their defaults (left out of ``to_dict``).
_LATER_LOGISTIC_DEFAULTS = {"warm_start": False, "solver": "lbfgs", "preconditioner": "auto"}


@dataclass(frozen=True)
class MLPConfig:
    """A ReLU multilayer perceptron trained by minibatch SGD with momentum.

    Attributes
    ----------
    hidden : tuple of int
        Widths of the hidden layers, e.g. ``(128,)`` or ``(512, 256)``; ``()`` gives softmax regression.
    epochs : int >= 1
        Passes over each model's own training subset.
    batch_size : int >= 1
        Minibatch size; the last minibatch of an epoch holds the remainder (no example is dropped).
    lr : float > 0
        Learning rate.
    momentum : float in [0, 1)
        Heavy-ball momentum, as ``torch.optim.SGD`` (no dampening, no Nesterov).
    weight_decay : float >= 0
        L2 coefficient added to the gradient of every parameter, as ``torch.optim.SGD``.
    standardize : bool
        Z-score the features with the full training split's statistics.
    """

    hidden: tuple = (128,)
    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    standardize: bool = True

    name = "mlp"

    def __post_init__(self):
        hidden = self.hidden
        if isinstance(hidden, (numbers.Integral,)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if not isinstance(hidden, (tuple, list)):
            raise MemlensInputError(f"hidden must be a tuple of layer widths such as (128,) or (512, 256); "
                                    f"got {hidden!r}")
        hidden = tuple(check_int(f"hidden[{j}]", h, min_value=1) for j, h in enumerate(hidden))
        object.__setattr__(self, "hidden", hidden)
        object.__setattr__(self, "epochs", check_int("epochs", self.epochs, min_value=1))
        object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size, min_value=1))
        object.__setattr__(self, "lr", check_float("lr", self.lr, min_value=0.0, min_inclusive=False))
        object.__setattr__(self, "momentum", check_float("momentum", self.momentum, min_value=0.0,
                                                         max_value=1.0, max_inclusive=False))
        object.__setattr__(self, "weight_decay", check_float("weight_decay", self.weight_decay, min_value=0.0))
        object.__setattr__(self, "standardize", _check_bool("standardize", self.standardize))

    def to_dict(self) -> dict:
        """JSON-serializable fields plus ``name``; ``make_model_config(**d)`` rebuilds the config."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return {"name": self.name, **d}


MODEL_CONFIGS = {"logreg": LogisticConfig, "mlp": MLPConfig}


def make_model_config(name: str, **overrides):
    """A model configuration by name, with fields overridden.

    Parameters
    ----------
    name : {"logreg", "mlp"}
    **overrides
        Fields of :class:`LogisticConfig` or :class:`MLPConfig`.

    Examples
    --------
    >>> make_model_config("logreg", C=0.1).C
    0.1
    >>> make_model_config("mlp", hidden=(64, 32)).hidden
    (64, 32)
    """
    if not isinstance(name, str) or name not in MODEL_CONFIGS:
        raise MemlensInputError(f"model must be one of {', '.join(MODEL_CONFIGS)}; got {name!r}")
    cls = MODEL_CONFIGS[name]
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise MemlensInputError(f"unknown field(s) {', '.join(unknown)} for model {name!r}; "
                                f"valid fields: {', '.join(fields)}")
    return cls(**overrides)


@dataclass(frozen=True)
class RidgeConfig:
    """Ridge least-squares classification on one-hot targets, fitted in closed form (exact subset refits).

    Each model minimizes ``‖Y_S − X̃_S β‖² + alpha ‖β_w‖²`` over its subset ``S`` (intercept unpenalized, the
    minimizer of ``sklearn.linear_model.Ridge(alpha)``); see :func:`memlens.train.closed_form_population`.

    Attributes
    ----------
    alpha : float > 0
        Ridge penalty.
    standardize : bool
        Z-score the features with the full training split's statistics.
    """

    alpha: float = 1.0
    standardize: bool = True

    name = "ridge"

    def __post_init__(self):
        object.__setattr__(self, "alpha", check_float("alpha", self.alpha, min_value=0.0, min_inclusive=False,
                                                      hint="(the ridge penalty)"))
        object.__setattr__(self, "standardize", _check_bool("standardize", self.standardize))

    def to_dict(self) -> dict:
        """JSON-serializable fields plus ``name``; ``make_model_config(**d)`` rebuilds the config."""
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class KernelRidgeConfig:
    """Kernel ridge classification on one-hot targets (no intercept, as ``sklearn.kernel_ridge.KernelRidge``),
    fitted in closed form (exact subset refits, :func:`memlens.train.closed_form_population`).

    Attributes
    ----------
    alpha : float > 0
        Ridge penalty.
    kernel : {"rbf", "linear"}
    gamma : float > 0 or None
        RBF width ``exp(−gamma ‖x − x'‖²)``; None: ``1 / (d · Var(Z))`` of the standardized full training split.
    standardize : bool
        Z-score the features with the full training split's statistics.
    """

    alpha: float = 1.0
    kernel: str = "rbf"
    gamma: float | None = None
    standardize: bool = True

    name = "kernel-ridge"

    def __post_init__(self):
        object.__setattr__(self, "alpha", check_float("alpha", self.alpha, min_value=0.0, min_inclusive=False,
                                                      hint="(the ridge penalty)"))
        if self.kernel not in ("rbf", "linear"):
            raise MemlensInputError(f"kernel must be 'rbf' or 'linear'; got {self.kernel!r}")
        if self.gamma is not None:
            object.__setattr__(self, "gamma", check_float("gamma", self.gamma, min_value=0.0, min_inclusive=False,
                                                          hint="(the RBF width), or None for the default"))
        object.__setattr__(self, "standardize", _check_bool("standardize", self.standardize))

    def to_dict(self) -> dict:
        """JSON-serializable fields plus ``name``; ``make_model_config(**d)`` rebuilds the config."""
        return {"name": self.name, **dataclasses.asdict(self)}


#: Models fitted in closed form rather than trained iteratively.
CLOSED_FORM_CONFIGS = {"ridge": RidgeConfig, "kernel-ridge": KernelRidgeConfig}
MODEL_CONFIGS.update(CLOSED_FORM_CONFIGS)
__all__ += ["RidgeConfig", "KernelRidgeConfig", "CLOSED_FORM_CONFIGS"]
