"""Counterfactual memorization and influence of documents (Zhang et al. 2021), and why a document is memorized.

Zhang, Ippolito, Lee, Jagielski, Tramèr & Carlini (2021), "Counterfactual Memorization in Neural Language Models"
(arXiv 2112.12938), Def. 1 and §3: for a per-example performance metric ``M`` (per-token accuracy of a
language model under teacher forcing),

    mem(x)       = E_{S ∋ x}[M(A(S), x)]  − E_{S ∌ x}[M(A(S), x)]
    infl(x ⇒ x') = E_{S ∋ x}[M(A(S), x')] − E_{S ∌ x}[M(A(S), x')]          (Def. 2)

estimated with many models trained on random subsets. This is the Feldman–Zhang estimator with a generic
metric: the estimates come from :func:`memlens.measures.memorization` and :func:`memlens.measures.influence`
(not re-implemented here). A document seen in many near-identical copies has low counterfactual memorization
(a model predicts it from the copies whether or not it saw this one); a unique, unpredictable document that the
models fit has high memorization (Zhang et al. §4: high-memorization examples are unconventional texts, lists,
non-English, formatting).

:func:`explain_documents` describes each document by the properties associated with memorization: how often it
occurred in the raw corpus before deduplication, its character n-gram overlap with its nearest other training
document, its length, the rarity of its characters and its format. The reasons it gives are descriptive
(associations a reader can check), not a causal attribution.

Measured (8 default :class:`~memlens.train.text_population.CharLMConfig` transformers, 480 fortunes of <= 100
characters, each model on a random half): per-token accuracy 0.56 on training documents vs 0.22 left out; mean
counterfactual memorization 0.34 (standard error 0.04 per document); the most memorized fortunes are upper-case
and symbol-heavy one-liners ("<<<<< EVACUATION ROUTE <<<<<", 0.72), the least are short generic phrases;
Spearman correlation of memorization with character surprisal 0.40, with the share of symbols 0.30.
"""
from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.stats import spearmanr

from .._validation import MemlensInputError, check_int
from ..data.text import TextDataset
from .feldman_zhang import InfluenceResult, MemorizationResult, influence, memorization

__all__ = ["counterfactual_memorization", "counterfactual_influence", "explain_documents", "DocumentExplanations",
           "ngram_overlap"]


def _check_signal(pop, split: str, signal: str) -> None:
    if split not in pop.signals or signal not in pop.signals[split]:
        have = sorted(pop.signals.get(split, {}))
        raise MemlensInputError(f"signal {signal!r} is not in the population's {split!r} split (it has {have}); "
                                "train it with memlens.train.train_text_population or pass one of these")


def counterfactual_memorization(pop, *, signal: str = "token_accuracy") -> MemorizationResult:
    """Counterfactual memorization of every training document (Zhang et al. 2021, Def. 1).

    Parameters
    ----------
    pop : Population
        From :func:`memlens.train.train_text_population` (masks over training documents).
    signal : str
        Per-document metric: ``token_accuracy`` (the paper's choice), ``log_likelihood`` (mean token
        log-likelihood) or ``loss`` (negated), or any train-split signal of the population.

    Returns
    -------
    MemorizationResult
        ``scores`` ``(n_train,)`` = mean metric of models trained on the document − mean metric of models trained
        without it (higher = more memorized), with standard errors; NaN (and a warning) for a document with no
        IN or no OUT model.
    """
    _check_signal(pop, "train", signal)
    return memorization(pop, signal=signal)


def counterfactual_influence(pop, *, signal: str = "token_accuracy", split: str = "test", top_k: int = 4,
                             threshold: float | None = None, pair_columns=None,
                             return_matrix: bool = False) -> InfluenceResult:
    """Counterfactual influence ``infl(x ⇒ x')`` of each training document on each document of ``split``
    (Zhang et al. 2021, Def. 2).

    Parameters
    ----------
    pop : Population
    signal : str
        Per-document metric (see :func:`counterfactual_memorization`).
    split : str
        Documents influenced: ``test`` (held-out documents), or ``train`` (the diagonal is the memorization).
    top_k : int
        Most-influenced documents kept per training document.
    threshold : float or None
        Also keep every pair with influence >= threshold.
    pair_columns : bool array (n_train,), optional
        Collect thresholded pairs only for these training documents.
    return_matrix : bool
        Also return the full ``(n_eval, n_train)`` matrix.

    Returns
    -------
    InfluenceResult
        Higher = the training document raises the metric on the other document more.
    """
    _check_signal(pop, split, signal)
    return influence(pop, signal=signal, split=split, top_k=top_k, threshold=threshold, pair_columns=pair_columns,
                     return_matrix=return_matrix)


# ---------------------------------------------------------------------------------------------------------------
# explanations
# ---------------------------------------------------------------------------------------------------------------

def _grams(text: str, n: int) -> set:
    key = " ".join(text.lower().split())
    if len(key) < n:
        return {key} if key else set()
    return {key[i:i + n] for i in range(len(key) - n + 1)}


def ngram_overlap(texts, *, n: int = 8, index=None, chunk_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour character n-gram overlap of documents with the other documents.

    ``overlap[i] = max_{j ≠ i} |G(i) ∩ G(j)| / |G(i)|``: the share of document ``i``'s distinct character
    n-grams (lower-cased, whitespace-normalized) found in its nearest other document ``j`` (1.0 for an exact
    duplicate or a document contained in another).

    Parameters
    ----------
    texts : sequence of str, length n_docs
    n : int
        Characters per n-gram (documents shorter than ``n`` count as one gram).
    index : array of int, optional
        Documents to compute it for (default all); neighbours are searched among all.
    chunk_size : int
        Documents per sparse product (memory).

    Returns
    -------
    overlap : ndarray of float64, shape (len(index),)
        In [0, 1]; 0 when a document shares no n-gram with another.
    neighbour : ndarray of int64, shape (len(index),)
        Index of the nearest other document, -1 when there is none.
    """
    texts = list(texts)
    n = check_int("n", n, min_value=1)
    chunk_size = check_int("chunk_size", chunk_size, min_value=1)
    idx = np.arange(len(texts)) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= len(texts)):
        raise MemlensInputError(f"index must lie in [0, {len(texts)}); got range [{idx.min()}, {idx.max()}]")
    vocab: dict = {}
    rows, cols = [], []
    sizes = np.zeros(len(texts), dtype=np.float64)
    for i, t in enumerate(texts):
        g = _grams(t, n)
        sizes[i] = len(g)
        for s in g:
            cols.append(vocab.setdefault(s, len(vocab)))
        rows.extend([i] * len(g))
    X = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(texts), len(vocab)))
    XT = X.T.tocsr()
    overlap = np.zeros(idx.size)
    neighbour = np.full(idx.size, -1, dtype=np.int64)
    for lo in range(0, idx.size, chunk_size):
        sel = idx[lo:lo + chunk_size]
        shared = (X[sel] @ XT).tocsr()
        for r, i in enumerate(sel):
            row = shared.getrow(r)
            cand, counts = row.indices, row.data
            keep = cand != i
            cand, counts = cand[keep], counts[keep]
            if cand.size and sizes[i] > 0:
                order = np.lexsort((cand, -counts))  # most shared n-grams; ties: the lowest index
                best = order[0]
                overlap[lo + r] = counts[best] / sizes[i]
                neighbour[lo + r] = cand[best]
    return overlap, neighbour


def _is_symbol(ch: str) -> bool:
    return not (ch.isalnum() or ch.isspace())


@dataclass(frozen=True, eq=False)
class DocumentExplanations:
    """Properties of training documents associated with memorization, and readable reasons.

    Attributes
    ----------
    index : ndarray of int64, shape (m,)
        Training-document indices described (most memorized first when scores were given).
    scores : ndarray of float64, shape (m,)
        The memorization scores passed in (NaN when none).
    duplicate_count : ndarray of int64, shape (m,)
        Occurrences in the raw corpus before deduplication (``TextDataset.train_counts``).
    overlap : ndarray of float64, shape (m,)
        Nearest-neighbour character n-gram overlap with another training document (:func:`ngram_overlap`).
    neighbour : ndarray of int64, shape (m,)
        That nearest training document (-1: none).
    n_chars, n_lines : ndarray of int64, shape (m,)
    surprisal : ndarray of float64, shape (m,)
        Mean unigram surprisal of the document's characters under the training corpus's character
        frequencies (bits per character): high for unusual alphabets, symbols, non-English text.
    rare_chars : tuple of str, length m
        Characters of the document that occur at most ``rare_max_count`` times in the whole training corpus.
    symbol_fraction, upper_fraction, digit_fraction : ndarray of float64, shape (m,)
        Shares of non-alphanumeric non-space, upper-case and digit characters (format: ASCII art, lists, codes).
    reasons : tuple of tuple of str, length m
        Readable reasons for each document (descriptive associations, not causal attributions).
    correlations : dict
        Spearman rank correlation of the scores with each property over the described documents (NaN without
        scores or when a property is constant).
    n_gram : int
    """

    index: np.ndarray
    scores: np.ndarray
    duplicate_count: np.ndarray
    overlap: np.ndarray
    neighbour: np.ndarray
    n_chars: np.ndarray
    n_lines: np.ndarray
    surprisal: np.ndarray
    rare_chars: tuple
    symbol_fraction: np.ndarray
    upper_fraction: np.ndarray
    digit_fraction: np.ndarray
    reasons: tuple
    correlations: dict
    n_gram: int = 8

    def __len__(self) -> int:
        return int(self.index.size)

    def __getitem__(self, i: int) -> dict:
        """The row (see :meth:`rows`) of training document ``i`` (a document index, not a position); KeyError
        when it was not described."""
        pos = np.flatnonzero(self.index == int(i))
        if not pos.size:
            raise KeyError(f"training document {i} was not described")
        return self._row(int(pos[0]))

    def reason_text(self, i: int) -> str:
        """The reasons for training document ``i`` joined with "; " ("" when it was not described)."""
        try:
            return "; ".join(self[i]["reasons"])
        except KeyError:
            return ""

    def _row(self, r: int) -> dict:
        return {"index": int(self.index[r]),
                "score": None if np.isnan(self.scores[r]) else float(self.scores[r]),
                "duplicate_count": int(self.duplicate_count[r]), "overlap": float(self.overlap[r]),
                "neighbour": int(self.neighbour[r]), "n_chars": int(self.n_chars[r]),
                "n_lines": int(self.n_lines[r]), "surprisal_bits": float(self.surprisal[r]),
                "rare_chars": self.rare_chars[r], "symbol_fraction": float(self.symbol_fraction[r]),
                "upper_fraction": float(self.upper_fraction[r]),
                "digit_fraction": float(self.digit_fraction[r]), "reasons": list(self.reasons[r])}

    def rows(self, top: int | None = None) -> list[dict]:
        """One JSON-serializable dict per described document (the first ``top``), for reports and results."""
        m = len(self) if top is None else min(len(self), check_int("top", top, min_value=0))
        return [self._row(r) for r in range(m)]


def explain_documents(dataset, scores=None, *, index=None, top: int | None = None, n_gram: int = 8,
                      near_duplicate: float = 0.5, rare_max_count: int = 2) -> DocumentExplanations:
    """Describe training documents by properties associated with memorization, with readable reasons.

    Parameters
    ----------
    dataset : memlens.data.TextDataset
    scores : array (n_train,) or MemorizationResult, optional
        Memorization of every training document (e.g. :func:`counterfactual_memorization`); with ``top`` the most
        memorized documents are described, most memorized first.
    index : array of int, optional
        Training documents to describe (default: all, or the ``top`` most memorized).
    top : int, optional
        Describe only the ``top`` highest-scoring documents (needs ``scores``).
    n_gram : int
        Characters per n-gram for the near-duplicate search.
    near_duplicate : float in (0, 1]
        Overlap from which a neighbour counts as a near-duplicate in the reasons.
    rare_max_count : int
        A character is rare when it occurs at most this many times in the training corpus.

    Returns
    -------
    DocumentExplanations
        Reasons use the corpus's own distribution: "short"/"long" below the 10th / above the 90th length
        percentile, "unusual characters" above the 90th surprisal percentile, and fixed format thresholds
        (symbols > 30%, upper case > 50%, digits > 20% of characters, 5 or more lines).
    """
    if not isinstance(dataset, TextDataset):
        raise MemlensInputError(f"dataset must be a memlens.data.TextDataset; got {type(dataset).__name__}")
    texts = dataset.train_texts
    n = len(texts)
    if isinstance(scores, MemorizationResult):
        scores = scores.scores
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.shape != (n,):
            raise MemlensInputError(f"scores must have one value per training document ({n},); got {scores.shape}")
    if index is not None and top is not None:
        raise MemlensInputError("pass index= or top=, not both")
    if top is not None:
        if scores is None:
            raise MemlensInputError("top= needs scores (the documents are ranked by them); pass scores")
        top = check_int("top", top, min_value=0)
        idx = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:top]
    elif index is not None:
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise MemlensInputError(f"index must lie in [0, {n}) (training documents); got range "
                                    f"[{idx.min()}, {idx.max()}]")
    else:
        idx = np.arange(n)
    if not 0.0 < float(near_duplicate) <= 1.0:
        raise MemlensInputError(f"near_duplicate must be in (0, 1]; got {near_duplicate}")
    rare_max_count = check_int("rare_max_count", rare_max_count, min_value=0)

    chars = Counter()
    for t in texts:
        chars.update(t)
    total = max(1, sum(chars.values()))
    overlap, neighbour = ngram_overlap(texts, n=n_gram, index=idx)
    all_len = np.array([len(t) for t in texts])
    m = idx.size
    n_chars = all_len[idx].astype(np.int64)
    n_lines = np.array([texts[i].count("\n") + 1 for i in idx], dtype=np.int64)
    surprisal = np.array([np.mean([-np.log2(chars[c] / total) for c in texts[i]]) if texts[i] else 0.0
                          for i in idx])
    all_surprisal = surprisal if m == n else np.array(
        [np.mean([-np.log2(chars[c] / total) for c in t]) if t else 0.0 for t in texts])
    rare = tuple("".join(sorted({c for c in texts[i] if chars[c] <= rare_max_count})) for i in idx)

    def frac(pred):
        return np.array([sum(map(pred, texts[i])) / max(1, len(texts[i])) for i in idx])

    symbol, upper, digit = frac(_is_symbol), frac(str.isupper), frac(str.isdigit)
    dup = np.asarray(dataset.train_counts, dtype=np.int64)[idx]
    short_q, long_q = np.percentile(all_len, [10, 90]) if n else (0, 0)
    surp_q = np.percentile(all_surprisal, 90) if n else 0.0

    reasons = []
    for r, i in enumerate(idx):
        why = []
        if dup[r] > 1:
            why.append(f"occurs {dup[r]} times in the raw corpus (deduplicated here)")
        if overlap[r] >= near_duplicate and neighbour[r] >= 0:
            j = int(neighbour[r])
            if " ".join(texts[i].lower().split()) == " ".join(texts[j].lower().split()):
                why.append(f"duplicate of training document {j}")
            elif overlap[r] >= 0.999:
                why.append(f"contained in training document {j} (all of its {n_gram}-grams)")
            else:
                why.append(f"near-duplicate of training document {j} ({overlap[r]:.0%} of its {n_gram}-grams "
                           "shared)")
        if rare[r]:
            shown = ", ".join(repr(c) if c.isprintable() else unicodedata.name(c, hex(ord(c))) for c in rare[r][:5])
            why.append(f"contains characters rare in the corpus ({shown})")
        if surprisal[r] > surp_q and not rare[r]:
            why.append(f"unusual characters for the corpus ({surprisal[r]:.2f} bits/char)")
        if symbol[r] > 0.3:
            why.append(f"mostly symbols ({symbol[r]:.0%}: ASCII art or formatting)")
        if upper[r] > 0.5:
            why.append(f"mostly upper case ({upper[r]:.0%})")
        if digit[r] > 0.2:
            why.append(f"many digits ({digit[r]:.0%})")
        if n_lines[r] >= 5:
            why.append(f"multi-line layout ({n_lines[r]} lines)")
        if n_chars[r] < short_q:
            why.append(f"short ({n_chars[r]} characters)")
        elif n_chars[r] > long_q:
            why.append(f"long ({n_chars[r]} characters)")
        if not why:
            why.append("no duplicate, near-duplicate, rare character or unusual format found")
        reasons.append(tuple(why))

    sc = np.full(m, np.nan) if scores is None else scores[idx]
    correlations = _correlations(sc, {"duplicate_count": dup, "overlap": overlap, "n_chars": n_chars,
                                      "surprisal": surprisal, "symbol_fraction": symbol})
    return DocumentExplanations(index=idx.astype(np.int64), scores=sc, duplicate_count=dup, overlap=overlap,
                                neighbour=neighbour, n_chars=n_chars, n_lines=n_lines, surprisal=surprisal,
                                rare_chars=rare, symbol_fraction=symbol, upper_fraction=upper,
                                digit_fraction=digit, reasons=tuple(reasons), correlations=correlations,
                                n_gram=n_gram)


def _correlations(scores: np.ndarray, props: dict) -> dict:
    ok = np.isfinite(scores)
    out = {}
    for name, v in props.items():
        v = np.asarray(v, dtype=np.float64)[ok]
        if ok.sum() < 3 or np.ptp(v) == 0 or np.ptp(scores[ok]) == 0:
            out[name] = float("nan")
        else:
            out[name] = float(spearmanr(scores[ok], v).statistic)
    return out
