"""``train_text_population``: one byte-level language model per mask row, into a :class:`memlens.Population`.

Each model is a :class:`memlens.train.autoregressive.AutoregressiveModel` (``vocab_size = VOCAB_SIZE``) trained
by minibatch next-token cross-entropy on its subset of the training documents (``masks[k]``), then evaluated
on every train and test document. The per-document signals are those of Zhang et al. (2021, "Counterfactual
memorization in neural language models", §3): ``token_accuracy`` (fraction of a document's tokens that are the
argmax prediction under teacher forcing), ``log_likelihood`` (mean token log-likelihood, nats) and ``loss`` (mean
token cross-entropy = log-perplexity, nats). Every signal is "higher = better fit" except ``loss``.

Model ``k`` (global index ``model_offset + k``) gets the seed ``model_seeds(seed, n, start=model_offset)[k]``
for its initialization and minibatch order, so shards of rows trained separately concatenate into the same
population. Masking a document out is deleting it: a model only ever reads its own documents, each minibatch
is cut to its longest document (so no padded width depends on documents the model did not see), and the
number of steps depends on the model's own document count.

Small transformers are trained ``block_size`` models at a time in one stacked pass (parameters stacked along a
leading model axis, linear layers as batched matrix products, attention over the merged model × batch axis;
Adam, per-model gradient clipping and per-model learning-rate schedules on the stacked tensors), which is the
same arithmetic as one model at a time up to floating-point rounding; it pays for small models only (see
``train_text_population``'s ``block_size``). GRUs are trained one at a time.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .._random import as_generator, check_int_seed, model_seeds
from .._threads import limit_threads
from .._validation import MemlensInputError, check_float, check_int, check_masks
from .._version import __version__
from ..data.text import EOS, VOCAB_SIZE, TextDataset, encode_texts
from ..models.char_lm import AutoregressiveConfig, AutoregressiveModel, make_autoregressive_model, sequence_signals
from ..population import Population

__all__ = ["CharLMConfig", "train_text_population", "text_signals", "TEXT_SIGNALS"]

#: Default models per stacked pass for transformers of width <= STACK_MAX_WIDTH (wider ones: one at a time).
DEFAULT_STACKED_BLOCK = 8
STACK_MAX_WIDTH = 32

#: Signals of a text population (split "train" and "test"), each ``(n_models, n_documents)``.
TEXT_SIGNALS = ("log_likelihood", "token_accuracy", "loss")


def check_training_fields(cfg) -> None:
    """The training fields a text model's configuration shares (char-LM and Hugging Face): ``epochs``, ``steps``,
    ``batch_size``, ``lr``, ``weight_decay``."""
    check_float("epochs", cfg.epochs, min_value=0.0, min_inclusive=False)
    if cfg.steps is not None:
        check_int("steps", cfg.steps, min_value=1)
    check_int("batch_size", cfg.batch_size, min_value=1)
    check_float("lr", cfg.lr, min_value=0.0, min_inclusive=False)
    check_float("weight_decay", cfg.weight_decay, min_value=0.0)


@dataclass(frozen=True)
class CharLMConfig:
    """A byte-level language model and how it is trained.

    Parameters
    ----------
    arch : {"transformer", "gru"}
    width, depth, n_heads, mlp_ratio : int
        Shape (see :class:`memlens.train.autoregressive.AutoregressiveConfig`).
    context_length : int or None
        Longest document in tokens (BOS and EOS included); None: the dataset's longest document.
    epochs : float
        Passes over each model's own documents; the number of steps of model ``k`` is
        ``ceil(epochs * n_k / batch_size)`` (``n_k`` its document count). Ignored when ``steps`` is set.
    steps : int or None
        Fixed number of optimizer steps for every model.
    batch_size : int
        Documents per minibatch (all of a model's documents when it has fewer).
    lr, weight_decay, grad_clip : float
        Adam (AdamW-style decoupled decay when ``weight_decay > 0``) with per-model global-norm clipping.
    warmup_steps : int; lr_schedule : {"cosine", "constant"}
        Linear warmup, then cosine decay to 0 at the model's last step (or constant).

    Notes
    -----
    The defaults were chosen so that models visibly memorize within minutes on one core. Measured on 480
    fortunes of <= 100 characters (each model trained on 240, 4 models, one core shared with other work):
    ``lr=1e-2, batch_size=16, epochs=20`` gives per-token accuracy 0.56 on training documents vs 0.22 on
    documents left out (mean counterfactual memorization 0.34), where ``lr=3e-3, batch_size=32`` (8 models)
    gives 0.28 vs 0.24 (0.04).
    """

    arch: str = "transformer"
    width: int = 64
    depth: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4
    context_length: int | None = None
    epochs: float = 20.0
    steps: int | None = None
    batch_size: int = 16
    lr: float = 1e-2
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    warmup_steps: int = 20
    lr_schedule: str = "cosine"

    def __post_init__(self):
        check_int("width", self.width, min_value=1)
        check_int("depth", self.depth, min_value=1)
        check_int("n_heads", self.n_heads, min_value=1)
        check_int("mlp_ratio", self.mlp_ratio, min_value=1)
        if self.context_length is not None:
            check_int("context_length", self.context_length, min_value=2)
        check_training_fields(self)
        if self.grad_clip is not None:
            check_float("grad_clip", self.grad_clip, min_value=0.0, min_inclusive=False)
        check_int("warmup_steps", self.warmup_steps, min_value=0)
        if self.lr_schedule not in ("cosine", "constant"):
            raise MemlensInputError(f"lr_schedule must be 'cosine' or 'constant'; got {self.lr_schedule!r}")
        self.model_config(2)  # validates arch and n_heads | width

    def model_config(self, context_length: int) -> AutoregressiveConfig:
        """The :class:`AutoregressiveConfig` of the models (``context_length`` used when the config has none)."""
        return AutoregressiveConfig(vocab_size=VOCAB_SIZE, context_length=self.context_length or context_length,
                                    width=self.width, depth=self.depth, arch=self.arch, n_heads=self.n_heads,
                                    mlp_ratio=self.mlp_ratio, dropout=0.0)

    def n_steps(self, n_documents: int) -> int:
        """Optimizer steps of a model trained on ``n_documents`` documents."""
        if self.steps is not None:
            return int(self.steps)
        return max(1, math.ceil(self.epochs * n_documents / min(self.batch_size, n_documents)))

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------------------------
# stacked forward pass of K transformers (the same arithmetic as AutoregressiveModel.forward, model axis first)
# ---------------------------------------------------------------------------------------------------------------

def _linear(x, w, b):
    """``x (K, ..., in) @ w (K, out, in)^T + b (K, out)``."""
    k = x.shape[0]
    y = torch.bmm(x.reshape(k, -1, x.shape[-1]), w.transpose(1, 2)) + b[:, None, :]
    return y.reshape(*x.shape[:-1], w.shape[1])


def _layer_norm(x, w, b):
    y = F.layer_norm(x, x.shape[-1:], eps=1e-5)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return y * w.reshape(shape) + b.reshape(shape)


def _stacked_forward(p: dict, cfg: AutoregressiveConfig, tokens: torch.Tensor) -> torch.Tensor:
    """Logits ``(K, B, T, V)`` of K transformers with stacked parameters ``p[name] (K, ...)`` on tokens
    ``(K, B, T)``."""
    k, b, t = tokens.shape
    w, nh = cfg.width, cfg.n_heads
    h = p["embed.weight"][torch.arange(k)[:, None, None], tokens] + p["pos.weight"][:, None, :t]
    for i in range(cfg.depth):
        pre = f"blocks.{i}."
        qkv = _linear(_layer_norm(h, p[pre + "ln1.weight"], p[pre + "ln1.bias"]), p[pre + "qkv.weight"],
                      p[pre + "qkv.bias"])
        q, kk, v = qkv.view(k * b, t, 3, nh, w // nh).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, kk, v, is_causal=True)
        h = h + _linear(a.transpose(1, 2).reshape(k, b, t, w), p[pre + "proj.weight"], p[pre + "proj.bias"])
        z = _layer_norm(h, p[pre + "ln2.weight"], p[pre + "ln2.bias"])
        z = F.gelu(_linear(z, p[pre + "mlp.0.weight"], p[pre + "mlp.0.bias"]))
        h = h + _linear(z, p[pre + "mlp.2.weight"], p[pre + "mlp.2.bias"])
    return _linear(_layer_norm(h, p["norm.weight"], p["norm.bias"]), p["head.weight"], p["head.bias"])


# ---------------------------------------------------------------------------------------------------------------
# training a block of models
# ---------------------------------------------------------------------------------------------------------------

def _lr_factor(cfg: CharLMConfig, step: int, n_steps: int) -> float:
    """Learning-rate multiplier at 1-based ``step`` of a model with ``n_steps`` steps (0 after its last step); the
    schedule of :func:`memlens.train.autoregressive.train_autoregressive` (linear warmup, then cosine)."""
    if step > n_steps:
        return 0.0
    if step <= cfg.warmup_steps:
        return step / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        done = step - 1 - cfg.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * done / max(1, n_steps - cfg.warmup_steps)))
    return 1.0


class _Batches:
    """Minibatch indices of one model: reshuffled every epoch from the model's own generator (remainder dropped)."""

    def __init__(self, n: int, batch_size: int, rng: np.random.Generator):
        self.n, self.bs, self.rng = n, min(batch_size, n), rng
        self.order, self.pos = np.empty(0, dtype=np.int64), 0

    def next(self) -> np.ndarray:
        if self.bs >= self.n:
            return np.arange(self.n)
        if self.pos + self.bs > self.order.size:
            self.order, self.pos = self.rng.permutation(self.n), 0
        self.pos += self.bs
        return self.order[self.pos - self.bs:self.pos]


def _train_block(cfg: CharLMConfig, arch_cfg: AutoregressiveConfig, tokens: np.ndarray, lengths: np.ndarray,
                 masks: np.ndarray, seeds: np.ndarray, stacked: bool) -> list[AutoregressiveModel]:
    """Train ``len(seeds)`` models (rows of ``masks``) together; returns them in eval mode."""
    n_models = masks.shape[0]
    rngs = [as_generator(int(s)) for s in seeds]
    models = [make_autoregressive_model(arch_cfg, seed=r) for r in rngs]
    for r in rngs:  # the draw train_autoregressive spends on torch's dropout seed: same minibatch order after it
        r.integers(2**62)
    members = [np.flatnonzero(m) for m in masks]
    batches = [_Batches(len(idx), cfg.batch_size, r) for idx, r in zip(members, rngs)]
    n_steps = np.array([cfg.n_steps(len(idx)) for idx in members])
    names = [name for name, _ in models[0].named_parameters()]
    params = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models]).requires_grad_(True)
              for name in names}
    leaves = list(params.values())
    m1 = [torch.zeros_like(p) for p in leaves]
    m2 = [torch.zeros_like(p) for p in leaves]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    base = models[0]
    x_all = torch.from_numpy(tokens)

    for step in range(1, int(n_steps.max()) + 1):
        picks = [members[k][batches[k].next()] for k in range(n_models)]
        bmax = max(len(ix) for ix in picks)
        tmax = max(int(lengths[ix].max()) for ix in picks)
        xb = torch.full((n_models, bmax, tmax), EOS, dtype=torch.int64)
        wb = torch.zeros((n_models, bmax, tmax - 1))
        for k, ix in enumerate(picks):
            xb[k, :len(ix)] = x_all[ix, :tmax]
            wb[k, :len(ix)] = torch.from_numpy(np.arange(1, tmax)[None, :] < lengths[ix][:, None]).float()
        if stacked:
            logits = _stacked_forward(params, arch_cfg, xb[:, :, :-1])
        else:
            logits = torch.func.functional_call(base, {n: p[0] for n, p in params.items()}, (xb[0, :, :-1],))[None]
        ce = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), xb[:, :, 1:].reshape(-1),
                             reduction="none").view(wb.shape)
        loss = ((ce * wb).sum((1, 2)) / wb.sum((1, 2)).clamp_min(1.0)).sum()
        grads = torch.autograd.grad(loss, leaves)
        with torch.no_grad():
            if cfg.grad_clip is not None:
                norm = torch.sqrt(sum(g.reshape(n_models, -1).pow(2).sum(1) for g in grads))
                coef = (cfg.grad_clip / (norm + 1e-6)).clamp(max=1.0)
                grads = [g * coef.view(-1, *([1] * (g.ndim - 1))) for g in grads]
            lr = torch.tensor([cfg.lr * _lr_factor(cfg, step, int(s)) for s in n_steps], dtype=torch.float32)
            bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
            for p, g, a, b in zip(leaves, grads, m1, m2):
                shape = (-1,) + (1,) * (p.ndim - 1)
                lr_k = lr.view(shape)
                if cfg.weight_decay > 0:
                    p.mul_(1 - lr_k * cfg.weight_decay)
                a.mul_(beta1).add_(g, alpha=1 - beta1)
                b.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = (b.sqrt() / math.sqrt(bc2)).add_(eps)
                p.sub_((lr_k / bc1) * a / denom)

    for k, m in enumerate(models):
        m.load_state_dict({name: params[name][k].detach().clone() for name in names})
        m.eval()
    return models


def text_signals(model: AutoregressiveModel, tokens, lengths, *, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Per-document signals of one model: ``log_likelihood`` (mean token log-likelihood, nats), ``token_accuracy``
    and ``loss`` (mean token cross-entropy), each ``(n,)``.

    The documents are evaluated in chunks of similar length, each cut to its longest document (the causal model
    gives every token the same probability whatever padding follows). Equal to
    :func:`memlens.train.autoregressive.sequence_signals` on the padded arrays, with ``log_likelihood`` divided
    by the number of predicted tokens (``lengths - 1``).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n = tokens.shape[0]
    out = {name: np.empty(n, dtype=np.float64) for name in TEXT_SIGNALS}
    order = np.argsort(lengths, kind="stable")
    for lo in range(0, n, batch_size):
        ix = order[lo:lo + batch_size]
        t = int(lengths[ix].max())
        sig = sequence_signals(model, tokens[ix, :t], lengths=lengths[ix], batch_size=batch_size)
        out["loss"][ix] = sig["loss"]
        out["log_likelihood"][ix] = -sig["loss"]
        out["token_accuracy"][ix] = sig["token_accuracy"]
    return out


def train_text_population(dataset: TextDataset, *, masks, config: CharLMConfig | None = None, seed=0,
                          model_offset: int = 0, progress: Callable | None = None, on_model: Callable | None = None,
                          block_size: int | None = None, threads: int = 1) -> Population:
    """Train one byte-level language model per mask row and collect per-document signals.

    Parameters
    ----------
    dataset : memlens.data.TextDataset
    masks : array of bool, shape (n_models, n_train)
        ``masks[k, i]`` is True when training document ``i`` is in model ``k``'s training set.
    config : CharLMConfig, optional
        Model and training (default ``CharLMConfig()``: a 2-layer width-64 transformer, 20 epochs).
    seed : int
        Run seed; model ``k`` uses ``model_seeds(seed, n_models, start=model_offset)[k]``.
    model_offset : int
        Global index of the first row when ``masks`` is a shard of a larger run.
    progress : callable, optional
        ``progress(n_models_done)`` after each block of models.
    on_model : callable, optional
        ``on_model(k, model) -> dict[split][name] -> (n,) array, or None``: called with each trained
        :class:`AutoregressiveModel` (``k`` indexes the rows of ``masks``); the returned arrays are stacked into
        extra signals ``(n_models, n)`` of the population. Every model must return the same splits and names.
        This is how per-model measurements (canary exposure, extraction) enter a population without keeping
        the weights.
    block_size : int, optional
        Transformers trained together in one stacked pass (1 trains them one at a time). Speed and memory only:
        results agree up to floating-point rounding. Default: 8 for ``width <= 32`` and 1 above, from side-by-side
        measurements on 1 core (fortunes documents of <= 100 characters; time per model-step, stacked x8 against
        one at a time): width 16, batch 8: 1.7x faster stacked; width 32: 1.1x; width 64 (the default model):
        0.96x, since its products are already large enough to keep the core busy and attention costs the same
        either way.
    threads : int
        Torch/BLAS threads (one per process by default).

    Returns
    -------
    Population
        Masks, seeds, signals ``log_likelihood``, ``token_accuracy``, ``loss`` of shape ``(n_models, n)`` on
        splits ``train`` and ``test`` (plus ``on_model``'s), provenance (dataset name and fingerprint, config,
        steps, seconds).
    """
    if not isinstance(dataset, TextDataset):
        raise MemlensInputError(f"dataset must be a memlens.data.TextDataset (from load_text_dataset(...)); got "
                                f"{type(dataset).__name__}")
    config = CharLMConfig() if config is None else config
    if not isinstance(config, CharLMConfig):
        raise MemlensInputError(f"config must be a CharLMConfig or None; got {type(config).__name__}")
    masks = check_masks("masks", masks, n_examples=dataset.n_train, min_models=1, nonempty_rows="training document")
    seed = check_int_seed(seed, why="per-model seeds must be reproducible from the run's manifest")
    model_offset = check_int("model_offset", model_offset, min_value=0)
    threads = check_int("threads", threads, min_value=1)
    if block_size is None:
        block_size = DEFAULT_STACKED_BLOCK if config.width <= STACK_MAX_WIDTH else 1
    block_size = check_int("block_size", block_size, min_value=1)
    for name, fn in (("progress", progress), ("on_model", on_model)):
        if fn is not None and not callable(fn):
            raise MemlensInputError(f"{name} must be a callable or None; got {fn!r}")
    need = dataset.max_tokens()
    arch_cfg = config.model_config(need)
    if arch_cfg.context_length < need:
        raise MemlensInputError(f"config.context_length={config.context_length} is shorter than the longest document "
                                f"({need} tokens with BOS and EOS); raise it, or load the corpus with a smaller "
                                "max_chars")
    if config.arch != "transformer":
        block_size = 1
    tr_tok, tr_len = encode_texts(dataset.train_texts, max_len=need)
    te_tok, te_len = encode_texts(dataset.test_texts, max_len=need)
    n_models = masks.shape[0]
    seeds = model_seeds(seed, n_models, start=model_offset)

    signals = {split: {name: np.empty((n_models, n), dtype=np.float32) for name in TEXT_SIGNALS}
               for split, n in (("train", dataset.n_train), ("test", dataset.n_test))}
    extra: dict = {}
    t_train = t_eval = 0.0
    with limit_threads(threads), torch.random.fork_rng(devices=[]):
        for lo in range(0, n_models, block_size):
            hi = min(lo + block_size, n_models)
            t0 = time.perf_counter()
            models = _train_block(config, arch_cfg, tr_tok, tr_len, masks[lo:hi], seeds[lo:hi],
                                  stacked=hi - lo > 1)
            t1 = time.perf_counter()
            for j, model in enumerate(models):
                k = lo + j
                record_model(signals, extra, k, n_models, model, on_model,
                             {split: text_signals(model, tok, ln)
                              for split, tok, ln in (("train", tr_tok, tr_len), ("test", te_tok, te_len))})
            t_train += t1 - t0
            t_eval += time.perf_counter() - t1
            del models
            if progress is not None:
                progress(hi)
    merge_extra(signals, extra)
    provenance = {
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint(),
        "model": {"name": "char-lm", **config.to_dict(), "context_length": arch_cfg.context_length,
                  "vocab_size": VOCAB_SIZE, "n_parameters": make_autoregressive_model(arch_cfg).n_parameters},
        "steps": [config.n_steps(int(c)) for c in masks.sum(1)],
        "memlens_version": __version__,
        "seed": seed,
        "model_offset": model_offset,
        "n_models": n_models,
        "block_size": block_size,
        "seconds_train": t_train,
        "seconds_signals": t_eval,
    }
    return Population(masks=masks, signals=signals, seeds=seeds, provenance=provenance)


def record_model(signals: dict, extra: dict, k: int, n_models: int, model, on_model, by_split: dict) -> None:
    """Store model ``k``'s per-document signals (``by_split[split][name] -> (n,)``) and its ``on_model`` extras."""
    for split, sig in by_split.items():
        for name in TEXT_SIGNALS:
            signals[split][name][k] = sig[name]
    if on_model is not None:
        _add_extra(extra, on_model(k, model), k, n_models)


def merge_extra(signals: dict, extra: dict) -> None:
    """Add the ``on_model`` signals to a population's (refusing a name the population already has)."""
    for split, named in extra.items():
        for name, arr in named.items():
            if split in signals and name in signals[split]:
                raise MemlensInputError(f"on_model returned signal {split!r}/{name!r}, which the population already "
                                        "has; rename it")
            signals.setdefault(split, {})[name] = arr


def _add_extra(extra: dict, got, k: int, n_models: int) -> None:
    if got is None:
        if extra:
            raise MemlensInputError(f"on_model returned None for model {k} but signals for earlier models; return "
                                    "the same splits and names for every model")
        return
    if not isinstance(got, dict):
        raise MemlensInputError(f"on_model must return dict[split][name] -> (n,) array or None; got "
                                f"{type(got).__name__} for model {k}")
    keys = {(s, n) for s, named in got.items() for n in named}
    have = {(s, n) for s, named in extra.items() for n in named}
    if have and keys != have:
        raise MemlensInputError(f"on_model returned signals {sorted(keys)} for model {k} but {sorted(have)} before; "
                                "return the same splits and names for every model")
    if not have and k > 0:
        raise MemlensInputError(f"on_model returned signals for model {k} but None for earlier models")
    for split, named in got.items():
        for name, arr in named.items():
            arr = np.asarray(arr, dtype=np.float32).reshape(-1)
            dest = extra.setdefault(split, {}).get(name)
            if dest is None:
                dest = extra[split][name] = np.full((n_models, arr.size), np.nan, dtype=np.float32)
            if arr.size != dest.shape[1]:
                raise MemlensInputError(f"on_model signal {split!r}/{name!r} has {arr.size} values for model {k} and "
                                        f"{dest.shape[1]} before; return arrays of one length per split")
            dest[k] = arr
