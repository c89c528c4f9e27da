"""Which memorization proxy can I trust? Every proxy against Feldman–Zhang memorization, side by side in one run.

    python benchmarks/proxies.py [--quick] [--out DIR]

For each setting (digits with logistic regression and with an MLP, a Fashion-MNIST subset with an MLP and, with 128
models on 2,000 images, the built-in CNN): a
population of K models on random 70% subsets gives memorization (the reference) and, from two disjoint halves,
the noise ceiling of its Spearman correlation; one model trained on every example gives the proxies of
``memlens audit --proxies``. For each proxy: Spearman with memorization, AUC and top-k precision for the examples
with memorization >= 0.25 (k = their number), top-1% overlap, and its cost in seconds and in units of one model of
the population (population seconds / K, the population trained vectorized on the same core).

Logistic regression on digits adds: the agreement of influence functions with exact leave-one-out refits (every
training example, one vectorized refit each); C-scores from populations at subset ratios 0.3, 0.5, 0.7, 0.9; the
linear datamodeling score (LDS) of the influence-function attributions and of the population's own Feldman–Zhang
influence, on held-out models trained on random halves; and the precision of the influence function's top test-train
pairs among the population's high-influence pairs.

Writes ``DIR/proxies.json`` and ``DIR/proxies.md`` (default ``benchmarks/``; ``--quick``: small sizes into
``benchmarks/out``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from memlens._validation import MemlensWarning  # noqa: E402
from memlens.audits.proxies import audit_proxies  # noqa: E402
from memlens.data import load_dataset, make_masks  # noqa: E402
from memlens.measures import gradient_proxies as G  # noqa: E402
from memlens.measures import memorization  # noqa: E402
from memlens.measures import proxies as P  # noqa: E402
from memlens.train import LogisticConfig, MLPConfig, train_population  # noqa: E402
from memlens.train.logreg import fit_logistic  # noqa: E402
from memlens.train.population_training import standardized_features  # noqa: E402


def _load():
    return os.getloadavg()[0]


def setting(name, ds, model_cfg, K, seed=0):
    masks = make_masks(K, ds.n_train, p=0.7, seed=seed)
    t0 = time.perf_counter()
    pop = train_population(ds, model=model_cfg, masks=masks, seed=seed)
    pop_s = time.perf_counter() - t0
    mem = memorization(pop)
    model = "logreg" if isinstance(model_cfg, LogisticConfig) else "mlp"
    prox = audit_proxies(ds, model=model, model_config=model_cfg.to_dict(), memorization=mem, pop=pop, seed=seed + 1,
                         population_seconds=pop_s)
    return {"name": name, "dataset": ds.name, "n_train": ds.n_train, "model": model, "K": K,
            "population_seconds": pop_s, "n_memorized": int(mem.n_memorized(0.25)),
            "noise_ceiling": prox.summary["noise_ceiling"], "table": prox.summary["table"]}, pop, mem


def logreg_extras(ds, pop, mem, *, quick: bool, seed=0) -> dict:
    X, Xte = standardized_features(ds)
    y, yte = ds.y_train, ds.y_test
    cfg = LogisticConfig()
    out = {}
    # influence functions against exact leave-one-out refits
    n = 400 if quick else ds.n_train
    full = fit_logistic(X[:n], y[:n], np.ones((1, n)), n_classes=ds.n_classes, C=cfg.C, tol=1e-10, precision="float64")
    t0 = time.perf_counter()
    loo = fit_logistic(X[:n], y[:n], 1.0 - np.eye(n), n_classes=ds.n_classes, C=cfg.C, tol=1e-10, precision="float64")
    t_loo = time.perf_counter() - t0
    t0 = time.perf_counter()
    inf = G.logistic_influence(full.coef[0], full.intercept[0], X[:n], y[:n], C=cfg.C, newton=True)
    t_inf = time.perf_counter() - t0

    def loss(coef, b, Xr, yr):
        Z = Xr @ coef + b
        Z = Z - Z.max(1, keepdims=True)
        return -(Z[np.arange(len(yr)), yr] - np.log(np.exp(Z).sum(1)))

    exact = np.array([loss(loo.coef[i], loo.intercept[i], X[i:i + 1], y[i:i + 1])[0] for i in range(n)]) - inf.loss
    out["loo_agreement"] = {
        "n": n, "seconds_exact_refits": t_loo, "seconds_influence": t_inf,
        "first_order": {"spearman": float(stats.spearmanr(inf.self_influence, exact).statistic),
                        "pearson": float(stats.pearsonr(inf.self_influence, exact).statistic)},
        "newton": {"spearman": float(stats.spearmanr(inf.newton, exact).statistic),
                   "pearson": float(stats.pearsonr(inf.newton, exact).statistic)}}
    # C-scores from populations at several subset ratios
    ratios = (0.3, 0.5, 0.7, 0.9)
    Kc = 16 if quick else 64
    mk, cr = [], []
    t0 = time.perf_counter()
    for j, r in enumerate(ratios):
        m = make_masks(Kc, ds.n_train, p=r, seed=100 + j)
        p = train_population(ds, model=cfg, masks=m, seed=100 + j)
        mk.append(m)
        cr.append(p.signal("train", "correct"))
    c = P.c_scores(mk, cr)
    out["c_scores"] = {"ratios": list(ratios), "models_per_ratio": Kc, "seconds": time.perf_counter() - t0,
                       **P.proxy_agreement(1.0 - c, mem.scores)}
    # LDS on held-out models (random halves), output = minus the test loss
    m_hold = 32 if quick else 100
    hm = make_masks(m_hold, ds.n_train, p=0.5, seed=200)
    hp = train_population(ds, model=cfg, masks=hm, seed=200)
    outputs = -hp.signal("test", "loss").astype(np.float64)                       # (m, n_test)
    fullm = fit_logistic(X, y, np.ones((1, ds.n_train)), n_classes=ds.n_classes, C=cfg.C, tol=cfg.tol)
    t0 = time.perf_counter()
    inf_all = G.logistic_influence(fullm.coef[0], fullm.intercept[0], X, y, C=cfg.C, X_test=Xte, y_test=yte)
    t_pair = time.perf_counter() - t0
    tau_if = inf_all.pairwise                                # removing i raises test loss: including i lowers it
    V = pop.masks.astype(np.float64)
    M = -pop.signal("test", "loss").astype(np.float64)
    n_in, n_out = V.sum(0), (1 - V).sum(0)
    tau_fz = ((V.T @ M) / n_in[:, None] - ((1 - V).T @ M) / n_out[:, None]).T   # (n_test, n_train)
    t0 = time.perf_counter()
    tm = make_masks(8, ds.n_train, p=0.5, seed=300)                  # TRAK's ensemble: 8 models on random halves
    tf = fit_logistic(X, y, tm.astype(np.float64), n_classes=ds.n_classes, C=cfg.C, tol=cfg.tol)
    tr = G.trak([([tf.coef[k]], [tf.intercept[k]]) for k in range(8)], X, y, X_eval=Xte, y_eval=yte, seed=0)
    t_trak = time.perf_counter() - t0
    out["lds"] = {"held_out_models": m_hold, "subset_ratio": 0.5,
                  "trak": P.linear_datamodeling_score(tr.pairwise, hm, outputs)["lds"], "seconds_trak": t_trak,
                  "influence_function": P.linear_datamodeling_score(tau_if, hm, outputs)["lds"],
                  "feldman_zhang_population": P.linear_datamodeling_score(tau_fz, hm, outputs)["lds"],
                  "seconds_influence_pairs": t_pair}
    # precision of the influence function's top pairs among the population's high-influence pairs (correctness)
    Mc = pop.signal("test", "correct").astype(np.float64)
    infl_c = ((V.T @ Mc) / n_in[:, None] - ((1 - V).T @ Mc) / n_out[:, None])   # (n_train, n_test)
    memd = np.nan_to_num(mem.scores, nan=-1) >= 0.25
    fz_pairs = {(i, j) for i, j in zip(*np.nonzero((infl_c >= 0.15) & memd[:, None]))}
    k = len(fz_pairs)
    order = np.argsort(-tau_if.T.ravel(), kind="stable")[:k]
    top = {(int(o // tau_if.shape[0]), int(o % tau_if.shape[0])) for o in order}
    out["pairs"] = {"n_high_influence_pairs": k, "precision_of_top_influence_function_pairs":
                    len(top & fz_pairs) / k if k else None}
    return out


def cnn_setting(*, quick: bool) -> dict:
    """The built-in CNN (strided, 8 epochs) on 2,000 Fashion-MNIST images: the module path of --proxies."""
    from memlens.train import configure_model

    fm = load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    sub = fm.subset(train_index=np.sort(rng.choice(fm.n_train, 2000, replace=False)), test_index=np.arange(1000),
                    name="fashion-mnist-2000")
    _, cfg = configure_model("cnn", {"arch": "strided", "epochs": 8})
    K = 16 if quick else 128
    masks = make_masks(K, sub.n_train, p=0.7, seed=0)
    t0 = time.perf_counter()
    pop = train_population(sub, model=cfg, masks=masks, seed=0)
    pop_s = time.perf_counter() - t0
    mem = memorization(pop)
    prox = audit_proxies(sub, model="cnn", model_config=cfg, memorization=mem, pop=pop, seed=1,
                         population_seconds=pop_s)
    return {"name": "Fashion-MNIST (2,000 training images), the built-in CNN (strided, 8 epochs, augmentation)",
            "dataset": sub.name, "n_train": sub.n_train, "model": "cnn", "K": K, "population_seconds": pop_s,
            "n_memorized": int(mem.n_memorized(0.25)), "noise_ceiling": prox.summary["noise_ceiling"],
            "table": prox.summary["table"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--render", type=Path, default=None, metavar="JSON", help="rewrite the .md from a results file")
    ap.add_argument("--add-cnn", type=Path, default=None, metavar="JSON",
                    help="run the CNN setting alone and add it to a results file")
    args = ap.parse_args(argv)
    if args.add_cnn is not None:          # the CNN setting alone, appended to an existing results file
        torch.set_num_threads(1)
        warnings.simplefilter("ignore", MemlensWarning)
        res = json.loads(args.add_cnn.read_text())
        res["settings"] = [s for s in res["settings"] if not s["name"].startswith("Fashion-MNIST (2,000")]
        res["settings"].append(cnn_setting(quick=args.quick))
        args.add_cnn.write_text(json.dumps(res, indent=2, default=float) + "\n")
        args.add_cnn.with_suffix(".md").write_text(markdown(res))
        return 0
    if args.render is not None:
        res = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(markdown(res))
        return 0
    out = args.out or (ROOT / "benchmarks" / ("out" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", MemlensWarning)
    q = args.quick
    K = 32 if q else 256
    t_start = time.perf_counter()
    res = {"quick": q, "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "load_start": _load(),
           "settings": []}
    digits = load_dataset("digits")
    row, pop, mem = setting("digits, logistic regression", digits, LogisticConfig(), K)
    row["extras"] = logreg_extras(digits, pop, mem, quick=q)
    res["settings"].append(row)
    res["settings"].append(setting("digits, MLP (128 hidden, 20 epochs)", digits, MLPConfig(), K)[0])
    fm = load_dataset("fashion-mnist")
    n_sub = 2000 if q else 10000
    rng = np.random.default_rng(0)
    sub = fm.subset(train_index=np.sort(rng.choice(fm.n_train, n_sub, replace=False)),
                    test_index=np.arange(min(fm.n_test, 2000)), name=f"fashion-mnist-{n_sub}")
    res["settings"].append(setting(f"Fashion-MNIST ({n_sub:,} training images), MLP (128 hidden, 20 epochs)", sub,
                                   MLPConfig(), K)[0])
    res["settings"].append(cnn_setting(quick=q))
    res["total_s"] = time.perf_counter() - t_start
    res["load_end"] = _load()
    (out / "proxies.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (out / "proxies.md").write_text(markdown(res))
    print(markdown(res))
    return 0


def _f(x, spec=".2f"):
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def markdown(res: dict) -> str:
    L = [f"# Memorization proxies against Feldman–Zhang memorization (`benchmarks/proxies.py"
         f"{' --quick' if res['quick'] else ''}`)\n",
         f"Run {res['started_utc']} UTC, {res['total_s']:.0f} s, one thread; load {res['load_start']:.2f} at start, "
         f"{res['load_end']:.2f} at end. Proxies from one model trained on every example; memorization from the "
         "population (70% subsets). k = the number of examples with memorization ≥ 0.25. Cost: seconds on one core "
         "(training of the one model included) and in units of one population model (population seconds / K).\n"]
    for s in res["settings"]:
        c = s["noise_ceiling"]
        L.append(f"## {s['name']}: {s['K']} models, {s['n_train']:,} training examples\n")
        L.append(f"Population: {s['population_seconds']:.1f} s ({s['population_seconds'] / s['K']:.3f} s per model); "
                 f"k = {s['n_memorized']}; noise ceiling of the Spearman correlation **{_f(c['ceiling'])}** (two "
                 f"halves of {c['n_models_per_half']} models: {_f(c['half_spearman'])}, Spearman–Brown corrected); "
                 f"**tie limit {_f(c.get('tie_limit'))}**: the Spearman correlation of the estimate with itself, its "
                 "ties broken at random, the most a proxy with distinct values can reach (on a 0/1 signal most "
                 "examples have memorization exactly 0). Attainable: the smaller of the two.\n")
        L.append("| proxy | Spearman | gap to ceiling | gap to attainable | AUC (memorized) | top-k precision | "
                 "top-1% overlap | seconds | cost (models) | share of population |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        attainable = min(c["ceiling"], c.get("tie_limit", c["ceiling"]))
        for name, a in sorted(s["table"].items(), key=lambda kv: -(kv[1]["top_k_precision"] or 0)):
            gap = c["ceiling"] - a["spearman"] if a["spearman"] is not None else None
            gap2 = attainable - a["spearman"] if a["spearman"] is not None else None
            L.append(f"| {name} | {_f(a['spearman'])} | {_f(gap)} | {_f(gap2)} | {_f(a['auc'])} | "
                     f"{_f(a['top_k_precision'])} | "
                     f"{_f(a['top_1pct_overlap'])} | {a['seconds']:.2f} | {_f(a['cost_models'], '.1f')} | "
                     f"{_f(100 * a['cost_fraction_of_population'], '.1f')}% |")
        L.append("")
        ex = s.get("extras")
        if ex:
            la = ex["loo_agreement"]
            L.append(f"\nInfluence functions against exact leave-one-out refits ({la['n']:,} examples, one refit each, "
                     f"{la['seconds_exact_refits']:.1f} s vectorized; influence {la['seconds_influence']:.2f} s): "
                     f"first order Spearman {la['first_order']['spearman']:.4f} (Pearson "
                     f"{la['first_order']['pearson']:.3f}); one-step leave-one-out Spearman "
                     f"{la['newton']['spearman']:.4f} (Pearson {la['newton']['pearson']:.3f}).\n")
            cs = ex["c_scores"]
            L.append(f"C-scores (1 − C) from {cs['models_per_ratio']} models at each subset ratio "
                     f"{', '.join(map(str, cs['ratios']))} ({cs['seconds']:.1f} s): Spearman {_f(cs['spearman'])}, "
                     f"AUC {_f(cs['auc'])}, top-k precision {_f(cs['top_k_precision'])}.\n")
            ld = ex["lds"]
            L.append(f"Linear datamodeling score on {ld['held_out_models']} held-out models (random halves; output: "
                     f"minus the test loss): influence-function attributions {_f(ld['influence_function'], '.3f')}, "
                     f"TRAK (8 models on random halves, {ld['seconds_trak']:.1f} s; its output is the margin) "
                     f"{_f(ld['trak'], '.3f')}, "
                     f"the population's own Feldman–Zhang influence {_f(ld['feldman_zhang_population'], '.3f')}.\n")
            pr = ex["pairs"]
            L.append(f"Top test–train pairs of the influence function among the population's "
                     f"{pr['n_high_influence_pairs']} high-influence pairs (influence ≥ 0.15 on correctness, memorized "
                     f"training example): precision {_f(pr['precision_of_top_influence_function_pairs'])}.\n")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
