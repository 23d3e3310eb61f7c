"""Plots the lectures share: image grids, 2D scatter and density heatmaps, training curves,
trajectories.

Every function returns the matplotlib ``Figure`` it drew on, with a title and labelled
axes, so a widget can show it and a test can inspect it. Pass ``ax`` to draw into an
existing subplot.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import MaxNLocator

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)

Extent = tuple[float, float, float, float]
# Widget figures are drawn at most this wide (pixels), so the output area never scales
# them down and their text stays readable.
MAX_WIDTH_PX = 1000
# ``show_images`` in a figure of its own: each image at least this many inches wide, the
# grid at most MAX_HEIGHT_IN tall.
TILE_IN = 0.6
MAX_HEIGHT_IN = 8.0
# The gid of an image that may be blank (near-constant) and says so in its panel's title;
# tests/test_figures_legible.py fails any other blank image panel.
BLANK_OK = "course-blank-ok"


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` detached, on the CPU, as a NumPy array (its dtype kept)."""
    return t.detach().cpu().numpy()


def allow_blank(image: AxesImage) -> AxesImage:
    """Declare that ``image`` may be blank (a panel whose title says why); returns it."""
    image.set_gid(BLANK_OK)
    return image


def image_axes(ax: Axes) -> Axes:
    """Make ``ax`` an image panel: no ticks and no axis labels (an image's rows and columns
    need no numbers; its title says what it shows). Returns ``ax``."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    return ax


def integer_ticks(axis: Axis) -> Axis:
    """Ticks only at integers on ``axis`` (``ax.xaxis``, a colorbar's ``ax.yaxis``), for
    integer-valued quantities (grey levels, codes, digits). Returns ``axis``."""
    axis.set_major_locator(MaxNLocator(integer=True))
    return axis


def tidy(fig: Figure, pad: float = 1.08) -> Figure:
    """Lay ``fig`` out (``tight_layout``) with every title inside its room: a title wider
    than its panel (or a suptitle wider than the figure) is wrapped onto more lines first.
    Figure functions call this last, instead of ``fig.tight_layout()``. Returns ``fig``."""
    fig.tight_layout(pad=pad)
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    titled = [(ax.title, ax) for ax in fig.axes if ax.get_title()]
    if fig._suptitle is not None and fig._suptitle.get_text():
        titled.append((fig._suptitle, None))
    wrapped = False
    for text, ax in titled:
        if ax is None or len(fig.axes) == 1:
            room = width - 10
        else:  # a panel's title may reach a little past its panel, not into the next one
            room = min(ax.get_window_extent().width * 1.15, width - 10)
        extent = text.get_window_extent(renderer).width
        if extent > room:
            lines = text.get_text().split("\n")
            chars = max(int(max(map(len, lines)) * room / extent) - 1, 8)
            text.set_text("\n".join(w for line in lines for w in textwrap.wrap(line, chars)))
            wrapped = True
    # tight_layout measures once; titles wrapped above, or panels a fixed aspect ratio
    # shrinks, move the texts again: lay out until every text is inside the canvas.
    for _ in range(3 if wrapped else 2):
        inside = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
        if (
            not wrapped
            and inside.x0 >= 0
            and inside.y0 >= 0
            and inside.x1 <= width
            and inside.y1 <= fig.bbox.height
        ):
            break
        fig.tight_layout(pad=pad)
        wrapped = False
    return fig


def _to_numpy(x: torch.Tensor | np.ndarray, arg: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    raise TypeError(f"{arg}: expected a torch.Tensor or np.ndarray, got {type(x).__name__}")


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def image_grid(
    images: torch.Tensor | np.ndarray, nrow: int | None = None, pad: int = 1
) -> np.ndarray:
    """Tile images into one 2D array.

    Args:
        images: ``[N, 1, H, W]``, ``[N, H, W]`` or flat ``[N, D]`` with ``D`` a square
            (64 for digits, 784 for MNIST).
        nrow: images per row (default: about sqrt(N)).
        pad: pixels between images, filled with the minimum value.

    Returns:
        ``[rows*(H+pad)-pad, nrow*(W+pad)-pad]`` float array.

    Raises:
        ValueError: a shape that is not one of the above, or an empty batch.
    """
    x = _to_numpy(images, "images")
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"images: flat images need a square size D, got D={x.shape[1]}")
        x = x.reshape(len(x), side, side)
    if x.ndim != 3 or len(x) == 0:
        raise ValueError(
            f"images: expected [N,1,H,W], [N,H,W] or [N,D] with N>0, got {tuple(x.shape)}"
        )
    n, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) - pad, nrow * (w + pad) - pad), x.min(), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = x[i]
    return grid


def show_images(
    images: torch.Tensor | np.ndarray,
    title: str,
    nrow: int | None = None,
    ax: Axes | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Figure:
    """Show a batch of grey images as one grid (shapes as in ``image_grid``), no ticks or
    axis labels. In a figure of its own, each image is drawn at least ``TILE_IN`` inches
    wide (the grid at most ``MAX_WIDTH_PX`` wide), and a title wider than that is wrapped."""
    grid = image_grid(images, nrow)
    own_figure = ax is None
    if own_figure:
        x = _to_numpy(images, "images")
        side = math.isqrt(x.shape[-1]) if x.ndim == 2 else x.shape[-1]
        height, width = grid.shape
        # inches per grid pixel: each image at least TILE_IN wide, about 60 pixels per inch
        # for large images, the whole grid within MAX_WIDTH_PX x MAX_HEIGHT_IN
        scale = max(TILE_IN / side, 1 / 60)
        scale = min(scale, MAX_WIDTH_PX / 100 / width, MAX_HEIGHT_IN / height)
        fig, ax = plt.subplots(figsize=(max(width * scale, 3), height * scale + 0.7))
    else:
        fig = ax.figure
    ax.imshow(grid, cmap="gray_r", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title)
    image_axes(ax)
    if own_figure:
        tidy(fig)  # keep the title inside the figure
    return fig


def scatter_2d(
    points: torch.Tensor | np.ndarray,
    title: str,
    ax: Axes | None = None,
    centers: torch.Tensor | np.ndarray | None = None,
    color: torch.Tensor | np.ndarray | str = "tab:blue",
    lim: float | None = None,
    label: str | None = None,
) -> Figure:
    """Scatter ``[N, 2]`` points; mark mixture ``centers`` ``[k, 2]`` with red crosses."""
    p = _to_numpy(points, "points")
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points: expected shape [N, 2], got {tuple(p.shape)}")
    own_figure = ax is None
    fig, ax = _axes(ax, (4.5, 4.5))
    if isinstance(color, str):
        ax.scatter(p[:, 0], p[:, 1], s=3, alpha=0.5, c=color, label=label)
    else:
        ax.scatter(
            p[:, 0],
            p[:, 1],
            s=3,
            alpha=0.5,
            c=_to_numpy(color, "color"),
            cmap="coolwarm",
            label=label,
        )
    if centers is not None:
        m = _to_numpy(centers, "centers")
        ax.scatter(m[:, 0], m[:, 1], marker="x", c="red", s=40, label="mode centers")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if label is not None or centers is not None:
        ax.legend(loc="upper right", fontsize=8)
    if own_figure:
        tidy(fig)  # keep every label inside the figure
    return fig


def grid_points(extent: Extent = (-4, 4, -4, 4), resolution: int = 200) -> torch.Tensor:
    """The centres of a ``resolution x resolution`` grid over ``extent``, shape ``[R*R, 2]``.

    Row-major with x_2 varying slowest, so ``values.reshape(R, R)`` is an image whose
    row ``i`` is the i-th x_2 value (as ``imshow(origin="lower")`` expects).
    """
    if resolution < 2:
        raise ValueError(f"resolution: expected an int >= 2, got {resolution}")
    x0, x1, y0, y1 = extent
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"extent: expected (xmin, xmax, ymin, ymax) with min < max, got {extent}")
    xs = torch.linspace(x0, x1, resolution)
    ys = torch.linspace(y0, y1, resolution)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def density_heatmap(
    log_prob_fn: Callable[[torch.Tensor], torch.Tensor],
    title: str,
    extent: Extent = (-4, 4, -4, 4),
    resolution: int = 200,
    ax: Axes | None = None,
    device: torch.device | str = "cpu",
) -> Figure:
    """Heatmap of ``exp(log_prob_fn(points))`` on a grid; ``log_prob_fn``: ``[M, 2] -> [M]``."""
    pts = grid_points(extent, resolution).to(device)
    with torch.no_grad():
        logp = log_prob_fn(pts)
    if logp.shape != (len(pts),):
        raise ValueError(
            f"log_prob_fn: expected it to return shape [{len(pts)}], got {tuple(logp.shape)}"
        )
    density = _to_numpy(logp.exp(), "density").reshape(resolution, resolution)
    own_figure = ax is None
    fig, ax = _axes(ax, (4.5, 4.5))
    im = ax.imshow(density, origin="lower", extent=extent, cmap="viridis", aspect="equal")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="density")
    ax.set_title(title)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if own_figure:
        tidy(fig)  # keep every label inside the figure
    return fig


def plot_history(
    history: Mapping[str, Sequence[float]],
    keys: Sequence[str] | None = None,
    title: str = "Training curves",
    ax: Axes | None = None,
    smooth: int = 1,
) -> Figure:
    """Plot logged values against the step (a ``train.run`` history).

    Args:
        keys: which values to plot (default: all but ``step`` and ``time``).
        smooth: moving-average window in logged points (1 = raw).
    """
    if "step" not in history:
        raise ValueError(f"history: expected a 'step' key, got keys {list(history)}")
    keys = list(keys) if keys is not None else [k for k in history if k not in ("step", "time")]
    missing = [k for k in keys if k not in history]
    if missing:
        raise ValueError(f"keys: {missing} not in history (has {list(history)})")
    own_figure = ax is None
    fig, ax = _axes(ax, (6, 3.5))
    steps = np.asarray(history["step"])
    for key in keys:
        values = np.asarray(history[key], dtype=float)
        if smooth > 1 and len(values) >= smooth:
            values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
        ax.plot(steps[len(steps) - len(values) :], values, label=key)
    ax.set_title(title)
    ax.set_xlabel("training step")
    ax.set_ylabel("value")
    ax.legend()
    ax.grid(alpha=0.3)
    if own_figure:
        tidy(fig)  # keep every label inside the figure
    return fig


def plot_trajectories(
    trajectories: torch.Tensor | np.ndarray,
    title: str,
    ax: Axes | None = None,
    max_paths: int = 50,
) -> Figure:
    """Draw 2D paths ``[T, N, 2]`` (e.g. a sampler's steps): lines from start to end."""
    tr = _to_numpy(trajectories, "trajectories")
    if tr.ndim != 3 or tr.shape[2] != 2:
        raise ValueError(f"trajectories: expected shape [T, N, 2], got {tuple(tr.shape)}")
    own_figure = ax is None
    fig, ax = _axes(ax, (4.5, 4.5))
    for i in range(min(max_paths, tr.shape[1])):
        ax.plot(tr[:, i, 0], tr[:, i, 1], lw=0.6, alpha=0.6, color="gray")
    ax.scatter(tr[0, :, 0], tr[0, :, 1], s=3, color="tab:red", label="start")
    ax.scatter(tr[-1, :, 0], tr[-1, :, 1], s=3, color="tab:blue", label="end")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.legend(loc="upper right", fontsize=8)
    if own_figure:
        tidy(fig)  # keep every label inside the figure
    return fig
