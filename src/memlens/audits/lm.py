"""The language-model audit: membership inference and extraction against a Hugging Face causal LM.

This is ``memlens lm-audit`` as a library function. Given a local checkpoint and two sets of documents (known
members of its training data and known non-members from the same distribution), :func:`run_lm_audit`

* scores every document by the membership attacks of :mod:`memlens.attacks.lm` (loss, zlib, lowercase, Min-K%,
  Min-K%++, and, when their requirements are given, reference model, ReCaLL and neighbourhood), and reports each
  attack's AUC and TPR at 0.1% and 1% FPR with stratified percentile-bootstrap intervals
  (:func:`memlens.evaluation.bootstrap_metrics`);
* measures discoverable and approximate memorization (:func:`memlens.attacks.lm_extraction.extraction_curve`) of
  members and, as the control, of non-members, against the prefix length, the number of copies of a document in
  the members file and, with ``compare`` checkpoints, the model;
* optionally runs the untargeted generate-rank-verify attack of Carlini et al. 2021 against the members;
* writes ``scores.csv`` (one row per document), ``extraction.csv``, ``summary.json`` (``attacks.<name>.auc`` and
  the TPRs with intervals, the extraction table, throughput) and ``report.html`` (ROC curves on log-log axes, the
  documents each attack finds most likely members, the extraction curves).

Documents are deduplicated (whitespace-normalized); a member's number of copies is how often it occurs in the
members file. A document in both files is a member (dropped from the non-members, with a warning). ReCaLL's prefix
is ``recall_shots`` non-members drawn with the seed and left out of every attack's evaluation, so that all attacks
are evaluated on the same documents.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .._io import atomic_write_bytes, to_jsonable
from .._random import check_int_seed
from .._validation import MemlensInputError, MemlensWarning, check_float, check_int, warn
from .._version import __version__
from ..attacks.lm import MaskedLM, check_attacks, lm_membership_scores, load_masked_lm
from ..attacks.lm_extraction import extraction_curve, untargeted_extraction
from ..data.text import _dedup as dedup_documents
from ..data.text import _read_utf8, normalize_whitespace, split_documents
from ..evaluation import bootstrap_metrics
from ..models.hf import CausalLM, load_causal_lm
from ..report.lm_html import render_lm_report
from ..report.tables import csv_text, fmt
from ..storage.lock import acquire_run_lock

__all__ = ["LMAuditResult", "run_lm_audit", "read_documents", "LM_RESULT_FILES"]

#: Files an LM audit writes into its folder (``overwrite`` replaces exactly these).
LM_RESULT_FILES = ("scores.csv", "extraction.csv", "samples.csv", "summary.json", "report.html")
DEFAULT_PREFIX_LENS = (8, 16, 32)
FPRS = (1e-3, 1e-2)


@dataclass(frozen=True, eq=False)
class LMAuditResult:
    """What :func:`run_lm_audit` computed, with the files it wrote.

    Attributes
    ----------
    out : Path
    summary : dict
        The content of ``summary.json``.
    texts : tuple of str
        The evaluated documents (members first, then non-members).
    labels : ndarray of bool, shape (n,)
        True for members.
    copies : ndarray of int, shape (n,)
    scores : memlens.attacks.lm.LMScores
    metrics : dict of str to memlens.evaluation.BootstrapResult
    extraction : memlens.attacks.lm_extraction.ExtractionCurve or None
    untargeted : memlens.attacks.lm_extraction.UntargetedResult or None
    """

    out: Path
    summary: Mapping[str, Any]
    texts: tuple
    labels: np.ndarray
    copies: np.ndarray
    scores: Any
    metrics: Mapping[str, Any]
    extraction: Any = None
    untargeted: Any = None
    files: tuple = field(default=())


def read_documents(source, *, what: str, delimiter: str | None = None) -> list[str]:
    """Documents from a sequence of strings or a file: ``.jsonl`` (one JSON object per line with a ``"text"`` field,
    or one JSON string per line), otherwise UTF-8 text split by :func:`memlens.data.text.split_documents` (one
    document per line unless ``delimiter`` is given)."""
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        content = _read_utf8(path) if path.exists() else None
        if content is None:
            raise MemlensInputError(f"{what} file {str(source)!r} does not exist; pass a text file (one document per "
                                    "line) or a .jsonl file with a 'text' field")
        if path.suffix.lower() == ".jsonl":
            docs = []
            for n, line in enumerate(content.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise MemlensInputError(f"{what} file {str(source)!r} line {n} is not JSON ({exc.msg}); each line "
                                            "must be an object with a 'text' field") from None
                text = obj.get("text") if isinstance(obj, dict) else obj
                if not isinstance(text, str):
                    raise MemlensInputError(f"{what} file {str(source)!r} line {n} has no string 'text' field")
                if text.strip():
                    docs.append(text)
        else:
            docs = split_documents(content, delimiter=delimiter)
    elif isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        docs = list(source)
        for i, t in enumerate(docs):
            if not isinstance(t, str):
                raise MemlensInputError(f"{what}[{i}] must be a str; got {type(t).__name__}")
        docs = [t for t in docs if t.strip()]
    else:
        raise MemlensInputError(f"{what} must be a file path or a list of strings; got {type(source).__name__}")
    return docs


def _dedup(docs: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct documents (whitespace-normalized) and how often each occurs: the corpus loader's deduplication."""
    first, counts, _ = dedup_documents(docs, [""] * len(docs))
    return first, counts


def _check_out(out, overwrite: bool) -> Path:
    if not isinstance(out, (str, Path)) or str(out) == "":
        raise MemlensInputError(f"out must be a folder path; got {out!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MemlensInputError(f"out {str(out)!r} is a file; choose a folder")
    if out.is_dir() and not overwrite:
        present = [f for f in LM_RESULT_FILES if (out / f).exists()]
        if present:
            raise MemlensInputError(f"out {str(out)!r} already holds an audit ({', '.join(present)}); pass --overwrite "
                                    "to replace it or choose another folder")
    return out


def _metrics_entry(res, n_pos: int, n_neg: int) -> dict:
    entry = {"auc": res.auc.estimate, "auc_ci": [res.auc.low, res.auc.high], "n_members": n_pos,
             "n_nonmembers": n_neg}
    for f, ci in zip(res.fprs, res.tpr):
        entry[f"tpr@{f:g}"] = ci.estimate
        entry[f"tpr@{f:g}_ci"] = [ci.low, ci.high]
    return entry


def _prefix_lens(values) -> tuple[int, ...]:
    if isinstance(values, (int, np.integer)):
        values = (int(values),)
    try:
        out = tuple(sorted({check_int("prefix_lens", v, min_value=1) for v in values}))
    except TypeError:
        raise MemlensInputError(f"prefix_lens must be positive integers, e.g. 8,16,32; got {values!r}") from None
    return out


def run_lm_audit(*, model, members, nonmembers, out, reference=None, mask_model=None, attacks=None, k: float = 0.2,
                 recall_shots: int = 4, n_neighbours: int = 8, neighbour_fraction: float = 0.15,
                 extraction: bool = True, prefix_lens=DEFAULT_PREFIX_LENS, suffix_len: int = 16,
                 decoding: str = "greedy", compare=(),
                 n_samples: int = 0, sample_len: int = 48, verify_against=None, window: int | None = None,
                 stride: int | None = None, batch_size: int = 16, device: str = "cpu", dtype: str = "float32",
                 n_boot: int = 1000, delimiter: str | None = None, seed=0, overwrite: bool = False,
                 progress: bool = True) -> LMAuditResult:
    """Audit a causal language model for membership leakage and extraction (see the module docstring).

    Parameters
    ----------
    model : str, Path or memlens.models.hf.CausalLM
        A local checkpoint folder (or a hub name in the local cache), or a loaded model.
    members, nonmembers : path or sequence of str
        Known training documents and known non-training documents of the same distribution.
    out : str or Path
        Output folder.
    reference : path or CausalLM, optional
        Reference model (adds the ``reference`` attack and the reference ratio of the untargeted attack).
    mask_model : path or memlens.attacks.lm.MaskedLM, optional
        Masked LM for the neighbourhood attack.
    attacks : sequence of str, optional
        Subset of :data:`memlens.attacks.lm.LM_ATTACKS` (default: every attack whose requirement is given; ReCaLL
        whenever there are enough non-members).
    k : float
        Min-K% / Min-K%++ fraction.
    recall_shots : int
        Non-members used as ReCaLL's prefix (0 turns ReCaLL off).
    n_neighbours, neighbour_fraction : neighbourhood attack settings.
    extraction : bool
        Measure discoverable memorization of members and non-members.
    prefix_lens, suffix_len : prefix lengths ``k`` and suffix length, in tokens.
    decoding : {"greedy", "sample"}
        How continuations are decoded: greedy (the definition of discoverable memorization) or sampled (top-40,
        temperature 1, seeded): the extraction rate of an attacker who samples once.
    compare : sequence of paths or CausalLMs
        More checkpoints (e.g. other sizes) for the extraction curve's model axis.
    n_samples, sample_len : int
        Untargeted extraction: samples generated and verified (0 = skip) and their length in tokens.
    verify_against : path or sequence of str, optional
        Corpus the samples are verified against (default: the members).
    window, stride, batch_size : scoring (see :func:`memlens.models.hf.score_tokens`).
    device, dtype : where and in which dtype models are loaded.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
    overwrite : bool
        Replace an earlier audit's files in ``out``.
    progress : bool
        Print phase lines.
    """
    t0 = time.perf_counter()
    seed = check_int_seed(seed, why="it is recorded in summary.json")
    k = check_float("k", k, min_value=0.0, max_value=1.0, min_inclusive=False)
    recall_shots = check_int("recall_shots", recall_shots, min_value=0)
    n_boot = check_int("n_boot", n_boot, min_value=1)
    n_samples = check_int("n_samples", n_samples, min_value=0)
    suffix_len = check_int("suffix_len", suffix_len, min_value=1)
    prefix_lens = _prefix_lens(prefix_lens)
    if decoding not in ("greedy", "sample"):
        raise MemlensInputError(f"decoding must be 'greedy' or 'sample'; got {decoding!r}")
    if attacks is not None:
        attacks = check_attacks(attacks, reference=reference, recall_prefix=["x"] if recall_shots else None,
                                mask_model=mask_model)
    out = _check_out(out, overwrite)
    mem_docs, copies = _dedup(read_documents(members, what="members", delimiter=delimiter))
    non_docs, _ = _dedup(read_documents(nonmembers, what="nonmembers", delimiter=delimiter))
    keys = {normalize_whitespace(d) for d in mem_docs}
    both = [d for d in non_docs if normalize_whitespace(d) in keys]
    if both:
        warn(f"{len(both)} non-member document(s) also occur among the members; they are counted as members")
        non_docs = [d for d in non_docs if normalize_whitespace(d) not in keys]
    if len(mem_docs) < 2 or len(non_docs) < 2:
        raise MemlensInputError(f"members and nonmembers must each hold at least 2 distinct documents; got "
                                f"{len(mem_docs)} and {len(non_docs)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7265636C]))
    want_recall = attacks is None or "recall" in attacks
    shots: list[str] = []
    if recall_shots and want_recall:
        if len(non_docs) - recall_shots < 2:
            if attacks is not None:
                raise MemlensInputError(f"recall_shots={recall_shots} leaves fewer than 2 non-members to evaluate "
                                        f"({len(non_docs)} given); lower it or give more non-members")
            warn(f"ReCaLL skipped: {len(non_docs)} non-members cannot spare {recall_shots} for its prefix")
        else:
            pick = np.sort(rng.choice(len(non_docs), size=recall_shots, replace=False))
            shots = [non_docs[i] for i in pick]
            keep = np.setdiff1d(np.arange(len(non_docs)), pick)
            non_docs = [non_docs[i] for i in keep]
    say = (lambda s: print(f"memlens: {s}", flush=True)) if progress else (lambda s: None)

    # ---- models (validated and loaded before any work)
    lm = model if isinstance(model, CausalLM) else load_causal_lm(model, device=device, dtype=dtype, what="model")
    ref = reference if reference is None or isinstance(reference, CausalLM) else \
        load_causal_lm(reference, device=device, dtype=dtype, what="reference")
    mlm = mask_model if mask_model is None or isinstance(mask_model, MaskedLM) else \
        load_masked_lm(mask_model, device=device)
    others = {}
    for c in compare or ():
        other = c if isinstance(c, CausalLM) else load_causal_lm(c, device=device, dtype=dtype, what="compare")
        others[other.name] = other
    run_attacks = check_attacks(attacks, reference=ref, recall_prefix=shots or None, mask_model=mlm)
    for m in (lm, *others.values()):
        head = 1 if m.bos_id is not None else 0
        if extraction and head + max(prefix_lens) + suffix_len > m.max_length:
            raise MemlensInputError(f"prefix_lens: the longest prefix ({max(prefix_lens)}) plus suffix_len "
                                    f"({suffix_len}) exceed the context of {m.name!r} ({m.max_length} tokens); "
                                    "shorten them")
    batch_size = check_int("batch_size", batch_size, min_value=1)
    if window is not None:
        window = check_int("window", window, min_value=2, max_value=lm.max_length,
                           hint="(tokens per scoring window, at most the model's context)")
    if stride is not None:
        stride = check_int("stride", stride, min_value=1, max_value=(window or lm.max_length) - 1,
                           hint="(tokens between window starts, less than the window)")
    if "neighbourhood" in run_attacks:
        n_neighbours = check_int("n_neighbours", n_neighbours, min_value=1)
        neighbour_fraction = check_float("neighbour_fraction", neighbour_fraction, min_value=0.0, max_value=1.0,
                                         min_inclusive=False)
    if n_samples:
        if lm.bos_id is None:
            raise MemlensInputError(f"n_samples: model {lm.name!r} has no BOS token to sample from; drop --samples")
        check_int("sample_len", sample_len, min_value=1, max_value=lm.max_length - 1)
    out.mkdir(parents=True, exist_ok=True)
    lock = acquire_run_lock(out)
    try:
        texts = mem_docs + non_docs
        labels = np.r_[np.ones(len(mem_docs), bool), np.zeros(len(non_docs), bool)]
        all_copies = np.r_[copies, np.zeros(len(non_docs), np.int64)]
        say(f"scoring {len(mem_docs)} members and {len(non_docs)} non-members with {len(run_attacks)} attacks "
            f"({', '.join(run_attacks)}) under {lm.name}")
        t_sc = time.perf_counter()
        sc = lm_membership_scores(lm, texts, attacks=run_attacks, k=k, reference=ref, recall_prefix=shots or None,
                                  mask_model=mlm, n_neighbours=n_neighbours, neighbour_fraction=neighbour_fraction,
                                  window=window, stride=stride, batch_size=batch_size, seed=seed,
                                  progress=lambda s: say(f"  {s}"))
        scoring_s = time.perf_counter() - t_sc
        metrics, table = {}, {}
        n_neg = int((~labels).sum())
        if n_neg * FPRS[0] < 1:
            warn(f"FPR {FPRS[0]:g} is below the resolution 1/{n_neg} of {n_neg} non-members: the TPR reported there "
                 "is the TPR at zero false positives; give more non-members to resolve it")
        for a, s in sc.scores.items():
            ok = np.isfinite(s)
            if not ok.all():
                warn(f"attack {a}: {int((~ok).sum())} document(s) have no score (NaN) and are left out of its metrics")
            with warnings.catch_warnings():             # the resolution warning, said once above
                warnings.simplefilter("ignore", MemlensWarning)
                metrics[a] = bootstrap_metrics(s[ok], labels[ok], fprs=FPRS, n_boot=n_boot, seed=seed)
            table[a] = _metrics_entry(metrics[a], int(labels[ok].sum()), int((~labels[ok]).sum()))
        curve = flags = None
        if extraction:
            say(f"extraction: {decoding} continuations at prefix lengths {', '.join(map(str, prefix_lens))} "
                f"(suffix {suffix_len} tokens), members and non-members")
            kw = dict(prefix_lens=prefix_lens, suffix_len=suffix_len, batch_size=max(1, batch_size * 2), seed=seed,
                      method=decoding, top_k=40 if decoding == "sample" else None)
            models = {lm.name: lm, **others}
            curve = extraction_curve(models, mem_docs, copies=copies, **kw)
            control = extraction_curve(models, non_docs, **kw)
            flags = _joined(curve, control)
        untargeted = None
        if n_samples:
            say(f"untargeted extraction: {n_samples} samples of {sample_len} tokens, ranked and verified")
            corpus = mem_docs if verify_against is None else read_documents(verify_against, what="verify_against",
                                                                            delimiter=delimiter)
            untargeted = untargeted_extraction(lm, corpus, n_samples=n_samples, sample_len=sample_len, reference=ref,
                                               batch_size=max(1, batch_size * 2), seed=seed)
        n_tok = int(sc.n_tokens.sum())
        summary = {
            "kind": "lm-audit", "memlens_version": __version__, "seed": seed,
            "model": lm.describe(), "reference": None if ref is None else ref.describe(),
            "mask_model": None if mlm is None else mlm.name,
            "compare": [o.describe() for o in others.values()],
            "n_members": len(mem_docs), "n_nonmembers": len(non_docs), "recall_shots": len(shots),
            "members_with_copies": int((copies > 1).sum()),
            "settings": {"k": k, "n_neighbours": n_neighbours, "neighbour_fraction": neighbour_fraction,
                         "window": window or lm.max_length, "stride": stride or max(1, (window or lm.max_length) // 2),
                         "batch_size": batch_size, "device": lm.device, "n_boot": n_boot,
                         "prefix_lens": list(prefix_lens), "suffix_len": suffix_len, "decoding": decoding},
            "attacks": table,
            "mean_logprob_members": float(np.nanmean(sc.mean_logprob[labels])),
            "mean_logprob_nonmembers": float(np.nanmean(sc.mean_logprob[~labels])),
            "tokens_scored": n_tok, "scoring_seconds": scoring_s,
            "tokens_per_second": n_tok / scoring_s if scoring_s > 0 else None,
        }
        if curve is not None:
            summary["extraction"] = _extraction_rows(curve, control)
        if untargeted is not None:
            summary["untargeted"] = {"n_samples": len(untargeted.samples), "n_check": untargeted.n_check,
                                     "n_bytes": untargeted.n_bytes, "base_rate": untargeted.base_rate,
                                     "precision": dict(untargeted.precision)}
        summary["seconds"] = time.perf_counter() - t0
        files = _write_files(out, summary=summary, texts=texts, labels=labels, copies=all_copies, sc=sc, flags=flags,
                             untargeted=untargeted, metrics=metrics)
    finally:
        lock.release()
    return LMAuditResult(out=out, summary=json.loads(json.dumps(to_jsonable(summary))), texts=tuple(texts),
                         labels=labels, copies=all_copies, scores=sc, metrics=metrics, extraction=curve,
                         untargeted=untargeted, files=files)


def _extraction_rows(curve_members, curve_nonmembers) -> list[dict]:
    """Rows of the extraction table: members by copies (and all), the non-members (all) as the control."""
    rows = [{**r, "set": "member"} for r in curve_members.rows]
    rows += [{**r, "set": "non-member"} for r in curve_nonmembers.rows if r["copies"] == "all"]
    return rows


@dataclass(frozen=True, eq=False)
class _Flags:
    """Per-document extraction flags of members and non-members joined (the order of ``texts``)."""

    exact: dict


def _joined(curve_members, curve_nonmembers) -> _Flags:
    return _Flags(exact={key: np.r_[curve_members.exact[key], curve_nonmembers.exact[key]]
                         for key in curve_members.exact})


def _write_files(out: Path, *, summary, texts, labels, copies, sc, flags, untargeted, metrics) -> tuple:
    names = list(sc.scores)
    header = ["index", "role", "copies", "n_tokens", "mean_logprob", "token_accuracy"] + \
        [f"score_{a}" for a in names]
    ext_cols = [] if flags is None else list(flags.exact)
    one_model = len({n for n, _ in ext_cols}) == 1
    header += [f"extracted_{p}" if one_model else f"extracted_{name}_{p}" for name, p in ext_cols]
    header.append("text")
    rows = []
    for i, t in enumerate(texts):
        row = [i, "member" if labels[i] else "non-member", int(copies[i]), int(sc.n_tokens[i]),
               fmt(sc.mean_logprob[i]), fmt(sc.token_accuracy[i])] + [fmt(sc.scores[a][i]) for a in names]
        row += [fmt(flags.exact[c][i]) for c in ext_cols]
        rows.append(row + [t])
    files = {"scores.csv": csv_text(header, rows)}
    if flags is not None:
        ex_rows = summary["extraction"]
        cols = ["model", "prefix_len", "set", "copies", "n", "exact_rate", "token_match", "similarity", "bleu",
                "approx_rate"]
        files["extraction.csv"] = csv_text(cols, [[r.get(c, "") if not isinstance(r.get(c), float) else fmt(r[c])
                                                  for c in cols] for r in ex_rows])
    if untargeted is not None:
        cols = ["index", "verbatim"] + [f"score_{a}" for a in untargeted.scores] + ["text"]
        files["samples.csv"] = csv_text(cols, [[i, int(untargeted.verbatim[i])] +
                                               [fmt(untargeted.scores[a][i]) for a in untargeted.scores] + [s]
                                               for i, s in enumerate(untargeted.samples)])
    files["summary.json"] = json.dumps(to_jsonable(summary), indent=2, sort_keys=False) + "\n"
    files["report.html"] = render_lm_report(summary=to_jsonable(summary), texts=texts, labels=labels, copies=copies,
                                            scores=sc, metrics=metrics, untargeted=untargeted)
    for name in LM_RESULT_FILES:                     # an earlier audit's optional files do not outlive it
        if name not in files and (out / name).exists():
            (out / name).unlink()
    for name, text in files.items():
        atomic_write_bytes(out / name, text.encode("utf-8"))
    return tuple(files)
