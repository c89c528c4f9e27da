"""memlens.tasks."""
from . import long_tail  # noqa: E402
from .long_tail import make_long_tail_mixture, sample_long_tail, tau, zipf_prior  # noqa: E402

__all__ = [*globals().get("__all__", []), "long_tail", "make_long_tail_mixture", "sample_long_tail", "tau",
           "zipf_prior"]
