"""Evaluation, a leaf: attack scores to numbers with uncertainty (ROC, AUC, TPR@FPR, bootstrap and exact intervals).

The ε lower bounds (``empirical_epsilon``, ``one_run_audit``, ...) live in :mod:`memlens.privacy` and the one-run
canary audit in :mod:`memlens.audits`; their old names here still work (resolved on first use, so this package
imports nothing above it).
"""
import importlib

from .intervals import clopper_pearson
from .metrics import (
    DEFAULT_FPRS,
    AggregateResult,
    BootstrapResult,
    ConfidenceInterval,
    RocCurve,
    aggregate,
    auc_null_stderr,
    bootstrap_ci,
    bootstrap_metrics,
    roc,
    roc_auc,
    tpr_at_fpr,
    tpr_at_fpr_from_roc,
)

__all__ = [
    "DEFAULT_FPRS", "aggregate", "AggregateResult", "auc_null_stderr", "bootstrap_ci", "bootstrap_metrics",
    "BootstrapResult", "ConfidenceInterval", "roc", "roc_auc", "RocCurve", "tpr_at_fpr", "tpr_at_fpr_from_roc",
    "clopper_pearson",
]

#: names that moved to a higher layer -> the module that holds them now
_MOVED = {
    **{name: "memlens.privacy.empirical" for name in (
        "empirical_epsilon", "epsilon_from_counts", "EpsilonLowerBound", "one_run_audit", "one_run_epsilon",
        "one_run_p_value", "OneRunAudit", "privacy_audit", "PrivacyAudit")},
    **{name: "memlens.audits.one_run" for name in ("CanaryAudit", "canary_masks", "one_run_canary_audit")},
}


def __getattr__(name):  # PEP 562: the moved names, imported when first asked for
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'memlens.evaluation' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_MOVED))
