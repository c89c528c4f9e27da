"""Hugging Face causal language models: scoring, decoding, the MIMIR attacks, extraction, ``memlens lm-audit`` and the
fine-tuning population of the text audit. Every model is a tiny GPT-2 or Llama configuration built and trained
inside the tests (nothing is downloaded)."""
import json
import math
import sys

import numpy as np
import pytest

pytest.importorskip("transformers")

from memlens._validation import MemlensInputError  # noqa: E402
from memlens.attacks import lm as A  # noqa: E402
from memlens.attacks.lm_extraction import copy_buckets, extraction_curve, lm_continuations, untargeted_extraction  # noqa: E402
from memlens.audits.lm import run_lm_audit  # noqa: E402
from memlens.cli import main  # noqa: E402
from memlens.data.text import load_text_dataset  # noqa: E402
from memlens.evaluation import auc_null_stderr, roc_auc  # noqa: E402
from memlens.models import hf  # noqa: E402
from memlens.models.hf import TokenScores  # noqa: E402

N_MEMBERS, N_NON, REPEATED = 40, 40, 12


@pytest.fixture(scope="module")
def corpus():
    docs = list(load_text_dataset("fortunes", max_chars=120, seed=0).train_texts)
    docs = [" ".join(d.split()) for d in docs]            # one line each (the members file is one per line)
    docs = list(dict.fromkeys(d for d in docs if len(d) >= 60))
    return {"members": docs[:N_MEMBERS], "nonmembers": docs[N_MEMBERS:N_MEMBERS + N_NON],
            "tokenizer": docs[200:1400], "reference": docs[1400:1600]}


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return hf.train_tokenizer(corpus["tokenizer"], vocab_size=400)


@pytest.fixture(scope="module")
def models(corpus, tokenizer, tmp_path_factory):
    """A GPT-2 that memorized the members (document 0 repeated REPEATED times), an untrained twin, a reference model
    trained on other documents, a tiny masked LM, all saved to folders."""
    root = tmp_path_factory.mktemp("lm")
    cfg = hf.tiny_config("gpt2-tiny", tokenizer, context_length=128)
    target = hf.new_causal_lm(cfg, tokenizer, seed=1)
    train = corpus["members"] + [corpus["members"][0]] * (REPEATED - 1)
    hf.fine_tune(target, hf.encode(target, train), epochs=40, batch_size=16, lr=3e-3, seed=0)
    untrained = hf.new_causal_lm(cfg, tokenizer, seed=2)
    ref = hf.new_causal_lm(cfg, tokenizer, seed=3)
    hf.fine_tune(ref, hf.encode(ref, corpus["reference"]), epochs=4, batch_size=16, lr=3e-3, seed=0)
    import transformers

    bert = transformers.BertForMaskedLM(transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id))
    paths = {name: hf.save_causal_lm(m, root / name) for name, m in
             (("target", target), ("untrained", untrained), ("reference", ref))}
    bert.save_pretrained(root / "mlm")
    tokenizer.save_pretrained(root / "mlm")
    paths["mlm"] = root / "mlm"
    for name, docs in (("members", train), ("nonmembers", corpus["nonmembers"])):
        (root / f"{name}.txt").write_text("\n".join(docs) + "\n")
    return {"target": target, "untrained": untrained, "reference": ref, "paths": paths, "root": root}


@pytest.fixture(scope="module")
def llama(tokenizer, corpus):
    lm = hf.new_causal_lm(hf.tiny_config("llama-tiny", tokenizer, context_length=128), tokenizer, seed=4)
    hf.fine_tune(lm, hf.encode(lm, corpus["members"][:10]), epochs=3, batch_size=8, lr=3e-3, seed=0)
    return lm


# ----------------------------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("which", ["gpt2", "llama"])
def test_batched_scoring_equals_one_document_at_a_time(which, models, llama, corpus):
    lm = models["target"] if which == "gpt2" else llama
    ids = hf.encode(lm, corpus["members"][:12] + corpus["nonmembers"][:12])
    batched = hf.score_tokens(lm, ids, batch_size=7, distribution=True)
    for i, r in enumerate(ids):
        one = hf.score_tokens(lm, [r], batch_size=1, distribution=True)
        assert one.n_tokens[0] == r.size - 1 == batched.n_tokens[i]
        for field in ("logprob", "mu", "sigma"):
            np.testing.assert_allclose(batched.doc(i, field), one.doc(0, field), atol=1e-5)
        np.testing.assert_array_equal(batched.doc(i, "correct"), one.doc(0, "correct"))


def test_scores_match_a_direct_forward_pass(models, corpus):
    import torch

    lm = models["target"]
    r = hf.encode(lm, corpus["members"][3:4])[0]
    with torch.inference_mode():
        logits = lm.model(input_ids=torch.from_numpy(r[None])).logits[0, :-1].double()
    want = torch.log_softmax(logits, -1).gather(-1, torch.from_numpy(r[1:, None])).squeeze(-1).numpy()
    got = hf.score_tokens(lm, [r]).doc(0)
    np.testing.assert_allclose(got, want, atol=1e-5)
    p = torch.softmax(logits, -1)
    mu = (p * torch.log_softmax(logits, -1)).sum(-1).numpy()
    np.testing.assert_allclose(hf.score_tokens(lm, [r], distribution=True).doc(0, "mu"), mu, atol=1e-5)


def test_windows_score_every_token_once_with_the_stated_context(models, corpus):
    lm = models["target"]
    r = hf.encode(lm, [" ".join(corpus["members"][:3])])[0]
    assert r.size > 40
    window, stride = 16, 8
    sc = hf.score_tokens(lm, [r], window=window, stride=stride)
    assert sc.n_tokens[0] == r.size - 1
    # brute force: target position p is scored in the last window starting at a multiple of stride that covers it
    # among those that had not scored it yet, i.e. with context r[b:p] for b = the start of that window
    got = sc.doc(0)
    starts = list(range(0, r.size, stride))
    prev_end = 1
    for b in starts:
        end = min(b + window, r.size)
        for p in range(prev_end, end):
            direct = hf.score_tokens(lm, [r[b:p + 1]]).doc(0)[-1]
            assert abs(got[p - 1] - direct) < 1e-5
        prev_end = end
        if end >= r.size:
            break
    # a window as long as the document is the plain score
    full = hf.score_tokens(lm, [r]).doc(0)
    np.testing.assert_allclose(hf.score_tokens(lm, [r], window=r.size + 1 if r.size + 1 <= lm.max_length
                                                else lm.max_length).doc(0), full, atol=1e-6)


def test_token_scores_means_and_empty_documents():
    ts = TokenScores(logprob=np.array([-1.0, -3.0, -2.0]), correct=np.array([True, False, True]),
                     offsets=np.array([0, 2, 2, 3]))
    np.testing.assert_allclose(ts.mean_logprob(), [-2.0, np.nan, -2.0])
    np.testing.assert_allclose(ts.token_accuracy(), [0.5, np.nan, 1.0])


# ----------------------------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("which", ["gpt2", "llama"])
def test_batched_greedy_decoding_equals_one_prompt_at_a_time(which, models, llama, corpus):
    lm = models["target"] if which == "gpt2" else llama
    ids = hf.encode(lm, corpus["members"][:10])
    prompts = [r[:3 + i] for i, r in enumerate(ids)]            # different lengths: left padding is exercised
    batched = hf.decode(lm, prompts, 9, batch_size=10)
    single = np.stack([hf.decode(lm, [p], 9)[0] for p in prompts])
    np.testing.assert_array_equal(batched, single)


def test_greedy_decoding_is_the_argmax_chain(models, corpus):
    import torch

    lm = models["target"]
    x = list(hf.encode(lm, corpus["nonmembers"][:1])[0][:5])
    want = []
    with torch.inference_mode():
        for _ in range(6):
            nxt = int(lm.model(input_ids=torch.tensor([x])).logits[0, -1].argmax())
            want.append(nxt)
            x.append(nxt)
    np.testing.assert_array_equal(hf.decode(lm, [np.array(x[:5])], 6)[0], want)


def test_sampling_is_seeded(models):
    lm = models["target"]
    prompts = [np.array([lm.bos_id])] * 6
    a = hf.decode(lm, prompts, 12, method="sample", top_k=20, seed=5)
    b = hf.decode(lm, prompts, 12, method="sample", top_k=20, seed=5)
    c = hf.decode(lm, prompts, 12, method="sample", top_k=20, seed=6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(MemlensInputError, match="temperature"):
        hf.decode(lm, prompts, 3, method="sample", temperature=0)
    with pytest.raises(MemlensInputError, match="context"):
        hf.decode(lm, prompts, lm.max_length)


# ----------------------------------------------------------------------------------------------- pure attacks
def test_attack_formulas_by_hand():
    ts = TokenScores(logprob=np.array([-1.0, -2.0, -3.0, -4.0, -5.0, -0.5, -0.1]), correct=np.zeros(7, bool),
                     offsets=np.array([0, 5, 7]), mu=np.array([-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0]),
                     sigma=np.array([1.0, 2.0, 1.0, 0.0, 4.0, 0.5, 0.5]))
    # Min-K%: the lowest floor(0.4 * 5) = 2 of document 0, the lowest max(1, floor(0.4 * 2)) = 1 of document 1
    np.testing.assert_allclose(A.min_k_score(ts, k=0.4), [-4.5, -0.5])
    # Min-K%++: z = (lp - mu) / sigma = [0, -0.5, -2, 0 (sigma 0), -1], [1, 1.8]; lowest 2 and 1
    np.testing.assert_allclose(A.min_k_plus_plus_score(ts, k=0.4), [-1.5, 1.0])
    np.testing.assert_allclose(A.loss_score([-2.0]), [-2.0])
    np.testing.assert_allclose(A.zlib_score([-2.0], [40.0]), [-0.05])
    np.testing.assert_allclose(A.lowercase_score([-2.0], [-3.0]), [1.5])
    np.testing.assert_allclose(A.reference_score([-2.0], [-3.5]), [1.5])
    np.testing.assert_allclose(A.recall_score([-2.0], [-3.0]), [1.5])
    np.testing.assert_allclose(A.neighbourhood_score([-2.0], [[-3.0, -4.0, np.nan]]), [1.5])
    with pytest.raises(MemlensInputError, match="distribution=True"):
        A.min_k_plus_plus_score(TokenScores(ts.logprob, ts.correct, ts.offsets))
    with pytest.raises(MemlensInputError, match="^k must"):
        A.min_k_score(ts, k=0)


def test_zlib_bytes_is_the_compressed_size():
    import zlib

    assert A.zlib_bytes(["aaaa" * 50, "héllo"]).tolist() == [len(zlib.compress(b"aaaa" * 50)),
                                                            len(zlib.compress("héllo".encode()))]


# ----------------------------------------------------------------------------------------------- attacks on models
def _aucs(lm, corpus, **kw):
    texts = corpus["members"] + corpus["nonmembers"][4:]
    labels = np.r_[np.ones(N_MEMBERS, bool), np.zeros(N_NON - 4, bool)]
    sc = A.lm_membership_scores(lm, texts, recall_prefix=corpus["nonmembers"][:4], **kw)
    return {a: roc_auc(s, labels) for a, s in sc.scores.items()}, sc


def test_every_attack_separates_members_of_a_memorizing_model(models, corpus, tmp_path):
    mlm = A.load_masked_lm(models["paths"]["mlm"])
    aucs, sc = _aucs(models["target"], corpus, reference=models["reference"], mask_model=mlm, n_neighbours=4)
    assert set(aucs) == set(A.LM_ATTACKS)
    for a, auc in aucs.items():
        assert auc > 0.8, (a, auc)
    assert np.all(sc.extra["neighbour_mean_logprob"].shape == (len(sc.mean_logprob), 4))


def test_attacks_are_at_chance_on_an_untrained_model(models, corpus):
    mlm = A.load_masked_lm(models["paths"]["mlm"])
    aucs, _ = _aucs(models["untrained"], corpus, reference=models["reference"], mask_model=mlm, n_neighbours=4)
    se = auc_null_stderr(N_MEMBERS, N_NON - 4)
    for a, auc in aucs.items():          # 4 standard errors: a fixed seed, and 8 attacks
        assert abs(auc - 0.5) < 4 * se, (a, auc)


def test_neighbours_change_the_text_and_are_seeded(models, corpus):
    mlm = A.load_masked_lm(models["paths"]["mlm"])
    texts = corpus["members"][:3]
    a = A.neighbours(mlm, texts, n_neighbours=3, seed=1)
    assert A.neighbours(mlm, texts, n_neighbours=3, seed=1) == a
    assert [len(r) for r in a] == [3, 3, 3]
    assert all(n != t for t, row in zip(texts, a) for n in row)


def test_attack_selection_is_checked(models, corpus):
    lm = models["target"]
    with pytest.raises(MemlensInputError, match="did you mean 'min_k'"):
        A.lm_membership_scores(lm, corpus["members"][:2], attacks=["loss", "mink"])
    with pytest.raises(MemlensInputError, match="reference model"):
        A.lm_membership_scores(lm, corpus["members"][:2], attacks=["reference"])
    sc = A.lm_membership_scores(lm, corpus["members"][:2])
    assert list(sc.scores) == ["loss", "zlib", "lowercase", "min_k", "min_k_plus_plus"]


def test_recall_prefix_fits_the_context(models, corpus):
    lm = models["target"]
    prefix = A.recall_prefix_ids(lm, corpus["nonmembers"][:30], room=64)
    assert prefix[0] == lm.bos_id and prefix.size <= lm.max_length - 64
    cond = A.conditional_scores(lm, np.array([lm.bos_id]), hf.encode(lm, corpus["members"][:3]))
    np.testing.assert_allclose(cond, hf.score_texts(lm, corpus["members"][:3]).mean_logprob(), atol=1e-6)


# ----------------------------------------------------------------------------------------------- extraction
def test_extraction_finds_the_repeated_document_and_not_the_single_ones(models, corpus):
    lm = models["target"]
    texts = corpus["members"]
    copies = np.ones(len(texts), int)
    copies[0] = REPEATED
    curve = extraction_curve({"t": lm}, texts, copies=copies, prefix_lens=(4, 8), suffix_len=8)
    ex = curve.exact[("t", 8)]
    assert ex[0] == 1.0
    assert np.nanmean(ex[1:]) < 0.5
    rows = {(r["prefix_len"], r["copies"]): r for r in curve.rows}
    assert rows[(8, "9-16")]["exact_rate"] == 1.0 and rows[(8, "9-16")]["n"] == 1
    assert rows[(8, "all")]["n"] == int(np.isfinite(ex).sum())
    # an untrained model reproduces nothing
    none = lm_continuations(models["untrained"], texts, prefix_len=8, suffix_len=8)
    assert np.nansum(none.exact) == 0
    gen, tgt = lm_continuations(lm, texts[:1], prefix_len=8, suffix_len=8).texts()
    assert gen[0] == tgt[0] and tgt[0] in texts[0]


def test_copy_buckets():
    assert copy_buckets([1, 2, 3, 4, 5, 8, 9, 16, 17]) == ["1", "2", "3-4", "3-4", "5-8", "5-8", "9-16", "9-16",
                                                            "17-32"]


def test_untargeted_extraction_finds_the_repeated_document(models, corpus):
    res = untargeted_extraction(models["target"], corpus["members"], n_samples=48, sample_len=40, n_bytes=24,
                                seed=0)
    assert len(res.samples) == 48 and res.verbatim.dtype == bool
    assert res.verbatim.any()
    for name, p in res.precision.items():
        assert 0.0 <= p <= 1.0
    assert res.precision["loss"] >= res.base_rate


# ----------------------------------------------------------------------------------------------- the audit
def test_lm_audit_writes_scores_summary_and_report(models, tmp_path):
    p, root = models["paths"], models["root"]
    out = tmp_path / "audit"
    r = run_lm_audit(model=p["target"], members=root / "members.txt", nonmembers=root / "nonmembers.txt", out=out,
                     reference=p["reference"], prefix_lens=(4, 8), suffix_len=8, n_samples=16, sample_len=24,
                     n_boot=100, progress=False)
    s = json.loads((out / "summary.json").read_text())
    assert s["n_members"] == N_MEMBERS and s["n_nonmembers"] == N_NON - 4 and s["recall_shots"] == 4
    assert s["members_with_copies"] == 1
    for a in ("loss", "zlib", "lowercase", "min_k", "min_k_plus_plus", "reference", "recall"):
        e = s["attacks"][a]
        assert e["auc"] > 0.8 and e["auc_ci"][0] <= e["auc"] <= e["auc_ci"][1]
        assert 0 <= e["tpr@0.01"] <= 1 and 0 <= e["tpr@0.001"] <= e["tpr@0.01"]
    rows = (out / "scores.csv").read_text().splitlines()
    assert len(rows) == 1 + N_MEMBERS + N_NON - 4
    assert rows[0].startswith("index,role,copies,n_tokens,mean_logprob,token_accuracy,score_loss")
    assert "extracted_8" in rows[0]
    member_rows = [x for x in s["extraction"] if x["set"] == "member" and x["prefix_len"] == 8]
    assert any(x["copies"] == "9-16" and x["exact_rate"] == 1.0 for x in member_rows)
    html = (out / "report.html").read_text()
    assert "Membership attacks" in html and "data:image/png;base64" in html and "discoverable memorization" in html
    assert (out / "samples.csv").exists() and s["untargeted"]["n_samples"] == 16
    assert r.summary["attacks"]["loss"]["auc"] == s["attacks"]["loss"]["auc"]
    assert s["tokens_per_second"] > 0


def test_lm_audit_refuses_bad_input_before_any_work(models, tmp_path):
    p, root = models["paths"], models["root"]
    kw = dict(members=root / "members.txt", nonmembers=root / "nonmembers.txt", progress=False)
    with pytest.raises(MemlensInputError, match="no such folder"):
        run_lm_audit(model=tmp_path / "missing", out=tmp_path / "a", **kw)
    with pytest.raises(MemlensInputError, match="Hugging Face cache"):
        run_lm_audit(model="surely-not-a-cached-model-name", out=tmp_path / "a", **kw)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MemlensInputError, match="is a file"):
        run_lm_audit(model=tmp_path / "file", out=tmp_path / "a", **kw)
    with pytest.raises(MemlensInputError, match="^k must"):
        run_lm_audit(model=p["target"], out=tmp_path / "a", k=1.5, **kw)
    with pytest.raises(MemlensInputError, match="nonmembers file"):
        run_lm_audit(model=p["target"], members=root / "members.txt", nonmembers=tmp_path / "nope.txt",
                     out=tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    out = tmp_path / "done"
    run_lm_audit(model=p["target"], out=out, extraction=False, n_boot=20, attacks=["loss"], **kw)
    before = (out / "summary.json").read_bytes()
    with pytest.raises(MemlensInputError, match="--overwrite"):
        run_lm_audit(model=p["target"], out=out, extraction=False, n_boot=20, attacks=["loss"], **kw)
    assert (out / "summary.json").read_bytes() == before


def test_lm_audit_reads_jsonl(models, tmp_path, corpus):
    p = models["paths"]
    m, n = tmp_path / "m.jsonl", tmp_path / "n.jsonl"
    m.write_text("\n".join(json.dumps({"text": t}) for t in corpus["members"][:10]))
    n.write_text("\n".join(json.dumps(t) for t in corpus["nonmembers"][:10]))
    r = run_lm_audit(model=p["target"], members=m, nonmembers=n, out=tmp_path / "o", attacks=["loss", "min_k"],
                     extraction=False, n_boot=20, progress=False)
    assert r.summary["n_members"] == 10 and r.summary["n_nonmembers"] == 10
    n.write_text("{not json")
    with pytest.raises(MemlensInputError, match="line 1 is not JSON"):
        run_lm_audit(model=p["target"], members=m, nonmembers=n, out=tmp_path / "o2", progress=False)


def test_cli_lm_audit(models, tmp_path, capsys):
    p, root = models["paths"], models["root"]
    out = tmp_path / "cli"
    rc = main(["lm-audit", "--model", str(p["target"]), "--members", str(root / "members.txt"), "--nonmembers",
               str(root / "nonmembers.txt"), "--out", str(out), "--attacks", "loss,zlib,min_k_plus_plus",
               "--prefix-lens", "8", "--suffix-len", "8", "--bootstrap", "50"])
    text = capsys.readouterr().out
    assert rc == 0 and "min_k_plus_plus" in text and "report:" in text
    assert set(json.loads((out / "summary.json").read_text())["attacks"]) == {"loss", "zlib", "min_k_plus_plus"}
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "min_k_plus_plus" in shown and "members" in shown
    for argv, flag in ((["--model", str(tmp_path / "none")], "--model"), (["--k", "3"], "--k"),
                       (["--attacks", "loss,minkk"], "--attacks"), (["--prefix-lens", "a,b"], "--prefix-lens")):
        base = ["lm-audit", "--model", str(p["target"]), "--members", str(root / "members.txt"), "--nonmembers",
                str(root / "nonmembers.txt"), "--out", str(tmp_path / "bad")]
        rc = main(base + argv)
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and flag in err and "Traceback" not in err, err


def test_missing_extra_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MemlensInputError, match=r"pip install 'memlens\[lm\]'"):
        hf.require_transformers()


# ----------------------------------------------------------------------------------------------- fine-tuning population
def test_text_audit_fine_tunes_a_population_of_hf_models(tmp_path):
    from memlens.audits.text import run_text_audit

    r = run_text_audit(dataset="fortunes", model="hf-config:gpt2-tiny", n_models=4, n_documents=40, max_chars=100,
                       canary_repetitions=(1, 8), canaries_per_repetition=1, config={"epochs": 12},
                       out=tmp_path / "t", progress=False)
    pop = r.population
    assert pop.signal("train", "token_accuracy").shape == (4, r.dataset.n_train)
    assert pop.signal("canary", "exposure").shape == (4, 2)
    rows = r.canary_rows
    eight = int(np.flatnonzero(np.asarray(r.canaries.repetitions) == 8)[0])
    assert rows["exposure_in"][eight] > rows["exposure_out"][eight]
    assert np.isfinite(r.memorization.scores).any()
    s = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert s["model"] == "hf-config:gpt2-tiny" and s["prefix_len"] == 8
    assert (tmp_path / "t" / "report.html").exists()
    # a checkpoint that does not exist is refused before any work
    with pytest.raises(MemlensInputError, match="no such folder"):
        run_text_audit(model=f"hf:{tmp_path / 'none'}", out=tmp_path / "u", progress=False)
    assert not (tmp_path / "u").exists()


def test_text_audit_fine_tunes_a_local_checkpoint(models, tmp_path):
    from memlens.audits.text import run_text_audit

    r = run_text_audit(dataset="fortunes", model=f"hf:{models['paths']['untrained']}", n_models=2, n_documents=20,
                       max_chars=100, canary_repetitions=0, config={"epochs": 2}, out=tmp_path / "c",
                       progress=False)
    assert r.population.signal("train", "loss").shape == (2, 20)
    assert math.isfinite(float(np.nanmean(r.population.signal("test", "loss"))))


def test_extraction_over_several_models_and_sampled_decoding(models, tmp_path):
    p, root = models["paths"], models["root"]
    r = run_lm_audit(model=p["target"], members=root / "members.txt", nonmembers=root / "nonmembers.txt",
                     out=tmp_path / "cmp", compare=[p["untrained"]], attacks=["loss"], prefix_lens=(8,),
                     suffix_len=8, decoding="sample", n_boot=20, progress=False)
    names = {row["model"] for row in r.summary["extraction"]}
    assert names == {str(p["target"]), str(p["untrained"])}
    untrained = [row for row in r.summary["extraction"] if row["model"] == str(p["untrained"])]
    assert all(row["exact_rate"] in (0.0, None) for row in untrained)
    assert r.summary["settings"]["decoding"] == "sample"
    header = (tmp_path / "cmp" / "scores.csv").read_text().splitlines()[0]
    assert f"extracted_{p['untrained']}_8" in header
    with pytest.raises(MemlensInputError, match="prefix_lens"):
        run_lm_audit(model=p["target"], members=root / "members.txt", nonmembers=root / "nonmembers.txt",
                     out=tmp_path / "long", prefix_lens=(120,), suffix_len=16, progress=False)


def test_bfloat16_scores_close_to_float32(models, corpus):
    lm32 = hf.load_causal_lm(models["paths"]["target"])
    lm16 = hf.load_causal_lm(models["paths"]["target"], dtype="bfloat16")
    assert lm16.describe()["dtype"] == "bfloat16"
    a = hf.score_texts(lm32, corpus["members"][:8]).mean_logprob()
    b = hf.score_texts(lm16, corpus["members"][:8]).mean_logprob()
    assert np.max(np.abs(a - b)) < 0.1 * np.max(np.abs(a))
    with pytest.raises(MemlensInputError, match="dtype"):
        hf.load_causal_lm(models["paths"]["target"], dtype="float8")
    with pytest.raises(MemlensInputError, match="device"):
        hf.load_causal_lm(models["paths"]["target"], device="tpu:7")


def test_hf_population_resumes_from_its_shards(tmp_path):
    from memlens.audits.text import run_text_audit

    kw = dict(dataset="fortunes", model="hf-config:llama-tiny", n_models=4, n_documents=20, max_chars=80,
              canary_repetitions=0, config={"epochs": 2}, out=tmp_path / "r", shard_size=2, progress=False, jobs=1)
    first = run_text_audit(**kw)
    again = run_text_audit(**kw, resume=True)
    assert again.shards_trained == ()
    np.testing.assert_array_equal(first.population.signal("train", "loss"), again.population.signal("train", "loss"))
    with pytest.raises(MemlensInputError):
        run_text_audit(**{**kw, "config": {"epochs": 3}}, resume=True)
