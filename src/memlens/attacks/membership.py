"""Membership-inference attacks (the module of the first version): one module per attack family now.

=====================  ==================================================================================
attack                 module
=====================  ==================================================================================
``loss_attack``        :mod:`memlens.attacks.loss` (Yeom et al. 2018), with ``calibrated_loss_attack``
                       (Watson et al. 2022)
``lira``               :mod:`memlens.attacks.lira` (Carlini et al. 2022)
``rmia``               :mod:`memlens.attacks.rmia` (Zarifzadeh, Liu & Shokri 2024)
``shadow_attack``      :mod:`memlens.attacks.shadow` (Shokri et al. 2017)
``attack_all_targets`` :mod:`memlens.attacks.all_targets`: every target in turn, with ``ATTACKS``
=====================  ==================================================================================

The results are :mod:`memlens.attacks.results`; the leave-one-model-out reference statistics every attack shares
are :mod:`memlens.attacks._reference`. Every name keeps working from here.
"""
from .all_targets import ATTACKS, attack_all_targets
from .lira import lira
from .loss import calibrated_loss_attack, loss_attack
from .results import AllTargetsResult, AttackResult
from .rmia import rmia
from .shadow import shadow_attack

__all__ = ["AttackResult", "AllTargetsResult", "loss_attack", "calibrated_loss_attack", "lira", "rmia", "shadow_attack",
           "ATTACKS", "attack_all_targets"]
