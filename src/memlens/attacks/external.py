"""Attack a model trained elsewhere: build a Population from your own arrays or ``.npy`` files.

A membership attack needs, for every example, the target model's signal, the signals of reference models and
which reference models trained on which example. Supply them as arrays (:func:`population_from_signals`,
:func:`population_from_logits`) or as ``.npy`` files in one folder (:func:`load_external`). The result is an
ordinary :class:`~memlens.Population` whose first rows are the target model(s) and whose remaining rows are the
reference models, so every attack of :mod:`memlens.attacks` applies (``lira(pop, target=0)``). Attacking target
``t`` uses every other row as a reference model, including the other targets (their memberships are known).

File layout for :func:`load_external` (``n`` examples, ``n_ref`` reference models, ``C`` classes, ``T`` targets)::

    my_audit/
      target_mask.npy          bool  (n,) or (T, n)        True where the example is in the target's training set
      reference_masks.npy      bool  (n_ref, n)            the same for every reference model
      # either model outputs ...
      target_logits.npy        float (n, C) or (T, n, C)   raw class scores (or target_proba.npy: probabilities)
      reference_logits.npy     float (n_ref, n, C)         (or reference_proba.npy)
      labels.npy               int   (n,)                  true class of every example, in 0 .. C-1
      # ... or per-example signals, one pair of files per signal (logit = stable logit, loss, correct)
      target_loss.npy          float (n,) or (T, n)
      reference_loss.npy       float (n_ref, n)
      # optional: population samples z that no model trained on (RMIA's default z), same forms with prefix test_
      test_target_logits.npy   float (n_test, C) or (T, n_test, C)
      test_reference_logits.npy float (n_ref, n_test, C)
      test_labels.npy          int   (n_test,)
      # or test_target_<signal>.npy (n_test,) / (T, n_test) and test_reference_<signal>.npy (n_ref, n_test)

Files are read with ``numpy.load(allow_pickle=False)``. If ``target_mask.npy`` is absent the target's
membership is unknown: attacks still produce scores, but their AUC/TPR are undefined (NaN with a warning).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from .._io import check_npy_file
from .._validation import MemlensInputError, check_labels, warn
from ..population import Population, output_kind, signals_from_logits, signals_from_proba

__all__ = ["population_from_signals", "population_from_logits", "load_external"]


def _as_named(value, default_name: str, what: str) -> dict[str, object]:
    if isinstance(value, Mapping):
        if not value:
            raise MemlensInputError(f"{what} must name at least one signal; got an empty mapping")
        return dict(value)
    return {default_name: value}


def _float_array(name: str, value, *, ndims: tuple[int, ...], expected: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MemlensInputError(f"{name} must be a numeric array of shape {expected}; could not convert it "
                                f"({exc})") from None
    if arr.ndim not in ndims:
        raise MemlensInputError(f"{name} must have shape {expected}; got shape {arr.shape}")
    if arr.size and not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise MemlensInputError(f"{name} contains {bad} NaN or infinite value(s); every model needs a finite "
                                "signal on every example")
    return arr


def _bool_array(name: str, value, *, shape: tuple[int, ...], expected: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape:
        raise MemlensInputError(f"{name} must have shape {expected}; got shape {arr.shape}")
    if arr.dtype != bool:
        if arr.size and not (np.issubdtype(arr.dtype, np.number) and np.all(np.isin(arr, (0, 1)))):
            raise MemlensInputError(f"{name} must be boolean (True = the example is in that model's training set); "
                                    f"got dtype {arr.dtype}")
        arr = arr.astype(bool)
    return arr


def population_from_signals(target, reference, *, target_mask=None, reference_masks, target_test=None,
                            reference_test=None, signal: str = "logit", labels=None, test_labels=None,
                            provenance: Mapping | None = None) -> Population:
    """A Population from per-example signals of target model(s) and reference models.

    Parameters
    ----------
    target : array, shape (n,) or (n_targets, n), or mapping signal name -> such an array
        The target model's signal on each example (e.g. its stable logit or loss).
    reference : array, shape (n_ref, n), or mapping signal name -> such an array
        The reference models' signals; a mapping must have the same names as ``target``.
    target_mask : array of bool, shape (n,) or (n_targets, n), optional
        Membership of each example in the target's training set. ``None``: unknown (scores only; metrics NaN).
    reference_masks : array of bool, shape (n_ref, n)
        Membership of each example in each reference model's training set.
    target_test, reference_test : optional
        The same for population samples z (split ``test``): shapes (n_test,) / (n_targets, n_test) and
        (n_ref, n_test), or mappings with the same names.
    signal : str
        Name of the signal when ``target``/``reference`` are arrays (``logit``, ``loss``, ``correct``, ...).
    labels, test_labels : array of int, optional
        True labels (kept in ``pop.labels``; used by the per-class shadow attack).
    provenance : mapping, optional

    Returns
    -------
    Population
        Rows ``0 .. n_targets-1`` are the targets, the rest the reference models.
    """
    tgt = _as_named(target, signal, "target")
    ref = _as_named(reference, signal, "reference")
    if set(tgt) != set(ref):
        raise MemlensInputError(f"target and reference must hold the same signals; got {sorted(tgt)} and {sorted(ref)}")
    names = sorted(tgt)
    first = names[0]
    t0 = _float_array(f"target[{first!r}]", tgt[first], ndims=(1, 2), expected="(n,) or (n_targets, n)")
    n = t0.shape[-1]
    n_targets = 1 if t0.ndim == 1 else t0.shape[0]
    r0 = _float_array(f"reference[{first!r}]", ref[first], ndims=(2,), expected=f"(n_ref, n={n})")
    n_ref = r0.shape[0]
    if n_ref < 1:
        raise MemlensInputError(f"reference[{first!r}] must hold at least one reference model; got shape {r0.shape}")
    rows: dict[str, np.ndarray] = {}
    for name in names:
        t = _float_array(f"target[{name!r}]", tgt[name], ndims=(1, 2), expected=f"(n={n},) or (n_targets, n={n})")
        t = t.reshape(-1, t.shape[-1]) if t.ndim == 2 else t[None, :]
        if t.shape != (n_targets, n):
            raise MemlensInputError(f"target[{name!r}] must have shape {(n,) if n_targets == 1 else (n_targets, n)} "
                                    f"like target[{first!r}]; got {np.shape(tgt[name])}")
        r = _float_array(f"reference[{name!r}]", ref[name], ndims=(2,), expected=f"(n_ref={n_ref}, n={n})")
        if r.shape != (n_ref, n):
            raise MemlensInputError(f"reference[{name!r}] must have shape (n_ref={n_ref}, n={n}); got {r.shape}")
        rows[name] = np.concatenate([t, r]).astype(np.float32)
    ref_masks = _bool_array("reference_masks", reference_masks, shape=(n_ref, n),
                            expected=f"(n_ref={n_ref}, n={n}) to match reference[{first!r}]")
    known = target_mask is not None
    if known:
        tm_shape = (n,) if t0.ndim == 1 else (n_targets, n)
        tmask = _bool_array("target_mask", target_mask, shape=tm_shape,
                            expected=f"{tm_shape} to match target[{first!r}]").reshape(n_targets, n)
    else:
        warn("target_mask is None: the target's membership is unknown, so attack scores can be computed but their "
             "AUC and TPR are undefined (NaN); memorization and influence leave the target out (unknown is never "
             "read as OUT)", stacklevel=3)
        tmask = np.zeros((n_targets, n), dtype=bool)
    signals = {"train": rows}
    if (target_test is None) != (reference_test is None):
        raise MemlensInputError("target_test and reference_test must be given together (population samples z need "
                                "the target's and the reference models' signals)")
    if target_test is not None:
        tt = _as_named(target_test, signal, "target_test")
        rt = _as_named(reference_test, signal, "reference_test")
        if set(tt) != set(rt):
            raise MemlensInputError(f"target_test and reference_test must hold the same signals; got {sorted(tt)} "
                                    f"and {sorted(rt)}")
        test_rows = {}
        n_test = None
        for name in sorted(tt):
            t = _float_array(f"target_test[{name!r}]", tt[name], ndims=(1, 2),
                             expected="(n_test,) or (n_targets, n_test)")
            t = t[None, :] if t.ndim == 1 else t
            n_test = t.shape[1] if n_test is None else n_test
            if t.shape != (n_targets, n_test):
                raise MemlensInputError(f"target_test[{name!r}] must have shape "
                                        f"{(n_test,) if n_targets == 1 else (n_targets, n_test)} (one row per target); "
                                        f"got {np.shape(tt[name])}")
            r = _float_array(f"reference_test[{name!r}]", rt[name], ndims=(2,),
                             expected=f"(n_ref={n_ref}, n_test={n_test})")
            if r.shape != (n_ref, n_test):
                raise MemlensInputError(f"reference_test[{name!r}] must have shape (n_ref={n_ref}, n_test={n_test}); "
                                        f"got {r.shape}")
            test_rows[name] = np.concatenate([t, r]).astype(np.float32)
        signals["test"] = test_rows
    lab = {}
    if labels is not None:
        lab["train"] = check_labels("labels", labels, n_rows=n)
    if test_labels is not None:
        n_test = next(iter(signals["test"].values())).shape[1] if "test" in signals else None
        lab["test"] = check_labels("test_labels", test_labels, n_rows=n_test)
    prov = {"source": "external", "n_targets": n_targets, "target_rows": list(range(n_targets)),
            "n_reference": n_ref, "target_membership_known": known}
    if not known:
        prov["unknown_membership_rows"] = list(range(n_targets))
    prov.update(dict(provenance or {}))
    return Population(np.concatenate([tmask, ref_masks]), signals, None, lab, prov)


def _outputs_to_signals(name: str, target, reference, y, *, kind: str, n_ref_expected=None):
    t = _float_array(name.format("target"), target, ndims=(2, 3), expected="(n, C) or (n_targets, n, C)")
    t = t[None] if t.ndim == 2 else t
    r = _float_array(name.format("reference"), reference, ndims=(3,), expected=f"(n_ref, n={t.shape[1]}, "
                                                                                f"C={t.shape[2]})")
    if r.shape[1:] != t.shape[1:]:
        raise MemlensInputError(f"{name.format('reference')} must have shape (n_ref, n={t.shape[1]}, C={t.shape[2]}) "
                                f"to match {name.format('target')}; got {r.shape}")
    if n_ref_expected is not None and r.shape[0] != n_ref_expected:
        raise MemlensInputError(f"{name.format('reference')} must have n_ref={n_ref_expected} rows like the training "
                                f"outputs; got {r.shape}")
    y = check_labels("labels" if "test" not in name else "test_labels", y, n_rows=t.shape[1], n_classes=t.shape[2])
    both = np.concatenate([t, r])
    if kind == "logits":
        if output_kind(both) == "proba":
            prefix = "test_" if "test" in name else ""
            raise MemlensInputError(f"{name.format('target')} and {name.format('reference')} hold probabilities (every "
                                    "row is in [0, 1] and sums to 1), not logits: read as logits they give wrong "
                                    f"signals; save them as {prefix}target_proba.npy / {prefix}reference_proba.npy "
                                    "(or pass kind='proba')", param="external")
        sig = signals_from_logits(both, y)     # log-probabilities are logits up to a constant: exact
    else:
        if output_kind(both) == "log-proba":
            raise MemlensInputError(f"{name.format('target')} and {name.format('reference')} hold log-probabilities "
                                    "(rows <= 0 whose exponentials sum to 1), not probabilities; pass them as logits "
                                    "(*_logits.npy or kind='logits'), which is exact for log-probabilities",
                                    param="external")
        if np.any(both < 0) or np.any(both > 1 + 1e-6):
            raise MemlensInputError(f"{name.format('target')} and {name.format('reference')} must hold probabilities "
                                    "in [0, 1] for kind='proba'; pass kind='logits' for raw scores")
        sig = signals_from_proba(both, y)
    n_targets = t.shape[0]
    return ({k: v[:n_targets] for k, v in sig.items()}, {k: v[n_targets:] for k, v in sig.items()}, y,
            n_targets, r.shape[0])


def population_from_logits(target_logits, reference_logits, labels, *, target_mask=None, reference_masks,
                           target_test_logits=None, reference_test_logits=None, test_labels=None,
                           kind: str = "logits", provenance: Mapping | None = None) -> Population:
    """A Population from class scores of target model(s) and reference models.

    The signals ``logit`` (LiRA's stable logit), ``loss`` and ``correct`` are computed with
    :func:`memlens.population.signals_from_logits` (or ``signals_from_proba`` for ``kind="proba"``).

    Parameters
    ----------
    target_logits : array, shape (n, C) or (n_targets, n, C)
    reference_logits : array, shape (n_ref, n, C)
    labels : array of int, shape (n,)
        True class of each example.
    target_mask : array of bool, shape (n,) or (n_targets, n), optional
    reference_masks : array of bool, shape (n_ref, n)
    target_test_logits, reference_test_logits, test_labels : optional
        Population samples z: shapes (n_test, C) / (n_targets, n_test, C), (n_ref, n_test, C), (n_test,).
    kind : {"logits", "proba"}
        Raw class scores or probabilities.
    provenance : mapping, optional

    Returns
    -------
    Population
        Rows ``0 .. n_targets-1`` are the targets, the rest the reference models.
    """
    if kind not in ("logits", "proba"):
        raise MemlensInputError(f"kind must be 'logits' or 'proba'; got {kind!r}")
    suffix = "logits" if kind == "logits" else "proba"
    t_sig, r_sig, y, n_targets, n_ref = _outputs_to_signals("{}_" + suffix, target_logits, reference_logits, labels,
                                                            kind=kind)
    if target_mask is not None:
        expected = (y.size,) if np.ndim(target_logits) == 2 else (n_targets, y.size)
        target_mask = _bool_array("target_mask", target_mask, shape=expected, expected=f"{expected}")
    kwargs = {}
    if (target_test_logits is None) != (reference_test_logits is None):
        raise MemlensInputError("target_test_logits and reference_test_logits must be given together")
    if target_test_logits is not None:
        if test_labels is None:
            raise MemlensInputError("test_labels are needed with target_test_logits (the true class of each z)")
        tt, rt, y_test, _, _ = _outputs_to_signals("{}_test_" + suffix, target_test_logits, reference_test_logits,
                                                   test_labels, kind=kind, n_ref_expected=n_ref)
        if next(iter(tt.values())).shape[0] != n_targets:
            raise MemlensInputError(f"target_test_{suffix} must have one row per target ({n_targets}); got "
                                    f"{np.shape(target_test_logits)}")
        kwargs = {"target_test": {k: (v[0] if np.ndim(target_test_logits) == 2 else v) for k, v in tt.items()},
                  "reference_test": rt, "test_labels": y_test}
    prov = {"outputs": kind}
    prov.update(dict(provenance or {}))
    return population_from_signals({k: (v[0] if np.ndim(target_logits) == 2 else v) for k, v in t_sig.items()},
                                   r_sig, target_mask=target_mask, reference_masks=reference_masks, labels=y,
                                   provenance=prov, **kwargs)


def _load(path: Path) -> np.ndarray:
    check_npy_file(path, path.name)     # a regular file, no pickles, a declared size it holds and memory can take
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise MemlensInputError(f"could not read {path}: {exc}; it must be a .npy file written by numpy.save "
                                "without pickled objects") from None


def load_external(path) -> Population:
    """Read a folder of ``.npy`` files in the layout of this module's docstring into a Population.

    Parameters
    ----------
    path : str or Path
        The folder.

    Returns
    -------
    Population
        Rows ``0 .. n_targets-1`` are the target model(s), the rest the reference models; signals ``logit``,
        ``loss``, ``correct`` when outputs were given, else the signals whose files were found.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise MemlensInputError(f"path must be a folder holding the .npy files of an external audit; got {path}")
    files = {p.stem: p for p in folder.glob("*.npy")}

    def get(stem):
        return _load(files[stem]) if stem in files else None

    if "reference_masks" not in files:
        raise MemlensInputError(f"{folder} has no reference_masks.npy (bool, shape (n_ref, n)); see the layout in "
                                "memlens.attacks.external")
    masks = get("reference_masks")
    target_mask = get("target_mask")
    prov = {"source": "external", "path": str(folder)}
    for kind, suffix in (("logits", "logits"), ("proba", "proba")):
        if f"target_{suffix}" in files or f"reference_{suffix}" in files:
            for need in (f"target_{suffix}", f"reference_{suffix}", "labels"):
                if need not in files:
                    raise MemlensInputError(f"{folder} has {suffix} files but no {need}.npy; see the layout in "
                                            "memlens.attacks.external")
            test = {}
            if f"test_target_{suffix}" in files or f"test_reference_{suffix}" in files:
                for need in (f"test_target_{suffix}", f"test_reference_{suffix}", "test_labels"):
                    if need not in files:
                        raise MemlensInputError(f"{folder} has test_* {suffix} files but no {need}.npy")
                test = {"target_test_logits": get(f"test_target_{suffix}"),
                        "reference_test_logits": get(f"test_reference_{suffix}"), "test_labels": get("test_labels")}
            return population_from_logits(get(f"target_{suffix}"), get(f"reference_{suffix}"), get("labels"),
                                          target_mask=target_mask, reference_masks=masks, kind=kind,
                                          provenance=prov, **test)
    names = sorted(stem[len("target_"):] for stem in files
                   if stem.startswith("target_") and stem != "target_mask")
    if not names:
        raise MemlensInputError(f"{folder} has no target_<signal>.npy, target_logits.npy or target_proba.npy; see "
                                "the layout in memlens.attacks.external")
    for name in names:
        if f"reference_{name}" not in files:
            raise MemlensInputError(f"{folder} has target_{name}.npy but no reference_{name}.npy (n_ref, n)")
    target = {name: get(f"target_{name}") for name in names}
    reference = {name: get(f"reference_{name}") for name in names}
    test_names = sorted(stem[len("test_target_"):] for stem in files if stem.startswith("test_target_"))
    kwargs = {}
    if test_names:
        for name in test_names:
            if f"test_reference_{name}" not in files:
                raise MemlensInputError(f"{folder} has test_target_{name}.npy but no test_reference_{name}.npy")
        kwargs = {"target_test": {n_: get(f"test_target_{n_}") for n_ in test_names},
                  "reference_test": {n_: get(f"test_reference_{n_}") for n_ in test_names}}
    return population_from_signals(target, reference, target_mask=target_mask, reference_masks=masks,
                                   labels=get("labels"), test_labels=get("test_labels"), provenance=prov, **kwargs)
