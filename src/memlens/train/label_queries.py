"""Queries recorded while a population is trained: the ``robust`` signal of label-only membership inference and the
``attribute`` signal of attribute inference.

Choquette-Choo, Tramèr, Carlini & Papernot (2021, "Label-only membership inference attacks", §4) score membership by
how robust the model's *predicted label* is to perturbations of the input: a training example tends to stay
correctly labelled under data augmentation (shifts, flips) and under Gaussian noise more often than a non-member.
The attacker needs only labels. For every model of a population, :func:`label_robustness_signal` counts the
fraction of ``n_queries`` perturbed copies of each training example that the model still labels correctly; the
attacks of :mod:`memlens.attacks.label_only` turn this ``robust`` signal into membership scores like every other
signal (a threshold, or a calibration against the population's reference models).

The perturbations are a pure function of ``(seed, query, first row of the chunk)``: every model of a run, every
shard and a resumed run see the *same* perturbed queries, so the robustness of two models is compared on identical
inputs (as the paper queries one fixed set of augmentations). Perturbations act on the features the trainer sees
(standardized, where the model configuration standardizes): ``sigma`` is in those units.

Attribute inference (Yeom, Giacomelli, Fredrikson & Jha 2018, §5; Mehnaz et al. 2022, the confidence-score attack in
its Bayes form): the attacker knows every feature of a training example but a sensitive one, and its label; for each
candidate value ``v`` of the sensitive column it queries the model on ``x[col ← v]`` and guesses the value maximizing
``log p(y | x[col ← v]) + log π(v)`` (``π``: the value's frequency in the training split; no prior for Yeom et al.'s
form). :func:`attribute_signal` records, for every model and every training example, whether that guess is right
(the ``attribute`` signal): the population then tells how much more often it is right when the model trained on the
example (the example's *attribute memorization*, the Feldman–Zhang difference on this signal) and how much better
than the baseline that guesses the most frequent value (:mod:`memlens.attacks.attribute`). Candidate values are the
distinct values of the column in the features the model sees (standardization is affine per column, so they are
the raw values, transformed).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
from scipy.special import log_softmax

from .._validation import MemlensInputError, check_float, check_int
from ..population import output_kind

__all__ = ["LabelQueries", "perturb_rows", "label_robustness_signal", "ROBUST", "QUERY_ROWS", "AttributeQueries",
           "attribute_signal", "ATTRIBUTE", "MAX_ATTRIBUTE_VALUES", "check_queryable"]

#: Name of the signal: the fraction of perturbed queries labelled correctly (higher = fits better).
ROBUST = "robust"
#: Name of the attribute-inference signal: 1.0 where the guess of the sensitive value is right.
ATTRIBUTE = "attribute"
#: A sensitive column with more distinct values than this is continuous, not an attribute to guess.
MAX_ATTRIBUTE_VALUES = 64
#: Rows per perturbation chunk. Part of what the perturbations are (their seeds follow the chunk's first row), so it
#: is fixed, not a tuning knob.
QUERY_ROWS = 2048


def check_queryable(trainer, what: str, *, param: str) -> None:
    """Refuse queries for a trainer that keeps no model to query: one fitted as a whole population (the closed
    forms, the text models) rather than block by block. ``what`` names the queries, ``param`` the argument."""
    if trainer.fit_block is None:
        raise MemlensInputError(f"{what} queries need trained models to query, and model {trainer.name!r} is fitted as "
                                "a whole population (closed form) without keeping them: use logreg, mlp, cnn, your "
                                f"own module or training function, or drop {param}", param=param)


@dataclass(frozen=True)
class LabelQueries:
    """How the label-only queries are drawn (part of a run's identity).

    Attributes
    ----------
    n_queries : int >= 1
        Perturbed copies per example (the robustness is a fraction with this denominator; the paper uses up to a
        few hundred, 32 already separates on small data).
    sigma : float >= 0
        Standard deviation of the Gaussian noise added to every feature (in the units the model sees).
    max_shift : int >= 0
        Images only: each copy is translated by up to this many pixels in each direction (zero fill).
    flip : bool
        Images only: each copy is mirrored left-right with probability 1/2 (for data where a mirror image keeps its
        label: natural images, not digits).
    seed : int
        Seed of the perturbations (shared by every model).
    """

    n_queries: int = 32
    sigma: float = 0.5
    max_shift: int = 0
    flip: bool = False
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "n_queries", check_int("label_queries", self.n_queries, min_value=1,
                                                        hint="(perturbed copies per example)"))
        object.__setattr__(self, "sigma", check_float("label_sigma", self.sigma, min_value=0.0,
                                                      hint="(noise standard deviation, in standardized units)"))
        object.__setattr__(self, "max_shift", check_int("label_shift", self.max_shift, min_value=0,
                                                        hint="(pixels of translation; 0 for none)"))
        if not isinstance(self.flip, (bool, np.bool_)):
            raise MemlensInputError(f"label_flip must be True or False; got {self.flip!r}", param="label_flip")
        object.__setattr__(self, "flip", bool(self.flip))
        object.__setattr__(self, "seed", check_int("label_seed", self.seed, min_value=0))
        if self.sigma == 0 and self.max_shift == 0 and not self.flip:
            raise MemlensInputError("label-only queries need a perturbation: noise (label_sigma, --label-sigma > 0), "
                                    "a shift (label_shift, --label-shift > 0) or mirror images (label_flip, "
                                    "--label-flip); got none, so every query would be the example itself",
                                    param="label_sigma")

    @property
    def augments(self) -> bool:
        return self.max_shift > 0 or self.flip

    def check_input(self, input_shape) -> None:
        """Refuse image augmentations for rows that are not images (``input_shape`` ``(C, H, W)`` or ``(d,)``)."""
        if self.augments and len(tuple(input_shape)) != 3:
            raise MemlensInputError(f"label_shift and label_flip augment images; this data has rows of "
                                    f"{tuple(input_shape)} features (no image shape): use label_sigma (noise) instead",
                                    param="label_shift")
        if self.augments and self.max_shift >= min(tuple(input_shape)[1:]):
            raise MemlensInputError(f"label_shift must be smaller than the image ({tuple(input_shape)[1:]}); got "
                                    f"{self.max_shift}", param="label_shift")

    def to_dict(self) -> dict:
        return {"attack": "label-only robustness (Choquette-Choo et al. 2021)", **asdict(self)}


def _shift_flip(x: np.ndarray, dy: np.ndarray, dx: np.ndarray, flip: np.ndarray, pad: int) -> np.ndarray:
    """Images ``x`` (R, C, H, W) translated by ``(dy, dx)`` (R,) pixels in ``[−pad, pad]`` with zero fill, and mirrored
    where ``flip`` (R,)."""
    R, C, H, W = x.shape
    if pad:
        xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        rr = np.arange(R)[:, None, None]
        hh = (pad - dy)[:, None, None] + np.arange(H)[None, :, None]
        ww = (pad - dx)[:, None, None] + np.arange(W)[None, None, :]
        x = xp[rr, :, hh, ww].transpose(0, 3, 1, 2)          # advanced indices first: (R, H, W, C)
    if flip.any():
        x = np.where(flip[:, None, None, None], x[..., ::-1], x)
    return x


def perturb_rows(X, *, queries: LabelQueries, query: int, row_offset: int, input_shape) -> np.ndarray:
    """Perturbed copy ``query`` of the rows ``X`` (R, d) whose first row is row ``row_offset`` of the split.

    A pure function of ``(queries.seed, query, row_offset)`` and the rows: augment (images: a translation in
    ``[−max_shift, max_shift]²`` and a mirror image with probability 1/2), then add ``N(0, sigma²)`` noise.
    Returns an array of ``X``'s shape and dtype.
    """
    X = np.asarray(X)
    rng = np.random.default_rng([queries.seed, int(query), int(row_offset)])
    out = X
    if queries.augments:
        shape = tuple(input_shape)
        imgs = X.reshape(X.shape[0], *shape)
        s = queries.max_shift
        dy = rng.integers(-s, s + 1, size=X.shape[0])
        dx = rng.integers(-s, s + 1, size=X.shape[0])
        flip = rng.random(X.shape[0]) < 0.5 if queries.flip else np.zeros(X.shape[0], dtype=bool)
        out = _shift_flip(imgs, dy, dx, flip, s).reshape(X.shape)
    if queries.sigma:
        out = out + (queries.sigma * rng.standard_normal(X.shape)).astype(X.dtype, copy=False)
    return np.ascontiguousarray(out, dtype=X.dtype)


def label_robustness_signal(scores: Callable, X, y, *, queries: LabelQueries, n_models: int, input_shape,
                            rows: int = QUERY_ROWS) -> np.ndarray:
    """The ``robust`` signal ``(n_models, n)`` float32: the fraction of perturbed queries each model labels ``y``.

    Parameters
    ----------
    scores : callable
        ``scores(X_rows) -> (n_models, rows, n_classes)`` class scores of a block of models (logits or
        probabilities: only the argmax is read, as a label-only attacker would).
    X : array, shape (n, d); y : int array, shape (n,)
    queries : LabelQueries
    n_models : int
    input_shape : tuple
        ``(C, H, W)`` for images, ``(d,)`` for rows.
    rows : int
        Rows per chunk: must stay :data:`QUERY_ROWS` for the perturbations to be those of the run.
    """
    y = np.asarray(y)
    n = X.shape[0]
    hits = np.zeros((n_models, n), dtype=np.int32)
    for r0 in range(0, n, rows):
        Xr, yr = X[r0:r0 + rows], y[r0:r0 + rows]
        for q in range(queries.n_queries):
            s = np.asarray(scores(perturb_rows(Xr, queries=queries, query=q, row_offset=r0, input_shape=input_shape)))
            if s.ndim != 3 or s.shape[:2] != (n_models, Xr.shape[0]):
                raise MemlensInputError(f"the block's scores must have shape (n_models={n_models}, rows="
                                        f"{Xr.shape[0]}, n_classes); got {s.shape}")
            hits[:, r0:r0 + Xr.shape[0]] += s.argmax(axis=2) == yr[None, :]
    return (hits / queries.n_queries).astype(np.float32)


@dataclass(frozen=True)
class AttributeQueries:
    """Which column is sensitive and how it is guessed (part of a run's identity).

    Attributes
    ----------
    column : int >= 0
        Index of the sensitive feature.
    prior : bool
        Add ``log π(v)`` (the value's training-split frequency) to the model's score (Mehnaz et al.'s Bayes form);
        False: Yeom et al.'s attack on the model's score alone.
    """

    column: int
    prior: bool = True

    def __post_init__(self):
        object.__setattr__(self, "column", check_int("sensitive_column", self.column, min_value=0))
        if not isinstance(self.prior, (bool, np.bool_)):
            raise MemlensInputError(f"attribute_prior must be True or False; got {self.prior!r}",
                                    param="attribute_prior")
        object.__setattr__(self, "prior", bool(self.prior))

    def values(self, X) -> np.ndarray:
        """The candidate values ``(V,)``: the column's distinct values in ``X (n, d)``, refused when the column is
        out of range, constant or continuous."""
        X = np.asarray(X)
        if self.column >= X.shape[1]:
            raise MemlensInputError(f"sensitive_column must be a feature index below {X.shape[1]}; got {self.column}",
                                    param="sensitive_column")
        vals = np.unique(X[:, self.column])
        if vals.size < 2 or vals.size > MAX_ATTRIBUTE_VALUES:
            raise MemlensInputError(f"sensitive_column {self.column} must take between 2 and {MAX_ATTRIBUTE_VALUES} "
                                    f"distinct values (a categorical or binary attribute); it takes {vals.size}",
                                    param="sensitive_column")
        return vals

    def to_dict(self) -> dict:
        return {"attack": "attribute inference (Yeom et al. 2018; Mehnaz et al. 2022)", **asdict(self)}


def attribute_signal(scores: Callable, X, y, *, queries: AttributeQueries, n_models: int,
                     rows: int = QUERY_ROWS) -> np.ndarray:
    """The ``attribute`` signal ``(n_models, n)`` float32: 1.0 where the guess of the sensitive value is right.

    Parameters
    ----------
    scores : callable
        ``scores(X_rows) -> (n_models, rows, n_classes)`` class scores (logits or probabilities: they are turned
        into ``log p(y | x)`` by a log-softmax, or a log where they already sum to 1).
    X : array, shape (n, d); y : int array, shape (n,)
    queries : AttributeQueries
    n_models : int
    """
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.int64)
    vals = queries.values(X)
    true = X[:, queries.column]
    freq = np.array([(true == v).mean() for v in vals])
    log_prior = np.log(np.maximum(freq, 1e-300)) if queries.prior else np.zeros(vals.size)
    hits = np.zeros((n_models, X.shape[0]), dtype=np.float32)
    for r0 in range(0, X.shape[0], rows):
        Xr, yr = X[r0:r0 + rows], y[r0:r0 + rows]
        best = np.full((n_models, Xr.shape[0]), -np.inf)
        guess = np.zeros((n_models, Xr.shape[0]), dtype=np.int64)
        for j, v in enumerate(vals):
            Xv = Xr.copy()
            Xv[:, queries.column] = v
            s = np.asarray(scores(Xv), dtype=np.float64)
            if s.ndim != 3 or s.shape[:2] != (n_models, Xr.shape[0]):
                raise MemlensInputError(f"the block's scores must have shape (n_models={n_models}, rows="
                                        f"{Xr.shape[0]}, n_classes); got {s.shape}")
            if output_kind(s) == "proba":
                lp = np.log(np.maximum(s, 1e-300))
            else:
                lp = log_softmax(s, axis=2)
            score = lp[:, np.arange(Xr.shape[0]), yr] + log_prior[j]
            better = score > best
            best = np.where(better, score, best)
            guess = np.where(better, j, guess)
        hits[:, r0:r0 + Xr.shape[0]] = vals[guess] == true[r0:r0 + rows][None, :]
    return hits
