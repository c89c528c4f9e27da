"""Attribute inference: recover a sensitive feature of a training example from the model (Yeom, Giacomelli,
Fredrikson & Jha 2018, "Privacy risk in machine learning: analyzing the connection to overfitting", §5; Mehnaz et
al. 2022, "Are your sensitive attributes private?", the confidence-score attack).

The attacker knows every feature of the example but the sensitive one, its label, and the model's class
probabilities. For each candidate value ``v`` of the sensitive column it queries the model on the example with that
value and scores ``log p(y | x[col ← v])``; the guess is the best-scoring value (Yeom et al.'s attack, which
prefers the value under which the model fits the label best; with ``prior`` the score adds ``log π(v)``, the
population's own frequency of the value, the attack of Mehnaz et al. in its Bayes form). The **baseline** guesses
the most frequent value of the population without the model. Advantage = attack accuracy − baseline accuracy,
on members (the model's training examples) against non-members: a model that memorized the attribute helps the
attacker on its members only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._validation import MemlensInputError, check_array, check_int

__all__ = ["AttributeInference", "attribute_inference"]


@dataclass(frozen=True, eq=False)
class AttributeInference:
    """Guesses of the sensitive attribute.

    Attributes
    ----------
    guess : ndarray, shape (n,)
        The attack's guessed value per example.
    scores : ndarray, shape (n, n_values)
        ``log p(y | x[col ← v])`` (+ ``log π(v)`` with a prior) per candidate value.
    values : ndarray, shape (n_values,)
    correct : ndarray of bool, shape (n,)
    baseline_correct : ndarray of bool, shape (n,)
        Whether the population's most frequent value is the true one.
    """

    guess: np.ndarray
    scores: np.ndarray
    values: np.ndarray
    correct: np.ndarray
    baseline_correct: np.ndarray

    def advantage(self, members) -> dict:
        """Accuracy of the attack and of the baseline on members and non-members, and the attack's advantage
        (accuracy − baseline) on each."""
        m = np.asarray(members, dtype=bool)
        if m.shape != self.correct.shape:
            raise MemlensInputError(f"members must have shape {self.correct.shape}; got {m.shape}")
        out = {}
        for name, sel in (("members", m), ("nonmembers", ~m)):
            if sel.any():
                acc, base = float(self.correct[sel].mean()), float(self.baseline_correct[sel].mean())
                out[name] = {"accuracy": acc, "baseline": base, "advantage": acc - base, "n": int(sel.sum())}
        return out


def attribute_inference(predict_proba: Callable, X, y, *, column: int, values=None, prior=None,
                        batch_size: int = 8192) -> AttributeInference:
    """Guess column ``column`` of every row of ``X`` from the model (see the module docstring).

    Parameters
    ----------
    predict_proba : callable
        ``predict_proba(X) -> (rows, n_classes)`` class probabilities of the released model.
    X : array, shape (n, d)
        The examples with their true sensitive values (used only to score the guesses and as the population for the
        baseline and the prior).
    y : int array, shape (n,)
    column : int
        The sensitive feature.
    values : array, optional
        Candidate values (default: the distinct values of the column in ``X``).
    prior : "population" or None
        Add the log-frequency of each value in ``X`` to its score.
    """
    X = check_array("X", X, ndim=2, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if y.shape != (X.shape[0],):
        raise MemlensInputError(f"y must hold one label per row of X ({X.shape[0]}); got shape {y.shape}")
    column = check_int("column", column, min_value=0, max_value=X.shape[1] - 1)
    true = X[:, column]
    vals = np.unique(true) if values is None else check_array("values", values, ndim=1, dtype=np.float64)
    if vals.size < 2:
        raise MemlensInputError(f"the sensitive column {column} needs at least 2 candidate values; got {vals.size}")
    if prior not in (None, "population"):
        raise MemlensInputError(f"prior must be None or 'population'; got {prior!r}")
    scores = np.empty((X.shape[0], vals.size))
    for j, v in enumerate(vals):
        Xv = X.copy()
        Xv[:, column] = v
        P = np.concatenate([np.asarray(predict_proba(Xv[lo:lo + batch_size]), dtype=np.float64)
                            for lo in range(0, X.shape[0], batch_size)])
        if P.shape[0] != X.shape[0] or P.ndim != 2 or y.max() >= P.shape[1]:
            raise MemlensInputError(f"predict_proba must return (rows, n_classes) probabilities; got shape {P.shape}")
        scores[:, j] = np.log(np.maximum(P[np.arange(len(y)), y], 1e-300))
    freq = np.array([(true == v).mean() for v in vals])
    if prior == "population":
        scores = scores + np.log(np.maximum(freq, 1e-300))
    guess = vals[np.argmax(scores, axis=1)]
    base = vals[np.argmax(freq)]
    return AttributeInference(guess=guess, scores=scores, values=vals, correct=guess == true,
                              baseline_correct=np.full(true.shape, base) == true)
