"""Figures and the self-contained HTML report, apart from computation (figures take results)."""
from .figures import image_grid, memorization_histogram, pair_figure
from .html import figure_to_data_uri, render_report, write_report

__all__ = ["image_grid", "memorization_histogram", "pair_figure", "figure_to_data_uri", "render_report",
           "write_report"]
