"""course_utils.diffusion: the closed form matches the chain, the posterior matches Monte
Carlo, both samplers recover x0 with a perfect noise predictor, and `course bench
diffusion`'s case and shipped results. (The samplers' common contract:
tests/test_samplers.py.)"""

import math

import pytest
import torch

from course_utils import diffusion


def test_schedules():
    betas = diffusion.linear_beta_schedule(1000)
    assert betas.dtype == torch.float32 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    ab = diffusion.cosine_alpha_bar(1000)
    assert ab.shape == (1000,) and (ab[1:] <= ab[:-1]).all() and 0 < ab[-1] < 1e-3
    assert diffusion.betas_of(ab).max().item() <= 0.999 + 1e-6
    assert torch.allclose(diffusion.alpha_bar_of(diffusion.betas_of(ab)), ab, atol=1e-6)
    with pytest.raises(ValueError, match="T: expected a positive int"):
        diffusion.linear_beta_schedule(0)


def test_q_sample_matches_the_chain_step_by_step():
    torch.manual_seed(0)
    betas = diffusion.linear_beta_schedule(200, 1e-3, 0.05)
    ab = diffusion.alpha_bar_of(betas)
    x0 = torch.tensor([1.5, -0.5])
    n, t = 200_000, 60
    x = x0.expand(n, 2).clone()
    for s in range(t + 1):  # index t = the paper's step t + 1
        x = (1 - betas[s]).sqrt() * x + betas[s].sqrt() * torch.randn_like(x)
    closed = diffusion.q_sample(x0.expand(n, 2), torch.full((n,), t), torch.randn(n, 2), ab)
    assert torch.allclose(x.mean(0), closed.mean(0), atol=0.01)
    assert torch.allclose(x.var(0), closed.var(0), atol=0.01)
    assert torch.allclose(closed.mean(0), ab[t].sqrt() * x0, atol=0.01)
    assert torch.allclose(closed.var(0), (1 - ab[t]).expand(2), atol=0.01)


def test_posterior_matches_monte_carlo():
    # q(x_{t-1} | x_t, x0) by importance weighting: draw x_{t-1} ~ q(x_{t-1} | x0), weight
    # by q(x_t | x_{t-1}) for the fixed x_t.
    torch.manual_seed(0)
    betas = diffusion.linear_beta_schedule(100, 1e-3, 0.1)
    ab = diffusion.alpha_bar_of(betas)
    x0, x_t, t = torch.tensor([0.8]), torch.tensor([0.3]), 40
    prev = ab[t - 1].sqrt() * x0 + (1 - ab[t - 1]).sqrt() * torch.randn(2_000_000, 1)
    log_w = torch.distributions.Normal((1 - betas[t]).sqrt() * prev, betas[t].sqrt()).log_prob(x_t)
    w = torch.softmax(log_w.squeeze(1), 0)[:, None]
    mc_mean = (w * prev).sum(0)
    mc_var = (w * (prev - mc_mean) ** 2).sum(0)
    mean, var = diffusion.posterior_mean_variance(x0[None], x_t[None], torch.tensor([t]), betas)
    assert mean.item() == pytest.approx(mc_mean.item(), abs=0.005)
    assert var.item() == pytest.approx(mc_var.item(), rel=0.02)
    # at t = 0 the "previous" variable is x0 itself: the posterior has variance 0
    _, var0 = diffusion.posterior_mean_variance(x0[None], x_t[None], torch.tensor([0]), betas)
    assert var0.item() == 0


def _perfect_eps(x_star: torch.Tensor, alpha_bar: torch.Tensor):
    def eps_model(x_t, t):
        ab = alpha_bar[t].view(-1, *[1] * (x_t.dim() - 1))
        return (x_t - ab.sqrt() * x_star) / (1 - ab).sqrt()

    return eps_model


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_samplers_recover_x0_with_a_perfect_noise_predictor(schedule):
    torch.manual_seed(0)
    if schedule == "linear":
        betas = diffusion.linear_beta_schedule(1000).double()
        ab = diffusion.alpha_bar_of(betas)
    else:
        ab = diffusion.cosine_alpha_bar(1000).double()
        betas = diffusion.betas_of(ab)
    x_star = torch.tensor([[0.7, -1.2, 0.1]], dtype=torch.float64)
    eps_model = _perfect_eps(x_star, ab)
    x_T = torch.randn(4, 3, dtype=torch.float64)
    ddpm = diffusion.sample_ddpm(eps_model, x_T, betas)
    assert torch.allclose(ddpm, x_star.expand(4, 3), atol=1e-4)
    for steps in (10, 50, 1000):
        ddim = diffusion.sample_ddim(eps_model, x_T, ab, steps)
        assert torch.allclose(ddim, x_star.expand(4, 3), atol=1e-6)
    noisy = diffusion.sample_ddim(eps_model, x_T, ab, 50, eta=1.0)
    assert torch.allclose(noisy, x_star.expand(4, 3), atol=1e-4)


def test_p_sample_step_adds_no_noise_at_the_last_step_and_predict_x0_inverts_q_sample():
    betas = diffusion.linear_beta_schedule(10)
    ab = diffusion.alpha_bar_of(betas)
    x = torch.randn(3, 2)

    def zero(x_t, t):
        return torch.zeros_like(x_t)

    big = 100 * torch.ones(3, 2)
    assert torch.allclose(
        diffusion.p_sample_step(zero, x, 0, betas, big), x / (1 - betas[0]).sqrt()
    )
    assert not torch.allclose(
        diffusion.p_sample_step(zero, x, 1, betas, big), x / (1 - betas[1]).sqrt()
    )
    t, noise = torch.tensor([0, 4, 9]), torch.randn(3, 2)
    x_t = diffusion.q_sample(x, t, noise, ab)
    assert torch.allclose(diffusion.predict_x0(x_t, t, noise, ab), x, atol=1e-4)


def test_ddpm_loss_is_zero_for_the_perfect_predictor_of_one_point():
    ab = diffusion.alpha_bar_of(diffusion.linear_beta_schedule(100))
    x_star = torch.tensor([[0.5, 0.5]])
    loss = diffusion.ddpm_loss(_perfect_eps(x_star, ab), x_star.expand(64, 2), ab)
    assert loss.item() == pytest.approx(0.0, abs=1e-8)
    assert math.isfinite(diffusion.ddpm_loss(lambda x, t: torch.zeros_like(x), x_star, ab).item())


def test_recorded_steps_hold_the_predicted_x0():
    ab = diffusion.alpha_bar_of(diffusion.linear_beta_schedule(50)).double()
    x_star = torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64)
    x_T = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    ddpm_net, ddim_net = (diffusion.Recorder(_perfect_eps(x_star, ab)) for _ in range(2))
    diffusion.sample_ddpm(ddpm_net, x_T, diffusion.betas_of(ab))
    diffusion.sample_ddim(ddim_net, x_T, ab, steps=6)
    ddpm = diffusion.denoising_steps(ddpm_net.evaluations, ab.float())  # any dtype
    ddim = diffusion.denoising_steps(ddim_net.evaluations, ab)
    assert [s.t for s in ddpm] == list(range(49, -1, -1))
    assert [s.t for s in ddim] == [49, 39, 29, 20, 10, 0]
    for steps in (ddpm, ddim):
        assert all(s.x0_hat.dtype == torch.float64 for s in steps)
        assert all(torch.allclose(s.x0_hat, x_star.expand(2, 1, 4, 4)) for s in steps)
    assert torch.equal(ddim[0].x_t, x_T) and torch.equal(ddpm[0].x_t, x_T)


def test_noising_and_denoising_figures():
    import matplotlib.pyplot as plt

    schedules = {
        "linear": diffusion.alpha_bar_of(diffusion.linear_beta_schedule(100)),
        "cosine": diffusion.cosine_alpha_bar(100),
    }
    fig = diffusion.noising_figure(torch.zeros(1, 8, 8), 30, schedules)
    titles = [ax.get_title() for ax in fig.axes]
    assert "linear: $x_t$ at t = 30" in titles and "cosine schedule, t = 30 of 100" in titles
    ab30 = schedules["cosine"][29].item()  # the paper's t = 30 is index 29
    assert f"pixel histogram; $\\bar\\alpha_t$ = {ab30:.4f}" in titles
    plt.close(fig)
    for t in (0, 101):  # the paper's t runs 1 ... T
        with pytest.raises(ValueError, match="t: expected an int"):
            diffusion.noising_figure(torch.zeros(1, 8, 8), t, schedules)
    x_star = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    ab = schedules["linear"].double()
    ddim_net, ddpm_net = (diffusion.Recorder(_perfect_eps(x_star, ab)) for _ in range(2))
    diffusion.sample_ddim(ddim_net, torch.randn(4, 1, 4, 4).double(), ab, 5)
    diffusion.sample_ddpm(ddpm_net, torch.randn(4, 1, 4, 4).double(), diffusion.betas_of(ab))
    ddim = diffusion.denoising_steps(ddim_net.evaluations, ab)
    ddpm = diffusion.denoising_steps(ddpm_net.evaluations[::20], ab)  # 5 of its 100 steps
    fig = diffusion.denoising_figure({"DDPM": ddpm, "DDIM": ddim}, 2, nrow=2)
    titles = [ax.get_title() for ax in fig.axes]
    t_ddpm, t_ddim = ddpm[2].t + 1, ddim[2].t + 1  # titles give the paper's t
    assert titles == [
        f"DDPM, t = {t_ddpm}: $x_t$", f"DDPM, t = {t_ddpm}: predicted $x_0$",
        f"DDIM, t = {t_ddim}: $x_t$", f"DDIM, t = {t_ddim}: predicted $x_0$",
    ]  # fmt: skip
    plt.close(fig)
    with pytest.raises(ValueError, match="index"):
        diffusion.denoising_figure({"DDPM": ddpm}, 5)


def test_diffusion_unet_shapes_labels_and_zero_init():
    from course_utils.diffusion import DiffusionUnet, timestep_embedding

    emb = timestep_embedding(torch.tensor([0, 5]), 8)
    assert emb.shape == (2, 8) and torch.equal(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    torch.manual_seed(0)
    model = DiffusionUnet(width=8, mults=(1, 2, 2), num_classes=10)
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 500, 999])
    assert torch.equal(model(x, t), torch.zeros(3, 1, 28, 28))  # zero-initialized head
    torch.nn.init.normal_(model.head[-1].weight)
    out = model(x, t)
    assert out.shape == (3, 1, 28, 28) and torch.isfinite(out).all()
    assert torch.equal(out, model(x, t, torch.full((3,), 10)))  # None is the "no label" token
    assert not torch.allclose(out, model(x, t, torch.tensor([1, 2, 3])))
    assert not torch.allclose(out, model(x, t.flip(0)))


def test_classifier_free_guidance_combines_the_two_predictions():
    def model(x_t, t, y):
        return x_t * 0 + (0.0 if y is None else y.float()[:, None])

    x, t, y = torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.tensor([1, 4])
    assert torch.equal(diffusion.guided(model, y, 0.0)(x, t), model(x, t, y))
    # (1 + w) eps(x, y) - w eps(x): with eps(x) = 0 it scales the conditional one by 1 + w
    assert torch.allclose(diffusion.guided(model, y, 2.0)(x, t), 3 * model(x, t, y))
    with pytest.raises(ValueError, match="w: expected a non-negative number"):
        diffusion.guided(model, y, -1.0)


def test_diffusion_bench_case_samples_scores_and_times():
    row = diffusion._diffusion_case(("DDIM", 3, 0.0, 20))
    assert (row["sampler"], row["steps"], row["eta"], row["samples"]) == ("DDIM", 3, 0.0, 20)
    assert row["fid"] > 0 and row["seconds_per_1000"] > 0
    assert 1 <= row["classes_present"] <= 10 and 0 <= row["class_entropy"] <= 2.31
    ddpm = {**row, "sampler": "DDPM", "steps": 1000, "eta": 1.0, "fid": 2 * row["fid"]}
    lines = diffusion.format_diffusion_bench({"fid_floor": 7.0, "rows": [ddpm, row]})
    assert lines[0].split()[:3] == ["sampler", "steps", "FID"] and len(lines) == 4
    assert lines[1].split()[:4] == ["DDPM", "1000", f"{ddpm['fid']:.1f}", "1.00"]
    assert lines[2].split()[:5] == ["DDIM", "eta=0", "3", f"{row['fid']:.1f}", "0.50"]
    assert lines[3].startswith("data floor") and lines[3].endswith("7.0")


def test_shipped_diffusion_bench_is_complete():
    shipped = diffusion.load_diffusion_bench()
    assert shipped["samples"] == 1000
    ran = [(r["sampler"], r["steps"], r["eta"]) for r in shipped["rows"]]
    assert ran == diffusion.DIFFUSION_SAMPLERS


def test_ddim_evaluates_the_network_once_per_step_and_matches_its_steps():
    """``sample_ddim`` with S steps calls the network S times, at ``ddim_times``, and gives
    exactly the chain of ``ddim_step``s, deterministic and with eta = 1 from the same random
    state."""
    calls = []

    def eps_model(x, t):
        calls.append(int(t[0]))
        return torch.tanh(x) * (1 + t.float()[:, None] / 100)

    ab = diffusion.alpha_bar_of(diffusion.linear_beta_schedule(100))
    x_T = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    for eta in (0.0, 1.0):
        calls.clear()
        torch.manual_seed(1)
        x = diffusion.sample_ddim(eps_model, x_T, ab, 7, eta)
        times = diffusion.ddim_times(ab, 7)
        assert calls == times
        torch.manual_seed(1)
        expected = x_T
        for t, t_prev in zip(times, [*times[1:], -1], strict=True):
            expected = diffusion.ddim_step(eps_model, expected, t, t_prev, ab, eta)
        assert torch.equal(x, expected)
