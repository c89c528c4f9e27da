"""Brown et al.'s memorization statements as functions: what an accurate learner must store, and what differential
privacy lets it store.

Brown, Bun, Feldman, Smith & Talwar (STOC 2021) prove, for next-symbol prediction and for hypercube cluster
labeling, that every ε-suboptimal learner has ``I(X; M | P) = Ω(n d)``; for next-symbol prediction moreover a set
``S`` of singletons with ``E|S| = Ω(n)`` is memorized almost whole, ``I(X_S; M | P) = (1 − o(1)) H(X_S | P)``, and
the same is conjectured for cluster labeling (their Conjecture 4.1; only ``Ω(n d)`` is proved there). The paper
states these asymptotically: the constant of ``Ω(n d)`` and the ``o(1)`` are not given in a form this project can
evaluate (docs/theory.md, "Memorization of irrelevant bits"), so no function here pretends to return them.

What *is* computable exactly, and what the functions return:

* :func:`cluster_labeling_target` and :func:`next_symbol_target` — the right-hand side ``H(X_S | P)`` of the
  whole-sample statement for the tasks as memlens generates them (:mod:`memlens.tasks.clusters`,
  :mod:`memlens.tasks.next_symbol`): the expected number of singletons times the entropy, given ``P``, of one
  singleton's example. For cluster labeling we count the ``d − |F_j|`` free coordinates (the "irrelevant" bits; the
  label's ``≤ log2 N`` bits are left out); for next-symbol prediction the ``L`` noisy symbols of the copy. This is
  the amount a learner must store up to the factor ``(1 − o(1))`` — the scale that a measured lower bound (an
  attack's bits, :func:`memlens.measures.information_lower_bound`) is to be read against.
* :func:`dp_information_cap_bits` and :func:`min_epsilon_for_bits` — the quantitative side of their DP corollary
  (our derivation, stated for pure ε-DP): if ``M = A(X)`` is ε-DP then for every example
  ``I(X_i; M | P) ≤ I(X_i; M | X_{−i}, P) ≤ ε`` nats (the examples are independent given ``P``, and under ε-DP the
  density of ``M`` changes by at most ``e^ε`` when ``X_i`` changes, so every Kullback–Leibler term of the mutual
  information is at most ε); by the chain rule ``I(X; M | P) ≤ n ε`` nats. Hence a model shown to hold ``b`` bits
  about one example cannot be ε-DP for any ``ε < b ln 2``. This is for ε-DP under *replace-one* neighbours; a
  guarantee under *add/remove* neighbours (Opacus's DP-SGD, memlens's DP runs) implies replace-one with ``2ε``, so
  the cap doubles (``neighbours="add-remove"``). (For (ε, δ)-DP with δ > 0 no bound of this form holds without
  further terms; none is given.)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .._validation import MemlensInputError, check_array, check_float, check_int
from .next_symbol import expected_singletons as _expected_singletons_freq
from .next_symbol import symbol_entropy_bits

__all__ = ["WholeSampleTarget", "cluster_labeling_target", "next_symbol_target", "dp_information_cap_bits",
           "min_epsilon_for_bits"]

LOG2E = 1.0 / math.log(2.0)


@dataclass(frozen=True)
class WholeSampleTarget:
    """``H(X_S | P)``: the bits an accurate learner must memorize about its singletons, up to ``(1 − o(1))``.

    Attributes
    ----------
    task : str
    n : int
        Training examples.
    expected_singletons : float
        ``E|S|``: training examples whose subpopulation occurs once.
    bits_per_singleton : float
        Entropy given ``P`` of one singleton's example (the part the statement counts, see the module docstring).
    total_bits : float
        ``expected_singletons · bits_per_singleton``.
    status : str
        What the paper proves for this task.
    """

    task: str
    n: int
    expected_singletons: float
    bits_per_singleton: float
    total_bits: float
    status: str

    def fraction(self, measured_bits_per_singleton: float) -> float:
        """A measured lower bound per singleton as a fraction of the target (1 = the whole singleton stored)."""
        return float(measured_bits_per_singleton) / self.bits_per_singleton if self.bits_per_singleton else math.nan

    def to_dict(self) -> dict:
        return asdict(self)


def cluster_labeling_target(*, n: int, d: int, rho: float, n_clusters: int | None = None) -> WholeSampleTarget:
    """``H(X_S | P)`` of the subcube cluster-labeling task (:func:`memlens.tasks.make_cluster_labeling`).

    ``N = n_clusters`` (default ``n``) clusters drawn uniformly; each fixes every coordinate independently with
    probability ``ρ``, so a singleton's example has ``d (1 − ρ)`` uniformly random free coordinates on average;
    ``E|S| = n (1 − 1/N)^{n−1}``.
    """
    n = check_int("n", n, min_value=1)
    d = check_int("d", d, min_value=1)
    rho = check_float("rho", rho, min_value=0.0, max_value=1.0)
    N = n if n_clusters is None else check_int("n_clusters", n_clusters, min_value=1)
    singles = n * (1.0 - 1.0 / N) ** (n - 1) if N > 1 else float(n == 1)
    bits = d * (1.0 - rho)
    return WholeSampleTarget("cluster labeling (subcube)", n, singles, bits, singles * bits,
                             "Ω(n d) proved for ε-suboptimal learners; the whole-sample (1 − o(1)) H(X_S | P) is "
                             "Conjecture 4.1")


def next_symbol_target(frequencies, *, n: int, prefix_length: int, alphabet_size: int,
                       noise: float) -> WholeSampleTarget:
    """``H(X_S | P)`` of next-symbol prediction (:func:`memlens.tasks.make_next_symbol_task`): ``E|S|`` from the
    subpopulation frequencies ``(N,)`` times ``L · H(symbol | P)`` for a noisy copy of ``L`` symbols."""
    f = check_array("frequencies", frequencies, ndim=1, dtype=np.float64)
    n = check_int("n", n, min_value=1)
    L = check_int("prefix_length", prefix_length, min_value=1)
    singles = _expected_singletons_freq(f, n=n)
    bits = L * symbol_entropy_bits(alphabet_size=alphabet_size, noise=noise)
    return WholeSampleTarget("next-symbol prediction", n, singles, bits, singles * bits,
                             "proved: a set of singletons with E|S| = Ω(n) has I(X_S; M | P) = (1 − o(1)) H(X_S | P)")


NEIGHBOURS = {"replace": 1.0, "add-remove": 2.0}


def _factor(neighbours: str) -> float:
    if neighbours not in NEIGHBOURS:
        raise MemlensInputError(f"neighbours must be 'replace' or 'add-remove' (the DP guarantee's neighbouring "
                                f"datasets); got {neighbours!r}", param="neighbours")
    return NEIGHBOURS[neighbours]


def dp_information_cap_bits(epsilon: float, *, n_examples: int = 1, neighbours: str = "replace") -> float:
    """Upper bound ``n ε log2 e`` on ``I(X; M | P)`` in bits for a pure ε-DP learner (``2 n ε log2 e`` for a
    guarantee under add/remove neighbours; module docstring; our derivation)."""
    epsilon = check_float("epsilon", epsilon, min_value=0.0)
    n_examples = check_int("n_examples", n_examples, min_value=1)
    return _factor(neighbours) * n_examples * epsilon * LOG2E


def min_epsilon_for_bits(bits_per_example: float, *, neighbours: str = "replace") -> float:
    """The smallest pure-DP ε compatible with a model holding ``bits_per_example`` bits about one example:
    ``b ln 2`` (``b ln 2 / 2`` under add/remove neighbours; the inverse of :func:`dp_information_cap_bits`)."""
    b = check_float("bits_per_example", bits_per_example, min_value=0.0)
    return b * math.log(2.0) / _factor(neighbours)
