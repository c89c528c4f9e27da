"""Brown et al.'s statements as functions (memlens.tasks.brown_bounds): hand-computed values, simulation of the
singleton count, and the DP cap."""
import math

import numpy as np
import pytest

from memlens import MemlensInputError
from memlens.tasks.brown_bounds import (
    cluster_labeling_target,
    dp_information_cap_bits,
    min_epsilon_for_bits,
    next_symbol_target,
)
from memlens.tasks.clusters import make_cluster_labeling


def test_cluster_target_by_hand():
    t = cluster_labeling_target(n=4, d=10, rho=0.2)
    assert t.expected_singletons == pytest.approx(4 * (3 / 4) ** 3)          # 1.6875
    assert t.bits_per_singleton == pytest.approx(8.0)
    assert t.total_bits == pytest.approx(13.5)
    assert t.fraction(4.0) == pytest.approx(0.5)
    assert "Conjecture 4.1" in t.status


def test_cluster_target_matches_the_generator():
    """E|S| and the free bits against instances drawn by make_cluster_labeling (n = N = 200, d = 60)."""
    singles, free = [], []
    for s in range(40):
        data = make_cluster_labeling(n=200, d=60, seed=s)
        singles.append(data.singletons.size)
        free.append(60 - data.instance.n_fixed.mean())
    rho = data.instance.rho
    t = cluster_labeling_target(n=200, d=60, rho=rho)
    se = np.std(singles) / math.sqrt(len(singles))
    assert abs(np.mean(singles) - t.expected_singletons) < 4 * se
    assert abs(np.mean(free) - t.bits_per_singleton) < 4 * np.std(free) / math.sqrt(len(free)) + 0.05


def test_next_symbol_target_by_hand():
    t = next_symbol_target(np.ones(2), n=2, prefix_length=3, alphabet_size=2, noise=1.0)
    assert t.expected_singletons == pytest.approx(2 * 0.5 * 0.5 * 2)        # both seen once w.p. 1/2: E|S| = 1
    assert t.bits_per_singleton == pytest.approx(3.0)                      # uniform bits
    assert "proved" in t.status


def test_dp_cap_and_its_inverse():
    assert dp_information_cap_bits(1.0) == pytest.approx(1 / math.log(2))
    assert dp_information_cap_bits(0.5, n_examples=10, neighbours="add-remove") == pytest.approx(10 / math.log(2))
    for b in (0.0, 3.0, 600.0):
        assert dp_information_cap_bits(min_epsilon_for_bits(b)) == pytest.approx(b)
        assert dp_information_cap_bits(min_epsilon_for_bits(b, neighbours="add-remove"),
                                       neighbours="add-remove") == pytest.approx(b)
    with pytest.raises(MemlensInputError, match="neighbours"):
        dp_information_cap_bits(1.0, neighbours="swap")
    with pytest.raises(MemlensInputError, match="epsilon"):
        dp_information_cap_bits(-1.0)


def test_dp_cap_holds_for_randomized_response():
    """Randomized response on one uniform bit is exactly ε-DP; its mutual information is below ε log2 e."""
    for eps in (0.1, 1.0, 3.0):
        p = math.exp(eps) / (1 + math.exp(eps))
        mi = 1 - (-(p * math.log2(p) + (1 - p) * math.log2(1 - p)))
        assert mi <= dp_information_cap_bits(eps) + 1e-12
