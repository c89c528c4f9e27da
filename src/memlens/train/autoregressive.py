"""A small autoregressive (next-token) model in torch, its trainer, and per-sequence signals.

The model is a token-level language model: a causal transformer (pre-LayerNorm blocks, learned positions) or a
GRU, with vocabulary size, context length, width and depth as parameters. ``logits[:, t]`` is the distribution of
``tokens[:, t + 1]`` given ``tokens[:, :t + 1]``; the first token is never predicted, so prepend a
beginning-of-sequence token when the first symbol matters.

Signals are functions from a batch of sequences ``(n, T)`` (optionally ragged through ``lengths``) to per-sequence
arrays ``(n,)`` — ``log_likelihood``, ``loss``, ``token_accuracy`` — so that a population of models gives the
``(n_models, n_sequences)`` signal arrays of :class:`memlens.Population` by stacking. Generation is greedy.
Everything random takes ``seed``; the global torch RNG is left as it was.
"""
from __future__ import annotations

import io
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._random import as_generator
from .._threads import limit_threads
from .._validation import MemlensInputError, check_float, check_int, warn

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

_ARCHS = ("transformer", "gru")


@dataclass(frozen=True)
class AutoregressiveConfig:
    """Shape of an autoregressive model.

    Parameters
    ----------
    vocab_size : int
        Number of token ids ``[0, vocab_size)``.
    context_length : int
        Longest sequence the model reads (positions of the transformer; a limit checked for the GRU too).
    width : int
        Embedding and hidden size.
    depth : int
        Transformer blocks or stacked GRU layers.
    arch : {"transformer", "gru"}
    n_heads : int
        Attention heads (transformer; must divide ``width``).
    mlp_ratio : int
        Hidden size of each block's MLP as a multiple of ``width``.
    dropout : float
        Dropout on embeddings, attention output and MLP output (0 for memorization studies).
    """

    vocab_size: int
    context_length: int
    width: int = 64
    depth: int = 2
    arch: str = "transformer"
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0

    def __post_init__(self):
        check_int("vocab_size", self.vocab_size, min_value=2)
        check_int("context_length", self.context_length, min_value=1)
        check_int("width", self.width, min_value=1)
        check_int("depth", self.depth, min_value=1)
        check_int("n_heads", self.n_heads, min_value=1)
        check_int("mlp_ratio", self.mlp_ratio, min_value=1)
        check_float("dropout", self.dropout, min_value=0.0, max_value=1.0, max_inclusive=False)
        if self.arch not in _ARCHS:
            raise MemlensInputError(f"arch must be one of {_ARCHS}; got {self.arch!r}")
        if self.arch == "transformer" and self.width % self.n_heads:
            raise MemlensInputError(f"width must be divisible by n_heads={self.n_heads} for the transformer; "
                                    f"got width={self.width} (pick n_heads dividing it)")

    def to_dict(self) -> dict:
        return asdict(self)


class _Block(nn.Module):
    """Pre-LayerNorm transformer block: causal multi-head self-attention and a GELU MLP."""

    def __init__(self, cfg: AutoregressiveConfig):
        super().__init__()
        self.n_heads, self.dropout = cfg.n_heads, cfg.dropout
        self.ln1, self.ln2 = nn.LayerNorm(cfg.width), nn.LayerNorm(cfg.width)
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width), nn.GELU(),
                                 nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width), nn.Dropout(cfg.dropout))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, h):
        b, t, w = h.shape
        q, k, v = self.qkv(self.ln1(h)).view(b, t, 3, self.n_heads, w // self.n_heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        h = h + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, w)))
        return h + self.mlp(self.ln2(h))


class AutoregressiveModel(nn.Module):
    """Token-level causal language model; ``forward(tokens (B, T)) -> logits (B, T, vocab_size)``."""

    def __init__(self, config: AutoregressiveConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.width)
        self.drop = nn.Dropout(config.dropout)
        if config.arch == "transformer":
            self.pos = nn.Embedding(config.context_length, config.width)
            self.blocks = nn.ModuleList([_Block(config) for _ in range(config.depth)])
        else:
            self.rnn = nn.GRU(config.width, config.width, num_layers=config.depth, batch_first=True,
                              dropout=config.dropout if config.depth > 1 else 0.0)
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        if self.config.arch == "transformer":
            h = self.drop(h + self.pos(torch.arange(tokens.shape[1], device=tokens.device)))
            for block in self.blocks:
                h = block(h)
        else:
            h, _ = self.rnn(self.drop(h))
        return self.head(self.norm(h))

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _seed_int(rng: np.random.Generator) -> int:
    return int(rng.integers(2**62))


def make_autoregressive_model(config: AutoregressiveConfig, *, seed=0) -> AutoregressiveModel:
    """A freshly initialized model (PyTorch default initialization, drawn from ``seed``; the global RNG is kept)."""
    if not isinstance(config, AutoregressiveConfig):
        raise MemlensInputError(f"config must be an AutoregressiveConfig; got {type(config).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_int(as_generator(seed)))
        return AutoregressiveModel(config)


# ---------------------------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------------------------

def _check_tokens(tokens, vocab_size: int, *, name: str = "tokens", min_len: int = 1) -> np.ndarray:
    arr = np.asarray(tokens)
    if arr.ndim != 2:
        raise MemlensInputError(f"{name} must be a 2-d integer array (n_sequences, length); got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise MemlensInputError(f"{name} must hold integer token ids; got dtype {arr.dtype}")
    if arr.shape[1] < min_len:
        raise MemlensInputError(f"{name} must have at least {min_len} token(s) per sequence; got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise MemlensInputError(f"{name} must lie in [0, vocab_size={vocab_size}); got range "
                                f"[{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64, copy=False)


def _check_lengths(lengths, n: int, t: int) -> np.ndarray:
    if lengths is None:
        return np.full(n, t, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or (lengths.size and not np.issubdtype(lengths.dtype, np.integer)):
        raise MemlensInputError(f"lengths must be an integer array of shape ({n},); got shape {lengths.shape}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > t):
        raise MemlensInputError(f"lengths must lie in [1, {t}] (the padded length); got range "
                                f"[{lengths.min()}, {lengths.max()}]")
    return lengths.astype(np.int64)


def _target_mask(lengths: np.ndarray, t: int, target_mask) -> np.ndarray:
    """``(n, T−1)`` bool: target ``t+1`` is inside the sequence and selected by ``target_mask``."""
    valid = np.arange(1, t)[None, :] < lengths[:, None]
    if target_mask is None:
        return valid
    sel = np.asarray(target_mask, dtype=bool)
    try:
        sel = np.broadcast_to(sel, valid.shape)
    except ValueError:
        raise MemlensInputError(f"target_mask must have shape ({t - 1},) or ({len(lengths)}, {t - 1}) (one entry per "
                                f"predicted token); got {np.shape(target_mask)}") from None
    return valid & sel


def _check_context(model: AutoregressiveModel, t: int, name: str = "tokens") -> None:
    if t > model.config.context_length:
        raise MemlensInputError(f"{name} has length {t} > context_length={model.config.context_length}; "
                                "build the model with a longer context_length or cut the sequences")


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


# ---------------------------------------------------------------------------------------------------------------
# per-sequence signals and generation
# ---------------------------------------------------------------------------------------------------------------

def _forward_chunks(model: AutoregressiveModel, x: np.ndarray, batch_size: int, fn):
    """Apply ``fn(logits, chunk_slice)`` to the model's logits chunk by chunk, in eval mode, without gradients."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for lo in range(0, x.shape[0], batch_size):
                sl = slice(lo, lo + batch_size)
                fn(model(torch.from_numpy(np.ascontiguousarray(x[sl]))), sl)
    finally:
        model.train(was_training)


def token_logprobs(model: AutoregressiveModel, tokens, *, lengths=None, batch_size: int = 512) -> np.ndarray:
    """Log-probability (nats) of every token given the tokens before it.

    Parameters
    ----------
    tokens : array of int, shape (n, T)
    lengths : array of int, shape (n,), optional
        True lengths of right-padded sequences.

    Returns
    -------
    ndarray of float64, shape (n, T−1)
        ``[i, t] = log p(tokens[i, t+1] | tokens[i, :t+1])``; NaN beyond each sequence's length.
    """
    x = _check_tokens(tokens, model.config.vocab_size, min_len=2)
    _check_context(model, x.shape[1])
    lengths = _check_lengths(lengths, x.shape[0], x.shape[1])
    out = np.empty((x.shape[0], x.shape[1] - 1), dtype=np.float64)

    def fn(logits, sl):
        lp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
        tgt = torch.from_numpy(x[sl, 1:])
        out[sl] = lp.gather(-1, tgt[..., None])[..., 0].numpy()

    _forward_chunks(model, x, check_int("batch_size", batch_size, min_value=1), fn)
    out[~_target_mask(lengths, x.shape[1], None)] = np.nan
    return out


def sequence_signals(model: AutoregressiveModel, tokens, *, lengths=None, target_mask=None,
                     batch_size: int = 512) -> dict[str, np.ndarray]:
    """Per-sequence signals of one model on a batch of sequences.

    Parameters
    ----------
    tokens : array of int, shape (n, T)
    lengths : array of int, shape (n,), optional
    target_mask : bool array, shape (T−1,) or (n, T−1), optional
        Which predicted tokens count (default: every token after the first, within the length).

    Returns
    -------
    dict of ndarray, each of shape (n,)
        ``log_likelihood``: sum of log-probabilities (nats) of the counted tokens (higher = better fit);
        ``loss``: mean cross-entropy per counted token (nats); ``token_accuracy``: fraction of counted tokens
        that are the argmax prediction. NaN (with a warning) for a sequence with no counted token. Stacking the
        dicts of ``K`` models gives :class:`memlens.Population` signals of shape ``(K, n)``.
    """
    x = _check_tokens(tokens, model.config.vocab_size, min_len=2)
    _check_context(model, x.shape[1])
    lengths = _check_lengths(lengths, x.shape[0], x.shape[1])
    mask = _target_mask(lengths, x.shape[1], target_mask)
    lp = np.empty(mask.shape, dtype=np.float64)
    hit = np.empty(mask.shape, dtype=bool)

    def fn(logits, sl):
        logits = logits[:, :-1].double()
        tgt = torch.from_numpy(x[sl, 1:])
        lp[sl] = torch.log_softmax(logits, dim=-1).gather(-1, tgt[..., None])[..., 0].numpy()
        hit[sl] = (logits.argmax(-1) == tgt).numpy()

    _forward_chunks(model, x, check_int("batch_size", batch_size, min_value=1), fn)
    count = mask.sum(axis=1)
    if np.any(count == 0):
        warn(f"{int(np.sum(count == 0))} sequence(s) have no counted token: their signals are NaN")
    with np.errstate(invalid="ignore", divide="ignore"):
        ll = np.where(mask, lp, 0.0).sum(axis=1)
        acc = np.where(mask, hit, False).sum(axis=1) / count
        ll = np.where(count > 0, ll, np.nan)
        return {"log_likelihood": ll, "loss": -ll / count, "token_accuracy": acc}


def sequence_log_likelihood(model: AutoregressiveModel, tokens, *, lengths=None, target_mask=None,
                            batch_size: int = 512) -> np.ndarray:
    """``(n,)`` sum of log-probabilities in nats of each sequence's counted tokens (see :func:`sequence_signals`)."""
    return sequence_signals(model, tokens, lengths=lengths, target_mask=target_mask,
                            batch_size=batch_size)["log_likelihood"]


def token_accuracy(model: AutoregressiveModel, tokens, *, lengths=None, target_mask=None,
                   batch_size: int = 512) -> np.ndarray:
    """``(n,)`` fraction of each sequence's counted tokens predicted exactly by the argmax (teacher forcing)."""
    return sequence_signals(model, tokens, lengths=lengths, target_mask=target_mask,
                            batch_size=batch_size)["token_accuracy"]


def argmax_predictions(model: AutoregressiveModel, tokens, *, batch_size: int = 512) -> np.ndarray:
    """``(n, T−1)`` argmax prediction of ``tokens[:, t+1]`` from the true ``tokens[:, :t+1]`` (teacher forcing)."""
    x = _check_tokens(tokens, model.config.vocab_size, min_len=2)
    _check_context(model, x.shape[1])
    out = np.empty((x.shape[0], x.shape[1] - 1), dtype=np.int64)

    def fn(logits, sl):
        out[sl] = logits[:, :-1].argmax(-1).numpy()

    _forward_chunks(model, x, check_int("batch_size", batch_size, min_value=1), fn)
    return out


def next_token_logprobs(model: AutoregressiveModel, prefixes, *, lengths=None,
                        batch_size: int = 512) -> np.ndarray:
    """``(n, vocab_size)`` log-probabilities (nats) of the token that follows each prefix (after its last token,
    ``lengths[i] − 1`` for right-padded prefixes)."""
    x = _check_tokens(prefixes, model.config.vocab_size, name="prefixes")
    _check_context(model, x.shape[1], "prefixes")
    lengths = _check_lengths(lengths, x.shape[0], x.shape[1])
    out = np.empty((x.shape[0], model.config.vocab_size), dtype=np.float64)

    def fn(logits, sl):
        last = torch.from_numpy(lengths[sl] - 1)
        out[sl] = torch.log_softmax(logits[torch.arange(len(last)), last].double(), dim=-1).numpy()

    _forward_chunks(model, x, check_int("batch_size", batch_size, min_value=1), fn)
    return out


def greedy_continue(model: AutoregressiveModel, prompts, n_new: int, *, batch_size: int = 512) -> np.ndarray:
    """Greedy (argmax) continuation of equal-length prompts.

    Parameters
    ----------
    prompts : array of int, shape (n, c), c >= 1
    n_new : int
        Tokens to generate. The transformer reads at most its last ``context_length`` tokens.

    Returns
    -------
    ndarray of int64, shape (n, n_new)
    """
    x = _check_tokens(prompts, model.config.vocab_size, name="prompts")
    n_new = check_int("n_new", n_new, min_value=0)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    ctx = model.config.context_length if model.config.arch == "transformer" else None
    out = np.empty((x.shape[0], n_new), dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for lo in range(0, x.shape[0], batch_size):
                seq = torch.from_numpy(np.ascontiguousarray(x[lo:lo + batch_size]))
                for j in range(n_new):
                    window = seq if ctx is None else seq[:, -ctx:]
                    nxt = model(window)[:, -1].argmax(-1)
                    seq = torch.cat([seq, nxt[:, None]], dim=1)
                out[lo:lo + batch_size] = seq[:, x.shape[1]:].numpy()
    finally:
        model.train(was_training)
    return out


# ---------------------------------------------------------------------------------------------------------------
# persistence (no pickle)
# ---------------------------------------------------------------------------------------------------------------

def save_autoregressive_model(model: AutoregressiveModel) -> bytes:
    """The model's config and weights as bytes (``torch.save`` of tensors and a JSON string; write them with
    :func:`memlens.population.atomic_write_bytes`)."""
    buf = io.BytesIO()
    torch.save({"config": json.dumps(model.config.to_dict()), "state_dict": model.state_dict()}, buf)
    return buf.getvalue()


def load_autoregressive_model(data: bytes) -> AutoregressiveModel:
    """Inverse of :func:`save_autoregressive_model`, read with ``weights_only=True``."""
    blob = torch.load(io.BytesIO(data), weights_only=True)
    model = make_autoregressive_model(AutoregressiveConfig(**json.loads(blob["config"])), seed=0)
    model.load_state_dict(blob["state_dict"])
    return model.eval()
