"""RMIA, the relative membership-inference attack of Zarifzadeh, Liu & Shokri 2024 (ICML).

Score of ``x`` for target ``θ``: ``P_z[ (p_θ(x)/p(x)) / (p_θ(z)/p(z)) ≥ γ ]`` over population samples ``z``, with
``p(x)`` the mean probability over reference models (online: IN and OUT; offline: OUT, corrected by ``a``).
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from .._validation import MemlensInputError, check_float, warn
from ._reference import _check_pop, _check_target, _chunks, _pool, _result, _Sums, _values
from .results import AttackResult

__all__ = ["rmia"]


def _probability(values: np.ndarray, signal: str) -> np.ndarray:
    """p_θ(x): the model's probability of the true label, from a stored signal."""
    if signal == "loss":
        return np.exp(-values)
    if signal == "logit":                                # stable logit φ = log p − log(1 − p)

        return expit(values)
    if signal in ("prob", "proba", "probability", "confidence"):
        return values
    raise MemlensInputError(f"signal must be 'loss', 'logit' or a probability signal ('prob', 'confidence') for "
                            f"RMIA, which needs the probability of the true label; got {signal!r}")


def _rmia_batch(pop, targets, *, gamma=1.0, offline_a=0.3, online=True, signal="loss", z_split="test",
                references=None):
    gamma = check_float("gamma", gamma, min_value=0.0, min_inclusive=False,
                        hint="(the likelihood-ratio threshold; the paper uses 1 or 2)")
    a = check_float("offline_a", offline_a, min_value=0.0, max_value=1.0,
                    hint="(p_IN(x) is approximated by a·p_OUT(x) + 1 − a)")
    if z_split not in pop.signals:
        raise MemlensInputError(f"z_split must name a split of the population holding population samples z "
                                f"(examples no model trained on); got {z_split!r}, available: {list(pop.signals)}; "
                                "pass z_split='train' to compare against all training examples")
    p = _probability(_values(pop, signal), signal)
    pool = _pool(pop, targets, references)
    sums = _Sums(pop.masks, p, pool, squares=False)
    z_is_train = z_split == "train"
    if not z_is_train:
        pz = _probability(_values(pop, signal, z_split), signal)
        if pz.shape[1] == 0:
            raise MemlensInputError(f"split {z_split!r} has no examples to use as population samples z")
        z_masks = np.zeros(pz.shape, dtype=bool)      # population samples are OUT for every model
        zsums = _Sums(z_masks, pz, pool, squares=False)
    n = p.shape[1]
    out = np.empty((targets.size, n))
    details = []
    counts = {"undefined": 0}

    def marginal(st):
        with np.errstate(invalid="ignore"):
            if online:
                return 0.5 * (st.mean_in + st.mean_out)
            return 0.5 * ((1 + a) * st.mean_out + (1 - a))

    pos = 0
    for tg in _chunks(targets, n):
        st = sums.stats(tg)
        px = marginal(st)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio_x = p[tg] / px
        if z_is_train:
            ratio_z_all = ratio_x
        else:
            zst = zsums.stats(tg)
            with np.errstate(invalid="ignore", divide="ignore"):
                pzm = zst.mean_out if online else 0.5 * ((1 + a) * zst.mean_out + (1 - a))
                ratio_z_all = pz[tg] / pzm
        for j in range(tg.size):
            rz = ratio_z_all[j]
            rz = np.sort(rz[np.isfinite(rz)])
            rx = ratio_x[j]
            ok = np.isfinite(rx)
            sc = np.full(n, np.nan)
            if rz.size:
                # LR(x, z) = ratio_x / ratio_z >= gamma  <=>  ratio_z <= ratio_x / gamma
                sc[ok] = np.searchsorted(rz, rx[ok] / gamma, side="right") / rz.size
            out[pos + j] = sc
            counts["undefined"] += int(np.sum(~np.isfinite(sc)))
            details.append({"likelihood_ratio": rx, "p_target": p[tg[j]], "p_marginal": px[j]})
        pos += tg.size
    params = {"signal": signal, "gamma": gamma, "online": bool(online), "offline_a": None if online else a,
              "z_split": z_split, "p_x": "(p_in + p_out)/2" if online else "((1+a) p_out + 1 - a)/2",
              "n_reference": int(pool.sum()) - (1 if references is None else 0)}
    return out, details, params, counts


def _warn_rmia(counts, n_targets, online):
    if counts["undefined"]:
        need = "an IN and an OUT" if online else "an OUT"
        warn(f"{counts['undefined']} (target, example) pair(s) over {n_targets} target(s) have an undefined RMIA score "
             f"(NaN): p(x) needs {need} reference model; use more reference models"
             + (" or online=False" if online else ""), stacklevel=4)


def rmia(pop, *, target: int, gamma: float = 1.0, offline_a: float = 0.3, online: bool = True,
         signal: str = "loss", z_split: str = "test", references=None) -> AttackResult:
    """The Robust Membership Inference Attack (RMIA) of Zarifzadeh, Liu & Shokri 2024 (ICML).

    ``Score(x) = P_z[ LR_θ(x, z) ≥ γ ]`` with the pairwise likelihood ratio
    ``LR_θ(x, z) = (p_θ(x) / p(x)) / (p_θ(z) / p(z))`` over population samples z, where ``p_θ(x)`` is the target
    model's probability of x's true label and ``p(x)`` its average over reference models (the paper's Eqs. for
    ``Score_MIA`` and ``LR_θ``).

    * **online**: ``p(x) = (p̄_IN(x) + p̄_OUT(x)) / 2``, the average over reference models half of which trained
      on x (it equals the plain average in the paper's paired setting and removes the bias of unbalanced masks).
    * **offline**: only OUT models; ``p_IN`` is approximated linearly, ``p(x) = ((1 + a) p̄_OUT(x) + 1 − a) / 2``
      (the paper's offline approximation with parameter ``a = offline_a``).
    * **population samples z**: the examples of split ``z_split`` (default ``test``: no model trained on them),
      with ``p(z)`` the average over the reference models (offline: the same linear approximation, as in the
      authors' Privacy Meter). ``z_split="train"`` compares with all training examples, using the same ``p(x)``
      rule; it does not use the target's membership labels.

    Parameters
    ----------
    pop : Population
    target : int
    gamma : float > 0
        Threshold on the pairwise likelihood ratio (``LR >= gamma`` counts; Privacy Meter uses ``>`` and 1).
    offline_a : float in [0, 1]
        The offline approximation's ``a`` (ignored when ``online``); the paper tunes it per dataset, Privacy
        Meter's default is 0.3.
    online : bool
    signal : str
        Where ``p_θ(x)`` comes from: ``loss`` (``exp(−loss)``, default) or ``logit`` (``sigmoid`` of the stable
        logit); both equal the softmax probability of the true label.
    z_split : str
    references : array of int, optional

    Returns
    -------
    AttackResult
        ``scores`` in [0, 1] (fraction of z dominated), shape ``(n_train,)``; ``details["likelihood_ratio"]`` holds
        ``p_θ(x)/p(x)``. NaN (with a warning) where ``p(x)`` is undefined.
    """
    _check_pop(pop)
    target = _check_target(pop, target)
    scores, det, params, counts = _rmia_batch(pop, np.array([target]), gamma=gamma, offline_a=offline_a,
                                              online=online, signal=signal, z_split=z_split, references=references)
    _warn_rmia(counts, 1, online)
    return _result("rmia-" + ("online" if online else "offline"), scores[0], pop.masks[target], target, params,
                   det[0])
