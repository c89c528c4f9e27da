"""Run directories: resumable, verifiable storage for a population trained shard by shard (docs/architecture.md, "Storage").

Layout of a run directory ``DIR``::

    DIR/manifest.json                       config, dataset fingerprint, seed, versions, run identity
    DIR/masks.npy                           bool (n_models, n_train): which model trains on which example
    DIR/population/shards/shard-00000.npz   a Population of model rows [0, shard_size), ...
    DIR/population/shards/shard-00000.json  its SHA-256, row range and run identity, written after the .npz
    DIR/...                                 results (written by the audit: examples.csv, summary.json, ...)

The run identity is the SHA-256 of the dataset fingerprint, the full configuration (canonical JSON, shard size
included) and the mask bytes, so a changed config, dataset or mask never reuses stale shards. Every file is
written atomically (temporary file, fsync, rename), the manifest first. A shard counts as finished only when its
``.npz`` and its ``.json`` record both exist and the bytes hash to the recorded SHA-256; anything else (a truncated
or corrupted file, a shard of another run) is reported by :meth:`RunDir.missing_shards` and retrained on resume,
never half-read. A write that fails for lack of space or permission (full disk, read-only file system) raises
:class:`RunStorageError`, which says so; what was finished before stays readable.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .._io import atomic_write_bytes, canonical_json, to_jsonable
from .._validation import MemlensInputError, check_int, check_masks, warn
from ..population import Population
from .lock import LOCK_NAME

__all__ = ["RunDir", "run_identity", "package_versions", "RUN_FORMAT", "RunStorageError", "check_owned_paths"]

RUN_FORMAT = "memlens-run/1"
MANIFEST = "manifest.json"
MASKS = "masks.npy"
SHARDS = Path("population") / "shards"
#: Files and folders a run owns; ``--overwrite`` removes these and nothing else.
RESULT_FILES = ("examples.csv", "pairs.csv", "summary.json", "report.html")
_OWNED = (MANIFEST, MASKS, "population") + RESULT_FILES


# ---------------------------------------------------------------------------------------------- helpers
_canonical_json = canonical_json


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _masks_sha256(masks: np.ndarray) -> str:
    masks = np.ascontiguousarray(masks, dtype=bool)
    return _sha256(str(masks.shape).encode() + masks.tobytes())


def run_identity(fingerprint: str, config: Mapping[str, Any], masks: np.ndarray) -> str:
    """SHA-256 of the dataset fingerprint, the canonical JSON of ``config`` and the mask matrix."""
    h = hashlib.sha256(fingerprint.encode())
    h.update(_canonical_json(dict(config)))
    h.update(_masks_sha256(masks).encode())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of memlens, Python and the numerical packages a run depends on."""
    out = {"python": platform.python_version()}
    for pkg in ("memlens", "numpy", "scipy", "scikit-learn", "torch", "matplotlib", "opacus", "ray"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _is_temp_of(p: Path, names) -> bool:
    """True for a temporary file of :func:`atomic_write_bytes` writing one of ``names`` (``.NAME.XXXX.tmp``)."""
    return p.is_file() and p.name.endswith(".tmp") and any(p.name.startswith(f".{n}.") for n in names)


def _interrupted_start(path: Path) -> list[Path] | None:
    """The leftovers of a :meth:`RunDir.create` killed before its manifest landed, or None if ``path`` holds
    anything else (an empty folder gives ``[]``).

    ``create`` writes the manifest first, so a folder without one can only hold the temporary file of the
    manifest's write; it is then treated as empty.
    """
    if not path.is_dir():
        return None
    entries = [p for p in path.iterdir() if p.name != LOCK_NAME]     # the run's own lock (storage.lock)
    if all(_is_temp_of(p, (MANIFEST,)) for p in entries):
        return entries
    return None


class RunStorageError(OSError):
    """The run directory could not be written (disk full, read-only file system, permission denied).

    Raised with a message that names the file, the cause and the fix. Every shard finished before the failure
    stays readable, and no half-written file is ever read: writes are atomic (temporary file, fsync, rename),
    and a failed write removes its temporary file.
    """


_STORAGE_CAUSES = {
    errno.ENOSPC: ("no space left on device (the disk is full)", "free disk space or choose an --out directory on "
                   "another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota"),
    errno.EROFS: ("the file system is read-only", "make it writable"),
    errno.EACCES: ("permission denied", "fix the directory's permissions"),
    errno.EPERM: ("operation not permitted", "fix the directory's permissions"),
    errno.EFBIG: ("file too large for the file system", "choose an --out directory on another file system"),
    errno.EIO: ("input/output error of the storage device", "check the disk"),
}


@contextlib.contextmanager
def storage_errors(run_path: Path, what: str, *, resumable: bool = True):
    """Turn an :class:`OSError` of storage (full, read-only, forbidden) while writing ``what`` into a
    :class:`RunStorageError` that says so and how to continue (``resumable=False``: before the run's manifest
    exists, when there is nothing to resume)."""
    try:
        yield
    except RunStorageError:
        raise
    except OSError as exc:
        cause, fix = _STORAGE_CAUSES.get(exc.errno, (exc.strerror or type(exc).__name__,
                                                     "check the run directory and its files"))
        then = ("shards finished before are kept and readable: " + fix + ", then continue the run with --resume"
                if resumable else fix + ", then start the run again")
        err = RunStorageError(f"could not write {what} in the run directory {str(run_path)!r}: {cause}; {then}")
        err.errno = exc.errno
        raise err from exc


def read_manifest(path: Path) -> dict | None:
    """The manifest of a run at ``path``; None when ``path`` holds no manifest.json."""
    f = path / MANIFEST
    if not f.is_file():
        return None
    try:
        manifest = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise MemlensInputError(f"out: {f} is unreadable ({exc}); it is not a usable memlens run: choose "
                                "another --out directory") from None
    if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
        raise MemlensInputError(f"out: foreign output directory {path}: its manifest.json is not a memlens run "
                                f"manifest (format {RUN_FORMAT}); choose an empty or new --out directory")
    bad = [key for key, kind in _MANIFEST_FIELDS.items() if not isinstance(manifest.get(key), kind)
           or (kind is int and isinstance(manifest.get(key), bool))]
    dataset = manifest.get("dataset")
    if isinstance(dataset, dict) and not isinstance(dataset.get("fingerprint"), str):
        bad.append("dataset.fingerprint")
    if bad:
        raise MemlensInputError(f"out: {f} is damaged (field(s) {', '.join(bad)} missing or of the wrong type); it is "
                                "not a usable memlens run: start it again with --overwrite or choose another --out "
                                "directory")
    return manifest


#: Fields every run manifest holds, and their JSON types (checked before any of them is used).
_MANIFEST_FIELDS = {"run_id": str, "config": dict, "dataset": dict, "n_models": int, "shard_size": int,
                    "n_shards": int, "masks_sha256": str}


def check_writable(path: Path) -> None:
    """Raise unless ``path`` (or, if it does not exist yet, its nearest existing parent) is a writable folder.

    Writability is tested by creating and removing a temporary file, which also catches read-only file
    systems where :func:`os.access` would say yes.
    """
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise MemlensInputError(f"out must be a folder that can be created; got {str(path)!r}, but {probe} is a "
                                "file, not a folder: choose another --out directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".memlens-write-test.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise MemlensInputError(f"out must be a writable folder; got {str(path)!r} ({probe} is not writable: "
                                f"{exc.strerror or exc}); choose another --out directory or fix its "
                                "permissions") from None


def check_owned_paths(path: Path, extra=()) -> None:
    """Refuse, before any work and before anything is deleted, a run directory whose own paths are not what a run
    writes there: a symbolic link, a folder where a file goes (``examples.csv/``), a file where a folder goes."""
    path = Path(path)
    if not path.is_dir():
        return
    folders = ("population", str(SHARDS))
    for name in tuple(_OWNED) + tuple(extra) + (str(SHARDS),):
        p = path / name
        if p.is_symlink():
            raise MemlensInputError(f"out: {str(p)!r} is a symbolic link, which a memlens run never creates (a run "
                                    "replaces its own files and would write through it); remove the link or choose "
                                    "another --out directory", param="out")
        if not p.exists():
            continue
        if name in folders and not p.is_dir():
            raise MemlensInputError(f"out: {str(p)!r} must be a folder of the run; it is a file: remove it or choose "
                                    "another --out directory", param="out")
        if name not in folders and not p.is_file():
            raise MemlensInputError(f"out: {str(p)!r} must be a file of the run; it is a folder or a special file: "
                                    "remove it or choose another --out directory", param="out")


def _describe_config_diff(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += _describe_config_diff(a, b, f"{prefix}{key}.")
        elif _canonical_json(a) != _canonical_json(b):
            diffs.append(f"{prefix}{key} is {a!r} in the run, {b!r} now")
    return diffs


def _warn_versions(recorded) -> None:
    """Warn when a resumed run's packages differ from the versions its manifest records."""
    if not isinstance(recorded, Mapping):
        return
    now = package_versions()
    diffs = [f"{k} {recorded[k]} in the run, {now[k]} now" for k in sorted(set(recorded) & set(now))
             if recorded[k] != now[k]]
    if diffs:
        warn("resuming a run whose shards were trained with other package versions (" + "; ".join(diffs)
             + "); reused shards may differ slightly from shards trained now", stacklevel=4)


# ---------------------------------------------------------------------------------------------- RunDir
@dataclass(frozen=True)
class RunDir:
    """A run directory holding a population trained in shards of contiguous model rows.

    Use :meth:`create` to start a run, :meth:`open_for_resume` to continue one (it refuses a directory whose
    config, dataset or masks differ), and :meth:`open` to read a finished one.

    Attributes
    ----------
    path : Path
    manifest : dict
        The parsed ``manifest.json``: ``format``, ``run_id``, ``config``, ``dataset`` (name, fingerprint,
        sizes), ``seed``, ``n_models``, ``shard_size``, ``n_shards``, ``masks_sha256``, ``versions``.
    masks : ndarray of bool, shape (n_models, n_train)
    """

    path: Path
    manifest: Mapping[str, Any]
    masks: np.ndarray

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path, config: Mapping[str, Any], dataset, masks, *, shard_size: int = 32,
               overwrite: bool = False) -> "RunDir":
        """Start a new run at ``path``.

        Parameters
        ----------
        path : str or Path
            A new or empty folder; with ``overwrite=True`` also a folder holding a memlens run, whose files are
            replaced (files that the run does not own are left alone).
        config : mapping
            JSON-serializable description of everything that determines the population (dataset name, model
            config, number of models, subset ratio, seed, ...). It is part of the run identity.
        dataset : memlens.data.Dataset
        masks : ndarray of bool, shape (n_models, n_train)
        shard_size : int
            Models per shard file; the last shard may be smaller.
        overwrite : bool

        Raises
        ------
        MemlensInputError
            If ``path`` is a file, not writable, a non-empty folder that is not a memlens run ("foreign output
            directory"), or an existing run without ``overwrite``. Nothing is written or removed in that case.
        """
        path = Path(path)
        masks = check_masks("masks", masks, n_examples=dataset.n_train, min_models=1)
        shard_size = check_int("shard_size", shard_size, min_value=1)
        config = json.loads(_canonical_json(dict(config)))  # JSON round trip: what the manifest will hold
        existing = cls._check_target(path, overwrite=overwrite)
        check_writable(path)
        if existing is not None:  # overwrite: remove what the old run owns, then write the new manifest over it
            for name in _OWNED:
                if name == MANIFEST:
                    continue
                target = path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        with storage_errors(path, "the run's folders", resumable=False):
            path.mkdir(parents=True, exist_ok=True)
            for leftover in _interrupted_start(path) or []:  # the temporary manifest of a start cut short
                leftover.unlink(missing_ok=True)
        n_models = masks.shape[0]
        manifest = {
            "format": RUN_FORMAT,
            "run_id": run_identity(dataset.fingerprint(), {**config, "shard_size": shard_size}, masks),
            "config": config,
            "dataset": {"name": dataset.name, "fingerprint": dataset.fingerprint(), "n_train": dataset.n_train,
                        "n_test": dataset.n_test, "n_features": dataset.n_features,
                        "n_classes": dataset.n_classes},
            "seed": config.get("seed"),
            "n_models": int(n_models),
            "shard_size": shard_size,
            "n_shards": -(-n_models // shard_size),
            "masks_sha256": _masks_sha256(masks),
            "versions": package_versions(),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        # The manifest first: a folder holding one is a run that --resume continues (restoring masks.npy from the
        # masks it is given and checks against masks_sha256); a start killed before it leaves a folder that
        # counts as empty.
        with storage_errors(path, MANIFEST, resumable=False):
            atomic_write_bytes(path / MANIFEST, json.dumps(manifest, indent=2).encode())
        buf = io.BytesIO()
        np.save(buf, masks, allow_pickle=False)
        with storage_errors(path, MASKS):
            atomic_write_bytes(path / MASKS, buf.getvalue())
            (path / SHARDS).mkdir(parents=True, exist_ok=True)
        return cls(path, manifest, masks)

    @staticmethod
    def _check_target(path: Path, *, overwrite: bool) -> dict | None:
        """Refuse a file, a foreign folder, or an existing run without ``overwrite``; return its manifest."""
        if path.exists() and not path.is_dir():
            raise MemlensInputError(f"out must be a folder; got {str(path)!r}, which is a file: choose another "
                                    "--out directory")
        check_owned_paths(path)
        if not path.exists() or _interrupted_start(path) is not None:
            return None
        manifest = read_manifest(path)
        if manifest is None:
            raise MemlensInputError(f"out: foreign output directory {str(path)!r}: it is not empty and holds no "
                                    "memlens run (no manifest.json); choose an empty or new --out directory")
        if not overwrite:
            raise MemlensInputError(f"out: {str(path)!r} already holds a memlens run (run id "
                                    f"{manifest.get('run_id', '?')[:12]}); pass --resume to continue it or "
                                    "--overwrite to replace it, or choose a new --out directory")
        return manifest

    @classmethod
    def check_new(cls, path, *, overwrite: bool = False) -> None:
        """Raise :class:`MemlensInputError` if :meth:`create` would refuse ``path``; writes nothing."""
        path = Path(path)
        cls._check_target(path, overwrite=overwrite)
        check_writable(path)

    @staticmethod
    def check_resumable(path) -> None:
        """Raise :class:`MemlensInputError` unless ``path`` holds a memlens run to resume; writes nothing."""
        path = Path(path)
        if not path.is_dir() or read_manifest(path) is None:
            if path.is_dir() and _interrupted_start(path) is None:
                raise MemlensInputError(f"out: foreign output directory {str(path)!r}: it holds no memlens run to "
                                        "resume (no manifest.json); choose the run's --out directory")
            raise MemlensInputError(f"out: no memlens run at {str(path)!r} to resume; drop --resume to start "
                                    "a new run there")

    @classmethod
    def open(cls, path) -> "RunDir":
        """Open an existing run for reading (no comparison with a config)."""
        path = Path(path)
        manifest = read_manifest(path) if path.is_dir() else None
        if manifest is None:
            raise MemlensInputError(f"out: no memlens run at {str(path)!r} (no manifest.json); start one "
                                    "without --resume")
        masks = cls._load_masks(path, manifest)
        if masks is None:
            raise MemlensInputError(f"{path / MASKS} is missing or does not match manifest.json (masks_sha256); "
                                    "the run is damaged: start it again with --overwrite")
        return cls(path, manifest, masks)

    @classmethod
    def open_for_resume(cls, path, config: Mapping[str, Any], dataset, masks, *,
                        shard_size: int = 32) -> "RunDir":
        """Open the run at ``path`` to continue it with the same ``config``, ``dataset`` and ``masks``.

        Raises
        ------
        MemlensInputError
            If there is no run at ``path``, or its configuration, dataset, masks or shard size differ from the
            ones given; the message says what differs. Nothing is written in that case.
        """
        path = Path(path)
        masks = check_masks("masks", masks, n_examples=dataset.n_train, min_models=1)
        cls.check_resumable(path)
        manifest = read_manifest(path)
        check_owned_paths(path)
        config = json.loads(_canonical_json(dict(config)))
        diffs = []
        if manifest["dataset"]["fingerprint"] != dataset.fingerprint():
            old = manifest["dataset"]
            diffs.append(f"dataset differs ({old['name']!r}, {old['n_train']} training examples, fingerprint "
                         f"{old['fingerprint'][:12]} in the run; {dataset.name!r}, {dataset.n_train} training "
                         f"examples, fingerprint {dataset.fingerprint()[:12]} now)")
        cdiff = _describe_config_diff(manifest["config"], config)
        if cdiff:
            diffs.append("config differs (" + "; ".join(cdiff) + ")")
        if manifest["shard_size"] != shard_size:
            diffs.append(f"shard_size is {manifest['shard_size']} in the run, {shard_size} now")
        if manifest["masks_sha256"] != _masks_sha256(masks) and not diffs:  # else implied by the config
            diffs.append("the training-subset masks differ")
        new_id = run_identity(dataset.fingerprint(), {**config, "shard_size": shard_size}, masks)
        if manifest.get("run_id") != new_id:
            diffs.append(f"run identity {str(manifest.get('run_id'))[:12]} in the run, {new_id[:12]} now"
                         + ("" if diffs else " (manifest.json was edited, or written by another memlens version)"))
        if diffs:
            # one setting per line (a changed model configuration lists each of its fields)
            items = [d for d in diffs if not d.startswith(("config differs", "run identity"))] + cdiff
            items = items or diffs   # the identity alone differs: say so
            raise MemlensInputError(f"--resume refused for {str(path)!r}: {len(items)} setting(s) differ from the "
                                    "run's; resume with the run's settings (`memlens audit --resume --out DIR` "
                                    "alone takes them from its manifest), or use --overwrite or a new --out "
                                    "directory to start a new run:" + "".join(f"\n  - {d}" for d in items))
        check_writable(path)
        _warn_versions(manifest.get("versions"))
        on_disk = cls._load_masks(path, manifest)
        with storage_errors(path, MASKS):
            if on_disk is None:  # missing or damaged masks.npy: the given masks match the manifest, so restore it
                buf = io.BytesIO()
                np.save(buf, masks, allow_pickle=False)
                atomic_write_bytes(path / MASKS, buf.getvalue())
            (path / SHARDS).mkdir(parents=True, exist_ok=True)
        # temporary files of writes cut short by a kill (shards, results, the saved population)
        for folder, names in ((path / SHARDS, ("shard-", "shared-")), (path, _OWNED), (path / "population", ("population",))):
            for stale in folder.glob(".*.tmp"):
                if any(stale.name.startswith(f".{n}") for n in names):
                    stale.unlink(missing_ok=True)
        return cls(path, manifest, masks)

    @staticmethod
    def _load_masks(path: Path, manifest: Mapping) -> np.ndarray | None:
        try:
            masks = np.load(path / MASKS, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if masks.dtype != bool or _masks_sha256(masks) != manifest.get("masks_sha256"):
            return None
        return masks

    # ------------------------------------------------------------------ shards
    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def n_models(self) -> int:
        return int(self.manifest["n_models"])

    @property
    def shard_size(self) -> int:
        return int(self.manifest["shard_size"])

    @property
    def n_shards(self) -> int:
        return int(self.manifest["n_shards"])

    def shard_rows(self, k: int) -> tuple[int, int]:
        """``(start, stop)``: the model rows of shard ``k``."""
        k = check_int("k", k, min_value=0, max_value=self.n_shards - 1)
        return k * self.shard_size, min((k + 1) * self.shard_size, self.n_models)

    def shard_path(self, k: int) -> Path:
        return self.path / SHARDS / f"shard-{k:05d}.npz"

    def _record_path(self, k: int) -> Path:
        return self.path / SHARDS / f"shard-{k:05d}.json"

    def _read_shard_bytes(self, k: int) -> bytes | None:
        """The verified bytes of shard ``k``, or None if it is absent, incomplete, corrupted or foreign."""
        try:
            record = json.loads(self._record_path(k).read_text())
            data = self.shard_path(k).read_bytes()
        except (OSError, ValueError):
            return None
        start, stop = self.shard_rows(k)
        if (not isinstance(record, dict) or record.get("sha256") != _sha256(data)
                or record.get("run_id") != self.run_id or record.get("rows") != [start, stop]):
            return None
        return data

    def _decode_shard(self, k: int, data: bytes) -> Population | None:
        try:
            pop = Population.from_npz(io.BytesIO(data))
        except Exception:  # noqa: BLE001 - any failure to parse means the shard must be retrained
            return None
        start, stop = self.shard_rows(k)
        if pop.masks.shape != (stop - start, self.masks.shape[1]) or not np.array_equal(pop.masks,
                                                                                        self.masks[start:stop]):
            return None
        return pop

    def has_shard(self, k: int) -> bool:
        """True when shard ``k`` is finished and intact (hash, run identity, row range and masks checked)."""
        data = self._read_shard_bytes(k)
        return data is not None and self._decode_shard(k, data) is not None

    def missing_shards(self) -> list[int]:
        """Indices of shards not yet written, or whose files are truncated, corrupted or from another run."""
        return [k for k in range(self.n_shards) if not self.has_shard(k)]

    def write_shard(self, k: int, pop: Population) -> Path:
        """Write shard ``k`` atomically: the ``.npz`` first, then its record with the SHA-256 of its bytes.

        ``pop`` must hold exactly the models of rows :meth:`shard_rows` ``(k)``, with the run's masks.
        """
        start, stop = self.shard_rows(k)
        if not isinstance(pop, Population):
            raise MemlensInputError(f"pop must be a memlens Population; got {type(pop).__name__}")
        if pop.masks.shape != (stop - start, self.masks.shape[1]) or not np.array_equal(pop.masks,
                                                                                        self.masks[start:stop]):
            raise MemlensInputError(f"pop must hold the models of shard {k} (rows {start}..{stop - 1}, masks as in "
                                    f"the run); got masks of shape {pop.masks.shape} that do not match")
        data = pop.to_npz_bytes()
        path = self.shard_path(k)
        record = {"sha256": _sha256(data), "rows": [start, stop], "run_id": self.run_id}
        # The .npz first, then the record: a shard counts only once both exist and the bytes match the record,
        # so a failure or a kill between the two leaves a shard that is retrained, never read.
        with storage_errors(self.path, f"shard {k} ({path.name})"):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
            atomic_write_bytes(self._record_path(k), json.dumps(record).encode())
        return path

    def write_shared(self, name: str, data: bytes) -> Path:
        """Store work shared by every shard (``shards/shared-<name>.npz``, e.g. the full-data start of logistic
        regression) so that a resumed run reuses it; written atomically, with a record of its hash and run."""
        path = self.path / SHARDS / f"shared-{name}.npz"
        record = {"sha256": _sha256(data), "run_id": self.run_id}
        with storage_errors(self.path, f"{SHARDS}/{path.name}"):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
            atomic_write_bytes(path.with_suffix(".json"), json.dumps(record).encode())
        return path

    def read_shared(self, name: str) -> bytes | None:
        """The bytes stored by :meth:`write_shared` for this run, or None when absent, damaged or another run's."""
        path = self.path / SHARDS / f"shared-{name}.npz"
        try:
            record = json.loads(path.with_suffix(".json").read_text())
            data = path.read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("sha256") != _sha256(data) or record.get("run_id") != self.run_id:
            return None
        return data

    def load_shard(self, k: int) -> Population:
        """Read shard ``k``; raises if it is missing or damaged (it is never half-read)."""
        data = self._read_shard_bytes(k)
        pop = None if data is None else self._decode_shard(k, data)
        if pop is None:
            raise MemlensInputError(f"shard {k} of run {str(self.path)!r} is missing or damaged "
                                    f"({self.shard_path(k).name}); continue the run with --resume to retrain it")
        return pop

    def load_shards(self) -> list[Population]:
        """Every shard, in model order (raises if any is missing or damaged)."""
        missing = self.missing_shards()
        if missing:
            raise MemlensInputError(f"run {str(self.path)!r} has {len(missing)} of {self.n_shards} shards missing or "
                                    f"damaged (first: {missing[0]}); continue it with --resume")
        return [self.load_shard(k) for k in range(self.n_shards)]

    def load_population(self) -> Population:
        """All shards concatenated along the model axis (raises if any is missing or damaged).

        The result keeps the provenance of shard 0; :meth:`load_shards` gives every shard's.
        """
        return Population.concat(self.load_shards())

    # ------------------------------------------------------------------ results
    def write_text(self, name: str, text: str) -> Path:
        """Write a result file (``examples.csv``, ``summary.json``, ...) atomically into the run directory."""
        target = self.path / name
        with storage_errors(self.path, name):
            atomic_write_bytes(target, text.encode())
        return target

    def save_population(self, pop: Population) -> Path:
        """Save the whole population as ``population/population.npz`` (+ ``.json``), atomically."""
        with storage_errors(self.path, "population/population.npz"):
            return pop.save(self.path / "population")

    def write_json(self, name: str, obj) -> Path:
        return self.write_text(name, json.dumps(to_jsonable(obj), indent=2))

    def __repr__(self) -> str:
        return (f"RunDir({str(self.path)!r}, run_id={self.run_id[:12]}, n_models={self.n_models}, "
                f"n_shards={self.n_shards})")
