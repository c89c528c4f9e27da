"""Measures: pure functions from a Population (or arrays) to per-example scores (higher = more memorized)."""
from .feldman_zhang import (
    SIGNAL_SIGN,
    HighInfluencePairs,
    InfluenceResult,
    MemorizationResult,
    high_influence_pairs,
    influence,
    influence_from_arrays,
    memorization,
    memorization_from_arrays,
    worst_case_stderr,
)

__all__ = [
    "SIGNAL_SIGN",
    "HighInfluencePairs",
    "InfluenceResult",
    "MemorizationResult",
    "high_influence_pairs",
    "influence",
    "influence_from_arrays",
    "memorization",
    "memorization_from_arrays",
    "worst_case_stderr",
]

from .loo import LOOMemorizationResult, loo_memorization  # noqa: E402

__all__ = [*globals().get("__all__", []), "LOOMemorizationResult", "loo_memorization"]

from .information import InformationBound, binary_entropy, fano_bits, information_lower_bound  # noqa: E402

__all__ = [*globals().get("__all__", []), "InformationBound", "binary_entropy", "fano_bits",
           "information_lower_bound"]
