"""memlens.train."""

from . import autoregressive  # noqa: E402
from .autoregressive import (AutoregressiveConfig, AutoregressiveModel, AutoregressiveRun,  # noqa: E402
                             greedy_continue, make_autoregressive_model, sequence_signals, train_autoregressive)

__all__ = [*globals().get("__all__", []), "autoregressive", "AutoregressiveConfig", "AutoregressiveModel",
           "AutoregressiveRun", "greedy_continue", "make_autoregressive_model", "sequence_signals",
           "train_autoregressive"]

from .configs import MODEL_CONFIGS, LogisticConfig, MLPConfig, make_model_config  # noqa: E402
from .population_training import DEFAULT_BLOCK_SIZE, standardized_features, train_population  # noqa: E402
from .torch_logreg import LogisticFit, fit_logistic, logistic_logits  # noqa: E402
from .torch_mlp import MLPFit, fit_mlp, mlp_logits  # noqa: E402

__all__ = [*globals().get("__all__", []), "DEFAULT_BLOCK_SIZE", "MODEL_CONFIGS", "LogisticConfig", "LogisticFit",
           "MLPConfig", "MLPFit", "fit_logistic", "fit_mlp", "logistic_logits", "make_model_config", "mlp_logits",
           "standardized_features", "train_population"]

from .closed_form import (LOOResult, brute_force_loo, closed_form_loo, closed_form_population,  # noqa: E402
                          kernel_ridge_loo, logistic_alo, ridge_loo, score_signals, subset_refit_scores)

__all__ = [*globals().get("__all__", []), "LOOResult", "brute_force_loo", "closed_form_loo",
           "closed_form_population", "kernel_ridge_loo", "logistic_alo", "ridge_loo", "score_signals",
           "subset_refit_scores"]
