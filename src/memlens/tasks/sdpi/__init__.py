"""Feldman–Kornowski–Lyu: memorization/sample trade-offs via strong data processing inequalities.

Feldman, Kornowski, Lyu, *Trade-offs in Data Memorization via Strong Data Processing Inequalities*,
COLT 2025 (arXiv:2506.01855).

**Setting** (paper Sec. 2): a parameter ``θ ~ Ψ``, training data ``X_{1:n} ~ P_θ^n``, a fresh test example
``X ~ P_θ``, an algorithm's output ``M = A(X_{1:n})``. The *excess data memorization* is

    mem_n(A, P) = I(M; X_{1:n} | θ),

the information ``M`` keeps about the particular sample beyond what the distribution explains.

**Main reduction** (paper Thm 3.7): if ``(θ, X_{1:n})`` satisfies a ``τ_n``-SDPI and ``(X, X_{1:n})`` a
``ρ_n``-SDPI (a pair ``(A, B)`` satisfies a ``ρ``-SDPI when ``I(M; A) ≤ ρ I(M; B)`` for every ``M`` with
``A — B — M``), then for every algorithm

    mem_n(A, P) ≥ ((1 − τ_n) / ρ_n) · I(M; X)  − neg_n.

With exact SDPIs (the case implemented by the problems below) ``neg_n = 0``: ``M ⊥ θ | X_{1:n}`` gives
``I(M; X_{1:n} | θ) = I(M; X_{1:n}) − I(M; θ) ≥ (1 − τ_n) I(M; X_{1:n}) ≥ ((1 − τ_n)/ρ_n) I(M; X)``.

**What is an interpretation.** The paper's exact parametrizations of its three applications were not
available when this module was written. The three problems below are instantiations derived for this
project (docs/theory.md, "Feldman-Kornowski-Lyu"); they are *not quotes of the paper*:

- :class:`GaussianClustering` — ``θ ~ N(0, I_d)``, ``y ~ Unif{±1}``, ``x | θ, y ~ N(y r θ, (1 − r²) I_d)``;
  matching learner: the noisy mean ``M = (1/n) Σ y_i x_i + N(0, q² I_d)`` with ``ŷ = sign⟨x, M⟩``.
- :class:`BooleanClustering` — ``θ ~ Unif{±1}^d``; each coordinate of the label-aligned example ``y x``
  equals ``θ_j`` with probability ``(1 + r)/2``; matching learner: the coordinate-wise majority vote
  passed through randomized response (each bit flipped with probability ``η``).
- :class:`SparseHypercube` — a Brown et al.-style subcube: each coordinate is *fixed* with probability
  ``p_fixed`` (independently; ``|F| ≈ p_fixed·d``) to a uniform sign, the label-aligned example is uniform
  on the subcube; matching learner: the subcube learner (coordinates on which all label-aligned training
  examples agree, their values passed through randomized response with flip probability ``η``).

Calibrations ``r² = c/√d`` (and ``p_fixed = c/√d``) make one example enough for constant accuracy
(``.calibrated(d, c=...)``). Every parameter stays open.

**The accuracy link** (derived). In all three problems the label is independent of the unlabeled point
(``x`` is marginally symmetric), so ``H(y | x) = ln 2`` and, by the chain rule and Fano's inequality, any
predictor ``ŷ = f(M, x, noise)`` with accuracy ``α ≥ 1/2`` has ``I(M; X) ≥ I(M; y | x) ≥ ln 2 − h(α)``
(:func:`accuracy_information`). The lower bound reported here is ``((1 − τ_n)/ρ_n)(ln 2 − h(α))``.

**SDPI constants.** All three problems are products of ``d`` i.i.d. coordinate pairs, so the constants
tensorize (the per-coordinate value, not ``d`` times it). Gaussian: closed forms (squared maximal
correlations). Boolean and subcube: the mutual-information SDPI constant equals the KL contraction
coefficient ``η_KL(P_B, P_{A|B}) = sup_Q D(Q_A‖P_A)/D(Q_B‖P_B)`` (Anantharam et al. 2013; Polyanskiy–Wu),
computed exactly on the per-coordinate sufficient statistic. For a binary ``A`` the supremum is over the
one-parameter family of exponential tilts (the I-projection onto ``{Q: Q_A = q}``), a 1-D search; ``1 − τ``
is computed directly from the chain rule ``D(Q_B‖P_B) − D(Q_A‖P_A) = D(Q_{B|A}‖P_{B|A} | Q_A)`` so that it
keeps full relative precision when it is ``10⁻³⁰``. For a ternary ``A`` (the subcube's ``τ_n``) the
supremum has a closed form (see :meth:`SparseHypercube.sdpi`); :func:`sdpi_constant` also offers a numerical
maximization over ``Q_B`` for any small finite pair, which the tests check against that closed form.

Units: every information quantity is in **nats** unless the name says ``bits`` (divide by ``ln 2``).

The code is split along its seams: :mod:`.numerics` (entropies, KL terms, the SDPI constant of a finite pair),
:mod:`.bounds` (the accuracy link and the reduction's lower bound), :mod:`.problems` (the three clustering problems
with their samplers, learners and exact constants) and :mod:`.tradeoffs` (constants over n, trade-off curves and
the mixture bound).
"""
from .bounds import accuracy_information, fkl_lower_bound
from .numerics import (
    LN2,
    _prepare_pair,  # noqa: F401  (private helpers the tests check)
    _sdpi_general,  # noqa: F401
    _tilt_terms,  # noqa: F401
    binary_entropy,
    logsumexp,
    maximal_correlation_squared,
    mutual_information,
    sdpi_constant,
)
from .problems import (
    BooleanClustering,
    ClusterSample,
    GaussianClustering,
    SDPIConstants,
    SparseHypercube,
    sdpi_constants,
)
from .tradeoffs import (
    MixtureBound,
    TradeoffCurve,
    expected_mixture_lower_bound,
    loglog_slope,
    mixture_lower_bound,
    sample_cluster_counts,
    tradeoff_curve,
)

__all__ = [
    "LN2", "binary_entropy", "logsumexp", "maximal_correlation_squared", "mutual_information", "sdpi_constant",
    "accuracy_information", "fkl_lower_bound", "ClusterSample", "GaussianClustering", "BooleanClustering",
    "SparseHypercube", "SDPIConstants", "sdpi_constants", "loglog_slope", "TradeoffCurve", "tradeoff_curve",
    "MixtureBound", "sample_cluster_counts", "mixture_lower_bound", "expected_mixture_lower_bound"
]
