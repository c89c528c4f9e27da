"""Hugging Face causal language models on the fortunes corpus: scoring throughput, the LM audit, a fine-tuning
population, side by side in one run.

    python benchmarks/lm.py [--quick] [--out DIR]

(a) Scoring and decoding throughput of a small GPT-2 (4 layers, width 128, a 512-token BPE vocabulary) on this
    machine: tokens/s of batched, padded scoring (``memlens.models.hf.score_tokens``) against one document at a
    time, with the largest difference between the two (they must agree to 1e-5); greedy decoding with the KV cache,
    batched against one prompt at a time.
(b) ``memlens lm-audit`` on a model trained here: the GPT-2 above fine-tuned for many epochs on member documents of
    fortunes, some inserted 2, 4, 8 or 16 times; non-members from the same corpus; a reference model trained on
    other fortunes; a tiny masked LM trained on other fortunes for the neighbourhood attack. Every attack's AUC and
    TPR at 1% FPR, and discoverable memorization against copies and prefix length. The model folders are kept in
    ``benchmarks/out/lm-models`` so that the README's command can be run as it is.
(c) The text audit's fine-tuning population with ``--model hf-config:gpt2-tiny``: exposure and extraction of
    canaries against repetitions, counterfactual memorization, and the run time.

Writes ``DIR/lm.json`` and ``DIR/lm.md`` (default ``benchmarks/``; ``--quick``: small sizes into ``benchmarks/out``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from memlens.audits.lm import run_lm_audit  # noqa: E402
from memlens.audits.text import run_text_audit  # noqa: E402
from memlens.data.text import load_text_dataset  # noqa: E402
from memlens.models import hf  # noqa: E402

COPIES = {16: 5, 8: 10, 4: 20, 2: 40}      # copies -> how many member documents get that many copies


def _load():
    return os.getloadavg()[0]


def corpus(seed: int = 0):
    docs = [" ".join(d.split()) for d in load_text_dataset("fortunes", max_chars=200, seed=seed).train_texts]
    docs = list(dict.fromkeys(d for d in docs if len(d) >= 40))
    rng = np.random.default_rng(seed)
    rng.shuffle(docs)
    return docs


def train_mlm(tokenizer, texts, *, steps: int, seed: int = 0):
    """A tiny BERT masked LM trained by the usual 15% masking (for the neighbourhood attack's neighbours)."""
    import transformers

    torch.manual_seed(seed)
    model = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id))
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:250] for t in texts]
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        batch = [ids[i] for i in rng.integers(len(ids), size=32)]
        t = max(map(len, batch))
        x = torch.full((32, t), tokenizer.pad_token_id)
        am = torch.zeros((32, t), dtype=torch.long)
        for j, r in enumerate(batch):
            x[j, :len(r)] = torch.tensor(r)
            am[j, :len(r)] = 1
        pick = (torch.rand(x.shape) < 0.15) & (am == 1)
        labels = torch.where(pick, x, torch.full_like(x, -100))
        inp = torch.where(pick, torch.full_like(x, tokenizer.mask_token_id), x)
        loss = model(input_ids=inp, attention_mask=am, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def throughput(lm, texts, *, repeats: int) -> dict:
    ids = hf.encode(lm, texts)
    n_tok = int(sum(r.size - 1 for r in ids))
    out = {"documents": len(ids), "tokens": n_tok, "load_before": _load()}
    times: dict[str, list] = {"one_at_a_time": [], "batch_16": [], "batch_64": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        single = [hf.score_tokens(lm, [r]) for r in ids]
        times["one_at_a_time"].append(time.perf_counter() - t0)
        for b in (16, 64):
            t0 = time.perf_counter()
            batched = hf.score_tokens(lm, ids, batch_size=b)
            times[f"batch_{b}"].append(time.perf_counter() - t0)
    out["max_abs_diff_logprob"] = float(max(np.abs(batched.doc(i) - s.doc(0)).max() for i, s in enumerate(single)))
    for k, v in times.items():
        out[f"{k}_s"] = statistics.median(v)
        out[f"{k}_tokens_per_s"] = n_tok / statistics.median(v)
    prompts = [r[:9] for r in ids[:64] if r.size > 9]
    t0 = time.perf_counter()
    g1 = np.stack([hf.decode(lm, [p], 32)[0] for p in prompts])
    t_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    g2 = hf.decode(lm, prompts, 32, batch_size=64)
    t_batch = time.perf_counter() - t0
    out["decode"] = {"prompts": len(prompts), "new_tokens": 32, "one_at_a_time_s": t_single, "batched_s": t_batch,
                     "tokens_per_s_batched": len(prompts) * 32 / t_batch, "identical": bool((g1 == g2).all())}
    out["load_after"] = _load()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = args.out or (ROOT / "benchmarks" / ("out" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    work = ROOT / "benchmarks" / "out" if args.out is None else out   # model folders and audit outputs
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    q = args.quick
    n_mem, n_non, epochs = (120, 120, 20) if q else (400, 400, 8)
    t_start = time.perf_counter()
    docs = corpus(args.seed)
    members, nonmembers = docs[:n_mem], docs[n_mem:n_mem + n_non]
    public = docs[n_mem + n_non:]
    tok = hf.train_tokenizer(public[:3000], vocab_size=512)
    res: dict = {"quick": q, "started_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "load_start": _load(),
                 "torch": torch.__version__}
    import transformers

    res["transformers"] = transformers.__version__

    # ---- (b) models: target with copies, reference, masked LM
    train, copies = list(members), np.ones(n_mem, dtype=int)
    i = 0
    for c, k in COPIES.items():
        k = k if not q else max(1, k // 4)
        for j in range(i, i + k):
            copies[j] = c
            train += [members[j]] * (c - 1)
        i += k
    cfg = hf.tiny_config("gpt2-small", tok, context_length=256)
    t0 = time.perf_counter()
    target = hf.new_causal_lm(cfg, tok, seed=1, name="gpt2-small (fortunes members)")
    info = hf.fine_tune(target, hf.encode(target, train), epochs=epochs, batch_size=16, lr=2e-3, seed=0)
    res["target"] = {"config": "gpt2-small (4 layers, width 128, 4 heads)", "n_parameters": target.n_parameters,
                     "train_sequences": len(train), "epochs": epochs, **info, "seconds": time.perf_counter() - t0}
    ref = hf.new_causal_lm(cfg, tok, seed=2, name="reference")
    hf.fine_tune(ref, hf.encode(ref, public[:n_mem]), epochs=epochs // 3, batch_size=16, lr=2e-3, seed=1)
    folder = work / "lm-models"
    hf.save_causal_lm(target, folder / "target")
    hf.save_causal_lm(ref, folder / "reference")
    mlm = train_mlm(tok, public[:2000], steps=100 if q else 600)
    mlm.save_pretrained(folder / "mlm")
    tok.save_pretrained(folder / "mlm")
    (folder / "members.txt").write_text("\n".join(train) + "\n")
    (folder / "nonmembers.txt").write_text("\n".join(nonmembers) + "\n")

    # ---- (a) throughput
    res["throughput"] = throughput(target, members[:100] + nonmembers[:100], repeats=1 if q else 3)

    # ---- (b) the audit
    t0 = time.perf_counter()
    audit = run_lm_audit(model=folder / "target", members=folder / "members.txt",
                         nonmembers=folder / "nonmembers.txt", out=work / "lm-audit", reference=folder / "reference",
                         mask_model=folder / "mlm", prefix_lens=(8, 16, 32), suffix_len=16, n_samples=128,
                         overwrite=True, progress=False, seed=args.seed)
    res["audit"] = {"seconds": time.perf_counter() - t0, "attacks": audit.summary["attacks"],
                    "extraction": audit.summary["extraction"], "untargeted": audit.summary.get("untargeted"),
                    "tokens_per_second": audit.summary["tokens_per_second"],
                    "n_members": audit.summary["n_members"], "n_nonmembers": audit.summary["n_nonmembers"]}

    # ---- (c) the fine-tuning population
    t0 = time.perf_counter()
    pop = run_text_audit(dataset="fortunes", model="hf-config:gpt2-tiny", n_models=4 if q else 16,
                         n_documents=80 if q else 300, max_chars=100, config={"epochs": 20},
                         out=work / "lm-population", overwrite=True, progress=False, jobs=None, seed=args.seed)
    s = pop.summary
    res["population"] = {"seconds": time.perf_counter() - t0, "n_models": s["n_models"],
                         "n_documents": s["n_documents"], "n_memorized": s["n_memorized"],
                         "n_memorized_noise_floor": s["n_memorized_noise_floor"],
                         "token_accuracy_in": s["token_accuracy_in"], "token_accuracy_out": s["token_accuracy_out"],
                         "canaries": s.get("canaries"), "discoverable_in": s["discoverable_in"],
                         "discoverable_out": s["discoverable_out"], "ranking_attack": s["ranking_attack"]}
    res["total_s"] = time.perf_counter() - t_start
    res["load_end"] = _load()
    (out / "lm.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    (out / "lm.md").write_text(markdown(res))
    print(markdown(res))
    return 0


def _f(x, fmt=".3f"):
    return "–" if x is None else format(x, fmt)


def markdown(res: dict) -> str:
    L = [f"# Hugging Face language models (`benchmarks/lm.py{' --quick' if res['quick'] else ''}`)\n",
         f"Run {res['started_utc']} UTC, {res['total_s']:.0f} s, torch {res['torch']}, transformers "
         f"{res['transformers']}, one thread; load {res['load_start']:.2f} at start, {res['load_end']:.2f} at end.\n"]
    t = res["throughput"]
    tg = res["target"]
    L.append("## (a) Scoring and decoding throughput\n")
    L.append(f"Model: {tg['config']}, {tg['n_parameters']:,} parameters, 512-token BPE vocabulary. "
             f"{t['documents']} fortunes ({t['tokens']:,} scored tokens); median of the repeats.\n")
    L.append("| scoring | seconds | tokens/s | × one at a time |")
    L.append("|---|---|---|---|")
    base = t["one_at_a_time_s"]
    for k, name in (("one_at_a_time", "one document at a time"), ("batch_16", "batched, 16 per pass"),
                    ("batch_64", "batched, 64 per pass")):
        L.append(f"| {name} | {t[k + '_s']:.2f} | {t[k + '_tokens_per_s']:,.0f} | {base / t[k + '_s']:.1f} |")
    d = t["decode"]
    L.append(f"\nLargest |Δ log-probability| between batched and one-at-a-time scoring: "
             f"{t['max_abs_diff_logprob']:.1e}. Greedy decoding, {d['prompts']} prompts × {d['new_tokens']} new tokens "
             f"with the KV cache: batched {d['batched_s']:.2f} s ({d['tokens_per_s_batched']:,.0f} tokens/s) against "
             f"{d['one_at_a_time_s']:.2f} s one prompt at a time; identical tokens: {d['identical']}.\n")
    a = res["audit"]
    L.append("## (b) `memlens lm-audit` on a model trained here\n")
    L.append(f"Target: {tg['config']} fine-tuned from scratch for {tg['epochs']} epochs ({tg['steps']} steps, final "
             f"training loss {tg['final_loss']:.2f} nats/token, {tg['seconds']:.0f} s) on {a['n_members']} fortunes, "
             "of which "
             + ", ".join(f"{k} inserted {c} times" for c, k in COPIES.items()) + f" ({tg['train_sequences']} training "
             f"sequences); {a['n_nonmembers']} non-members (4 more form ReCaLL's prefix); reference: the same "
             "architecture trained on other fortunes; masked LM: a 2-layer BERT trained on other fortunes. "
             f"Audit: {a['seconds']:.0f} s.\n")
    L.append("| attack | AUC [95% CI] | TPR @ 1% FPR | TPR @ 0.1% FPR |")
    L.append("|---|---|---|---|")
    for name, e in a["attacks"].items():
        L.append(f"| {name} | {_f(e['auc'])} [{_f(e['auc_ci'][0])}, {_f(e['auc_ci'][1])}] | "
                 f"{_f(100 * e['tpr@0.01'], '.1f')}% | {_f(100 * e['tpr@0.001'], '.1f')}% |")
    L.append("\nDiscoverable memorization (greedy continuation reproduces the next 16 tokens exactly), by copies in "
             "the training set:\n")
    rows = a["extraction"]
    plens = sorted({r["prefix_len"] for r in rows})
    groups = []
    for r in rows:
        key = (r["set"], r["copies"])
        if key not in groups:
            groups.append(key)
    L.append("| documents | " + " | ".join(f"prefix {p}" for p in plens) + " |")
    L.append("|---|" + "---|" * len(plens))
    for key in groups:
        cells = []
        for p in plens:
            r = next((x for x in rows if (x["set"], x["copies"]) == key and x["prefix_len"] == p), None)
            cells.append("–" if r is None or r["exact_rate"] is None else f"{100 * r['exact_rate']:.0f}% of {r['n']}")
        label = "non-members" if key[0] == "non-member" else f"members, {key[1]} cop{'y' if key[1] == '1' else 'ies'}"
        L.append(f"| {label} | " + " | ".join(cells) + " |")
    u = a.get("untargeted")
    if u:
        L.append(f"\nUntargeted extraction: {u['n_samples']} samples of 48 tokens from the BOS token; "
                 f"{100 * u['base_rate']:.0f}% contain 32 consecutive bytes of a member; precision of the top "
                 f"{u['n_check']} by " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in u["precision"].items()) + ".\n")
    p = res["population"]
    L.append("## (c) Fine-tuning population: `memlens audit --dataset fortunes --model hf-config:gpt2-tiny`\n")
    L.append(f"{p['n_models']} models, {p['n_documents']} documents (each in half of the models), 20 epochs each, "
             f"{p['seconds']:.0f} s with both cores. Per-token accuracy on own documents "
             f"{100 * p['token_accuracy_in']:.1f}%, on documents not trained on {100 * p['token_accuracy_out']:.1f}%; "
             f"{p['n_memorized']} documents with counterfactual memorization ≥ 0.25 (noise floor "
             f"{p['n_memorized_noise_floor']}); discoverable memorization IN {_f(p['discoverable_in'])}, OUT "
             f"{_f(p['discoverable_out'])}.\n")
    c = p.get("canaries")
    if c:
        L.append(f"Canaries `{c['template']}` ({c['space_size']:,} secrets, {c['max_exposure_bits']:.1f} bits): "
                 "exposure is extrapolated from 256 sampled secrets (skew-normal), so it may exceed log2 |R|.\n")
        L.append("| repetitions | exposure IN (bits) | exposure OUT | extracted IN | extracted OUT |")
        L.append("|---|---|---|---|---|")
        for b in c["by_repetition"]:
            L.append(f"| {b['repetitions']} | {b['exposure_in']:.1f} | {b['exposure_out']:.1f} | "
                     f"{100 * b['extracted_in']:.0f}% | {100 * b['extracted_out']:.0f}% |")
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
