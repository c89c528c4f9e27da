"""Sampling Feldman's generative model: a distribution over subpopulations from the prior, a labeling, and a sample.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..._random import as_generator
from ..._validation import MemlensInputError, check_int
from .theory import _alpha, _check_classes, _check_n, _check_noise

__all__ = ["prior_marginal_sample", "sample_distribution", "sample_labeling", "LongTailSample", "sample_long_tail"]


_MODELS = ("prior", "permuted", "fixed")


def sample_distribution(frequencies, *, seed=0, model: str = "prior") -> np.ndarray:
    """Draw a distribution ``D`` over the ``N`` domain points.

    ``model="prior"``: Feldman's ``D ~ D_π^X`` — each point draws ``p_x`` uniformly (with replacement) from the
    list ``π``, then ``D = p / Σ p``. ``model="permuted"``: ``D`` is a uniformly random permutation of
    ``π / Σ π``, so ``π̄^N`` is exactly uniform over the list (the approximation of :func:`tau`).
    ``model="fixed"``: ``D = π / Σ π`` itself (point ``i`` keeps frequency ``π_i``, e.g. to follow the groups of
    :func:`mixture_prior`); with i.i.d. uniform labels this has the same statistics as ``"permuted"``.

    Returns ndarray of float64, shape (N,), summing to 1.
    """
    pi = _alpha(frequencies)
    if model not in _MODELS:
        raise MemlensInputError(f"model must be one of {_MODELS}; got {model!r}")
    rng = as_generator(seed)
    if model == "fixed":
        return pi
    if model == "permuted":
        return rng.permutation(pi)
    p = pi[rng.integers(0, pi.shape[0], size=pi.shape[0])]
    return p / p.sum()


def sample_labeling(N: int, *, n_classes: int = 10, seed=0) -> np.ndarray:
    """The labeling prior ``F``: an independent uniform label ``f(x) ∈ [0, m)`` for each point, shape (N,)."""
    N = check_int("N", N, min_value=1)
    m = _check_classes(n_classes)
    return as_generator(seed).integers(0, m, size=N).astype(np.int64)


@dataclass(frozen=True)
class LongTailSample:
    """A dataset ``S ~ (D, f)^n`` with its ground truth.

    Attributes
    ----------
    ids : ndarray of int64, shape (n,)
        Domain point of each example.
    labels : ndarray of int64, shape (n,)
        Observed (possibly noisy) training labels.
    clean_labels : ndarray of int64, shape (n,)
        ``f(ids)``.
    distribution : ndarray of float64, shape (N,)
        ``D``.
    labeling : ndarray of int64, shape (N,)
        ``f``.
    n_classes : int
    label_noise : float
        Probability that a training label was replaced by a uniform random label.
    """

    ids: np.ndarray
    labels: np.ndarray
    clean_labels: np.ndarray
    distribution: np.ndarray
    labeling: np.ndarray
    n_classes: int
    label_noise: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    @property
    def domain_size(self) -> int:
        return int(self.distribution.shape[0])

    @property
    def counts(self) -> np.ndarray:
        """How many times each domain point was seen, shape (N,)."""
        if "counts" not in self._cache:
            self._cache["counts"] = np.bincount(self.ids, minlength=self.domain_size)
        return self._cache["counts"]

    @property
    def votes(self) -> np.ndarray:
        """Observed label counts per domain point, shape (N, m), int64."""
        if "votes" not in self._cache:
            m = self.n_classes
            self._cache["votes"] = np.bincount(self.ids * m + self.labels,
                                               minlength=self.domain_size * m).reshape(-1, m)
        return self._cache["votes"]

    @property
    def example_counts(self) -> np.ndarray:
        """For each example, how many times its point was seen, shape (n,)."""
        return self.counts[self.ids]

    @property
    def is_singleton(self) -> np.ndarray:
        """True for examples whose point appears exactly once in ``S``, shape (n,)."""
        return self.example_counts == 1

    def with_labels(self, labels) -> "LongTailSample":
        """The same examples with other training labels, e.g. after :func:`randomized_response`."""
        y = np.asarray(labels, dtype=np.int64)
        if y.shape != self.labels.shape:
            raise MemlensInputError(f"labels must have one entry per example ({self.n}); got shape {y.shape}")
        return LongTailSample(self.ids, y, self.clean_labels, self.distribution, self.labeling, self.n_classes,
                              self.label_noise)

    def subset(self, index) -> "LongTailSample":
        """The dataset restricted to some examples (bool mask or indices): ``S_I`` of Feldman–Zhang."""
        idx = np.asarray(index)
        return LongTailSample(self.ids[idx], self.labels[idx], self.clean_labels[idx], self.distribution,
                              self.labeling, self.n_classes, self.label_noise)


def sample_long_tail(frequencies, *, n: int, n_classes: int = 10, label_noise: float = 0.0,
                     model: str = "prior", seed=0) -> LongTailSample:
    """Draw ``D`` (:func:`sample_distribution`), ``f`` (:func:`sample_labeling`) and ``S ~ (D, f)^n``.

    Each training label is replaced, with probability ``label_noise``, by a uniform random label (random
    classification noise; the true label ``f(x)`` is what test error is measured against).
    """
    n = _check_n(n)
    eta = _check_noise(label_noise)
    rng = as_generator(seed)
    D = sample_distribution(frequencies, seed=rng, model=model)
    f = sample_labeling(D.shape[0], n_classes=n_classes, seed=rng)
    cdf = np.cumsum(D)
    ids = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), D.shape[0] - 1)
    clean = f[ids]
    labels = clean.copy()
    if eta > 0:
        flip = rng.random(n) < eta
        labels[flip] = rng.integers(0, n_classes, size=int(flip.sum()))
    return LongTailSample(ids.astype(np.int64), labels, clean, D, f, int(n_classes), eta)


def prior_marginal_sample(frequencies, *, n_draws: int = 20, seed=0) -> np.ndarray:
    """Monte Carlo sample of the exact marginal ``π̄^N`` of ``D(x)`` under ``D ~ D_π^X``.

    Draws ``n_draws`` distributions with :func:`sample_distribution` (``model="prior"``) and returns all their
    point frequencies, shape ``(n_draws * N,)``; pass it to :func:`tau_from_marginal`.
    """
    n_draws = check_int("n_draws", n_draws, min_value=1)
    rng = as_generator(seed)
    pi = _alpha(frequencies)
    return np.concatenate([sample_distribution(pi, seed=rng, model="prior") for _ in range(n_draws)])
