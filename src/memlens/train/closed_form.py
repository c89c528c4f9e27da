"""Closed-form leave-one-out, approximate leave-one-out and exact subset refits: n models for the price of one.

Three model families whose leave-one-out (LOO) models need no retraining (docs/architecture.md, "Performance"):

``ridge``
    Least-squares classification on one-hot targets with an unpenalized intercept,
    ``min_β ‖Y − X̃β‖² + α ‖β_w‖²`` with ``X̃ = [X, 1]`` (the same minimizer as ``sklearn.linear_model.Ridge``).
    Exact LOO by the PRESS identity (Allen 1974): with the hat matrix ``H = X̃ (X̃ᵀX̃ + αR)⁻¹ X̃ᵀ``,

        ŷ₋ᵢ = (ŷᵢ − hᵢᵢ yᵢ) / (1 − hᵢᵢ),      β₋ᵢ = β̂ − A⁻¹ x̃ᵢ (yᵢ − ŷᵢ)ᵀ / (1 − hᵢᵢ).

``kernel-ridge``
    ``min_f Σᵢ ‖yᵢ − f(xᵢ)‖² + alpha ‖f‖²_H`` in the kernel's RKHS, solved by ``f = Σᵢ aᵢ k(xᵢ, ·)`` with
    ``a = (K + alpha I)⁻¹ Y``, no intercept (as ``sklearn.kernel_ridge.KernelRidge``), RBF or linear kernel. Exact LOO (Rifkin & Lippert 2007, "Notes on regularized least squares", §4; Cawley &
    Talbot 2004): with ``G = (K + αI)⁻¹`` and ``a = G Y`` the LOO residual is ``rᵢ = aᵢ / Gᵢᵢ``, so
    ``ŷ₋ᵢ = yᵢ − aᵢ / Gᵢᵢ``, and the LOO model is ``a₋ᵢ = a − G[:, i] aᵢ / Gᵢᵢ``.

``logreg``
    L2 logistic regression, exactly scikit-learn's objective ``C Σᵢ ℓᵢ(θ) + ½‖W‖²`` (intercept unpenalized),
    binary (one logit, as sklearn for two classes) or multinomial (softmax over all classes, full Hessian).
    Approximate LOO (ALO; Rad & Maleki 2020, JRSS-B 82(4), Eq. 10–12 and Thm. 3; Beirami et al. 2017, NeurIPS,
    Eq. 5): one Newton step on the leave-i-out objective from the full fit,

        θ₋ᵢ ≈ θ̂ + C (H − C ∇²ℓᵢ)⁻¹ ∇ℓᵢ(θ̂),

    with the rank-(C−1) downdate of the Hessian done by Sherman–Morrison–Woodbury. With ``Jᵢ`` the Jacobian of
    the logits at ``xᵢ``, ``Mᵢ = Jᵢ H⁻¹ Jᵢᵀ``, ``Sᵢ = diag(pᵢ) − pᵢpᵢᵀ`` and ``rᵢ = pᵢ − e_{yᵢ}``,

        z₋ᵢ = ẑᵢ + Mᵢ uᵢ,     uᵢ = C (I − C Sᵢ Mᵢ)⁻¹ rᵢ,     θ₋ᵢ = θ̂ + H⁻¹ Jᵢᵀ uᵢ,

    which for one logit is Rad & Maleki's ``zᵢ + C mᵢ ℓ'ᵢ / (1 − C mᵢ ℓ''ᵢ)``. The multinomial intercepts are
    identified only up to a common shift; the Hessian is made invertible along that direction (``H + vvᵀ``),
    which shifts all logits of a model by one constant and changes no probability.

Every LOO model is available, not only its prediction on the left-out example: :meth:`LOOResult.loo_model_scores`
evaluates the models trained without chosen examples anywhere, and :meth:`LOOResult.to_population` packs the
full fit and the LOO models into a :class:`~memlens.Population` so every measure and attack runs on them.

:func:`closed_form_population` refits ridge and kernel ridge exactly on every row of a mask matrix, by the
leave-k-out generalisations of the identities above where they are cheaper than a refit:
``β_S = β̂ − A⁻¹ X̃_Oᵀ (I − H_OO)⁻¹ (Y_O − Ŷ_O)`` (Woodbury, k = |O| left out) or a rank-k downdate of the normal
equations ``A_S = A − X̃_OᵀX̃_O``; ``a_S = a − G[:, O] G_OO⁻¹ a_O`` for kernel ridge.

Features are standardized (``standardize=True``) with the *full training split's* mean and standard deviation,
as the population trainers do, so a LOO model sees the same feature map as the full fit.

The code lives in three modules: :mod:`memlens.train.closed_form_base` (validation, standardization, kernels and the
signals of class scores), :mod:`memlens.train.loo` (leave-one-out: exact for ridge and kernel ridge, approximate for
logistic regression, and the brute-force reference) and :mod:`memlens.train.ridge` (exact refits on every row of a
mask matrix). Every name keeps working from here.
"""
from .closed_form_base import KERNELS, MODELS, score_signals
from .loo import (
           LOOResult,
           _Logistic,  # noqa: F401  (tests compare against it)
           brute_force_loo,
           closed_form_loo,
           kernel_ridge_loo,
           logistic_alo,
           ridge_loo,
)
from .ridge import (
           _KERNEL_CACHE,  # noqa: F401  (the per-process kernel cache)
           closed_form_population,
           subset_refit_scores,
)

__all__ = ["MODELS", "KERNELS", "score_signals", "LOOResult", "ridge_loo", "kernel_ridge_loo", "logistic_alo",
           "closed_form_loo", "brute_force_loo", "subset_refit_scores", "closed_form_population"]
