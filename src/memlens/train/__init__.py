"""Training: many models in one vectorized pass (logistic regression, MLP), the sklearn reference path,
closed-form leave-one-out, and a small autoregressive model."""
from ..models.char_lm import (
    AutoregressiveConfig,
    AutoregressiveModel,
    greedy_continue,
    make_autoregressive_model,
    sequence_signals,
)
from . import autoregressive
from .autoregressive import AutoregressiveRun, train_autoregressive
from .builtin import CHAR_LM, CNN, FUNCTION, KERNEL_RIDGE, LOGREG, MLP, RIDGE, SKLEARN, TORCH_MODULE, configure_model
from .closed_form import (
    LOOResult,
    brute_force_loo,
    closed_form_loo,
    closed_form_population,
    kernel_ridge_loo,
    logistic_alo,
    ridge_loo,
    score_signals,
    subset_refit_scores,
)
from .cnn import CNNConfig, residual_cnn
from .configs import MODEL_CONFIGS, LogisticConfig, MLPConfig, make_model_config
from .function import FitFunction, FitFunctionConfig
from .label_queries import AttributeQueries, LabelQueries
from .logreg import LogisticFit, fit_logistic, logistic_logits
from .population_training import DEFAULT_BLOCK_SIZE, prepare_population, standardized_features, train_population
from .torch_mlp import MLPFit, fit_mlp, mlp_logits
from .torch_module import TorchModule, TorchModuleConfig
from .trainers import TRAINERS, BlockFit, Prepared, Trainer, config_from_dict, get_trainer, register_trainer

__all__ = [
    "AttributeQueries", "BlockFit", "LabelQueries", "Prepared", "prepare_population", "Trainer", "TRAINERS", "config_from_dict", "get_trainer", "register_trainer", "CHAR_LM",
    "KERNEL_RIDGE", "LOGREG", "MLP", "RIDGE", "SKLEARN", "TORCH_MODULE", "CNN", "CNNConfig", "residual_cnn", "FUNCTION", "FitFunction", "FitFunctionConfig", "configure_model", "TorchModule",
    "TorchModuleConfig",
    "autoregressive", "AutoregressiveConfig", "AutoregressiveModel", "AutoregressiveRun", "greedy_continue",
    "make_autoregressive_model", "sequence_signals", "train_autoregressive", "MODEL_CONFIGS", "LogisticConfig",
    "make_model_config", "MLPConfig", "DEFAULT_BLOCK_SIZE", "standardized_features", "train_population",
    "fit_logistic", "logistic_logits", "LogisticFit", "fit_mlp", "mlp_logits", "MLPFit", "brute_force_loo",
    "closed_form_loo", "closed_form_population", "kernel_ridge_loo", "logistic_alo", "LOOResult", "ridge_loo",
    "score_signals", "subset_refit_scores",
]
from ..privacy.accountant import ACCOUNTANTS, DPConfig, accountant_epsilon, dp_plan, noise_multiplier_for
from .dp_sgd import clipped_grad_sum, fit_dp_sgd

__all__ += ["accountant_epsilon", "ACCOUNTANTS", "clipped_grad_sum", "dp_plan", "DPConfig", "fit_dp_sgd",
            "noise_multiplier_for"]
from .configs import CLOSED_FORM_CONFIGS, KernelRidgeConfig, RidgeConfig

__all__ += ["CLOSED_FORM_CONFIGS", "KernelRidgeConfig", "RidgeConfig"]
from .text_population import CharLMConfig, text_signals, train_text_population

__all__ += ["CharLMConfig", "text_signals", "train_text_population"]
