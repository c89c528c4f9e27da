"""memlens: measure how much machine-learning models memorize their training data, and show why.

``import memlens`` is light: the audits, the run storage and the executors (which bring torch, scikit-learn and
matplotlib) are imported on first use of their names (``memlens.run_audit``, ``from memlens import RunDir``).
"""
from importlib import import_module

from ._validation import MemlensInputError, MemlensTrainingError, MemlensWarning
from ._version import __version__
from .population import Population

#: Public names imported on first use, and the module that defines each.
_LAZY = {
    "AuditResult": "memlens.audits.image", "run_audit": "memlens.audits.image",
    "AuditAttacks": "memlens.audits.image", "audit_attacks": "memlens.audits.image",
    "AuditLOO": "memlens.audits.image", "audit_loo": "memlens.audits.image",
    "RunDir": "memlens.storage.runs", "RunStorageError": "memlens.storage.runs",
    "LocalExecutor": "memlens.storage.executors", "PoolExecutor": "memlens.storage.executors",
    "RayExecutor": "memlens.storage.executors", "make_executor": "memlens.storage.executors",
    "TextAuditResult": "memlens.audits.text", "run_text_audit": "memlens.audits.text",
    "run_external_audit": "memlens.audits.external",
}

__all__ = ["MemlensInputError", "MemlensTrainingError", "MemlensWarning", "Population", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'memlens' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
