"""The text audit (`memlens audit --dataset fortunes`): outputs, resume, refusals, canary bookkeeping, report."""
import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from memlens import Population
from memlens.audits.text import (
    canary_membership,
    canary_table,
    exposure_by_repetition,
    insert_named_canaries,
    make_named_canaries,
    ranking_attack_auc,
    sample_extraction,
    text_audit_masks,
)
from memlens.cli.main import main
from memlens.measures import memorization

N_MODELS, SHARD = 4, 2  # 2 shards
REPS = (1, 24)          # one canary seen once, one seen 24 times, by the models that train on it


def _args(out, *extra):
    return ["audit", "--dataset", "fortunes", "--models", str(N_MODELS), "--shard-size", str(SHARD),
            "--documents", "40", "--max-chars", "50", "--canary-repetitions", ",".join(map(str, REPS)),
            "--canaries-per-repetition", "1", "--steps", "60", "--width", "32", "--depth", "1",
            "--out", str(out), "--no-progress", *extra]


def _hashes(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "run"
    assert main(_args(out)) == 0
    return out, _hashes(out)


def test_text_audit_writes_every_output(finished):
    out, _ = finished
    for name in ("manifest.json", "masks.npy", "examples.csv", "canaries.csv", "pairs.csv", "summary.json",
                 "report.html", "population/population.npz"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "population" / "shards").glob("*.npz")) == ["shard-00000.npz",
                                                                                       "shard-00001.npz"]
    summary = json.loads((out / "summary.json").read_text())
    pop = Population.load(out / "population")
    rows = _rows(out / "examples.csv")
    n_copies = sum(REPS)
    assert summary["n_documents"] == 40 and pop.n_train == 40 + n_copies == len(rows)
    assert sum(r["kind"] == "canary" for r in rows) == n_copies
    # the memorization column is the Feldman-Zhang estimator on per-token accuracy, recomputed from the population
    mem = memorization(pop, signal="token_accuracy")
    got = np.array([float(r["memorization"]) for r in rows])
    np.testing.assert_allclose(got, mem.scores, rtol=1e-5, atol=1e-6, equal_nan=True)
    # the texts in examples.csv are the training documents, canary copies where copy_of says
    canaries = _rows(out / "canaries.csv")
    assert [int(c["repetitions"]) for c in canaries] == list(REPS)
    for c in canaries:
        assert sum(r["text"] == c["text"] for r in rows) == int(c["repetitions"])
        assert c["text"].endswith(c["secret"]) and ": my PIN is " in c["text"]
    # every canary is IN for exactly half of the models, all its copies together
    masks = np.load(out / "masks.npy")
    copy_of = np.array([int(r["canary"]) if r["canary"] else -1 for r in rows])
    for c in range(len(REPS)):
        cols = masks[:, copy_of == c]
        assert (cols == cols[:, :1]).all() and cols[:, 0].sum() == N_MODELS // 2
    # canaries.csv agrees with the per-model canary signals of the population
    cin = canary_membership(pop.masks, copy_of, len(REPS))
    exp = pop.signal("canary", "exposure")
    for c, row in enumerate(canaries):
        assert float(row["exposure_in"]) == pytest.approx(exp[cin[:, c], c].mean(), rel=1e-5)
        assert float(row["exposure_out"]) == pytest.approx(exp[~cin[:, c], c].mean(), rel=1e-5)
    assert np.all((exp >= 0) & (exp <= np.log2(10_000) + 1e-6))
    # the 24-copy canary is far more exposed in the models that saw it than in those that did not
    assert float(canaries[1]["exposure_in"]) > float(canaries[1]["exposure_out"]) + 3
    # summary bookkeeping
    assert summary["canaries"]["space_size"] == 10_000
    assert summary["canaries"]["extracted"] == [c for c, row in enumerate(canaries)
                                                if float(row["extracted_in"]) > 0]
    assert {"zlib", "lowercase", "perplexity", "reference"} <= set(summary["ranking_attack"])
    assert pop.signal("samples", "verbatim").shape == (N_MODELS, 64)
    assert set(summary["sample_extraction"]["by_score"]) == {"zlib", "lowercase", "perplexity", "reference"}
    assert summary["shards_trained"] == 2 and summary["shards_reused"] == 0
    html = (out / "report.html").read_text()
    assert "Canaries: exposure and extraction" in html
    for c, row in enumerate(canaries):   # extracted canaries are shown with the secret highlighted
        shown = row["text"] if c not in summary["canaries"]["extracted"] else row["text"].replace(
            row["secret"], f'<mark class="extracted">{row["secret"]}</mark>')
        assert shown in html
    assert "most memorized documents" in html and "<img" in html and 'src="http' not in html  # self-contained


def test_resume_reuses_finished_shards(finished, tmp_path, monkeypatch):
    import shutil

    import memlens.train.text_population as tp

    ref, ref_hashes = finished
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    (out / "population" / "shards" / "shard-00001.npz").unlink()  # as if killed during the second shard
    calls = []
    real = tp.train_text_population

    def counting(*args, **kwargs):
        calls.append(kwargs["model_offset"])
        return real(*args, **kwargs)

    monkeypatch.setattr(tp, "train_text_population", counting)
    assert main(_args(out, "--resume")) == 0
    assert calls == [2]  # only the missing shard (models 2 and 3) was trained
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shards_trained"] == 1 and summary["shards_reused"] == 1
    # training is deterministic: the resumed run reproduces the uninterrupted one
    for name in ("examples.csv", "canaries.csv", "masks.npy"):
        assert _hashes(out)[name] == ref_hashes[name], name
    a, b = (Population.load(p / "population") for p in (out, ref))
    for split, named in b.signals.items():
        for key, arr in named.items():
            np.testing.assert_array_equal(a.signals[split][key], arr, err_msg=f"{split}/{key}")


@pytest.mark.parametrize("extra, message", [
    (["--models", "1"], "--models must be >= 2"),
    (["--canary-repetitions", "1,two"], "--canary-repetitions must be"),
    (["--canary-format", "my PIN"], "--canary-format must contain '{secret}'"),
    (["--documents", "1"], "--documents must be >= 2"),
    (["--subset-ratio", "1.5"], "--subset-ratio"),
    (["--model", "mlp"], "--model must be char-lm"),
    (["--dp-epsilon", "1"], "--dp-epsilon is not available"),
    (["--text", "/nonexistent/corpus.txt"], "--dataset and --text exclude each other"),
])
def test_bad_input_one_line_exit_2_nothing_overwritten(finished, tmp_path, capsys, extra, message):
    import shutil

    ref, _ = finished
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    before = _hashes(out)
    assert main(_args(out, "--overwrite", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("memlens: error: ") and err.count("\n") == 1 and message in err, err
    assert _hashes(out) == before


def test_resume_from_the_manifest_alone(finished, tmp_path):
    """`memlens audit --resume --out DIR` with nothing else: the corpus, model, canary and extraction settings come
    from the run's manifest."""
    import shutil

    ref, ref_hashes = finished
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    (out / "population" / "shards" / "shard-00001.npz").unlink()
    assert main(["audit", "--resume", "--out", str(out), "--no-progress"]) == 0
    for name in ("examples.csv", "canaries.csv", "masks.npy"):
        assert _hashes(out)[name] == ref_hashes[name], name


def test_resume_with_other_settings_is_refused(finished, tmp_path, capsys):
    import shutil

    ref, _ = finished
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    before = _hashes(out)
    args = _args(out, "--resume")
    args[args.index("--steps") + 1] = "61"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--resume refused" in err and "steps" in err
    assert _hashes(out) == before


def test_user_text_file_errors(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1") * 5)
    assert main(["audit", "--text", str(bad), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    # text-audit flags on an image audit are refused before any work
    assert main(["audit", "--dataset", "digits", "--canary-repetitions", "3", "--out", str(tmp_path / "i")]) == 2
    assert "--canary-repetitions applies to the text audit only" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- pieces
def test_masks_keep_canary_copies_together():
    copy_of = np.array([-1] * 30 + [0] * 3 + [1] * 5 + [2])
    masks = text_audit_masks(6, copy_of, subset_ratio=0.4, seed=3)
    assert masks.shape == (6, copy_of.size)
    assert np.all(masks[:, :30].sum(axis=0) == 2)    # balanced: each document IN for round(0.4 * 6) models
    uniform = text_audit_masks(2, copy_of, subset_ratio=0.9, seed=3)   # round(0.9 * 2) = 2: uniform subsets
    assert np.all(uniform[:, :30].sum(axis=1) == 27)
    cin = canary_membership(masks, copy_of, 3)
    for c in range(3):
        assert np.array_equal(masks[:, copy_of == c], np.repeat(cin[:, [c]], (copy_of == c).sum(), axis=1))
    assert np.all(cin.sum(axis=0) == 3)               # balanced: IN for exactly half of the models
    assert np.array_equal(masks, text_audit_masks(6, copy_of, subset_ratio=0.4, seed=3))


def test_named_canaries_and_insertion():
    canaries = make_named_canaries("my PIN is {secret}", repetitions=[0, 2, 3], seed=1)
    assert canaries.names == ("alice", "bob", "carol") and canaries.space_size == 10_000
    assert all(t == f"{n}: my PIN is {s}" for n, s, t in zip(canaries.names, canaries.secrets, canaries.texts))
    docs = [f"doc {i}" for i in range(10)]
    texts, copy_of = insert_named_canaries(docs, canaries, seed=2)
    assert len(texts) == 15 and [t for t, c in zip(texts, copy_of) if c < 0] == docs
    for c in range(3):
        assert [t for t, k in zip(texts, copy_of) if k == c] == [canaries.texts[c]] * int(canaries.repetitions[c])


def test_canary_table_by_hand():
    masks = np.ones((4, 3), dtype=bool)
    exposure = np.array([[13.0, 1.0], [12.0, 2.0], [2.0, 9.0], [0.0, 11.0]])
    extracted = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    pop = Population(masks, {"train": {"token_accuracy": np.zeros((4, 3))},
                             "canary": {"exposure": exposure, "extracted": extracted}})
    cin = np.array([[True, False], [True, False], [False, True], [False, True]])
    rows = canary_table(pop, cin, [8, 2])
    np.testing.assert_allclose(rows["exposure_in"], [12.5, 10.0])
    np.testing.assert_allclose(rows["exposure_out"], [1.0, 1.5])
    np.testing.assert_allclose(rows["extracted_in"], [0.5, 1.0])
    np.testing.assert_allclose(rows["extracted_out"], [0.0, 0.0])
    np.testing.assert_allclose(rows["exposure_gain"], [11.5, 8.5])
    by = exposure_by_repetition(rows)
    assert [b["repetitions"] for b in by] == [2, 8] and by[1]["exposure_in"] == 12.5


def test_ranking_attack_auc_oracle_and_chance():
    rng = np.random.default_rng(0)
    masks = rng.random((8, 50)) < 0.5
    signals = {"train": {"loss": rng.random((8, 50)), "rank_zlib": masks.astype(float),
                         "rank_lowercase": -masks.astype(float)}}
    res = ranking_attack_auc(Population(masks, signals), np.arange(50))
    assert res["zlib"]["auc"] == 1.0 and res["lowercase"]["auc"] == 0.0
    assert abs(res["loss (Yeom et al.)"]["auc"] - 0.5) < 0.1   # 400 pairs: null stderr ~0.03
    assert res["zlib"]["n_pos"] == int(masks.sum())


def test_sample_extraction_precision_by_hand():
    masks = np.ones((2, 3), dtype=bool)
    verbatim = np.array([[1, 0, 0, 1], [0, 0, 1, 0]], dtype=float)
    unseen = np.array([[0, 1, 0, 0], [0, 0, 0, 0]], dtype=float)
    score = np.array([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.9, 0.3]])
    pop = Population(masks, {"train": {"loss": np.zeros((2, 3))},
                             "samples": {"verbatim": verbatim, "verbatim_unseen": unseen, "rank_zlib": score,
                                         "rank_perplexity": -score}})
    res = sample_extraction(pop, top=2)
    # model 0's top 2 by zlib: samples 0, 1 (one own match, one unseen); model 1's: samples 2, 3 (one own match)
    assert res["by_score"]["zlib"] == {"precision": 0.5, "unseen_precision": 0.25}
    # by -score: model 0 takes samples 2, 3 (one own); model 1 samples 0, 1 (none)
    assert res["by_score"]["perplexity"] == {"precision": 0.25, "unseen_precision": 0.0}
    assert res["base_rate"] == 3 / 8 and res["unseen_rate"] == 1 / 8 and res["top"] == 2


def test_report_highlights_the_extracted_canary():
    from memlens.data.text import TextDataset
    from memlens.measures import memorization_from_arrays
    from memlens.report.text_html import render_text_report

    canaries = make_named_canaries("my PIN is {secret}", repetitions=[1, 8], seed=0)
    texts, copy_of = insert_named_canaries(["a first document", "a second one", "third"], canaries, seed=0)
    ds = TextDataset("toy", texts, ("a test document",))
    masks = np.tile(np.array([[True], [False]]), (2, 1)).repeat(len(texts), axis=1)
    masks[1, 0] = masks[0, 1] = True
    masks[2:, :] = ~masks[:2, :]
    mem = memorization_from_arrays(masks, np.where(masks, 0.9, 0.2), signal="token_accuracy")
    rows = {"repetitions": np.array([1, 8]), "n_in": np.array([2, 2]), "n_out": np.array([2, 2]),
            "exposure_in": np.array([3.0, 13.2877]), "exposure_out": np.array([1.1, 0.9]),
            "extracted_in": np.array([0.0, 1.0]), "extracted_out": np.array([0.0, 0.0])}
    rows["exposure_gain"] = rows["exposure_in"] - rows["exposure_out"]
    summary = {"dataset": "toy", "model": "char-lm", "n_models": 4, "n_documents": 3, "n_test": 1,
               "subset_ratio": 0.5, "seed": 0, "mem_threshold": 0.25, "token_accuracy_in": 0.9,
               "token_accuracy_out": 0.2, "token_accuracy_test": 0.2, "loss_test_nats": 2.0,
               "bits_per_byte_test": 2.885, "n_memorized": 3, "prefix_len": 4, "suffix_len": 4,
               "canaries": {"template": "my PIN is {secret}", "space_size": 10_000, "max_exposure_bits": 13.2877,
                            "n_canaries": 2, "extracted": [1], "extraction_threshold_repetitions": 8,
                            "by_repetition": exposure_by_repetition(rows)},
               "ranking_attack": {"zlib": {"auc": 0.7, "n_pos": 6, "n_neg": 6, "tpr_at_1pct_fpr": 0.0}}}
    analysis = {"memorization": mem, "memorization_ll": mem, "extracted_in": np.zeros(len(texts)),
                "extracted_out": np.zeros(len(texts)), "explanations": None, "pairs": [], "canary_rows": rows}
    html = render_text_report(summary=summary, dataset=ds, copy_of=copy_of, canaries=canaries, analysis=analysis)
    extracted, missed = canaries.secrets[1], canaries.secrets[0]
    assert f'<mark class="extracted">{extracted}</mark>' in html
    assert f'<mark class="extracted">{missed}</mark>' not in html and canaries.texts[0] in html
    assert html.count('<tr class="extracted">') == 1 and '<span class="tag">extracted</span>' in html
    assert "a first document" in html and "from 8 copies on" in html
