"""``train_hf_population``: one fine-tuned Hugging Face causal LM per mask row, into a :class:`memlens.Population`.

The text audit's population with a Hugging Face model (``model="hf:PATH"`` or ``"hf-config:NAME"``): model ``k``
starts from the given checkpoint (``hf:PATH``, every model from the same weights) or from a fresh initialization
of a small configuration with its own seed (``hf-config:NAME``, :data:`memlens.models.hf.TINY_CONFIGS`, with a
byte-level BPE tokenizer trained on the corpus's public documents), and is fine-tuned on its own documents
(``masks[k]``) by :func:`memlens.models.hf.fine_tune`. It is then scored on every train and test document, giving
the text audit's per-document signals (``token_accuracy``, ``log_likelihood``, ``loss``; Zhang et al. 2021, §3) in
the model's tokens, and handed to ``on_model`` (canary exposure, extraction) while it is in memory. Models are
trained one at a time (a Hugging Face model is not stacked along a model axis); no weights are kept.

Model ``k`` (global index ``model_offset + k``) gets the seed ``model_seeds(seed, n, start=model_offset)[k]`` for
its initialization, minibatch order and dropout, so shards trained separately concatenate into the same
population.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .._random import check_int_seed, model_seeds
from .._threads import limit_threads
from .._validation import MemlensInputError, MemlensTrainingError, check_float, check_int, check_masks
from .._version import __version__
from ..data.text import TextDataset
from ..models import hf
from ..models.hf import TINY_CONFIGS, score_texts
from ..population import Population
from .text_population import TEXT_SIGNALS, check_training_fields, merge_extra, record_model

__all__ = ["HFTrainConfig", "HFModelSpec", "parse_hf_model", "train_hf_population", "hf_text_signals",
           "is_hf_model_name"]

_PREFIXES = ("hf:", "hf-config:")


@dataclass(frozen=True)
class HFTrainConfig:
    """How each Hugging Face model of a population is fine-tuned.

    Parameters
    ----------
    epochs : float
        Passes over the model's own documents (default 20: small corpora, memorization is what is measured).
    steps : int or None
        Fixed optimizer steps instead of epochs.
    batch_size : int
    lr : float
        Peak learning rate (AdamW; linear warm-up over ``warmup`` of the steps, then linear decay).
    weight_decay, warmup, max_grad_norm : float
    vocab_size : int
        BPE vocabulary of the tokenizer trained for ``hf-config:`` models (ignored for ``hf:PATH``).
    context_length : int
        Context of ``hf-config:`` models (documents longer than this are cut into pieces for training).
    """

    epochs: float = 20.0
    steps: int | None = None
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup: float = 0.1
    max_grad_norm: float = 1.0
    vocab_size: int = 512
    context_length: int = 256

    def __post_init__(self):
        check_training_fields(self)
        check_float("warmup", self.warmup, min_value=0.0, max_value=1.0, max_inclusive=False)
        check_float("max_grad_norm", self.max_grad_norm, min_value=0.0)
        check_int("vocab_size", self.vocab_size, min_value=260)
        check_int("context_length", self.context_length, min_value=8)

    @classmethod
    def from_dict(cls, config) -> "HFTrainConfig":
        if config is None:
            return cls()
        if isinstance(config, cls):
            return config
        if not isinstance(config, Mapping):
            raise MemlensInputError(f"config must be an HFTrainConfig, a dict of its fields or None; got "
                                    f"{type(config).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise MemlensInputError(f"config has unknown field(s) {', '.join(unknown)} for a Hugging Face model; "
                                    f"HFTrainConfig fields are {', '.join(sorted(names))}")
        return cls(**dict(config))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HFModelSpec:
    """``hf:PATH`` (fine-tune a local checkpoint) or ``hf-config:NAME`` (train a small configuration from scratch)."""

    kind: str          # "checkpoint" or "config"
    target: str        # the folder / hub name, or the configuration's name

    @property
    def text(self) -> str:
        return ("hf:" if self.kind == "checkpoint" else "hf-config:") + self.target

    def identity(self) -> dict:
        """What the run's manifest records: the spec and, for a checkpoint folder, a hash of its config and
        weight files' names and sizes (a changed checkpoint is refused on resume)."""
        out = {"model": self.text}
        p = Path(self.target).expanduser()
        if self.kind == "checkpoint" and p.is_dir():
            h = hashlib.sha256()
            for f in sorted(p.iterdir()):
                if f.is_file():
                    h.update(f.name.encode())
                    h.update(str(f.stat().st_size).encode())
                    if f.name == "config.json":
                        h.update(f.read_bytes())
            out["checkpoint_files_sha256"] = h.hexdigest()
        return out


def is_hf_model_name(model) -> bool:
    return isinstance(model, str) and model.startswith(_PREFIXES)


def parse_hf_model(model: str) -> HFModelSpec:
    """``"hf:PATH"`` or ``"hf-config:NAME"`` -> :class:`HFModelSpec` (checked)."""
    if model.startswith("hf-config:"):
        name = model[len("hf-config:"):]
        if name not in TINY_CONFIGS:
            raise MemlensInputError(f"model {model!r}: hf-config:NAME takes one of {', '.join(TINY_CONFIGS)}; got "
                                    f"{name!r}", param="model")
        return HFModelSpec("config", name)
    if model.startswith("hf:"):
        path = model[len("hf:"):]
        if not path:
            raise MemlensInputError("model 'hf:' needs a checkpoint folder after the colon, e.g. hf:./my-gpt2",
                                    param="model")
        return HFModelSpec("checkpoint", path)
    raise MemlensInputError(f"model must start with hf: or hf-config: for a Hugging Face model; got {model!r}",
                            param="model")


def base_model(spec: HFModelSpec, config: HFTrainConfig, *, tokenizer_texts: Sequence[str], seed: int):
    """The model every population member starts from (a checkpoint) or a factory of fresh ones (a config):
    returns ``make(model_seed) -> CausalLM``."""
    if spec.kind == "checkpoint":
        base = hf.load_causal_lm(spec.target, what="model")
        return lambda _seed: hf.clone_causal_lm(base), base
    tok = hf.train_tokenizer(list(tokenizer_texts), vocab_size=config.vocab_size)
    cfg = hf.tiny_config(spec.target, tok, context_length=config.context_length)
    probe = hf.new_causal_lm(cfg, tok, seed=seed, name=spec.text)
    return (lambda s: hf.new_causal_lm(cfg, tok, seed=int(s), name=spec.text)), probe


def hf_text_signals(lm, texts: Sequence[str], *, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Per-document ``log_likelihood`` (mean token log-likelihood, nats), ``token_accuracy`` and ``loss`` under
    a Hugging Face model, each ``(n,)``."""
    sc = score_texts(lm, list(texts), batch_size=batch_size)
    ll = sc.mean_logprob()
    return {"log_likelihood": ll, "token_accuracy": sc.token_accuracy(), "loss": -ll}


def train_hf_population(dataset, *, masks, spec: HFModelSpec, config: HFTrainConfig | None = None, seed=0,
                        tokenizer_texts: Sequence[str] | None = None, model_offset: int = 0,
                        progress: Callable | None = None, on_model: Callable | None = None,
                        threads: int = 1) -> Population:
    """Fine-tune one Hugging Face causal LM per mask row and collect per-document signals.

    Parameters
    ----------
    dataset : memlens.data.TextDataset
    masks : array of bool, shape (n_models, n_train)
    spec : HFModelSpec
    config : HFTrainConfig, optional
    seed : int
    tokenizer_texts : sequence of str, optional
        Texts the ``hf-config:`` tokenizer is trained on (default: the training documents); the text audit passes
        the corpus's documents without the canaries, so no secret becomes a token of its own.
    model_offset : int
    progress : callable, optional
        ``progress(n_models_done)`` after each model.
    on_model : callable, optional
        ``on_model(k, lm) -> dict[split][name] -> (n,) array`` (see
        :func:`memlens.train.text_population.train_text_population`).
    threads : int

    Returns
    -------
    Population
        Signals ``log_likelihood``, ``token_accuracy``, ``loss`` on ``train`` and ``test`` (plus ``on_model``'s),
        provenance with the model's description, steps and seconds.
    """
    if not isinstance(dataset, TextDataset):
        raise MemlensInputError(f"dataset must be a memlens.data.TextDataset; got {type(dataset).__name__}")
    config = HFTrainConfig.from_dict(config)
    masks = check_masks("masks", masks, n_examples=dataset.n_train, min_models=1, nonempty_rows="training document")
    seed = check_int_seed(seed, why="per-model seeds must be reproducible from the run's manifest")
    model_offset = check_int("model_offset", model_offset, min_value=0)
    threads = check_int("threads", threads, min_value=1)
    n_models = masks.shape[0]
    seeds = model_seeds(seed, n_models, start=model_offset)
    signals = {split: {name: np.empty((n_models, n), dtype=np.float32) for name in TEXT_SIGNALS}
               for split, n in (("train", dataset.n_train), ("test", dataset.n_test))}
    extra: dict = {}
    steps, t_train, t_eval = [], 0.0, 0.0
    train_texts, test_texts = list(dataset.train_texts), list(dataset.test_texts)
    with limit_threads(threads):
        make, probe = base_model(spec, config, tokenizer_texts=tokenizer_texts or train_texts, seed=seed)
        describe = probe.describe()
        train_ids = hf.encode(probe, train_texts)          # one tokenizer for every model of the population
        del probe
        for k in range(n_models):
            t0 = time.perf_counter()
            lm = make(int(seeds[k]))
            own = [train_ids[i] for i in np.flatnonzero(masks[k])]
            info = hf.fine_tune(lm, own, epochs=config.epochs, steps=config.steps, batch_size=config.batch_size,
                                lr=config.lr, weight_decay=config.weight_decay, warmup=config.warmup,
                                max_grad_norm=config.max_grad_norm, seed=int(seeds[k]))
            if not np.isfinite(info["final_loss"]):
                raise MemlensTrainingError(f"model {model_offset + k}: the training loss became non-finite; lower the "
                                           f"learning rate (lr={config.lr})")
            steps.append(info["steps"])
            t1 = time.perf_counter()
            record_model(signals, extra, k, n_models, lm, on_model,
                         {split: hf_text_signals(lm, texts) for split, texts in (("train", train_texts),
                                                                                  ("test", test_texts))})
            t_train += t1 - t0
            t_eval += time.perf_counter() - t1
            del lm
            if progress is not None:
                progress(k + 1)
    merge_extra(signals, extra)
    provenance = {
        "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
        "model": {**describe, **spec.identity(), **config.to_dict()},
        "steps": steps, "memlens_version": __version__, "seed": seed, "model_offset": model_offset,
        "n_models": n_models, "seconds_train": t_train, "seconds_signals": t_eval,
    }
    return Population(masks=masks, signals=signals, seeds=seeds, provenance=provenance)
