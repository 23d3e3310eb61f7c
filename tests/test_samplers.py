"""Every sampler of course_utils.diffusion and course_utils.flow_matching through the one
contract (docs/DESIGN.md, Conventions: samplers): ``sample(model, x_start, [schedule,]
[steps,] [options])`` returns the sample, shaped like ``x_start``; a ``diffusion.Recorder``
around the model counts its network evaluations and keeps the trajectory without
changing the sample, stochastic samplers included."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from course_utils import diffusion, flow_matching

T, STEPS = 40, 6
BETAS = diffusion.linear_beta_schedule(T, 1e-3, 0.2)
ALPHA_BAR = diffusion.alpha_bar_of(BETAS)
SDE = flow_matching.VpSde()


def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A noise prediction that depends on x and on the index t [B] (a LongTensor)."""
    return torch.tanh(x) * (1 + t.float()[:, None] / T)


def v_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A velocity that depends on x and on the time t [B] in [0, 1]."""
    return torch.tanh(x) + t[:, None]


def score(x: torch.Tensor, t: float) -> torch.Tensor:
    """A score at the course's time t, a float (VpSde.reverse's convention)."""
    return -x * (1 + t)


# sampler, model, the arguments after x_start, options, network evaluations, and whether it
# evaluates once per step at the current state (then the evaluations are the trajectory)
SAMPLERS = [
    pytest.param(diffusion.sample_ddpm, eps_model, (BETAS,), {}, T, True, id="DDPM"),
    pytest.param(diffusion.sample_ddim, eps_model, (ALPHA_BAR, STEPS), {}, STEPS, True,
                 id="DDIM"),
    pytest.param(diffusion.sample_ddim, eps_model, (ALPHA_BAR, STEPS), {"eta": 1.0}, STEPS,
                 True, id="DDIM eta=1"),
    pytest.param(flow_matching.sample_ddim_euler, eps_model, (ALPHA_BAR, STEPS), {}, STEPS,
                 False, id="DDIM as Euler"),
    pytest.param(flow_matching.sample_ddim_heun, eps_model, (ALPHA_BAR, STEPS), {},
                 2 * STEPS - 1, False, id="Heun, DDPM model"),
    pytest.param(flow_matching.sample_dpm_solver_2m, eps_model, (ALPHA_BAR, STEPS), {}, STEPS,
                 True, id="DPM-Solver++(2M)"),
    pytest.param(flow_matching.euler_sample, v_model, (STEPS,), {}, STEPS, True, id="FM Euler"),
    pytest.param(flow_matching.heun_sample, v_model, (STEPS,), {}, 2 * STEPS, False,
                 id="FM Heun"),
    pytest.param(flow_matching.sde_sample, v_model, (STEPS,), {"churn": 1.0}, STEPS, True,
                 id="FM SDE"),
    pytest.param(SDE.reverse, score, (STEPS,), {}, STEPS, True, id="VP reverse SDE"),
    pytest.param(SDE.reverse, score, (STEPS,), {"ode": True}, STEPS, True,
                 id="VP probability-flow ODE"),
]  # fmt: skip


@pytest.mark.parametrize(("sample", "model", "args", "options", "evaluations", "per_step"),
                         SAMPLERS)  # fmt: skip
def test_every_sampler_counts_its_evaluations_and_records_without_changing_the_sample(
    sample, model, args: tuple, options: dict[str, Any], evaluations: int, per_step: bool
):
    x_start = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    plain = sample(model, x_start, *args, **options)
    recorder = diffusion.Recorder(model)
    torch.manual_seed(1)  # the same draws: a stochastic sampler gives the same sample
    recorded = sample(recorder, x_start, *args, **options)
    assert isinstance(plain, torch.Tensor) and plain.shape == x_start.shape
    assert torch.equal(recorded, plain)
    assert len(recorder.evaluations) == evaluations
    if per_step:  # the trajectory: x_start first, each state before a step, then the sample
        torch.manual_seed(1)
        path = diffusion.sampled_path(sample, model, x_start, *args, **options)
        assert path.shape == (evaluations + 1, *x_start.shape)
        assert torch.equal(path[0], x_start) and torch.equal(path[-1], plain)
        assert all(torch.equal(p, e.x) for p, e in zip(path, recorder.evaluations, strict=False))
