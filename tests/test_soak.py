"""Load: a run that trains and stores many small models in many shards keeps its memory flat, and every shard is
present exactly once and loadable (issue 7, part 5).

The slow soak trains 4,096 logistic-regression models on digits in 128 shards of 32 (``make test-all``); a fast
version trains 256 models in 16 shards of 16 and runs with the ordinary suite.

Memory is sampled after every shard is written (the audit's ``on_shard`` hook), while the training loop runs:

* ``tracemalloc``'s current traced size (Python objects and numpy arrays, which numpy reports to tracemalloc);
* the resident set size of the process now (``/proc/self/statm``; torch's allocations are not traced by
  tracemalloc but are resident).

Bound: after a warm-up of 2 shards (imports, allocator pools, the first blocks), neither may grow by more than
a constant that does not depend on the number of shards: ``max(2 x one shard's signal bytes, 2 MiB)`` for traced
memory and 48 MiB for RSS. Measured here (shared 2-core machine): 256 models / 16 shards, traced growth 0.04 MiB and
RSS growth 3.0 MiB; 4,096 models / 128 shards, traced growth 0.11 MiB, RSS growth 7.2 MiB, peak RSS 782 MiB, about
220 s with tracemalloc on. Keeping anything per shard
fails them: a loop that kept each shard's Population (the leak this guards against: a list of shards, a cache of
results) would grow traced memory by one shard's signals per shard — 32 models x 1,797 examples x 3 signals x 4
bytes = 0.7 MiB a shard, 88 MiB over the soak — and keeping even one signal of each shard grows it by 29 MiB.
"""
import os
import pathlib
import re
import resource
import tracemalloc
import warnings

import numpy as np
import pytest

from memlens import MemlensWarning, Population, RunDir
from memlens._random import model_seeds
from memlens.audits.image import audit_masks, run_audit
from memlens.data import load_dataset

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _pathlib_bytes() -> int:
    """Bytes traced to pathlib (its interned path components); the snapshot is dropped before returning, so it does
    not count in later samples."""
    snap = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, pathlib.__file__)])
    return sum(stat.size for stat in snap.statistics("filename"))


def _soak(out, *, n_models: int, shard_size: int, n_train: int | None = None, warmup: int = 2):
    ds = load_dataset("digits")
    if n_train is not None:
        ds = ds.subset(train_index=np.arange(n_train), name=f"digits-{n_train}")
    samples = []  # (shard index, traced bytes now, rss now)

    interned = {}

    def on_shard(k, n_done, n_shards):
        samples.append((k, tracemalloc.get_traced_memory()[0], _rss_now()))
        if k == warmup:
            interned["warm"] = _pathlib_bytes()

    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MemlensWarning)
            result = run_audit(dataset=ds, model="logreg", n_models=n_models, shard_size=shard_size, seed=5, out=out,
                               progress=False, attacks=False, on_shard=on_shard)
        interned["end"] = _pathlib_bytes()
    finally:
        tracemalloc.stop()
    n_shards = -(-n_models // shard_size)

    # every shard reported once, in order
    assert [k for k, _, _ in samples] == list(range(n_shards))

    # memory flat across shards after the warm-up
    shard_bytes = shard_size * (ds.n_train + ds.n_test) * 3 * 4
    traced = np.array([t for _, t, _ in samples], dtype=np.int64)
    rss = np.array([r for _, _, r in samples], dtype=np.int64)
    # Python interns every path component (pathlib: sys.intern); when its table of interned strings fills up it is
    # reallocated in one block (7.7 MB in the full slow suite's process, whose table is large by then): the
    # interpreter's, not a leak of the run, so it is left out of the growth.
    traced_growth = int(traced[warmup:].max() - traced[warmup]) - max(0, interned["end"] - interned["warm"])
    rss_growth = int(rss[warmup:].max() - rss[warmup])
    assert traced_growth <= max(2 * shard_bytes, 2 * 2**20), (traced_growth, traced.tolist())
    assert rss_growth <= 48 * 2**20, (rss_growth, rss.tolist())

    # every shard present exactly once, intact and loadable; nothing half-written left behind
    shard_dir = out / "population" / "shards"
    names = sorted(p.name for p in shard_dir.iterdir())
    assert names == sorted([f"shard-{k:05d}.npz" for k in range(n_shards)]
                           + [f"shard-{k:05d}.json" for k in range(n_shards)])
    assert not [n for n in names if re.search(r"\.tmp$|^\.", n)]
    run = RunDir.open(out)
    assert run.n_shards == n_shards and run.missing_shards() == []
    seeds = []
    for k in range(n_shards):
        pop = run.load_shard(k)
        start, stop = run.shard_rows(k)
        assert pop.n_models == stop - start
        np.testing.assert_array_equal(pop.masks, run.masks[start:stop])
        seeds.append(pop.seeds)
    # every model exactly once, in order: the seeds are the run's per-model seeds, the masks the audit's
    np.testing.assert_array_equal(np.concatenate(seeds), model_seeds(5, n_models))
    np.testing.assert_array_equal(run.masks, audit_masks(n_models, ds.n_train, subset_ratio=0.7, seed=5))
    saved = Population.load(out / "population")
    assert saved.n_models == n_models and len(np.unique(saved.seeds)) == n_models
    assert result.summary["shards_trained"] == n_shards and result.summary["n_models"] == n_models
    # the models learned something (a broken shard would show as chance accuracy)
    assert result.summary["test_accuracy"] > 0.8
    return traced_growth, rss_growth, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def test_soak_256_models_16_shards(tmp_path):
    _soak(tmp_path / "run", n_models=256, shard_size=16, n_train=300)


@pytest.mark.slow
def test_soak_4096_models_128_shards(tmp_path):
    _soak(tmp_path / "run", n_models=4096, shard_size=32)
