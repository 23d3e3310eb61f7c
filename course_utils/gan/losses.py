"""GAN losses (lecture 02): the reference implementations of the 02_gan exercise set.

* The discriminator and generator losses (minimax, non-saturating), the WGAN critic and
  generator losses, the gradient penalty (Gulrajani et al., 2017), weight clipping, one
  power-iteration step of spectral normalization (Miyato et al., 2018), CycleGAN's
  cycle-consistency loss and Mescheder et al.'s (2018) R1 penalty: each marked
  ``# Copied from solutions/02_gan.py``, written by ``course build`` from the solution
  (``course build --check`` fails when one drifts).
* LSGAN's losses (Mao et al., 2017), which the exercise set does not ask for.

Scores and logits are ``[B]`` tensors (one per example).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)


# Copied from solutions/02_gan.py: discriminator_loss
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(logits), computed from the
    logits; a scalar."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


# Copied from solutions/02_gan.py: generator_loss_minimax
def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """The saturating generator loss E[log(1 - D(G(z)))] (log(1 - sigmoid(l)) is
    -softplus(l)); a scalar."""
    return -F.softplus(fake_logits).mean()


# Copied from solutions/02_gan.py: generator_loss_nonsaturating
def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -E[log D(G(z))]; a scalar."""
    return F.softplus(-fake_logits).mean()


# Copied from solutions/02_gan.py: critic_loss
def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss to minimize, E[f(fake)] - E[f(real)]; a scalar."""
    return fake_scores.mean() - real_scores.mean()


# Copied from solutions/02_gan.py: wgan_generator_loss
def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss -E[f(G(z))]; a scalar."""
    return -fake_scores.mean()


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN (Mao et al., 2017): ``½E[(D(x) - 1)²] + ½E[D(G(z))²]``."""
    return 0.5 * (real_scores - 1).square().mean() + 0.5 * fake_scores.square().mean()


def lsgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """LSGAN generator: ``½E[(D(G(z)) - 1)²]``."""
    return 0.5 * (fake_scores - 1).square().mean()


# Copied from solutions/02_gan.py: gradient_penalty
def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x f(x_hat)||_2 - 1)^2] at x_hat = eps*real + (1-eps)*fake, eps ~ U[0,1]
    per example (Gulrajani et al. 2017); a scalar, differentiable w.r.t. the critic's
    parameters.

    Args:
        critic: maps [B, ...] to scores [B] (or [B, 1]).
        real, fake: [B, ...] batches of the same shape.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real/fake: expected equal shapes, got {real.shape} and {fake.shape}")
    eps = torch.rand(real.shape[0], *[1] * (real.dim() - 1), device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


# Copied from solutions/02_gan.py: r1_penalty
def r1_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    """Mescheder et al.'s (2018) ``R1 = (γ/2) E_{x~p_data}[‖∇_x D(x)‖₂²]`` at the real
    batch only, ``D`` the discriminator's logit (``fake`` is unused; the argument keeps
    ``ToyGanConfig.penalty``'s signature); a scalar, differentiable w.r.t. the critic's
    parameters. The discriminator minimizes its loss ``+ R1``.

    Args:
        critic: maps ``[B, ...]`` to logits ``[B]`` (or ``[B, 1]``).
        real: ``[B, ...]`` data batch.
        fake: unused.
        gamma: the penalty's weight γ.
    """
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    return gamma / 2 * grad.flatten(1).square().sum(dim=1).mean()


# Copied from solutions/02_gan.py: clip_weights_
def clip_weights_(critic: nn.Module, c: float) -> None:
    """Clamp every parameter of critic to [-c, c] in place; return None."""
    with torch.no_grad():
        for p in critic.parameters():
            p.clamp_(-c, c)


# Copied from solutions/02_gan.py: power_iteration
def power_iteration(weight: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One power-iteration step for the largest singular value of weight [m, n] (spectral
    normalization, Miyato et al. 2018), with u [m]: v = normalize(W^T u),
    u_new = normalize(W v), sigma = u_new^T W v. Returns (sigma, u_new [m])."""
    if weight.dim() != 2 or u.shape != weight.shape[:1]:
        raise ValueError(
            f"weight/u: expected [m, n] and [m], got {tuple(weight.shape)} and {tuple(u.shape)}"
        )
    v = weight.T @ u
    v = v / (v.norm() + 1e-12)
    u_new = weight @ v
    u_new = u_new / (u_new.norm() + 1e-12)
    return u_new @ weight @ v, u_new


# Copied from solutions/02_gan.py: cycle_consistency_loss
def cycle_consistency_loss(
    x: torch.Tensor, y: torch.Tensor, G: Callable, F: Callable
) -> torch.Tensor:
    """CycleGAN's cycle-consistency loss mean |F(G(x)) - x| + mean |G(F(y)) - y| (L1) for
    G: X -> Y and F: Y -> X; a scalar."""
    return (F(G(x)) - x).abs().mean() + (G(F(y)) - y).abs().mean()
