"""Measures: pure functions from a Population (or arrays) to per-example scores (higher = more memorized)."""
from .feldman_zhang import (
    SIGNAL_SIGN,
    HighInfluencePairs,
    InfluenceResult,
    MemorizationResult,
    OutPredictions,
    high_influence_pairs,
    influence,
    influence_from_arrays,
    memorization,
    memorization_from_arrays,
    out_predictions,
    worst_case_stderr,
)
from .information import InformationBound, binary_entropy, fano_bits, information_lower_bound
from .loo import LOOMemorizationResult, loo_memorization
from .noise_floor import TARGET_STDERR, NoiseFloor, models_for_stderr, noise_floor, null_masks

__all__ = [
    "SIGNAL_SIGN", "high_influence_pairs", "HighInfluencePairs", "influence", "influence_from_arrays",
    "InfluenceResult", "memorization", "memorization_from_arrays", "MemorizationResult", "worst_case_stderr",
    "loo_memorization", "LOOMemorizationResult", "binary_entropy", "fano_bits", "information_lower_bound",
    "InformationBound", "out_predictions", "OutPredictions", "NoiseFloor", "noise_floor", "null_masks", "models_for_stderr", "TARGET_STDERR",
]
from .exposure import (
    ExposureResult,
    canary_exposure,
    exposure_by_rank,
    exposure_extrapolated,
    secret_log_perplexity,
    space_log_perplexity,
)

__all__ += ["canary_exposure", "exposure_by_rank", "exposure_extrapolated", "ExposureResult",
            "secret_log_perplexity", "space_log_perplexity"]
from .counterfactual import (
    DocumentExplanations,
    counterfactual_influence,
    counterfactual_memorization,
    explain_documents,
    ngram_overlap,
)

__all__ += ["counterfactual_influence", "counterfactual_memorization", "DocumentExplanations", "explain_documents",
            "ngram_overlap"]
