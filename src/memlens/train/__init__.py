"""memlens.train."""

from . import autoregressive  # noqa: E402
from .autoregressive import (AutoregressiveConfig, AutoregressiveModel, AutoregressiveRun,  # noqa: E402
                             greedy_continue, make_autoregressive_model, sequence_signals, train_autoregressive)

__all__ = [*globals().get("__all__", []), "autoregressive", "AutoregressiveConfig", "AutoregressiveModel",
           "AutoregressiveRun", "greedy_continue", "make_autoregressive_model", "sequence_signals",
           "train_autoregressive"]
