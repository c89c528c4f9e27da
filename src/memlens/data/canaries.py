"""Canaries: extra training examples inserted to audit a training run.

Two kinds, both for label-based models:

* ``"mislabeled"``: copies of distinct training inputs, each with a label drawn uniformly among the classes
  *other* than its original one. The model can fit such an example only by memorizing it (the genuine example
  with its true label stays in the training set): in-distribution canaries that need no access to the input
  space beyond the data itself.
* ``"random-label"``: inputs drawn uniformly in the box spanned by the training features (per feature between
  its minimum and maximum), with uniformly random labels: out-of-distribution canaries, which a model can fit
  without conflicting with any real example. On digits with L2 logistic regression they are the easier ones to
  detect (the audited ε is higher than with mislabeled copies).

:func:`with_canaries` appends a :class:`CanarySet` to a dataset's training split and returns the canaries'
indices there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._random import as_generator
from .._validation import MemlensInputError, check_int
from .datasets import Dataset

__all__ = ["CANARY_KINDS", "CanarySet", "make_canaries", "with_canaries"]

CANARY_KINDS = ("mislabeled", "random-label")


@dataclass(frozen=True, eq=False)
class CanarySet:
    """Canary examples to insert into a training split.

    Attributes
    ----------
    X : ndarray, shape (m, n_features), float32
    y : ndarray, shape (m,), int64
        Canary labels.
    kind : {"mislabeled", "random-label"}
    source_index : ndarray of int64, shape (m,)
        Training row each mislabeled canary copies (−1 for random-label canaries).
    original_label : ndarray of int64, shape (m,)
        True label of the copied row (−1 for random-label canaries); ``y != original_label`` for mislabeled ones.
    dataset_fingerprint : str
        Fingerprint of the dataset the canaries were made from.
    """

    X: np.ndarray
    y: np.ndarray
    kind: str
    source_index: np.ndarray
    original_label: np.ndarray
    dataset_fingerprint: str = ""

    @property
    def n_canaries(self) -> int:
        return int(self.y.shape[0])

    def to_dict(self) -> dict:
        """Summary (no arrays) for a run's provenance."""
        return {"kind": self.kind, "n_canaries": self.n_canaries, "dataset_fingerprint": self.dataset_fingerprint}


def make_canaries(dataset: Dataset, *, n_canaries: int, kind: str = "mislabeled", seed=0) -> CanarySet:
    """Draw ``n_canaries`` canaries for ``dataset``.

    Parameters
    ----------
    dataset : Dataset
    n_canaries : int >= 2
        ``m``; for ``"mislabeled"`` at most ``dataset.n_train`` (the copied rows are distinct).
    kind : {"mislabeled", "random-label"}
        See the module docstring.
    seed : int or numpy.random.Generator

    Returns
    -------
    CanarySet
    """
    if not isinstance(dataset, Dataset):
        raise MemlensInputError(f"dataset must be a memlens.data.Dataset (from load_dataset(...) or "
                                f"from_arrays(...)); got {type(dataset).__name__}")
    if not isinstance(kind, str) or kind not in CANARY_KINDS:
        raise MemlensInputError(f"kind must be one of {list(CANARY_KINDS)}; got {kind!r}")
    n_max = dataset.n_train if kind == "mislabeled" else None
    m = check_int("n_canaries", n_canaries, min_value=2, max_value=n_max,
                  hint="(the audit needs canaries to guess about; mislabeled canaries copy distinct training rows)")
    if dataset.n_classes < 2:
        raise MemlensInputError(f"canaries need at least 2 classes; dataset {dataset.name!r} has "
                                f"{dataset.n_classes}")
    rng = as_generator(seed)
    C = dataset.n_classes
    if kind == "mislabeled":
        src = np.sort(rng.choice(dataset.n_train, size=m, replace=False)).astype(np.int64)
        orig = dataset.y_train[src].astype(np.int64)
        y = (orig + rng.integers(1, C, size=m)) % C          # uniform over the C − 1 other classes
        X = dataset.X_train[src].astype(np.float32, copy=True)
    else:
        lo = dataset.X_train.min(0).astype(np.float64)
        hi = dataset.X_train.max(0).astype(np.float64)
        X = (lo + (hi - lo) * rng.random((m, dataset.n_features))).astype(np.float32)
        y = rng.integers(0, C, size=m)
        src = np.full(m, -1, dtype=np.int64)
        orig = np.full(m, -1, dtype=np.int64)
    return CanarySet(X, y.astype(np.int64), kind, src, orig, dataset.fingerprint())


def with_canaries(dataset: Dataset, canaries: CanarySet) -> tuple[Dataset, np.ndarray]:
    """Append ``canaries`` to the training split of ``dataset``.

    Returns
    -------
    (Dataset, canary_index)
        The new dataset (training rows ``0 .. n_train − 1`` are the original ones, in order; the test split is
        unchanged) and ``canary_index`` (int64, shape (m,)): the canaries' rows in the new training split,
        ``n_train .. n_train + m − 1``.
    """
    if not isinstance(dataset, Dataset):
        raise MemlensInputError(f"dataset must be a memlens.data.Dataset; got {type(dataset).__name__}")
    if not isinstance(canaries, CanarySet):
        raise MemlensInputError(f"canaries must be a CanarySet from make_canaries(...); got "
                                f"{type(canaries).__name__}")
    if canaries.X.shape[1] != dataset.n_features:
        raise MemlensInputError(f"canaries have {canaries.X.shape[1]} features but dataset {dataset.name!r} has "
                                f"{dataset.n_features}: make the canaries from this dataset")
    if canaries.y.size and int(canaries.y.max()) >= dataset.n_classes:
        raise MemlensInputError(f"canary labels go up to {int(canaries.y.max())} but dataset {dataset.name!r} has "
                                f"{dataset.n_classes} classes: make the canaries from this dataset")
    n = dataset.n_train
    out = Dataset(f"{dataset.name}+{canaries.n_canaries}-{canaries.kind}-canaries",
                  np.ascontiguousarray(np.concatenate([dataset.X_train, canaries.X]), dtype=np.float32),
                  np.concatenate([dataset.y_train, canaries.y]).astype(np.int64),
                  dataset.X_test, dataset.y_test, dataset.class_names, dataset.image_shape,
                  (dataset.description + f"; plus {canaries.n_canaries} {canaries.kind} canaries").lstrip("; "))
    return out, np.arange(n, n + canaries.n_canaries, dtype=np.int64)
