"""Diffusion (lecture 04): schedules (linear, cosine, ``betas_from`` a checkpoint's),
``q_sample``, the posterior, ``predict_x0``, L_simple, DDPM and DDIM steps and samplers,
``Recorder`` (a sampler's evaluations), guidance, ``DiffusionUnet``,
``train_with_label_dropout`` and the DDPM recipe, ``course bench diffusion``, the noising
and denoising figures.

Convention (as in the 04_diffusion exercises): schedules are length-``T`` tensors indexed
by ``t = 0 … T-1``, where index ``t`` is the paper's step ``t + 1``;
``alpha_bar[t] = prod_{s <= t} (1 - betas[s])``. A batch of time steps is a ``LongTensor
[B]``. ``eps_model(x_t, t)`` predicts the noise, same shape as ``x_t``.

Every sampler of the course, here and in ``flow_matching``, is
``sample(model, x_start, [schedule,] [steps,] [options]) -> the sample``, and calls
``model(x, t)`` with the current state; wrap the model in a ``Recorder`` to count its
evaluations or keep the trajectory (docs/DESIGN.md, Conventions: samplers).
"""

from __future__ import annotations

import copy
import math
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from course_utils import checkpoints, data, metrics
from course_utils.bench import load_json, machine, save_json
from course_utils.device import get_device, seed_everything
from course_utils.registry import benchmark, recipe
from course_utils.train import run, step_and_average
from course_utils.viz import as_numpy, image_axes, tidy

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# Copied from solutions/04_diffusion.py: linear_beta_schedule
def linear_beta_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al.'s schedule: T evenly spaced betas from beta_start to beta_end, both
    included; float32 [T]."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T: expected a positive int, got {T!r}")
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)


# Copied from solutions/04_diffusion.py: cosine_alpha_bar
def cosine_alpha_bar(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: alpha_bar [T], float32, for the paper's steps
    1..T, from f(t) = cos(((t/T + s) / (1 + s)) pi/2)^2 and alpha_bar_t = f(t) / f(0), the
    implied betas clipped at 0.999 (near t = T they approach 1)."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T: expected a positive int, got {T!r}")
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0).float()


def alpha_bar_of(betas: torch.Tensor) -> torch.Tensor:
    """``alpha_bar [T]`` of a beta schedule."""
    return torch.cumprod(1 - betas, dim=0)


def betas_of(alpha_bar: torch.Tensor) -> torch.Tensor:
    """The betas ``[T]`` that produce ``alpha_bar``."""
    previous = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    return 1 - alpha_bar / previous


# Copied from solutions/04_diffusion.py: q_sample
def q_sample(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """A sample of q(x_t | x0): sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise, per
    example, for x0 and noise [B, ...] and the steps t, a LongTensor [B] (alpha_bar [T] on
    t's device, in x0's dtype)."""
    ab = alpha_bar[t].view(-1, *[1] * (x0.dim() - 1))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


# Copied from solutions/04_diffusion.py: posterior_mean_variance
def posterior_mean_variance(
    x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, betas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [B, ...] and variance [B, 1, ...] of q(x_{t-1} | x_t, x0) (Ho et al., eqs. 6-7)
    for x0 and x_t [B, ...], the steps t [B] and the schedule betas [T] (on the CPU):

    mean = sqrt(ab_prev) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_prev) / (1 - ab_t) x_t
    var  = (1 - ab_prev) / (1 - ab_t) beta_t          (ab_prev = 1 at t = 0)
    """
    alphas = 1 - betas
    alpha_bar = torch.cumprod(alphas, dim=0)
    alpha_bar_prev = torch.cat([torch.ones(1), alpha_bar[:-1]])
    shape = (-1,) + (1,) * (x_t.dim() - 1)
    beta, alpha = betas[t].view(shape), alphas[t].view(shape)
    ab, ab_prev = alpha_bar[t].view(shape), alpha_bar_prev[t].view(shape)
    mean = ab_prev.sqrt() * beta / (1 - ab) * x0 + alpha.sqrt() * (1 - ab_prev) / (1 - ab) * x_t
    var = (1 - ab_prev) / (1 - ab) * beta
    return mean, var


# Copied from solutions/04_diffusion.py: predict_x0
def predict_x0(
    x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """The x0 implied by a noise prediction eps: (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), for
    x_t and eps [B, ...] and the steps t [B] (alpha_bar [T] on t's device, in x_t's dtype)."""
    ab = alpha_bar[t].view(-1, *[1] * (x_t.dim() - 1))
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


# Copied from solutions/04_diffusion.py: ddpm_loss
def ddpm_loss(eps_model: EpsModel, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """L_simple (Ho et al., Algorithm 1) on a batch x0 [B, ...]: t uniform over 0..T-1 and
    noise ~ N(0, I) per example, the mean squared error between the noise and
    eps_model(x_t, t); a scalar. alpha_bar [T] is on x0's device."""
    t = torch.randint(0, len(alpha_bar), (x0.shape[0],), device=x0.device)
    noise = torch.randn_like(x0)
    ab = alpha_bar[t].view(-1, *[1] * (x0.dim() - 1))
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise  # as q_sample does
    return ((noise - eps_model(x_t, t)) ** 2).mean()


# Copied from solutions/04_diffusion.py: p_sample_step
def p_sample_step(
    eps_model: EpsModel, x_t: torch.Tensor, t: int, betas: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """One step of DDPM's Algorithm 2 from index t to t - 1, with sigma_t^2 = beta_t:
    x_{t-1} = (x_t - beta_t / sqrt(1 - ab_t) eps) / sqrt(alpha_t) + sigma_t z for x_t and
    the given z = noise [B, ...], no noise at t = 0; one evaluation of eps_model."""
    alpha_bar = torch.cumprod(1 - betas, dim=0)
    beta, ab = float(betas[t]), float(alpha_bar[t])  # Python floats: any device and dtype
    t_batch = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
    eps = eps_model(x_t, t_batch)
    mean = (x_t - beta / math.sqrt(1 - ab) * eps) / math.sqrt(1 - beta)
    if t == 0:
        return mean
    return mean + math.sqrt(beta) * noise


# Copied from solutions/04_diffusion.py: ddim_step
def ddim_step(
    eps_model: EpsModel, x_t: torch.Tensor, t: int, t_prev: int, alpha_bar: torch.Tensor,
    eta: float = 0.0, noise: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """One DDIM update (Song et al., eq. 12) of x_t [B, ...] from index t to t_prev (-1: the
    data, alpha_bar = 1), one evaluation of eps_model:

        x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps + sigma z,
        sigma  = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev),

    z the given noise, drawn when None and sigma > 0."""
    eps = eps_model(x_t, torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device))
    ab = float(alpha_bar[t])  # Python floats: any device and dtype
    ab_prev = float(alpha_bar[t_prev]) if t_prev >= 0 else 1.0
    x0_hat = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(1 - ab / ab_prev)
    x_prev = math.sqrt(ab_prev) * x0_hat + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
    if sigma > 0:  # at eta = 0 the step is deterministic: no noise drawn
        x_prev = x_prev + sigma * (torch.randn_like(x_t) if noise is None else noise)
    return x_prev


def guided(model: Callable[..., torch.Tensor], y: torch.Tensor, w: float) -> EpsModel:
    """Classifier-free guidance (Ho & Salimans, 2022): the noise prediction
    ``(1 + w) eps(x_t, t, y) - w eps(x_t, t, no label)`` as an ``eps_model(x_t, t)``.

    Args:
        model: ``model(x_t, t, y)``, where ``y = None`` means no label.
        y: ``[B]`` requested labels, one per sample.
        w: guidance weight; ``w = 0`` is the conditional model, larger trades diversity
            for fidelity to ``y``.
    """
    if not isinstance(w, int | float) or w < 0:
        raise ValueError(f"w: expected a non-negative number, got {w!r}")

    def eps_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if w == 0:
            return model(x_t, t, y)
        eps_cond = model(x_t, t, y)
        return (1 + w) * eps_cond - w * model(x_t, t, None)

    return eps_model


# -- samplers: one contract (docs/DESIGN.md, Conventions), trajectories by a Recorder ---


@dataclass(frozen=True)
class Evaluation:
    """One call ``model(x, t)`` inside a sampler: the state ``x [B, ...]``, its time ``t``
    (``[B]``; a float for ``VpSde.reverse``'s score) and the output, shaped like ``x``."""

    x: torch.Tensor
    t: Any
    out: torch.Tensor


class Recorder:
    """``model`` that keeps each of its calls, in order, as an ``Evaluation``: hand it to a
    sampler in the model's place. ``len(evaluations)`` is the number of network
    evaluations the sampler spent; for a sampler that evaluates once per step at the
    current state, ``evaluations[k].x`` is the state before step ``k``: the trajectory,
    kept without changing the samples."""

    def __init__(self, model: Callable[[torch.Tensor, Any], torch.Tensor]) -> None:
        self.model = model
        self.evaluations: list[Evaluation] = []

    def __call__(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        out = self.model(x, t)
        self.evaluations.append(Evaluation(x, t, out))
        return out


def sampled_path(
    sample: Callable[..., torch.Tensor], model: Callable[[torch.Tensor, Any], torch.Tensor],
    x_start: torch.Tensor, *args: Any, **options: Any,
) -> torch.Tensor:  # fmt: skip
    """Every state of ``sample(model, x_start, *args, **options)``, a sampler that
    evaluates ``model`` once per step at the current state (DDPM, DDIM, Euler,
    ``VpSde.reverse``): ``[steps + 1, *x_start.shape]``, ``x_start`` first, the sample
    last."""
    recorder = Recorder(model)
    end = sample(recorder, x_start, *args, **options)
    return torch.stack([*(e.x for e in recorder.evaluations), end])


@dataclass
class DenoisingStep:
    """One step of a sampler: index ``t``, the current ``x_t`` and the model's prediction
    of ``x0`` from it (``predict_x0``), both shaped like the samples."""

    t: int
    x_t: torch.Tensor
    x0_hat: torch.Tensor


def denoising_steps(
    evaluations: Sequence[Evaluation], alpha_bar: torch.Tensor
) -> list[DenoisingStep]:
    """The ``DenoisingStep`` of each recorded evaluation of an ``eps_model``, its ``x0_hat``
    computed from the recorded noise prediction (``alpha_bar [T]``, any device and
    dtype)."""
    if not evaluations:
        return []
    # dtype first, on the schedule's device: a float64 schedule cannot move to MPS. Once:
    # the states of one sampler share their dtype and device (DDPM records 1000).
    x = evaluations[0].x
    ab = alpha_bar.to(x.dtype).to(x.device)
    return [DenoisingStep(int(e.t[0]), e.x, predict_x0(e.x, e.t, e.out, ab)) for e in evaluations]


@torch.no_grad()
def sample_ddpm(eps_model: EpsModel, x_T: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Algorithm 2 from ``x_T [B, ...]`` down to ``x_0`` (same shape): ``p_sample_step``
    at ``t = T - 1 … 0`` (``T = len(betas)``), ``T`` evaluations of ``eps_model``."""
    x = x_T
    for t in range(len(betas) - 1, -1, -1):
        x = p_sample_step(eps_model, x, t, betas, torch.randn_like(x))
    return x


def ddim_times(alpha_bar: torch.Tensor, steps: int) -> list[int]:
    """``steps`` evenly spaced time indices from ``T - 1`` down to ``0`` (DDIM's
    subsequence; the ODE solvers of ``flow_matching`` use the same grid).

    Raises:
        ValueError: ``steps`` is not an int in ``[1, T]``.
    """
    T = len(alpha_bar)
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps: expected an int in [1, {T}], got {steps!r}")
    return torch.linspace(T - 1, 0, steps).round().long().tolist()


@torch.no_grad()
def sample_ddim(
    eps_model: EpsModel, x_T: torch.Tensor, alpha_bar: torch.Tensor, steps: int, eta: float = 0.0
) -> torch.Tensor:
    """DDIM from ``x_T [B, ...]`` to ``x_0`` (same shape): ``ddim_step`` at the ``steps``
    indices of ``ddim_times``, the last one to the data; ``steps`` evaluations of
    ``eps_model``, one per update. ``eta = 0``: deterministic."""
    times = ddim_times(alpha_bar, steps)
    x = x_T
    for t, t_prev in zip(times, [*times[1:], -1], strict=True):
        x = ddim_step(eps_model, x, t, t_prev, alpha_bar, eta)
    return x


# -- the MNIST U-Net (lecture 04's shipped model) --------------------------------------


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


# -- pretraining recipes (the checkpoints in course_utils/weights) ---------------------


def train_with_label_dropout(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss: Callable[[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], torch.Tensor],
                   torch.Tensor],
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 5e-4,
    ema_decay: float = 0.999,
    p_uncond: float = 0.1,
    seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """Train a class-conditional ``model(x, t, y)`` (with a ``num_classes`` "no label"
    token) on ``loss(net, x)``, where ``net(x, t)`` is the model at this batch's labels and
    ``x`` the images in [-1, 1]. Classifier-free guidance's label dropout: each label is
    replaced by the "no label" token with probability ``p_uncond``. Loads the exponential
    moving average of the weights into ``model`` (eval mode).

    Args:
        images: ``[N, 1, 28, 28]`` in [0, 1]; rescaled to [-1, 1].
        labels: ``[N]`` digit labels.
    """
    seed_everything(seed)
    averaged = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        drop = torch.rand(len(y), device=y.device) < p_uncond
        y = torch.where(drop, model.num_classes, y)
        value = loss(lambda x_t, t: model(x_t, t, y), data.from_unit(x))
        step_and_average(value, opt, model, averaged, ema_decay)
        return {"loss": value}

    start = time.perf_counter()
    model.train()
    history = run(step, (images, labels), batch_size=batch_size, epochs=epochs, seed=seed,
                  progress=False)  # fmt: skip
    model.load_state_dict(averaged.state_dict())
    model.eval()
    return {
        "train_seconds": time.perf_counter() - start,
        "epochs": float(epochs),
        "final_loss": float(sum(history["loss"][-50:]) / len(history["loss"][-50:])),
    }


def train_ddpm(
    model: DiffusionUnet,
    images: torch.Tensor,
    labels: torch.Tensor,
    alpha_bar: torch.Tensor,
    **options: Any,
) -> dict[str, float]:
    """Algorithm 1 (``ddpm_loss`` on the ``[T]`` schedule ``alpha_bar``) with label dropout:
    ``train_with_label_dropout``, whose keyword options it takes."""
    return train_with_label_dropout(
        model, images, labels, lambda net, x: ddpm_loss(net, x, alpha_bar), **options
    )


DDPM_SCHEDULE = {"kind": "linear", "T": 1000, "beta_start": 1e-4, "beta_end": 0.02}  # Ho et al.


def betas_from(schedule: Mapping[str, Any]) -> torch.Tensor:
    """The betas ``[T]`` of a schedule as a checkpoint's metadata records it
    (``{"kind": "linear", "T", "beta_start", "beta_end"}``).

    Raises:
        ValueError: another kind of schedule.
    """
    if schedule.get("kind") != "linear":
        raise ValueError(f"schedule: expected kind 'linear', got {schedule.get('kind')!r}")
    return linear_beta_schedule(
        int(schedule["T"]), float(schedule["beta_start"]), float(schedule["beta_end"])
    )


DDPM_MNIST_CONFIG = {"width": 16, "mults": [1, 2, 4], "num_classes": 10}


@recipe(
    "ddpm_mnist",
    model="course_utils.diffusion:DiffusionUnet",
    group="ddpm",
    summary="class-conditional DDPM U-Net (EMA weights, trained with label dropout for "
    "classifier-free guidance; lecture 04)",
    numbers=(
        "1000 unconditional DDIM-50 samples: FID {fid_ddim50:.1f}, {classes_present:.0f}/10 "
        "digits, class entropy {class_entropy:.2f}; guided (w = 2), 100 per class: FID "
        "{fid_guided_w2:.1f}, the classifier reads the requested digit in "
        "{label_accuracy_w2:.1%}; {epochs:.0f} epochs, {train_seconds:.0f} s of training"
    ),
)
def pretrain_ddpm_mnist(out: Path, epochs: int = 250, seed: int = 0) -> dict[str, float]:
    """The class-conditional DDPM U-Net on the MNIST train split (batch 64), trained with
    label dropout so that one network serves unconditional sampling and guidance. Reports
    FID and class coverage of 1000 unconditional DDIM-50 samples, and the classifier's
    accuracy on 1000 guided (w = 2) samples of requested digits. The shipped run used
    ``COURSE_NUM_THREADS=2`` (25 minutes on 2 cores)."""
    device = get_device()
    x, y = data.mnist("train", device=device)
    x_test, _ = data.mnist("test", device=device)
    alpha_bar = alpha_bar_of(betas_from(DDPM_SCHEDULE)).to(device)  # ddpm_loss: x's device
    seed_everything(seed)
    model = DiffusionUnet(**DDPM_MNIST_CONFIG).to(device)
    info = train_ddpm(model, x, y, alpha_bar, epochs=epochs, seed=seed)
    torch.manual_seed(seed)
    x_T = torch.randn(1000, 1, 28, 28, device=device)
    samples = data.to_unit(sample_ddim(model, x_T, alpha_bar, 50))
    coverage = metrics.class_coverage(samples)
    wanted = torch.arange(1000, device=device) % 10
    with_guidance = data.to_unit(sample_ddim(guided(model, wanted, 2.0), x_T, alpha_bar, 50))
    results = {
        "fid_ddim50": metrics.fid(samples, x_test),
        "classes_present": float(coverage.classes_present),
        "class_entropy": coverage.entropy,
        "fid_guided_w2": metrics.fid(with_guidance, x_test),
        "label_accuracy_w2": float(
            (metrics.classifier_predict(with_guidance) == wanted).float().mean()
        ),
        **info,
    }
    checkpoints.save(
        model, out, name="ddpm_mnist", config=DDPM_MNIST_CONFIG, pixel_range=data.SIGNED,
        metrics=results, schedule=DDPM_SCHEDULE,
    )  # fmt: skip
    return results


# -- benchmark (`course bench diffusion`) ----------------------------------------------


# (sampler, steps, eta): DDPM is Algorithm 2; DDIM's eta = 0 is deterministic.
DIFFUSION_SAMPLERS: list[tuple[str, int, float]] = [
    ("DDPM", 1000, 1.0),
    ("DDIM", 10, 0.0),
    ("DDIM", 20, 0.0),
    ("DDIM", 50, 0.0),
    ("DDIM", 100, 0.0),
    ("DDIM", 1000, 0.0),
    ("DDIM", 50, 1.0),
]


def _diffusion_case(case: tuple[str, int, float, int]) -> dict[str, float | str | int]:
    """Sample ``n`` images from the shipped ``ddpm_mnist`` model (no label) with one
    sampler, from the same ``x_T`` for every sampler; FID against the MNIST test split,
    class coverage, and wall seconds per 1000 images on one thread."""
    torch.set_num_threads(1)
    sampler, steps, eta, n = case
    model = checkpoints.load_pretrained("ddpm_mnist")
    betas = betas_from(model.meta["schedule"])
    alpha_bar = alpha_bar_of(betas)
    x_T = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    start = time.perf_counter()
    chunks = []
    for x in x_T.split(250):
        if sampler == "DDPM":
            chunks.append(sample_ddpm(model, x, betas))
        else:
            chunks.append(sample_ddim(model, x, alpha_bar, steps, eta))
    seconds = time.perf_counter() - start
    images = data.to_unit(torch.cat(chunks))
    x_test, _ = data.mnist("test")
    coverage = metrics.class_coverage(images)
    return {"sampler": sampler, "steps": steps, "eta": eta, "samples": n,
            "fid": metrics.fid(images, x_test), "classes_present": coverage.classes_present,
            "class_entropy": coverage.entropy, "seconds_per_1000": seconds * 1000 / n}  # fmt: skip


def format_diffusion_bench(result: dict) -> list[str]:
    """The table of ``bench_diffusion``: per sampler, FID (and its ratio to DDPM's),
    classes present, class entropy and seconds per 1000 images; the data floor last."""
    rows = result["rows"]
    ddpm = next(r["fid"] for r in rows if r["sampler"] == "DDPM")
    lines = [
        f"{'sampler':<14}{'steps':>6}{'FID':>8}{'/ DDPM':>8}{'classes':>9}{'entropy':>9}"
        f"{'s / 1000 images':>17}"
    ]
    for r in rows:
        name = r["sampler"] if r["sampler"] == "DDPM" else f"DDIM eta={r['eta']:g}"
        lines.append(
            f"{name:<14}{r['steps']:>6}{r['fid']:>8.1f}{r['fid'] / ddpm:>8.2f}"
            f"{r['classes_present']:>6}/10{r['class_entropy']:>9.2f}{r['seconds_per_1000']:>17.0f}"
        )
    lines.append(f"{'data floor: 1000 train vs test images':<45}{result['fid_floor']:>8.1f}")
    return lines


def load_diffusion_bench(path: str | None = None) -> dict:
    """The shipped ``course bench diffusion`` results
    (``course_utils/weights/diffusion_bench.json``): ``{"samples", "fid_floor", "machine",
    "rows"}``."""
    return load_json("diffusion_bench.json", path)


@benchmark(
    "diffusion",
    summary="steps vs quality of the shipped MNIST diffusion model",
    options=("save",),
    table=lambda: format_diffusion_bench(load_diffusion_bench()),
)
def bench_diffusion(samples: int = 1000, save: str | None = None, workers: int = 2) -> dict:
    """Steps vs quality for the shipped MNIST diffusion model: ``samples`` unconditional
    images per sampler (``DIFFUSION_SAMPLERS``), FID against the test split next to the data
    floor (as many train images against the same split), class coverage and time."""
    cases = [(sampler, steps, eta, samples) for sampler, steps, eta in DIFFUSION_SAMPLERS]
    longest_first = sorted(cases, key=lambda case: -case[1])  # the 1000-step ones in parallel
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        done = dict(zip(longest_first, pool.map(_diffusion_case, longest_first, chunksize=1),
                        strict=True))  # fmt: skip
    rows = [done[case] for case in cases]
    x_train, _ = data.mnist("train")
    x_test, _ = data.mnist("test")
    result = {"samples": samples, "fid_floor": metrics.fid(x_train[:samples], x_test),
              "machine": machine(), "rows": rows}  # fmt: skip
    print(f"{samples} unconditional samples per sampler, 1 thread per sampler; {machine()}")
    print("\n".join(format_diffusion_bench(result)))
    if save:
        save_json(result, save)
    return result


# -- widget figures (lecture 04) -------------------------------------------------------


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
        row[0].imshow(as_numpy(x_t[0]), cmap="gray", vmin=-2.5, vmax=2.5)
        row[0].set_title(f"{name}: $x_t$ at t = {t}")
        image_axes(row[0])
        row[1].hist(as_numpy(x_t.flatten()), bins=50, range=(-4, 4), density=True, color="tab:blue")
        row[1].set_title(f"pixel histogram; $\\bar\\alpha_t$ = {ab:.4f}")
        row[1].set_xlabel("pixel value")
        row[1].set_ylabel("density")
        row[2].plot(steps, as_numpy(alpha_bar), color="tab:green")
        row[2].axvline(t, color="k", ls="--")
        row[2].set_title(f"{name} schedule, t = {t} of {T}")
        row[2].set_xlabel("t")
        row[2].set_ylabel("$\\bar\\alpha_t$")
    tidy(fig)
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
            grid = data.to_unit(images)[: nrow * nrow]
            show_images(grid, f"{name}, t = {step.t + 1}: {what}", nrow=nrow, ax=ax)
    tidy(fig)
    return fig
