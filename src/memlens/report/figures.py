"""Figures for the audit report: pure functions from results or arrays to matplotlib figures.

Nothing here computes a measure (docs/architecture.md, "Conventions": plotting never happens inside a measure);
every function takes
arrays or result objects and returns a :class:`matplotlib.figure.Figure` that the caller saves or inlines.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from .._validation import MemlensInputError
from ..evaluation.metrics import tpr_at_fpr_from_roc

__all__ = ["memorization_histogram", "image_grid", "pair_figure", "roc_curves", "flag_scatter"]


def _finish(fig, ax, *, xlabel: str, ylabel: str, legend: str, title: str):
    """Labels, legend and title of a one-axes figure, the top and right spines hidden; returns ``fig``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc=legend, frameon=False, fontsize=8.5)
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    _margins(fig)
    return fig


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in any backend

    return Figure(figsize=(width, height), dpi=100)


def _margins(fig, *, left: float = 0.8, right: float = 0.2, bottom: float = 0.6, top: float = 0.45):
    """Fixed margins in inches around a one-axes figure (room for tick labels, axis labels and the title).

    Cheaper than ``tight_layout`` and a tight bounding box, which lay out every text twice more."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h)
    fig._memlens_margins = True


def _plain_log_ticks(axis, *, symlog: bool = False) -> None:
    """Tick labels of a log (or symlog) axis as plain numbers (0.001, 0.01, ...), not mathtext powers (slow to
    lay out)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # matplotlib: only to draw

    if not symlog:
        axis.set_major_locator(LogLocator(base=10))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def memorization_histogram(scores, *, threshold: float = 0.25, bins: int = 40, log: bool = True,
                           title: str | None = None):
    """Histogram of per-example memorization scores.

    Parameters
    ----------
    scores : array, shape (n_examples,), or a MemorizationResult
        Memorization estimates (higher = more memorized); NaN entries (undefined) are counted in the legend.
    threshold : float
        Drawn as a vertical line with the number of examples at or above it (Feldman & Zhang use 0.25).
    bins : int
    log : bool
        Logarithmic count axis, so that the few highly memorized examples stay visible beside the bulk near 0.
    """
    scores = np.asarray(getattr(scores, "scores", scores), dtype=np.float64).ravel()
    finite = scores[np.isfinite(scores)]
    n_nan = scores.size - finite.size
    fig = _figure(7.0, 3.6)
    ax = fig.add_subplot()
    lo = min(-0.1, float(finite.min()) if finite.size else 0.0)
    hi = max(1.0, float(finite.max()) if finite.size else 1.0)
    edges = np.linspace(lo, hi, bins + 1)
    ax.hist(finite, bins=edges, color="#4c72b0", edgecolor="white", linewidth=0.5, log=log)
    n_above = int(np.sum(finite >= threshold))
    ax.axvline(threshold, color="#c44e52", linestyle="--", linewidth=1.5,
               label=f"mem ≥ {threshold:g}: {n_above} of {scores.size} examples ({100 * n_above / max(scores.size, 1):.1f}%)")
    ax.set_xlabel("memorization estimate (accuracy with example − accuracy without)")
    ax.set_ylabel("number of training examples" + (" (log scale)" if log else ""))
    if n_nan:
        ax.plot([], [], " ", label=f"{n_nan} undefined (no IN or no OUT model)")
    ax.legend(loc="upper right", frameon=False)
    ax.set_title(title or "Distribution of per-example memorization")
    ax.spines[["top", "right"]].set_visible(False)
    if log:
        _plain_log_ticks(ax.yaxis)
    _margins(fig)
    return fig


#: Resolution at which the report's PNGs are written (:func:`memlens.report.html.figure_to_data_uri`).
DPI = 110


class _Canvas:
    """One axes in pixel coordinates on which many small images are tiled.

    The tiles and their frames are painted into one RGB array at the PNG's own resolution and drawn by a single
    ``imshow``: one image instead of one artist per tile (a grid of 64 digits drew in 0.4 s with an artist each).
    Only the captions are text artists.
    """

    def __init__(self, width_px: float, height_px: float, *, inches_per_px: float, title: str | None):
        top = 0.4 if title else 0.05
        self.fig = _figure(width_px * inches_per_px, height_px * inches_per_px + top)
        frac = height_px * inches_per_px / (height_px * inches_per_px + top)
        self.ax = self.fig.add_axes((0.0, 0.0, 1.0, frac))
        self.ax.set_xlim(0, width_px)
        self.ax.set_ylim(height_px, 0)
        self.ax.axis("off")
        self.width, self.height = width_px, height_px
        self.scale = inches_per_px * DPI                     # output pixels per canvas pixel
        self.rgb = np.ones((max(1, round(height_px * self.scale)), max(1, round(width_px * self.scale)), 3))
        self.tiles: list = []      # (r0, r1, c0, c1) of every painted tile, in the order drawn
        if title:
            self.fig.suptitle(title, fontsize=11, y=1 - 0.1 / (height_px * inches_per_px + top))

    def tile(self, x0, y0, image, image_shape, *, cmap, frame="#999999", frame_width=0.6):
        """Paint one image with its top-left corner at canvas pixel (x0, y0); a NaN image leaves the cell blank."""
        if image is None or not np.all(np.isfinite(image)):
            return False
        from matplotlib import colormaps, colors  # matplotlib is heavy: imported only to draw

        h, w = _hw(image_shape)
        img = np.asarray(image, dtype=np.float64).reshape(image_shape)
        s = self.scale
        r0, c0 = round(y0 * s), round(x0 * s)
        r1, c1 = max(r0 + 1, round((y0 + h) * s)), max(c0 + 1, round((x0 + w) * s))
        rows = np.minimum((np.arange(r1 - r0) + 0.5) * h / (r1 - r0), h - 1).astype(np.int64)
        cols = np.minimum((np.arange(c1 - c0) + 0.5) * w / (c1 - c0), w - 1).astype(np.int64)
        vmax = max(1.0, float(img.max()))
        self.tiles.append((r0, r1, c0, c1))
        self.rgb[r0:r1, c0:c1] = colormaps[cmap](np.clip(img[np.ix_(rows, cols)] / vmax, 0.0, 1.0))[..., :3]
        t = max(1, round(frame_width * DPI / 72))            # the frame's width in output pixels
        color = colors.to_rgb(frame)
        for sl in ((slice(r0, r0 + t), slice(c0, c1)), (slice(r1 - t, r1), slice(c0, c1)),
                   (slice(r0, r1), slice(c0, c0 + t)), (slice(r0, r1), slice(c1 - t, c1))):
            self.rgb[sl] = color
        return True

    def caption(self, x, y, text, **kw):
        self.ax.text(x, y, text, ha="center", va="top", fontsize=8.5, linespacing=1.15, **kw)

    def done(self):
        rgb = np.round(self.rgb * 255).astype(np.uint8)     # uint8: drawn without a float normalization pass
        self.ax.imshow(rgb, interpolation="nearest", extent=(0, self.width, self.height, 0), zorder=0)
        self.ax.set_aspect("equal")
        self.ax.set_xlim(0, self.width)
        self.ax.set_ylim(self.height, 0)
        self.fig._memlens_exact = True     # laid out to the pixel: saved without a tight bounding box
        self.fig._memlens_tiles = tuple(self.tiles)
        return self.fig


def _hw(image_shape) -> tuple[int, int]:
    """Height and width of ``(H, W)`` or ``(C, H, W)``."""
    shape = tuple(int(s) for s in image_shape)
    return shape[-2], shape[-1]


def _lines(captions) -> int:
    if captions is None:
        return 0
    flat = [c for row in captions for c in (row if isinstance(row, (list, tuple, np.ndarray)) else [row])]
    return 1 + max((str(c).count("\n") for c in flat), default=0)


def image_grid(images, *, image_shape, captions=None, n_cols: int = 8, title: str | None = None,
               cmap: str = "gray_r", cell: float = 1.25):
    """A grid of grey images with a caption under each.

    Parameters
    ----------
    images : array, shape (n_images, height * width)
        Flattened grey images (values in [0, 1] for the shipped datasets).
    image_shape : tuple (height, width)
    captions : sequence of str, length n_images, optional
        E.g. ``"#123 y=3\\nmem 0.87"``.
    n_cols : int
    title : str, optional
    cmap : str
        ``gray_r`` draws ink dark on white (digits); use ``gray`` for photographs.
    cell : float
        Width of one image in inches.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 2:
        raise MemlensInputError(f"images must be a 2-d array (n_images, height * width); got shape {images.shape}")
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 2 or int(np.prod(image_shape)) != images.shape[1]:
        raise MemlensInputError(f"image_shape {image_shape} does not match {images.shape[1]} features per image")
    n = images.shape[0]
    if captions is not None and len(captions) != n:
        raise MemlensInputError(f"captions must have one entry per image ({n}); got {len(captions)}")
    h, w = _hw(image_shape)
    n_cols = max(1, min(int(n_cols), max(n, 1)))
    n_rows = max(1, -(-n // n_cols))
    ipp = cell / w
    gap, cap = 0.15 / ipp, (0.16 * _lines(captions) + 0.04) / ipp
    canvas = _Canvas(n_cols * (w + gap), n_rows * (h + cap + gap), inches_per_px=ipp, title=title)
    for k in range(n):
        r, c = divmod(k, n_cols)
        x0, y0 = c * (w + gap) + gap / 2, r * (h + cap + gap) + gap / 2
        canvas.tile(x0, y0, images[k], image_shape, cmap=cmap)
        if captions is not None:
            canvas.caption(x0 + w / 2, y0 + h + 0.03 / ipp, str(captions[k]))
    return canvas.done()


def pair_figure(train_images, test_images, *, image_shape, train_captions=None, test_captions=None,
                title: str | None = None, cmap: str = "gray_r", cell: float = 1.25):
    """Training examples, each beside the test examples it influences most (Feldman & Zhang 2020, Figs. 4–6).

    Parameters
    ----------
    train_images : array, shape (n_rows, height * width)
        One training example per row of the figure (drawn with a red frame).
    test_images : array, shape (n_rows, k, height * width)
        Its ``k`` most influenced test examples; NaN images leave their cell blank.
    image_shape : tuple (height, width)
    train_captions : sequence of str, length n_rows, optional
    test_captions : nested sequence of str, shape (n_rows, k), optional
    """
    train_images = np.asarray(train_images, dtype=np.float64)
    test_images = np.asarray(test_images, dtype=np.float64)
    if train_images.ndim != 2 or test_images.ndim != 3 or test_images.shape[0] != train_images.shape[0] \
            or test_images.shape[2] != train_images.shape[1]:
        raise MemlensInputError(f"train_images must be (n_rows, n_pixels) and test_images (n_rows, k, n_pixels); "
                                f"got {train_images.shape} and {test_images.shape}")
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 2 or int(np.prod(image_shape)) != train_images.shape[1]:
        raise MemlensInputError(f"image_shape {image_shape} does not match {train_images.shape[1]} features per "
                                "image")
    n_rows, k = test_images.shape[:2]
    h, w = _hw(image_shape)
    ipp = cell / w
    gap, arrow = 0.15 / ipp, 0.45 / ipp
    cap = (0.16 * max(_lines(train_captions), _lines(test_captions)) + 0.04) / ipp
    head = 0.25 / ipp
    canvas = _Canvas((k + 1) * (w + gap) + arrow, head + max(n_rows, 1) * (h + cap + gap), inches_per_px=ipp,
                     title=title)
    xs = [gap / 2] + [gap / 2 + (c + 1) * (w + gap) + arrow for c in range(k)]
    canvas.caption(xs[0] + w / 2, 0.02 / ipp, "training example", fontweight="bold", color="#c44e52")
    for c in range(k):
        canvas.caption(xs[c + 1] + w / 2, 0.02 / ipp, f"influenced test #{c + 1}", fontweight="bold")
    for r in range(n_rows):
        y0 = head + r * (h + cap + gap) + gap / 2
        canvas.tile(xs[0], y0, train_images[r], image_shape, cmap=cmap, frame="#c44e52", frame_width=2.0)
        if train_captions is not None:
            canvas.caption(xs[0] + w / 2, y0 + h + 0.03 / ipp, str(train_captions[r]), color="#c44e52")
        canvas.ax.annotate("", xy=(xs[1] - gap / 2, y0 + h / 2), xytext=(xs[0] + w + gap / 2, y0 + h / 2),
                           arrowprops={"arrowstyle": "->", "color": "#666666", "lw": 1.2})
        for c in range(k):
            drawn = canvas.tile(xs[c + 1], y0, test_images[r, c], image_shape, cmap=cmap)
            if drawn and test_captions is not None:
                canvas.caption(xs[c + 1] + w / 2, y0 + h + 0.03 / ipp, str(test_captions[r][c]))
    return canvas.done()


def roc_curves(curves, *, title: str | None = None, fprs=(1e-3, 1e-2)):
    """ROC curves of membership attacks on log–log axes, with the diagonal of a random guess.

    Parameters
    ----------
    curves : mapping of str to RocCurve
        One curve per attack (e.g. each attack's scores pooled over target models); a curve needs ``fpr``,
        ``tpr``, ``auc``, ``n_neg`` and ``tpr_at``.
    title : str, optional
    fprs : sequence of float
        FPRs marked by dotted vertical lines (0.1% and 1%, where Carlini et al. 2022 read attacks).

    Notes
    -----
    Log axes show the low-FPR region where attacks differ (Carlini et al. 2022, §III); points with FPR or TPR of
    0 cannot be drawn there, so the x axis starts at the finest resolution ``1/n_neg`` among the curves.
    """
    fig = _figure(6.4, 5.2)
    ax = fig.add_subplot()
    n_neg = max([int(getattr(c, "n_neg", 0)) for c in curves.values()] + [1])
    lo = 1.0 / max(n_neg, 1)
    colors = ["#c44e52", "#dd8452", "#4c72b0", "#55a868", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
              "#64b5cd"]
    for k, (name, c) in enumerate(curves.items()):
        fpr = np.asarray(c.fpr, dtype=np.float64)
        tpr = np.asarray(c.tpr, dtype=np.float64)
        fpr, tpr = _thin_roc(fpr, tpr, lo)
        keep = (fpr > 0) & (tpr > 0)
        # the rule of memlens.evaluation (largest TPR at FPR <= f); below the resolution it is the TPR at 0 FP
        at = [tpr_at_fpr_from_roc(c.fpr, c.tpr, fprs[0])] if fprs else [np.nan]
        label = f"{name}: AUC {c.auc:.3f}" + (f", TPR@{100 * fprs[0]:g}% {100 * float(at[0]):.2f}%" if fprs else "")
        ax.plot(fpr[keep], tpr[keep], color=colors[k % len(colors)], linewidth=1.6, label=label)
    grid = np.logspace(np.log10(lo), 0, 50)
    ax.plot(grid, grid, color="#888888", linestyle="--", linewidth=1.0, label="random guess (TPR = FPR)")
    for f in fprs:
        if f >= lo:
            ax.axvline(f, color="#bbbbbb", linestyle=":", linewidth=1.0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis)
    _plain_log_ticks(ax.yaxis)
    ax.set_xlim(lo, 1.0)
    ax.set_ylim(lo, 1.0)
    return _finish(fig, ax, xlabel="false-positive rate (non-members flagged)",
                   ylabel="true-positive rate (members flagged)", legend="lower right",
                   title=title or "Membership attacks: ROC on log–log axes")


def _thin_roc(fpr: np.ndarray, tpr: np.ndarray, lo: float, n_grid: int = 600):
    """The ROC points to draw on log axes: for each of ``n_grid`` log-spaced FPRs, the last point at or below it
    and the first point above it (the curve's steps stay exact at the grid's resolution; drawing tens of
    thousands of points would only slow the PNG down)."""
    if fpr.size <= 2 * n_grid:
        return fpr, tpr
    grid = np.logspace(np.log10(max(lo, 1e-12)), 0.0, n_grid)
    below = np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, fpr.size - 1)
    idx = np.unique(np.concatenate([[0, fpr.size - 1], below, np.minimum(below + 1, fpr.size - 1)]))
    return fpr[idx], tpr[idx]


def flag_scatter(memorization, lira_score, *, mem_threshold: float = 0.25, flag_threshold=None,
                     highlight=None, title: str | None = None):
    """Scatter of per-example memorization (x) against its membership-attack score as a member (y).

    Parameters
    ----------
    memorization : array, shape (n_examples,), or a MemorizationResult
        Higher = more memorized.
    lira_score : array, shape (n_examples,)
        Attack score of each example, higher = more strongly flagged as a member (e.g. the mean online LiRA score over the target
        models that trained on it). Drawn on a symmetric-log axis (LiRA's log-likelihood ratios span decades).
    mem_threshold : float
        Vertical line (Feldman & Zhang's 0.25).
    flag_threshold : float, optional
        Horizontal line (e.g. the attack's threshold at 1% FPR).
    highlight : array of int, optional
        Examples drawn in red (e.g. highly memorized and flagged by LiRA).
    """
    mem = np.asarray(getattr(memorization, "scores", memorization), dtype=np.float64).ravel()
    exp = np.asarray(lira_score, dtype=np.float64).ravel()
    if mem.shape != exp.shape:
        raise MemlensInputError(f"memorization and lira_score must have the same shape; got {mem.shape} and "
                                f"{exp.shape}")
    ok = np.isfinite(mem) & np.isfinite(exp)
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot()
    ax.scatter(mem[ok], exp[ok], s=7, color="#4c72b0", alpha=0.45, linewidths=0,
               label=f"{int(ok.sum()):,} training examples")
    if highlight is not None and len(highlight):
        h = np.asarray(highlight, dtype=np.int64)
        h = h[ok[h]]
        ax.scatter(mem[h], exp[h], s=14, color="#c44e52", linewidths=0,
                   label=f"{h.size} highly memorized and flagged by LiRA")
    ax.axvline(mem_threshold, color="#888888", linestyle="--", linewidth=1.0)
    if flag_threshold is not None and np.isfinite(flag_threshold):
        ax.axhline(flag_threshold, color="#888888", linestyle=":", linewidth=1.0)
    if ok.sum() >= 3:
        rho = spearmanr(mem[ok], exp[ok]).statistic
        ax.plot([], [], " ", label=f"Spearman ρ = {rho:.2f}")
    ax.set_yscale("symlog", linthresh=1.0)
    _plain_log_ticks(ax.yaxis, symlog=True)
    return _finish(fig, ax, xlabel="memorization estimate (Feldman–Zhang)",
                   ylabel="LiRA score as a member (mean online LiRA score over IN targets)", legend="upper left",
                   title=title or "Memorization vs membership-attack flags (LiRA)")


def loo_scatter(subset_memorization, loo_margin_memorization, *, loo_memorized=None, mem_threshold: float = 0.25,
                title: str | None = None):
    """Scatter of the subset (Feldman–Zhang) memorization estimate (x) against leave-one-out memorization (y).

    Parameters
    ----------
    subset_memorization : array, shape (n_examples,), or a MemorizationResult
        Feldman–Zhang estimate over models trained on random subsets, higher = more memorized.
    loo_margin_memorization : array, shape (n_examples,), or a MemorizationResult
        Leave-one-out memorization graded by the margin: the full fit's margin on the example minus that of the
        fit without it (higher = more memorized). Symmetric-log axis.
    loo_memorized : array of bool, shape (n_examples,), optional
        Examples memorized at leave-one-out (correct only with the example), drawn in red.
    mem_threshold : float
        Vertical line (Feldman & Zhang's 0.25).
    """
    x = np.asarray(getattr(subset_memorization, "scores", subset_memorization), dtype=np.float64).ravel()
    y = np.asarray(getattr(loo_margin_memorization, "scores", loo_margin_memorization), dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise MemlensInputError(f"subset_memorization and loo_margin_memorization must have the same shape; got "
                                f"{x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    red = np.zeros(x.shape, dtype=bool) if loo_memorized is None else np.asarray(loo_memorized, dtype=bool).ravel()
    if red.shape != x.shape:
        raise MemlensInputError(f"loo_memorized must have shape {x.shape}; got {red.shape}")
    fig = _figure(6.4, 4.6)
    ax = fig.add_subplot()
    blue = ok & ~red
    ax.scatter(x[blue], y[blue], s=7, color="#4c72b0", alpha=0.45, linewidths=0,
               label=f"{int(blue.sum()):,} training examples")
    if (ok & red).any():
        ax.scatter(x[ok & red], y[ok & red], s=14, color="#c44e52", linewidths=0,
                   label=f"{int((ok & red).sum())} correct only when trained on (leave-one-out)")
    ax.axvline(mem_threshold, color="#888888", linestyle="--", linewidth=1.0)
    ax.axhline(0.0, color="#888888", linestyle=":", linewidth=1.0)
    if ok.sum() >= 3:
        rho = spearmanr(x[ok], y[ok]).statistic
        ax.plot([], [], " ", label=f"Spearman ρ = {rho:.2f}")
    # linear within the typical size of the scores, logarithmic beyond: the bulk and the tail both stay visible
    typical = float(np.median(np.abs(y[ok]))) if ok.any() else 1.0
    ax.set_yscale("symlog", linthresh=max(1e-4, typical) if np.isfinite(typical) else 1.0)
    _plain_log_ticks(ax.yaxis, symlog=True)
    ax.set_xlabel("memorization, subset estimate (Feldman–Zhang)")
    ax.set_ylabel("leave-one-out memorization (margin with − without)")
    ax.legend(loc="best", frameon=True, framealpha=0.85, edgecolor="none", fontsize=8.5)
    ax.set_title(title or "Leave-one-out vs subset memorization")
    ax.spines[["top", "right"]].set_visible(False)
    _margins(fig)
    return fig


__all__ += ["loo_scatter"]


def proxy_scatter(proxy, memorization, *, name: str, threshold: float = 0.25):
    """A proxy's score (rank, x) against Feldman–Zhang memorization (y), memorized examples highlighted."""
    from scipy.stats import rankdata  # deferred: scipy.stats is heavy

    proxy = np.asarray(proxy, dtype=np.float64)
    mem = np.asarray(memorization, dtype=np.float64)
    ok = np.isfinite(proxy) & np.isfinite(mem)
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    r = rankdata(proxy[ok]) / max(1, ok.sum())
    hi = mem[ok] >= threshold
    ax.scatter(r[~hi], mem[ok][~hi], s=6, color="#4c72b0", alpha=0.5, label=f"memorization < {threshold:g}")
    ax.scatter(r[hi], mem[ok][hi], s=10, color="#c44e52", alpha=0.8, label=f"memorization ≥ {threshold:g}")
    ax.axhline(threshold, color="#888888", linestyle=":", linewidth=1.0)
    return _finish(fig, ax, xlabel=f"{name} (rank, fraction of examples)", ylabel="Feldman–Zhang memorization",
                   legend="upper left", title=f"Proxy {name} against the population's memorization")
