"""The audits' CSV files: one writer (:func:`csv_text`) and one number format (:func:`fmt`) serve every table.

Image/tabular audit: :func:`image_examples_csv` (``examples.csv``), :func:`image_pairs_csv` (``pairs.csv``).
Text audit: :func:`text_examples_csv`, :func:`text_pairs_csv`, :func:`canaries_csv`.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Iterable, Sequence

__all__ = ["fmt", "csv_text", "image_examples_csv", "image_pairs_csv", "text_examples_csv", "text_pairs_csv",
           "canaries_csv", "explanation_text"]


def fmt(x) -> str:
    """A number as CSV text: 6 significant digits, ``nan`` where undefined."""
    x = float(x)
    return "nan" if not math.isfinite(x) else f"{x:.6g}"


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """CSV text with ``\\n`` line ends of a header and rows."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def explanation_text(explanations, i: int) -> str:
    """The reason string of document ``i`` from :func:`memlens.measures.explain_documents` ("" without reasons)."""
    return "" if explanations is None else explanations.reason_text(i)


# ---------------------------------------------------------------------------------------------- image / tabular
def image_examples_csv(mem, labels, attacks=None, loo=None, out_pred=None, *, proxies=None, long_tail=None,
                       attribute=None) -> str:
    """``examples.csv``: index, label, memorization, stderr, n_in, n_out (one row per training example).

    With ``out_pred`` (:class:`~memlens.measures.OutPredictions`) two columns follow: ``out_majority``, the class
    most models that did not train on the example predict (−1 where undefined), and ``out_share``, their fraction.

    With ``attacks`` (an :class:`~memlens.audits.attacks.AuditAttacks`) three columns follow: ``lira_online``, the
    online LiRA score against the first target model (``summary.json``'s ``attacks.targets[0]``); ``in_target``, 1
    if the example is in that model's training set; ``lira_online_in``, the mean online LiRA score over the attacked
    targets that trained on the example (its exposure as a member).

    With ``loo`` (an :class:`~memlens.audits.loo.AuditLOO`) four columns follow: ``loo_memorization`` (Feldman
    2020, Def. 4.1 at leave-one-out, in {−1, 0, 1}), ``loo_margin_memorization`` (full-fit margin minus
    leave-one-out margin), ``loo_margin`` and ``loo_loss`` (margin and loss on the example of the model trained
    without it).

    With ``proxies`` (an :class:`~memlens.audits.proxies.AuditProxies`) one ``proxy_<name>`` column per proxy
    follows (higher = more memorized). With ``long_tail`` (:class:`~memlens.audits.long_tail.LongTailDiagnostic`),
    ``subpopulation`` and ``subpopulation_size`` follow. With ``attribute``
    (:class:`~memlens.attacks.attribute.PopulationAttributeInference`), ``attribute_accuracy_in``,
    ``attribute_accuracy_out`` and ``attribute_memorization`` follow.
    """
    header = ["index", "label", "memorization", "stderr", "n_in", "n_out"]
    if out_pred is not None:
        header += ["out_majority", "out_share"]
    if attacks is not None:
        header += ["lira_online", "in_target", "lira_online_in"]
    if loo is not None:
        header += ["loo_memorization", "loo_margin_memorization", "loo_margin", "loo_loss"]
    pnames = [] if proxies is None else list(proxies.scores)
    header += [f"proxy_{n}" for n in pnames]
    if long_tail is not None:
        header += ["subpopulation", "subpopulation_size"]
    if attribute is not None:
        header += ["attribute_accuracy_in", "attribute_accuracy_out", "attribute_memorization"]

    def row(i):
        r = [i, int(labels[i]), fmt(mem.scores[i]), fmt(mem.stderr[i]), int(mem.n_in[i]), int(mem.n_out[i])]
        if out_pred is not None:
            r += [int(out_pred.majority[i]), fmt(out_pred.share[i])]
        if attacks is not None:
            r += [fmt(attacks.lira_online[i]), int(attacks.in_target[i]), fmt(attacks.lira_online_in[i])]
        if loo is not None:
            r += [fmt(loo.memorization.scores[i]), fmt(loo.margin_memorization.scores[i]), fmt(loo.loo_margin[i]),
                  fmt(loo.loo_loss[i])]
        r += [fmt(proxies.scores[n][i]) for n in pnames]
        if long_tail is not None:
            r += [int(long_tail.cluster[i]), int(long_tail.size[i])]
        if attribute is not None:
            r += [fmt(attribute.accuracy_in[i]), fmt(attribute.accuracy_out[i]), fmt(attribute.memorization[i])]
        return r

    return csv_text(header, (row(i) for i in range(mem.scores.shape[0])))


def image_pairs_csv(pairs) -> str:
    """``pairs.csv``: train_index, test_index, train_label, test_label, memorization, influence."""
    # high-influence pairs share their label by definition (Feldman & Zhang 2020, §3)
    return csv_text(["train_index", "test_index", "train_label", "test_label", "memorization", "influence"],
                    ([int(pairs.train_index[r]), int(pairs.test_index[r]), int(pairs.label[r]), int(pairs.label[r]),
                      fmt(pairs.memorization[r]), fmt(pairs.influence[r])] for r in range(len(pairs))))


# ---------------------------------------------------------------------------------------------- text
def text_examples_csv(full, copy_of, analysis) -> str:
    """``examples.csv`` of the text audit: one row per training column (corpus documents, then canary copies at
    their positions).

    Columns: index, kind (document / canary), canary (its index or empty), group (fortune file), count
    (occurrences in the raw corpus; a canary's repetitions), n_chars, n_in, n_out, memorization (counterfactual,
    per-token accuracy), stderr, memorization_loglik (nats per token), extracted_in / extracted_out (fraction of IN
    / OUT models whose greedy decoding reproduces the document's suffix), reason, text.
    """
    mem, mem_ll = analysis["memorization"], analysis["memorization_ll"]

    def row(i, text):
        c = int(copy_of[i])
        return [i, "canary" if c >= 0 else "document", c if c >= 0 else "", full.train_groups[i],
                int(full.train_counts[i]), len(text), int(mem.n_in[i]), int(mem.n_out[i]), fmt(mem.scores[i]),
                fmt(mem.stderr[i]), fmt(mem_ll.scores[i]), fmt(analysis["extracted_in"][i]),
                fmt(analysis["extracted_out"][i]), explanation_text(analysis["explanations"], i), text]

    return csv_text(["index", "kind", "canary", "group", "count", "n_chars", "n_in", "n_out", "memorization",
                     "stderr", "memorization_loglik", "extracted_in", "extracted_out", "reason", "text"],
                    (row(i, t) for i, t in enumerate(full.train_texts)))


def text_pairs_csv(pairs) -> str:
    """``pairs.csv`` of the text audit: memorized training document, test document it influences, memorization,
    influence."""
    return csv_text(["train_index", "test_index", "memorization", "influence"],
                    ([i, j, fmt(m), fmt(v)] for i, j, m, v in pairs))


def canaries_csv(canaries, rows) -> str:
    """``canaries.csv``: canary, secret, text, repetitions, n_in, n_out, exposure_in, exposure_out (bits),
    exposure_gain, extracted_in, extracted_out (fraction of models whose greedy decoding gives the secret)."""
    return csv_text(["canary", "secret", "text", "repetitions", "n_in", "n_out", "exposure_in", "exposure_out",
                     "exposure_gain", "extracted_in", "extracted_out"],
                    ([c, secret, canaries.texts[c], int(rows["repetitions"][c]), int(rows["n_in"][c]),
                      int(rows["n_out"][c]), fmt(rows["exposure_in"][c]), fmt(rows["exposure_out"][c]),
                      fmt(rows["exposure_gain"][c]), fmt(rows["extracted_in"][c]), fmt(rows["extracted_out"][c])]
                     for c, secret in enumerate(canaries.secrets)))
