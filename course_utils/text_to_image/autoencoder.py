"""Stable Diffusion's first stage at digit scale (Rombach et al. 2022, section 3.1): a
KL-regularized autoencoder from ``[B, 1, 28, 28]`` images to a ``[B, channels, 7, 7]``
latent grid, trained with a Bernoulli reconstruction loss plus ``beta`` times the KL of the
encoder's Gaussian to N(0, I) — a small ``beta``, so the latent keeps the detail and the KL
only keeps its scale in check (the paper's ``KL-reg``, weighted ~1e-6 there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)


def _norm_act(width: int) -> list[nn.Module]:
    return [nn.GroupNorm(8, width), nn.SiLU()]


class KlAutoencoder(nn.Module):
    """``encode``: images ``[B, 1, 28, 28]`` in [0, 1] -> the posterior's mean and log
    variance, each ``[B, channels, 7, 7]``; ``decode``: ``[B, channels, 7, 7]`` -> pixel
    logits ``[B, 1, 28, 28]``. Two stride-2 convolutions down, two transposed ones up."""

    def __init__(self, channels: int = 4, width: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width, 3, 2, 1), *_norm_act(width),
            nn.Conv2d(width, width, 3, 2, 1), *_norm_act(width),
            nn.Conv2d(width, width, 3, 1, 1), *_norm_act(width),
            nn.Conv2d(width, 2 * channels, 1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1), *_norm_act(width),
            nn.Conv2d(width, width, 3, 1, 1), *_norm_act(width),
            nn.ConvTranspose2d(width, width, 4, 2, 1), *_norm_act(width),
            nn.ConvTranspose2d(width, 1, 4, 2, 1),
        )  # fmt: skip

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(images).chunk(2, dim=1)
        return mu, logvar.clamp(-20.0, 10.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def loss(
        self, images: torch.Tensor, beta: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image: the Bernoulli negative log-likelihood of ``images`` under the decoded
        sample, and the KL to N(0, I) (both summed over dimensions, averaged over the batch);
        the training loss is ``nll + beta * kl``."""
        mu, logvar = self.encode(images)
        eps = torch.randn(mu.shape, generator=generator)
        z = mu + (0.5 * logvar).exp() * eps
        nll = F.binary_cross_entropy_with_logits(self.decode(z), images, reduction="sum")
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum()
        return nll / len(images), kl / len(images)
