"""Brown et al.'s next-symbol prediction task (documented interpretation) and the noise it forces a model to store.

Brown, Bun, Feldman, Smith & Talwar, "When is Memorization of Irrelevant Training Data Necessary for
High-Accuracy Learning?" (STOC 2021, arXiv:2012.06421), docs/theory.md, "Memorization of irrelevant bits": on
next-symbol prediction every
ε-suboptimal learner has ``I(X; M | P) = Ω(n·d)``, and a set ``S`` of singletons with ``E|S| = Ω(n)`` is memorized
almost whole, ``I(X_S; M | P) = (1 − o(1)) H(X_S | P)``, noise included.

The paper's exact definition of the task is not available to this project (docs/theory.md, "Next-symbol
prediction"). This module implements
the following **interpretation**, with every parameter open:

* A task instance ``P ~ q`` has ``N`` subpopulations with frequencies ``α`` (Zipf with any exponent, uniform over
  ``N``, or a user list). Subpopulation ``j`` owns a uniformly random *reference string* ``r_j ∈ [A]^L`` over an
  alphabet of ``A`` symbols, and a uniformly random *next symbol* ``y_j ∈ [A]``.
* An example from subpopulation ``j`` is a *noisy copy* of ``r_j`` (every symbol independently resampled
  uniformly from the alphabet with probability ``noise``; a resample may redraw the same symbol) followed by
  ``y_j``: the sequence ``(x_1, …, x_L, y_j)``.
* The task is to predict the next symbol ``y_j`` from the prefix ``x_{1:L}``. With a single training copy of a
  subpopulation (a *singleton*), a learner cannot tell the noisy symbols from the reference's, so an accurate
  learner has to keep the whole copy (Brown et al.'s mechanism, docs/theory.md, "Next-symbol prediction").

Given ``P``, the symbols of a copy are independent, each equal to the reference's with probability
``1 − noise + noise/A`` and to any other symbol with probability ``noise/A``; :func:`symbol_entropy_bits` is their
entropy. The reconstruction bound (docs/theory.md, "From an attack to a memorization bound", generalized from bits
to ``A`` symbols by Fano's inequality; a
derivation of this project, not a statement of the paper): a reconstruction ``X̂`` of ``m`` symbols computed from
the model (and, optionally, from the copy's own earlier symbols, by the chain rule) with mean symbol error ``ē``
gives

    I(X_i; M | P) ≥ Σ_k [H − h2(e_k) − e_k log2(A − 1)] ≥ m · (H − h2(ē) − ē log2(A − 1)),

by concavity. For ``A = 2`` and ``noise = 1`` (uniform free bits) this is exactly the bound of docs/theory.md ("From
an attack to a memorization bound"), ``m (1 − h2(ē))``.
The bound is 0 at ``ē = noise (A − 1)/A``, the error of a model that knows the reference but none of the noise:
only reproduced noise counts. Why it holds (derived): the symbols of a copy are independent given ``P``, so
``I(X; M | P) = Σ_k I(X_k; M | X_{<k}, P)``; a reconstruction ``X̂_k`` computed from ``M`` and ``X_{<k}`` (teacher
forcing) or from ``M`` and a fixed prompt ``X_{<c}`` (greedy continuation) then gives each term
``≥ H − h2(e_k) − e_k log2(A − 1)`` by Fano's inequality. :class:`NoiseRecovery` estimates ``e_k`` per position,
pooled over sequences (the average over exchangeable singletons of their bounds is at least the bound at the
average error, by concavity).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .._math import binary_entropy
from .._random import as_generator
from .._validation import MemlensInputError, check_array, check_float, check_int, warn

__all__ = [
    "NextSymbolTask",
    "NextSymbolSample",
    "NextSymbolData",
    "NoiseRecovery",
    "subpopulation_prior",
    "make_next_symbol_task",
    "sample_sequences",
    "make_next_symbol_data",
    "find_singletons",
    "expected_singletons",
    "binary_entropy",
    "symbol_entropy_bits",
    "fano_bits_per_symbol",
    "memorized_bits_lower_bound",
    "noise_recovery",
]


# ---------------------------------------------------------------------------------------------------------------
# Task instance, samples, data set with ground truth
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class NextSymbolTask:
    """One task instance ``P ~ q``: subpopulation frequencies, reference strings and next symbols.

    Attributes
    ----------
    references : ndarray of int64, shape (N, L)
        Reference string of each subpopulation, symbols in ``[0, alphabet_size)``.
    next_symbols : ndarray of int64, shape (N,)
        The symbol that follows every copy of subpopulation ``j`` (the label to predict).
    frequencies : ndarray of float64, shape (N,)
        Mixture weights ``α`` (sum to 1).
    alphabet_size : int
        ``A``.
    noise : float
        Probability that a symbol of a copy is resampled uniformly from the alphabet.
    """

    references: np.ndarray
    next_symbols: np.ndarray
    frequencies: np.ndarray
    alphabet_size: int
    noise: float

    @property
    def n_subpopulations(self) -> int:
        return int(self.references.shape[0])

    @property
    def prefix_length(self) -> int:
        """``L``, the number of noisy symbols before the next symbol."""
        return int(self.references.shape[1])

    @property
    def sequence_length(self) -> int:
        """``L + 1``: the noisy prefix and the next symbol."""
        return self.prefix_length + 1

    @property
    def entropy_per_symbol(self) -> float:
        """``H(x_k | P)`` in bits for one prefix symbol of a copy (see :func:`symbol_entropy_bits`)."""
        return symbol_entropy_bits(alphabet_size=self.alphabet_size, noise=self.noise)

    @property
    def reference_error(self) -> float:
        """Symbol error ``noise·(A−1)/A`` of a reconstruction that outputs the reference (no noise stored)."""
        return self.noise * (self.alphabet_size - 1) / self.alphabet_size


@dataclass(frozen=True, eq=False)
class NextSymbolSample:
    """Sequences drawn from a task, with the noise recorded as ground truth.

    Attributes
    ----------
    sequences : ndarray of int64, shape (n, L + 1)
        The noisy prefix followed by the next symbol of the subpopulation.
    subpopulation : ndarray of int64, shape (n,)
        Subpopulation id of each sequence.
    resampled : ndarray of bool, shape (n, L)
        True where the prefix symbol was redrawn (the noise positions).
    changed : ndarray of bool, shape (n, L)
        True where the prefix symbol differs from the reference (resampled to another symbol).
    """

    sequences: np.ndarray
    subpopulation: np.ndarray
    resampled: np.ndarray
    changed: np.ndarray

    def __len__(self) -> int:
        return int(self.sequences.shape[0])

    @property
    def prefixes(self) -> np.ndarray:
        """``(n, L)`` noisy prefixes."""
        return self.sequences[:, :-1]

    @property
    def targets(self) -> np.ndarray:
        """``(n,)`` next symbols (the labels)."""
        return self.sequences[:, -1]

    def tokens(self, *, bos: int | None = None) -> np.ndarray:
        """The sequences as model tokens ``(n, L + 1)``, or ``(n, L + 2)`` with a beginning-of-sequence token
        ``bos`` prepended (use ``bos = alphabet_size`` and a vocabulary of ``alphabet_size + 1``)."""
        if bos is None:
            return self.sequences.copy()
        start = np.full((len(self), 1), int(bos), dtype=np.int64)
        return np.concatenate([start, self.sequences], axis=1)


@dataclass(frozen=True, eq=False)
class NextSymbolData:
    """A training set drawn from a task, its ground truth and test sets.

    Attributes
    ----------
    task : NextSymbolTask
    train : NextSymbolSample
        ``n`` training sequences, subpopulations drawn i.i.d. from the frequencies.
    counts : ndarray of int64, shape (N,)
        How many training sequences each subpopulation has.
    singletons : ndarray of int64, shape (n_singletons,)
        Indices of the training sequences whose subpopulation appears exactly once (Brown et al.'s singletons).
    tests : mapping of str to NextSymbolSample
        ``"test"`` (i.i.d. from the mixture), ``"represented"`` (subpopulation uniform over those with ≥ 1
        training sequence), ``"singles"`` (uniform over singleton subpopulations), ``"frequent"`` (uniform over
        those with ≥ ``frequent_min`` training sequences) and ``"unseen"`` (uniform over those with none); an
        empty group gives an empty sample. Test copies are fresh: they share the reference, not the noise.
    frequent_min : int
        Training count from which a subpopulation is called frequent.
    """

    task: NextSymbolTask
    train: NextSymbolSample
    counts: np.ndarray
    singletons: np.ndarray
    tests: Mapping[str, NextSymbolSample] = field(default_factory=dict)
    frequent_min: int = 3

    @property
    def singleton_subpopulations(self) -> np.ndarray:
        return np.flatnonzero(self.counts == 1)

    @property
    def frequent(self) -> np.ndarray:
        """Indices of training sequences whose subpopulation has ≥ ``frequent_min`` training sequences."""
        return np.flatnonzero(self.counts[self.train.subpopulation] >= self.frequent_min)

    def train_counts(self) -> np.ndarray:
        """``(n,)`` training count of each training sequence's subpopulation."""
        return self.counts[self.train.subpopulation]


def subpopulation_prior(n_subpopulations: int, *, prior: str = "zipf", exponent: float = 1.0) -> np.ndarray:
    """Mixture weights ``α`` of shape ``(N,)``: ``"zipf"`` (``α_j ∝ j^{−exponent}``, j = 1..N, Feldman's
    long-tailed prior) or ``"uniform"`` (``1/N``, Brown et al.'s experiments)."""
    n_subpopulations = check_int("n_subpopulations", n_subpopulations, min_value=1)
    if prior == "uniform":
        return np.full(n_subpopulations, 1.0 / n_subpopulations)
    if prior == "zipf":
        exponent = check_float("exponent", exponent, min_value=0.0)
        w = np.arange(1, n_subpopulations + 1, dtype=np.float64) ** -exponent
        return w / w.sum()
    raise MemlensInputError(f"prior must be 'zipf' or 'uniform'; got {prior!r} "
                            "(or pass frequencies=... for any other list)")


def _check_frequencies(frequencies) -> np.ndarray:
    f = check_array("frequencies", frequencies, ndim=1)
    if f.size == 0 or np.any(f < 0) or f.sum() <= 0:
        raise MemlensInputError(f"frequencies must be a non-empty list of non-negative weights with a positive sum; "
                                f"got {f.size} value(s), minimum {f.min() if f.size else None}")
    return f / f.sum()


def make_next_symbol_task(n_subpopulations: int | None = None, *, alphabet_size: int = 8, prefix_length: int = 32,
                          noise: float = 0.1, prior: str = "zipf", exponent: float = 1.0, frequencies=None,
                          seed=0) -> NextSymbolTask:
    """Draw a task instance ``P ~ q`` (module docstring: the documented interpretation of Brown et al.'s task).

    Parameters
    ----------
    n_subpopulations : int
        ``N``; may be omitted when ``frequencies`` is given.
    alphabet_size : int, >= 2
        ``A``.
    prefix_length : int, >= 1
        ``L``, symbols before the next symbol.
    noise : float in [0, 1]
        Probability that each symbol of a copy is resampled uniformly from the alphabet.
    prior, exponent : see :func:`subpopulation_prior`.
    frequencies : array of shape (N,), optional
        Any mixture weights (normalized here); overrides ``prior``.
    seed : int or numpy.random.Generator

    Returns
    -------
    NextSymbolTask
    """
    alphabet_size = check_int("alphabet_size", alphabet_size, min_value=2)
    prefix_length = check_int("prefix_length", prefix_length, min_value=1)
    noise = check_float("noise", noise, min_value=0.0, max_value=1.0)
    if frequencies is not None:
        freq = _check_frequencies(frequencies)
        if n_subpopulations is not None and check_int("n_subpopulations", n_subpopulations) != freq.size:
            raise MemlensInputError(f"n_subpopulations must equal len(frequencies)={freq.size}; got "
                                    f"{n_subpopulations} (omit it when passing frequencies)")
    elif n_subpopulations is None:
        raise MemlensInputError("n_subpopulations must be given (an integer >= 1) unless frequencies is; got None")
    else:
        freq = subpopulation_prior(n_subpopulations, prior=prior, exponent=exponent)
    rng = as_generator(seed)
    references = rng.integers(alphabet_size, size=(freq.size, prefix_length), dtype=np.int64)
    next_symbols = rng.integers(alphabet_size, size=freq.size, dtype=np.int64)
    return NextSymbolTask(references=references, next_symbols=next_symbols, frequencies=freq,
                          alphabet_size=alphabet_size, noise=noise)


def sample_sequences(task: NextSymbolTask, n: int | None = None, *, subpopulations=None,
                     seed=0) -> NextSymbolSample:
    """Draw noisy copies: ``n`` sequences with i.i.d. subpopulations, or one per entry of ``subpopulations``.

    Returns
    -------
    NextSymbolSample
        ``sequences (n, L + 1)``, with the resampled positions and the changed positions recorded.
    """
    rng = as_generator(seed)
    if subpopulations is None:
        if n is None:
            raise MemlensInputError("n must be given (the number of sequences) unless subpopulations is; got None")
        n = check_int("n", n, min_value=0)
        sub = rng.choice(task.n_subpopulations, size=n, p=task.frequencies).astype(np.int64)
    else:
        sub = np.asarray(subpopulations, dtype=np.int64).reshape(-1)
        if sub.size and (sub.min() < 0 or sub.max() >= task.n_subpopulations):
            raise MemlensInputError(f"subpopulations must lie in [0, {task.n_subpopulations}); got range "
                                    f"[{sub.min()}, {sub.max()}]")
    m, length = sub.size, task.prefix_length
    resampled = rng.random((m, length)) < task.noise
    values = rng.integers(task.alphabet_size, size=(m, length), dtype=np.int64)
    ref = task.references[sub]
    prefix = np.where(resampled, values, ref)
    sequences = np.concatenate([prefix, task.next_symbols[sub][:, None]], axis=1)
    return NextSymbolSample(sequences=sequences, subpopulation=sub, resampled=resampled, changed=prefix != ref)


def find_singletons(subpopulation, n_subpopulations: int | None = None) -> np.ndarray:
    """Indices of the examples whose subpopulation appears exactly once in ``subpopulation`` ``(n,)``."""
    sub = np.asarray(subpopulation, dtype=np.int64)
    counts = np.bincount(sub, minlength=n_subpopulations or 0)
    return np.flatnonzero(counts[sub] == 1)


def make_next_symbol_data(n: int, *, n_subpopulations: int | None = None, alphabet_size: int = 8,
                          prefix_length: int = 32, noise: float = 0.1, prior: str = "zipf", exponent: float = 1.0,
                          frequencies=None, n_test: int = 500, frequent_min: int = 3, seed=0) -> NextSymbolData:
    """A task instance, ``n`` training sequences and five test sets, with ground truth.

    ``n_subpopulations`` defaults to ``n`` (as Brown et al. set ``N = n``). Other parameters: see
    :func:`make_next_symbol_task`. The task, the training set and each test set draw from independent streams
    spawned from ``seed``.
    """
    n = check_int("n", n, min_value=1)
    n_test = check_int("n_test", n_test, min_value=0)
    frequent_min = check_int("frequent_min", frequent_min, min_value=2)
    if n_subpopulations is None and frequencies is None:
        n_subpopulations = n
    rng = as_generator(seed)
    streams = rng.spawn(7)
    task = make_next_symbol_task(n_subpopulations, alphabet_size=alphabet_size, prefix_length=prefix_length,
                                 noise=noise, prior=prior, exponent=exponent, frequencies=frequencies,
                                 seed=streams[0])
    train = sample_sequences(task, n, seed=streams[1])
    counts = np.bincount(train.subpopulation, minlength=task.n_subpopulations).astype(np.int64)
    groups = {
        "represented": np.flatnonzero(counts >= 1),
        "singles": np.flatnonzero(counts == 1),
        "frequent": np.flatnonzero(counts >= frequent_min),
        "unseen": np.flatnonzero(counts == 0),
    }
    tests = {"test": sample_sequences(task, n_test, seed=streams[2])}
    for stream, (name, members) in zip(streams[3:], groups.items()):
        sub = stream.choice(members, size=n_test) if members.size else np.zeros(0, dtype=np.int64)
        tests[name] = sample_sequences(task, subpopulations=sub, seed=stream)
    return NextSymbolData(task=task, train=train, counts=counts, singletons=find_singletons(train.subpopulation),
                          tests=MappingProxyType(tests), frequent_min=frequent_min)


def expected_singletons(frequencies, *, n: int) -> float:
    """Expected number of subpopulations seen exactly once in ``n`` i.i.d. draws: ``n Σ_j α_j (1 − α_j)^{n−1}``."""
    f = _check_frequencies(frequencies)
    n = check_int("n", n, min_value=1)
    if n == 1:
        return 1.0
    with np.errstate(divide="ignore"):
        return float(n * np.sum(f * np.exp((n - 1) * np.log1p(-f))))


# ---------------------------------------------------------------------------------------------------------------
# Information: entropy of the noise, Fano / h2 bound on memorized bits
# ---------------------------------------------------------------------------------------------------------------

def symbol_entropy_bits(*, alphabet_size: int, noise: float) -> float:
    """Entropy in bits of one symbol of a noisy copy given the task: the reference symbol with probability
    ``1 − noise + noise/A``, each other symbol with probability ``noise/A``."""
    a = check_int("alphabet_size", alphabet_size, min_value=2)
    noise = check_float("noise", noise, min_value=0.0, max_value=1.0)
    p_ref, p_other = 1.0 - noise + noise / a, noise / a
    h = -p_ref * math.log2(p_ref) if p_ref > 0 else 0.0
    if p_other > 0:
        h -= (a - 1) * p_other * math.log2(p_other)
    return h


def fano_bits_per_symbol(error, *, alphabet_size: int, entropy: float) -> np.ndarray | float:
    """Lower bound ``max(0, H − h2(e) − e log2(A − 1))`` in bits on ``I(x_k; x̂_k | P)`` for one symbol of entropy
    ``H`` reconstructed with error probability ``e`` (Fano's inequality; for ``A = 2`` it is ``H − h2(e)``)."""
    a = check_int("alphabet_size", alphabet_size, min_value=2)
    e = np.asarray(error, dtype=np.float64)
    if np.any((e < 0) | (e > 1) | ~np.isfinite(e)):
        raise MemlensInputError(f"error must be a probability in [0, 1]; got range [{np.nanmin(e)}, {np.nanmax(e)}]")
    out = np.maximum(0.0, entropy - binary_entropy(e) - e * math.log2(a - 1))
    return float(out) if out.ndim == 0 else out


def memorized_bits_lower_bound(mean_error, *, n_symbols: int, alphabet_size: int, noise: float) -> float:
    """``m · max(0, H − h2(ē) − ē log2(A − 1))`` bits: the lower bound on ``I(X_i; M | P)`` from a reconstruction of
    ``m = n_symbols`` symbols of a copy with mean symbol error ``ē`` (docs/theory.md, generalized by Fano; module
    docstring). With ``alphabet_size=2, noise=1`` it is the bound of docs/theory.md ("From an attack to a memorization bound"), ``m (1 − h2(ē))``."""
    n_symbols = check_int("n_symbols", n_symbols, min_value=0)
    h = symbol_entropy_bits(alphabet_size=alphabet_size, noise=noise)
    return n_symbols * float(fano_bits_per_symbol(mean_error, alphabet_size=alphabet_size, entropy=h))


@dataclass(frozen=True, eq=False)
class NoiseRecovery:
    """How much of each copy's noise a reconstruction reproduces, and the memorized bits it proves.

    Attributes
    ----------
    errors : ndarray of bool, shape (n, m)
        True where the reconstruction differs from the copy's symbol (positions ``start .. start+m−1``).
    changed : ndarray of bool, shape (n, m)
        True where the copy's symbol differs from its reference (noise that changed the symbol).
    matches_reference : ndarray of bool, shape (n, m)
        True where the reconstruction equals the reference symbol.
    alphabet_size, noise : task parameters; ``start`` : first reconstructed position.
    """

    errors: np.ndarray
    changed: np.ndarray
    matches_reference: np.ndarray
    alphabet_size: int
    noise: float
    start: int = 0

    @property
    def n_symbols(self) -> int:
        return int(self.errors.shape[1])

    @property
    def symbol_error(self) -> np.ndarray:
        """``(n,)`` fraction of reconstructed symbols that differ from the copy (lower = more memorized)."""
        return self.errors.mean(axis=1) if self.n_symbols else np.full(self.errors.shape[0], np.nan)

    @property
    def mean_error(self) -> float:
        """Symbol error pooled over all sequences and positions (the ``ē`` of the bound)."""
        return float(self.errors.mean()) if self.errors.size else float("nan")

    @property
    def noise_recall(self) -> float:
        """Fraction of changed (noise) symbols that the reconstruction reproduces, pooled over sequences; a model
        that knows only the reference scores 0, one that stores the copy scores 1."""
        n_changed = int(self.changed.sum())
        if n_changed == 0:
            return float("nan")
        return float((self.changed & ~self.errors).sum() / n_changed)

    @property
    def reference_at_noise(self) -> float:
        """Fraction of changed symbols where the reconstruction outputs the reference symbol instead."""
        n_changed = int(self.changed.sum())
        return float((self.changed & self.matches_reference).sum() / n_changed) if n_changed else float("nan")

    @property
    def entropy_bits(self) -> float:
        """``m · H``: the copy's entropy given the task over the reconstructed positions (the most that can be
        memorized there), bits per sequence."""
        return self.n_symbols * symbol_entropy_bits(alphabet_size=self.alphabet_size, noise=self.noise)

    @property
    def error_by_position(self) -> np.ndarray:
        """``(m,)`` symbol error at each reconstructed position, pooled over sequences."""
        return self.errors.mean(axis=0) if self.errors.shape[0] else np.full(self.n_symbols, np.nan)

    def bits(self, rows=None) -> float:
        """Lower bound in bits on the memorized information ``I(X_i; M | P)`` of the average sequence:
        ``Σ_k max(0, H − h2(ē_k) − ē_k log2(A − 1))`` with ``ē_k`` the error at position ``k`` pooled over
        sequences (concavity makes the average over sequences of the per-sequence bound at least this);
        ``rows`` restricts it to some sequences. It is at least :meth:`bits_pooled`."""
        err = self.errors if rows is None else self.errors[rows]
        if err.shape[0] == 0:
            return float("nan")
        h = symbol_entropy_bits(alphabet_size=self.alphabet_size, noise=self.noise)
        return float(np.sum(fano_bits_per_symbol(err.mean(axis=0), alphabet_size=self.alphabet_size, entropy=h)))

    def bits_pooled(self) -> float:
        """Spec §1.6's form ``m · max(0, H − h2(ē) − ē log2(A − 1))`` with ``ē`` pooled over sequences and
        positions (for ``A = 2``, ``noise = 1``: ``m (1 − h2(ē))``)."""
        e = self.mean_error
        if not np.isfinite(e):
            return float("nan")
        return memorized_bits_lower_bound(e, n_symbols=self.n_symbols, alphabet_size=self.alphabet_size,
                                          noise=self.noise)

    def bits_ci(self, *, level: float = 0.95, n_boot: int = 200, seed=0) -> tuple[float, float]:
        """Percentile bootstrap interval of :meth:`bits` over sequences (NaN with fewer than 2 sequences)."""
        n = self.errors.shape[0]
        if n < 2:
            return (float("nan"), float("nan"))
        level = check_float("level", level, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
        rng = as_generator(seed)
        boots = np.array([self.bits(rng.integers(n, size=n)) for _ in range(check_int("n_boot", n_boot,
                                                                                        min_value=1))])
        return (float(np.quantile(boots, (1 - level) / 2)), float(np.quantile(boots, (1 + level) / 2)))

    def summary(self) -> dict:
        """Every headline number, JSON-ready."""
        lo, hi = self.bits_ci()
        bits = self.bits()
        return {"n_sequences": int(self.errors.shape[0]), "n_symbols": self.n_symbols,
                "symbol_error": self.mean_error, "noise_recall": self.noise_recall,
                "reference_at_noise": self.reference_at_noise, "bits_lower_bound": bits,
                "bits_ci95": [lo, hi], "bits_pooled": self.bits_pooled(), "entropy_bits": self.entropy_bits,
                "fraction_of_entropy": bits / self.entropy_bits if self.entropy_bits > 0 else float("nan")}


def noise_recovery(reconstruction, sample: NextSymbolSample, task: NextSymbolTask, *, start: int = 0,
                   index=None) -> NoiseRecovery:
    """Compare a reconstruction of prefix symbols ``start .. start+m−1`` with the copies and their noise.

    Parameters
    ----------
    reconstruction : array of int, shape (n, m)
        Symbols produced from the model (greedy continuation of the copy's first ``start`` symbols, or
        teacher-forced predictions); ``m ≤ L − start``.
    sample : NextSymbolSample
        The copies (the training set for memorization; fresh copies as a control).
    task : NextSymbolTask
    index : array of int, optional
        Rows of ``sample`` that ``reconstruction`` refers to (default: all).

    Returns
    -------
    NoiseRecovery
    """
    rec = np.asarray(reconstruction)
    if rec.ndim != 2 or not np.issubdtype(rec.dtype, np.integer):
        raise MemlensInputError(f"reconstruction must be a 2-d integer array (n, m); got shape {rec.shape}, "
                                f"dtype {rec.dtype}")
    start = check_int("start", start, min_value=0, max_value=task.prefix_length)
    idx = np.arange(len(sample)) if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
    m = rec.shape[1]
    if rec.shape[0] != idx.size or start + m > task.prefix_length:
        raise MemlensInputError(f"reconstruction must have shape ({idx.size}, ≤ {task.prefix_length - start}) for "
                                f"start={start}; got {rec.shape}")
    if idx.size == 0:
        warn("noise_recovery got no sequences: every summary is NaN")
    cols = slice(start, start + m)
    copy = sample.prefixes[idx, cols]
    ref = task.references[sample.subpopulation[idx], cols]
    return NoiseRecovery(errors=rec != copy, changed=sample.changed[idx, cols], matches_reference=rec == ref,
                         alphabet_size=task.alphabet_size, noise=task.noise, start=start)
