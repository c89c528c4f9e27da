"""Training-data extraction from byte-level language models.

* **Discoverable memorization** (Carlini, Ippolito, Jagielski, Lee, Tramèr & Zhang 2023, "Quantifying
  memorization across neural language models", §2): a training document ``[p ‖ s]`` with a ``k``-token prefix
  ``p`` is memorized when greedy decoding from ``p`` reproduces the suffix ``s`` exactly
  (:func:`discoverable_memorization`).
* **Approximate memorization** (Ippolito et al. 2023, "Preventing verbatim memorization in language models gives
  a false sense of privacy"): the generation is close to the suffix, by sentence BLEU of the byte tokens (the
  paper's measure, threshold 0.75) or by normalized edit similarity ``1 − Levenshtein(g, s) / max(|g|, |s|)``
  (:func:`approximate_memorization`).
* **Canary extraction** (Carlini et al. 2019, "The Secret Sharer", secret extraction): greedy decoding from a
  canary's prefix reproduces its secret, or the secret is among the ``k`` most likely ones that an exact
  shortest-path search over the format's secrets finds (:func:`canary_extraction`, :func:`search_secrets`).
* **The extraction attack** of Carlini et al. 2021 ("Extracting training data from large language models", §5):
  generate many samples (:func:`generate_samples`), rank them by membership metrics (:func:`ranking_attack`:
  perplexity, zlib entropy ratio, lowercase ratio, ratio to a smaller reference model, sliding-window
  perplexity), and verify the top ones
  against the training data (:func:`verbatim_matches`).

Tokens are those of :mod:`memlens.data.text`: a document is ``[BOS] + utf8 bytes + [EOS]``; prefix and suffix
lengths count bytes (tokens after BOS), and the suffix may end with the document's EOS. Every score is "higher =
more likely memorized"; per-document flags are float arrays with 1.0 / 0.0, NaN (with a warning) where a
document is too short to be tested, so they stack into :class:`memlens.Population` signals.
"""
from __future__ import annotations

import heapq
import math
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._validation import MemlensInputError, check_float, check_int, warn
from ..data.text import BOS, EOS, decode_tokens, encode_texts
from ..data.text_canaries import CanaryFormat, TextCanarySet, check_canary_set
from ..models.char_lm import (
    AutoregressiveModel,
    greedy_continue,
    next_token_logprobs,
    sample_continue,
    sequence_signals,
    token_logprobs,
)
from ..models.char_lm import check_model as _check_model

__all__ = ["sample_continue", "generate_samples", "ContinuationResult", "continuations",
           "discoverable_memorization", "approximate_memorization", "edit_similarity", "bleu",
           "CanaryExtractionResult", "canary_extraction", "search_secrets", "zlib_entropy", "RankingScores", "ranking_attack",
           "verbatim_matches"]


def _texts(texts, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise MemlensInputError(f"{name} must be a sequence of strings, not one string (wrap it in a list)")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise MemlensInputError(f"{name}[{i}] must be a str; got {type(t).__name__}")
    return texts


# ---------------------------------------------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------------------------------------------

def generate_samples(model: AutoregressiveModel, n: int, *, max_new: int = 64, prompt: str = "",
                     temperature: float = 1.0, top_k: int | None = None, seed=0,
                     batch_size: int = 256) -> list[str]:
    """Unconditional (or prompted) samples, as in the generation step of Carlini et al. 2021 (§5.1).

    Parameters
    ----------
    n : int
        Samples.
    max_new : int
        Tokens generated after ``BOS + prompt``; a sample ends at its first EOS.
    prompt : str
        Text every sample starts with (default: none, the model's own document distribution).
    temperature, top_k, seed : see :func:`sample_continue` (temperature 0 gives ``n`` identical greedy samples).

    Returns
    -------
    list of str, length n
        ``prompt`` followed by the generated text.
    """
    model = _check_model(model)
    n = check_int("n", n, min_value=0)
    max_new = check_int("max_new", max_new, min_value=1)
    if not isinstance(prompt, str):
        raise MemlensInputError(f"prompt must be a str; got {type(prompt).__name__}")
    head = np.array([BOS] + list(prompt.encode("utf-8")), dtype=np.int64)
    prompts = np.broadcast_to(head, (n, head.size))
    new = sample_continue(model, prompts, max_new, temperature=temperature, top_k=top_k, seed=seed,
                          batch_size=batch_size)
    return [prompt + t for t in decode_tokens(new)] if n else []


# ---------------------------------------------------------------------------------------------------------------
# discoverable and approximate memorization
# ---------------------------------------------------------------------------------------------------------------

def _levenshtein(a: np.ndarray, la: np.ndarray, b: np.ndarray, lb: np.ndarray) -> np.ndarray:
    """Edit distances of ``n`` pairs at once: rows of ``a`` (n, A) cut at ``la`` against rows of ``b`` cut at ``lb``.

    The dynamic programme runs over the padded arrays (one numpy step per cell, vectorized over pairs); the
    distance of a pair is read at its own ``(la, lb)`` cell, which depends only on the two rows' prefixes.
    """
    n, A = a.shape
    B = b.shape[1]
    prev = np.broadcast_to(np.arange(B + 1), (n, B + 1)).astype(np.int64)
    out = np.where(la == 0, lb, 0).astype(np.int64)
    for i in range(1, A + 1):
        cur = np.empty_like(prev)
        cur[:, 0] = i
        sub = prev[:, :-1] + (a[:, i - 1:i] != b)
        dele = prev[:, 1:] + 1
        best = np.minimum(sub, dele)
        for j in range(1, B + 1):
            cur[:, j] = np.minimum(best[:, j - 1], cur[:, j - 1] + 1)
        hit = la == i
        out[hit] = cur[hit, lb[hit]]
        prev = cur
    return out


def _pairs(generated, target) -> tuple[list, list]:
    """``(generated, target)`` as two lists of equal length (strings or token sequences), or a clear error."""
    if isinstance(generated, str) or isinstance(target, str):
        raise MemlensInputError("generated and target must be sequences of strings or of token sequences (wrap a "
                                "single string in a list)")
    g, t = list(generated), list(target)
    if len(g) != len(t):
        raise MemlensInputError(f"generated and target must pair up; got {len(g)} and {len(t)} sequences")
    return g, t


def edit_similarity(generated, target) -> np.ndarray:
    """Normalized edit similarity ``1 − Levenshtein(g, t) / max(|g|, |t|)`` of paired sequences (1 when both are
    empty).

    Parameters
    ----------
    generated, target : sequences of str, or of integer sequences (token rows), same length n
        Strings are compared by character.

    Returns
    -------
    ndarray of float64, shape (n,), in [0, 1]; higher = closer.
    """
    g, t = _pairs(generated, target)
    if not g:
        return np.zeros(0, dtype=np.float64)

    def rows(seqs, pad):
        seqs = _as_rows(seqs)
        lens = np.array([len(s) for s in seqs], dtype=np.int64)
        arr = np.full((len(seqs), max(1, int(lens.max()))), pad, dtype=np.int64)
        for i, s in enumerate(seqs):
            arr[i, :len(s)] = s
        return arr, lens

    a, la = rows(g, -1)
    b, lb = rows(t, -2)
    dist = _levenshtein(a, la, b, lb)
    denom = np.maximum(np.maximum(la, lb), 1)
    return 1.0 - dist / denom


def _as_rows(seqs) -> list[list[int]]:
    return [[ord(c) for c in s] if isinstance(s, str) else [int(v) for v in np.asarray(s).reshape(-1)]
            for s in seqs]


def bleu(generated, target, *, max_n: int = 4, epsilon: float = 0.1) -> np.ndarray:
    """Sentence BLEU of each generation against its target (Papineni et al. 2002), the similarity Ippolito et al.
    2023 threshold at 0.75 for approximate memorization.

    ``BLEU = BP · exp(mean_{n=1..max_n} log p_n)`` with ``p_n`` the clipped n-gram precision of the generation and
    the brevity penalty ``BP = min(1, exp(1 − |target| / |generated|))``. A precision with no matching n-gram is
    smoothed to ``epsilon / (number of generated n-grams)`` (Chen & Cherry 2014, method 1), and an order the
    generation is too short to have is left out of the mean.

    Parameters
    ----------
    generated, target : sequences of str (compared by character) or of integer sequences, same length n

    Returns
    -------
    ndarray of float64, shape (n,), in [0, 1]; higher = closer. 0 for an empty generation (1 if both are empty).
    """
    g, t = _pairs(generated, target)
    max_n = check_int("max_n", max_n, min_value=1)
    epsilon = check_float("epsilon", epsilon, min_value=0.0, min_inclusive=False)
    out = np.zeros(len(g), dtype=np.float64)
    for i, (a, b) in enumerate(zip(_as_rows(g), _as_rows(t))):
        if not a:
            out[i] = 1.0 if not b else 0.0
            continue
        logs = []
        for n in range(1, min(max_n, len(a)) + 1):
            grams_a = [tuple(a[j:j + n]) for j in range(len(a) - n + 1)]
            ref: dict = {}
            for j in range(len(b) - n + 1):
                key = tuple(b[j:j + n])
                ref[key] = ref.get(key, 0) + 1
            cand: dict = {}
            for key in grams_a:
                cand[key] = cand.get(key, 0) + 1
            hits = sum(min(c, ref.get(key, 0)) for key, c in cand.items())
            logs.append(math.log((hits if hits else epsilon) / len(grams_a)))
        bp = min(1.0, math.exp(1.0 - len(b) / len(a)))
        out[i] = bp * math.exp(sum(logs) / len(logs))
    return out


@dataclass(frozen=True, eq=False)
class ContinuationResult:
    """Generations from each document's prefix beside its true suffix.

    Attributes
    ----------
    generated : ndarray of int64, shape (n, suffix_len)
        Generated tokens (−1 rows for documents too short to test).
    target : ndarray of int64, shape (n, suffix_len)
        The true suffix tokens (bytes, possibly ending with EOS; −1 rows where not eligible).
    eligible : ndarray of bool, shape (n,)
        Documents with at least ``prefix_len + suffix_len`` tokens after BOS (EOS included).
    prefix_len, suffix_len : int
    method : {"greedy", "sample"}
    decoder : callable, optional
        ``decoder(rows) -> list[str]`` for subword tokens (None: the byte tokens of :mod:`memlens.data.text`).
    """

    generated: np.ndarray
    target: np.ndarray
    eligible: np.ndarray
    prefix_len: int
    suffix_len: int
    method: str
    decoder: Callable | None = None

    def _masked(self, values) -> np.ndarray:
        return np.where(self.eligible, values, np.nan)

    @property
    def exact(self) -> np.ndarray:
        """``(n,)`` 1.0 where the generation reproduces the suffix exactly (discoverable memorization), NaN where
        not eligible."""
        return self._masked(np.all(self.generated == self.target, axis=1).astype(np.float64))

    @property
    def token_match(self) -> np.ndarray:
        """``(n,)`` fraction of suffix positions generated correctly."""
        return self._masked(np.mean(self.generated == self.target, axis=1) if self.suffix_len else 1.0)

    @property
    def matched_prefix(self) -> np.ndarray:
        """``(n,)`` number of leading suffix tokens reproduced before the first error."""
        ok = np.cumprod(self.generated == self.target, axis=1)
        return self._masked(ok.sum(axis=1).astype(np.float64))

    def _on_eligible(self, metric) -> np.ndarray:
        """``(n,)`` ``metric(generated, target)`` on the eligible rows, NaN on the others."""
        out = np.full(self.eligible.shape, np.nan)
        idx = np.flatnonzero(self.eligible)
        if idx.size:
            out[idx] = metric(list(self.generated[idx]), list(self.target[idx]))
        return out

    @property
    def similarity(self) -> np.ndarray:
        """``(n,)`` normalized edit similarity of generation and suffix (tokens, EOS counted as a token)."""
        return self._on_eligible(edit_similarity)

    @property
    def bleu(self) -> np.ndarray:
        """``(n,)`` sentence BLEU of generation against suffix (tokens; see :func:`bleu`)."""
        return self._on_eligible(bleu)

    def texts(self) -> tuple[list[str], list[str]]:
        """Decoded ``(generated, target)`` strings (empty where not eligible)."""
        if self.decoder is not None:                      # a subword tokenizer's (memlens.attacks.lm_extraction)
            return self.decoder(self.generated), self.decoder(self.target)
        return decode_tokens(np.maximum(self.generated, 0)), decode_tokens(np.maximum(self.target, 0))


def continuations(model: AutoregressiveModel, texts, *, prefix_len: int = 32, suffix_len: int = 32,
                  method: str = "greedy", temperature: float = 1.0, top_k: int | None = None, seed=0,
                  batch_size: int = 512) -> ContinuationResult:
    """Decode ``suffix_len`` tokens from ``BOS + the first prefix_len bytes`` of each document.

    Parameters
    ----------
    model : AutoregressiveModel
    texts : sequence of str, length n
    prefix_len : int
        Bytes of the document given as the prompt (after BOS; ``k`` of Carlini et al. 2023).
    suffix_len : int
        Tokens to reproduce (bytes, the last one may be the document's EOS).
    method : {"greedy", "sample"}
        Greedy decoding (the definition of discoverable memorization) or sampling (``temperature``, ``top_k``,
        ``seed``, see :func:`sample_continue`).

    Returns
    -------
    ContinuationResult
    """
    model = _check_model(model)
    texts = _texts(texts)
    prefix_len = check_int("prefix_len", prefix_len, min_value=0)
    suffix_len = check_int("suffix_len", suffix_len, min_value=1)
    if method not in ("greedy", "sample"):
        raise MemlensInputError(f"method must be 'greedy' or 'sample'; got {method!r}")
    n, span = len(texts), 1 + prefix_len + suffix_len
    generated = np.full((n, suffix_len), -1, dtype=np.int64)
    target = np.full((n, suffix_len), -1, dtype=np.int64)
    eligible = np.zeros(n, dtype=bool)
    if n:
        tokens, lengths = encode_texts(texts)
        eligible = lengths >= span
        if not eligible.all():
            warn(f"{int((~eligible).sum())} of {n} document(s) have fewer than prefix_len + suffix_len = "
                 f"{prefix_len + suffix_len} tokens (bytes and EOS): their memorization flags are NaN")
        idx = np.flatnonzero(eligible)
        if idx.size:
            if tokens.shape[1] < span:
                tokens = np.pad(tokens, ((0, 0), (0, span - tokens.shape[1])), constant_values=EOS)
            prompts = tokens[idx, :1 + prefix_len]
            target[idx] = tokens[idx, 1 + prefix_len:span]
            if method == "greedy":
                generated[idx] = greedy_continue(model, prompts, suffix_len, batch_size=batch_size)
            else:
                generated[idx] = sample_continue(model, prompts, suffix_len, temperature=temperature, top_k=top_k,
                                                 seed=seed, batch_size=batch_size)
    return ContinuationResult(generated=generated, target=target, eligible=eligible, prefix_len=prefix_len,
                              suffix_len=suffix_len, method=method)


def discoverable_memorization(model: AutoregressiveModel, texts, *, prefix_len: int = 32, suffix_len: int = 32,
                              method: str = "greedy", **decode) -> np.ndarray:
    """Discoverable (exact) memorization of each document (Carlini et al. 2023, §2).

    Returns
    -------
    ndarray of float64, shape (n,)
        1.0 where decoding from ``BOS + prefix`` (``prefix_len`` bytes) reproduces the next ``suffix_len`` tokens
        exactly, 0.0 where not, NaN (with a warning) for documents shorter than ``prefix_len + suffix_len``.
        ``decode`` passes ``temperature``, ``top_k``, ``seed``, ``batch_size`` to :func:`continuations`.
    """
    return continuations(model, texts, prefix_len=prefix_len, suffix_len=suffix_len, method=method,
                         **decode).exact


def approximate_memorization(model: AutoregressiveModel, texts, *, prefix_len: int = 32, suffix_len: int = 32,
                             threshold: float = 0.75, similarity: str = "edit", method: str = "greedy",
                             **decode) -> np.ndarray:
    """Approximate memorization: the continuation's similarity to the true suffix is at least ``threshold``
    (Ippolito et al. 2023: BLEU >= 0.75).

    Parameters
    ----------
    similarity : {"edit", "bleu"}
        Normalized edit similarity of the byte tokens (:func:`edit_similarity`, default: defined for any length,
        no smoothing) or sentence BLEU-4 of the byte tokens (:func:`bleu`, the paper's measure).

    Returns
    -------
    ndarray of float64, shape (n,)
        1.0 / 0.0, NaN for documents too short (see :func:`discoverable_memorization`). Exact memorization
        implies approximate memorization at every threshold <= 1.
    """
    threshold = check_float("threshold", threshold, min_value=0.0, max_value=1.0)
    if similarity not in ("edit", "bleu"):
        raise MemlensInputError(f"similarity must be 'edit' or 'bleu'; got {similarity!r}")
    res = continuations(model, texts, prefix_len=prefix_len, suffix_len=suffix_len, method=method, **decode)
    sim = res.similarity if similarity == "edit" else res.bleu
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(sim), np.nan, (sim >= threshold).astype(np.float64))


# ---------------------------------------------------------------------------------------------------------------
# canaries
# ---------------------------------------------------------------------------------------------------------------

def search_secrets(model: AutoregressiveModel, fmt: CanaryFormat, *, k: int = 1, batch_size: int = 64,
                   max_expansions: int = 100_000) -> tuple[tuple[str, ...], np.ndarray]:
    """The ``k`` secrets of a format with the lowest log-perplexity, found by shortest-path search.

    Secrets form a tree (one level per symbol) whose edge weights ``−log p(symbol | BOS + prefix + symbols so
    far)`` are non-negative, so best-first (Dijkstra) search returns the most likely complete secrets in order
    without enumerating the space (the extraction search of Carlini et al. 2019). Up to ``batch_size`` frontier
    nodes are expanded per forward pass; a complete secret is reported only when it is the frontier's minimum,
    which keeps the order exact.

    Parameters
    ----------
    model : AutoregressiveModel
    fmt : CanaryFormat
        A format whose alphabet symbols are single bytes.
    k : int
        Secrets to return.
    max_expansions : int
        Node expansions allowed (each is one sequence in a forward pass); when reached, fewer than ``k`` secrets
        are returned, with a warning. A memorized secret needs about ``length`` expansions, an unmemorized space
        up to ``|R| / (|A| − 1)``.

    Returns
    -------
    secrets : tuple of str, length <= k
        Most likely first.
    log_perplexity : ndarray of float64, shape (len(secrets),)
        Their log-perplexities in bits (as :func:`memlens.measures.exposure.secret_log_perplexity`).
    """
    model = _check_model(model)
    if not isinstance(fmt, CanaryFormat):
        raise MemlensInputError(f"fmt must be a CanaryFormat; got {type(fmt).__name__}")
    if not fmt.single_byte:
        raise MemlensInputError(f"search_secrets needs single-byte alphabet symbols; got {fmt.alphabet!r} (score "
                                "the space with memlens.measures.exposure.space_log_perplexity instead)")
    k = check_int("k", k, min_value=1, max_value=fmt.space_size)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    max_expansions = check_int("max_expansions", max_expansions, min_value=1)
    sym = np.frombuffer(fmt.alphabet.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    pre = [BOS] + list(fmt.prefix.encode("utf-8"))
    length = fmt.length
    heap: list = [(0.0, ())]
    found, costs, expansions = [], [], 0
    while heap and len(found) < k:
        if len(heap[0][1]) == length:
            cost, path = heapq.heappop(heap)
            found.append(path)
            costs.append(cost)
            continue
        if expansions >= max_expansions:
            warn(f"search_secrets stopped after max_expansions={max_expansions} expansions with {len(found)} of "
                 f"k={k} secrets found; raise max_expansions")
            break
        batch = []
        while heap and len(batch) < min(batch_size, max_expansions - expansions) and len(heap[0][1]) < length:
            batch.append(heapq.heappop(heap))
        depth = np.array([len(p) for _, p in batch], dtype=np.int64)
        tokens = np.full((len(batch), len(pre) + int(depth.max())), EOS, dtype=np.int64)
        tokens[:, :len(pre)] = pre
        for i, (_, path) in enumerate(batch):
            tokens[i, len(pre):len(pre) + len(path)] = sym[list(path)]
        lp = next_token_logprobs(model, tokens, lengths=len(pre) + depth)[:, sym]
        for (cost, path), row in zip(batch, lp):
            for j, v in enumerate(row):
                heapq.heappush(heap, (cost - float(v), path + (j,)))
        expansions += len(batch)
    secrets = tuple("".join(fmt.alphabet[j] for j in path) for path in found)
    return secrets, np.array(costs, dtype=np.float64) / math.log(2.0)


@dataclass(frozen=True, eq=False)
class CanaryExtractionResult:
    """Extraction of canary secrets from their format's prefix.

    Attributes
    ----------
    extracted : ndarray of bool, shape (n_canaries,)
        Greedy: the greedy continuation of ``BOS + prefix`` starts with the canary's secret. Search: the secret is
        among the ``n_guesses`` most likely secrets.
    guesses : tuple of str, length n_canaries
        The model's best guess: the first ``length`` characters written greedily after the prefix, or the most
        likely secret found by the search (canaries sharing a prefix share the guess: greedy decoding extracts
        at most one secret per prefix).
    correct_symbols : ndarray of int64, shape (n_canaries,)
        Leading secret symbols the guess gets right.
    secrets : tuple of str
    repetitions : ndarray of int64, shape (n_canaries,)
    method : {"greedy", "search"}
    candidates : tuple of str
        Search: the ``n_guesses`` most likely secrets, best first; greedy: the guess alone.
    """

    extracted: np.ndarray
    guesses: tuple
    correct_symbols: np.ndarray
    secrets: tuple
    repetitions: np.ndarray
    method: str = "greedy"
    candidates: tuple = ()

    @property
    def rate(self) -> float:
        """Fraction of canaries extracted."""
        return float(self.extracted.mean()) if self.extracted.size else float("nan")


def canary_extraction(model: AutoregressiveModel, canaries: TextCanarySet, *, method: str = "greedy",
                      n_guesses: int = 1, max_expansions: int = 100_000,
                      batch_size: int = 512) -> CanaryExtractionResult:
    """Can the canaries' secrets be extracted from the model given their format's prefix? (Carlini et al. 2019,
    secret extraction; greedy is the discoverable-memorization test with the prefix as the prompt.)

    Parameters
    ----------
    model : AutoregressiveModel
    canaries : TextCanarySet
    method : {"greedy", "search"}
        ``"greedy"``: greedy decoding from ``BOS + prefix`` writes the secret. ``"search"``: the secret is among
        the ``n_guesses`` lowest-perplexity secrets of the format (:func:`search_secrets`, exact), i.e. its rank
        is at most ``n_guesses``.
    n_guesses : int
        Guesses the attacker may check (search only).

    Returns
    -------
    CanaryExtractionResult
    """
    model = _check_model(model)
    check_canary_set(canaries)
    if method not in ("greedy", "search"):
        raise MemlensInputError(f"method must be 'greedy' or 'search'; got {method!r}")
    n_guesses = check_int("n_guesses", n_guesses, min_value=1)
    fmt = canaries.format
    if method == "search":
        found, _ = search_secrets(model, fmt, k=min(n_guesses, fmt.space_size), max_expansions=max_expansions)
        guess = found[0] if found else ""
        extracted = np.array([s in found for s in canaries.secrets], dtype=bool)
    else:
        secret_bytes = [s.encode("utf-8") for s in canaries.secrets]
        n_new = max(len(b) for b in secret_bytes)
        prompt = np.array([[BOS] + list(fmt.prefix.encode("utf-8"))], dtype=np.int64)
        gen = greedy_continue(model, prompt, n_new, batch_size=batch_size)[0]
        guess = decode_tokens(gen[None, :])[0][:fmt.length]
        found = (guess,)
        extracted = np.array([bool(np.all(gen[:len(b)] < 256))
                              and bytes(gen[:len(b)].clip(0, 255).astype(np.uint8)) == b
                              for b in secret_bytes], dtype=bool)
    correct = np.array([next((i for i, (c, d) in enumerate(zip(guess, s)) if c != d), min(len(guess), len(s)))
                        for s in canaries.secrets], dtype=np.int64)
    return CanaryExtractionResult(extracted=extracted, guesses=(guess,) * canaries.n_canaries,
                                  correct_symbols=correct, secrets=canaries.secrets,
                                  repetitions=canaries.repetitions, method=method, candidates=tuple(found))


# ---------------------------------------------------------------------------------------------------------------
# ranking attack (Carlini et al. 2021)
# ---------------------------------------------------------------------------------------------------------------

def zlib_entropy(texts) -> np.ndarray:
    """``(n,)`` zlib entropy of each text: bytes of ``zlib.compress(text.encode("utf-8"))`` (default level), the
    compressibility reference of Carlini et al. 2021 (§5.2)."""
    return np.array([len(zlib.compress(t.encode("utf-8"))) for t in _texts(texts)], dtype=np.float64)


def _encoded(texts: list[str], include_eos: bool):
    tokens, lengths = encode_texts(texts)
    if not include_eos:                       # drop EOS from the scored tokens (an empty text keeps it)
        lengths = np.where(lengths > 2, lengths - 1, 2)
    return tokens, lengths


def _log_perplexity(model: AutoregressiveModel, texts: list[str], include_eos: bool, batch_size: int) -> np.ndarray:
    """Mean negative log-likelihood per predicted token (nats), i.e. ``log perplexity``, of each text."""
    tokens, lengths = _encoded(texts, include_eos)
    return sequence_signals(model, tokens, lengths=lengths, batch_size=batch_size)["loss"]


def _window_log_perplexity(model: AutoregressiveModel, texts: list[str], window: int, include_eos: bool,
                           batch_size: int) -> np.ndarray:
    """Lowest mean token NLL (nats) over every ``window`` consecutive predicted tokens of each text (the whole
    text when it is shorter)."""
    tokens, lengths = _encoded(texts, include_eos)
    nll = -token_logprobs(model, tokens, lengths=lengths, batch_size=batch_size)      # (n, T−1), NaN past the end
    counted = lengths - 1
    csum = np.concatenate([np.zeros((nll.shape[0], 1)), np.cumsum(np.nan_to_num(nll), axis=1)], axis=1)
    out = np.empty(len(texts), dtype=np.float64)
    for i, c in enumerate(counted):
        w = min(window, int(c))
        sums = csum[i, w:c + 1] - csum[i, :c + 1 - w]
        out[i] = sums.min() / w
    return out


@dataclass(frozen=True, eq=False)
class RankingScores:
    """Membership metrics of generated samples (Carlini et al. 2021, §5.2); every score: higher = more likely
    memorized.

    Attributes
    ----------
    samples : tuple of str
    log_perplexity : ndarray, shape (n,)
        Mean token cross-entropy (nats) of each sample under the model: ``log PPL``.
    zlib_entropy : ndarray, shape (n,)
        Compressed size in bytes.
    lowercase_log_perplexity : ndarray, shape (n,)
        ``log PPL`` of the lower-cased sample.
    reference_log_perplexity : ndarray, shape (n,) or None
        ``log PPL`` under the smaller reference model.
    window_log_perplexity : ndarray, shape (n,) or None
        Lowest ``log PPL`` over sliding windows of ``window`` tokens (when a window is given).
    scores : dict of str to ndarray (n,)
        ``"perplexity"``: ``−log PPL``; ``"zlib"``: ``zlib / log PPL``; ``"lowercase"``:
        ``log PPL(lower) / log PPL``; ``"reference"``: ``log PPL_ref / log PPL`` (when a reference is given);
        ``"window"``: ``−min_window log PPL`` (when a window is given).
    """

    samples: tuple
    log_perplexity: np.ndarray
    zlib_entropy: np.ndarray
    lowercase_log_perplexity: np.ndarray
    reference_log_perplexity: np.ndarray | None
    scores: dict
    window_log_perplexity: np.ndarray | None = None

    def top(self, metric: str, k: int = 10) -> np.ndarray:
        """Indices of the ``k`` samples with the highest score under ``metric`` (best first)."""
        if metric not in self.scores:
            raise MemlensInputError(f"metric must be one of {sorted(self.scores)}; got {metric!r}")
        k = check_int("k", k, min_value=0)
        s = np.nan_to_num(self.scores[metric], nan=-np.inf)
        return np.argsort(-s, kind="stable")[:k]


def ranking_attack(model: AutoregressiveModel, samples, *, reference_model: AutoregressiveModel | None = None,
                   window: int | None = None, include_eos: bool = True, batch_size: int = 256) -> RankingScores:
    """Score samples by the membership metrics of Carlini et al. 2021 (§5.2) to find memorized text.

    Parameters
    ----------
    model : AutoregressiveModel
        The attacked model.
    samples : sequence of str, length n
        Candidate texts (e.g. :func:`generate_samples`), each fitting in the model's context with BOS and EOS.
    reference_model : AutoregressiveModel, optional
        A smaller (or otherwise less memorizing) model of the same text distribution; adds the ``"reference"``
        ratio.
    window : int, optional
        Adds the ``"window"`` score: the lowest perplexity over any ``window`` consecutive tokens (Carlini et al.
        use 50 subword tokens), which finds a memorized passage inside otherwise ordinary text.
    include_eos : bool
        Count the end-of-document token in the perplexity (a sample that is a whole training document ends
        where it ended in training).

    Returns
    -------
    RankingScores
        Ratios use ``max(log PPL, 1e-12)`` in the denominator, so a perfectly predicted sample scores highest
        instead of dividing by zero.
    """
    model = _check_model(model)
    samples = _texts(samples, "samples")
    batch_size = check_int("batch_size", batch_size, min_value=1)
    if reference_model is not None:
        _check_model(reference_model, "reference_model")
    if window is not None:
        window = check_int("window", window, min_value=1)
    if not samples:
        empty = np.zeros(0)
        return RankingScores((), empty, empty, empty, None if reference_model is None else empty,
                             {"perplexity": empty, "zlib": empty, "lowercase": empty,
                              **({} if reference_model is None else {"reference": empty}),
                              **({} if window is None else {"window": empty})},
                             None if window is None else empty)
    lp = _log_perplexity(model, samples, include_eos, batch_size)
    lower = _log_perplexity(model, [s.lower() for s in samples], include_eos, batch_size)
    z = zlib_entropy(samples)
    den = np.maximum(lp, 1e-12)
    scores = {"perplexity": -lp, "zlib": z / den, "lowercase": lower / den}
    ref = None
    if reference_model is not None:
        ref = _log_perplexity(reference_model, samples, include_eos, batch_size)
        scores["reference"] = ref / den
    win = None
    if window is not None:
        win = _window_log_perplexity(model, samples, window, include_eos, batch_size)
        scores["window"] = -win
    return RankingScores(samples=tuple(samples), log_perplexity=lp, zlib_entropy=z, lowercase_log_perplexity=lower,
                         reference_log_perplexity=ref, scores=scores, window_log_perplexity=win)


def _ngram_hashes(data: bytes, n: int) -> np.ndarray:
    """64-bit polynomial hashes of every ``n``-byte window of ``data`` (wrapping uint64 arithmetic)."""
    b = np.frombuffer(data, dtype=np.uint8).astype(np.uint64)
    if b.size < n:
        return np.zeros(0, dtype=np.uint64)
    m = b.size - n + 1
    h = np.zeros(m, dtype=np.uint64)
    base = np.uint64(1099511628211)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * base + b[k:k + m] + np.uint64(1)
    return h


def verbatim_matches(samples, corpus, *, n_bytes: int = 32) -> np.ndarray:
    """Which samples contain ``n_bytes`` consecutive bytes of some corpus document (the verification step of
    Carlini et al. 2021, §5.3, with a byte n-gram match instead of a search engine).

    Parameters
    ----------
    samples : sequence of str, length n
    corpus : sequence of str
        The training documents (windows never span two documents).
    n_bytes : int
        Length of the verbatim window.

    Returns
    -------
    ndarray of bool, shape (n,)
        Matching uses 64-bit hashes of the windows (a false match has probability about ``m / 2^64`` for ``m``
        corpus windows).
    """
    samples, corpus = _texts(samples, "samples"), _texts(corpus, "corpus")
    n_bytes = check_int("n_bytes", n_bytes, min_value=1)
    parts = [_ngram_hashes(doc.encode("utf-8"), n_bytes) for doc in corpus]
    table = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
    out = np.zeros(len(samples), dtype=bool)
    if table.size == 0:
        return out
    for i, s in enumerate(samples):
        h = _ngram_hashes(s.encode("utf-8"), n_bytes)
        if h.size:
            pos = np.minimum(np.searchsorted(table, h), table.size - 1)
            out[i] = bool(np.any(table[pos] == h))
    return out
