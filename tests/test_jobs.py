"""The local backend's worker processes (--jobs): the same population, bit for bit, as one process."""
import json

import numpy as np
import pytest

from memlens.audits.image import run_audit
from memlens.cli.main import load_npz_dataset, main
from memlens.storage.executors import LocalExecutor, PoolExecutor, make_executor


@pytest.fixture()
def always_pool(monkeypatch):
    monkeypatch.setattr(PoolExecutor, "worth_s", 0.0)     # use the workers however short the shards


@pytest.mark.parametrize("model", ["logreg", "mlp"])
def test_worker_processes_give_the_same_population(data_file, tmp_path, always_pool, model):
    ds = load_npz_dataset(data_file)
    kw = dict(dataset=ds, model=model, n_models=12, shard_size=2, progress=False, attacks=False)
    if model == "mlp":
        kw["model_params"] = {"epochs": 3}
    one = run_audit(out=tmp_path / "one", jobs=1, **kw)
    two = run_audit(out=tmp_path / "two", jobs=2, **kw)
    for name in ("examples.csv", "pairs.csv"):
        assert (one.out / name).read_bytes() == (two.out / name).read_bytes(), name
    for k in range(6):
        a = np.load(one.out / "population" / "shards" / f"shard-{k:05d}.npz")
        b = np.load(two.out / "population" / "shards" / f"shard-{k:05d}.npz")
        for key in a.files:
            if key != "provenance":
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"shard {k} {key}")
    s1 = json.loads((one.out / "summary.json").read_text())
    s2 = json.loads((two.out / "summary.json").read_text())
    assert s1["run_id"] == s2["run_id"]                 # the number of processes is not part of the identity


def test_a_run_resumes_with_another_number_of_jobs(data_file, tmp_path, always_pool):
    ds = load_npz_dataset(data_file)
    kw = dict(dataset=ds, n_models=12, shard_size=2, progress=False, attacks=False)
    ref = run_audit(out=tmp_path / "ref", jobs=1, **kw)
    out = tmp_path / "run"

    def stop_after_two(k, n_done, n_shards):
        if n_done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_audit(out=out, jobs=1, on_shard=stop_after_two, **kw)
    res = run_audit(out=out, jobs=2, resume=True, **kw)
    assert res.summary["shards_trained"] == 4
    assert (out / "examples.csv").read_bytes() == (ref.out / "examples.csv").read_bytes()


def test_make_executor_jobs():
    assert isinstance(make_executor("local", jobs=1), LocalExecutor)
    ex = make_executor("local", jobs=3)
    assert isinstance(ex, PoolExecutor) and ex.jobs == 3
    assert isinstance(make_executor("local", jobs=None), (LocalExecutor, PoolExecutor))


@pytest.mark.parametrize("argv, parts", [
    (["--jobs", "0"], ["--jobs", "0"]),
    (["--jobs", "two"], ["--jobs", "'two'"]),
])
def test_bad_jobs_are_one_line(data_file, tmp_path, capsys, argv, parts):
    out = tmp_path / "run"
    assert main(["audit", "--data", str(data_file), "--models", "4", "--out", str(out), "--no-progress",
                 *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(p in err for p in parts), err
    assert not out.exists()


def test_bad_memlens_jobs_environment(data_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MEMLENS_JOBS", "-3")
    out = tmp_path / "run"
    assert main(["audit", "--data", str(data_file), "--models", "4", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "MEMLENS_JOBS" in err and "-3" in err and err.count("\n") == 0
    assert not out.exists()


def test_text_audit_in_worker_processes_is_the_same(tmp_path, always_pool):
    from memlens.audits.text import run_text_audit

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"document {i}: {'xy' * (i % 5)} the end" for i in range(40)))
    kw = dict(text_file=corpus, n_models=4, shard_size=1, progress=False, canary_repetitions=(1, 2),
              canaries_per_repetition=1, n_documents=None,
              config={"steps": 5, "width": 16, "depth": 1, "n_heads": 2, "context_length": 64})
    one = run_text_audit(out=tmp_path / "one", jobs=1, **kw)
    two = run_text_audit(out=tmp_path / "two", jobs=2, **kw)
    for name in ("examples.csv", "pairs.csv", "canaries.csv"):
        assert (one.out / name).read_bytes() == (two.out / name).read_bytes(), name
