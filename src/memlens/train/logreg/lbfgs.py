"""L-BFGS over stacked parameters (Nocedal & Wright 2006, Alg. 7.4-7.5, the two-loop recursion), vectorized over
the model axis: per-model curvature pairs and Armijo steps, float32 iterations certified in float64.
"""
from __future__ import annotations

import torch

from .objective import _armijo, _dot, _Objective, _outputs, _progress

__all__ = []


_SWITCH_TOL = 1e-6


_PATIENCE32 = 20


_REFRESH = 10


def _lbfgs(obj: _Objective, W0: torch.Tensor, *, tol: float, max_iter, history: int, patience: int | None = None,
           H0_fixed=None):
    """Vectorized preconditioned L-BFGS with per-model Armijo backtracking; converged models leave.

    ``H0_fixed``: an initial inverse Hessian shared by every model and never refreshed (:class:`_SharedHessian`);
    None: the Kronecker factorization, refreshed every ``_REFRESH`` iterations.

    ``patience``: a model also leaves (unconverged) when its best ``max |grad|`` has not halved in that many
    iterations (used for the float32 phase, whose gradients stop improving at the float32 rounding level).
    Returns ``(W, n_iter, grad_max, converged, f)`` for every model (``max_iter`` is per model, an array).
    """
    K, dp, n_out = W0.shape
    dtype = W0.dtype
    buf = _outputs(W0)
    W_out, f_out, g_out, it_out, conv_out = buf["W"], buf["f"], buf["g"], buf["it"], buf["conv"]

    ids = torch.arange(K)                        # global index of each active model
    W = W0.clone()
    f, G = obj(W, ids)
    S = torch.zeros(history, K, dp, n_out, dtype=dtype)
    Yh = torch.zeros(history, K, dp, n_out, dtype=dtype)
    rho = torch.zeros(history, K, dtype=dtype)   # 0 marks an empty or rejected pair (a no-op in the recursion)
    gamma = torch.ones(K, dtype=dtype)
    pos = 0
    it = torch.zeros(K, dtype=torch.int64)
    budget = torch.as_tensor(max_iter, dtype=torch.int64).expand(K).clone()
    H0 = None
    eps_f = min(1e3 * torch.finfo(dtype).eps, 1e-6)     # relative rounding level of F (float64: 2e-13)

    best = torch.full((K,), float("inf"), dtype=dtype)    # best max |grad| so far (patience)
    since = torch.zeros(K, dtype=torch.int64)             # iterations since it last halved

    def retire(done: torch.Tensor, converged: torch.Tensor):
        nonlocal ids, W, f, G, S, Yh, rho, gamma, it, budget, best, since
        if not bool(done.any()):
            return
        gid = ids[done]
        W_out[gid] = W[done]
        f_out[gid] = f[done]
        g_out[gid] = G[done].abs().amax((1, 2))
        it_out[gid] = it[done]
        conv_out[gid] = converged[done]
        keep = ~done
        ids, W, f, G, it, budget = ids[keep], W[keep], f[keep], G[keep], it[keep], budget[keep]
        best, since = best[keep], since[keep]
        S, Yh, rho, gamma = S[:, keep], Yh[:, keep], rho[:, keep], gamma[keep]
        if H0 is not None:
            H0.keep(keep)

    gmax = G.abs().amax((1, 2))
    retire((gmax <= tol) | (budget <= 0), gmax <= tol)
    n_step = sigma_step = 0
    while ids.numel():
        if H0_fixed is not None:
            H0 = H0_fixed
        elif n_step % _REFRESH == 0:
            # Sigma is refreshed less often when it costs more than ~10% of the evaluations in between.
            k_act = ids.numel()
            renew = H0 is None or n_step - sigma_step >= _REFRESH * max(1.0, dp / (2.0 * obj.n_classes * k_act))
            H0 = obj.preconditioner(W, ids, sigma=None if renew else H0.sigma)
            sigma_step = n_step if renew else sigma_step
        n_step += 1
        # Two-loop recursion (newest pair first), vectorized over the active models.
        q = -G
        order = [(pos - 1 - j) % history for j in range(history)]
        alpha = []
        for j in order:
            a = rho[j] * _dot(S[j], q)
            q = q - a.view(-1, 1, 1) * Yh[j]
            alpha.append(a)
        D = H0(q) * gamma.view(-1, 1, 1)
        for j, a in zip(reversed(order), reversed(alpha)):
            b = rho[j] * _dot(Yh[j], D)
            D = D + (a - b).view(-1, 1, 1) * S[j]
        gd = _dot(G, D)
        bad = ~(gd < 0)
        if bad.any():                            # not a descent direction: restart from the preconditioned gradient
            D[bad] = -H0(G)[bad]
            rho[:, bad] = 0.0
            gamma[bad] = 1.0
            gd = _dot(G, D)
            bad = ~(gd < 0)
            D[bad] = -G[bad]
            gd = _dot(G, D)

        W_new, f_new, G_new, ok = _armijo(obj, W, f, G, D, gd, ids, eps_f)
        stalled = ~ok                            # no decrease found: the model is at working precision

        s = W_new - W
        yv = G_new - G
        stalled |= ok & (s.abs().amax((1, 2)) == 0)    # a step too small to change W: no progress possible
        sy = _dot(s, yv)
        valid = ok & (sy > 0)
        safe_sy = torch.where(valid, sy, torch.ones_like(sy))
        S[pos], Yh[pos] = s, yv
        rho[pos] = torch.where(valid, 1.0 / safe_sy, torch.zeros_like(sy))
        yHy = _dot(yv, H0(yv))
        gamma = torch.where(valid & (yHy > 0), sy / torch.where(yHy > 0, yHy, torch.ones_like(yHy)), gamma)
        pos = (pos + 1) % history
        W, f, G = W_new, f_new, G_new
        it = it + ok.to(torch.int64)

        converged, best, since, slow = _progress(G, tol, patience, best, since)
        retire(converged | stalled | slow | (it >= budget), converged)
    return W_out, it_out, g_out, conv_out, f_out


def _lbfgs_phases(obj64: _Objective, W: torch.Tensor, *, tol: float, max_iter: int, history: int, precision: str,
                  H0_fixed=None):
    """L-BFGS in float32 until ``max(tol, 1e-6)`` (or no progress), then float64 certifying ``tol`` (``mixed``)."""
    K = W.shape[0]
    n_iter = torch.zeros(K, dtype=torch.int64)
    with torch.no_grad():
        if precision in ("mixed", "float32"):
            tol32 = tol if precision == "float32" else max(tol, _SWITCH_TOL)
            W32, n_iter, g, conv, f = _lbfgs(obj64.to(torch.float32), W.float(), tol=tol32, max_iter=max_iter,
                                             history=history, patience=_PATIENCE32 if precision == "mixed" else None,
                                             H0_fixed=H0_fixed)
            W = W32.double()
        if precision in ("mixed", "float64"):
            W, it2, g, conv, f = _lbfgs(obj64, W, tol=tol, max_iter=torch.clamp(max_iter - n_iter, min=0),
                                        history=history, H0_fixed=H0_fixed)
            n_iter = n_iter + it2
    return W, n_iter, g, conv, f
