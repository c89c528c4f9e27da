"""Attacks: membership inference (loss, LiRA, RMIA, shadow classifier) and reconstruction (sign attack,
coordinate ascent). Membership scores: higher = more likely a member."""
from .external import load_external, population_from_logits, population_from_signals
from .label_only import calibrated_label_only, label_only_attack, label_robustness
from .membership import (  # the families of attacks, gathered in one namespace
    ATTACKS,
    AllTargetsResult,
    AttackResult,
    attack_all_targets,
    calibrated_loss_attack,
    lira,
    loss_attack,
    rmia,
    shadow_attack,
)
from .reconstruction import ReconstructionResult, coordinate_ascent, log_prob_scorer, sign_attack

__all__ = [
    "calibrated_label_only", "label_only_attack", "label_robustness",
    "load_external", "population_from_logits", "population_from_signals", "ATTACKS", "AllTargetsResult",
    "attack_all_targets", "AttackResult", "calibrated_loss_attack", "lira", "loss_attack", "rmia",
    "shadow_attack", "coordinate_ascent", "log_prob_scorer", "ReconstructionResult", "sign_attack",
]
from .extraction import (
    CanaryExtractionResult,
    ContinuationResult,
    RankingScores,
    approximate_memorization,
    canary_extraction,
    continuations,
    discoverable_memorization,
    edit_similarity,
    generate_samples,
    ranking_attack,
    sample_continue,
    verbatim_matches,
    zlib_entropy,
)

__all__ += [
    "approximate_memorization", "canary_extraction", "CanaryExtractionResult", "ContinuationResult",
    "continuations", "discoverable_memorization", "edit_similarity", "generate_samples", "ranking_attack",
    "RankingScores", "sample_continue", "verbatim_matches", "zlib_entropy",
]
from .extraction import bleu

__all__ += ["bleu"]
from .extraction import search_secrets

__all__ += ["search_secrets"]
