"""course_utils.gan: the reference losses, the toy trainer, rejection sampling, the widget,
the DCGAN reference models, and `course bench gan`'s case and shipped results."""

import json
import math

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from course_utils import data, gan, metrics
from course_utils.gan import bench as gan_bench


def test_losses_match_their_definitions_and_stay_finite():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    d = torch.sigmoid
    expected = -(d(real).log().mean() + (1 - d(fake)).log().mean())
    assert gan.discriminator_loss(real, fake).item() == pytest.approx(expected.item(), abs=1e-6)
    assert gan.generator_loss_minimax(fake).item() == pytest.approx(
        (1 - d(fake)).log().mean().item(), abs=1e-6
    )
    assert gan.generator_loss_nonsaturating(fake).item() == pytest.approx(
        -d(fake).log().mean().item(), abs=1e-6
    )
    big = torch.tensor([200.0, -200.0])
    assert gan.discriminator_loss(big, -big).item() == pytest.approx(200.0)
    assert gan.critic_loss(real, fake).item() == pytest.approx(-1.25 - 0.5)
    assert gan.wgan_generator_loss(fake).item() == pytest.approx(1.25)
    assert gan.lsgan_discriminator_loss(torch.ones(3), torch.zeros(3)).item() == 0
    assert gan.lsgan_generator_loss(torch.zeros(3)).item() == pytest.approx(0.5)


def test_gradient_penalty_is_exact_for_a_linear_critic_and_trains_it():
    critic = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.0, 3.0, 4.0]]))  # ||w|| = 5
    gp = gan.gradient_penalty(critic, torch.randn(5, 3), torch.randn(5, 3))
    assert gp.item() == pytest.approx(16.0)
    gp.backward()
    assert torch.allclose(critic.weight.grad, 2 * 4 * critic.weight.detach() / 5)
    with pytest.raises(ValueError, match="real/fake"):
        gan.gradient_penalty(critic, torch.randn(5, 3), torch.randn(4, 3))


def test_r1_penalty_is_half_gamma_times_the_squared_gradient_at_the_data_only():
    critic = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.0, 3.0, 4.0]]))  # ||w||^2 = 25
    r1 = gan.r1_penalty(critic, torch.randn(5, 3), None, gamma=2.0)  # fake is not used
    assert r1.item() == pytest.approx(25.0)
    r1.backward()
    assert torch.allclose(critic.weight.grad, 2 * critic.weight.detach())
    # γ = 1 by default: (γ/2)·25
    assert gan.r1_penalty(critic, torch.randn(5, 3), None).item() == pytest.approx(12.5)
    # Not a penalty at interpolates: for a quadratic critic the gradient depends on x.
    quadratic = lambda x: x.square().sum(1)  # noqa: E731
    real = torch.full((4, 2), 2.0)
    assert gan.r1_penalty(quadratic, real, torch.zeros(4, 2), 2.0).item() == pytest.approx(32.0)


def test_clip_weights_clamps_in_place():
    critic = nn.Linear(4, 4)
    params = list(critic.parameters())
    with torch.no_grad():
        critic.weight.mul_(100)
    assert gan.clip_weights_(critic, 0.01) is None
    assert all(p is q for p, q in zip(params, critic.parameters(), strict=True))
    assert max(p.abs().max().item() for p in critic.parameters()) <= 0.01


def test_train_toy_gan_keeps_snapshots_and_is_reproducible():
    x = data.toy_2d("ring", 2000, seed=0)
    runs = [
        gan.train_toy_gan(x, "gan", steps=30, seed=1, snapshot_steps=(0, 10, 30), resolution=8)
        for _ in range(2)
    ]
    run = runs[0]
    assert [s.step for s in run.snapshots] == [0, 10, 30]
    assert run.snapshots[0].samples.shape == (1000, 2)
    assert run.snapshots[0].landscape.shape == (8, 8)
    assert 0 <= run.snapshots[-1].landscape.min() <= run.snapshots[-1].landscape.max() <= 1
    assert len(run.history["critic_loss"]) == 30 and run.seconds > 0
    assert torch.equal(run.sample(5, seed=0), runs[1].sample(5, seed=0))
    assert not torch.equal(run.snapshots[0].samples, run.snapshots[-1].samples)


def test_train_toy_gan_uses_the_configured_penalty_and_clipping():
    calls = []

    def penalty(critic, real, fake):
        calls.append(real.shape)
        return gan.gradient_penalty(critic, real, fake)

    x = data.toy_2d("grid", 2000, seed=0)
    config = gan.ToyGanConfig(gan.critic_loss, gan.wgan_generator_loss, penalty=penalty,
                              gp_weight=1.0, n_critic=2)  # fmt: skip
    gan.train_toy_gan(x, config, steps=3, batch_size=16)
    assert calls == [(16, 2)] * 6
    clipped = gan.train_toy_gan(x, "wgan", steps=3, batch_size=16)
    assert max(p.abs().max().item() for p in clipped.critic.parameters()) <= 0.01


def test_train_toy_gan_runs_the_recipes_own_steps_unless_told():
    x = data.toy_2d("ring", 2000, seed=0)
    config = gan.ToyGanConfig(gan.discriminator_loss, gan.generator_loss_nonsaturating,
                              n_critic=1, steps=7)  # fmt: skip
    assert len(gan.train_toy_gan(x, config, batch_size=16).history["critic_loss"]) == 7
    assert len(gan.train_toy_gan(x, config, steps=3, batch_size=16).history["critic_loss"]) == 3
    assert gan.CONFIGS["r1-gan"].penalty is gan.r1_penalty
    # γ = 1, the lecture's: r1_penalty carries the γ/2 itself, so the weight is 1
    assert gan.CONFIGS["r1-gan"].gp_weight == 1.0
    assert gan.CONFIGS["r1-gan"].steps == 2 * gan.CONFIGS["gan"].steps


def test_train_toy_gan_rejects_bad_input():
    with pytest.raises(ValueError, match="config"):
        gan.train_toy_gan(torch.zeros(2000, 2), "vanilla")
    with pytest.raises(ValueError, match=r"x: expected a tensor \[N, 2\]"):
        gan.train_toy_gan(torch.zeros(2000, 3), "gan")
    with pytest.raises(ValueError, match="at least"):
        gan.train_toy_gan(torch.zeros(100, 2), "wgan-gp")


def test_rejection_sampling_removes_off_mode_samples():
    # A "generator" that is half data, half uniform junk on [-5, 5]^2: DRS keeps the data.
    ring = data.toy_2d("ring", 20_000, seed=0)
    centers, std = data.mode_centers("ring"), data.mode_std("ring")

    def sample(n: int) -> torch.Tensor:
        junk = torch.rand(n - n // 2, 2) * 10 - 5
        return torch.cat([data.toy_2d("ring", n // 2, seed=len(junk)), junk])[torch.randperm(n)]

    before = metrics.mode_coverage(sample(2500), centers, std).high_quality_rate
    kept, acceptance = gan.rejection_sample(sample, ring, 2500, steps=1500, candidates=20_000)
    after = metrics.mode_coverage(kept, centers, std)
    assert before == pytest.approx(0.5, abs=0.03)
    assert after.modes_captured == 8 and after.high_quality_rate > 0.9
    assert 0.05 < acceptance < 0.6  # at most the data half, less under the quantile bound
    with pytest.raises(ValueError, match="accepted"):
        gan.rejection_sample(sample, ring, 10**6, steps=1, candidates=1000, max_candidates=2000)


def test_rejection_sampling_fine_tunes_a_copy_of_the_given_discriminator():
    # logit = 40 x_1: only points with x_1 near the top of [-1, 1] survive, which a fresh
    # discriminator (the data and the samples are the same uniform square) cannot know.
    class Scores(nn.Linear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x).squeeze(1)

    own = Scores(2, 1)
    with torch.no_grad():
        own.weight.copy_(torch.tensor([[40.0, 0.0]]))
        own.bias.zero_()
    before = [p.detach().clone() for p in own.parameters()]
    square = torch.rand(4000, 2) * 2 - 1
    kept, acceptance = gan.rejection_sample(
        lambda n: torch.rand(n, 2) * 2 - 1, square, 500, steps=2, candidates=20_000,
        discriminator=own,
    )  # fmt: skip
    assert kept[:, 0].min() > 0.5 and acceptance < 0.2
    assert all(torch.equal(p, q) for p, q in zip(before, own.parameters(), strict=True))


def test_gan_snapshot_figure_shows_each_run_at_the_chosen_step():
    x = data.toy_2d("ring", 1000, seed=0)
    runs = {
        name: gan.train_toy_gan(x, name, steps=4, batch_size=64, snapshot_steps=(0, 4),
                                resolution=6)
        for name in ("gan", "wgan-gp")
    }  # fmt: skip
    fig = gan.gan_snapshot_figure(runs, 1, x)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["gan: generator step 4", "wgan-gp: generator step 4"]
    labels = {ax.get_ylabel() for ax in fig.axes}
    assert {"D(x)", "critic f(x)", "$x_2$"} <= labels
    plt.close(fig)
    with pytest.raises(ValueError, match="index"):
        gan.gan_snapshot_figure(runs, 2, x)
    with pytest.raises(ValueError, match="runs"):
        gan.gan_snapshot_figure({}, 0, x)


def test_dcgan_reference_models():
    for classes in (0, 10):
        g = gan.DcganGenerator(latent_dim=8, width=8, num_classes=classes).eval()
        d = gan.DcganDiscriminator(width=8, num_classes=classes)
        y = torch.arange(4) if classes else None
        images = g(torch.randn(4, 8), y)
        assert images.shape == (4, 1, 28, 28) and images.abs().max() <= 1
        assert d(images, y).shape == (4,)
    with pytest.raises(ValueError, match="y: expected class labels"):
        gan.DcganGenerator(latent_dim=8, width=8, num_classes=10)(torch.randn(2, 8))
    assert math.isfinite(float(d(images, y).detach().sum()))


def test_gan_bench_case_scores_every_method_and_drs():
    rows = gan_bench._gan_case(("ring", "wgan-gp", 0, 10), drs_steps=50)
    assert [r["variant"] for r in rows] == ["wgan-gp", "wgan-gp + DRS"]
    assert all(r["num_modes"] == 8 and 0 <= r["high_quality_rate"] <= 1 for r in rows)
    assert rows[1]["cpu_seconds"] > rows[0]["cpu_seconds"] and 0 < rows[1]["acceptance"] <= 1
    # the DRS row's time includes the training its base row counts: counted once in all
    assert gan.bench_cpu_seconds(rows) == pytest.approx(rows[1]["cpu_seconds"])
    lines = gan.format_gan_bench(rows)
    assert lines[0].split()[:2] == ["data", "method"] and len(lines) == 3


def test_gan_bench_reruns_only_the_named_methods_and_keeps_the_others(tmp_path, capsys):
    path = tmp_path / "bench.json"
    other = {"dataset": "grid", "variant": "wgan", "seed": 0, "steps": 5000}
    stale = {"dataset": "ring", "variant": "gan", "seed": 0, "steps": 5000}
    path.write_text(json.dumps({"seeds": 1, "machine": "old", "rows": [other, stale]}))
    rows = gan.bench_gan(seeds=1, steps=2, save=str(path), methods="gan", workers=1)
    assert [(r["dataset"], r["variant"], r["steps"]) for r in rows] == [
        ("ring", "gan", 2), ("grid", "gan", 2)
    ]  # fmt: skip
    assert gan.load_gan_bench(str(path))["rows"] == [other, *rows]
    with pytest.raises(ValueError, match="seeds"):
        gan.bench_gan(seeds=2, steps=2, save=str(path), methods="gan")
    with pytest.raises(ValueError, match="methods"):
        gan.bench_gan(seeds=1, methods="gan,vanilla")
    assert "gan" in capsys.readouterr().out


def test_shipped_gan_bench_is_complete():
    shipped = gan.load_gan_bench()
    variants = {(r["dataset"], r["variant"]) for r in shipped["rows"]}
    assert variants == {(d, v) for d in ("ring", "grid") for v in gan.GAN_VARIANTS}
    assert len(shipped["rows"]) == 2 * len(gan.GAN_VARIANTS) * shipped["seeds"]
    sn_gan = [r for r in shipped["rows"] if r["variant"].startswith("sn-gan")]
    assert {r.get("logit_scale") for r in sn_gan} == {gan.CONFIGS["sn-gan"].logit_scale}


def test_power_iteration_converges_to_the_largest_singular_value():
    torch.manual_seed(0)
    weight, u = torch.randn(6, 4), torch.randn(6)
    sigma, u = gan.power_iteration(weight, u)
    assert torch.isclose(u.norm(), torch.tensor(1.0))
    for _ in range(200):
        sigma, u = gan.power_iteration(weight, u)
    assert torch.isclose(sigma, torch.linalg.matrix_norm(weight, ord=2), rtol=1e-4)
    with pytest.raises(ValueError, match="weight/u"):
        gan.power_iteration(weight, torch.randn(4))


def test_cycle_consistency_loss_is_l1_in_both_directions():
    x, y = torch.zeros(3, 2), torch.ones(5, 2)
    # G(x) = x + 1, F(y) = 2y: F(G(0)) = 2 (error 2), G(F(1)) = 3 (error 2)
    loss = gan.cycle_consistency_loss(x, y, lambda a: a + 1, lambda b: 2 * b)
    assert torch.isclose(loss, torch.tensor(4.0))
    assert gan.cycle_consistency_loss(x, y, lambda a: a, lambda b: b) == 0


def test_dirac_gan_simultaneous_spirals_out_alternating_cycles_r1_converges():
    start = math.hypot(1.0, 1.0)
    simultaneous = gan.dirac_gan_path(0.1, 1000, simultaneous=True)[-1].norm()
    alternating = gan.dirac_gan_path(0.1, 1000, simultaneous=False).norm(dim=1)
    damped = gan.dirac_gan_path(0.1, 1000, simultaneous=False, gamma=0.3)[-1].norm()
    assert simultaneous > 1.5 * start
    assert alternating.max() < 1.1 * start and alternating[-1] > 0.9 * start
    assert damped < 1e-4
    with pytest.raises(ValueError, match="learning_rate"):
        gan.dirac_gan_path(0.0, 10, True)


def test_dirac_gan_figure_titles_and_bad_update():
    fig = gan.dirac_gan_figure("alternating, 5 D steps", 0.2, gamma=0.1)
    assert "5 D steps" in fig.axes[0].get_title() and "distance" in fig.axes[1].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="update"):
        gan.dirac_gan_figure("jacobi", 0.1)


def test_sn_gan_normalizes_every_critic_layer():
    x = data.toy_2d("ring", 2000, seed=0)
    run = gan.train_toy_gan(x, "sn-gan", steps=50, batch_size=64)
    layers = [m for m in run.critic.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == 4
    with torch.no_grad():
        for layer in layers:
            assert nn.utils.parametrize.is_parametrized(layer, "weight")
            sigma = torch.linalg.matrix_norm(layer.weight, ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=0.1)  # one power step per step
        # the logit is scaled (lecture 02: a 1-Lipschitz logit is too flat on the ring)
        points = torch.randn(100, 2)
        run.critic.eval()  # no power-iteration step per call
        assert run.config.logit_scale == 10.0
        assert torch.equal(run.critic(points), 10.0 * run.critic.net(points).squeeze(1))


def test_cyclegan_cycle_weight_makes_the_translators_inverses():
    x = data.toy_2d("ring", 2000, seed=0)
    y, grid = 0.5 * data.toy_2d("grid", 2000, seed=1), data.mode_centers("grid")
    runs = {lam: gan.train_cyclegan(x, y, cycle_weight=lam, steps=300, hidden=32)
            for lam in (0.0, 10.0)}  # fmt: skip
    assert set(runs[0.0].history) >= {"adversarial", "cycle", "discriminators"}
    with torch.no_grad():
        errors = {lam: gan.cycle_consistency_loss(x, y, r.G, r.F).item() for lam, r in runs.items()}
        assert runs[10.0].G(x).shape == x.shape and runs[10.0].D_Y(y).shape == (2000,)
    assert errors[10.0] < 0.2 * errors[0.0]
    again = gan.train_cyclegan(x, y, cycle_weight=10.0, steps=300, hidden=32)
    assert torch.equal(again.G(x), runs[10.0].G(x))
    named = {f"lambda {lam:g}": run for lam, run in runs.items()}
    fig = gan.cyclegan_figure(named, x[:500], y[:500], data.mode_centers("ring"), 0.5 * grid)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["X (source), colored by mode", "lambda 0: G(x)", "lambda 10: G(x)",
                      "Y (target)", "lambda 0: F(G(x))", "lambda 10: F(G(x))"]  # fmt: skip
    colored = fig.axes[1].collections[1].get_array()  # each G(x) point has its source mode
    assert colored.tolist() == torch.cdist(x[:500], data.mode_centers("ring")).argmin(1).tolist()
    plt.close(fig)
    with pytest.raises(ValueError, match="runs: expected at least one CycleGanRun"):
        gan.cyclegan_figure({}, x, y, data.mode_centers("ring"), grid)
    with pytest.raises(ValueError, match="x_centers: expected 1 to 10 centers, got 25"):
        gan.cyclegan_figure(named, x, y, grid, grid)


def test_train_cyclegan_rejects_bad_input():
    x = torch.zeros(100, 2)
    with pytest.raises(ValueError, match=r"x: expected a tensor \[N, 2\], got \(100, 3\)"):
        gan.train_cyclegan(torch.zeros(100, 3), x)
    with pytest.raises(ValueError, match=r"y: expected a tensor \[N, 2\], got list"):
        gan.train_cyclegan(x, [[0.0, 0.0]])
    with pytest.raises(ValueError, match="x/y: expected tensors on one device, got cpu and meta"):
        gan.train_cyclegan(x, torch.zeros(100, 2, device="meta"))
    with pytest.raises(ValueError, match="cycle_weight: expected a number >= 0, got -1"):
        gan.train_cyclegan(x, x, cycle_weight=-1)
