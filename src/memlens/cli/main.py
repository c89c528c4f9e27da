"""The ``memlens`` command line: a thin layer over the library.

    memlens audit [--dataset digits | --data FILE.npz | --external FOLDER]
                  [--model logreg|mlp|ridge|kernel-ridge|cnn|PATH.py:FUNC|fit:PATH.py:FUNC]
                  [--model-param KEY=VALUE ...] [--loo]
                  [--models K] [--subset-ratio R]
                  [--seed S] [--out DIR] [--resume | --overwrite] [--no-progress]
                  [--backend local|ray [--ray-address ADDR | --ray-num-cpus N]]
                  [--attack-targets N | --no-attacks] [--dp-epsilon E [--dp-delta D]]
    memlens audit --dataset fortunes | --text FILE [--model char-lm] [--canary-repetitions 1,2,4,8,16] ...
                  (the text audit: language models, canaries, exposure, extraction; `memlens audit --help`)
    memlens lm-audit --model PATH --members FILE --nonmembers FILE [--out DIR] [--reference PATH]
                  [--mask-model PATH] [--attacks A,B] [--prefix-lens 8,16,32] [--samples N] ...
                  (a Hugging Face causal LM: membership attacks and extraction; `memlens lm-audit --help`)
    memlens reproduce NAME [--out DIR] [--quick] [--seed S]
    memlens list

Bad input gets one line on stderr, ``memlens: error: <parameter, value and fix>``, exit status 2 and no
traceback; an existing run directory is left as it was.
"""
from __future__ import annotations

import argparse
import re
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .._io import check_npz_file, check_regular_file
from .._random import check_seed
from .._validation import MemlensInputError, MemlensTrainingError, MemlensWarning, did_you_mean
from .._version import __version__
from ..data import from_arrays
from ..experiments import get_experiment, list_experiments
from ..experiments._common import PROGRESS
from ..storage.executors import ExecutorError
from ..storage.runs import RunStorageError
from .lm import LM_FLAGS as _LM_FLAGS
from .lm import add_lm_audit_parser, run_lm_audit_from_args
from .options import jobs_arg, jobs_of
from .resume import fill_from_manifest, given_dests
from .text import CLI_FLAGS as _TEXT_FLAGS
from .text import add_cli_arguments as add_text_arguments
from .text import check_not_text_flags, is_text_audit, run_from_args

__all__ = ["main", "build_parser", "load_npz_dataset"]

#: Library parameter name -> command-line flag, for error messages.
_FLAGS = {"n_models": "--models", "subset_ratio": "--subset-ratio", "seed": "--seed", "dataset": "--dataset",
          "model": "--model", "out": "--out", "shard_size": "--shard-size", "resume and overwrite":
          "--resume and --overwrite", "reproduction": "NAME", "attack_targets": "--attack-targets",
          "dp_epsilon": "--dp-epsilon", "dp_delta": "--dp-delta", "loo": "--loo", "proxies": "--proxies", "long_tail": "--long-tail", "long_tail_space": "--long-tail-space",
          "sensitive_column": "--sensitive-column", "attribute_prior": "--attribute-no-prior",
          "label_only": "--label-only", "label_queries": "--label-queries", "label_sigma": "--label-sigma",
          "label_shift": "--label-shift", "label_flip": "--label-flip", "label_seed": "--seed",
          "executor": "--backend", "ray_address": "--ray-address", "ray_num_cpus": "--ray-num-cpus",
          "external": "--external", "model_params": "--model-param", "on_shard": "on_shard",
          "lira_convention": "--lira-convention", "jobs": "--jobs"}


class _UsageError(Exception):
    """An argparse error (unknown flag, wrong type): reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and exit; we report one line instead
        raise _UsageError(f"{message}{_suggestion(self, message)}; see `{self.prog} --help`")


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of ``parser`` and of its subcommands."""
    out = []
    for action in parser._actions:
        out += action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _options(sub)
    return sorted(set(out))


def _suggestion(parser, message: str) -> str:
    """"did you mean" for argparse's mistyped option or choice."""
    m = re.search(r"unrecognized arguments: (-\S+)", message)
    if m:
        return did_you_mean(m.group(1).split("=")[0], _options(parser))
    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if m:
        return did_you_mean(m.group(1), re.findall(r"'([^']*)'", m.group(2)))
    return ""


def _flagged(exc: MemlensInputError, command: str | None = None) -> str:
    """The error's message with the command-line flag in place of the library parameter it names
    (``exc.param``: ``n_models must ...`` -> ``--models must ...``)."""
    message = str(exc)
    if command == "lm-audit":
        flag = _LM_FLAGS.get(exc.param or "")
    else:
        flag = _FLAGS.get(exc.param or "") or _TEXT_FLAGS.get(exc.param or "")
    if flag and message.startswith(exc.param):
        return flag + message[len(exc.param):]
    return message


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="memlens", description="Measure how much machine-learning models memorize their "
                                                 "training data, and show why.")
    parser.add_argument("--version", action="version", version=f"memlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    audit = sub.add_parser("audit", help="train a population, measure memorization and influence, write a report",
                           description="Train a population of models on random subsets, estimate Feldman-Zhang "
                                       "memorization and influence, attack the population with LiRA, RMIA and the "
                                       "loss attack (unless --no-attacks), audit epsilon, and write population/, "
                                       "examples.csv, pairs.csv, summary.json and report.html into --out.")
    audit.add_argument("--dataset", default=None,
                       help="dataset name: digits (default), fashion-mnist, mnist-5k, breast-cancer, wine, iris, "
                            "caravan; fortunes runs the text audit (language models, canaries)")
    audit.add_argument("--data", metavar="FILE.npz", default=None,
                       help="your own data: an .npz with arrays X_train, y_train, X_test, y_test (optional: "
                            "image_shape, class_names)")
    audit.add_argument("--external", metavar="FOLDER", default=None,
                       help="audit models trained elsewhere: a folder of .npy masks, outputs (or signals) and labels "
                            "in the layout of memlens.attacks.external; the same outputs as a trained audit")
    audit.add_argument("--model", default="logreg",
                       help="logreg (default), mlp, ridge or kernel-ridge (ridge and kernel-ridge: exact closed-form "
                            "refits on every subset instead of training), cnn (the built-in residual CNN, with "
                            "augmentation), PATH.py:FUNC (your own torch module: FUNC(input_shape, n_classes) returns "
                            "an nn.Module; the file is imported, which runs it), fit:PATH.py:FUNC (your own training "
                            "function fit(X, y, seed) -> predict); char-lm: the text audit's byte-level language "
                            "model")
    audit.add_argument("--model-param", action="append", default=None, metavar="KEY=VALUE",
                       help="override a field of the model configuration, repeatable: e.g. --model-param C=0.01 "
                            "(logreg), --model-param hidden=256,128 (mlp), --model-param alpha=10 (ridge); the "
                            "fields are those of memlens.train.LogisticConfig, MLPConfig, RidgeConfig, "
                            "KernelRidgeConfig, CNNConfig, TorchModuleConfig (e.g. epochs=10, lr=0.05, "
                            "optimizer=adam) and FitFunctionConfig (output=proba)")
    audit.add_argument("--loo", action="store_true",
                       help="also compute leave-one-out memorization of every training example (exact for ridge and "
                            "kernel-ridge, one Newton step for logreg) and compare it with the subset estimate")
    audit.add_argument("--proxies", action="store_true",
                       help="also compute cheap memorization proxies from one model (logreg: influence functions; "
                            "mlp: forgetting, learning speed, loss, margin, TracIn, EK-FAC, curvature) and compare "
                            "each with the population's memorization")
    audit.add_argument("--long-tail", action="store_true",
                       help="also cluster the data into subpopulations, fit Feldman's long-tail prior and compare "
                            "its prediction with the measured memorization by subpopulation size")
    audit.add_argument("--long-tail-space", choices=("features", "penultimate"), default=None,
                       help="with --long-tail: cluster the input features (default) or the penultimate layer of a "
                            "model trained on every example (mlp, cnn, your module)")
    audit.add_argument("--sensitive-column", default=None, metavar="J",
                       help="also run attribute inference on feature J (an index, or a feature name of --data): "
                            "every model guesses every training example's value from its other features and label; "
                            "reports accuracy on members vs non-members against the most-frequent-value baseline "
                            "and each example's attribute memorization")
    audit.add_argument("--attribute-no-prior", action="store_true",
                       help="with --sensitive-column: score values by the model alone (Yeom et al.), without the "
                            "value's frequency as a prior")
    audit.add_argument("--label-only", action="store_true",
                       help="also run label-only membership inference: every model labels perturbed copies of every "
                            "training example while it is trained (robustness of the predicted label; "
                            "Choquette-Choo et al. 2021); adds the attacks label-only and label-only-calibrated")
    audit.add_argument("--label-queries", type=int, default=None, metavar="N",
                       help="with --label-only: perturbed copies per example (default 32)")
    audit.add_argument("--label-sigma", type=float, default=None, metavar="S",
                       help="with --label-only: Gaussian noise in standardized feature units (default 0.5; 0 for "
                            "augmentations only)")
    audit.add_argument("--label-shift", type=int, default=None, metavar="P",
                       help="with --label-only, images: translate each copy by up to P pixels (default 0)")
    audit.add_argument("--label-flip", action="store_true",
                       help="with --label-only, images: mirror each copy with probability 1/2 (natural images only)")
    audit.add_argument("--models", type=int, default=None, metavar="K",
                       help="number of models (default 256; 8 for the text audit)")
    audit.add_argument("--subset-ratio", type=float, default=None, metavar="R",
                       help="fraction of the training set each model trains on (default 0.7; 0.5 for the text "
                            "audit)")
    audit.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    audit.add_argument("--out", default=None, metavar="DIR",
                       help="run directory (default runs/audit; runs/text-audit for the text audit)")
    audit.add_argument("--shard-size", type=int, default=None, metavar="N",
                       help="models per shard file (default: one vectorized block of the model, e.g. 256 for "
                            "logreg and 32 for mlp; 4 for the text audit; a resumed run keeps its own)")
    group = audit.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out")
    group.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    audit.add_argument("--no-progress", action="store_true", help="no progress bar or phase lines")
    audit.add_argument("--quiet", action="store_true",
                       help="print nothing but errors and warnings (implies --no-progress)")
    audit.add_argument("--json", action="store_true",
                       help="print the run's summary.json on stdout instead of the summary lines (for scripts; "
                            "implies --no-progress)")
    audit.add_argument("--backend", default="local", metavar="local|ray",
                       help="where the shards of models are trained: local (default, on this machine: --jobs worker "
                            "processes) or ray (as Ray tasks, each shard written to --out as it completes; needs pip "
                            "install 'memlens[ray]')")
    audit.add_argument("--jobs", default=None, metavar="N", type=jobs_arg,
                       help="worker processes of the local backend, one BLAS/torch thread each (default: "
                            "$MEMLENS_JOBS, else every CPU this process may use; 1 trains in this process); the "
                            "results are the same for any N")
    audit.add_argument("--ray-address", default=None, metavar="ADDR",
                       help="with --backend ray: address of a running Ray cluster (HOST:PORT, ray://HOST:PORT or "
                            "auto); without it a local Ray instance is started")
    audit.add_argument("--ray-num-cpus", type=int, default=None, metavar="N",
                       help="with --backend ray and no --ray-address: CPUs of the local Ray instance (default all)")
    attacks = audit.add_mutually_exclusive_group()
    attacks.add_argument("--attack-targets", type=int, default=16, metavar="N",
                         help="membership attacks (LiRA online/offline, RMIA, loss) against the first N models, each "
                              "with all other models as references (default 16)")
    attacks.add_argument("--lira-convention", default="memlens", choices=("memlens", "reference"),
                         help="LiRA's conventions: memlens's (the paper's one-sided offline test, mean and unbiased "
                              "variance; default) or 'reference', those of tensorflow/privacy's mi_lira_2021 script "
                              "(medians, ddof=0, truncated reference lists, two-sided offline score) to compare with "
                              "published numbers")
    attacks.add_argument("--no-attacks", action="store_true",
                         help="skip the membership attacks, ROC curves and ε audit")
    audit.add_argument("--dp-epsilon", type=float, default=None, metavar="E",
                       help="train with DP-SGD, noise calibrated by Opacus's accountant for (E, D)-DP")
    audit.add_argument("--dp-delta", type=float, default=None, metavar="D",
                       help="δ of the DP guarantee, in (0, 1) (default 1/(10 n_train)); needs --dp-epsilon")
    add_text_arguments(audit)

    add_lm_audit_parser(sub)

    rep = sub.add_parser("reproduce", help="reproduce a figure or table of a seed paper",
                         description="Reproduce a figure or table of a seed paper (`memlens list` shows them).")
    rep.add_argument("name", metavar="NAME")
    rep.add_argument("--out", default=None, metavar="DIR", help="output folder (default runs/NAME)")
    rep.add_argument("--quick", action="store_true", help="a small, fast version")
    rep.add_argument("--seed", type=int, default=0, metavar="S")

    sub.add_parser("list", help="list the reproductions", description="List the reproductions.")

    show = sub.add_parser("show", help="print a finished run's summary", description="Print the summary of a "
                          "finished run (its summary.json) as tables, or as JSON with --json.")
    show.add_argument("dir", metavar="DIR", help="run directory")
    show.add_argument("--json", action="store_true", help="print summary.json as it is")
    return parser


def _param_value(text: str):
    """``"0.01"`` -> 0.01, ``"64"`` -> 64, ``"true"`` -> True, ``"256,128"`` -> (256, 128), else the text."""
    if "," in text:
        return tuple(_param_value(t) for t in text.split(",") if t.strip())
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_model_params(items) -> dict | None:
    """``["C=0.01", "hidden=256,128"]`` -> ``{"C": 0.01, "hidden": (256, 128)}`` (None when no item)."""
    if not items:
        return None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise MemlensInputError(f"--model-param must be KEY=VALUE, e.g. --model-param C=0.01; got {item!r}")
        out[key.strip()] = _param_value(value)
    return out


def _check_npz_shapes(path, headers) -> None:
    """The arrays' shapes from their headers agree (rows of X and y, features of X_train and X_test): refused before
    a large file is inflated."""
    shapes = {k: v[0] for k, v in headers.items()}
    missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in shapes]
    if missing:
        raise MemlensInputError(f"--data {str(path)!r} lacks array(s) {', '.join(missing)}; save it with "
                                "numpy.savez(FILE, X_train=..., y_train=..., X_test=..., y_test=...)")
    for x, y in (("X_train", "y_train"), ("X_test", "y_test")):
        if len(shapes[x]) != 2:
            raise MemlensInputError(f"--data {str(path)!r}: {x} must be a 2-d array (rows, features); got shape "
                                    f"{shapes[x]} (flatten images and give image_shape)")
        if len(shapes[y]) != 1 or shapes[x][0] != shapes[y][0]:
            raise MemlensInputError(f"--data {str(path)!r}: {y} must be a 1-d array with one label per row of {x} "
                                    f"({shapes[x][0]}); got shape {shapes[y]}")
    if shapes["X_train"][1] != shapes["X_test"][1]:
        raise MemlensInputError(f"--data {str(path)!r}: X_test must have the features of X_train "
                                f"({shapes['X_train'][1]}); got {shapes['X_test'][1]}")


def load_npz_dataset(path):
    """A :class:`~memlens.data.Dataset` from an ``.npz`` of X_train, y_train, X_test, y_test (validated)."""
    path = Path(path)
    if not path.exists():
        raise MemlensInputError(f"--data must be an existing .npz file; got {str(path)!r}, which does not exist")
    check_regular_file(path, "--data")      # a FIFO would block, /dev/zero never ends
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # an .npz is a zip archive
        raise MemlensInputError(f"--data must be an .npz file written by numpy.savez; got {str(path)!r}, which is not "
                                f"a zip archive (it starts with {head!r}); save the arrays with numpy.savez(FILE, "
                                "X_train=..., y_train=..., X_test=..., y_test=...)")
    headers = check_npz_file(path, "--data")      # declared sizes, before anything is inflated
    _check_npz_shapes(path, headers)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is bad input
        raise MemlensInputError(f"--data must be an .npz file written by numpy.savez; could not read "
                                f"{str(path)!r} ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("X_train", "y_train", "X_test", "y_test") if k not in arrays]
    if missing:
        raise MemlensInputError(f"--data {str(path)!r} lacks array(s) {', '.join(missing)}; save it with "
                                "numpy.savez(FILE, X_train=..., y_train=..., X_test=..., y_test=...)")
    image_shape = arrays.get("image_shape")
    class_names = arrays.get("class_names")
    feature_names = arrays.get("feature_names")
    try:
        return from_arrays(arrays["X_train"], arrays["y_train"], arrays["X_test"], arrays["y_test"],
                           name=path.stem, image_shape=None if image_shape is None else image_shape.tolist(),
                           class_names=None if class_names is None else class_names.tolist(),
                           feature_names=None if feature_names is None else feature_names.tolist())
    except MemlensInputError as exc:
        raise MemlensInputError(f"--data {str(path)!r}: {exc}") from None


def _trained(args):
    dataset = load_npz_dataset(args.data) if args.data is not None else (args.dataset or "digits")
    from ..audits.image import run_audit  # deferred: the audit brings torch (the CLI's --help stays fast)

    params = parse_model_params(args.model_param)
    if params is None:
        params = getattr(args, "manifest_model_params", None)
    return run_audit(dataset=dataset, model=args.model, model_params=params,
                     n_models=args.models, subset_ratio=args.subset_ratio,
                     seed=args.seed, out=args.out, resume=args.resume, overwrite=args.overwrite,
                     shard_size=args.shard_size, progress=not args.no_progress, attacks=not args.no_attacks,
                     attack_targets=args.attack_targets, dp_epsilon=args.dp_epsilon, dp_delta=args.dp_delta,
                     loo=args.loo, proxies=args.proxies, long_tail=args.long_tail,
                     long_tail_space=_long_tail_space(args), sensitive_column=_sensitive(args),
                     attribute_prior=not args.attribute_no_prior,
                     label_only=_label_only(args), executor=args.backend, ray_address=args.ray_address,
                     ray_num_cpus=args.ray_num_cpus, lira_convention=args.lira_convention, jobs=jobs_of(args))


_LABEL_FLAGS = (("label_queries", "--label-queries", "n_queries"), ("label_sigma", "--label-sigma", "sigma"),
                ("label_shift", "--label-shift", "max_shift"))


def _sensitive(args):
    if args.attribute_no_prior and args.sensitive_column is None:
        raise MemlensInputError("--attribute-no-prior sets the attribute attack; add --sensitive-column J, or drop it",
                                param="sensitive_column")
    return args.sensitive_column


def _long_tail_space(args) -> str:
    if args.long_tail_space is not None and not args.long_tail:
        raise MemlensInputError("--long-tail-space chooses where --long-tail clusters; add --long-tail, or drop it",
                                param="long_tail_space")
    return args.long_tail_space or "features"


def _label_only(args):
    """``--label-only`` and its settings as ``run_audit``'s ``label_only`` (False, or a mapping of LabelQueries
    fields); a setting without ``--label-only`` is refused."""
    given = {flag: getattr(args, dest) for dest, flag, _ in _LABEL_FLAGS if getattr(args, dest) is not None}
    if args.label_flip:
        given["--label-flip"] = True
    if not args.label_only:
        if given:
            raise MemlensInputError(f"{', '.join(given)} set(s) the label-only queries; add --label-only to run the "
                                    "label-only attack, or drop it", param="label_only")
        return False
    out = {field: getattr(args, dest) for dest, _, field in _LABEL_FLAGS if getattr(args, dest) is not None}
    if args.label_flip:
        out["flip"] = True
    out["seed"] = int(args.seed) if args.seed is not None and args.seed >= 0 else 0
    return out


#: Flags that describe training, refused with --external (the models were trained elsewhere).
_TRAINING_FLAGS = (("data", "--data", None), ("dataset", "--dataset", None), ("model", "--model", "logreg"),
                   ("model_param", "--model-param", None), ("dp_epsilon", "--dp-epsilon", None),
                   ("dp_delta", "--dp-delta", None), ("loo", "--loo", False), ("proxies", "--proxies", False),
                   ("long_tail", "--long-tail", False), ("long_tail_space", "--long-tail-space", None),
                   ("label_only", "--label-only", False), ("sensitive_column", "--sensitive-column", None),
                   ("attribute_no_prior", "--attribute-no-prior", False),
                   ("label_queries", "--label-queries", None), ("label_sigma", "--label-sigma", None),
                   ("label_shift", "--label-shift", None), ("label_flip", "--label-flip", False), ("seed", "--seed", 0),
                   ("subset_ratio", "--subset-ratio", 0.7), ("models", "--models", 256))


def _external(args):
    for dest, flag, default in _TRAINING_FLAGS:
        if getattr(args, dest) != default:
            raise MemlensInputError(f"{flag} describes training, and --external audits models trained elsewhere; got "
                                    f"{flag} with --external {args.external!r}: drop {flag}", param="external")
    from ..audits.external import run_external_audit  # deferred: as run_audit

    return run_external_audit(args.external, out=args.out, resume=args.resume, overwrite=args.overwrite,
                              shard_size=args.shard_size, progress=not args.no_progress, attacks=not args.no_attacks,
                              attack_targets=args.attack_targets, executor=args.backend,
                              ray_address=args.ray_address, ray_num_cpus=args.ray_num_cpus, jobs=jobs_of(args),
                              lira_convention=args.lira_convention)


def _audit(args) -> int:
    fill_from_manifest(args, getattr(args, "given", set()))   # --resume --out DIR: the rest from the run's manifest
    if args.quiet or args.json:
        args.no_progress = True
    if is_text_audit(args):  # --dataset fortunes, --text FILE or --model char-lm
        if args.model_param:
            raise MemlensInputError(f"--model-param applies to --model logreg, mlp, ridge or kernel-ridge; got "
                                    f"{args.model_param[0]!r} with the text audit: use its own flags (memlens audit "
                                    "--help, 'text audit' options)")
        if args.quiet or args.json:    # the summary lines go nowhere; --json prints summary.json instead
            lines: list = []
            rc = run_from_args(args, print_fn=lambda *a, **k: lines.append(" ".join(map(str, a))))
            if args.json:
                report = Path(lines[-1].removeprefix("report: "))
                print((report.parent / "summary.json").read_text())
            return rc
        return run_from_args(args)
    check_not_text_flags(args)
    for name, default in (("models", 256), ("subset_ratio", 0.7), ("out", "runs/audit")):
        if getattr(args, name) is None:
            setattr(args, name, default)

    if args.data is not None and args.dataset is not None:
        raise MemlensInputError(f"--dataset and --data exclude each other; got --dataset {args.dataset!r} and "
                                f"--data {args.data!r}: pass one of them")
    if args.external is not None:
        result = _external(args)
    else:
        result = _trained(args)
    if args.json:
        print((result.out / "summary.json").read_text())
    elif not args.quiet:
        for line in result.record.lines():
            print(line)
        print(f"report: {result.out / 'report.html'}")
    return 0


def _reproduce(args) -> int:
    try:
        module = get_experiment(args.name)
    except ImportError as exc:
        print(f"memlens: error: reproduction {args.name!r} is unavailable in this installation ({exc}); "
              "`memlens list` shows which ones are", file=sys.stderr)
        return 1
    check_seed(args.seed)
    out = Path(args.out) if args.out is not None else Path("runs") / args.name
    if out.exists() and not out.is_dir():
        raise MemlensInputError(f"--out must be a folder; got {str(out)!r}, which is a file")
    PROGRESS["on"] = True
    t0 = time.perf_counter()
    print(f"{args.name}{' (quick)' if args.quick else ''}: running, phase by phase ...", file=sys.stderr, flush=True)
    try:
        results = module.run(out, quick=args.quick, seed=args.seed)
    finally:
        PROGRESS["on"] = False
    print(f"{args.name}: wrote {out} ({len(results)} results in results.json) in {time.perf_counter() - t0:.0f} s")
    return 0


def _show(args) -> int:
    from .show import show  # deferred: rich draws the tables

    show(args.dir, as_json=args.json)
    return 0


def _list(args) -> int:
    items = list_experiments()
    width = max((len(n) for n, _ in items), default=0)
    for name, desc in items:
        print(f"{name:<{width}}  {desc}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, MemlensWarning):
        print(f"memlens: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 success, 2 bad input, 1 the run directory could not be
    written or a Ray worker kept dying, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.given = given_dests(parser, sys.argv[1:] if argv is None else argv)
    except _UsageError as exc:
        print(f"memlens: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    handler = {"audit": _audit, "lm-audit": run_lm_audit_from_args, "reproduce": _reproduce, "list": _list,
               "show": _show}[args.command]
    old = warnings.showwarning
    warnings.showwarning = _show_warning
    old_term = _sigterm_as_interrupt()
    try:
        return handler(args)
    except MemlensInputError as exc:
        print(f"memlens: error: {_one_line(_flagged(exc, args.command))}", file=sys.stderr)
        return 2
    except (RunStorageError, ExecutorError, MemlensTrainingError) as exc:  # finished shards are kept
        print(f"memlens: error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("memlens: interrupted; finished shards are kept: continue with --resume", file=sys.stderr)
        return 130
    except OSError as exc:   # a write outside a run directory (a reproduction's output folder): still one line
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"memlens: error: could not write{where}: {exc.strerror or exc}; free space or fix permissions, then "
              "run the command again", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = old
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _sigterm_as_interrupt():
    """Make SIGTERM behave like SIGINT (a KeyboardInterrupt: one line, exit 130, resumable); returns the old handler
    (None when not in the main thread, where handlers cannot be set)."""
    def on_term(signum, frame):
        raise KeyboardInterrupt
    try:
        return signal.signal(signal.SIGTERM, on_term)
    except ValueError:      # not the main thread (e.g. main() called from a worker thread)
        return None


def _one_line(text: str) -> str:
    """The message on one line, except a list of items (lines starting with ``  - ``), kept one item per line."""
    return re.sub(r"\s*\n(?!  - )\s*", " ", text).strip()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
