"""Validation at the public boundary.

Every error names the parameter, the value received and what to do, in the style of scikit-learn
(``n_models must be >= 2 to have both IN and OUT models for every example; got 1``).  The CLI turns
:class:`MemlensInputError` into a one-line message and exit status 2.
"""
from __future__ import annotations

import contextlib
import difflib
import numbers
import re
import warnings

import numpy as np

__all__ = [
    "MemlensInputError",
    "MemlensWarning",
    "MemlensTrainingError",
    "check_int",
    "check_float",
    "check_fraction",
    "check_level",
    "check_array",
    "check_labels",
    "check_masks",
    "warn",
]


class MemlensInputError(ValueError):
    """Bad input to a public function: the message says which parameter, what value, and the fix.

    Attributes
    ----------
    param : str or None
        The library parameter the error is about (``n_models``, ``dataset``, ...), so that the command line maps it
        to its flag by attribute. Given explicitly, or read from the message when it starts with a parameter name
        followed by `` must``, `` needs``, `` and``, ``:``, a quoted value or a product (the style every check here
        writes).
    """

    def __init__(self, message: str = "", *, param: str | None = None):
        super().__init__(message)
        self.param = param if param is not None else _param_of(str(message))


_PARAM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?: and [A-Za-z_][A-Za-z0-9_]*)?)(?= must| needs| and |:| [*]| '| [(])")


def _param_of(message: str) -> str | None:
    """The parameter a message starts with (``"n_models must be >= 2 ..."`` -> ``"n_models"``), else None."""
    m = _PARAM_RE.match(message)
    return m.group(1) if m else None


class MemlensTrainingError(RuntimeError):
    """Training failed for a reason the input could not show in advance (a model's loss became non-finite); the
    message names the model and the step. A run directory keeps the shards finished before it."""


class MemlensWarning(UserWarning):
    """A result is undefined or unreliable for some entries (they are NaN), or an input is suspicious."""


def warn(message: str, *, stacklevel: int = 3) -> None:
    warnings.warn(message, MemlensWarning, stacklevel=stacklevel)


def did_you_mean(value, choices) -> str:
    """``"; did you mean 'digits'?"`` for the choice closest to a mistyped ``value`` (difflib's ratio >= 0.6), else
    ``""``: appended to the error that lists the choices."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    if not close:
        close = [c for c in map(str, choices) if c.lower() == value.lower()]
    return f"; did you mean {close[0]!r}?" if close else ""


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_int(name: str, value, *, min_value: int | None = None, max_value: int | None = None,
              hint: str = "") -> int:
    """Return ``value`` as an int, or raise naming ``name`` (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise MemlensInputError(f"{name} must be an integer; got {_short(value)}{_fix(hint)}")
    value = int(value)
    if min_value is not None and value < min_value:
        raise MemlensInputError(f"{name} must be >= {min_value}{_why(hint)}; got {value}")
    if max_value is not None and value > max_value:
        raise MemlensInputError(f"{name} must be <= {max_value}{_why(hint)}; got {value}")
    return value


def check_float(name: str, value, *, min_value: float | None = None, max_value: float | None = None,
                min_inclusive: bool = True, max_inclusive: bool = True, hint: str = "") -> float:
    """Return ``value`` as a finite float within the given bounds, or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise MemlensInputError(f"{name} must be a real number; got {_short(value)}{_fix(hint)}")
    value = float(value)
    if not np.isfinite(value):
        raise MemlensInputError(f"{name} must be finite; got {value}{_fix(hint)}")
    if min_value is not None and (value < min_value or (not min_inclusive and value == min_value)):
        op = ">=" if min_inclusive else ">"
        raise MemlensInputError(f"{name} must be {op} {min_value}{_why(hint)}; got {value}")
    if max_value is not None and (value > max_value or (not max_inclusive and value == max_value)):
        op = "<=" if max_inclusive else "<"
        raise MemlensInputError(f"{name} must be {op} {max_value}{_why(hint)}; got {value}")
    return value


def check_level(level, *, error_name: str | None = None, error_value=None, default_error: float = 0.05) -> float:
    """The error probability ``1 − level`` of a confidence ``level`` in (0, 1), everywhere spelled ``level``.

    Older names of the same setting are accepted as the error probability itself (``alpha`` of the ε lower bound,
    ``beta`` of the one-run audit); giving both is refused. Returns the error probability: ``default_error`` when
    neither is given (so the default is exact, not ``1 − 0.95`` in floating point).
    """
    if error_value is not None:
        if level is not None:
            raise MemlensInputError(f"level and {error_name} set the same confidence ({error_name} = 1 - level); got "
                                    f"both (level={level!r}, {error_name}={error_value!r}): pass level only",
                                    param="level")
        return check_float(error_name, error_value, min_value=0.0, max_value=1.0, min_inclusive=False,
                           max_inclusive=False)
    if level is None:
        return default_error
    return 1.0 - check_float("level", level, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False,
                             hint="(a confidence level such as 0.95)")


def check_fraction(name: str, value, *, hint: str = "") -> float:
    """A number strictly inside (0, 1), such as a subset ratio."""
    value = check_float(name, value, hint=hint)
    if not 0.0 < value < 1.0:
        raise MemlensInputError(f"{name} must be strictly between 0 and 1{_why(hint)}; got {value}")
    return value


def check_array(name: str, value, *, ndim: int | None = None, dtype=np.float64, finite: bool = True,
                min_rows: int = 0) -> np.ndarray:
    """Convert to a numpy array of ``dtype`` with ``ndim`` dimensions and (optionally) only finite values.

    Complex numbers, booleans-as-objects, strings and other non-real inputs are refused, never silently cast (numpy
    would drop an imaginary part with only a warning)."""
    raw = value if isinstance(value, np.ndarray) else None
    if raw is None and not np.isscalar(value):
        with contextlib.suppress(Exception):
            raw = np.asarray(value)
    if raw is not None and (np.issubdtype(raw.dtype, np.complexfloating)
                            or (raw.dtype == object and raw.size
                                and any(isinstance(v, complex) for v in raw.ravel()[:1000]))):
        raise MemlensInputError(f"{name} must hold real numbers; got complex values (dtype {raw.dtype}): pass the "
                                "real part, the magnitude or both as separate features")
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # values too large for dtype become inf: reported below
            arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise MemlensInputError(f"{name} must be a numeric array; could not convert it ({exc})") from None
    if ndim is not None and arr.ndim != ndim:
        raise MemlensInputError(f"{name} must be a {ndim}-d array; got shape {arr.shape}")
    if arr.ndim >= 1 and arr.shape[0] < min_rows:
        raise MemlensInputError(f"{name} must have at least {min_rows} rows; got shape {arr.shape}")
    if finite and np.issubdtype(arr.dtype, np.floating) and arr.size and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise MemlensInputError(
            f"{name} contains {bad} NaN or infinite value(s); impute or drop them before calling")
    return arr


def check_labels(name: str, value, *, n_rows: int | None = None, n_classes: int | None = None) -> np.ndarray:
    """Integer class labels in ``[0, n_classes)``, one per row; a bad label is reported as given (never after a
    cast that wraps it around or saturates it)."""
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise MemlensInputError(f"{name} must be a 1-d array of class labels; got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            big = np.flatnonzero(np.abs(arr) >= 2.0 ** 62)
            if big.size:
                raise MemlensInputError(f"{name} must hold class labels 0..n_classes-1; got {float(arr[big[0]]):g} at row "
                                        f"{int(big[0])}; encode classes as 0..n_classes-1 "
                                        "(sklearn.preprocessing.LabelEncoder)")
            arr = arr.astype(np.int64)
        else:
            raise MemlensInputError(f"{name} must hold integer class labels; got dtype {arr.dtype}; "
                                    "encode classes as 0..n_classes-1 (sklearn.preprocessing.LabelEncoder)")
    if arr.size and arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        row = int(np.argmax(arr))
        raise MemlensInputError(f"{name} must hold class labels 0..n_classes-1; got {int(arr[row])} at row {row}; "
                                "encode classes as 0..n_classes-1 (sklearn.preprocessing.LabelEncoder)")
    arr = arr.astype(np.int64, copy=False)
    if n_rows is not None and arr.shape[0] != n_rows:
        raise MemlensInputError(f"{name} must have one label per row ({n_rows}); got {arr.shape[0]}")
    if arr.size and arr.min() < 0:
        raise MemlensInputError(f"{name} must be >= 0; got minimum {arr.min()}; "
                                "encode classes as 0..n_classes-1")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise MemlensInputError(f"{name} must be < n_classes={n_classes}; got maximum {arr.max()}")
    return arr


def check_masks(name: str, value, *, n_examples: int | None = None, min_models: int = 1,
                nonempty_rows: str | None = None) -> np.ndarray:
    """A boolean membership matrix ``(n_models, n_examples)``.

    With ``nonempty_rows`` (what a column is, e.g. ``"training example"``), every row must hold at least one True:
    a model needs something to train on.
    """
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise MemlensInputError(f"{name} must be a 2-d array (n_models, n_examples); got shape {arr.shape}")
    if arr.dtype != bool:
        if np.issubdtype(arr.dtype, np.number) and np.all(np.isin(arr, (0, 1))):
            arr = arr.astype(bool)
        else:
            raise MemlensInputError(f"{name} must be boolean (True = example in that model's training set); "
                                    f"got dtype {arr.dtype}")
    if arr.shape[0] < min_models:
        raise MemlensInputError(f"{name} must have at least {min_models} model rows; got {arr.shape[0]}")
    if n_examples is not None and arr.shape[1] != n_examples:
        raise MemlensInputError(f"{name} must have one column per training example ({n_examples}); "
                                f"got shape {arr.shape}")
    if nonempty_rows is not None:
        empty = np.flatnonzero(~arr.any(1))
        if empty.size:
            raise MemlensInputError(f"every mask row needs at least one {nonempty_rows} (True); rows "
                                    f"{empty[:5].tolist()} are all False", param=name)
    return arr


def _why(hint: str) -> str:
    """A reason phrase after the bound: ``n_models must be >= 2 to have ...; got 1``."""
    return f" {hint}" if hint else ""


def _fix(hint: str) -> str:
    """A fix after the received value: ``... ; got 'x'; use ...``."""
    return f"; {hint}" if hint else ""
