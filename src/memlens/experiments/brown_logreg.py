"""Brown et al. (STOC 2021, v2) experiment 1: logistic regression on cluster labeling, sign attack.

Multiclass logistic regression (``Linear(d, N)`` + softmax, PyTorch's default initialisation) is trained by
full-batch SGD (lr 0.1, Nesterov momentum 0.99, 50 steps) on ``n = 500`` points of the subcube cluster
labeling task (``N = n``, ``d = 2n``, calibrated ``ρ``), with every singleton present twice (upsampled).
Every 2 updates it records the classification error on the training set and on the ``represented`` and
``singles`` test sets, and attacks singletons with the uninformed sign attack (5 repeats) using only the
goal label's log-probability. The paper attacks the first 3 singletons; this reproduction attacks a fixed
random subset of ``n_attack`` singletons at every checkpoint and every singleton at the end, and reports the
mean recovery error with a 95% Student-t interval, on all bits and on the free bits (noise given the
distribution), and the implied lower bound on the bits memorized per singleton (docs/theory.md, "From an attack to a
memorization bound").

The helpers in this module are shared with :mod:`memlens.experiments.brown_mlp`.
"""
from __future__ import annotations

import time

import numpy as np

from .._random import check_seed
from .._threads import limit_threads
from .._validation import check_int
from ..attacks.reconstruction import coordinate_ascent, log_prob_scorer, sign_attack
from ..evaluation.metrics import mean_ci
from ..measures.information import information_lower_bound
from ..tasks.brown_bounds import cluster_labeling_target, min_epsilon_for_bits
from ..tasks.clusters import make_cluster_labeling
from ._common import prepare_out_dir, save_figure, step, write_readme, write_results

NAME = "brown-logreg"
DESCRIPTION = ("Brown et al. STOC'21, logistic-regression figure: a sign attack on the goal log-probability "
               "recovers singleton training points, noise bits included")

#: fraction of singleton bits recovered, both models (docs/theory.md, "The cluster-labeling generator")
PAPER_RECOVERED = ">0.97"
TARGET_RECOVERED = 0.97
CONFIDENCE = 0.95

FULL = dict(n=500, d=1000, n_clusters=500, n_test=500, a=50000.0, upsample=2, steps=50, lr=0.1, momentum=0.99,
            record_every=2, attack_every=2, n_attack=16, n_attack_final=None, repeats=5)
QUICK = dict(FULL, n=100, d=200, n_clusters=100, n_test=200, n_attack=8)


# ---------------------------------------------------------------------------------------------- shared helpers

def _config(base: dict, *, n_attack, n_attack_final) -> dict:
    cfg = dict(base)
    if n_attack is not None:
        cfg["n_attack"] = check_int("n_attack", n_attack, min_value=1)
    if n_attack_final is not None:
        cfg["n_attack_final"] = check_int("n_attack_final", n_attack_final, min_value=2,
                                          hint="for a confidence interval")
    return cfg


def _seeds(seed: int) -> tuple[list[np.random.Generator], int]:
    """Generators for data, target choice, checkpoint attacks and the final attack; a torch seed."""
    children = np.random.SeedSequence(check_seed(seed)).spawn(5)
    return [np.random.default_rng(c) for c in children[:4]], int(children[4].generate_state(1)[0])


def _make_data(cfg: dict, rng):
    return make_cluster_labeling(n=cfg["n"], d=cfg["d"], n_clusters=cfg["n_clusters"], a=cfg["a"],
                                 n_test=cfg["n_test"], seed=rng)


def _linear(n_in: int, n_out: int, gen):
    """``torch.nn.Linear`` with PyTorch's default initialisation distribution, drawn from ``gen``."""
    import torch  # torch is heavy: imported on first use

    layer = torch.nn.Linear(n_in, n_out)
    bound = 1.0 / np.sqrt(n_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.uniform_(-bound, bound, generator=gen)
    return layer


def _nesterov_step(params, grads, bufs, *, lr: float, momentum: float) -> None:
    """One step of ``torch.optim.SGD(nesterov=True, dampening=0, weight_decay=0)``, written out (importing
    ``torch.optim`` costs seconds): ``b ← μ b + g``, ``p ← p − lr (g + μ b)``."""
    import torch  # torch is heavy: imported on first use

    with torch.no_grad():
        for p, g, b in zip(params, grads, bufs):
            b.mul_(momentum).add_(g)
            p.sub_(g.add(b, alpha=momentum), alpha=lr)


def _classification_errors(model, data) -> dict:
    import torch  # torch is heavy: imported on first use

    out = {}
    sets = {"train": (data.X, data.y), **data.test_sets()}
    with torch.no_grad():
        for name, (X, y) in sets.items():
            pred = model(torch.from_numpy(X)).argmax(dim=1).numpy() if len(y) else np.zeros(0)
            out[name] = float(np.mean(pred != y)) if len(y) else float("nan")
    return out


def _attack(kind: str, model, data, targets: np.ndarray, cfg: dict, rng) -> dict:
    """Run the experiment's attack on training rows ``targets``; per-target errors on all and free bits."""
    score = log_prob_scorer(model)
    goals = data.y[targets]
    if kind == "sign":
        res = sign_attack(score, d=data.d, goals=goals, repeats=cfg["repeats"], adversary="uninformed", seed=rng)
    else:
        res = coordinate_ascent(score, d=data.d, goals=goals, start="random", max_epochs=cfg["max_epochs"],
                                selection="ordered", seed=rng)
    errors = res.errors(data.X[targets])
    free = data.instance.free_mask(goals)
    return {"errors": errors, "free": free, "all": errors.mean(axis=1),
            "free_rate": (errors & free).sum(axis=1) / np.maximum(free.sum(axis=1), 1),
            "queries": res.n_queries, "evaluations": res.n_evaluations}


def _train_and_attack(model, X, y, data, cfg: dict, *, kind: str, lr_at, rng_targets, rng_attack) -> dict:
    """Full-batch Nesterov SGD; at checkpoints record errors and attack a fixed subset of singletons."""
    import torch  # torch is heavy: imported on first use

    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    singles = data.singletons
    k = min(cfg["n_attack"], singles.size)
    targets = np.sort(rng_targets.choice(singles, size=k, replace=False)) if k else singles[:0]
    params = list(model.parameters())
    bufs = [torch.zeros_like(p) for p in params]
    hist = {key: [] for key in ("updates", "train_loss", "train_error", "test_error", "represented_error",
                                "singles_error", "attack_updates", "recovery_error", "recovery_error_ci",
                                "recovery_error_free", "recovery_error_free_ci")}
    t_train = t_attack = 0.0
    for t in range(cfg["steps"] + 1):
        if t % cfg["record_every"] == 0 or t == cfg["steps"]:
            with torch.no_grad():
                hist["train_loss"].append(float(torch.nn.functional.cross_entropy(model(X_t), y_t)))
            errs = _classification_errors(model, data)
            hist["updates"].append(t)
            for name in ("train", "test", "represented", "singles"):
                hist[f"{name}_error"].append(errs[name])
        if (t % cfg["attack_every"] == 0 or t == cfg["steps"]) and k:
            tic = time.perf_counter()
            a = _attack(kind, model, data, targets, cfg, rng_attack)
            t_attack += time.perf_counter() - tic
            hist["attack_updates"].append(t)
            for key, vals in (("recovery_error", a["all"]), ("recovery_error_free", a["free_rate"])):
                mean, lo, hi = mean_ci(vals, level=CONFIDENCE)
                hist[key].append(mean)
                hist[f"{key}_ci"].append([lo, hi])
        if t == cfg["steps"]:
            break
        tic = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(X_t), y_t)  # NLLLoss of LogSoftmax, as in the paper
        grads = torch.autograd.grad(loss, params)
        _nesterov_step(params, grads, bufs, lr=lr_at(t), momentum=cfg["momentum"])
        t_train += time.perf_counter() - tic
    hist["n_attacked"] = int(k)
    hist["attacked_singletons"] = targets.tolist()
    return {"history": hist, "time_training": t_train, "time_attacks": t_attack}


def _final(kind: str, model, data, cfg: dict, rng_targets, rng_attack) -> tuple[dict, float]:
    """Attack ``n_attack_final`` singletons (all when None) of the trained model; summary with CIs."""
    singles = data.singletons
    k = singles.size if cfg["n_attack_final"] is None else min(cfg["n_attack_final"], singles.size)
    targets = np.sort(rng_targets.choice(singles, size=k, replace=False))
    tic = time.perf_counter()
    a = _attack(kind, model, data, targets, cfg, rng_attack)
    elapsed = time.perf_counter() - tic
    errs = _classification_errors(model, data)
    bound = information_lower_bound(a["errors"], free=a["free"], level=CONFIDENCE)

    def ci(vals):
        mean, lo, hi = mean_ci(vals, level=CONFIDENCE)
        return {"mean": mean, "ci_low": lo, "ci_high": hi, "confidence": CONFIDENCE}

    rec_all = ci(a["all"])
    free_frac = a["free"].mean()
    final = {
        "updates": cfg["steps"],
        "n_singletons_attacked": int(k),
        "n_singletons": int(singles.size),
        "recovery_error_all_bits": rec_all,
        "recovery_error_free_bits": ci(a["free_rate"]),
        "recovered_fraction_of_singleton_bits": 1.0 - rec_all["mean"],
        "recovered_fraction_of_singleton_bits_paper": PAPER_RECOVERED,
        "target_recovered_fraction": TARGET_RECOVERED,
        "target_met": bool(1.0 - rec_all["mean"] >= TARGET_RECOVERED),
        "singletons_with_all_bits_recovered": float(np.mean(a["all"] == 0)),
        "recovery_error_knowing_only_the_cluster": 0.5 * float(free_frac),
        "train_accuracy": 1.0 - errs["train"],
        "test_accuracy": 1.0 - errs["test"],
        "represented_accuracy": 1.0 - errs["represented"],
        "singleton_accuracy": 1.0 - errs["singles"],
        "bits_memorized_per_singleton": bound.summary(),
        "queries_per_singleton": float(np.mean(a["queries"])),
        "evaluations_per_singleton": float(np.mean(a["evaluations"])),
    }
    return final, elapsed


def _figure(hist: dict, final: dict, *, title: str, attack_label: str, updates_label: str = "Gradient updates"):
    import matplotlib  # matplotlib is heavy: imported only to draw

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    fig, ax1 = plt.subplots(figsize=(8, 5.5))
    red, blue = "tab:red", "tab:blue"
    x = np.asarray(hist["attack_updates"])
    lines = []
    if x.size:
        ci = np.asarray(hist["recovery_error_ci"], dtype=float)
        lines += ax1.plot(x, hist["recovery_error"], color=red, lw=2.5,
                          label=f"{attack_label} recovery error, all bits (mean, 95% CI; {hist['n_attacked']} "
                                "singletons)")
        ax1.fill_between(x, ci[:, 0], ci[:, 1], color=red, alpha=0.2, lw=0)
        lines += ax1.plot(x, hist["recovery_error_free"], color=red, lw=1.5, ls=(0, (5, 2)),
                          label="recovery error, free bits only")
    lines.append(ax1.axhline(final["recovery_error_knowing_only_the_cluster"], color="grey", ls=":", lw=1.5,
                             label="recovery error knowing only the cluster (no memorization)"))
    lines.append(ax1.axhline(1 - TARGET_RECOVERED, color=red, ls=":", lw=1,
                             label="paper: > 97% of bits recovered (error < 0.03)"))
    ax1.set_xlabel(updates_label)
    ax1.set_ylabel("Recovery error (fraction of wrong bits)", color=red)
    ax1.tick_params(axis="y", labelcolor=red)
    ax1.set_ylim(-0.02, 0.62)
    ax2 = ax1.twinx()
    u = hist["updates"]
    lines += ax2.plot(u, hist["train_error"], "--", color=blue, lw=2, label="Train set classification error")
    lines += ax2.plot(u, hist["represented_error"], "-.", color=blue, lw=2,
                      label="Represented classification error")
    lines += ax2.plot(u, hist["singles_error"], ":", color=blue, lw=2.5, label="Singletons classification error")
    ax2.set_ylabel("Classification error", color=blue)
    ax2.tick_params(axis="y", labelcolor=blue)
    ax2.set_ylim(-0.03, 1.03)
    ax1.legend(handles=lines, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
               frameon=False)
    ax1.set_title(title)
    fig.tight_layout()
    return fig


def _readme(name: str, title: str, cfg: dict, data_info: dict, final: dict, timings: dict, quick: bool,
            what: str) -> str:
    r_all, r_free = final["recovery_error_all_bits"], final["recovery_error_free_bits"]
    bits = final["bits_memorized_per_singleton"]
    ci_all = f"{r_all['mean']:.4f} [{r_all['ci_low']:.4f}, {r_all['ci_high']:.4f}]"
    ci_free = f"{r_free['mean']:.4f} [{r_free['ci_low']:.4f}, {r_free['ci_high']:.4f}]"
    ci_bits = (f"{bits['bits_per_target']:.1f} [{bits['ci_low']:.1f}, {bits['ci_high']:.1f}] of "
               f"{bits['entropy_bits_per_target']:.1f} free bits")
    return f"""# {name}: {title}

Reproduction of Brown, Bun, Feldman, Smith, Talwar, "When is Memorization of Irrelevant Training Data
Necessary for High-Accuracy Learning?" (STOC 2021, arXiv:2012.06421 v2), experiments section.
{"**Quick run** (smaller n, d and fewer updates): numbers are indicative only." if quick else ""}

{what}

Data: subcube cluster labeling, n = {cfg['n']}, N = {cfg['n_clusters']}, d = {cfg['d']},
rho = {data_info['rho']:.5f} (about {data_info['mean_fixed_coordinates']:.1f} fixed coordinates per cluster),
{data_info['n_singletons']} singletons ({data_info['singleton_fraction_of_clusters']:.3f} of the clusters;
0.368 expected). Test sets of {cfg['n_test']} points each.

| quantity (final model, {final['updates']} updates) | measured | paper |
|---|---|---|
| recovered fraction of singleton bits | {1 - r_all['mean']:.4f} | {PAPER_RECOVERED} |
| recovery error, all bits (95% CI, {final['n_singletons_attacked']} singletons) | {ci_all} | < 0.03 |
| recovery error, free bits (95% CI) | {ci_free} | |
| recovery error knowing only the cluster | {final['recovery_error_knowing_only_the_cluster']:.4f} | |
| singleton test accuracy | {final['singleton_accuracy']:.3f} | rises with memorization |
| represented test accuracy | {final['represented_accuracy']:.3f} | |
| bits memorized per singleton, lower bound (95% CI) | {ci_bits} | |

Target (≥ 97% of singleton bits recovered): **{"met" if final['target_met'] else "NOT met"}**.

Beside the theorem ({final['theory']['whole_sample_target']['status']}): the whole-sample target
H(X_S | P) is {final['theory']['whole_sample_target']['bits_per_singleton']:.1f} free bits per singleton
({final['theory']['whole_sample_target']['expected_singletons']:.1f} expected singletons,
{final['theory']['whole_sample_target']['total_bits']:.0f} bits in all); the measured lower bound is
{final['theory']['measured_fraction_of_target']:.3f} of it. A model holding that many bits about one example cannot be
ε-DP (pure, replace-one) for any ε below {final['theory']['min_pure_dp_epsilon']:.0f} (our derivation:
``I(X_i; M | P) ≤ ε log2 e``).
The bits-memorized bound is ``I(X_i; M | P) ≥ m_i (1 − h2(ē_i))`` on the free coordinates (docs/theory.md, "From an
attack to a memorization bound"), with the
observed error rate; the conservative version (Clopper–Pearson upper limit of the error rate) gives
{bits['bits_per_target_conservative']:.1f} bits per singleton.

Differences from the authors' code (`gavinrbrown1/training-data-memorization`): the data come from numpy's
Generator seeded with `seed` (the authors seed the global RNG with 123), so the instance differs while n, N, d
and rho are the same; many singletons are attacked and averaged with a confidence interval instead of the
first 3; the models output logits and the attack reads log p(goal) computed without float32 rounding to 0;
in the sign attack an exact tie abstains (the authors count it as a vote for -1); errors are recorded by the
number of updates applied.

Time: {timings['total']:.0f} s in all (training {timings['training']:.0f} s, attacks {timings['attacks']:.0f} s), one
BLAS thread. Files: `results.json` (every number, per-checkpoint history), the figure.
"""


def _run(kind: str, *, name: str, title: str, figure: str, attack_label: str, what: str, cfg: dict,
         build_model, lr_at, train_data, out_dir, quick: bool, seed: int) -> dict:
    out = prepare_out_dir(out_dir)
    import torch  # torch is heavy: imported on first use

    tic = time.perf_counter()
    with limit_threads(1):
        (rng_data, rng_targets, rng_attack, rng_final), torch_seed = _seeds(seed)
        data = _make_data(cfg, rng_data)
        t_data = time.perf_counter() - tic
        gen = torch.Generator().manual_seed(torch_seed)
        model = build_model(data, gen)
        X, y = train_data(data)
        with step(f"training ({cfg['steps']} updates) with the {kind} attack at checkpoints"):
            run = _train_and_attack(model, X, y, data, cfg, kind=kind, lr_at=lr_at, rng_targets=rng_targets,
                                    rng_attack=rng_attack)
        with step("the attack on the final model"):
            final, t_final = _final(kind, model, data, cfg, rng_targets, rng_final)
    total = time.perf_counter() - tic
    data_info = {"rho": data.instance.rho, "mean_fixed_coordinates": float(data.instance.n_fixed.mean()),
                 "n_singletons": int(data.singletons.size),
                 "singleton_fraction_of_clusters": data.singletons.size / data.n_clusters,
                 "singleton_fraction_expected": 0.368}
    final["theory"] = _theory(cfg, data, final)
    timings = {"data": t_data, "training": run["time_training"], "attacks": run["time_attacks"] + t_final,
               "final_attack": t_final, "total": total}
    results = {"experiment": name, "paper": "Brown, Bun, Feldman, Smith, Talwar, STOC 2021 (arXiv:2012.06421 v2)",
               "quick": quick, "seed": seed, "settings": cfg, "data": data_info, "final": final,
               "history": run["history"], "timings_s": timings}
    fig = _figure(run["history"], final, title=title, attack_label=attack_label)
    save_figure(fig, out, figure)
    write_results(out, results)
    write_readme(out, _readme(name, title, cfg, data_info, final, timings, quick, what))
    return results


def _theory(cfg: dict, data, final: dict) -> dict:
    """The theorem beside the measurement (:mod:`memlens.tasks.brown_bounds`): the whole-sample target ``H(X_S | P)``
    of this task, the measured bound as a fraction of it, and the smallest pure-DP ε the measurement allows."""
    target = cluster_labeling_target(n=cfg["n"], d=cfg["d"], rho=data.instance.rho, n_clusters=cfg["n_clusters"])
    bits = final["bits_memorized_per_singleton"]["bits_per_target"]
    return {"whole_sample_target": target.to_dict(),
            "measured_fraction_of_target": target.fraction(bits),
            "measured_total_bits_over_singletons": bits * int(data.singletons.size),
            "min_pure_dp_epsilon": min_epsilon_for_bits(bits),
            "note": "the paper proves Omega(n d) for this task without a usable constant; the target is H(X_S | P), "
                    "the right-hand side of the conjectured whole-sample statement up to (1 - o(1)); the epsilon is "
                    "our derivation: a pure epsilon-DP model holds at most epsilon log2(e) bits about one example"}


# ---------------------------------------------------------------------------------------------- this experiment

def run(out_dir, *, quick: bool = False, seed: int = 0, n_attack: int | None = None,
        n_attack_final: int | None = None) -> dict:
    """Reproduce the logistic-regression figure; writes ``logit_figure.png``, ``results.json``, ``README.md``.

    Parameters
    ----------
    out_dir : path
    quick : bool, keyword-only
        n = 100, d = 200 (under a minute).
    seed : int, keyword-only
    n_attack : int, optional, keyword-only
        Singletons attacked at each checkpoint (default 16, quick 8; the paper attacks 3).
    n_attack_final : int, optional, keyword-only
        Singletons attacked on the final model (default: all of them).
    """
    cfg = _config(QUICK if quick else FULL, n_attack=n_attack, n_attack_final=n_attack_final)

    final_targets = ("every singleton" if cfg["n_attack_final"] is None
                     else f"{cfg['n_attack_final']} singletons")

    def build_model(data, gen):
        return _linear(data.d, data.n_clusters, gen)  # logits; the loss applies the log-softmax

    return _run("sign", name=NAME, title="Logistic Regression, Gradient Attack", figure="logit_figure",
                attack_label="Sign attack", cfg=cfg, build_model=build_model, lr_at=lambda t: cfg["lr"],
                train_data=lambda data: data.upsampled(cfg["upsample"]), out_dir=out_dir, quick=quick,
                seed=seed, what=(
                    f"Model: multiclass logistic regression, full-batch SGD (lr {cfg['lr']}, Nesterov momentum "
                    f"{cfg['momentum']}), {cfg['steps']} updates, singletons upsampled x{cfg['upsample']}. "
                    f"Attack: uninformed sign attack, {cfg['repeats']} repeats, black box on the goal label's "
                    f"log-probability, on {cfg['n_attack']} singletons every {cfg['attack_every']} updates "
                    f"(the paper: 3) and on {final_targets} of the final model."))
