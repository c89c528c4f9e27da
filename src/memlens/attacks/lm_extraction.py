"""Training-data extraction from Hugging Face causal language models.

* **Discoverable memorization** (Carlini, Ippolito, Jagielski, Lee, Tramèr & Zhang 2023, "Quantifying memorization
  across neural language models", §2): a document ``[p ‖ s]`` whose first ``k`` tokens ``p`` make greedy decoding
  reproduce the next ``m`` tokens ``s`` exactly (:func:`lm_continuations`). Approximate memorization (Ippolito et
  al. 2023) by normalized edit similarity and sentence BLEU of the tokens (:mod:`memlens.attacks.extraction`).
  :func:`extraction_curve` measures both as functions of the prefix length ``k``, of the number of copies of a
  document in the corpus and of the model (several checkpoints: model size), the three axes of Carlini et al.
  2023's Figure 1.
* **The untargeted extraction attack** of Carlini et al. 2021 ("Extracting training data from large language
  models", §5): generate samples from the model (top-k sampling from the BOS token), rank them by membership
  scores (perplexity, zlib, lowercase and reference ratios: :mod:`memlens.attacks.lm`), and verify the top-ranked
  ones against a given corpus by a verbatim window of ``n_bytes`` bytes (:func:`untargeted_extraction`).

Prefix and suffix lengths count the model's tokens (after the BOS token). A document with fewer than
``prefix_len + suffix_len`` tokens is not eligible at that length (NaN).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .._validation import MemlensInputError, check_int, warn
from ..models.hf import CausalLM, check_causal_lm, decode, decode_ids, encode
from .extraction import ContinuationResult, verbatim_matches
from .lm import lm_membership_scores

__all__ = ["lm_continuations", "ExtractionCurve", "extraction_curve", "copy_buckets", "UntargetedResult",
           "untargeted_extraction", "APPROX_BLEU"]

#: BLEU at or above which a continuation counts as approximately memorized (Ippolito et al. 2023).
APPROX_BLEU = 0.75


def _decoder(lm: CausalLM):
    return lambda rows: decode_ids(lm, rows)


def lm_continuations(lm: CausalLM, texts: Sequence[str], *, prefix_len: int = 32, suffix_len: int = 32,
                     method: str = "greedy", temperature: float = 1.0, top_k: int | None = None, seed=0,
                     batch_size: int = 32, warn_short: bool = True) -> ContinuationResult:
    """Decode ``suffix_len`` tokens from ``BOS + the first prefix_len tokens`` of each document.

    Returns
    -------
    memlens.attacks.extraction.ContinuationResult
        ``exact`` (discoverable memorization), ``token_match``, ``similarity``, ``bleu`` per document; its
        ``texts()`` decode with the model's tokenizer.
    """
    lm = check_causal_lm(lm)
    prefix_len = check_int("prefix_len", prefix_len, min_value=1)
    suffix_len = check_int("suffix_len", suffix_len, min_value=1)
    head = 1 if lm.bos_id is not None else 0
    if head + prefix_len + suffix_len > lm.max_length:
        raise MemlensInputError(f"prefix_len + suffix_len = {prefix_len + suffix_len} tokens exceed the model's context "
                                f"of {lm.max_length} tokens")
    ids = encode(lm, list(texts))
    n = len(ids)
    generated = np.full((n, suffix_len), -1, dtype=np.int64)
    target = np.full((n, suffix_len), -1, dtype=np.int64)
    eligible = np.array([r.size >= head + prefix_len + suffix_len for r in ids], dtype=bool)
    if warn_short and n and not eligible.all():
        warn(f"{int((~eligible).sum())} of {n} document(s) have fewer than prefix_len + suffix_len = "
             f"{prefix_len + suffix_len} tokens: their extraction flags are NaN")
    idx = np.flatnonzero(eligible)
    if idx.size:
        prompts = [ids[i][:head + prefix_len] for i in idx]
        target[idx] = np.stack([ids[i][head + prefix_len:head + prefix_len + suffix_len] for i in idx])
        generated[idx] = decode(lm, prompts, suffix_len, method=method, temperature=temperature, top_k=top_k,
                                seed=seed, batch_size=batch_size)
    return ContinuationResult(generated=generated, target=target, eligible=eligible, prefix_len=prefix_len,
                              suffix_len=suffix_len, method=method, decoder=_decoder(lm))


def copy_buckets(copies) -> list[str]:
    """The copy-count bucket of each document: ``1``, ``2``, ``3-4``, ``5-8``, ``9-16``, ... (powers of two)."""
    out = []
    for c in np.asarray(copies, dtype=np.int64).tolist():
        if c <= 2:
            out.append(str(max(c, 1)))
        else:
            hi = 1 << int(np.ceil(np.log2(c)))
            out.append(f"{hi // 2 + 1}-{hi}")
    return out


@dataclass(frozen=True, eq=False)
class ExtractionCurve:
    """Discoverable and approximate memorization against prefix length, copies and model.

    Attributes
    ----------
    rows : list of dict
        One per (model, prefix_len, copies bucket) and one per (model, prefix_len) with ``copies = "all"``:
        ``n`` eligible documents, ``exact_rate`` (discoverable memorization), ``token_match``, ``similarity``
        (mean normalized edit similarity), ``bleu`` (mean), ``approx_rate`` (BLEU >= 0.75).
    exact : dict of (model, prefix_len) to ndarray (n_documents,)
        Per-document discoverable-memorization flags (1/0, NaN where not eligible).
    similarity : dict of (model, prefix_len) to ndarray (n_documents,)
    suffix_len : int
    method : str
    """

    rows: list
    exact: Mapping
    similarity: Mapping
    suffix_len: int
    method: str


def _metrics(res: ContinuationResult) -> dict:
    """Per-document exact, token-match, similarity and BLEU arrays of a continuation result, computed once."""
    return {"eligible": res.eligible, "exact": res.exact, "token_match": res.token_match,
            "similarity": res.similarity, "bleu": res.bleu}


def _stats(m: dict, sel: np.ndarray) -> dict:
    el = sel & m["eligible"]
    n = int(el.sum())
    if not n:
        return {"n": 0, "exact_rate": None, "token_match": None, "similarity": None, "bleu": None,
                "approx_rate": None}
    bl = m["bleu"][el]
    return {"n": n, "exact_rate": float(np.mean(m["exact"][el])), "token_match": float(np.mean(m["token_match"][el])),
            "similarity": float(np.mean(m["similarity"][el])), "bleu": float(np.mean(bl)),
            "approx_rate": float(np.mean(bl >= APPROX_BLEU))}


def extraction_curve(models: Mapping[str, CausalLM], texts: Sequence[str], *, copies=None,
                     prefix_lens: Sequence[int] = (8, 16, 32), suffix_len: int = 16, method: str = "greedy",
                     top_k: int | None = None, batch_size: int = 32, seed=0) -> ExtractionCurve:
    """Discoverable memorization of ``texts`` under each model at each prefix length, by copy count.

    Parameters
    ----------
    models : mapping of name to CausalLM
        Several checkpoints (e.g. sizes of one family) give the model-size axis.
    texts : sequence of str, length n
        Distinct training documents.
    copies : array of int, shape (n,), optional
        How often each document occurs in the training corpus (default 1).
    prefix_lens : sequence of int
        Prompt lengths ``k`` in tokens.
    suffix_len : int
        Tokens to reproduce (Carlini et al. 2023 use 50).
    method, top_k : greedy decoding, or sampling (``top_k``, temperature 1, ``seed``).

    Returns
    -------
    ExtractionCurve
    """
    if not models:
        raise MemlensInputError("models must hold at least one model")
    texts = list(texts)
    copies = np.ones(len(texts), dtype=np.int64) if copies is None else np.asarray(copies, dtype=np.int64)
    if copies.shape != (len(texts),):
        raise MemlensInputError(f"copies must have one count per document ({len(texts)}); got shape {copies.shape}")
    prefix_lens = [check_int("prefix_lens", p, min_value=1) for p in prefix_lens]
    if not prefix_lens:
        raise MemlensInputError("prefix_lens must hold at least one prefix length, e.g. 8,16,32")
    buckets = np.array(copy_buckets(copies), dtype=object)
    order = sorted(set(buckets.tolist()), key=lambda b: int(b.split("-")[0]))
    rows, exact, sim = [], {}, {}
    for name, lm in models.items():
        for p in prefix_lens:
            res = lm_continuations(lm, texts, prefix_len=p, suffix_len=suffix_len, method=method, top_k=top_k,
                                   batch_size=batch_size, seed=seed, warn_short=False)
            m = _metrics(res)                      # edit distances and BLEU once, then every bucket reads them
            exact[(name, p)], sim[(name, p)] = m["exact"], m["similarity"]
            rows.append({"model": name, "prefix_len": p, "copies": "all", **_stats(m, np.ones(len(texts), bool))})
            for b in order:
                rows.append({"model": name, "prefix_len": p, "copies": b, **_stats(m, buckets == b)})
    return ExtractionCurve(rows=rows, exact=exact, similarity=sim, suffix_len=suffix_len, method=method)


@dataclass(frozen=True, eq=False)
class UntargetedResult:
    """The generate-rank-verify attack of Carlini et al. 2021.

    Attributes
    ----------
    samples : tuple of str
    scores : dict of str to ndarray (n_samples,)
        Ranking scores (higher = more likely memorized).
    verbatim : ndarray of bool, shape (n_samples,)
        The sample contains ``n_bytes`` consecutive bytes of a corpus document.
    precision : dict of str to float
        Fraction of verbatim samples among the ``n_check`` top-ranked ones, per ranking score.
    n_check, n_bytes : int
    """

    samples: tuple
    scores: Mapping[str, np.ndarray]
    verbatim: np.ndarray
    precision: Mapping[str, float]
    n_check: int
    n_bytes: int

    @property
    def base_rate(self) -> float:
        return float(self.verbatim.mean()) if self.verbatim.size else float("nan")


def untargeted_extraction(lm: CausalLM, corpus: Sequence[str], *, n_samples: int = 256, sample_len: int = 64,
                          top_k: int = 40, temperature: float = 1.0, rank_by=("loss", "zlib", "lowercase"),
                          reference: CausalLM | None = None, n_check: int | None = None, n_bytes: int = 32,
                          batch_size: int = 32, seed=0) -> UntargetedResult:
    """Generate ``n_samples`` texts from the BOS token, rank them, and verify them against ``corpus``.

    Parameters
    ----------
    lm : CausalLM
    corpus : sequence of str
        Documents to verify against (the training set, or any text the user wants to know about).
    n_samples, sample_len : int
        Samples and their length in tokens.
    top_k, temperature : sampling (Carlini et al. 2021 sample with top-k = 40).
    rank_by : sequence of str
        Attacks of :mod:`memlens.attacks.lm` used as ranking scores (``"reference"`` is added when a reference
        model is given).
    n_check : int, optional
        Top-ranked samples verified per score (default ``max(1, n_samples // 10)``).
    n_bytes : int
        Verbatim window for verification.

    Returns
    -------
    UntargetedResult
    """
    lm = check_causal_lm(lm)
    n_samples = check_int("n_samples", n_samples, min_value=1)
    sample_len = check_int("sample_len", sample_len, min_value=1, max_value=lm.max_length - 1)
    n_check = max(1, n_samples // 10) if n_check is None else check_int("n_check", n_check, min_value=1)
    if lm.bos_id is None:
        raise MemlensInputError(f"model {lm.name!r} has no BOS token to sample from; untargeted extraction needs one")
    prompts = [np.array([lm.bos_id], dtype=np.int64)] * n_samples
    gen = decode(lm, prompts, sample_len, method="sample", top_k=top_k, temperature=temperature, seed=seed,
                 batch_size=batch_size)
    samples = [s for s in decode_ids(lm, [[t for t in r if t != lm.bos_id] for r in gen])]
    attacks = list(rank_by) + (["reference"] if reference is not None and "reference" not in rank_by else [])
    sc = lm_membership_scores(lm, samples, attacks=attacks, reference=reference, batch_size=batch_size).scores
    verb = verbatim_matches(samples, list(corpus), n_bytes=n_bytes)
    prec = {}
    for name, s in sc.items():
        top = np.argsort(-np.nan_to_num(s, nan=-np.inf), kind="stable")[:n_check]
        prec[name] = float(verb[top].mean())
    return UntargetedResult(samples=tuple(samples), scores=sc, verbatim=verb, precision=prec, n_check=n_check,
                            n_bytes=n_bytes)
