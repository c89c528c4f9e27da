"""``memlens lm-audit``: membership inference and extraction against a Hugging Face causal language model."""
from __future__ import annotations

import argparse
import json

from .._validation import MemlensInputError

__all__ = ["add_lm_audit_parser", "run_lm_audit_from_args", "LM_FLAGS"]

#: Library parameter -> flag, for error messages.
LM_FLAGS = {"model": "--model", "members": "--members", "nonmembers": "--nonmembers", "out": "--out",
            "reference": "--reference", "mask_model": "--mask-model", "attacks": "--attacks", "k": "--k",
            "recall_shots": "--recall-shots", "n_neighbours": "--neighbours", "prefix_lens": "--prefix-lens",
            "suffix_len": "--suffix-len", "decoding": "--decoding", "compare": "--compare", "n_samples": "--samples",
            "sample_len": "--sample-len", "verify_against": "--verify-against", "window": "--window",
            "stride": "--stride", "batch_size": "--batch-size", "device": "--device", "dtype": "--dtype",
            "n_boot": "--bootstrap", "seed": "--seed"}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers such as 8,16,32; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be positive integers such as 8,16,32; got {text!r}")
    return values


def add_lm_audit_parser(sub) -> None:
    p = sub.add_parser(
        "lm-audit", help="membership inference and extraction against a Hugging Face causal language model",
        description="Score known member and non-member documents under a local Hugging Face causal LM with the "
                    "membership attacks of the MIMIR benchmark (loss, zlib, lowercase, Min-K%%, Min-K%%++, and with "
                    "their requirements reference, ReCaLL, neighbourhood); measure discoverable memorization by "
                    "prefix length and copies; write scores.csv, extraction.csv, summary.json and report.html "
                    "into --out. Nothing is downloaded.")
    p.add_argument("--model", required=True, metavar="PATH",
                   help="local checkpoint folder (save_pretrained), or a hub name already in the local cache")
    p.add_argument("--members", required=True, metavar="FILE",
                   help="known training documents: one per line, or .jsonl with a 'text' field")
    p.add_argument("--nonmembers", required=True, metavar="FILE",
                   help="known non-training documents of the same distribution (same formats)")
    p.add_argument("--out", default="runs/lm-audit", metavar="DIR", help="output folder (default runs/lm-audit)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier audit's files in --out")
    p.add_argument("--reference", default=None, metavar="PATH", help="reference model: adds the reference attack")
    p.add_argument("--mask-model", default=None, metavar="PATH",
                   help="masked LM (BERT/RoBERTa folder): adds the neighbourhood attack")
    p.add_argument("--attacks", default=None, metavar="A,B",
                   help="attacks to run (default: every attack whose requirement is given)")
    p.add_argument("--k", type=float, default=0.2, help="Min-K%% and Min-K%%++ fraction of tokens (default 0.2)")
    p.add_argument("--recall-shots", type=int, default=4, metavar="N",
                   help="non-members that form ReCaLL's prefix, left out of the evaluation (default 4; 0: no ReCaLL)")
    p.add_argument("--neighbours", type=int, default=8, metavar="N", help="neighbours per document (default 8)")
    p.add_argument("--no-extraction", action="store_true", help="skip the discoverable-memorization measurement")
    p.add_argument("--prefix-lens", type=_int_list, default=(8, 16, 32), metavar="K,K",
                   help="prefix lengths in tokens (default 8,16,32)")
    p.add_argument("--suffix-len", type=int, default=16, metavar="M", help="suffix to reproduce, tokens (default 16)")
    p.add_argument("--decoding", default="greedy", choices=("greedy", "sample"),
                   help="continuations for extraction: greedy (default, discoverable memorization) or top-40 sampling")
    p.add_argument("--compare", nargs="+", default=(), metavar="PATH",
                   help="more checkpoints (e.g. other sizes) for the extraction curve's model axis")
    p.add_argument("--samples", type=int, default=0, metavar="N",
                   help="untargeted extraction: generate N samples, rank and verify them (default 0: skip)")
    p.add_argument("--sample-len", type=int, default=48, metavar="T", help="tokens per sample (default 48)")
    p.add_argument("--verify-against", default=None, metavar="FILE",
                   help="corpus the samples are verified against (default: --members)")
    p.add_argument("--window", type=int, default=None, metavar="T",
                   help="tokens per scoring window (default: the model's context)")
    p.add_argument("--stride", type=int, default=None, metavar="T",
                   help="tokens between window starts (default: half the window)")
    p.add_argument("--batch-size", type=int, default=16, metavar="B", help="sequences per forward pass (default 16)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:N")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="weights' dtype (default float32)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="B", help="bootstrap resamples (default 1000)")
    p.add_argument("--delimiter", default=None, metavar="D",
                   help="document separator of text files (default: one document per line)")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the summary lines")


def run_lm_audit_from_args(args, *, print_fn=print) -> int:
    from ..audits.lm import run_lm_audit  # deferred: transformers and torch are heavy

    quiet = args.quiet or args.json
    attacks = None
    if args.attacks is not None:
        attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
        if not attacks:
            raise MemlensInputError(f"attacks must name at least one attack; got {args.attacks!r}", param="attacks")
    result = run_lm_audit(
        model=args.model, members=args.members, nonmembers=args.nonmembers, out=args.out,
        reference=args.reference, mask_model=args.mask_model, attacks=attacks, k=args.k,
        recall_shots=args.recall_shots, n_neighbours=args.neighbours, extraction=not args.no_extraction,
        prefix_lens=args.prefix_lens, suffix_len=args.suffix_len, decoding=args.decoding, compare=tuple(args.compare),
        n_samples=args.samples, sample_len=args.sample_len, verify_against=args.verify_against, window=args.window,
        stride=args.stride, batch_size=args.batch_size, device=args.device, dtype=args.dtype, n_boot=args.bootstrap,
        delimiter=args.delimiter, seed=args.seed, overwrite=args.overwrite, progress=not quiet)
    s = result.summary
    if args.json:
        print_fn(json.dumps(s, indent=2))
        return 0
    if args.quiet:
        return 0
    print_fn(f"{s['model']['name']}: {s['n_members']} members, {s['n_nonmembers']} non-members, "
             f"{s['tokens_scored']:,} tokens scored at {s['tokens_per_second'] or 0:,.0f} tokens/s; {s['seconds']:.1f} s")
    for a, e in s["attacks"].items():
        lo, hi = e["auc_ci"]
        print_fn(f"  {a:<16} AUC {e['auc']:.3f} [{lo:.3f}, {hi:.3f}]   TPR@1% FPR {100 * e['tpr@0.01']:.1f}%   "
                 f"TPR@0.1% FPR {100 * e['tpr@0.001']:.1f}%")
    for r in s.get("extraction", []):
        if r["copies"] == "all" and r["exact_rate"] is not None and r["model"] == s["model"]["name"]:
            print_fn(f"  extraction, {r['set']}s, prefix {r['prefix_len']}: {100 * r['exact_rate']:.1f}% of "
                     f"{r['n']} reproduce the next {s['settings']['suffix_len']} tokens")
    print_fn(f"report: {result.out / 'report.html'}")
    return 0
