"""Figures and the self-contained HTML report, apart from computation (figures take results)."""
from .figures import flag_scatter, image_grid, memorization_histogram, pair_figure, roc_curves
from .html import figure_to_data_uri, render_report, write_report

__all__ = ["image_grid", "memorization_histogram", "pair_figure", "figure_to_data_uri", "render_report",
           "write_report", "flag_scatter", "roc_curves"]

from .text_html import exposure_figure, render_text_report, write_text_report  # noqa: E402

__all__ += ["exposure_figure", "render_text_report", "write_text_report"]
