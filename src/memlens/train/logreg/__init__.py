"""Many L2 logistic regressions at once: batched, preconditioned L-BFGS over stacked parameters (torch).

All models of a block share the data matrix ``X``; model ``k`` sees example ``i`` through a per-example weight
``w[k, i]`` (1 = IN, 0 = OUT), so one function evaluation for every model is two shared GEMMs,
``X @ [W_1 .. W_K]`` and ``X^T @ G``, evaluated over row chunks so that the ``(rows, classes, models)``
intermediate stays in cache (BENCHMARKS.md, logistic regression). A weight of 0 removes the example from the objective
exactly.

Each model minimizes scikit-learn's objective (``LogisticRegression(C=C)``, lbfgs, multinomial)::

    C * sum_i w_ki * CE(y_i, softmax(W_k^T x_i + b_k)) + 0.5 * ||W_k||^2        (b_k unpenalized)

in the normalized form ``F_k = (1/n_k) sum_i w_ki CE_i + ||W_k||^2 / (2 C n_k)``, ``n_k = sum_i w_ki`` (the
scaling of scikit-learn's ``LinearModelLoss``; the minimizer is unchanged). With two classes the binary
parametrization is used (class 0 has logit 0, one weight vector): scikit-learn's binary model.

Optimizer: L-BFGS (Nocedal & Wright 2006, Alg. 7.4-7.5, two-loop recursion) vectorized over the model axis.
Every model keeps its own curvature pairs and takes its own Armijo backtracking step; converged models
(``max |grad F_k| <= tol``) leave the active set. The initial inverse Hessian of the recursion is a
Kronecker-factored approximation of each model's Hessian, ``H_k ~ Sigma (x) A_k + lambda_k I`` with
``Sigma`` the curvature-weighted feature second moment (shared by the block), ``A_k = mean_{i in S_k}
(diag p_i - p_i p_i^T)`` and ``lambda_k = 1 / (C n_k)`` (a Kronecker factorization in the spirit of K-FAC,
Martens & Grosse 2015). As ``Sigma`` is shared, a model's iterates depend slightly on its block mates; its
solution does not, up to ``tol``. The preconditioner is refreshed every few iterations and cuts the
iteration count 1.1-2.7x against the same L-BFGS without it (measured at tol 1e-6: digits 80 -> 51 at
C = 1, breast-cancer 89 -> 33 at C = 100; scikit-learn's L-BFGS-B needs 3,359 iterations where this solver
needs ~600 on a 10,000-image Fashion-MNIST subset). Iterations run in
float32 until ``max |grad F_k| <= max(tol, 1e-6)`` (or until float32 stops making progress: no halving of the
best gradient in 20 iterations) and in float64 after that, which re-evaluates the gradient and certifies
``tol``: memorization scores need tight convergence (BENCHMARKS.md, logistic regression), which float32 alone cannot
certify. Running float32 down to 1e-6 instead of 1e-4 leaves the iteration count unchanged and cut the time
per fit 1.6x on digits, 2x on breast cancer and 2.3x on a 3,000-image Fashion-MNIST subset (measured side by
side, tol 1e-6): the float64 phase then needs only a few evaluations.

``preconditioner="full-hessian"`` replaces the per-model Kronecker factorization by one matrix shared by the
whole population: the inverse of the exact Hessian of the full-data objective (every row at the population's
mean weight ``rho``, so its penalty is a model's) at the full-data model, and starts every model there. A model
trained on a random ``rho``-subset has, row for row, an unbiased estimate of that Hessian, so the shared matrix is
nearly each model's own Newton step; unlike a block-mean or a sampled Hessian it keeps the curvature of every
rare example, which is where a subset model differs from the full one. Measured (1 thread, tol 1e-6, all 60,000
Fashion-MNIST rows, C = 0.01, K = 8): 29 L-BFGS iterations per model against 274 with the Kronecker
factorization, 16 against 226 CPU s for the block, after a one-off 110 CPU s for the full-data fit, the
``n_out (n_out + 1) / 2 = 55`` Hessian GEMMs and the Cholesky inverse (cached per process and data set: every
later block reuses them). The Hessian must come from every row: built from 16,384 sampled rows it gave 87
iterations, and taken at the full-data fit's ``max |grad| <= 1e-3`` point instead of ``1e-4``, 43. Digits
(K = 256, C = 1): 15 iterations against 49, 0.9 against 2.9 CPU s. The optimum, the ``tol`` test and the float64
certification are unchanged.

``solver="newton-cg"`` (:func:`_newton_cg`) replaces the L-BFGS direction by a truncated Newton step: per-model
preconditioned CG on the exact Hessian, whose products for all models still in CG are two shared GEMMs
(``X V`` then ``X^T (...)``), stopped by the Eisenstat-Walker forcing term; the same Armijo search, convergence
test, removal of converged models and float32 -> float64 certification. Preconditioner: the block's mean exact
Hessian (Cholesky, shared by the block) for at most 2,048 parameters per model, the Kronecker factorization above
for more. Measured (1 thread, tol 1e-6, digits, K = 256): 8.2 Newton iterations and 40 Hessian-vector products per
model against 49 L-BFGS iterations, the same CPU time (2.70 s vs 2.81 s), memorization r vs a tol-1e-8
scikit-learn reference 1.0000000 vs 0.9999978. It does not pay on ill-conditioned data: on a 10,000-row
Fashion-MNIST subset (K = 8, tol 1e-6, Kronecker preconditioner) it needed 20.5 Newton iterations but 1,394
Hessian-vector products per model against 552 L-BFGS iterations, 64 against 14 CPU s per model (4.5x slower);
with the mean-Hessian preconditioner (7,850 parameters, refreshes of ~8 s each) the same run had not finished
after 15 minutes. L-BFGS stays the default.

The solver is split along its seams: :mod:`.objective` (the batched objective, its Kronecker curvature, the Armijo
search and the stopping test), :mod:`.lbfgs` (the two-loop recursion and the float32 -> float64 phases),
:mod:`.newton_cg` (truncated Newton), :mod:`.preconditioners` (the shared and mean Hessians), :mod:`.shared_start`
(the full-data start every model begins from) and :mod:`.fit` (:func:`fit_logistic`).
"""
from .fit import SOLVERS, fit_logistic
from .lbfgs import _lbfgs  # noqa: F401  (private names read by tests and benchmarks)
from .newton_cg import _HESS_PARAMS, _fit_newton, _newton_cg  # noqa: F401
from .objective import (
    LogisticFit,
    _Objective,  # noqa: F401
    logistic_logits,
)
from .preconditioners import (
    PRECONDITIONERS,
    SHARED_HESSIAN_MAX_PARAMS,
    _hessian_matrix,  # noqa: F401
    _SharedHessian,  # noqa: F401
    check_shared_hessian_size,
    resolve_preconditioner,
)
from .shared_start import (
    _SHARED_CACHE,  # noqa: F401
    full_hessian_start,
)

__all__ = ["LogisticFit", "logistic_logits", "PRECONDITIONERS", "SHARED_HESSIAN_MAX_PARAMS", "resolve_preconditioner",
           "check_shared_hessian_size", "full_hessian_start", "SOLVERS", "fit_logistic"]
