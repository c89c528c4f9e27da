"""Any ``torch.nn.Module`` as a vectorized population: the user's own architecture, trained many models at a time.

The user gives a *factory* ``factory(input_shape, n_classes) -> nn.Module`` (``input_shape`` is ``(C, H, W)`` for
images, ``(d,)`` for tabular rows) whose module maps a batch to logits. A block of ``k`` models is trained together:

* every model is built by the factory under its own seed (PyTorch's default initialization, drawn from that seed);
* the parameters and buffers are stacked along a new leading model axis (``torch.func.stack_module_state``) and one
  ``vmap(functional_call)`` runs the forward and backward pass of the whole block;
* model ``k`` draws its minibatches from its own training rows (the True entries of its mask row) with its own
  generator: epoch after epoch a fresh permutation of those rows, cut into batches of ``batch_size`` (the last
  smaller); models with fewer rows simply finish their epochs in fewer steps and wait;
* the optimizer (SGD with momentum, Nesterov and weight decay, or Adam/AdamW) and the learning-rate schedule are
  ``torch.optim``'s own, applied to the stacked tensors: both are elementwise, so each model's update is exactly the
  one ``torch.optim`` would make for that model alone;
* BatchNorm keeps per-model running statistics (the stacked buffers), dropout draws per-model masks
  (``randomness="different"``), residual connections need nothing special.

**Invariant** (tested): model ``k`` of a vectorized block equals the same module trained alone by a plain torch loop
with the same seed and minibatches, to float tolerance; an example outside a model's mask is never drawn, so weight
0 equals removal exactly. A module that cannot be vectorized (in-place operations on inputs, data-dependent control
flow) is reported in one line and trained in a per-model loop with the same minibatch streams and updates
(``vectorize="auto"``; ``vectorize=False`` forces the loop).

A model whose loss becomes non-finite stops the run with an error naming the model and the step (finished shards of
a run directory are kept).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .._threads import limit_threads
from .._validation import MemlensInputError, MemlensTrainingError, check_float, check_int, warn
from ..population import SIGNALS, signals_from_logits
from .trainers import BlockFit
from .user_code import config_dict, load_checked, make_user_config, user_config

__all__ = ["TorchModuleConfig", "TorchModule", "load_factory", "fit_module_block", "module_logits",
           "input_shape_of", "OPTIMIZERS", "SCHEDULES", "shift_flip", "augmented_queries", "query_signals"]

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear")
_EVAL_ROWS = 1024   # rows per forward pass when the signals are computed


def input_shape_of(dataset_or_shape, n_features: int | None = None) -> tuple:
    """The factory's ``input_shape``: ``(C, H, W)`` for images (a 2-d ``image_shape`` gets one channel), ``(d,)``
    for tabular rows."""
    shape = getattr(dataset_or_shape, "image_shape", dataset_or_shape)
    n = getattr(dataset_or_shape, "n_features", n_features)
    if shape is None:
        return (int(n),)
    shape = tuple(int(s) for s in shape)
    return (1, *shape) if len(shape) == 2 else shape


# ---------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class TorchModuleConfig:
    """Training of a user's ``nn.Module`` population (every field but the callable is part of a run's identity).

    Attributes
    ----------
    factory : str
        ``PATH.py:FUNC`` or ``package.module:FUNC``: ``FUNC(input_shape, n_classes) -> nn.Module`` (for a callable
        given in Python, its ``module:qualname``).
    factory_sha256 : str
        Hash of the factory's file (or source); filled in when the configuration is made.
    epochs : int >= 1
    batch_size : int >= 1
    optimizer : {"sgd", "adam", "adamw"}
    lr : float > 0
    momentum : float in [0, 1)
        SGD's momentum (``torch.optim.SGD``); Adam's ``beta1`` stays at its default.
    nesterov : bool
    weight_decay : float >= 0
    schedule : {"constant", "cosine", "linear"}
        Learning rate per step: constant, cosine decay to 0, or linear decay to 0 over all steps.
    vectorize : {"auto", True, False}
        ``auto`` vectorizes when a trial forward pass of the stacked block succeeds, else trains one model at a time
        (with a one-line warning); the results agree either way.
    device : str
        ``"cpu"`` or ``"cuda"`` (where torch sees a GPU).
    standardize : bool
        Z-score the features with the full training split's statistics first (every model sees the same map).
    augment : bool
        Data augmentation of image inputs, drawn per model and per step from the model's own generator: a random
        crop of the image zero-padded by ``crop_padding`` pixels, and a horizontal flip with probability 1/2 where
        ``flip`` allows it.
    crop_padding : int >= 0 or "auto"
        ``auto``: one eighth of the image's height, at least 1 pixel.
    flip : bool or "auto"
        Horizontal flips in augmentation and queries; ``auto``: for colour images (3 channels) only, since a
        flipped digit is another symbol (set True for data whose classes are mirror-symmetric, e.g. clothing).
    query_augment : bool
        LiRA's augmented queries (Carlini et al. 2022, §VI): every signal is the mean over the original image, its
        flip (where allowed) and two shifted copies (``correct`` stays that of the original image).
    """

    factory: str
    factory_sha256: str = ""
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "constant"
    vectorize: Any = "auto"
    device: str = "cpu"
    standardize: bool = True
    augment: bool = False
    crop_padding: Any = "auto"
    flip: Any = "auto"
    query_augment: bool = False
    callable_: Any = field(default=None, compare=False, repr=False)

    name = "torch-module"

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "epochs", check_int("epochs", self.epochs, min_value=1))
        set_(self, "batch_size", check_int("batch_size", self.batch_size, min_value=1))
        if self.optimizer not in OPTIMIZERS:
            raise MemlensInputError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}",
                                    param="optimizer")
        set_(self, "lr", check_float("lr", self.lr, min_value=0.0, min_inclusive=False))
        set_(self, "momentum", check_float("momentum", self.momentum, min_value=0.0, max_value=1.0,
                                           max_inclusive=False))
        set_(self, "weight_decay", check_float("weight_decay", self.weight_decay, min_value=0.0))
        if self.schedule not in SCHEDULES:
            raise MemlensInputError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.schedule!r}",
                                    param="schedule")
        if self.vectorize not in ("auto", True, False):
            raise MemlensInputError(f"vectorize must be 'auto', True or False; got {self.vectorize!r}",
                                    param="vectorize")
        for flag in ("nesterov", "standardize"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise MemlensInputError(f"{flag} must be True or False; got {getattr(self, flag)!r}", param=flag)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise MemlensInputError("nesterov needs optimizer='sgd' with momentum > 0; got "
                                    f"optimizer={self.optimizer!r}, momentum={self.momentum}", param="nesterov")
        for flag in ("augment", "query_augment"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise MemlensInputError(f"{flag} must be True or False; got {getattr(self, flag)!r}", param=flag)
        if self.crop_padding != "auto":
            set_(self, "crop_padding", check_int("crop_padding", self.crop_padding, min_value=0,
                                                 hint="(pixels of zero padding of the random crop, or 'auto')"))
        if self.flip not in ("auto", True, False):
            raise MemlensInputError(f"flip must be 'auto', True or False; got {self.flip!r}", param="flip")
        if not isinstance(self.device, str) or not self.device:
            raise MemlensInputError(f"device must be a torch device name such as 'cpu' or 'cuda'; got "
                                    f"{self.device!r}", param="device")

    def to_dict(self) -> dict:
        """JSON-serializable fields plus ``name`` (the callable itself is identified by ``factory`` and its hash)."""
        return config_dict(self)

    def make_factory(self) -> Callable:
        """The factory callable (loaded from ``factory`` when the configuration came from a spec)."""
        if self.callable_ is not None:
            return self.callable_
        return load_checked(self.factory, self.factory_sha256)


def TorchModule(factory, **settings) -> TorchModuleConfig:  # noqa: N802 - reads as the trainer it configures
    """A :class:`TorchModuleConfig` for ``train_population(..., model=TorchModule(factory, epochs=..., ...))``.

    ``factory`` is a callable ``factory(input_shape, n_classes) -> nn.Module`` or a spec ``PATH.py:FUNC`` /
    ``package.module:FUNC``; ``settings`` are the other fields of :class:`TorchModuleConfig`.
    """
    return user_config(TorchModuleConfig, "factory", factory, settings, model="torch-module")


def make_config(**fields) -> TorchModuleConfig:
    """The registry's ``make_config``: ``factory`` is required (a spec or a callable)."""
    return make_user_config(TorchModule, "factory", fields, model="torch-module",
                            how="a factory: pass --model PATH.py:FUNC (or TorchModule(factory, ...) in Python)")


# ---------------------------------------------------------------------------------------------- building
def _build(factory: Callable, input_shape: tuple, n_classes: int, seed: int, device):
    """Model ``factory(input_shape, n_classes)`` initialized from ``seed`` (the global RNG is restored)."""
    import torch  # heavy: imported on first use
    from torch import nn  # heavy: imported on first use

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) % (2 ** 63))
        module = factory(tuple(input_shape), int(n_classes))
    if not isinstance(module, nn.Module):
        raise MemlensInputError(f"model: the factory must return a torch.nn.Module; got {type(module).__name__} "
                                "from factory(input_shape, n_classes)", param="model")
    if not any(p.requires_grad for p in module.parameters()):
        raise MemlensInputError(f"model: the module from the factory has no trainable parameters "
                                f"({type(module).__name__}); return a module with parameters", param="model")
    return module.to(device)


def _check_output(out, k: int, rows: int, n_classes: int) -> None:
    if tuple(out.shape) != (k, rows, n_classes):
        raise MemlensInputError(f"model: the module must map a batch (rows, *input_shape) to logits (rows, "
                                f"n_classes={n_classes}); got output shape {tuple(out.shape)[1:]} for {rows} rows",
                                param="model")


def _probe(module, x, config: TorchModuleConfig, n_classes: int) -> None:
    """Run ``module`` on the rows ``x`` (eval mode, no gradients: no BatchNorm statistic changes) and refuse an
    exception or logits that are not ``(rows, n_classes)``, naming the factory."""
    import torch  # heavy: imported on first use

    was_training = module.training
    try:
        with torch.no_grad():
            out = module.eval()(x)
    except Exception as exc:  # noqa: BLE001 - the user's module failed on a batch of the data
        raise MemlensInputError(f"model: the module from {config.factory!r} fails on a batch of shape "
                                f"{tuple(x.shape)} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); it must "
                                "map (rows, *input_shape) to logits (rows, n_classes)", param="model") from None
    finally:
        module.train(was_training)
    _check_output(out[None], 1, x.shape[0], n_classes)


def _streams(masks: np.ndarray, seeds: np.ndarray, epochs: int, batch_size: int) -> tuple[list, int]:
    """Per model, its minibatches (index arrays into the rows) for every step, and the number of steps.

    Model ``k`` shuffles its own rows every epoch with ``numpy.random.default_rng(seeds[k])`` and cuts the order
    into batches of ``batch_size`` (the last smaller). All models run ``max`` steps; a model whose batches are
    exhausted (fewer rows) takes no step for the remaining ones.
    """
    out = []
    for k in range(masks.shape[0]):
        rows = np.flatnonzero(masks[k])
        rng = np.random.default_rng(np.random.SeedSequence([int(seeds[k]), 0x6D6231]))
        batches = []
        for _ in range(epochs):
            order = rows[rng.permutation(rows.size)]
            batches += [order[i:i + batch_size] for i in range(0, order.size, batch_size)]
        out.append(batches)
    return out, max(len(b) for b in out)


def _augmentation(config: TorchModuleConfig, input_shape: tuple) -> tuple[int, bool] | None:
    """``(crop_padding, flip)`` of the configuration for images of ``input_shape``; None without augmentation."""
    if not (config.augment or config.query_augment):
        return None
    if len(input_shape) != 3:
        raise MemlensInputError(f"augment and query_augment need image inputs (C, H, W); got input_shape "
                                f"{tuple(input_shape)}: give the dataset an image_shape, or drop them", param="augment")
    pad = max(1, input_shape[1] // 8) if config.crop_padding == "auto" else int(config.crop_padding)
    flip = input_shape[0] == 3 if config.flip == "auto" else bool(config.flip)
    return pad, flip


def _augment_draws(streams: list, seeds, pad: int, flip: bool) -> list:
    """Per model and step, the crop offsets ``(dy, dx)`` in ``[0, 2 pad]`` and flips of every image of its batch,
    from the model's own generator (a stream apart from its minibatch order)."""
    out = []
    for batches, seed in zip(streams, seeds):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x617567]))
        per = []
        for b in batches:
            shifts = rng.integers(0, 2 * pad + 1, size=(len(b), 2))
            flips = rng.random(len(b)) < 0.5 if flip else np.zeros(len(b), dtype=bool)
            per.append((shifts[:, 0], shifts[:, 1], flips))
        out.append(per)
    return out


def shift_flip(x, dy, dx, flip, pad: int):
    """Images ``x`` (..., B, C, H, W) zero-padded by ``pad``, cropped back to (H, W) at offsets ``dy, dx`` (..., B)
    in ``[0, 2 pad]`` (``pad`` each: no shift), and mirrored where ``flip`` (..., B) is True."""
    import torch  # heavy: imported on first use
    from torch.nn import functional as F  # heavy: imported on first use

    H, W = x.shape[-2], x.shape[-1]
    dy = torch.as_tensor(dy, device=x.device)
    dx = torch.as_tensor(dx, device=x.device)
    flip = torch.as_tensor(flip, device=x.device)
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad))
        lead = x.shape[:-2]
        rows = (dy[..., None] + torch.arange(H, device=x.device))[..., None, :, None]          # (..., B, 1, H, 1)
        xr = torch.gather(xp, -2, rows.expand(*lead, H, W + 2 * pad))
        cols = (dx[..., None] + torch.arange(W, device=x.device))[..., None, None, :]          # (..., B, 1, 1, W)
        x = torch.gather(xr, -1, cols.expand(*lead, H, W))
    return torch.where(flip[..., None, None, None], x.flip(-1), x)


def _augmented(xb, draws, rows, t, pad):
    """The batch ``xb`` (K, B, ...) of the models ``rows`` at step ``t``, augmented with their draws."""
    if draws is None:
        return xb
    dy = np.stack([draws[j][t][0] for j in rows])
    dx = np.stack([draws[j][t][1] for j in rows])
    fl = np.stack([draws[j][t][2] for j in rows])
    return shift_flip(xb, dy, dx, fl, pad)


def _lr_factor(schedule: str, step: int, n_steps: int) -> float:
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(1, n_steps)))
    if schedule == "linear":
        return 1.0 - step / max(1, n_steps)
    return 1.0


def _optimizer(config: TorchModuleConfig, params):
    import torch  # heavy: imported on first use

    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


# ---------------------------------------------------------------------------------------------- training
@dataclass(frozen=True, eq=False)
class ModuleFit:
    """A trained block of modules: the stacked state and how to evaluate it.

    Attributes
    ----------
    base : nn.Module
        The architecture (on the ``meta`` device when vectorized; model 0 otherwise).
    params, buffers : dict of str to Tensor, each (k, ...)
        Stacked parameters and buffers of the ``k`` models.
    vectorized : bool
    n_steps : ndarray of int, shape (k,)
        Optimizer steps each model took.
    final_loss : ndarray, shape (k,)
        Mean minibatch loss of each model over its last epoch.
    """

    base: Any
    params: dict
    buffers: dict
    vectorized: bool
    n_steps: np.ndarray
    final_loss: np.ndarray
    input_shape: tuple
    device: Any
    models: tuple = ()

    def logits(self, X, *, query=None) -> np.ndarray:
        """``(k, rows, n_classes)`` logits of every model on rows ``X`` (flat or shaped), in eval mode; ``query``
        ``(dy, dx, flip, pad)`` shifts and mirrors every image first (LiRA's augmented queries)."""
        return module_logits(self, X, query=query)


def _forward_fn(base):
    from torch.func import functional_call  # heavy: imported on first use

    def f(p, b, x):
        return functional_call(base, (p, b), (x,))
    return f


def fit_module_block(config: TorchModuleConfig, X, y, *, masks, seeds, n_classes: int, input_shape: tuple,
                     model_offset: int = 0) -> ModuleFit:
    """Train one module per mask row, the rows of a block together (see the module docstring).

    Parameters
    ----------
    config : TorchModuleConfig
    X : ndarray, shape (n, n_features), float32
        Training rows (reshaped to ``(n, *input_shape)``).
    y : ndarray of int, shape (n,)
    masks : ndarray of bool, shape (k, n)
        Each model's training rows; every row needs one.
    seeds : ndarray of int, shape (k,)
        Per-model seeds: initialization (``torch.manual_seed``) and minibatch order.
    n_classes : int
    input_shape : tuple
    model_offset : int
        Global index of the first model (named in errors).
    """
    import torch  # heavy: imported on first use
    from torch import nn  # heavy: imported on first use
    from torch.func import stack_module_state, vmap  # heavy: imported on first use
    from torch.nn import functional as F  # heavy: imported on first use

    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MemlensInputError("device is 'cuda' but torch sees no GPU here; use device='cpu'", param="device")
    factory = config.make_factory()
    k, n = masks.shape
    Xt = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32)).reshape(n, *input_shape).to(device)
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64)).to(device)
    models = [_build(factory, input_shape, n_classes, seeds[j], device) for j in range(k)]
    streams, n_steps = _streams(masks, seeds, config.epochs, config.batch_size)
    aug = _augmentation(config, input_shape)
    draws = _augment_draws(streams, seeds, *aug) if aug is not None and config.augment else None
    pad = aug[0] if aug is not None else 0
    _probe(models[0], Xt[: min(2, n)], config, n_classes)   # the output's shape, before any training
    vectorize = config.vectorize
    if vectorize is True:
        ok, reason = _vectorizable(models, Xt[: min(2, n)], n_classes)
        if not ok:
            raise MemlensInputError(f"model {config.factory!r} cannot be vectorized ({reason}); use "
                                    "vectorize='auto' or False to train one model at a time", param="vectorize")
    elif vectorize == "auto":
        vectorize, reason = _vectorizable(models, Xt[: min(2, n)], n_classes)
        if not vectorize:
            warn(f"model {config.factory!r} cannot be vectorized ({reason}); training one model at a time "
                 "(vectorize=False), with the same results")
        elif k > 1:
            vectorize = _vectorizing_pays(models, Xt, yt, streams, n_classes)
    for m in models:
        m.train()
    steps = np.zeros(k, dtype=np.int64)
    last_losses = [[] for _ in range(k)]
    epoch_steps = [len(s) / config.epochs for s in streams]
    if vectorize:
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        base.train()
        leaves = list(params.values())
        opt = _optimizer(config, leaves)
        fwd = vmap(_forward_fn(base), in_dims=(0, 0, 0), randomness="different")
        for t in range(n_steps):
            active = [j for j in range(k) if t < len(streams[j])]
            for g in opt.param_groups:
                g["lr"] = config.lr * _lr_factor(config.schedule, t, n_steps)
            if len(active) < k or len({len(streams[j][t]) for j in range(k)}) > 1:
                # models that are done, or batches of other sizes: each active model on its own batch
                _step_subset(fwd, params, buffers, opt, active, streams, t, Xt, yt, n_classes, last_losses, steps,
                             epoch_steps, model_offset, draws, pad)
                continue
            b = len(streams[0][t])
            idx = torch.as_tensor(np.stack([streams[j][t] for j in range(k)])).to(device)
            out = fwd(params, buffers, _augmented(Xt[idx], draws, range(k), t, pad))
            _check_output(out, k, b, n_classes)
            losses = F.cross_entropy(out.reshape(-1, n_classes), yt[idx].reshape(-1),
                                     reduction="none").reshape(k, b).mean(1)
            _check_finite(losses, list(range(k)), t, model_offset)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            _record(losses, list(range(k)), t, last_losses, steps, epoch_steps)
        result_base = base
    else:
        for j, m in enumerate(models):
            opt = _optimizer(config, [p for p in m.parameters()])
            for t, batch in enumerate(streams[j]):
                for g in opt.param_groups:
                    g["lr"] = config.lr * _lr_factor(config.schedule, t, n_steps)
                idx = torch.as_tensor(batch).to(device)
                out = m(_augmented(Xt[idx][None], draws, [j], t, pad)[0])
                _check_output(out[None], 1, len(batch), n_classes)
                loss = F.cross_entropy(out, yt[idx])
                _check_finite(loss[None], [j], t, model_offset)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                _record(loss.detach()[None], [j], t, last_losses, steps, epoch_steps)
        params, buffers = stack_module_state(models)
        result_base = models[0]
    assert isinstance(result_base, nn.Module)
    final = np.array([float(np.mean(v)) if v else math.nan for v in last_losses])
    return ModuleFit(result_base, {n_: p.detach() for n_, p in params.items()}, dict(buffers), bool(vectorize),
                     steps, final, tuple(input_shape), device, () if vectorize else tuple(models))


def _step_subset(fwd, params, buffers, opt, active, streams, t, Xt, yt, n_classes, last_losses, steps,
                 epoch_steps, model_offset, draws=None, pad=0):
    """One step for the models in ``active`` whose batches may differ in size: each model's forward on its own
    batch (one vmap over a model axis of one), losses summed, one optimizer step. The gradients of the idle models
    are zero and masked out of the update by restoring their slices."""
    import torch  # heavy: imported on first use
    from torch.nn import functional as F  # heavy: imported on first use

    k = next(iter(params.values())).shape[0]
    idle = [j for j in range(k) if j not in active]
    saved = {name: p.detach()[idle].clone() for name, p in params.items()} if idle else {}
    saved_state = _optimizer_state_slices(opt, idle)
    losses, updated = [], []
    for j in active:
        idx = torch.as_tensor(streams[j][t]).to(Xt.device)
        pj = {name: p[j:j + 1] for name, p in params.items()}
        bj = {name: b[j:j + 1].clone() for name, b in buffers.items()}   # updated in place by the forward pass
        out = fwd(pj, bj, _augmented(Xt[idx][None], draws, [j], t, pad))
        _check_output(out, 1, idx.numel(), n_classes)
        losses.append(F.cross_entropy(out[0], yt[idx]))
        updated.append((j, bj))
    losses = torch.stack(losses)
    _check_finite(losses, active, t, model_offset)
    opt.zero_grad(set_to_none=False)
    losses.sum().backward()
    opt.step()
    with torch.no_grad():
        for j, bj in updated:
            for name, b in buffers.items():
                b[j:j + 1].copy_(bj[name])
    if idle:
        with torch.no_grad():
            for name, p in params.items():
                p[idle] = saved[name]
        _restore_optimizer_state(opt, idle, saved_state)
    _record(losses, active, t, last_losses, steps, epoch_steps)


def _optimizer_state_slices(opt, idle):
    if not idle:
        return None
    return {id(p): {key: v[idle].clone() for key, v in st.items() if hasattr(v, "dim") and v.dim() > 0}
            for p, st in opt.state.items()}


def _restore_optimizer_state(opt, idle, saved):
    import torch  # heavy: imported on first use

    with torch.no_grad():
        for p, st in opt.state.items():
            for key, v in saved.get(id(p), {}).items():
                st[key][idle] = v


def _check_finite(losses, rows, t, model_offset):
    import torch  # heavy: imported on first use

    bad = ~torch.isfinite(losses.detach())
    if bool(bad.any()):
        j = rows[int(torch.nonzero(bad)[0])]
        raise MemlensTrainingError(f"model {model_offset + j} has a non-finite training loss at step {t}: lower lr "
                                   "(--model-param lr=...) or check the data; finished shards are kept")


def _record(losses, rows, t, last_losses, steps, epoch_steps):
    """Count the step of each model in ``rows`` and keep its losses of the last epoch (for ``final_loss``)."""
    vals = losses.detach().cpu().numpy()
    for v, j in zip(vals, rows):
        steps[j] += 1
        last_losses[j].append(float(v))
        keep = max(1, int(round(epoch_steps[j])))
        if len(last_losses[j]) > keep:
            del last_losses[j][0]


def _vectorizable(models, x, n_classes) -> tuple[bool, str]:
    """Whether a trial forward of the stacked block runs under ``vmap`` (and its reason when it does not)."""
    import torch  # heavy: imported on first use
    from torch.func import stack_module_state, vmap  # heavy: imported on first use

    trial = [copy.deepcopy(m) for m in models[:2]]
    params, buffers = stack_module_state(trial)
    base = copy.deepcopy(trial[0]).to("meta")
    try:
        with torch.no_grad():
            vmap(_forward_fn(base), in_dims=(0, 0, 0), randomness="different")(
                params, buffers, x[None].expand(len(trial), *x.shape))
    except Exception as exc:  # noqa: BLE001 - any failure means: train one model at a time
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return True, ""


def _vectorizing_pays(models, Xt, yt, streams, n_classes) -> bool:
    """Whether one forward and backward pass of the stacked block beats the same pass model by model (timed on
    copies, the second of two repeats; no optimizer step). On CPUs a vmapped convolution becomes a grouped one,
    which is often slower than the per-model loop; small dense modules gain from the batched products."""
    import torch  # heavy: imported on first use
    from torch.func import stack_module_state, vmap  # heavy: imported on first use
    from torch.nn import functional as F  # heavy: imported on first use

    b = min(len(s[0]) for s in streams)
    idx = torch.as_tensor(np.stack([s[0][:b] for s in streams])).to(Xt.device)
    trial = [copy.deepcopy(m) for m in models]
    params, buffers = stack_module_state(trial)
    base = copy.deepcopy(trial[0]).to("meta")
    fwd = vmap(_forward_fn(base), in_dims=(0, 0, 0), randomness="different")

    def stacked():
        out = fwd(params, buffers, Xt[idx])
        F.cross_entropy(out.reshape(-1, n_classes), yt[idx].reshape(-1)).backward()

    def loop():
        for j, m in enumerate(trial):
            F.cross_entropy(m(Xt[idx[j]]), yt[idx[j]]).backward()

    times = {}
    for name, fn in (("stacked", stacked), ("loop", loop)):
        for _ in range(2):
            t0 = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - t0
    return times["stacked"] < times["loop"]


def module_logits(fit: ModuleFit, X, *, rows: int = _EVAL_ROWS, query=None) -> np.ndarray:
    """``(k, n, n_classes)`` logits of every model of ``fit`` on ``X`` (eval mode: BatchNorm uses each model's
    running statistics, dropout is off), ``rows`` rows at a time."""
    import torch  # heavy: imported on first use
    from torch.func import vmap  # heavy: imported on first use

    X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
    outs = []

    def rows_of(r0):
        xb = torch.as_tensor(X[r0:r0 + rows]).reshape(-1, *fit.input_shape).to(fit.device)
        if query is not None:
            dy, dx, fl, pad = query
            m = xb.shape[0]
            xb = shift_flip(xb, np.full(m, dy), np.full(m, dx), np.full(m, fl), pad)
        return xb

    with torch.no_grad():
        if fit.vectorized:
            base = fit.base
            base.eval()
            fwd = vmap(_forward_fn(base), in_dims=(0, 0, None))
            for r0 in range(0, n, rows):
                outs.append(fwd(fit.params, fit.buffers, rows_of(r0)).double().cpu().numpy())
            base.train()
        else:
            for m in fit.models:
                m.eval()
            for r0 in range(0, n, rows):
                xb = rows_of(r0)
                outs.append(np.stack([m(xb).double().cpu().numpy() for m in fit.models]))
            for m in fit.models:
                m.train()
    return np.concatenate(outs, axis=1)


def preflight(config: TorchModuleConfig, dataset) -> None:
    """Build one model from the factory and run it on two rows of ``dataset``: a missing file or function, a
    factory that returns no module, a module without parameters or with logits of the wrong shape, and augmentation
    of non-images are refused here, before a run directory is created."""
    import torch  # heavy: imported on first use

    shape = input_shape_of(dataset)
    _augmentation(config, shape)
    model = _build(config.make_factory(), shape, dataset.n_classes, 0, "cpu")
    x = torch.as_tensor(np.ascontiguousarray(dataset.X_train[:2], dtype=np.float32)).reshape(-1, *shape)
    _probe(model, x, config, dataset.n_classes)


def fit_full_module(config: TorchModuleConfig, X, y, *, n_classes: int, input_shape: tuple, seed: int):
    """One module trained on every row ``X`` by the population's trainer (its configuration, augmentation and
    seed handling), returned as ``(fit, module)``: the :class:`ModuleFit` and a real ``nn.Module`` holding the
    trained state (what per-example gradients, hooks and representations need)."""
    fit = fit_module_block(config, X, y, masks=np.ones((1, X.shape[0]), dtype=bool), seeds=np.array([seed]),
                           n_classes=n_classes, input_shape=input_shape)
    if fit.vectorized:
        params, buffers = {k: v[0] for k, v in fit.params.items()}, {k: v[0] for k, v in fit.buffers.items()}
        module = _build(config.make_factory(), input_shape, n_classes, seed, "cpu")   # model 0's state, loaded
        module.load_state_dict({**params, **buffers})
    else:
        module = fit.models[0]
    return fit, module


def penultimate_features(module, X, *, input_shape: tuple, rows: int = 1024) -> np.ndarray:
    """``(n, h)`` activations entering the module's last ``nn.Linear`` layer (its penultimate representation) on rows
    ``X (n, ...)``, in eval mode; refused when the module has no ``nn.Linear``."""
    import torch  # heavy: imported on first use

    linear = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    if not linear:
        raise MemlensInputError("model: the module has no nn.Linear layer, so it has no penultimate representation "
                                "to cluster; use long_tail_space='features'", param="long_tail_space")
    seen = []
    hook = linear[-1].register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().reshape(
        inp[0].shape[0], -1).numpy().copy()))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            for r0 in range(0, X.shape[0], rows):
                module(torch.as_tensor(np.ascontiguousarray(X[r0:r0 + rows], dtype=np.float32)).reshape(
                    -1, *input_shape))
    finally:
        hook.remove()
        module.train(was_training)
    return np.concatenate(seen).astype(np.float64)


def fit_block(config, X, y, X_test, y_test, *, n_classes, masks, seeds, shared, input_shape=None, first_model=0):
    """The registry's ``fit_block``: train the block, return a function from rows to its logits."""
    if input_shape is None:
        input_shape = (X.shape[1],)
    with limit_threads(1):
        fit = fit_module_block(config, X, y, masks=masks, seeds=seeds, n_classes=n_classes, input_shape=input_shape,
                               model_offset=first_model)
        diag = {"n_iter": fit.n_steps, "final_loss": fit.final_loss,
                "vectorized": np.full(fit.n_steps.shape, fit.vectorized)}
        if not config.query_augment:
            return BlockFit(fit.logits, None, diag)
        queries = augmented_queries(*_augmentation(config, input_shape))
        signals = {split: query_signals(fit, Xs, ys, queries)
                   for split, (Xs, ys) in (("train", (X, y)), ("test", (X_test, y_test)))}
    return BlockFit(fit.logits, signals, diag)   # logits of the plain inputs still serve label-only queries


def augmented_queries(pad: int, flip: bool) -> list:
    """LiRA's queries of an image: the original, its mirror image (where flips are allowed) and the image shifted by
    ``pad`` pixels up-left and down-right, as ``(dy, dx, flip, pad)``."""
    out = [(pad, pad, False, pad)]
    if flip:
        out.append((pad, pad, True, pad))
    if pad:
        out += [(0, 0, False, pad), (2 * pad, 2 * pad, False, pad)]
    return out


def query_signals(fit: ModuleFit, X, y, queries, *, rows: int = 4096) -> dict:
    """The standard signals averaged over augmented queries (Carlini et al. 2022, §VI): ``logit`` and ``loss`` are
    the means over the queries; ``correct`` and ``pred`` are the original image's. Shape ``(k, n)`` each, float32."""
    n = X.shape[0]
    k = fit.n_steps.shape[0]
    out = {name: np.empty((k, n), dtype=np.float32) for name in SIGNALS}
    for r0 in range(0, n, rows):
        per = [signals_from_logits(fit.logits(X[r0:r0 + rows], query=q), y[r0:r0 + rows]) for q in queries]
        out["logit"][:, r0:r0 + rows] = np.mean([p["logit"] for p in per], axis=0)
        out["loss"][:, r0:r0 + rows] = np.mean([p["loss"] for p in per], axis=0)
        out["correct"][:, r0:r0 + rows] = per[0]["correct"]
        out["pred"][:, r0:r0 + rows] = per[0]["pred"]
    return out
