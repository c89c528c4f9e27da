"""Figures for the audit report: pure functions from results or arrays to matplotlib figures.

Nothing here computes a measure (DESIGN.md: plotting never happens inside a measure); every function takes
arrays or result objects and returns a :class:`matplotlib.figure.Figure` that the caller saves or inlines.
"""
from __future__ import annotations

import numpy as np

from .._validation import MemlensInputError

__all__ = ["memorization_histogram", "image_grid", "pair_figure"]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in any backend

    return Figure(figsize=(width, height), dpi=100)


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
    fig.tight_layout()
    return fig


class _Canvas:
    """One axes in pixel coordinates on which many small images are tiled (far faster than one axes each)."""

    def __init__(self, width_px: float, height_px: float, *, inches_per_px: float, title: str | None):
        top = 0.4 if title else 0.05
        self.fig = _figure(width_px * inches_per_px, height_px * inches_per_px + top)
        frac = height_px * inches_per_px / (height_px * inches_per_px + top)
        self.ax = self.fig.add_axes((0.0, 0.0, 1.0, frac))
        self.ax.set_xlim(0, width_px)
        self.ax.set_ylim(height_px, 0)
        self.ax.axis("off")
        if title:
            self.fig.suptitle(title, fontsize=11, y=1 - 0.1 / (height_px * inches_per_px + top))

    def tile(self, x0, y0, image, image_shape, *, cmap, frame="#999999", frame_width=0.6):
        """Draw one image with its top-left corner at pixel (x0, y0); a NaN image leaves the cell blank."""
        if image is None or not np.all(np.isfinite(image)):
            return False
        from matplotlib.patches import Rectangle

        h, w = image_shape
        img = np.asarray(image, dtype=np.float64).reshape(image_shape)
        self.ax.imshow(img, cmap=cmap, interpolation="nearest", vmin=0.0, vmax=max(1.0, float(img.max())),
                       extent=(x0, x0 + w, y0 + h, y0))
        self.ax.add_patch(Rectangle((x0, y0), w, h, fill=False, edgecolor=frame, linewidth=frame_width))
        return True

    def caption(self, x, y, text, **kw):
        self.ax.text(x, y, text, ha="center", va="top", fontsize=8.5, linespacing=1.15, **kw)

    def done(self):
        self.ax.set_aspect("equal")
        width, height = self.ax.get_xlim()[1], self.ax.get_ylim()[0]
        self.ax.set_xlim(0, width)
        self.ax.set_ylim(height, 0)
        return self.fig


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
    h, w = image_shape
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
    h, w = image_shape
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
