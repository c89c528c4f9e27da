"""Training the small autoregressive (next-token) model of :mod:`memlens.models.char_lm` (Adam or SGD with
momentum, warm-up and cosine decay, gradient clipping, loss on chosen target tokens).

The model, its per-sequence signals and decoding live in :mod:`memlens.models.char_lm`; their names are re-exported
here, where they were first defined. Everything random takes ``seed``; the global torch RNG is left as it was.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._random import as_generator
from .._threads import limit_threads
from .._validation import MemlensInputError, check_float, check_int

__all__ = [
    "AutoregressiveConfig",
    "AutoregressiveModel",
    "AutoregressiveRun",
    "make_autoregressive_model",
    "train_autoregressive",
    "token_logprobs",
    "sequence_signals",
    "sequence_log_likelihood",
    "token_accuracy",
    "next_token_logprobs",
    "argmax_predictions",
    "greedy_continue",
    "save_autoregressive_model",
    "load_autoregressive_model",
]

from ..models.char_lm import (  # noqa: F401  (re-exported)
    AutoregressiveConfig,
    AutoregressiveModel,
    _check_context,
    _check_lengths,
    _check_tokens,
    _seed_int,
    _target_mask,
    argmax_predictions,
    greedy_continue,
    load_autoregressive_model,
    make_autoregressive_model,
    next_token_logprobs,
    save_autoregressive_model,
    sequence_log_likelihood,
    sequence_signals,
    token_accuracy,
    token_logprobs,
)

# ---------------------------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class AutoregressiveRun:
    """A trained model and its training record.

    Attributes
    ----------
    model : AutoregressiveModel
        In eval mode.
    config : AutoregressiveConfig
    hyperparameters : dict
        Optimizer, learning rate, steps, batch size, seed, ...
    history : tuple of dict
        One entry per checkpoint (step 0, every ``eval_every`` steps, the last step): ``step``, ``train_loss``
        (mean minibatch loss since the previous checkpoint, NaN at step 0) and what the callback returned.
    seconds : float
        Wall time of training, callbacks included.
    """

    model: AutoregressiveModel
    config: AutoregressiveConfig
    hyperparameters: dict
    history: tuple
    seconds: float

    @property
    def n_parameters(self) -> int:
        return self.model.n_parameters

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one recorded metric across checkpoints (entries lacking it are skipped)."""
        rows = [(h["step"], h[key]) for h in self.history if key in h]
        steps = np.array([r[0] for r in rows], dtype=np.int64)
        return steps, np.array([r[1] for r in rows], dtype=np.float64)


def train_autoregressive(tokens, *, config: AutoregressiveConfig | None = None,
                         model: AutoregressiveModel | None = None, lengths=None, target_mask=None,
                         steps: int = 1000, batch_size: int = 64, lr: float = 3e-3, optimizer: str = "adam",
                         momentum: float = 0.9, weight_decay: float = 0.0, grad_clip: float | None = 1.0,
                         lr_schedule: str = "constant", warmup_steps: int = 0, seed=0,
                         callback: Callable | None = None, eval_every: int = 0,
                         threads: int = 1) -> AutoregressiveRun:
    """Train a next-token model by minibatch cross-entropy.

    Parameters
    ----------
    tokens : array of int, shape (n_sequences, T)
        Training sequences (right-padded with any valid id where ``lengths`` says they are shorter).
    config : AutoregressiveConfig, optional
        Shape of a new model (initialized from ``seed``); or pass ``model`` to continue training one.
    lengths : array of int, shape (n_sequences,), optional
        True length of each sequence; targets beyond it are ignored.
    target_mask : bool array, shape (T−1,) or (n_sequences, T−1), optional
        Which predicted tokens (``tokens[:, 1:]``) enter the loss, e.g. only the last one; default all.
    steps, batch_size : int
        Optimizer steps; minibatches are drawn by reshuffling every epoch (full batch when
        ``batch_size >= n_sequences``).
    lr, optimizer, momentum, weight_decay : optimizer ``"adam"`` (Adam, or AdamW-style decoupled decay when
        ``weight_decay > 0``) or ``"sgd"`` (with ``momentum``, Nesterov).
    grad_clip : float or None
        Clip the global gradient norm.
    lr_schedule : {"constant", "cosine"}; warmup_steps : int
        Linear warmup, then constant or cosine decay to 0 at ``steps``.
    seed : int or numpy.random.Generator
        Initialization, minibatch order and dropout.
    callback : callable ``callback(step, model) -> dict | None``, optional
        Called at step 0, every ``eval_every`` steps and after the last step, with the model in eval mode; its
        dict is recorded in ``history``.
    eval_every : int
        Checkpoint spacing in steps (0: only at the start and the end).
    threads : int
        Torch and BLAS threads during training (one per process by default).

    Returns
    -------
    AutoregressiveRun
    """
    if (config is None) == (model is None):
        raise MemlensInputError("pass exactly one of config= (a new model) or model= (continue training); got "
                                f"config={'set' if config is not None else None}, "
                                f"model={'set' if model is not None else None}")
    vocab = (config or model.config).vocab_size
    x = _check_tokens(tokens, vocab, min_len=2)
    n, t = x.shape
    if n == 0:
        raise MemlensInputError("tokens must hold at least one sequence; got 0")
    lengths = _check_lengths(lengths, n, t)
    if lengths.max() < 2:
        raise MemlensInputError("lengths must allow at least one predicted token (a length >= 2); got all 1")
    mask = _target_mask(lengths, t, target_mask)
    if not mask.any():
        raise MemlensInputError("target_mask selects no predicted token; select at least one position")
    steps = check_int("steps", steps, min_value=0)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    eval_every = check_int("eval_every", eval_every, min_value=0)
    warmup_steps = check_int("warmup_steps", warmup_steps, min_value=0)
    threads = check_int("threads", threads, min_value=1)
    if optimizer not in ("adam", "sgd"):
        raise MemlensInputError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}")
    if lr_schedule not in ("constant", "cosine"):
        raise MemlensInputError(f"lr_schedule must be 'constant' or 'cosine'; got {lr_schedule!r}")
    rng = as_generator(seed)
    if model is None:
        model = make_autoregressive_model(config, seed=rng)
    config = model.config
    if config.arch == "transformer":
        _check_context(model, t)
    hyper = {"steps": steps, "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "momentum": momentum,
             "weight_decay": weight_decay, "grad_clip": grad_clip, "lr_schedule": lr_schedule,
             "warmup_steps": warmup_steps, "seed": seed if isinstance(seed, int) else None,
             "n_sequences": n, "length": t, "n_parameters": model.n_parameters}

    x_t, m_t = torch.from_numpy(x), torch.from_numpy(mask)
    if optimizer == "adam":
        opt = (torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay) if weight_decay > 0
               else torch.optim.Adam(model.parameters(), lr=lr))
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0,
                              weight_decay=weight_decay)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / max(1, steps - warmup_steps)))
        return 1.0

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    history, losses = [], []

    def checkpoint(step: int):
        entry = {"step": step, "train_loss": float(np.mean(losses)) if losses else float("nan")}
        losses.clear()
        if callback is not None:
            model.eval()
            extra = callback(step, model)
            model.train()
            if extra:
                entry.update(extra)
        history.append(entry)

    order, pos = np.empty(0, dtype=np.int64), 0
    t0 = time.perf_counter()
    with limit_threads(threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_int(rng))
        model.train()
        checkpoint(0)
        for step in range(1, steps + 1):
            if batch_size >= n:
                idx = np.arange(n)
            else:
                if pos + batch_size > order.size:
                    order, pos = rng.permutation(n), 0
                idx, pos = order[pos:pos + batch_size], pos + batch_size
            xb, mb = x_t[idx], m_t[idx]
            logits = model(xb[:, :-1])
            ce = F.cross_entropy(logits.reshape(-1, vocab), xb[:, 1:].reshape(-1), reduction="none")
            w = mb.reshape(-1).to(ce.dtype)
            loss = (ce * w).sum() / w.sum().clamp_min(1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if step == steps or (eval_every and step % eval_every == 0):
                checkpoint(step)
        model.eval()
    return AutoregressiveRun(model=model, config=config, hyperparameters=hyper, history=tuple(history),
                             seconds=time.perf_counter() - t0)
