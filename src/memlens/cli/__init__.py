"""The ``memlens`` command line (``memlens audit``, ``memlens reproduce``, ``memlens list``)."""
from .main import build_parser, load_npz_dataset, main

__all__ = ["main", "build_parser", "load_npz_dataset"]
