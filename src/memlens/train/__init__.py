"""Training: many models in one vectorized pass (logistic regression, MLP), the sklearn reference path,
closed-form leave-one-out, and a small autoregressive model."""
from . import autoregressive
from ..models.char_lm import (
    AutoregressiveConfig, AutoregressiveModel, greedy_continue, make_autoregressive_model, sequence_signals,
)
from .autoregressive import AutoregressiveRun, train_autoregressive
from .configs import MODEL_CONFIGS, LogisticConfig, make_model_config, MLPConfig
from .population_training import DEFAULT_BLOCK_SIZE, standardized_features, train_population
from .trainers import BlockFit, Trainer, TRAINERS, config_from_dict, get_trainer, register_trainer
from .builtin import CHAR_LM, KERNEL_RIDGE, LOGREG, MLP, RIDGE, SKLEARN
from .torch_logreg import fit_logistic, logistic_logits, LogisticFit
from .torch_mlp import fit_mlp, mlp_logits, MLPFit
from .closed_form import (
    brute_force_loo, closed_form_loo, closed_form_population, kernel_ridge_loo, logistic_alo, LOOResult,
    ridge_loo, score_signals, subset_refit_scores,
)

__all__ = [
    "BlockFit", "Trainer", "TRAINERS", "config_from_dict", "get_trainer", "register_trainer", "CHAR_LM",
    "KERNEL_RIDGE", "LOGREG", "MLP", "RIDGE", "SKLEARN",
    "autoregressive", "AutoregressiveConfig", "AutoregressiveModel", "AutoregressiveRun", "greedy_continue",
    "make_autoregressive_model", "sequence_signals", "train_autoregressive", "MODEL_CONFIGS", "LogisticConfig",
    "make_model_config", "MLPConfig", "DEFAULT_BLOCK_SIZE", "standardized_features", "train_population",
    "fit_logistic", "logistic_logits", "LogisticFit", "fit_mlp", "mlp_logits", "MLPFit", "brute_force_loo",
    "closed_form_loo", "closed_form_population", "kernel_ridge_loo", "logistic_alo", "LOOResult", "ridge_loo",
    "score_signals", "subset_refit_scores",
]
from ..privacy.accountant import accountant_epsilon, ACCOUNTANTS, dp_plan, DPConfig, noise_multiplier_for
from .dp_sgd import clipped_grad_sum, fit_dp_sgd

__all__ += ["accountant_epsilon", "ACCOUNTANTS", "clipped_grad_sum", "dp_plan", "DPConfig", "fit_dp_sgd",
            "noise_multiplier_for"]
from .configs import CLOSED_FORM_CONFIGS, KernelRidgeConfig, RidgeConfig

__all__ += ["CLOSED_FORM_CONFIGS", "KernelRidgeConfig", "RidgeConfig"]
from .text_population import CharLMConfig, text_signals, train_text_population

__all__ += ["CharLMConfig", "text_signals", "train_text_population"]
