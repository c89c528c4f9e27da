"""The byte-level language model: what a trained text model is, how it scores text, and the one decoding loop.

The model is a token-level language model: a causal transformer (pre-LayerNorm blocks, learned positions) or a
GRU, with vocabulary size, context length, width and depth as parameters. ``logits[:, t]`` is the distribution of
``tokens[:, t + 1]`` given ``tokens[:, :t + 1]``; the first token is never predicted, so prepend a
beginning-of-sequence token when the first symbol matters.

Signals are functions from a batch of sequences ``(n, T)`` (optionally ragged through ``lengths``) to per-sequence
arrays ``(n,)`` — ``log_likelihood``, ``loss``, ``token_accuracy`` — so that a population of models gives the
``(n_models, n_sequences)`` signal arrays of :class:`memlens.Population` by stacking. Generation goes through one
loop, :func:`decode`, with greedy (:func:`greedy_continue`) or sampled (:func:`sample_continue`) choices. Measures
(exposure) and attacks (extraction) read models through this module; training lives in :mod:`memlens.train`.
Everything random takes ``seed``; the global torch RNG is left as it was.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._random import as_generator
from .._validation import MemlensInputError, check_float, check_int, warn
from ..data.text import EOS

__all__ = [
    "AutoregressiveConfig", "AutoregressiveModel", "make_autoregressive_model", "token_logprobs",
    "sequence_signals", "sequence_log_likelihood", "token_accuracy", "next_token_logprobs", "argmax_predictions",
    "decode", "greedy_continue", "sample_continue", "check_model", "save_autoregressive_model",
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


def decode(model: AutoregressiveModel, prompts, n_new: int, *, choose: Callable, batch_size: int = 512) -> np.ndarray:
    """The one decoding loop: extend equal-length prompts token by token, ``choose`` picking each next token.

    Parameters
    ----------
    prompts : array of int, shape (n, c), c >= 1
    n_new : int
        Tokens to generate. The transformer reads at most its last ``context_length`` tokens.
    choose : callable
        ``choose(logits) -> next`` with ``logits`` a float tensor ``(batch, vocab_size)`` of the last position and
        ``next`` an int64 tensor ``(batch,)``: argmax for greedy decoding, a sampler for sampling.
    batch_size : int
        Prompts decoded together.

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
                for _ in range(n_new):
                    window = seq if ctx is None else seq[:, -ctx:]
                    nxt = choose(model(window)[:, -1])
                    seq = torch.cat([seq, nxt.reshape(-1, 1)], dim=1)
                out[lo:lo + batch_size] = seq[:, x.shape[1]:].numpy()
    finally:
        model.train(was_training)
    return out


def greedy_continue(model: AutoregressiveModel, prompts, n_new: int, *, batch_size: int = 512) -> np.ndarray:
    """Greedy (argmax) continuation of equal-length prompts, ``(n, c)`` -> ``(n, n_new)`` (:func:`decode`)."""
    return decode(model, prompts, n_new, choose=lambda logits: logits.argmax(-1), batch_size=batch_size)


def sample_continue(model: AutoregressiveModel, prompts, n_new: int, *, temperature: float = 1.0,
                    top_k: int | None = None, seed=0, batch_size: int = 512) -> np.ndarray:
    """Sampled continuation of equal-length prompts (:func:`decode` with a sampler).

    Parameters
    ----------
    prompts : array of int, shape (n, c), c >= 1
    n_new : int
        Tokens to generate (the transformer reads at most its last ``context_length`` tokens).
    temperature : float
        Softmax temperature; 0 decodes greedily (:func:`greedy_continue`).
    top_k : int, optional
        Sample among the ``top_k`` most likely tokens only (Carlini et al. 2021 use top-40).
    seed : int or numpy.random.Generator
        The torch global RNG is left untouched.

    Returns
    -------
    ndarray of int64, shape (n, n_new)
    """
    model = check_model(model)
    temperature = check_float("temperature", temperature, min_value=0.0)
    if temperature == 0.0:
        return greedy_continue(model, prompts, n_new, batch_size=batch_size)
    if top_k is not None:
        top_k = check_int("top_k", top_k, min_value=1, max_value=model.config.vocab_size)
    gen = torch.Generator().manual_seed(int(as_generator(seed).integers(2**62)))

    def choose(logits):
        logits = logits.double() / temperature
        if top_k is not None and top_k < logits.shape[-1]:
            kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, -math.inf)
        return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)[:, 0]

    return decode(model, prompts, n_new, choose=choose, batch_size=batch_size)


def check_model(model, name: str = "model") -> AutoregressiveModel:
    """``model`` as an :class:`AutoregressiveModel` reading byte-level tokens, or a clear error naming ``name``."""
    if not isinstance(model, AutoregressiveModel):
        raise MemlensInputError(f"{name} must be a memlens.models.AutoregressiveModel; got {type(model).__name__}")
    if model.config.vocab_size < EOS + 1:
        raise MemlensInputError(f"{name} must read byte-level tokens (vocab_size >= {EOS + 1}, memlens.data.text."
                                f"VOCAB_SIZE); got vocab_size={model.config.vocab_size}")
    return model


# ---------------------------------------------------------------------------------------------------------------
# persistence (no pickle)
# ---------------------------------------------------------------------------------------------------------------

def save_autoregressive_model(model: AutoregressiveModel) -> bytes:
    """The model's config and weights as bytes (``torch.save`` of tensors and a JSON string; write them with
    :func:`memlens._io.atomic_write_bytes`)."""
    buf = io.BytesIO()
    torch.save({"config": json.dumps(model.config.to_dict()), "state_dict": model.state_dict()}, buf)
    return buf.getvalue()


def load_autoregressive_model(data: bytes) -> AutoregressiveModel:
    """Inverse of :func:`save_autoregressive_model`, read with ``weights_only=True``."""
    blob = torch.load(io.BytesIO(data), weights_only=True)
    model = make_autoregressive_model(AutoregressiveConfig(**json.loads(blob["config"])), seed=0)
    model.load_state_dict(blob["state_dict"])
    return model.eval()
