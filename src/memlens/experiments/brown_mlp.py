"""Brown et al. (STOC 2021, v2) experiment 2: a multilayer perceptron on cluster labeling, coordinate ascent.

One hidden layer of 1500 sigmoid units, then ``Linear(1500, N)`` and softmax (PyTorch's default
initialisation, no dropout), trained by full-batch SGD (Nesterov momentum 0.999, 2000 updates; lr 3e-4 for
the first 450 updates, then 0.3 × 3e-4) on the ``n = 500`` training points of the subcube cluster labeling
task (``N = n``, ``d = 2n``, calibrated ``ρ``; no upsampling). Every 50 updates it records the
classification errors; at checkpoints it attacks singletons by ordered coordinate ascent from a random
start (at most 10 epochs) on the goal label's log-probability. The paper attacks the first 3 singletons every
50 updates; this reproduction attacks a fixed random subset of ``n_attack`` singletons every
``attack_every`` updates and ``n_attack_final`` singletons of the final model, and reports the mean
recovery error with a 95% Student-t interval (all bits and free bits) and the bits memorized per singleton.
"""
from __future__ import annotations

from .brown_logreg import FULL as _LOGREG_FULL
from .brown_logreg import _config, _linear, _run

NAME = "brown-mlp"
DESCRIPTION = ("Brown et al. STOC'21, MLP figure: coordinate ascent on the goal log-probability of a "
               "1500-unit sigmoid network recovers singleton training points")

FULL = dict(_LOGREG_FULL, upsample=1, hidden=1500, steps=2000, lr=3e-4, lr_factor=0.3, lr_drop_at=450,
            momentum=0.999, record_every=50, attack_every=100, n_attack=8, n_attack_final=64, max_epochs=10)
FULL.pop("repeats")
QUICK = dict(FULL, n=100, d=200, n_clusters=100, n_test=200, hidden=300, steps=1000, attack_every=100,
             n_attack=8, n_attack_final=32)


def run(out_dir, *, quick: bool = False, seed: int = 0, n_attack: int | None = None,
        n_attack_final: int | None = None) -> dict:
    """Reproduce the MLP figure; writes ``mlp_figure.png``, ``results.json`` and ``README.md``.

    Parameters
    ----------
    out_dir : path
    quick : bool, keyword-only
        n = 100, d = 200, 300 hidden units, 1000 updates (under a minute).
    seed : int, keyword-only
    n_attack : int, optional, keyword-only
        Singletons attacked at each checkpoint (default 8; the paper attacks 3).
    n_attack_final : int, optional, keyword-only
        Singletons attacked on the final model (default 64, quick 32; at most all singletons).
    """
    import torch  # torch is heavy: imported on first use

    cfg = _config(QUICK if quick else FULL, n_attack=n_attack, n_attack_final=n_attack_final)

    def build_model(data, gen):
        # logits out; the loss and the attack's scorer apply the log-softmax
        return torch.nn.Sequential(_linear(data.d, cfg["hidden"], gen), torch.nn.Sigmoid(),
                                   _linear(cfg["hidden"], data.n_clusters, gen))

    def lr_at(t: int) -> float:  # the paper's LambdaLR, stepped once per update
        return cfg["lr"] * (1.0 if t < cfg["lr_drop_at"] else cfg["lr_factor"])

    return _run("coordinate", name=NAME, title="Multilayer Perceptron, Coordinate Attack", figure="mlp_figure",
                attack_label="Coordinate ascent", cfg=cfg, build_model=build_model, lr_at=lr_at,
                train_data=lambda data: (data.X, data.y), out_dir=out_dir, quick=quick, seed=seed, what=(
                    f"Model: MLP with {cfg['hidden']} sigmoid hidden units, full-batch SGD (Nesterov momentum "
                    f"{cfg['momentum']}, lr {cfg['lr']} then x{cfg['lr_factor']} from update "
                    f"{cfg['lr_drop_at']}), {cfg['steps']} updates, no upsampling. Attack: ordered coordinate "
                    f"ascent from a uniform random start, at most {cfg['max_epochs']} epochs, black box on the "
                    f"goal label's log-probability, on {cfg['n_attack']} singletons every "
                    f"{cfg['attack_every']} updates (the paper: 3 every 50) and on {cfg['n_attack_final']} "
                    "singletons of the final model. Classification errors every "
                    f"{cfg['record_every']} updates."))
