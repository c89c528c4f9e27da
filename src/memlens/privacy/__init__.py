"""Privacy: the DP-SGD accountant (pure functions over Opacus) beside the empirical side (ε lower bounds that
attacks prove, Jagielski et al. 2020; the one-run audit of Steinke, Nasr & Jagielski 2023, and its paired form
over a population's target models, :mod:`memlens.privacy.paired`)."""
from .accountant import ACCOUNTANTS, DPConfig, accountant_epsilon, check_dp_target, dp_plan, noise_multiplier_for
from .empirical import (
    EpsilonLowerBound,
    OneRunAudit,
    PrivacyAudit,
    clopper_pearson,
    empirical_epsilon,
    epsilon_from_counts,
    one_run_audit,
    one_run_epsilon,
    one_run_p_value,
    privacy_audit,
)
from .paired import PairedOneRunAudit, match_pairs, paired_epsilon, paired_one_run_audit

__all__ = [
    "ACCOUNTANTS", "DPConfig", "accountant_epsilon", "check_dp_target", "dp_plan", "noise_multiplier_for",
    "EpsilonLowerBound", "OneRunAudit", "PrivacyAudit", "clopper_pearson", "empirical_epsilon", "epsilon_from_counts",
    "one_run_audit", "one_run_epsilon", "one_run_p_value", "privacy_audit",
    "PairedOneRunAudit", "match_pairs", "paired_epsilon", "paired_one_run_audit",
]
