"""Theory problems of the seed papers: generators with ground truth and closed forms."""
from . import clusters, long_tail, next_symbol, sdpi
from .clusters import (
    ClusterInstance,
    ClusterLabelingData,
    calibrated_rho,
    find_singletons,
    make_cluster_instance,
    make_cluster_labeling,
)
from .long_tail import make_long_tail_mixture, sample_long_tail, tau, zipf_prior
from .next_symbol import (
    NextSymbolData,
    NextSymbolSample,
    NextSymbolTask,
    NoiseRecovery,
    make_next_symbol_data,
    make_next_symbol_task,
    noise_recovery,
)
from .sdpi import (
    BooleanClustering,
    GaussianClustering,
    SparseHypercube,
    fkl_lower_bound,
    mixture_lower_bound,
    sdpi_constant,
    sdpi_constants,
    tradeoff_curve,
)

__all__ = [
    "long_tail", "next_symbol", "clusters", "sdpi", "make_long_tail_mixture", "sample_long_tail", "tau",
    "zipf_prior", "make_next_symbol_data", "make_next_symbol_task", "NextSymbolData", "NextSymbolSample",
    "NextSymbolTask", "noise_recovery", "NoiseRecovery", "calibrated_rho", "ClusterInstance",
    "ClusterLabelingData", "find_singletons", "make_cluster_instance", "make_cluster_labeling",
    "BooleanClustering", "fkl_lower_bound", "GaussianClustering", "mixture_lower_bound", "sdpi_constant",
    "sdpi_constants", "SparseHypercube", "tradeoff_curve",
]
