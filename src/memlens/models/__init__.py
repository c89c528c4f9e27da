"""Models: what a trained model is and how it is scored and decoded (measures and attacks read models here,
never through :mod:`memlens.train`)."""
from .char_lm import (
    AutoregressiveConfig,
    AutoregressiveModel,
    argmax_predictions,
    check_model,
    decode,
    greedy_continue,
    load_autoregressive_model,
    make_autoregressive_model,
    next_token_logprobs,
    sample_continue,
    save_autoregressive_model,
    sequence_log_likelihood,
    sequence_signals,
    token_accuracy,
    token_logprobs,
)

__all__ = [
    "AutoregressiveConfig", "AutoregressiveModel", "argmax_predictions", "check_model", "decode", "greedy_continue",
    "load_autoregressive_model", "make_autoregressive_model", "next_token_logprobs", "sample_continue",
    "save_autoregressive_model", "sequence_log_likelihood", "sequence_signals", "token_accuracy", "token_logprobs",
]
