"""A long-tail diagnostic of the user's own data (``memlens audit --long-tail``): Feldman's theory predicts which
examples must be memorized, the population measures which are.

Feldman (2020, "Does learning require memorization?") models data as a mixture of many subpopulations with
frequencies drawn from a long-tailed prior; an example whose subpopulation appears once in the training set
(a *singleton*) must be memorized — its label cannot be inferred from any other example — and fitting it is worth
``τ_1`` of the test accuracy (Thm 2.3, :func:`memlens.tasks.long_tail.tau`). The diagnostic makes this concrete on
real data (our operationalization; the paper's subpopulations are not observed):

1. **Subpopulations**: the examples of each class are clustered in a representation space (the standardized
   features projected on their leading principal components) by k-means into about ``n_class / cluster_size``
   clusters; a subpopulation is a cluster, its size ``ℓ`` the number of training examples it holds.
2. **Frequency spectrum**: how many subpopulations hold ``ℓ = 1, 2, 3, ...`` examples (it depends on the
   clustering's granularity ``cluster_size``: k-means favours clusters of similar sizes, so the fitted exponent is a
   description of this clustering, not a property of the data alone), and **Feldman's prior**
   fitted to it: a Zipf prior ``π_j ∝ j^{−s}`` over the clusters, ``s`` by least squares of ``log size`` on
   ``log rank``; with it, ``τ_1 · n`` (the accuracy an example seen once is worth, in units of ``1/n``).
3. **Prediction**: an example must be memorized when its subpopulation holds only it; more generally the
   prediction is ``1/ℓ`` (the share of its subpopulation's evidence the example carries).
4. **Comparison** with the population's Feldman–Zhang memorization by frequency bucket (``ℓ = 1, 2, 3–4, 5–8,
   9–16, > 16``): mean memorization and fraction memorized (≥ 0.25) per bucket, and the Spearman correlation of the
   prediction with memorization.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy import stats

from .._validation import MemlensInputError, check_int
from ..tasks.long_tail import tau, zipf_prior
from ..train.configs import MLPConfig
from ..train.population_training import standardized_features
from ..train.torch_mlp import fit_mlp, mlp_logits
from ..train.torch_module import (
    TorchModuleConfig,
    fit_full_module,
    input_shape_of,
    penultimate_features,
)

__all__ = ["LongTailDiagnostic", "long_tail_diagnostic", "BUCKETS", "SPACES", "check_long_tail_space",
           "representation"]

#: Representation spaces the audit clusters in: the standardized input features, or the penultimate layer of a
#: model of the population's configuration trained on every example (mlp, cnn, the user's torch module).
SPACES = ("features", "penultimate")

#: Frequency buckets (inclusive bounds on ℓ).
BUCKETS = ((1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, None))
MEM_THRESHOLD = 0.25


@dataclass(frozen=True, eq=False)
class LongTailDiagnostic:
    """What :func:`long_tail_diagnostic` found.

    Attributes
    ----------
    cluster : ndarray of int, shape (n,)
        Subpopulation (cluster) of each training example (cluster ids are global).
    size : ndarray of int, shape (n,)
        ``ℓ``: the number of training examples in the example's subpopulation.
    predicted : ndarray, shape (n,)
        ``1/ℓ``.
    summary : dict
        ``summary.json``'s ``long_tail`` block.
    """

    cluster: np.ndarray
    size: np.ndarray
    predicted: np.ndarray
    summary: Mapping[str, Any]


def _bucket_name(lo, hi) -> str:
    return f"{lo}" if hi == lo else (f"{lo}-{hi}" if hi is not None else f">{lo - 1}")


def long_tail_diagnostic(features, labels, memorization, *, cluster_size: int = 10, n_subpopulations: int | None = None,
                         n_components: int = 32, in_accuracy=None, seed: int = 0,
                         representation: str = "the standardized features") -> LongTailDiagnostic:
    """Cluster the data into subpopulations, fit Feldman's prior and compare its prediction with memorization.

    Parameters
    ----------
    features : array, shape (n, d)
        The representation (standardized features, or a trained model's penultimate layer).
    labels : int array, shape (n,)
    memorization : array, shape (n,)
        Feldman–Zhang memorization (NaN where undefined).
    cluster_size : int
        Mean examples per subpopulation (each class gets ``max(1, round(n_class / cluster_size))`` clusters).
    n_subpopulations : int, optional
        The total number of subpopulations instead (shared among the classes in proportion to their sizes).
    n_components : int
        Principal components kept before clustering.
    in_accuracy : array, shape (n,), optional
        Each example's accuracy among the models that trained on it. Adds, per bucket, the training error
        ``errn_ℓ`` and the **cost of not fitting** ``Σ τ_ℓ · errn_ℓ`` (Feldman 2020, Thm 2.3:
        ``err ≥ opt + Σ_ℓ τ_ℓ errn_S(A, ℓ)``), with ``τ_ℓ`` of the fitted prior. The theorem's ``errn_S(A, ℓ)``
        counts each distinct point seen ℓ times once; here the unit is the subpopulation (Feldman's mixture
        version, Sec. 3), so a subpopulation of ℓ examples contributes the *fraction* of its examples that the models
        trained on them misclassify: ``errn_ℓ = Σ_{i in bucket} (1 − acc_in_i) / ℓ_i``, each term weighted by the
        ``τ`` of its own ``ℓ_i`` (our operationalization; ``ℓ`` is the count in the whole pool, not in each model's
        subset, and the subpopulation coupling ``λ_ℓ`` of Sec. 3 is taken as 1, so the cost is an upper reading of
        the bound for clusters that are not perfectly separated).
    seed : int
    """
    from sklearn.cluster import KMeans  # deferred: sklearn is heavy
    from sklearn.decomposition import PCA  # deferred: as above

    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    mem = np.asarray(memorization, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],) or mem.shape != (X.shape[0],):
        raise MemlensInputError(f"features (n, d), labels (n,) and memorization (n,) must agree; got {X.shape}, "
                                f"{y.shape}, {mem.shape}")
    cluster_size = check_int("cluster_size", cluster_size, min_value=1)
    if n_subpopulations is not None:
        n_subpopulations = check_int("n_subpopulations", n_subpopulations, min_value=1, max_value=X.shape[0])
    n_components = check_int("n_components", n_components, min_value=1)
    n = X.shape[0]
    k = min(n_components, X.shape[1], n)
    Z = PCA(n_components=k, random_state=seed).fit_transform(X) if k < X.shape[1] else X
    cluster = np.empty(n, dtype=np.int64)
    next_id = 0
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        want = idx.size / cluster_size if n_subpopulations is None else n_subpopulations * idx.size / n
        m = max(1, min(idx.size, int(round(want))))
        if m == 1:
            lab = np.zeros(idx.size, dtype=np.int64)
        else:
            lab = KMeans(n_clusters=m, n_init=3, random_state=seed).fit_predict(Z[idx])
        cluster[idx] = next_id + lab
        next_id += m
    sizes_by_cluster = np.bincount(cluster, minlength=next_id)
    sizes_by_cluster = sizes_by_cluster[sizes_by_cluster > 0]
    size = np.bincount(cluster)[cluster]
    predicted = 1.0 / size
    # Feldman's prior: Zipf over the clusters, exponent from the rank-size line
    srt = np.sort(sizes_by_cluster)[::-1].astype(np.float64)
    ranks = np.arange(1, srt.size + 1, dtype=np.float64)
    if srt.size >= 3 and np.ptp(srt) > 0:
        slope, icpt = np.polyfit(np.log(ranks), np.log(srt), 1)
        s, log_scale = float(-slope), float(icpt)
    else:
        s, log_scale = 0.0, float(np.log(srt[0])) if srt.size else 0.0
    N = int(srt.size)
    tau1 = float(tau(zipf_prior(N, exponent=max(s, 1e-6)), n=n, ell=1)) if N >= 2 else float("nan")
    # (τ_ℓ below uses the same prior)
    acc_in = None if in_accuracy is None else np.asarray(in_accuracy, dtype=np.float64)
    if acc_in is not None and acc_in.shape != (n,):
        raise MemlensInputError(f"in_accuracy must have shape ({n},); got {acc_in.shape}")
    prior = zipf_prior(N, exponent=max(s, 1e-6)) if N >= 2 else None
    share = tau_i = None
    if acc_in is not None and prior is not None:
        share = (1.0 - acc_in) / size                      # each example's part of its subpopulation's unfitness
        taus = {int(ell): float(tau(prior, n=n, ell=int(ell))) for ell in np.unique(size) if ell <= n}
        tau_i = np.array([taus.get(int(ell), 0.0) for ell in size])
    buckets = []
    for lo, hi in BUCKETS:
        sel = (size >= lo) & ((size <= hi) if hi is not None else True)
        ok = sel & np.isfinite(mem)
        buckets.append({"l": _bucket_name(lo, hi), "n_examples": int(sel.sum()),
                        "n_subpopulations": int(((sizes_by_cluster >= lo) & ((sizes_by_cluster <= hi)
                                                                             if hi is not None else True)).sum()),
                        "mean_memorization": float(mem[ok].mean()) if ok.any() else None,
                        "fraction_memorized": float((mem[ok] >= MEM_THRESHOLD).mean()) if ok.any() else None})
        if share is not None and lo <= n:
            fin = sel & np.isfinite(share)
            buckets[-1].update(train_error_in=float(np.mean(1.0 - acc_in[fin])) if fin.any() else None,
                               tau_l_times_n=float(tau(prior, n=n, ell=lo)) * n, errn=float(np.sum(share[fin])),
                               cost_of_not_fitting=float(np.sum(tau_i[fin] * share[fin])))
    ok = np.isfinite(mem)
    varied = ok.sum() > 2 and np.ptp(predicted[ok]) > 0 and np.ptp(mem[ok]) > 0
    rho = float(stats.spearmanr(predicted[ok], mem[ok]).statistic) if varied else float("nan")
    spectrum = np.bincount(sizes_by_cluster)
    summary = {
        "method": f"k-means per class on {k} principal components of {representation}, about "
                  f"{cluster_size} examples per subpopulation (our operationalization of Feldman's subpopulations)",
        "representation": representation,
        "n_subpopulations": N, "n_singletons": int((sizes_by_cluster == 1).sum()),
        "spectrum": {str(ell): int(c) for ell, c in enumerate(spectrum) if ell and c},
        "zipf_exponent": s, "zipf_log_scale": log_scale, "tau_1_times_n": tau1 * n if np.isfinite(tau1) else None,
        "buckets": buckets, "spearman_prediction_vs_memorization": rho,
        "cost_of_not_fitting_total": (float(sum(b.get("cost_of_not_fitting") or 0.0 for b in buckets))
                                      if acc_in is not None and prior is not None else None),
        "singletons_memorized_fraction": buckets[0]["fraction_memorized"],
    }
    return LongTailDiagnostic(cluster=cluster, size=size, predicted=predicted, summary=summary)


def check_long_tail_space(space, model: str, config) -> str:
    """``long_tail_space`` validated before any work: ``penultimate`` needs a model with hidden layers."""
    if space not in SPACES:
        raise MemlensInputError(f"long_tail_space must be one of {', '.join(SPACES)}; got {space!r}",
                                param="long_tail_space")
    if space == "penultimate" and (not isinstance(config, (MLPConfig, TorchModuleConfig))
                                   or (isinstance(config, MLPConfig) and not tuple(config.hidden))):
        raise MemlensInputError(f"long_tail_space='penultimate' clusters a trained network's last hidden layer; model "
                                f"{model!r} has none: use --model mlp, cnn or your own module, or the input features",
                                param="long_tail_space")
    return space


def representation(ds, *, space: str, config, seed: int = 0) -> tuple[np.ndarray, str]:
    """``(features (n, h), description)``: the training examples in the space the diagnostic clusters.

    ``features``: the standardized input features. ``penultimate``: the activations entering the output layer of
    one model of the population's configuration (``config``: an MLPConfig or a torch-module configuration) trained
    on every training example with ``seed`` — a representation learned for the task, in which examples the model
    treats alike lie close (Feldman & Zhang 2020 and the long-tail literature cluster in such spaces).
    """
    if space == "features":
        return standardized_features(ds)[0], "the standardized features"
    y = np.asarray(ds.y_train, dtype=np.int64)
    X, _ = standardized_features(ds, standardize=config.standardize, dtype=np.float32)   # what the model sees
    if isinstance(config, MLPConfig):
        fit = fit_mlp(X, y, np.ones((1, X.shape[0]), dtype=bool), seeds=np.array([seed]), n_classes=ds.n_classes,
                      hidden=config.hidden, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                      momentum=config.momentum, weight_decay=config.weight_decay)
        H = np.maximum(mlp_logits(fit.weights[:-1], fit.biases[:-1], X)[0], 0.0)    # the last hidden layer, ReLU'd
        return H.astype(np.float64), f"the last hidden layer ({H.shape[1]} units) of an MLP trained on every example"
    shape = input_shape_of(ds)
    _, module = fit_full_module(config, X, y, n_classes=ds.n_classes, input_shape=shape, seed=seed)
    H = penultimate_features(module, X, input_shape=shape)
    return H, f"the input of the last linear layer ({H.shape[1]} units) of the model trained on every example"
