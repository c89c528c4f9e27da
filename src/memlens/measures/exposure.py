"""Exposure of inserted canaries (Carlini, Liu, Erlingsson, Kos & Song 2019, "The Secret Sharer", §3–4).

A canary ``s[r]`` (a format with a secret ``r`` drawn from the randomness space ``R``, see
:mod:`memlens.data.text_canaries`) is scored by its **log-perplexity** under the model,
``Px_θ(s[r]) = −log2 Pr_θ(s[r])`` (Def. 1, in bits; here the log-probability of the secret's tokens given the
format's prefix, which differs from the full-sequence one by a term shared by every candidate, so ranks and
exposure are the paper's). Its **rank** is its position among all candidates of ``R`` sorted by increasing
log-perplexity (Def. 3), and

    exposure_θ(s[r]) = log2 |R| − log2 rank_θ(s[r])                          (Def. 4)

between 0 (the canary is the least likely secret) and ``log2 |R|`` (the most likely one). Equivalently (§4.2)
``exposure = −log2 Pr_{t∈R}[Px_θ(s[t]) <= Px_θ(s[r])]``; when ``R`` is too large to enumerate, §4.3 fits a
skew-normal distribution to the log-perplexities of sampled candidates and reads that probability from its CDF
(:func:`exposure_extrapolated`), which also extends exposure beyond ``log2`` of the number of samples.

Direction: higher exposure = more memorized. An unseen secret has ``Pr[exposure >= e] = 2^-e`` (mean
``1/ln 2 ≈ 1.44`` bits).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate, special, stats

from .._random import as_generator
from .._validation import MemlensInputError, check_array, check_int, warn
from ..data.text import BOS, EOS
from ..data.text_canaries import CanaryFormat, TextCanarySet, check_canary_set
from ..models.char_lm import AutoregressiveModel, token_logprobs
from ..models.char_lm import check_model as _check_model

__all__ = ["ExposureResult", "secret_log_perplexity", "space_log_perplexity", "exposure_by_rank",
           "exposure_extrapolated", "skewnorm_log2_cdf", "canary_exposure"]

_LN2 = math.log(2.0)


def _check_format(fmt) -> CanaryFormat:
    if not isinstance(fmt, CanaryFormat):
        raise MemlensInputError(f"fmt must be a CanaryFormat; got {type(fmt).__name__}")
    return fmt


def _canary_tokens(fmt: CanaryFormat, secrets, include_suffix: bool):
    """Tokens ``[BOS] + prefix + secret (+ suffix + EOS)``, lengths, and the ``(n, T−1)`` mask of scored targets."""
    pre = list(fmt.prefix.encode("utf-8"))
    post = list(fmt.suffix.encode("utf-8")) + [EOS] if include_suffix else []
    rows, first = [], 1 + len(pre)
    for j, s in enumerate(secrets):
        rows.append([BOS] + pre + list(fmt.check_secret(s, f"secrets[{j}]").encode("utf-8")) + post)
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    t = int(lengths.max()) if rows else first + 1
    tokens = np.full((len(rows), t), EOS, dtype=np.int64)
    for i, r in enumerate(rows):
        tokens[i, :len(r)] = r
    # target index p−1 predicts token p; scored tokens are positions first .. length−1
    pos = np.arange(1, t)[None, :]
    mask = (pos >= first) & (pos < lengths[:, None])
    return tokens, lengths, mask


def secret_log_perplexity(model: AutoregressiveModel, fmt: CanaryFormat, secrets, *, include_suffix: bool = False,
                          batch_size: int = 1024) -> np.ndarray:
    """Log-perplexity in bits of secrets in their format: ``−Σ log2 p(secret tokens | BOS + prefix)``.

    Parameters
    ----------
    model : AutoregressiveModel
        A byte-level model (``memlens.data.text`` tokens).
    fmt : CanaryFormat
    secrets : sequence of str, length n
        Members of ``fmt``'s randomness space.
    include_suffix : bool
        Also score the format's suffix and the end-of-document token after the secret (they depend on the
        secret through the context).
    batch_size : int
        Sequences per forward pass.

    Returns
    -------
    ndarray of float64, shape (n,)
        ``Px_θ`` (Carlini et al. 2019, Def. 1) in bits; lower = the model finds the secret more likely.
    """
    model, fmt = _check_model(model), _check_format(fmt)
    secrets = [secrets] if isinstance(secrets, str) else list(secrets)
    if not secrets:
        return np.zeros(0, dtype=np.float64)
    tokens, lengths, mask = _canary_tokens(fmt, secrets, include_suffix)
    lp = token_logprobs(model, tokens, lengths=lengths, batch_size=check_int("batch_size", batch_size, min_value=1))
    return -np.where(mask, lp, 0.0).sum(axis=1) / _LN2


def space_log_perplexity(model: AutoregressiveModel, fmt: CanaryFormat, *, include_suffix: bool = False,
                         batch_size: int = 1024) -> np.ndarray:
    """Log-perplexity (bits) of every secret of the randomness space, in index order (``fmt.secrets_at``).

    For a single-byte alphabet without the suffix, one batched forward pass over the ``|R| / |A|`` sequences
    ``BOS + prefix + s_1 … s_{L−1}`` gives every secret: teacher forcing scores the first ``L − 1`` symbols and
    the last position's next-token distribution scores all ``|A|`` choices of the last one, a factor ``|A|``
    fewer sequences than scoring each secret. Otherwise each secret is scored by
    :func:`secret_log_perplexity`.

    Returns
    -------
    ndarray of float64, shape (fmt.space_size,)
    """
    model, fmt = _check_model(model), _check_format(fmt)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    if include_suffix or not fmt.single_byte:
        return secret_log_perplexity(model, fmt, fmt.enumerate(), include_suffix=include_suffix,
                                     batch_size=batch_size)
    if fmt.space_size > 10**7:
        raise MemlensInputError(f"the randomness space has {fmt.space_size} secrets > 10^7; too many to "
                                "enumerate: use canary_exposure(method='extrapolate')")
    a, L = len(fmt.alphabet), fmt.length
    sym = np.frombuffer(fmt.alphabet.encode("utf-8"), dtype=np.uint8).astype(np.int64)
    pre = np.array([BOS] + list(fmt.prefix.encode("utf-8")), dtype=np.int64)
    n_heads = a ** (L - 1)
    heads = sym[fmt.digits(np.arange(n_heads))[:, 1:]] if L > 1 else np.zeros((1, 0), dtype=np.int64)
    t = pre.size + L - 1
    if model.config.arch == "transformer" and t > model.config.context_length:
        raise MemlensInputError(f"the canary prefix and secret need {t} tokens > context_length="
                                f"{model.config.context_length}; shorten the template or widen the model")
    out = np.empty((n_heads, a), dtype=np.float64)
    import torch  # torch takes ~2 s to import: only where a model is scored

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for lo in range(0, n_heads, batch_size):
                h = heads[lo:lo + batch_size]
                x = np.concatenate([np.broadcast_to(pre, (h.shape[0], pre.size)), h], axis=1)
                logits = model(torch.from_numpy(np.ascontiguousarray(x)))[:, pre.size - 1:].double()
                lp = torch.log_softmax(logits, dim=-1).numpy()        # (b, L, V): lp[:, j] predicts symbol j
                partial = np.zeros(h.shape[0])
                for j in range(L - 1):
                    partial += lp[np.arange(h.shape[0]), j, h[:, j]]
                out[lo:lo + batch_size] = partial[:, None] + lp[:, L - 1][:, sym]
    finally:
        model.train(was_training)
    return -out.reshape(-1) / _LN2


def exposure_by_rank(canary_scores, candidate_scores, *, space_size: int | None = None):
    """Exposure from the rank of each canary's log-perplexity among the candidates (Carlini et al. 2019, Def. 4).

    Parameters
    ----------
    canary_scores : array of float, shape (n,)
        Log-perplexities (bits, lower = more likely) of the canaries.
    candidate_scores : array of float, shape (m,)
        Log-perplexities of the candidates, on the same scale.
    space_size : int, optional
        ``|R|``. Default (or ``m``): the candidates are the whole randomness space, canaries included; the rank
        is exact. Larger than ``m``: the candidates are a uniform sample of ``R`` without the canary and the
        rank is estimated as ``1 + (|R| − 1) · (#lower + #tied / 2) / m`` (§4.2's sampling form).

    Returns
    -------
    exposure : ndarray of float64, shape (n,)
        ``log2 |R| − log2 rank``; higher = more memorized, at most ``log2 |R|``.
    rank : ndarray of float64, shape (n,)
        1 = the most likely candidate.

    Notes
    -----
    Ties: candidates with exactly the canary's log-perplexity occupy a block of positions in the sorted list;
    the canary gets the block's **mid-rank** ``#lower + (#tied + 1) / 2`` (``#tied`` counting the canary itself,
    at least 1), its expected position when ties are broken at random. With no ties this is ``#lower + 1``.
    """
    x = check_array("canary_scores", canary_scores, ndim=1, finite=False)
    c = check_array("candidate_scores", candidate_scores, ndim=1, finite=False)
    m = c.size
    if m == 0:
        raise MemlensInputError("candidate_scores must hold at least one candidate; got 0")
    size = m if space_size is None else check_int("space_size", space_size, min_value=1)
    if size < m:
        raise MemlensInputError(f"space_size must be >= the number of candidates ({m}); got {size} (leave it "
                                "out when the candidates are the whole space)")
    if np.isnan(c).any():
        warn(f"{int(np.isnan(c).sum())} candidate log-perplexities are NaN (a diverged model?): the ranks are "
             "undefined and every exposure is NaN")
        nan = np.full(x.shape, np.nan)
        return nan, nan.copy()
    srt = np.sort(c)
    lower = np.searchsorted(srt, x, side="left").astype(np.float64)
    tied = np.searchsorted(srt, x, side="right") - lower
    if size == m:
        rank = lower + (np.maximum(tied, 1) + 1) / 2
    else:
        rank = 1 + (size - 1) * (lower + tied / 2) / m
    rank[np.isnan(x)] = np.nan
    if np.isnan(x).any():
        warn(f"{int(np.isnan(x).sum())} canary log-perplexities are NaN: their exposure is NaN")
    return math.log2(size) - np.log2(rank), rank


def skewnorm_log2_cdf(x, a: float, loc: float, scale: float) -> np.ndarray:
    """``log2 F(x)`` of a skew-normal distribution, accurate far in the left tail.

    ``scipy.stats.skewnorm.logcdf`` underflows to ``−inf`` once ``F(x) < 1e−308`` (and loses precision well
    before); there the CDF is written ``F(x) = f(x) ∫_0^∞ f(x − u) / f(x) du`` with the log-density
    ``log f(z) = log 2 + log φ(z) + log Φ(a z) − log scale`` (log-concave, so the integrand falls from 1 and
    ``quad`` integrates it accurately).
    """
    x = np.asarray(x, dtype=np.float64)
    z = (x - loc) / scale
    with np.errstate(divide="ignore"):
        out = np.asarray(stats.skewnorm.logcdf(z, a), dtype=np.float64) / _LN2
    tail = ~(out > math.log2(1e-12))
    if np.any(tail):
        def logf(t):
            return math.log(2.0) - 0.5 * t * t - 0.5 * math.log(2 * math.pi) + float(special.log_ndtr(a * t))

        flat = out.reshape(-1)
        for k in np.flatnonzero(tail.reshape(-1)):
            zk = float(z.reshape(-1)[k])
            f0 = logf(zk)
            val, _ = integrate.quad(lambda u: math.exp(logf(zk - u) - f0), 0.0, np.inf, limit=200)
            flat[k] = (f0 + math.log(val)) / _LN2
        out = flat.reshape(z.shape)
    return out


def exposure_extrapolated(canary_scores, sample_scores, *, params=None):
    """Exposure from a skew-normal fit to the log-perplexities of sampled candidates (Carlini et al. 2019, §4.3).

    Parameters
    ----------
    canary_scores : array of float, shape (n,)
        Log-perplexities (bits) of the canaries.
    sample_scores : array of float, shape (m,)
        Log-perplexities of secrets drawn uniformly from the randomness space (not inserted), m >= 20.
    params : tuple (a, loc, scale), optional
        A skew-normal to use instead of fitting one (``scipy.stats.skewnorm`` parameters).

    Returns
    -------
    exposure : ndarray of float64, shape (n,)
        ``−log2 F(Px(s[r]))`` with ``F`` the fitted CDF; higher = more memorized. Not capped at ``log2 |R|``:
        it extrapolates the tail beyond the samples, as the paper does.
    params : tuple of float
        The fitted ``(a, loc, scale)`` (maximum likelihood, ``scipy.stats.skewnorm.fit``).
    """
    x = check_array("canary_scores", canary_scores, ndim=1, finite=False)
    if params is None:
        s = check_array("sample_scores", sample_scores, ndim=1, finite=False)
        if np.isnan(s).any() or np.isinf(s).any():
            warn(f"{int((~np.isfinite(s)).sum())} sampled log-perplexities are not finite (a diverged model?): no "
                 "skew-normal can be fitted and every exposure is NaN")
            return np.full(x.shape, np.nan), (math.nan, math.nan, math.nan)
        if s.size < 20:
            raise MemlensInputError(f"sample_scores must hold at least 20 sampled candidates to fit a skew-normal; "
                                    f"got {s.size} (raise n_samples)")
        if np.ptp(s) == 0:
            raise MemlensInputError("sample_scores are all equal: a skew-normal cannot be fitted (the model gives "
                                    "every secret the same probability); use exposure_by_rank")
        params = tuple(float(v) for v in stats.skewnorm.fit(s))
    else:
        if len(params) != 3 or not params[2] > 0:
            raise MemlensInputError(f"params must be (a, loc, scale) with scale > 0; got {params!r}")
        params = tuple(float(v) for v in params)
    exposure = np.full(x.shape, np.nan)
    ok = ~np.isnan(x)
    if not ok.all():
        warn(f"{int((~ok).sum())} canary log-perplexities are NaN: their exposure is NaN")
    exposure[ok] = -skewnorm_log2_cdf(x[ok], *params)
    return exposure, params


@dataclass(frozen=True, eq=False)
class ExposureResult:
    """Exposure of a set of canaries under one model.

    Attributes
    ----------
    exposure : ndarray of float64, shape (n_canaries,)
        Bits; higher = more memorized. Rank method: in ``[0, log2 |R|]``.
    ranks : ndarray of float64, shape (n_canaries,)
        Rank among the space (mid-rank for ties); for the extrapolation the implied ``|R| · 2^−exposure``.
    log_perplexity : ndarray of float64, shape (n_canaries,)
        ``Px_θ`` of each canary, bits.
    method : {"rank", "extrapolate"}
    space_size : int
        ``|R|``.
    reference_scores : ndarray of float64
        Log-perplexities the canaries were compared with: the whole space (``(|R|,)``, index order) or the
        sampled candidates (``(n_samples,)``).
    secrets : tuple of str
    repetitions : ndarray of int64, shape (n_canaries,)
    skewnorm_params : tuple (a, loc, scale) or None
        The fitted skew-normal (extrapolation only).
    """

    exposure: np.ndarray
    ranks: np.ndarray
    log_perplexity: np.ndarray
    method: str
    space_size: int
    reference_scores: np.ndarray
    secrets: tuple
    repetitions: np.ndarray
    skewnorm_params: tuple | None = None

    @property
    def max_exposure(self) -> float:
        """``log2 |R|``: the exposure of a canary ranked first."""
        return math.log2(self.space_size)

    @property
    def n_canaries(self) -> int:
        return int(self.exposure.shape[0])


def canary_exposure(model: AutoregressiveModel, canaries: TextCanarySet, *, method: str = "auto",
                    n_samples: int = 10_000, max_enumerate: int = 10**6, include_suffix: bool = False,
                    batch_size: int = 1024, seed=0) -> ExposureResult:
    """Exposure of every canary of a set under a byte-level model (Carlini et al. 2019, §4).

    Parameters
    ----------
    model : AutoregressiveModel
    canaries : TextCanarySet
    method : {"auto", "rank", "extrapolate"}
        ``"rank"`` enumerates the whole randomness space (:func:`space_log_perplexity`, exact);
        ``"extrapolate"`` fits a skew-normal to ``n_samples`` uniformly drawn non-canary secrets;
        ``"auto"`` ranks when ``|R| <= max_enumerate``, else extrapolates.
    n_samples : int
        Reference secrets for the extrapolation.
    include_suffix : bool
        Score the format's suffix too (see :func:`secret_log_perplexity`).
    seed : int or numpy.random.Generator
        Draws the reference secrets.

    Returns
    -------
    ExposureResult
    """
    model = _check_model(model)
    check_canary_set(canaries)
    if method not in ("auto", "rank", "extrapolate"):
        raise MemlensInputError(f"method must be 'auto', 'rank' or 'extrapolate'; got {method!r}")
    n_samples = check_int("n_samples", n_samples, min_value=20)
    max_enumerate = check_int("max_enumerate", max_enumerate, min_value=1)
    fmt = canaries.format
    if method == "auto":
        method = "rank" if fmt.space_size <= max_enumerate else "extrapolate"
    params = None
    if method == "rank":
        ref = space_log_perplexity(model, fmt, include_suffix=include_suffix, batch_size=batch_size)
        px = ref[fmt.index_of(canaries.secrets)]
        exposure, ranks = exposure_by_rank(px, ref)
    else:
        px = secret_log_perplexity(model, fmt, canaries.secrets, include_suffix=include_suffix,
                                   batch_size=batch_size)
        samples = fmt.sample_secrets(n_samples, seed=as_generator(seed), replace=True, exclude=canaries.secrets)
        ref = secret_log_perplexity(model, fmt, samples, include_suffix=include_suffix, batch_size=batch_size)
        exposure, params = exposure_extrapolated(px, ref)
        ranks = fmt.space_size * np.exp2(-exposure)
    return ExposureResult(exposure=np.asarray(exposure, dtype=np.float64), ranks=np.asarray(ranks, np.float64),
                          log_perplexity=px, method=method, space_size=fmt.space_size, reference_scores=ref,
                          secrets=canaries.secrets, repetitions=canaries.repetitions, skewnorm_params=params)
