"""CycleGAN (Zhu et al., 2017) between two unpaired 2D point sets (lecture 02).

``train_cyclegan`` trains the two translators and their discriminators; the figure of
where each source mode goes is ``figures.cyclegan_figure``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from course_utils.gan.losses import (
    cycle_consistency_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
)
from course_utils.gan.toy import Mlp
from course_utils.train import History, run


@dataclass
class CycleGanRun:
    """What ``train_cyclegan`` returns: the two translators ``G: X -> Y`` and ``F: Y -> X``
    (``[B, 2] -> [B, 2]``), the two discriminators, the loss history and the seconds."""

    G: Mlp
    F: Mlp
    D_X: Mlp
    D_Y: Mlp
    history: History
    seconds: float


def train_cyclegan(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    cycle_weight: float = 2.0,
    steps: int = 2000,
    batch_size: int = 256,
    hidden: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> CycleGanRun:
    """CycleGAN (Zhu et al., 2017) between two unpaired 2D point sets ``x [N, 2]`` and
    ``y [M, 2]``, with the paper's least-squares adversarial losses:

    ``L = L_LSGAN(G, D_Y) + L_LSGAN(F, D_X) + cycle_weight * L_cyc(G, F)``,

    ``L_cyc = E|F(G(x)) - x| + E|G(F(y)) - y|``. Each step updates both generators on
    ``L``, then both discriminators; Adam(``lr``, betas (0.5, 0.999)), decaying linearly
    to 0. ``cycle_weight = 0`` leaves two independent GANs. The paper's weight is 10 on
    images in [-1, 1]; on lecture 02's ring and line, 10 lets the cycle term win over the
    adversarial ones (3 of 8 target modes reached) and 2 reaches all 8.
    """
    for arg, pts in (("x", x), ("y", y)):
        if not isinstance(pts, torch.Tensor) or pts.ndim != 2 or pts.shape[1] != 2:
            got = tuple(pts.shape) if isinstance(pts, torch.Tensor) else type(pts).__name__
            raise ValueError(f"{arg}: expected a tensor [N, 2], got {got}")
    if x.device != y.device:
        raise ValueError(f"x/y: expected tensors on one device, got {x.device} and {y.device}")
    if not cycle_weight >= 0:
        raise ValueError(f"cycle_weight: expected a number >= 0, got {cycle_weight!r}")
    torch.manual_seed(seed)
    G, F_, D_X, D_Y = (Mlp(2, 2 if i < 2 else 1, hidden).to(x.device) for i in range(4))
    opt_g = torch.optim.Adam([*G.parameters(), *F_.parameters()], lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*D_X.parameters(), *D_Y.parameters()], lr=lr, betas=(0.5, 0.999))
    schedules = [
        torch.optim.lr_scheduler.LambdaLR(opt, lambda i: max(0.0, 1 - i / steps))
        for opt in (opt_g, opt_d)
    ]
    batch_gen = torch.Generator().manual_seed(seed)

    def step_fn(real_x: torch.Tensor) -> dict[str, torch.Tensor]:
        real_y = y[torch.randint(len(y), (len(real_x),), generator=batch_gen).to(x.device)]
        fake_y, fake_x = G(real_x), F_(real_y)
        adversarial = lsgan_generator_loss(D_Y(fake_y)) + lsgan_generator_loss(D_X(fake_x))
        cycle = cycle_consistency_loss(real_x, real_y, G, F_)
        opt_g.zero_grad(set_to_none=True)
        (adversarial + cycle_weight * cycle).backward()
        opt_g.step()
        loss_d = lsgan_discriminator_loss(D_Y(real_y), D_Y(fake_y.detach())) + (
            lsgan_discriminator_loss(D_X(real_x), D_X(fake_x.detach()))
        )
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        for schedule in schedules:
            schedule.step()
        return {"adversarial": adversarial, "cycle": cycle, "discriminators": loss_d}

    start = time.perf_counter()
    history = run(step_fn, x, batch_size=batch_size, steps=steps, seed=seed, progress=False)
    return CycleGanRun(G, F_, D_X, D_Y, history, time.perf_counter() - start)
