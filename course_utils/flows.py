"""Normalizing flows (lecture 03): flow layers (``AffineCoupling``, ``ActNorm``,
``InvConv1x1``, ``Squeeze``, ``MaskedAutoregressive``, ``Reverse``, ``Dequantize``), masks,
``Flow``, the shipped architectures and their recipes, ``course bench flow-digits``, the
layer-by-layer figure.

Convention (as in the 03_flows exercises): a layer's ``forward`` maps data towards the base
distribution (the *normalizing* direction) and returns ``(output, log_det)`` with
``log_det [B] = log |det d output / d input|``; ``inverse`` maps back. A ``Flow`` chains
layers and puts a standard normal at the end:

    log p(x) = log N(z; 0, I) + sum_i log_det_i,   z = f_K(...f_1(x)).

Layers work on vectors ``[B, D]`` or images ``[B, C, H, W]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch import nn

from course_utils import checkpoints, data, metrics
from course_utils.bench import print_digits_benchmark
from course_utils.device import get_device, seed_everything
from course_utils.registry import benchmark, recipe
from course_utils.train import train_keeping_best
from course_utils.viz import as_numpy, grid_points, tidy


def _sum_per_example(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` per example: ``[B, ...] -> [B]``."""
    return _sum_per_example(-0.5 * z.square() - 0.5 * math.log(2 * math.pi))


# -- masks -----------------------------------------------------------------------------


def checkerboard_mask(height: int, width: int, parity: int = 0) -> torch.Tensor:
    """``[1, 1, H, W]`` mask with 1 where ``(row + col) % 2 == parity``."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((rows + cols) % 2 == parity).float()[None, None]


def channel_mask(channels: int, parity: int = 0) -> torch.Tensor:
    """``[1, C, 1, 1]`` mask with 1 on the first (``parity=0``) or second half of channels."""
    first = torch.arange(channels) < channels // 2
    return (first if parity == 0 else ~first).float()[None, :, None, None]


def half_mask(dim: int, parity: int = 0) -> torch.Tensor:
    """``[1, D]`` mask with 1 on alternate coordinates: even ones (``parity=0``) or odd."""
    return (torch.arange(dim) % 2 == parity).float()[None]


# -- layers ----------------------------------------------------------------------------


class AffineCoupling(nn.Module):
    """RealNVP affine coupling (Dinh et al., 2017), normalizing direction.

    ``s, t = net(mask * x)`` (the net outputs both, stacked on dim 1), ``s`` bounded by
    ``tanh`` times a learned per-feature scale for stability, and

        y = mask * x + (1 - mask) * (x * exp(s) + t),   log_det = sum((1 - mask) * s).

    The masked part passes unchanged and alone determines ``s`` and ``t``, so the
    Jacobian is triangular and the inverse is ``x = (y - t) * exp(-s)`` on the rest.
    """

    def __init__(self, mask: torch.Tensor, net: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        self.net = net
        self.scale = nn.Parameter(torch.ones(1, mask.shape[1], *mask.shape[2:]))

    def _scale_shift(self, x_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(x_masked).chunk(2, dim=1)
        keep = 1 - self.mask
        return keep * self.scale * torch.tanh(raw_s), keep * t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(self.mask * x)
        y = self.mask * x + (1 - self.mask) * (x * torch.exp(s) + t)
        return y, _sum_per_example(s)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        s, t = self._scale_shift(self.mask * y)
        return self.mask * y + (1 - self.mask) * ((y - t) * torch.exp(-s))


class ActNorm(nn.Module):
    """Glow's activation normalization (Kingma & Dhariwal, 2018): ``y = x * exp(log_scale) +
    bias`` per channel (dim 1). The first batch it sees initializes ``log_scale`` and
    ``bias`` so that this batch's output has zero mean and unit variance per channel.
    ``log_det = (H * W) * sum(log_scale)`` (``H * W = 1`` for vectors)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    def _shape(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return p.view(1, -1, *[1] * (x.dim() - 2))

    @torch.no_grad()
    def _initialize(self, x: torch.Tensor) -> None:
        per_channel = x.transpose(0, 1).flatten(1)  # [C, B*H*W]
        self.log_scale.copy_(-torch.log(per_channel.std(1) + 1e-6))
        self.bias.copy_(-per_channel.mean(1) * self.log_scale.exp())
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.initialized:
            self._initialize(x)
        y = x * self._shape(self.log_scale.exp(), x) + self._shape(self.bias, x)
        positions = x[0, 0].numel()
        return y, (positions * self.log_scale.sum()).expand(len(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self._shape(self.bias, y)) * self._shape((-self.log_scale).exp(), y)


class InvConv1x1(nn.Module):
    """Glow's invertible 1x1 convolution: a learned ``C x C`` channel mixing ``W``, the
    same at every position, so ``log_det = H * W * log|det W|``. Initialized to a random
    rotation (``log_det = 0``)."""

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=g))
        self.weight = nn.Parameter(q)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.einsum("ij,bj...->bi...", self.weight, x)
        positions = x[0, 0].numel()
        log_det = positions * torch.linalg.slogdet(self.weight)[1]
        return y, log_det.expand(len(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ij,bj...->bi...", torch.linalg.inv(self.weight), y)


class Squeeze(nn.Module):
    """``[B, C, H, W] -> [B, 4C, H/2, W/2]``: each 2x2 patch becomes 4 channels (a
    permutation, ``log_det = 0``)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        y = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return y.reshape(b, 4 * c, h // 2, w // 2), x.new_zeros(b)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        b, c4, h, w = y.shape
        x = y.view(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c4 // 4, 2 * h, 2 * w)


class MaskedAutoregressive(nn.Module):
    """A masked autoregressive flow layer, MAF (Papamakarios et al. 2017), on ``[B, D]``,
    normalizing direction. A one-hidden-layer MADE (Germain et al. 2015) in the order
    ``1 .. D`` gives ``(mu_i, alpha_i)`` from ``x_{<i}`` only, and

        u_i = (x_i - mu_i) exp(-alpha_i),   log_det = -sum_i alpha_i   (one MADE pass),

    ``alpha`` bounded by ``tanh`` for stability. The paper writes the generative map,
    ``x_i = u_i exp(alpha_i) + mu_i`` with ``log|det dx/du| = sum_i alpha_i``; ``forward``
    returns the normalizing direction's log-det, its negative (the course's convention).
    ``inverse`` generates coordinate by coordinate: ``D`` MADE passes. An IAF (Kingma et al.
    2016) is the same layer used the other way round: one pass to sample, ``D`` to
    evaluate the density of a new point.

    Degrees: input ``d`` has ``d``; hidden unit ``k`` has ``1 + k mod (D - 1)``; hidden
    ``k`` sees input ``d`` iff ``m(k) >= d``; output ``d`` sees hidden ``k`` iff
    ``d > m(k)``, so ``d output_d / d x_j = 0`` for ``j >= d``."""

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 2:
            raise ValueError(
                f"dim: expected an int >= 2 (MADE's hidden degrees are 1 .. D-1), got {dim!r}"
            )
        m_in = torch.arange(1, dim + 1)
        m_hidden = 1 + torch.arange(hidden) % (dim - 1)
        self.register_buffer("mask_in", (m_hidden[:, None] >= m_in[None, :]).float())  # [H, D]
        self.register_buffer("mask_out", (m_in[:, None] > m_hidden[None, :]).float())  # [D, H]
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, 2 * dim)  # mu and alpha, each masked by mask_out
        nn.init.zeros_(self.out.weight)  # the identity at the start
        nn.init.zeros_(self.out.bias)
        self.dim = dim

    def made(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, alpha)``, each ``[B, D]``, coordinate ``i`` a function of ``x_{<i}``."""
        h = torch.tanh(nn.functional.linear(x, self.hidden.weight * self.mask_in, self.hidden.bias))
        weight = self.out.weight * self.mask_out.repeat(2, 1)
        mu, raw = nn.functional.linear(h, weight, self.out.bias).chunk(2, dim=1)
        return mu, torch.tanh(raw)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, alpha = self.made(x)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(dim=1)

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        x = torch.zeros_like(u)
        for i in range(self.dim):  # coordinate i needs x_{<i}: D sequential passes
            mu, alpha = self.made(x)
            x = x.clone()
            x[:, i] = u[:, i] * torch.exp(alpha[:, i]) + mu[:, i]
        return x


class Reverse(nn.Module):
    """``[B, D] -> [B, D]`` in reverse order (a permutation, ``log_det = 0``): between MAF
    layers, so that each coordinate is conditioned on the others somewhere."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.flip(1), x.new_zeros(len(x))

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y.flip(1)


class Dequantize(nn.Module):
    """Maps ``levels``-valued pixels plus uniform noise ``u`` to logit space (a symmetric
    variant of RealNVP's ``logit(a + (1 - a) x)``): ``y = logit(a + (1 - 2a) (x + u) /
    levels)``, with its log-det, so the
    flow's ``log p`` is a density on ``[0, levels)^D``. ``u`` is drawn in ``forward`` when
    training or when ``noise=True``; in eval mode pass dequantized inputs yourself."""

    def __init__(self, levels: int, alpha: float = 0.05) -> None:
        super().__init__()
        self.levels, self.alpha = levels, alpha

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x / self.levels
        y = torch.log(p) - torch.log1p(-p)
        # dy/dx = (1 - 2a) / levels / (p (1 - p))
        log_det = math.log((1 - 2 * self.alpha) / self.levels) - torch.log(p) - torch.log1p(-p)
        return y, _sum_per_example(log_det)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha) * self.levels


class Flow(nn.Module):
    """A composition of layers with a standard normal base distribution.

    ``forward(x) -> (z, log_det [B])``; ``log_prob(x) [B]``; ``inverse(z)``; ``sample(n)``;
    ``push``, ``pull`` and ``log_prob_after`` look at the variable between layers.
    ``shape`` is the shape of one example (``(D,)`` or ``(C, H, W)``).
    """

    def __init__(self, layers: Sequence[nn.Module], shape: Sequence[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = x.new_zeros(len(x))
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob_after(x, 0)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def push(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``x`` through the first ``k`` layers (``h_k``; ``k = 0`` is ``x``)."""
        for layer in self.layers[:k]:
            x = layer(x)[0]
        return x

    def pull(self, z: torch.Tensor, k: int) -> torch.Tensor:
        """Base points ``z`` back through the last layers down to ``h_k`` (``k = 0`` is data
        space, ``k = len(layers)`` is ``z``)."""
        for layer in reversed(self.layers[k:]):
            z = layer.inverse(z)
        return z

    def log_prob_after(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """The model's log-density of ``h_k``, the variable after ``k`` layers: the rest of
        the flow maps it to the base, ``log N(z) + sum of the remaining log_dets``."""
        log_det = h.new_zeros(len(h))
        for layer in self.layers[k:]:
            h, ld = layer(h)
            log_det = log_det + ld
        return standard_normal_log_prob(h) + log_det

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        device = next(self.parameters()).device
        return self.inverse(temperature * torch.randn(n, *self.shape, device=device))


def mlp(in_dim: int, out_dim: int, hidden: int = 128, depth: int = 2) -> nn.Sequential:
    """An MLP with ReLU hidden layers; the last layer starts at zero, so a coupling that
    uses it starts as the identity."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    last = nn.Linear(width, out_dim)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class ConvNet(nn.Module):
    """The coupling network for images: 3x3 conv, ReLU, 1x1 conv, ReLU, zero-initialized
    3x3 conv to ``2 * channels`` outputs (``s`` and ``t``)."""

    def __init__(self, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, 2 * channels, 3, padding=1),
        )  # fmt: skip
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def realnvp_2d(num_couplings: int = 8, hidden: int = 128) -> Flow:
    """RealNVP for 2D data: couplings with alternating ``[1, 0]`` / ``[0, 1]`` masks."""
    layers = [AffineCoupling(half_mask(2, k % 2), mlp(2, 4, hidden)) for k in range(num_couplings)]
    return Flow(layers, (2,))


def realnvp_digits(num_blocks: int = 4, hidden: int = 256) -> Flow:
    """RealNVP for 8x8 digits as 64-vectors: dequantization to logit space, then blocks of
    ActNorm and two couplings with complementary checkerboard masks."""
    layers: list[nn.Module] = [Dequantize(17)]
    for _ in range(num_blocks):
        for parity in (0, 1):
            mask = checkerboard_mask(8, 8, parity).flatten(1)
            layers += [ActNorm(64), AffineCoupling(mask, mlp(64, 128, hidden))]
    return Flow(layers, (64,))


def glow_mnist(steps_per_scale: Sequence[int] = (4, 8), hidden: int = 64) -> Flow:
    """A Glow-style flow for 28x28 MNIST at two scales: dequantization of the 256 grey
    levels to logit space, a squeeze to ``[4, 14, 14]`` and ``steps_per_scale[0]`` flow
    steps, another squeeze to ``[16, 7, 7]`` and ``steps_per_scale[1]`` steps. A flow step
    is ActNorm -> invertible 1x1 conv -> affine coupling (channel mask, conv net). At 7x7
    a few 3x3 convolutions see the whole digit. (Glow also factors out half the channels
    at each scale to save compute; at 784 dimensions we keep them all.)"""
    layers: list[nn.Module] = [Dequantize(256)]
    channels, seed = 1, 0
    for num_steps in steps_per_scale:
        layers.append(Squeeze())
        channels *= 4
        for k in range(num_steps):
            layers += [
                ActNorm(channels),
                InvConv1x1(channels, seed=seed),
                AffineCoupling(channel_mask(channels, k % 2), ConvNet(channels, hidden)),
            ]
            seed += 1
    side = 28 // 2 ** len(steps_per_scale)
    return Flow(layers, (channels, side, side))


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + u`` with ``u ~ U[0, 1)`` elementwise: integer pixel levels to a continuous
    density's support."""
    return x + torch.rand(x.shape, generator=generator).to(x.device)


def discrete_nll_bound(flow: Flow, x: torch.Tensor, draws: int = 10) -> torch.Tensor:
    """``-E_u[log p(x + u)]`` per example (nats), averaged over ``draws`` noise draws: an
    upper bound on the discrete NLL ``-log P(x)`` of integer-valued ``x`` (Jensen)."""
    with torch.no_grad():
        values = [-flow.log_prob(dequantize(x)) for _ in range(draws)]
    return torch.stack(values).mean(0)


# -- pretraining recipes (the checkpoints in course_utils/weights) ---------------------


def train_flow(
    flow: Flow,
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    *,
    seconds: float | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    ema_decay: float = 0.995,
    eval_every: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Maximum likelihood on dequantized integer data (``x + u``, fresh ``u`` each step).

    Trains in rounds of ``eval_every`` epochs until the time or epoch budget is spent, and
    keeps the exponential moving average of the weights with the best validation NLL bound
    (nats per example, 2 noise draws). Loads them into ``flow`` (eval mode) and returns
    ``{"best_val_nll", "best_epoch", "epochs", "train_seconds"}``.
    """
    seed_everything(seed)
    flow.train()
    with torch.no_grad():  # ActNorm's data-dependent initialization, on a large batch
        flow(dequantize(x_train[:512]))
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    info = train_keeping_best(
        flow, opt, lambda x: -flow.log_prob(dequantize(x)).mean(),
        lambda averaged: discrete_nll_bound(averaged, x_val, draws=2).mean().item(),
        x_train, seconds=seconds, epochs=epochs, batch_size=batch_size, ema_decay=ema_decay,
        eval_every=eval_every, seed=seed,
    )  # fmt: skip
    return {"best_val_nll": info.pop("best_val"), **info}


FLOW_DIGITS_CONFIG = {"num_blocks": 4, "hidden": 256}


def flow_digits_benchmark(seconds: float = 55.0, seed: int = 0) -> tuple[Flow, dict]:
    """The intro_dgm digits protocol for flows: train on the first 1000 images, select on
    the next 350, report the test NLL bound ``-E_u log p(x + u)`` (nats per image)."""
    device = get_device()
    x_train, x_val, x_test = data.digits_protocol(device)
    seed_everything(seed)
    flow = realnvp_digits(**FLOW_DIGITS_CONFIG).to(device)
    info = train_flow(flow, x_train, x_val, seconds=seconds, seed=seed)
    torch.manual_seed(seed)
    nll = discrete_nll_bound(flow, x_test, draws=10).mean().item()
    results = {
        "test_nll": nll,
        "test_bits_per_dim": nll / (64 * math.log(2)),
        "parameters": float(sum(p.numel() for p in flow.parameters())),
        **info,
    }
    return flow, results


@recipe(
    "flow_digits",
    model="course_utils.flows:realnvp_digits",
    group="flow",
    summary="RealNVP, sklearn digits, uniform dequantization (lecture 03)",
    numbers=(
        "test NLL bound {test_nll:.2f} nats ({test_bits_per_dim:.3f} bits/dim), "
        "{train_seconds:.0f} s of training"
    ),
)
def pretrain_flow_digits(out: Path, seconds: float = 55.0, seed: int = 0) -> dict[str, float]:
    flow, results = flow_digits_benchmark(seconds, seed)
    checkpoints.save(
        flow, out, name="flow_digits", config=FLOW_DIGITS_CONFIG, pixel_range=(0, 17),
        metrics=results,
    )  # fmt: skip
    return results


FLOW_MNIST_CONFIG = {"steps_per_scale": [4, 8], "hidden": 64}
FLOW_MNIST_PIXELS = (0, 256)  # 256 grey levels, dequantized: x + u in [0, 256)


@recipe(
    "flow_mnist",
    model="course_utils.flows:glow_mnist",
    group="flow",
    summary="Glow-style flow at two scales, MNIST (lecture 03)",
    numbers=(
        "test {test_bits_per_dim:.3f} bits/dim; 1000 samples at T = 1: FID {fid_samples:.0f},"
        " {classes_present:.0f}/10 digits, class entropy {class_entropy:.2f}; at T = 0.7: FID"
        " {fid_samples_t07:.0f}; {epochs:.0f} epochs, {train_seconds:.0f} s of training"
    ),
)
def pretrain_flow_mnist(out: Path, epochs: int = 100, seed: int = 0) -> dict[str, float]:
    """The Glow-style flow on MNIST (256 grey levels): 3600 train images, 400 for
    selection; test bits/dim, and FID / class coverage of 1000 samples at temperature 1
    and 0.7."""
    device = get_device()
    x, _ = data.mnist("train", device=device)
    x_test, _ = data.mnist("test", device=device)
    levels = 255 * x
    seed_everything(seed)
    flow = glow_mnist(**FLOW_MNIST_CONFIG).to(device)
    info = train_flow(flow, levels[:3600], levels[3600:], epochs=epochs, eval_every=5, seed=seed)
    torch.manual_seed(seed)
    nll = discrete_nll_bound(flow, 255 * x_test, draws=2).mean().item()
    samples = data.to_unit(flow.sample(1000), FLOW_MNIST_PIXELS)
    coverage = metrics.class_coverage(samples)
    torch.manual_seed(seed)
    cooled = data.to_unit(flow.sample(1000, temperature=0.7), FLOW_MNIST_PIXELS)
    results = {
        "test_bits_per_dim": nll / (784 * math.log(2)),
        "fid_samples": metrics.fid(samples, x_test),
        "classes_present": float(coverage.classes_present),
        "class_entropy": coverage.entropy,
        "fid_samples_t07": metrics.fid(cooled, x_test),
        "classes_present_t07": float(metrics.class_coverage(cooled).classes_present),
        **info,
    }
    checkpoints.save(
        flow, out, name="flow_mnist", config=FLOW_MNIST_CONFIG, pixel_range=FLOW_MNIST_PIXELS,
        metrics=results,
    )  # fmt: skip
    return results


# -- benchmark (`course bench flow-digits`) --------------------------------------------


@benchmark("flow-digits", summary="the digits RealNVP of lecture 03: test nats per image")
def bench_flow_digits(seconds: float = 55.0, seed: int = 0) -> dict[str, float]:
    """The digits flow benchmark (intro_dgm protocol, uniform dequantization, goal <= 105
    nats): train a RealNVP, then print the test NLL bound, the time and the parameters."""
    _, results = flow_digits_benchmark(seconds=seconds, seed=seed)
    rows = [
        ("test NLL bound -E_u log p(x+u) (nats/image)", f"{results['test_nll']:.2f}"),
        ("test bits/dim", f"{results['test_bits_per_dim']:.3f}"),
    ]
    print_digits_benchmark("RealNVP", rows, results)
    return results


# -- widget figures (lecture 03) -------------------------------------------------------


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
    resolution = 120
    with torch.no_grad():
        pushed = flow.push(x, k)
        hue = (torch.atan2(*flow(x)[0].T.flip(0)) + math.pi) / (2 * math.pi)
        density = flow.log_prob_after(grid_points(extent, resolution), k).exp()
        pulled = flow.pull(torch.randn(len(x), 2, generator=torch.Generator().manual_seed(0)), k)
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.4))
    axes[0].scatter(*as_numpy(pushed).T, s=3, c=as_numpy(hue), cmap="hsv", vmin=0, vmax=1)
    axes[0].set_title(f"data after {k} of {num_layers} layers")
    im = axes[1].imshow(
        as_numpy(density).reshape(resolution, resolution),
        origin="lower",
        extent=extent,
        cmap="viridis",
    )
    fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label="density")
    axes[1].set_title(f"model density of $h_{{{k}}}$")
    axes[2].scatter(*as_numpy(pulled).T, s=3, c="tab:red")
    axes[2].set_title(f"base samples $z$ pulled to $h_{{{k}}}$")
    for ax in axes:
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_xlabel("$h_1$")
        ax.set_ylabel("$h_2$")
    tidy(fig)
    return fig
