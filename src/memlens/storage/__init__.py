"""Storage: run directories (atomic shards, identity, resume) and the executors that fill them (local, Ray)."""
from .executors import (
           EXECUTORS,
           Executor,
           ExecutorError,
           LocalExecutor,
           RayExecutor,
           make_executor,
           train_missing_shards,
)
from .lock import RunLock, acquire_run_lock
from .runs import RunDir, RunStorageError, package_versions, run_identity

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "LocalExecutor", "RayExecutor", "make_executor",
           "train_missing_shards", "RunDir", "RunStorageError", "package_versions", "run_identity", "RunLock",
           "acquire_run_lock"]
