"""Diffusion plumbing (DDPM, DDIM): reference implementations of the 04_diffusion functions
and the two samplers.

Convention (as in the 04_diffusion exercises): schedules are length-``T`` tensors indexed
by ``t = 0 … T-1``, where index ``t`` is the paper's step ``t + 1``;
``alpha_bar[t] = prod_{s <= t} (1 - betas[s])``. A batch of time steps is a ``LongTensor
[B]``. ``eps_model(x_t, t)`` predicts the noise, same shape as ``x_t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def linear_beta_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al.'s schedule: ``T`` evenly spaced betas, float32 ``[T]``."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T: expected a positive int, got {T!r}")
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)


def cosine_alpha_bar(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: ``alpha_bar [T]`` from
    ``f(t) = cos(((t/T + s) / (1 + s)) * pi/2)^2``, ``alpha_bar_t = f(t) / f(0)``, with the
    implied betas clipped at 0.999 (near ``t = T`` they approach 1)."""
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


def _per_example(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` reshaped to ``[B, 1, ...]`` to broadcast over ``like``'s non-batch dims,
    on ``like``'s device and in its dtype."""
    # dtype first, on the schedule's device: a float64 schedule cannot move to MPS
    return values.to(like.dtype).to(like.device)[t].view(-1, *[1] * (like.dim() - 1))


def q_sample(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """``x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise``, a sample of q(x_t | x0)."""
    ab = _per_example(alpha_bar, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def posterior_mean_variance(
    x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, betas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of ``q(x_{t-1} | x_t, x0)`` (Ho et al., eqs. 6-7):

    mean = sqrt(ab_prev) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_prev) / (1 - ab_t) x_t
    var  = (1 - ab_prev) / (1 - ab_t) beta_t          (ab_prev = 1 at t = 0)
    """
    alpha_bar = alpha_bar_of(betas)
    ab_prev_all = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    beta, ab = _per_example(betas, t, x_t), _per_example(alpha_bar, t, x_t)
    ab_prev = _per_example(ab_prev_all, t, x_t)
    mean = (
        ab_prev.sqrt() * beta / (1 - ab) * x0 + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * x_t
    )
    return mean, (1 - ab_prev) / (1 - ab) * beta


def predict_x0(
    x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """The ``x0`` implied by a noise prediction: ``(x_t - sqrt(1 - ab) eps) / sqrt(ab)``."""
    ab = _per_example(alpha_bar, t, x_t)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def ddpm_loss(eps_model: EpsModel, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """``L_simple`` (Ho et al., Algorithm 1): uniform ``t``, ``eps ~ N(0, I)``, the mean
    squared error between ``eps`` and ``eps_model(x_t, t)``."""
    t = torch.randint(0, len(alpha_bar), (len(x0),), device=x0.device)
    noise = torch.randn_like(x0)
    return (noise - eps_model(q_sample(x0, t, noise, alpha_bar), t)).square().mean()


def p_sample_step(
    eps_model: EpsModel, x_t: torch.Tensor, t: int, betas: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """One step of Algorithm 2 at integer ``t`` with ``sigma_t^2 = beta_t``:
    ``x_{t-1} = (x_t - beta_t / sqrt(1 - ab_t) eps) / sqrt(alpha_t) + sigma_t z``, no noise at
    ``t = 0``."""
    alpha_bar = alpha_bar_of(betas)
    t_batch = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
    beta, ab = float(betas[t]), float(alpha_bar[t])
    mean = (x_t - beta / math.sqrt(1 - ab) * eps_model(x_t, t_batch)) / math.sqrt(1 - beta)
    return mean + math.sqrt(beta) * noise if t > 0 else mean


def ddim_step(
    eps_model: EpsModel,
    x_t: torch.Tensor,
    t: int,
    t_prev: int,
    alpha_bar: torch.Tensor,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One DDIM update (Song et al., eq. 12) from index ``t`` to ``t_prev`` (``-1``: the
    data, ``alpha_bar = 1``):

        x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps + sigma z,
        sigma  = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev).
    """
    t_batch = torch.full((len(x_t),), t, dtype=torch.long, device=x_t.device)
    eps = eps_model(x_t, t_batch)
    ab = float(alpha_bar[t])
    ab_prev = float(alpha_bar[t_prev]) if t_prev >= 0 else 1.0
    x0_hat = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab)) * math.sqrt(1 - ab / ab_prev)
    x_prev = math.sqrt(ab_prev) * x0_hat + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
    if sigma > 0:
        if noise is None:
            noise = torch.randn_like(x_t)
        x_prev = x_prev + sigma * noise
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


@dataclass
class DenoisingStep:
    """One kept step of a sampler: index ``t``, the current ``x_t`` and the model's
    prediction of ``x0`` from it (``predict_x0``), both shaped like the samples."""

    t: int
    x_t: torch.Tensor
    x0_hat: torch.Tensor


def _kept(eps_model: EpsModel, x: torch.Tensor, t: int, alpha_bar: torch.Tensor) -> DenoisingStep:
    t_batch = torch.full((len(x),), t, dtype=torch.long, device=x.device)
    x0_hat = predict_x0(x, t_batch, eps_model(x, t_batch), alpha_bar)
    return DenoisingStep(t, x.clone(), x0_hat)


@torch.no_grad()
def sample_ddpm(
    eps_model: EpsModel, x_T: torch.Tensor, betas: torch.Tensor, keep: int = 0
) -> tuple[torch.Tensor, list[DenoisingStep]]:
    """Algorithm 2 from ``x_T`` down to ``x_0``. Returns ``(x_0, trajectory)``, the
    trajectory holding ``keep`` evenly spaced steps (``[]`` if ``keep = 0``)."""
    T = len(betas)
    alpha_bar = alpha_bar_of(betas)
    marks = set(torch.linspace(T - 1, 0, keep).round().long().tolist()) if keep else set()
    x, trajectory = x_T, []
    for t in range(T - 1, -1, -1):
        if t in marks:
            trajectory.append(_kept(eps_model, x, t, alpha_bar))
        x = p_sample_step(eps_model, x, t, betas, torch.randn_like(x))
    return x, trajectory


@torch.no_grad()
def sample_ddim(
    eps_model: EpsModel, x_T: torch.Tensor, alpha_bar: torch.Tensor, steps: int, eta: float = 0.0
) -> tuple[torch.Tensor, list[DenoisingStep]]:
    """DDIM with ``steps`` evenly spaced time indices from ``T - 1`` to ``0``, then to the
    data. Returns ``(x_0, trajectory)``, one ``DenoisingStep`` before every update."""
    T = len(alpha_bar)
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps: expected an int in [1, {T}], got {steps!r}")
    times = torch.linspace(T - 1, 0, steps).round().long().tolist()
    x, trajectory = x_T, []
    for t, t_prev in zip(times, [*times[1:], -1], strict=True):
        trajectory.append(_kept(eps_model, x, t, alpha_bar))
        x = ddim_step(eps_model, x, t, t_prev, alpha_bar, eta)
    return x, trajectory
