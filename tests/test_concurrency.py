"""Two real processes on one run directory: the second writer is refused, the first loses nothing; a lock left by a
killed process is taken over; the lock is released however a run ends."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from memlens import MemlensInputError
from memlens.audits.image import run_audit
from memlens.cli.main import load_npz_dataset
from memlens.storage import acquire_run_lock
from memlens.storage.lock import LOCK_NAME

SLOW_FIT = textwrap.dedent("""
    import time
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    def fit(X, y, seed):
        time.sleep(float(__import__("os").environ.get("MEMLENS_TEST_SLEEP", "0.4")))
        clf = LogisticRegression(max_iter=200).fit(X, y)
        return clf.predict_proba
""")


def _cli(*args, env=None):
    return [sys.executable, "-m", "memlens", *map(str, args)]


def _start(data_file, out, fit, *extra):
    env = {**os.environ, "MEMLENS_TEST_SLEEP": "1.5", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(_cli("audit", "--data", data_file, "--model", f"fit:{fit}:fit", "--model-param",
                                 "output=proba", "--models", 12, "--shard-size", 2, "--no-attacks", "--no-progress",
                                 "--out", out, *extra), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(path: Path, timeout=60.0):
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > timeout:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


@pytest.fixture()
def slow_fit(tmp_path):
    p = tmp_path / "slow.py"
    p.write_text(SLOW_FIT)
    return p


def test_second_writer_is_refused_and_the_first_loses_nothing(data_file, tmp_path, slow_fit):
    out = tmp_path / "run"
    first = _start(data_file, out, slow_fit)
    try:
        _wait_for(out / "manifest.json")
        # a second writer with --overwrite and another seed, while the first trains
        second = subprocess.run(_cli("audit", "--data", data_file, "--overwrite", "--seed", 1, "--models", 4,
                                     "--no-attacks", "--no-progress", "--out", out),
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "is in use by process" in lines[0] and str(first.pid) in lines[0], lines
        assert "Traceback" not in second.stderr
        # nor may a --resume or a plain start of the same directory interleave with it
        third = subprocess.run(_cli("audit", "--data", data_file, "--model", f"fit:{slow_fit}:fit", "--model-param",
                                    "output=proba", "--models", 12, "--shard-size", 2, "--no-attacks",
                                    "--no-progress", "--out", out, "--resume"),
                               capture_output=True, text=True, timeout=300)
        assert third.returncode == 2 and "is in use by process" in third.stderr
    finally:
        stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["seed"] == 0 and s["n_models"] == 12
    man = json.loads((out / "manifest.json").read_text())
    assert man["config"]["seed"] == 0 and man["run_id"] == s["run_id"]
    for name in ("examples.csv", "pairs.csv", "report.html"):
        assert (out / name).is_file(), name
    assert len(list((out / "population" / "shards").glob("*.npz"))) == 6
    # the lock is released, with no record left in it
    assert not (out / LOCK_NAME).exists() or (out / LOCK_NAME).read_text() == ""


def test_lock_of_a_killed_process_is_taken_over(data_file, tmp_path, slow_fit):
    out = tmp_path / "run"
    first = _start(data_file, out, slow_fit)
    _wait_for(out / "population" / "shards" / "shard-00000.json")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == first.pid      # the dead holder's record
    env = {**os.environ, "MEMLENS_TEST_SLEEP": "0"}
    again = subprocess.run(_cli("audit", "--data", data_file, "--model", f"fit:{slow_fit}:fit", "--model-param",
                                "output=proba", "--models", 12, "--shard-size", 2, "--no-attacks", "--no-progress",
                                "--out", out, "--resume"), capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr
    assert "took over the lock" in again.stderr and str(first.pid) in again.stderr
    assert (out / "summary.json").is_file()


def test_sigterm_stops_like_sigint_and_the_run_resumes(data_file, tmp_path, slow_fit):
    out = tmp_path / "run"
    first = _start(data_file, out, slow_fit)
    _wait_for(out / "population" / "shards" / "shard-00000.json")
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert lines and "interrupted" in lines[-1] and "--resume" in lines[-1] and "Traceback" not in stderr
    assert not (out / LOCK_NAME).exists() or (out / LOCK_NAME).read_text() == ""
    env = {**os.environ, "MEMLENS_TEST_SLEEP": "0"}
    again = subprocess.run(_cli("audit", "--data", data_file, "--model", f"fit:{slow_fit}:fit", "--model-param",
                                "output=proba", "--models", 12, "--shard-size", 2, "--no-attacks", "--no-progress",
                                "--out", out, "--resume"), capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr
    assert "took over" not in again.stderr


def test_lock_is_released_however_a_python_run_ends(data_file, tmp_path):
    out = tmp_path / "run"
    ds = load_npz_dataset(data_file)
    with pytest.raises(MemlensInputError):          # refused after the lock was taken: the config is bad
        run_audit(dataset=ds, n_models=4, out=out, progress=False, attacks=False, model="logreg",
                  model_params={"C": -1.0})
    run_audit(dataset=ds, n_models=4, out=out, progress=False, attacks=False)
    lock = acquire_run_lock(out)      # nobody holds it any more
    lock.release()
    # a lock held in this process refuses the recipe, naming this process
    held = acquire_run_lock(out)
    try:
        with pytest.raises(MemlensInputError, match=f"in use by process {os.getpid()}"):
            run_audit(dataset=ds, n_models=4, out=out, progress=False, attacks=False, overwrite=True)
    finally:
        held.release()
    assert (out / "summary.json").is_file()
