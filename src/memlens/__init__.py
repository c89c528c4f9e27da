"""memlens: measure how much machine-learning models memorize their training data, and show why."""
from ._validation import MemlensInputError, MemlensTrainingError, MemlensWarning
from ._version import __version__
from .population import Population

__all__ = ["MemlensInputError", "MemlensTrainingError", "MemlensWarning", "Population", "__version__"]

from .audits.image import AuditAttacks, AuditResult, audit_attacks, run_audit  # noqa: E402
from .storage.runs import RunDir  # noqa: E402

__all__ += ["AuditResult", "run_audit", "RunDir", "AuditAttacks", "audit_attacks"]

from .storage.executors import LocalExecutor, RayExecutor, make_executor  # noqa: E402
from .storage.runs import RunStorageError  # noqa: E402

__all__ += ["LocalExecutor", "RayExecutor", "make_executor", "RunStorageError"]

from .audits.image import AuditLOO, audit_loo  # noqa: E402

__all__ += ["AuditLOO", "audit_loo"]

from .audits.text import TextAuditResult, run_text_audit  # noqa: E402

__all__ += ["TextAuditResult", "run_text_audit"]

from .audits.external import run_external_audit  # noqa: E402

__all__ += ["run_external_audit"]
