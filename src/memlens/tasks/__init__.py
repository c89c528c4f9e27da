"""memlens.tasks."""
from . import long_tail  # noqa: E402
from .long_tail import make_long_tail_mixture, sample_long_tail, tau, zipf_prior  # noqa: E402

__all__ = [*globals().get("__all__", []), "long_tail", "make_long_tail_mixture", "sample_long_tail", "tau",
           "zipf_prior"]

from . import next_symbol  # noqa: E402
from .next_symbol import (NextSymbolData, NextSymbolSample, NextSymbolTask, NoiseRecovery,  # noqa: E402
                          make_next_symbol_data, make_next_symbol_task, noise_recovery)

__all__ = [*globals().get("__all__", []), "next_symbol", "NextSymbolData", "NextSymbolSample", "NextSymbolTask",
           "NoiseRecovery", "make_next_symbol_data", "make_next_symbol_task", "noise_recovery"]

from . import clusters  # noqa: E402
from .clusters import (ClusterInstance, ClusterLabelingData, calibrated_rho, find_singletons,  # noqa: E402
                       make_cluster_instance, make_cluster_labeling)

__all__ = [*globals().get("__all__", []), "clusters", "ClusterInstance", "ClusterLabelingData", "calibrated_rho",
           "find_singletons", "make_cluster_instance", "make_cluster_labeling"]

from . import sdpi  # noqa: E402
from .sdpi import (BooleanClustering, GaussianClustering, SparseHypercube, fkl_lower_bound,  # noqa: E402
                   mixture_lower_bound, sdpi_constant, sdpi_constants, tradeoff_curve)

__all__ = [*globals().get("__all__", []), "sdpi", "BooleanClustering", "GaussianClustering", "SparseHypercube",
           "fkl_lower_bound", "mixture_lower_bound", "sdpi_constant", "sdpi_constants", "tradeoff_curve"]
