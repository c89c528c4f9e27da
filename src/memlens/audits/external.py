"""The audit of models trained elsewhere: signals and masks computed by the user, the same run outputs as a trained
audit (``memlens audit --external FOLDER``).

The folder holds ``.npy`` files in the layout of :mod:`memlens.attacks.external` (masks of the target and reference
models, their logits or probabilities, the labels, and the same for a held-out test split). The recipe is the
image/tabular audit's on the one pipeline (:mod:`memlens.audits.pipeline`) with a shard job that *reads* each shard's
models from the folder instead of training them: the run directory, its identity (the SHA-256 of every file),
``--resume``, then Feldman–Zhang memorization and influence, the attacks and the ε audit, examples.csv,
pairs.csv, summary.json and report.html.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from .._io import check_regular_file, read_budget
from .._validation import MemlensInputError, check_int
from ..attacks.external import load_external
from ..data import Dataset
from ..population import Population
from . import pipeline
from .attacks import DEFAULT_ATTACK_TARGETS, check_lira_convention
from .image import AuditResult, measure_and_write

__all__ = ["run_external_audit", "EXTERNAL_FILES"]

#: The files a full external audit needs (besides ``reference_masks.npy``): membership of the target model(s), model
#: outputs on the training examples and on a held-out split (influence, RMIA's population), and the labels.
EXTERNAL_FILES = ("target_mask", "labels", "test_labels")


class _ExternalData:
    """What :class:`memlens.storage.RunDir` records of the data of an external run."""

    def __init__(self, ds: Dataset, digest: str):
        self.name, self.n_train, self.n_test = ds.name, ds.n_train, ds.n_test
        self.n_features, self.n_classes = 0, ds.n_classes
        self._digest = digest

    def fingerprint(self) -> str:
        return self._digest


def _digest(folder: Path) -> str:
    """SHA-256 over the names and bytes of every ``.npy`` file of the folder."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.npy")):
        check_regular_file(path, f"external: {path.name}", max_bytes=read_budget())  # a FIFO would hang the hash
        h.update(path.name.encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def read_shard(population: Population, *, masks, model_offset: int, progress=None) -> Population:
    """The shard job of an external run: rows ``model_offset ...`` of the population read from the folder."""
    rows = slice(model_offset, model_offset + masks.shape[0])
    if not np.array_equal(population.masks[rows], masks):
        raise MemlensInputError("the external population's masks changed while the run was read; start again",
                                param="external")
    signals = {split: {name: arr[rows] for name, arr in d.items()} for split, d in population.signals.items()}
    out = Population(masks, signals, population.seeds[rows], dict(population.labels),
                     {**population.provenance, "model_offset": model_offset, "n_models": int(masks.shape[0])})
    if progress is not None:
        progress(masks.shape[0])
    return out


@pipeline.holds_run_locks
def run_external_audit(folder, *, out="runs/external", resume: bool = False, overwrite: bool = False,
                       shard_size: int = 32, progress: bool = True, on_shard=None, attacks: bool = True,
                       attack_targets: int = DEFAULT_ATTACK_TARGETS, executor="local", ray_address: str | None = None,
                       ray_num_cpus: int | None = None, lira_convention: str = "memlens",
                       jobs: int | None = 1) -> AuditResult:
    """Audit models trained elsewhere: the outputs of :func:`memlens.audits.image.run_audit` from their signals.

    Parameters
    ----------
    folder : str or Path
        ``.npy`` files in the layout of :mod:`memlens.attacks.external`, with ``target_mask.npy``, outputs
        (``*_logits.npy`` or ``*_proba.npy``, or the signals ``*_correct.npy``, ``*_logit.npy`` and ``*_loss.npy``)
        on the training examples and on a test split (``test_*``), and ``labels.npy`` / ``test_labels.npy``. Rows: the target model(s), then the reference models; every model is
        attacked in turn by the first ``attack_targets``.
    out, resume, overwrite, shard_size, progress, on_shard, attacks, attack_targets, executor, ray_address,
    ray_num_cpus, lira_convention, jobs :
        As in :func:`memlens.audits.image.run_audit`.

    Returns
    -------
    AuditResult
    """
    t0 = time.perf_counter()
    opts = pipeline.check_run_options(out=out, resume=resume, overwrite=overwrite, shard_size=shard_size,
                                      progress=progress, on_shard=on_shard, executor=executor,
                                      ray_address=ray_address, ray_num_cpus=ray_num_cpus, jobs=jobs)
    attack_targets = check_int("attack_targets", attack_targets, min_value=1,
                               hint="(the number of target models to attack)")
    check_lira_convention(lira_convention)
    if not isinstance(folder, (str, Path)) or not Path(folder).is_dir():
        raise MemlensInputError(f"external must be a folder of .npy files (the layout of memlens.attacks.external); "
                                f"got {str(folder)!r}, which is not a folder", param="external")
    folder = Path(folder)
    present = {p.stem for p in folder.glob("*.npy")}
    missing = [f"{name}.npy" for name in EXTERNAL_FILES if name not in present]
    signals = ("correct", "logit", "loss")   # or the signals themselves, every one the audit reads
    outputs = any(f"target_{k}" in present for k in ("logits", "proba")) or \
        all(f"target_{s}" in present for s in signals)
    test_outputs = any(f"test_target_{k}" in present for k in ("logits", "proba")) or \
        all(f"test_target_{s}" in present for s in signals)
    if missing or not outputs or not test_outputs:
        need = missing + ([] if outputs else ["target_logits.npy (or target_proba.npy, or target_correct/logit/loss"
                                              ".npy)"]) + \
            ([] if test_outputs else ["test_target_logits.npy (or test_target_proba.npy, or "
                                      "test_target_correct/logit/loss.npy)"])
        raise MemlensInputError(f"external: the folder {str(folder)!r} lacks {', '.join(need)}; a full audit needs the "
                                "memberships, the model outputs on the training examples and on a test split, and "
                                "the labels (layout: memlens.attacks.external)", param="external")
    pop = load_external(folder)
    if pop.masks.shape[0] < 2:
        raise MemlensInputError(f"external: the folder holds {pop.masks.shape[0]} model; the audit needs at least 2 "
                                "(IN and OUT models for every example)", param="external")
    y, y_test = np.asarray(pop.labels["train"]), np.asarray(pop.labels["test"])
    n_classes = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    ds = Dataset(folder.name, np.zeros((y.size, 0), np.float32), y, np.zeros((y_test.size, 0), np.float32), y_test,
                 tuple(str(c) for c in range(n_classes)), None, f"signals computed elsewhere ({folder})")
    pipeline.check_target(opts)
    digest = _digest(folder)
    config = {"kind": "external-audit", "folder": str(folder.resolve()), "files_sha256": digest,
              "n_models": int(pop.masks.shape[0])}
    job = pipeline.ShardJob(read_shard, shared={"population": pop}, desc=f"reading {folder.name}")
    trained = pipeline.train_run(opts, config=config, data=_ExternalData(ds, digest), masks=pop.masks, job=job)
    record = pipeline.merge_provenance([p.provenance for p in trained.shards])
    pop = Population(trained.population.masks, trained.population.signals, trained.population.seeds,
                     dict(trained.population.labels), record)
    trained.run.save_population(pop)
    head = {"model": "external", "model_config": {"name": "external", "folder": str(folder.resolve())},
            "backend": "external", "n_models": int(pop.masks.shape[0]), "subset_ratio": float(pop.masks.mean()),
            "seed": None}
    return measure_and_write(opts, trained, pop, ds, head=head, tail={"trainer": record, "dp": None},
                             attacks=attacks, attack_targets=attack_targets, t0=t0, lira_convention=lira_convention)
