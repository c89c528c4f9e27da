"""Gradient-based memorization proxies from one trained model: influence functions, TracIn, EK-FAC, curvature.

All are "higher = more memorized" and computed from the weights of one model (or its checkpoints), with
per-example gradients vectorized over examples: for a dense layer ``z = a W + b`` the gradient of an example's loss
is the outer product ``a ⊗ δ`` (``δ = ∂ℓ/∂z``), so its squared norm is ``(‖a‖² + 1) ‖δ‖²`` and its projection on
any Kronecker-factored basis is a product of two small projections: no per-example gradient is materialized.
Models are ReLU MLPs given as ``weights[l] (fan_in, fan_out)`` and ``biases[l] (fan_out,)`` (a softmax
regression is the MLP without hidden layers); the loss is the cross-entropy.

* :func:`logistic_influence` (Koh & Liang 2017, "Understanding black-box predictions via influence functions", §2.1),
  exact for L2 logistic regression: with the objective ``C Σ_j ℓ_j + ½‖W‖²`` (scikit-learn's, intercepts
  unpenalized) and its Hessian ``H`` at the full-data optimum, removing example ``i`` moves the parameters by
  ``≈ C H⁻¹ ∇ℓ_i`` (one Newton step), so its own loss rises by ``C ∇ℓ_iᵀ H⁻¹ ∇ℓ_i`` (self-influence) and the loss
  of a test example ``j`` by ``C ∇ℓ_jᵀ H⁻¹ ∇ℓ_i`` (pairwise influence). ``H`` is formed exactly and factorized
  once (Cholesky); the direction that shifts every intercept equally (softmax's invariance) is handled by a
  damping of 1e-8 of the mean diagonal on the intercepts, which gradients are orthogonal to.
* :func:`tracin_self_influence` (Pruthi et al. 2020, "Estimating training data influence by tracing gradient
  descent", Eq. 3 with ``z' = z``): ``Σ_t η_t ‖∇ℓ(z; θ_t)‖²`` over checkpoints ``θ_t`` with learning rates ``η_t``.
* :func:`ekfac_self_influence` (George et al. 2018, "Fast approximate natural gradient descent in a Kronecker-factored
  eigenbasis"; Grosse et al. 2023, "Studying large language model generalization with influence functions", §2.2):
  self-influence ``gᵀ (G + λ I)⁻¹ g`` with the Gauss–Newton/Fisher matrix ``G`` of each layer approximated in the
  eigenbasis of its Kronecker factors ``A = E[a aᵀ]``, ``S = E[δ δᵀ]`` with eigenvalues refitted per entry
  (``Λ_jk = E[(Q_Sᵀ δ)_j² (Q_Aᵀ a)_k²]``); layers are independent (block-diagonal). Chosen over LiSSA because it
  needs two passes over the data and no per-example iteration, and it is exact in the eigenbasis for the
  empirical Fisher of one layer. We use the empirical Fisher (labels as given); damping ``λ = damping · mean(Λ)``.
* :func:`trak` (Park et al. 2023, "TRAK: attributing model behavior at scale", Algorithm 1): for each model of a small
  ensemble trained on random halves, features ``φ_i = Pᵀ ∇_θ f(z_i)`` of the margin output
  ``f = log p_y − log(1 − p_y)`` under a random projection ``P``, and attributions
  ``τ(z, i) = φ(z)ᵀ (Φᵀ Φ)⁻¹ φ_i (1 − p_i)``, averaged over the ensemble; the self-attribution ``τ(z_i, i)`` is
  the memorization proxy. The projection is Kronecker-factored per layer (Gaussian ``R_a`` on the layer's input,
  ``R_δ`` on its output error; ``φ`` holds ``(R_aᵀ a) ⊗ (R_δᵀ δ)``), which projects each per-example gradient
  ``a ⊗ δ`` without forming it (our choice for speed; TRAK uses a dense Gaussian projection).
* :func:`input_curvature` (Garg, Roy et al. 2023, "Memorization through the lens of curvature of loss function
  around samples", Eq. 2): ``E_v ‖∇_x ℓ(x + h v) − ∇_x ℓ(x)‖² / h²`` over Rademacher directions ``v``, averaged over
  checkpoints (the paper averages over training epochs).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .._random import as_generator
from .._validation import MemlensInputError, check_array, check_float, check_int

__all__ = ["LogisticInfluence", "logistic_influence", "mlp_backprop", "per_example_grad_sqnorm",
           "tracin_self_influence", "tracin_pairwise", "ekfac_self_influence", "input_curvature", "TrakResult", "trak", "functional_grad_sqnorm",
           "functional_input_curvature", "module_ekfac_self_influence"]

CHUNK = 4096


def _torch():
    import torch  # deferred: torch is heavy

    return torch


def _check_mlp(weights, biases):
    if len(weights) != len(biases) or not len(weights):
        raise MemlensInputError(f"weights and biases must be equally long, non-empty sequences (one per layer); got "
                                f"{len(weights)} and {len(biases)}")
    for j, (W, b) in enumerate(zip(weights, biases)):
        if np.ndim(W) != 2 or np.shape(b) != (np.shape(W)[1],):
            raise MemlensInputError(f"layer {j}: weights must be (fan_in, fan_out) and biases (fan_out,); got "
                                    f"{np.shape(W)} and {np.shape(b)}")


def _xy(X, y, d: int):
    X = check_array("X", X, ndim=2, dtype=np.float32)
    y = np.asarray(y)
    if X.shape[1] != d:
        raise MemlensInputError(f"X has {X.shape[1]} features; the model takes {d}")
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise MemlensInputError(f"y must hold one integer label per row of X ({X.shape[0]}); got {y.shape} {y.dtype}")
    return X, y.astype(np.int64)


def mlp_backprop(weights, biases, X, y, *, output: str = "loss"):
    """Activations and output errors of every layer for a chunk of examples (torch float32 tensors).

    ``output="loss"``: the cross-entropy; ``"margin"``: TRAK's ``f = log p_y − log(1 − p_y)``, whose gradient in the
    logits is ``1`` on the true class and ``−p_c / (1 − p_y)`` on the others.

    Returns
    -------
    acts : list of (n, fan_in) tensors, the input of each layer
    deltas : list of (n, fan_out) tensors, ``∂ℓ/∂z`` of each layer's pre-activation
    logits : (n, n_classes) tensor
    """
    torch = _torch()
    Ws = [torch.as_tensor(np.asarray(W, dtype=np.float32)) for W in weights]
    bs = [torch.as_tensor(np.asarray(b, dtype=np.float32)) for b in biases]
    h = torch.as_tensor(X)
    acts, pre = [], []
    for j, (W, b) in enumerate(zip(Ws, bs)):
        acts.append(h)
        z = h @ W + b
        pre.append(z)
        h = torch.relu(z) if j < len(Ws) - 1 else z
    logits = h
    p = torch.softmax(logits, dim=1)
    rows, yt = torch.arange(p.shape[0]), torch.as_tensor(y)
    if output == "margin":
        py = p[rows, yt].clamp(max=1 - 1e-7)
        d = -p / (1 - py)[:, None]
        d[rows, yt] = 1.0
    else:
        d = p.clone()
        d[rows, yt] -= 1.0
    deltas = [d]
    for j in range(len(Ws) - 1, 0, -1):
        d = (d @ Ws[j].T) * (pre[j - 1] > 0)
        deltas.insert(0, d)
    return acts, deltas, logits


def per_example_grad_sqnorm(weights, biases, X, y) -> np.ndarray:
    """``(n,)`` squared norm of each example's loss gradient with respect to all parameters."""
    _check_mlp(weights, biases)
    X, y = _xy(X, y, np.shape(weights[0])[0])
    out = np.empty(X.shape[0])
    for lo in range(0, X.shape[0], CHUNK):
        acts, deltas, _ = mlp_backprop(weights, biases, X[lo:lo + CHUNK], y[lo:lo + CHUNK])
        tot = sum(((a * a).sum(1) + 1.0) * (d * d).sum(1) for a, d in zip(acts, deltas))
        out[lo:lo + CHUNK] = tot.double().numpy()
    return out


def tracin_self_influence(checkpoints, lrs, X, y) -> np.ndarray:
    """``(n,)`` TracIn self-influence ``Σ_t η_t ‖∇ℓ(x_i; θ_t)‖²``.

    Parameters
    ----------
    checkpoints : sequence of (weights, biases)
    lrs : sequence of float, one per checkpoint (the learning rate in effect over the epoch it ends)
    X : array (n, d); y : int array (n,)
    """
    if len(checkpoints) != len(lrs) or not len(checkpoints):
        raise MemlensInputError(f"checkpoints and lrs must be equally long and non-empty; got {len(checkpoints)} and "
                                f"{len(lrs)}")
    total = 0.0
    for (W, b), lr in zip(checkpoints, lrs):
        total = total + check_float("lrs", lr, min_value=0.0) * per_example_grad_sqnorm(W, b, X, y)
    return np.asarray(total, dtype=np.float64)


def tracin_pairwise(checkpoints, lrs, X, y, X_eval, y_eval) -> np.ndarray:
    """``(n_eval, n)`` TracIn ``Σ_t η_t ∇ℓ(z_j; θ_t) · ∇ℓ(z_i; θ_t)`` (Pruthi et al. 2020, Eq. 3): positive when
    training example ``i`` helped evaluation example ``j`` (a proponent). Per layer the dot product of two outer
    products is ``(a_j · a_i)(δ_j · δ_i)``, so no per-example gradient is formed."""
    W0 = checkpoints[0][0]
    X, y = _xy(X, y, np.shape(W0[0])[0])
    Xe, ye = _xy(X_eval, y_eval, np.shape(W0[0])[0])
    out = np.zeros((Xe.shape[0], X.shape[0]))
    for (W, b), lr in zip(checkpoints, lrs):
        _check_mlp(W, b)
        ae, de, _ = mlp_backprop(W, b, Xe, ye)
        for lo in range(0, X.shape[0], CHUNK):
            at, dt, _ = mlp_backprop(W, b, X[lo:lo + CHUNK], y[lo:lo + CHUNK])
            tot = 0.0
            for a1, d1, a2, d2 in zip(ae, de, at, dt):
                tot = tot + (a1 @ a2.T + 1.0) * (d1 @ d2.T)
            out[:, lo:lo + CHUNK] += float(lr) * tot.double().numpy()
    return out


def ekfac_self_influence(weights, biases, X, y, *, damping: float = 0.1) -> np.ndarray:
    """``(n,)`` EK-FAC self-influence (see the module docstring), two passes over ``X``."""
    torch = _torch()
    _check_mlp(weights, biases)
    X, y = _xy(X, y, np.shape(weights[0])[0])
    damping = check_float("damping", damping, min_value=0.0, min_inclusive=False)
    n, L = X.shape[0], len(weights)
    # pass 1: Kronecker factors (bias as an input of 1)
    A = [None] * L
    S = [None] * L
    for lo in range(0, n, CHUNK):
        acts, deltas, _ = mlp_backprop(weights, biases, X[lo:lo + CHUNK], y[lo:lo + CHUNK])
        for j, (a, d) in enumerate(zip(acts, deltas)):
            a1 = torch.cat([a, torch.ones(a.shape[0], 1)], dim=1).double()
            d = d.double()
            A[j] = (a1.T @ a1) if A[j] is None else A[j] + a1.T @ a1
            S[j] = (d.T @ d) if S[j] is None else S[j] + d.T @ d
    QA = [torch.linalg.eigh(a / n).eigenvectors.float() for a in A]
    QS = [torch.linalg.eigh(s / n).eigenvectors.float() for s in S]
    # pass 2: eigenvalues refitted per entry, then the scores (the projected gradients are recomputed)
    lam = [torch.zeros(qs.shape[0], qa.shape[0], dtype=torch.float64) for qa, qs in zip(QA, QS)]

    def projected(lo):
        acts, deltas, _ = mlp_backprop(weights, biases, X[lo:lo + CHUNK], y[lo:lo + CHUNK])
        for j, (a, d) in enumerate(zip(acts, deltas)):
            a1 = torch.cat([a, torch.ones(a.shape[0], 1)], dim=1)
            yield j, (d @ QS[j]) ** 2, (a1 @ QA[j]) ** 2           # (m, out), (m, in+1)

    for lo in range(0, n, CHUNK):
        for j, ds, as_ in projected(lo):
            lam[j] += (ds.T.double() @ as_.double())
    lam = [lm / n for lm in lam]
    inv = [1.0 / (lm + damping * float(lm.mean())) for lm in lam]
    out = np.zeros(n)
    for lo in range(0, n, CHUNK):
        tot = 0.0
        for j, ds, as_ in projected(lo):
            tot = tot + ((ds.double() @ inv[j]) * as_.double()).sum(1)     # Σ_jk ds_j as_k / (Λ_jk + λ)
        out[lo:lo + CHUNK] = tot.numpy()
    return out


def input_curvature(checkpoints, X, y, *, h: float = 1e-3, n_dirs: int = 8, seed=0) -> np.ndarray:
    """``(n,)`` input-space loss curvature averaged over checkpoints (see the module docstring)."""
    torch = _torch()
    if not len(checkpoints):
        raise MemlensInputError("checkpoints must hold at least one (weights, biases)")
    h = check_float("h", h, min_value=0.0, min_inclusive=False)
    n_dirs = check_int("n_dirs", n_dirs, min_value=1)
    W0 = checkpoints[0][0]
    X, y = _xy(X, y, np.shape(W0[0])[0])
    rng = as_generator(seed)
    out = np.zeros(X.shape[0])

    def grad_x(weights, biases, Xc, yc):
        acts, deltas, _ = mlp_backprop(weights, biases, Xc, yc)
        return deltas[0] @ torch.as_tensor(np.asarray(weights[0], dtype=np.float32)).T

    for weights, biases in checkpoints:
        _check_mlp(weights, biases)
        for lo in range(0, X.shape[0], CHUNK):
            Xc, yc = X[lo:lo + CHUNK], y[lo:lo + CHUNK]
            g0 = grad_x(weights, biases, Xc, yc)
            acc = torch.zeros(Xc.shape[0], dtype=torch.float64)
            for _ in range(n_dirs):
                v = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=Xc.shape)
                g1 = grad_x(weights, biases, Xc + h * v, yc)
                acc += ((g1 - g0).double() ** 2).sum(1)
            out[lo:lo + CHUNK] += acc.numpy() / (n_dirs * h * h)
    return out / len(checkpoints)


@dataclass(frozen=True, eq=False)
class LogisticInfluence:
    """Influence-function estimates of an L2 logistic regression (see :func:`logistic_influence`).

    Attributes
    ----------
    self_influence : ndarray, shape (n,)
        Predicted rise of example ``i``'s own loss when it is removed: ``C ∇ℓ_iᵀ H⁻¹ ∇ℓ_i``.
    pairwise : ndarray, shape (n_test, n) or None
        Predicted rise of test example ``j``'s loss when training example ``i`` is removed.
    loss : ndarray, shape (n,)
        Each training example's loss under the full-data model.
    newton : ndarray, shape (n,) or None
        With ``newton=True``: the rise of example ``i``'s loss evaluated exactly at the one-step estimate
        ``θ + C H_{−i}⁻¹ ∇ℓ_i`` with the leave-one-out Hessian ``H_{−i} = H − C ∇²ℓ_i`` (Woodbury: a
        ``n_out × n_out`` system per example), the second-order-accurate version of the influence function.
    seconds : dict
        Wall time of each part: ``hessian_and_self`` (forming and factorizing ``H``, the self-influence),
        ``pairwise`` and ``newton`` (0 when not computed).
    """

    self_influence: np.ndarray
    pairwise: np.ndarray | None
    loss: np.ndarray
    newton: np.ndarray | None = None
    seconds: dict | None = None


def _logistic_parts(coef, intercept, X, y):
    """Per-example ``x̃ = [x, 1]``, output-gradient ``r (n, n_out)``, output Hessian ``(n, n_out, n_out)``, loss."""
    Z = X @ coef + intercept
    n_out = coef.shape[1]
    Xt = np.hstack([X, np.ones((X.shape[0], 1))])
    if n_out == 1:                                     # binary: sklearn's one weight vector, p(1) = σ(z)
        z = Z[:, 0]
        p = 1.0 / (1.0 + np.exp(-z))
        r = (p - (y == 1))[:, None]
        Hs = (p * (1 - p))[:, None, None]
        loss = np.logaddexp(0.0, -z) * (y == 1) + np.logaddexp(0.0, z) * (y != 1)
    else:
        Z = Z - Z.max(1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(1, keepdims=True)
        r = P.copy()
        r[np.arange(len(y)), y] -= 1.0
        Hs = np.einsum("ic,ce->ice", P, np.eye(n_out)) - np.einsum("ic,ie->ice", P, P)
        loss = -np.log(np.maximum(P[np.arange(len(y)), y], 1e-300))
    return Xt, r, Hs, loss


def logistic_influence(coef, intercept, X, y, *, C: float, X_test=None, y_test=None,
                       newton: bool = False) -> LogisticInfluence:
    """Exact influence functions of L2 logistic regression at its full-data optimum (see the module docstring).

    Parameters
    ----------
    coef : array, shape (d, n_out)
        Weights (``n_out = 1`` for two classes, scikit-learn's binary parametrization, else ``n_classes``).
    intercept : array, shape (n_out,)
    X : array, shape (n, d); y : int array, shape (n,)
        The training rows the model was fitted on (the same standardization).
    C : float
        scikit-learn's inverse regularization strength.
    X_test, y_test : optional
        Evaluation rows for the pairwise influence.
    newton : bool
        Also compute :attr:`LogisticInfluence.newton` (memory ``n · p · n_out`` in chunks; digits-sized data).

    Returns
    -------
    LogisticInfluence
    """
    coef = check_array("coef", coef, ndim=2, dtype=np.float64)
    intercept = check_array("intercept", intercept, ndim=1, dtype=np.float64)
    X = check_array("X", X, ndim=2, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    C = check_float("C", C, min_value=0.0, min_inclusive=False)
    d, n_out = coef.shape
    if X.shape[1] != d or intercept.shape != (n_out,) or y.shape != (X.shape[0],):
        raise MemlensInputError(f"coef {coef.shape}, intercept {intercept.shape}, X {X.shape} and y {y.shape} do not "
                                "fit together")
    t0 = time.perf_counter()
    Xt, r, Hs, loss = _logistic_parts(coef, intercept, X, y)
    p = (d + 1) * n_out
    # H[(a,c),(b,e)] = C Σ_i x̃_ia x̃_ib Hs_i[c,e] + [a < d] δ_ab δ_ce
    H = np.zeros((d + 1, n_out, d + 1, n_out))
    for c in range(n_out):
        for e in range(c, n_out):
            blk = C * (Xt * Hs[:, c, e][:, None]).T @ Xt
            H[:, c, :, e] = blk
            H[:, e, :, c] = blk
    H = H.reshape(p, p)
    reg = np.ones((d + 1, n_out))
    reg[d] = 1e-8 * float(np.mean(np.diag(H)))        # the intercepts: damping of the softmax-invariant direction
    H[np.diag_indices(p)] += reg.reshape(-1)
    chol = np.linalg.cholesky(H)

    def solve(G):                                       # H⁻¹ Gᵀ for G (m, p)
        return np.linalg.solve(chol.T, np.linalg.solve(chol, G.T))

    G = (Xt[:, :, None] * r[:, None, :]).reshape(X.shape[0], p)
    HiG = solve(G)                                      # (p, n)
    self_inf = C * np.einsum("ip,pi->i", G, HiG)
    t1 = time.perf_counter()
    pair = None
    if X_test is not None:
        Xe = check_array("X_test", X_test, ndim=2, dtype=np.float64)
        ye = np.asarray(y_test, dtype=np.int64)
        Xte, re, _, _ = _logistic_parts(coef, intercept, Xe, ye)
        Ge = (Xte[:, :, None] * re[:, None, :]).reshape(Xe.shape[0], p)
        pair = C * Ge @ HiG
    t2 = time.perf_counter()
    newt = _newton_self(coef, intercept, X, y, C, Xt, r, Hs, loss, solve) if newton else None
    secs = {"hessian_and_self": t1 - t0, "pairwise": t2 - t1, "newton": time.perf_counter() - t2 if newton else 0.0}
    return LogisticInfluence(self_influence=self_inf, pairwise=pair, loss=loss, newton=newt, seconds=secs)


def _newton_self(coef, intercept, X, y, C, Xt, r, Hs, loss, solve, chunk: int = 256) -> np.ndarray:
    """Loss rise at ``θ + C H_{−i}⁻¹ g_i`` (see :attr:`LogisticInfluence.newton`)."""
    d, n_out = coef.shape
    p = (d + 1) * n_out
    out = np.empty(X.shape[0])
    eye = np.eye(n_out)
    for lo in range(0, X.shape[0], chunk):
        sl = slice(lo, lo + chunk)
        m = Xt[sl].shape[0]
        w, V = np.linalg.eigh(Hs[sl])                                   # Λ_i = M Mᵀ, M = V sqrt(w)
        M = V * np.sqrt(np.clip(w, 0, None))[:, None, :]                # (m, n_out, n_out)
        U = (Xt[sl][:, :, None, None] * M[:, None, :, :]).reshape(m, p, n_out)
        G = (Xt[sl][:, :, None] * r[sl][:, None, :]).reshape(m, p)
        HiG = solve(G).T                                                # (m, p)
        HiU = solve(U.transpose(0, 2, 1).reshape(m * n_out, p)).T.reshape(m, n_out, p)
        K = eye / C - np.einsum("mkp,mpl->mkl", HiU, U)                 # (m, n_out, n_out)
        UtHiG = np.einsum("mpk,mp->mk", U, HiG)
        corr = np.einsum("mkp,mk->mp", HiU, np.linalg.solve(K, UtHiG[..., None])[..., 0])
        delta = C * (HiG + corr).reshape(m, d + 1, n_out)               # Δθ for each example
        z = np.einsum("ma,mac->mc", Xt[sl], np.concatenate([coef, intercept[None]], 0)[None] + delta)
        if n_out == 1:
            yy = (y[sl] == 1)
            new = np.where(yy, np.logaddexp(0.0, -z[:, 0]), np.logaddexp(0.0, z[:, 0]))
        else:
            z = z - z.max(1, keepdims=True)
            new = -(z[np.arange(m), y[sl]] - np.log(np.exp(z).sum(1)))
        out[sl] = new - loss[sl]
    return out


@dataclass(frozen=True, eq=False)
class TrakResult:
    """TRAK attributions (see :func:`trak`).

    Attributes
    ----------
    self_influence : ndarray, shape (n,)
        ``τ(z_i, i)``, averaged over the ensemble.
    pairwise : ndarray, shape (n_eval, n) or None
        ``τ(z_j, i)`` for evaluation examples ``j``: the predicted rise of ``f(z_j)`` when ``i`` is included.
    proj_dim : int
    n_models : int
    """

    self_influence: np.ndarray
    pairwise: np.ndarray | None
    proj_dim: int
    n_models: int


def _trak_features(weights, biases, X, y, R):
    torch = _torch()
    feats, p1 = [], []
    for lo in range(0, X.shape[0], CHUNK):
        acts, deltas, logits = mlp_backprop(weights, biases, X[lo:lo + CHUNK], y[lo:lo + CHUNK], output="margin")
        parts = []
        for (Ra, Rd), a, d in zip(R, acts, deltas):
            a1 = torch.cat([a, torch.ones(a.shape[0], 1)], dim=1)
            parts.append(((a1 @ Ra)[:, :, None] * (d @ Rd)[:, None, :]).reshape(a.shape[0], -1))
        feats.append(torch.cat(parts, dim=1).double())
        p = torch.softmax(logits.double(), 1)
        p1.append(1.0 - p[torch.arange(p.shape[0]), torch.as_tensor(y[lo:lo + CHUNK])])
    return torch.cat(feats), torch.cat(p1)


def trak(models, X, y, *, X_eval=None, y_eval=None, proj_dim: int = 1024, damping: float = 1e-6,
         seed=0) -> TrakResult:
    """TRAK self-attribution (and, with ``X_eval``, attributions to evaluation examples) of an ensemble.

    Parameters
    ----------
    models : sequence of (weights, biases)
        The ensemble (Park et al. train each on a random half; a handful suffices).
    X, y : training rows the models were trained on (the same standardization)
    X_eval, y_eval : optional evaluation rows
    proj_dim : int
        Target feature dimension; each layer gets ``d_a · d_δ`` of it in proportion to its size.
    damping : float
        Relative ridge on ``Φᵀ Φ`` (times its mean diagonal).
    seed : int or Generator
        The projections.
    """
    torch = _torch()
    if not len(models):
        raise MemlensInputError("models must hold at least one (weights, biases)")
    proj_dim = check_int("proj_dim", proj_dim, min_value=1)
    damping = check_float("damping", damping, min_value=0.0)
    W0, b0 = models[0]
    _check_mlp(W0, b0)
    X, y = _xy(X, y, np.shape(W0[0])[0])
    if X_eval is not None:
        X_eval, y_eval = _xy(X_eval, y_eval, np.shape(W0[0])[0])
    rng = as_generator(seed)
    sizes = [(np.shape(W)[0] + 1, np.shape(W)[1]) for W in W0]
    total = sum(a * d for a, d in sizes)
    self_inf = np.zeros(X.shape[0])
    pair = None if X_eval is None else np.zeros((X_eval.shape[0], X.shape[0]))
    used = 0
    for weights, biases in models:
        _check_mlp(weights, biases)
        R = []
        for a, d in sizes:              # the layer's share of proj_dim, split between its two factors
            k = max(1, int(round(proj_dim * a * d / total)))
            ka = max(1, min(a, int(round(np.sqrt(k * a / d)))))
            kd = max(1, min(d, k // ka))
            R.append((torch.as_tensor((rng.standard_normal((a, ka)) / np.sqrt(ka)).astype(np.float32)),
                      torch.as_tensor((rng.standard_normal((d, kd)) / np.sqrt(kd)).astype(np.float32))))
        Phi, q = _trak_features(weights, biases, X, y, R)
        used = Phi.shape[1]
        K = Phi.T @ Phi
        K += damping * float(torch.diagonal(K).mean()) * torch.eye(K.shape[0], dtype=K.dtype)
        KiPhi = torch.linalg.solve(K, Phi.T)                                   # (k, n)
        self_inf += ((Phi * KiPhi.T).sum(1) * q).numpy()
        if X_eval is not None:
            Pe, _ = _trak_features(weights, biases, X_eval, y_eval, R)
            pair += ((Pe @ KiPhi) * q[None, :]).numpy()
    m = len(models)
    return TrakResult(self_influence=self_inf / m, pairwise=None if pair is None else pair / m, proj_dim=used,
                      n_models=m)


def functional_grad_sqnorm(fn, params, buffers, X, y, *, chunk: int = 256) -> np.ndarray:
    """``(n,)`` squared norm of each example's loss gradient for any torch module, by ``torch.func``:
    ``vmap(grad(loss))`` over a chunk of examples, ``fn(params, buffers, x) -> logits`` (e.g. ``functional_call``
    of the module in eval mode). The generic path of the TracIn self-influence (one checkpoint)."""
    torch = _torch()
    from torch.func import grad, vmap  # deferred: torch is heavy

    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)

    def loss(p, b, x, t):
        return torch.nn.functional.cross_entropy(fn(p, b, x[None]), t[None])

    g = vmap(grad(loss), in_dims=(None, None, 0, 0))
    out = np.empty(X.shape[0])
    for lo in range(0, X.shape[0], chunk):
        gs = g(params, buffers, torch.as_tensor(X[lo:lo + chunk]), torch.as_tensor(y[lo:lo + chunk]))
        out[lo:lo + chunk] = sum((v.reshape(v.shape[0], -1).double() ** 2).sum(1) for v in gs.values()).numpy()
    return out


def functional_input_curvature(fn, params, buffers, X, y, *, h: float = 1e-3, n_dirs: int = 8, seed=0,
                               chunk: int = 512) -> np.ndarray:
    """:func:`input_curvature` for any torch module (input gradients by autograd, one checkpoint)."""
    torch = _torch()
    h = check_float("h", h, min_value=0.0, min_inclusive=False)
    n_dirs = check_int("n_dirs", n_dirs, min_value=1)
    rng = as_generator(seed)
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)

    def gx(x, t):
        x = x.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(fn(params, buffers, x), t, reduction="sum")
        return torch.autograd.grad(loss, x)[0].reshape(x.shape[0], -1)

    out = np.empty(X.shape[0])
    for lo in range(0, X.shape[0], chunk):
        xc, tc = torch.as_tensor(X[lo:lo + chunk]), torch.as_tensor(y[lo:lo + chunk])
        g0 = gx(xc, tc)
        acc = torch.zeros(xc.shape[0], dtype=torch.float64)
        for _ in range(n_dirs):
            v = torch.as_tensor(rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=tuple(xc.shape)))
            acc += ((gx(xc + h * v, tc) - g0).double() ** 2).sum(1)
        out[lo:lo + chunk] = acc.numpy() / (n_dirs * h * h)
    return out


def _layer_inputs_and_errors(module, X, y):
    """Per-example inputs (as patch rows) and output errors of every Linear and Conv2d layer of ``module``:
    ``[(A (n, positions, fan_in + 1), D (n, positions, fan_out))]`` (the bias as an input of 1). One forward and one
    backward pass of the summed loss give every example's own errors (examples are independent in eval mode)."""
    torch = _torch()
    layers = [m for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    acts, errs, hooks = {}, {}, []

    def fwd_hook(m, inp, out):
        x = inp[0].detach()
        if isinstance(m, torch.nn.Conv2d):
            patches = torch.nn.functional.unfold(x, m.kernel_size, dilation=m.dilation, padding=m.padding,
                                                 stride=m.stride)                 # (n, C k k, L)
            a = patches.transpose(1, 2)
        else:
            a = x.reshape(x.shape[0], -1, x.shape[-1])
        acts[m] = torch.cat([a, torch.ones(*a.shape[:2], 1)], dim=2) if m.bias is not None else a
        out.register_hook(lambda g, m=m: errs.__setitem__(m, g.detach()))

    for m in layers:
        hooks.append(m.register_forward_hook(fwd_hook))
    try:
        x = torch.as_tensor(X)
        loss = torch.nn.functional.cross_entropy(module(x), torch.as_tensor(y), reduction="sum")
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
        module.zero_grad(set_to_none=True)
    out = []
    for m in layers:
        d = errs[m]
        d = d.flatten(2).transpose(1, 2) if isinstance(m, torch.nn.Conv2d) else d.reshape(d.shape[0], -1, d.shape[-1])
        out.append((acts[m], d))
    return out


def module_ekfac_self_influence(module, X, y, *, damping: float = 0.1, chunk: int = 256) -> np.ndarray:
    """``(n,)`` EK-FAC self-influence for any module built of ``Linear`` and ``Conv2d`` layers (others, e.g.
    BatchNorm, are left out of the curvature): per layer ``A = E[a aᵀ]`` over examples and positions (patches for
    a convolution), ``S = E[δ δᵀ]``, the per-example gradient ``Σ_positions a_p ⊗ δ_p`` rotated into their
    eigenbases, eigenvalues refitted per entry (George et al. 2018), damping ``λ = damping · mean(Λ)``. For an MLP
    it equals :func:`ekfac_self_influence`. Run with the module in eval mode."""
    torch = _torch()
    damping = check_float("damping", damping, min_value=0.0, min_inclusive=False)
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    n = X.shape[0]
    A = S = None
    for lo in range(0, n, chunk):
        parts = _layer_inputs_and_errors(module, X[lo:lo + chunk], y[lo:lo + chunk])
        if A is None:
            A = [0.0] * len(parts)
            S = [0.0] * len(parts)
        for j, (a, d) in enumerate(parts):
            a2, d2 = a.reshape(-1, a.shape[-1]).double(), d.reshape(-1, d.shape[-1]).double()
            A[j] = A[j] + a2.T @ a2 / a.shape[1]
            S[j] = S[j] + d2.T @ d2 / d.shape[1]
    QA = [torch.linalg.eigh(a / n).eigenvectors for a in A]
    QS = [torch.linalg.eigh(s_ / n).eigenvectors for s_ in S]

    def rotated(lo):
        for j, (a, d) in enumerate(_layer_inputs_and_errors(module, X[lo:lo + chunk], y[lo:lo + chunk])):
            yield j, torch.bmm((d.double() @ QS[j]).transpose(1, 2), a.double() @ QA[j]) ** 2   # (n, out, in)

    lam = [0.0] * len(QA)
    for lo in range(0, n, chunk):
        for j, g2 in rotated(lo):
            lam[j] = lam[j] + g2.sum(0)
    lam = [lm / n for lm in lam]
    inv = [1.0 / (lm + damping * float(lm.mean())) for lm in lam]
    out = np.zeros(n)
    for lo in range(0, n, chunk):
        tot = 0.0
        for j, g2 in rotated(lo):
            tot = tot + (g2 * inv[j]).sum((1, 2))
        out[lo:lo + chunk] = tot.numpy()
    return out
