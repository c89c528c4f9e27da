"""LiRA, the likelihood-ratio attack of Carlini et al. 2022 (S&P), on the stable logit φ.

Online: ``log N(φ; μ_in, σ_in²) − log N(φ; μ_out, σ_out²)``; offline: ``−log P[Z > φ]``, ``Z ~ N(μ_out, σ_out²)``.
Exact variants (peers differ here): the Gaussians are fitted with the mean and the unbiased (ddof=1) variance by
default (``estimator="median"`` uses the median for the centre, as in the authors' ``plot.py``); the offline score
is the *one-sided* test of the paper, not the two-sided ``−logpdf`` of that script; the fixed-variance variant uses
one global variance shared by both Gaussians. All of this is recorded in each result's ``params``.

``convention="reference"`` reproduces instead the conventions of the script most papers' LiRA numbers come from
(tensorflow/privacy, ``research/mi_lira_2021/plot.py``): medians for the centres, the population standard
deviation (ddof=0, about the mean), the IN and OUT reference lists of every example truncated to the smallest
count over examples (the first models in row order), the two-sided offline score ``−log N(φ; μ_out, σ_out²)``, and
with ``fix_variance`` online both Gaussians sharing the standard deviation of all IN values (as that script does).
"""
from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr
from scipy.stats import norm

from .._validation import MemlensInputError, check_float, warn
from ._reference import _check_pop, _check_target, _chunks, _median_stats, _pool, _result, _Sums, _values
from .results import AttackResult

__all__ = ["lira", "CONVENTIONS"]


def _lira_name(online: bool, fix_variance: bool) -> str:
    return "lira-" + ("online" if online else "offline") + ("-fixed-variance" if fix_variance else "")


#: LiRA's conventions: memlens's (the paper's tests, unbiased variances) and the reference script's.
CONVENTIONS = ("memlens", "reference")


def _reference_convention(pop, targets, values, pool, *, online, fix_variance):
    """Scores of the reference script's conventions (module docstring), one target at a time.

    Returns the scores ``(T, n)``, the details and the counts of undefined pairs.
    """
    n = values.shape[1]
    out = np.full((targets.size, n), np.nan)
    details = []
    counts = {"few_in": 0, "few_out": 0, "no_in": 0, "no_out": 0, "total_variance": 0}
    for j, t in enumerate(targets):
        rows = pool.copy()
        rows[t] = False
        m = pop.masks[rows]
        v = values[rows].astype(np.float64)
        k_in = int(m.sum(axis=0).min()) if m.shape[0] else 0
        k_out = int((~m).sum(axis=0).min()) if m.shape[0] else 0
        keep_in = m & (np.cumsum(m, axis=0) <= k_in)             # the first k_in IN models of every example
        keep_out = ~m & (np.cumsum(~m, axis=0) <= k_out)
        counts["no_out"] += n if k_out == 0 else 0
        if online:
            counts["no_in"] += n if k_in == 0 else 0
        if k_out == 0 or (online and k_in == 0):
            details.append({"mu_in": np.full(n, np.nan), "mu_out": np.full(n, np.nan), "sd_in": np.full(n, np.nan),
                            "sd_out": np.full(n, np.nan), "n_in": np.full(n, k_in), "n_out": np.full(n, k_out)})
            continue
        d_in = np.where(keep_in, v, np.nan)
        d_out = np.where(keep_out, v, np.nan)
        mu_in, mu_out = np.nanmedian(d_in, axis=0), np.nanmedian(d_out, axis=0)
        if fix_variance:
            sd_out = np.full(n, np.nanstd(d_in if online else d_out))
            sd_in = sd_out
        else:
            sd_in, sd_out = np.nanstd(d_in, axis=0), np.nanstd(d_out, axis=0)
        phi = values[t].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_out = norm.logpdf(phi, mu_out, sd_out + 1e-30)
            sc = norm.logpdf(phi, mu_in, sd_in + 1e-30) - log_out if online else -log_out
        out[j] = np.where(np.isfinite(sc), sc, np.nan)
        details.append({"mu_in": mu_in, "mu_out": mu_out, "sd_in": sd_in, "sd_out": sd_out,
                        "n_in": np.full(n, k_in), "n_out": np.full(n, k_out)})
    return out, details, counts


def _lira_batch(pop, targets, *, online=True, fix_variance=False, signal="logit", estimator="mean",
                references=None, min_variance=1e-10, convention="memlens"):
    if convention not in CONVENTIONS:
        raise MemlensInputError(f"convention must be one of {', '.join(CONVENTIONS)}; got {convention!r} "
                                "('reference': the conventions of tensorflow/privacy's mi_lira_2021 plot.py)")
    if estimator not in ("mean", "median"):
        raise MemlensInputError(f"estimator must be 'mean' or 'median'; got {estimator!r}")
    min_variance = check_float("min_variance", min_variance, min_value=0.0)
    values = _values(pop, signal)
    pool = _pool(pop, targets, references)
    if convention == "reference":
        out, details, counts = _reference_convention(pop, targets, values, pool, online=online,
                                                     fix_variance=fix_variance)
        params = {"signal": signal, "online": bool(online), "fix_variance": bool(fix_variance),
                  "convention": "reference", "estimator": "median",
                  "variance": ("global" if fix_variance else "per-example") + ", ddof=0 about the mean, reference "
                              "lists truncated to the smallest count over examples",
                  "offline_score": None if online else "-log N(phi; mu_out, sd_out^2) (two-sided)",
                  "n_reference": int(pool.sum()) - (1 if references is None else 0)}
        return out, details, params, counts
    sums = _Sums(pop.masks, values, pool)
    n = values.shape[1]
    out = np.empty((targets.size, n))
    details = []
    counts = {"few_in": 0, "few_out": 0, "no_in": 0, "no_out": 0, "total_variance": 0}
    pos = 0
    for tg in _chunks(targets, n):
        st = sums.stats(tg)
        if estimator == "median":
            st = _median_stats(pop.masks, values, pool, tg, st)
        phi = values[tg]
        with np.errstate(invalid="ignore", divide="ignore"):
            if fix_variance:
                # one global variance per target, pooled over examples (and over IN and OUT when online)
                dof = np.maximum(st.n_out - 1, 0).sum(axis=1)
                ss = np.where(st.n_out >= 2, st.ss_out, 0.0).sum(axis=1)
                if online:
                    dof = dof + np.maximum(st.n_in - 1, 0).sum(axis=1)
                    ss = ss + np.where(st.n_in >= 2, st.ss_in, 0.0).sum(axis=1)
                var = ss / dof
                # no example has two reference models in a group (e.g. one reference model): fall back to the
                # variance of the reference signal over all examples (the authors' plot.py ``np.std(dat)``)
                fallback = dof == 0
                if fallback.any():
                    counts["total_variance"] += int(fallback.sum())
                    for j in np.flatnonzero(fallback):
                        rows = pool.copy()
                        rows[tg[j]] = False
                        sel = ~pop.masks[rows] if not online else np.ones_like(pop.masks[rows])
                        vals = values[rows][sel]
                        var[j] = vals.var() if vals.size else np.nan
                var_in = var_out = np.maximum(var, min_variance)[:, None]
            else:
                var_in = np.where(st.n_in >= 2, st.ss_in / (st.n_in - 1), np.nan)
                var_out = np.where(st.n_out >= 2, st.ss_out / (st.n_out - 1), np.nan)
                var_in = np.maximum(var_in, min_variance)
                var_out = np.maximum(var_out, min_variance)
            var_in = np.broadcast_to(var_in, phi.shape)
            var_out = np.broadcast_to(var_out, phi.shape)
            z_out = (phi - st.mean_out) / np.sqrt(var_out)
            if online:
                log_in = -0.5 * np.log(2 * np.pi * var_in) - 0.5 * (phi - st.mean_in) ** 2 / var_in
                log_out = -0.5 * np.log(2 * np.pi * var_out) - 0.5 * z_out ** 2
                sc = log_in - log_out
            else:
                sc = -log_ndtr(-z_out)          # −log P[Z > φ] for Z ~ N(μ_out, σ_out²)
        sc = np.where(np.isfinite(sc), sc, np.nan)
        out[pos:pos + tg.size] = sc
        pos += tg.size
        counts["no_out"] += int(np.sum(st.n_out == 0))
        if online:
            counts["no_in"] += int(np.sum(st.n_in == 0))
        if not fix_variance:
            counts["few_out"] += int(np.sum(st.n_out < 2))
            if online:
                counts["few_in"] += int(np.sum(st.n_in < 2))
        for j in range(tg.size):
            details.append({"mu_in": st.mean_in[j], "mu_out": st.mean_out[j], "sd_in": np.sqrt(var_in[j]),
                            "sd_out": np.sqrt(var_out[j]), "n_in": st.n_in[j], "n_out": st.n_out[j]})
    params = {"signal": signal, "online": bool(online), "fix_variance": bool(fix_variance), "convention": "memlens",
              "estimator": estimator,
              "variance": ("global, pooled within-example" if fix_variance else "per-example") + ", ddof=1",
              "offline_score": None if online else "-log P[Z > phi], Z ~ N(mu_out, sd_out^2) (one-sided)",
              "min_variance": min_variance,
              "n_reference": int(pool.sum()) - (1 if references is None else 0)}
    if counts["total_variance"]:
        params["variance"] = "global, total variance of the reference signal (too few reference models to pool)"
    return out, details, params, counts


def _warn_lira(counts, n_targets, online, fix_variance):
    if online and (counts["no_in"] or counts["no_out"]):
        warn(f"{counts['no_in']} (target, example) pair(s) have no IN and {counts['no_out']} no OUT reference model "
             f"over {n_targets} target(s): their online LiRA score is undefined (NaN); use more reference models or "
             "online=False", stacklevel=4)
    elif not online and counts["no_out"]:
        warn(f"{counts['no_out']} (target, example) pair(s) have no OUT reference model over {n_targets} target(s): "
             "their offline LiRA score is undefined (NaN); use more reference models", stacklevel=4)
    if not fix_variance and (counts["few_in"] or counts["few_out"]):
        warn(f"{counts['few_in']} IN and {counts['few_out']} OUT per-example variance(s) need at least 2 reference "
             f"models and are undefined (NaN scores) over {n_targets} target(s); use fix_variance=True (recommended "
             "with few reference models, Carlini et al. 2022) or more reference models", stacklevel=4)


def lira(pop, *, target: int, online: bool = True, fix_variance: bool = False, signal: str = "logit",
         estimator: str = "mean", references=None, min_variance: float = 1e-10,
         convention: str = "memlens") -> AttackResult:
    """The Likelihood Ratio Attack (LiRA) of Carlini, Chien, Nasr, Song, Terzis & Tramèr 2022 (S&P).

    For every example x the reference models give the signal φ (default: the stable logit
    ``φ = log p_y − log Σ_{y'≠y} p_{y'}``, the paper's §IV-B logit scaling) of the models trained with x (IN) and
    without x (OUT); each group is fitted with a Gaussian. For the target's value φ_θ(x):

    * **online** (Algorithm 1): ``Λ = log N(φ_θ; μ_in, σ_in²) − log N(φ_θ; μ_out, σ_out²)``, the log of the
      likelihood ratio of the two Gaussians (the authors' ``plot.py`` computes the same difference of
      ``scipy.stats.norm.logpdf``).
    * **offline** (the paper's one-sided test against the OUT Gaussian): ``Λ = −log P[Z > φ_θ]``,
      ``Z ~ N(μ_out, σ_out²)``, i.e. minus the log of the upper-tail p-value. It is an increasing function of the
      standardized ``z = (φ_θ − μ_out)/σ_out``, so it ranks examples exactly as ``z`` and as the paper's
      ``1 − P[Z > φ_θ]``, without that form's saturation at 1. (The authors' ``plot.py`` instead scores offline
      with the two-sided ``−logpdf`` under the OUT Gaussian; memlens follows the paper.)
    * **fix_variance**: one global variance instead of per-example variances (recommended with few reference
      models): the pooled within-example variance, over the IN and OUT groups together when online and over the
      OUT group offline. Since it is shared by all examples and both Gaussians, it rescales the scores without
      changing their ranking. With too few models to pool (e.g. one reference model) it falls back to the
      variance of the reference signal over all examples (the authors' ``np.std(dat)``).

    Parameters
    ----------
    pop : Population
    target : int
        Row of the model to attack; every other row (or ``references``) is a reference model.
    online : bool
        Online (IN and OUT Gaussians) or offline (OUT only).
    fix_variance : bool
        Global instead of per-example variance.
    signal : str
        Train-split signal to model (default ``logit``, LiRA's stable logit).
    estimator : {"mean", "median"}
        Centre of each Gaussian: the mean (maximum likelihood; computed for all targets in one pass) or the
        median (as in the authors' code). Variances are the unbiased (ddof=1) variance about the centre.
    references : array of int, optional
        Rows to use as reference models (must not contain the target).
    min_variance : float
        Floor on every variance (signals that are constant over models, e.g. saturated probabilities).
    convention : {"memlens", "reference"}
        ``"memlens"`` (default): the above. ``"reference"``: the conventions of tensorflow/privacy's
        ``research/mi_lira_2021/plot.py``, from which most published LiRA numbers come: median centres, population
        standard deviations (ddof=0), reference lists truncated to the smallest count over examples, the two-sided
        offline score ``−log N(φ; μ_out, σ_out²)``, and with ``fix_variance`` online the standard deviation of all
        IN values for both Gaussians; ``estimator`` and ``min_variance`` do not apply.

    Returns
    -------
    AttackResult
        ``scores`` of shape ``(n_train,)``, higher = more likely a member. NaN (with a
        :class:`~memlens.MemlensWarning`) where a needed group has no model, or, with per-example variance, fewer
        than two models. ``details`` holds ``mu_in, mu_out, sd_in, sd_out, n_in, n_out``.
    """
    _check_pop(pop)
    target = _check_target(pop, target)
    scores, det, params, counts = _lira_batch(pop, np.array([target]), online=online, fix_variance=fix_variance,
                                              signal=signal, estimator=estimator, references=references,
                                              min_variance=min_variance, convention=convention)
    _warn_lira(counts, 1, online, fix_variance)
    return _result(_lira_name(online, fix_variance), scores[0], pop.masks[target], target, params, det[0])
