"""Foundations (lecture 00): the KL demo's target density and its widget figure."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

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
