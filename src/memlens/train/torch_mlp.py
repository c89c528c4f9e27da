"""Many small ReLU MLPs at once: stacked parameters, ``torch.baddbmm``, minibatch SGD with momentum.

Model ``k`` has its own parameters (the leading axis of every weight tensor), its own initialization and its
own minibatch order, both drawn from its own seed; one optimizer step advances every model of the block with
batched matrix products (docs/performance.md, "Many small MLPs at once": 8-14x over a Python loop of models on this
CPU).

The minibatches of model ``k`` in an epoch are consecutive slices of ``in_idx[rng.permutation(len(in_idx))]``,
``in_idx`` being the (sorted) indices of its IN examples. A model therefore depends on its training subset only
through the examples themselves: training on a dataset from which example ``i`` was deleted and masking ``i``
OUT give the same model (the weight-0 invariant of docs/architecture.md is exact here, not approximate). Models with
fewer IN examples finish their epoch in fewer steps and are left untouched (no update, no momentum decay) in
the remaining steps of the block's epoch; the last minibatch of an epoch holds the remainder.

Speed (measured on this project's 2-core AMD EPYC, 1 thread, CPU time, median of repeats, old and new code side
by side in one process; the machine was shared, so ratios are the comparable figures). What made the step
faster, in order of effect:

- The output layer (128 -> 10) is stored ``(K, fan_out, fan_in)`` and multiplied so that the products' last axis
  is the batch (64) rather than the 10 classes: its forward and weight-gradient ``bmm`` went from 0.92 and
  1.02 ms to 0.22 and 0.21 ms (11 -> 50 GFLOP/s; K = 64, B = 64). Rule: :func:`_transposed`.
- Every per-step intermediate lives in buffers allocated once (:func:`_workspace`): a fresh 2 MB tensor per
  step is mapped and page-faulted anew, which made ``relu`` cost 1.2 ms instead of 0.07 ms.
- Softmax cross-entropy along the contiguous (batch) axis of the logits' storage: 50 instead of 150 us.
- ``torch._fused_sgd_`` (one pass per tensor for weight decay, momentum and update) and autograd's
  ``threshold_backward`` for the ReLU (0.1 ms; multiplying by a ``> 0`` mask took 0.8 ms).
- The first layer's bias folded into its GEMMs (a column of ones on ``X``), per-step loss weights computed once
  per fit: 1.05x. The cross-entropy itself computed only in the last epoch (it is only reported): 1.06x. All
  views (transposes, bias broadcasts) made once per fit, plain softmax in the other epochs: 1.03x
  (``train_population``, 3 interleaved repeats). Block size 32 rather than 64 on digits (cache): 256 models
  x 20 epochs through ``train_population`` in 5.1 instead of 6.0 CPU s (Fashion-MNIST shapes: within 4%;
  blocks of 16: 4.3 against 4.1 s for 32), so the default is 32.

Result, training only (``fit_mlp``): digits (64-128-10, B = 64), 1.76-1.81 ms per model-epoch for blocks of 32-256
before, 0.77-0.78 ms after (K = 32); one step of 64 models 7.5-8.3 ms -> about 4 ms. The whole
``train_population`` of 256 digits MLPs x 20 epochs (with the signal evaluation): 8.7 -> 4.1 CPU s, 9.9x a
per-model ``nn.Sequential`` + ``torch.optim.SGD`` loop (BENCHMARKS.md (b); was 5.9x, measured without the warm-up
that (b) now does, which flattered the ratio: the loop's first repeat paid 1.2 s of set-up). The GEMMs are now 70%
of that time and run at 66-80 GFLOP/s; training alone reaches 48-58% of the 1-thread GEMM peak (88 GFLOP/s, GEMM
FLOPs only; BENCHMARKS.md (d)). Fashion-MNIST shapes (784-128-10, 10,000 rows, K = 64): 69.7 -> 60 ms per
model-epoch, 46-50 GFLOP/s (53-57% of the peak): the two first-layer products (forward and weight gradient) are
85% of the FLOPs and already run at 60-70 GFLOP/s, so the rest can only give back the remaining ~15%. Not kept,
measured slower: gathering each minibatch transposed ``(K, d, B)`` so the weight-gradient product reads it
contiguously (1.1x slower at both shapes: the transposing copy costs more than the product gains). Evaluation
(:func:`mlp_logits`): 1.15-1.6x (digits, K = 64: 0.093 -> 0.061 s on 1,347 rows; K = 256: 0.37 -> 0.27 s;
Fashion-MNIST, K = 64 on 10,000 rows: 2.10 -> 1.83 s).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._validation import MemlensInputError, check_array, check_float, check_int, check_labels, check_masks

__all__ = ["MLPFit", "fit_mlp", "mlp_logits", "init_mlp"]

_EVAL_ROWS = 2048


@dataclass(frozen=True, eq=False)
class MLPFit:
    """Stacked parameters of ``K`` MLPs.

    Attributes
    ----------
    weights : tuple of ndarray, shapes (K, fan_in, fan_out)
        One per layer, input layer first; the last maps to the ``n_classes`` logits.
    biases : tuple of ndarray, shapes (K, fan_out)
    n_steps : ndarray of int, shape (K,)
        SGD steps each model took (``epochs * ceil(n_in_k / batch_size)``).
    final_loss : ndarray, shape (K,)
        Mean training cross-entropy of each model's last epoch (running average over its minibatches).
    """

    weights: tuple
    biases: tuple
    n_steps: np.ndarray
    final_loss: np.ndarray

    def logits(self, X) -> np.ndarray:
        """Class scores ``(K, n, n_classes)`` of rows ``X (n, n_features)``."""
        return mlp_logits(self.weights, self.biases, X)


def init_mlp(rng: np.random.Generator, sizes) -> tuple[list, list]:
    """One model's initial parameters from its own generator: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    The bound is that of ``torch.nn.Linear``'s default initialization, for weights and biases alike.
    """
    Ws, bs = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        Ws.append(rng.uniform(-bound, bound, size=(fan_in, fan_out)).astype(np.float32))
        bs.append(rng.uniform(-bound, bound, size=fan_out).astype(np.float32))
    return Ws, bs


def _transposed(fan_out: int, rows: int) -> bool:
    """Whether a layer is stored and multiplied as ``(K, fan_out, fan_in)`` rather than ``(K, fan_in, fan_out)``.

    True when ``fan_out < rows``: the batched products then have the longer of the two as their last (fastest)
    axis. A 128 -> 10 output layer at 64 rows runs 4-5x faster so (11 -> 50 GFLOP/s, forward and
    weight-gradient products alike; K = 64, 1 thread).
    """
    return fan_out < rows


def _layer_forward(W, b, H, trans: bool):
    """Pre-activations ``(K, rows, fan_out)`` (a transposed view when ``trans``) of ``H (K, rows, fan_in)``."""
    if trans:
        return torch.baddbmm(b.unsqueeze(2), W, H.transpose(1, 2)).transpose(1, 2)
    return torch.baddbmm(b.unsqueeze(1), H, W)


def _forward(Ws, bs, H: torch.Tensor, trans) -> torch.Tensor:
    """``H (K, rows, fan_in)`` -> logits ``(K, rows, n_classes)``; ReLU between layers."""
    for j, (W, b) in enumerate(zip(Ws, bs)):
        H = _layer_forward(W, b, H, trans[j])
        if j < len(Ws) - 1:
            H = torch.relu(H)
    return H


def mlp_logits(weights, biases, X) -> np.ndarray:
    """Class scores ``(K, n, n_classes)`` of stacked MLPs on rows ``X (n, n_features)``, in row chunks.

    The first layer, whose input ``X`` all models share, is ONE product ``X @ [W1_1 ... W1_K]`` of shape
    ``(rows, d) @ (d, K h)`` rather than ``K`` batched products of an expanded ``X`` (measured 1.15-1.6x faster for
    the whole evaluation; see the module docstring). Each output column is still model ``k``'s own dot product.
    """
    Ws = [torch.as_tensor(np.asarray(W, dtype=np.float32)) for W in weights]
    bs = [torch.as_tensor(np.asarray(b, dtype=np.float32)) for b in biases]
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    K, d, h = Ws[0].shape
    W1 = Ws[0].permute(1, 0, 2).reshape(d, K * h)                        # (d, K h): model k's columns k h..
    b1 = bs[0].reshape(K * h)
    rows = min(_EVAL_ROWS, Xt.shape[0])
    trans = [_transposed(W.shape[2], rows) for W in Ws]
    rest = [W.transpose(1, 2).contiguous() if t else W for W, t in zip(Ws, trans)]
    out = np.empty((K, Xt.shape[0], Ws[-1].shape[2]), dtype=np.float32)
    with torch.no_grad():
        for r0 in range(0, Xt.shape[0], _EVAL_ROWS):
            Xr = Xt[r0:r0 + _EVAL_ROWS]
            H = torch.addmm(b1, Xr, W1).view(Xr.shape[0], K, h).transpose(0, 1)   # (K, rows, h), a view
            if len(Ws) > 1:
                H = _forward(rest[1:], bs[1:], torch.relu_(H), trans[1:])
            out[:, r0:r0 + Xr.shape[0]] = H.numpy()
    return out


def _workspace(K: int, B: int, sizes, trans, Ws, bs, Xb) -> dict:
    """Buffers reused by every step, and the fixed views of them that each product reads or writes.

    Layer outputs ``out[j]`` are ``(K, fan_out, B)`` storage where ``trans[j]``, else ``(K, B, fan_out)``;
    back-propagated gradients ``back[j] (K, B, fan_in)`` for layers ``j >= 1``. Allocating these afresh in
    every step costs more than the element-wise work on them: a 2 MB tensor (64 models x 64 rows x 128 units)
    is mapped and page-faulted anew each time (measured: ``relu`` 1.2 ms instead of 0.07 ms, the bias copy of
    ``baddbmm`` 1.1 ms). The views (transposes, bias broadcasts) are made once here rather than in every step.
    """
    L = len(Ws)
    out = [torch.empty((K, o, B) if t else (K, B, o)) for o, t in zip(sizes[1:], trans)]
    back = [None] + [torch.empty((K, B, i)) for i in sizes[1:-1]]
    acts = [Xb] + [o.transpose(1, 2) if t else o for o, t in zip(out, trans)]      # layer inputs (K, B, fan_in)
    # forward j: out[j] = bias + a @ b (bias None for the first layer: folded into Ws[0])
    fwd = [(Ws[j], acts[j].transpose(1, 2)) if trans[j] else (acts[j], Ws[j]) for j in range(L)]
    bias = [None] + [bs[j - 1].unsqueeze(2 if trans[j] else 1) for j in range(1, L)]
    dZ = torch.empty_like(out[-1])
    dA = [back[j + 1] for j in range(L - 1)] + [dZ.transpose(1, 2) if trans[-1] else dZ]   # error at layer j's output
    below = [None] + [(dA[j], Ws[j] if trans[j] else Ws[j].transpose(1, 2)) for j in range(1, L)]
    gW = [(dA[j].transpose(1, 2), acts[j]) if trans[j] else (acts[j].transpose(1, 2), dA[j]) for j in range(L)]
    return {"out": out, "back": back, "acts": acts, "fwd": fwd, "bias": bias, "dZ": dZ, "dA": dA, "below": below,
            "gW": gW, "cax": 1 if trans[-1] else 2,
            "minus_one": torch.full((K, 1, B) if trans[-1] else (K, B, 1), -1.0)}


def _sgd_step(params, grads, bufs, ws, y_s, scale_s, idle, *, lr, momentum, weight_decay, loss=True):
    """One SGD step of every model on its own minibatch (manual backward through the ReLU layers), fused.

    ``params`` is ``(*Ws, *bs)``: ``Ws[j]`` is ``(K, fan_in, fan_out)``, or ``(K, fan_out, fan_in)`` where the
    layer is stored transposed (:func:`_transposed`). The first layer's bias is folded into its weights:
    ``Ws[0]`` has ``d + 1`` inputs, the last one the bias, and the minibatch ``ws["acts"][0] (K, B, d + 1)``
    ends in a column of ones, so that the forward product adds the bias and the weight-gradient product yields
    its gradient (the column sums of the back-propagated error); ``bs`` holds the other layers' biases.
    ``grads`` and ``bufs`` are preallocated like ``params``, ``ws`` is :func:`_workspace`'s. ``y_s`` holds the
    labels and ``scale_s`` the row weights (``1 / n_k`` on the ``n_k`` rows of model ``k``'s minibatch, 0 on
    padding rows), both shaped like the logits' storage with a class axis of 1; ``idle`` is None or a bool
    ``(K,)`` of the models without a minibatch in this step. The update is ``torch.optim.SGD``'s (heavy ball,
    coupled weight decay), one fused pass per tensor (``torch._fused_sgd_``)::

        buf = momentum * buf + (grad + weight_decay * p);   p = p - lr * buf

    The ReLU backward is autograd's (``threshold_backward`` on the layer's output). Idle models are restored
    afterwards, so they are left untouched exactly. Each model's arithmetic is its own slice of the batched
    products. Returns the per-model mean minibatch cross-entropies (float64), or None when ``loss`` is False
    (the gradient needs only the softmax; fit_mlp reports the loss of the last epoch only).
    """
    L = len(ws["out"])
    if idle is not None:
        saved = [t[idle].clone() for t in (*params, *bufs)]
    out, acts, bias = ws["out"], ws["acts"], ws["bias"]
    for j, (a, b) in enumerate(ws["fwd"]):
        if j == 0:
            torch.bmm(a, b, out=out[0])
        else:
            torch.baddbmm(bias[j], a, b, out=out[j])
        if j < L - 1:
            out[j].relu_()                   # the backward needs only the output (autograd's threshold_backward)
    # Softmax cross-entropy on the logits' storage, (K, C, B) when the last layer is transposed: along a
    # contiguous axis of B rows rather than of C classes (log_softmax 50 instead of 150 us at K = B = 64, C = 10).
    cax, Z, dZ = ws["cax"], out[-1], ws["dZ"]
    if loss:
        torch.ops.aten._log_softmax.out(Z, cax, False, out=dZ)
        ce = -(dZ.gather(cax, y_s) * scale_s).sum((1, 2)).double()
        dZ.exp_()
    else:
        torch.ops.aten._softmax.out(Z, cax, False, out=dZ)
        ce = None
    dZ.scatter_add_(cax, y_s, ws["minus_one"]).mul_(scale_s)
    gW, gb = grads[:L], grads[L:]
    for j in range(L - 1, -1, -1):
        if j:
            below = ws["back"][j]
            torch.bmm(*ws["below"][j], out=below)
            torch.ops.aten.threshold_backward.grad_input(below, acts[j], 0, grad_input=below)
        torch.bmm(*ws["gW"][j], out=gW[j])
        if j:
            torch.sum(ws["dA"][j], 1, out=gb[j - 1])
    torch._fused_sgd_(params, grads, bufs if momentum else [], weight_decay=weight_decay, momentum=momentum,
                      lr=lr, dampening=0.0, nesterov=False, maximize=False, is_first_step=False)
    if idle is not None:
        for t, old in zip((*params, *bufs), saved):
            t[idle] = old
    return ce


def check_stacked_inputs(X, y, masks, seeds, n_classes=None):
    """Validate the inputs shared by the stacked-model trainers: features ``(n, d)``, labels ``(n,)``, masks
    ``(n_models, n)``, one seed per model; returns them converted, with ``n_classes`` (default ``y.max() + 1``)."""
    X = check_array("X", X, ndim=2, dtype=np.float32, min_rows=1)
    y = check_labels("y", y, n_rows=X.shape[0])
    masks = check_masks("masks", masks, n_examples=X.shape[0])
    n_classes = int(y.max()) + 1 if n_classes is None else check_int("n_classes", n_classes, min_value=2)
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.shape != (masks.shape[0],):
        raise MemlensInputError(f"seeds must have shape ({masks.shape[0]},) (one per model); got {seeds.shape}")
    return X, y, masks, seeds, n_classes

def fit_mlp(X, y, masks, *, seeds, n_classes: int | None = None, hidden=(128,), epochs: int = 20,
            batch_size: int = 64, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 0.0) -> MLPFit:
    """Train ``K`` MLPs, model ``k`` on the rows where ``masks[k]`` is True, all in one vectorized loop.

    Parameters
    ----------
    X : array, shape (n, d)
        Features (already standardized if wanted).
    y : array of int, shape (n,)
    masks : array of bool, shape (K, n)
    seeds : array of int, shape (K,)
        Model ``k``'s initialization and minibatch order come from ``numpy.random.default_rng(seeds[k])``
        (initialization first, then one permutation per epoch).
    n_classes : int, optional
        Defaults to ``y.max() + 1``.
    hidden, epochs, batch_size, lr, momentum, weight_decay
        As :class:`~memlens.train.MLPConfig`: SGD as ``torch.optim.SGD(lr, momentum, weight_decay)`` on the mean
        cross-entropy of each minibatch.

    Returns
    -------
    MLPFit
    """
    X, y, masks, seeds, n_classes = check_stacked_inputs(X, y, masks, seeds, n_classes)
    epochs = check_int("epochs", epochs, min_value=1)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    momentum = check_float("momentum", momentum, min_value=0.0, max_value=1.0, max_inclusive=False)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    K, (n, d) = masks.shape[0], X.shape
    counts = masks.sum(1)
    if np.any(counts == 0):
        raise MemlensInputError(f"every model needs at least one training example; model row(s) "
                                f"{np.flatnonzero(counts == 0)[:5].tolist()} have none")

    sizes = [d, *[int(h) for h in hidden], n_classes]
    rngs = [np.random.default_rng(int(s)) for s in seeds]
    inits = [init_mlp(rng, sizes) for rng in rngs]
    n_layers = len(sizes) - 1
    trans = [_transposed(fan_out, batch_size) for fan_out in sizes[1:]]
    # Stored as (K, fan_in, fan_out), or (K, fan_out, fan_in) where trans; the first layer with its bias as an
    # extra input (the last), fed by a column of ones appended to X.
    W0 = np.concatenate([np.stack([w[0] for w, _ in inits]), np.stack([b[0] for _, b in inits])[:, None]], axis=1)
    Ws = [W0] + [np.stack([w[j] for w, _ in inits]) for j in range(1, n_layers)]
    Ws = [torch.tensor(np.ascontiguousarray(W.transpose(0, 2, 1) if t else W)) for W, t in zip(Ws, trans)]
    bs = [torch.tensor(np.stack([b[j] for _, b in inits])) for j in range(1, n_layers)]
    params = Ws + bs
    grads = [torch.empty_like(p) for p in params]
    bufs = [torch.zeros_like(p) for p in params]
    in_idx = [np.flatnonzero(m) for m in masks]
    X1 = torch.cat([torch.as_tensor(X), torch.ones((n, 1))], dim=1)         # (n, d + 1)
    yt = torch.as_tensor(y)
    steps = int(-(-counts.max() // batch_size))
    # Per step s: model k's minibatch has nb[s, k] rows; its mean loss weighs them 1 / nb, padding rows 0.
    nb = np.clip(counts[None, :] - batch_size * np.arange(steps)[:, None], 0, batch_size)     # (steps, K)
    scales = torch.as_tensor((np.arange(batch_size) < nb[:, :, None]) / np.maximum(nb, 1)[:, :, None],
                             dtype=torch.float32)                                          # (steps, K, B)
    idles = [None if nb[s].all() else torch.as_tensor(nb[s] == 0) for s in range(steps)]
    loss_sum = torch.zeros(K, dtype=torch.float64)
    Xb = torch.empty((K, batch_size, d + 1), dtype=X1.dtype)
    Xb_rows = Xb.view(-1, d + 1)
    ws = _workspace(K, batch_size, sizes, trans, Ws, bs, Xb)
    cax = ws["cax"]
    scale_s = scales.unsqueeze(1 + cax).unbind(0)                       # per step, shaped like the logits

    with torch.no_grad():
        for epoch in range(epochs):
            last = epoch == epochs - 1
            order = np.zeros((K, steps, batch_size), dtype=np.int64)
            flat = order.reshape(K, -1)
            for k in range(K):
                flat[k, :counts[k]] = in_idx[k][rngs[k].permutation(counts[k])]
            order_t = torch.as_tensor(order.transpose(1, 0, 2).copy())          # (steps, K, B); padding = row 0
            y_s = yt[order_t].unsqueeze(1 + cax).unbind(0)
            rows_s = order_t.view(steps, -1).unbind(0)
            for s in range(steps):
                torch.index_select(X1, 0, rows_s[s], out=Xb_rows)
                ce = _sgd_step(params, grads, bufs, ws, y_s[s], scale_s[s], idles[s], lr=lr,
                               momentum=momentum, weight_decay=weight_decay, loss=last)
                if last:
                    loss_sum += ce
    n_batches = -(-counts // batch_size)
    Ws = [(W.transpose(1, 2) if t else W).contiguous().numpy() for W, t in zip(Ws, trans)]  # (K, fan_in, fan_out)
    weights = (Ws[0][:, :d].copy(), *(W.copy() for W in Ws[1:]))
    biases = (Ws[0][:, d].copy(), *(b.numpy().copy() for b in bs))
    return MLPFit(weights=weights, biases=biases,
                  n_steps=(epochs * n_batches).astype(np.int64),
                  final_loss=(loss_sum.numpy() / n_batches).astype(np.float64))
