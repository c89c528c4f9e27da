"""The real-data analogue of the long tail: a Gaussian mixture with Zipf-distributed subpopulations, as a
:class:`memlens.data.Dataset` for trained populations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..._random import as_generator
from ..._validation import check_float, check_int
from ...data import Dataset
from .sampling import sample_distribution, sample_labeling
from .theory import _check_classes, _check_n, _check_noise, zipf_prior

__all__ = ["LongTailMixture", "make_long_tail_mixture"]


@dataclass(frozen=True)
class LongTailMixture:
    """A long-tailed mixture of Gaussian subpopulations in ``R^d`` with its ground truth.

    Attributes
    ----------
    dataset : memlens.data.Dataset
        ``X_train (n, d)``, ``y_train (n,)``; the test set holds ``n_test_per_subpopulation`` points of every
        subpopulation (so accuracy can be read per subpopulation; weight it by ``frequencies`` for the
        error on ``D``).
    train_subpopulation : int64 (n,)
        Subpopulation of each training example.
    test_subpopulation : int64 (n_test,)
    frequencies : float64 (N,)
        ``D``: the probability of each subpopulation.
    subpopulation_labels : int64 (N,)
        The label of each subpopulation (uniform over classes).
    centers : float32 (N, d)
    counts : int64 (N,)
        Training examples per subpopulation.
    exponent : float
        Zipf exponent of the frequency prior (``zipf_prior(N, exponent=...)`` is the prior ``π``).
    """

    dataset: object
    train_subpopulation: np.ndarray
    test_subpopulation: np.ndarray
    frequencies: np.ndarray
    subpopulation_labels: np.ndarray
    centers: np.ndarray
    counts: np.ndarray
    exponent: float = 1.0

    @property
    def train_counts(self) -> np.ndarray:
        """Training count of each training example's subpopulation, shape (n,)."""
        return self.counts[self.train_subpopulation]

    @property
    def test_counts(self) -> np.ndarray:
        """Training count of each test example's subpopulation, shape (n_test,)."""
        return self.counts[self.test_subpopulation]


def make_long_tail_mixture(*, n_train: int = 1000, n_subpopulations: int = 500, n_features: int = 200,
                           n_classes: int = 10, exponent: float = 1.0, cluster_std: float = 0.5,
                           n_test_per_subpopulation: int = 4, label_noise: float = 0.0,
                           model: str = "permuted", seed=0) -> LongTailMixture:
    """A long-tailed mixture of subpopulations in ``R^d`` (Feldman 2020, Sec. 3), ready for real learners.

    Subpopulation ``j`` has a center ``c_j`` uniform on the unit sphere of ``R^d``, a uniform random label and
    frequency ``D_j`` from a Zipf prior (:func:`sample_distribution` with ``model``). An example of ``j`` is
    ``c_j + (cluster_std/√d) · N(0, I_d)`` labelled ``j``'s label (training labels flipped to a uniform label
    with probability ``label_noise``). Centers are nearly orthogonal for large ``d``, so a subpopulation's
    label says nothing about any other's: fitting a rare subpopulation requires memorizing its examples.

    Returns
    -------
    LongTailMixture
    """
    n = _check_n(n_train)
    N = check_int("n_subpopulations", n_subpopulations, min_value=2)
    d = check_int("n_features", n_features, min_value=1)
    m = _check_classes(n_classes)
    std = check_float("cluster_std", cluster_std, min_value=0.0)
    k_test = check_int("n_test_per_subpopulation", n_test_per_subpopulation, min_value=1)
    eta = _check_noise(label_noise)
    rng = as_generator(seed)
    D = sample_distribution(zipf_prior(N, exponent=exponent), seed=rng, model=model)
    labels = sample_labeling(N, n_classes=m, seed=rng)
    centers = rng.standard_normal((N, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    cdf = np.cumsum(D)
    sub_tr = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), N - 1).astype(np.int64)
    sub_te = np.repeat(np.arange(N, dtype=np.int64), k_test)
    scale = std / np.sqrt(d)
    X_tr = (centers[sub_tr] + scale * rng.standard_normal((n, d))).astype(np.float32)
    X_te = (centers[sub_te] + scale * rng.standard_normal((sub_te.shape[0], d))).astype(np.float32)
    y_tr = labels[sub_tr].copy()
    if eta > 0:
        flip = rng.random(n) < eta
        y_tr[flip] = rng.integers(0, m, size=int(flip.sum()))
    ds = Dataset(name=f"long-tail-mixture(n={n},N={N},d={d},m={m},s={exponent})", X_train=X_tr,
                 y_train=y_tr.astype(np.int64), X_test=X_te, y_test=labels[sub_te].astype(np.int64),
                 class_names=tuple(str(c) for c in range(m)),
                 description="Zipf mixture of Gaussian subpopulations with random labels (Feldman 2020, Sec. 3)")
    return LongTailMixture(dataset=ds, train_subpopulation=sub_tr, test_subpopulation=sub_te, frequencies=D,
                           subpopulation_labels=labels, centers=centers.astype(np.float32),
                           counts=np.bincount(sub_tr, minlength=N).astype(np.int64), exponent=exponent)
