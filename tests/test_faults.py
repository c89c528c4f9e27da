"""Faults: a driver killed by SIGKILL at random moments, a full or read-only disk, a changed run identity, a
start cut short, and a missing or unreachable Ray (the Ray executor itself: tests/test_ray.py)."""
import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import memlens._io
import memlens.population
import memlens.storage.runs
from memlens import MemlensInputError, MemlensWarning, Population
from memlens.audits.image import run_audit
from memlens.cli.main import load_npz_dataset, main
from memlens.storage.runs import RunDir, RunStorageError

N_MODELS, SHARD = 16, 1  # 16 one-model shards: many moments between shard writes (the attacks, which read the
# population only, are left out to keep the many runs short)


def _args(data_file, out, *extra):
    return ["audit", "--data", str(data_file), "--models", str(N_MODELS), "--shard-size", str(SHARD),
            "--no-attacks", "--out", str(out), "--no-progress", *extra]


def _audit(data_file, out, **kw):
    return run_audit(dataset=load_npz_dataset(data_file), n_models=N_MODELS, shard_size=SHARD, attacks=False,
                     out=out, progress=False, **kw)


def _hashes(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _assert_same_results(out: Path, ref: Path):
    """examples.csv, pairs.csv, the saved population and every shard's arrays equal the reference run's."""
    for name in ("examples.csv", "pairs.csv"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    a, b = Population.load(out / "population"), Population.load(ref / "population")
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.seeds, b.seeds)
    assert set(a.signals) == set(b.signals)
    for split in a.signals:
        assert set(a.signals[split]) == set(b.signals[split])
        for name in a.signals[split]:
            np.testing.assert_array_equal(a.signal(split, name), b.signal(split, name), err_msg=f"{split}/{name}")
    ra, rb = RunDir.open(out), RunDir.open(ref)
    assert ra.run_id == rb.run_id and ra.missing_shards() == [] == rb.missing_shards()


def _no_temp_files(path: Path) -> list:
    return [p for p in path.rglob("*.tmp")]


@pytest.fixture(scope="module")
def reference(data_file, tmp_path_factory):
    """One uninterrupted audit (in this process): its run directory and its wall-clock seconds."""
    out = tmp_path_factory.mktemp("faults") / "ref"
    t0 = time.perf_counter()
    _audit(data_file, out)
    return out, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------- SIGKILL
_CHILD = ("import sys\n"
          "import memlens.audits.image, memlens.train, memlens.measures, memlens.report.html\n"
          "from memlens.cli import main\n"
          "print('ready', flush=True)\n"
          "sys.exit(main(sys.argv[1:]))\n")


def _valid_shards(out: Path) -> dict:
    """{k: shard bytes} of the finished, intact shards of the run at ``out`` (nothing when it has no manifest)."""
    if not (out / "manifest.json").exists():
        return {}
    run = RunDir.open(out) if (out / "masks.npy").exists() else None
    if run is None:
        return {}
    return {k: run.shard_path(k).read_bytes() for k in range(run.n_shards) if run.has_shard(k)}


def _n_records(out: Path) -> int:
    return len(list((out / "population" / "shards").glob("shard-*.json")))


def _kill_and_resume(data_file, ref, tmp_path, *, n_kills, seed):
    """Start the audit in a child process and SIGKILL it ``n_kills`` times at random moments, each start
    continuing the previous one (``--resume`` once a manifest exists); then finish it with ``--resume``.

    Moments are of two kinds, both drawn from ``seed``: during training (right after 1 to 3 more shard records
    exist, plus a random delay of up to 50 ms, which also lands inside shard writes), two starts in three while
    shards are missing; and anywhere in the run (a random delay after the child's imports, up to 0.7 times the
    reference run's duration), every third start and once all shards exist (the analysis and the result files).
    """
    ref_dir, ref_seconds = ref
    out = tmp_path / "killed"
    rng = np.random.default_rng(seed)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    kills, finished = [], {}
    for i in range(n_kills):
        extra = ["--resume"] if (out / "manifest.json").exists() else []
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, *_args(data_file, out, *extra)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"  # imports done: the random moment falls in the run
            t0 = time.perf_counter()
            if i % 3 != 2 and len(finished) < N_MODELS - 1:  # during training, 1 to 3 shards further on
                target = min(len(finished) + int(rng.integers(1, 4)), N_MODELS - 1)
                while proc.poll() is None and _n_records(out) < target:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.05))
            else:  # anywhere
                time.sleep(rng.uniform(0.0, 0.7 * ref_seconds))
            moment = time.perf_counter() - t0
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills.append(moment)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        assert rc in (0, -signal.SIGKILL), rc
        now = _valid_shards(out)
        # a kill never damages a finished shard: every shard finished before is still there, byte for byte
        assert all(now.get(k) == data for k, data in finished.items())
        finished = now
        print(f"start {i}: {'killed' if rc else 'finished'} after {moment:.3f} s, {len(now)} of {N_MODELS} shards "
              "finished")
    assert len(kills) >= max(1, n_kills // 2), kills  # most starts were killed before they finished
    # finish it (in this process), on the files the killed processes left
    assert main(_args(data_file, out, *(["--resume"] if (out / "manifest.json").exists() else []))) == 0
    _assert_same_results(out, ref_dir)
    assert _no_temp_files(out) == []
    return kills


def test_sigkill_at_random_moments_resumes_to_identical_results(data_file, reference, tmp_path):
    _kill_and_resume(data_file, reference, tmp_path, n_kills=3, seed=2026)


@pytest.mark.slow
def test_sigkill_many_times_resumes_to_identical_results(data_file, reference, tmp_path):
    _kill_and_resume(data_file, reference, tmp_path, n_kills=10, seed=7)


def _run_inputs(ref_dir: Path, data_file):
    """(config, dataset, masks, shard size) of the reference run, as a resumed audit passes them to RunDir."""
    man = json.loads((ref_dir / "manifest.json").read_text())
    return man["config"], load_npz_dataset(data_file), np.load(ref_dir / "masks.npy", allow_pickle=False), SHARD


def test_start_killed_before_its_manifest_counts_as_empty(data_file, reference, tmp_path):
    config, ds, masks, shard = _run_inputs(reference[0], data_file)
    out = tmp_path / "run"
    out.mkdir()
    (out / ".manifest.json.k2j3.tmp").write_bytes(b'{"format": "memlens-r')  # the manifest write cut short
    with pytest.raises(MemlensInputError, match="no memlens run .* to resume; drop --resume"):
        RunDir.open_for_resume(out, config, ds, masks, shard_size=shard)
    run = RunDir.create(out, config, ds, masks, shard_size=shard)  # a fresh start is accepted, the leftover gone
    assert run.run_id == RunDir.open(reference[0]).run_id
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "masks.npy", "population"]


def test_start_killed_after_its_manifest_resumes(data_file, reference, tmp_path, monkeypatch):
    """The manifest is written first; a start killed before masks.npy and the shard folder exist is resumed (the
    masks are checked against the manifest's hash and restored)."""
    config, ds, masks, shard = _run_inputs(reference[0], data_file)
    out = tmp_path / "run"
    real = memlens.storage.runs.atomic_write_bytes

    def killed_at_masks(path, data):
        if Path(path).name == "masks.npy":
            raise KeyboardInterrupt
        return real(path, data)

    monkeypatch.setattr(memlens.storage.runs, "atomic_write_bytes", killed_at_masks)
    with pytest.raises(KeyboardInterrupt):
        RunDir.create(out, config, ds, masks, shard_size=shard)
    monkeypatch.setattr(memlens.storage.runs, "atomic_write_bytes", real)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    with pytest.raises(MemlensInputError, match="already holds a memlens run"):  # a plain restart is refused
        RunDir.create(out, config, ds, masks, shard_size=shard)
    run = RunDir.open_for_resume(out, config, ds, masks, shard_size=shard)
    assert run.missing_shards() == list(range(N_MODELS))
    np.testing.assert_array_equal(RunDir.open(out).masks, masks)


# ---------------------------------------------------------------------------------------------- full / read-only disk
def _fd_name(fd) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


@pytest.mark.parametrize("fail_on", ["shard-00003.npz", pytest.param("shard-00003.json", marks=pytest.mark.slow),
                                     pytest.param("examples.csv", marks=pytest.mark.slow)])
def test_full_disk_fails_clearly_and_keeps_finished_shards(data_file, reference, tmp_path, monkeypatch, capsys,
                                                           fail_on):
    """ENOSPC from fsync (the disk fills while a file is written): a one-line error, exit 1, no temporary file,
    no half-written shard counted; after space is freed, --resume finishes to the uninterrupted result."""
    out = tmp_path / "run"
    real_fsync = os.fsync
    hits = []

    def full_disk_fsync(fd):
        if os.path.basename(_fd_name(fd)).startswith(f".{fail_on}."):
            hits.append(fail_on)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk_fsync)
    assert main(_args(data_file, out)) == 1
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("memlens: error:")]
    assert hits and len(errors) == 1, err
    err = errors[0]
    assert err.startswith("memlens: error: could not write") and "no space left on device" in err
    assert "--resume" in err and fail_on.split(".")[0] in err
    assert _no_temp_files(out) == []
    run = RunDir.open(out)
    if fail_on.startswith("shard"):
        # shards 0..2 finished and readable; shard 3 (its .npz may have landed without its record) is not counted
        assert run.missing_shards() == list(range(3, N_MODELS))
        for k in range(3):
            run.load_shard(k)
        with pytest.raises(MemlensInputError, match="shard 3"):
            run.load_shard(3)
        assert not (out / "examples.csv").exists()
    else:
        assert run.missing_shards() == []
    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed
    assert main(_args(data_file, out, "--resume")) == 0
    _assert_same_results(out, reference[0])


def test_read_only_run_directory_fails_clearly(data_file, reference, tmp_path, monkeypatch, capsys):
    """The file system turns read-only after two shards (root ignores chmod: temporary-file creation is made to
    fail with EROFS): a clear error, finished shards kept; a read-only directory at the start is refused before
    any work, and nothing in it changes."""
    out = tmp_path / "run"
    real_mkstemp = memlens._io.tempfile.mkstemp
    state = {"read_only": False}

    def mkstemp(*args, **kw):
        if state["read_only"]:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_mkstemp(*args, **kw)

    monkeypatch.setattr(memlens._io.tempfile, "mkstemp", mkstemp)

    def remount_read_only(k, n_done, n_shards):
        if n_done == 2:
            state["read_only"] = True

    with pytest.raises(RunStorageError, match=r"shard 2 \(shard-00002.npz\).*read-only.*--resume") as info:
        _audit(data_file, out, on_shard=remount_read_only)
    assert info.value.errno == errno.EROFS
    run = RunDir.open(out)
    assert run.missing_shards() == list(range(2, N_MODELS))
    assert [run.load_shard(k).n_models for k in range(2)] == [1, 1]
    before = _hashes(out)
    # still read-only: --resume is refused before any work, and the directory is left as it was
    assert main(_args(data_file, out, "--resume")) == 2
    err = capsys.readouterr().err.strip()
    assert "--out must be a writable folder" in err and "Read-only file system" in err
    assert _hashes(out) == before
    state["read_only"] = False
    assert main(_args(data_file, out, "--resume")) == 0
    _assert_same_results(out, reference[0])


# ---------------------------------------------------------------------------------------------- identity
def test_manifest_records_identity_and_versions(reference, data_file):
    man = json.loads((reference[0] / "manifest.json").read_text())
    for pkg in ("python", "memlens", "numpy", "scipy", "scikit-learn", "torch", "opacus", "ray"):
        assert pkg in man["versions"], pkg
    import numpy

    assert man["versions"]["numpy"] == numpy.__version__
    from memlens.storage.runs import run_identity

    masks = np.load(reference[0] / "masks.npy", allow_pickle=False)
    ds = load_npz_dataset(data_file)
    assert man["run_id"] == run_identity(ds.fingerprint(), {**man["config"], "shard_size": SHARD}, masks)
    assert man["dataset"]["fingerprint"] == ds.fingerprint()
    assert "executor" not in man["config"]  # a run resumes on any executor


@pytest.mark.parametrize("change, says", [
    (["--subset-ratio", "0.5"], r"\n  - subset_ratio is 0.7 in the run, 0.5 now"),
    (["--models", "17"], r"n_models is 16 in the run, 17 now"),
    (["--shard-size", "2"], r"shard_size is 1 in the run, 2 now"),
    (["--model", "mlp"], r"model is 'logreg' in the run, 'mlp' now"),
])
def test_resume_with_other_identity_refused_and_says_what_differs(reference, data_file, capsys, change, says):
    ref = reference[0]
    before = _hashes(ref)
    args = _args(data_file, ref, "--resume")
    for flag, value in zip(change[::2], change[1::2]):
        i = args.index(flag) if flag in args else None
        if i is None:
            args += [flag, value]
        else:
            args[i + 1] = value
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    # the refusal's first line, then one line per differing setting
    assert err.startswith("memlens: error: --resume refused") and all(ln.startswith("  - ") for ln in lines[1:]), err
    assert len(lines) >= 2
    import re

    assert re.search(says, err), err
    assert _hashes(ref) == before


def test_resume_refuses_an_edited_run_identity(reference, data_file, tmp_path):
    out = tmp_path / "run"
    import shutil

    shutil.copytree(reference[0], out)
    man = json.loads((out / "manifest.json").read_text())
    man["run_id"] = "0" * 64
    (out / "manifest.json").write_text(json.dumps(man))
    before = _hashes(out)
    with pytest.raises(MemlensInputError, match=r"run identity 000000000000 in the run, [0-9a-f]{12} now "
                                                r"\(manifest.json was edited"):
        _audit(data_file, out, resume=True)
    assert _hashes(out) == before


def test_resume_warns_when_package_versions_changed(reference, data_file, tmp_path):
    config, ds, masks, shard = _run_inputs(reference[0], data_file)
    out = tmp_path / "run"
    import shutil

    shutil.copytree(reference[0], out)
    man = json.loads((out / "manifest.json").read_text())
    man["versions"]["numpy"] = "0.0.1"
    (out / "manifest.json").write_text(json.dumps(man))
    with pytest.warns(MemlensWarning, match=r"other package versions \(numpy 0.0.1 in the run, "):
        run = RunDir.open_for_resume(out, config, ds, masks, shard_size=shard)
    assert run.missing_shards() == []  # the shards are reused all the same (versions are not the identity)


# ---------------------------------------------------------------------------------------------- Ray missing or unreachable
def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_ray_not_installed_is_a_clear_error(data_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    out = tmp_path / "run"
    assert main(_args(data_file, out, "--backend", "ray")) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("memlens: error: Ray is not installed, and executor='ray' (--backend ray) needs it; install it "
                   "with pip install 'memlens[ray]', or use the local executor")
    assert not out.exists()


def test_unreachable_ray_address_fails_fast_before_any_work(data_file, tmp_path, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "run"
    port = _closed_port()
    t0 = time.perf_counter()
    assert main(_args(data_file, out, "--backend", "ray", "--ray-address", f"127.0.0.1:{port}")) == 2
    err = capsys.readouterr().err.strip()
    assert f"--ray-address: no Ray cluster reachable at '127.0.0.1:{port}'" in err and "ray start --head" in err
    assert time.perf_counter() - t0 < 60  # not ray.init's minutes of retries
    assert not out.exists()


@pytest.mark.parametrize("extra, says", [
    (["--backend", "spark"], "--backend must be one of local, ray; got 'spark'"),
    (["--ray-address", "10.0.0.5:6379"], "need executor='ray' (--backend ray)"),
    (["--backend", "ray", "--ray-address", "10.0.0.5:notaport"], "--ray-address must be 'auto', HOST:PORT"),
    (["--backend", "ray", "--ray-num-cpus", "0"], "--ray-num-cpus must be"),
    (["--backend", "ray", "--ray-address", "auto", "--ray-num-cpus", "2"], "applies to a local Ray instance only"),
])
def test_bad_executor_options(data_file, tmp_path, capsys, extra, says):
    if "ray" in extra:
        pytest.importorskip("ray")
    out = tmp_path / "run"
    assert main(_args(data_file, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- a real small disk
@pytest.fixture
def small_disk(tmp_path):
    """A 96 KiB tmpfs mounted under ``tmp_path`` (skipped where mounting is not permitted); unmounted after."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k,mode=0755", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({r.stderr.strip()[:80]})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _remount(mnt, options):
    subprocess.run(["mount", "-o", f"remount,{options}", str(mnt)], check=True, capture_output=True)


def test_real_full_disk_then_more_space(small_disk, data_file, reference, capsys):
    """A run on a 96 KiB file system fills it during training: a one-line error, exit 1, the shards written so far
    readable, none half-written; after the file system grows, --resume finishes to the uninterrupted result."""
    out = small_disk / "run"
    assert main(_args(data_file, out)) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("memlens: error:")]
    assert len(errors) == 1 and "no space left on device" in errors[0] and "--resume" in errors[0], errors
    run = RunDir.open(out)
    done = [k for k in range(run.n_shards) if k not in run.missing_shards()]
    assert 0 < len(done) < N_MODELS
    for k in done:
        run.load_shard(k)
    assert _no_temp_files(out) == []
    _remount(small_disk, "size=8m")
    assert main(_args(data_file, out, "--resume")) == 0
    _assert_same_results(out, reference[0])


@pytest.mark.slow
def test_real_read_only_remount(small_disk, data_file, reference, capsys):
    """The file system is remounted read-only after two shards: RunStorageError (EROFS), the two shards readable;
    --resume is refused while it stays read-only; after a read-write remount --resume finishes the same run."""
    _remount(small_disk, "size=8m")
    out = small_disk / "run"

    def remount_read_only(k, n_done, n_shards):
        if n_done == 2:
            _remount(small_disk, "ro")

    with pytest.raises(RunStorageError, match="read-only") as info:
        _audit(data_file, out, on_shard=remount_read_only)
    assert info.value.errno == errno.EROFS
    run = RunDir.open(out)
    assert run.missing_shards() == list(range(2, N_MODELS))
    before = _hashes(out)
    assert main(_args(data_file, out, "--resume")) == 2
    assert "--out must be a writable folder" in capsys.readouterr().err
    assert _hashes(out) == before
    _remount(small_disk, "rw")
    assert main(_args(data_file, out, "--resume")) == 0
    _assert_same_results(out, reference[0])


def test_full_disk_at_the_start_says_start_again(data_file, tmp_path, monkeypatch, capsys):
    """The manifest cannot be written: exit 1, the advice is to start again (there is no run to resume), and the
    folder left behind counts as empty."""
    out = tmp_path / "run"
    real_fsync = os.fsync

    def full_disk_fsync(fd):
        if os.path.basename(_fd_name(fd)).startswith(".manifest.json."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk_fsync)
    assert main(_args(data_file, out)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("memlens: error: could not write manifest.json") and "start the run again" in err, err
    assert "--resume" not in err
    # nothing is left behind: the folder this run created (for its lock) is removed with the lock
    assert not out.exists() or list(out.iterdir()) == []
    monkeypatch.setattr(os, "fsync", real_fsync)
    RunDir.check_new(out)  # a new start is accepted


# ---------------------------------------------------------------------------------------------- every write guarded
@pytest.mark.parametrize("fail_on", ["report.html", "summary.json", "population.npz"])
def test_full_disk_on_any_result_file_is_one_line(data_file, tmp_path, monkeypatch, capsys, fail_on):
    """A full disk while the report (or summary.json, or the saved population) is written: the documented one-line
    storage error, exit 1, no traceback, no temporary file left; --resume then finishes the run."""
    out = tmp_path / "run"
    real_fsync = os.fsync

    def full_disk_fsync(fd):
        if os.path.basename(_fd_name(fd)).startswith(f".{fail_on}."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk_fsync)
    assert main(_args(data_file, out)) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("memlens: error:")]
    assert len(errors) == 1 and "no space left on device" in errors[0] and fail_on.split(".")[0] in errors[0], err
    assert _no_temp_files(out) == []
    assert not (out / "summary.json").exists()     # the run is not marked finished
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert main(_args(data_file, out, "--resume")) == 0
    assert (out / "summary.json").is_file() and (out / "report.html").is_file()


def test_unexpected_os_error_while_writing_is_one_line(data_file, tmp_path, monkeypatch, capsys):
    """An errno outside the known storage causes (here EIO's cousin ENXIO) still gives one line, not a traceback."""
    out = tmp_path / "run"
    real_replace = os.replace

    def flaky_replace(src, dst, *a, **k):
        if os.path.basename(str(dst)) == "pairs.csv":
            raise OSError(errno.ENXIO, os.strerror(errno.ENXIO))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", flaky_replace)
    assert main(_args(data_file, out)) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("memlens: error:") == 1 and "pairs.csv" in err


@pytest.mark.parametrize("case", ["population-symlink", "examples-folder", "summary-symlink", "shards-file",
                                  "report-fifo"])
def test_owned_paths_of_the_wrong_kind_are_refused_before_anything_changes(data_file, tmp_path, capsys, case):
    """--overwrite (and a new start, and --resume) refuse a run directory whose own paths are of the wrong kind
    before deleting or training anything: the directory is byte-identical afterwards."""
    out = tmp_path / "run"
    assert main(_args(data_file, out)) == 0
    capsys.readouterr()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("precious")
    if case == "population-symlink":
        shutil.move(out / "population", elsewhere / "population")
        (out / "population").symlink_to(elsewhere / "population")
    elif case == "examples-folder":
        (out / "examples.csv").unlink()
        (out / "examples.csv").mkdir()
        (out / "examples.csv" / "note.txt").write_text("x")
    elif case == "summary-symlink":
        (out / "summary.json").unlink()
        (out / "summary.json").symlink_to(elsewhere / "keep.txt")
    elif case == "shards-file":
        shutil.rmtree(out / "population" / "shards")
        (out / "population" / "shards").write_text("x")
    else:
        (out / "report.html").unlink()
        os.mkfifo(out / "report.html")
    before = _hashes(out)
    listing = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    for extra in (["--overwrite"], ["--resume"]):
        assert main(_args(data_file, out, *extra)) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("memlens: error: --out") and "Traceback" not in err, err
    assert _hashes(out) == before
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == listing
    assert (elsewhere / "keep.txt").read_text() == "precious"
    if case == "population-symlink":
        assert (elsewhere / "population" / "masks.npy").exists() or any((elsewhere / "population").iterdir())


# ---------------------------------------------------------------------------------------------- identity = content
def test_identity_is_the_content_not_the_file_name(data_file, tmp_path, capsys):
    """A renamed --data file with the same arrays resumes the run; changed arrays under the old name do not."""
    out = tmp_path / "run"
    assert main(_args(data_file, out)) == 0
    renamed = tmp_path / "renamed-copy.npz"
    shutil.copy(data_file, renamed)
    assert main(_args(renamed, out, "--resume")) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["shards_trained"] == 0
    changed = tmp_path / "small.npz"
    with np.load(data_file) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["X_train"] = arrays["X_train"] * 0.5
    np.savez(changed, **arrays)
    capsys.readouterr()
    assert main(_args(changed, out, "--resume")) == 2
    assert "dataset differs" in capsys.readouterr().err


def test_text_identity_is_the_content_not_the_file_name(tmp_path):
    from memlens.audits.text import run_text_audit

    corpus = "\n".join(f"document number {i} says {'ab' * (i % 7)} and ends." for i in range(40))
    first = tmp_path / "a.txt"
    first.write_text(corpus)
    kw = dict(n_models=2, shard_size=1, progress=False, canary_repetitions=(), n_documents=None,
              config={"steps": 5, "width": 16, "depth": 1, "n_heads": 2, "context_length": 64})
    out = tmp_path / "run"
    run_text_audit(text_file=first, out=out, **kw)
    second = tmp_path / "b.txt"
    second.write_text(corpus)
    res = run_text_audit(text_file=second, out=out, resume=True, **kw)
    assert res.summary["shards_trained"] == 0
