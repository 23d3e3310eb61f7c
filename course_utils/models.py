"""Reference copies of the models whose checkpoints ship with the course.

The lectures write their own models, where students read them; these classes exist so that
``pretrain`` can train the shipped weights and ``checkpoints.load_pretrained`` can load
them. Each lecture model has the same parameter names, so the lecture loads the shipped
``state_dict`` into its own class.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.metrics import log_mean_exp

DIGITS_LEVELS = 17  # pixel values 0..16


class MlpVae(nn.Module):
    """MLP VAE with a Bernoulli decoder for flat images ``[B, D]`` in {0, 1} (or [0, 1]).

    ``encoder(x) -> (mu, logvar)`` of ``q(z|x)``, each ``[B, latent_dim]``;
    ``decoder(z) -> logits`` of ``p(x|z)``, ``[B, D]``.
    """

    def __init__(self, data_dim: int = 784, hidden: int = 400, latent_dim: int = 16) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.enc = nn.Sequential(
            nn.Linear(data_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.dec = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, data_dim)
        )

    def encoder(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        return mu, logvar

    def decoder(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)


class ConvDigitsVae(nn.Module):
    """Convolutional VAE for sklearn digits ``[B, 64]`` with values 0..16, decoded as a
    17-way categorical per pixel (the intro_dgm protocol).

    ``encoder(x) -> (mu, logvar)``; ``decoder(z) -> logits [B, 64, 17]``. The last 1x1-style
    convolution shares one map from features to the 17 level logits across all pixels,
    which generalises far better on 1000 training images than a dense 64x17 output layer.
    """

    def __init__(self, latent_dim: int = 16, channels: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        c = channels
        self.latent_dim = latent_dim
        self.enc = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, c, 3, padding=1), nn.LeakyReLU(), nn.Dropout(dropout),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(), nn.Dropout(dropout),  # 4x4
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.LeakyReLU(),  # 2x2
            nn.Flatten(), nn.Linear(16 * c, 2 * latent_dim),
        )  # fmt: skip
        self.dec = nn.Sequential(
            nn.Linear(latent_dim, 16 * c), nn.LeakyReLU(), nn.Unflatten(1, (4 * c, 2, 2)),
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), nn.LeakyReLU(), nn.Dropout(dropout),  # 4x4
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.LeakyReLU(), nn.Dropout(dropout),  # 8x8
            nn.Conv2d(c, DIGITS_LEVELS, 3, padding=1),
        )  # fmt: skip
        self.level_bias = nn.Parameter(torch.zeros(DIGITS_LEVELS, 8, 8))

    def encoder(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x / 8 - 1).chunk(2, dim=-1)  # inputs scaled to [-1, 1]
        return mu, logvar

    def decoder(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.dec(z) + self.level_bias  # [B, 17, 8, 8]
        return logits.permute(0, 2, 3, 1).reshape(len(z), 64, DIGITS_LEVELS)


def log_normal_diag(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` summed over the last dim: ``[..., L] -> [...]``."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).square() / logvar.exp()).sum(-1)


def log_likelihood(model: nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``log p(x|z)`` per example for either model: Bernoulli (``MlpVae``) or 17-way
    categorical (``ConvDigitsVae``); ``x: [B, D]``, ``z: [B, L]`` -> ``[B]``."""
    logits = model.decoder(z)
    if logits.ndim == 3:  # categorical: [B, D, K]
        return -F.cross_entropy(logits.transpose(1, 2), x.long(), reduction="none").sum(-1)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def log_weights(model: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    """Importance log-weights ``log p(x, z_i) - log q(z_i|x)`` for ``k`` samples ``z_i ~ q``:
    ``[B, D] -> [k, B]``. Their mean is a single-sample ELBO estimate per sample; their
    ``log_mean_exp`` over ``k`` is the IWAE bound."""
    mu, logvar = model.encoder(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape, device=mu.device)  # [k, B, L]
    zero = torch.zeros_like(z)
    log_prior = log_normal_diag(z, zero, zero)
    log_q = log_normal_diag(z, mu, logvar)
    log_px = log_likelihood(model, x.repeat(k, 1), z.reshape(-1, z.shape[-1])).reshape(k, -1)
    return log_px + log_prior - log_q


@torch.no_grad()
def negative_elbo(model: nn.Module, x: torch.Tensor, draws: int = 10) -> torch.Tensor:
    """Per-example negative ELBO ``[B]``: the single-sample estimator, averaged over ``draws``
    independent draws (same expectation, lower variance)."""
    return -log_weights(model, x, draws).mean(0)


@torch.no_grad()
def iwae_nll(model: nn.Module, x: torch.Tensor, k: int = 1000, chunk: int = 100) -> torch.Tensor:
    """Per-example ``-log p(x)`` estimated by the IWAE bound with ``k`` samples ``[B]``
    (an upper bound on the NLL that tightens as ``k`` grows); computed ``chunk`` examples
    at a time to bound memory."""
    out = []
    for i in range(0, len(x), chunk):
        lw = log_weights(model, x[i : i + chunk], k)
        out.append(-log_mean_exp(lw, dim=0))
    return torch.cat(out)


class DcganGenerator(nn.Module):
    """DCGAN generator for 28x28 digits: ``z [B, latent_dim]`` (and optional class labels
    ``y [B]``) -> images ``[B, 1, 28, 28]`` in [-1, 1] (tanh).

    Linear to 7x7 feature maps, then two stride-2 transposed convolutions (7 -> 14 -> 28),
    batch norm and ReLU in between (Radford et al., 2016). With ``num_classes > 0`` it is
    a conditional GAN: the one-hot label is concatenated to ``z``.
    """

    def __init__(self, latent_dim: int = 64, width: int = 64, num_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.project = nn.Sequential(
            nn.Linear(latent_dim + num_classes, 2 * width * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * width * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if y is None:
                raise ValueError("y: expected class labels [B] for a conditional generator")
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        return self.upsample(self.project(z))


class DcganDiscriminator(nn.Module):
    """DCGAN discriminator: images ``[B, 1, 28, 28]`` in [-1, 1] (and optional labels
    ``y [B]``) -> logits ``[B]``.

    Two stride-2 convolutions (28 -> 14 -> 7) with LeakyReLU(0.2), batch norm on the
    second, then a linear layer. Conditional: one-hot label planes are stacked on the image.
    """

    def __init__(self, width: int = 64, num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1 + num_classes, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if y is None:
                raise ValueError("y: expected class labels [B] for a conditional discriminator")
            planes = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)
        return self.body(x).squeeze(1)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer time steps ``t [B]`` -> ``[B, dim]`` (``dim`` even):
    ``[sin(t w_k), cos(t w_k)]`` with ``w_k = max_period^(-k / (dim/2))`` (Vaswani et al.)."""
    freqs = torch.exp(-math.log(max_period) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    angles = t.float()[:, None] * freqs
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, the embedding added in between, plus a skip (1x1 conv when
    the width changes): ``x [B, c_in, H, W], emb [B, emb_dim] -> [B, c_out, H, W]``."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class DiffusionUnet(nn.Module):
    """A small DDPM U-Net for 28x28 digits: ``eps_model(x_t [B, 1, 28, 28], t [B], y [B])``
    -> predicted noise ``[B, 1, 28, 28]``.

    Three resolutions (28, 14, 7) with widths ``width * mults``, one residual block per
    resolution on the way down and on the way up (fed the skip connection), two in the
    middle. The time step enters through a sinusoidal embedding and an MLP; the class label
    ``y`` through a learned embedding added to it. Label ``num_classes`` is the "no label"
    token that classifier-free guidance trains with; ``y=None`` means no label.
    """

    def __init__(self, width: int = 32, mults: tuple[int, ...] = (1, 2, 2),
                 num_classes: int = 10) -> None:  # fmt: skip
        super().__init__()
        self.width, self.num_classes = width, num_classes
        emb_dim = 4 * width
        self.time = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label = nn.Embedding(num_classes + 1, emb_dim)
        chans = [width * m for m in mults]
        self.stem = nn.Conv2d(1, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        c = chans[0]
        for i, c_out in enumerate(chans):
            self.down.append(ResBlock(c, c_out, emb_dim))
            c = c_out
            if i < len(chans) - 1:
                self.pool.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.middle = nn.ModuleList([ResBlock(c, c, emb_dim), ResBlock(c, c, emb_dim)])
        self.up = nn.ModuleList()
        self.unpool = nn.ModuleList()
        for i, c_skip in reversed(list(enumerate(chans))):
            self.up.append(ResBlock(c + c_skip, c_skip, emb_dim))
            c = c_skip
            if i > 0:
                self.unpool.append(nn.ConvTranspose2d(c, chans[i - 1], 4, stride=2, padding=1))
                c = chans[i - 1]
        self.head = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        if y is None:
            y = torch.full((len(x),), self.num_classes, dtype=torch.long, device=x.device)
        emb = self.time(timestep_embedding(t, self.width)) + self.label(y)
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.pool):
                h = self.pool[i](h)
        for block in self.middle:
            h = block(h, emb)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if i < len(self.unpool):
                h = self.unpool[i](h)
        return self.head(h)
