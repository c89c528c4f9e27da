"""The DP-SGD privacy accountant: pure functions over Opacus's accountants, and the DP configuration.

Nothing here re-derives the accounting: :func:`noise_multiplier_for` calls Opacus's ``get_noise_multiplier`` to
calibrate the noise of the subsampled Gaussian mechanism (DP-SGD, Abadi et al. 2016, Algorithm 1) and
:func:`accountant_epsilon` asks Opacus's ``RDPAccountant`` (Mironov 2017) or ``PRVAccountant`` (Gopi, Lee &
Wutschitz 2021) for the ε actually spent. :func:`dp_plan` turns a :class:`DPConfig` and the population's sizes into
the sampling rate, steps, δ and σ every model of a population uses. The training step itself (clipping, noise) is
:mod:`memlens.train.dp_sgd`; the empirical side (ε lower bounds from attacks) is :mod:`memlens.privacy.empirical`.

Opacus (and with it torch) is imported inside the two functions that call it: it is an optional dependency
(``memlens[dp]``) and slow to import, and the configuration and the plan's checks do not need it.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass

import numpy as np

from .._validation import MemlensInputError, check_float, check_int, warn

__all__ = ["DPConfig", "ACCOUNTANTS", "noise_multiplier_for", "accountant_epsilon", "dp_plan", "check_dp_target"]

#: Accountants available through Opacus.
ACCOUNTANTS = ("rdp", "prv")
#: Smallest noise multiplier the calibration considers: targets above its ε promise no privacy.
_SIGMA_FLOOR = 0.1
_CHECK_EPSILON_ABOVE = 100.0


def _check_accountant(accountant) -> str:
    if accountant not in ACCOUNTANTS:
        raise MemlensInputError(f"accountant must be one of {', '.join(ACCOUNTANTS)} (Opacus's RDP or PRV "
                                f"accountant); got {accountant!r}")
    return accountant


def _check_delta(delta) -> float:
    return check_float("delta", delta, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False,
                       hint="(δ must be in (0, 1); the usual choice is below 1/n_train)")


@dataclass(frozen=True)
class DPConfig:
    """Differentially private training by DP-SGD with a target ``(epsilon, delta)``.

    Attributes
    ----------
    epsilon : float > 0
        Target ε; the noise multiplier is calibrated so that the accountant's ε is at most this.
    delta : float in (0, 1), optional
        Target δ. None: ``1 / (10 n_train)`` with ``n_train`` the dataset's training-split size, fixed at
        training time and recorded in the population's provenance.
    max_grad_norm : float > 0
        Clipping norm ``C`` of each example's gradient (all parameters of a model together).
    accountant : {"rdp", "prv"}
        Opacus accountant used to calibrate the noise and to report ε.
    epochs : float > 0
        Expected passes over the data: ``steps = ceil(epochs / q)``.
    batch_size : int >= 1
        Expected batch size; the Poisson sampling rate is ``q = batch_size / n_max`` (``n_max``: the largest IN
        count among the models trained together).
    lr : float > 0
        Learning rate of the update ``(clipped sum + noise) / batch_size``.
    momentum : float in [0, 1)
        Heavy-ball momentum (``torch.optim.SGD``), post-processing of the private gradients.
    """

    epsilon: float
    delta: float | None = None
    max_grad_norm: float = 1.0
    accountant: str = "rdp"
    epochs: float = 20.0
    batch_size: int = 128
    lr: float = 0.5
    momentum: float = 0.5

    def __post_init__(self):
        eps = self.epsilon
        if not isinstance(eps, bool) and isinstance(eps, (int, float, np.integer, np.floating)) and not eps > 0:
            raise MemlensInputError(f"epsilon must be > 0 (the target privacy budget); got {eps!r}: pass a positive "
                                    "ε such as 1 or 8, or dp=None for non-private training")
        object.__setattr__(self, "epsilon", check_float("epsilon", eps, min_value=0.0, min_inclusive=False))
        if self.delta is not None:
            object.__setattr__(self, "delta", _check_delta(self.delta))
        object.__setattr__(self, "max_grad_norm", check_float("max_grad_norm", self.max_grad_norm, min_value=0.0,
                                                              min_inclusive=False))
        object.__setattr__(self, "accountant", _check_accountant(self.accountant))
        object.__setattr__(self, "epochs", check_float("epochs", self.epochs, min_value=0.0, min_inclusive=False))
        object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size, min_value=1))
        object.__setattr__(self, "lr", check_float("lr", self.lr, min_value=0.0, min_inclusive=False))
        object.__setattr__(self, "momentum", check_float("momentum", self.momentum, min_value=0.0, max_value=1.0,
                                                         max_inclusive=False))

    def to_dict(self) -> dict:
        """JSON-serializable fields; ``DPConfig(**d)`` rebuilds the config."""
        return dataclasses.asdict(self)


# ================================================================================================ accounting
def _check_reachable(epsilon: float, *, delta: float, sample_rate: float, steps: int, accountant: str,
                     name: str = "epsilon") -> None:
    """Refuse a target ε that no meaningful noise level reaches.

    Opacus bisects sigma until the accountant's ε is within 0.01 of the target; a target above the ε of a
    negligible noise level (:data:`_SIGMA_FLOOR`) is never reached and the search would not end. The check costs
    one accounting (seconds at small sigma), so it runs only for targets beyond any usual budget.
    """
    if epsilon <= _CHECK_EPSILON_ABOVE:
        return
    with warnings.catch_warnings():  # Opacus warns that its orders are coarse at small sigma; the floor is a bound
        warnings.simplefilter("ignore", UserWarning)
        eps_floor = accountant_epsilon(noise_multiplier=_SIGMA_FLOOR, sample_rate=sample_rate, steps=steps,
                                       delta=delta, accountant=accountant)
    if epsilon >= eps_floor:
        raise MemlensInputError(f"{name} must be below {eps_floor:.4g}, the epsilon of noise multiplier "
                                f"{_SIGMA_FLOOR} (negligible noise) at sample rate {sample_rate:.4g} and {steps} steps; "
                                f"got {epsilon:g}: such a target promises no privacy; use a smaller epsilon, or "
                                "non-private training")


def check_dp_target(config: "DPConfig", *, n_max: int, n_train: int, name: str = "epsilon") -> None:
    """Raise :class:`MemlensInputError` before any training if :func:`dp_plan` could not calibrate ``config``
    (a target ε that no meaningful noise level reaches); cheap for usual targets (ε <= 100)."""
    q = min(1.0, config.batch_size / n_max)
    steps = int(math.ceil(config.epochs / q - 1e-9))
    delta = config.delta if config.delta is not None else 1.0 / (10 * n_train)
    _check_reachable(config.epsilon, delta=delta, sample_rate=q, steps=steps, accountant=config.accountant,
                     name=name)
    # the calibration itself (milliseconds with the RDP accountant): a target too small for any noise level is
    # refused here, before the run directory exists, rather than inside the first shard
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            noise_multiplier_for(epsilon=config.epsilon, delta=delta, sample_rate=q, steps=steps,
                                 accountant=config.accountant)
    except ValueError as exc:
        raise MemlensInputError(f"{name} is too small to reach: the accountant finds no noise level that spends only "
                                f"epsilon={config.epsilon:g} at delta={delta:.3g} over {steps} steps at sample rate "
                                f"{q:.4g} ({exc}); use a larger epsilon (e.g. 0.1 or more)", param=name) from None


def noise_multiplier_for(*, epsilon: float, delta: float, sample_rate: float, steps: int,
                         accountant: str = "rdp") -> float:
    """Noise multiplier ``sigma`` for which ``steps`` Poisson-subsampled Gaussian steps at rate ``sample_rate``
    spend at most ``epsilon`` (Opacus ``get_noise_multiplier``, ε tolerance 0.01)."""
    from opacus.accountants.utils import get_noise_multiplier  # opacus is optional (memlens[dp]) and heavy

    epsilon = check_float("epsilon", epsilon, min_value=0.0, min_inclusive=False)
    delta = _check_delta(delta)
    sample_rate = check_float("sample_rate", sample_rate, min_value=0.0, max_value=1.0, min_inclusive=False)
    steps = check_int("steps", steps, min_value=1)
    accountant = _check_accountant(accountant)
    _check_reachable(epsilon, delta=delta, sample_rate=sample_rate, steps=steps, accountant=accountant)
    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                      steps=steps, accountant=_check_accountant(accountant)))


def accountant_epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                       accountant: str = "rdp") -> float:
    """ε spent by ``steps`` steps of the subsampled Gaussian mechanism, by Opacus's ``RDPAccountant`` or
    ``PRVAccountant`` (inf without noise)."""
    from opacus.accountants import PRVAccountant, RDPAccountant  # opacus is optional (memlens[dp]) and heavy

    noise_multiplier = check_float("noise_multiplier", noise_multiplier, min_value=0.0)
    sample_rate = check_float("sample_rate", sample_rate, min_value=0.0, max_value=1.0, min_inclusive=False)
    steps = check_int("steps", steps, min_value=1)
    delta = _check_delta(delta)
    if noise_multiplier == 0.0:
        return float("inf")
    acc = {"rdp": RDPAccountant, "prv": PRVAccountant}[_check_accountant(accountant)]()
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta=delta))


def dp_plan(config: DPConfig, *, n_max: int, n_train: int) -> dict:
    """Sampling rate, steps, δ and calibrated noise of a DP run, and the accountant's ε for them.

    ``q = min(1, batch_size / n_max)``, ``steps = ceil(epochs / q)``, ``delta = config.delta`` or
    ``1 / (10 n_train)``, ``sigma`` from :func:`noise_multiplier_for`, ``epsilon_accountant`` from
    :func:`accountant_epsilon` (at most ``config.epsilon``).
    """
    if not isinstance(config, DPConfig):
        raise MemlensInputError(f"dp must be a memlens.train.DPConfig (e.g. DPConfig(epsilon=8)) or None; "
                                f"got {type(config).__name__}")
    n_max = check_int("n_max", n_max, min_value=1)
    n_train = check_int("n_train", n_train, min_value=1)
    if config.batch_size > n_max:
        warn(f"DP batch_size {config.batch_size} exceeds the largest IN count {n_max}: sampling rate set to 1 "
             "(full batches)")
    q = min(1.0, config.batch_size / n_max)
    steps = int(math.ceil(config.epochs / q - 1e-9))
    delta = config.delta if config.delta is not None else 1.0 / (10 * n_train)
    sigma = noise_multiplier_for(epsilon=config.epsilon, delta=delta, sample_rate=q, steps=steps,
                                 accountant=config.accountant)
    eps = accountant_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta,
                             accountant=config.accountant)
    return {**config.to_dict(), "delta": delta, "delta_rule": "given" if config.delta is not None else
            "1 / (10 n_train)", "n_train": n_train, "n_max": n_max, "sample_rate": q, "steps": steps,
            "noise_multiplier": sigma, "epsilon_accountant": eps, "normalizer": q * n_max,
            "sampling": "Poisson, rate q = batch_size / n_max for every model (each model its own generator)",
            "method": "DP-SGD (Abadi et al. 2016), per-example clipping, Gaussian noise; accounting by Opacus"}
