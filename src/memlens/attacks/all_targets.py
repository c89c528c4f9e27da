"""Every target model in turn: :func:`attack_all_targets` and the registry :data:`ATTACKS`.

Each model of the population is attacked with all other models as references (leave-one-model-out); the batched
attacks (loss, calibrated loss, LiRA, RMIA) compute the reference statistics once for all targets.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .._validation import MemlensInputError
from ..evaluation.metrics import DEFAULT_FPRS, aggregate
from ._reference import _check_pop, _check_target, _result
from .label_only import _label_only_batch, _label_only_name, _warn_label_only, label_only_attack
from .lira import _lira_batch, _lira_name, _warn_lira, lira
from .loss import _calibrated_batch, _loss_batch, _warn_calibrated, calibrated_loss_attack, loss_attack
from .results import AllTargetsResult, AttackResult
from .rmia import _rmia_batch, _warn_rmia, rmia
from .shadow import shadow_attack

__all__ = ["ATTACKS", "attack_all_targets"]


_BATCHED: dict[str, tuple[Callable, Callable, Callable]] = {
    "loss": (_loss_batch, lambda c, t, **k: None, lambda **k: "loss"),
    "calibrated_loss": (_calibrated_batch, lambda c, t, **k: _warn_calibrated(c, t), lambda **k: "calibrated_loss"),
    "lira": (_lira_batch,
             lambda c, t, **k: _warn_lira(c, t, k.get("online", True), k.get("fix_variance", False)),
             lambda **k: _lira_name(k.get("online", True), k.get("fix_variance", False))),
    "rmia": (_rmia_batch, lambda c, t, **k: _warn_rmia(c, t, k.get("online", True)),
             lambda **k: "rmia-" + ("online" if k.get("online", True) else "offline")),
    "label_only": (_label_only_batch, _warn_label_only, _label_only_name),
}


#: Attack name -> function ``f(pop, *, target, **kwargs) -> AttackResult``.
ATTACKS: dict[str, Callable[..., AttackResult]] = {
    "loss": loss_attack,
    "calibrated_loss": calibrated_loss_attack,
    "lira": lira,
    "rmia": rmia,
    "shadow": shadow_attack,
    "label_only": label_only_attack,
}


def attack_all_targets(pop, attack, *, targets=None, fprs=DEFAULT_FPRS, level: float = 0.95,
                       keep_details: bool = True, **kwargs) -> AllTargetsResult:
    """Attack every target model of a population in turn (leave-one-model-out) and aggregate.

    For the built-in ``loss``, ``calibrated_loss``, ``lira`` (mean estimator) and ``rmia`` the per-example IN/OUT
    sums are computed once and each target's statistics are obtained by subtracting its own row, so all targets
    cost about as much as a few.

    Parameters
    ----------
    pop : Population
    attack : str or callable
        A name in :data:`ATTACKS` or a function ``f(pop, *, target, **kwargs) -> AttackResult``.
    targets : array of int, optional
        Rows to attack (default: all rows).
    fprs : sequence of float
        FPRs of the aggregate's TPR (default 0.1% and 1%).
    level : float
        Confidence level of the aggregate's intervals.
    keep_details : bool
        Keep each result's per-example ``details`` (LiRA's μ, σ, ...); False saves memory on large populations.
    **kwargs
        Passed to the attack (``online=False``, ``fix_variance=True``, ``gamma=2`` ...).

    Returns
    -------
    AllTargetsResult
        ``results`` (one :class:`AttackResult` per target) and ``aggregate`` (mean ± CI over targets, pooled ROC).
    """
    _check_pop(pop)
    n_models = pop.masks.shape[0]
    if targets is None:
        targets = np.arange(n_models)
    else:
        targets = np.atleast_1d(np.asarray(targets))
        if targets.ndim != 1 or targets.size == 0 or not np.issubdtype(targets.dtype, np.integer):
            raise MemlensInputError(f"targets must be a non-empty 1-d array of model rows; got {targets!r}")
        for t in targets:
            _check_target(pop, t)
    targets = targets.astype(np.int64)
    if isinstance(attack, str):
        if attack not in ATTACKS:
            raise MemlensInputError(f"attack must be one of {sorted(ATTACKS)} or a callable; got {attack!r}")
        batched = _BATCHED.get(attack)
        if attack == "lira" and kwargs.get("estimator", "mean") != "mean":
            batched = None
        if batched is not None:
            fn, warner, namer = batched
            scores, details, params, counts = fn(pop, targets, **kwargs)
            warner(counts, targets.size, **kwargs)
            name = namer(**kwargs)
            results = tuple(_result(name, scores[j], pop.masks[t], t, params, details[j])
                            for j, t in enumerate(targets))
        else:
            fn = ATTACKS[attack]
            results = tuple(fn(pop, target=int(t), **kwargs) for t in targets)
    elif callable(attack):
        results = tuple(attack(pop, target=int(t), **kwargs) for t in targets)
        for r in results:
            if not isinstance(r, AttackResult):
                raise MemlensInputError(f"attack must return an AttackResult; got {type(r).__name__}")
    else:
        raise MemlensInputError(f"attack must be a name in {sorted(ATTACKS)} or a callable; got {attack!r}")
    if not keep_details:
        results = tuple(AttackResult(r.name, r.scores, r.labels, r.target, r.params, {}) for r in results)
    agg = aggregate(results, fprs=fprs, level=level, targets=targets)
    return AllTargetsResult(results, agg)
