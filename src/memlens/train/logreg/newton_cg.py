"""Truncated Newton (Newton-CG) for a block of logistic regressions: per-model preconditioned CG on the exact
Hessian, whose products for all models are two shared GEMMs, stopped by the Eisenstat-Walker forcing term.
"""
from __future__ import annotations

import torch

from .lbfgs import _SWITCH_TOL
from .objective import LogisticFit, _armijo, _dot, _Objective, _outputs, _progress
from .preconditioners import _DiagPreconditioner, _kron_subset, _MeanHessianPreconditioner

__all__ = []


_MAX_CG = 200          # CG iterations per Newton step and model (scikit-learn's newton-cg: maxinner = 200)




_HESS_PARAMS = 2048


_ETA_MAX = 0.5         # Eisenstat-Walker forcing term eta_k = min(0.5, sqrt(||g_k||_2)) (as scikit-learn)


def _probabilities(obj: _Objective, W: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Class probabilities ``(n, n_classes, k)`` of models ``idx`` at ``W (k, d + 1, n_out)`` (one GEMM)."""
    k, dp, n_out = W.shape
    Wm = W.permute(1, 2, 0).reshape(dp, n_out * k)
    return torch.softmax(obj._scores(obj.X1, Wm, k, n_out), dim=1)


def _curvature(obj: _Objective, P: torch.Tensor, wts: torch.Tensor) -> torch.Tensor:
    """Per-row curvature factor: binary ``w p0 p1`` of shape ``(n, 1, k)``; multinomial ``w P`` ``(n, C, k)``."""
    if obj.binary:
        return (P[:, 0] * P[:, 1] * wts).unsqueeze(1)
    return P * wts.unsqueeze(1)


def _hvp(obj: _Objective, P: torch.Tensor, Pw: torch.Tensor, n_k: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Hessian-vector products ``H_k V_k`` of the normalized objectives, all models at once: two GEMMs.

    ``P (n, C, k)`` probabilities and ``Pw`` their curvature factor (:func:`_curvature`) at the current point;
    ``V (k, d + 1, n_out)``. The multinomial Hessian of ``CE_i`` acts on the scores' direction ``u_i = V^T x_i``
    as ``diag(p_i) u_i - p_i (p_i . u_i)``; the binary one as ``p0 p1 u_i``.
    """
    k, dp, n_out = V.shape
    n = obj.X1.shape[0]
    U = (obj.X1 @ V.permute(1, 2, 0).reshape(dp, n_out * k)).view(n, n_out, k)
    R = U.mul_(Pw)                                   # w p_c u_c  (binary: w p0 p1 u)
    if not obj.binary:
        R.sub_(P * R.sum(1, keepdim=True))           # - w p_c (p . u)
    H = (obj.X1.T @ R.view(n, n_out * k)).view(dp, n_out, k).permute(2, 0, 1)
    inv_n = (1.0 / n_k).view(k, 1, 1)
    return H * inv_n + V * obj.pen * (inv_n / obj.C)


def _newton_cg(obj: _Objective, W0: torch.Tensor, *, tol: float, max_iter, patience: int | None = None,
               precondition: str = "kron", max_cg: int = _MAX_CG, cache: dict | None = None):
    """Vectorized truncated Newton (Newton-CG) with per-model CG, forcing terms and Armijo line search.

    Each model's direction solves ``H_k d = -g_k`` by preconditioned conjugate gradients (Nocedal & Wright 2006,
    Alg. 7.1 / 5.3), stopped when ``||r||_2 <= eta_k ||g_k||_2`` with the Eisenstat-Walker forcing term
    ``eta_k = min(0.5, sqrt(||g_k||_2))`` (superlinear local convergence; scikit-learn's ``newton-cg``), on
    negative or zero curvature, or after ``max_cg`` steps. The Hessian-vector products of all models still in
    CG are two shared GEMMs per CG step (:func:`_hvp`); a model whose CG has stopped leaves the product. The
    step length is found by the same per-model Armijo backtracking as the L-BFGS solver (first trial 1).
    Converged models (``max |grad F_k| <= tol``) leave the block.

    ``precondition``: ``kron`` (the L-BFGS solver's Kronecker factorization, refreshed every Newton step),
    ``diag`` (the Hessian's diagonal), ``hessian`` (:class:`_MeanHessianPreconditioner`, refreshed at Newton
    steps 0, 1, 2, 4, 8, ...; ``cache`` carries it from the float32 to the float64 phase) or ``none``.

    Returns ``(W, n_iter, grad_max, converged, f, n_hvp)`` for every model.
    """
    K, dp, n_out = W0.shape
    dtype = W0.dtype
    buf = _outputs(W0, "hvp")
    W_out, f_out, g_out, it_out, conv_out, hv_out = buf["W"], buf["f"], buf["g"], buf["it"], buf["conv"], buf["hvp"]

    ids = torch.arange(K)
    W = W0.clone()
    f, G = obj(W, ids)
    it = torch.zeros(K, dtype=torch.int64)
    nhv = torch.zeros(K, dtype=torch.int64)
    budget = torch.as_tensor(max_iter, dtype=torch.int64).expand(K).clone()
    eps_f = min(1e3 * torch.finfo(dtype).eps, 1e-6)
    best = torch.full((K,), float("inf"), dtype=dtype)
    since = torch.zeros(K, dtype=torch.int64)
    X1sq = obj.X1 * obj.X1 if precondition == "diag" else None
    sigma, sigma_step, n_step = None, 0, 0

    def retire(done: torch.Tensor, converged: torch.Tensor):
        nonlocal ids, W, f, G, it, nhv, budget, best, since
        if not bool(done.any()):
            return
        gid = ids[done]
        W_out[gid], f_out[gid] = W[done], f[done]
        g_out[gid] = G[done].abs().amax((1, 2))
        it_out[gid], hv_out[gid], conv_out[gid] = it[done], nhv[done], converged[done]
        keep = ~done
        ids, W, f, G, it, nhv, budget = ids[keep], W[keep], f[keep], G[keep], it[keep], nhv[keep], budget[keep]
        best, since = best[keep], since[keep]

    gmax = G.abs().amax((1, 2))
    retire((gmax <= tol) | (budget <= 0), gmax <= tol)
    while ids.numel():
        k_act = ids.numel()
        wts, n_k = obj._select(ids)
        P = _probabilities(obj, W, ids)
        Pw = _curvature(obj, P, wts)
        if precondition == "hessian":
            if cache is not None and "hessian" in cache and (n_step & (n_step - 1) or cache.get("frozen")):
                M = cache["hessian"]
            else:
                try:
                    M = _MeanHessianPreconditioner(obj, P, wts, n_k)
                except RuntimeError:                 # not positive definite in this precision: no preconditioner
                    M = None
                if cache is not None:
                    cache["hessian"] = M
        elif precondition == "kron":
            renew = sigma is None or n_step - sigma_step >= max(1.0, dp / (2.0 * obj.n_classes * k_act))
            M = obj.preconditioner(W, ids, sigma=None if renew else sigma)
            sigma, sigma_step = M.sigma, (n_step if renew else sigma_step)
        elif precondition == "diag":
            M = _DiagPreconditioner(obj, X1sq, P, Pw, n_k)
        else:
            M = None
        n_step += 1

        # Preconditioned CG on H_k d = -g_k, vectorized; models leave as their own CG stops.
        gnorm = G.flatten(1).norm(dim=1)
        target = torch.clamp(torch.sqrt(gnorm), max=_ETA_MAX) * gnorm
        D = torch.zeros_like(W)
        R = -G
        Z = M(R) if M is not None else R.clone()
        Pd = Z.clone()
        rz = _dot(R, Z)
        act = torch.arange(k_act)
        P_act, Pw_act, n_act = P, Pw, n_k             # gathered again only when the CG active set shrinks
        for j in range(max_cg):
            full = act.numel() == k_act
            if P_act.shape[2] != act.numel():
                P_act, Pw_act, n_act = P[:, :, act], Pw[:, :, act], n_k[act]
            Pa = Pd if full else Pd[act]
            Hp = _hvp(obj, P_act, Pw_act, n_act, Pa)
            nhv[act] += 1
            pHp = _dot(Pa, Hp)
            neg = ~(pHp > 0)
            if neg.any() and j == 0:             # no curvature information: fall back to the preconditioned gradient
                D[act[neg]] = Pa[neg]
            alpha = torch.where(neg, torch.zeros_like(pHp), rz[act] / torch.where(neg, torch.ones_like(pHp), pHp))
            D[act] += alpha.view(-1, 1, 1) * Pa
            Ra = R[act] - alpha.view(-1, 1, 1) * Hp
            R[act] = Ra
            done = neg | (Ra.flatten(1).norm(dim=1) <= target[act])
            if M is None:
                Za = Ra.clone()
            else:
                Za = (M if full or precondition == "hessian" else
                      (_kron_subset(M, act) if precondition == "kron" else M.subset(act)))(Ra)
            rz_new = _dot(Ra, Za)
            beta = rz_new / torch.where(rz[act] != 0, rz[act], torch.ones_like(rz_new))
            Pd[act] = Za + beta.view(-1, 1, 1) * Pa
            rz[act] = rz_new
            act = act[~done]
            if act.numel() == 0:
                break
        gd = _dot(G, D)
        bad = ~(gd < 0)
        if bad.any():                            # rounding: fall back to steepest descent for those models
            D[bad] = -G[bad]
            gd = _dot(G, D)

        W_new, f_new, G_new, ok = _armijo(obj, W, f, G, D, gd, ids, eps_f)
        stalled = ~ok
        stalled |= ok & ((W_new - W).abs().amax((1, 2)) == 0)
        W, f, G = W_new, f_new, G_new
        it = it + ok.to(torch.int64)

        converged, best, since, slow = _progress(G, tol, patience, best, since)
        retire(converged | stalled | slow | (it >= budget), converged)
    return W_out, it_out, g_out, conv_out, f_out, hv_out


_PATIENCE32_NEWTON = 4


def _fit_newton(obj64: _Objective, W: torch.Tensor, d: int, n_classes: int, *, tol: float, max_iter: int,
                precision: str, precondition: str | None = None) -> LogisticFit:
    """``fit_logistic(..., solver="newton-cg")``: float32 Newton-CG, then float64 Newton-CG certifying ``tol``.

    ``precondition`` None: the mean exact Hessian while the parameter count ``(d + 1) n_out`` is at most
    ``_HESS_PARAMS`` (measured on digits, 650 parameters: 98 -> 36 Hessian-vector products per model, 1.4x less
    time than the Kronecker factorization), else the Kronecker factorization (its ``(d + 1)^2 n_out^2``
    factorization and solves cost more than they save at Fashion-MNIST's 7,850 parameters).
    """
    K = W.shape[0]
    if precondition is None:
        precondition = "hessian" if W.shape[1] * W.shape[2] <= _HESS_PARAMS else "kron"
    n_iter = torch.zeros(K, dtype=torch.int64)
    n_hvp = torch.zeros(K, dtype=torch.int64)
    cache = {}
    with torch.no_grad():
        if precision in ("mixed", "float32"):
            tol32 = tol if precision == "float32" else max(tol, _SWITCH_TOL)
            W32, n_iter, g, conv, f, n_hvp = _newton_cg(
                obj64.to(torch.float32), W.float(), tol=tol32, max_iter=max_iter, precondition=precondition,
                patience=_PATIENCE32_NEWTON if precision == "mixed" else None, cache=cache)
            W = W32.double()
            cache["frozen"] = True                   # the float64 phase reuses the last mean Hessian
        if precision in ("mixed", "float64"):
            W, it2, g, conv, f, hv2 = _newton_cg(obj64, W, tol=tol, max_iter=torch.clamp(max_iter - n_iter, min=0),
                                                 precondition=precondition, cache=cache)
            n_iter, n_hvp = n_iter + it2, n_hvp + hv2
    W = W.numpy()
    return LogisticFit(coef=W[:, :d, :].copy(), intercept=W[:, d, :].copy(), n_iter=n_iter.numpy(),
                       grad_norm=g.double().numpy(), converged=conv.numpy(), objective=f.double().numpy(),
                       n_classes=n_classes, n_hvp=n_hvp.numpy())
