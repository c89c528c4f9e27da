"""Reconstruction of a training example by an informed adversary (Balle, Cherubin & Hayes 2022, "Reconstructing
training data with informed adversaries", §4: generalized linear models).

The adversary knows every training example but one, the training objective and the released model, and recovers
the missing example from the model's first-order optimality conditions. For an objective
``Σ_j ℓ(θ; z_j) + R(θ)`` with a unique minimizer ``θ``, ``∇ℓ(θ; z_i) = −R'(θ) − Σ_{j≠i} ∇ℓ(θ; z_j)``: the known
examples and the model give the missing example's gradient exactly, and for linear models that gradient reveals
the example.

* :func:`reconstruct_ridge` — least squares with an L2 penalty ``α‖w‖²`` (intercept unpenalized): the gradient is
  ``2 (x̃ᵀθ − y) x̃`` with ``x̃ = [x, 1]``; its intercept entry is ``2 c`` with the residual ``c``, so
  ``x = g[:d] / g[d]`` and ``y = x̃ᵀθ − c`` exactly (undefined when the model fits the example exactly, ``c = 0``:
  the example then leaves no trace in the optimality conditions).
* :func:`reconstruct_logistic` — scikit-learn's L2 logistic regression ``C Σ_j CE_j + ½‖W‖²`` (intercepts
  unpenalized): the gradient is ``C x̃ (p − e_y)ᵀ``; its intercept row ``C (p − e_y)`` has its only negative entry
  at the label, and ``x`` is the rest of the rank-one matrix divided by it (least squares over the classes). Exact
  up to the model's convergence.

Both return the reconstruction and its error; the model must be the exact (converged) minimizer: reconstruction
error grows with the optimizer's tolerance, which is why DP training (noise in θ) defeats it.

For models without such a closed form (neural networks), Balle et al. (§5) train a *reconstructor*: the adversary
trains shadow models on its known examples plus one candidate each, and learns the map from a model's parameters
to the candidate it saw. :func:`fit_reconstructor` learns that map by ridge regression on the centred, flattened
parameters (our simplification of their reconstructor network: the effect of one example on the parameters is, to
first order, linear in the example — an influence-function argument — which a linear map can invert), with the
penalty chosen on held-out shadow models.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.linalg import LinAlgWarning

from .._validation import MemlensInputError, check_array, check_float, warn

__all__ = ["InformedReconstruction", "reconstruct_ridge", "reconstruct_logistic", "reconstruct_logistic_all",
           "Reconstructor", "fit_reconstructor", "flatten_parameters"]


@dataclass(frozen=True, eq=False)
class InformedReconstruction:
    """The missing example, recovered.

    Attributes
    ----------
    x : ndarray, shape (d,)
    y : float or int
        The target value (ridge) or class (logistic regression).
    gradient : ndarray
        The missing example's loss gradient implied by the optimality conditions.
    """

    x: np.ndarray
    y: float | int
    gradient: np.ndarray

    def error(self, x_true) -> float:
        """Relative error ``‖x̂ − x‖ / ‖x‖``."""
        x_true = np.asarray(x_true, dtype=np.float64)
        return float(np.linalg.norm(self.x - x_true) / max(np.linalg.norm(x_true), 1e-300))


def _rest(X_rest, y_rest, d: int):
    X = check_array("X_rest", X_rest, ndim=2, dtype=np.float64)
    if X.shape[1] != d:
        raise MemlensInputError(f"X_rest has {X.shape[1]} features; the model has {d}")
    y = np.asarray(y_rest)
    if y.shape != (X.shape[0],):
        raise MemlensInputError(f"y_rest must hold one value per row of X_rest ({X.shape[0]}); got shape {y.shape}")
    return X, y


def reconstruct_ridge(coef, intercept: float, X_rest, y_rest, *, alpha: float) -> InformedReconstruction:
    """Recover the missing example of a ridge regression ``min Σ_j (x_jᵀw + b − y_j)² + α‖w‖²``.

    Parameters
    ----------
    coef : array, shape (d,); intercept : float
        The released model (the exact minimizer on all n examples).
    X_rest : array, shape (n − 1, d); y_rest : array, shape (n − 1,)
        Every other training example.
    alpha : float >= 0
    """
    w = check_array("coef", coef, ndim=1, dtype=np.float64)
    alpha = check_float("alpha", alpha, min_value=0.0)
    X, y = _rest(X_rest, y_rest, w.size)
    theta = np.r_[w, float(intercept)]
    Xt = np.hstack([X, np.ones((X.shape[0], 1))])
    g = -(2 * Xt.T @ (Xt @ theta - y.astype(np.float64)) + np.r_[2 * alpha * w, 0.0])
    c = g[-1] / 2.0
    if abs(c) < 1e-12 * max(1.0, float(np.abs(g).max())):
        warn("the released model fits the missing example exactly (zero residual): it leaves no trace in the "
             "optimality conditions, so it cannot be reconstructed (NaN)")
        return InformedReconstruction(x=np.full(w.size, np.nan), y=float("nan"), gradient=g)
    x = g[:-1] / g[-1]
    return InformedReconstruction(x=x, y=float(np.r_[x, 1.0] @ theta - c), gradient=g)


def reconstruct_logistic(coef, intercept, X_rest, y_rest, *, C: float,
                         penalize_intercept: bool = False) -> InformedReconstruction:
    """Recover the missing example of scikit-learn's L2 logistic regression (see the module docstring).

    Parameters
    ----------
    coef : array, shape (d, n_out)
        ``n_out = 1``: two classes (scikit-learn's one weight vector); else one column per class.
    intercept : array, shape (n_out,)
    X_rest : array, shape (n − 1, d); y_rest : int array, shape (n − 1,)
    C : float > 0
    penalize_intercept : bool
        True when the intercept is penalized like the weights (a constant feature with ``fit_intercept=False``,
        as differentially private output perturbation needs a strongly convex objective): its optimality
        condition then holds ``b`` as well.
    """
    W, b, C = _check_logistic(coef, intercept, C)
    X, y = _rest(X_rest, y_rest, W.shape[0])
    G = _objective_gradient(W, b, X, y.astype(np.int64), C, penalize_intercept)   # = C x̃_i (p_i − e_{y_i})ᵀ
    v = G[-1]                                          # C (p_i − e_{y_i})
    if not np.any(np.abs(v) > 1e-12 * max(1.0, float(np.abs(G).max()))):
        warn("the released model fits the missing example with probability 1: no gradient, no reconstruction (NaN)")
        return InformedReconstruction(x=np.full(W.shape[0], np.nan), y=-1, gradient=G)
    x = G[:-1] @ v / (v @ v)
    return InformedReconstruction(x=x, y=_label_of(v), gradient=G)


def _check_logistic(coef, intercept, C):
    W = check_array("coef", coef, ndim=2, dtype=np.float64)
    b = check_array("intercept", intercept, ndim=1, dtype=np.float64)
    if b.shape != (W.shape[1],):
        raise MemlensInputError(f"intercept must have one entry per column of coef ({W.shape[1]}); got {b.shape}")
    return W, b, check_float("C", C, min_value=0.0, min_inclusive=False)


def _residuals(W, b, X, y) -> np.ndarray:
    """``(n, n_out)``: ``p − e_y`` of every row (two classes: ``p₁ − [y = 1]``, one column)."""
    Z = X @ W + b
    if W.shape[1] == 1:
        return (1.0 / (1.0 + np.exp(-Z[:, 0])) - (y == 1))[:, None]
    Z = Z - Z.max(1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(1, keepdims=True)
    P[np.arange(len(y)), y] -= 1.0
    return P


def _objective_gradient(W, b, X, y, C, penalize_intercept) -> np.ndarray:
    """Minus the gradient ``(d + 1, n_out)`` of the objective over the rows ``X``: the gradient the missing
    example must contribute for the released model to be the minimizer."""
    reg = np.vstack([W, b[None, :] if penalize_intercept else np.zeros((1, W.shape[1]))])
    R = _residuals(W, b, X, y)
    return -(reg + C * np.vstack([X.T @ R, R.sum(0, keepdims=True)]))


def _label_of(v: np.ndarray) -> int:
    """The label whose residual entry is the negative one (two classes: the sign)."""
    return (1 if v[0] < 0 else 0) if v.shape[-1] == 1 else int(np.argmin(v))


def reconstruct_logistic_all(coef, intercept, X, y, *, C: float, penalize_intercept: bool = False):
    """Every training example reconstructed in turn by the informed adversary who knows all the others: the
    same result as :func:`reconstruct_logistic` on ``(X without row i, y without i)`` for each ``i``, in one pass.

    The objective's gradient over all ``n`` rows is formed once; leaving row ``i`` out adds back its own
    ``C x̃_i (p_i − e_{y_i})ᵀ``, so the reconstructions are ``x̂_i = (G_[:d] v_i + C x_i (r_i · v_i)) / ‖v_i‖²``
    with ``v_i = G_d + C r_i`` (``r_i = p_i − e_{y_i}``).

    Parameters
    ----------
    coef : array, shape (d, n_out); intercept : array, shape (n_out,)
        The released model (trained on all ``n`` rows; possibly with noise added, as a DP release).
    X : array, shape (n, d); y : int array, shape (n,)
    C : float > 0
    penalize_intercept : bool
        See :func:`reconstruct_logistic`.

    Returns
    -------
    x : ndarray, shape (n, d)
        Reconstructed rows (NaN where the model fits a row with probability 1: nothing to reconstruct).
    labels : ndarray of int, shape (n,)
        Reconstructed labels (-1 where undefined).
    """
    W, b, C = _check_logistic(coef, intercept, C)
    X, y = _rest(X, y, W.shape[0])
    y = y.astype(np.int64)
    G = _objective_gradient(W, b, X, y, C, penalize_intercept)      # (d + 1, n_out), over all rows
    R = _residuals(W, b, X, y)                                       # (n, n_out)
    V = G[-1][None, :] + C * R                                       # intercept rows of each leave-one-out
    vv = np.einsum("ij,ij->i", V, V)
    xs = (V @ G[:-1].T + C * X * np.einsum("ij,ij->i", R, V)[:, None])
    ok = vv > (1e-12 * max(1.0, float(np.abs(G).max()))) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        xs = np.where(ok[:, None], xs / vv[:, None], np.nan)
    labels = np.where(ok, (V[:, 0] < 0).astype(np.int64) if W.shape[1] == 1 else np.argmin(V, axis=1), -1)
    return xs, labels


def flatten_parameters(weights, biases) -> np.ndarray:
    """``(K, p)``: the stacked parameters of ``K`` models (tuples of ``(K, ...)`` arrays, e.g. an ``MLPFit``'s
    ``weights`` and ``biases``) flattened into one row per model."""
    parts = [np.asarray(a, dtype=np.float64) for a in (*weights, *biases)]
    K = parts[0].shape[0]
    if any(a.shape[0] != K for a in parts):
        raise MemlensInputError("weights and biases must stack the same number of models on their first axis")
    return np.concatenate([a.reshape(K, -1) for a in parts], axis=1)


@dataclass(frozen=True, eq=False)
class Reconstructor:
    """A learned map from a model's parameters to the missing example (:func:`fit_reconstructor`).

    Attributes
    ----------
    model : sklearn.linear_model.Ridge
        Fitted on centred parameters.
    center : ndarray, shape (p,)
        Mean parameters of the shadow models.
    alpha : float
        The ridge penalty chosen on held-out shadow models.
    validation_error : float
        Their median relative reconstruction error at ``alpha``.
    """

    model: object
    center: np.ndarray
    alpha: float
    validation_error: float

    def predict(self, params) -> np.ndarray:
        """``(T, d)`` reconstructions from the parameters ``(T, p)`` of target models."""
        P = check_array("params", params, ndim=2, dtype=np.float64)
        if P.shape[1] != self.center.size:
            raise MemlensInputError(f"params must have {self.center.size} columns (the shadow models' parameters); "
                                    f"got {P.shape[1]}")
        return self.model.predict(P - self.center)


def _relative_errors(pred, true) -> np.ndarray:
    return np.linalg.norm(pred - true, axis=1) / np.maximum(np.linalg.norm(true, axis=1), 1e-300)


def fit_reconstructor(shadow_params, shadow_examples, *, alphas=(1e-6, 1e-4, 1e-2, 1.0, 1e2), validation: float = 0.2,
                      seed=0) -> Reconstructor:
    """Learn the reconstructor of Balle et al. (§5) from shadow models (module docstring; a ridge map, ours).

    Parameters
    ----------
    shadow_params : array, shape (S, p)
        Parameters of ``S`` shadow models, each trained on the adversary's known examples plus one candidate
        (:func:`flatten_parameters`).
    shadow_examples : array, shape (S, d)
        The candidate each shadow model saw.
    alphas : sequence of float
        Ridge penalties tried; the one with the smallest median relative error on the held-out shadow models wins,
        and the map is refitted on all of them.
    validation : float in (0, 1)
        Fraction of shadow models held out to choose the penalty.
    seed : int
    """
    from sklearn.linear_model import Ridge  # sklearn is heavy: imported on first use

    P = check_array("shadow_params", shadow_params, ndim=2, dtype=np.float64)
    Z = check_array("shadow_examples", shadow_examples, ndim=2, dtype=np.float64)
    if Z.shape[0] != P.shape[0]:
        raise MemlensInputError(f"shadow_examples must have one row per shadow model ({P.shape[0]}); got {Z.shape[0]}")
    validation = check_float("validation", validation, min_value=0.0, max_value=1.0, min_inclusive=False,
                             max_inclusive=False)
    n_val = int(round(validation * P.shape[0]))
    if P.shape[0] < 4 or not 1 <= n_val < P.shape[0] - 1:
        raise MemlensInputError(f"fit_reconstructor needs at least 4 shadow models and a validation share that "
                                f"leaves some on each side; got {P.shape[0]} models, validation={validation}")
    alphas = [check_float("alphas", a, min_value=0.0, min_inclusive=False) for a in alphas]
    order = np.random.default_rng(seed).permutation(P.shape[0])
    val, tr = order[:n_val], order[n_val:]
    center = P[tr].mean(0)
    best = None
    with warnings.catch_warnings():   # tiny penalties are ill-conditioned by design; validation judges them
        warnings.simplefilter("ignore", category=LinAlgWarning)
        for a in alphas:
            pred = Ridge(alpha=a).fit(P[tr] - center, Z[tr]).predict(P[val] - center)
            err = float(np.median(_relative_errors(pred, Z[val])))
            if best is None or err < best[1]:
                best = (a, err)
        center = P.mean(0)
        model = Ridge(alpha=best[0]).fit(P - center, Z)
    return Reconstructor(model=model, center=center, alpha=float(best[0]), validation_error=best[1])
