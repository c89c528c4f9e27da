"""Evaluation: attack scores to numbers with uncertainty (ROC, AUC, TPR@FPR, CIs, empirical ε)."""
from .metrics import (
    DEFAULT_FPRS, aggregate, AggregateResult, auc_null_stderr, bootstrap_ci, bootstrap_metrics, BootstrapResult,
    ConfidenceInterval, roc, roc_auc, RocCurve, tpr_at_fpr, tpr_at_fpr_from_roc,
)
from .privacy import (
    clopper_pearson, empirical_epsilon, epsilon_from_counts, EpsilonLowerBound, one_run_audit, one_run_epsilon,
    one_run_p_value, OneRunAudit, privacy_audit, PrivacyAudit,
)

__all__ = [
    "DEFAULT_FPRS", "aggregate", "AggregateResult", "auc_null_stderr", "bootstrap_ci", "bootstrap_metrics",
    "BootstrapResult", "ConfidenceInterval", "roc", "roc_auc", "RocCurve", "tpr_at_fpr", "tpr_at_fpr_from_roc",
    "clopper_pearson", "empirical_epsilon", "epsilon_from_counts", "EpsilonLowerBound", "one_run_audit",
    "one_run_epsilon", "one_run_p_value", "OneRunAudit", "privacy_audit", "PrivacyAudit",
]
from .canary_audit import CanaryAudit, canary_masks, one_run_canary_audit

__all__ += ["CanaryAudit", "canary_masks", "one_run_canary_audit"]
