"""Memorization proxies beside the population's estimate: the ``proxies=True`` step of an audit (``--proxies``).

Each proxy is computed from one model trained on every example (a small fraction of the population's compute) and
compared with the population's Feldman–Zhang memorization (:func:`memlens.measures.proxies.proxy_agreement`):
Spearman correlation beside the noise ceiling, AUC and top-k precision for the memorized examples, top-1% overlap,
and its cost in seconds and in units of one population model's training. Pairwise attributions (the influence
function for logreg, TracIn for mlp) are compared with the population's high-influence pairs: the precision of
their top test–train pairs (same label, as many as the population found).

* ``--model logreg``: the full-data model (the population's objective and tolerance) and exact influence
  functions (:func:`memlens.measures.gradient_proxies.logistic_influence`): ``influence`` (first order),
  ``influence_newton`` (the one-step leave-one-out estimate, up to 5,000 training rows), ``loss`` of the full
  model; ``trak`` (:func:`memlens.measures.gradient_proxies.trak`, 4 models on random halves, trained vectorized).
* ``--model mlp``: one MLP of the population's architecture trained with its dynamics recorded
  (:func:`memlens.train.dynamics.train_with_dynamics`): ``forgetting``, ``first_learned``, ``cumulative_loss``,
  ``mean_margin``, ``tracin`` (every epoch's checkpoint), ``ekfac`` (final model), ``curvature`` (every fifth
  checkpoint and the last), ``loss`` of the final model; ``trak`` (4 MLPs on random halves, trained vectorized).
* ``--model cnn`` and a user's torch module (``PATH.py:FUNC``): one model trained on every example by the
  population's own trainer (same optimizer, schedule, augmentation), then proxies of the final model only (the
  module trainer records no per-epoch dynamics): ``loss``, ``margin`` (minus the true-class margin),
  ``grad_norm`` (the TracIn self-influence of the final checkpoint, per-example gradients by ``torch.func``),
  ``curvature`` (input-space, autograd) and ``ekfac`` (EK-FAC over the Linear and Conv2d layers,
  :func:`memlens.measures.gradient_proxies.module_ekfac_self_influence`). TRAK is not computed for modules.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .._validation import MemlensInputError
from ..data.masks import make_masks
from ..measures import gradient_proxies as gp
from ..measures import proxies as px
from ..train.configs import LogisticConfig, MLPConfig
from ..train.dynamics import train_with_dynamics
from ..train.logreg import fit_logistic
from ..train.population_training import standardized_features
from ..train.torch_mlp import fit_mlp
from ..train.torch_module import TorchModuleConfig, _forward_fn, fit_full_module, input_shape_of

__all__ = ["PROXY_MODELS", "AuditProxies", "audit_proxies", "check_proxies"]

#: Models whose audit can add proxies (and any torch module: --model PATH.py:FUNC).
PROXY_MODELS = ("logreg", "mlp", "cnn")
MEM_THRESHOLD = 0.25
NEWTON_MAX_ROWS = 5000
#: Pairwise attributions (test x train) are computed up to this many entries.
PAIRWISE_MAX = 20_000_000
#: TRAK's ensemble: models trained on random halves.
TRAK_MODELS = 4


def _trak(model: str, cfg, X, y, n_classes: int, seed: int):
    """TRAK self-attribution from TRAK_MODELS models on random halves (trained in one vectorized call)."""
    t0 = time.perf_counter()
    masks = make_masks(TRAK_MODELS, X.shape[0], p=0.5, seed=np.random.SeedSequence([seed, 0x7472616B]))
    if model == "logreg":
        fit = fit_logistic(X, y, masks.astype(np.float64), n_classes=n_classes, C=cfg.C, tol=cfg.tol,
                           max_iter=cfg.max_iter)
        models = []
        for k in range(TRAK_MODELS):
            W, b = fit.coef[k], fit.intercept[k]
            if W.shape[1] == 1:                          # binary: logits (0, z), whose softmax is the sigmoid
                W, b = np.hstack([np.zeros_like(W), W]), np.r_[0.0, b]
            models.append(([W], [b]))
    else:
        fit = fit_mlp(X.astype(np.float32), y, masks, seeds=np.arange(TRAK_MODELS) + seed, n_classes=n_classes,
                      hidden=cfg.hidden, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                      momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        models = [([w[k] for w in fit.weights], [b[k] for b in fit.biases]) for k in range(TRAK_MODELS)]
    res = gp.trak(models, X.astype(np.float32), y, seed=seed)
    return res.self_influence, time.perf_counter() - t0


@dataclass(frozen=True, eq=False)
class AuditProxies:
    """Proxy scores of every training example and their agreement with memorization.

    Attributes
    ----------
    scores : dict of str to ndarray (n_train,)
        ``proxy_<name>`` columns of ``examples.csv``; higher = more memorized.
    summary : dict
        ``summary.json``'s ``proxies`` block: per proxy its agreement, seconds and cost in model trainings; the
        noise ceiling; what the proxies were computed from.
    """

    scores: Mapping[str, np.ndarray]
    summary: Mapping[str, Any]


def check_proxies(proxies, model: str, dp, config=None) -> bool:
    if not isinstance(proxies, (bool, np.bool_)):
        raise MemlensInputError(f"proxies must be True or False; got {proxies!r}")
    if proxies and model not in PROXY_MODELS and not isinstance(config, TorchModuleConfig):
        raise MemlensInputError(f"proxies are computed for --model {', '.join(PROXY_MODELS)} or a torch module "
                                f"(PATH.py:FUNC); got model {model!r}: drop --proxies", param="proxies")
    if proxies and dp is not None:
        raise MemlensInputError("proxies describe non-private training; drop --proxies or --dp-epsilon",
                                param="proxies")
    return bool(proxies)


def _logreg(ds, cfg: LogisticConfig, X, X_test=None):
    t0 = time.perf_counter()
    full = fit_logistic(X, ds.y_train, np.ones((1, ds.n_train)), n_classes=ds.n_classes, C=cfg.C, tol=cfg.tol,
                        max_iter=cfg.max_iter)
    t_fit = time.perf_counter() - t0
    newton = ds.n_train <= NEWTON_MAX_ROWS
    inf = gp.logistic_influence(full.coef[0], full.intercept[0], X, ds.y_train, C=cfg.C, X_test=X_test,
                                y_test=None if X_test is None else ds.y_test, newton=newton)
    t = inf.seconds
    scores = {"influence": inf.self_influence, "loss": inf.loss}
    secs = {"influence": t_fit + t["hessian_and_self"] + t["pairwise"], "loss": t_fit}
    if newton:                               # the one-step estimate reuses the Hessian the first order formed
        scores["influence_newton"] = inf.newton
        secs["influence_newton"] = t_fit + t["hessian_and_self"] + t["newton"]
    return scores, secs, {"from": "the full-data logistic regression (C, tol of the population)",
                          "seconds_full_fit": t_fit}, ({"influence": inf.pairwise} if X_test is not None else {})


def _mlp(ds, cfg: MLPConfig, X, seed: int, X_test=None):
    dyn = train_with_dynamics(X.astype(np.float32), ds.y_train, config=cfg, n_classes=ds.n_classes, seed=seed)
    t = dyn.seconds
    scores = {"forgetting": px.forgetting_events(dyn.correct), "first_learned": px.first_learned_epoch(dyn.correct),
              "cumulative_loss": px.cumulative_loss(dyn.loss), "mean_margin": px.mean_margin_proxy(dyn.margin),
              "loss": dyn.loss[-1].astype(np.float64)}
    secs = {k: t for k in scores}
    Xf, y = X.astype(np.float32), ds.y_train
    for name, fn in (("tracin", lambda: gp.tracin_self_influence(dyn.checkpoints, dyn.lrs, Xf, y)),
                     ("ekfac", lambda: gp.ekfac_self_influence(*dyn.final, Xf, y)),
                     ("curvature", lambda: gp.input_curvature(dyn.checkpoints[4::5] or dyn.checkpoints[-1:], Xf,
                                                              y, seed=seed))):
        t0 = time.perf_counter()
        scores[name] = fn()
        secs[name] = t + time.perf_counter() - t0
    pair = {}
    if X_test is not None:
        pair["tracin"] = gp.tracin_pairwise(dyn.checkpoints, dyn.lrs, Xf, y, X_test.astype(np.float32), ds.y_test)
    return scores, secs, {"from": f"one MLP trained on every example ({cfg.epochs} epochs, its dynamics recorded)",
                          "seconds_dynamics_training": t}, pair


def _module(ds, cfg: TorchModuleConfig, seed: int):
    """Final-model proxies of a torch module trained on every example by the population's trainer."""
    X, _ = standardized_features(ds, standardize=cfg.standardize, dtype=np.float32)
    shape = input_shape_of(ds)
    t0 = time.perf_counter()
    fit, base = fit_full_module(cfg, X, ds.y_train, n_classes=ds.n_classes, input_shape=shape, seed=seed)
    t_fit = time.perf_counter() - t0
    logits = fit.logits(X)[0]
    y = ds.y_train
    z = logits - logits.max(1, keepdims=True)
    loss = -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(1)))
    other = np.where(np.eye(ds.n_classes, dtype=bool)[y], -np.inf, logits).max(1)
    scores = {"loss": loss, "margin": other - logits[np.arange(len(y)), y]}
    secs = {"loss": t_fit, "margin": t_fit}
    params = {k: v.detach() for k, v in base.named_parameters()}
    buffers = {k: v.detach() for k, v in base.named_buffers()}
    base.eval()
    fwd = _forward_fn(base)
    Xs = X.reshape(-1, *shape)
    try:
        t1 = time.perf_counter()
        scores["grad_norm"] = cfg.lr * gp.functional_grad_sqnorm(fwd, params, buffers, Xs, y)
        secs["grad_norm"] = t_fit + time.perf_counter() - t1
        t1 = time.perf_counter()
        scores["curvature"] = gp.functional_input_curvature(lambda p, b, x: fwd(p, b, x), params, buffers, Xs, y,
                                                            seed=seed)
        secs["curvature"] = t_fit + time.perf_counter() - t1
        t1 = time.perf_counter()
        scores["ekfac"] = gp.module_ekfac_self_influence(base, Xs, y)
        secs["ekfac"] = t_fit + time.perf_counter() - t1
    finally:
        base.train()
    return scores, secs, {"from": "one module trained on every example by the population's trainer (final model)",
                          "seconds_full_fit": t_fit}, {}


def audit_proxies(ds, *, model: str, model_config: Mapping[str, Any], memorization, pop, seed: int = 0,
                  population_seconds: float | None = None, pairs=None) -> AuditProxies:
    """Compute the proxies of ``model`` on ``ds`` and compare them with ``memorization`` (see the module)."""
    if isinstance(model_config, TorchModuleConfig):
        scores, secs, info, pairwise = _module(ds, model_config, seed)
        return _summarize(scores, secs, info, pairwise, memorization, pop, seed, population_seconds, pairs, ds)
    if model == "logreg":
        cfg = LogisticConfig(**{k: v for k, v in model_config.items() if k in LogisticConfig.__dataclass_fields__})
    else:
        cfg = MLPConfig(**{k: (tuple(v) if k == "hidden" else v) for k, v in model_config.items()
                           if k in MLPConfig.__dataclass_fields__})
    X, X_test = standardized_features(ds, standardize=getattr(cfg, "standardize", True))
    if pairs is None or ds.n_test * ds.n_train > PAIRWISE_MAX:
        X_test = None
    scores, secs, info, pairwise = _logreg(ds, cfg, X, X_test) if model == "logreg" else \
        _mlp(ds, cfg, X, seed, X_test)
    scores["trak"], secs["trak"] = _trak(model, cfg, X, ds.y_train, ds.n_classes, seed)
    return _summarize(scores, secs, info, pairwise, memorization, pop, seed, population_seconds, pairs, ds)


def _summarize(scores, secs, info, pairwise, memorization, pop, seed, population_seconds, pairs, ds) -> AuditProxies:
    per_model = None
    if population_seconds:
        per_model = population_seconds / pop.n_models
    ceiling = px.noise_ceiling(pop.masks, pop.signal("train", "correct"), seed=seed,
                               memorization=memorization.scores)
    table = {}
    for name, v in scores.items():
        a = px.proxy_agreement(v, memorization.scores, threshold=MEM_THRESHOLD)
        a["seconds"] = secs[name]
        a["cost_models"] = secs[name] / per_model if per_model else None
        a["cost_fraction_of_population"] = secs[name] / population_seconds if population_seconds else None
        table[name] = a
    best = max(table, key=lambda k: -np.inf if table[k]["top_k_precision"] is None else table[k]["top_k_precision"])
    summary = {**info, "threshold": MEM_THRESHOLD, "noise_ceiling": ceiling, "table": table, "best": best,
               "population_seconds": population_seconds}
    if pairwise:
        summary["pairs"] = {"n_pairs": len(pairs), "precision": {
            name: px.pair_precision(tau, pairs.train_index, pairs.test_index, train_labels=ds.y_train,
                                    test_labels=ds.y_test) for name, tau in pairwise.items()}}
    return AuditProxies(scores={k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}, summary=summary)
