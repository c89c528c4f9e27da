"""Reproduction ``canary-exposure``: secret canaries in a small language model (Carlini et al. 2019, "The Secret
Sharer"; extraction as in Carlini et al. 2021/2023).

Random secrets ``"NAME: my PIN is 4271"`` (a space of 10^4 secrets per canary, each canary with its own name so
its own prefix) are inserted 1, 2, 4, ... times into a few hundred short fortunes, and byte-level GRU language
models of several widths are trained on the result. At checkpoints across training every canary is scored by

* **exposure** (§3, Definition 4): ``log2 |R| − log2 rank`` of the true secret among all 10^4 candidates ordered by
  the model's log-perplexity (:func:`memlens.measures.exposure.canary_exposure`, exact rank), 13.3 bits when the
  secret is the model's most likely completion;
* **extraction**: greedy decoding from the canary's prefix reproduces the secret
  (:func:`memlens.attacks.extraction.canary_extraction`).

Reference canaries drawn from the same space but never inserted (0 copies) are the control: their exposure
follows ``Pr[exposure >= e] = 2^-e`` (mean 1.44 bits) whatever the model. The paper's qualitative findings are
what this reproduces: exposure rises with the number of insertions and with training, and a canary becomes
extractable once its exposure approaches ``log2 |R|`` — above a repetition threshold that falls as the model
grows. The paper's own numbers (a large LSTM on Penn Treebank, 9-digit secrets) are not comparable in scale.
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy import stats

from .._threads import limit_threads
from ..audits.text import canary_measures, insert_named_canaries, make_named_canaries
from ..data.text import VOCAB_SIZE, encode_texts, load_text_dataset
from ..models.char_lm import AutoregressiveConfig, sequence_signals
from ..train.autoregressive import train_autoregressive
from ._common import prepare_out_dir, save_figure, step, write_readme, write_results

NAME = "canary-exposure"
DESCRIPTION = ("Carlini et al. Secret Sharer: canary exposure and greedy extraction of a small byte-level language "
               "model against repetitions, training steps and model size")

SETTINGS = {
    "full": dict(n_documents=600, max_chars=60, repetitions=(1, 2, 4, 8, 16, 32), canaries_per_repetition=3,
                 n_reference=4, widths=(32, 64, 128), main_width=128, arch="gru", depth=1, steps=1200,
                 eval_every=150, batch_size=32, lr=3e-3, warmup_steps=30, template="my PIN is {secret}",
                 alphabet="0123456789", length=4, n_test=200),
    "quick": dict(n_documents=120, max_chars=60, repetitions=(1, 4, 16), canaries_per_repetition=2,
                  n_reference=2, widths=(24, 64), main_width=64, arch="gru", depth=1, steps=200, eval_every=50,
                  batch_size=32, lr=5e-3, warmup_steps=10, template="my PIN is {secret}", alphabet="0123456789",
                  length=4, n_test=60),
}


def _spearman(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def by_repetition(reps, values) -> dict:
    """``{repetitions: mean of values over the canaries with that many copies}`` (keys as strings for JSON)."""
    reps, values = np.asarray(reps), np.asarray(values, dtype=np.float64)
    return {str(int(r)): float(np.mean(values[reps == r])) for r in np.unique(reps)}


def extraction_threshold(reps, extracted, *, level: float = 0.5):
    """Smallest number of copies from which on at least ``level`` of the canaries are extracted at every larger
    count (None if never)."""
    table = by_repetition(reps, extracted)
    counts = sorted(int(r) for r in table if int(r) > 0)
    for i, r in enumerate(counts):
        if all(table[str(q)] >= level for q in counts[i:]):
            return r
    return None


def _setup(cfg: dict, seed: int):
    """The corpus with the canaries inserted: (canaries, training texts, copy_of, test texts)."""
    ss = np.random.SeedSequence(seed)
    data_seed, canary_seed, insert_seed = (np.random.default_rng(s) for s in ss.spawn(3))
    ds = load_text_dataset("fortunes", max_chars=cfg["max_chars"], seed=data_seed)
    tr = np.sort(data_seed.choice(ds.n_train, size=min(cfg["n_documents"], ds.n_train), replace=False))
    te = np.sort(data_seed.choice(ds.n_test, size=min(cfg["n_test"], ds.n_test), replace=False))
    reps = np.concatenate([np.zeros(cfg["n_reference"], dtype=np.int64),
                           np.repeat(np.asarray(cfg["repetitions"], dtype=np.int64), cfg["canaries_per_repetition"])])
    canaries = make_named_canaries(cfg["template"], alphabet=cfg["alphabet"], length=cfg["length"], repetitions=reps,
                                   seed=canary_seed)
    texts, copy_of = insert_named_canaries([ds.train_texts[i] for i in tr], canaries, seed=insert_seed)
    return canaries, list(texts), copy_of, [ds.test_texts[i] for i in te]


def _train(cfg, width, tokens, lengths, test_tokens, test_lengths, canaries, seed, *, checkpoints: bool):
    config = AutoregressiveConfig(vocab_size=VOCAB_SIZE, context_length=tokens.shape[1], width=width,
                                  depth=cfg["depth"], arch=cfg["arch"], n_heads=1)

    def evaluate(step, model):
        m = canary_measures(model, canaries, method="rank")
        sig = sequence_signals(model, test_tokens, lengths=test_lengths)
        return {"exposure": m["exposure"].tolist(), "extracted": m["extracted"].tolist(),
                "log_perplexity": m["log_perplexity"].tolist(),
                "test_bits_per_byte": float(np.mean(sig["loss"]) / math.log(2))}

    res = train_autoregressive(tokens, config=config, lengths=lengths, steps=cfg["steps"],
                               batch_size=cfg["batch_size"], lr=cfg["lr"], lr_schedule="cosine",
                               warmup_steps=cfg["warmup_steps"], seed=seed,
                               eval_every=cfg["eval_every"] if checkpoints else 0,
                               callback=evaluate if checkpoints else None)
    final = res.history[-1] if checkpoints else evaluate(cfg["steps"], res.model)
    return res, final


def _figures(out, cfg, canaries, runs, history) -> list[str]:
    import matplotlib  # matplotlib is heavy: imported only to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # matplotlib is heavy: imported only to draw

    reps = np.asarray(canaries.repetitions)
    uniq = np.unique(reps)
    xs = np.where(uniq == 0, 0.5, uniq).astype(float)  # 0 copies drawn at x = 0.5 on the log axis
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(runs)))
    max_bits = math.log2(canaries.space_size)
    names = []

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for (w, r), c in zip(runs.items(), colors):
        e, x = np.asarray(r["final"]["exposure"]), np.asarray(r["final"]["extracted"])
        jitter = 1 + 0.04 * (list(runs).index(w) - (len(runs) - 1) / 2)
        axes[0].plot(np.where(reps == 0, 0.5, reps) * jitter, e, "o", color=c, alpha=0.35, ms=4)
        axes[0].plot(xs, [e[reps == u].mean() for u in uniq], "-", color=c, lw=2,
                     label=f"width {w} ({r['n_parameters'] / 1e3:.0f}k parameters)")
        axes[1].plot(xs, [x[reps == u].mean() for u in uniq], "o-", color=c, lw=2, label=f"width {w}")
    axes[0].axhline(max_bits, color="black", ls=":", lw=1, label=f"log2 |R| = {max_bits:.1f} bits (ranked first)")
    axes[0].axhline(1 / math.log(2), color="grey", ls="--", lw=1, label="never-seen secret: mean 1.44 bits")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(xs, ["0 (ref.)" if u == 0 else str(int(u)) for u in uniq])
        ax.set_xlabel("copies of the canary in the training set")
        ax.grid(alpha=0.3)
    axes[0].set(ylabel="exposure (bits)", title="Exposure rises with repetitions", ylim=(0, max_bits * 1.08))
    axes[1].set(ylabel="fraction of canaries extracted (greedy)", title="Extraction above a repetition threshold",
                ylim=(-0.03, 1.03))
    axes[0].legend(fontsize=7, loc="center right")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Canaries “NAME: {cfg['template']}” in {cfg['n_documents']} fortunes, byte-level "
                 f"{cfg['arch'].upper()} language models, {cfg['steps']} steps")
    names.append(save_figure(fig, out, "exposure_vs_repetitions").name)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    steps = [h["step"] for h in history]
    rcolors = plt.cm.plasma(np.linspace(0.0, 0.85, len(uniq)))
    for u, c in zip(uniq, rcolors):
        sel = reps == u
        axes[0].plot(steps, [np.mean(np.asarray(h["exposure"])[sel]) for h in history], "o-", color=c,
                     label="reference (0 copies)" if u == 0 else f"{int(u)} cop{'y' if u == 1 else 'ies'}")
        axes[1].plot(steps, [np.mean(np.asarray(h["extracted"])[sel]) for h in history], "o-", color=c)
    axes[0].axhline(max_bits, color="black", ls=":", lw=1)
    ax2 = axes[1].twinx()
    ax2.plot(steps, [h["test_bits_per_byte"] for h in history], "k--", lw=1, label="test loss (bits/byte)")
    ax2.set_ylabel("test loss (bits per byte)")
    ax2.legend(fontsize=7, loc="center right")
    axes[0].set(xlabel="training steps", ylabel="mean exposure (bits)", title="Exposure during training",
                ylim=(0, max_bits * 1.08))
    axes[1].set(xlabel="training steps", ylabel="fraction extracted", title="Extraction during training",
                ylim=(-0.03, 1.03))
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"Width {cfg['main_width']}: exposure and extraction against training time")
    names.append(save_figure(fig, out, "exposure_vs_steps").name)

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    params = [r["n_parameters"] for r in runs.values()]
    for u, c in zip(uniq[uniq > 0], rcolors[uniq > 0]):
        ax.plot(params, [np.mean(np.asarray(r["final"]["extracted"])[reps == u]) for r in runs.values()], "o-",
                color=c, label=f"{int(u)} copies")
    ax.set(xscale="log", xlabel="model parameters", ylabel="fraction of canaries extracted",
           title="Extraction rate against model size", ylim=(-0.03, 1.03))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    names.append(save_figure(fig, out, "extraction_vs_model_size").name)
    return names


def run(out_dir, *, quick: bool = False, seed: int = 0) -> dict:
    """Train the models, measure the canaries, and write figures, ``results.json`` and ``README.md``."""
    out = prepare_out_dir(out_dir)
    cfg = dict(SETTINGS["quick" if quick else "full"])
    t0 = time.perf_counter()
    canaries, texts, copy_of, test_texts = _setup(cfg, seed)
    width_tokens = max(len(t.encode("utf-8")) + 2 for t in texts + test_texts)
    tokens, lengths = encode_texts(texts, max_len=width_tokens)
    test_tokens, test_lengths = encode_texts(test_texts, max_len=width_tokens)
    width_seeds = np.random.SeedSequence([seed, 1]).spawn(len(cfg["widths"]))
    runs, history = {}, []
    with limit_threads(1):
        for width, ws in zip(cfg["widths"], width_seeds):
            main = width == cfg["main_width"]
            with step(f"language model of width {width}: training, exposure and extraction"):
                res, final = _train(cfg, width, tokens, lengths, test_tokens, test_lengths, canaries,
                                    np.random.default_rng(ws), checkpoints=main)
            if main:
                history = list(res.history)
            runs[width] = {"n_parameters": res.n_parameters, "seconds": res.seconds, "final": final}
    reps = np.asarray(canaries.repetitions)
    inserted = reps > 0
    main = runs[cfg["main_width"]]["final"]
    exp, ext = np.asarray(main["exposure"]), np.asarray(main["extracted"])
    models = {}
    for w, r in runs.items():
        e, x = np.asarray(r["final"]["exposure"]), np.asarray(r["final"]["extracted"])
        models[str(w)] = {"n_parameters": r["n_parameters"], "seconds": r["seconds"],
                          "test_bits_per_byte": r["final"]["test_bits_per_byte"],
                          "exposure_by_repetition": by_repetition(reps, e),
                          "extracted_by_repetition": by_repetition(reps, x),
                          "extraction_rate_inserted": float(x[inserted].mean()),
                          "extraction_threshold": extraction_threshold(reps, x),
                          "spearman_exposure_repetitions": _spearman(reps, e)}
    figures = _figures(out, cfg, canaries, runs, history)
    results = {
        "name": NAME, "quick": quick, "seed": seed,
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "data": {"n_documents": int((copy_of < 0).sum()), "n_canary_copies": int((copy_of >= 0).sum()),
                 "n_test": len(test_texts), "context_length": int(tokens.shape[1])},
        "canaries": [{"name": n, "secret": s, "text": t, "repetitions": int(r)}
                     for n, s, t, r in zip(canaries.names, canaries.secrets, canaries.texts, reps)],
        "space_size": canaries.space_size, "max_exposure_bits": math.log2(canaries.space_size),
        "models": models,
        "history": [{"step": h["step"], "exposure_by_repetition": by_repetition(reps, h["exposure"]),
                     "extracted_by_repetition": by_repetition(reps, h["extracted"]),
                     "test_bits_per_byte": h["test_bits_per_byte"], "train_loss": h.get("train_loss")}
                    for h in history],
        "summary": {
            "main_width": cfg["main_width"],
            "exposure_by_repetition": by_repetition(reps, exp),
            "extracted_by_repetition": by_repetition(reps, ext),
            "reference_exposure_mean": float(exp[~inserted].mean()) if (~inserted).any() else None,
            "spearman_exposure_repetitions": _spearman(reps, exp),
            "extraction_threshold": extraction_threshold(reps, ext),
            "extraction_rate_by_width": {str(w): m["extraction_rate_inserted"] for w, m in models.items()},
            "exposure_first_vs_last_checkpoint": [by_repetition(reps, history[0]["exposure"]),
                                                  by_repetition(reps, history[-1]["exposure"])] if history else None,
        },
        "paper": "Carlini et al. 2019 report that exposure grows with insertions and training and that canaries "
                 "become extractable once their exposure nears log2|R| (qualitative; their model and data differ)",
        "figures": figures,
        "seconds": time.perf_counter() - t0,
    }
    write_results(out, results)
    write_readme(out, _readme(results))
    return results


def _fmt_table(d: dict, fmt: str) -> str:
    return " | ".join(fmt.format(v) for v in d.values())


def _readme(r: dict) -> str:
    s, cfg = r["summary"], r["settings"]
    reps = list(s["exposure_by_repetition"])
    head = "| | " + " | ".join("ref. (0)" if k == "0" else f"{k}×" for k in reps) + " |"
    sep = "|---" * (len(reps) + 1) + "|"
    rows = []
    for w, m in r["models"].items():
        rows.append(f"| width {w} ({m['n_parameters'] / 1e3:.0f}k params), exposure (bits) | "
                    + _fmt_table(m["exposure_by_repetition"], "{:.1f}") + " |")
        rows.append(f"| width {w}, extracted | " + _fmt_table(m["extracted_by_repetition"], "{:.2f}") + " |")
    hist = "\n".join(f"| {h['step']} | " + _fmt_table(h["exposure_by_repetition"], "{:.1f}")
                     + f" | {h['test_bits_per_byte']:.2f} |" for h in r["history"])
    thr = {w: m["extraction_threshold"] for w, m in r["models"].items()}
    return f"""# canary-exposure: exposure and extraction of inserted secrets (Carlini et al. 2019)

{"Quick version (`--quick`): fewer documents, canaries, widths and steps." if r["quick"] else "Full version."}
Seed {r["seed"]}, {r["seconds"]:.0f} s on this machine.

**Setup.** {r["data"]["n_documents"]} fortunes of at most {cfg["max_chars"]} characters, plus
{r["data"]["n_canary_copies"]} canary copies: secrets `NAME: {cfg["template"]}` with a 4-digit secret
(|R| = {r["space_size"]:,} per canary, exposure at most {r["max_exposure_bits"]:.2f} bits), inserted
{", ".join(map(str, cfg["repetitions"]))} times ({cfg["canaries_per_repetition"]} canaries each) and
{cfg["n_reference"]} reference canaries never inserted. Byte-level {cfg["arch"].upper()} language models
(depth {cfg["depth"]}, widths {", ".join(map(str, cfg["widths"]))}) trained {cfg["steps"]} Adam steps of
{cfg["batch_size"]} documents (cosine schedule). Exposure: exact rank of the secret among all |R| candidates by
log-perplexity of the secret given its prefix (Def. 4). Extraction: greedy decoding from the prefix gives the secret.

**Exposure and extraction against repetitions** (final models; mean over canaries; `exposure_vs_repetitions.png`):

{head}
{sep}
{chr(10).join(rows)}

Spearman correlation of exposure with the number of copies (width {s["main_width"]}):
{s["spearman_exposure_repetitions"]:.2f}. Reference canaries (never inserted): mean exposure
{s["reference_exposure_mean"]:.2f} bits (theory for an unseen secret: 1.44). Extraction threshold (smallest number
of copies from which at least half of the canaries are extracted at every larger count), by width: {thr}.

**Exposure during training** (width {s["main_width"]}; `exposure_vs_steps.png`):

| step | {" | ".join("ref. (0)" if k == "0" else f"{k}×" for k in reps)} | test bits/byte |
|---{"|---" * len(reps)}|---|
{hist}

**Extraction rate against model size** (`extraction_vs_model_size.png`): fraction of inserted canaries extracted
{s["extraction_rate_by_width"]}.

**Against the paper.** {r["paper"]}. What to look for: exposure of inserted canaries rises with the number of
copies and with training steps while reference canaries stay near 1–2 bits; extraction appears only once exposure
is near its maximum, above a repetition threshold; larger models memorize with fewer copies.
"""
