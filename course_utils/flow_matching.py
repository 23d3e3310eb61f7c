"""Scores, SDEs and flow matching (lecture 05): DSM, Tweedie, Langevin, the interpolant, the
flow matching loss, Euler and Heun samplers; ``GaussianMixture`` (exact score and
flow-matching velocity), ``VpSde`` (reverse SDE and probability-flow ODE); DDIM-as-Euler,
Heun and DPM-Solver++(2M) for lecture 04's DDPM model; ``log_likelihood`` (exact divergence
or Hutchinson); ``FlowMatchingUnet`` and its recipe, ``course bench sampling``, the
Langevin, probability-path and steps figures.

Convention (as in the 05_flow_matching exercises; Lipman et al. 2023, Liu et al. 2023):
continuous time ``t`` in [0, 1], a ``[B]`` float tensor; noise at ``t = 0``, data at
``t = 1``, for the whole module: one Gaussian path ``x_t = alpha_t x1 + sigma_t x0`` with
``x0 ~ N(0, I)`` (``alpha_t = t``, ``sigma_t = 1 - t`` for flow matching's linear path,
``x_t = (1 - t) x0 + t x1``; the VP-SDE's ``alpha_t = sqrt(alpha_bar)``).
``v_model(x_t, t)`` predicts the velocity, same shape as ``x_t``; ``eps_from_velocity``,
``data_from_velocity``, ``score_from_velocity`` and ``velocity_from_score`` convert.
Score-based papers (Song et al. 2021) run time the other way, data at 0 and noise at 1:
``VpSde`` takes the course's ``t``, Song's ``1 - t``. Lecture 04's DDPM model keeps its
integer steps (Ho et al.'s direction). The samplers follow ``diffusion``'s one
contract: ``sample(model, x_start, [schedule,] [steps,] [options]) -> the sample``.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from course_utils import checkpoints, data, metrics
from course_utils.bench import load_json, machine, save_json
from course_utils.device import get_device, seed_everything
from course_utils.diffusion import (
    DiffusionUnet,
    alpha_bar_of,
    betas_from,
    ddim_times,
    guided,
    load_diffusion_bench,
    train_with_label_dropout,
)
from course_utils.registry import benchmark, recipe
from course_utils.viz import (
    as_numpy,
    density_heatmap,
    grid_points,
    scatter_2d,
    show_images,
    tidy,
)

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Score = Callable[[torch.Tensor], torch.Tensor]


# -- the 05_flow_matching functions ----------------------------------------------------


# Copied from solutions/05_flow_matching.py: dsm_loss
def dsm_loss(score_model: Score, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Denoising score matching at one noise level (Vincent 2011) on a batch x [B, ...]:
    x~ = x + sigma eps, target -(x~ - x) / sigma^2 = grad log q(x~ | x); the batch mean of
    0.5 sigma^2 ||score_model(x~) - target||^2 (Song & Ermon's lambda = sigma^2), a
    scalar."""
    x_noisy = x + sigma * torch.randn_like(x)
    target = -(x_noisy - x) / sigma**2
    residual = (score_model(x_noisy) - target).flatten(1)
    return 0.5 * sigma**2 * residual.square().sum(dim=1).mean()


# Copied from solutions/05_flow_matching.py: score_from_eps
def score_from_eps(eps: torch.Tensor, alpha_bar_t: torch.Tensor | float) -> torch.Tensor:
    """Tweedie: the score of q(x_t) implied by a noise prediction eps [B, ...],
    -eps / sqrt(1 - alpha_bar_t), with alpha_bar_t a float or a [B] tensor (on eps's
    device) broadcast per example."""
    alpha_bar_t = torch.as_tensor(alpha_bar_t, dtype=eps.dtype)
    if alpha_bar_t.dim() == 1:
        alpha_bar_t = alpha_bar_t.view(-1, *[1] * (eps.dim() - 1))
    return -eps / (1 - alpha_bar_t).sqrt()


# Copied from solutions/05_flow_matching.py: langevin_step
def langevin_step(
    score: Score, x: torch.Tensor, step_size: float, noise: torch.Tensor
) -> torch.Tensor:
    """Unadjusted Langevin: x + h grad log p(x) + sqrt(2 h) z for x and z = noise [B, ...],
    h = step_size."""
    return x + step_size * score(x) + math.sqrt(2 * step_size) * noise


# Copied from solutions/05_flow_matching.py: interpolant
def interpolant(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The linear (conditional OT) path x_t = (1 - t) x0 + t x1 for x0 and x1 [B, ...], with
    the times t [B] (on x0's device) broadcast per example."""
    t = t.view(-1, *[1] * (x0.dim() - 1))
    return (1 - t) * x0 + t * x1


# Copied from solutions/05_flow_matching.py: target_velocity
def target_velocity(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """The conditional velocity d x_t / dt = x1 - x0 of the linear path, [B, ...]."""
    return x1 - x0


# Copied from solutions/05_flow_matching.py: flow_matching_loss
def flow_matching_loss(v_model: Field, x1: torch.Tensor) -> torch.Tensor:
    """Conditional flow matching (Lipman et al. 2023) on a data batch x1 [B, ...]:
    t ~ U[0, 1] per example, x0 ~ N(0, I), the mean squared error between v_model(x_t, t)
    and x1 - x0; a scalar."""
    t = torch.rand(x1.shape[0], device=x1.device)
    x0 = torch.randn_like(x1)
    t_ = t.view(-1, *[1] * (x1.dim() - 1))
    x_t = (1 - t_) * x0 + t_ * x1  # as interpolant does
    return ((v_model(x_t, t) - (x1 - x0)) ** 2).mean()


# Copied from solutions/05_flow_matching.py: euler_sample
@torch.no_grad()
def euler_sample(v_model: Field, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """x [B, ...] at t = 1 from x0 at t = 0: dx/dt = v_model(x, t) by Euler's method in
    `steps` equal steps, one network evaluation each."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")
    x, dt = x0, 1.0 / steps
    for i in range(steps):
        t = torch.full((x.shape[0],), i * dt, device=x.device)
        x = x + dt * v_model(x, t)
    return x


# Copied from solutions/05_flow_matching.py: heun_sample
@torch.no_grad()
def heun_sample(v_model: Field, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """x [B, ...] at t = 1 from x0 at t = 0: dx/dt = v_model(x, t) by Heun's method (an
    Euler predictor, then the trapezoid of the slopes at both ends) on `steps` equal
    intervals, two network evaluations each."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")
    x, dt = x0, 1.0 / steps
    for i in range(steps):
        t = i * dt
        d = v_model(x, torch.full((x.shape[0],), t, device=x.device))
        x_pred = x + dt * d
        x = x + dt / 2 * (d + v_model(x_pred, torch.full((x.shape[0],), t + dt, device=x.device)))
    return x


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive int, got {steps!r}")


def straightness(path: torch.Tensor) -> float:
    """Liu et al.'s (2023) straightness of ODE paths ``[steps + 1, B, ...]`` on an even time
    grid, normalized: ``int_0^1 E||(x_1 - x_0) - dx_t/dt||^2 dt / E||x_1 - x_0||^2``, 0 for
    straight lines run at constant speed (which one Euler step solves exactly)."""
    steps = len(path) - 1
    chord = (path[-1] - path[0]).flatten(1)
    velocity = (path[1:] - path[:-1]).flatten(2) * steps
    deviation = (chord[None] - velocity).square().sum(2).mean()
    return float(deviation / chord.square().sum(1).mean())


# -- Gaussian mixtures: scores and velocities in closed form ---------------------------


@dataclass(frozen=True)
class GaussianMixture:
    """A mixture of isotropic Gaussians ``N(mu_k, std^2 I)``, ``means [K, D]``, with mixing
    ``weights [K]`` (equal when ``None``). Its ``log_prob``, ``score`` and flow-matching
    ``velocity`` are exact, so learned ones can be checked against them."""

    means: torch.Tensor
    std: float
    weights: torch.Tensor | None = None

    def _log_weights(self) -> torch.Tensor:
        K = len(self.means)
        if self.weights is None:
            return torch.full((K,), -math.log(K))
        return (self.weights / self.weights.sum()).log()

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[n, D]`` samples."""
        k = torch.multinomial(self._log_weights().exp(), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator)
        return self.means[k] + self.std * noise

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        d2 = (x[:, None, :] - self.means.to(x)[None]).square().sum(-1)
        return -d2 / (2 * self.std**2) + self._log_weights().to(x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` for ``x [B, D]`` -> ``[B]``."""
        D = self.means.shape[1]
        norm = -0.5 * D * math.log(2 * math.pi * self.std**2)
        return torch.logsumexp(self._logits(x), dim=1) + norm

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """``p(k | x) [B, K]``."""
        return self._logits(x).softmax(dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``grad log p(x) = sum_k p(k | x) (mu_k - x) / std^2``, ``[B, D]``."""
        return (self.responsibilities(x) @ self.means.to(x) - x) / self.std**2

    def scaled(self, a: float, noise_std: float) -> GaussianMixture:
        """The law of ``a X + noise_std Z`` for ``X`` from this mixture: the noised
        marginal of a diffusion (``a = sqrt(ab)``, ``noise_std = sqrt(1 - ab)``) or of the
        flow-matching path (``a = t``, ``noise_std = 1 - t``)."""
        std = math.sqrt(a**2 * self.std**2 + noise_std**2)
        return GaussianMixture(a * self.means, std, self.weights)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The marginal flow-matching velocity ``E[x1 - x0 | x_t = x]`` of the linear path
        from ``N(0, I)`` to this mixture, ``x [B, D]``, ``t [B]`` in [0, 1).

        Given component ``k``, ``x1`` and ``x_t`` are jointly Gaussian, so
        ``E[x1 | x_t, k] = mu_k + t s^2 / var_t (x_t - t mu_k)`` with
        ``var_t = t^2 s^2 + (1 - t)^2``; with ``x0 = (x_t - t x1) / (1 - t)`` this gives
        ``v_k = ((1 - t)(mu_k - x_t) + t s^2 x_t) / var_t``, finite at ``t = 1`` too,
        and ``v = sum_k p(k | x_t) v_k``."""
        t = t.to(x).view(-1, 1)
        mu, s2 = self.means.to(x), self.std**2
        var_t = t**2 * s2 + (1 - t) ** 2  # [B, 1]
        d2 = (x[:, None, :] - t[:, :, None] * mu[None]).square().sum(-1)
        w = (-d2 / (2 * var_t) + self._log_weights().to(x)).softmax(dim=1)  # p(k | x_t)
        mean_mu = w @ mu  # sum_k p(k | x_t) mu_k, [B, D]
        return ((1 - t) * (mean_mu - x) + t * s2 * x) / var_t


def ring(k: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixture:
    """``k`` Gaussians evenly spaced on a circle: the course's 2D mixture."""
    angle = torch.arange(k) * 2 * math.pi / k
    return GaussianMixture(radius * torch.stack([angle.cos(), angle.sin()], dim=1), std)


# -- one Gaussian path x_t = alpha_t x1 + sigma_t x0: velocity, score and noise -------------
#
# Tweedie: grad log p_t(x) = -E[x0 | x_t = x] / sigma_t, so a noise prediction eps, a data
# prediction x1_hat = (x_t - sigma_t eps) / alpha_t, a score and a velocity
# u = alpha'_t x1_hat + sigma'_t eps are four views of one network. For the linear path
# (alpha_t = t, sigma_t = 1 - t): eps = x_t - t u, x1_hat = x_t + (1 - t) u and
# score = -eps / (1 - t).


def _per_example(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """``t`` (a float or a ``[B]`` tensor) shaped to broadcast over ``like [B, ...]``."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 1:
        if len(t) != len(like):
            raise ValueError(
                f"t: expected a float or {len(like)} times, got shape {tuple(t.shape)}"
            )
        t = t.view(-1, *[1] * (like.dim() - 1))
    return t


def eps_from_velocity(v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """The noise prediction ``E[x0 | x_t] = x_t - t v`` implied by a velocity ``v`` of the
    linear path at ``x_t [B, ...]`` and time ``t`` (a float or ``[B]``)."""
    return x_t - _per_example(t, x_t) * v


def data_from_velocity(v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """The data prediction ``x1_hat = E[x1 | x_t] = x_t + (1 - t) v`` (linear path)."""
    return x_t + (1 - _per_example(t, x_t)) * v


def score_from_velocity(
    v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float
) -> torch.Tensor:
    """``grad log p_t(x_t) = -E[x0 | x_t] / sigma_t = (t v - x_t) / (1 - t)`` for the linear
    path, ``t < 1`` (at the data the score of the data is not determined by ``v``)."""
    t = _per_example(t, x_t)
    if bool((t >= 1).any()):
        raise ValueError("t: expected times below 1 (sigma_t = 1 - t divides), got t = 1")
    return (t * v - x_t) / (1 - t)


def velocity_from_score(
    score: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float
) -> torch.Tensor:
    """The inverse of ``score_from_velocity``: ``u = (x_t + (1 - t) score) / t``, ``t > 0``
    (at ``t = 0`` the score of ``N(0, I)`` is ``-x`` whatever the data)."""
    t = _per_example(t, x_t)
    if bool((t <= 0).any()):
        raise ValueError("t: expected times above 0 (alpha_t = t divides), got t = 0")
    return (x_t + (1 - t) * score) / t


@torch.no_grad()
def sde_sample(v_model: Field, x0: torch.Tensor, steps: int, churn: float = 1.0) -> torch.Tensor:
    """x [B, ...] at t = 1 from noise x0 at t = 0 by Euler-Maruyama on the SDE

        dx = [v(x, t) + 1/2 g_t^2 score_t(x)] dt + g_t dW,  g_t^2 = churn (1 - t),

    which has the same marginals p_t as the ODE dx/dt = v for any g_t (the Fokker-Planck
    terms of the score drift and of the noise cancel); the score comes from the velocity,
    ``score_from_velocity``, so ``1/2 g^2 score = 1/2 churn (t v - x)`` stays finite at
    ``t = 1``. ``churn = 0`` is ``euler_sample``. ``steps`` network evaluations."""
    _check_steps(steps)
    if churn < 0:
        raise ValueError(f"churn: expected a number >= 0, got {churn!r}")
    x, dt = x0, 1.0 / steps
    for i in range(steps):
        t = i * dt
        v = v_model(x, torch.full((x.shape[0],), t, device=x.device))
        g2 = churn * (1 - t)
        drift = v + 0.5 * g2 * score_from_velocity(v, x, t)
        x = x + dt * drift + math.sqrt(g2 * dt) * torch.randn_like(x)
    return x


# -- the VP-SDE (Song et al. 2021) in the course's time: noise at t = 0, data at t = 1 --


@dataclass(frozen=True)
class VpSde:
    """The variance-preserving SDE of Song et al. (2021), DDPM's continuous limit, in the
    course's time: noise at ``t = 0``, data at ``t = 1``. **Song et al. run time the other
    way** (data at their 0, noise at their 1): their time is ``1 - t``. In theirs the
    noising SDE is ``dx = -1/2 beta(s) x ds + sqrt(beta(s)) dW`` with ``beta(s) = beta_min
    + s (beta_max - beta_min)`` (their defaults, DDPM's schedule in the limit). Its
    marginals are the Gaussian path ``alpha_t x1 + sigma_t x0`` with
    ``alpha_t = sqrt(alpha_bar(t))``, ``sigma_t = sqrt(1 - alpha_bar(t))``."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def beta(self, t: float) -> float:
        """``beta`` at the course's time ``t`` (Song's time ``1 - t``)."""
        return self.beta_min + (1 - t) * (self.beta_max - self.beta_min)

    def alpha_bar(self, t: float) -> float:
        """``exp(-int beta)`` over Song's time from 0 to ``1 - t``: ``alpha_t^2``, 1 at the
        data (``t = 1``), nearly 0 at the noise (``t = 0``)."""
        s = 1 - t
        return math.exp(-(self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2))

    def marginal(self, data: GaussianMixture, t: float) -> GaussianMixture:
        """``p_t`` when ``p_1`` is the mixture ``data``: the mixture scaled and noised."""
        ab = self.alpha_bar(t)
        return data.scaled(math.sqrt(ab), math.sqrt(1 - ab))

    @torch.no_grad()
    def reverse(
        self,
        score: Callable[[torch.Tensor, float], torch.Tensor],
        x: torch.Tensor,
        steps: int,
        ode: bool = False,
        t_end: float = 0.999,
    ) -> torch.Tensor:
        """From ``x ~ N(0, I)`` at ``t = 0`` to ``t_end`` in ``steps`` equal steps of
        Anderson's (1982) reverse-time SDE, by Euler-Maruyama, or of the probability-flow
        ODE. Written forward in the course's time (``dt > 0``), with ``f = -1/2 beta x``
        and ``g^2 = beta``: ``dx = [-f + g^2 score] dt + g dW`` and
        ``dx = [-f + 1/2 g^2 score] dt``. ``score(x, t)`` is ``grad log p_t`` at the
        course's time ``t``, a float: ``steps`` evaluations. Returns ``x`` at ``t_end``,
        shaped like ``x`` (``diffusion.sampled_path``: every state)."""
        _check_steps(steps)
        dt = t_end / steps
        for i in range(steps):
            t = i * dt
            b = self.beta(t)
            x = x + dt * 0.5 * b * (x + (1.0 if ode else 2.0) * score(x, t))
            if not ode:
                x = x + math.sqrt(b * dt) * torch.randn_like(x)
        return x


# -- ODE samplers for an eps-prediction model (lecture 04's DDPM) ----------------------


def _eps(eps_model: Callable, x: torch.Tensor, t: int) -> torch.Tensor:
    return eps_model(x, torch.full((len(x),), t, dtype=torch.long, device=x.device))


@torch.no_grad()
def sample_ddim_euler(
    eps_model: Callable, x_T: torch.Tensor, alpha_bar: torch.Tensor, steps: int
) -> torch.Tensor:
    """DDIM (eta = 0) written as Euler steps of the probability-flow ODE in Song et al.'s
    variables ``xbar = x / sqrt(ab)``, ``sigma = sqrt((1 - ab) / ab)``:
    ``d xbar / d sigma = eps(x, t)``. The same time indices as ``diffusion.sample_ddim``,
    then to ``sigma = 0``; ``steps`` network evaluations."""
    times = ddim_times(alpha_bar, steps)
    ab = [float(alpha_bar[t]) for t in times] + [1.0]
    sig = [math.sqrt((1 - a) / a) for a in ab]
    xbar = x_T / math.sqrt(ab[0])
    for i, t in enumerate(times):
        xbar = xbar + (sig[i + 1] - sig[i]) * _eps(eps_model, xbar * math.sqrt(ab[i]), t)
    return xbar


@torch.no_grad()
def sample_ddim_heun(
    eps_model: Callable, x_T: torch.Tensor, alpha_bar: torch.Tensor, steps: int
) -> torch.Tensor:
    """Heun's method on the same ODE and grid (Karras et al. 2022, Algorithm 1): a
    trapezoid corrector on every interval but the last one, to ``sigma = 0``, which is an
    Euler step. ``2 steps - 1`` network evaluations."""
    times = ddim_times(alpha_bar, steps)
    ab = [float(alpha_bar[t]) for t in times] + [1.0]
    sig = [math.sqrt((1 - a) / a) for a in ab]
    xbar = x_T / math.sqrt(ab[0])
    d = _eps(eps_model, xbar * math.sqrt(ab[0]), times[0])
    for i in range(len(times)):
        h = sig[i + 1] - sig[i]
        predicted = xbar + h * d
        if i + 1 == len(times):
            return predicted
        d_next = _eps(eps_model, predicted * math.sqrt(ab[i + 1]), times[i + 1])
        xbar = xbar + h / 2 * (d + d_next)
        d = _eps(eps_model, xbar * math.sqrt(ab[i + 1]), times[i + 1])
    return xbar


@torch.no_grad()
def sample_dpm_solver_2m(
    eps_model: Callable, x_T: torch.Tensor, alpha_bar: torch.Tensor, steps: int
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a second-order multistep solver of
    the probability-flow ODE in ``lambda = log(alpha / sigma)`` with data predictions
    ``x1_hat`` (Lu et al.'s ``x_theta``; lecture 04's DDPM notation writes ``x0_hat``,
    but in this module ``x0`` is the noise), one network evaluation per step. With
    ``alpha = sqrt(ab)``, ``sigma = sqrt(1 - ab)``, ``h = lambda_next - lambda``:

        x_next = (sigma_next / sigma) x - alpha_next (e^{-h} - 1) D,
        D = (1 + 1/(2r)) x1_hat - 1/(2r) x1_hat_prev,  r = h_prev / h

    (``D = x1_hat`` on the first step, and on the last, to the data, ``x_next = x1_hat``:
    first order there, as the paper's code does.)"""
    times = ddim_times(alpha_bar, steps)
    x, previous, h_prev = x_T, None, None
    for i, t in enumerate(times):
        ab = float(alpha_bar[t])
        x1_hat = (x - math.sqrt(1 - ab) * _eps(eps_model, x, t)) / math.sqrt(ab)
        if i + 1 == len(times):
            return x1_hat
        ab_next = float(alpha_bar[times[i + 1]])
        lam, lam_next = (0.5 * math.log(a / (1 - a)) for a in (ab, ab_next))
        h = lam_next - lam
        D = x1_hat
        if previous is not None:
            r = h_prev / h
            D = (1 + 1 / (2 * r)) * x1_hat - 1 / (2 * r) * previous
        x = math.sqrt((1 - ab_next) / (1 - ab)) * x - math.sqrt(ab_next) * math.expm1(-h) * D
        previous, h_prev = x1_hat, h
    return x


# -- likelihood of a continuous flow ---------------------------------------------------


def divergence_exact(
    v_model: Field, x: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``v_model(x, t)`` and its divergence ``sum_i d v_i / d x_i`` (``[B]``) by one
    backward pass per dimension of ``x [B, D]``."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = v_model(x, t)
        div = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        for i in range(x.shape[1]):
            div = div + torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i]
    return v.detach(), div.detach()


# Copied from solutions/05_flow_matching.py: divergence_hutchinson
def divergence_hutchinson(
    v_model: Field, x: torch.Tensor, t: torch.Tensor, probe: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``v_model(x, t)`` and Hutchinson's unbiased estimate of its divergence,
    ``probe^T (dv/dx) probe`` (``E[probe probe^T] = I``: Rademacher or Gaussian), from one
    vector-Jacobian product."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = v_model(x, t)
        (vjp,) = torch.autograd.grad(v, x, probe)
    return v.detach(), (vjp * probe).flatten(1).sum(1).detach()


def log_likelihood(
    v_model: Field,
    x1: torch.Tensor,
    steps: int = 50,
    hutchinson: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``log p_1(x1)`` of the flow ``dx/dt = v_model(x, t)`` from ``N(0, I)`` at ``t = 0``,
    for ``x1 [B, D]`` -> ``[B]`` nats. The instantaneous change of variables
    (Chen et al. 2018), ``d log p_t(x_t) / dt = -div v(x_t, t)``, integrated backwards from
    ``t = 1`` to 0 with Heun's method:

        log p_1(x1) = log N(x0; 0, I) - int_0^1 div v(x_t, t) dt.

    ``hutchinson``: estimate each divergence with one Rademacher probe (the same probe for
    the whole path) instead of ``D`` backward passes."""
    _check_steps(steps)
    probe = None
    if hutchinson:
        probe = torch.randint(0, 2, x1.shape, generator=generator).to(x1) * 2 - 1

    def slope(x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        times = torch.full((len(x),), t, device=x.device, dtype=x.dtype)
        if probe is None:
            return divergence_exact(v_model, x, times)
        return divergence_hutchinson(v_model, x, times, probe)

    x, integral, dt = x1, torch.zeros(len(x1), device=x1.device, dtype=x1.dtype), 1.0 / steps
    for i in range(steps, 0, -1):
        t = i * dt
        v, div = slope(x, t)
        predicted = x - dt * v
        v_end, div_end = slope(predicted, t - dt)
        x = x - dt / 2 * (v + v_end)
        integral = integral + dt / 2 * (div + div_end)
    D = x1[0].numel()
    log_base = -0.5 * x.flatten(1).square().sum(1) - 0.5 * D * math.log(2 * math.pi)
    return log_base - integral


# -- the MNIST flow-matching U-Net (the shipped model) ---------------------------------


class FlowMatchingUnet(DiffusionUnet):
    """Lecture 04's U-Net as a velocity model: ``v_model(x_t [B, 1, 28, 28], t [B], y [B])``
    with ``t`` in [0, 1] (noise at 0), embedded as ``1000 t`` so that the sinusoidal
    frequencies cover the same range as the DDPM model's integer steps. ``y = None``: no
    label (classifier-free guidance, as in ``diffusion.guided``)."""

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        return super().forward(x, 1000 * t, y)


FM_MNIST_CONFIG = {"width": 16, "mults": [1, 2, 4], "num_classes": 10}  # as the DDPM model


@recipe(
    "fm_mnist",
    model="course_utils.flow_matching:FlowMatchingUnet",
    summary="class-conditional flow-matching U-Net (linear path, EMA weights, label "
    "dropout for guidance; lecture 05)",
    numbers=(
        "1000 unconditional samples: FID {fid_euler10:.1f} with 10 Euler steps, "
        "{fid_heun5:.1f} with 5 Heun steps (10 evaluations), {fid_euler100:.1f} with 100 "
        "Euler steps, {classes_present:.0f}/10 digits; guided (w = 2, Euler 10), 100 per "
        "class: the classifier reads the requested digit in {label_accuracy_w2:.1%}; "
        "{epochs:.0f} epochs, {train_seconds:.0f} s of training"
    ),
)
def pretrain_fm_mnist(out: Path, epochs: int = 100, seed: int = 0) -> dict[str, float]:
    """The class-conditional flow-matching U-Net on the MNIST train split (batch 64, as the
    DDPM model: same network, same loop, same label dropout; only the loss differs, and
    the shipped run trained 100 epochs against the DDPM model's 250, with
    ``COURSE_NUM_THREADS=2``).
    Reports FID and class coverage of 1000 unconditional samples at 10 and 100 network
    evaluations, and the classifier's accuracy on guided (w = 2) samples of requested
    digits."""
    device = get_device()
    x, y = data.mnist("train", device=device)
    x_test, _ = data.mnist("test", device=device)
    seed_everything(seed)
    model = FlowMatchingUnet(**FM_MNIST_CONFIG).to(device)
    info = train_with_label_dropout(model, x, y, flow_matching_loss, epochs=epochs, seed=seed)
    torch.manual_seed(seed)
    x0 = torch.randn(1000, 1, 28, 28, device=device)
    wanted = torch.arange(1000, device=device) % 10

    def images(sample: Callable[..., torch.Tensor], net: Field, steps: int) -> torch.Tensor:
        return data.to_unit(torch.cat([sample(net, x, steps) for x in x0.split(250)]))

    euler10 = images(euler_sample, model, 10)
    coverage = metrics.class_coverage(euler10)
    with_guidance = data.to_unit(euler_sample(guided(model, wanted, 2.0), x0, 10))
    results = {
        "fid_euler10": metrics.fid(euler10, x_test),
        "fid_heun5": metrics.fid(images(heun_sample, model, 5), x_test),
        "fid_euler100": metrics.fid(images(euler_sample, model, 100), x_test),
        "classes_present": float(coverage.classes_present),
        "class_entropy": coverage.entropy,
        "label_accuracy_w2": float(
            (metrics.classifier_predict(with_guidance) == wanted).float().mean()
        ),
        **info,
    }
    checkpoints.save(
        model, out, name="fm_mnist", config=FM_MNIST_CONFIG, pixel_range=data.SIGNED,
        metrics=results,
    )  # fmt: skip
    return results


# -- benchmark (`course bench sampling`) -----------------------------------------------


SAMPLING_NFE = (1, 2, 4, 8, 10, 20, 50, 100)
# solver -> (checkpoint, sampler, network evaluations per step); the sampler gets the
# checkpoint's alpha_bar after x where the checkpoint records a schedule (the DDPM model's)
SAMPLING_SOLVERS: dict[str, tuple[str, Callable[..., torch.Tensor], int]] = {
    "DDIM": ("ddpm_mnist", sample_ddim_euler, 1),
    "DPM-Solver++(2M)": ("ddpm_mnist", sample_dpm_solver_2m, 1),
    "FM Euler": ("fm_mnist", euler_sample, 1),
    "FM Heun": ("fm_mnist", heun_sample, 2),
}


def _sampling_case(case: tuple[str, int, int]) -> dict[str, float | str | int] | None:
    """``n`` unconditional MNIST samples from one solver at one budget of network
    evaluations, from the same noise as ``course bench diffusion``'s; FID against the test
    split, class coverage, and wall seconds per 1000 images on one thread. ``None`` where
    the solver cannot spend exactly ``nfe`` evaluations."""
    torch.set_num_threads(1)
    solver, nfe, n = case
    name, sample, per_step = SAMPLING_SOLVERS[solver]
    if nfe % per_step:
        return None
    model = checkpoints.load_pretrained(name)
    schedule = model.meta.get("schedule")  # the DDPM model's; flow matching has none
    alpha_bar = [alpha_bar_of(betas_from(schedule))] if schedule else []
    x_T = torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.no_grad():
        chunks = [sample(model, x, *alpha_bar, nfe // per_step) for x in x_T.split(250)]
    seconds = time.perf_counter() - start
    images = data.to_unit(torch.cat(chunks))
    x_test, _ = data.mnist("test")
    coverage = metrics.class_coverage(images)
    return {"solver": solver, "nfe": nfe, "samples": n, "fid": metrics.fid(images, x_test),
            "classes_present": coverage.classes_present, "class_entropy": coverage.entropy,
            "seconds_per_1000": seconds * 1000 / n}  # fmt: skip


def format_sampling_bench(result: dict) -> list[str]:
    """The tables of ``bench_sampling``: FID per solver and budget, with DDPM-1000's FID
    and the goal (1.2 times it) above; then classes present and seconds per 1000 images."""
    rows, budgets = result["rows"], result["nfe"]
    ddpm = result["ddpm_1000"]
    by = {(r["solver"], r["nfe"]): r for r in rows}
    head = f"{'evaluations':<18}" + "".join(f"{n:>7}" for n in budgets)
    lines = [
        f"DDPM-1000 (course bench diffusion): FID {ddpm['fid']:.1f}; goal: FID <= "
        f"{1.2 * ddpm['fid']:.1f} (1.2x) at <= 10 evaluations; "
        f"data floor {result['fid_floor']:.1f}",
        "FID", head,
    ]  # fmt: skip
    for what, fmt in (("fid", "{:>7.1f}"), ("classes_present", "{:>7}"),
                      ("seconds_per_1000", "{:>7.0f}")):  # fmt: skip
        if what != "fid":
            lines += [{"classes_present": "classes present (of 10)",
                       "seconds_per_1000": "seconds per 1000 images"}[what], head]  # fmt: skip
        for solver in SAMPLING_SOLVERS:
            cells = [by.get((solver, n)) for n in budgets]
            lines.append(f"{solver:<18}" + "".join(
                fmt.format(c[what]) if c else f"{'-':>7}" for c in cells))  # fmt: skip
    best = min((r for r in rows if r["nfe"] <= 10), key=lambda r: r["fid"])
    lines.append(
        f"best at <= 10 evaluations: {best['solver']} at {best['nfe']}, FID {best['fid']:.1f} = "
        f"{best['fid'] / ddpm['fid']:.2f}x DDPM-1000 (goal met: {best['fid'] <= 1.2 * ddpm['fid']})"
    )
    return lines


def load_sampling_bench(path: str | None = None) -> dict:
    """The shipped ``course bench sampling`` results
    (``course_utils/weights/sampling_bench.json``)."""
    return load_json("sampling_bench.json", path)


@benchmark(
    "sampling",
    summary="quality per network evaluation: DDIM, DPM-Solver++ and flow matching on MNIST",
    options=("save",),
    table=lambda: format_sampling_bench(load_sampling_bench()),
)
def bench_sampling(samples: int = 1000, save: str | None = None, workers: int = 2) -> dict:
    """FID, class coverage and time of ``samples`` unconditional MNIST images for each of
    ``SAMPLING_SOLVERS`` at each budget in ``SAMPLING_NFE``, from the same noise; DDPM-1000
    is read from the shipped ``course bench diffusion`` results (same noise, same count)."""
    cases = [(solver, n, samples) for solver in SAMPLING_SOLVERS for n in SAMPLING_NFE]
    longest_first = sorted(cases, key=lambda case: -case[1])
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        done = dict(zip(longest_first, pool.map(_sampling_case, longest_first, chunksize=1),
                        strict=True))  # fmt: skip
    rows = [done[case] for case in cases if done[case] is not None]
    ddpm = next(r for r in load_diffusion_bench()["rows"] if r["sampler"] == "DDPM")
    x_train, _ = data.mnist("train")
    x_test, _ = data.mnist("test")
    result = {"samples": samples, "nfe": list(SAMPLING_NFE), "ddpm_1000": ddpm,
              "fid_floor": metrics.fid(x_train[:samples], x_test), "machine": machine(),
              "rows": rows}  # fmt: skip
    print(f"{samples} unconditional samples per case, 1 thread per case; {machine()}")
    print("\n".join(format_sampling_bench(result)))
    if save:
        save_json(result, save)
    return result


# -- widget figures (lecture 05) -------------------------------------------------------


def langevin_figure(
    chains: Mapping[str, torch.Tensor], step: int, target: GaussianMixture, lim: float = 4.0
) -> Figure:
    """One panel per chain (name -> kept states ``[K, N, 2]``, all with the same ``K``):
    the ``N`` samples at kept state ``step`` over the target density, with the share of
    samples nearest to each mode."""
    counts = {len(c) for c in chains.values()}
    if not chains or len(counts) != 1:
        raise ValueError(f"chains: expected equal, non-zero lengths, got {sorted(counts)}")
    K = counts.pop()
    if not isinstance(step, int) or not 0 <= step < K:
        raise ValueError(f"step: expected an int in [0, {K - 1}], got {step!r}")
    fig, axes = plt.subplots(1, len(chains), figsize=(4.6 * len(chains), 4.4), squeeze=False)
    extent = (-lim, lim, -lim, lim)
    for ax, (name, chain) in zip(axes[0], chains.items(), strict=True):
        x = chain[step]
        nearest = torch.cdist(x, target.means).argmin(1)
        shares = torch.bincount(nearest, minlength=len(target.means)).float() / len(x)
        title = f"{name}\nshare per mode: " + ", ".join(f"{s:.2f}" for s in shares)
        density_heatmap(target.log_prob, title, extent, resolution=120, ax=ax)
        scatter_2d(x, title, ax=ax, color="tab:orange", lim=lim)
    tidy(fig)
    return fig


def probability_path_figure(
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: float,
    fields: Mapping[str, Field],
    lim: float = 3.5,
) -> Figure:
    """The linear path at time ``t``: samples of ``p_t`` (``interpolant(x0, x1, t)`` of
    noise ``x0 [N, 2]`` and data ``x1 [N, 2]``) and, one panel per name -> ``v(x, t)``,
    that velocity field drawn as arrows on a grid (length ``|v| / 8``, at most 1)."""
    if not 0 <= t <= 1:
        raise ValueError(f"t: expected a time in [0, 1], got {t!r}")
    x_t = interpolant(x0, x1, torch.full((len(x0),), t))
    points = grid_points((-lim, lim, -lim, lim), 17)
    fig, axes = plt.subplots(1, len(fields), figsize=(4.4 * len(fields), 4.4), squeeze=False)
    for ax, (name, field) in zip(axes[0], fields.items(), strict=True):
        with torch.no_grad():
            v = field(points, torch.full((len(points),), t))
        norm = v.norm(dim=1, keepdim=True)
        v = v * norm.clamp(max=8) / norm.clamp_min(1e-12)  # speeds above 8 drawn as 8
        ax.quiver(*as_numpy(points).T, *as_numpy(v).T, color="tab:red", alpha=0.7, angles="xy",
                  scale_units="xy", scale=8, width=0.004)  # fmt: skip
        scatter_2d(x_t, f"{name} at t = {t:.2f}\narrows: v / 8, capped at length 1", ax=ax,
                   lim=lim, label="samples of $p_t$")  # fmt: skip
    tidy(fig)
    return fig


def steps_figure(
    samples: Mapping[str, Mapping[int, torch.Tensor | None]], nfe: int, nrow: int = 4
) -> Figure:
    """One panel per sampler, two per row (name -> network evaluations -> images
    ``[N, 1, H, W]`` in [-1, 1], or ``None`` where the sampler cannot spend exactly that
    many)."""
    if not samples:
        raise ValueError("samples: expected at least one sampler, got none")
    cols = min(2, len(samples))
    rows = math.ceil(len(samples) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.4 * rows), squeeze=False)
    evaluations = f"{nfe} network evaluation" + ("s" if nfe != 1 else "")
    for ax, (name, by_nfe) in zip(axes.flat, samples.items(), strict=False):
        if nfe not in by_nfe:
            raise ValueError(f"nfe: expected one of {sorted(by_nfe)}, got {nfe!r}")
        images = by_nfe[nfe]
        if images is None:
            ax.text(0.5, 0.5, f"not possible with\n{evaluations}", ha="center", va="center",
                    transform=ax.transAxes)  # fmt: skip
            ax.set_axis_off()
            ax.set_title(name)
            continue
        show_images(data.to_unit(images)[: nrow * nrow], f"{name}\n{evaluations}", nrow=nrow,
                    ax=ax)  # fmt: skip
    for ax in list(axes.flat)[len(samples) :]:
        ax.set_axis_off()
    tidy(fig)
    return fig
