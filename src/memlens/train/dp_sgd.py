"""DP-SGD for a whole population at once: per-example clipping, Gaussian noise, Poisson subsampling.

DP-SGD (Abadi et al. 2016, Algorithm 1). The noise level and the ε reported come from
:mod:`memlens.privacy.accountant` (Opacus's accountants); this module is the private training step only.

One step, for every model ``k`` of a block at once:

1. Poisson sampling: each IN example of model ``k`` joins the batch independently with probability ``q``
   (model ``k``'s own generator, seeded from its own seed).
2. Per-example gradients of the cross-entropy, in closed form: the gradient of a linear layer for example
   ``i`` is the outer product ``a_i delta_i^T`` (input activation times back-propagated error) plus ``delta_i``
   for the bias, so its squared norm is ``(||a_i||^2 + 1) ||delta_i||^2`` and no per-example gradient is
   ever materialized (the "ghost norm" of Goodfellow 2015; Li et al. 2022).
3. Clipping: example ``i`` is scaled by ``min(1, C / (||g_i|| + 1e-6))`` (Opacus's clip factor), and the
   clipped sum of every layer is one batched product ``A^T (c * Delta)``.
4. Noise: ``N(0, sigma^2 C^2 I)`` added to the sum, drawn from model ``k``'s generator.
5. Update: the noisy sum divided by the expected batch size (Opacus's normalization for Poisson sampling),
   plus weight decay, through heavy-ball momentum (``torch.optim.SGD``'s rule).

Sampling rate: every model of a run uses ``q = batch_size / n_max``, ``n_max`` the largest IN count among
the models of the call, and so the same ``sigma`` and the same number of steps. Each example of each model is
sampled with probability exactly ``q``, so the accountant's ``(epsilon, delta)`` holds for every model (a model
with fewer IN examples only has a smaller expected batch).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .._validation import MemlensInputError, check_float, check_int
from .torch_mlp import MLPFit, check_stacked_inputs, init_mlp

__all__ = ["clipped_grad_sum", "fit_dp_sgd"]

_CLIP_EPS = 1e-6  # Opacus: clip factor = max_grad_norm / (norm + 1e-6), clamped to 1


# ================================================================================================ DP-SGD step
def clipped_grad_sum(weights, biases, X, y, valid, *, max_grad_norm: float):
    """Sum over each model's batch of the per-example cross-entropy gradients, each clipped to ``max_grad_norm``.

    Parameters
    ----------
    weights, biases : sequences of tensors, shapes (K, fan_in, fan_out) and (K, fan_out)
        Stacked ReLU-MLP parameters (no hidden layer: softmax regression).
    X : tensor, shape (K, B, d)
        Batch of every model (padded).
    y : tensor of int64, shape (K, B)
    valid : tensor of bool, shape (K, B)
        False on padding rows (they contribute nothing).
    max_grad_norm : float > 0
        Clipping norm ``C`` of the full per-example gradient (all layers).

    Returns
    -------
    grads : list of tensors
        Clipped sums, weights first then biases, shapes as the parameters.
    norms : tensor, shape (K, B)
        Per-example gradient norms before clipping.
    loss : tensor, shape (K,)
        Summed cross-entropy over the valid rows.
    """
    acts, pre, H = [X], [], X
    for j, (W, b) in enumerate(zip(weights, biases)):
        A = torch.baddbmm(b.unsqueeze(1), H, W)
        pre.append(A)
        H = torch.relu(A) if j < len(weights) - 1 else A
        acts.append(H)
    logp = torch.log_softmax(acts[-1], dim=2)
    vf = valid.to(logp.dtype)
    loss = -(logp.gather(2, y.unsqueeze(2)).squeeze(2) * vf).sum(1)
    delta = logp.exp()
    delta.scatter_add_(2, y.unsqueeze(2), torch.full_like(delta[..., :1], -1.0))
    deltas = [None] * len(weights)
    sq = torch.zeros_like(vf)
    for j in range(len(weights) - 1, -1, -1):
        deltas[j] = delta
        sq += ((acts[j] * acts[j]).sum(2) + 1.0) * (delta * delta).sum(2)
        if j:
            delta = torch.bmm(delta, weights[j].transpose(1, 2)).mul_(pre[j - 1] > 0)
    norms = sq.sqrt()
    c = (max_grad_norm / (norms + _CLIP_EPS)).clamp(max=1.0) * vf
    gW, gb = [], []
    for j in range(len(weights)):
        dc = deltas[j] * c.unsqueeze(2)
        gW.append(torch.bmm(acts[j].transpose(1, 2), dc))
        gb.append(dc.sum(1))
    return gW + gb, norms, loss


def fit_dp_sgd(X, y, masks, *, seeds, n_classes: int | None = None, hidden=(), steps: int, sample_rate: float,
               noise_multiplier: float, max_grad_norm: float = 1.0, lr: float, momentum: float = 0.0,
               weight_decay: float = 0.0, normalizer: float | None = None, init: str = "uniform",
               init_seeds=None) -> MLPFit:
    """Train ``K`` models by DP-SGD, model ``k`` on the rows where ``masks[k]`` is True, all in one loop.

    Parameters
    ----------
    X : array, shape (n, d)
    y : array of int, shape (n,)
    masks : array of bool, shape (K, n)
    seeds : array of int, shape (K,)
        Model ``k``'s generator ``numpy.random.default_rng(seeds[k])`` draws its initialization (``init=
        "uniform"``), then at every step its Poisson sample and its noise.
    n_classes : int, optional
    hidden : tuple of int
        Hidden widths; ``()`` is multinomial logistic (softmax) regression.
    steps : int >= 1
    sample_rate : float in (0, 1]
        Poisson inclusion probability ``q`` of each IN example at each step (1: full batches).
    noise_multiplier : float >= 0
        ``sigma``: noise ``N(0, sigma^2 max_grad_norm^2)`` per coordinate of the clipped sum (0: no noise).
    max_grad_norm : float > 0
    lr : float > 0
    momentum : float in [0, 1)
    weight_decay : float >= 0
        L2 coefficient added to the averaged noisy gradient.
    normalizer : float, optional
        The noisy sum is divided by it; default ``sample_rate * max_k n_in_k`` (the expected batch size).
    init : {"uniform", "zeros"}
        ``torch.nn.Linear``'s initialization (:func:`memlens.train.torch_mlp.init_mlp`) or all zeros.
    init_seeds : array of int, shape (K,), optional
        Draw model ``k``'s uniform initialization from ``default_rng(init_seeds[k])`` instead of its own generator
        (which then draws only the sampling and the noise): models with a *public*, shared initialization and
        secret noise, the threat model of an informed adversary who knows the training randomness but the noise.

    Returns
    -------
    MLPFit
        ``n_steps`` (all equal to ``steps``); ``final_loss``: mean cross-entropy over the sampled examples of
        the last ``ceil(1 / q)`` steps.
    """
    X, y, masks, seeds, n_classes = check_stacked_inputs(X, y, masks, seeds, n_classes)
    steps = check_int("steps", steps, min_value=1)
    q = check_float("sample_rate", sample_rate, min_value=0.0, max_value=1.0, min_inclusive=False)
    sigma = check_float("noise_multiplier", noise_multiplier, min_value=0.0)
    clip = check_float("max_grad_norm", max_grad_norm, min_value=0.0, min_inclusive=False)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    momentum = check_float("momentum", momentum, min_value=0.0, max_value=1.0, max_inclusive=False)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    if init not in ("uniform", "zeros"):
        raise MemlensInputError(f"init must be 'uniform' or 'zeros'; got {init!r}")
    counts = masks.sum(1)
    if np.any(counts == 0):
        raise MemlensInputError(f"every model needs at least one training example; model row(s) "
                                f"{np.flatnonzero(counts == 0)[:5].tolist()} have none")
    norm = q * float(counts.max()) if normalizer is None else check_float("normalizer", normalizer, min_value=0.0,
                                                                          min_inclusive=False)
    K, d = masks.shape[0], X.shape[1]
    sizes = [d, *[check_int("hidden", h, min_value=1) for h in hidden], n_classes]
    rngs = [np.random.default_rng(int(s)) for s in seeds]
    if init_seeds is not None:
        init_seeds = np.asarray(init_seeds)
        if init_seeds.shape != (K,) or not np.issubdtype(init_seeds.dtype, np.integer):
            raise MemlensInputError(f"init_seeds must be {K} integers (one per model); got {init_seeds!r:.80}")
    if init == "uniform":
        init_rngs = rngs if init_seeds is None else [np.random.default_rng(int(s)) for s in init_seeds]
        inits = [init_mlp(rng, sizes) for rng in init_rngs]
    else:
        inits = [([np.zeros((a, b), np.float32) for a, b in zip(sizes[:-1], sizes[1:])],
                  [np.zeros(b, np.float32) for b in sizes[1:]]) for _ in range(K)]
    L = len(sizes) - 1
    Ws = [torch.tensor(np.stack([w[j] for w, _ in inits])) for j in range(L)]
    bs = [torch.tensor(np.stack([b[j] for _, b in inits])) for j in range(L)]
    params = Ws + bs
    shapes = [tuple(p.shape[1:]) for p in params]
    sizes_flat = [int(np.prod(s)) for s in shapes]
    bufs = [torch.zeros_like(p) for p in params]
    in_idx = [np.flatnonzero(m) for m in masks]
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    tail = min(steps, int(math.ceil(1.0 / q)))
    loss_sum = np.zeros(K)
    seen = np.zeros(K)

    with torch.no_grad():
        for s in range(steps):
            picks = [idx[rng.random(idx.size) < q] if q < 1 else idx for idx, rng in zip(in_idx, rngs)]
            nb = np.array([p.size for p in picks])
            B = max(1, int(nb.max()))
            order = np.zeros((K, B), dtype=np.int64)
            for k, p in enumerate(picks):
                order[k, :p.size] = p
            valid = torch.as_tensor(np.arange(B)[None, :] < nb[:, None])
            idx_t = torch.as_tensor(order)
            grads, _, loss = clipped_grad_sum(Ws, bs, Xt[idx_t], yt[idx_t], valid, max_grad_norm=clip)
            if s >= steps - tail:
                loss_sum += loss.double().numpy()
                seen += nb
            if sigma > 0:
                noise = np.stack([rng.standard_normal(sum(sizes_flat), dtype=np.float32) for rng in rngs])
                noise = torch.as_tensor(noise).mul_(sigma * clip).split(sizes_flat, dim=1)
                grads = [g.add_(z.view(K, *shp)) for g, z, shp in zip(grads, noise, shapes)]
            for p, g, buf in zip(params, grads, bufs):
                g.div_(norm)
                if weight_decay:
                    g.add_(p, alpha=weight_decay)
                if momentum:
                    g = buf.mul_(momentum).add_(g)
                p.sub_(g, alpha=lr)
    return MLPFit(weights=tuple(W.numpy().copy() for W in Ws), biases=tuple(b.numpy().copy() for b in bs),
                  n_steps=np.full(K, steps, dtype=np.int64),
                  final_loss=loss_sum / np.maximum(seen, 1))
