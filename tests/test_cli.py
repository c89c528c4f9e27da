"""`memlens audit` end to end: outputs, resume after a kill, damaged shards, refusals, bad input (exit 2)."""
import csv
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import memlens.train
from memlens import Population
from memlens.audits.image import run_audit
from memlens.cli.main import main
from memlens.experiments import REGISTRY
from memlens.measures import memorization

N_MODELS, SHARD = 16, 6  # 3 shards: 6, 6, 4 models


def _hashes(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _args(data_file, out, *extra):
    return ["audit", "--data", str(data_file), "--models", str(N_MODELS), "--shard-size", str(SHARD),
            "--out", str(out), "--no-progress", *extra]


@pytest.fixture(scope="module")
def finished(data_file, tmp_path_factory):
    """One uninterrupted audit through the command line: (run directory, its file hashes)."""
    out = tmp_path_factory.mktemp("runs") / "ref"
    assert main(_args(data_file, out)) == 0
    return out, _hashes(out)


def test_audit_writes_every_output(finished, data_file):
    out, _ = finished
    for name in ("manifest.json", "masks.npy", "examples.csv", "pairs.csv", "summary.json", "report.html",
                 "population/population.npz"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "population" / "shards").glob("*.npz")) == [
        "shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    pop = Population.load(out / "population")
    assert pop.n_models == N_MODELS and pop.n_train == 240
    # examples.csv holds exactly the Feldman-Zhang estimate recomputed from the saved population
    mem = memorization(pop)
    with open(out / "examples.csv") as f:
        rows = list(csv.DictReader(f))
    # the default audit also runs the membership attacks (tests/test_audit_attacks.py checks their columns)
    assert list(rows[0]) == ["index", "label", "memorization", "stderr", "n_in", "n_out", "out_majority",
                             "out_share", "lira_online", "in_target", "lira_online_in"]
    assert len(rows) == 240
    got = np.array([float(r["memorization"]) for r in rows])
    np.testing.assert_allclose(got, mem.scores, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal([int(r["n_in"]) for r in rows], pop.masks.sum(axis=0))
    np.testing.assert_array_equal([int(r["label"]) for r in rows], np.load(data_file)["y_train"])
    # what the models that did not see each example predict: the majority class of their pred signal, and its share
    pred = pop.signal("train", "pred")
    for j in (0, 17, 101):
        votes = np.bincount(pred[~pop.masks[:, j], j].astype(int), minlength=10)
        assert int(rows[j]["out_majority"]) == int(np.argmax(votes))
        assert float(rows[j]["out_share"]) == pytest.approx(votes.max() / votes.sum(), rel=1e-5)
    s = json.loads((out / "summary.json").read_text())
    for key in ("dataset", "model", "n_models", "subset_ratio", "seed", "train_accuracy", "test_accuracy",
                "n_memorized", "n_pairs", "runtime_seconds", "versions"):
        assert key in s, key
    assert s["n_models"] == N_MODELS and s["subset_ratio"] == 0.7 and s["model"] == "logreg"
    assert s["n_memorized"] == mem.n_memorized(0.25)
    # train accuracy on IN examples, test accuracy: means over models, recomputed by hand
    c = pop.signal("train", "correct")
    train_acc = np.mean([c[k][pop.masks[k]].mean() for k in range(N_MODELS)])
    assert s["train_accuracy"] == pytest.approx(train_acc)
    assert s["test_accuracy"] == pytest.approx(pop.signal("test", "correct").mean())
    assert 0.5 < s["test_accuracy"] <= s["train_accuracy"] <= 1.0
    with open(out / "pairs.csv") as f:
        pairs = list(csv.DictReader(f))
    assert len(pairs) == s["n_pairs"]
    for r in pairs:
        assert float(r["memorization"]) >= 0.25 and float(r["influence"]) >= 0.15
        assert r["train_label"] == r["test_label"]
    page = (out / "report.html").read_text()
    pngs = re.findall(r'src="data:image/png;base64,', page)
    # histogram, most, least, pairs; ROC curves, the memorization-vs-LiRA scatter and (when there are any) the flagged examples
    assert len(pngs) == 4 + 2 + (1 if s["attacks"]["n_flagged"] else 0)
    assert not re.search(r'(src|href)="(?!data:)', page)


class _Killed(Exception):
    pass


def test_resume_after_kill_trains_only_missing_shards(finished, data_file, tmp_path, monkeypatch):
    ref, _ = finished
    calls = []
    real = memlens.train.train_population

    def counting(dataset, **kw):
        calls.append(kw["model_offset"])
        return real(dataset, **kw)

    monkeypatch.setattr(memlens.train, "train_population", counting)

    def kill_after_two(k, n_done, n_shards):
        if n_done == 2:
            raise _Killed

    out = tmp_path / "killed"
    ds = str(data_file)
    from memlens.cli.main import load_npz_dataset

    dataset = load_npz_dataset(ds)
    with pytest.raises(_Killed):
        run_audit(dataset=dataset, n_models=N_MODELS, shard_size=SHARD, out=out, progress=False,
                  on_shard=kill_after_two)
    assert calls == [0, 6]
    assert not (out / "summary.json").exists()
    shard_files = sorted((out / "population" / "shards").glob("shard-*.npz"))
    assert [p.name for p in shard_files] == ["shard-00000.npz", "shard-00001.npz"]
    stamps = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in shard_files}
    # a plain restart is refused; --resume continues
    assert main(_args(data_file, out)) == 2
    calls.clear()
    assert main(_args(data_file, out, "--resume")) == 0
    assert calls == [12]  # only the third shard was trained
    for name, (mtime, data) in stamps.items():
        p = out / "population" / "shards" / name
        assert p.stat().st_mtime_ns == mtime and p.read_bytes() == data
    # identical to the uninterrupted run
    a, b = Population.load(out / "population"), Population.load(ref / "population")
    np.testing.assert_array_equal(a.masks, b.masks)
    for split in ("train", "test"):
        for name in ("correct", "logit", "loss"):
            np.testing.assert_array_equal(a.signal(split, name), b.signal(split, name))
    assert (out / "examples.csv").read_bytes() == (ref / "examples.csv").read_bytes()
    assert (out / "pairs.csv").read_bytes() == (ref / "pairs.csv").read_bytes()
    s = json.loads((out / "summary.json").read_text())
    assert s["shards_trained"] == 1 and s["shards_reused"] == 2


def test_truncated_shard_is_retrained_on_resume(finished, data_file, tmp_path, monkeypatch):
    ref, _ = finished
    out = tmp_path / "trunc"
    shutil.copytree(ref, out)
    shard = out / "population" / "shards" / "shard-00001.npz"
    shard.write_bytes(shard.read_bytes()[:1000])
    calls = []
    real = memlens.train.train_population
    monkeypatch.setattr(memlens.train, "train_population",
                        lambda ds, **kw: calls.append(kw["model_offset"]) or real(ds, **kw))
    assert main(_args(data_file, out, "--resume")) == 0
    assert calls == [6]
    assert (out / "examples.csv").read_bytes() == (ref / "examples.csv").read_bytes()


def _one_line_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    # one line; a --resume refusal lists each differing setting on a line of its own ("  - ...") below it
    listed = "--resume refused" in lines[0] and all(ln.startswith("  - ") for ln in lines[1:])
    assert (len(lines) == 1 or listed) and lines[0].startswith("memlens: error: "), err
    assert "Traceback" not in err
    return " ".join(lines)


def test_resume_refuses_changed_config_or_data(finished, data_file, tmp_path, capsys):
    ref, hashes = finished
    msg = _one_line_error(capsys, _args(data_file, ref, "--resume", "--seed", "1"))
    assert "seed is 0 in the run, 1 now" in msg
    msg = _one_line_error(capsys, _args(data_file, ref, "--resume", "--model", "mlp"))
    assert "model is 'logreg' in the run, 'mlp' now" in msg
    d = np.load(data_file)
    other = tmp_path / "other.npz"
    np.savez(other, X_train=d["X_train"], y_train=d["y_train"], X_test=d["X_test"][:70], y_test=d["y_test"][:70],
             image_shape=np.array([8, 8]))
    msg = _one_line_error(capsys, _args(other, ref, "--resume"))
    assert "dataset differs" in msg
    assert _hashes(ref) == hashes


def _nan_file(data_file, tmp_path):
    d = dict(np.load(data_file))
    d["X_train"] = d["X_train"].copy()
    d["X_train"][3, 5] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, **d)
    return path


def _partial_file(data_file, tmp_path):
    d = dict(np.load(data_file))
    path = tmp_path / "partial.npz"
    np.savez(path, X_train=d["X_train"], y_train=d["y_train"])
    return path


BAD = {
    "unknown dataset": (lambda f, t: ["--dataset", "mnist-60k"], ["--dataset", "'mnist-60k'", "digits"]),
    "unknown model": (lambda f, t: ["--model", "resnet"], ["--model", "'resnet'", "logreg"]),
    "one model": (lambda f, t: ["--models", "1"], ["--models", ">= 2", "got 1"]),
    "models not an int": (lambda f, t: ["--models", "many"], ["--models", "'many'"]),
    "ratio 0": (lambda f, t: ["--subset-ratio", "0"], ["--subset-ratio", "between 0 and 1", "got 0.0"]),
    "ratio 1": (lambda f, t: ["--subset-ratio", "1"], ["--subset-ratio", "between 0 and 1", "got 1.0"]),
    "ratio 1.5": (lambda f, t: ["--subset-ratio", "1.5"], ["--subset-ratio", "got 1.5"]),
    "ratio nan": (lambda f, t: ["--subset-ratio", "nan"], ["--subset-ratio", "finite", "nan"]),
    "negative seed": (lambda f, t: ["--seed", "-3"], ["seed", "-3"]),
    "NaN features": (lambda f, t: ["--data", str(_nan_file(f, t))], ["X_train", "NaN", "impute"]),
    "missing arrays": (lambda f, t: ["--data", str(_partial_file(f, t))], ["X_test", "y_test", "numpy.savez"]),
    "no such data file": (lambda f, t: ["--data", str(t / "nope.npz")], ["--data", "nope.npz", "does not exist"]),
    "resume and overwrite": (lambda f, t: ["--resume"], ["--resume", "--overwrite"]),
    "unknown flag": (lambda f, t: ["--no-such-flag", "3"], ["--no-such-flag", "--help"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_exit_2_run_untouched(case, finished, data_file, tmp_path, capsys):
    ref, hashes = finished
    make, expected = BAD[case]
    extra = make(data_file, tmp_path)
    argv = _args(data_file, ref, "--overwrite")  # even with --overwrite, bad input must not touch the run
    if "--data" in extra:  # replace the default --data
        i = argv.index("--data")
        del argv[i:i + 2]
    if "--dataset" in extra:
        i = argv.index("--data")
        del argv[i:i + 2]
    msg = _one_line_error(capsys, argv + extra)
    for part in expected:
        assert part in msg, (part, msg)
    assert _hashes(ref) == hashes


def test_foreign_and_unwritable_output_refused(data_file, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "paper.tex").write_text("precious")
    for extra in ([], ["--overwrite"], ["--resume"]):
        msg = _one_line_error(capsys, _args(data_file, foreign, *extra))
        assert "foreign output directory" in msg and "mine" in msg
    assert [p.name for p in foreign.iterdir()] == ["paper.tex"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    msg = _one_line_error(capsys, _args(data_file, afile / "run"))
    assert "--out" in msg and "afile" in msg
    assert afile.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_output_refused(data_file, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        msg = _one_line_error(capsys, _args(data_file, ro / "run"))
        assert "writable" in msg
    finally:
        ro.chmod(0o700)


def test_existing_run_needs_resume_or_overwrite(finished, data_file, capsys):
    ref, hashes = finished
    msg = _one_line_error(capsys, _args(data_file, ref))
    assert "already holds a memlens run" in msg and "--resume" in msg and "--overwrite" in msg
    assert _hashes(ref) == hashes


def test_list_reproduce_and_help(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in REGISTRY:
        assert name in out
    msg = _one_line_error(capsys, ["reproduce", "no-such-figure"])
    assert "'no-such-figure'" in msg and "memlens list" in msg
    assert main(["--help"]) == 0
    assert "audit" in capsys.readouterr().out
    msg = _one_line_error(capsys, [])
    assert "COMMAND" in msg or "command" in msg


def test_interrupted_command_keeps_finished_shards(finished, data_file, tmp_path, interrupt_second_shard, capsys):
    """Ctrl-C during the second shard: exit 130, one finished shard kept, --resume finishes the same run."""
    ref, _ = finished
    out = tmp_path / "ctrl-c"
    assert main(_args(data_file, out)) == 130
    assert "--resume" in capsys.readouterr().err
    assert [p.name for p in (out / "population" / "shards").glob("shard-*.npz")] == ["shard-00000.npz"]
    interrupt_second_shard()       # the real training back
    assert main(_args(data_file, out, "--resume")) == 0
    assert (out / "examples.csv").read_bytes() == (ref / "examples.csv").read_bytes()


def test_model_param_overrides_the_config_and_is_part_of_the_run_identity(data_file, tmp_path, capsys):
    """--model-param C=... reaches the trainer (the population's provenance and a direct run agree), is recorded
    in the manifest, resumes with the same value and is refused with another; bad items exit 2 in one line."""
    from memlens.cli.main import load_npz_dataset, parse_model_params

    assert parse_model_params(["C=0.05", "hidden=64,32", "standardize=false", "preconditioner=kron"]) == \
        {"C": 0.05, "hidden": (64, 32), "standardize": False, "preconditioner": "kron"}
    out = tmp_path / "run"
    args = _args(data_file, out, "--no-attacks", "--model-param", "C=0.05", "--model-param", "preconditioner=kron")
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    cfg = json.dumps(manifest)
    assert '"C": 0.05' in cfg and '"preconditioner": "kron"' in cfg
    pop = Population.load(next(out.glob("population/*.npz")))
    assert pop.provenance["model"]["C"] == 0.05
    assert {c["preconditioner"] for c in pop.provenance["convergence_by_shard"]} == {"kron"}
    ref = run_audit(dataset=load_npz_dataset(data_file), model="logreg",
                    model_params={"C": 0.05, "preconditioner": "kron"}, n_models=N_MODELS, shard_size=SHARD,
                    out=tmp_path / "api", progress=False, attacks=False)
    assert ref.summary["test_accuracy"] == pytest.approx(json.loads((out / "summary.json").read_text())["test_accuracy"])
    assert main(args + ["--resume"]) == 0
    capsys.readouterr()
    before = _hashes(out)
    for bad in (["--model-param", "C=0.5", "--resume"], ["--model-param", "Cx=1", "--overwrite"],
                ["--model-param", "C", "--overwrite"], ["--model-param", "C=-1", "--overwrite"]):
        assert main(_args(data_file, out, "--no-attacks", *bad)) == 2, bad
        err = capsys.readouterr().err.strip()
        lines = err.splitlines()
        assert err.startswith("memlens: error:") and all(ln.startswith("  - ") for ln in lines[1:]), err
        assert len(lines) == 1 or "--resume refused" in lines[0], err
    assert _hashes(out) == before
