"""Feldman's long-tail model: why fitting rare examples is necessary for near-optimal accuracy.

Feldman, *Does Learning Require Memorization? A Short Tale about a Long Tail*, STOC 2020 (arXiv:1906.05271).
The model (Sec. 2 of the paper; the theorem numbers below are those of the arXiv version):

- a domain ``X`` of ``N`` points and ``m`` labels;
- a **frequency prior** ``π = (π_1, …, π_N)``; a random distribution ``D ~ D_π^X`` gives each point a
  frequency drawn uniformly from the list ``π`` and normalizes (``D(x) = p_x / Σ p_x'``); ``π̄^N`` is the
  marginal distribution of ``D(x)``;
- a **labeling prior** ``F`` (here: every point gets an independent uniform label, the paper's running
  example), optionally observed through random classification noise;
- a dataset ``S ~ (D, f)^n``.

**Cost of not fitting** (Thm 2.3): for every algorithm ``A`` and dataset ``Z``,
``err(A | Z) ≥ opt(Z) + Σ_ℓ τ_ℓ · errn_Z(A, ℓ)`` with

    τ_ℓ = E_{α~π̄^N}[α^{ℓ+1} (1−α)^{n−ℓ}] / E_{α~π̄^N}[α^ℓ (1−α)^{n−ℓ}],

the expected frequency of a point seen exactly ``ℓ`` times (``errn_Z(A, ℓ)`` counts the ``ℓ``-times-seen points
that ``A`` does not fit). The closed forms here follow the paper's numerical examples (docs/theory.md, "The long
tail in numbers") and
approximate ``π̄^N`` by the uniform distribution over the normalized list ``α_i = π_i / Σ_j π_j``; that
approximation is exact for :func:`sample_distribution` with ``model="permuted"``. For the paper's own
``D_π^X`` (``model="prior"``) use :func:`prior_marginal_sample` with :func:`tau_from_marginal`.

Everything in this module is a small pure function over arrays. The *simulated learners* map per-point vote
counts ``votes (k, m)`` (how often each label was observed for each point) to the prediction distribution
``proba (k, m)`` of ``h(x)`` for ``h ~ A(S)``; because they act point by point, errors, unfit counts and exact
leave-one-out memorization are computed exactly, without sampling ``h``.

A long-tailed mixture of Gaussian subpopulations in ``R^d`` (:func:`make_long_tail_mixture`) carries the
same structure to real learners (Feldman, Sec. 3, mixture models).

The code is split along its seams: :mod:`.theory` (priors and the closed forms: tau, expected counts and masses,
the costs of not fitting), :mod:`.sampling` (the generative model), :mod:`.learners` (the simulated learners and
their evaluation) and :mod:`.mixture` (the real-data analogue).
"""
from .learners import (
    fit_seen_at_least,
    loo_memorization,
    memorization_limited,
    memorization_limited_weights,
    memorize_all,
    population_error,
    randomized_response,
    randomized_response_keep_probability,
    sample_hypothesis,
    theorem_bound,
    unfit_counts,
)
from .mixture import LongTailMixture, make_long_tail_mixture
from .sampling import LongTailSample, prior_marginal_sample, sample_distribution, sample_labeling, sample_long_tail
from .theory import (
    GroupCosts,
    LongTailNumbers,
    cost_label_private,
    cost_memorization_limited,
    cost_of_not_fitting,
    expected_count,
    expected_mass,
    expected_singletons,
    frequency_prior,
    group_costs,
    long_tail_numbers,
    mixture_prior,
    opt_error,
    required_memorization,
    tail_weight,
    tau,
    tau_from_marginal,
    tau_tail_lower_bound,
    unseen_mass,
    zipf_prior,
)

__all__ = [
    "zipf_prior", "frequency_prior", "mixture_prior", "tau_from_marginal", "tau", "prior_marginal_sample",
    "expected_count", "expected_singletons", "expected_mass", "unseen_mass", "opt_error", "tail_weight",
    "tau_tail_lower_bound", "cost_of_not_fitting", "cost_memorization_limited", "cost_label_private", "required_memorization", "GroupCosts",
    "group_costs", "LongTailNumbers", "long_tail_numbers", "sample_distribution", "sample_labeling",
    "LongTailSample", "sample_long_tail", "memorize_all", "fit_seen_at_least", "memorization_limited_weights",
    "memorization_limited", "randomized_response", "randomized_response_keep_probability", "sample_hypothesis",
    "population_error", "unfit_counts", "theorem_bound", "loo_memorization", "LongTailMixture",
    "make_long_tail_mixture"
]
