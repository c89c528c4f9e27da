"""Run directories: creation, refusal, shard verification, resume checks, round trips (no training needed)."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from memlens import MemlensInputError, Population
from memlens.data import from_arrays, make_masks
from memlens.storage.runs import RunDir, run_identity


def _dataset(n_train=40, n_test=10, d=5, seed=0, name="toy"):
    rng = np.random.default_rng(seed)
    return from_arrays(rng.normal(size=(n_train, d)), rng.integers(0, 3, n_train), rng.normal(size=(n_test, d)),
                       rng.integers(0, 3, n_test), name=name)


def _shard_pop(masks, start, stop, ds, seed=0):
    """A synthetic population for model rows [start, stop): signals depend on the global row index only."""
    rows = np.arange(start, stop)
    rng = np.random.default_rng([seed] + rows.tolist())
    k = stop - start
    sig = {"train": {"correct": (rng.random((k, ds.n_train)) < 0.8).astype(np.float32),
                     "logit": rng.normal(size=(k, ds.n_train))},
           "test": {"correct": (rng.random((k, ds.n_test)) < 0.7).astype(np.float32),
                    "logit": rng.normal(size=(k, ds.n_test))}}
    return Population(masks[start:stop], sig, seeds=rows, labels={"train": ds.y_train, "test": ds.y_test},
                      provenance={"dataset": ds.name})


CONFIG = {"dataset": "toy", "model": "logreg", "n_models": 10, "subset_ratio": 0.7, "seed": 0}


def _hashes(path: Path) -> dict:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def setup(tmp_path):
    ds = _dataset()
    masks = make_masks(10, ds.n_train, p=0.7, seed=1)
    return tmp_path / "run", ds, masks


def test_create_layout_and_manifest(setup):
    path, ds, masks = setup
    run = RunDir.create(path, CONFIG, ds, masks, shard_size=4)
    assert (path / "manifest.json").is_file() and (path / "masks.npy").is_file()
    man = json.loads((path / "manifest.json").read_text())
    assert man["format"] == "memlens-run/1"
    assert man["n_shards"] == 3 and man["shard_size"] == 4 and man["n_models"] == 10
    assert man["dataset"]["fingerprint"] == ds.fingerprint()
    assert man["config"] == CONFIG and man["seed"] == 0
    assert "numpy" in man["versions"] and "memlens" in man["versions"]
    assert man["run_id"] == run_identity(ds.fingerprint(), {**CONFIG, "shard_size": 4}, masks)
    np.testing.assert_array_equal(np.load(path / "masks.npy", allow_pickle=False), masks)
    assert [run.shard_rows(k) for k in range(3)] == [(0, 4), (4, 8), (8, 10)]
    assert run.missing_shards() == [0, 1, 2]


def test_identity_changes_with_every_input(setup):
    _, ds, masks = setup
    base = run_identity(ds.fingerprint(), CONFIG, masks)
    assert run_identity(ds.fingerprint(), {**CONFIG, "seed": 1}, masks) != base
    other = masks.copy()
    other[0, 0] = ~other[0, 0]
    assert run_identity(ds.fingerprint(), CONFIG, other) != base
    assert run_identity(_dataset(seed=5).fingerprint(), CONFIG, masks) != base
    # key order does not matter (canonical JSON)
    assert run_identity(ds.fingerprint(), dict(reversed(list(CONFIG.items()))), masks) == base


def test_write_load_round_trip(setup):
    path, ds, masks = setup
    run = RunDir.create(path, CONFIG, ds, masks, shard_size=4)
    pops = [_shard_pop(masks, *run.shard_rows(k), ds) for k in range(run.n_shards)]
    for k, pop in enumerate(pops):
        run.write_shard(k, pop)
    assert run.missing_shards() == []
    full = RunDir.open(path).load_population()
    ref = Population.concat(pops)
    np.testing.assert_array_equal(full.masks, masks)
    np.testing.assert_array_equal(full.seeds, np.arange(10))
    for split in ("train", "test"):
        for name in ("correct", "logit"):
            np.testing.assert_array_equal(full.signal(split, name), ref.signal(split, name))
    np.testing.assert_array_equal(full.labels["test"], ds.y_test)


def test_write_shard_rejects_wrong_rows(setup):
    path, ds, masks = setup
    run = RunDir.create(path, CONFIG, ds, masks, shard_size=4)
    with pytest.raises(MemlensInputError, match="shard 1"):
        run.write_shard(1, _shard_pop(masks, 0, 4, ds))  # rows 0..3 written as shard 1
    assert run.missing_shards() == [0, 1, 2]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_record", "delete_npz", "foreign"])
def test_damaged_shard_is_detected_never_half_read(setup, damage):
    path, ds, masks = setup
    run = RunDir.create(path, CONFIG, ds, masks, shard_size=4)
    for k in range(run.n_shards):
        run.write_shard(k, _shard_pop(masks, *run.shard_rows(k), ds))
    f = run.shard_path(1)
    data = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # one flipped byte anywhere (here: inside a local zip header, which no CRC covers)
        b = bytearray(data)
        b[40] ^= 0x01
        f.write_bytes(bytes(b))
    elif damage == "delete_record":  # the .npz landed but the run was killed before its record
        f.with_suffix(".json").unlink()
    elif damage == "delete_npz":
        f.unlink()
    elif damage == "foreign":  # a shard of another run copied in, record and all
        other = RunDir.create(path.parent / "other", {**CONFIG, "seed": 9}, ds, masks, shard_size=4)
        other.write_shard(1, _shard_pop(masks, 4, 8, ds, seed=9))
        f.write_bytes(other.shard_path(1).read_bytes())
        f.with_suffix(".json").write_bytes(other.shard_path(1).with_suffix(".json").read_bytes())
    assert run.missing_shards() == [1]
    with pytest.raises(MemlensInputError, match="shard 1"):
        run.load_shard(1)
    with pytest.raises(MemlensInputError, match="missing or damaged"):
        run.load_population()


def test_existing_run_refused_without_overwrite_and_untouched(setup):
    path, ds, masks = setup
    run = RunDir.create(path, CONFIG, ds, masks, shard_size=4)
    run.write_shard(0, _shard_pop(masks, 0, 4, ds))
    before = _hashes(path)
    with pytest.raises(MemlensInputError, match="already holds a memlens run.*--resume.*--overwrite"):
        RunDir.create(path, CONFIG, ds, masks, shard_size=4)
    assert _hashes(path) == before


def test_overwrite_replaces_run_but_keeps_foreign_files(setup):
    path, ds, masks = setup
    run = RunDir.create(path, CONFIG, ds, masks, shard_size=4)
    run.write_shard(0, _shard_pop(masks, 0, 4, ds))
    (path / "notes.txt").write_text("mine")
    new = RunDir.create(path, {**CONFIG, "seed": 3}, ds, masks, shard_size=4, overwrite=True)
    assert new.run_id != run.run_id
    assert new.missing_shards() == [0, 1, 2]
    assert (path / "notes.txt").read_text() == "mine"


def test_foreign_directory_refused_even_with_overwrite(setup):
    path, ds, masks = setup
    path.mkdir()
    (path / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(MemlensInputError, match="foreign output directory"):
            RunDir.create(path, CONFIG, ds, masks, overwrite=overwrite)
    with pytest.raises(MemlensInputError, match="foreign output directory"):
        RunDir.open_for_resume(path, CONFIG, ds, masks)
    assert sorted(p.name for p in path.iterdir()) == ["thesis.tex"]
    assert (path / "thesis.tex").read_text() == "precious"


def test_out_is_a_file_or_under_a_file(tmp_path, setup):
    _, ds, masks = setup
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(MemlensInputError, match="out must be a folder"):
        RunDir.create(f, CONFIG, ds, masks)
    with pytest.raises(MemlensInputError, match="is a file, not a folder"):
        RunDir.create(f / "sub", CONFIG, ds, masks)
    assert f.read_text() == "x"


def test_empty_directory_is_accepted(setup):
    path, ds, masks = setup
    path.mkdir()
    RunDir.create(path, CONFIG, ds, masks)
    assert (path / "manifest.json").exists()


def test_resume_accepts_same_and_says_what_differs(setup):
    path, ds, masks = setup
    run = RunDir.create(path, CONFIG, ds, masks, shard_size=4)
    run.write_shard(0, _shard_pop(masks, 0, 4, ds))
    before = _hashes(path)
    again = RunDir.open_for_resume(path, dict(CONFIG), ds, masks, shard_size=4)
    assert again.run_id == run.run_id and again.missing_shards() == [1, 2]
    assert _hashes(path) == before
    stale = path / "population" / "shards" / ".shard-00001.npz.abc123.tmp"  # a write cut short by a kill
    stale.write_bytes(b"half")
    RunDir.open_for_resume(path, dict(CONFIG), ds, masks, shard_size=4)
    assert not stale.exists()
    with pytest.raises(MemlensInputError, match=r"\n  - seed is 0 in the run, 1 now"):
        RunDir.open_for_resume(path, {**CONFIG, "seed": 1}, ds, masks, shard_size=4)
    with pytest.raises(MemlensInputError, match=r"model is 'logreg' in the run, 'mlp' now"):
        RunDir.open_for_resume(path, {**CONFIG, "model": "mlp"}, ds, masks, shard_size=4)
    other = _dataset(seed=7)
    with pytest.raises(MemlensInputError, match="dataset differs"):
        RunDir.open_for_resume(path, CONFIG, other, masks, shard_size=4)
    flipped = masks.copy()
    flipped[3, 3] = ~flipped[3, 3]
    with pytest.raises(MemlensInputError, match="masks differ"):
        RunDir.open_for_resume(path, CONFIG, ds, flipped, shard_size=4)
    with pytest.raises(MemlensInputError, match="shard_size is 4 in the run, 5 now"):
        RunDir.open_for_resume(path, CONFIG, ds, masks, shard_size=5)
    assert _hashes(path) == before


def test_resume_without_a_run(tmp_path, setup):
    _, ds, masks = setup
    with pytest.raises(MemlensInputError, match="no memlens run .* to resume"):
        RunDir.open_for_resume(tmp_path / "nothing", CONFIG, ds, masks)
    assert not (tmp_path / "nothing").exists()


def test_resume_restores_deleted_masks_file(setup):
    path, ds, masks = setup
    RunDir.create(path, CONFIG, ds, masks, shard_size=4)
    (path / "masks.npy").unlink()
    with pytest.raises(MemlensInputError, match="damaged"):
        RunDir.open(path)
    RunDir.open_for_resume(path, CONFIG, ds, masks, shard_size=4)
    np.testing.assert_array_equal(RunDir.open(path).masks, masks)


def test_manifest_with_other_format_is_foreign(setup):
    path, ds, masks = setup
    path.mkdir()
    (path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(MemlensInputError, match="foreign output directory"):
        RunDir.create(path, CONFIG, ds, masks, overwrite=True)
    assert json.loads((path / "manifest.json").read_text()) == {"format": "something-else"}
