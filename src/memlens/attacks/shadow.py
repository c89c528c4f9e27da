"""The shadow-model attack of Shokri et al. 2017 (S&P): a classifier trained on the reference models' (signal,
membership) pairs, per class, applied to the target's signals (higher = member).
"""
from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier

from .._random import as_generator
from .._validation import MemlensInputError, check_int
from ._reference import _check_pop, _check_target, _pool, _result, _values
from .results import AttackResult

__all__ = ["shadow_attack"]


_DEFAULT_FEATURES = ("logit", "loss", "correct")


def _default_classifier(seed: int):
    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, early_stopping=False, random_state=seed)


def shadow_attack(pop, *, target: int, features=None, classifier=None, by_class: bool | None = None,
                  max_train: int = 50_000, seed=0, references=None) -> AttackResult:
    """Shokri-style shadow-model attack: a classifier learns membership from the reference models' signals.

    Shokri, Stronati, Song & Shmatikov 2017 (S&P), shadow training: every reference model gives one labelled row per
    example, ``(signals of model k on x, x ∈ train_k)``; an attack classifier is trained on these rows (one per
    class of x when ``by_class``, as in the paper) and applied to the target model's signals. Here the
    features are the population's per-example signals (the paper used the full prediction vector).

    Parameters
    ----------
    pop : Population
    target : int
    features : sequence of str, optional
        Train-split signals used as features (default: those of ``logit``, ``loss``, ``correct`` present).
    classifier : sklearn classifier, optional
        Cloned for every fit; must implement ``predict_proba``. Default: ``HistGradientBoostingClassifier``.
    by_class : bool, optional
        One attack model per class (default: True when the population has train labels).
    max_train : int
        At most this many (model, example) rows per attack model, sampled without replacement.
    seed : int or numpy.random.Generator
        For the subsample and the classifier's ``random_state``.
    references : array of int, optional

    Returns
    -------
    AttackResult
        ``scores``: the attack model's probability that the target trained on the example.
    """
    from threadpoolctl import threadpool_limits  # loads native thread pools: only when limiting them

    _check_pop(pop)
    target = _check_target(pop, target)
    max_train = check_int("max_train", max_train, min_value=2)
    rng = as_generator(seed)
    if features is None:
        features = tuple(f for f in _DEFAULT_FEATURES if f in pop.signals.get("train", {}))
        if not features:
            features = tuple(pop.signals.get("train", {}))
    features = tuple(features)
    if not features:
        raise MemlensInputError("features must name at least one train-split signal; the population has none")
    X_all = np.stack([_values(pop, f) for f in features], axis=-1)          # (n_models, n, F)
    pool = _pool(pop, np.array([target]), references)
    pool[target] = False
    if not pool.any():
        raise MemlensInputError("the shadow attack needs at least one reference model besides the target")
    labels_train = pop.labels.get("train") if hasattr(pop, "labels") else None
    if by_class is None:
        by_class = labels_train is not None and len(labels_train) == pop.masks.shape[1]
    if by_class and (labels_train is None or len(labels_train) != pop.masks.shape[1]):
        raise MemlensInputError("by_class=True needs the population's train labels (pop.labels['train']); "
                                "pass by_class=False")
    groups = np.asarray(labels_train) if by_class else np.zeros(pop.masks.shape[1], dtype=np.int64)
    base = _default_classifier(int(rng.integers(2**31 - 1))) if classifier is None else classifier
    ref_rows = np.flatnonzero(pool)
    scores = np.full(pop.masks.shape[1], np.nan)
    n_fits = 0
    with threadpool_limits(limits=1):
        for g in np.unique(groups):
            cols = np.flatnonzero(groups == g)
            Xg = X_all[np.ix_(ref_rows, cols)].reshape(-1, len(features))
            yg = pop.masks[np.ix_(ref_rows, cols)].reshape(-1)
            if yg.size > max_train:
                pick = rng.choice(yg.size, size=max_train, replace=False)
                Xg, yg = Xg[pick], yg[pick]
            Xt = X_all[target, cols]
            if yg.all() or not yg.any():
                scores[cols] = float(yg.all())            # one class seen: constant prediction
                continue
            model = clone(base)
            if classifier is None:
                model.set_params(random_state=int(rng.integers(2**31 - 1)))
            model.fit(Xg, yg)
            classes = list(model.classes_)
            scores[cols] = model.predict_proba(Xt)[:, classes.index(True)]
            n_fits += 1
    params = {"features": list(features), "by_class": bool(by_class), "max_train": max_train,
              "classifier": type(base).__name__, "n_attack_models": n_fits, "n_reference": int(pool.sum())}
    return _result("shadow", scores, pop.masks[target], target, params, {})
