"""memlens.attacks."""

from .external import load_external, population_from_logits, population_from_signals  # noqa: E402
from .membership import (ATTACKS, AllTargetsResult, AttackResult, attack_all_targets,  # noqa: E402
                         calibrated_loss_attack, lira, loss_attack, rmia, shadow_attack)

__all__ = [*globals().get("__all__", []), "ATTACKS", "AllTargetsResult", "AttackResult", "attack_all_targets",
           "calibrated_loss_attack", "lira", "loss_attack", "rmia", "shadow_attack", "load_external",
           "population_from_logits", "population_from_signals"]

from .reconstruction import ReconstructionResult, coordinate_ascent, log_prob_scorer, sign_attack  # noqa: E402

__all__ = [*globals().get("__all__", []), "ReconstructionResult", "coordinate_ascent", "log_prob_scorer",
           "sign_attack"]
