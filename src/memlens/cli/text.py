"""The text audit's command line: its flags on ``memlens audit`` and the run from parsed arguments."""
from __future__ import annotations

import argparse

from .._validation import MemlensInputError
from ..audits.text_defaults import DEFAULT_REPETITIONS, TEXT_DATASETS, TEXT_MODELS
from ..data.text_canaries import DEFAULT_ALPHABET, DEFAULT_CANARY_TEMPLATE, DEFAULT_SECRET_LENGTH
from .options import jobs_of

__all__ = ["add_cli_arguments", "is_text_audit", "check_not_text_flags", "run_from_args", "CLI_DEFAULTS", "CLI_FLAGS"]


#: Defaults of ``memlens audit`` flags shared with the image audit, for the text audit.
CLI_DEFAULTS = {"models": 8, "subset_ratio": 0.5, "shard_size": 4, "out": "runs/text-audit"}


#: Library parameter -> flag of the text audit, for error messages.
CLI_FLAGS = {"n_documents": "--documents", "max_chars": "--max-chars", "canary_format": "--canary-format",
             "canary_repetitions": "--canary-repetitions", "canaries_per_repetition": "--canaries-per-repetition",
             "canary_length": "--canary-length", "canary_alphabet": "--canary-alphabet", "text_file": "--text",
             "prefix_len": "--prefix-len", "suffix_len": "--suffix-len", "steps": "--steps", "epochs": "--epochs",
             "width": "--width", "depth": "--depth", "arch": "--arch", "delimiter": "--delimiter"}


_LM_FLAGS = ("text", "delimiter", "documents", "max_chars", "canary_format", "canary_repetitions",
             "canaries_per_repetition", "canary_length", "canary_alphabet", "prefix_len", "suffix_len", "steps",
             "epochs", "width", "depth", "arch")


def add_cli_arguments(audit) -> None:
    """Add the text audit's flags to the ``memlens audit`` parser (an argparse parser or group)."""
    g = audit.add_argument_group("text audit (--dataset fortunes, --text FILE or --model char-lm)")
    g.add_argument("--text", metavar="FILE", default=None,
                   help="your own corpus: a UTF-8 text file, one document per line (or split by --delimiter); runs "
                        "the text audit")
    g.add_argument("--delimiter", default=None, metavar="STR",
                   help="document separator of --text (e.g. %% on its own line, as in fortune files)")
    g.add_argument("--documents", type=int, default=600, metavar="N",
                   help="use a random subset of N training documents, 0 for all (default 600)")
    g.add_argument("--max-chars", type=int, default=100, metavar="C",
                   help="keep documents of at most C characters, 0 for all (default 100)")
    g.add_argument("--canary-format", default=DEFAULT_CANARY_TEMPLATE, metavar="TEMPLATE",
                   help=f"canary template with {{secret}} once (default {DEFAULT_CANARY_TEMPLATE!r}); each canary "
                        "gets its own name prefix")
    g.add_argument("--canary-alphabet", default=DEFAULT_ALPHABET, metavar="CHARS",
                   help="characters of the secret (default digits)")
    g.add_argument("--canary-length", type=int, default=DEFAULT_SECRET_LENGTH, metavar="L",
                   help="characters per secret (default 4: a space of 10,000 secrets)")
    g.add_argument("--canary-repetitions", default=",".join(map(str, DEFAULT_REPETITIONS)), metavar="R1,R2,...",
                   help="copies of each canary in the training set (default 1,2,4,8,16; 0 for no canaries)")
    g.add_argument("--canaries-per-repetition", type=int, default=2, metavar="N",
                   help="distinct canaries per repetition count (default 2)")
    g.add_argument("--prefix-len", type=int, default=None, metavar="P",
                   help="discoverable memorization: tokens of prompt (bytes for char-lm; default 16, and 8 subword "
                        "tokens for hf: models)")
    g.add_argument("--suffix-len", type=int, default=None, metavar="S",
                   help="discoverable memorization: tokens the model must reproduce exactly (default 16; 8 for hf:)")
    g.add_argument("--arch", default=None, metavar="transformer|gru", help="char-LM architecture (default transformer)")
    g.add_argument("--width", type=int, default=None, metavar="W", help="char-LM width (default 64)")
    g.add_argument("--depth", type=int, default=None, metavar="D", help="char-LM layers (default 2)")
    g.add_argument("--epochs", type=float, default=None, metavar="E",
                   help="passes over each model's documents (default of CharLMConfig)")
    g.add_argument("--steps", type=int, default=None, metavar="N", help="fixed optimizer steps per model")


def is_text_audit(args) -> bool:
    """Whether ``memlens audit`` arguments ask for the text audit (``--text``, ``--dataset fortunes`` or
    ``--model char-lm``)."""
    model = getattr(args, "model", None)
    return (getattr(args, "text", None) is not None or getattr(args, "dataset", None) in TEXT_DATASETS
            or model in TEXT_MODELS or _is_hf(model))


def _is_hf(model) -> bool:
    return isinstance(model, str) and model.startswith(("hf:", "hf-config:"))


def check_not_text_flags(args) -> None:
    """Refuse text-audit flags given to an image/tabular audit (one-line error naming the flag)."""
    defaults = {a.dest: a.default for a in _text_parser()._actions}
    for dest in _LM_FLAGS:
        if getattr(args, dest, None) != defaults.get(dest):
            flag = "--" + dest.replace("_", "-")
            raise MemlensInputError(f"{flag} applies to the text audit only (--dataset fortunes, --text FILE or "
                                    f"--model char-lm); got {flag} with --model {args.model!r}: drop it")


def _text_parser():
    p = argparse.ArgumentParser(add_help=False)
    add_cli_arguments(p)
    return p


def _parse_repetitions(text) -> tuple:
    if isinstance(text, (list, tuple)):
        return tuple(text)
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise MemlensInputError(f"--canary-repetitions must be comma-separated non-negative integers, e.g. "
                                f"1,2,4,8,16 (0 for no canaries); got {text!r}") from None


def run_from_args(args, *, print_fn=print) -> int:
    """``memlens audit`` for text: run :func:`run_text_audit` from parsed arguments and print a summary.

    Errors carry the library parameter (``MemlensInputError.param``), which the command line maps to its flag
    (``--documents`` for ``n_documents``, :data:`CLI_FLAGS`)."""
    return _run_from_args(args, print_fn)


def _run_from_args(args, print_fn) -> int:
    if getattr(args, "data", None) is not None:
        raise MemlensInputError(f"--data holds arrays for the image/tabular audit; the text audit reads a text file: "
                                f"pass --text FILE instead of --data {args.data!r}")
    if args.text is not None and args.dataset is not None:
        raise MemlensInputError(f"--dataset and --text exclude each other; got --dataset {args.dataset!r} and "
                                f"--text {args.text!r}: pass one of them")
    if args.dataset is not None and args.dataset not in TEXT_DATASETS:
        raise MemlensInputError(f"--model char-lm needs a text corpus: --dataset fortunes or --text FILE; got "
                                f"--dataset {args.dataset!r}")
    model = args.model if args.model in TEXT_MODELS or _is_hf(args.model) else None
    if model is None and args.model != "logreg":  # logreg is the image audit's default: not chosen by the user
        raise MemlensInputError(f"--model must be char-lm, hf:PATH or hf-config:NAME for the text audit; got --model "
                                f"{args.model!r}")
    model = model or "char-lm"
    if _is_hf(model):
        for flag, dest in (("--arch", "arch"), ("--width", "width"), ("--depth", "depth")):
            if getattr(args, dest) is not None:
                raise MemlensInputError(f"{flag} shapes the char-LM; with --model {model} the architecture is the "
                                        "checkpoint's or the named configuration's: drop it")
    for flag, dest, bad in (("--dp-epsilon", "dp_epsilon", None), ("--dp-delta", "dp_delta", None)):
        if getattr(args, dest, bad) is not bad:
            raise MemlensInputError(f"{flag} is not available for the text audit; drop it")
    if getattr(args, "loo", False):
        raise MemlensInputError("--loo is not available for the text audit; drop it")
    if getattr(args, "long_tail", False):
        raise MemlensInputError("--long-tail is available for the image/tabular audit, not the text audit; drop it")
    if getattr(args, "sensitive_column", None) is not None:
        raise MemlensInputError("--sensitive-column is available for the image/tabular audit, not the text audit; "
                                "drop it")
    if getattr(args, "label_only", False):
        raise MemlensInputError("--label-only is available for the image/tabular audit, not the text audit; drop it")
    if getattr(args, "proxies", False):
        raise MemlensInputError("--proxies is available for --model logreg and mlp, not for the text audit; drop it")
    config = {k: v for k, v in (("arch", args.arch), ("width", args.width), ("depth", args.depth),
                                ("epochs", args.epochs), ("steps", args.steps)) if v is not None}
    if not config and getattr(args, "manifest_text_config", None):   # --resume --out DIR: the run's own
        config = dict(args.manifest_text_config)
    if "width" in config and "n_heads" not in config and config.get("arch", "transformer") == "transformer":
        config["n_heads"] = next(h for h in (4, 2, 1) if config["width"] % h == 0) if config["width"] > 0 else 4
    n_docs = None if args.documents == 0 else args.documents
    max_chars = None if args.max_chars == 0 else args.max_chars
    pick = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in CLI_DEFAULTS.items()}
    from ..audits.summaries import _floor_line  # deferred: the audit brings torch (the CLI's --help stays fast)
    from ..audits.text import run_text_audit  # deferred: as above

    result = run_text_audit(
        dataset=args.dataset or "fortunes", text_file=args.text, delimiter=args.delimiter, model=model,
        n_models=pick["models"], subset_ratio=pick["subset_ratio"], seed=args.seed, out=pick["out"],
        resume=args.resume, overwrite=args.overwrite, shard_size=pick["shard_size"],
        progress=not args.no_progress, canary_format=args.canary_format, canary_alphabet=args.canary_alphabet,
        canary_length=args.canary_length, canary_repetitions=_parse_repetitions(args.canary_repetitions),
        canaries_per_repetition=args.canaries_per_repetition, n_documents=n_docs, max_chars=max_chars,
        config=config or None, prefix_len=args.prefix_len, suffix_len=args.suffix_len,
        executor=getattr(args, "backend", None) or "local", ray_address=getattr(args, "ray_address", None),
        ray_num_cpus=getattr(args, "ray_num_cpus", None), jobs=jobs_of(args))
    r = result.record
    a = r.analysis
    print_fn(f"{r.dataset}: {r.n_models} {model} models on {r.n_documents} documents, per-token accuracy "
             f"{100 * a['token_accuracy_in']:.1f}% on own documents, {100 * a['token_accuracy_test']:.1f}% on test; "
             f"{a['n_memorized']} documents with counterfactual memorization >= {r.mem_threshold:g}; "
             f"{r.runtime_seconds:.1f} s")
    if a.get("noise_floor"):
        print_fn(_floor_line(a["noise_floor"], "documents", None))
    c = a.get("canaries")
    if c:
        parts = [f"{b['repetitions']}x: {b['exposure_in']:.1f} bits, {100 * b['extracted_in']:.0f}% extracted"
                 for b in c["by_repetition"]]
        print_fn(f"canaries (exposure of {c['max_exposure_bits']:.1f} max; models that never saw one: "
                 f"{c['exposure_out_mean']:.1f} bits): " + "; ".join(parts))
    print_fn(f"report: {result.out / 'report.html'}")
    return 0
