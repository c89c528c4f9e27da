"""One model trained on every example while its training dynamics are recorded (for the memorization proxies).

:func:`train_with_dynamics` trains the MLP of :class:`memlens.train.MLPConfig` (the population's architecture,
initialization and SGD: ``torch.optim.SGD`` with momentum and weight decay on the mean minibatch cross-entropy)
on all rows, and records for every example, at every epoch, what the model said about it **when its minibatch was
processed, before the update** (Toneva et al. 2019, §2: the statistics come free with training): whether it was
classified correctly, its loss and its margin (true-class logit minus the largest other). It keeps a checkpoint at
the end of every epoch (TracIn, curvature). The cost is one model's training.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .._validation import check_array, check_int
from .configs import MLPConfig
from .torch_mlp import init_mlp

__all__ = ["TrainingDynamics", "train_with_dynamics"]


@dataclass(frozen=True, eq=False)
class TrainingDynamics:
    """What :func:`train_with_dynamics` recorded.

    Attributes
    ----------
    correct, loss, margin : ndarray, shape (n_epochs, n)
        Per epoch and example, at the moment its minibatch was processed (before the update).
    checkpoints : list of (weights, biases)
        The model at the end of each epoch; ``weights[l]`` is ``(fan_in, fan_out)``.
    lrs : ndarray, shape (n_epochs,)
        Learning rate over each epoch.
    seconds : float
        Training time (the unit of the proxies' cost).
    """

    correct: np.ndarray
    loss: np.ndarray
    margin: np.ndarray
    checkpoints: list
    lrs: np.ndarray
    seconds: float

    @property
    def final(self):
        """The trained model's ``(weights, biases)``."""
        return self.checkpoints[-1]


def train_with_dynamics(X, y, *, config: MLPConfig | None = None, n_classes: int | None = None,
                        seed: int = 0) -> TrainingDynamics:
    """Train one MLP on all rows of ``X`` and record its training dynamics (see the module docstring).

    Parameters
    ----------
    X : array, shape (n, d)
        Features, standardized as the population's trainer does.
    y : int array, shape (n,)
    config : MLPConfig, optional
    n_classes : int, optional
    seed : int
        Initialization and minibatch order (``numpy.random.default_rng(seed)``, as a population's model).
    """
    import torch  # deferred: torch is heavy

    config = MLPConfig() if config is None else config
    X = check_array("X", X, ndim=2, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    n, d = X.shape
    n_classes = int(y.max()) + 1 if n_classes is None else check_int("n_classes", n_classes, min_value=2)
    rng = np.random.default_rng(int(seed))
    Ws, bs = init_mlp(rng, [d, *[int(h) for h in config.hidden], n_classes])
    params = [torch.tensor(w, requires_grad=True) for w in Ws] + [torch.tensor(b, requires_grad=True) for b in bs]
    L = len(Ws)
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    E = config.epochs
    correct = np.zeros((E, n), dtype=bool)
    loss = np.zeros((E, n), dtype=np.float32)
    margin = np.zeros((E, n), dtype=np.float32)
    checkpoints = []
    t0 = time.perf_counter()
    for e in range(E):
        order = rng.permutation(n)
        for lo in range(0, n, config.batch_size):
            idx = order[lo:lo + config.batch_size]
            h = Xt[idx]
            for j in range(L):
                h = h @ params[j] + params[L + j]
                if j < L - 1:
                    h = torch.relu(h)
            ce = torch.nn.functional.cross_entropy(h, yt[idx], reduction="none")
            with torch.no_grad():
                true = h.gather(1, yt[idx, None]).squeeze(1)
                other = h.scatter(1, yt[idx, None], float("-inf")).max(1).values
                correct[e, idx] = (true > other).numpy()
                margin[e, idx] = (true - other).numpy()
                loss[e, idx] = ce.numpy()
            opt.zero_grad()
            ce.mean().backward()
            opt.step()
        checkpoints.append(([p.detach().numpy().copy() for p in params[:L]],
                            [p.detach().numpy().copy() for p in params[L:]]))
    seconds = time.perf_counter() - t0
    return TrainingDynamics(correct=correct, loss=loss, margin=margin, checkpoints=checkpoints,
                            lrs=np.full(E, config.lr), seconds=seconds)
