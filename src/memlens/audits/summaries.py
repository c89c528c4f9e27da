"""Typed summaries of the audits: what ``summary.json`` holds, as frozen dataclasses with ``to_json()``.

The recipes build them, the report and the command line read them, and ``to_json()`` writes the file (the same
keys, in the same order, as the first version's dictionaries, so readers of ``summary.json`` see no change). Blocks
whose layout belongs to one step (the attacks table, the privacy audit, leave-one-out, the trainer's convergence
record, the text audit's analysis) stay mappings inside the typed record.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from .pipeline import RunRecord

__all__ = ["AuditSummary", "TextAuditSummary"]


@dataclass(frozen=True)
class AuditSummary:
    """The summary of an image/tabular audit (trained here, or read from an external run).

    Attributes
    ----------
    dataset, n_train, n_test, n_classes :
        The data.
    model, model_config, backend, n_models, subset_ratio, seed :
        The population's identity (``model_config`` is the configuration's ``to_dict()``).
    train_accuracy, test_accuracy : float
        Mean over models: on each model's own training examples, and on the test split.
    mem_threshold, infl_threshold : float
        Feldman & Zhang's thresholds of a memorized example and of a high-influence pair.
    n_memorized, n_undefined : int
        Examples with memorization at least ``mem_threshold``; examples without IN or OUT models (NaN).
    mean_memorization : float
    n_pairs, n_pairs_unique_test : int
        High-influence pairs, and the distinct test examples among them.
    noise_floor : mapping or None
        :class:`memlens.measures.NoiseFloor` ``.to_dict()``: the counts the same estimators give on null
        populations, and the models a standard error of 0.05 needs; its counts are also spread in as
        ``n_memorized_noise_floor`` and ``n_pairs_noise_floor``.
    run : RunRecord
        Shards, timing, executor, identity, versions.
    trainer : mapping
        The shards' merged provenance (configuration, convergence per shard).
    dp : mapping or None
        The DP-SGD record (σ, q, steps, the accountant's ε) of a private population.
    attacks, privacy : mapping or None
        The attack table and settings, and the ε audit beside the accountant's ε (``attacks=True``).
    attack_seconds : float or None
    loo : mapping or None
        The leave-one-out block (``loo=True``).
    runtime_seconds : float or None
        Wall time of the whole audit (set when the results are written).
    """

    dataset: str
    n_train: int
    n_test: int
    n_classes: int
    model: str
    model_config: Mapping[str, Any]
    backend: str
    n_models: int
    subset_ratio: float
    seed: int | None
    train_accuracy: float
    test_accuracy: float
    mem_threshold: float
    infl_threshold: float
    n_memorized: int
    n_undefined: int
    mean_memorization: float
    n_pairs: int
    n_pairs_unique_test: int
    run: RunRecord
    noise_floor: Mapping[str, Any] | None = None
    trainer: Mapping[str, Any] = field(default_factory=dict)
    dp: Mapping[str, Any] | None = None
    attacks: Mapping[str, Any] | None = None
    privacy: Mapping[str, Any] | None = None
    attack_seconds: float | None = None
    loo: Mapping[str, Any] | None = None
    runtime_seconds: float | None = None
    proxies: Mapping[str, Any] | None = None
    long_tail: Mapping[str, Any] | None = None
    attribute: Mapping[str, Any] | None = None

    def with_runtime(self, seconds: float) -> "AuditSummary":
        return dataclasses.replace(self, runtime_seconds=float(seconds))

    def to_json(self) -> dict:
        """``summary.json``: the fields in the first version's order, the run record spread in."""
        out = {name: getattr(self, name) for name in (
            "dataset", "n_train", "n_test", "n_classes", "model", "model_config", "backend", "n_models",
            "subset_ratio", "seed", "train_accuracy", "test_accuracy", "mem_threshold", "infl_threshold",
            "n_memorized", "n_undefined", "mean_memorization", "n_pairs", "n_pairs_unique_test")}
        if self.noise_floor is not None:
            out.update(n_memorized_noise_floor=self.noise_floor["n_memorized"],
                       n_pairs_noise_floor=self.noise_floor["n_pairs"], noise_floor=dict(self.noise_floor))
        out.update(self.run.to_json())
        out.update(runtime_seconds=self.runtime_seconds, trainer=dict(self.trainer),
                   dp=None if self.dp is None else dict(self.dp))
        if self.attacks is not None:
            out.update(attacks=dict(self.attacks), privacy=dict(self.privacy or {}),
                       attack_seconds=self.attack_seconds)
        if self.loo is not None:
            out["loo"] = dict(self.loo)
        if self.proxies is not None:
            out["proxies"] = dict(self.proxies)
        if self.long_tail is not None:
            out["long_tail"] = dict(self.long_tail)
        if self.attribute is not None:
            out["attribute"] = dict(self.attribute)
        return out

    def lines(self) -> list[str]:
        """What the command line prints: the population, the attacks (with the ε audit) and leave-one-out."""
        out = [f"{self.dataset}: {self.n_models} {self.model} models, train accuracy "
               f"{100 * self.train_accuracy:.1f}%, test accuracy {100 * self.test_accuracy:.1f}%; {self.n_memorized} "
               f"examples with memorization >= {self.mem_threshold:g}, {self.n_pairs} high-influence pairs; "
               f"{(self.runtime_seconds or math.nan):.1f} s"]
        if self.noise_floor is not None:
            out.append(_floor_line(self.noise_floor, "examples", "high-influence pairs"))
        if self.attacks is not None:
            lira, p = self.attacks["table"]["lira-online"], self.privacy or {}
            acc = p.get("accountant_epsilon")
            out.append(f"LiRA (online, {self.attacks['n_targets']} targets): AUC {lira['auc']['mean']:.3f}, TPR at 0.1% "
                       f"FPR {100 * lira['tpr']['0.001']['pooled']:.2f}% (pooled)")
            out.append(_epsilon_line(p) + (f"; accountant's epsilon {acc:.2f}" if acc is not None else ""))
        if self.loo is not None:
            b = self.loo
            a = b["agreement"]["loo_memorization_vs_subset"]
            out.append(f"leave-one-out ({b['method']}, {b['seconds']:.2f} s): {b['n_memorized_loo']} examples memorized "
                       f"at leave-one-out vs {b['n_memorized_subset']} by the subset estimate "
                       f"({b['n_memorized_both']} both); Pearson r {a['pearson']:.2f}, Spearman {a['spearman']:.2f}")
        if self.proxies is not None:
            p = self.proxies
            best = p["table"][p["best"]]
            out.append(f"proxies ({p['from']}): best {p['best']}, top-k precision {_num(best['top_k_precision'])}, "
                       f"AUC {_num(best['auc'])}, Spearman {_num(best['spearman'])} (noise ceiling "
                       f"{_num(p['noise_ceiling']['ceiling'])}), {best['seconds']:.1f} s")
        if self.long_tail is not None:
            lt = self.long_tail
            b = {x["l"]: x for x in lt["buckets"]}
            out.append(f"long tail: {lt['n_subpopulations']} subpopulations ({lt['n_singletons']} singletons), Zipf "
                       f"exponent {lt['zipf_exponent']:.2f}; mean memorization of singletons "
                       f"{_num(b['1']['mean_memorization'])} vs subpopulations of >16: {_num(b['>16']['mean_memorization'])}")
        if self.attribute is not None:
            a = self.attribute
            out.append(f"attribute inference (column {a['column']}): right on {100 * a['members']['accuracy']:.1f}% of "
                       f"members vs {100 * a['nonmembers']['accuracy']:.1f}% of non-members (baseline "
                       f"{100 * a['members']['baseline']:.1f}%); {a['n_high']} examples with attribute memorization "
                       f">= {a['threshold']:g}" + (f" (noise floor {a['n_high_noise_floor']:.0f})"
                                                   if a.get("n_high_noise_floor") is not None else ""))
        return out


def _num(x) -> str:
    return "–" if x is None or not math.isfinite(float(x)) else f"{float(x):.2f}"


def _floor_line(nf: Mapping[str, Any], what: str, pairs_what: str | None) -> str:
    """The CLI's noise-floor line: the null counts and the models a standard error of 0.05 needs."""
    pairs = (f", {nf['n_pairs']:.0f} {pairs_what}" if pairs_what and nf.get("n_pairs") is not None else "")
    need, every = nf.get("models_for_target_stderr_median_memorized"), nf.get("models_for_target_stderr_every_example")
    target = f"±{nf['target_stderr']:g}"
    return (f"noise floor (memberships shuffled among the models): {nf['n_memorized']:.0f} {what} over the "
            f"threshold{pairs}; standard error of a memorized {what[:-1]} {_se(nf['stderr_median'])} (median)"
            + (f": about {need} models for {target}" if need is not None else "")
            + (f", {every} for {target} on every {what[:-1]}" if every is not None else "")
            + ("; with so few models the standard errors themselves are rough" if nf.get("n_models", 99) < 20
               else ""))


def _se(x) -> str:
    """A standard error for people: '<0.001' where the models agree, else three decimals."""
    return "n/a" if x is None or not math.isfinite(x) else ("<0.001" if x < 0.001 else f"{x:.3f}")


def _epsilon_line(p: Mapping[str, Any]) -> str:
    """The CLI's audited-ε line: the bound, its method, level, and the trials it used."""
    eps, by = p.get("audited_epsilon_lower_bound"), p.get("audited_by")
    if by is None or eps is None or not math.isfinite(eps):
        return "audited epsilon: undefined (no attack has a valid bound; see summary.json privacy.by_attack)"
    blk = (p.get("by_attack") or {}).get(by) or {}
    method = p.get("method_short", "paired one-run audit")
    if eps <= 0:
        return (f"audited epsilon >= 0 at {100 * p['confidence']:.0f}% confidence: no attack's guesses reject "
                f"epsilon = 0 ({method} over {blk.get('n_pairs')} IN/OUT pairs of distinct examples per target)")
    return (f"audited epsilon >= {eps:.2f} at {100 * p['confidence']:.0f}% confidence ({method}, {by} on target {blk.get('best_target')}: {blk.get('n_correct')} of "
            f"{blk.get('n_guesses')} pair guesses right among {blk.get('n_pairs')} IN/OUT pairs of distinct examples)")


@dataclass(frozen=True)
class TextAuditSummary:
    """The summary of a text audit (language models with canaries).

    Attributes
    ----------
    dataset, source, corpus :
        The corpus: its name, where it came from, its description.
    n_documents, n_test, n_train_columns : int
        Corpus training documents, test documents, and training columns (documents plus canary copies).
    model, model_config, n_models, subset_ratio, seed :
        The population's identity.
    mem_threshold, infl_threshold : float
    prefix_len, suffix_len : int
        Discoverable memorization's prompt and target lengths.
    analysis : mapping
        Accuracy and loss in and out, counterfactual memorization, extraction, the ranking attack, sample
        extraction and the canary tables (:func:`memlens.audits.text` ``_analyse``).
    run : RunRecord
    measure_seconds : float
    runtime_seconds : float or None
    """

    dataset: str
    source: str
    n_documents: int
    n_test: int
    n_train_columns: int
    corpus: str
    model: str
    model_config: Mapping[str, Any]
    n_models: int
    subset_ratio: float
    seed: int
    mem_threshold: float
    infl_threshold: float
    prefix_len: int
    suffix_len: int
    analysis: Mapping[str, Any]
    run: RunRecord
    measure_seconds: float
    runtime_seconds: float | None = None

    def with_runtime(self, seconds: float) -> "TextAuditSummary":
        return dataclasses.replace(self, runtime_seconds=float(seconds))

    def to_json(self) -> dict:
        out = {"kind": "text-audit"}
        out.update({name: getattr(self, name) for name in (
            "dataset", "source", "n_documents", "n_test", "n_train_columns", "corpus", "model", "model_config",
            "n_models", "subset_ratio", "seed", "mem_threshold", "infl_threshold", "prefix_len", "suffix_len")})
        out.update(self.analysis)
        out.update(self.run.to_json())
        out.update(measure_seconds=self.measure_seconds, runtime_seconds=self.runtime_seconds)
        return out
