"""Lower bounds on the information a model holds about its training examples, from a reconstruction.

Brown, Bun, Feldman, Smith, Talwar (STOC 2021, arXiv:2012.06421) measure memorization by the conditional
mutual information ``I(X; M | P)`` between the training set and the model given the data distribution
(docs/theory.md, "Memorization of irrelevant bits"). A reconstruction attack turns into a lower bound on it
(docs/theory.md, "From an attack to a memorization bound", derived for this
project): the attack's output ``X̂_i`` is a function of the model, so by data processing
``I(X_i; M | P) ≥ I(X_i; X̂_i | P)``. On a set ``K_i`` of coordinates that are independent given ``P``
(the free coordinates of a subcube cluster), with ``H_k`` the entropy of bit ``k`` given ``P`` and
``e_k = Pr[X̂_ik ≠ X_ik]``, Fano's inequality bit by bit gives

    I(X_i; M | P) ≥ Σ_{k∈K_i} H_k − Σ_{k∈K_i} h2(e_k) ≥ Σ_{k∈K_i} H_k − m_i · h2(ē_i),

where ``m_i = |K_i|``, ``ē_i`` is the mean of ``e_k`` over ``K_i`` and the last step is the concavity of the
binary entropy ``h2``. For free bits ``H_k = 1`` and the bound is ``m_i (1 − h2(ē_i))`` bits. Example:
``m_i ≈ 826`` free bits and ``ē = 0.03`` give about 666 bits.

Independent singletons add up: ``I(X_S; M | P) ≥ Σ_{i∈S} I(X_i; M | P)`` when the ``X_i`` are independent
given ``P``, so the per-singleton bounds also sum to a bound on the whole set of singletons.

Caveat: ``ē_i`` is estimated by the observed fraction of wrong bits, so the plug-in value is an estimate of
the bound; ``bits_lower`` replaces ``ē_i`` by its one-sided Clopper–Pearson upper limit (treating the bits
as independent trials), a conservative version.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._math import binary_entropy
from .._validation import MemlensInputError, check_array, check_float, warn
from ..evaluation.intervals import clopper_pearson
from ..evaluation.metrics import mean_ci

__all__ = ["InformationBound", "binary_entropy", "information_lower_bound", "fano_bits"]


def _mean_ci(values, *, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of independent values: ``(mean, low, high)``.

    NaN values are dropped; with fewer than 2 values the interval is ``(NaN, NaN)`` (and a warning).
    """
    level = check_float("level", level, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    n_finite = int(np.isfinite(v).sum())
    if n_finite == 0:
        warn("no finite value to average; the mean and its interval are NaN")
    elif n_finite < 2:
        warn("a confidence interval needs at least 2 values; it is NaN")
    return mean_ci(v, level=level)


def fano_bits(error_probabilities, *, free=None, bit_entropy=1.0) -> np.ndarray:
    """``Σ_k H_k − Σ_k h2(e_k)`` over the coordinates in ``free``, per target, clipped at 0 (bits).

    Use when per-bit error *probabilities* are known or estimated (for instance over repeated attacks);
    with 0/1 error indicators use :func:`information_lower_bound`, which averages them first.

    Parameters
    ----------
    error_probabilities : array of float in [0, 1], shape (n_targets, d)
    free : array of bool, shape (n_targets, d), optional
        Coordinates independent given ``P`` (default: all).
    bit_entropy : float or array broadcastable to (n_targets, d), optional
        ``H_k`` in bits (1 for a uniform free bit).

    Returns
    -------
    ndarray of float64, shape (n_targets,)
    """
    e = check_array("error_probabilities", np.atleast_2d(error_probabilities), ndim=2)
    if np.any((e < 0) | (e > 1)):
        raise MemlensInputError("error_probabilities must lie in [0, 1]; got values outside that range")
    free = _free_mask(free, e.shape)
    H = np.broadcast_to(np.asarray(bit_entropy, dtype=np.float64), e.shape)
    return np.maximum(0.0, ((H - binary_entropy(e)) * free).sum(axis=1))


@dataclass(frozen=True, eq=False)
class InformationBound:
    """Per-target lower bounds on ``I(X_i; M | P)`` in bits, from reconstruction errors (Brown et al.; §1.6).

    Attributes
    ----------
    bits : ndarray, shape (n_targets,)
        ``max(0, Σ_{k∈K_i} H_k − m_i h2(ē_i))`` with the observed error rate ``ē_i`` (higher = more memorized).
    bits_lower : ndarray, shape (n_targets,)
        The same with ``ē_i`` replaced by its one-sided Clopper–Pearson upper limit at ``confidence``
        (and ``h2`` taken as 1 when that limit reaches 1/2).
    entropy_bits : ndarray, shape (n_targets,)
        ``Σ_{k∈K_i} H_k``: the target's entropy given ``P`` on those coordinates (``m_i`` for free bits).
    n_bits : ndarray of int, shape (n_targets,)
        ``m_i = |K_i|``.
    n_errors : ndarray of int, shape (n_targets,)
        Wrong bits among ``K_i``.
    error_rate : ndarray, shape (n_targets,)
        ``ē_i = n_errors / n_bits`` (NaN where ``n_bits = 0``).
    level : float
        Confidence level of ``bits_lower`` (one-sided) and of :meth:`mean_ci`.
    """

    bits: np.ndarray
    bits_lower: np.ndarray
    entropy_bits: np.ndarray
    n_bits: np.ndarray
    n_errors: np.ndarray
    error_rate: np.ndarray
    level: float

    @property
    def confidence(self) -> float:
        """The older name of :attr:`level`."""
        return self.level

    @property
    def total_bits(self) -> float:
        """``Σ_i bits_i``: a bound on ``I(X_S; M | P)`` for independent targets ``S``."""
        return float(np.sum(self.bits))

    @property
    def fraction(self) -> float:
        """``Σ_i bits_i / Σ_i entropy_bits_i``: share of the targets' entropy shown to be in the model."""
        total = float(np.sum(self.entropy_bits))
        return float(np.sum(self.bits)) / total if total > 0 else float("nan")

    def mean_ci(self, *, level: float | None = None) -> tuple[float, float, float]:
        """Mean bits per target and its Student-t interval over targets: ``(mean, low, high)``."""
        return _mean_ci(self.bits, level=self.level if level is None else level)

    def pooled_bits(self) -> float:
        """Mean entropy per target times ``1 − h2(ē)`` with ``ē`` pooled over all targets' bits (bits per
        target; valid for the average target by concavity of ``h2``)."""
        n = float(np.sum(self.n_bits))
        if n == 0:
            return float("nan")
        e = float(np.sum(self.n_errors)) / n
        per_bit = float(np.sum(self.entropy_bits)) / n
        return max(0.0, per_bit - float(binary_entropy(e))) * n / self.n_bits.size

    def summary(self) -> dict:
        mean, low, high = self.mean_ci()
        return {"bits_per_target": mean, "ci_low": low, "ci_high": high, "confidence": self.confidence,
                "bits_per_target_conservative": float(np.mean(self.bits_lower)),
                "bits_per_target_pooled": self.pooled_bits(), "entropy_bits_per_target":
                float(np.mean(self.entropy_bits)), "total_bits": self.total_bits, "fraction_of_entropy":
                self.fraction, "n_targets": int(self.bits.size)}


def _free_mask(free, shape) -> np.ndarray:
    if free is None:
        return np.ones(shape, dtype=bool)
    free = np.asarray(free)
    if free.ndim == 1:
        free = np.broadcast_to(free, shape)
    if free.shape != shape:
        raise MemlensInputError(f"free must be a boolean mask of shape {shape}; got {free.shape}")
    if free.dtype != bool:
        if not np.all(np.isin(free, (0, 1))):
            raise MemlensInputError(f"free must be boolean (True = coordinate is noise given P); got dtype "
                                    f"{free.dtype}")
        free = free.astype(bool)
    return free


def information_lower_bound(errors, *, free=None, bit_entropy=1.0, level: float | None = None,
                            confidence: float | None = None) -> InformationBound:
    """Lower bound on ``I(X_i; M | P)`` per target from a reconstruction's per-bit errors.

    Brown et al. (STOC 2021) memorization measure; bound of docs/theory.md, "From an attack to a memorization bound"
    (derived):
    ``I(X_i; M | P) ≥ Σ_{k∈K_i} H_k − m_i h2(ē_i)``, which is ``m_i (1 − h2(ē_i))`` for free bits.

    Parameters
    ----------
    errors : array of bool (or 0/1), shape (n_targets, d)
        True where the reconstruction's bit differs from the training example's
        (:meth:`~memlens.attacks.ReconstructionResult.errors`).
    free : array of bool, shape (n_targets, d) or (d,), optional, keyword-only
        The coordinates ``K_i`` that are independent given ``P`` and count toward the bound: the free
        coordinates of a subcube cluster (:meth:`~memlens.tasks.clusters.ClusterInstance.free_mask`).
        Default: all coordinates.
    bit_entropy : float or array broadcastable to (n_targets, d), keyword-only
        ``H_k`` in bits (1 for a uniform free bit; ``h2((1 − ρ)/2)`` for the ρ-correlated variant,
        :meth:`~memlens.tasks.clusters.ClusterInstance.bit_entropy`).
    level : float, keyword-only, default 0.95
        Confidence level of the conservative bound ``bits_lower`` (one-sided) and of
        :meth:`InformationBound.mean_ci`.
    confidence : float, keyword-only
        The older name of ``level``.

    Returns
    -------
    InformationBound
        Targets with no coordinate in ``K_i`` get 0 bits and a NaN error rate (with a warning).
    """
    err = np.atleast_2d(np.asarray(errors))
    if err.ndim != 2:
        raise MemlensInputError(f"errors must be a 2-d array (n_targets, d); got shape {err.shape}")
    if err.dtype != bool:
        if not (np.issubdtype(err.dtype, np.number) and np.all(np.isin(err, (0, 1)))):
            raise MemlensInputError("errors must be boolean or 0/1 (True = wrong bit); for per-bit error "
                                    "probabilities use fano_bits")
        err = err.astype(bool)
    if level is not None and confidence is not None:
        raise MemlensInputError(f"level and confidence name the same setting; got both (level={level!r}, "
                                f"confidence={confidence!r}): pass level only", param="level")
    name, level = ("confidence", confidence) if confidence is not None else ("level", 0.95 if level is None else level)
    level = check_float(name, level, min_value=0.5, max_value=1.0, min_inclusive=False, max_inclusive=False,
                        hint="(one-sided level)")
    free = _free_mask(free, err.shape)
    H = np.broadcast_to(np.asarray(bit_entropy, dtype=np.float64), err.shape)
    if np.any(H < 0) or np.any(H > 1) or np.any(np.isnan(H)):
        raise MemlensInputError("bit_entropy must lie in [0, 1] bits per coordinate")
    m = free.sum(axis=1)
    k = (err & free).sum(axis=1)
    entropy = (H * free).sum(axis=1)
    empty = m == 0
    if empty.any():
        warn(f"{int(empty.sum())} target(s) have no coordinate in `free`; their bound is 0 and error rate NaN")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(empty, np.nan, k / np.maximum(m, 1))
    h = binary_entropy(np.nan_to_num(rate))
    bits = np.maximum(0.0, entropy - m * h)
    # one-sided Clopper–Pearson upper limit of the error rate (the two-sided interval at level 2c − 1)
    _, upper = clopper_pearson(k, np.maximum(m, 1), level=2 * level - 1)
    upper = np.where(empty, 0.0, np.atleast_1d(upper))
    h_up = np.where(upper >= 0.5, 1.0, binary_entropy(np.clip(upper, 0.0, 1.0)))
    # a rate above 1/2 is informative too (flip the guess), but the conservative version does not credit it
    h_up = np.where(rate > 0.5, 1.0, h_up)
    bits_lower = np.maximum(0.0, entropy - m * h_up)
    return InformationBound(bits=bits, bits_lower=bits_lower, entropy_bits=entropy, n_bits=m.astype(np.int64),
                            n_errors=k.astype(np.int64), error_rate=rate, level=level)
