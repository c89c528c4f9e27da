"""The long-tail diagnostic on Fashion-MNIST: does Feldman's theory predict which real examples are memorized?

Feldman (2020) predicts that examples from rare subpopulations must be memorized to be fitted. This reproduction
trains a population of MLPs on random 70% subsets of a Fashion-MNIST subset, measures Feldman–Zhang memorization,
and runs the long-tail diagnostic of ``memlens audit --long-tail`` (:mod:`memlens.audits.long_tail`): subpopulations
by k-means per class (our operationalization), their frequency spectrum with a fitted Zipf prior, and the measured
memorization by subpopulation size. Writes ``long_tail_buckets.png`` (memorization by size, the spectrum with the
fitted prior), ``results.json`` and ``README.md``.
"""
from __future__ import annotations

import numpy as np

from .._random import check_seed
from .._threads import limit_threads
from ..audits.long_tail import long_tail_diagnostic, representation
from ..data import load_dataset, make_masks
from ..measures import memorization
from ..train import MLPConfig, train_population
from ._common import prepare_out_dir, save_figure, step, write_readme, write_results

NAME = "long-tail-diagnostic"
DESCRIPTION = ("Feldman 2020 on real data: Fashion-MNIST subpopulations by clustering, their long-tailed "
               "spectrum and fitted prior, and measured memorization by subpopulation size")

QUICK = {"n_train": 2000, "n_models": 32, "epochs": 10}
FULL = {"n_train": 60000, "n_models": 128, "epochs": 20}
#: Representation spaces compared (:func:`memlens.audits.long_tail.representation`).
SPACES = ("features", "penultimate")


def _figure(summaries):
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(summaries)
    colors = {"features": "#4c72b0", "penultimate": "#c44e52"}
    for j, (space, summary) in enumerate(summaries.items()):
        bk = summary["buckets"]
        xs = np.arange(len(bk)) - 0.4 + width * (j + 0.5)
        mm = [x["mean_memorization"] if x["mean_memorization"] is not None else np.nan for x in bk]
        a.bar(xs, mm, width=width, color=colors.get(space, "#888888"), label=f"{space} space")
        spec = {int(k): v for k, v in summary["spectrum"].items()}
        sizes = np.array(sorted((ell for ell, c in spec.items() for _ in range(c)), reverse=True), dtype=float)
        ranks = np.arange(1, sizes.size + 1)
        b.loglog(ranks, sizes, ".", color=colors.get(space, "#888888"), ms=3, label=f"{space} space")
        s = summary["zipf_exponent"]
        b.loglog(ranks, np.exp(summary["zipf_log_scale"]) * ranks ** -s, "--", color=colors.get(space, "#888888"),
                 lw=1, label=f"Zipf fit, exponent {s:.2f}")
    names = [x["l"] for x in next(iter(summaries.values()))["buckets"]]
    a.set_xticks(np.arange(len(names)), names)
    a.set_xlabel("ℓ: training examples in the subpopulation")
    a.set_ylabel("mean Feldman–Zhang memorization")
    a.set_title("Measured memorization by subpopulation size")
    a.legend(frameon=False)
    b.set_xlabel("rank")
    b.set_ylabel("training examples")
    b.set_title("Frequency spectrum and Feldman's prior")
    b.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def run(out_dir, *, quick: bool = False, seed: int = 0) -> dict:
    """Run the diagnostic on Fashion-MNIST (quick: 2,000 images, 32 MLPs; full: all 60,000 images, 128 MLPs), in
    the input-feature space and in the penultimate layer of an MLP trained on every image."""
    check_seed(seed)
    cfg = QUICK if quick else FULL
    out = prepare_out_dir(out_dir)
    fm = load_dataset("fashion-mnist")
    rng = np.random.default_rng(seed)
    ds = fm.subset(train_index=np.sort(rng.choice(fm.n_train, cfg["n_train"], replace=False)),
                   test_index=np.arange(2000), name=f"fashion-mnist-{cfg['n_train']}")
    with step(f"training {cfg['n_models']} MLPs on {ds.n_train:,} images"), limit_threads(1):
        pop = train_population(ds, model=MLPConfig(epochs=cfg["epochs"]),
                               masks=make_masks(cfg["n_models"], ds.n_train, p=0.7, seed=seed), seed=seed)
    mem = memorization(pop)
    c = pop.signal("train", "correct").astype(np.float64)
    in_count = pop.masks.sum(0)
    with np.errstate(invalid="ignore"):
        acc_in = (c * pop.masks).sum(0) / np.where(in_count > 0, in_count, np.nan)
    diags = {}
    for space in SPACES:
        with step(f"long-tail diagnostic in the {space} space"), limit_threads(1):
            X, what = representation(ds, space=space, config=MLPConfig(epochs=cfg["epochs"]), seed=seed)
            diags[space] = long_tail_diagnostic(X, ds.y_train, mem.scores, in_accuracy=acc_in, seed=seed,
                                                representation=what).summary
    save_figure(_figure(diags), out, "long_tail_buckets")
    results = {"config": {**cfg, "model": "MLP (128 hidden)", "subset_ratio": 0.7, "seed": seed},
               "n_memorized": int(mem.n_memorized(0.25)), "long_tail": diags,
               "singleton_vs_large_mean_memorization": {
                   space: [d["buckets"][0]["mean_memorization"], d["buckets"][-1]["mean_memorization"]]
                   for space, d in diags.items()}}
    write_results(out, results)
    rows = "\n".join(
        f"| {b['l']} | " + " | ".join(f"{d['buckets'][i]['n_subpopulations']} | {d['buckets'][i]['n_examples']} | "
                                      f"{_fmt(d['buckets'][i]['mean_memorization'])} | "
                                      f"{_fmt(d['buckets'][i].get('cost_of_not_fitting'))}"
                                      for d in diags.values()) + " |"
        for i, b in enumerate(diags["features"]["buckets"]))
    lines = "\n".join(
        f"- **{space}** ({d['representation']}): {d['n_subpopulations']:,} subpopulations, {d['n_singletons']:,} "
        f"singletons, Zipf exponent {d['zipf_exponent']:.2f}, τ₁·n = {_fmt(d['tau_1_times_n'])}; Spearman of the "
        f"prediction 1/ℓ with memorization {d['spearman_prediction_vs_memorization']:.3f}; cost of not fitting, all "
        f"buckets: {_fmt(d['cost_of_not_fitting_total'])}" for space, d in diags.items())
    head = " | ".join(f"{s}: subpop. | {s}: examples | {s}: mean mem. | {s}: cost of not fitting" for s in diags)
    write_readme(out, f"""# {NAME}

{DESCRIPTION}.

{cfg['n_models']} MLPs on random 70% subsets of {ds.n_train:,} Fashion-MNIST images ({int(mem.n_memorized(0.25)):,}
examples with memorization ≥ 0.25); subpopulations by k-means per class, about 10 examples each (our
operationalization), in two representation spaces:

{lines}

| ℓ | {head} |
|---|{'---|' * (4 * len(diags))}
{rows}

The cost of not fitting is Feldman's ``Σ τ_ℓ · errn_ℓ`` (Thm 2.3) with ``τ_ℓ`` of the fitted prior and ``errn_ℓ``
counting subpopulations: one of ℓ examples adds the fraction of them that the models trained on them misclassify
(a lower bound on the test accuracy those training errors cost, under the fitted prior).
Figure: `long_tail_buckets.png` (memorization by subpopulation size; the spectra with the fitted priors).
""")
    return results
