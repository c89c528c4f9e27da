"""Leave-one-out without retraining: exact for ridge (the PRESS identity, Allen 1974) and kernel ridge (Rifkin &
Lippert 2007, §4), one Newton step for L2 logistic regression (ALO, Rad & Maleki 2020, Eq. 10-12), and the
brute-force refits that check them. See :mod:`memlens.train.closed_form` for the formulas.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import scipy.linalg as sla
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, Ridge

from .._validation import MemlensInputError, check_array, check_float, check_int, warn
from ..population import Population
from .closed_form_base import (
    _BLOCK_ENTRIES,
    _LEVERAGE_EPS,
    _augment,
    _check_alpha,
    _check_C,
    _check_index,
    _check_kernel,
    _check_model,
    _dataset_arrays,
    _kernel,
    _kernel_ridge_inverse,
    _log_softmax,
    _onehot,
    _prepare,
    _resolve_gamma,
    _spd_inverse,
    _standardizer,
    _version,
    score_signals,
)

__all__ = ["LOOResult", "ridge_loo", "kernel_ridge_loo", "logistic_alo", "closed_form_loo", "brute_force_loo"]


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


def ridge_loo(X, y, *, alpha: float = 1.0, X_test=None, y_test=None, standardize: bool = True,
              n_classes: int | None = None) -> LOOResult:
    """Exact leave-one-out of ridge least-squares classification, all n at once.

    Fits ``min_β ‖Y − X̃β‖² + alpha ‖β_w‖²`` on one-hot targets ``Y`` with ``X̃ = [X, 1]`` (intercept unpenalized;
    the minimizer of ``sklearn.linear_model.Ridge(alpha)``) and applies the PRESS identity (Allen 1974,
    Technometrics 16(1); docs/performance.md, "Closed forms"): ``ŷ₋ᵢ = (ŷᵢ − hᵢᵢ yᵢ) / (1 − hᵢᵢ)``. Cost: one ``(d+1)²``
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


def kernel_ridge_loo(X, y, *, alpha: float = 1.0, kernel: str = "rbf", gamma: float | None = None, X_test=None,
                     y_test=None, standardize: bool = True, n_classes: int | None = None) -> LOOResult:
    """Exact leave-one-out of kernel ridge classification (one-hot targets), all n at once.

    Fits ``a = (K + alpha I)⁻¹ Y`` (no intercept; ``sklearn.kernel_ridge.KernelRidge(alpha, kernel, gamma)``)
    and uses the identity ``rᵢ = aᵢ / [(K + alpha I)⁻¹]ᵢᵢ`` for the LOO residual (Rifkin & Lippert 2007, §4;
    docs/performance.md, "Closed forms"), so ``ŷ₋ᵢ = yᵢ − aᵢ / Gᵢᵢ``. Cost: one n×n inverse (O(n³)); for the linear
    kernel with
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
