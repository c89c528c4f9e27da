"""Hugging Face causal language models: loading from local folders, batched scoring, decoding with the KV cache,
fine-tuning.

Everything memlens does with a Hugging Face model goes through four functions over a :class:`CausalLM` (a model
and its tokenizer):

* :func:`load_causal_lm` reads a local checkpoint folder (or a hub name that is already in the local cache; nothing
  is ever downloaded);
* :func:`score_tokens` gives every token of every document its log-probability under the model (and, on request,
  the mean and standard deviation of the log-probability under the model's own next-token distribution, which
  Min-K%++ needs), batched and padded with attention masks, long documents in overlapping windows;
* :func:`decode` continues prompts greedily or by sampling, batched with left padding and the KV cache;
* :func:`fine_tune` trains a model on documents (AdamW, linear warm-up and decay, gradient clipping).

Conventions (documented decisions):

* A document is tokenized without the tokenizer's own special tokens and **prefixed with its BOS token** when the
  tokenizer has one (GPT-2's ``<|endoftext|>``, Llama's ``<s>``), so every token of the text is predicted from a
  context and scored. A tokenizer without a BOS token leaves the first token of a document unscored.
* No EOS is appended when scoring or fine-tuning: a document is its text.
* Scores are natural-log probabilities (nats), computed in float32 from the model's logits (in the model's dtype).

``transformers`` and ``tokenizers`` are the optional extra ``memlens[lm]``; this module imports them only inside
its functions, and :func:`require_transformers` turns their absence into one line saying how to install them.
"""
from __future__ import annotations

import copy
import inspect
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._random import as_generator
from .._validation import MemlensInputError, check_float, check_int

__all__ = ["CausalLM", "TokenScores", "require_transformers", "load_causal_lm", "is_causal_lm", "check_causal_lm",
           "encode", "pad_right", "score_tokens", "score_texts", "decode", "fine_tune", "train_tokenizer", "tiny_config",
           "new_causal_lm", "TINY_CONFIGS", "DTYPES"]

#: Model dtypes accepted by :func:`load_causal_lm`.
DTYPES = ("float32", "bfloat16", "float16")
#: Small architectures for populations trained from scratch (``hf-config:NAME``) and for tests.
TINY_CONFIGS = ("gpt2-tiny", "gpt2-small", "llama-tiny")
#: Logit entries (tokens x vocabulary) per forward pass of :func:`score_tokens` (bounds its memory: 2^25 float32
#: logits are 128 MiB, and the log-softmax doubles it).
LOGIT_BUDGET = 2 ** 25


def require_transformers():
    """Import and return ``transformers``, or raise one line saying how to install the ``lm`` extra."""
    try:
        import tokenizers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise MemlensInputError("Hugging Face models need the optional extra 'lm' (transformers, tokenizers): "
                                "pip install 'memlens[lm]' (make setup installs it)") from None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging  # deferred: transformers is heavy and optional

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return transformers


@dataclass(frozen=True, eq=False)
class CausalLM:
    """A Hugging Face causal language model with its tokenizer.

    Attributes
    ----------
    model : transformers.PreTrainedModel
        In evaluation mode unless being fine-tuned.
    tokenizer : transformers tokenizer
    name : str
        Where it was loaded from (a folder or a cached hub name), or the configuration it was built from.
    device : str
    max_length : int
        Context length: the model's ``n_positions`` / ``max_position_embeddings`` (documents longer than this are
        scored in windows).
    """

    model: Any
    tokenizer: Any
    name: str
    device: str = "cpu"
    max_length: int = 1024

    @property
    def bos_id(self) -> int | None:
        return self.tokenizer.bos_token_id

    @property
    def pad_id(self) -> int:
        t = self.tokenizer
        for tid in (t.pad_token_id, t.eos_token_id, t.bos_token_id):
            if tid is not None:
                return int(tid)
        return 0

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    def describe(self) -> dict:
        """What the run records of the model: its name, architecture, size and tokenizer."""
        cfg = self.model.config
        return {"name": self.name, "architecture": type(self.model).__name__, "model_type": cfg.model_type,
                "n_parameters": self.n_parameters, "vocab_size": self.vocab_size, "max_length": self.max_length,
                "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""), "device": self.device,
                "bos_token": self.tokenizer.bos_token}


def is_causal_lm(obj) -> bool:
    return isinstance(obj, CausalLM)


def check_causal_lm(lm, name: str = "model") -> CausalLM:
    if not isinstance(lm, CausalLM):
        raise MemlensInputError(f"{name} must be a memlens.models.hf.CausalLM (from load_causal_lm(PATH)); got "
                                f"{type(lm).__name__}")
    return lm


def _context_length(model, tokenizer) -> int:
    cfg = model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", None)
    return int(v) if isinstance(v, int) and 0 < v < 10 ** 7 else 1024


def _torch_dtype(dtype: str):
    import torch  # deferred: torch is heavy

    if dtype not in DTYPES:
        raise MemlensInputError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return getattr(torch, dtype)


def _check_device(device: str) -> str:
    import torch  # deferred: torch is heavy

    if not isinstance(device, str):
        raise MemlensInputError(f"device must be a string such as 'cpu' or 'cuda'; got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise MemlensInputError(f"device {device!r} is not a torch device; use 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MemlensInputError(f"device {device!r} asked for, but this machine has no CUDA device (torch "
                                f"{torch.__version__}); use device='cpu'")
    return str(dev)


def _finish(model, tokenizer, name: str, device: str) -> CausalLM:
    model.eval()
    model.to(device)
    if tokenizer.pad_token_id is None:
        # padding is always masked out; any id serves, and the EOS is the usual choice
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.bos_token
    return CausalLM(model=model, tokenizer=tokenizer, name=name, device=device,
                    max_length=_context_length(model, tokenizer))


def load_causal_lm(path, *, device: str = "cpu", dtype: str = "float32", what: str = "model") -> CausalLM:
    """Load a causal language model and its tokenizer from a local folder, or from the local Hugging Face cache.

    Parameters
    ----------
    path : str or Path
        A folder written by ``save_pretrained`` (``config.json``, weights, tokenizer files), or a hub name
        (``"gpt2"``) already in the local cache. Nothing is downloaded.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    dtype : {"float32", "bfloat16", "float16"}
        Weights' dtype (scores are computed in float32 from the logits either way).
    what : str
        The parameter's name in errors (``"model"``, ``"reference"``).

    Returns
    -------
    CausalLM
    """
    transformers = require_transformers()
    if not isinstance(path, (str, Path)) or str(path) == "":
        raise MemlensInputError(f"{what} must be a local checkpoint folder or a cached hub name; got {path!r}", param=what)
    device = _check_device(device)
    torch_dtype = _torch_dtype(dtype)
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise MemlensInputError(f"{what} {str(path)!r} is a file; give the checkpoint's folder (with config.json)", param=what)
    if p.is_dir() and not (p / "config.json").is_file():
        raise MemlensInputError(f"{what} {str(path)!r}: the folder has no config.json, so it is not a Hugging Face "
                                "checkpoint (save one with model.save_pretrained(DIR) and tokenizer.save_pretrained(DIR))", param=what)
    source = str(p) if p.is_dir() else str(path)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=torch_dtype)
    except OSError as exc:
        if p.is_dir():
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MemlensInputError(f"{what} {str(path)!r}: the folder could not be loaded ({first}): it needs the model's "
                                    "weights and its tokenizer files", param=what) from None
        if any(c in str(path) for c in ("/", "\\")) or str(path).startswith((".", "~")):
            raise MemlensInputError(f"{what} {str(path)!r}: no such folder; pass a checkpoint folder written by "
                                    "save_pretrained", param=what) from None
        raise MemlensInputError(f"{what} {str(path)!r} is neither a local folder nor in the Hugging Face cache "
                                "(memlens downloads nothing): download it on a connected machine "
                                "(huggingface-cli download NAME --local-dir DIR) and pass the folder", param=what) from None
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0]
        raise MemlensInputError(f"{what} {str(path)!r} is not a causal language model transformers can load "
                                f"({first})", param=what) from None
    return _finish(model, tokenizer, source, device)


# ----------------------------------------------------------------------------------------------- tokens
def encode(lm: CausalLM, texts: Sequence[str]) -> list[np.ndarray]:
    """Token ids of each text: ``[BOS] + tokens(text)`` (no other special tokens; see the module's conventions).

    Returns
    -------
    list of ndarray of int64, one per text
    """
    tok = lm.tokenizer
    ids = tok(list(texts), add_special_tokens=False)["input_ids"] if len(texts) else []
    bos = lm.bos_id
    head = [] if bos is None else [int(bos)]
    return [np.asarray(head + list(r), dtype=np.int64) for r in ids]


def decode_ids(lm: CausalLM, rows) -> list[str]:
    """Text of each row of token ids (negative ids, the padding of results, are dropped)."""
    return [lm.tokenizer.decode([int(t) for t in r if t >= 0], skip_special_tokens=False,
                                clean_up_tokenization_spaces=False) for r in rows]


def pad_right(rows: Sequence, pad: int, *, left: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Rows of token ids padded into ``(n, max_len)`` int64 ids and an attention mask (1 on real tokens); padding
    on the right, or on the left with ``left=True`` (decoding)."""
    t = max(len(r) for r in rows)
    x = np.full((len(rows), t), pad, dtype=np.int64)
    am = np.zeros((len(rows), t), dtype=np.int64)
    for j, r in enumerate(rows):
        sl = slice(t - len(r), t) if left else slice(0, len(r))
        x[j, sl] = r
        am[j, sl] = 1
    return x, am


@dataclass(frozen=True, eq=False)
class TokenScores:
    """Per-token scores of ``n`` documents, ragged: document ``i``'s scored tokens are
    ``offsets[i]:offsets[i + 1]`` of each flat array (in order; the BOS token is context, never scored).

    Attributes
    ----------
    logprob : ndarray of float64, shape (n_tokens,)
        ``log p(x_t | x_<t)``, nats.
    correct : ndarray of bool, shape (n_tokens,)
        Whether ``x_t`` is the model's most likely next token (teacher forcing).
    mu, sigma : ndarray of float64, shape (n_tokens,), or None
        Mean and standard deviation of ``log p(z | x_<t)`` for ``z`` drawn from the model's own next-token
        distribution (Min-K%++, Zhang et al. 2024, Eq. 2); present when scored with ``distribution=True``.
    offsets : ndarray of int64, shape (n + 1,)
    """

    logprob: np.ndarray
    correct: np.ndarray
    offsets: np.ndarray
    mu: np.ndarray | None = None
    sigma: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def n_tokens(self) -> np.ndarray:
        """``(n,)`` scored tokens per document."""
        return np.diff(self.offsets)

    def doc(self, i: int, field: str = "logprob") -> np.ndarray:
        return getattr(self, field)[self.offsets[i]:self.offsets[i + 1]]

    def _mean(self, values: np.ndarray) -> np.ndarray:
        n = self.n_tokens
        sums = np.add.reduceat(values.astype(np.float64), self.offsets[:-1]) if values.size else np.zeros(len(self))
        sums = np.where(n > 0, sums, np.nan)           # reduceat of an empty segment returns the next value
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / np.where(n > 0, n, np.nan)

    def mean_logprob(self) -> np.ndarray:
        """``(n,)`` mean token log-likelihood (nats); NaN for a document with no scored token."""
        return self._mean(self.logprob)

    def token_accuracy(self) -> np.ndarray:
        """``(n,)`` fraction of tokens that are the model's argmax prediction."""
        return self._mean(self.correct)


def _segments(lengths: np.ndarray, window: int, stride: int) -> list[tuple[int, int, int, int]]:
    """``(doc, begin, end, first_target)`` windows covering every target position ``1 .. L-1`` of each document
    once: windows ``[begin, begin + window)`` at ``begin = 0, stride, 2·stride, ...``; each scores the targets
    its predecessor did not (so every token has at least ``window - stride`` tokens of context after the first
    window)."""
    out = []
    for i, n in enumerate(lengths.tolist()):
        if n < 2:
            continue
        prev_end, begin = 1, 0
        while True:
            end = min(begin + window, n)
            out.append((i, begin, end, prev_end))
            prev_end = end
            if end >= n:
                break
            begin += stride
    return out


def score_tokens(lm: CausalLM, ids: Sequence[np.ndarray], *, batch_size: int = 16, window: int | None = None,
                 stride: int | None = None, distribution: bool = False,
                 progress: Callable[[int], None] | None = None) -> TokenScores:
    """Log-probability of every token of every document, batched and padded with attention masks.

    Documents are sorted by length and scored ``batch_size`` at a time (fewer where their logits would exceed
    ``LOGIT_BUDGET`` entries), right-padded, with an attention mask: a causal model gives every token the same
    probability whatever padding follows, so the result equals scoring one document at a time (tested to 1e-5).
    A document longer than ``window`` tokens is scored in windows of ``window`` tokens starting every ``stride``
    tokens, each token scored once, with at least ``window - stride`` tokens of context (the strided evaluation of
    the ``transformers`` perplexity guide).

    Parameters
    ----------
    lm : CausalLM
    ids : sequence of 1-D int arrays
        Token ids (:func:`encode`), BOS first.
    batch_size : int
        Windows per forward pass.
    window : int, optional
        Tokens per window (default and maximum: the model's context length).
    stride : int, optional
        Tokens between window starts (default ``window // 2``).
    distribution : bool
        Also compute ``mu`` and ``sigma`` of the next-token distribution (Min-K%++).
    progress : callable, optional
        ``progress(n_tokens_done)`` after each forward pass.

    Returns
    -------
    TokenScores
    """
    import torch  # deferred: torch is heavy

    lm = check_causal_lm(lm)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    window = lm.max_length if window is None else check_int("window", window, min_value=2, max_value=lm.max_length)
    stride = max(1, window // 2) if stride is None else check_int("stride", stride, min_value=1, max_value=window - 1
                                                                   if window > 1 else 1)
    rows = [np.asarray(r, dtype=np.int64).reshape(-1) for r in ids]
    lengths = np.array([r.size for r in rows], dtype=np.int64)
    counts = np.maximum(lengths - 1, 0)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    total = int(offsets[-1])
    logprob = np.zeros(total, dtype=np.float64)
    correct = np.zeros(total, dtype=bool)
    mu = np.zeros(total, dtype=np.float64) if distribution else None
    sigma = np.zeros(total, dtype=np.float64) if distribution else None
    segs = _segments(lengths, window, stride)
    segs.sort(key=lambda s: s[2] - s[1])
    per_pass = max(1, LOGIT_BUDGET // max(1, lm.vocab_size))
    model, pad, dev = lm.model, lm.pad_id, lm.device
    done = 0
    with torch.inference_mode():
        lo = 0
        while lo < len(segs):
            width = segs[min(lo + batch_size, len(segs)) - 1][2] - segs[min(lo + batch_size, len(segs)) - 1][1]
            b = max(1, min(batch_size, per_pass // max(1, width)))
            chunk = segs[lo:lo + b]
            lo += len(chunk)
            x, am = pad_right([rows[i][s:e] for i, s, e, _ in chunk], pad)
            xt = torch.from_numpy(x).to(dev)
            logits = model(input_ids=xt, attention_mask=torch.from_numpy(am).to(dev)).logits[:, :-1].float()
            lp = torch.log_softmax(logits, dim=-1)
            tgt = xt[:, 1:]
            tok_lp = lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
            best = lp.argmax(-1) == tgt
            if distribution:
                p = lp.exp()
                m1 = (p * lp).sum(-1)
                centred = lp - m1.unsqueeze(-1)          # Var = E[(lp - mu)^2]: no cancellation in float32
                sd = (p * centred * centred).sum(-1).sqrt()
                m1, sd = m1.double().cpu().numpy(), sd.double().cpu().numpy()
            tok_lp, best = tok_lp.double().cpu().numpy(), best.cpu().numpy()
            for j, (i, s, e, first) in enumerate(chunk):
                # logits at local position q predict global token s + q + 1; targets first .. e-1
                q0, q1 = first - s - 1, e - s - 1
                dst = slice(offsets[i] + first - 1, offsets[i] + e - 1)
                logprob[dst] = tok_lp[j, q0:q1]
                correct[dst] = best[j, q0:q1]
                if distribution:
                    mu[dst] = m1[j, q0:q1]
                    sigma[dst] = sd[j, q0:q1]
                done += e - first
            if progress is not None:
                progress(done)
    return TokenScores(logprob=logprob, correct=correct, offsets=offsets, mu=mu, sigma=sigma)


def score_texts(lm: CausalLM, texts: Sequence[str], **kwargs) -> TokenScores:
    """:func:`score_tokens` of :func:`encode` ``(lm, texts)``."""
    return score_tokens(lm, encode(lm, texts), **kwargs)


# ----------------------------------------------------------------------------------------------- decoding
def _cache_kwarg(model) -> str:
    """The forward argument that takes the KV cache: ``cache`` (transformers >= 5.x) or ``past_key_values``."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_of(res):
    cache = getattr(res, "cache", None)
    return cache if cache is not None else res.past_key_values


def decode(lm: CausalLM, prompts: Sequence[np.ndarray], n_new: int, *, method: str = "greedy",
           temperature: float = 1.0, top_k: int | None = None, seed=0, batch_size: int = 32) -> np.ndarray:
    """Continue each prompt by ``n_new`` tokens, greedily or by sampling, with the KV cache.

    Prompts are left-padded into batches with an attention mask and position ids counted from each prompt's first
    real token, so a prompt is continued exactly as it would be alone (greedy: tested). Decoding does not stop at
    an EOS: every row gets ``n_new`` tokens (the extraction measures compare fixed-length suffixes).

    Parameters
    ----------
    lm : CausalLM
    prompts : sequence of 1-D int arrays
        Each at least one token long (start it with the BOS token, :func:`encode`).
    n_new : int
    method : {"greedy", "sample"}
    temperature : float > 0
        Sampling temperature.
    top_k : int, optional
        Sample among the ``top_k`` most likely tokens only.
    seed : int or numpy.random.Generator
        Sampling randomness (a torch generator seeded from it).

    Returns
    -------
    ndarray of int64, shape (n_prompts, n_new)
    """
    import torch  # deferred: torch is heavy


    lm = check_causal_lm(lm)
    n_new = check_int("n_new", n_new, min_value=0)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    if method not in ("greedy", "sample"):
        raise MemlensInputError(f"method must be 'greedy' or 'sample'; got {method!r}")
    temperature = check_float("temperature", temperature, min_value=0.0, min_inclusive=False) \
        if method == "sample" else 1.0
    if top_k is not None:
        top_k = check_int("top_k", top_k, min_value=1)
    rows = [np.asarray(r, dtype=np.int64).reshape(-1) for r in prompts]
    for j, r in enumerate(rows):
        if r.size == 0:
            raise MemlensInputError(f"prompts[{j}] is empty; start every prompt with the BOS token (encode(lm, ...))")
        if r.size + n_new > lm.max_length:
            raise MemlensInputError(f"prompts[{j}] has {r.size} tokens; with n_new={n_new} that exceeds the model's "
                                    f"context of {lm.max_length} tokens")
    out = np.zeros((len(rows), n_new), dtype=np.int64)
    if not rows or n_new == 0:
        return out
    gen = torch.Generator().manual_seed(int(as_generator(seed).integers(2 ** 62))) if method == "sample" else None
    model, dev, pad = lm.model, lm.device, lm.pad_id
    cache_arg = _cache_kwarg(model)                       # inspected once, not per generated token
    order = np.argsort([r.size for r in rows], kind="stable")
    with torch.inference_mode():
        for lo in range(0, len(rows), batch_size):
            idx = order[lo:lo + batch_size]
            x, am = pad_right([rows[i] for i in idx], pad, left=True)
            attn = torch.from_numpy(am).to(dev)
            pos = (attn.cumsum(-1) - 1).clamp_min(0)
            res = model(input_ids=torch.from_numpy(x).to(dev), attention_mask=attn, position_ids=pos, use_cache=True)
            past, logits = _cache_of(res), res.logits[:, -1].float()
            last = pos[:, -1:]
            for step in range(n_new):
                if method == "greedy":
                    nxt = logits.argmax(-1)
                else:
                    z = logits / temperature
                    if top_k is not None and top_k < z.shape[-1]:
                        kth = torch.topk(z, top_k, dim=-1).values[:, -1:]
                        z = z.masked_fill(z < kth, float("-inf"))
                    nxt = torch.multinomial(torch.softmax(z, -1).cpu(), 1, generator=gen).squeeze(-1).to(dev)
                out[idx, step] = nxt.cpu().numpy()
                if step + 1 == n_new:
                    break
                attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
                last = last + 1
                res = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=last, use_cache=True,
                            **{cache_arg: past})
                past, logits = _cache_of(res), res.logits[:, -1].float()
    return out


# ----------------------------------------------------------------------------------------------- training
def fine_tune(lm: CausalLM, ids: Sequence[np.ndarray], *, epochs: float = 10.0, batch_size: int = 16,
              lr: float = 1e-3, weight_decay: float = 0.0, warmup: float = 0.1, max_grad_norm: float = 1.0,
              seed=0, steps: int | None = None) -> dict:
    """Train ``lm`` in place by next-token cross-entropy on documents (AdamW, linear warm-up then linear decay,
    global gradient-norm clipping), then put it back in evaluation mode.

    Parameters
    ----------
    lm : CausalLM
    ids : sequence of 1-D int arrays
        Documents (:func:`encode`); one longer than the context is cut into consecutive pieces of the context
        length.
    epochs : float
        Passes over the documents (``steps = ceil(epochs · n / batch_size)``) unless ``steps`` is given.
    batch_size, lr, weight_decay, max_grad_norm : as named
    warmup : float in [0, 1)
        Fraction of the steps with a linearly rising learning rate.
    seed : int or numpy.random.Generator
        Minibatch order (each epoch a fresh permutation) and dropout.

    Returns
    -------
    dict
        ``steps``, ``tokens`` (trained target tokens) and ``final_loss`` (mean over the last 10% of steps).
    """
    import torch  # deferred: torch is heavy


    lm = check_causal_lm(lm)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    warmup = check_float("warmup", warmup, min_value=0.0, max_value=1.0, max_inclusive=False)
    rng = as_generator(seed)
    pieces = []
    for r in ids:
        r = np.asarray(r, dtype=np.int64)
        for s in range(0, max(1, r.size - 1), lm.max_length - 1):
            piece = r[s:s + lm.max_length]
            if piece.size >= 2:
                pieces.append(piece)
    if not pieces:
        raise MemlensInputError("fine_tune needs at least one document of 2 or more tokens")
    n = len(pieces)
    if steps is None:
        epochs = check_float("epochs", epochs, min_value=0.0, min_inclusive=False)
        steps = max(1, math.ceil(epochs * n / batch_size))
    steps = check_int("steps", steps, min_value=1)
    model, dev, pad = lm.model, lm.device, lm.pad_id
    torch.manual_seed(int(rng.integers(2 ** 62)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    n_warm = int(warmup * steps)

    def factor(step):
        if step < n_warm:
            return (step + 1) / n_warm
        return max(0.0, (steps - step) / max(1, steps - n_warm))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    model.train()
    order, pos, losses, tokens = rng.permutation(n), 0, [], 0
    try:
        for _ in range(steps):
            if pos + batch_size > n and pos > 0:
                order, pos = rng.permutation(n), 0
            take = order[pos:pos + batch_size]
            pos += take.size
            x, am = pad_right([pieces[i] for i in take], pad)
            xt, at = torch.from_numpy(x).to(dev), torch.from_numpy(am).to(dev)
            logits = model(input_ids=xt, attention_mask=at).logits[:, :-1].float()
            tgt = xt[:, 1:].masked_fill(at[:, 1:] == 0, -100)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                                     ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            tokens += int((tgt >= 0).sum())
    finally:
        model.eval()
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": steps, "tokens": tokens, "final_loss": float(np.mean(tail))}


# ----------------------------------------------------------------------------------------------- from scratch
def train_tokenizer(texts: Sequence[str], *, vocab_size: int = 512):
    """A byte-level BPE tokenizer (GPT-2's scheme) trained on ``texts``, with ``<|endoftext|>`` as BOS/EOS and
    ``<pad>``/``<mask>`` specials; deterministic for the same texts. Returns a ``transformers`` fast tokenizer."""
    require_transformers()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # deferred: optional extra
    from transformers import PreTrainedTokenizerFast  # deferred: optional extra

    vocab_size = check_int("vocab_size", vocab_size, min_value=260)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<pad>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   pad_token="<pad>", mask_token="<mask>")


def tiny_config(name: str, tokenizer, *, context_length: int = 256):
    """A small ``transformers`` config for models trained from scratch: ``gpt2-tiny`` (2 layers, width 64, 2 heads),
    ``gpt2-small`` (4 layers, width 128, 4 heads) or ``llama-tiny`` (2 layers, width 64, 2 heads, SwiGLU width
    128, rotary positions)."""
    transformers = require_transformers()
    if name not in TINY_CONFIGS:
        raise MemlensInputError(f"config name must be one of {', '.join(TINY_CONFIGS)}; got {name!r}")
    context_length = check_int("context_length", context_length, min_value=8)
    ids = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    if name.startswith("gpt2"):
        width, depth, heads = (64, 2, 2) if name == "gpt2-tiny" else (128, 4, 4)
        return transformers.GPT2Config(n_positions=context_length, n_embd=width, n_layer=depth, n_head=heads,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **ids)
    return transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                    num_key_value_heads=2, max_position_embeddings=context_length, **ids)


def new_causal_lm(config, tokenizer, *, seed=0, name: str | None = None, device: str = "cpu") -> CausalLM:
    """A freshly initialized causal LM of ``config`` (a ``transformers`` config), seeded."""
    import torch  # deferred: torch is heavy


    transformers = require_transformers()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(as_generator(seed).integers(2 ** 62)))
        model = transformers.AutoModelForCausalLM.from_config(config)
    return _finish(model, tokenizer, name or f"hf-config:{config.model_type}", _check_device(device))


def clone_causal_lm(lm: CausalLM) -> CausalLM:
    """An independent copy of ``lm`` (weights copied, tokenizer shared)."""
    return CausalLM(model=copy.deepcopy(lm.model), tokenizer=lm.tokenizer, name=lm.name, device=lm.device,
                    max_length=lm.max_length)


def save_causal_lm(lm: CausalLM, folder) -> Path:
    """Write model and tokenizer to ``folder`` (``save_pretrained``), loadable by :func:`load_causal_lm`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder
