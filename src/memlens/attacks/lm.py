"""Membership inference against causal language models (the attacks of the MIMIR benchmark, Duan et al. 2024).

Each attack turns per-token log-probabilities into one score per document, **higher = more likely a member**
(MIMIR's own scores run the other way: lower = member; every formula below is MIMIR's negated where needed).
With ``ll(x)`` the mean token log-likelihood of document ``x`` (nats per token; its negation is the loss, i.e. the
log-perplexity):

* ``loss`` (Yeom et al. 2018): ``ll(x)``.
* ``zlib`` (Carlini et al. 2021, §5.1): ``ll(x) / zlib(x)``, with ``zlib(x)`` the bytes of ``zlib.compress(x)``,
  a reference for how predictable the text is in general.
* ``lowercase`` (Carlini et al. 2021, §5.1): ``ll(lower(x)) / ll(x)`` (the ratio of log-perplexities of the
  lower-cased and the original text: the original is much likelier than its lower-cased twin when memorized).
* ``min_k`` (Min-K% Prob, Shi et al. 2024, §3): the mean of the lowest ``k`` fraction of the token
  log-probabilities (at least one token): a member has few surprising tokens.
* ``min_k_plus_plus`` (Min-K%++, Zhang et al. 2024, Eq. 2): each token's log-probability standardized by the mean
  ``μ`` and standard deviation ``σ`` of the log-probability under the model's own next-token distribution,
  ``(log p(x_t) − μ_t) / σ_t``, then the mean of the lowest ``k`` fraction (a token where ``σ_t = 0`` scores 0).
* ``reference`` (Carlini et al. 2022, "difficulty calibration"): ``ll_target(x) − ll_reference(x)`` with a
  reference model of the same distribution that did not train on the members.
* ``recall`` (ReCaLL, Xie et al. 2024, §3): ``ll(x | P) / ll(x)``, the relative log-likelihood of ``x`` when
  conditioned on a prefix ``P`` of known non-member documents (members lose more likelihood).
* ``neighbourhood`` (Mattern et al. 2023, §3): ``ll(x) − mean_j ll(x̃_j)``, with neighbours ``x̃_j`` made by a masked
  language model. Our neighbour generation (a documented variant): a fraction of the masked LM's tokens (at least
  one) at random positions is masked at once and each is filled with the masked LM's most likely token other than
  the original; Mattern et al. substitute one word at a time with the top candidates of BERT under embedding
  dropout.

The pure functions take arrays (:class:`memlens.models.hf.TokenScores` and per-document numbers);
:func:`lm_membership_scores` runs the model(s) and applies every requested attack.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from .._random import as_generator
from .._validation import MemlensInputError, check_float, check_int, did_you_mean
from ..models.hf import (
    CausalLM,
    TokenScores,
    _check_device,
    check_causal_lm,
    encode,
    pad_right,
    require_transformers,
    score_tokens,
)

__all__ = ["LM_ATTACKS", "LMScores", "zlib_bytes", "loss_score", "zlib_score", "lowercase_score", "min_k_score",
           "min_k_plus_plus_score", "reference_score", "recall_score", "neighbourhood_score", "conditional_scores",
           "recall_prefix_ids", "check_attacks", "MaskedLM", "load_masked_lm", "neighbours", "lm_membership_scores"]

#: Every attack, in the order reports list them.
LM_ATTACKS = ("loss", "zlib", "lowercase", "min_k", "min_k_plus_plus", "reference", "recall", "neighbourhood")
#: Attacks that need something beside the target model.
NEEDS = {"reference": "a reference model (--reference PATH)", "recall": "non-member documents for the prefix",
         "neighbourhood": "a masked language model (--mask-model PATH)"}


# ----------------------------------------------------------------------------------------------- pure scores
def zlib_bytes(texts: Sequence[str]) -> np.ndarray:
    """``(n,)`` size in bytes of ``zlib.compress(text.encode("utf-8"))`` (default level)."""
    return np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=np.float64)


def loss_score(mean_logprob) -> np.ndarray:
    """LOSS attack: ``ll(x)``, the mean token log-likelihood, ``(n,)``."""
    return np.asarray(mean_logprob, dtype=np.float64)


def zlib_score(mean_logprob, zlib_size) -> np.ndarray:
    """zlib attack: ``ll(x) / zlib(x)`` (MIMIR's ``loss / zlib`` negated), ``(n,)``."""
    return np.asarray(mean_logprob, dtype=np.float64) / np.maximum(np.asarray(zlib_size, dtype=np.float64), 1.0)


def lowercase_score(mean_logprob, mean_logprob_lower) -> np.ndarray:
    """Lowercase attack: ``log PPL(lower(x)) / log PPL(x) = ll(lower(x)) / ll(x)``; the denominator's log-perplexity
    is floored at 1e-12 (a perfectly predicted document scores highest), ``(n,)``."""
    lp = np.asarray(mean_logprob, dtype=np.float64)
    low = np.asarray(mean_logprob_lower, dtype=np.float64)
    return (-low) / np.maximum(-lp, 1e-12)


def _lowest_mean(values: np.ndarray, offsets: np.ndarray, k: float) -> np.ndarray:
    n = offsets.size - 1
    out = np.full(n, np.nan)
    for i in range(n):
        v = values[offsets[i]:offsets[i + 1]]
        if v.size:
            m = max(1, int(v.size * k))
            out[i] = float(np.mean(np.partition(v, m - 1)[:m]))
    return out


def _check_k(k) -> float:
    return check_float("k", k, min_value=0.0, max_value=1.0, min_inclusive=False,
                       hint="(the fraction of a document's tokens Min-K% averages, e.g. 0.2)")


def min_k_score(scores: TokenScores, *, k: float = 0.2) -> np.ndarray:
    """Min-K% Prob: mean of the ``max(1, floor(k · n_tokens))`` lowest token log-probabilities, ``(n,)``; NaN for
    a document with no scored token."""
    return _lowest_mean(scores.logprob, scores.offsets, _check_k(k))


def min_k_plus_plus_score(scores: TokenScores, *, k: float = 0.2) -> np.ndarray:
    """Min-K%++: mean of the lowest ``k`` fraction of ``(log p(x_t) − μ_t) / σ_t``, ``(n,)``; needs
    ``scores`` computed with ``distribution=True``."""
    if scores.mu is None or scores.sigma is None:
        raise MemlensInputError("min_k_plus_plus_score needs TokenScores with mu and sigma: score with "
                                "distribution=True")
    sig = scores.sigma
    z = np.where(sig > 1e-12, (scores.logprob - scores.mu) / np.where(sig > 1e-12, sig, 1.0), 0.0)
    return _lowest_mean(z, scores.offsets, _check_k(k))


def reference_score(mean_logprob, mean_logprob_reference) -> np.ndarray:
    """Reference attack: ``ll_target(x) − ll_reference(x)`` (MIMIR's ``loss − ref_loss`` negated), ``(n,)``."""
    return np.asarray(mean_logprob, np.float64) - np.asarray(mean_logprob_reference, np.float64)


def recall_score(mean_logprob, mean_logprob_conditional) -> np.ndarray:
    """ReCaLL: ``ll(x | P) / ll(x)`` (higher = member, as in Xie et al. 2024), ``(n,)``; NaN where ``ll(x) = 0``."""
    lp = np.asarray(mean_logprob, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(lp != 0, np.asarray(mean_logprob_conditional, np.float64) / lp, np.nan)


def neighbourhood_score(mean_logprob, neighbour_mean_logprob) -> np.ndarray:
    """Neighbourhood attack: ``ll(x) − mean_j ll(x̃_j)``; ``neighbour_mean_logprob`` has shape
    ``(n, n_neighbours)`` (NaN entries ignored), ``(n,)``."""
    nb = np.asarray(neighbour_mean_logprob, np.float64)
    return np.asarray(mean_logprob, np.float64) - np.nanmean(nb, axis=1)


# ----------------------------------------------------------------------------------------------- conditional
def recall_prefix_ids(lm: CausalLM, prefix_texts: Sequence[str], *, room: int) -> np.ndarray:
    """The ReCaLL prefix: ``[BOS]`` and the non-member documents' tokens, each followed by a newline, cut from the
    front (whole shots first, then tokens) until ``room`` tokens of context remain for the scored document."""
    parts = encode(lm, [t + "\n" for t in prefix_texts])
    head = 1 if lm.bos_id is not None else 0
    body = [p[head:] for p in parts]
    budget = max(1, lm.max_length - room - head)
    while len(body) > 1 and sum(b.size for b in body) > budget:
        body = body[1:]
    flat = [int(t) for b in body for t in b][-budget:]
    bos = [] if lm.bos_id is None else [int(lm.bos_id)]
    return np.asarray(bos + flat, dtype=np.int64)


def conditional_scores(lm: CausalLM, prefix: np.ndarray, ids: Sequence[np.ndarray], **score_kwargs) -> np.ndarray:
    """``(n,)`` mean log-likelihood of each document's own tokens when its text follows ``prefix`` (the prefix is
    context only). A document's BOS is replaced by the prefix (which starts with BOS)."""
    head = 1 if lm.bos_id is not None else 0
    rows = [np.concatenate([prefix, np.asarray(r[head:], dtype=np.int64)]) for r in ids]
    sc = score_tokens(lm, rows, **score_kwargs)
    skip = max(prefix.size - 1, 0)
    out = np.full(len(rows), np.nan)
    for i, r in enumerate(ids):
        own = sc.doc(i)[skip:]
        if own.size:
            out[i] = float(own.mean())
    return out


# ----------------------------------------------------------------------------------------------- neighbours
@dataclass(frozen=True, eq=False)
class MaskedLM:
    """A masked language model (BERT-style) with its tokenizer, for the neighbourhood attack."""

    model: object
    tokenizer: object
    name: str


def load_masked_lm(path, *, device: str = "cpu") -> MaskedLM:
    """Load a masked LM from a local folder (or the local Hugging Face cache); nothing is downloaded."""
    transformers = require_transformers()
    device = _check_device(device)
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = transformers.AutoModelForMaskedLM.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MemlensInputError(f"mask_model {str(path)!r} could not be loaded as a masked language model from a "
                                f"local folder or the cache ({first})") from None
    if tok.mask_token_id is None:
        raise MemlensInputError(f"mask_model {str(path)!r} has no mask token; give a BERT/RoBERTa-style masked LM")
    model.eval().to(device)
    return MaskedLM(model=model, tokenizer=tok, name=str(path))


def neighbours(mlm: MaskedLM, texts: Sequence[str], *, n_neighbours: int = 8, fraction: float = 0.15,
               seed=0, batch_size: int = 32) -> list[list[str]]:
    """``n_neighbours`` perturbed copies of each text (see the module's note on our variant).

    Returns
    -------
    list (n) of lists (n_neighbours) of str
    """
    import torch  # deferred: torch is heavy

    n_neighbours = check_int("n_neighbours", n_neighbours, min_value=1)
    fraction = check_float("fraction", fraction, min_value=0.0, max_value=1.0, min_inclusive=False)
    rng = as_generator(seed)
    tok, model = mlm.tokenizer, mlm.model
    special = set(tok.all_special_ids)
    dev = next(model.parameters()).device
    limit = int(getattr(model.config, "max_position_embeddings", 512))
    jobs = []                                                   # (doc, ids with masks, positions, originals)
    for i, t in enumerate(texts):
        ids = tok(t, add_special_tokens=True, truncation=True, max_length=limit)["input_ids"]
        cand = [p for p, v in enumerate(ids) if v not in special]
        for _ in range(n_neighbours):
            if not cand:
                jobs.append((i, ids, [], []))
                continue
            m = max(1, int(round(fraction * len(cand))))
            pos = sorted(rng.choice(cand, size=min(m, len(cand)), replace=False).tolist())
            masked = list(ids)
            for p in pos:
                masked[p] = tok.mask_token_id
            jobs.append((i, masked, pos, [ids[p] for p in pos]))
    out: list[list[str]] = [[] for _ in texts]
    banned = torch.tensor(sorted(special), dtype=torch.long)
    with torch.inference_mode():
        for lo in range(0, len(jobs), batch_size):
            chunk = jobs[lo:lo + batch_size]
            x, am = pad_right([j[1] for j in chunk], tok.pad_token_id if tok.pad_token_id is not None else 0)
            logits = model(input_ids=torch.from_numpy(x).to(dev),
                           attention_mask=torch.from_numpy(am).to(dev)).logits.float().cpu()
            logits[..., banned] = float("-inf")
            for r, (i, ids, pos, orig) in enumerate(chunk):
                new = list(ids)
                for p, o in zip(pos, orig):
                    row = logits[r, p].clone()
                    row[o] = float("-inf")
                    new[p] = int(row.argmax())
                out[i].append(tok.decode([v for v in new if v not in special], skip_special_tokens=True,
                                         clean_up_tokenization_spaces=False))
    return out


# ----------------------------------------------------------------------------------------------- all attacks
@dataclass(frozen=True, eq=False)
class LMScores:
    """Membership scores of documents under a causal LM.

    Attributes
    ----------
    scores : dict of str to ndarray (n,)
        One entry per attack run; higher = more likely a member.
    mean_logprob : ndarray, shape (n,)
        ``ll(x)`` under the target model (nats per token).
    n_tokens : ndarray of int, shape (n,)
        Scored tokens per document.
    token_accuracy : ndarray, shape (n,)
    extra : dict
        Intermediate per-document values (``mean_logprob_lower``, ``mean_logprob_reference``,
        ``mean_logprob_recall``, ``zlib_bytes``, ``neighbour_mean_logprob``) and settings.
    """

    scores: Mapping[str, np.ndarray]
    mean_logprob: np.ndarray
    n_tokens: np.ndarray
    token_accuracy: np.ndarray
    extra: Mapping[str, object] = field(default_factory=dict)


def check_attacks(attacks, *, reference=None, recall_prefix=None, mask_model=None) -> tuple[str, ...]:
    """The attacks to run: ``None`` = every attack whose requirement is given; an explicit list is checked."""
    have = {"reference": reference is not None, "recall": bool(recall_prefix), "neighbourhood": mask_model is not None}
    if attacks is None:
        return tuple(a for a in LM_ATTACKS if have.get(a, True))
    if isinstance(attacks, str):
        attacks = [a.strip() for a in attacks.split(",") if a.strip()]
    attacks = tuple(dict.fromkeys(attacks))
    for a in attacks:
        if a not in LM_ATTACKS:
            raise MemlensInputError(f"attacks: unknown attack {a!r}{did_you_mean(a, LM_ATTACKS)}; choose from "
                                    f"{', '.join(LM_ATTACKS)}")
        if not have.get(a, True):
            raise MemlensInputError(f"attacks: {a!r} needs {NEEDS[a]}")
    if not attacks:
        raise MemlensInputError(f"attacks must name at least one of {', '.join(LM_ATTACKS)}")
    return attacks


def lm_membership_scores(lm: CausalLM, texts: Sequence[str], *, attacks=None, k: float = 0.2,
                         reference: CausalLM | None = None, recall_prefix: Sequence[str] | None = None,
                         mask_model: MaskedLM | None = None, n_neighbours: int = 8, neighbour_fraction: float = 0.15,
                         window: int | None = None, stride: int | None = None, batch_size: int = 16, seed=0,
                         progress: Callable[[str], None] | None = None) -> LMScores:
    """Score documents by every requested membership attack against ``lm`` (see the module docstring).

    Parameters
    ----------
    lm : CausalLM
        The audited model.
    texts : sequence of str, length n
    attacks : sequence of str or None
        Names from ``LM_ATTACKS``; None runs every attack whose requirement is given.
    k : float in (0, 1]
        Min-K% and Min-K%++ fraction (MIMIR's default 0.2).
    reference : CausalLM, optional
    recall_prefix : sequence of str, optional
        Known non-member documents for ReCaLL's prefix (do not score them as well: they are in the context).
    mask_model : MaskedLM, optional
    n_neighbours, neighbour_fraction : int, float
        Neighbourhood attack: neighbours per document, fraction of (masked-LM) tokens replaced.
    window, stride, batch_size : see :func:`memlens.models.hf.score_tokens`
    seed : int or Generator
        Neighbour positions.
    progress : callable, optional
        ``progress(step_name)`` before each model pass.

    Returns
    -------
    LMScores
    """
    lm = check_causal_lm(lm)
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise MemlensInputError(f"texts[{i}] must be a str; got {type(t).__name__}")
    if reference is not None:
        check_causal_lm(reference, "reference")
    attacks = check_attacks(attacks, reference=reference, recall_prefix=recall_prefix, mask_model=mask_model)
    k = _check_k(k)
    say = progress or (lambda _s: None)
    kw = dict(batch_size=batch_size, window=window, stride=stride)
    say("target model")
    ids = encode(lm, texts)
    ts = score_tokens(lm, ids, distribution="min_k_plus_plus" in attacks, **kw)
    ll = ts.mean_logprob()
    scores: dict[str, np.ndarray] = {}
    extra: dict[str, object] = {"k": k}
    if "loss" in attacks:
        scores["loss"] = loss_score(ll)
    if "zlib" in attacks:
        z = zlib_bytes(texts)
        extra["zlib_bytes"] = z
        scores["zlib"] = zlib_score(ll, z)
    if "lowercase" in attacks:
        say("lower-cased documents")
        low = score_tokens(lm, encode(lm, [t.lower() for t in texts]), **kw).mean_logprob()
        extra["mean_logprob_lower"] = low
        scores["lowercase"] = lowercase_score(ll, low)
    if "min_k" in attacks:
        scores["min_k"] = min_k_score(ts, k=k)
    if "min_k_plus_plus" in attacks:
        scores["min_k_plus_plus"] = min_k_plus_plus_score(ts, k=k)
    if "reference" in attacks:
        say("reference model")
        ref = score_tokens(reference, encode(reference, texts), **kw).mean_logprob()
        extra["mean_logprob_reference"] = ref
        scores["reference"] = reference_score(ll, ref)
    if "recall" in attacks:
        say("ReCaLL: documents after the non-member prefix")
        room = max((r.size for r in ids), default=1)
        prefix = recall_prefix_ids(lm, list(recall_prefix), room=min(room, lm.max_length // 2))
        cond = conditional_scores(lm, prefix, ids, **kw)
        extra["mean_logprob_recall"] = cond
        extra["recall_prefix_tokens"] = int(prefix.size)
        scores["recall"] = recall_score(ll, cond)
    if "neighbourhood" in attacks:
        say("neighbourhood: masked-LM neighbours")
        nb = neighbours(mask_model, texts, n_neighbours=n_neighbours, fraction=neighbour_fraction, seed=seed)
        flat = [s for row in nb for s in row]
        nll = score_tokens(lm, encode(lm, flat), **kw).mean_logprob().reshape(len(texts), n_neighbours) \
            if flat else np.zeros((0, n_neighbours))
        extra["neighbour_mean_logprob"] = nll
        scores["neighbourhood"] = neighbourhood_score(ll, nll)
    return LMScores(scores={a: scores[a] for a in attacks}, mean_logprob=ll, n_tokens=ts.n_tokens,
                    token_accuracy=ts.token_accuracy(), extra=extra)
