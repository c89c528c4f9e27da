"""`memlens audit --external FOLDER`: signals and masks computed elsewhere give the same run outputs as a trained
audit (here: the signals of a trained audit, written in the external layout, give identical numbers)."""
import json

import numpy as np
import pytest

from memlens import MemlensInputError
from memlens.audits.image import run_audit
from memlens.cli import load_npz_dataset, main


@pytest.fixture(scope="module")
def trained(data_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    res = run_audit(dataset=load_npz_dataset(data_file), n_models=8, out=out, attack_targets=3, progress=False,
                    shard_size=4)
    return res


def _write_external(pop, folder, *, with_test=True):
    folder.mkdir()
    np.save(folder / "target_mask.npy", pop.masks[:2])
    np.save(folder / "reference_masks.npy", pop.masks[2:])
    for name in ("correct", "logit", "loss"):
        np.save(folder / f"target_{name}.npy", pop.signal("train", name)[:2])
        np.save(folder / f"reference_{name}.npy", pop.signal("train", name)[2:])
        if with_test:
            np.save(folder / f"test_target_{name}.npy", pop.signal("test", name)[:2])
            np.save(folder / f"test_reference_{name}.npy", pop.signal("test", name)[2:])
    np.save(folder / "labels.npy", pop.labels["train"])
    np.save(folder / "test_labels.npy", pop.labels["test"])
    return folder


def test_external_audit_reproduces_the_trained_audit(trained, tmp_path):
    folder = _write_external(trained.population, tmp_path / "ext")
    out = tmp_path / "run"
    assert main(["audit", "--external", str(folder), "--attack-targets", "3", "--shard-size", "3", "--out", str(out),
                 "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    t = trained.summary
    for key in ("n_memorized", "mean_memorization", "n_pairs", "train_accuracy", "test_accuracy"):
        assert s[key] == pytest.approx(t[key], abs=1e-12), key
    for name in ("lira-online", "rmia", "loss"):
        assert s["attacks"]["table"][name]["auc"]["mean"] == pytest.approx(t["attacks"]["table"][name]["auc"]["mean"])
    mine = np.genfromtxt(out / "examples.csv", delimiter=",", names=True)
    theirs = np.genfromtxt(trained.out / "examples.csv", delimiter=",", names=True)
    for col in ("memorization", "stderr", "n_in", "n_out", "lira_online_in"):
        np.testing.assert_array_equal(mine[col], theirs[col])
    assert (out / "pairs.csv").read_text() == (trained.out / "pairs.csv").read_text()
    assert (out / "report.html").exists() and s["model"] == "external" and s["n_shards"] == 3
    # resume reuses the shards; a changed file is another run, refused
    assert main(["audit", "--external", str(folder), "--attack-targets", "3", "--shard-size", "3", "--out", str(out),
                 "--resume", "--no-progress"]) == 0
    np.save(folder / "labels.npy", np.roll(trained.population.labels["train"], 1))
    assert main(["audit", "--external", str(folder), "--attack-targets", "3", "--shard-size", "3", "--out", str(out),
                 "--resume", "--no-progress"]) == 2


def test_external_audit_refuses_incomplete_folders_and_training_flags(trained, tmp_path, capsys):
    folder = _write_external(trained.population, tmp_path / "ext", with_test=False)
    assert main(["audit", "--external", str(folder), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--external" in err and "test_target_logits.npy" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
    assert main(["audit", "--external", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["audit", "--external", str(folder), "--model", "mlp", "--out", str(tmp_path / "r")]) == 2
    assert "--model describes training" in capsys.readouterr().err
    from memlens.audits.external import run_external_audit

    with pytest.raises(MemlensInputError, match="attack_targets"):
        run_external_audit(folder, attack_targets=0)


@pytest.mark.parametrize("damage", ["truncated", "pickled", "fifo", "huge header", "folder named .npy"])
def test_damaged_external_files_are_one_line_errors(trained, tmp_path, capsys, damage):
    """Every file of an external folder is checked before it is read: a regular file, no pickles, a declared size
    the file holds and memory can take (a FIFO would hang the reader, a huge header exhaust memory)."""
    import os

    pop = trained.population
    folder = tmp_path / "ext"
    _write_external(pop, folder)
    target = folder / "reference_logit.npy"
    if damage == "truncated":
        target.write_bytes(target.read_bytes()[:200])
    elif damage == "pickled":
        target.unlink()
        np.save(target, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif damage == "fifo":
        target.unlink()
        os.mkfifo(target)
    elif damage == "huge header":
        with open(target, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                                     "shape": (10**6, 10**6, 10)})
    else:
        target.unlink()
        target.mkdir()
    out = tmp_path / "run"
    assert main(["audit", "--external", str(folder), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("memlens: error:") and "reference_logit.npy" in err, err
    assert not out.exists()


def test_unused_special_file_in_the_folder_does_not_hang(trained, tmp_path, capsys):
    """A FIFO among the folder's .npy files that no signal needs is still never opened for reading."""
    import os

    folder = tmp_path / "ext"
    _write_external(trained.population, folder)
    os.mkfifo(folder / "notes.npy")
    assert main(["audit", "--external", str(folder), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "notes.npy" in err and "FIFO" in err and err.count("\n") == 0
