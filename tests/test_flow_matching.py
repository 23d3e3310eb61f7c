"""course_utils.flow_matching: the reference functions against their definitions, the
mixture's closed-form score and velocity against Monte Carlo, the ODE samplers against
DDIM and each other, the likelihood against a known density, and the widget figures."""

import math

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils import diffusion, flow_matching
from course_utils.flow_matching import GaussianMixture, VpSde


def test_interpolant_velocity_and_loss_of_the_exact_velocity():
    x0, x1 = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    t = torch.tensor([0.0, 0.5, 1.0])
    x_t = flow_matching.interpolant(x0, x1, t)
    assert torch.equal(x_t[0], x0[0]) and torch.equal(x_t[2], x1[2])
    assert torch.allclose(x_t[1], (x0[1] + x1[1]) / 2)
    assert torch.equal(flow_matching.target_velocity(x0, x1), x1 - x0)
    # every data point equal to c: x_t determines x0, so (c - x_t) / (1 - t) is exact
    c = 2.0
    loss = flow_matching.flow_matching_loss(
        lambda x, t: (c - x) / (1 - t.view(-1, 1)), torch.full((4096, 2), c)
    )
    assert loss.item() < 1e-3


def test_dsm_loss_is_zero_for_the_exact_score_and_score_from_eps_broadcasts():
    torch.manual_seed(0)
    sigma = 0.5
    assert flow_matching.dsm_loss(lambda x: -x / sigma**2, torch.zeros(1000, 2), sigma) < 1e-10
    ones = flow_matching.dsm_loss(torch.ones_like, torch.zeros(200_000, 2), sigma)
    assert ones.item() == pytest.approx(0.5 * (sigma**2 * 2 + 2), abs=0.02)
    eps = torch.ones(2, 1, 2, 2)
    score = flow_matching.score_from_eps(eps, torch.tensor([0.75, 0.0]))
    assert torch.allclose(score[0], torch.full((1, 2, 2), -2.0))
    assert torch.allclose(score[1], torch.full((1, 2, 2), -1.0))


def test_langevin_keeps_a_gaussian_near_invariant():
    torch.manual_seed(0)
    x = torch.randn(50_000, 2)
    for _ in range(100):
        x = flow_matching.langevin_step(lambda z: -z, x, 0.1, torch.randn_like(x))
    assert x.var(0).mean().item() == pytest.approx(1 / (1 - 0.05), abs=0.03)


def test_euler_and_heun_on_fields_with_known_solutions():
    x0 = torch.ones(4, 3)
    # dx/dt = t: exact x0 + 1/2; Euler lags by dt/2, Heun is exact
    field = lambda x, t: t.view(-1, 1).expand_as(x)  # noqa: E731
    assert torch.allclose(flow_matching.euler_sample(field, x0, 4), x0 + 0.375)
    assert torch.allclose(flow_matching.heun_sample(field, x0, 4), x0 + 0.5)
    # dx/dt = x: Euler (1 + h)^n, Heun (1 + h + h^2/2)^n
    assert torch.allclose(flow_matching.euler_sample(lambda x, t: x, x0, 5), x0 * 1.2**5)
    assert torch.allclose(flow_matching.heun_sample(lambda x, t: x, x0, 5), x0 * 1.22**5)
    path = diffusion.sampled_path(flow_matching.euler_sample, field, x0, 4)
    assert path.shape == (5, 4, 3) and torch.equal(path[0], x0)
    assert torch.allclose(path[-1], flow_matching.euler_sample(field, x0, 4))
    with pytest.raises(ValueError, match="steps: expected a positive int"):
        flow_matching.euler_sample(field, x0, 0)


def test_straightness_is_zero_only_for_constant_speed_lines():
    t = torch.linspace(0, 1, 11)[:, None, None]
    start, end = torch.randn(1, 5, 2), torch.randn(1, 5, 2)
    assert flow_matching.straightness(start + t * (end - start)) < 1e-10
    assert flow_matching.straightness(start + t**2 * (end - start)) > 0.1  # a line, sped up


def test_mixture_score_and_velocity_match_autograd_and_monte_carlo():
    means = torch.tensor([[-1.0, 0.0], [2.0, 1.0]])
    mixture = GaussianMixture(means, 0.4, torch.tensor([0.7, 0.3]))
    x = torch.randn(6, 2, requires_grad=True)
    (grad,) = torch.autograd.grad(mixture.log_prob(x).sum(), x)
    assert torch.allclose(mixture.score(x), grad, atol=1e-5)
    # log_prob integrates to 1 on a grid
    grid = torch.linspace(-5, 6, 400)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    cell = (grid[1] - grid[0]) ** 2
    mass = mixture.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().sum() * cell
    assert mass.item() == pytest.approx(1.0, abs=1e-3)
    # the weights are honoured
    samples = mixture.sample(100_000, torch.Generator().manual_seed(0))
    assert (samples[:, 0] < 0.5).float().mean().item() == pytest.approx(0.7, abs=0.01)
    # velocity: E[x1 - x0 | x_t] by importance weighting over draws of x1
    x1 = mixture.sample(400_000, torch.Generator().manual_seed(1))
    t = 0.6
    query = torch.tensor([[0.3, 0.2], [1.0, 0.6]])
    # x_t = (1 - t) x0 + t x1: weight each x1 by N(query; t x1, (1 - t)^2 I)
    log_w = -(query[:, None] - t * x1[None]).square().sum(-1) / (2 * (1 - t) ** 2)
    w = log_w.softmax(1)
    x0_given = (query[:, None] - t * x1[None]) / (1 - t)
    monte_carlo = (w[:, :, None] * (x1[None] - x0_given)).sum(1)
    exact = mixture.velocity(query, torch.full((2,), t))
    assert torch.allclose(exact, monte_carlo, atol=0.02)
    # at t = 1 the velocity is finite: E[x1 - x0 | x1 = x] = x
    assert torch.allclose(mixture.velocity(query, torch.ones(2)), query)


def test_log_likelihood_of_a_gaussian_exact_and_hutchinson():
    gaussian = GaussianMixture(torch.tensor([[1.0, -2.0, 0.5]]), 0.5)
    x = gaussian.sample(8, torch.Generator().manual_seed(0))
    exact = gaussian.log_prob(x)
    assert torch.allclose(flow_matching.log_likelihood(gaussian.velocity, x, 100), exact, atol=1e-3)
    # a linear field: the Jacobian is a multiple of I, so Hutchinson is exact too
    hutchinson = flow_matching.log_likelihood(gaussian.velocity, x, 100, hutchinson=True)
    assert torch.allclose(hutchinson, exact, atol=1e-3)


def test_hutchinson_is_unbiased_for_a_nonlinear_field():
    torch.manual_seed(0)
    w = torch.randn(3, 3)
    field = lambda x, t: torch.tanh(x @ w) * (1 + t[:, None])  # noqa: E731
    x = torch.randn(4, 3)
    t = torch.full((4,), 0.3)
    _, exact = flow_matching.divergence_exact(field, x, t)
    g = torch.Generator().manual_seed(1)
    estimates = torch.stack([
        flow_matching.divergence_hutchinson(
            field, x, t, torch.randint(0, 2, x.shape, generator=g).float() * 2 - 1
        )[1]
        for _ in range(20_000)
    ])  # fmt: skip
    assert estimates.std(0).min() > 0.01  # it is noisy ...
    assert torch.allclose(estimates.mean(0), exact, atol=0.03)  # ... and unbiased


def test_vp_sde_matches_ddpm_and_its_two_samplers_share_the_marginals():
    sde = VpSde()
    ab = diffusion.alpha_bar_of(diffusion.betas_from(diffusion.DDPM_SCHEDULE)).double()
    for t in (99, 499, 999):  # log(1 - beta) = -beta - beta^2/2 ...: close, not equal
        # DDPM's step t + 1 of 1000 is Song's time (t + 1) / 1000, the course's 1 - that
        course_t = 1 - (t + 1) / 1000
        assert math.log(sde.alpha_bar(course_t)) == pytest.approx(math.log(ab[t]), abs=0.1)
    assert sde.alpha_bar(1.0) == 1.0 and sde.alpha_bar(0.0) < 1e-4  # data at 1, noise at 0
    data = flow_matching.ring()
    score = lambda x, t: sde.marginal(data, t).score(x)  # noqa: E731
    torch.manual_seed(0)
    start = torch.randn(20_000, 2)
    for ode in (False, True):
        end = sde.reverse(score, start, 400, ode=ode)
        radius = end.norm(dim=1)
        assert radius.mean().item() == pytest.approx(2.0, abs=0.02)
        assert radius.std().item() == pytest.approx(0.15, abs=0.02)


def test_velocity_score_and_noise_conversions_on_the_exact_mixture_path():
    ring = flow_matching.ring()
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(500, 2, generator=g), ring.sample(500, g)
    t = torch.rand(500, generator=g) * 0.9 + 0.05
    x_t = flow_matching.interpolant(x0, x1, t)
    v = ring.velocity(x_t, t)
    exact_scores = torch.stack([
        ring.scaled(float(ti), 1 - float(ti)).score(xi[None])[0]
        for xi, ti in zip(x_t, t, strict=True)
    ])  # fmt: skip
    score = flow_matching.score_from_velocity(v, x_t, t)
    assert torch.allclose(score, exact_scores, atol=1e-3, rtol=1e-3)
    assert torch.allclose(flow_matching.velocity_from_score(score, x_t, t), v, atol=1e-3)
    eps = flow_matching.eps_from_velocity(v, x_t, t)
    assert torch.allclose(score, -eps / (1 - t)[:, None], atol=1e-4)  # Tweedie, sigma = 1 - t
    x1_hat = flow_matching.data_from_velocity(v, x_t, t)
    assert torch.allclose(t[:, None] * x1_hat + (1 - t)[:, None] * eps, x_t, atol=1e-5)
    assert torch.allclose(x1_hat - eps, v, atol=1e-4)  # u = alpha' x1_hat + sigma' eps
    with pytest.raises(ValueError, match="t: expected times below 1"):
        flow_matching.score_from_velocity(v, x_t, 1.0)
    with pytest.raises(ValueError, match="t: expected times above 0"):
        flow_matching.velocity_from_score(score, x_t, torch.zeros(500))
    with pytest.raises(ValueError, match="t: expected a float or 500 times"):
        flow_matching.eps_from_velocity(v, x_t, torch.zeros(3))


def test_sde_sampler_driven_by_the_velocity_keeps_the_marginals():
    ring = flow_matching.ring()
    x0 = torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    end = flow_matching.sde_sample(ring.velocity, x0, 200, churn=2.0)
    radius = end.norm(dim=1)
    assert radius.mean().item() == pytest.approx(2.0, abs=0.03)
    assert radius.std().item() == pytest.approx(0.15, abs=0.03)
    angle = torch.atan2(end[:, 1], end[:, 0])  # every mode kept, equal weights
    shares = torch.bincount(((angle / (2 * math.pi / 8)).round().long()) % 8, minlength=8) / 20_000
    assert shares.min() > 0.1 and shares.max() < 0.15
    assert torch.equal(flow_matching.sde_sample(ring.velocity, x0[:10], 5, churn=0.0),
                       flow_matching.euler_sample(ring.velocity, x0[:10], 5))  # fmt: skip
    with pytest.raises(ValueError, match="churn"):
        flow_matching.sde_sample(ring.velocity, x0, 5, churn=-1.0)


class _Linear:
    """eps(x, t) = x * c[t]: a noise predictor whose ODE samplers can be compared."""

    def __init__(self, T: int) -> None:
        self.c = torch.linspace(0.1, 0.9, T)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x * self.c[t].view(-1, 1)


def test_ddim_is_euler_and_the_second_order_solvers_converge_faster():
    ab = diffusion.alpha_bar_of(diffusion.linear_beta_schedule(200, 1e-3, 0.1))
    model, x_T = _Linear(200), torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    ddim = diffusion.sample_ddim(model, x_T, ab, 10)
    assert torch.allclose(flow_matching.sample_ddim_euler(model, x_T, ab, 10), ddim, atol=1e-4)
    reference = flow_matching.sample_dpm_solver_2m(model, x_T, ab, 200)
    errors = {}
    for name, solve in (("euler", flow_matching.sample_ddim_euler),
                        ("dpm", flow_matching.sample_dpm_solver_2m),
                        ("heun", flow_matching.sample_ddim_heun)):  # fmt: skip
        errors[name] = [float((solve(model, x_T, ab, n) - reference).norm()) for n in (20, 40)]
    # Euler: first order, the error halves; DPM-Solver++(2M) and Heun: about a quarter
    assert 1.6 < errors["euler"][0] / errors["euler"][1] < 2.6
    assert errors["dpm"][0] / errors["dpm"][1] > 3 and errors["dpm"][1] < errors["euler"][1]
    assert errors["heun"][1] < errors["euler"][1]


def test_flow_matching_unet_embeds_continuous_time():
    net = flow_matching.FlowMatchingUnet(width=16, mults=(1, 2), num_classes=10)
    torch.nn.init.normal_(net.head[-1].weight)  # zero-initialized head: make the output move
    x = torch.randn(2, 1, 28, 28)
    out = net(x, torch.tensor([0.0, 0.5]), torch.tensor([3, 4]))
    assert out.shape == x.shape
    assert not torch.allclose(net(x, torch.tensor([0.0, 0.5])), net(x, torch.tensor([0.5, 0.0])))


def test_widget_figures_have_titles_and_reject_bad_input():
    target = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.4)
    chains = {"a": torch.randn(3, 50, 2), "b": torch.randn(3, 50, 2)}
    fig = flow_matching.langevin_figure(chains, 2, target)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes[:2]] == ["a", "b"]
    plt.close(fig)
    with pytest.raises(ValueError, match="step: expected an int in"):
        flow_matching.langevin_figure(chains, 3, target)
    fig = flow_matching.probability_path_figure(
        torch.randn(50, 2), torch.randn(50, 2), 0.5, {"exact": lambda x, t: -x}
    )
    assert "t = 0.50" in fig.axes[0].get_title() and fig.axes[0].get_xlabel()
    plt.close(fig)
    with pytest.raises(ValueError, match="t: expected a time in"):
        flow_matching.probability_path_figure(torch.randn(5, 2), torch.randn(5, 2), 1.5, {})
    images = {"s": {1: None, 2: torch.zeros(16, 1, 4, 4)}}
    fig = flow_matching.steps_figure(images, 2)
    assert "2 network evaluations" in fig.axes[0].get_title()
    plt.close(fig)
    fig = flow_matching.steps_figure(images, 1)
    assert "not possible" in fig.axes[0].texts[0].get_text()
    plt.close(fig)
    with pytest.raises(ValueError, match="nfe: expected one of"):
        flow_matching.steps_figure(images, 3)


def test_fm_recipe_is_registered():
    from course_utils import registry

    assert registry.model_class("fm_mnist") is flow_matching.FlowMatchingUnet
    assert "{fid_euler10" in registry.recipes()["fm_mnist"].numbers


def test_sampling_bench_case_scores_and_skips_what_a_solver_cannot_spend():
    assert flow_matching._sampling_case(("FM Heun", 1, 8)) is None  # two evaluations per step
    row = flow_matching._sampling_case(("DPM-Solver++(2M)", 2, 20))
    assert (row["solver"], row["nfe"], row["samples"]) == ("DPM-Solver++(2M)", 2, 20)
    assert row["fid"] > 0 and row["seconds_per_1000"] > 0 and 1 <= row["classes_present"] <= 10
    fm_row = {**row, "solver": "FM Euler", "fid": row["fid"] / 4}
    result = {"rows": [row, fm_row], "nfe": [1, 2], "ddpm_1000": {"fid": row["fid"] / 2},
              "fid_floor": 7.0}  # fmt: skip
    lines = flow_matching.format_sampling_bench(result)
    assert "goal: FID <= " in lines[0] and lines[2].split() == ["evaluations", "1", "2"]
    assert lines[4].split() == ["DPM-Solver++(2M)", "-", f"{row['fid']:.1f}"]
    assert lines[-1].startswith("best at <= 10 evaluations: FM Euler at 2")
    assert lines[-1].endswith("0.50x DDPM-1000 (goal met: True)")


def test_shipped_sampling_bench_is_complete():
    shipped = flow_matching.load_sampling_bench()
    assert shipped["samples"] == 1000 and shipped["nfe"] == list(flow_matching.SAMPLING_NFE)
    ran = {(r["solver"], r["nfe"]) for r in shipped["rows"]}
    expected = {(s, n) for s in flow_matching.SAMPLING_SOLVERS for n in flow_matching.SAMPLING_NFE}
    assert ran == expected - {("FM Heun", 1)}
