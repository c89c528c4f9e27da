"""Reproduction ``brown-next-symbol``: next-symbol prediction makes a small language model store its singletons' noise.

Brown, Bun, Feldman, Smith & Talwar (STOC 2021, arXiv:2012.06421), docs/theory.md: on next-symbol prediction an accurate
learner memorizes almost all of its singletons, ``I(X_S; M | P) = (1 − o(1)) H(X_S | P)``, including the noise that
is irrelevant to the task. The paper runs no experiment on this task and its exact definition is not available
(docs/theory.md, "Next-symbol prediction"), so this reproduction uses the documented interpretation of
:mod:`memlens.tasks.next_symbol`: noisy
copies of long-tailed (Zipf) subpopulations' reference strings, followed by the subpopulation's next symbol.

A small causal transformer (:mod:`memlens.train.autoregressive`) is trained as a language model on the sequences,
for several widths. At checkpoints across training it measures the next-symbol accuracy on fresh copies of
singleton, frequent and unseen subpopulations, and how much of each singleton's noise the model reproduces:
greedy continuation from the copy's first ``prompt_length`` symbols (extraction) and teacher-forced argmax
predictions (every position), each turned into a lower bound on ``I(X_i; M | P)`` in bits by the bound of
docs/theory.md ("From an attack to a memorization bound"), h2 bound
generalized with Fano's inequality. Controls: the same measurement on fresh copies of the same subpopulations
(noise the model never saw: bound ≈ 0), and on the copies of frequent subpopulations.
"""
from __future__ import annotations

import time

import numpy as np

from .._threads import limit_threads
from ..models.char_lm import AutoregressiveConfig, argmax_predictions, greedy_continue, next_token_logprobs
from ..tasks.brown_bounds import min_epsilon_for_bits, next_symbol_target
from ..tasks.next_symbol import expected_singletons, make_next_symbol_data, noise_recovery, symbol_entropy_bits
from ..train.autoregressive import train_autoregressive
from ._common import prepare_out_dir, save_figure, step, write_readme, write_results

NAME = "brown-next-symbol"
DESCRIPTION = ("Brown et al. next-symbol prediction: singleton vs frequent accuracy of a small language model and "
               "the bits of singleton noise it memorizes, over training time and model size")

SETTINGS = {
    "full": dict(n=256, alphabet_size=8, prefix_length=24, noise=0.1, prior="zipf", exponent=1.0, n_test=400,
                 frequent_min=3, prompt_length=8, widths=(16, 32, 64), depth=2, n_heads=4, dropout=0.1, steps=1000,
                 eval_every=100, batch_size=64, lr=3e-3, warmup_steps=50, max_control=200),
    "quick": dict(n=96, alphabet_size=8, prefix_length=16, noise=0.1, prior="zipf", exponent=1.0, n_test=150,
                  frequent_min=3, prompt_length=6, widths=(16, 48), depth=2, n_heads=4, dropout=0.1, steps=320,
                  eval_every=40, batch_size=48, lr=4e-3, warmup_steps=20, max_control=100),
}

COUNT_BINS = ((0, 0, "0"), (1, 1, "1"), (2, 2, "2"), (3, 5, "3-5"), (6, None, "6+"))


def _accuracy(model, sample, bos: int) -> float:
    if len(sample) == 0:
        return float("nan")
    lp = next_token_logprobs(model, sample.tokens(bos=bos)[:, :-1])
    return float(np.mean(lp.argmax(axis=1) == sample.targets))


def evaluate(model, data, *, prompt_length: int, max_control: int = 200) -> dict:
    """Every checkpoint metric of one model on one data set (plain floats and summary dicts)."""
    task, train, bos, length = data.task, data.train, data.task.alphabet_size, data.task.prefix_length
    tok = train.tokens(bos=bos)
    out = {f"acc_{name}": _accuracy(model, s, bos) for name, s in data.tests.items()}
    pred = next_token_logprobs(model, tok[:, :-1]).argmax(axis=1) == train.targets
    out["acc_train"] = float(pred.mean())
    out["acc_train_singletons"] = float(pred[data.singletons].mean()) if data.singletons.size else float("nan")

    def greedy(sample, rows):
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return None
        prompts = sample.tokens(bos=bos)[rows, :1 + prompt_length]
        rec = greedy_continue(model, prompts, length - prompt_length)
        return noise_recovery(rec, sample, task, start=prompt_length, index=rows).summary()

    out["singletons_greedy"] = greedy(train, data.singletons)
    tf = argmax_predictions(model, tok[data.singletons])[:, :length] if data.singletons.size else None
    out["singletons_teacher_forced"] = (noise_recovery(tf, train, task, start=0, index=data.singletons).summary()
                                        if tf is not None else None)
    out["frequent_greedy"] = greedy(train, data.frequent[:max_control])
    out["fresh_singles_greedy"] = greedy(data.tests["singles"], np.arange(min(len(data.tests["singles"]),
                                                                                 max_control)))
    return out


def _accuracy_by_count(model, data) -> dict:
    test, bos = data.tests["test"], data.task.alphabet_size
    counts = data.counts[test.subpopulation]
    hit = next_token_logprobs(model, test.tokens(bos=bos)[:, :-1]).argmax(axis=1) == test.targets
    out = {}
    for lo, hi, label in COUNT_BINS:
        sel = (counts >= lo) & (counts <= (hi if hi is not None else np.inf))
        out[label] = {"n": int(sel.sum()), "accuracy": float(hit[sel].mean()) if sel.any() else float("nan")}
    return out


def _get(entry: dict, key: str, field: str | None = None) -> float:
    value = entry.get(key)
    if field is not None:
        value = value.get(field) if isinstance(value, dict) else None
    return float("nan") if value is None else float(value)


def _figures(out, runs: dict, cfg: dict, entropy: dict) -> list[str]:
    import matplotlib  # matplotlib is heavy: imported only to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(runs)))
    names = []

    from matplotlib.lines import Line2D  # matplotlib is heavy: imported only to draw

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for (width, res), c in zip(runs.items(), colors):
        hist = res["history"]
        steps = [h["step"] for h in hist]
        axes[0].plot(steps, [_get(h, "acc_singles") for h in hist], "-", color=c)
        axes[0].plot(steps, [_get(h, "acc_frequent") for h in hist], "--", color=c)
        axes[1].plot(steps, [_get(h, "singletons_greedy", "bits_lower_bound") for h in hist], "-", color=c)
        axes[1].plot(steps, [_get(h, "singletons_teacher_forced", "bits_lower_bound") for h in hist], "--", color=c)
        axes[2].plot(steps, [_get(h, "singletons_greedy", "noise_recall") for h in hist], "-", color=c)
        axes[2].plot(steps, [_get(h, "frequent_greedy", "noise_recall") for h in hist], "--", color=c)
        axes[2].plot(steps, [_get(h, "fresh_singles_greedy", "noise_recall") for h in hist], ":", color=c)
    width_keys = [Line2D([], [], color=c, lw=2, label=f"width {w} ({runs[w]['n_parameters'] / 1e3:.0f}k params)")
                  for w, c in zip(runs, colors)]

    def key(style, label, color="0.3"):
        return Line2D([], [], color=color, ls=style, label=label)

    chance = 1.0 / cfg["alphabet_size"]
    axes[0].axhline(chance, color="grey", lw=1, ls=":")
    axes[0].set(xlabel="training steps", ylabel="next-symbol accuracy on fresh copies",
                title="Accuracy: singleton vs frequent subpopulations", ylim=(-0.02, 1.3))
    axes[0].legend(handles=[key("-", "singleton subpopulations"), key("--", "frequent subpopulations"),
                            key(":", f"chance 1/A = {chance:.3f}", "grey")], fontsize=7, loc="upper right")
    axes[1].axhline(entropy["greedy"], color="black", lw=1, ls="-")
    axes[1].axhline(entropy["full"], color="black", lw=1, ls="--")
    axes[1].set(xlabel="training steps", ylabel="bits per singleton (lower bound on I(X_i; M | P))",
                title="Memorized information per singleton", ylim=(-0.5, 1.5 * entropy["full"]))
    axes[1].legend(handles=[
        key("-", "greedy continuation of the copy"), key("--", "teacher-forced prediction"),
        key("-", f"H(continued symbols | P) = {entropy['greedy']:.1f} bits", "black"),
        key("--", f"H(whole copy | P) = {entropy['full']:.1f} bits", "black")], fontsize=7, loc="upper right")
    axes[2].set(xlabel="training steps", ylabel="fraction of noise symbols reproduced",
                title="Noise reproduced by greedy continuation", ylim=(-0.02, 1.35))
    axes[2].legend(handles=[key("-", "singletons (trained copy)"),
                                         key("--", "frequent subpopulations (trained copy)"),
                                         key(":", "fresh copy of a singleton subpop. (control)")],
                   fontsize=7, loc="upper right")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.legend(handles=width_keys, loc="lower center", ncol=len(width_keys), fontsize=8, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("Brown et al. next-symbol prediction (interpretation): noisy copies of Zipf subpopulations, "
                 f"n={cfg['n']}, A={cfg['alphabet_size']}, L={cfg['prefix_length']}, noise={cfg['noise']}")
    names.append(str(save_figure(fig, out, "training_curves").name))

    widths = list(runs)
    params = [runs[w]["n_parameters"] for w in widths]
    final = [runs[w]["final"] for w in widths]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    axes[0].plot(params, [_get(f, "acc_singles") for f in final], "o-", label="singleton subpopulations")
    axes[0].plot(params, [_get(f, "acc_frequent") for f in final], "s--", label="frequent subpopulations")
    axes[0].plot(params, [_get(f, "acc_unseen") for f in final], "^:", label="unseen subpopulations")
    axes[0].axhline(chance, color="grey", lw=1, ls=":", label="chance 1/A")
    axes[0].set(xscale="log", xlabel="model parameters", ylabel="next-symbol accuracy (final)",
                title="Accuracy against model size", ylim=(-0.02, 1.02))
    axes[1].plot(params, [_get(f, "singletons_greedy", "fraction_of_entropy") for f in final], "o-",
                 label="singletons, greedy continuation")
    axes[1].plot(params, [_get(f, "singletons_teacher_forced", "fraction_of_entropy") for f in final], "s--",
                 label="singletons, teacher forced")
    axes[1].plot(params, [_get(f, "fresh_singles_greedy", "fraction_of_entropy") for f in final], "^:",
                 label="fresh copies (control)")
    axes[1].axhline(1.0, color="black", lw=1, label="theory for accurate learners: (1 − o(1)) H(X_i | P)")
    axes[1].set(xscale="log", xlabel="model parameters", ylabel="bound / H(X_i | P)",
                title="Fraction of the singleton's entropy memorized", ylim=(-0.02, 1.1))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    names.append(str(save_figure(fig, out, "model_size").name))

    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = [b[2] for b in COUNT_BINS]
    bar = 0.8 / len(widths)
    for j, (w, c) in enumerate(zip(widths, colors)):
        acc = [runs[w]["accuracy_by_count"][lab]["accuracy"] for lab in labels]
        ax.bar(np.arange(len(labels)) + (j - (len(widths) - 1) / 2) * bar, acc, bar, color=c, label=f"width {w}")
    ax.axhline(chance, color="grey", lw=1, ls=":", label="chance 1/A")
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set(xlabel="training copies of the test sequence's subpopulation",
           ylabel="next-symbol accuracy (i.i.d. test set)", title="Accuracy by subpopulation frequency",
           ylim=(0, 1.02))
    ax.legend(fontsize=8)
    names.append(str(save_figure(fig, out, "accuracy_by_count").name))
    return names


def run(out_dir, *, quick: bool = False, seed: int = 0) -> dict:
    """Train the models, measure, and write figures, ``results.json`` and ``README.md`` into ``out_dir``."""
    out = prepare_out_dir(out_dir)
    cfg = dict(SETTINGS["quick" if quick else "full"])
    t_start = time.perf_counter()
    ss = np.random.SeedSequence(seed)
    data_seed, *model_seeds = ss.spawn(1 + len(cfg["widths"]))
    data = make_next_symbol_data(cfg["n"], alphabet_size=cfg["alphabet_size"], prefix_length=cfg["prefix_length"],
                                 noise=cfg["noise"], prior=cfg["prior"], exponent=cfg["exponent"],
                                 n_test=cfg["n_test"], frequent_min=cfg["frequent_min"],
                                 seed=np.random.default_rng(data_seed))
    task, train = data.task, data.train
    h = symbol_entropy_bits(alphabet_size=task.alphabet_size, noise=task.noise)
    entropy = {"per_symbol": h, "full": h * task.prefix_length,
               "greedy": h * (task.prefix_length - cfg["prompt_length"])}
    tokens = train.tokens(bos=task.alphabet_size)
    runs = {}
    with limit_threads(1):
        for width, mseed in zip(cfg["widths"], model_seeds):
            config = AutoregressiveConfig(vocab_size=task.alphabet_size + 1, context_length=tokens.shape[1],
                                          width=width, depth=cfg["depth"], n_heads=cfg["n_heads"],
                                          dropout=cfg["dropout"])
            with step(f"transformer of width {width}: {cfg['steps']} steps with evaluations"):
                res = train_autoregressive(
                    tokens, config=config, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"],
                    lr_schedule="cosine", warmup_steps=cfg["warmup_steps"], seed=np.random.default_rng(mseed),
                    eval_every=cfg["eval_every"],
                    callback=lambda step, model: evaluate(model, data, prompt_length=cfg["prompt_length"],
                                                          max_control=cfg["max_control"]))
            runs[width] = {"config": config.to_dict(), "n_parameters": res.n_parameters, "seconds": res.seconds,
                           "history": list(res.history), "final": res.history[-1],
                           "accuracy_by_count": _accuracy_by_count(res.model, data)}
    figures = _figures(out, runs, cfg, entropy)
    largest = runs[cfg["widths"][-1]]["final"]
    results = {
        "name": NAME,
        "quick": quick,
        "seed": seed,
        "interpretation": ("next-symbol task of Brown et al. as documented in memlens.tasks.next_symbol (the paper's "
                           "exact definition is not available; docs/theory.md, 'Next-symbol prediction')"),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "data": {
            "n_train": len(train), "n_subpopulations": task.n_subpopulations,
            "n_singletons": int(data.singletons.size),
            "expected_singletons": expected_singletons(task.frequencies, n=len(train)),
            "n_frequent_sequences": int(data.frequent.size),
            "n_unseen_subpopulations": int(np.sum(data.counts == 0)),
            "resampled_rate": float(train.resampled.mean()), "changed_rate": float(train.changed.mean()),
            "expected_changed_rate": task.reference_error,
        },
        "entropy_bits": entropy,
        "models": {str(w): r for w, r in runs.items()},
        "summary": {
            "largest_width": cfg["widths"][-1],
            "acc_singles": largest["acc_singles"], "acc_frequent": largest["acc_frequent"],
            "acc_unseen": largest["acc_unseen"], "chance": 1.0 / task.alphabet_size,
            "acc_train_singletons": largest["acc_train_singletons"],
            "singleton_bits_greedy": largest["singletons_greedy"]["bits_lower_bound"],
            "singleton_bits_greedy_ci95": largest["singletons_greedy"]["bits_ci95"],
            "singleton_bits_teacher_forced": largest["singletons_teacher_forced"]["bits_lower_bound"],
            "singleton_bits_teacher_forced_ci95": largest["singletons_teacher_forced"]["bits_ci95"],
            "singleton_entropy_bits": entropy["full"],
            "singleton_fraction_of_entropy_teacher_forced":
                largest["singletons_teacher_forced"]["fraction_of_entropy"],
            "singleton_noise_recall": largest["singletons_greedy"]["noise_recall"],
            "frequent_noise_recall": largest["frequent_greedy"]["noise_recall"],
            "control_fresh_copy_bits": largest["fresh_singles_greedy"]["bits_lower_bound"],
            "total_singleton_bits_teacher_forced":
                largest["singletons_teacher_forced"]["bits_lower_bound"] * int(data.singletons.size),
            "whole_sample_target": next_symbol_target(task.frequencies, n=len(train),
                                                      prefix_length=task.prefix_length,
                                                      alphabet_size=task.alphabet_size, noise=task.noise).to_dict(),
            "min_pure_dp_epsilon": _min_epsilon(largest["singletons_teacher_forced"]["bits_lower_bound"]),
            "paper": ("no experiment on this task in the paper; theorem (docs/theory.md): an accurate learner has "
                      "I(X_S; M | P) = (1 − o(1)) H(X_S | P) on a set S of Ω(n) singletons, i.e. a fraction of "
                      "entropy → 1"),
        },
        "figures": figures,
        "seconds": time.perf_counter() - t_start,
    }
    write_results(out, results)
    write_readme(out, _readme(results, cfg))
    return results


def _min_epsilon(bits):
    """The smallest pure-DP ε the measured bits allow (None where the bound is undefined)."""
    return min_epsilon_for_bits(bits) if bits is not None and np.isfinite(bits) and bits >= 0 else None


def _fmt(x, spec=".3f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def _readme(res: dict, cfg: dict) -> str:
    d, s, e = res["data"], res["summary"], res["entropy_bits"]
    rows = []
    for w, r in res["models"].items():
        f = r["final"]
        rows.append(f"| {w} | {r['n_parameters']:,} | {_fmt(f['acc_singles'])} | {_fmt(f['acc_frequent'])} | "
                    f"{_fmt(f['acc_unseen'])} | {_fmt(f['singletons_greedy']['noise_recall'])} | "
                    f"{_fmt(f['singletons_greedy']['bits_lower_bound'], '.1f')} | "
                    f"{_fmt(f['singletons_teacher_forced']['bits_lower_bound'], '.1f')} | "
                    f"{_fmt(f['frequent_greedy']['noise_recall'] if f['frequent_greedy'] else None)} | "
                    f"{_fmt(f['fresh_singles_greedy']['bits_lower_bound'], '.1f')} | {r['seconds']:.0f} |")
    lo, hi = s["singleton_bits_teacher_forced_ci95"]
    return f"""# {NAME}{' (quick)' if res['quick'] else ''}

Brown, Bun, Feldman, Smith & Talwar (STOC 2021), next-symbol prediction. The paper proves that an accurate
learner memorizes almost all of the information in a set of Ω(n) singletons, I(X_S; M | P) = (1 − o(1)) H(X_S | P),
noise included; it runs no experiment on this task. The task here is the documented interpretation in
`memlens.tasks.next_symbol` (the paper's exact definition is not available): {d['n_subpopulations']} Zipf(exponent
{cfg['exponent']}) subpopulations, each a random reference string of L = {cfg['prefix_length']} symbols over A =
{cfg['alphabet_size']} and a next symbol; n = {d['n_train']} training copies with every symbol resampled with
probability {cfg['noise']} (changed-symbol rate {d['changed_rate']:.3f}, expected {d['expected_changed_rate']:.3f}).
Singletons: {d['n_singletons']} (expected {d['expected_singletons']:.1f}). Each copy carries
H(X_i | P) = {e['full']:.1f} bits ({e['per_symbol']:.3f} bits per symbol) of noise given the task.

Models: causal transformers, depth {cfg['depth']}, widths {', '.join(map(str, cfg['widths']))}, trained as language
models (Adam, lr {cfg['lr']}, cosine schedule, dropout {cfg['dropout']}, {cfg['steps']} steps, batch
{cfg['batch_size']}, seed {res['seed']}).
Memorization is measured on each singleton's training copy: greedy continuation from its first
{cfg['prompt_length']} symbols (extraction of the remaining {cfg['prefix_length'] - cfg['prompt_length']}), and
teacher-forced argmax predictions of all {cfg['prefix_length']} symbols. The lower bound on I(X_i; M | P) is spec
§1.6's h2 bound generalized by Fano: Σ_k max(0, H − h2(ē_k) − ē_k log2(A − 1)) over positions k, ē_k pooled over
singletons; it is 0 for a model that knows the reference but none of the noise. Teacher forcing also counts the
first symbols, which no model can predict before the copy is identified, so its fraction stays below 1. Control: the
same greedy
measurement on fresh copies of the singleton subpopulations, whose noise no model saw.

## Final numbers

| width | parameters | acc. singletons | acc. frequent | acc. unseen | noise reproduced (singletons) | bits, greedy (of {e['greedy']:.1f}) | bits, teacher forced (of {e['full']:.1f}) | noise reproduced (frequent copies) | bits, control | seconds |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Largest model: singleton accuracy {_fmt(s['acc_singles'])} against frequent {_fmt(s['acc_frequent'])} and unseen
{_fmt(s['acc_unseen'])} (chance {s['chance']:.3f}); at least {_fmt(s['singleton_bits_teacher_forced'], '.1f')} bits per
singleton memorized (95% bootstrap interval {_fmt(lo, '.1f')}–{_fmt(hi, '.1f')}), a fraction
{_fmt(s['singleton_fraction_of_entropy_teacher_forced'])} of H(X_i | P); over all singletons at least
{_fmt(s['total_singleton_bits_teacher_forced'], '.0f')} bits. The control's bound is
{_fmt(s['control_fresh_copy_bits'], '.2f')} bits: what is measured is the training copy's own noise.
Paper: no number for this task; the theorem predicts a fraction → 1 for accurate learners. The whole-sample target
H(X_S | P) of this task is {s['whole_sample_target']['total_bits']:.0f} bits over its
{s['whole_sample_target']['expected_singletons']:.1f} expected singletons. A model holding the measured bits about
one example cannot be pure ε-DP (replace-one) for any ε below {_fmt(s['min_pure_dp_epsilon'], '.1f')} (our
derivation, memlens.tasks.brown_bounds).

Figures: `training_curves.png` (accuracy, bits and noise reproduced against training steps, one colour per
width), `model_size.png` (final accuracy and fraction of entropy memorized against parameters),
`accuracy_by_count.png` (test accuracy by how many training copies the subpopulation has).
Total time {res['seconds']:.0f} s.
"""
