"""Loss attacks: the threshold on the target's loss (Yeom et al. 2018, CSF) and its difficulty-calibrated version
(Watson et al. 2022, ICLR: minus the loss relative to the mean over reference models trained without the example).

Scores: ``loss_attack`` ``−ℓ_θ(x)``; ``calibrated_loss_attack`` ``−(ℓ_θ(x) − mean_OUT ℓ(x))``; higher = member.
"""
from __future__ import annotations

import numpy as np

from .._validation import warn
from ._reference import _check_pop, _check_target, _chunks, _pool, _result, _sign, _Sums, _values
from .results import AttackResult

__all__ = ["loss_attack", "calibrated_loss_attack"]


def _loss_batch(pop, targets, *, signal="loss", references=None):
    values = _values(pop, signal)
    sign = _sign(signal)
    scores = sign * values[targets]
    params = {"signal": signal, "sign": sign, "n_reference": 0}
    return scores, [{} for _ in targets], params, {}


def loss_attack(pop, *, target: int, signal: str = "loss") -> AttackResult:
    """The loss-threshold attack of Yeom et al. 2018 (CSF): member iff ``ℓ_θ(x) <= τ``.

    Parameters
    ----------
    pop : Population
    target : int
        Row of the model to attack.
    signal : str
        ``loss`` (default; the score is ``−loss``), or any other train-split signal (``logit`` and ``correct`` are
        used as they are, since higher means a better fit).

    Returns
    -------
    AttackResult
        ``scores[i] = −ℓ_target(x_i)`` (shape ``(n_train,)``); no reference model is used.
    """
    _check_pop(pop)
    target = _check_target(pop, target)
    scores, det, params, _ = _loss_batch(pop, np.array([target]), signal=signal)
    return _result("loss", scores[0], pop.masks[target], target, params, det[0])


def _calibrated_batch(pop, targets, *, signal="loss", references=None):
    values = _values(pop, signal)
    sign = _sign(signal)
    pool = _pool(pop, targets, references)
    sums = _Sums(pop.masks, values, pool, squares=False)
    out = np.empty((targets.size, values.shape[1]))
    details = []
    undefined = 0
    pos = 0
    for tg in _chunks(targets, values.shape[1]):
        st = sums.stats(tg)
        out[pos:pos + tg.size] = sign * (values[tg] - st.mean_out)
        pos += tg.size
        undefined += int(np.sum(st.n_out == 0))
        details.extend({"reference_mean_out": st.mean_out[j], "n_out": st.n_out[j]} for j in range(tg.size))
    params = {"signal": signal, "sign": sign, "calibration": "mean over OUT reference models",
              "n_reference": int(pool.sum()) - (1 if references is None else 0)}
    return out, details, params, {"no_out": undefined}


def _warn_calibrated(counts, n_targets):
    if counts["no_out"]:
        warn(f"{counts['no_out']} (target, example) pair(s) over {n_targets} target(s) have no OUT reference model, "
             "so their calibrated loss is undefined (NaN); train more reference models", stacklevel=4)


def calibrated_loss_attack(pop, *, target: int, signal: str = "loss", references=None) -> AttackResult:
    """Difficulty-calibrated loss attack: the target's loss minus the mean loss of OUT reference models.

    Watson, Guo, Cormode & Sablayrolles 2022 (ICLR), "On the importance of difficulty calibration in membership
    inference attacks": ``s_cal(x) = s(x) − E_ref[s(x)]``, here with the expectation over reference models that
    did not train on x (the offline calibration also used by Ye et al. 2022, Attack R).

    Parameters
    ----------
    pop : Population
    target : int
    signal : str
        ``loss`` (default, negated so that higher = member) or another train-split signal.
    references : array of int, optional
        Rows to use as reference models (default: every row except the target).

    Returns
    -------
    AttackResult
        ``scores[i] = −(ℓ_target(x_i) − mean_{k OUT for i} ℓ_k(x_i))``; NaN (with a warning) where no reference
        model is OUT for ``x_i``.
    """
    _check_pop(pop)
    target = _check_target(pop, target)
    scores, det, params, counts = _calibrated_batch(pop, np.array([target]), signal=signal, references=references)
    _warn_calibrated(counts, 1)
    return _result("calibrated_loss", scores[0], pop.masks[target], target, params, det[0])
