"""The Ray executor on a local Ray instance with 2 CPUs (one per module, Ray starts slowly): results identical to
the local executor, resume across executors, a worker killed mid-shard retried, a worker that always dies."""
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import memlens.audits.image  # noqa: E402
from memlens import MemlensInputError, Population  # noqa: E402
from memlens.audits.image import run_audit  # noqa: E402
from memlens.cli.main import load_npz_dataset, main  # noqa: E402
from memlens.storage.executors import ExecutorError, LocalExecutor, RayExecutor, make_executor  # noqa: E402
from memlens.storage.runs import RunDir  # noqa: E402

N_MODELS, SHARD, TARGETS = 8, 2, 4  # 4 shards of 2 models


@pytest.fixture(scope="module")
def ray_cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    yield
    if started:
        ray.shutdown()


def _audit(data_file, out, **kw):
    return run_audit(dataset=load_npz_dataset(data_file), n_models=N_MODELS, shard_size=SHARD,
                     attack_targets=TARGETS, out=out, progress=False, **kw)


def _assert_same_results(out: Path, ref: Path):
    for name in ("examples.csv", "pairs.csv"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    a, b = Population.load(out / "population"), Population.load(ref / "population")
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.seeds, b.seeds)
    assert {s: set(d) for s, d in a.signals.items()} == {s: set(d) for s, d in b.signals.items()}
    for split in a.signals:
        for name in a.signals[split]:
            np.testing.assert_array_equal(a.signal(split, name), b.signal(split, name), err_msg=f"{split}/{name}")
    assert RunDir.open(out).run_id == RunDir.open(ref).run_id


@pytest.fixture(scope="module")
def reference(data_file, tmp_path_factory):
    """The same audit on the local executor."""
    out = tmp_path_factory.mktemp("ray") / "local"
    res = _audit(data_file, out)
    assert res.summary["executor"] == "local"
    return out


def test_ray_backend_is_identical_to_local(ray_cluster, reference, data_file, tmp_path):
    out = tmp_path / "ray"
    args = ["audit", "--data", str(data_file), "--models", str(N_MODELS), "--shard-size", str(SHARD),
            "--attack-targets", str(TARGETS), "--out", str(out), "--no-progress", "--backend", "ray"]
    assert main(args) == 0
    _assert_same_results(out, reference)
    import json

    s = json.loads((out / "summary.json").read_text())
    assert s["executor"] == "ray" and s["shards_trained"] == N_MODELS // SHARD
    assert ray.is_initialized()  # an instance the executor did not start is left running


def test_run_moves_between_executors_when_interrupted(ray_cluster, reference, data_file, tmp_path):
    """Started locally and interrupted after one shard, continued on Ray and interrupted (Ctrl-C: the shards in
    flight are cancelled) after one more, finished locally: only missing shards are trained, none is rewritten,
    and the result equals the uninterrupted run."""
    out = tmp_path / "run"
    shards = out / "population" / "shards"

    def stop_at(n):
        def on_shard(k, n_done, n_shards):
            if n_done == n:
                raise KeyboardInterrupt
        return on_shard

    with pytest.raises(KeyboardInterrupt):
        _audit(data_file, out, on_shard=stop_at(1))
    first = {p.name: p.read_bytes() for p in shards.glob("shard-*")}
    assert sorted(first) == ["shard-00000.json", "shard-00000.npz"]
    with pytest.raises(KeyboardInterrupt):
        _audit(data_file, out, resume=True, executor="ray", on_shard=stop_at(2))
    assert ray.is_initialized()
    run = RunDir.open(out)
    done_on_ray = sorted(set(range(1, run.n_shards)) - set(run.missing_shards()))
    assert len(done_on_ray) == 1 and run.missing_shards() == sorted({1, 2, 3} - set(done_on_ray))
    kept = {p.name: p.read_bytes() for p in shards.glob("shard-*")}
    assert all(kept[name] == data for name, data in first.items())
    res = _audit(data_file, out, resume=True)
    assert res.shards_trained == tuple(sorted({1, 2, 3} - set(done_on_ray)))
    assert all((shards / name).read_bytes() == data for name, data in kept.items())
    _assert_same_results(out, reference)


def _flaky_train_shard(marker_dir: str, *, die_at: int):
    """A shard function that dies (SIGKILL of its own worker) the first time it trains the shard starting at row
    ``die_at``. Each attempt is logged as a file ``attempt-<row>-<pid>``."""
    real = memlens.audits.image._train_shard

    def train_shard(dataset, **kw):
        import signal as _signal

        offset = kw["model_offset"]
        open(os.path.join(marker_dir, f"attempt-{offset}-{os.getpid()}"), "w").close()
        if offset == die_at:
            marker = os.path.join(marker_dir, f"died-{offset}")
            if not os.path.exists(marker):
                open(marker, "w").close()
                real(dataset, **kw)  # the work is done, then the worker dies before returning it
                os.kill(os.getpid(), _signal.SIGKILL)
        return real(dataset, **kw)

    return train_shard


def _attempts(marker_dir: Path) -> dict:
    out = {}
    for p in marker_dir.glob("attempt-*"):
        row = int(p.name.split("-")[1])
        out[row] = out.get(row, 0) + 1
    return out


def test_worker_killed_mid_shard_is_retried(ray_cluster, reference, data_file, tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setattr(memlens.audits.image, "_train_shard", _flaky_train_shard(str(markers), die_at=4))
    out = tmp_path / "run"
    res = _audit(data_file, out, executor="ray")
    assert (markers / "died-4").exists()
    assert _attempts(markers) == {0: 1, 2: 1, 4: 2, 6: 1}  # shard 2 (rows 4, 5) ran twice: killed, then retried
    assert res.shards_trained == (0, 1, 2, 3)
    _assert_same_results(out, reference)


def test_worker_that_always_dies_fails_clearly_after_handing_over_the_others(ray_cluster, tmp_path):
    """Job 3 kills its worker on every attempt: after ``max_retries`` retries the map fails with ExecutorError,
    and every job that finished before was handed over (the audit has written its shard)."""
    def job(*, x, marker_dir):
        import signal as _signal
        import time as _time

        open(os.path.join(marker_dir, f"attempt-{x}-{os.getpid()}"), "w").close()
        if x == 3:
            _time.sleep(0.5)  # the others finish first
            os.kill(os.getpid(), _signal.SIGKILL)
        return x * 10

    got = {}
    jobs = [(k, {"x": k, "marker_dir": str(tmp_path)}) for k in range(4)]
    with pytest.raises(ExecutorError, match=r"shard 3: its Ray worker died 2 times \(max_retries=1.*--resume"):
        RayExecutor(max_retries=1).map(job, jobs, on_result=got.__setitem__)
    assert got == {0: 0, 1: 10, 2: 20}
    assert _attempts(tmp_path) == {0: 1, 1: 1, 2: 1, 3: 2}


def test_shard_exception_is_raised_not_retried(ray_cluster, tmp_path):
    def job(*, x, marker_dir):
        open(os.path.join(marker_dir, f"attempt-{x}-{os.getpid()}"), "w").close()
        if x == 1:
            raise MemlensInputError(f"shard {x} refused")
        return x

    with pytest.raises(MemlensInputError, match="shard 1 refused"):
        RayExecutor().map(job, [(k, {"x": k, "marker_dir": str(tmp_path)}) for k in range(2)],
                          on_result=lambda k, v: None)
    assert _attempts(tmp_path)[1] == 1


def test_executor_map_hands_over_every_result_once(ray_cluster):
    def square(*, base, x):
        return {"x": x, "value": base + x * x}

    got = {}
    jobs = [(k, {"x": k}) for k in range(6)]
    done = make_executor("ray").map(square, jobs, shared={"base": 100}, on_result=got.__setitem__)
    assert sorted(done) == list(range(6)) and len(done) == 6
    assert got == {k: {"x": k, "value": 100 + k * k} for k in range(6)}
    local = {}
    assert LocalExecutor().map(square, jobs, shared={"base": 100}, on_result=local.__setitem__) == list(range(6))
    assert local == got


def test_ray_task_runs_with_one_thread(ray_cluster):
    def threads():
        import torch
        from threadpoolctl import threadpool_info

        return torch.get_num_threads(), sorted({d["num_threads"] for d in threadpool_info()})

    got = {}
    RayExecutor().map(threads, [(0, {})], on_result=got.__setitem__)
    n_torch, n_blas = got[0]
    assert n_torch == 1 and set(n_blas) <= {1}


def test_population_travels_as_npz_bytes():
    from memlens.storage.executors import _decode, _encode

    rng = np.random.default_rng(0)
    masks = rng.random((3, 5)) < 0.5
    pop = Population(masks, {"train": {"correct": rng.random((3, 5)).astype(np.float32)}}, seeds=np.arange(3),
                     labels={"train": np.arange(5) % 2}, provenance={"k": 1})
    kind, payload = _encode(pop)
    assert kind == "memlens-population-npz" and isinstance(payload, bytes)
    back = _decode((kind, payload))
    np.testing.assert_array_equal(back.masks, masks)
    np.testing.assert_array_equal(back.signal("train", "correct"), pop.signal("train", "correct"))
    assert hashlib.sha256(back.to_npz_bytes()).digest() == hashlib.sha256(payload).digest()


@pytest.mark.slow
def test_existing_cluster_by_address(reference, data_file, tmp_path):
    """`ray start --head` in its own process group, `memlens audit --backend ray --ray-address` in a child process:
    the same results as the local executor, and the cluster keeps running after the run."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    ray_bin = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen([ray_bin, "start", "--head", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard", "false", "--disable-usage-stats", "--block"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        time.sleep(3)
        out = tmp_path / "cluster"
        args = ["audit", "--data", str(data_file), "--models", str(N_MODELS), "--shard-size", str(SHARD),
                "--attack-targets", str(TARGETS), "--out", str(out), "--no-progress", "--backend", "ray",
                "--ray-address", f"127.0.0.1:{port}"]
        proc = subprocess.run([sys.executable, "-m", "memlens.cli", *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        _assert_same_results(out, reference)
        assert head.poll() is None  # the cluster is not shut down by the run
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # the head's own process group (start_new_session)
        except ProcessLookupError:
            pass
        head.wait()
        # a head killed before its own clean-up leaves its address as "the current cluster" of this machine
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


@pytest.mark.slow
def test_text_audit_on_ray_is_identical_to_local(ray_cluster, tmp_path):
    """The text audit's shards (char-LMs with per-model canary exposure) on Ray equal those trained locally."""
    def args(out, *extra):
        return ["audit", "--dataset", "fortunes", "--models", "4", "--shard-size", "2", "--documents", "40",
                "--max-chars", "50", "--canary-repetitions", "1,24", "--canaries-per-repetition", "1", "--steps", "60",
                "--width", "32", "--depth", "1", "--out", str(out), "--no-progress", *extra]

    try:
        from memlens.data.text import load_text_dataset

        load_text_dataset("fortunes")
    except Exception as exc:  # noqa: BLE001 - the corpus ships with a Debian package
        pytest.skip(f"fortunes corpus unavailable: {exc}")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main(args(local)) == 0
    assert main(args(on_ray, "--backend", "ray")) == 0
    for name in sorted(p.name for p in local.glob("*.csv")):
        assert (on_ray / name).read_bytes() == (local / name).read_bytes(), name
    a, b = Population.load(local / "population"), Population.load(on_ray / "population")
    for split in a.signals:
        for name in a.signals[split]:
            np.testing.assert_array_equal(a.signal(split, name), b.signal(split, name), err_msg=f"{split}/{name}")



def test_users_module_trains_on_ray_as_locally(ray_cluster, data_file, tmp_path):
    """A factory file is loaded by each Ray worker from its spec; the shards equal the local executor's (the same
    per-model seeds and minibatches; a vectorized or looped block, whichever the timed trial picks, agrees to float
    rounding)."""
    net = tmp_path / "net.py"
    net.write_text("from torch import nn\n\n\ndef make_net(input_shape, n_classes):\n"
                   "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, n_classes))\n")
    kw = dict(model=f"{net}:make_net", model_params={"epochs": 2, "batch_size": 32, "vectorize": False},
              attacks=False)
    local = _audit(data_file, tmp_path / "local", **kw)
    remote = _audit(data_file, tmp_path / "ray", executor="ray", **kw)
    assert remote.summary["executor"] == "ray" and remote.summary["model_config"]["factory"] == f"{net}:make_net"
    for split in ("train", "test"):
        np.testing.assert_allclose(remote.population.signal(split, "logit"), local.population.signal(split, "logit"),
                                   atol=1e-5)
    assert RunDir.open(tmp_path / "ray").run_id == RunDir.open(tmp_path / "local").run_id


def test_local_ray_instance_does_not_outlive_a_killed_driver(data_file, tmp_path):
    """SIGKILL of a --backend ray driver: the local Ray instance it started (GCS, raylet, agents, workers) is gone
    within seconds (memlens.storage._reaper), and a --resume finishes the run."""
    import signal
    import subprocess
    import sys
    import time

    from memlens.storage._reaper import _children_map, _descendants

    out = tmp_path / "run"
    fit = tmp_path / "slow.py"
    fit.write_text("import time\nfrom sklearn.linear_model import LogisticRegression\n\n"
                   "def fit(X, y, seed):\n    time.sleep(1.0)\n"
                   "    return LogisticRegression(max_iter=100).fit(X, y).predict_proba\n")
    cmd = [sys.executable, "-m", "memlens", "audit", "--data", str(data_file), "--model", f"fit:{fit}:fit",
           "--model-param", "output=proba", "--models", "16", "--shard-size", "2", "--no-attacks", "--no-progress",
           "--out", str(out), "--backend", "ray", "--ray-num-cpus", "2"]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not list((out / "population" / "shards").glob("*.json")) if (out / "population" / "shards").exists() \
            else True:
        assert time.time() - t0 < 180, "no shard was written"
        time.sleep(0.2)
    family = _descendants([driver.pid], _children_map())
    assert len(family) >= 3                      # GCS, raylet, workers, the reaper ...
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    deadline = time.time() + 20
    while time.time() < deadline:
        left = [pid for pid, start in family if os.path.exists(f"/proc/{pid}")
                and _stat_start(pid) == start and _state(pid) != "Z"]
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"Ray processes outlived their driver: {left}"
    again = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert (out / "summary.json").is_file()


def _stat_start(pid):
    from memlens.storage._reaper import _stat

    st = _stat(pid)
    return None if st is None else st[1]


def _state(pid):
    from memlens.storage._reaper import _stat

    st = _stat(pid)
    return None if st is None else st[2]
