"""Feldman–Kornowski–Lyu (COLT 2025): memorization against sample size, theory beside the learners.

For the Gaussian clustering, Boolean clustering and sparse-hypercube problems (docs/theory.md, "The three problems",
derived
instantiations) this puts on log–log axes, for several dimensions ``d`` at one fixed target accuracy:

- the FKL lower bound ``((1 − τ_n)/ρ_n)(ln 2 − h(α))`` on excess memorization ``I(M; X_{1:n} | θ)``;
- the matching simple learner's exact excess memorization, its noise tuned so that its exact accuracy is
  the target, and its accuracy measured by Monte Carlo;
- baselines that keep more (the noiseless learner, storing the raw sample);
- fitted slopes (predicted: ≈ −1 for the Gaussian problem, an exponential collapse for the Boolean one
  once ``n r² ≫ 1``, a ``2^{−Θ(n)}`` decay for the subcube; docs/theory.md, derived predictions, not paper numbers);
- the mixture-of-clusters extension (FKL Sec. 5): per-cluster bounds summed over Zipf-distributed clusters.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .._threads import limit_threads
from .._validation import MemlensWarning
from ..tasks.sdpi import (
    LN2,
    BooleanClustering,
    GaussianClustering,
    SparseHypercube,
    expected_mixture_lower_bound,
    mixture_lower_bound,
    sample_cluster_counts,
    tradeoff_curve,
)
from ._common import prepare_out_dir, save_figure, step, write_readme, write_results

NAME = "fkl-tradeoffs"
DESCRIPTION = ("Feldman-Kornowski-Lyu SDPI trade-offs: memorization lower bound vs simple learners against n "
               "(Gaussian, Boolean, sparse hypercube, mixtures)")


def _config(quick: bool) -> dict:
    if quick:
        return dict(dims=(256, 1024), c=1.0, accuracy=0.75, c_sweep=(0.5, 1.0, 2.0), c_sweep_d=256,
                    c_sweep_accuracy=0.65, per_octave=2, n_trials=100, n_test=8, mixture_d=256,
                    mixture_clusters=500, mixture_n=np.unique(np.round(np.logspace(1, 4, 7)).astype(int)))
    return dict(dims=(256, 1024, 4096), c=1.0, accuracy=0.75, c_sweep=(0.5, 1.0, 2.0), c_sweep_d=1024,
                c_sweep_accuracy=0.65, per_octave=3, n_trials=400, n_test=16, mixture_d=1024,
                mixture_clusters=2000, mixture_n=np.unique(np.round(np.logspace(1, 5, 13)).astype(int)))


def _grid(d: int, per_octave: int) -> np.ndarray:
    """Sample sizes 1 … d, ``per_octave`` points per doubling."""
    return np.unique(np.round(2.0 ** np.arange(0, math.log2(d) + 1e-9, 1.0 / per_octave)).astype(int))


def _curve_dict(tc, extra=None) -> dict:
    out = {
        "params": tc.params, "accuracy_target": tc.accuracy, "info_needed_nats": tc.info_needed_nats,
        "n": tc.n, "tau": tc.tau, "one_minus_tau": tc.one_minus_tau, "rho": tc.rho,
        "lower_bound_nats": tc.lower_bound_nats, "bound_with_learner_info_nats": tc.bound_with_learner_info_nats,
        "learner_noise": tc.noise, "learner_nats": tc.learner_nats, "learner_test_info_nats": tc.learner_test_info_nats,
        "accuracy_exact": tc.accuracy_exact, "accuracy_mc": tc.accuracy_mc, "accuracy_mc_stderr": tc.accuracy_mc_stderr,
        "plain_learner_nats": tc.plain_nats, "store_all_nats": tc.store_all_nats,
    }
    out.update(extra or {})
    return out


def _checks(tc) -> dict:
    feas = tc.feasible
    z = (tc.accuracy_mc - tc.accuracy) / tc.accuracy_mc_stderr
    return {
        "bound_le_learner": bool(np.all(tc.lower_bound_nats[feas] <= tc.learner_nats[feas] * (1 + 1e-9))),
        "bound_with_learner_info_le_learner": bool(
            np.all(tc.bound_with_learner_info_nats[feas] <= tc.learner_nats[feas] * (1 + 1e-9))),
        "max_abs_z_accuracy_mc": float(np.nanmax(np.abs(z))) if np.any(feas) else float("nan"),
        "n_infeasible": int(np.sum(~feas)),
    }


def _collapse_stats(tc, r2: float) -> dict:
    """Boolean problem: where the bound leaves its ``d/n`` law, and its exponential decay rate in ``n r²``."""
    small_law = (1 - r2) / (tc.n * r2 * r2) * tc.info_needed_nats
    ratio = tc.lower_bound_nats / small_law
    below = np.flatnonzero(ratio < 1 / math.e)
    n_collapse = int(tc.n[below[0]]) if below.size else None
    x = tc.n * r2
    sel = (x >= 2) & (tc.lower_bound_nats > 0)
    rate = float(-np.polyfit(x[sel], np.log(tc.lower_bound_nats[sel]), 1)[0]) if sel.sum() >= 2 else float("nan")
    sel_l = (x >= 2) & np.isfinite(tc.learner_nats) & (tc.learner_nats > 0)
    rate_l = float(-np.polyfit(x[sel_l], np.log(tc.learner_nats[sel_l]), 1)[0]) if sel_l.sum() >= 2 else float("nan")
    d = tc.params["d"]
    return {
        "n_collapse_1_over_e": n_collapse,
        "n_collapse_times_r2": (n_collapse * r2 if n_collapse else None),
        "sqrt_d_ln_d": math.sqrt(d) * math.log(d),
        "decay_rate_per_unit_n_r2_lower_bound": rate,
        "decay_rate_per_unit_n_r2_learner": rate_l,
        # derived comparison: the Bhattacharyya (Chernoff) exponent of telling θ_j = ±1 apart, per unit n r²
        "chernoff_rate_per_unit_n_r2": -0.5 * math.log1p(-r2) / r2,
        "slope_small_n_lower_bound": tc.slope("lower_bound", n_max=0.25 / r2),
        "slope_small_n_learner": tc.slope("learner", n_max=0.25 / r2),
        "n_plain_majority_below_1_nat": (int(tc.n[np.flatnonzero(tc.plain_nats < 1)[0]])
                                         if np.any(tc.plain_nats < 1) else None),
    }


def _subcube_stats(tc) -> dict:
    d = tc.params["d"]
    sel = tc.n >= math.log2(d)
    fit = lambda y: (float(np.polyfit(tc.n[sel], np.log2(y[sel]), 1)[0])  # noqa: E731
                     if sel.sum() >= 2 and np.all(y[sel] > 0) else float("nan"))
    return {"log2_d": math.log2(d), "bits_per_sample_decay_lower_bound": fit(tc.lower_bound_nats),
            "bits_per_sample_decay_learner": fit(tc.learner_nats),
            "slope_loglog_lower_bound": tc.slope("lower_bound"), "slope_loglog_learner": tc.slope("learner")}


def run(out_dir, *, quick: bool = False, seed: int = 0) -> dict:
    """Run the reproduction; write figures, ``results.json`` and ``README.md`` into ``out_dir``."""
    out = prepare_out_dir(out_dir)
    cfg = _config(quick)
    t_start = time.perf_counter()
    seeds = iter(np.random.SeedSequence(seed).generate_state(64))
    acc = cfg["accuracy"]
    kw = dict(n_trials=cfg["n_trials"], n_test=cfg["n_test"])
    curves = {"gaussian": {}, "gaussian_c_sweep": {}, "boolean": {}, "sparse_hypercube": {}}
    results = {"config": {k: (list(v) if isinstance(v, (tuple, np.ndarray)) else v) for k, v in cfg.items()},
               "quick": quick, "seed": seed, "units": "nats (bits = nats / ln 2)",
               "source": "memlens docs/theory.md, 'The three problems' (derived instantiations; not the paper's own parametrizations)",
               "paper_values": "none: the paper is theory; the slopes below are derived predictions (docs/theory.md)"}
    notes = []
    with limit_threads(1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MemlensWarning)
        # (G) Gaussian clustering
        res_g = {}
        for d in cfg["dims"]:
            with step(f"Gaussian clusters, d = {d}: bound and learners against n"):
                tc = tradeoff_curve(GaussianClustering.calibrated(d, c=cfg["c"]),
                                    2 ** np.arange(int(math.log2(d)) + 1), accuracy=acc, seed=int(next(seeds)), **kw)
            curves["gaussian"][d] = tc
            res_g[str(d)] = _curve_dict(tc, {
                "slope_lower_bound": tc.slope("lower_bound"), "slope_learner": tc.slope("learner"),
                "slope_learner_n_ge_4": tc.slope("learner", n_min=4), "expected_slope": -1.0, **_checks(tc)})
        res_gc = {}
        d = cfg["c_sweep_d"]
        for c in cfg["c_sweep"]:
            tc = tradeoff_curve(GaussianClustering.calibrated(d, c=c), 2 ** np.arange(int(math.log2(d)) + 1),
                                accuracy=cfg["c_sweep_accuracy"], seed=int(next(seeds)), **kw)
            curves["gaussian_c_sweep"][c] = tc
            res_gc[str(c)] = _curve_dict(tc, {"slope_lower_bound": tc.slope("lower_bound"),
                                              "slope_learner": tc.slope("learner"), **_checks(tc)})
        # (B) Boolean clustering
        res_b = {}
        for d in cfg["dims"]:
            prob = BooleanClustering.calibrated(d, c=cfg["c"])
            with step(f"Boolean clusters, d = {d}"):
                tc = tradeoff_curve(prob, _grid(d, cfg["per_octave"]), accuracy=acc, seed=int(next(seeds)), **kw)
            curves["boolean"][d] = tc
            res_b[str(d)] = _curve_dict(tc, {**_collapse_stats(tc, prob.r ** 2), **_checks(tc)})
        # (S) sparse hypercube
        res_s = {}
        for d in cfg["dims"]:
            prob = SparseHypercube.calibrated(d, c=cfg["c"])
            n_max = int(2 * math.log2(d) + (4 if quick else 12))
            ns = np.arange(1, n_max + 1) if not quick else np.unique(np.r_[1:9, 10:n_max + 1:2])
            with step(f"sparse hypercube, d = {d}"):
                tc = tradeoff_curve(prob, ns, accuracy=acc, seed=int(next(seeds)), **kw)
            curves["sparse_hypercube"][d] = tc
            res_s[str(d)] = _curve_dict(tc, {**_subcube_stats(tc), **_checks(tc)})
        # mixtures of clusters (Gaussian clusters, Zipf frequencies)
        with step("a Zipf mixture of Gaussian clusters"):
            mix = _mixture(cfg, acc, int(next(seeds)))
        for w in caught:
            notes.append(str(w.message))
    results.update({"gaussian": res_g, "gaussian_c_sweep": res_gc, "boolean": res_b, "sparse_hypercube": res_s,
                    "mixture": mix, "warnings": notes})
    results["all_bounds_below_learners"] = bool(all(
        v["bound_le_learner"] for group in (res_g, res_gc, res_b, res_s) for v in group.values())
        and mix["bound_le_learner"])
    _figures(out, curves, mix, cfg)
    results["runtime_s"] = time.perf_counter() - t_start
    write_results(out, results)
    write_readme(out, _readme(results, cfg))
    return results


def _mixture(cfg, acc, seed) -> dict:
    prob = GaussianClustering.calibrated(cfg["mixture_d"], c=cfg["c"])
    k = cfg["mixture_clusters"]
    freq = 1.0 / np.arange(1, k + 1)
    freq /= freq.sum()
    rows = {"n": [], "expected_lower_bound_nats": [], "expected_learner_nats": [], "expected_singleton_nats": [],
            "expected_singletons": [], "sampled_lower_bound_nats": [], "sampled_learner_nats": [],
            "sampled_singletons": [], "sampled_singleton_nats": []}
    rng = np.random.default_rng(seed)
    ok = True
    for n in cfg["mixture_n"]:
        e = expected_mixture_lower_bound(prob, freq, int(n), accuracy=acc)
        s = mixture_lower_bound(prob, sample_cluster_counts(freq, int(n), seed=rng), accuracy=acc)
        ok &= s.total_nats <= s.learner_total_nats and e["lower_bound_nats"] <= e["learner_nats"]
        for key, val in (("n", int(n)), ("expected_lower_bound_nats", e["lower_bound_nats"]),
                         ("expected_learner_nats", e["learner_nats"]),
                         ("expected_singleton_nats", e["singleton_nats"]),
                         ("expected_singletons", e["expected_singletons"]),
                         ("sampled_lower_bound_nats", s.total_nats), ("sampled_learner_nats", s.learner_total_nats),
                         ("sampled_singletons", s.n_singletons), ("sampled_singleton_nats", s.singleton_nats)):
            rows[key].append(val)
    f1 = float(prob.lower_bound(1, accuracy=acc)[0])
    return {"problem": "gaussian", "params": prob.params, "clusters": k, "frequencies": "Zipf, exponent 1",
            "accuracy_target": acc, "single_cluster_bound_at_n1_nats": f1, "bound_le_learner": bool(ok),
            "peak_n": int(rows["n"][int(np.argmax(rows["expected_lower_bound_nats"]))]),
            "peak_singleton_share": float(np.array(rows["expected_singleton_nats"])[
                int(np.argmax(rows["expected_lower_bound_nats"]))] / max(rows["expected_lower_bound_nats"])),
            **rows}


# -------------------------------------------------------------------------------------------------------
# figures
# -------------------------------------------------------------------------------------------------------

def _figures(out, curves, mix, cfg):
    import matplotlib  # matplotlib is heavy: imported only to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    # Gaussian
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    for i, (d, tc) in enumerate(curves["gaussian"].items()):
        ax.loglog(tc.n, tc.learner_bits, "-o", ms=3, color=colors[i],
                  label=f"noisy mean, d={d} (slope {tc.slope('learner'):.2f})")
        ax.loglog(tc.n, tc.lower_bound_bits, "--", color=colors[i],
                  label=f"FKL lower bound, d={d} (slope {tc.slope('lower_bound'):.2f})")
    ax.set(xlabel="samples per cluster n", ylabel="excess memorization I(M; X_{1:n} | θ) [bits]",
           title=f"Gaussian clustering, r² = c/√d, c={cfg['c']}, accuracy {cfg['accuracy']}")
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, (c, tc) in enumerate(curves["gaussian_c_sweep"].items()):
        ax.loglog(tc.n, tc.learner_bits, "-o", ms=3, color=colors[i], label=f"noisy mean, c={c}")
        ax.loglog(tc.n, tc.lower_bound_bits, "--", color=colors[i], label=f"lower bound, c={c}")
    ax.set(xlabel="samples per cluster n", ylabel="excess memorization [bits]",
           title=f"Gaussian, d={cfg['c_sweep_d']}, accuracy {cfg['c_sweep_accuracy']}: effect of c")
    ax.legend(fontsize=7)
    _accuracy_panel(axes[2], curves["gaussian"], colors, "noisy mean")
    fig.tight_layout()
    save_figure(fig, out, "gaussian_tradeoff")

    # Boolean
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    ax = axes[0]
    for i, (d, tc) in enumerate(curves["boolean"].items()):
        ax.loglog(tc.n, tc.learner_bits, "-o", ms=3, color=colors[i], label=f"majority + RR, d={d}")
        ax.loglog(tc.n, tc.plain_nats / LN2, ":", color=colors[i], label=f"plain majority, d={d}")
        ax.loglog(tc.n, tc.lower_bound_bits, "--", color=colors[i], label=f"FKL lower bound, d={d}")
        ax.axvline(math.sqrt(d) * math.log(d), color=colors[i], lw=0.6, alpha=0.5)
    d0, tc0 = next(iter(curves["boolean"].items()))
    ax.loglog(tc0.n, tc0.store_all_nats / LN2, "-", color="grey", lw=0.8, label=f"store all samples, d={d0}")
    ax.set(xlabel="samples per cluster n  (thin lines: n = √d ln d)", ylabel="excess memorization [bits]",
           title=f"Boolean clustering, r² = c/√d, c={cfg['c']}, accuracy {cfg['accuracy']}")
    ax.set_ylim(bottom=1e-12)
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1]
    for i, (d, tc) in enumerate(curves["boolean"].items()):
        r2 = tc.params["r2"]
        law = (1 - r2) / (tc.n * r2 * r2) * tc.info_needed_nats
        ax.semilogy(tc.n * r2, tc.lower_bound_nats / law, "--", color=colors[i],
                    label=f"lower bound / (d/n law), d={d}")
        ax.semilogy(tc.n * r2, tc.learner_nats / law, "-", color=colors[i], label=f"learner / (d/n law), d={d}")
    ax.set(xlabel="n r²  (signal per coordinate)", ylabel="memorization ÷ ((1−r²)/(n r⁴))·(ln2 − h(α))",
           title="exponential collapse once n r² ≫ 1")
    ax.set_ylim(bottom=1e-12)
    ax.legend(fontsize=7)
    _accuracy_panel(axes[2], curves["boolean"], colors, "majority + RR")
    fig.tight_layout()
    save_figure(fig, out, "boolean_tradeoff")

    # sparse hypercube
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.6))
    ax = axes[0]
    for i, (d, tc) in enumerate(curves["sparse_hypercube"].items()):
        ax.semilogy(tc.n, tc.learner_bits, "-o", ms=3, color=colors[i], label=f"subcube + RR, d={d}")
        ax.semilogy(tc.n, tc.lower_bound_bits, "--", color=colors[i], label=f"FKL lower bound, d={d}")
        ax.axvline(math.log2(d), color=colors[i], lw=0.6, alpha=0.5)
    ax.set(xlabel="samples per cluster n  (thin lines: n = log₂ d)", ylabel="excess memorization [bits]",
           title=f"sparse hypercube, p_fixed = c/√d, c={cfg['c']}, accuracy {cfg['accuracy']}")
    ax.legend(fontsize=7)
    _accuracy_panel(axes[1], curves["sparse_hypercube"], colors, "subcube + RR", logx=False)
    fig.tight_layout()
    save_figure(fig, out, "sparse_hypercube_tradeoff")

    # mixture
    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    n = np.array(mix["n"])
    ax.loglog(n, np.array(mix["expected_learner_nats"]) / LN2, "-o", ms=3, label="Σ_c noisy mean (expected)")
    ax.loglog(n, np.array(mix["expected_lower_bound_nats"]) / LN2, "--", label="Σ_c FKL bound (expected)")
    ax.loglog(n, np.array(mix["expected_singleton_nats"]) / LN2, ":", label="singleton clusters' share of the bound")
    ax.loglog(n, np.array(mix["sampled_lower_bound_nats"]) / LN2, "x", label="Σ_c bound, one sampled dataset")
    ax.set(xlabel="total samples n", ylabel="excess memorization [bits]",
           title=f"mixture of {mix['clusters']} Gaussian clusters (Zipf), d={mix['params']['d']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out, "mixture_of_clusters")


def _accuracy_panel(ax, curves, colors, learner, logx=True):
    for i, (d, tc) in enumerate(curves.items()):
        ax.errorbar(tc.n, tc.accuracy_mc, yerr=2 * tc.accuracy_mc_stderr, fmt="o", ms=3, color=colors[i],
                    label=f"{learner}, Monte Carlo ±2 s.e., d={d}")
        ax.plot(tc.n, tc.accuracy_exact, "-", color=colors[i], lw=0.8)
    tc = next(iter(curves.values()))
    ax.axhline(tc.accuracy, color="k", ls="--", lw=0.8, label=f"target accuracy {tc.accuracy} (exact, lines)")
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel="samples per cluster n", ylabel="test accuracy", title="the learners hold the target accuracy")
    ax.set_ylim(0.5, 1.0)
    ax.legend(fontsize=7)


# -------------------------------------------------------------------------------------------------------
# README
# -------------------------------------------------------------------------------------------------------

def _readme(res, cfg) -> str:
    def fmt(x, spec=".3g"):
        return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)

    lines = [
        "# fkl-tradeoffs: memorization/sample trade-offs via SDPIs",
        "",
        "Feldman, Kornowski, Lyu, *Trade-offs in Data Memorization via Strong Data Processing Inequalities*, "
        "COLT 2025 (arXiv:2506.01855). The three problems are the instantiations of memlens's docs/theory.md ('The three problems'), "
        "**derived for this project** (the paper's exact parametrizations were not available); the paper "
        "reports no numbers to compare with, so the targets are the derived predictions (docs/theory.md).",
        "",
        f"Run: {'quick' if res['quick'] else 'full'}, seed {res['seed']}, dimensions {list(cfg['dims'])}, "
        f"calibration c = {cfg['c']} (r² = c/√d), target accuracy {cfg['accuracy']}, Monte Carlo "
        f"{cfg['n_trials']} clusters × {cfg['n_test']} test points per n; runtime {res['runtime_s']:.1f} s.",
        "",
        "Lower bound = ((1 − τ_n)/ρ_n) · (ln 2 − h(α)) nats (FKL Thm 3.7 with exact SDPI constants and Fano). "
        "Learner memorization is exact (closed form or finite sums); its noise is tuned so its exact accuracy is "
        "the target, and Monte Carlo accuracy is reported beside it.",
        "",
        "## Gaussian clustering (predicted slope −1)",
        "",
        "| d | slope of bound | slope of noisy mean | (n ≥ 4) | bound ≤ learner | max MC z |",
        "|---|---|---|---|---|---|",
    ]
    for d, v in res["gaussian"].items():
        lines.append(f"| {d} | {fmt(v['slope_lower_bound'], '.3f')} | {fmt(v['slope_learner'], '.3f')} | "
                     f"{fmt(v['slope_learner_n_ge_4'], '.3f')} | {v['bound_le_learner']} | "
                     f"{fmt(v['max_abs_z_accuracy_mc'], '.2f')} |")
    lines += ["", "## Boolean clustering (predicted: d/n, then exponential collapse once n r² ≫ 1)", "",
              "| d | small-n slope bound / learner | n where bound < law/e | √d ln d "
              "| decay rate in n r² (bound / learner / Chernoff) | plain majority < 1 nat at n | bound ≤ learner |",
              "|---|---|---|---|---|---|---|"]
    for d, v in res["boolean"].items():
        lines.append(f"| {d} | {fmt(v['slope_small_n_lower_bound'], '.2f')} / "
                     f"{fmt(v['slope_small_n_learner'], '.2f')} | "
                     f"{fmt(v['n_collapse_1_over_e'])} | {fmt(v['sqrt_d_ln_d'], '.0f')} | "
                     f"{fmt(v['decay_rate_per_unit_n_r2_lower_bound'], '.3f')} / "
                     f"{fmt(v['decay_rate_per_unit_n_r2_learner'], '.3f')} / "
                     f"{fmt(v['chernoff_rate_per_unit_n_r2'], '.3f')} | "
                     f"{fmt(v['n_plain_majority_below_1_nat'])} | "
                     f"{v['bound_le_learner']} |")
    lines += ["", "The collapse rate is compared with −½ ln(1 − r²)/r², the Bhattacharyya exponent of telling "
              "θ_j = ±1 apart from n coordinates (derived; → ½ as r → 0): 1 − τ_n decays at that rate.",
              "", "## Sparse hypercube (predicted d·2^{−Θ(n)})", "",
              "| d | log₂ d | decay of bound (bits of log₂ per sample) | of learner | bound ≤ learner |",
              "|---|---|---|---|---|"]
    for d, v in res["sparse_hypercube"].items():
        lines.append(f"| {d} | {v['log2_d']:.0f} | {fmt(v['bits_per_sample_decay_lower_bound'], '.2f')} | "
                     f"{fmt(v['bits_per_sample_decay_learner'], '.2f')} | {v['bound_le_learner']} |")
    m = res["mixture"]
    lines += ["", "## Mixture of clusters", "",
              f"{m['clusters']} Gaussian clusters (d = {m['params']['d']}) with Zipf frequencies: the summed bound "
              f"peaks at n ≈ {m['peak_n']} total samples, where singleton clusters carry "
              f"{100 * m['peak_singleton_share']:.0f}% of it (Brown et al.'s regime: memorization ∝ number of "
              f"singletons × d); it then falls as clusters collect samples. Summed bound ≤ summed learner: "
              f"{m['bound_le_learner']}.",
              "", f"All bounds below their learners: **{res['all_bounds_below_learners']}**.", "",
              "Figures: `gaussian_tradeoff.png`, `boolean_tradeoff.png`, `sparse_hypercube_tradeoff.png`, "
              "`mixture_of_clusters.png`. Every number is in `results.json`."]
    if res["warnings"]:
        lines += ["", "Warnings:", *[f"- {w}" for w in res["warnings"]]]
    return "\n".join(lines) + "\n"
