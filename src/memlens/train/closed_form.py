"""Closed-form leave-one-out, approximate leave-one-out and exact subset refits: n models for the price of one.

Three model families whose leave-one-out (LOO) models need no retraining (DESIGN.md, performance principle 3):

``ridge``
    Least-squares classification on one-hot targets with an unpenalized intercept,
    ``min_β ‖Y − X̃β‖² + α ‖β_w‖²`` with ``X̃ = [X, 1]`` (the same minimizer as ``sklearn.linear_model.Ridge``).
    Exact LOO by the PRESS identity (Allen 1974): with the hat matrix ``H = X̃ (X̃ᵀX̃ + αR)⁻¹ X̃ᵀ``,

        ŷ₋ᵢ = (ŷᵢ − hᵢᵢ yᵢ) / (1 − hᵢᵢ),      β₋ᵢ = β̂ − A⁻¹ x̃ᵢ (yᵢ − ŷᵢ)ᵀ / (1 − hᵢᵢ).

``kernel-ridge``
    ``min_f Σᵢ ‖yᵢ − f(xᵢ)‖² + alpha ‖f‖²_H`` in the kernel's RKHS, solved by ``f = Σᵢ aᵢ k(xᵢ, ·)`` with
    ``a = (K + alpha I)⁻¹ Y``, no intercept (as ``sklearn.kernel_ridge.KernelRidge``), RBF or linear kernel. Exact LOO (Rifkin & Lippert 2007, "Notes on regularized least squares", §4; Cawley &
    Talbot 2004): with ``G = (K + αI)⁻¹`` and ``a = G Y`` the LOO residual is ``rᵢ = aᵢ / Gᵢᵢ``, so
    ``ŷ₋ᵢ = yᵢ − aᵢ / Gᵢᵢ``, and the LOO model is ``a₋ᵢ = a − G[:, i] aᵢ / Gᵢᵢ``.

``logreg``
    L2 logistic regression, exactly scikit-learn's objective ``C Σᵢ ℓᵢ(θ) + ½‖W‖²`` (intercept unpenalized),
    binary (one logit, as sklearn for two classes) or multinomial (softmax over all classes, full Hessian).
    Approximate LOO (ALO; Rad & Maleki 2020, JRSS-B 82(4), Eq. 10–12 and Thm. 3; Beirami et al. 2017, NeurIPS,
    Eq. 5): one Newton step on the leave-i-out objective from the full fit,

        θ₋ᵢ ≈ θ̂ + C (H − C ∇²ℓᵢ)⁻¹ ∇ℓᵢ(θ̂),

    with the rank-(C−1) downdate of the Hessian done by Sherman–Morrison–Woodbury. With ``Jᵢ`` the Jacobian of
    the logits at ``xᵢ``, ``Mᵢ = Jᵢ H⁻¹ Jᵢᵀ``, ``Sᵢ = diag(pᵢ) − pᵢpᵢᵀ`` and ``rᵢ = pᵢ − e_{yᵢ}``,

        z₋ᵢ = ẑᵢ + Mᵢ uᵢ,     uᵢ = C (I − C Sᵢ Mᵢ)⁻¹ rᵢ,     θ₋ᵢ = θ̂ + H⁻¹ Jᵢᵀ uᵢ,

    which for one logit is Rad & Maleki's ``zᵢ + C mᵢ ℓ'ᵢ / (1 − C mᵢ ℓ''ᵢ)``. The multinomial intercepts are
    identified only up to a common shift; the Hessian is made invertible along that direction (``H + vvᵀ``),
    which shifts all logits of a model by one constant and changes no probability.

Every LOO model is available, not only its prediction on the left-out example: :meth:`LOOResult.loo_model_scores`
evaluates the models trained without chosen examples anywhere, and :meth:`LOOResult.to_population` packs the
full fit and the LOO models into a :class:`~memlens.Population` so every measure and attack runs on them.

:func:`closed_form_population` refits ridge and kernel ridge exactly on every row of a mask matrix, by the
leave-k-out generalisations of the identities above where they are cheaper than a refit:
``β_S = β̂ − A⁻¹ X̃_Oᵀ (I − H_OO)⁻¹ (Y_O − Ŷ_O)`` (Woodbury, k = |O| left out) or a rank-k downdate of the normal
equations ``A_S = A − X̃_OᵀX̃_O``; ``a_S = a − G[:, O] G_OO⁻¹ a_O`` for kernel ridge.

Features are standardized (``standardize=True``) with the *full training split's* mean and standard deviation,
as the population trainers do, so a LOO model sees the same feature map as the full fit.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import scipy.linalg as sla
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, Ridge

from .._validation import MemlensInputError, check_array, check_float, check_int, check_labels, check_masks, warn
from .._version import __version__
from ..data import Dataset
from ..population import Population

__all__ = [
    "MODELS",
    "KERNELS",
    "LOOResult",
    "ridge_loo",
    "kernel_ridge_loo",
    "logistic_alo",
    "closed_form_loo",
    "subset_refit_scores",
    "closed_form_population",
    "brute_force_loo",
    "score_signals",
]

#: Model families with a closed-form (ridge, kernel ridge) or approximate (logreg) leave-one-out.
MODELS = ("ridge", "kernel-ridge", "logreg")
#: Kernels of kernel ridge.
KERNELS = ("rbf", "linear")

#: 1 − leverage below this makes a leave-one-out model undefined (the example is interpolated exactly).
_LEVERAGE_EPS = 1e-10
#: Work arrays of at most this many float64 entries per block (64 MiB).
_BLOCK_ENTRIES = 8 * 2**20


# ---------------------------------------------------------------------------------------------------- helpers
def _version() -> str:
    return __version__


def _check_model(model: str) -> str:
    if model not in MODELS:
        raise MemlensInputError(f"model must be one of {list(MODELS)}; got {model!r}")
    return model


def _check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise MemlensInputError(f"kernel must be one of {list(KERNELS)}; got {kernel!r}")
    return kernel


def _check_alpha(alpha) -> float:
    return check_float("alpha", alpha, min_value=0.0, min_inclusive=False,
                       hint="(the ridge penalty; use a small positive value such as 1e-3 for near-least-squares)")


def _check_C(C) -> float:
    return check_float("C", C, min_value=0.0, min_inclusive=False,
                       hint="(sklearn's inverse regularization strength; larger C = weaker penalty)")


def _prepare(X, y, X_test, y_test, n_classes, *, min_rows: int = 2):
    """Validated float64 features and int64 labels; ``n_classes`` from the labels if not given."""
    X = check_array("X", X, ndim=2, dtype=np.float64, min_rows=min_rows)
    y = check_labels("y", y, n_rows=X.shape[0])
    if X_test is not None:
        X_test = check_array("X_test", X_test, ndim=2, dtype=np.float64)
        if X_test.shape[1] != X.shape[1]:
            raise MemlensInputError(f"X_test must have the same number of features as X ({X.shape[1]}); "
                                    f"got {X_test.shape[1]}")
        if y_test is None:
            raise MemlensInputError("y_test must be given with X_test (one label per test row)")
        y_test = check_labels("y_test", y_test, n_rows=X_test.shape[0])
    elif y_test is not None:
        raise MemlensInputError("y_test was given without X_test; pass both or neither")
    if np.unique(y).size < 2:
        raise MemlensInputError(f"y must contain at least two distinct classes to fit a classifier; "
                                f"got only class {int(y[0])}")
    top = int(max(y.max(initial=-1), -1 if y_test is None else y_test.max(initial=-1))) + 1
    if n_classes is None:
        n_classes = top
    n_classes = check_int("n_classes", n_classes, min_value=2, hint="(a classifier needs two classes)")
    if top > n_classes:
        raise MemlensInputError(f"labels must be < n_classes={n_classes}; got maximum label {top - 1}")
    return X, y, X_test, y_test, n_classes


def _standardizer(X: np.ndarray, standardize: bool):
    if not standardize:
        return np.zeros(X.shape[1]), np.ones(X.shape[1])
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    # constant features get scale 1, with the same rule as memlens.train.standardized_features
    scale[scale <= 1e-12 * max(1.0, float(np.abs(mean).max(initial=0.0)))] = 1.0
    return mean, scale


def _augment(Z: np.ndarray) -> np.ndarray:
    return np.hstack([Z, np.ones((Z.shape[0], 1))])


def _onehot(y: np.ndarray, n_classes: int) -> np.ndarray:
    Y = np.zeros((y.shape[0], n_classes))
    Y[np.arange(y.shape[0]), y] = 1.0
    return Y


def _kernel(A: np.ndarray, B: np.ndarray, kernel: str, gamma: float) -> np.ndarray:
    if kernel == "linear":
        return A @ B.T
    sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2.0 * (A @ B.T)
    np.maximum(sq, 0.0, out=sq)
    return np.exp(-gamma * sq)


def _spd_inverse(A: np.ndarray, what: str) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix via Cholesky (LAPACK potrf + potri)."""
    c, info = sla.lapack.dpotrf(A, lower=False, clean=False)
    if info != 0:
        raise MemlensInputError(f"{what} is not positive definite in floating point; raise the regularization")
    inv, info = sla.lapack.dpotri(c, lower=False)
    if info != 0:  # pragma: no cover - potrf succeeded, so the factor is invertible
        raise MemlensInputError(f"{what} could not be inverted; raise the regularization")
    upper = np.triu(inv)
    return upper + np.triu(inv, 1).T


def _kernel_ridge_inverse(Z: np.ndarray, K: np.ndarray, alpha: float, kernel: str) -> np.ndarray:
    """``G = (K + alpha I)⁻¹``, shape (n, n). For the linear kernel with d < n, by Woodbury through the d×d
    primal system, ``G = (I − Z (ZᵀZ + alpha I)⁻¹ Zᵀ) / alpha`` (O(n² d) instead of O(n³))."""
    n, d = Z.shape
    if kernel == "linear" and d < n:
        S = Z.T @ Z
        S[np.arange(d), np.arange(d)] += alpha
        Q = Z @ _spd_inverse(S, "Z'Z + alpha I")
        G = -(Q @ Z.T)
        G[np.arange(n), np.arange(n)] += 1.0
        return G / alpha
    Kr = K.copy()
    Kr[np.arange(n), np.arange(n)] += alpha
    return _spd_inverse(Kr, "K + alpha I")


def score_signals(scores, y, *, probabilistic: bool, dtype=np.float32) -> dict[str, np.ndarray]:
    """Per-example signals of class scores, higher = the model fits the example better (``loss``: lower).

    Parameters
    ----------
    scores : array, shape (n_models, n_examples, n_classes)
        Class scores: logits (``probabilistic=True``, logistic regression) or least-squares outputs (ridge,
        kernel ridge).
    y : array of int, shape (n_examples,)
    probabilistic : bool
        True for logits: ``logit`` (LiRA's stable logit ``z_y − log Σ_{c≠y} exp z_c``, Carlini et al. 2022,
        §IV-B), ``loss`` (cross-entropy) and ``correct``, as :func:`memlens.population.signals_from_logits`.
        False for least-squares scores, which are no probabilities: ``logit`` is the score margin
        ``f_y − max_{c≠y} f_c`` (monotone in the fit, the role LiRA's logit plays), ``loss`` is the squared
        error ``½‖f − e_y‖²`` the model minimizes, ``correct`` is ``argmax f = y``.
    dtype : numpy dtype
        float32 (as stored in a Population) or float64 (for differences of nearly equal signals, as in
        leave-one-out memorization of confident examples).

    Returns
    -------
    dict of arrays, shape (n_models, n_examples): ``logit``, ``loss``, ``correct`` and ``margin``
    (``score_y − max_{c≠y} score_c`` in both cases). Rows with a NaN score (an undefined LOO model) are NaN.
    """
    z = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if z.ndim != 3 or z.shape[1] != y.shape[0]:
        raise MemlensInputError(f"scores must have shape (n_models, n_examples={y.shape[0]}, n_classes); "
                                f"got {z.shape}")
    return _signals_classfirst(np.ascontiguousarray(np.moveaxis(z, 2, 0)), y, probabilistic, dtype)


def _signals_classfirst(zt: np.ndarray, y: np.ndarray, probabilistic: bool, dtype=np.float32) -> dict:
    """:func:`score_signals` on class-first scores ``(n_classes, n_models, n_examples)`` (contiguous per class).

    One pass over the classes with elementwise operations: much faster than reductions over a short last axis.
    ``correct`` follows ``argmax`` (the first maximal class wins ties).
    """
    C = zt.shape[0]
    bad = ~np.isfinite(zt).all(axis=0)
    if bad.any():
        zt = np.where(bad[None], 0.0, zt)
    z_y = np.zeros(zt.shape[1:])
    omax = np.full(zt.shape[1:], -np.inf)
    best = np.full(zt.shape[1:], -np.inf)
    best_c = np.zeros(zt.shape[1:], dtype=np.int64)
    for c in range(C):
        is_y = (y == c)[None, :]
        zc = zt[c]
        np.copyto(z_y, zc, where=is_y)
        np.maximum(omax, np.where(is_y, -np.inf, zc), out=omax)
        up = zc > best
        np.copyto(best, zc, where=up)
        best_c[up] = c
    out = {"margin": z_y - omax, "correct": (best_c == y[None, :]).astype(np.float64)}
    if probabilistic:
        acc = np.zeros(zt.shape[1:])
        for c in range(C):
            acc += np.where((y == c)[None, :], 0.0, np.exp(zt[c] - omax))
        lse_others = omax + np.log(acc)
        out["logit"] = z_y - lse_others
        out["loss"] = np.logaddexp(z_y, lse_others) - z_y
    else:
        out["logit"] = out["margin"]
        sq = np.zeros(zt.shape[1:])
        for c in range(C):
            sq += (zt[c] - (y == c)[None, :]) ** 2
        out["loss"] = 0.5 * sq
    out = {k: out[k].astype(dtype) for k in ("logit", "loss", "correct", "margin")}
    if bad.any():
        for v in out.values():
            v[bad] = np.nan
    return out


def _check_index(index, n: int, name: str = "index") -> np.ndarray:
    if index is None:
        return np.arange(n)
    idx = np.asarray(index)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise MemlensInputError(f"{name} as a boolean mask must have shape ({n},); got {idx.shape}")
        return np.flatnonzero(idx)
    if idx.ndim == 0:
        idx = idx[None]
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise MemlensInputError(f"{name} must be a 1-d array of training-example indices; got {idx!r:.60}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise MemlensInputError(f"{name} must hold indices in [0, {n}); got range [{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64)


# ---------------------------------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class LOOResult:
    """Full-fit and leave-one-out class scores of every training example.

    Attributes
    ----------
    model : str
        ``ridge``, ``kernel-ridge`` or ``logreg``.
    exact : bool
        True for the exact closed forms (ridge, kernel ridge), False for ALO (logistic regression).
    y : ndarray of int64, shape (n,)
        Training labels.
    full_scores : ndarray of float64, shape (n, n_classes)
        Scores of the model trained on all n examples, on each training example (logits for ``logreg``:
        binary models store ``[0, z]``; least-squares outputs for ridge and kernel ridge).
    loo_scores : ndarray of float64, shape (n, n_classes)
        Row i: scores on example i of the model trained without example i (NaN where undefined, i.e. leverage 1).
    leverage : ndarray of float64, shape (n,)
        Hat-matrix diagonal ``hᵢᵢ`` (ridge, kernel ridge); for logistic regression the generalized leverage
        ``tr(C Sᵢ Mᵢ)`` (``C pᵢ(1 − pᵢ) x̃ᵢᵀH⁻¹x̃ᵢ`` for one logit). Near 1 = the example pins its own fit.
    test_scores : ndarray of float64, shape (n_test, n_classes), or None
        Full-fit scores on the test split, when one was given.
    y_test : ndarray of int64, shape (n_test,), or None
    params : mapping
        The fitted hyper-parameters (``alpha``, ``kernel``, ``gamma``, ``C``, ``standardize``, ...).
    provenance : mapping
        JSON-serializable: method, dataset name and fingerprint where known, memlens version, fit diagnostics.
    """

    model: str
    exact: bool
    y: np.ndarray
    full_scores: np.ndarray
    loo_scores: np.ndarray
    leverage: np.ndarray
    test_scores: np.ndarray | None = None
    y_test: np.ndarray | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    _state: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))
        object.__setattr__(self, "_state", MappingProxyType(dict(self._state)))
        for name in ("y", "full_scores", "loo_scores", "leverage", "test_scores", "y_test"):
            arr = getattr(self, name)
            if arr is not None:
                arr.setflags(write=False)

    # ------------------------------------------------------------------ summaries
    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.full_scores.shape[1])

    @property
    def probabilistic(self) -> bool:
        """True when the scores are logits (logistic regression)."""
        return self.model == "logreg"

    @property
    def method(self) -> str:
        return str(self.provenance.get("method", ""))

    @property
    def defined(self) -> np.ndarray:
        """Bool ``(n,)``: False where the leave-one-out model is undefined (leverage 1)."""
        return np.all(np.isfinite(self.loo_scores), axis=1)

    def signals(self, which: str = "loo") -> dict[str, np.ndarray]:
        """Signals ``(n,)`` (float64) of the full fit (``which="full"``) or the LOO models (``"loo"``) on the
        training set. See :func:`score_signals` for ``logit``, ``loss``, ``correct``, ``margin``.
        """
        if which not in ("full", "loo"):
            raise MemlensInputError(f"which must be 'full' or 'loo'; got {which!r}")
        scores = self.full_scores if which == "full" else self.loo_scores
        sig = score_signals(scores[None], self.y, probabilistic=self.probabilistic, dtype=np.float64)
        return {k: v[0] for k, v in sig.items()}

    @property
    def train_accuracy(self) -> float:
        """Accuracy of the full fit on its own training set."""
        return float(np.mean(self.full_scores.argmax(1) == self.y))

    @property
    def loo_accuracy(self) -> float:
        """Leave-one-out accuracy (each example predicted by the model trained without it; undefined rows skipped)."""
        ok = self.defined
        return float(np.mean(self.loo_scores[ok].argmax(1) == self.y[ok]))

    @property
    def test_accuracy(self) -> float:
        if self.test_scores is None:
            return float("nan")
        return float(np.mean(self.test_scores.argmax(1) == self.y_test))

    # ------------------------------------------------------------------ the LOO models themselves
    def _features(self, X) -> np.ndarray:
        """Standardized features of raw inputs ``X`` (original units)."""
        st = self._state
        X = check_array("X", X, ndim=2, dtype=np.float64)
        if X.shape[1] != st["mean"].shape[0]:
            raise MemlensInputError(f"X must have {st['mean'].shape[0]} features (as the training set); "
                                    f"got {X.shape[1]}")
        return (X - st["mean"]) / st["scale"]

    def _design(self, Z: np.ndarray) -> np.ndarray:
        """Feature map Φ(Z) in which the fit is linear: [Z, 1] or the kernel row against the training set."""
        st = self._state
        if self.model == "kernel-ridge":
            return _kernel(Z, st["Z"], self.params["kernel"], self.params["gamma"])
        return _augment(Z)

    def _full(self, Phi: np.ndarray) -> np.ndarray:
        st = self._state
        if self.model == "logreg" and st["binary"]:
            z = Phi @ st["theta"]
            return np.stack([np.zeros_like(z), z], axis=1)
        return Phi @ st["coef"]

    def _delta(self, Phi: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Change of the scores at Φ ``(m, F)`` when each example of ``idx`` is left out: ``(k, m, C)``."""
        st = self._state
        if self.model == "logreg":
            dtheta = st["dtheta"](idx)  # (k, P)
            if st["binary"]:
                dz = Phi @ dtheta.T  # (m, k)
                out = np.zeros((idx.size, Phi.shape[0], 2))
                out[:, :, 1] = dz.T
                return out
            C, D = self.n_classes, Phi.shape[1]
            dT = dtheta.reshape(idx.size, C, D)  # class-major
            return np.einsum("md,kcd->kmc", Phi, dT, optimize=True)
        B = Phi @ st["W"][:, idx]  # (m, k)
        return -np.einsum("mk,kc->kmc", B, st["loo_coef"][idx], optimize=True)

    def predict(self, X) -> np.ndarray:
        """Full-fit class scores ``(m, n_classes)`` on raw inputs ``X`` ``(m, n_features)``."""
        return self._full(self._design(self._features(X)))

    def loo_model_scores(self, index=None, X=None) -> np.ndarray:
        """Scores of the models trained without each example of ``index``, on inputs ``X``.

        Parameters
        ----------
        index : int, array of int or bool mask, optional
            Which leave-one-out models (default: all n).
        X : array, shape (m, n_features), optional
            Raw inputs (original units; default: the training set).

        Returns
        -------
        ndarray of float64, shape (len(index), m, n_classes)
            Exact for ridge and kernel ridge; the one-Newton-step model θ₋ᵢ for logistic regression.
            ``out[j, index[j]]`` equals ``loo_scores[index[j]]``. NaN for undefined LOO models.
        """
        idx = _check_index(index, self.n)
        Phi = self._design(self._state["Z"] if X is None else self._features(X))
        out = self._full(Phi)[None] + self._delta(Phi, idx)
        bad = ~self.defined[idx]
        out[bad] = np.nan
        return out

    def to_population(self, *, index=None, include_full: bool = True, max_bytes: float = 2 * 2**30) -> Population:
        """The full fit and the leave-one-out models as a :class:`~memlens.Population`.

        Model 0 is the full fit (every mask entry True, when ``include_full``); model ``1 + j`` is the model
        trained without example ``index[j]`` (its mask is False there only). Signals ``logit``, ``loss``,
        ``correct``, ``margin`` on ``train`` and (when a test split was given) ``test``, see
        :func:`score_signals`. Undefined LOO models (leverage 1) are dropped with a warning.

        Feldman–Zhang memorization of this population compares, for example i, the mean over the full fit and
        the other LOO models with the model without i; :func:`memlens.measures.loo_memorization` compares the
        full fit alone with the model without i (Feldman 2020, Def. 4.1 at S \\ i). They differ by O(1/n).

        Parameters
        ----------
        index : array of int or bool mask, optional
            Which LOO models to include (default: all n).
        include_full : bool
        max_bytes : float
            Refuse (with a message) when the float32 signal arrays would exceed this size.
        """
        idx = _check_index(index, self.n)
        ok = self.defined[idx]
        if not ok.all():
            warn(f"{int((~ok).sum())} leave-one-out model(s) are undefined (leverage 1: the example is "
                 "interpolated exactly) and are left out of the population; raise alpha (or lower C)")
            idx = idx[ok]
        n_models = idx.size + int(include_full)
        if n_models < 1:
            raise MemlensInputError("the population would have no model: pass include_full=True or a non-empty index")
        n_eval = self.n + (0 if self.test_scores is None else self.test_scores.shape[0])
        need = 4.0 * n_models * n_eval * 4
        if need > max_bytes:
            raise MemlensInputError(
                f"the population of {n_models} models x {n_eval} examples needs {need / 2**30:.1f} GiB of "
                f"signals, above max_bytes={max_bytes / 2**30:.1f} GiB; pass index= (a subset of LOO models) "
                "or raise max_bytes")
        st = self._state
        splits = [("train", st["Z"], self.y)]
        if self.test_scores is not None:
            splits.append(("test", st["Z_test"], self.y_test))
        signals = {}
        for split, Z, yy in splits:
            Phi = self._design(Z)
            full = self._full(Phi)
            parts = []
            if include_full:
                parts.append(score_signals(full[None], yy, probabilistic=self.probabilistic))
            step = max(1, _BLOCK_ENTRIES // max(1, Phi.shape[0] * self.n_classes))
            for s in range(0, idx.size, step):
                block = idx[s:s + step]
                sc = full[None] + self._delta(Phi, block)
                parts.append(score_signals(sc, yy, probabilistic=self.probabilistic))
            signals[split] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        masks = np.ones((n_models, self.n), dtype=bool)
        masks[np.arange(idx.size) + int(include_full), idx] = False
        labels = {"train": self.y} if self.test_scores is None else {"train": self.y, "test": self.y_test}
        prov = dict(self.provenance)
        prov.update({"source": "closed-form leave-one-out", "model": self.model, "params": dict(self.params),
                     "include_full": bool(include_full), "n_loo_models": int(idx.size)})
        return Population(masks, signals, np.arange(n_models, dtype=np.int64), labels, prov)


def _undefined(leverage_gap: np.ndarray, what: str) -> np.ndarray:
    bad = leverage_gap <= _LEVERAGE_EPS
    if bad.any():
        warn(f"{int(bad.sum())} training example(s) have leverage 1 ({what}): the fit interpolates them exactly "
             "and their leave-one-out prediction is undefined (NaN); raise the regularization")
    return bad


# ---------------------------------------------------------------------------------------------------- ridge
def ridge_loo(X, y, *, alpha: float = 1.0, X_test=None, y_test=None, standardize: bool = True,
              n_classes: int | None = None) -> LOOResult:
    """Exact leave-one-out of ridge least-squares classification, all n at once.

    Fits ``min_β ‖Y − X̃β‖² + alpha ‖β_w‖²`` on one-hot targets ``Y`` with ``X̃ = [X, 1]`` (intercept unpenalized;
    the minimizer of ``sklearn.linear_model.Ridge(alpha)``) and applies the PRESS identity (Allen 1974,
    Technometrics 16(1); performance.md §1.6): ``ŷ₋ᵢ = (ŷᵢ − hᵢᵢ yᵢ) / (1 − hᵢᵢ)``. Cost: one ``(d+1)²``
    factorisation and ``O(n d²)``.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array of int, shape (n,)
        Class labels in ``[0, n_classes)``.
    alpha : float > 0
        Ridge penalty λ.
    X_test, y_test : arrays, optional
        A test split, scored by the full fit (and by every LOO model in :meth:`LOOResult.to_population`).
    standardize : bool
        Standardize features with the training split's mean and standard deviation.
    n_classes : int, optional
        Number of one-hot columns (default: largest label + 1).

    Returns
    -------
    LOOResult
        ``loo_scores[i]`` is exactly the ridge prediction at ``xᵢ`` of the model refit without example i.
    """
    X, y, X_test, y_test, n_classes = _prepare(X, y, X_test, y_test, n_classes)
    alpha = _check_alpha(alpha)
    mean, scale = _standardizer(X, standardize)
    Z = (X - mean) / scale
    Xa = _augment(Z)
    D = Xa.shape[1]
    Y = _onehot(y, n_classes)
    A = Xa.T @ Xa
    A[np.arange(D - 1), np.arange(D - 1)] += alpha
    Ainv = _spd_inverse(A, "the ridge normal matrix X'X + alpha R")
    beta = Ainv @ (Xa.T @ Y)
    F = Xa @ beta
    W = Ainv @ Xa.T  # (D, n): column i is A⁻¹ x̃ᵢ
    h = np.einsum("in,ni->i", Xa, W)
    gap = 1.0 - h
    bad = _undefined(gap, "ridge hat matrix")
    with np.errstate(divide="ignore", invalid="ignore"):
        loo_coef = (Y - F) / gap[:, None]  # β₋ᵢ = β̂ − A⁻¹x̃ᵢ loo_coefᵢᵀ
    loo_coef[bad] = 0.0
    loo = F - h[:, None] * loo_coef
    loo[bad] = np.nan
    Z_test = None if X_test is None else (X_test - mean) / scale
    test_scores = None if X_test is None else _augment(Z_test) @ beta
    state = {"mean": mean, "scale": scale, "Z": Z, "Z_test": Z_test, "coef": beta, "W": W, "loo_coef": loo_coef}
    return LOOResult("ridge", True, y, F, loo, h, test_scores, y_test,
                     {"alpha": alpha, "standardize": bool(standardize)},
                     {"method": "exact leave-one-out, PRESS / hat-matrix identity", "memlens_version": _version()},
                     state)


# ---------------------------------------------------------------------------------------------------- kernel ridge
def _resolve_gamma(Z: np.ndarray, kernel: str, gamma) -> float | None:
    if kernel == "linear":
        return None
    if gamma is None:
        var = float(Z.var())
        return 1.0 / (Z.shape[1] * var) if var > 0 else 1.0
    return check_float("gamma", gamma, min_value=0.0, min_inclusive=False,
                       hint="(the RBF width: k(x, x') = exp(-gamma ||x - x'||^2))")


def kernel_ridge_loo(X, y, *, alpha: float = 1.0, kernel: str = "rbf", gamma: float | None = None, X_test=None,
                     y_test=None, standardize: bool = True, n_classes: int | None = None) -> LOOResult:
    """Exact leave-one-out of kernel ridge classification (one-hot targets), all n at once.

    Fits ``a = (K + alpha I)⁻¹ Y`` (no intercept; ``sklearn.kernel_ridge.KernelRidge(alpha, kernel, gamma)``)
    and uses the identity ``rᵢ = aᵢ / [(K + alpha I)⁻¹]ᵢᵢ`` for the LOO residual (Rifkin & Lippert 2007, §4;
    performance.md §1.6), so ``ŷ₋ᵢ = yᵢ − aᵢ / Gᵢᵢ``. Cost: one n×n inverse (O(n³)); for the linear kernel with
    d < n, O(n² d) through the d×d primal system.

    Parameters
    ----------
    X, y, X_test, y_test, standardize, n_classes
        As in :func:`ridge_loo`.
    alpha : float > 0
    kernel : ``"rbf"`` or ``"linear"``
        ``exp(−gamma ‖x − x'‖²)`` or ``x·x'`` (on standardized features when ``standardize``).
    gamma : float > 0, optional
        RBF width; default ``1 / (d · Var(Z))`` (sklearn's ``"scale"`` rule on the standardized features).

    Returns
    -------
    LOOResult
        Leverage ``hᵢᵢ = 1 − alpha Gᵢᵢ``.
    """
    X, y, X_test, y_test, n_classes = _prepare(X, y, X_test, y_test, n_classes)
    alpha = _check_alpha(alpha)
    kernel = _check_kernel(kernel)
    mean, scale = _standardizer(X, standardize)
    Z = (X - mean) / scale
    gamma = _resolve_gamma(Z, kernel, gamma)
    Y = _onehot(y, n_classes)
    K = _kernel(Z, Z, kernel, gamma)
    G = _kernel_ridge_inverse(Z, K, alpha, kernel)
    a = G @ Y
    F = K @ a
    g = np.diag(G).copy()
    h = 1.0 - alpha * g
    bad = _undefined(alpha * g, "kernel ridge hat matrix")
    loo_coef = a / g[:, None]  # a₋ᵢ = a − G[:, i] loo_coefᵢ
    loo_coef[bad] = 0.0
    loo = Y - loo_coef
    loo[bad] = np.nan
    Z_test = None if X_test is None else (X_test - mean) / scale
    test_scores = None if X_test is None else _kernel(Z_test, Z, kernel, gamma) @ a
    state = {"mean": mean, "scale": scale, "Z": Z, "Z_test": Z_test, "coef": a, "W": G, "loo_coef": loo_coef}
    return LOOResult("kernel-ridge", True, y, F, loo, h, test_scores, y_test,
                     {"alpha": alpha, "kernel": kernel, "gamma": gamma, "standardize": bool(standardize)},
                     {"method": "exact leave-one-out, r_i = a_i / [(K + alpha I)^-1]_ii",
                      "memlens_version": _version()}, state)


# ---------------------------------------------------------------------------------------------------- logistic
def _log_softmax(Zl: np.ndarray) -> np.ndarray:
    m = Zl.max(axis=1, keepdims=True)
    return Zl - m - np.log(np.exp(Zl - m).sum(axis=1, keepdims=True))


class _Logistic:
    """L2 logistic regression objective ``C Σ wᵢ ℓᵢ + ½‖W‖²`` on augmented features, with Newton's method.

    Parameters are θ ∈ R^D (binary, one logit) or θ = vec(Θ) class-major, Θ ∈ R^{D×C} (multinomial); the last
    feature is the unpenalized intercept.
    """

    def __init__(self, Xa: np.ndarray, y: np.ndarray, n_classes: int, C: float):
        self.Xa, self.y, self.C = Xa, y, C
        self.n, self.D = Xa.shape
        self.binary = n_classes == 2
        self.K = 1 if self.binary else n_classes
        self.P = self.D * self.K
        self.Y = _onehot(y, n_classes)
        pen = np.ones(self.D)
        pen[-1] = 0.0
        self.pen = np.tile(pen, self.K)
        # the multinomial model is invariant to a common shift of all intercepts: v spans that direction
        self.v = None
        if not self.binary:
            v = np.zeros((self.K, self.D))
            v[:, -1] = 1.0 / math.sqrt(self.K)
            self.v = v.ravel()

    def logits(self, theta: np.ndarray, Xa: np.ndarray | None = None) -> np.ndarray:
        Xa = self.Xa if Xa is None else Xa
        if self.binary:
            return Xa @ theta
        return Xa @ theta.reshape(self.K, self.D).T

    def value_grad(self, theta, w):
        Zl = self.logits(theta)
        if self.binary:
            loss = np.logaddexp(0.0, Zl) - self.y * Zl
            p = 0.5 * (1.0 + np.tanh(0.5 * Zl))  # stable sigmoid
            r = p - self.y
            g = self.C * (self.Xa.T @ (w * r))
        else:
            logp = _log_softmax(Zl)
            loss = -(logp * self.Y).sum(axis=1)
            r = np.exp(logp) - self.Y
            g = self.C * ((w[:, None] * r).T @ self.Xa).ravel()
        f = self.C * float(w @ loss) + 0.5 * float((self.pen * theta) @ theta)
        return f, g + self.pen * theta

    def value(self, theta, w) -> float:
        Zl = self.logits(theta)
        if self.binary:
            loss = np.logaddexp(0.0, Zl) - self.y * Zl
        else:
            loss = -(_log_softmax(Zl) * self.Y).sum(axis=1)
        return self.C * float(w @ loss) + 0.5 * float((self.pen * theta) @ theta)

    def probs(self, theta) -> np.ndarray:
        Zl = self.logits(theta)
        if self.binary:
            return 0.5 * (1.0 + np.tanh(0.5 * Zl))
        return np.exp(_log_softmax(Zl))

    def hessian(self, theta, w) -> np.ndarray:
        """``C Σ wᵢ Jᵢᵀ Sᵢ Jᵢ + R`` (+ vvᵀ for multinomial), shape (P, P)."""
        p = self.probs(theta)
        Xa, C = self.Xa, self.C
        if self.binary:
            H = C * (Xa.T @ ((w * p * (1 - p))[:, None] * Xa))
        else:
            K, D = self.K, self.D
            H = np.zeros((self.P, self.P))
            step = max(1, _BLOCK_ENTRIES // self.P)
            for s in range(0, self.n, step):
                Xb, pb, wb = Xa[s:s + step], p[s:s + step], w[s:s + step]
                # −Σ wᵢ (pᵢ ⊗ x̃ᵢ)(pᵢ ⊗ x̃ᵢ)ᵀ ...
                U = (np.sqrt(wb)[:, None, None] * pb[:, :, None] * Xb[:, None, :]).reshape(Xb.shape[0], self.P)
                H -= U.T @ U
                # ... + Σ wᵢ diag(pᵢ) ⊗ x̃ᵢx̃ᵢᵀ
                for c in range(K):
                    H[c * D:(c + 1) * D, c * D:(c + 1) * D] += Xb.T @ ((wb * pb[:, c])[:, None] * Xb)
            H *= C
            H += np.outer(self.v, self.v)
        H[np.arange(self.P), np.arange(self.P)] += self.pen
        return H

    def fit(self, w=None, theta0=None, *, tol: float = 1e-10, max_iter: int = 100):
        """Damped Newton's method; converged when ``max|∇F| / (C Σw) <= tol`` (sklearn's gradient scaling)."""
        w = np.ones(self.n) if w is None else w
        theta = np.zeros(self.P) if theta0 is None else theta0.copy()
        scale = self.C * max(float(w.sum()), 1.0)
        f, g = self.value_grad(theta, w)
        it, converged = 0, False
        for it in range(1, max_iter + 1):
            if np.max(np.abs(g)) / scale <= tol:
                converged, it = True, it - 1
                break
            H = self.hessian(theta, w)
            step = sla.cho_solve(sla.cho_factor(H), g)
            slope = float(g @ step)
            if slope <= 1e-13 * max(1.0, abs(f)):
                # quadratic region: the decrease is below the rounding of f, so take the full Newton step and
                # stop once it no longer shrinks the gradient (the floating-point floor)
                gmax = np.max(np.abs(g))
                theta = theta - step
                f, g = self.value_grad(theta, w)
                if np.max(np.abs(g)) > 0.5 * gmax:
                    break
                continue
            t = 1.0
            while True:
                new = theta - t * step
                f_new = self.value(new, w)
                if f_new <= f - 1e-4 * t * slope or t < 1e-12:
                    break
                t *= 0.5
            theta = new
            f, g = self.value_grad(theta, w)
        converged = converged or bool(np.max(np.abs(g)) / scale <= tol)
        return theta, {"iterations": int(it), "converged": bool(converged),
                       "max_grad": float(np.max(np.abs(g)) / scale)}


def logistic_alo(X, y, *, C: float = 1.0, X_test=None, y_test=None, standardize: bool = True,
                 n_classes: int | None = None, tol: float = 1e-10, max_iter: int = 100) -> LOOResult:
    """Approximate leave-one-out (ALO) of L2 logistic regression, all n at once.

    Fits scikit-learn's objective ``C Σᵢ ℓᵢ(θ) + ½‖W‖²`` (intercept unpenalized; binary with one logit for two
    classes, multinomial otherwise) by Newton's method to ``max|∇F| / (C n) <= tol``, then takes one Newton step
    on each leave-one-out objective with the Hessian downdated by Sherman–Morrison–Woodbury (Rad & Maleki
    2020, JRSS-B 82(4), Eq. 10–12; Beirami et al. 2017, NeurIPS): ``z₋ᵢ = ẑᵢ + Mᵢ uᵢ``,
    ``uᵢ = C (I − C Sᵢ Mᵢ)⁻¹ (pᵢ − e_{yᵢ})``, ``Mᵢ = Jᵢ H⁻¹ Jᵢᵀ``. Cost ``O(n C² d² + C³ d³)``.

    The approximation error vanishes as the per-example Hessian contribution shrinks (strong regularization
    or n ≫ d) and grows when d ~ n (Rad & Maleki 2020, Thm. 3).

    Parameters
    ----------
    X, y, X_test, y_test, standardize, n_classes
        As in :func:`ridge_loo`. Every class in ``[0, n_classes)`` must occur in ``y``.
    C : float > 0
        sklearn's inverse regularization strength.
    tol, max_iter
        Convergence of the full fit.

    Returns
    -------
    LOOResult
        Logit scores (binary: ``[0, z]``); ``exact=False``; ``provenance["fit"]`` holds the Newton diagnostics.
    """
    X, y, X_test, y_test, n_classes = _prepare(X, y, X_test, y_test, n_classes)
    C = _check_C(C)
    tol = check_float("tol", tol, min_value=0.0, min_inclusive=False)
    max_iter = check_int("max_iter", max_iter, min_value=1)
    missing = np.setdiff1d(np.arange(n_classes), y)
    if missing.size:
        raise MemlensInputError(f"y must contain every class in [0, n_classes={n_classes}) for logistic "
                                f"regression; classes {missing.tolist()} never occur: relabel or drop them")
    mean, scale = _standardizer(X, standardize)
    Z = (X - mean) / scale
    Xa = _augment(Z)
    obj = _Logistic(Xa, y, n_classes, C)
    theta, info = obj.fit(tol=tol, max_iter=max_iter)
    if not info["converged"]:
        warn(f"the logistic-regression fit did not reach tol={tol} in {max_iter} Newton iterations "
             f"(max scaled gradient {info['max_grad']:.2e}); the ALO scores assume the exact optimum")
    H = obj.hessian(theta, np.ones(obj.n))
    Hinv = _spd_inverse(H, "the logistic-regression Hessian")
    p = obj.probs(theta)
    D, n = obj.D, obj.n
    if obj.binary:
        z = Xa @ theta
        m = np.einsum("id,de,ie->i", Xa, Hinv, Xa, optimize=True)
        s = p * (1.0 - p)
        lev = C * s * m
        gap = 1.0 - lev
        bad = _undefined(gap, "logistic Hessian")
        with np.errstate(divide="ignore", invalid="ignore"):
            u = C * (p - y) / gap
        u[bad] = 0.0
        z_loo = z + m * u
        full = np.stack([np.zeros(n), z], axis=1)
        loo = np.stack([np.zeros(n), z_loo], axis=1)
        U = u[:, None]
    else:
        K = obj.K
        Zl = obj.logits(theta)
        # Mᵢ[c, c'] = x̃ᵢᵀ Hinv[c-block, c'-block] x̃ᵢ, by GEMMs over blocks of examples
        Hr = Hinv.reshape(K, D, K * D)
        M = np.empty((n, K, K))
        step = max(1, _BLOCK_ENTRIES // (K * D))
        for s0 in range(0, n, step):
            Xb = Xa[s0:s0 + step]
            for c in range(K):
                T = (Xb @ Hr[c]).reshape(Xb.shape[0], K, D)
                M[s0:s0 + step, c, :] = np.einsum("ikd,id->ik", T, Xb)
        S = np.einsum("ic,cd->icd", p, np.eye(K)) - p[:, :, None] * p[:, None, :]
        B = C * S
        Imat = np.eye(K)[None] - B @ M
        lev = np.einsum("icc->i", B @ M)
        r = p - obj.Y
        sign, logdet = np.linalg.slogdet(Imat)
        bad = _undefined(np.where(sign > 0, np.exp(np.minimum(logdet, 0.0)), 0.0), "logistic Hessian")
        Imat[bad] = np.eye(K)
        u = C * np.linalg.solve(Imat, r[:, :, None])[..., 0]
        u[bad] = 0.0
        z_loo = Zl + np.einsum("icd,id->ic", M, u)
        full, loo, U = Zl, z_loo, u
    loo[bad] = np.nan

    def dtheta(idx: np.ndarray) -> np.ndarray:
        """θ₋ᵢ − θ̂ = H⁻¹ Jᵢᵀ uᵢ for i in idx: shape (k, P), class-major."""
        JtU = (U[idx][:, :, None] * Xa[idx][:, None, :]).reshape(idx.size, obj.P)
        return JtU @ Hinv  # Hinv is symmetric

    Z_test = None if X_test is None else (X_test - mean) / scale
    test_scores = None
    if X_test is not None:
        zt = obj.logits(theta, _augment(Z_test))
        test_scores = np.stack([np.zeros_like(zt), zt], axis=1) if obj.binary else zt
    coef = theta if obj.binary else theta.reshape(obj.K, D).T
    state = {"mean": mean, "scale": scale, "Z": Z, "Z_test": Z_test, "theta": theta, "coef": coef,
             "binary": obj.binary, "dtheta": dtheta}
    return LOOResult("logreg", False, y, full, loo, lev, test_scores, y_test,
                     {"C": C, "standardize": bool(standardize), "tol": tol,
                      "formulation": "binary" if obj.binary else "multinomial"},
                     {"method": "approximate leave-one-out: one Newton step with Sherman-Morrison-Woodbury "
                                "leverage (Rad & Maleki 2020; Beirami et al. 2017)",
                      "fit": info, "memlens_version": _version()}, state)


# ---------------------------------------------------------------------------------------------------- dataset level
def _dataset_arrays(dataset):
    if not isinstance(dataset, Dataset):
        raise MemlensInputError(f"dataset must be a memlens.data.Dataset (load_dataset(name) or "
                                f"memlens.data.from_arrays(...)); got {type(dataset).__name__}")
    X_test = dataset.X_test if dataset.n_test else None
    y_test = dataset.y_test if dataset.n_test else None
    return dataset.X_train, dataset.y_train, X_test, y_test, dataset.n_classes


def closed_form_loo(dataset, *, model: str = "ridge", alpha: float = 1.0, C: float = 1.0, kernel: str = "rbf",
                    gamma: float | None = None, standardize: bool = True, tol: float = 1e-10) -> LOOResult:
    """Leave-one-out of every training example of a :class:`~memlens.data.Dataset`, in one fit.

    ``model="ridge"`` and ``"kernel-ridge"`` are exact (:func:`ridge_loo`, :func:`kernel_ridge_loo`, which use
    ``alpha``, ``kernel``, ``gamma``); ``"logreg"`` is the one-Newton-step approximation (:func:`logistic_alo`,
    which uses ``C`` and ``tol``). The test split is scored by the full fit and, in
    :meth:`LOOResult.to_population`, by every LOO model.

    Examples
    --------
    >>> from memlens.data import load_dataset
    >>> from memlens.measures import loo_memorization
    >>> loo = closed_form_loo(load_dataset("digits"), model="ridge", alpha=10.0)
    >>> mem = loo_memorization(loo)            # Feldman's mem(A, S, i), exactly, for all n
    >>> pop = loo.to_population()              # full fit + n LOO models, for attacks and measures
    """
    model = _check_model(model)
    X, y, X_test, y_test, n_classes = _dataset_arrays(dataset)
    if model == "ridge":
        res = ridge_loo(X, y, alpha=alpha, X_test=X_test, y_test=y_test, standardize=standardize,
                        n_classes=n_classes)
    elif model == "kernel-ridge":
        res = kernel_ridge_loo(X, y, alpha=alpha, kernel=kernel, gamma=gamma, X_test=X_test, y_test=y_test,
                               standardize=standardize, n_classes=n_classes)
    else:
        res = logistic_alo(X, y, C=C, X_test=X_test, y_test=y_test, standardize=standardize,
                           n_classes=n_classes, tol=tol)
    prov = dict(res.provenance)
    prov.update({"dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint()})
    return LOOResult(res.model, res.exact, res.y, res.full_scores, res.loo_scores, res.leverage, res.test_scores,
                     res.y_test, res.params, prov, res._state)


# ---------------------------------------------------------------------------------------------------- subset refits
def _ridge_subset_coefs(Xa, Y, masks, alpha):
    """Exact ridge coefficients ``(K, D, C)`` for every mask row, choosing per row the cheapest exact route."""
    n, D = Xa.shape
    A0 = Xa.T @ Xa
    b0 = Xa.T @ Y
    A = A0.copy()
    A[np.arange(D - 1), np.arange(D - 1)] += alpha
    Ainv = _spd_inverse(A, "the ridge normal matrix X'X + alpha R")
    beta = Ainv @ b0
    E = Y - Xa @ beta
    reg = np.full(D, alpha)
    reg[-1] = 0.0
    out = np.empty((masks.shape[0], D, Y.shape[1]))
    counts = {"full": 0, "woodbury": 0, "downdate": 0, "direct": 0}
    for k, row in enumerate(masks):
        out_idx = np.flatnonzero(~row)
        ko, m = out_idx.size, n - out_idx.size
        if ko == 0:
            out[k] = beta
            counts["full"] += 1
            continue
        cost_wood = ko * D * D + ko**3 / 3.0
        cost_gram = min(ko, m) * D * D + D**3 / 3.0
        if cost_wood < cost_gram:
            # leave-k-out PRESS: β_S = β − A⁻¹X̃_Oᵀ (I − H_OO)⁻¹ E_O
            XO = Xa[out_idx]
            WO = Ainv @ XO.T  # (D, k)
            IH = np.eye(ko) - XO @ WO
            out[k] = beta - WO @ sla.solve(IH, E[out_idx], assume_a="sym")
            counts["woodbury"] += 1
            continue
        if ko <= m:
            XO = Xa[out_idx]
            AS = A0 - XO.T @ XO
            bS = b0 - XO.T @ Y[out_idx]
            counts["downdate"] += 1
        else:
            in_idx = np.flatnonzero(row)
            XS = Xa[in_idx]
            AS = XS.T @ XS
            bS = XS.T @ Y[in_idx]
            counts["direct"] += 1
        AS[np.arange(D), np.arange(D)] += reg
        out[k] = sla.cho_solve(sla.cho_factor(AS), bS)
    return out, counts


def _kernel_setup(Z, K, Y, alpha, kernel):
    """``(K + alpha I, G = (K + alpha I)⁻¹, a = G Y)``: the per-dataset part of kernel-ridge subset refits."""
    n = K.shape[0]
    Kr = K.copy()
    Kr[np.arange(n), np.arange(n)] += alpha
    G = _kernel_ridge_inverse(Z, K, alpha, kernel)
    return Kr, G, G @ Y


def _kernel_subset_coefs(Z, K, Y, masks, alpha, kernel, setup=None):
    """Exact dual coefficients ``(K_models, n, C)`` (zero on left-out rows) for every mask row.

    ``setup``: :func:`_kernel_setup`'s result for these arguments, when the caller has it already."""
    n = K.shape[0]
    Kr, G, a = _kernel_setup(Z, K, Y, alpha, kernel) if setup is None else setup
    out = np.zeros((masks.shape[0], n, Y.shape[1]))
    counts = {"full": 0, "woodbury": 0, "direct": 0}
    for k, row in enumerate(masks):
        out_idx = np.flatnonzero(~row)
        ko = out_idx.size
        if ko == 0:
            out[k] = a
            counts["full"] += 1
        elif ko < n - ko:
            # a_S = a − G[:, O] G_OO⁻¹ a_O (block inverse of G)
            GO = G[out_idx]  # rows O (contiguous gather); G is symmetric, so G[:, O] = GOᵀ
            out[k] = a - GO.T @ sla.cho_solve(sla.cho_factor(GO[:, out_idx]), a[out_idx])
            out[k, out_idx] = 0.0
            counts["woodbury"] += 1
        else:
            in_idx = np.flatnonzero(row)
            out[k, in_idx] = sla.cho_solve(sla.cho_factor(Kr[np.ix_(in_idx, in_idx)]), Y[in_idx])
            counts["direct"] += 1
    return out, counts


def _check_subset_inputs(X, y, masks, model, alpha, kernel, gamma, standardize, n_classes, X_eval):
    X, y, _, _, n_classes = _prepare(X, y, None, None, n_classes)
    masks = check_masks("masks", masks, n_examples=X.shape[0])
    if model not in ("ridge", "kernel-ridge"):
        raise MemlensInputError(f"model must be 'ridge' or 'kernel-ridge' for exact subset refits; got "
                                f"{model!r}; logistic regression has no exact closed form: use "
                                "memlens.train.train_population(..., model='logreg')")
    empty = np.flatnonzero(masks.sum(axis=1) == 0)
    if empty.size:
        raise MemlensInputError(f"masks rows {empty[:5].tolist()} select no training example; every model "
                                "needs at least one example")
    alpha = _check_alpha(alpha)
    kernel = _check_kernel(kernel)
    mean, scale = _standardizer(X, standardize)
    Z = (X - mean) / scale
    gamma = _resolve_gamma(Z, kernel, gamma) if model == "kernel-ridge" else None
    evals = []
    for name, Xe in X_eval:
        Xe = check_array(name, Xe, ndim=2, dtype=np.float64)
        if Xe.shape[1] != X.shape[1]:
            raise MemlensInputError(f"{name} must have {X.shape[1]} features (as X); got {Xe.shape[1]}")
        evals.append((Xe - mean) / scale)
    return Z, y, masks, alpha, kernel, gamma, n_classes, evals


#: The last kernel-ridge setup (kernel matrices, inverse), reused by the next call on the same data: a population
#: fitted shard by shard factorizes the n x n kernel once instead of once per shard. One entry, at most this size.
_KERNEL_CACHE: dict = {}
_KERNEL_CACHE_BYTES = 512 * 2**20


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1))
    return h.hexdigest()


def _kernel_designs_and_setup(Z, Y, alpha, kernel, gamma, evals):
    """``(K, designs, setup)`` of kernel ridge on ``Z``, from the one-entry cache when the data are the same."""
    key = (_digest(Z, Y, *evals), float(alpha), kernel, gamma)
    hit = _KERNEL_CACHE.get(key)
    if hit is not None:
        return hit
    K = _kernel(Z, Z, kernel, gamma)
    designs = [K if E.shape == Z.shape and np.array_equal(E, Z) else _kernel(E, Z, kernel, gamma) for E in evals]
    out = (K, designs, _kernel_setup(Z, K, Y, alpha, kernel))
    _KERNEL_CACHE.clear()
    arrays = list({id(a): a for a in (K, *designs, *out[2])}.values())
    if sum(a.nbytes for a in arrays) <= _KERNEL_CACHE_BYTES:
        for a in arrays:
            a.setflags(write=False)   # shared by later calls: nobody may change them in place
        _KERNEL_CACHE[key] = out
    return out


def _subset_scores(Z, y, masks, model, alpha, kernel, gamma, n_classes, evals):
    """Class-first scores ``(n_classes, n_models, m)`` of every mask row's exact refit on each eval set."""
    Y = _onehot(y, n_classes)
    if model == "ridge":
        coefs, counts = _ridge_subset_coefs(_augment(Z), Y, masks, alpha)
        designs = [_augment(E) for E in evals]
    else:
        K, designs, setup = _kernel_designs_and_setup(Z, Y, alpha, kernel, gamma, evals)
        coefs, counts = _kernel_subset_coefs(Z, K, Y, masks, alpha, kernel, setup=setup)
    # one GEMM per class: (n_models, F) @ (F, m)
    return [np.stack([coefs[:, :, c] @ Phi.T for c in range(n_classes)]) for Phi in designs], counts


def subset_refit_scores(X, y, masks, *, model: str = "ridge", alpha: float = 1.0, kernel: str = "rbf",
                        gamma: float | None = None, X_eval=None, standardize: bool = True,
                        n_classes: int | None = None) -> np.ndarray:
    """Exact scores of ridge / kernel ridge refit on every mask row, without refitting from scratch.

    Row k's model is the fit on ``{i : masks[k, i]}``. Ridge uses, per row, whichever exact route costs fewer
    flops: leave-k-out PRESS by Woodbury, ``β_S = β̂ − A⁻¹X̃_Oᵀ(I − H_OO)⁻¹(Y_O − Ŷ_O)`` (k = |O| left out,
    cheapest when k < d), or a rank-k downdate ``A_S = A − X̃_OᵀX̃_O`` of the normal equations (or the direct
    Gram when the subset is the smaller side). Kernel ridge uses the block inverse
    ``a_S = a − G[:, O] G_OO⁻¹ a_O`` with ``G = (K + alpha I)⁻¹`` when |O| < |S| (cost |O|³ instead of |S|³),
    else a direct solve.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array of int, shape (n,)
    masks : array of bool, shape (n_models, n)
    model : ``"ridge"`` or ``"kernel-ridge"``
    alpha, kernel, gamma, standardize, n_classes
        As in :func:`ridge_loo` / :func:`kernel_ridge_loo` (standardization statistics and the default gamma
        come from all n rows, as for the population trainers).
    X_eval : array, shape (m, d), optional
        Where to evaluate the models (default: ``X``).

    Returns
    -------
    ndarray of float64, shape (n_models, m, n_classes)
    """
    X_eval = X if X_eval is None else X_eval
    Z, y, masks, alpha, kernel, gamma, n_classes, evals = _check_subset_inputs(
        X, y, masks, model, alpha, kernel, gamma, standardize, n_classes, [("X_eval", X_eval)])
    (scores,), _ = _subset_scores(Z, y, masks, model, alpha, kernel, gamma, n_classes, evals)
    return np.moveaxis(scores, 0, 2)


def closed_form_population(dataset, *, masks, model: str = "ridge", alpha: float = 1.0, kernel: str = "rbf",
                           gamma: float | None = None, standardize: bool = True, model_offset: int = 0,
                           block_size: int | None = None, progress=None) -> Population:
    """A population of exact ridge / kernel-ridge refits, one model per mask row, as a :class:`~memlens.Population`.

    The models are exactly those of refitting on each subset (see :func:`subset_refit_scores` for the
    Woodbury / downdate routes), so every measure and attack runs on them as on a trained population.

    Parameters
    ----------
    dataset : memlens.data.Dataset
    masks : array of bool, shape (n_models, n_train)
    model : ``"ridge"`` or ``"kernel-ridge"``
    alpha, kernel, gamma, standardize
        As in :func:`ridge_loo` / :func:`kernel_ridge_loo`.
    model_offset : int
        Global index of the first row (recorded as the model's seed; the fits are deterministic).
    block_size : int, optional
        Models per block (bounds memory); default: as many as fit in about 64 MiB of scores.
    progress : callable, optional
        ``progress(n_models_done)`` after each block.

    Returns
    -------
    Population
        Signals ``logit`` (score margin), ``loss`` (squared error), ``correct``, ``margin`` on ``train`` and
        ``test`` (see :func:`score_signals`); provenance records the routes used per model.
    """
    X, y, X_test, y_test, n_classes = _dataset_arrays(dataset)
    model_offset = check_int("model_offset", model_offset, min_value=0)
    evals_in = [("X_train", X)] + ([("X_test", X_test)] if X_test is not None else [])
    Z, y, masks, alpha, kernel, gamma, n_classes, evals = _check_subset_inputs(
        X, y, masks, model, alpha, kernel, gamma, standardize, n_classes, evals_in)
    n_models = masks.shape[0]
    n_eval = sum(E.shape[0] for E in evals)
    if block_size is None:
        block_size = max(1, _BLOCK_ENTRIES // max(1, n_eval * n_classes))
    block_size = check_int("block_size", block_size, min_value=1)
    labels = [y] + ([y_test] if y_test is not None else [])
    names = ["train", "test"][:len(evals)]
    parts: dict = {s: [] for s in names}
    totals: dict = {}
    for start in range(0, n_models, block_size):
        block = masks[start:start + block_size]
        scores, counts = _subset_scores(Z, y, block, model, alpha, kernel, gamma, n_classes, evals)
        for s, sc, yy in zip(names, scores, labels):
            parts[s].append(_signals_classfirst(sc, yy, probabilistic=False))
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        if progress is not None:
            progress(min(start + block_size, n_models))
    signals = {s: {k: np.concatenate([p[k] for p in parts[s]]) for k in parts[s][0]} for s in names}
    params = {"alpha": alpha, "standardize": bool(standardize)}
    if model == "kernel-ridge":
        params.update({"kernel": kernel, "gamma": gamma})
    prov = {"source": "exact closed-form subset refits", "model": model, "params": params,
            "routes": totals, "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
            "memlens_version": _version()}
    return Population(masks, signals, model_offset + np.arange(n_models, dtype=np.int64),
                      dict(zip(names, labels)), prov)


# ---------------------------------------------------------------------------------------------------- reference
def brute_force_loo(X, y, *, model: str = "ridge", index=None, alpha: float = 1.0, C: float = 1.0,
                    kernel: str = "rbf", gamma: float | None = None, standardize: bool = True,
                    n_classes: int | None = None, tol: float = 1e-10, max_iter: int = 100_000,
                    warm_start: bool = True) -> np.ndarray:
    """Leave-one-out by refitting scikit-learn without each example: the reference the closed forms replace.

    Uses ``Ridge(alpha)`` (one-hot targets), ``KernelRidge(alpha, kernel, gamma)`` or
    ``LogisticRegression(C, tol=tol, max_iter=max_iter)`` with the same standardized features (statistics of
    all n rows) and returns, for each example of ``index``, the scores at that example of the model refit
    without it. Slow by design: ``len(index)`` fits. ``warm_start`` starts each logistic refit from the full
    fit (same optimum to ``tol``, fewer L-BFGS iterations).

    Returns
    -------
    ndarray of float64, shape (len(index), n_classes)
        Same score convention as :attr:`LOOResult.loo_scores` (binary logistic: ``[0, z]``).
    """
    model = _check_model(model)
    X, y, _, _, n_classes = _prepare(X, y, None, None, n_classes)
    idx = _check_index(index, X.shape[0])
    mean, scale = _standardizer(X, standardize)
    Z = (X - mean) / scale
    Y = _onehot(y, n_classes)
    if model == "kernel-ridge":
        gamma = _resolve_gamma(Z, _check_kernel(kernel), gamma)
    out = np.empty((idx.size, n_classes))
    keep = np.ones(X.shape[0], dtype=bool)
    if model == "logreg":
        start = LogisticRegression(C=_check_C(C), tol=tol, max_iter=max_iter).fit(Z, y) if warm_start else None
    for j, i in enumerate(idx):
        keep[i] = False
        if model == "ridge":
            out[j] = Ridge(alpha=_check_alpha(alpha)).fit(Z[keep], Y[keep]).predict(Z[i:i + 1])[0]
        elif model == "kernel-ridge":
            kr = KernelRidge(alpha=_check_alpha(alpha), kernel=kernel, gamma=gamma).fit(Z[keep], Y[keep])
            out[j] = kr.predict(Z[i:i + 1])[0]
        else:
            lr = LogisticRegression(C=_check_C(C), tol=tol, max_iter=max_iter, warm_start=warm_start)
            if warm_start and np.unique(y[keep]).size == start.classes_.size:
                lr.coef_, lr.intercept_ = start.coef_.copy(), start.intercept_.copy()
            lr.fit(Z[keep], y[keep])
            dec = lr.decision_function(Z[i:i + 1])
            if n_classes == 2:
                out[j] = [0.0, dec[0]]
            else:
                full = np.full(n_classes, -np.inf)
                full[lr.classes_] = dec[0]
                out[j] = full
        keep[i] = True
    return out
