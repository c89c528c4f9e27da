"""``memlens audit --resume --out DIR``: the settings a resumed command leaves out come from the run's manifest.

A run directory's ``manifest.json`` records everything that determines its population (dataset, model and its
configuration, number of models, subset ratio, seed, DP, the text audit's corpus, canary and extraction settings).
A flag given with ``--resume`` is kept; if it disagrees with the manifest, the run refuses to resume and lists each
differing setting (:meth:`memlens.storage.RunDir.open_for_resume`). Only the data itself cannot come from the
manifest: a run of the user's own arrays (``--data FILE``) or corpus (``--text FILE``) needs that file again, and
its content is checked against the recorded fingerprint.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from .._validation import MemlensInputError
from ..storage.runs import read_manifest

__all__ = ["given_dests", "fill_from_manifest"]


def given_dests(parser: argparse.ArgumentParser, argv) -> set[str]:
    """The ``dest`` of every option that appears on the command line ``argv`` (``--flag`` or ``--flag=value``),
    including the options of the subcommand."""
    words = {w.split("=", 1)[0] for w in argv if isinstance(w, str) and w.startswith("-")}
    out = set()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif words & set(action.option_strings):
                out.add(action.dest)
    return out


def _set(args, given: set, dest: str, value) -> None:
    if dest not in given and value is not None:
        setattr(args, dest, value)


def fill_from_manifest(args, given: set) -> None:
    """With ``--resume`` and an ``--out`` that holds a run, fill every setting not in ``given`` from its manifest."""
    if not getattr(args, "resume", False) or args.out is None:
        return
    manifest = read_manifest(Path(args.out))   # None: no run there (the audit refuses with its own message)
    if manifest is None:
        return
    cfg = manifest["config"]
    kind = cfg.get("kind")
    _set(args, given, "shard_size", manifest.get("shard_size"))
    data_given = bool({"data", "dataset", "external", "text"} & given)
    if kind == "external-audit":
        if not data_given:
            args.external = cfg.get("folder")
        return
    if kind == "text-audit":
        _fill_text(args, given, cfg, data_given)
        return
    if kind is not None:    # another recipe's run (e.g. the one-run canary audit of the Python API)
        return
    if not data_given:
        if cfg.get("dataset") in (None, "arrays"):
            raise MemlensInputError(f"--resume: the run in {str(args.out)!r} was trained on your own arrays; pass the "
                                    "same --data FILE.npz again (its content is checked against the run)",
                                    param="data")
        args.dataset = cfg["dataset"]
    _set(args, given, "model", cfg.get("model"))
    if "model_param" not in given and args.model == cfg.get("model") and cfg.get("model_config"):
        args.manifest_model_params = _model_params(args.model, cfg["model_config"])
    for dest, key in (("models", "n_models"), ("subset_ratio", "subset_ratio"), ("seed", "seed")):
        _set(args, given, dest, cfg.get(key))
    lq = cfg.get("label_queries")
    if lq and not ({"label_only", "label_queries", "label_sigma", "label_shift", "label_flip"} & given):
        args.label_only = True
        args.label_queries, args.label_sigma = lq.get("n_queries"), lq.get("sigma")
        args.label_shift, args.label_flip = lq.get("max_shift"), bool(lq.get("flip"))
    aq = cfg.get("attribute_queries")
    if aq and not ({"sensitive_column", "attribute_no_prior"} & given):
        args.sensitive_column, args.attribute_no_prior = aq.get("column"), not aq.get("prior", True)
    dp = cfg.get("dp")
    if dp and "dp_epsilon" not in given:
        args.dp_epsilon = dp.get("epsilon")
        _set(args, given, "dp_delta", dp.get("delta"))


def _model_params(model: str, recorded: dict) -> dict:
    """The fields of the recorded model configuration that ``configure_model(model, params)`` takes."""
    from ..train import configure_model  # deferred: the trainers bring torch (the CLI's --help stays fast)

    _, base = configure_model(model)
    names = {f.name for f in dataclasses.fields(base)} - {"factory", "fit", "name"}
    out = {}
    for k, v in recorded.items():
        if k in names:
            out[k] = tuple(v) if isinstance(v, list) else v
    return out


def _fill_text(args, given: set, cfg: dict, data_given: bool) -> None:
    if not data_given:
        if cfg.get("dataset") == "text file":
            raise MemlensInputError(f"--resume: the run in {str(args.out)!r} was trained on your own corpus; pass the "
                                    "same --text FILE again (its content is checked against the run)", param="text")
        args.dataset = cfg.get("dataset")
    _set(args, given, "model", cfg.get("model"))
    for dest, key in (("models", "n_models"), ("subset_ratio", "subset_ratio"), ("seed", "seed"),
                      ("delimiter", "delimiter")):
        _set(args, given, dest, cfg.get(key))
    if "documents" not in given:
        args.documents = cfg.get("n_documents") or 0
    if "max_chars" not in given:
        args.max_chars = cfg.get("max_chars") or 0
    if not {"arch", "width", "depth", "epochs", "steps"} & given:
        args.manifest_text_config = dict(cfg.get("model_config") or {})
    can = cfg.get("canaries")
    if can is None:
        _set(args, given, "canary_repetitions", "0")
    else:
        reps = list(can.get("repetitions") or [])
        _set(args, given, "canary_format", can.get("template"))
        _set(args, given, "canary_alphabet", can.get("alphabet"))
        _set(args, given, "canary_length", can.get("length"))
        _set(args, given, "canary_repetitions", ",".join(str(int(r)) for r in dict.fromkeys(reps)))
        if reps:
            _set(args, given, "canaries_per_repetition", len(can.get("names") or []) // len(set(reps)) or None)
    ext = cfg.get("extraction") or {}
    _set(args, given, "prefix_len", ext.get("prefix_len"))
    _set(args, given, "suffix_len", ext.get("suffix_len"))
