"""The Population: the one contract between training and measuring (docs/architecture.md, "The Population").

Everything the sample-level measures and membership attacks need derives from two arrays: which model saw
which example (``masks``) and what each model says about each example (``signals``).
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from ._display import html_table
from ._io import atomic_write_bytes
from ._validation import MemlensInputError, check_array, check_labels, check_masks, warn

__all__ = ["Population", "SIGNALS", "SIGNAL_SIGN", "signals_from_logits", "signals_from_proba", "output_kind",
           "atomic_write_bytes"]

#: Standard per-example signals. ``logit``: LiRA's stable logit φ = log p_y − log Σ_{y'≠y} p_{y'}
#: (Carlini et al. 2022, §IV-B); ``loss``: cross-entropy −log p_y; ``correct``: 1.0 where argmax = y; ``pred``: the
#: predicted class argmax (as a float; what the models that did not see an example predict for it separates a
#: mislabeled example from an atypical one). ``pred`` is optional: populations without it still load. A population
#: trained with label-only or attribute queries also has ``robust`` / ``attribute`` on its train split
#: (:mod:`memlens.train.label_queries`).
SIGNALS = ("logit", "loss", "correct", "pred")
#: The direction of every signal: +1 where a higher value means the model fits the example better, −1 where a lower
#: value does (the losses). Measures and attacks orient their scores by it (higher = more memorized / member).
SIGNAL_SIGN = {"correct": 1.0, "logit": 1.0, "loss": -1.0, "log_likelihood": 1.0, "token_accuracy": 1.0,
               "robust": 1.0, "attribute": 1.0}

_FORMAT = "memlens-population/1"
#: Provenance key listing the model rows whose membership is unknown (see :attr:`Population.known_rows`).
UNKNOWN_ROWS = "unknown_membership_rows"


def _check_scores_and_labels(name: str, scores, y) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (n_models, n_examples, n_classes) float64, y (n_examples,) int64)``, validated."""
    z = check_array(name, scores, ndim=3, dtype=np.float64, finite=name != "logits")
    if z.shape[2] < 2:
        raise MemlensInputError(f"{name} must have at least 2 classes on its last axis (n_models, n_examples, "
                                f"n_classes); got shape {z.shape}")
    y = check_labels("y", y, n_rows=z.shape[1], n_classes=z.shape[2])
    return z, y


def signals_from_logits(logits, y) -> dict[str, np.ndarray]:
    """Per-example signals from raw class scores.

    Parameters
    ----------
    logits : array, shape (n_models, n_examples, n_classes)
        Unnormalized log-probabilities (any additive constant per row is fine).
    y : array of int, shape (n_examples,)

    Returns
    -------
    dict with ``logit``, ``loss``, ``correct``, ``pred``, each float32 of shape (n_models, n_examples).
    A (model, example) pair whose class scores are not all finite (a diverged model) gets NaN in every signal,
    with a :class:`~memlens.MemlensWarning`.
    """
    z, y = _check_scores_and_labels("logits", logits, y)
    undefined = ~np.all(np.isfinite(z), axis=2)
    if undefined.any():
        warn(f"logits hold NaN or infinite scores for {int(undefined.sum())} (model, example) pair(s) (a diverged "
             "model?); their signals are undefined (NaN)")
        z = np.where(undefined[..., None], 0.0, z)
    idx = np.broadcast_to(y[None, :, None], z.shape[:2] + (1,))
    z_y = np.take_along_axis(z, idx, axis=2)[..., 0]
    correct = z.argmax(axis=2) == y[None, :]
    zmax = z.max(axis=2)
    e = z - zmax[..., None]                       # one exp pass serves both log-sum-exps
    np.exp(e, out=e)
    lse = zmax + np.log(e.sum(axis=2))
    np.put_along_axis(e, idx, 0.0, axis=2)
    s_other = e.sum(axis=2)                       # sum over the other classes: positive terms, no cancellation
    with np.errstate(divide="ignore"):
        lse_others = zmax + np.log(s_other)
    # Where every other class's term underflowed (a margin beyond ~700 in float64), shift by their own max.
    tiny = s_other < 1e-280
    if tiny.any():
        zt, it = z[tiny], idx[tiny]
        np.put_along_axis(zt, it, -np.inf, axis=1)
        omax = zt.max(axis=1)
        lse_others[tiny] = omax + np.log(np.exp(zt - omax[:, None]).sum(axis=1))
    out = {
        "logit": (z_y - lse_others).astype(np.float32),
        "loss": (lse - z_y).astype(np.float32),
        "correct": correct.astype(np.float32),
        "pred": z.argmax(axis=2).astype(np.float32),
    }
    if undefined.any():
        for arr in out.values():
            arr[undefined] = np.nan
    return out


def output_kind(scores) -> str:
    """What an array of class scores ``(..., n_classes)`` looks like: ``"proba"`` (every row in [0, 1] and summing to
    1), ``"log-proba"`` (every row <= 0 with ``logsumexp`` 0), else ``"logits"``.

    Probabilities read as logits give wrong signals (a softmax of probabilities is nearly flat); log-probabilities
    are logits up to a constant per row, so they give exactly the same signals.
    """
    z = np.asarray(scores, dtype=np.float64)
    if z.ndim < 1 or z.shape[-1] < 2 or z.size == 0 or not np.all(np.isfinite(z)):
        return "logits"
    if z.min() >= 0.0 and z.max() <= 1.0 + 1e-6 and np.all(np.abs(z.sum(axis=-1) - 1.0) <= 1e-3):
        return "proba"
    if z.max() <= 1e-6:
        m = z.max(axis=-1, keepdims=True)
        lse = m[..., 0] + np.log(np.exp(z - m).sum(axis=-1))
        if np.all(np.abs(lse) <= 1e-3):
            return "log-proba"
    return "logits"


def signals_from_proba(proba, y, *, eps: float = 1e-12) -> dict[str, np.ndarray]:
    """Per-example signals from predicted probabilities ``(n_models, n_examples, n_classes)``.

    Probabilities are clipped to ``[eps, 1]`` before the logarithm, so a confident model's stable logit is
    bounded by about ±27.6 (sklearn's ``predict_proba`` rounds to exact 0 and 1).
    """
    p, y = _check_scores_and_labels("proba", proba, y)
    if p.size and (p.min() < 0.0 or p.max() > 1.0 + 1e-6):
        raise MemlensInputError(f"proba must hold probabilities in [0, 1]; got values in [{p.min():.3g}, "
                                f"{p.max():.3g}]; pass raw class scores to signals_from_logits instead")
    p = np.clip(p, eps, 1.0)
    idx = np.broadcast_to(y[None, :, None], p.shape[:2] + (1,))
    p_y = np.take_along_axis(p, idx, axis=2)[..., 0]
    rest = np.clip(p.sum(axis=2) - p_y, eps, None)
    return {
        "logit": (np.log(p_y) - np.log(rest)).astype(np.float32),
        "loss": (-np.log(p_y)).astype(np.float32),
        "correct": (p.argmax(axis=2) == y[None, :]).astype(np.float32),
        "pred": p.argmax(axis=2).astype(np.float32),
    }


def _freeze(signals) -> Mapping[str, Mapping[str, np.ndarray]]:
    return MappingProxyType({s: MappingProxyType(dict(d)) for s, d in signals.items()})


@dataclass(frozen=True, eq=False)
class Population:
    """Masks and per-model signals of a population of models trained on subsets of one dataset.

    Attributes
    ----------
    masks : ndarray of bool, shape (n_models, n_train)
        True where the training example was in that model's training set.
    signals : mapping split -> name -> ndarray of float32, shape (n_models, n_examples_in_split)
        Splits are ``train`` and ``test`` (``canary``, ``population`` where used); names include ``logit``,
        ``loss`` and ``correct`` (see :data:`SIGNALS`).
    seeds : ndarray of int64, shape (n_models,)
        The seed each model was trained with.
    labels : mapping split -> ndarray of int64, shape (n_examples_in_split,)
        True labels, where known.
    provenance : mapping
        JSON-serializable: dataset fingerprint, trainer config, package version, ...
    """

    masks: np.ndarray
    signals: Mapping[str, Mapping[str, np.ndarray]]
    seeds: np.ndarray = None
    labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        masks = check_masks("masks", self.masks)
        n_models, n_train = masks.shape
        object.__setattr__(self, "masks", masks)
        seeds = np.arange(n_models, dtype=np.int64) if self.seeds is None else np.asarray(self.seeds, np.int64)
        if seeds.shape != (n_models,):
            raise MemlensInputError(f"seeds must have shape ({n_models},) (one per model); got {seeds.shape}")
        object.__setattr__(self, "seeds", seeds)
        if not isinstance(self.signals, Mapping) or not all(isinstance(d, Mapping) for d in self.signals.values()):
            raise MemlensInputError("signals must be a mapping split -> {name: array (n_models, n_examples)}, e.g. "
                                    f"{{'train': {{'logit': ...}}}}; got {type(self.signals).__name__}")
        sig = {}
        for split, named in self.signals.items():
            sig[split] = {}
            for name, arr in named.items():
                arr = check_array(f"signals[{split!r}][{name!r}]", arr, dtype=np.float32, finite=False)
                if arr.ndim != 2 or arr.shape[0] != n_models:
                    raise MemlensInputError(
                        f"signals[{split!r}][{name!r}] must have shape (n_models={n_models}, n_examples); "
                        f"got {arr.shape}")
                if split == "train" and arr.shape[1] != n_train:
                    raise MemlensInputError(
                        f"signals['train'][{name!r}] must have one column per training example ({n_train}, "
                        f"as in masks); got {arr.shape[1]}")
                sig[split][name] = arr
            lens = {a.shape[1] for a in sig[split].values()}
            if len(lens) > 1:
                raise MemlensInputError(f"signals[{split!r}] arrays disagree on the number of examples: {lens}")
        object.__setattr__(self, "signals", _freeze(sig))
        labels = {}
        for k, v in self.labels.items():
            n = n_train if k == "train" else (next(iter(sig[k].values())).shape[1] if sig.get(k) else None)
            labels[k] = check_labels(f"labels[{k!r}]", v, n_rows=n)
        object.__setattr__(self, "labels", MappingProxyType(labels))
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))

    # ------------------------------------------------------------------ shape
    @property
    def n_models(self) -> int:
        return int(self.masks.shape[0])

    @property
    def n_train(self) -> int:
        return int(self.masks.shape[1])

    @property
    def splits(self) -> tuple:
        return tuple(self.signals)

    @property
    def known_rows(self) -> np.ndarray:
        """Bool ``(n_models,)``: False for models whose membership is unknown (``provenance
        ["unknown_membership_rows"]``, e.g. an external target imported without its mask). Their mask rows are
        placeholders: measures leave them out and attacks never use them as references, so unknown is never read
        as OUT."""
        known = np.ones(self.n_models, dtype=bool)
        rows = self.provenance.get(UNKNOWN_ROWS) or ()
        known[[int(r) for r in rows if 0 <= int(r) < self.n_models]] = False
        return known

    def signal(self, split: str, name: str) -> np.ndarray:
        """The ``(n_models, n_examples)`` array of signal ``name`` on ``split``, with a clear error if absent."""
        if split not in self.signals:
            raise MemlensInputError(f"split must be one of {list(self.signals)}; got {split!r}")
        if name not in self.signals[split]:
            raise MemlensInputError(f"signal must be one of {list(self.signals[split])} for split {split!r}; "
                                    f"got {name!r}")
        return self.signals[split][name]

    # ------------------------------------------------------------------ model axis
    def select(self, models) -> "Population":
        """The sub-population of the given model indices (an index array, slice or boolean mask)."""
        try:
            idx = np.arange(self.n_models)[models]
        except (IndexError, TypeError, ValueError) as exc:
            raise MemlensInputError(f"models must index the {self.n_models} models (indices 0..{self.n_models - 1}, a "
                                    f"slice or a boolean mask of length {self.n_models}); got {models!r} ({exc})") \
                from None
        prov = dict(self.provenance)
        if UNKNOWN_ROWS in prov:
            prov[UNKNOWN_ROWS] = np.flatnonzero(~self.known_rows[idx]).tolist()
        return Population(self.masks[idx], {s: {k: v[idx] for k, v in d.items()} for s, d in self.signals.items()},
                          self.seeds[idx], dict(self.labels), prov)

    @staticmethod
    def concat(pops) -> "Population":
        """Concatenate populations (shards) along the model axis. They must share splits, signals and labels."""
        pops = list(pops)
        if not pops:
            raise MemlensInputError("pops must contain at least one Population; got an empty sequence")
        for k, p in enumerate(pops):
            if not isinstance(p, Population):
                raise MemlensInputError(f"pops[{k}] must be a Population; got {type(p).__name__}")
        first = pops[0]
        for k, p in enumerate(pops[1:], 1):
            if p.n_train != first.n_train:
                raise MemlensInputError(f"pops[{k}] has n_train={p.n_train}, pops[0] has {first.n_train}")
            if {s: sorted(d) for s, d in p.signals.items()} != {s: sorted(d) for s, d in first.signals.items()}:
                raise MemlensInputError(f"pops[{k}] has different splits or signals than pops[0]")
        sig = {s: {k: np.concatenate([p.signals[s][k] for p in pops]) for k in d} for s, d in first.signals.items()}
        prov = dict(first.provenance)
        known = np.concatenate([p.known_rows for p in pops])
        if not known.all() or UNKNOWN_ROWS in prov:
            prov[UNKNOWN_ROWS] = np.flatnonzero(~known).tolist()
        return Population(np.concatenate([p.masks for p in pops]), sig, np.concatenate([p.seeds for p in pops]),
                          dict(first.labels), prov)

    # ------------------------------------------------------------------ persistence (no pickle)
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"masks": self.masks, "seeds": self.seeds}
        for split, named in self.signals.items():
            for name, arr in named.items():
                arrays[f"signal/{split}/{name}"] = arr
        for split, lab in self.labels.items():
            arrays[f"labels/{split}"] = lab
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], provenance=None) -> "Population":
        signals: dict = {}
        labels = {}
        for key, arr in arrays.items():
            parts = key.split("/")
            if parts[0] == "signal" and len(parts) == 3:
                signals.setdefault(parts[1], {})[parts[2]] = arr
            elif parts[0] == "labels" and len(parts) == 2:
                labels[parts[1]] = arr
        if "masks" not in arrays:
            raise MemlensInputError("the population file has no 'masks' array; it is not a memlens population")
        return cls(arrays["masks"], signals, arrays.get("seeds"), labels, provenance or {})

    def to_npz_bytes(self) -> bytes:
        buf = io.BytesIO()
        arrays = dict(self.to_arrays())
        arrays["provenance.json"] = np.frombuffer(json.dumps(dict(self.provenance), default=str).encode(),
                                                  dtype=np.uint8)
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_npz(cls, path) -> "Population":
        """Read a population written by :meth:`to_npz_bytes` (``allow_pickle=False``)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise MemlensInputError(f"could not read population file {path}: {exc}; it is corrupted or "
                                    "truncated: delete it (a resumed run retrains it)") from None
        if "masks" not in arrays:
            raise MemlensInputError(f"population file {path} has no 'masks' array: it is corrupted or truncated, "
                                    "or not a memlens population; delete it (a resumed run retrains it)")
        prov = {}
        if "provenance.json" in arrays:
            prov = json.loads(arrays.pop("provenance.json").tobytes().decode())
        return cls.from_arrays(arrays, prov)

    def save(self, path) -> Path:
        """Save to directory ``path`` as ``population.npz`` (+ ``population.json``); atomic, no pickle."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path / "population.npz", self.to_npz_bytes())
        meta = {"format": _FORMAT, "n_models": self.n_models, "n_train": self.n_train,
                "signals": {s: {k: list(v.shape) for k, v in d.items()} for s, d in self.signals.items()},
                "provenance": dict(self.provenance)}
        atomic_write_bytes(path / "population.json", json.dumps(meta, indent=2, default=str).encode())
        return path

    @classmethod
    def load(cls, path) -> "Population":
        """Load a population saved with :meth:`save` (a directory, or the ``population.npz`` file itself)."""
        path = Path(path)
        f = path / "population.npz" if path.is_dir() else path
        if not f.exists():
            raise MemlensInputError(f"no saved population at {path}; expected {f} (written by Population.save)")
        return cls.from_npz(f)

    def __repr__(self) -> str:
        sig = {s: sorted(d) for s, d in self.signals.items()}
        return f"Population(n_models={self.n_models}, n_train={self.n_train}, signals={sig})"

    def _repr_html_(self) -> str:
        prov = self.provenance or {}
        model = prov.get("model")
        rows = [("models", f"{self.n_models:,}"), ("training examples", f"{self.n_train:,}"),
                ("IN models per example (mean)", f"{float(self.masks.sum(0).mean()):.1f}")]
        rows += [(f"signals on {split}", ", ".join(sorted(d))) for split, d in self.signals.items()]
        if prov.get("dataset"):
            rows.append(("dataset", str(prov["dataset"])))
        if isinstance(model, Mapping):
            rows.append(("model", ", ".join(f"{k}={v}" for k, v in model.items())))
        return html_table("Population", rows)
