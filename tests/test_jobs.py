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


def test_the_shared_start_is_computed_once_per_run_and_reused_on_resume(data_file, tmp_path, always_pool, monkeypatch):
    import memlens.audits.pipeline as pipeline
    import memlens.train.builtin as builtin

    monkeypatch.setattr(pipeline, "STORE_SHARED_S", 0.0)    # stored however quick (here, a small data set)
    calls = []
    real = builtin.full_hessian_start
    monkeypatch.setattr(builtin, "full_hessian_start", lambda *a, **k: calls.append(1) or real(*a, **k))
    ds = load_npz_dataset(data_file)
    kw = dict(dataset=ds, n_models=12, shard_size=2, progress=False, attacks=False)
    ref = run_audit(out=tmp_path / "ref", jobs=1, **kw)
    assert len(calls) == 1                                  # once for 6 shards, not once per shard
    monkeypatch.setattr(pipeline, "STORE_SHARED_S", 1e9)
    run_audit(out=tmp_path / "quick", jobs=1, **kw)         # a quick start is not stored
    assert not (tmp_path / "quick" / "population" / "shards" / "shared-prepared.npz").exists()
    monkeypatch.setattr(pipeline, "STORE_SHARED_S", 0.0)
    calls.clear()
    stored = ref.out / "population" / "shards" / "shared-prepared.npz"
    assert stored.is_file()

    out = tmp_path / "run"

    def stop_after_two(k, n_done, n_shards):
        if n_done == 2:
            raise KeyboardInterrupt

    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        run_audit(out=out, jobs=1, on_shard=stop_after_two, **kw)
    assert len(calls) == 1
    res = run_audit(out=out, jobs=2, resume=True, **kw)     # the stored start is reused, in workers too
    assert len(calls) == 1 and res.summary["shards_trained"] == 4
    assert (out / "examples.csv").read_bytes() == (ref.out / "examples.csv").read_bytes()

    # a damaged copy is recomputed, with the same result
    for k in range(2, 6):
        (out / "population" / "shards" / f"shard-{k:05d}.npz").unlink()
    shared = out / "population" / "shards" / "shared-prepared.npz"
    shared.write_bytes(shared.read_bytes()[:100])
    res = run_audit(out=out, jobs=1, resume=True, **kw)
    assert len(calls) == 2 and res.summary["shards_trained"] == 4
    assert (out / "examples.csv").read_bytes() == (ref.out / "examples.csv").read_bytes()


def test_prepare_population_matches_the_start_train_population_computes(data_file):
    from memlens.audits.image import audit_masks
    from memlens.train import prepare_population, train_population

    ds = load_npz_dataset(data_file)
    masks = audit_masks(8, ds.n_train, subset_ratio=0.7, seed=0)
    prepared = prepare_population(ds, model="logreg", masks=masks)
    assert prepared is not None and len(prepared.arrays) == 2
    assert prepare_population(ds, model="mlp", masks=masks) is None
    a = train_population(ds, model="logreg", masks=masks)
    b = train_population(ds, model="logreg", masks=masks, prepared=prepared)
    for split in ("train", "test"):
        np.testing.assert_array_equal(a.signal(split, "logit"), b.signal(split, "logit"))
    with pytest.raises(Exception, match="prepared"):
        train_population(ds, model="logreg", masks=masks, prepared=(1, 2))


def _fail_on(bad):
    def fn(x):
        if x == bad:
            raise ValueError(f"shard {x} failed")
        return x * x
    return fn


@pytest.mark.parametrize("bad", [0, 5])     # in this process (the first shard), or in a worker
def test_a_failing_shard_stops_the_pool_and_raises(always_pool, bad):
    got = {}
    with pytest.raises(ValueError, match=f"shard {bad} failed"):
        PoolExecutor(2).map(_fail_on(bad), [(k, {"x": k}) for k in range(8)],
                            on_result=lambda key, r: got.__setitem__(key, r))
    assert bad not in got and all(got[k] == k * k for k in got)
    assert len(got) < 8


def test_the_pool_hands_over_every_result_once(always_pool):
    got = []
    done = PoolExecutor(3).map(_fail_on(-1), [(k, {"x": k}) for k in range(10)],
                               on_result=lambda key, r: got.append((key, r)))
    assert sorted(got) == [(k, k * k) for k in range(10)] and sorted(done) == list(range(10))
