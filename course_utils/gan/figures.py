"""Lecture 02's widget figures: the toy GANs' snapshots, CycleGAN's translations and the
Dirac-GAN's training path (``dirac_gan_path`` computes it, ``DIRAC_UPDATES`` names the
update schemes the widget offers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.gan.cyclegan import CycleGanRun
from course_utils.gan.toy import ToyGanRun
from course_utils.viz import MAX_WIDTH_PX, as_numpy, tidy


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
    for ax, (name, toy) in zip(axes[0], runs.items(), strict=True):
        snap = toy.snapshots[index]
        label = "D(x)" if toy.config.landscape == "probability" else "critic f(x)"
        im = ax.imshow(as_numpy(snap.landscape), origin="lower", extent=toy.extent, cmap="coolwarm")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
        pts = as_numpy(data_points)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="white", alpha=0.5, label="data")
        fake = as_numpy(snap.samples)
        ax.scatter(fake[:, 0], fake[:, 1], s=2, c="red", alpha=0.5, label="generated")
        ax.set_xlim(toy.extent[0], toy.extent[1])
        ax.set_ylim(toy.extent[2], toy.extent[3])
        ax.set_title(f"{name}: generator step {snap.step}")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.legend(loc="upper right", fontsize=7, markerscale=4)
    tidy(fig)
    return fig


def cyclegan_figure(
    runs: Mapping[str, CycleGanRun],
    x: torch.Tensor,
    y: torch.Tensor,
    x_centers: torch.Tensor,
    y_centers: torch.Tensor,
) -> Figure:
    """The two domains, then one column per run: ``G(x)`` on top and ``F(G(x))`` below,
    each point ``x [N, 2]`` colored by its nearest center in ``x_centers [k, 2]`` (at most
    10), so that the picture shows where each source mode goes; ``y [M, 2]`` is drawn
    with ``y_centers``. Each panel frames its domain's centers (points outside are cut)."""
    if not runs:
        raise ValueError("runs: expected at least one CycleGanRun, got none")
    if not 0 < len(x_centers) <= 10:
        raise ValueError(f"x_centers: expected 1 to 10 centers, got {len(x_centers)}")
    mode = as_numpy(torch.cdist(x, x_centers).argmin(1))
    width = min(3.6 * (len(runs) + 1), MAX_WIDTH_PX / 100)
    fig, axes = plt.subplots(2, len(runs) + 1, figsize=(width, 7.0), squeeze=False)

    def panel(ax: Axes, points: torch.Tensor, title: str, centers: torch.Tensor, color) -> None:
        pts, c = as_numpy(points), as_numpy(centers)
        ax.scatter(c[:, 0], c[:, 1], marker="x", c="black", s=40, label="mode centers")
        colors = {} if isinstance(color, str) else {"cmap": "tab10", "vmin": 0, "vmax": 9}
        ax.scatter(pts[:, 0], pts[:, 1], s=4, c=color, **colors)
        low, high = c.min(0) - 0.5, c.max(0) + 0.5  # the domain's frame, whatever G does
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")

    panel(axes[0, 0], x, "X (source), colored by mode", x_centers, mode)
    panel(axes[1, 0], y, "Y (target)", y_centers, "tab:gray")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    with torch.no_grad():
        for col, (name, run) in enumerate(runs.items(), start=1):
            translated = run.G(x)
            panel(axes[0, col], translated, f"{name}: G(x)", y_centers, mode)
            panel(axes[1, col], run.F(translated), f"{name}: F(G(x))", x_centers, mode)
    tidy(fig)
    return fig


def dirac_gan_path(
    learning_rate: float,
    steps: int,
    simultaneous: bool,
    d_steps: int = 1,
    gamma: float = 0.0,
    start: tuple[float, float] = (1.0, 1.0),
) -> torch.Tensor:
    """Gradient play on Mescheder et al. (2018)'s Dirac-GAN: data ``δ_0``, generator
    ``δ_θ``, discriminator ``D_ψ(x) = ψ x``, objective ``L(θ, ψ) = f(ψθ) + f(0)`` with
    ``f(t) = -log(1 + e^{-t})``, ``f'(t) = σ(-t)``. The generator descends ``L`` in θ, the
    discriminator ascends ``L - (γ/2) ψ²`` (the R1 penalty) in ψ, either both from the same
    point (``simultaneous``) or the discriminator first, ``d_steps`` times. Returns the
    points ``(θ, ψ)`` after each generator step, ``[steps + 1, 2]``."""
    if not learning_rate > 0 or steps < 1 or d_steps < 1 or gamma < 0:
        raise ValueError(
            "learning_rate > 0, steps >= 1, d_steps >= 1, gamma >= 0 expected; got "
            f"{learning_rate}, {steps}, {d_steps}, {gamma}"
        )
    h, (theta, psi) = learning_rate, start

    def slope(t: float) -> float:  # f'(t) = σ(-t), without overflow in exp
        return 1 / (1 + math.exp(min(t, 700.0)))

    path = [(theta, psi)]
    for _ in range(steps):
        if simultaneous:
            f1 = slope(theta * psi)
            theta, psi = theta - h * f1 * psi, psi + h * (f1 * theta - gamma * psi)
        else:
            for _ in range(d_steps):
                psi += h * (slope(theta * psi) * theta - gamma * psi)
            theta -= h * slope(theta * psi) * psi
        path.append((theta, psi))
    return torch.tensor(path)


DIRAC_UPDATES = {"simultaneous": (True, 1), "alternating": (False, 1),
                 "alternating, 5 D steps": (False, 5)}  # fmt: skip


def dirac_gan_figure(
    update: str, learning_rate: float, gamma: float = 0.0, steps: int = 300
) -> Figure:
    """The Dirac-GAN's path in the (θ, ψ) plane over the game's gradient field, and its
    distance from the equilibrium (0, 0) per generator step. ``update``: a key of
    ``DIRAC_UPDATES``."""
    if update not in DIRAC_UPDATES:
        raise ValueError(f"update: expected one of {list(DIRAC_UPDATES)}, got {update!r}")
    simultaneous, d_steps = DIRAC_UPDATES[update]
    path = as_numpy(dirac_gan_path(learning_rate, steps, simultaneous, d_steps, gamma))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    grid = torch.linspace(-2, 2, 15)
    t, p = torch.meshgrid(grid, grid, indexing="xy")
    slope = torch.sigmoid(-t * p)
    axes[0].quiver(t, p, -slope * p, slope * t - gamma * p, color="0.7", angles="xy")
    axes[0].plot(path[:, 0], path[:, 1], color="tab:blue", lw=1)
    axes[0].plot(*path[0], "o", color="tab:green", label="start")
    axes[0].plot(*path[-1], "s", color="tab:red", label=f"after {steps} steps")
    axes[0].plot(0, 0, "k*", ms=10, label="equilibrium")
    axes[0].set(xlim=(-2, 2), ylim=(-2, 2), xlabel="generator θ", ylabel="discriminator ψ")
    axes[0].set_title(f"{update}, lr {learning_rate:g}, R1 γ = {gamma:g}")
    axes[0].legend(loc="lower left", fontsize=8)
    distance = (path**2).sum(1) ** 0.5
    axes[1].semilogy(distance, color="tab:blue")
    axes[1].set(xlabel="generator step", ylabel="distance from (0, 0)")
    axes[1].set_title(f"distance after {steps} steps: {distance[-1]:.3g}")
    tidy(fig)
    return fig
