"""memlens: measure how much machine-learning models memorize their training data, and show why."""
from ._validation import MemlensInputError, MemlensWarning
from .population import Population

__version__ = "0.1.0"

__all__ = ["MemlensInputError", "MemlensWarning", "Population", "__version__"]

from .audit import AuditAttacks, AuditResult, audit_attacks, run_audit  # noqa: E402
from .runs import RunDir  # noqa: E402

__all__ += ["AuditResult", "run_audit", "RunDir", "AuditAttacks", "audit_attacks"]

from .executors import LocalExecutor, RayExecutor, make_executor  # noqa: E402
from .runs import RunStorageError  # noqa: E402

__all__ += ["LocalExecutor", "RayExecutor", "make_executor", "RunStorageError"]

from .audit import AuditLOO, audit_loo  # noqa: E402

__all__ += ["AuditLOO", "audit_loo"]

from .text_audit import TextAuditResult, run_text_audit  # noqa: E402

__all__ += ["TextAuditResult", "run_text_audit"]
