"""memlens.evaluation: attack scores to numbers with uncertainty (ROC, AUC, TPR@FPR, CIs, empirical ε)."""

from .metrics import (DEFAULT_FPRS, AggregateResult, BootstrapResult, ConfidenceInterval, RocCurve,  # noqa: E402
                      aggregate, auc_null_stderr, bootstrap_ci, bootstrap_metrics, roc, roc_auc, tpr_at_fpr,
                      tpr_at_fpr_from_roc)
from .privacy import (EpsilonLowerBound, OneRunAudit, PrivacyAudit, clopper_pearson,  # noqa: E402
                      empirical_epsilon, epsilon_from_counts, one_run_audit, one_run_epsilon, one_run_p_value,
                      privacy_audit)

__all__ = [*globals().get("__all__", []), "DEFAULT_FPRS", "AggregateResult", "BootstrapResult",
           "ConfidenceInterval", "RocCurve", "aggregate", "auc_null_stderr", "bootstrap_ci", "bootstrap_metrics",
           "roc", "roc_auc", "tpr_at_fpr", "tpr_at_fpr_from_roc", "EpsilonLowerBound", "OneRunAudit",
           "PrivacyAudit", "clopper_pearson", "empirical_epsilon", "epsilon_from_counts", "one_run_audit",
           "one_run_epsilon", "one_run_p_value", "privacy_audit"]
