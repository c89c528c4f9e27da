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
from scipy import stats

from .._validation import MemlensInputError, check_array, check_int

__all__ = ["AttributeInference", "attribute_inference", "PopulationAttributeInference", "attribute_memorization",
           "ATTRIBUTE_SIGNAL"]

#: The population signal :func:`attribute_memorization` reads.
ATTRIBUTE_SIGNAL = "attribute"


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


@dataclass(frozen=True, eq=False)
class PopulationAttributeInference:
    """Attribute inference over a population: per example, as a member and as a non-member.

    Attributes
    ----------
    accuracy_in, accuracy_out : ndarray, shape (n,)
        Fraction of the models that trained / did not train on the example whose guess of its sensitive value is
        right (NaN without such models).
    baseline_correct : ndarray of bool, shape (n,)
        Whether the most frequent value of the column (the guess without the model) is right.
    memorization : ndarray, shape (n,)
        ``accuracy_in − accuracy_out``: the example's attribute memorization (higher = the model reveals its
        sensitive value because it trained on it).
    summary : dict
        ``summary.json``'s ``attribute`` block.
    """

    accuracy_in: np.ndarray
    accuracy_out: np.ndarray
    baseline_correct: np.ndarray
    memorization: np.ndarray
    summary: dict


def attribute_memorization(pop, sensitive_values, *, label_memorization=None, column=None,
                           threshold: float = 0.25) -> PopulationAttributeInference:
    """Attribute inference measured on a population with the ``attribute`` signal (module docstring).

    Parameters
    ----------
    pop : Population
        With ``signals["train"]["attribute"]`` (training with ``AttributeQueries``).
    sensitive_values : array, shape (n_train,)
        The true values of the sensitive column (for the baseline).
    label_memorization : array, shape (n_train,), optional
        Feldman–Zhang label memorization, for the Spearman correlation of the two.
    column : int or str, optional
        The sensitive column, recorded in the summary.
    threshold : float
        Attribute memorization counted as high (as Feldman & Zhang's 0.25 for labels).

    Notes
    -----
    The summary's ``n_high`` is to be read against a noise floor: the same count with the memberships permuted
    among the models, ``memlens.measures.noise_floor(pop.masks, pop.signal("train", "attribute"),
    signal="attribute", mem_threshold=threshold).n_memorized`` (the audit adds it as ``n_high_noise_floor``).
    """
    if ATTRIBUTE_SIGNAL not in pop.signals.get("train", {}):
        raise MemlensInputError("the population has no 'attribute' signal on its train split: train it with "
                                "attribute queries (train_population(..., attribute_queries=AttributeQueries(column)),"
                                " or memlens audit --sensitive-column J)", param="signal")
    A = np.asarray(pop.signal("train", ATTRIBUTE_SIGNAL), dtype=np.float64)
    M = pop.masks & pop.known_rows[:, None]
    O = ~pop.masks & pop.known_rows[:, None]
    true = np.asarray(sensitive_values)
    if true.shape != (A.shape[1],):
        raise MemlensInputError(f"sensitive_values must hold one value per training example ({A.shape[1]}); got "
                                f"shape {true.shape}")
    vals, counts = np.unique(true, return_counts=True)
    base = true == vals[np.argmax(counts)]
    n_in, n_out = M.sum(0), O.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc_in = np.where(n_in > 0, (A * M).sum(0) / n_in, np.nan)
        acc_out = np.where(n_out > 0, (A * O).sum(0) / n_out, np.nan)
    mem = acc_in - acc_out
    pooled_in = float((A * M).sum() / max(M.sum(), 1))
    pooled_out = float((A * O).sum() / max(O.sum(), 1))
    # the baseline on the same (model, example) pairs as each pooled accuracy
    base_in = float((M * base[None, :]).sum() / max(M.sum(), 1))
    base_out = float((O * base[None, :]).sum() / max(O.sum(), 1))
    ok = np.isfinite(mem)
    rho = None
    if label_memorization is not None:
        lm = np.asarray(label_memorization, dtype=np.float64)
        both = ok & np.isfinite(lm)
        if both.sum() > 2 and np.ptp(mem[both]) > 0 and np.ptp(lm[both]) > 0:
            rho = float(stats.spearmanr(mem[both], lm[both]).statistic)
    order = np.argsort(-np.where(ok, mem, -np.inf), kind="stable")
    summary = {
        "column": column, "n_values": int(vals.size), "baseline_value": vals[np.argmax(counts)].item(),
        "members": {"accuracy": pooled_in, "baseline": base_in, "advantage": pooled_in - base_in},
        "nonmembers": {"accuracy": pooled_out, "baseline": base_out, "advantage": pooled_out - base_out},
        "member_minus_nonmember_accuracy": pooled_in - pooled_out,
        "mean_attribute_memorization": float(np.mean(mem[ok])) if ok.any() else None,
        "threshold": threshold, "n_high": int(np.sum(mem[ok] >= threshold)),
        "spearman_with_label_memorization": rho,
        "top": [int(i) for i in order[:20] if ok[i]],
        "method": "the confidence-score attack per model (Yeom et al. 2018; with the value's frequency as a prior, "
                  "Mehnaz et al. 2022); attribute memorization = mean correctness over IN models − over OUT models "
                  "(Feldman–Zhang on this signal)",
    }
    return PopulationAttributeInference(acc_in, acc_out, base, mem, summary)
