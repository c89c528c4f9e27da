"""Reproduction: Feldman (STOC 2020), *Does Learning Require Memorization? A Short Tale about a Long Tail*.

Four parts, each with the theory beside the measurement (docs/theory.md, "Label memorization"):

1. the paper's Zipf numbers (the table of docs/theory.md) recomputed from the closed forms, with the paper's values;
2. simulated learners on the discrete model (ignore singletons, γ-memorization-limited, ε-label-private by
   randomized response) against the cost-of-not-fitting bounds, over a sweep of n, N and the Zipf exponent;
3. the two-subgroup disparate-cost examples, closed form and simulation;
4. real learners on a long-tailed mixture of Gaussian subpopulations: populations of logistic-regression and
   MLP models, Feldman–Zhang memorization by subpopulation frequency, and an L2 regularization sweep that
   limits memorization, with the accuracy lost on rare subpopulations beside Thm 2.3's prediction.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .._random import as_generator
from .._threads import limit_threads
from .._validation import MemlensWarning
from ..data import make_masks
from ..measures import memorization
from ..tasks import long_tail as lt
from ..train import make_model_config, train_population
from ._common import prepare_out_dir, save_figure, step, write_readme, write_results

NAME = "feldman-long-tail"
DESCRIPTION = ("Feldman 2020 long tail: Zipf numbers, simulated learners vs the cost-of-not-fitting bound, "
               "subgroup costs, memorization of rare subpopulations by real models")

M = 10                      # classes, as in the paper's examples
GAMMA = 0.5                 # memorization limit of the paper's examples
EPSILON = math.log(6)       # label-DP level whose Thm 4.8 bound equals gamma = 0.5 for 10 classes

# docs/theory.md, "The long tail in numbers": (N, n) and the paper's values (None where the paper gives none)
PAPER_ROWS = [
    (50_000, 50_000, {"n_tau1": 0.47, "singleton_fraction": 0.17, "opt": 0.15, "cost_not_fitting": 0.07}),
    (5_000, 50_000, {"cost_limited": 0.015}),
    (5_000, 10_000, {"cost_limited": 0.035}),
    (25_000, 50_000, {"cost_limited": 0.031}),
]
LEARNERS = ("ignore singletons", f"γ-limited (γ={GAMMA})", "label-private (RR, ε=ln 6)")


# ------------------------------------------------------------------------------------------ 1. table
def paper_table(*, quick: bool, seed: int) -> list[dict]:
    rows = []
    for j, (N, n, paper) in enumerate(PAPER_ROWS):
        pi = lt.zipf_prior(N)
        r = lt.long_tail_numbers(pi, n=n, n_classes=M, gamma=GAMMA).as_dict()
        # τ₁ under the paper's D_π^X, from 10 independent batches of the exact marginal (mean ± standard error)
        rng = as_generator(np.random.SeedSequence([seed, 7, j]))
        per_batch = max(1, (2 if quick else 40) * 50_000 // N)
        samples = [lt.prior_marginal_sample(pi, n_draws=per_batch, seed=rng) for _ in range(10)]
        batch = [n * lt.tau_from_marginal(a, n=n) for a in samples]
        r["n_tau1_exact_prior"] = n * lt.tau_from_marginal(np.concatenate(samples), n=n)  # pooled ratio
        r["n_tau1_exact_prior_se"] = float(np.std(batch, ddof=1) / np.sqrt(len(batch)))
        r["singleton_mass"] = r["tau1"] * r["expected_singletons"]
        r["alpha_min_n"] = float(pi[-1] * n)
        r["paper"] = paper
        rows.append(r)
    return rows


# ---------------------------------------------------------------------------------- 2. simulated sweep
class _TauCache:
    """τ_ℓ for one (π̄^N, n), computed once per ℓ; ``alpha`` is a sample of π̄^N (uniform weights)."""

    def __init__(self, alpha, n):
        self.alpha, self.n, self.values = alpha, n, {}

    def __call__(self, ells):
        need = np.array(sorted(set(int(e) for e in ells) - set(self.values)), dtype=np.int64)
        if need.size:
            self.values.update(zip(need.tolist(), np.atleast_1d(lt.tau_from_marginal(self.alpha, n=self.n,
                                                                                     ell=need))))
        return np.array([self.values[int(e)] for e in ells])


def _learner_probas(s, *, rng):
    rr = lt.randomized_response(s.labels, epsilon=EPSILON, n_classes=M, seed=rng)
    return {LEARNERS[0]: lt.fit_seen_at_least(s.votes, min_count=2),
            LEARNERS[1]: lt.memorization_limited(s.votes, gamma=GAMMA),
            LEARNERS[2]: lt.memorize_all(s.with_labels(rr).votes)}


def simulate_setting(pi, n, *, reps, seed, model="permuted") -> dict:
    """Mean excess error over ``opt`` of each simulated learner, with Thm 2.3's right-hand side and the bounds.

    ``model="permuted"`` (default): D is a random permutation of the Zipf list, so π̄^N is exactly the uniform
    distribution over the list that the closed forms use, and bound and simulation can be compared without
    approximation. Under ``model="prior"`` (the paper's D_π^X) the closed forms are off by the gap between the
    exact π̄^N and the list (``paper_table`` measures it).
    """
    rng = as_generator(seed)
    alpha = pi / pi.sum()
    taus = _TauCache(alpha, n)
    excess = {k: np.empty(reps) for k in LEARNERS}
    rhs = {k: np.empty(reps) for k in LEARNERS}
    opt = np.empty(reps)
    for r in range(reps):
        s = lt.sample_long_tail(pi, n=n, n_classes=M, model=model, seed=rng)
        opt[r] = lt.population_error(lt.memorize_all(s.votes), s)  # the Bayes-optimal learner
        for k, proba in _learner_probas(s, rng=rng).items():
            excess[k][r] = lt.population_error(proba, s) - opt[r]
            errn = lt.unfit_counts(proba, s)
            ells = np.flatnonzero(errn[1:] > 0) + 1
            rhs[k][r] = float(np.dot(errn[ells], taus(ells))) if ells.size else 0.0
    bounds = {LEARNERS[0]: lt.cost_of_not_fitting(pi, n=n, n_classes=M),
              LEARNERS[1]: lt.cost_memorization_limited(pi, n=n, n_classes=M, gamma=GAMMA),
              LEARNERS[2]: lt.cost_label_private(pi, n=n, n_classes=M, epsilon=EPSILON)}
    out = {"N": int(pi.shape[0]), "n": int(n), "reps": reps, "model": model, "opt": float(opt.mean()),
           "opt_theory": lt.opt_error(pi, n=n, n_classes=M), "tau1": lt.tau(pi, n=n),
           "singleton_mass": lt.expected_mass(pi, n=n, ell=1), "learners": {}}
    for k in LEARNERS:
        out["learners"][k] = {
            "excess": float(excess[k].mean()), "excess_se": float(excess[k].std(ddof=1) / np.sqrt(reps)),
            "theorem_rhs": float(rhs[k].mean()), "bound": bounds[k]}
    return out


def sweep(*, quick: bool, seed: int) -> dict:
    reps = 6 if quick else 40
    if quick:
        grid = {"n": [(n, n, 1.0) for n in (1000, 4000)], "N": [(N, 4000, 1.0) for N in (2000, 8000)],
                "exponent": [(4000, 4000, s) for s in (0.75, 1.25)]}
    else:
        grid = {"n": [(n, n, 1.0) for n in (1000, 3000, 10_000, 30_000)],
                "N": [(N, 10_000, 1.0) for N in (1000, 3000, 10_000, 30_000, 100_000)],
                "exponent": [(10_000, 10_000, s) for s in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)]}
    out = {}
    for j, (axis, settings) in enumerate(grid.items()):
        out[axis] = []
        for i, (N, n, s) in enumerate(settings):
            row = simulate_setting(lt.zipf_prior(N, exponent=s), n, reps=reps, seed=np.random.SeedSequence([seed, j, i]))
            row["exponent"] = s
            out[axis].append(row)
    return out


# ------------------------------------------------------------------------------------- 3. subgroups
SUBGROUP_EXAMPLES = [
    # name, group sizes N_g, weights, n, paper statement
    ("fewer samples", (5000, 5000), (5 / 6, 1 / 6), 60_000, "cost for the small group more than twice as high"),
    ("harder group", (5000, 25_000), (1 / 2, 1 / 2), 100_000, "cost twice as high for the harder group"),
]


def subgroups(*, quick: bool, seed: int) -> list[dict]:
    reps = 3 if quick else 20
    rng = as_generator(np.random.SeedSequence([seed, 99]))
    rows = []
    for name, sizes, weights, n, paper in SUBGROUP_EXAMPLES:
        freqs, groups = lt.mixture_prior([lt.zipf_prior(N) for N in sizes], weights=weights)
        gc = lt.group_costs(freqs, groups, n=n, n_classes=M, gamma=GAMMA)
        sim = {"ignore singletons": np.zeros((reps, 2)), "γ-limited": np.zeros((reps, 2))}
        for r in range(reps):
            s = lt.sample_long_tail(freqs, n=n, n_classes=M, model="fixed", seed=rng)
            fit_opt = lt.memorize_all(s.votes)[np.arange(s.domain_size), s.labeling]
            for k, proba in (("ignore singletons", lt.fit_seen_at_least(s.votes)),
                             ("γ-limited", lt.memorization_limited(s.votes, gamma=GAMMA))):
                loss = s.distribution * (fit_opt - proba[np.arange(s.domain_size), s.labeling])
                sim[k][r] = np.bincount(groups, weights=loss, minlength=2) / gc.weight
        rows.append({
            "name": name, "group_sizes": list(sizes), "weights": list(weights), "n": n, "paper": paper,
            "expected_samples": gc.expected_samples, "tau1": gc.tau1, "singletons": gc.singletons, "opt": gc.opt,
            "cost_not_fitting": gc.cost_not_fitting, "cost_limited": gc.cost_limited,
            "ratio_limited": gc.ratio(1, 0),
            "simulated_not_fitting": sim["ignore singletons"].mean(0),
            "simulated_limited": sim["γ-limited"].mean(0),
            "simulated_limited_se": sim["γ-limited"].std(0, ddof=1) / np.sqrt(reps) if reps > 1 else None,
            "simulated_ratio_limited": float(sim["γ-limited"].mean(0)[1] / sim["γ-limited"].mean(0)[0])})
    return rows


# --------------------------------------------------------------------------------- 4. real learners
def _mixture_settings(quick: bool) -> dict:
    if quick:
        return dict(n_train=300, n_subpopulations=300, n_features=64, n_models=8, sweep_models=6,
                    C_grid=[0.003, 1.0], wd_grid=[5e-4, 0.2], mlp_epochs=15)
    return dict(n_train=1000, n_subpopulations=1000, n_features=256, n_models=48, sweep_models=12,
                C_grid=[1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0], wd_grid=[5e-4, 5e-2, 0.1, 0.2, 0.3], mlp_epochs=30)


COUNT_BINS = ((1, 1), (2, 2), (3, 4), (5, 10**9))


def _bin_label(lo, hi):
    return str(lo) if lo == hi else (f"{lo}-{hi}" if hi < 10**9 else f"≥{lo}")


def analyze_population(pop, mix, masks) -> dict:
    """Per-model excess error, Thm 2.3's right-hand side and accuracy by subpopulation frequency."""

    N = mix.frequencies.shape[0]
    K = masks.shape[0]
    D = mix.frequencies
    counts = np.stack([np.bincount(mix.train_subpopulation[masks[k]], minlength=N) for k in range(K)])
    corr_te = pop.signal("test", "correct").astype(np.float64)
    corr_tr = pop.signal("train", "correct").astype(np.float64)
    n_sub_te = np.bincount(mix.test_subpopulation, minlength=N)
    acc = np.stack([np.bincount(mix.test_subpopulation, weights=corr_te[k], minlength=N) for k in range(K)]) / n_sub_te
    err = (1 - acc) @ D
    opt = (1 - 1 / M) * ((counts == 0) * D).sum(axis=1)
    n_k = int(masks[0].sum())
    prior = lt.zipf_prior(N, exponent=mix.exponent)
    taus = _TauCache(prior, n_k)
    rhs = np.empty(K)
    errn1 = np.empty(K)
    for k in range(K):
        idx = np.flatnonzero(masks[k])
        c = counts[k][mix.train_subpopulation[idx]]
        errn = np.bincount(c, weights=(1 - corr_tr[k, idx]) / c)
        ells = np.flatnonzero(errn[1:] > 0) + 1
        rhs[k] = float(np.dot(errn[ells], taus(ells))) if ells.size else 0.0
        errn1[k] = errn[1] if errn.shape[0] > 1 else 0.0
    by_count = {}
    for lo, hi in ((0, 0),) + COUNT_BINS:
        sel = (counts >= lo) & (counts <= hi)
        by_count[_bin_label(lo, hi)] = float((acc * sel).sum() / max(sel.sum(), 1))
    with warnings.catch_warnings():  # examples with no IN or no OUT model are NaN; counted below
        warnings.simplefilter("ignore", MemlensWarning)
        mem = memorization(pop)
    full = mix.train_counts
    mem_by_count = {}
    for lo, hi in COUNT_BINS:
        sel = (full >= lo) & (full <= hi)
        mem_by_count[_bin_label(lo, hi)] = float(np.nanmean(mem.scores[sel])) if sel.any() else None
    p_in = n_k / mix.dataset.n_train
    lookup = {_bin_label(lo, hi): float(np.mean((1 - 1 / M) * (1 - p_in) ** (full[(full >= lo) & (full <= hi)] - 1)))
              if ((full >= lo) & (full <= hi)).any() else None for lo, hi in COUNT_BINS}
    singles = full == 1
    gamma_bar = float(np.nanmean(mem.scores[singles]))
    s_mass = lt.expected_mass(prior, n=n_k, ell=1)
    return {
        "n_models": K, "n_per_model": n_k,
        "train_accuracy_in": float(corr_tr[masks].mean()),
        "population_error": float(err.mean()), "opt": float(opt.mean()),
        "excess": float((err - opt).mean()), "excess_se": float((err - opt).std(ddof=1) / np.sqrt(K)) if K > 1 else None,
        "theorem_rhs": float(rhs.mean()), "unfit_singletons": float(errn1.mean()),
        "test_accuracy_by_count_in_subset": by_count,
        "memorization_by_count": mem_by_count, "lookup_memorization_by_count": lookup,
        "mean_singleton_memorization": gamma_bar,
        "n_undefined_memorization": int(np.isnan(mem.scores).sum()),
        "cor46_prediction": s_mass * max(0.0, 1 - 1 / M - gamma_bar),
        "singleton_accuracy_from_memorization": 1 / M + gamma_bar,
        "memorization_scores": mem.scores, "train_counts": full,
    }


def real_learners(*, quick: bool, seed: int) -> dict:
    cfg = _mixture_settings(quick)
    mix = lt.make_long_tail_mixture(n_train=cfg["n_train"], n_subpopulations=cfg["n_subpopulations"],
                                    n_features=cfg["n_features"], n_classes=M, seed=seed)
    ds = mix.dataset
    out = {"settings": {k: v for k, v in cfg.items()}, "dataset": ds.name,
           "n_singleton_subpopulations": int((mix.counts == 1).sum()),
           "n_seen_subpopulations": int((mix.counts > 0).sum())}
    masks = make_masks(cfg["n_models"], ds.n_train, p=0.7, seed=seed + 1)
    mlp = dict(hidden=(256,), epochs=cfg["mlp_epochs"], batch_size=64, lr=0.05, momentum=0.9)
    for name, config in (("logreg", make_model_config("logreg", C=1.0)),
                         ("mlp", make_model_config("mlp", weight_decay=5e-4, **mlp))):
        t0 = time.perf_counter()
        pop = train_population(ds, model=config, masks=masks, seed=seed)
        res = analyze_population(pop, mix, masks)
        res["train_seconds"] = time.perf_counter() - t0
        res["config"] = config.to_dict()
        out[name] = res
    sweep_masks = masks[: cfg["sweep_models"]]
    for name, key, grid in (("logreg", "C", cfg["C_grid"]), ("mlp", "weight_decay", cfg["wd_grid"])):
        rows = []
        for value in grid:
            config = (make_model_config("logreg", C=value) if name == "logreg"
                      else make_model_config("mlp", weight_decay=value, **mlp))
            pop = train_population(ds, model=config, masks=sweep_masks, seed=seed)
            r = analyze_population(pop, mix, sweep_masks)
            r.pop("memorization_scores")
            r.pop("train_counts")
            rows.append({key: value, **r})
        out[f"{name}_sweep"] = rows
    return out


# -------------------------------------------------------------------------------------------- figures
def _fig_sweep(sw, out):
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    colors = dict(zip(LEARNERS, ("tab:blue", "tab:orange", "tab:green")))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (axis, rows) in zip(axes, sw.items()):
        x = np.array([r["n"] if axis == "n" else (r["N"] if axis == "N" else r["exponent"]) for r in rows])
        for k in LEARNERS:
            y = np.array([r["learners"][k]["excess"] for r in rows])
            se = np.array([r["learners"][k]["excess_se"] for r in rows])
            ax.errorbar(x, y, yerr=2 * se, fmt="o", color=colors[k], capsize=3, label=f"{k}: simulated")
            ax.plot(x, [r["learners"][k]["bound"] for r in rows], "--", color=colors[k],
                    label=f"{k}: closed-form bound")
            ax.plot(x, [r["learners"][k]["theorem_rhs"] for r in rows], ":", color=colors[k], alpha=0.8,
                    label=f"{k}: Thm 2.3 Σ τ_ℓ errn_ℓ")
        if axis in ("n", "N"):
            ax.set_xscale("log")
        ax.set_xlabel({"n": "n (= N), Zipf exponent 1", "N": f"domain size N (n = {rows[0]['n']:,})",
                       "exponent": f"Zipf exponent (N = n = {rows[0]['n']:,})"}[axis])
        ax.set_ylabel("excess error over opt")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.16))
    fig.suptitle("Cost of not fitting rare examples: simulated learners vs Feldman's bounds (10 classes)")
    return save_figure(fig, out, "sweep_excess_error")


def _fig_subgroups(rows, out):
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    fig, axes = plt.subplots(1, len(rows), figsize=(5.5 * len(rows), 4))
    for ax, r in zip(np.atleast_1d(axes), rows):
        x = np.arange(2)
        ax.bar(x - 0.2, r["cost_limited"], 0.4, label="closed form (Cor. 4.6)", color="tab:gray")
        se = r["simulated_limited_se"]
        ax.bar(x + 0.2, r["simulated_limited"], 0.4, yerr=None if se is None else 2 * np.asarray(se),
               capsize=4, label="simulated γ-limited learner", color="tab:orange")
        ax.set_xticks(x, [f"group {g + 1}\nN={r['group_sizes'][g]:,}, w={r['weights'][g]:.3g}" for g in range(2)])
        ax.set_ylabel(f"error added within the group (γ = {GAMMA})")
        ax.set_title(f"{r['name']}, n = {r['n']:,}: ratio {r['ratio_limited']:.2f}")
        ax.legend(fontsize=8)
    fig.suptitle("Disparate cost of limiting memorization across subgroups")
    return save_figure(fig, out, "subgroup_costs")


def _fig_real(real, out):
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    fig = plt.figure(figsize=(16, 8))
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[:, 0])
    bins = list(real["logreg"]["memorization_by_count"])
    x = np.arange(len(bins))
    for j, (name, color) in enumerate((("logreg", "tab:blue"), ("mlp", "tab:red"))):
        ax.bar(x + (j - 0.5) * 0.35, [real[name]["memorization_by_count"][b] or 0 for b in bins], 0.35,
               color=color, label=f"{name} (Feldman–Zhang estimate)")
    ax.plot(x, [real["logreg"]["lookup_memorization_by_count"][b] for b in bins], "k_", markersize=25, mew=2,
            label="lookup learner (theory)")
    ax.set_xticks(x, bins)
    ax.set_xlabel("training examples of the subpopulation")
    ax.set_ylabel("mean label memorization")
    ax.set_title("Memorization concentrates on rare subpopulations")
    ax.legend(fontsize=8)
    for col, (name, key) in enumerate((("logreg", "C"), ("mlp", "weight_decay")), start=1):
        rows = real[f"{name}_sweep"]
        strength = np.array([1 / r[key] if key == "C" else r[key] for r in rows])
        xlabel = "L2 strength 1/C" if key == "C" else "weight decay"
        top = fig.add_subplot(grid[0, col])
        for b, color in (("1", "tab:red"), ("2", "tab:orange"), ("≥5", "tab:green")):
            top.plot(strength, [r["test_accuracy_by_count_in_subset"][b] for r in rows], "o-", color=color,
                     label=f"test accuracy, subpopulations seen {b}×")
        top.plot(strength, [min(1.0, r["singleton_accuracy_from_memorization"]) for r in rows], "s--",
                 color="tab:red", alpha=0.6, label="1/m + singleton memorization (Lemma 4.3)")
        top.set_xscale("log")
        top.set_ylim(0, 1.05)
        top.set_xlabel(xlabel)
        top.set_ylabel("test accuracy")
        top.set_title(f"{name}: accuracy as memorization is limited")
        top.grid(alpha=0.3)
        top.legend(fontsize=7, loc="lower left")
        bot = fig.add_subplot(grid[1, col])
        se = np.array([r["excess_se"] or 0.0 for r in rows])
        bot.errorbar(strength, [r["excess"] for r in rows], yerr=2 * se, fmt="^-", color="k", capsize=3,
                     label="excess error over opt (measured)")
        bot.plot(strength, [r["theorem_rhs"] for r in rows], "v:", color="tab:purple",
                 label="Thm 2.3: Σ τ_ℓ errn_ℓ (unfit training points)")
        bot.plot(strength, [r["cor46_prediction"] for r in rows], "d--", color="tab:gray",
                 label="Cor. 4.6 with γ = mean singleton memorization")
        bot.set_xscale("log")
        bot.set_xlabel(xlabel)
        bot.set_ylabel("error on D")
        bot.set_title(f"{name}: excess error vs the theorem")
        bot.grid(alpha=0.3)
        bot.legend(fontsize=7, loc="upper left")
    fig.suptitle("Real learners on a Zipf mixture of Gaussian subpopulations with random labels")
    fig.tight_layout()
    return save_figure(fig, out, "real_learners")


def summarize(res) -> dict:
    """Headline checks computed from the results (they go into results.json and the README)."""
    t = res["table"]
    out = {"table_max_rel_gap_exact_vs_list_tau1": max(abs(r["n_tau1_exact_prior"] / r["n_tau1"] - 1) for r in t),
           "table_max_gap_in_se": max(abs(r["n_tau1_exact_prior"] - r["n_tau1"]) / r["n_tau1_exact_prior_se"]
                                      for r in t)}
    z_rhs, z_bound = [], []
    for rows in res["sweep"].values():
        for r in rows:
            for v in r["learners"].values():
                se = max(v["excess_se"], 1e-12)
                z_rhs.append((v["excess"] - v["theorem_rhs"]) / se)
                z_bound.append((v["excess"] - v["bound"]) / se)
    out["sweep_max_abs_z_excess_vs_theorem_rhs"] = float(np.max(np.abs(z_rhs)))
    out["sweep_min_z_excess_minus_bound"] = float(np.min(z_bound))
    out["sweep_all_excess_at_least_bound_within_3se"] = bool(np.min(z_bound) >= -3)
    real = res.get("real_learners")
    if isinstance(real, dict):
        for name, key in (("logreg", "C"), ("mlp", "weight_decay")):
            rows = real[f"{name}_sweep"]
            weak, strong = (rows[-1], rows[0]) if key == "C" else (rows[0], rows[-1])
            out[f"{name}_sweep"] = {
                "weakest": {key: weak[key], "singleton_memorization": weak["mean_singleton_memorization"],
                            "accuracy_seen_once": weak["test_accuracy_by_count_in_subset"]["1"],
                            "accuracy_seen_5plus": weak["test_accuracy_by_count_in_subset"]["≥5"]},
                "strongest": {key: strong[key], "singleton_memorization": strong["mean_singleton_memorization"],
                              "accuracy_seen_once": strong["test_accuracy_by_count_in_subset"]["1"],
                              "accuracy_seen_5plus": strong["test_accuracy_by_count_in_subset"]["≥5"]},
                "excess_at_least_theorem_rhs_everywhere": bool(all(r["excess"] >= r["theorem_rhs"] - 2 * (r["excess_se"] or 0)
                                                                for r in rows))}
    return out


def _fmt_paper(paper: dict) -> str:
    return ", ".join(f"{k} ≈ {v}" for k, v in paper.items())


def _readme(res) -> str:
    t, sm = res["table"], res["summary"]
    lines = [f"# {NAME}", "", "Feldman (STOC 2020), *Does Learning Require Memorization? A Short Tale about a Long "
             "Tail*: the closed forms, simulations and real learners of `memlens.tasks.long_tail`.", "",
             f"Run: quick={res['quick']}, seed={res['seed']}, {res['runtime_s']:.0f} s. Every number below is in "
             "`results.json`.", "",
             "## 1. The paper's Zipf numbers (docs/theory.md, 'The long tail in numbers')", "",
             "Closed forms with π̄^N uniform over the Zipf list (the paper's approximation); column 4 recomputes τ₁ "
             "with a Monte Carlo sample of the exact marginal of D(x) under D ~ D_π^X.", "",
             "| N | n | n·τ₁ | n·τ₁ (exact D_π^X, MC) | singleton fraction | opt (10 cls) | cost, ignore singletons"
             " | cost, γ=0.5 | paper |", "|---|---|---|---|---|---|---|---|---|"]
    for r in t:
        lines.append(f"| {r['N']:,} | {r['n']:,} | {r['n_tau1']:.3f} | {r['n_tau1_exact_prior']:.3f} ± "
                     f"{r['n_tau1_exact_prior_se']:.3f} | "
                     f"{r['singleton_fraction']:.3f} | {r['opt']:.3f} | {r['cost_not_fitting']:.3f} | "
                     f"{r['cost_limited']:.3f} | {_fmt_paper(r['paper'])} |")
    lines += ["", f"Largest relative gap between the exact-prior and list-approximation τ₁: "
              f"{100 * sm['table_max_rel_gap_exact_vs_list_tau1']:.1f}% "
              f"({sm['table_max_gap_in_se']:.1f} Monte Carlo standard errors).", "",
              "## 2. Simulated learners against the bounds (`sweep_excess_error.png`)", "",
              "Excess error over the Bayes-optimal learner (memorize everything seen), exact given the sampled D "
              "and f, averaged over independent draws of D, f and S (10 classes). D is a random permutation of "
              "the Zipf list, so π̄^N is exactly the uniform-list distribution of the closed forms. Bounds: Thm 2.3 "
              f"for ignoring singletons, Cor. 4.6 for the γ-limited learner (γ = {GAMMA}), Thm 4.8 for "
              "ε-label-private randomized response (ε = ln 6, the same bound). 'Thm 2.3 RHS' is Σ_ℓ τ_ℓ errn_ℓ "
              "evaluated on each sample.", "",
              "| sweep | setting | learner | simulated excess ± se | bound | Thm 2.3 RHS |",
              "|---|---|---|---|---|---|"]
    for axis, rows in res["sweep"].items():
        for r in rows:
            setting = f"N={r['N']:,}, n={r['n']:,}, s={r['exponent']}"
            for k, v in r["learners"].items():
                lines.append(f"| {axis} | {setting} | {k} | {v['excess']:.4f} ± {v['excess_se']:.4f} | "
                             f"{v['bound']:.4f} | {v['theorem_rhs']:.4f} |")
    verdict = ("every learner pays at least its bound" if sm["sweep_all_excess_at_least_bound_within_3se"]
               else "SOME SETTING FALLS BELOW ITS BOUND")
    lines += ["", f"Largest |simulated − Thm 2.3 RHS| in standard errors: "
              f"{sm['sweep_max_abs_z_excess_vs_theorem_rhs']:.1f}; smallest (simulated − bound)/se: "
              f"{sm['sweep_min_z_excess_minus_bound']:.1f} "
              f"({verdict}"
              " within 3 standard errors). Ignoring singletons costs exactly its bound in expectation; the γ-limited "
              "and randomized-response learners pay more than their singleton-only bounds when they also miss points "
              "seen several times (randomized response with keep probability 0.4 often flips the plurality of "
              "points seen 2–5 times).", "",
              "## 3. Disparate cost across subgroups (`subgroup_costs.png`)", ""]
    for r in res["subgroups"]:
        lines.append(f"- **{r['name']}** (group sizes N = {r['group_sizes']}, weights "
                     f"{[round(w, 3) for w in r['weights']]}, n = {r['n']:,}): cost of γ = 0.5 within each group "
                     f"{r['cost_limited'][0]:.4f} vs {r['cost_limited'][1]:.4f}, ratio **{r['ratio_limited']:.2f}** "
                     f"(simulated {r['simulated_ratio_limited']:.2f}); paper: {r['paper']}.")
    real = res.get("real_learners")
    lines += ["", "## 4. Real learners on a long-tailed mixture (`real_learners.png`)", ""]
    if isinstance(real, dict):
        st = real["settings"]
        lines += [f"Data: {real['dataset']} (Zipf frequencies, one random label per subpopulation, nearly "
                  f"orthogonal centers); {real['n_seen_subpopulations']} subpopulations seen, "
                  f"{real['n_singleton_subpopulations']} of them once. Populations of {st['n_models']} models on "
                  "random 70% subsets; memorization is the Feldman–Zhang estimate (`memlens.measures.memorization`),"
                  " grouped by how many training examples the subpopulation has; the lookup learner's subsampled "
                  "memorization (1 − 1/m)(1 − 0.7)^(c−1) is the theory row.", "",
                  "| model | mem, seen 1× | mem, 2× | mem, 3–4× | mem, ≥5× | excess error | Thm 2.3 RHS |",
                  "|---|---|---|---|---|---|---|"]
        rows = [("lookup theory", real["logreg"]["lookup_memorization_by_count"], None)]
        rows += [(name, real[name]["memorization_by_count"], real[name]) for name in ("logreg", "mlp")]
        for name, mb, r in rows:
            tail = f"{r['excess']:.4f} | {r['theorem_rhs']:.4f}" if r else "– | –"
            lines.append(f"| {name} | {mb['1']:.3f} | {mb['2']:.3f} | {mb['3-4']:.3f} | {mb['≥5']:.3f} | {tail} |")
        lines += ["", f"Regularization sweeps ({st['sweep_models']} models each). Accuracy on the test points of "
                  "subpopulations seen once / at least five times in the model's own subset, mean memorization of "
                  "singletons, excess error over opt = (1 − 1/m)·(mass of unseen subpopulations), and Thm 2.3's "
                  "Σ τ_ℓ errn_ℓ from the model's unfit training points:", "",
                  "| model | setting | acc 1× | acc ≥5× | singleton mem | 1/m + mem | excess | Thm 2.3 RHS |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, key in (("logreg", "C"), ("mlp", "weight_decay")):
            for r in real[f"{name}_sweep"]:
                a = r["test_accuracy_by_count_in_subset"]
                lines.append(f"| {name} | {key}={r[key]:g} | {a['1']:.3f} | {a['≥5']:.3f} | "
                             f"{r['mean_singleton_memorization']:.3f} | {r['singleton_accuracy_from_memorization']:.3f}"
                             f" | {r['excess']:.4f} | {r['theorem_rhs']:.4f} |")
        lines.append("")
        for name, key in (("logreg", "C"), ("mlp", "weight_decay")):
            d = sm[f"{name}_sweep"]
            w, s_ = d["weakest"], d["strongest"]
            lines.append(f"- {name}: from {key}={w[key]:g} to {key}={s_[key]:g}, singleton memorization "
                         f"{w['singleton_memorization']:.2f} → {s_['singleton_memorization']:.2f}, accuracy on "
                         f"subpopulations seen once {w['accuracy_seen_once']:.2f} → {s_['accuracy_seen_once']:.2f}, "
                         f"seen ≥5 times {w['accuracy_seen_5plus']:.2f} → {s_['accuracy_seen_5plus']:.2f}; excess error"
                         f" {'≥' if d['excess_at_least_theorem_rhs_everywhere'] else 'NOT always ≥'} Thm 2.3's "
                         "prediction (within 2 se) at every setting.")
        lines += ["", "Thm 2.3 with the subpopulation coupling λ = 1 assumes a model treats a subpopulation's test "
                  "points like its training points; the excess above Σ τ_ℓ errn_ℓ measures where that fails (a "
                  "fitted training point whose test neighbours are still misclassified)."]
    else:
        lines.append(f"Not run: {real}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ run
def run(out_dir, *, quick: bool = False, seed: int = 0) -> dict:
    """Run the reproduction and write ``results.json``, ``README.md`` and the figures into ``out_dir``."""
    out = prepare_out_dir(out_dir)
    t0 = time.perf_counter()
    with limit_threads(1):
        res = {"name": NAME, "quick": bool(quick), "seed": int(seed), "n_classes": M, "gamma": GAMMA,
               "epsilon": EPSILON}
        with step("the paper's Zipf example, exactly"):
            res["table"] = paper_table(quick=quick, seed=seed)
        with step("simulated learners against the cost-of-not-fitting bound"):
            res["sweep"] = sweep(quick=quick, seed=seed)
        with step("two subgroups: the disparate cost"):
            res["subgroups"] = subgroups(quick=quick, seed=seed)
        try:
            with step("logistic-regression and MLP populations on a long-tailed mixture"):
                res["real_learners"] = real_learners(quick=quick, seed=seed)
        except ImportError as exc:  # population training not available in this installation
            res["real_learners"] = f"skipped: {exc}"
        res["summary"] = summarize(res)
        res["runtime_s"] = time.perf_counter() - t0
        figures = [_fig_sweep(res["sweep"], out).name, _fig_subgroups(res["subgroups"], out).name]
        if isinstance(res["real_learners"], dict):
            for name in ("logreg", "mlp"):
                res["real_learners"][name].pop("memorization_scores", None)
                res["real_learners"][name].pop("train_counts", None)
            figures.append(_fig_real(res["real_learners"], out).name)
        res["figures"] = figures
    write_results(out, res)
    write_readme(out, _readme(res))
    return res
