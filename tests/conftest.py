import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# the command line trains in worker processes by default; the tests run it in-process (faults are injected by
# monkeypatching) unless a test asks for --jobs
os.environ.setdefault("MEMLENS_JOBS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)


import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    """A small digits problem as a ``memlens audit --data`` file: 240 training and 80 test images."""
    from memlens.data import load_dataset

    d = load_dataset("digits")
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, X_train=d.X_train[:240], y_train=d.y_train[:240], X_test=d.X_test[:80], y_test=d.y_test[:80],
             image_shape=np.array([8, 8]))
    return path


@pytest.fixture()
def interrupt_second_shard(monkeypatch):
    """Make the second shard a run trains raise KeyboardInterrupt (Ctrl-C); returns ``restore()``, which puts the
    real ``memlens.train.train_population`` back."""
    import memlens.train

    real = memlens.train.train_population
    calls = []

    def interrupted(ds, **kw):
        calls.append(kw["model_offset"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(ds, **kw)

    monkeypatch.setattr(memlens.train, "train_population", interrupted)
    return lambda: monkeypatch.setattr(memlens.train, "train_population", real)
