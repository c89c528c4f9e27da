"""Canary exposure and extraction under a Hugging Face causal LM (Carlini et al. 2019, "The Secret Sharer").

The definitions are those of :mod:`memlens.measures.exposure` and :func:`memlens.attacks.extraction.canary_extraction`,
with the model's own subword tokens:

* the **log-perplexity** of a canary is ``−log2 Pr_θ(text)`` of its whole text (Def. 1; BOS as context), in bits;
* its **exposure** is ``log2 |R| − log2 rank`` among every candidate secret of the format (Def. 4,
  :func:`memlens.measures.exposure.exposure_by_rank`) when the space has at most ``max_enumerate`` secrets, else
  the skew-normal extrapolation (§4.3, :func:`memlens.measures.exposure.exposure_extrapolated`) from ``n_samples``
  uniformly drawn other secrets. A subword model scores each candidate with a full forward pass (a byte model's
  shared-prefix search does not apply), hence the smaller defaults than the byte-level audit's;
* it is **extracted** when greedy decoding from its prefix (trailing spaces left out of the prompt, since subword
  tokenizers attach a space to the next word) produces the rest of the prefix and the secret.
"""
from __future__ import annotations

import math

import numpy as np

from .._random import as_generator
from .._validation import MemlensInputError, check_int
from ..data.text_canaries import TextCanarySet, check_canary_set
from ..models.hf import CausalLM, check_causal_lm, decode, decode_ids, encode, score_tokens
from .exposure import ExposureResult, exposure_by_rank, exposure_extrapolated

__all__ = ["lm_text_log_perplexity", "lm_canary_exposure", "lm_canary_extraction"]

_LN2 = math.log(2.0)


def lm_text_log_perplexity(lm: CausalLM, texts, *, batch_size: int = 64) -> np.ndarray:
    """``(n,)`` ``−log2 Pr_θ(text)`` of each text (sum over its tokens after BOS), bits."""
    sc = score_tokens(lm, encode(lm, list(texts)), batch_size=batch_size)
    sums = np.add.reduceat(sc.logprob, sc.offsets[:-1]) if sc.logprob.size else np.zeros(len(sc))
    sums = np.where(sc.n_tokens > 0, sums, 0.0)
    return -sums / _LN2


def lm_canary_exposure(lm: CausalLM, canaries: TextCanarySet, *, method: str = "auto", n_samples: int = 256,
                       max_enumerate: int = 1000, batch_size: int = 64, seed=0) -> ExposureResult:
    """Exposure of every canary of a set under a Hugging Face model (see the module docstring).

    Returns
    -------
    memlens.measures.exposure.ExposureResult
    """
    lm = check_causal_lm(lm)
    check_canary_set(canaries)
    if method not in ("auto", "rank", "extrapolate"):
        raise MemlensInputError(f"method must be 'auto', 'rank' or 'extrapolate'; got {method!r}")
    n_samples = check_int("n_samples", n_samples, min_value=20)
    fmt = canaries.format
    if method == "auto":
        method = "rank" if fmt.space_size <= max_enumerate else "extrapolate"
    px = lm_text_log_perplexity(lm, [fmt.render(s) for s in canaries.secrets], batch_size=batch_size)
    params = None
    if method == "rank":
        ref = lm_text_log_perplexity(lm, [fmt.render(s) for s in fmt.enumerate()], batch_size=batch_size)
        exposure, ranks = exposure_by_rank(px, ref)
    else:
        samples = fmt.sample_secrets(n_samples, seed=as_generator(seed), replace=True, exclude=canaries.secrets)
        ref = lm_text_log_perplexity(lm, [fmt.render(s) for s in samples], batch_size=batch_size)
        exposure, params = exposure_extrapolated(px, ref)
        ranks = fmt.space_size * np.exp2(-np.asarray(exposure))
    return ExposureResult(exposure=np.asarray(exposure, dtype=np.float64), ranks=np.asarray(ranks, np.float64),
                          log_perplexity=px, method=method, space_size=fmt.space_size, reference_scores=ref,
                          secrets=canaries.secrets, repetitions=canaries.repetitions, skewnorm_params=params)


def lm_canary_extraction(lm: CausalLM, canaries: TextCanarySet, *, slack: int = 2) -> np.ndarray:
    """``(n_canaries,)`` bool: greedy decoding from the canary's prefix reproduces its secret (see the module
    docstring). ``slack`` extra tokens are decoded beyond the true continuation's token count."""
    lm = check_causal_lm(lm)
    check_canary_set(canaries)
    fmt = canaries.format
    prompt_text = fmt.prefix.rstrip()
    gap = fmt.prefix[len(prompt_text):]
    prompt = encode(lm, [prompt_text])[0]
    if prompt.size == 0:
        raise MemlensInputError("canary extraction needs a BOS token or a non-empty canary prefix")
    out = np.zeros(len(canaries.secrets), dtype=bool)
    wants = [gap + s for s in canaries.secrets]
    n_new = max(encode(lm, [w])[0].size for w in wants) + slack
    n_new = min(n_new, lm.max_length - prompt.size)
    gen = decode(lm, [prompt], n_new)
    text = decode_ids(lm, gen)[0]
    for i, w in enumerate(wants):
        out[i] = text.startswith(w)
    return out
