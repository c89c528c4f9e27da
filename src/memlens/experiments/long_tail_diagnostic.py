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
from ..audits.long_tail import long_tail_diagnostic
from ..data import load_dataset, make_masks
from ..measures import memorization
from ..train import MLPConfig, train_population
from ..train.population_training import standardized_features
from ._common import prepare_out_dir, save_figure, step, write_readme, write_results

NAME = "long-tail-diagnostic"
DESCRIPTION = ("Feldman 2020 on real data: Fashion-MNIST subpopulations by clustering, their long-tailed "
               "spectrum and fitted prior, and measured memorization by subpopulation size")

QUICK = {"n_train": 2000, "n_models": 32, "epochs": 10}
FULL = {"n_train": 10000, "n_models": 128, "epochs": 20}


def _figure(summary):
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    bk = summary["buckets"]
    names = [x["l"] for x in bk]
    mm = [x["mean_memorization"] if x["mean_memorization"] is not None else np.nan for x in bk]
    fm = [x["fraction_memorized"] if x["fraction_memorized"] is not None else np.nan for x in bk]
    xs = np.arange(len(names))
    a.bar(xs - 0.2, mm, width=0.4, color="#4c72b0", label="mean memorization")
    a.bar(xs + 0.2, fm, width=0.4, color="#c44e52", label="fraction with memorization ≥ 0.25")
    a.set_xticks(xs, names)
    a.set_xlabel("ℓ: training examples in the subpopulation")
    a.set_title("Measured memorization by subpopulation size")
    a.legend(frameon=False)
    spec = {int(k): v for k, v in summary["spectrum"].items()}
    sizes = np.array(sorted((ell for ell, c in spec.items() for _ in range(c)), reverse=True), dtype=float)
    ranks = np.arange(1, sizes.size + 1)
    b.loglog(ranks, sizes, ".", color="#4c72b0", label="subpopulations, by size")
    s = summary["zipf_exponent"]
    b.loglog(ranks, np.exp(summary["zipf_log_scale"]) * ranks ** -s, "--", color="#888888",
             label=f"Zipf fit, exponent {s:.2f}")
    b.set_xlabel("rank")
    b.set_ylabel("training examples")
    b.set_title("Frequency spectrum and Feldman's prior")
    b.legend(frameon=False)
    fig.tight_layout()
    return fig


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def run(out_dir, *, quick: bool = False, seed: int = 0) -> dict:
    """Run the diagnostic on a Fashion-MNIST subset (quick: 2,000 images, 32 MLPs)."""
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
    with step("long-tail diagnostic"):
        X, _ = standardized_features(ds)
        diag = long_tail_diagnostic(X, ds.y_train, mem.scores, seed=seed)
    s = diag.summary
    save_figure(_figure(s), out, "long_tail_buckets")
    b = {x["l"]: x for x in s["buckets"]}
    results = {"config": {**cfg, "model": "MLP (128 hidden)", "subset_ratio": 0.7, "seed": seed},
               "long_tail": s, "n_memorized": int(mem.n_memorized(0.25)),
               "singleton_vs_large_mean_memorization": [b["1"]["mean_memorization"], b[">16"]["mean_memorization"]]}
    write_results(out, results)
    rows = "\n".join(f"| {x['l']} | {x['n_subpopulations']} | {x['n_examples']} | {_fmt(x['mean_memorization'])} |"
                     for x in s["buckets"])
    write_readme(out, f"""# {NAME}

{DESCRIPTION}.

{cfg['n_models']} MLPs on random 70% subsets of {ds.n_train:,} Fashion-MNIST images; subpopulations: {s['method']}.
{s['n_subpopulations']:,} subpopulations, {s['n_singletons']:,} singletons, Zipf exponent {s['zipf_exponent']:.2f},
τ₁·n = {s['tau_1_times_n']:.2f}. Spearman of the prediction 1/ℓ with memorization:
{s['spearman_prediction_vs_memorization']:.3f}.

| ℓ | subpopulations | examples | mean memorization |
|---|---|---|---|
{rows}

Figure: `long_tail_buckets.png` (memorization by subpopulation size; the spectrum with the fitted prior).
""")
    return results
