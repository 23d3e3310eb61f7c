"""The sliders. Each widget is a thin ipywidgets control around a pure function that
returns the matplotlib figure it shows; the tests call that function directly, and
``tests/test_widgets_kernel.py`` checks in a real kernel that every lecture's widget draws.

Pattern::

    fig = kl_fit_figure(mu=0.0, sigma=1.0)          # pure: test this
    figure_widget(kl_fit_figure, mu=(-4, 4, 0.1))   # control: show this

``figure_widget`` renders the figure to a PNG and displays it in an ``Output`` below the
controls: on first display and after every change, on ipywidgets 7.7 (Colab) and 8.
(``ipywidgets.interactive`` alone stores the returned figure in ``.result`` and shows
nothing.)
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython import get_ipython
from IPython.display import Image, clear_output, display
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from course_utils.diffusion import DenoisingStep
    from course_utils.flows import Flow
    from course_utils.gan import ToyGanRun

# A redraw slower than this is only made when a slider is released, so that redraws do not
# queue up behind a drag (the threshold; the browser suite measures the latency).
SLOW_REDRAW_S = 0.2
# Widget figures are drawn at most this wide (pixels), so the output area never scales
# them down and their text stays readable.
MAX_WIDTH_PX = 1000


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of ``fig`` at its own dpi and size (its function lays it out)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # no bbox_inches="tight": it draws the figure twice
    return buffer.getvalue()


class FigureWidget(ipywidgets.VBox):
    """Controls above an ``Output`` that shows ``render(**values)`` as a PNG.

    Attributes:
        controls: name -> the control widget (set ``.value`` to move it from code).
        output: the ``Output`` that holds the current image.
        png: the PNG bytes shown now.
        figure: the (closed) figure they were drawn from, for tests to inspect.
        render_seconds: how long the latest render took.
    """

    def __init__(
        self,
        render: Callable[..., Figure],
        controls: Mapping[str, Any],
        continuous_update: bool | None = None,
    ) -> None:
        if not callable(render):
            raise TypeError(f"render: expected a callable returning a Figure, got {render!r}")
        if not controls:
            raise ValueError("controls: expected at least one name=control, got none")
        self.render = render
        self.controls = {name: _control(name, abbrev) for name, abbrev in controls.items()}
        self.output = ipywidgets.Output()
        super().__init__([*self.controls.values(), self.output])
        self.add_class("course-figure-widget")  # how the browser tests find it
        self.continuous_update = continuous_update
        self.png = b""
        self.figure: Figure | None = None
        self.render_seconds = 0.0
        self._draw()  # errors here fail the cell, as any error in a lecture should
        for control in self.controls.values():
            control.observe(self._redraw, names="value")

    def values(self) -> dict[str, Any]:
        """The controls' current values, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def _draw(self) -> None:
        start = time.perf_counter()
        fig = self.render(**self.values())
        if not isinstance(fig, Figure):
            plt.close("all")
            raise TypeError(f"render: expected it to return a Figure, got {type(fig).__name__}")
        try:
            png = figure_png(fig)
        finally:
            plt.close(fig)  # pyplot must not show it again below the cell
        self.figure, self.png = fig, png
        with self.output:
            clear_output(wait=True)  # replace the old image when the new one arrives
            display(Image(data=png, format="png"))
        self.render_seconds = time.perf_counter() - start
        self._set_continuous_update()

    def _set_continuous_update(self) -> None:
        """Redraw while dragging only when a redraw is cheap (unless told either way)."""
        continuous = self.continuous_update
        if continuous is None:
            continuous = self.render_seconds <= SLOW_REDRAW_S
        for control in self.controls.values():
            if "continuous_update" in control.trait_names():
                control.continuous_update = continuous

    def _redraw(self, _change: Any = None) -> None:
        try:
            self._draw()
        except Exception:  # a callback's error would vanish: show it where the image was
            shell = get_ipython()
            if shell is None:
                raise
            with self.output:
                clear_output()
                shell.showtraceback()


def _control(name: str, abbrev: Any) -> ipywidgets.ValueWidget:
    """A control from an ipywidgets abbreviation (``(min, max, step)``, a list of options,
    a bool) or a ready widget, described by ``name`` (``_`` read as a space) unless it has
    a description."""
    control = ipywidgets.interactive.widget_from_abbrev(abbrev)
    if not isinstance(control, ipywidgets.ValueWidget):
        raise TypeError(
            f"{name}: expected (min, max, step), a list of options, a bool or a control "
            f"widget, got {abbrev!r}"
        )
    if not control.description:
        control.description = name.replace("_", " ")
    control.style.description_width = "initial"  # never cut a description short
    return control


def figure_widget(
    render: Callable[..., Figure], continuous_update: bool | None = None, **controls: Any
) -> FigureWidget:
    """Controls for ``render``'s keyword arguments above the figure it returns.

    Args:
        render: ``render(**values) -> Figure``, a pure function of the controls' values.
        continuous_update: redraw while a slider is dragged (True) or when it is released
            (False). Default: while the latest render took at most ``SLOW_REDRAW_S``.
        **controls: name -> ipywidgets abbreviation (``(min, max, step)``, a list of
            options, a bool) or a control widget.
    """
    return FigureWidget(render, controls, continuous_update)


# ------------------------------------------------------------- lecture 00: forward vs reverse KL

KL_GRID = torch.linspace(-8.0, 8.0, 4001, dtype=torch.float64)


def bimodal_density(x: torch.Tensor) -> torch.Tensor:
    """The target of lecture 00's KL demo: ``0.5 N(-2, 0.6²) + 0.5 N(2, 0.6²)`` at ``x`` ``[M]``."""
    return 0.5 * (_normal_pdf(x, -2.0, 0.6) + _normal_pdf(x, 2.0, 0.6))


def _normal_pdf(x: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))


def kl_on_grid(p: torch.Tensor, q: torch.Tensor, dx: float) -> float:
    """``KL(p‖q) = ∫ p log(p/q) dx`` by the rectangle rule on a grid, with 0 log 0 = 0."""
    if p.shape != q.shape:
        raise ValueError(f"q: expected the shape of p {tuple(p.shape)}, got {tuple(q.shape)}")
    mask = p > 0
    return float((p[mask] * (p[mask].log() - q[mask].clamp_min(1e-300).log())).sum() * dx)


def kl_fit_values(mu: float, sigma: float) -> tuple[float, float]:
    """``(KL(p‖q), KL(q‖p))`` for the bimodal ``p`` and ``q = N(mu, sigma²)``, in nats."""
    if not sigma > 0:
        raise ValueError(f"sigma: expected a positive float, got {sigma!r}")
    dx = float(KL_GRID[1] - KL_GRID[0])
    p, q = bimodal_density(KL_GRID), _normal_pdf(KL_GRID, mu, sigma)
    return kl_on_grid(p, q, dx), kl_on_grid(q, p, dx)


def kl_fit_figure(mu: float, sigma: float) -> Figure:
    """The bimodal ``p`` and a Gaussian ``q = N(mu, sigma²)``, titled with both KLs."""
    forward, reverse = kl_fit_values(mu, sigma)
    fig, ax = plt.subplots(figsize=(8.5, 3.2))
    x = KL_GRID.numpy()
    ax.fill_between(x, bimodal_density(KL_GRID).numpy(), alpha=0.3, label="p (data)")
    ax.plot(
        x,
        _normal_pdf(KL_GRID, mu, sigma).numpy(),
        color="tab:red",
        label=f"q = N({mu:.1f}, {sigma:.2f}²)",
    )
    ax.set_xlim(-6, 6)
    ax.set_title(f"KL(p‖q) = {forward:.3f} nats (forward),  KL(q‖p) = {reverse:.3f} nats (reverse)")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # hides no mode
    fig.tight_layout()
    return fig


# ------------------------------------------------------------- lecture 01: VAE latent space

Decode = Callable[[torch.Tensor], torch.Tensor]  # latents [N, L] -> images [N, D] in [0, 1]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def interpolate(
    z0: torch.Tensor, z1: torch.Tensor, t: float, method: str = "slerp"
) -> torch.Tensor:
    """A point on the path from ``z0`` to ``z1`` (both ``[L]``) at ``t`` in [0, 1].

    ``"linear"``: ``(1 - t) z0 + t z1``. ``"slerp"``: along the great circle,
    ``sin((1-t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1`` with ``Ω`` the angle between them (linear
    when they are parallel). Under a Gaussian prior, slerp keeps the norm typical of the
    prior, where linear paths cut through the low-norm centre.
    """
    if method not in ("linear", "slerp"):
        raise ValueError(f"method: expected 'linear' or 'slerp', got {method!r}")
    if z0.shape != z1.shape or z0.ndim != 1:
        raise ValueError(
            f"z1: expected a 1-d tensor shaped like z0 {tuple(z0.shape)}, got {tuple(z1.shape)}"
        )
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t: expected a number in [0, 1], got {t!r}")
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if method == "linear" or torch.sin(omega).abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def _plane_coordinates(points: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Coordinates ``[N, 2]`` of ``points`` ``[N, L]`` in an orthonormal basis of span(z0, z1)."""
    e0 = z0 / z0.norm()
    rest = z1 - torch.dot(z1, e0) * e0
    e1 = rest / rest.norm().clamp_min(1e-12)
    return torch.stack([points @ e0, points @ e1], dim=1)


@torch.no_grad()
def interpolation_figure(
    decode: Decode,
    z0: torch.Tensor,
    z1: torch.Tensor,
    t: float,
    method: str = "slerp",
    steps: int = 9,
) -> Figure:
    """The decoded image at ``t``, decodes along the whole path, and both paths (linear and
    slerp) drawn in the plane spanned by ``z0`` and ``z1``."""
    from course_utils.viz import image_grid

    ts = torch.linspace(0, 1, steps).tolist()
    path = torch.stack([interpolate(z0, z1, s, method) for s in ts])
    current = interpolate(z0, z1, t, method)
    images = decode(torch.cat([current[None], path]))
    fig = plt.figure(figsize=(10, 3.2))
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 2.6, 1.3])
    ax_img, ax_strip, ax_path = (fig.add_subplot(grid[0, i]) for i in range(3))
    side = int(math.isqrt(images.shape[1]))
    ax_img.imshow(_np(images[0].reshape(side, side)), cmap="gray_r", vmin=0, vmax=1)
    ax_img.set_title(f"{method}, t = {t:.2f}")
    ax_strip.imshow(image_grid(images[1:], nrow=steps), cmap="gray_r", vmin=0, vmax=1)
    ax_strip.set_title(f"decodes along the {method} path")
    ax_strip.set_xlabel(f"t = 0 (first digit) … 1 (second), {steps} steps")
    for ax in (ax_img, ax_strip):
        ax.set_xticks([])
        ax.set_yticks([])
    dense = torch.linspace(0, 1, 50).tolist()
    for name, style in (("linear", "--"), ("slerp", "-")):
        pts = _plane_coordinates(torch.stack([interpolate(z0, z1, s, name) for s in dense]), z0, z1)
        ax_path.plot(_np(pts[:, 0]), _np(pts[:, 1]), style, label=name)
    here = _np(_plane_coordinates(current[None], z0, z1)[0])
    ax_path.scatter([here[0]], [here[1]], color="red", zorder=3, label="current point")
    ax_path.set_aspect("equal")
    ax_path.set_title("path in the plane of z0, z1")
    ax_path.set_xlabel("along z0")
    ax_path.set_ylabel("orthogonal to z0")
    ax_path.legend(fontsize=8)
    fig.tight_layout()
    return fig


@torch.no_grad()
def latent_explorer_figure(
    decode: Decode, codes: torch.Tensor, labels: torch.Tensor, z1: float, z2: float
) -> Figure:
    """Encoded points ``codes`` ``[N, 2]`` coloured by ``labels`` ``[N]`` with ``(z1, z2)``
    marked, next to the image decoded at ``(z1, z2)``."""
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(
            f"codes: expected shape [N, 2] (a 2-d latent space), got {tuple(codes.shape)}"
        )
    point = torch.tensor([[z1, z2]], dtype=codes.dtype, device=codes.device)
    image = decode(point)[0]
    side = int(math.isqrt(image.numel()))
    fig, (ax_codes, ax_img) = plt.subplots(
        1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1.3, 1]}
    )
    sc = ax_codes.scatter(_np(codes[:, 0]), _np(codes[:, 1]), c=_np(labels), cmap="tab10", s=4)
    fig.colorbar(sc, ax=ax_codes, label="digit")
    ax_codes.scatter([z1], [z2], marker="*", s=250, color="black", label="decoded point")
    ax_codes.set_title("test set encoded (posterior means)")
    ax_codes.set_xlabel("$z_1$")
    ax_codes.set_ylabel("$z_2$")
    ax_codes.legend(loc="upper right", fontsize=8)
    ax_img.imshow(_np(image.reshape(side, side)), cmap="gray_r", vmin=0, vmax=1)
    ax_img.set_title(f"decoder mean at z = ({z1:.2f}, {z2:.2f})")
    ax_img.set_xlabel("pixel column")
    ax_img.set_ylabel("pixel row")
    fig.tight_layout()
    return fig


def beta_figure(results: dict[float, dict[str, torch.Tensor | float]], beta: float) -> Figure:
    """β-VAE trade-off: samples and reconstructions of the model trained with ``beta``, and
    the KL and reconstruction terms of every trained β with the chosen one marked.

    ``results[b]`` holds ``"samples"`` and ``"reconstructions"`` (images ``[n, D]``), ``"kl"``
    and ``"reconstruction"`` (nats per image, test set).
    """
    from course_utils.viz import image_grid

    if beta not in results:
        raise ValueError(
            f"beta: expected one of the trained values {sorted(results)}, got {beta!r}"
        )
    betas = sorted(results)
    chosen = results[beta]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    for ax, key in zip(axes[:2], ("samples", "reconstructions"), strict=True):
        ax.imshow(image_grid(chosen[key], nrow=8), cmap="gray_r")
        ax.set_title(f"β = {beta:g}: {key}")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[2].plot(betas, [results[b]["kl"] for b in betas], "o-", label="KL(q(z|x) || p(z))")
    axes[2].plot(
        betas, [results[b]["reconstruction"] for b in betas], "s-", label="−E_q[log p(x|z)]"
    )
    axes[2].axvline(beta, color="gray", ls=":", label="chosen β")
    axes[2].set_xscale("log")
    axes[2].set_xticks(betas, [f"{b:g}" for b in betas])  # one label per trained β
    axes[2].minorticks_off()
    axes[2].set_title("the two ELBO terms vs β (test set)")
    axes[2].set_xlabel("β")
    axes[2].set_ylabel("nats per image")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------- lecture 02: GAN training snapshots


def gan_snapshot_figure(
    runs: Mapping[str, ToyGanRun], index: int, data_points: torch.Tensor
) -> Figure:
    """One panel per run: the critic's landscape at snapshot ``index`` as a heatmap, the
    data ``[n, 2]`` in white and the generated points in red.

    Args:
        runs: name -> ``gan.ToyGanRun`` with the same number of snapshots.
        index: which snapshot, ``0 <= index < len(run.snapshots)``.
    """
    if not runs:
        raise ValueError("runs: expected at least one ToyGanRun, got none")
    counts = {name: len(run.snapshots) for name, run in runs.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise ValueError(f"runs: expected equal, non-zero snapshot counts, got {counts}")
    n = next(iter(counts.values()))
    if not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index: expected an int in [0, {n - 1}], got {index!r}")
    width = min(4.6 * len(runs), MAX_WIDTH_PX / 100)
    fig, axes = plt.subplots(1, len(runs), figsize=(width, 4.2), squeeze=False)
    for ax, (name, run) in zip(axes[0], runs.items(), strict=True):
        snap = run.snapshots[index]
        label = "D(x)" if run.config.landscape == "probability" else "critic f(x)"
        im = ax.imshow(_np(snap.landscape), origin="lower", extent=run.extent, cmap="coolwarm")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
        pts = _np(data_points)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="white", alpha=0.5, label="data")
        fake = _np(snap.samples)
        ax.scatter(fake[:, 0], fake[:, 1], s=2, c="red", alpha=0.5, label="generated")
        ax.set_xlim(run.extent[0], run.extent[1])
        ax.set_ylim(run.extent[2], run.extent[3])
        ax.set_title(f"{name}: generator step {snap.step}")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.legend(loc="upper right", fontsize=7, markerscale=4)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------- lecture 03: a flow layer by layer


def flow_layers_figure(
    flow: Flow, x: torch.Tensor, k: int, extent: tuple[float, float, float, float] = (-4, 4, -4, 4)
) -> Figure:
    """A 2D flow after its first ``k`` layers (``0 <= k <= len(flow.layers)``), three panels
    in the space of ``h_k``:

    1. the data ``x [n, 2]`` pushed through layers ``1..k``, coloured by the angle of its
       final base point ``z`` (so colours show where each point ends up);
    2. the model's density of ``h_k`` on a grid over ``extent``;
    3. base samples ``z ~ N(0, I)`` pulled back through layers ``K..k+1``.
    """
    num_layers = len(flow.layers)
    if not isinstance(k, int) or not 0 <= k <= num_layers:
        raise ValueError(f"k: expected an int in [0, {num_layers}], got {k!r}")
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"x: expected a tensor [n, 2], got {tuple(x.shape)}")
    from course_utils.viz import grid_points

    resolution = 120
    with torch.no_grad():
        pushed = flow.push(x, k)
        hue = (torch.atan2(*flow(x)[0].T.flip(0)) + math.pi) / (2 * math.pi)
        density = flow.log_prob_after(grid_points(extent, resolution), k).exp()
        pulled = flow.pull(torch.randn(len(x), 2, generator=torch.Generator().manual_seed(0)), k)
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.4))
    axes[0].scatter(*_np(pushed).T, s=3, c=_np(hue), cmap="hsv", vmin=0, vmax=1)
    axes[0].set_title(f"data after {k} of {num_layers} layers")
    im = axes[1].imshow(
        _np(density).reshape(resolution, resolution), origin="lower", extent=extent, cmap="viridis"
    )
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label="density")
    axes[1].set_title(f"model density of $h_{{{k}}}$")
    axes[2].scatter(*_np(pulled).T, s=3, c="tab:red")
    axes[2].set_title(f"base samples $z$ pulled to $h_{{{k}}}$")
    for ax in axes:
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xlabel("$h_1$")
        ax.set_ylabel("$h_2$")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------- lecture 04: noising and denoising


def noising_figure(x0: torch.Tensor, t: int, schedules: Mapping[str, torch.Tensor]) -> Figure:
    """Forward process at the paper's step ``t`` in ``1 … T`` (``alpha_bar[t - 1]`` in the
    course's 0-based arrays): one row per schedule (name -> ``alpha_bar [T]``) with
    ``x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps`` for one image ``x0 [1, H, W]`` in [-1, 1]
    (the same ``eps`` for every schedule), the histogram of its pixels, and ``alpha_bar``
    against ``t`` with ``t`` marked."""
    if not schedules:
        raise ValueError("schedules: expected at least one name -> alpha_bar, got none")
    lengths = {len(ab) for ab in schedules.values()}
    if len(lengths) != 1:
        raise ValueError(f"schedules: expected equal lengths, got {sorted(lengths)}")
    T = lengths.pop()
    if not isinstance(t, int) or not 1 <= t <= T:
        raise ValueError(f"t: expected an int in [1, {T}] (the paper's step), got {t!r}")
    if x0.dim() != 3:
        raise ValueError(f"x0: expected one image [C, H, W], got {tuple(x0.shape)}")
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    fig, axes = plt.subplots(len(schedules), 3, figsize=(10, 3 * len(schedules)), squeeze=False)
    steps = np.arange(1, T + 1)  # the paper's t
    for row, (name, alpha_bar) in zip(axes, schedules.items(), strict=True):
        ab = float(alpha_bar[t - 1])
        x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
        row[0].imshow(_np(x_t[0]), cmap="gray", vmin=-2.5, vmax=2.5)
        row[0].set_title(f"{name}: $x_t$ at t = {t}")
        row[0].set_xticks([])
        row[0].set_yticks([])
        row[1].hist(_np(x_t.flatten()), bins=50, range=(-4, 4), density=True, color="tab:blue")
        row[1].set_title(f"pixel histogram; $\\bar\\alpha_t$ = {ab:.4f}")
        row[1].set_xlabel("pixel value")
        row[1].set_ylabel("density")
        row[2].plot(steps, _np(alpha_bar), color="tab:green")
        row[2].axvline(t, color="k", ls="--")
        row[2].set_title(f"{name} schedule, t = {t} of {T}")
        row[2].set_xlabel("t")
        row[2].set_ylabel("$\\bar\\alpha_t$")
    fig.tight_layout()
    return fig


def denoising_figure(
    trajectories: Mapping[str, Sequence[DenoisingStep]], index: int, nrow: int = 4
) -> Figure:
    """Reverse process: one row per sampler (name -> its kept ``DenoisingStep`` list, all of
    the same length), showing kept step ``index``'s ``x_t`` and predicted ``x0`` as image
    grids (samples ``[N, C, H, W]`` in about [-1, 1]). Titles give the paper's ``t``
    (``DenoisingStep.t + 1``)."""
    from course_utils.viz import show_images

    if not trajectories:
        raise ValueError("trajectories: expected at least one name -> steps, got none")
    counts = {name: len(steps) for name, steps in trajectories.items()}
    n = min(counts.values())
    if len(set(counts.values())) != 1 or n == 0:
        raise ValueError(f"trajectories: expected equal, non-zero lengths, got {counts}")
    if not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"index: expected an int in [0, {n - 1}], got {index!r}")
    fig, axes = plt.subplots(
        len(trajectories), 2, figsize=(7, 2.4 * len(trajectories)), squeeze=False
    )
    for row, (name, steps) in zip(axes, trajectories.items(), strict=True):
        step = steps[index]
        for ax, images, what in (
            (row[0], step.x_t, "$x_t$"),
            (row[1], step.x0_hat, "predicted $x_0$"),
        ):
            grid = ((images + 1) / 2).clamp(0, 1)[: nrow * nrow]
            show_images(grid, f"{name}, t = {step.t + 1}: {what}", nrow=nrow, ax=ax)
    fig.tight_layout()
    return fig
