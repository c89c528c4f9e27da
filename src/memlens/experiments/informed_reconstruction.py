"""Reconstruction by an informed adversary (Balle, Cherubin & Hayes 2022), against memorization and against DP ε.

The adversary knows every training example but one, the objective and the released model; for L2 logistic
regression the model's optimality conditions give the missing example exactly
(:func:`memlens.attacks.informed.reconstruct_logistic_all` reconstructs every example in turn, in one pass). The
released model is then made differentially private by **output perturbation** (Chaudhuri et al. 2011): the exact
minimizer plus Gaussian noise calibrated by the exact Gaussian mechanism to the objective's add/remove sensitivity
(:mod:`memlens.privacy.output_perturbation`; every parameter penalized, rows of norm ≤ √2, so ``Δ = 2C``).

Measured on scikit-learn's digits (1,347 training images, pixels in [0, 1] scaled by 1/8 so ``‖x‖ ≤ 1``, plus a
constant feature), for a grid of ε (δ = 1e-5) and several noise draws per ε:

* the relative reconstruction error ``‖x̂ − x‖/‖x‖`` of every training example and whether its label is recovered;
* the same against the *prior* — the mean image of the example's class over the other examples, what an adversary
  knowing only the data distribution would guess — as the fraction of examples reconstructed better than it;
* all of it by Feldman–Zhang memorization bucket (a population of logistic regressions of the same C on random
  70% subsets; its intercept is unpenalized, a small difference from the released model, stated in results.json),
  and the Spearman correlation of error with memorization.

The calibration is worst-case: the reconstruction fails at any ε a deployment would use, which is the point of Balle
et al.'s DP bound; the grid extends to astronomically large ε to show where it starts to succeed and which examples go
first.

**Neural networks** (part 2, Balle et al. §5): no closed form, so the adversary trains shadow MLPs on its 500 known
digits plus one candidate each and learns a reconstructor from parameters to candidate
(:func:`memlens.attacks.informed.fit_reconstructor`, a ridge map: our simplification of their network); the target
models saw held-out candidates. Settings: SGD with the training randomness known to the adversary (the same seed as
its shadows) or unknown (a seed of its own), and full-batch DP gradient descent with a public initialization and
secret noise at several ε (exact GDP composition, :func:`memlens.privacy.output_perturbation.full_batch_noise_multiplier`).
Reported: the median relative error, how often the reconstruction's nearest candidate is the true one, and the error
against the candidates' Feldman–Zhang memorization (a population trained on the known set plus half the candidates).

Writes ``reconstruction_vs_epsilon.png``, ``reconstructor_mlp.png``, ``results.json`` and ``README.md``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .._random import check_seed
from .._threads import limit_threads
from ..attacks.informed import fit_reconstructor, flatten_parameters, reconstruct_logistic_all
from ..data import from_arrays, load_dataset, make_masks
from ..measures import memorization
from ..measures.feldman_zhang import memorization_from_arrays
from ..privacy.output_perturbation import (
    full_batch_noise_multiplier,
    gaussian_mechanism_sigma,
    logistic_l2_sensitivity,
)
from ..train import fit_dp_sgd, fit_mlp, make_model_config, train_population
from ..train.torch_mlp import mlp_logits
from ._common import prepare_out_dir, save_figure, step, write_readme, write_results

NAME = "informed-reconstruction"
DESCRIPTION = ("Balle et al. 2022 informed adversary: exact reconstruction of training examples from an L2 logistic "
               "regression, against DP epsilon (output perturbation) and Feldman-Zhang memorization")

C = 10.0
DELTA = 1e-5
#: An example counts as reconstructed when its relative error is at most this (our threshold: a tenth of the image's
#: norm; the prior guess is at 0.40 median). "Better than the prior" is reported too, but it favours atypical examples
#: (far from their class mean) even for a reconstruction that carries no information.
RECONSTRUCTED = 0.1
MEM_BUCKETS = (("mem < 0.05", -np.inf, 0.05), ("0.05 ≤ mem < 0.25", 0.05, 0.25), ("mem ≥ 0.25", 0.25, np.inf))
QUICK = {"n_models": 64, "releases": 2, "epsilons": [1.0, 1e2, 1e4, 1e6, 1e8, 1e10, 1e12, math.inf],
         "mlp": {"known": 500, "shadows": 200, "targets": 40, "steps": 20, "epochs": 20, "hidden": 64,
                 "epsilons": [math.inf, 100.0], "n_models_memorization": 16}}
FULL = {"n_models": 256, "releases": 5, "epsilons": [10.0 ** k for k in range(13)] + [math.inf],
        "mlp": {"known": 500, "shadows": 800, "targets": 150, "steps": 60, "epochs": 20, "hidden": 64,
                "epsilons": [math.inf, 1000.0, 100.0, 10.0], "n_models_memorization": 128}}
#: DP gradient descent of part 2: full batches, clipping norm 1, learning rate and momentum (no tuning per ε).
DPGD = {"lr": 2.0, "momentum": 0.9, "max_grad_norm": 1.0}


def _features(ds):
    """``[x / 8, 1]``: digits pixels are in [0, 1], so ``‖x/8‖ ≤ 1`` and ``‖x̃‖ ≤ √2`` for every possible image (a
    bound that holds a priori, as DP needs, not one read off the data)."""
    bound = math.sqrt(ds.n_features)
    return (np.hstack([ds.X_train / bound, np.ones((ds.n_train, 1))]),
            np.hstack([ds.X_test / bound, np.ones((ds.n_test, 1))]))


def _prior_error(X, y) -> np.ndarray:
    """Relative error of guessing each example as the mean of the *other* examples of its class."""
    err = np.empty(X.shape[0])
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        total = X[idx].sum(0)
        loo = (total[None, :] - X[idx]) / max(idx.size - 1, 1)
        err[idx] = np.linalg.norm(loo - X[idx], axis=1) / np.linalg.norm(X[idx], axis=1)
    return err


def _summarize(err, lab_ok, prior, mem) -> dict:
    """Per-ε numbers: errors ``(releases, n)``, label hits ``(releases, n)``."""
    better = err < prior[None, :]
    med = np.median(err, axis=0)
    finite = np.isfinite(mem) & np.isfinite(med)
    rho = float(stats.spearmanr(med[finite], mem[finite])[0]) if finite.sum() > 2 else math.nan
    out = {"median_error": float(np.nanmedian(err)), "label_accuracy": float(np.mean(lab_ok)),
           "fraction_better_than_prior": float(np.mean(better)), "fraction_reconstructed": float(np.mean(err <= RECONSTRUCTED)),
           "spearman_error_vs_memorization": rho, "by_memorization": {}}
    for name, lo, hi in MEM_BUCKETS:
        sel = (mem >= lo) & (mem < hi)
        out["by_memorization"][name] = {
            "n": int(sel.sum()),
            "median_error": float(np.nanmedian(err[:, sel])) if sel.any() else None,
            "fraction_better_than_prior": float(np.mean(better[:, sel])) if sel.any() else None,
            "fraction_reconstructed": float(np.mean(err[:, sel] <= RECONSTRUCTED)) if sel.any() else None,
            "label_accuracy": float(np.mean(lab_ok[:, sel])) if sel.any() else None}
    return out


def _figure(results):
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    rows = results["by_epsilon"]
    eps = np.array([r["epsilon"] for r in rows], dtype=float)
    finite = np.isfinite(eps)
    x = np.where(finite, eps, eps[finite].max() * 100 if finite.any() else 1.0)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = ("#4c72b0", "#dd8452", "#c44e52")
    for (name, _, _), col in zip(MEM_BUCKETS, colors):
        me = [r["by_memorization"][name]["median_error"] for r in rows]
        fb = [r["by_memorization"][name]["fraction_reconstructed"] for r in rows]
        n = rows[0]["by_memorization"][name]["n"]
        a.loglog(x, [np.nan if v is None else max(v, 1e-8) for v in me], "o-", color=col, label=f"{name} ({n})")
        b.semilogx(x, [np.nan if v is None else v for v in fb], "o-", color=col, label=f"{name} ({n})")
    a.axhline(results["prior_median_error"], color="#888888", ls="--", label="prior guess (class mean)")
    for ax in (a, b):
        ax.set_xlabel("ε of the release (δ = 1e-5); right-most point: no noise")
    a.set_ylabel("median relative error ‖x̂ − x‖/‖x‖")
    a.set_title("Informed reconstruction error")
    b.set_ylabel(f"fraction reconstructed (relative error ≤ {RECONSTRUCTED:g})")
    b.set_title("Which examples are exposed first")
    a.legend(frameon=False, fontsize=8)
    b.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def _mlp_part(cfg: dict, seed: int) -> dict:
    """Part 2: the reconstructor against shadow-trained MLPs (module docstring)."""
    ds = load_dataset("digits")
    X = np.vstack([ds.X_train, ds.X_test]).astype(np.float32)
    y = np.concatenate([ds.y_train, ds.y_test]).astype(np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 26]))
    perm = rng.permutation(X.shape[0])
    k, S, T = cfg["known"], cfg["shadows"], cfg["targets"]
    n_shadow_pool = (X.shape[0] - k) * 3 // 4
    rows = perm                                           # known rows first, then the shadow and target pools
    Xr, yr = X[rows], y[rows]
    pool_shadow = np.arange(k, k + n_shadow_pool)
    pool_target = np.arange(k + n_shadow_pool, X.shape[0])
    cand = np.concatenate([rng.choice(pool_shadow, S), rng.choice(pool_target, T)])
    masks = np.zeros((S + T, X.shape[0]), dtype=bool)
    masks[:, :k] = True
    masks[np.arange(S + T), cand] = True
    Z = Xr[cand].astype(np.float64)
    prior = Z[:S].mean(0)
    prior_err = np.linalg.norm(prior - Z[S:], axis=1) / np.linalg.norm(Z[S:], axis=1)
    # memorization of the target candidates: known set IN, each candidate IN for a random half of the models
    m = cfg["n_models_memorization"]
    mmask = np.zeros((m, X.shape[0]), dtype=bool)
    mmask[:, :k] = True
    mmask[:, pool_target] = np.random.default_rng(np.random.SeedSequence([seed, 27])).random((m, pool_target.size)) < .5
    mfit = fit_mlp(Xr, yr, mmask, seeds=np.arange(m) + 1000 * (seed + 1), n_classes=10, hidden=(cfg["hidden"],),
                   epochs=cfg["epochs"])
    correct = (mlp_logits(mfit.weights, mfit.biases, Xr[pool_target]).argmax(2) == yr[pool_target]).astype(float)
    mem_pool = memorization_from_arrays(mmask[:, pool_target], correct).scores
    mem = np.full(X.shape[0], np.nan)
    mem[pool_target] = mem_pool
    settings = [("SGD, training randomness known", "sgd", np.zeros(S + T, dtype=np.int64), None),
                ("SGD, training randomness unknown", "sgd", np.arange(S + T) + 1, None)]
    settings += [(f"DP-GD, ε = {'∞ (no noise)' if math.isinf(e) else f'{e:g}'}", "dpgd", np.arange(S + T) + 1, e)
                 for e in cfg["epsilons"]]
    out = []
    for name, kind, seeds, eps in settings:
        if kind == "sgd":
            fit = fit_mlp(Xr, yr, masks, seeds=seeds, n_classes=10, hidden=(cfg["hidden"],), epochs=cfg["epochs"])
            z = None
        else:
            z = 0.0 if math.isinf(eps) else full_batch_noise_multiplier(epsilon=eps, delta=DELTA, steps=cfg["steps"])
            fit = fit_dp_sgd(Xr, yr, masks, seeds=seeds, init_seeds=np.zeros(S + T, dtype=np.int64), n_classes=10,
                             hidden=(cfg["hidden"],), steps=cfg["steps"], sample_rate=1.0, noise_multiplier=z,
                             **DPGD)
        P = flatten_parameters(fit.weights, fit.biases)
        rec = fit_reconstructor(P[:S], Z[:S], seed=seed)
        pred = rec.predict(P[S:])
        err = np.linalg.norm(pred - Z[S:], axis=1) / np.linalg.norm(Z[S:], axis=1)
        d2 = ((pred[:, None, :] - Xr[pool_target][None].astype(np.float64)) ** 2).sum(-1)
        identified = pool_target[d2.argmin(1)] == cand[S:]
        targets = mlp_logits([w[S:] for w in fit.weights], [b[S:] for b in fit.biases], Xr[pool_target])
        acc = float(np.mean(targets.argmax(2) == yr[pool_target]))
        mt = mem[cand[S:]]
        ok = np.isfinite(mt)
        rho = float(stats.spearmanr(err[ok], mt[ok])[0]) if ok.sum() > 2 else math.nan
        hi = ok & (mt >= 0.25)
        out.append({"setting": name, "epsilon": None if eps is None else ("inf" if math.isinf(eps) else eps),
                    "noise_multiplier": z, "median_error": float(np.median(err)),
                    "identified": float(np.mean(identified)),
                    "better_than_prior": float(np.mean(err < prior_err)), "target_test_accuracy": acc,
                    "reconstructor_alpha": rec.alpha, "spearman_error_vs_memorization": rho,
                    "median_error_memorized": float(np.median(err[hi])) if hi.any() else None,
                    "median_error_not_memorized": float(np.median(err[ok & ~hi])) if (ok & ~hi).any() else None,
                    "n_memorized_targets": int(hi.sum())})
    return {"config": {**cfg, "dp_gd": DPGD, "delta": DELTA, "epsilons": [str(e) for e in cfg["epsilons"]]},
            "prior_median_error": float(np.median(prior_err)), "chance_identification": 1.0 / pool_target.size,
            "settings": out}


def _mlp_figure(part):
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    rows = part["settings"]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    names = [r["setting"] for r in rows]
    ys = np.arange(len(rows))
    ax.barh(ys - 0.2, [r["median_error"] for r in rows], height=0.4, color="#4c72b0", label="median relative error")
    ax.barh(ys + 0.2, [r["identified"] for r in rows], height=0.4, color="#c44e52",
            label="nearest candidate is the true one")
    ax.axvline(part["prior_median_error"], color="#888888", ls="--", label="prior guess (mean candidate)")
    ax.set_yticks(ys, names)
    ax.invert_yaxis()
    ax.set_xlabel("fraction")
    ax.set_title("Reconstructor trained on shadow MLPs (digits)")
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def _z(z) -> str:
    return "–" if z is None else f"{z:.3g}"


def _mlp_text(part) -> str:
    c = part["config"]
    lines = "\n".join(
        f"| {r['setting']} | {_z(r['noise_multiplier'])} | "
        f"{r['median_error']:.3f} | {r['identified']:.2f} | {r['better_than_prior']:.2f} | "
        f"{r['target_test_accuracy']:.3f} | {r['spearman_error_vs_memorization']:.2f} |" for r in part["settings"])
    return f"""{c['shadows']} shadow MLPs ({c['hidden']} hidden units) on {c['known']} known digits plus one candidate each;
{c['targets']} target models on held-out candidates; the prior guess (the mean candidate) has median error
{part['prior_median_error']:.3f}; chance identification {part['chance_identification']:.4f}. DP-GD: {c['steps']}
full-batch steps, clipping norm 1, public initialization, secret noise.

| setting | noise multiplier | median error | nearest candidate right | better than prior | test accuracy | Spearman(error, memorization) |
|---|---|---|---|---|---|---|
{lines}

Figure: `reconstructor_mlp.png`."""


def _table_row(r) -> str:
    eps = "∞ (no noise)" if math.isinf(r["epsilon"]) else f"{r['epsilon']:.0e}"
    cells = ["–" if r["by_memorization"][b]["fraction_reconstructed"] is None
             else f"{r['by_memorization'][b]['fraction_reconstructed']:.2f}" for b, _, _ in MEM_BUCKETS]
    return (f"| {eps} | {r['sigma']:.3g} | {r['median_error']:.3g} | {r['fraction_reconstructed']:.2f} | "
            f"{r['label_accuracy']:.2f} | {' | '.join(cells)} | {r['spearman_error_vs_memorization']:.2f} |")


def run(out_dir, *, quick: bool = False, seed: int = 0) -> dict:
    """Reconstruct every digits training example from the released model at each ε (quick: 64 models for the
    memorization estimate, 2 noise draws per ε)."""
    from sklearn.linear_model import LogisticRegression  # sklearn is heavy: imported only to run

    check_seed(seed)
    cfg = QUICK if quick else FULL
    out = prepare_out_dir(out_dir)
    ds = load_dataset("digits")
    Xtr, Xte = _features(ds)
    y = np.asarray(ds.y_train, dtype=np.int64)
    X = Xtr[:, :-1]
    with step("fitting the released model (exact minimizer, every parameter penalized)"), limit_threads(1):
        model = LogisticRegression(C=C, fit_intercept=False, tol=1e-12, max_iter=50000).fit(Xtr, y)
        W = model.coef_.T.copy()                                   # (d + 1, classes): last row the intercept
    with step(f"memorization from {cfg['n_models']} models on random 70% subsets"), limit_threads(1):
        data = from_arrays(Xtr, y, Xte, ds.y_test, name="digits-scaled")
        pop = train_population(data, model=make_model_config("logreg", C=C, standardize=False),
                               masks=make_masks(cfg["n_models"], ds.n_train, p=0.7, seed=seed), seed=seed)
        mem = memorization(pop).scores
    prior = _prior_error(X, y)
    sensitivity = logistic_l2_sensitivity(C=C, feature_norm=math.sqrt(2.0))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 25]))
    rows = []
    with step(f"reconstructing all {ds.n_train:,} examples at {len(cfg['epsilons'])} values of ε"):
        for eps in cfg["epsilons"]:
            sigma = 0.0 if math.isinf(eps) else gaussian_mechanism_sigma(epsilon=eps, delta=DELTA,
                                                                         sensitivity=sensitivity)
            releases = 1 if sigma == 0 else cfg["releases"]
            err = np.empty((releases, ds.n_train))
            lab = np.empty((releases, ds.n_train), dtype=bool)
            for r in range(releases):
                Wn = W + sigma * rng.standard_normal(W.shape)
                xs, labels = reconstruct_logistic_all(Wn[:-1], Wn[-1], X, y, C=C, penalize_intercept=True)
                err[r] = np.linalg.norm(xs - X, axis=1) / np.linalg.norm(X, axis=1)
                lab[r] = labels == y
            rows.append({"epsilon": eps, "sigma": sigma, "releases": releases,
                         **_summarize(err, lab, prior, mem)})
    exact = rows[-1] if math.isinf(rows[-1]["epsilon"]) else None
    results = {
        "config": {"dataset": "digits", "C": C, "delta": DELTA, "features": "pixels / 8 (norm <= 1) and a constant 1",
                   "sensitivity": sensitivity, "n_models": cfg["n_models"], "releases_per_epsilon": cfg["releases"],
                   "seed": seed, "released_model": "scikit-learn LogisticRegression(C, fit_intercept=False, "
                   "tol=1e-12): every parameter penalized",
                   "memorization_model": "memlens logreg of the same C on the same features (its intercept is "
                                         "unpenalized), random 70% subsets"},
        "n_train": ds.n_train, "n_memorized": int(np.sum(mem >= 0.25)),
        "train_accuracy": float(model.score(Xtr, y)), "test_accuracy": float(model.score(Xte, ds.y_test)),
        "prior_median_error": float(np.median(prior)),
        "exact_median_error": None if exact is None else float(exact["median_error"]),
        "by_epsilon": [{**r, "epsilon": ("inf" if math.isinf(r["epsilon"]) else r["epsilon"])} for r in rows],
        "paper": "Balle, Cherubin & Hayes 2022: exact reconstruction from GLMs by an informed adversary; DP bounds "
                 "its success (their §5); no number of theirs is reproduced here",
    }
    with step(f"part 2: a reconstructor from {cfg['mlp']['shadows']} shadow MLPs, {len(cfg['mlp']['epsilons']) + 2} "
              "settings"), limit_threads(1):
        results["mlp"] = _mlp_part(cfg["mlp"], seed)
    save_figure(_figure({**results, "by_epsilon": rows}), out, "reconstruction_vs_epsilon")
    save_figure(_mlp_figure(results["mlp"]), out, "reconstructor_mlp")
    write_results(out, results)
    table = "\n".join(_table_row(r) for r in rows)
    mlp_text = _mlp_text(results["mlp"])
    buckets = " | ".join(f"reconstructed, {b} (n={rows[0]['by_memorization'][b]['n']})" for b, _, _ in MEM_BUCKETS)
    write_readme(out, f"""# {NAME}

{DESCRIPTION}.

Released model: L2 logistic regression (C = {C:g}) on all {ds.n_train:,} digits training images (train accuracy
{results['train_accuracy']:.3f}, test {results['test_accuracy']:.3f}); DP by output perturbation with the exact
Gaussian mechanism, sensitivity {sensitivity:g}, δ = {DELTA:g}. Every example is reconstructed by the adversary who knows
all the others; the prior (the class mean of the others) has median relative error {results['prior_median_error']:.3f}.
Memorization: {cfg['n_models']} models, {results['n_memorized']} examples with memorization ≥ 0.25.

| ε | σ | median error | reconstructed (error ≤ {RECONSTRUCTED:g}) | label recovered | {buckets} | Spearman(error, mem) |
|---|---|---|---|---|---|---|---|---|
{table}

Without noise the reconstruction is exact up to the solver's tolerance. Under output perturbation no example is
reconstructed at any ε a deployment would use; as ε grows the examples the model memorizes are reconstructed
first (negative Spearman: more memorized, smaller error), since a hard example's large residual ``p − e_y`` carries
its features above the noise. Figure: `reconstruction_vs_epsilon.png`.

## Part 2: MLPs, a reconstructor trained on shadow models

{mlp_text}
""")
    return results
