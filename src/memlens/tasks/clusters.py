"""Brown et al.'s hypercube cluster labeling: the task on which accurate learners must memorize singletons.

Brown, Bun, Feldman, Smith, Talwar, "When is Memorization of Irrelevant Training Data Necessary for
High-Accuracy Learning?" (STOC 2021, arXiv:2012.06421 v2), §4 (cluster labeling) and the v2 experiments.

A problem instance ``P`` is a mixture of ``N`` subpopulations (clusters) of the cube ``{-1, +1}^d``; the label
of a point is the id of its cluster, so the task is ``N``-way classification.

* ``variant="subcube"`` (the generator of the paper's experiments, ``create_problem_instance`` in the
  authors' code): cluster ``j`` fixes ``k_j ~ Binomial(d, ρ)`` coordinates ``F_j`` (a uniform subset) to
  uniform values ``v_j ∈ {-1, +1}^{k_j}``; a sample is uniform on the cube with ``x[F_j] = v_j``. The other
  ``d − k_j`` coordinates are *free*: pure noise given ``P``, the "irrelevant" bits a memorizing model stores.
* ``variant="correlated"`` (the theory's ρ-correlated copies): cluster ``j`` has a uniform centre
  ``c_j ∈ {-1, +1}^d`` and a sample agrees with it on each coordinate independently with probability
  ``(1 + ρ)/2``. Every coordinate is noisy, with ``h2((1 − ρ)/2)`` bits of entropy given ``P``.

Training points draw their cluster uniformly from ``[N]``. A *singleton* is a training point whose cluster
appears exactly once; with ``N = n`` about ``(1 − 1/n)^{n−1} ≈ e^{−1} ≈ 0.368`` of the clusters are
singletons.
Three test sets measure accuracy (each of size ``n_test``): ``test`` (i.i.d. from the mixture),
``represented`` (cluster uniform over clusters with at least one training point) and ``singles`` (cluster
uniform over singleton clusters).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._math import binary_entropy
from .._random import as_generator
from .._validation import MemlensInputError, check_float, check_int, check_labels, warn
from ..data import from_arrays

__all__ = [
    "ClusterInstance",
    "ClusterLabelingData",
    "calibrated_rho",
    "make_cluster_instance",
    "make_cluster_labeling",
    "find_singletons",
    "SINGLETON_FRACTION",
]

#: the expected fraction of clusters that are singletons when N = n, hard-coded in the authors' calibration
SINGLETON_FRACTION = 0.368

_VARIANTS = ("subcube", "correlated")


def calibrated_rho(n: int, d: int, *, a: float = 50000.0, singleton_fraction: float = SINGLETON_FRACTION) -> float:
    """The fixing probability ``ρ`` of the paper's experiments.

    ``ρ = sqrt((2 ln(a · f · n) − ln ln n) / d)`` with ``f`` = ``singleton_fraction`` (0.368 in the authors'
    ``main.py``; Brown et al. v2, experiments). It makes ``(ρd)² / d ≈ 2 ln(a · #singletons)``, the
    Gaussian-maximum threshold for telling the right cluster from about ``a · 0.368 n`` competitors by inner
    product. For ``n = 500, d = 1000, a = 50000``: ``ρ = 0.17390``, about 174 fixed coordinates per cluster.

    Parameters
    ----------
    n : int
        Number of training points (>= 2).
    d : int
        Dimension (>= 1).
    a : float, keyword-only
        Over-calibration factor (> 0).
    singleton_fraction : float, keyword-only
        Expected fraction of singleton clusters, in (0, 1].

    Returns
    -------
    float
        ``ρ`` in (0, 1].
    """
    n = check_int("n", n, min_value=2, hint="(ρ involves ln ln n)")
    d = check_int("d", d, min_value=1)
    a = check_float("a", a, min_value=0.0, min_inclusive=False)
    singleton_fraction = check_float("singleton_fraction", singleton_fraction, min_value=0.0,
                                     max_value=1.0, min_inclusive=False)
    numerator = 2.0 * math.log(a * singleton_fraction * n) - math.log(math.log(n))
    if numerator <= 0:
        raise MemlensInputError(f"a * singleton_fraction * n must be large enough that 2 ln(a f n) > ln ln n; "
                                f"got a={a}, singleton_fraction={singleton_fraction}, n={n}; increase a")
    rho = math.sqrt(numerator / d)
    if rho > 1.0:
        raise MemlensInputError(f"the calibrated fixing probability exceeds 1 (rho={rho:.3f}) for n={n}, d={d}; "
                                f"increase d to at least {math.ceil(numerator)}")
    return rho


@dataclass(frozen=True, eq=False)
class ClusterInstance:
    """One problem instance ``P``: the ground truth of every cluster.

    Attributes
    ----------
    variant : {"subcube", "correlated"}
    rho : float
        Fixing probability (subcube) or correlation (correlated).
    fixed : ndarray of bool, shape (n_clusters, d)
        ``fixed[j, k]`` is True when coordinate ``k`` belongs to ``F_j`` (subcube); all False for the
        correlated variant, whose coordinates are all noisy.
    values : ndarray of int8, shape (n_clusters, d)
        Subcube: ``v_j`` on the fixed coordinates, 0 on the free ones. Correlated: the centres ``c_j`` (±1).
    """

    variant: str
    rho: float
    fixed: np.ndarray
    values: np.ndarray

    @property
    def n_clusters(self) -> int:
        return int(self.fixed.shape[0])

    @property
    def d(self) -> int:
        return int(self.fixed.shape[1])

    @property
    def n_fixed(self) -> np.ndarray:
        """``|F_j|`` for every cluster, shape (n_clusters,)."""
        return self.fixed.sum(axis=1)

    def fixed_indices(self, cluster: int) -> np.ndarray:
        """The fixed coordinates ``F_j`` of one cluster, sorted."""
        cluster = check_int("cluster", cluster, min_value=0, max_value=self.n_clusters - 1)
        return np.flatnonzero(self.fixed[cluster])

    def free_mask(self, labels) -> np.ndarray:
        """``(n, d)`` bool: True on the coordinates that are noise given ``P`` for each label's cluster."""
        labels = check_labels("labels", np.atleast_1d(labels), n_classes=self.n_clusters)
        return ~self.fixed[labels]

    def bit_entropy(self, labels) -> np.ndarray:
        """``(n, d)`` float: entropy in bits of each coordinate of a sample given ``P`` and its cluster.

        1 on free and 0 on fixed coordinates (subcube); ``h2((1 − ρ)/2)`` everywhere (correlated).
        """
        labels = check_labels("labels", np.atleast_1d(labels), n_classes=self.n_clusters)
        if self.variant == "subcube":
            return (~self.fixed[labels]).astype(np.float64)
        return np.full((labels.shape[0], self.d), float(binary_entropy((1.0 - self.rho) / 2.0)))

    def sample(self, labels, *, seed=0) -> np.ndarray:
        """Fresh samples from the given clusters.

        Parameters
        ----------
        labels : array of int, shape (n,)
            Cluster of each sample.
        seed : int or numpy.random.Generator, keyword-only

        Returns
        -------
        ndarray of float32, shape (n, d), entries ±1
        """
        labels = check_labels("labels", np.atleast_1d(labels), n_classes=self.n_clusters)
        rng = as_generator(seed)
        # one float64 draw per entry: the stream does not depend on how callers chunk their requests
        coins = rng.random((labels.shape[0], self.d))
        values = self.values[labels]
        if self.variant == "subcube":
            x = np.where(coins < 0.5, 1, -1).astype(np.int8)
            x = np.where(self.fixed[labels], values, x)
        else:
            agree = coins < (1.0 + self.rho) / 2.0
            x = np.where(agree, values, -values)
        return x.astype(np.float32)


def make_cluster_instance(*, n_clusters: int, d: int, rho: float, variant: str = "subcube",
                          seed=0) -> ClusterInstance:
    """Draw a problem instance ``P ~ q``.

    Subcube (the authors' ``create_problem_instance``): ``k_j ~ Binomial(d, ρ)``, ``F_j`` a uniform subset of
    size ``k_j``, ``v_j`` uniform signs. Correlated: uniform centres ``c_j``.

    Parameters
    ----------
    n_clusters : int, keyword-only
        ``N`` (>= 1).
    d : int, keyword-only
        Dimension (>= 1).
    rho : float, keyword-only
        Fixing probability (subcube) or per-coordinate correlation (correlated), in [0, 1].
    variant : {"subcube", "correlated"}, keyword-only
    seed : int or numpy.random.Generator, keyword-only
    """
    n_clusters = check_int("n_clusters", n_clusters, min_value=1)
    d = check_int("d", d, min_value=1)
    rho = check_float("rho", rho, min_value=0.0, max_value=1.0)
    if variant not in _VARIANTS:
        raise MemlensInputError(f"variant must be one of {', '.join(_VARIANTS)}; got {variant!r}")
    rng = as_generator(seed)
    if variant == "subcube":
        k = rng.binomial(d, rho, size=n_clusters)
        # a uniform subset of size k_j: the k_j coordinates with the smallest random keys
        ranks = np.argsort(np.argsort(rng.random((n_clusters, d)), axis=1), axis=1)
        fixed = ranks < k[:, None]
        signs = np.where(rng.random((n_clusters, d)) < 0.5, 1, -1).astype(np.int8)
        values = np.where(fixed, signs, 0).astype(np.int8)
        if np.any(k == 0):
            warn(f"{int(np.sum(k == 0))} cluster(s) fix no coordinate (rho={rho}, d={d}); their samples are "
                 "uniform on the whole cube")
    else:
        fixed = np.zeros((n_clusters, d), dtype=bool)
        values = np.where(rng.random((n_clusters, d)) < 0.5, 1, -1).astype(np.int8)
    return ClusterInstance(variant=variant, rho=float(rho), fixed=fixed, values=values)


def find_singletons(y, *, n_clusters: int | None = None) -> np.ndarray:
    """Training indices whose label appears exactly once in ``y`` (the authors' ``find_singletons``).

    Parameters
    ----------
    y : array of int, shape (n,)
        Cluster labels of the training set.
    n_clusters : int, optional, keyword-only
        Number of clusters (labels must be below it).

    Returns
    -------
    ndarray of int64, shape (n_singletons,), sorted increasingly
    """
    y = check_labels("y", y, n_classes=n_clusters)
    if y.size == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.bincount(y)
    return np.flatnonzero(counts[y] == 1).astype(np.int64)


@dataclass(frozen=True, eq=False)
class ClusterLabelingData:
    """A training set drawn from an instance, its singletons and the three test sets.

    Attributes
    ----------
    instance : ClusterInstance
        The ground truth ``P``.
    X, y : ndarray, shapes (n, d) float32 (±1) and (n,) int64
        Training set; ``y`` is the cluster id.
    counts : ndarray of int64, shape (n_clusters,)
        Training points per cluster.
    singletons : ndarray of int64, shape (n_singletons,)
        Training indices whose cluster appears exactly once.
    X_test, y_test : i.i.d. test set from the mixture.
    X_represented, y_represented : test points from clusters with at least one training point.
    X_singles, y_singles : test points from singleton clusters.
    """

    instance: ClusterInstance
    X: np.ndarray
    y: np.ndarray
    counts: np.ndarray
    singletons: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_represented: np.ndarray
    y_represented: np.ndarray
    X_singles: np.ndarray
    y_singles: np.ndarray

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_clusters(self) -> int:
        return self.instance.n_clusters

    @property
    def singleton_clusters(self) -> np.ndarray:
        """Cluster ids of the singletons, shape (n_singletons,)."""
        return self.y[self.singletons]

    @property
    def represented_clusters(self) -> np.ndarray:
        """Cluster ids with at least one training point."""
        return np.flatnonzero(self.counts > 0)

    def test_sets(self) -> dict:
        """``{"test": (X, y), "represented": (X, y), "singles": (X, y)}``."""
        return {"test": (self.X_test, self.y_test), "represented": (self.X_represented, self.y_represented),
                "singles": (self.X_singles, self.y_singles)}

    def upsampled(self, copies: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """The training set with every singleton present ``copies`` times (the paper's logistic regression
        trains on ``copies=2``). Returns ``(X, y)`` with the extra copies appended in singleton order."""
        copies = check_int("copies", copies, min_value=1)
        extra = np.repeat(self.singletons, copies - 1)
        return np.concatenate([self.X, self.X[extra]]), np.concatenate([self.y, self.y[extra]])

    def to_dataset(self, *, test: str = "test"):
        """The training set and one of the test sets as a :class:`memlens.data.Dataset`."""
        sets = self.test_sets()
        if test not in sets:
            raise MemlensInputError(f"test must be one of {', '.join(sets)}; got {test!r}")
        X_test, y_test = sets[test]
        return from_arrays(self.X, self.y, X_test, y_test, name=f"clusters-{self.instance.variant}",
                           class_names=[str(j) for j in range(self.n_clusters)])


def make_cluster_labeling(*, n: int = 500, d: int | None = None, n_clusters: int | None = None,
                          rho: float | None = None, a: float = 50000.0, n_test: int = 500,
                          variant: str = "subcube", seed=0) -> ClusterLabelingData:
    """Draw an instance, a training set and the three test sets, as in the paper's experiments.

    Parameters
    ----------
    n : int, keyword-only
        Training points (default 500, the paper's value).
    d : int, optional, keyword-only
        Dimension; default ``2n`` (the paper's ``d = 1000``).
    n_clusters : int, optional, keyword-only
        ``N``; default ``n``.
    rho : float, optional, keyword-only
        Fixing probability / correlation; default :func:`calibrated_rho` ``(n, d, a=a)``.
    a : float, keyword-only
        Calibration factor used when ``rho`` is None.
    n_test : int, keyword-only
        Size of each test set (default 500).
    variant : {"subcube", "correlated"}, keyword-only
    seed : int or numpy.random.Generator, keyword-only

    Returns
    -------
    ClusterLabelingData
        The ``singles`` test set is empty (with a warning) when the training set has no singleton.
    """
    n = check_int("n", n, min_value=2)
    d = 2 * n if d is None else check_int("d", d, min_value=1)
    n_clusters = n if n_clusters is None else check_int("n_clusters", n_clusters, min_value=1)
    n_test = check_int("n_test", n_test, min_value=0)
    rho = calibrated_rho(n, d, a=a) if rho is None else check_float("rho", rho, min_value=0.0, max_value=1.0)
    rng = as_generator(seed)
    instance = make_cluster_instance(n_clusters=n_clusters, d=d, rho=rho, variant=variant, seed=rng)

    y = rng.integers(0, n_clusters, size=n).astype(np.int64)
    X = instance.sample(y, seed=rng)
    counts = np.bincount(y, minlength=n_clusters).astype(np.int64)
    singletons = find_singletons(y, n_clusters=n_clusters)

    y_test = rng.integers(0, n_clusters, size=n_test).astype(np.int64)
    X_test = instance.sample(y_test, seed=rng)
    represented = np.flatnonzero(counts > 0)
    y_rep = represented[rng.integers(0, represented.size, size=n_test)].astype(np.int64)
    X_rep = instance.sample(y_rep, seed=rng)
    single_clusters = y[singletons]
    if single_clusters.size:
        y_sing = single_clusters[rng.integers(0, single_clusters.size, size=n_test)].astype(np.int64)
    else:
        warn("the training set has no singleton cluster; the singles test set is empty")
        y_sing = np.zeros(0, dtype=np.int64)
    X_sing = instance.sample(y_sing, seed=rng)
    return ClusterLabelingData(instance=instance, X=X, y=y, counts=counts, singletons=singletons,
                               X_test=X_test, y_test=y_test, X_represented=X_rep, y_represented=y_rep,
                               X_singles=X_sing, y_singles=y_sing)
