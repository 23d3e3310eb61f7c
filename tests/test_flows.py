"""course_utils.flows: every layer inverts exactly, its log_det is log|det J| by brute force,
a trained 2D flow is a normalized density, and the widget shows each layer."""

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils import data, flows, viz
from course_utils.train import fit


def _randomize(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))


def _layers() -> dict[str, tuple[torch.nn.Module, torch.Tensor]]:
    torch.manual_seed(0)
    return {
        "coupling, vectors": (
            flows.AffineCoupling(flows.half_mask(4, 1), flows.mlp(4, 8, 16)), torch.randn(3, 4)),
        "coupling, checkerboard images": (
            flows.AffineCoupling(flows.checkerboard_mask(4, 4), flows.ConvNet(1, 8)),
            torch.randn(3, 1, 4, 4)),
        "coupling, channel mask": (
            flows.AffineCoupling(flows.channel_mask(4), flows.ConvNet(4, 8)),
            torch.randn(3, 4, 2, 2)),
        "actnorm, vectors": (flows.ActNorm(4), torch.randn(3, 4)),
        "actnorm, images": (flows.ActNorm(2), torch.randn(3, 2, 3, 3)),
        "1x1 conv, images": (flows.InvConv1x1(3), torch.randn(3, 3, 2, 2)),
        "squeeze": (flows.Squeeze(), torch.randn(3, 2, 4, 4)),
        "dequantize (logit)": (flows.Dequantize(17), 17 * torch.rand(3, 5)),
        "masked autoregressive (MAF)": (flows.MaskedAutoregressive(5, 16), torch.randn(3, 5)),
        "reverse": (flows.Reverse(), torch.randn(3, 5)),
    }  # fmt: skip


@pytest.mark.parametrize("name", list(_layers()))
def test_each_layer_inverts_and_its_log_det_is_exact(name):
    layer, x = _layers()[name]
    layer(x)  # ActNorm's data-dependent initialization
    _randomize(layer, seed=1)  # random weights, not the identity start
    y, log_det = layer(x)
    assert log_det.shape == (len(x),)
    assert torch.allclose(layer.inverse(y), x, atol=1e-5)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[i])
        jac = jac.reshape(x[i].numel(), x[i].numel())
        assert log_det[i].item() == pytest.approx(torch.linalg.slogdet(jac)[1].item(), abs=1e-4)


def test_maf_layer_is_autoregressive_fast_to_evaluate_and_slow_to_sample():
    torch.manual_seed(0)
    layer = flows.MaskedAutoregressive(6, 32)
    _randomize(layer, seed=2)
    x = torch.randn(6)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x)
    assert torch.all(jac.triu(1) == 0)  # u_i depends on x_{<= i} only
    assert (jac.tril(-1) != 0).sum() == 6 * 5 // 2  # ... and on every earlier coordinate
    mu, alpha = layer.made(x[None])
    assert torch.allclose(jac.diagonal(), torch.exp(-alpha[0]), atol=1e-6)
    assert layer(x[None])[1].item() == pytest.approx(-alpha.sum().item(), abs=1e-6)
    passes, made = [], layer.made
    layer.made = lambda v: (passes.append(1), made(v))[1]  # count the MADE passes
    u, _ = layer(torch.randn(4, 6))
    assert len(passes) == 1  # the density: one MADE pass
    layer.inverse(u)
    assert len(passes) == 1 + 6  # sampling: one per coordinate
    with pytest.raises(ValueError, match="dim: expected an int >= 2"):
        flows.MaskedAutoregressive(1)


@pytest.mark.parametrize("make, shape", [
    (lambda: flows.realnvp_2d(4, 16), (2,)),
    (lambda: flows.realnvp_digits(2, 32), (64,)),
    (lambda: flows.glow_mnist((1, 2), 8), (1, 28, 28)),
])  # fmt: skip
def test_full_flows_invert_with_random_weights(make, shape):
    torch.manual_seed(0)
    flow = make().double()  # float64: deep stacks of random layers lose float32 digits
    x = torch.rand(4, *shape, dtype=torch.float64) * (255 if shape == (1, 28, 28) else 16) + 0.5
    flow(x)
    _randomize(flow, seed=2)
    z, log_det = flow(x)
    assert z.shape == (4, *flow.shape) and log_det.shape == (4,)
    assert torch.allclose(flow.inverse(z), x, atol=1e-5)
    assert torch.allclose(flow.pull(z, 0), flow.inverse(z)) and torch.equal(flow.push(x, 0), x)
    assert torch.allclose(flow.log_prob_after(x, 0), flow.log_prob(x))


@pytest.fixture(scope="module")
def moons_flow() -> flows.Flow:
    torch.manual_seed(0)
    flow = flows.realnvp_2d(6, 64)
    opt = torch.optim.Adam(flow.parameters(), lr=2e-3)
    x = data.toy_2d("moons", 4000, seed=0)
    fit(lambda b: -flow.log_prob(b).mean(), opt, x, batch_size=256, steps=400, progress=False)
    return flow.eval()


def test_trained_2d_flow_density_integrates_to_one(moons_flow):
    extent, resolution = (-7.0, 7.0, -7.0, 7.0), 500
    cell = (14 / (resolution - 1)) ** 2
    with torch.no_grad():
        total = moons_flow.log_prob(viz.grid_points(extent, resolution)).exp().sum() * cell
    assert total.item() == pytest.approx(1.0, abs=0.02)
    nll = -moons_flow.log_prob(data.toy_2d("moons", 2000, seed=1)).mean().item()
    assert nll < 2.5  # it learned something: the best single Gaussian is at 3.26


def test_density_after_k_layers_is_normalized_too(moons_flow):
    # the change of variables holds at every intermediate variable h_k
    extent, resolution = (-7.0, 7.0, -7.0, 7.0), 400
    cell = (14 / (resolution - 1)) ** 2
    with torch.no_grad():
        for k in (2, len(moons_flow.layers)):
            density = moons_flow.log_prob_after(viz.grid_points(extent, resolution), k).exp()
            assert (density.sum() * cell).item() == pytest.approx(1.0, abs=0.02)


def test_discrete_nll_bound_is_an_upper_bound_on_average():
    torch.manual_seed(0)
    flow = flows.realnvp_digits(1, 16)
    x, _ = data.digits("val")
    flow(flows.dequantize(x))
    bound = flows.discrete_nll_bound(flow, x[:50], draws=4)
    assert bound.shape == (50,) and torch.isfinite(bound).all()


def test_flow_layers_figure_panels(moons_flow):
    x = data.toy_2d("moons", 300, seed=0)
    fig = flows.flow_layers_figure(moons_flow, x, 3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        "data after 3 of 6 layers",
        "model density of $h_{3}$",
        "base samples $z$ pulled to $h_{3}$",
    ]
    plt.close(fig)
    with pytest.raises(ValueError, match="k: expected an int in"):
        flows.flow_layers_figure(moons_flow, x, 7)
    with pytest.raises(ValueError, match="x: expected"):
        flows.flow_layers_figure(moons_flow, x[:, :1], 0)
