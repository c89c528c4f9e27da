"""The text audit: a population of small language models, canaries, exposure, extraction, counterfactual memorization.

This is ``memlens audit --dataset fortunes --model char-lm`` (or ``--text FILE``) as a library function. It trains
``n_models`` byte-level language models (:mod:`memlens.train.text_population`) on random subsets of a corpus's
documents into which secret **canaries** have been inserted (Carlini et al. 2019, "The Secret Sharer", §3), and
measures, per model and across the population:

* **exposure** of every canary, by exact rank of its secret among every candidate of the format's randomness space
  (§3, Definition 4) or by the skew-normal extrapolation (§4.3) where the space is too large to enumerate;
* **extraction**: whether greedy decoding from the canary's prefix reproduces its secret, and whether greedy
  decoding from a document's first tokens reproduces the document's next tokens exactly (discoverable
  memorization, Carlini et al. 2022/2023, "Quantifying Memorization Across Neural Language Models");
* the **ranking attack** of Carlini et al. 2021 ("Extracting Training Data from Large Language Models", §5.1):
  perplexity, zlib ratio, lowercase ratio and the ratio to a smaller reference model, evaluated as membership
  scores (IN versus OUT documents) over the population;
* **counterfactual memorization** (Zhang et al. 2021, "Counterfactual Memorization in Neural Language Models",
  §2): the Feldman–Zhang estimator with a per-document metric (per-token accuracy, log-likelihood), and
  counterfactual influence of training documents on test documents, with reasons why a document is memorized.

Canary design (documented decision): every canary is inserted ``repetitions[c]`` times, and all copies of one
canary are IN or OUT **together**, for exactly half of the models (balanced masks over the canary axis). Each model
therefore sees each canary either exactly ``repetitions[c]`` times or never: exposure against repetitions is
measured on the IN models with a known count, and the OUT models (which never saw that secret) are its control:
the exposure of an unseen secret has ``Pr[exposure >= e] = 2^-e`` (mean 1.44 bits) and it is not extracted. Each
canary carries its own name (``"alice: my PIN is 4271"``), hence its own prefix, so greedy extraction is measured per
canary (from one shared prefix greedy decoding can produce only one secret). Documents are masked independently of
the canaries, each document IN for ``round(subset_ratio · n_models)`` models (:func:`text_audit_masks`), the
Feldman & Zhang (2020) estimator's design with balanced subsets.

Storage is the image audit's (:mod:`memlens.storage.runs`): shards of models written atomically into a run directory,
``resume=True`` continues a killed run, a changed config or corpus is refused. Each shard carries, beside the
per-document signals, the per-model canary exposure and extraction (the ``canary`` split), computed by the
trainer's ``on_model`` hook while the model is in memory, so no weights are kept.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import train as _train
from .._random import as_generator, check_int_seed
from .._validation import MemlensInputError, MemlensWarning, check_fraction, check_int, warn
from ..attacks.extraction import (
    canary_extraction,
    discoverable_memorization,
    generate_samples,
    ranking_attack,
    verbatim_matches,
)
from ..attacks.lm import lm_membership_scores
from ..attacks.lm_extraction import lm_continuations
from ..data import make_masks
from ..data.text import VOCAB_SIZE, TextDataset, encode_texts, load_text_dataset
from ..data.text_canaries import (  # noqa: F401  (re-exported: their first home was this module)
    DEFAULT_ALPHABET,
    DEFAULT_CANARY_TEMPLATE,
    DEFAULT_SECRET_LENGTH,
    CanaryFormat,
    NamedCanaries,
    canary_name,
    insert_named_canaries,
    make_named_canaries,
)
from ..measures import counterfactual_influence, counterfactual_memorization, explain_documents, noise_floor
from ..measures.exposure import canary_exposure
from ..measures.lm_canaries import lm_canary_exposure, lm_canary_extraction
from ..measures.text import (  # noqa: F401  (re-exported)
    RANKING_SCORES,
    TOP_SAMPLES,
    VERBATIM_BYTES,
    canary_membership,
    canary_table,
    exposure_by_repetition,
    masked_mean,
    ranking_attack_auc,
    sample_extraction,
)
from ..models.char_lm import AutoregressiveConfig
from ..models.hf import CausalLM, decode, decode_ids, load_causal_lm
from ..population import Population
from ..report.tables import canaries_csv, explanation_text, text_examples_csv, text_pairs_csv
from ..report.text_html import render_text_report
from ..train import text_population as _text_population  # looked up at call time (tests count training calls)
from ..train.hf_population import HFTrainConfig, parse_hf_model, train_hf_population
from ..train.text_population import CharLMConfig
from . import pipeline
from .summaries import TextAuditSummary
from .text_defaults import DEFAULT_REPETITIONS, TEXT_DATASETS, TEXT_MODELS

__all__ = ["TextAuditResult", "run_text_audit", "TEXT_DATASETS", "TEXT_MODELS", "DEFAULT_CANARY_TEMPLATE",
           "DEFAULT_REPETITIONS", "text_audit_masks", "canary_membership", "canary_table", "ranking_attack_auc",
           "exposure_by_repetition", "TEXT_RESULT_FILES", "NamedCanaries", "make_named_canaries", "insert_named_canaries",
           "canary_measures", "canary_name", "sample_extraction"]

#: Feldman–Zhang threshold for "memorized" (on per-token accuracy, a difference of fractions).
MEM_THRESHOLD = 0.25
#: Most influenced test documents kept per training document, and the influence threshold of pairs.
TOP_K = 3
INFL_THRESHOLD = 0.15
#: Files of a text run beside the image audit's own (``--overwrite`` removes them too).
TEXT_RESULT_FILES = ("canaries.csv",)
#: Seed-sequence entries of the document masks, the canary masks and the canaries themselves.
_MASK_STREAM, _CANARY_MASK_STREAM, _CANARY_STREAM, _SUBSAMPLE_STREAM = 0x6D61736B, 0x636D736B, 0x63616E79, 0x73756273
_SAMPLE_STREAM = 0x736D706C
#: The extraction pipeline of Carlini et al. 2021 (§5) per model: samples generated from BOS, their length and the
#: sampling's top-k (how many top-ranked samples are checked, and the verbatim window: memlens.measures.text).
N_SAMPLES, SAMPLE_LEN, SAMPLE_TOP_K = 64, 48, 40


@dataclass(frozen=True, eq=False)
class TextAuditResult:
    """Everything a text audit computed, with the files it wrote.

    Attributes
    ----------
    out : Path
        The run directory (``manifest.json``, ``population/``, ``examples.csv``, ``canaries.csv``,
        ``summary.json``, ``report.html``).
    summary : dict
        The content of ``summary.json``.
    dataset : memlens.data.text.TextDataset
        The corpus the models trained on: the documents, then the canary copies (``copy_of``).
    population : Population
        Signals ``log_likelihood``, ``token_accuracy``, ``loss``, ``extracted`` on ``train`` (documents and canary
        copies) and ``test``; ``exposure``, ``log_perplexity``, ``extracted`` on ``canary`` (n_models, n_canaries).
    copy_of : ndarray of int, shape (n_train,)
        Canary index of each training column, -1 for a corpus document.
    canaries : NamedCanaries or None
    canary_in : ndarray of bool, shape (n_models, n_canaries)
        Whether model k trained on (all copies of) canary c.
    memorization : memlens.measures.MemorizationResult
        Counterfactual memorization of every training column on per-token accuracy, shape (n_train,).
    memorization_ll : memlens.measures.MemorizationResult
        The same on mean token log-likelihood (nats per token).
    influence : memlens.measures.InfluenceResult
        Counterfactual influence of training documents on test documents (per-token accuracy).
    canary_rows : dict of ndarray
        :func:`canary_table`: per canary, repetitions, exposure and extraction among IN and OUT models.
    explanations : list or None
        Reasons per document from :func:`memlens.measures.counterfactual.explain_documents` (None if unavailable).
    ranking : dict
        :func:`ranking_attack_auc`: membership AUC of each ranking-attack score, IN vs OUT documents.
    shards_trained : tuple of int
    record : memlens.audits.summaries.TextAuditSummary
        The summary, typed (``summary`` is its ``to_json()``).
    """

    out: Path
    summary: Mapping[str, Any]
    dataset: Any
    population: Population
    copy_of: np.ndarray
    canaries: Any
    canary_in: np.ndarray
    memorization: Any
    memorization_ll: Any
    influence: Any
    canary_rows: Mapping[str, np.ndarray]
    explanations: Any = None
    ranking: Mapping[str, Any] = field(default_factory=dict)
    shards_trained: tuple = field(default=())
    record: Any = None


# ---------------------------------------------------------------------------------------------- masks
def text_audit_masks(n_models: int, copy_of, *, subset_ratio: float, seed: int,
                     canary_ratio: float = 0.5) -> np.ndarray:
    """The text audit's training subsets, shape ``(n_models, n_train)`` bool.

    Corpus documents (``copy_of == -1``) are balanced: each document is IN for exactly
    ``round(subset_ratio · n_models)`` models (so with few models every document still has IN and OUT models;
    each model trains on about ``subset_ratio · n_documents`` documents), or, where that count would be 0 or
    ``n_models``, uniform subsets of ``round(subset_ratio · n_documents)`` per model (Feldman & Zhang 2020,
    Algorithm 1). Canaries are masked as units: canary ``c`` is IN for exactly
    ``round(canary_ratio · n_models)`` models (balanced), and every copy of it follows, so a model sees canary
    ``c`` either ``repetitions[c]`` times or never.

    Parameters
    ----------
    n_models : int >= 2
    copy_of : array of int, shape (n_train,)
        Canary index of each training column, -1 for a document.
    subset_ratio, canary_ratio : float in (0, 1)
    seed : int
        Masks are drawn from ``SeedSequence([seed, stream])``, apart from the per-model training seeds.
    """
    copy_of = np.asarray(copy_of, dtype=np.int64)
    docs = np.flatnonzero(copy_of < 0)
    masks = np.zeros((n_models, copy_of.size), dtype=bool)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _MASK_STREAM]))
    balanced = 1 <= round(subset_ratio * n_models) <= n_models - 1
    masks[:, docs] = make_masks(n_models, docs.size, p=subset_ratio, seed=rng, balanced=balanced)
    n_canaries = int(copy_of.max()) + 1 if copy_of.size else 0
    if n_canaries:
        crng = np.random.default_rng(np.random.SeedSequence([int(seed), _CANARY_MASK_STREAM]))
        cmask = make_masks(n_models, n_canaries, p=canary_ratio, seed=crng, balanced=True)
        copies = np.flatnonzero(copy_of >= 0)
        masks[:, copies] = cmask[:, copy_of[copies]]
    return masks


# ---------------------------------------------------------------------------------------------- analysis


# ---------------------------------------------------------------------------------------------- inputs
def _load_corpus(dataset, *, text_file, delimiter, max_chars, n_documents, seed):
    """The corpus (a TextDataset), validated and subsampled to at most ``n_documents`` training documents."""
    if text_file is not None:
        if not isinstance(text_file, (str, Path)) or str(text_file) == "":
            raise MemlensInputError(f"text_file must be a path to a UTF-8 text file; got {text_file!r}")
        ds = load_text_dataset(Path(text_file), delimiter=delimiter, max_chars=max_chars, seed=seed)
    elif isinstance(dataset, str):
        if dataset not in TEXT_DATASETS:
            raise MemlensInputError(f"dataset must be one of {', '.join(TEXT_DATASETS)} for the text audit; got "
                                    f"{dataset!r} (or pass your own corpus with --text FILE)")
        ds = load_text_dataset(dataset, max_chars=max_chars, seed=seed)
    elif isinstance(dataset, TextDataset):
        ds = dataset
    else:
        raise MemlensInputError(f"dataset must be 'fortunes' or a memlens.data.text.TextDataset; got "
                                f"{type(dataset).__name__}")
    if n_documents is not None and ds.n_train > n_documents:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SUBSAMPLE_STREAM]))
        tr = np.sort(rng.choice(ds.n_train, size=n_documents, replace=False))
        n_te = min(ds.n_test, max(1, n_documents // 4))
        te = np.sort(rng.choice(ds.n_test, size=n_te, replace=False))
        ds = ds.subset(train_index=tr, test_index=te)
    if ds.n_train < 2:
        raise MemlensInputError(f"the corpus must hold at least 2 training documents; got {ds.n_train} from "
                                f"{ds.source!r}: provide more documents (one per line, or set --delimiter)")
    if ds.n_test < 1:
        raise MemlensInputError(f"the corpus must hold at least 1 test document; got 0 from {ds.source!r}")
    return ds


def _repetitions(canary_repetitions, canaries_per_repetition: int) -> np.ndarray:
    if isinstance(canary_repetitions, (int, np.integer)):
        canary_repetitions = (int(canary_repetitions),)
    try:
        reps = [int(r) for r in canary_repetitions]
        ok = all(float(r) == float(r0) for r, r0 in zip(reps, canary_repetitions))
    except (TypeError, ValueError):
        ok, reps = False, []
    if not ok or any(r < 0 for r in reps):
        raise MemlensInputError(f"canary_repetitions must be non-negative integers (copies of each canary, e.g. "
                                f"1,2,4,8,16; 0 for no canaries); got {canary_repetitions!r}")
    reps = [r for r in reps if r > 0]
    return np.repeat(np.array(sorted(reps), dtype=np.int64), canaries_per_repetition)


def _canary_format(template: str, alphabet: str, length: int):
    """The canary template validated (a CanaryFormat); errors name the audit's parameters."""
    if not isinstance(template, str) or template.count("{secret}") != 1:
        raise MemlensInputError(f"canary_format must contain '{{secret}}' exactly once, e.g. "
                                f"'my PIN is {{secret}}'; got {template!r}")
    try:
        return CanaryFormat(template=template, alphabet=alphabet, length=length)
    except MemlensInputError as exc:
        raise MemlensInputError(f"canary_format {template!r} with alphabet {alphabet!r} and length {length}: "
                                f"{exc}") from None


def _charlm_config(config, *, max_tokens: int):
    """The char-LM config of the audit: ``config`` (a CharLMConfig, a dict of its fields, or None for the
    defaults), with the context length raised to the corpus's longest document."""
    if config is None:
        cfg = CharLMConfig()
    elif isinstance(config, CharLMConfig):
        cfg = config
    elif isinstance(config, Mapping):
        names = {f.name for f in fields(CharLMConfig)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise MemlensInputError(f"config has unknown field(s) {', '.join(unknown)}; CharLMConfig fields are "
                                    f"{', '.join(sorted(names))}")
        cfg = CharLMConfig(**dict(config))
    else:
        raise MemlensInputError(f"config must be a CharLMConfig, a dict of its fields or None; got "
                                f"{type(config).__name__}")
    if cfg.context_length is None or cfg.context_length < max_tokens:
        cfg = replace(cfg, context_length=int(max_tokens))
    return cfg


def _config_dict(cfg) -> dict:
    if hasattr(cfg, "to_dict"):
        return dict(cfg.to_dict())
    return asdict(cfg)


class _RunData:
    """What :class:`memlens.storage.runs.RunDir` records of a dataset, for a text corpus."""

    def __init__(self, ds, max_tokens: int):
        self.name, self.n_train, self.n_test = ds.name, ds.n_train, ds.n_test
        self.n_features, self.n_classes = int(max_tokens), VOCAB_SIZE
        self._fp = ds.fingerprint()

    def fingerprint(self) -> str:
        return self._fp


# ---------------------------------------------------------------------------------------------- canaries


def canary_measures(model, canaries: NamedCanaries, *, method: str = "auto", seed=0) -> dict[str, np.ndarray]:
    """Exposure (bits), log-perplexity (bits) and greedy extraction (0/1) of every canary under one model.

    Each canary is ranked within its own randomness space (:func:`memlens.measures.exposure.canary_exposure`,
    Carlini et al. 2019, Def. 4, or the skew-normal extrapolation of §4.3) and extracted when greedy decoding from
    its own prefix reproduces its secret (:func:`memlens.attacks.extraction.canary_extraction`).

    Returns
    -------
    dict with ``exposure``, ``log_perplexity``, ``extracted``, each of shape (n_canaries,)
    """
    rng = as_generator(seed)
    n = canaries.n_canaries
    out = {"exposure": np.empty(n), "log_perplexity": np.empty(n), "extracted": np.empty(n)}
    hf_model = _is_hf(model)
    for c, cs in enumerate(canaries.sets):
        if hf_model:                      # subword tokens: memlens.measures.lm_canaries
            ex = lm_canary_exposure(model, cs, method=method, seed=rng)
            extracted = bool(lm_canary_extraction(model, cs)[0])
        else:
            ex = canary_exposure(model, cs, method=method, seed=rng)
            extracted = bool(canary_extraction(model, cs).extracted[0])
        out["exposure"][c] = float(ex.exposure[0])
        out["log_perplexity"][c] = float(ex.log_perplexity[0])
        out["extracted"][c] = float(extracted)
    return out


def _is_hf(model) -> bool:
    """Whether ``model`` is a Hugging Face causal LM (memlens.models.hf.CausalLM) rather than a byte-level model."""
    return isinstance(model, CausalLM)


# ---------------------------------------------------------------------------------------------- per model
def _fit_context(texts, max_tokens: int) -> list[str]:
    """Cut generated texts so their encoding (BOS, bytes, EOS) fits ``max_tokens`` (invalid bytes decode to the
    3-byte replacement character, so a sample may grow)."""
    return [t.encode("utf-8")[:max_tokens - 2].decode("utf-8", errors="ignore") for t in texts]


def _make_on_model(train_texts: Sequence[str], test_texts: Sequence[str], canaries, *, prefix_len: int,
                   suffix_len: int, exposure_method: str, reference_model, seed: int, offset: int = 0,
                   masks=None, n_samples: int = N_SAMPLES):
    """The trainer's ``on_model`` hook: per-model canary exposure and extraction, discoverable memorization and
    ranking-attack scores of every document, and the generate-rank-verify pipeline of Carlini et al. 2021 on
    ``n_samples`` samples (split ``samples``: ranking scores, ``verbatim`` = contains ``VERBATIM_BYTES``
    consecutive bytes of one of the model's own training documents, ``verbatim_unseen`` = of a training document
    the model did not train on, the control), computed while the model is in memory (no weights are kept)."""
    def on_model(k, model):
        if _is_hf(model):
            return _hf_on_model(k, model)
        out: dict = {"train": {}, "test": {}}
        if canaries is not None and canaries.n_canaries:
            out["canary"] = canary_measures(model, canaries, method=exposure_method, seed=np.random.default_rng(
                np.random.SeedSequence([seed, _CANARY_STREAM, offset + int(k)])))
        with warnings.catch_warnings():  # documents too short for prefix + suffix: NaN, counted in the summary
            warnings.simplefilter("ignore", MemlensWarning)
            for split, texts in (("train", train_texts), ("test", test_texts)):
                ext = discoverable_memorization(model, list(texts), prefix_len=prefix_len, suffix_len=suffix_len)
                out[split]["extracted"] = _as_float(ext)
        scores = ranking_attack(model, list(train_texts), reference_model=reference_model).scores
        for name in RANKING_SCORES:
            if name in scores:
                out["train"][f"rank_{name}"] = np.asarray(scores[name], dtype=np.float64)
        if masks is not None and n_samples:
            rng = np.random.default_rng(np.random.SeedSequence([seed, _SAMPLE_STREAM, offset + int(k)]))
            ctx = model.config.context_length
            samples = _fit_context(generate_samples(model, n_samples, max_new=min(SAMPLE_LEN, ctx - 2),
                                                    top_k=SAMPLE_TOP_K, seed=rng), ctx)
            sc = ranking_attack(model, samples, reference_model=reference_model).scores
            out["samples"] = _sample_signals(samples, {n: sc[n] for n in RANKING_SCORES if n in sc}, masks[k])
        return out

    def _sample_signals(samples, ranked, own):
        """Verbatim matches of generated samples with the model's own and with unseen documents, and their
        ranking scores (the ``samples`` split)."""
        own = np.asarray(own, dtype=bool)
        return {"verbatim": verbatim_matches(samples, [t for t, m in zip(train_texts, own) if m],
                                             n_bytes=VERBATIM_BYTES).astype(np.float64),
                "verbatim_unseen": verbatim_matches(samples, [t for t, m in zip(train_texts, own) if not m],
                                                    n_bytes=VERBATIM_BYTES).astype(np.float64),
                **{f"rank_{name}": np.asarray(v, dtype=np.float64) for name, v in ranked.items()}}

    def _hf_on_model(k, lm):
        """The same measurements with the model's subword tokens (prefix and suffix lengths count tokens)."""
        out: dict = {"train": {}, "test": {}}
        if canaries is not None and canaries.n_canaries:
            out["canary"] = canary_measures(lm, canaries, method=exposure_method, seed=np.random.default_rng(
                np.random.SeedSequence([seed, _CANARY_STREAM, offset + int(k)])))
        for split, texts in (("train", train_texts), ("test", test_texts)):
            res = lm_continuations(lm, list(texts), prefix_len=prefix_len, suffix_len=suffix_len, warn_short=False)
            out[split]["extracted"] = _as_float(res.exact)
        names = {"loss": "perplexity", "zlib": "zlib", "lowercase": "lowercase"}
        sc = lm_membership_scores(lm, list(train_texts), attacks=list(names)).scores
        for a, name in names.items():
            out["train"][f"rank_{name}"] = np.asarray(sc[a], dtype=np.float64)
        if masks is not None and n_samples and lm.bos_id is not None:
            rng = np.random.default_rng(np.random.SeedSequence([seed, _SAMPLE_STREAM, offset + int(k)]))
            gen = decode(lm, [np.array([lm.bos_id])] * n_samples, min(SAMPLE_LEN, lm.max_length - 1),
                         method="sample", top_k=SAMPLE_TOP_K, seed=rng)
            samples = decode_ids(lm, [[t for t in r if t != lm.bos_id] for r in gen])
            ss = lm_membership_scores(lm, samples, attacks=list(names)).scores
            out["samples"] = _sample_signals(samples, {name: ss[a] for a, name in names.items()}, masks[k])
        return out

    return on_model


def _as_float(flags) -> np.ndarray:
    """Extraction flags as floats (1/0), NaN where undefined (a document too short for prefix + suffix)."""
    arr = getattr(flags, "exact", flags)
    arr = np.asarray(arr)
    return arr.astype(np.float64)


def _reference_model(test_texts, cfg, *, seed: int):
    """A smaller model trained on the held-out test documents: the reference of the ranking attack's ratio
    score (Carlini et al. 2021, §5.1 "Small": the same distribution, none of the training documents)."""
    tokens, lengths = encode_texts(list(test_texts))
    width = max(8, int(getattr(cfg, "width", 64)) // 2)
    arch = getattr(cfg, "arch", "transformer")
    heads = max(1, min(int(getattr(cfg, "n_heads", 4)), width // 8)) if arch == "transformer" else 1
    while width % heads:
        heads -= 1
    ac = AutoregressiveConfig(vocab_size=VOCAB_SIZE, context_length=int(getattr(cfg, "context_length",
                                                                                 tokens.shape[1])),
                              width=width, depth=1, arch=arch, n_heads=heads)
    steps = int(getattr(cfg, "steps", 300) or 300) // 2
    run = _train.train_autoregressive(tokens, config=ac, lengths=lengths, steps=max(steps, 50),
                               batch_size=int(getattr(cfg, "batch_size", 32)), lr=float(getattr(cfg, "lr", 3e-3)),
                               seed=np.random.default_rng(np.random.SeedSequence([seed, 0x726566])))
    return run.model


# ---------------------------------------------------------------------------------------------- the audit
@pipeline.holds_run_locks
def run_text_audit(*, dataset="fortunes", text_file=None, delimiter: str | None = None, model: str = "char-lm",
                   n_models: int = 8, subset_ratio: float = 0.5, seed: int = 0, out="runs/text-audit",
                   resume: bool = False, overwrite: bool = False, shard_size: int = 4, progress: bool = True,
                   canary_format: str = DEFAULT_CANARY_TEMPLATE, canary_alphabet: str = DEFAULT_ALPHABET,
                   canary_length: int = DEFAULT_SECRET_LENGTH, canary_repetitions=DEFAULT_REPETITIONS,
                   canaries_per_repetition: int = 2, n_documents: int | None = 600, max_chars: int | None = 100,
                   config=None, prefix_len: int | None = None, suffix_len: int | None = None,
                   exposure_method: str = "auto",
                   reference_model: bool = True,
                   on_shard: Callable[[int, int, int], None] | None = None, executor="local",
                   ray_address: str | None = None, ray_num_cpus: int | None = None,
                   jobs: int | None = 1) -> TextAuditResult:
    """Train a population of small language models with inserted canaries, measure, and write the audit to ``out``.

    Every input is validated before any work starts; a refused start writes nothing and leaves an existing run
    directory as it was.

    Parameters
    ----------
    dataset : "fortunes" or memlens.data.text.TextDataset
        The corpus (ignored when ``text_file`` is given).
    text_file : path, optional
        A UTF-8 text file: one document per line, or separated by ``delimiter``.
    model : {"char-lm"}
        A byte-level language model (:class:`memlens.train.text_population.CharLMConfig`, ``config``).
    n_models : int >= 2
        Population size. Each canary is IN for half the models, so exposure IN/OUT averages over n_models / 2.
    subset_ratio : float in (0, 1)
        Fraction of the corpus documents each model trains on.
    seed : int >= 0
        Determines the document subsample, the canaries, the masks and every model's seed.
    out : str or Path
        Run directory: new, empty, or (with ``resume`` / ``overwrite``) an existing memlens run.
    resume, overwrite : bool
        Continue the run in ``out`` (finished shards reused), or replace it.
    shard_size : int
        Models per shard file.
    canary_format : str
        Template with ``{secret}`` once, e.g. ``"my PIN is {secret}"``.
    canary_alphabet, canary_length :
        The secret's characters and length: the randomness space has ``len(alphabet) ** length`` secrets.
    canary_repetitions : sequence of int
        Copies of each canary in the training set (e.g. 1, 2, 4, 8, 16); 0 or empty for no canaries.
    canaries_per_repetition : int >= 1
        Distinct canaries (different secrets) per repetition count.
    n_documents : int or None
        Use a random subset of at most this many training documents (and a quarter as many test documents);
        None keeps the whole corpus.
    max_chars : int or None
        Keep documents of at most this many characters (short documents keep the models small).
    config : CharLMConfig or dict, optional
        The model and its training (architecture, width, depth, steps, batch size, learning rate). Its context
        length is raised to the longest document.
    prefix_len, suffix_len : int, optional
        Discoverable memorization: greedy decoding from the first ``prefix_len`` tokens (after BOS) must reproduce
        the next ``suffix_len`` tokens exactly (documents shorter than that are NaN). Tokens are bytes for
        ``char-lm`` (default 16 and 16) and the model's subword tokens for Hugging Face models (default 8 and 8).
    exposure_method : {"auto", "rank", "extrapolate"}
        Exposure by exact rank over the whole space (feasible up to about 10^5 secrets) or by the skew-normal
        extrapolation (Carlini et al. 2019, §4.3).
    reference_model : bool
        Train a smaller model on the test documents as the reference of the ranking attack's ratio score.
    on_shard : callable, optional
        ``on_shard(k, n_done, n_shards)`` after shard ``k`` is written.
    executor, ray_address, ray_num_cpus, jobs
        Where the shards are trained, as in :func:`memlens.audits.image.run_audit`: ``"local"`` (this process, or
        ``jobs`` worker processes) or ``"ray"`` (Ray tasks, each shard written as it completes; not part of the run's
        identity).

    Returns
    -------
    TextAuditResult
    """
    t0 = time.perf_counter()
    n_models = check_int("n_models", n_models, min_value=2, hint="to have both IN and OUT models for every document")
    subset_ratio = check_fraction("subset_ratio", subset_ratio,
                                  hint="(the fraction of the documents each model trains on)")
    seed = check_int_seed(seed, why="it is recorded in the run's manifest")
    opts = pipeline.check_run_options(out=out, resume=resume, overwrite=overwrite, shard_size=shard_size,
                                      progress=progress, on_shard=on_shard, executor=executor,
                                      ray_address=ray_address, ray_num_cpus=ray_num_cpus, jobs=jobs)
    canaries_per_repetition = check_int("canaries_per_repetition", canaries_per_repetition, min_value=1)
    canary_length = check_int("canary_length", canary_length, min_value=1)
    hf_spec = None
    if isinstance(model, str) and model.startswith(("hf:", "hf-config:")):
        hf_spec = parse_hf_model(model)
    default_len = 8 if hf_spec is not None else 16
    prefix_len = check_int("prefix_len", default_len if prefix_len is None else prefix_len, min_value=1)
    suffix_len = check_int("suffix_len", default_len if suffix_len is None else suffix_len, min_value=1)
    if n_documents is not None:
        n_documents = check_int("n_documents", n_documents, min_value=2)
    if max_chars is not None:
        max_chars = check_int("max_chars", max_chars, min_value=1)
    if hf_spec is None and (not isinstance(model, str) or model not in TEXT_MODELS):
        raise MemlensInputError(f"model must be one of {', '.join(TEXT_MODELS)}, hf:PATH (fine-tune a local Hugging "
                                f"Face checkpoint) or hf-config:NAME for the text audit; got {model!r}")
    if hf_spec is not None:
        cfg_hf = HFTrainConfig.from_dict(config)     # checked before any work
        if hf_spec.kind == "checkpoint":
            load_causal_lm(hf_spec.target, what="model")   # a missing or broken checkpoint is refused up front
        reference_model = False                         # the ranking attack's reference is a char-LM of its own
    if exposure_method not in ("auto", "rank", "extrapolate"):
        raise MemlensInputError(f"exposure_method must be 'auto', 'rank' or 'extrapolate'; got {exposure_method!r}")
    reps = _repetitions(canary_repetitions, canaries_per_repetition)
    fmt = _canary_format(canary_format, canary_alphabet, canary_length)
    ds = _load_corpus(dataset, text_file=text_file, delimiter=delimiter, max_chars=max_chars,
                      n_documents=n_documents, seed=seed)
    pipeline.check_subset_size(subset_ratio, ds.n_train, what="n_documents", unit="documents")
    pipeline.check_target(opts, files=TEXT_RESULT_FILES)  # and lock the run directory for the rest of this call

    # ---- canaries inserted into the training documents
    canaries, copy_of = None, np.full(ds.n_train, -1, dtype=np.int64)
    full = ds
    if reps.size:
        crng = np.random.default_rng(np.random.SeedSequence([seed, _CANARY_STREAM]))
        canaries = make_named_canaries(fmt.template, alphabet=fmt.alphabet, length=fmt.length, repetitions=reps,
                                       seed=crng)
        texts, copy_of = insert_named_canaries(ds.train_texts, canaries, seed=crng)
        counts = np.ones(len(texts), dtype=np.int64)
        counts[copy_of < 0] = ds.train_counts
        counts[copy_of >= 0] = np.asarray(canaries.repetitions)[copy_of[copy_of >= 0]]
        groups = np.array([""] * len(texts), dtype=object)
        groups[copy_of < 0] = list(ds.train_groups)
        groups[copy_of >= 0] = "canary"
        full = ds.with_train_texts(texts, counts=counts, groups=tuple(groups.tolist()))
    max_tokens = full.max_tokens()
    cfg = _charlm_config(config, max_tokens=max_tokens) if hf_spec is None else cfg_hf
    model_config = _config_dict(cfg)

    # ---- the run's identity, masks and shard job; train the missing shards
    config_record = {
        # the identity holds the corpus's content (its fingerprint), not the file it was read from
        "kind": "text-audit", "dataset": full.name if text_file is None else "text file", "model": model,
        "model_config": model_config, **({} if hf_spec is None else {"model_identity": hf_spec.identity()}),
        "n_models": n_models, "subset_ratio": subset_ratio, "seed": seed,
        "n_documents": n_documents, "max_chars": max_chars, "delimiter": delimiter,
        "canaries": None if canaries is None else {
            "template": fmt.template, "alphabet": fmt.alphabet, "length": fmt.length,
            "repetitions": reps.tolist(), "names": list(canaries.names), "canary_ratio": 0.5,
            "masking": "all copies of a canary IN or OUT together, balanced over models"},
        "extraction": {"prefix_len": prefix_len, "suffix_len": suffix_len, "exposure_method": exposure_method,
                       "reference_model": bool(reference_model)},
        "masks": "documents: balanced, each IN for round(subset_ratio * n_models) models (uniform subsets of "
                 "round(subset_ratio * n_documents) where that is 0 or n_models), SeedSequence([seed, 'mask'])",
    }
    masks = text_audit_masks(n_models, copy_of, subset_ratio=subset_ratio, seed=seed)
    shared = {"full": full, "cfg": cfg, "seed": seed, "canaries": canaries, "prefix_len": prefix_len,
              "suffix_len": suffix_len, "exposure_method": exposure_method, "reference_model": None,
              "hf_spec": hf_spec, "tokenizer_texts": tuple(ds.train_texts) + tuple(ds.test_texts)}
    setup = (lambda run, threads: {"reference_model": _reference_model(full.test_texts, cfg, seed=seed)}) if reference_model \
        else None
    job = pipeline.ShardJob(_train_text_shard, shared=shared, desc=f"training {model} on {full.name}", setup=setup)
    trained = pipeline.train_run(opts, config=config_record, data=_RunData(full, max_tokens), masks=masks, job=job,
                                 result_files=TEXT_RESULT_FILES)
    run, pop = trained.run, trained.population
    run.save_population(pop)

    # ---- measure
    t_meas = time.perf_counter()
    with pipeline.phase(opts, "counterfactual memorization, influence, canaries and extraction"):
        analysis = _analyse(pop, full, copy_of, canaries, cfg)
    summary = TextAuditSummary(
        dataset=full.name, source=full.source, n_documents=int((copy_of < 0).sum()), n_test=full.n_test,
        n_train_columns=full.n_train, corpus=ds.description, model=model, model_config=model_config,
        n_models=n_models, subset_ratio=subset_ratio, seed=seed, mem_threshold=MEM_THRESHOLD,
        infl_threshold=INFL_THRESHOLD, prefix_len=prefix_len, suffix_len=suffix_len, analysis=analysis["summary"],
        run=pipeline.RunRecord.of(trained, opts), measure_seconds=time.perf_counter() - t_meas)
    files = {"examples.csv": text_examples_csv(full, copy_of, analysis), "pairs.csv": text_pairs_csv(analysis["pairs"])}
    if canaries is not None:
        files["canaries.csv"] = canaries_csv(canaries, analysis["canary_rows"])
    with pipeline.phase(opts, "examples.csv, pairs.csv, report.html"):
        summary = pipeline.write_results(
            run, files=files, summary=summary, t0=t0,
            report=lambda s: render_text_report(summary=s, dataset=full, copy_of=copy_of, canaries=canaries,
                                                analysis=analysis))
    return TextAuditResult(opts.out, summary.to_json(), full, pop, copy_of, canaries, analysis["canary_in"],
                           analysis["memorization"], analysis["memorization_ll"], analysis["influence"],
                           analysis["canary_rows"], analysis["explanations"], analysis["ranking"], trained.trained,
                           summary)


def _train_text_shard(full, *, masks, cfg, seed, model_offset, canaries, prefix_len, suffix_len, exposure_method,
                      reference_model, hf_spec=None, tokenizer_texts=(), progress=None):
    """Train the models of one shard and measure each one's canaries (the function every executor runs)."""
    hook = _make_on_model(full.train_texts, full.test_texts, canaries, prefix_len=prefix_len, suffix_len=suffix_len,
                          exposure_method=exposure_method, reference_model=reference_model, seed=seed,
                          offset=model_offset, masks=masks)
    if hf_spec is not None:
        return train_hf_population(full, masks=masks, spec=hf_spec, config=cfg, seed=seed,
                                   tokenizer_texts=list(tokenizer_texts), model_offset=model_offset, progress=progress,
                                   on_model=hook)
    return _text_population.train_text_population(full, masks=masks, config=cfg, seed=seed, model_offset=model_offset,
                                        progress=progress, on_model=hook)


# ---------------------------------------------------------------------------------------------- measures
def _explain(full, scores, docs):
    """Reasons for the corpus documents (not the canary copies), so the correlations describe the corpus."""
    try:
        return explain_documents(full, scores, index=docs)
    except Exception as exc:  # noqa: BLE001 - reasons are commentary; the audit must not fail for them
        warn(f"document explanations unavailable ({type(exc).__name__}: {exc})")
        return None


def _samples_summary(pop: Population) -> dict:
    """:func:`memlens.measures.text.sample_extraction` with the sampling's top-k the report states."""
    out = sample_extraction(pop)
    return {**out, "sampling_top_k": SAMPLE_TOP_K} if out else out


def _analyse(pop: Population, full, copy_of: np.ndarray, canaries, cfg) -> dict:
    docs = np.flatnonzero(copy_of < 0)
    mem = counterfactual_memorization(pop, signal="token_accuracy")
    mem_ll = counterfactual_memorization(pop, signal="log_likelihood")
    memorized = np.nan_to_num(mem.scores, nan=-np.inf) >= MEM_THRESHOLD
    infl = counterfactual_influence(pop, signal="token_accuracy", top_k=TOP_K, threshold=INFL_THRESHOLD,
                                    pair_columns=memorized & (copy_of < 0))
    pairs = [(int(i), int(j), float(mem.scores[i]), float(v))
             for i, j, v in zip(infl.pair_train, infl.pair_eval, infl.pair_value)
             if copy_of[int(i)] < 0 and memorized[int(i)]]
    floor = noise_floor(pop.masks, pop.signal("train", "token_accuracy"), signal="token_accuracy",
                        test_values=pop.signal("test", "token_accuracy"), mem_threshold=MEM_THRESHOLD,
                        infl_threshold=INFL_THRESHOLD, columns=docs, memorization=mem,
                        seed=7)
    ext = pop.signal("train", "extracted").astype(np.float64)
    extracted_in = masked_mean(ext, pop.masks)
    extracted_out = masked_mean(ext, ~pop.masks)
    acc = pop.signal("train", "token_accuracy").astype(np.float64)
    acc_in = float(np.nanmean(np.where(pop.masks[:, docs], acc[:, docs], np.nan)))
    acc_out = float(np.nanmean(np.where(~pop.masks[:, docs], acc[:, docs], np.nan)))
    loss = pop.signal("train", "loss").astype(np.float64)
    loss_in = float(np.nanmean(np.where(pop.masks[:, docs], loss[:, docs], np.nan)))
    loss_test = float(np.nanmean(pop.signal("test", "loss")))
    acc_test = float(np.nanmean(pop.signal("test", "token_accuracy")))
    doc_ext_in = ext[:, docs][pop.masks[:, docs]]
    doc_ext_out = ext[:, docs][~pop.masks[:, docs]]
    explanations = _explain(full, mem.scores, docs)
    ranking = ranking_attack_auc(pop, docs)
    ranked = docs[np.argsort(-np.nan_to_num(mem.scores[docs], nan=-np.inf), kind="stable")]
    summary = {
        "token_accuracy_in": acc_in, "token_accuracy_out": acc_out, "token_accuracy_test": acc_test,
        "loss_in_nats": loss_in, "loss_test_nats": loss_test, "bits_per_byte_test": loss_test / math.log(2),
        "n_memorized": int(memorized[docs].sum()),
        "n_memorized_noise_floor": floor.n_memorized, "n_pairs_noise_floor": floor.n_pairs,
        "noise_floor": floor.to_dict(),
        "mean_memorization": float(np.nanmean(mem.scores[docs])) if np.isfinite(mem.scores[docs]).any() else None,
        "n_pairs": len(pairs),
        "discoverable_in": float(np.nanmean(doc_ext_in)) if np.isfinite(doc_ext_in).any() else None,
        "discoverable_out": float(np.nanmean(doc_ext_out)) if np.isfinite(doc_ext_out).any() else None,
        "n_documents_extractable": int(np.isfinite(ext[0, docs]).sum()),
        "most_memorized": [{"index": int(i), "memorization": float(mem.scores[i]),
                            "memorization_loglik": float(mem_ll.scores[i]),
                            "count": int(full.train_counts[i]), "reason": explanation_text(explanations, int(i)),
                            "text": full.train_texts[i]} for i in ranked[:10]],
        "ranking_attack": ranking,
        "sample_extraction": _samples_summary(pop),
    }
    corr = getattr(explanations, "correlations", None)
    if corr:
        summary["memorization_correlations"] = {k: float(v) for k, v in corr.items()}
    out = {"memorization": mem, "memorization_ll": mem_ll, "influence": infl, "pairs": pairs,
           "extracted_in": extracted_in, "extracted_out": extracted_out, "explanations": explanations,
           "ranking": ranking, "canary_in": np.zeros((pop.n_models, 0), dtype=bool), "canary_rows": {},
           "summary": summary, "masks": pop.masks}
    if canaries is not None and "canary" in pop.signals:
        cin = canary_membership(pop.masks, copy_of, canaries.n_canaries)
        rows = canary_table(pop, cin, canaries.repetitions)
        by_rep = exposure_by_repetition(rows)
        extracted = np.flatnonzero(np.nan_to_num(rows["extracted_in"]) > 0)
        # smallest count from which on, at every larger count, at least half of the IN models extract the secret
        ok = [b["extracted_in"] >= 0.5 for b in by_rep]
        threshold = next((b["repetitions"] for i, b in enumerate(by_rep) if all(ok[i:])), None)
        space = int(canaries.space_size)
        summary["canaries"] = {
            "template": canaries.template, "space_size": space, "max_exposure_bits": math.log2(space),
            "n_canaries": canaries.n_canaries, "by_repetition": by_rep,
            "extracted": [int(c) for c in extracted],
            "extraction_threshold_repetitions": threshold,
            "exposure_out_mean": float(np.nanmean(rows["exposure_out"])),
            "extracted_out_rate": float(np.nanmean(rows["extracted_out"])),
        }
        out.update(canary_in=cin, canary_rows=rows)
    return out


# ---------------------------------------------------------------------------------------------- files


# ---------------------------------------------------------------------------------------------- command line


