import math

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils import foundations, vae, widgets


def test_bimodal_density_integrates_to_one():
    dx = (foundations.KL_GRID[1] - foundations.KL_GRID[0]).item()
    assert foundations.bimodal_density(foundations.KL_GRID).sum().item() * dx == pytest.approx(
        1, abs=1e-6
    )


def test_kl_fit_values_known_points():
    # forward KL is minimised by moment matching: mean 0, variance 0.6^2 + 2^2
    best = foundations.kl_fit_values(0.0, math.sqrt(0.36 + 4))[0]
    assert best < foundations.kl_fit_values(0.3, 2.088)[0]
    assert best < foundations.kl_fit_values(0.0, 1.5)[0]
    # reverse KL on one mode: p = (q + q_other)/2, so KL(q||p) = log 2 - E_q[log(1 + q_other/q)],
    # just below log 2 because the other mode's tail overlaps q a little
    assert math.log(2) - 0.005 < foundations.kl_fit_values(2.0, 0.6)[1] < math.log(2)
    forward, reverse = foundations.kl_fit_values(1.0, 1.0)
    assert forward > 0 and reverse > 0 and forward != pytest.approx(reverse)
    with pytest.raises(ValueError, match="sigma"):
        foundations.kl_fit_values(0.0, 0.0)


def test_kl_on_grid_checks_shapes():
    with pytest.raises(ValueError, match="q: expected the shape of p"):
        foundations.kl_on_grid(torch.ones(3), torch.ones(4), 0.1)


def test_kl_fit_figure_title_shows_both_values():
    fig = foundations.kl_fit_figure(2.0, 0.6)
    forward, reverse = foundations.kl_fit_values(2.0, 0.6)
    title = fig.axes[0].get_title()
    assert f"{forward:.3f}" in title and f"{reverse:.3f}" in title
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()


def test_figure_widget_draws_a_png_and_redraws_when_a_control_moves():
    w = widgets.figure_widget(
        foundations.kl_fit_figure, mu=(-4.0, 4.0, 0.1), sigma=(0.2, 4.0, 0.05)
    )
    mu_slider, sigma_slider, output = w.children
    assert (mu_slider.description, sigma_slider.description) == ("mu", "sigma")
    assert output is w.output and w.controls == {"mu": mu_slider, "sigma": sigma_slider}
    first = w.png
    assert first.startswith(b"\x89PNG")
    mu_slider.value, sigma_slider.value = 2.0, 0.6
    _, reverse = foundations.kl_fit_values(2.0, 0.6)
    assert f"{reverse:.3f}" in w.figure.axes[0].get_title()
    assert w.png != first and w.values() == {"mu": 2.0, "sigma": 0.6}


def test_figure_widget_controls_and_bad_input():
    import ipywidgets

    def render(shown_step: int, method: str):
        return plt.figure()

    w = widgets.figure_widget(render, shown_step=(1, 5, 1), method=["a", "b"])
    step, method = w.controls.values()
    assert step.description == "shown step" and isinstance(method, ipywidgets.Dropdown)
    slider = ipywidgets.IntSlider(min=0, max=3, description="kept as given")
    assert widgets.figure_widget(render, shown_step=slider, method=["a"]).children[0] is slider
    assert slider.description == "kept as given"
    with pytest.raises(ValueError, match="controls"):
        widgets.figure_widget(lambda: plt.figure())
    with pytest.raises(TypeError, match="render: expected it to return a Figure"):
        widgets.figure_widget(lambda x: None, x=(0, 1, 1))
    with pytest.raises(TypeError, match="x: expected"):
        widgets.figure_widget(render, x=object())


def test_an_option_whose_value_is_none_starts_chosen():
    seen = []
    w = widgets.figure_widget(lambda k: seen.append(k) or plt.figure(), k=[("all", None), ("3", 3)])
    control = w.controls["k"]
    assert control.index == 0 and control.label == "all" and seen == [None]
    control.index = 1
    assert seen == [None, 3]
    control.index = 0  # chosen again: ipywidgets blanked the dropdown (lecture 06's top-k)
    assert control.index == 0 and control.label == "all" and seen == [None, 3, None]
    assert w.values() == {"k": None}


def test_slow_redraws_wait_for_the_slider_to_be_released():
    import time

    def slow(x: int):
        time.sleep(widgets.SLOW_REDRAW_S + 0.1)
        return plt.figure()

    assert widgets.figure_widget(slow, x=(0, 3, 1)).controls["x"].continuous_update is False
    forced = widgets.figure_widget(slow, continuous_update=True, x=(0, 3, 1))
    assert forced.controls["x"].continuous_update is True
    assert widgets.figure_widget(lambda x: plt.figure(), continuous_update=False, x=(0, 3, 1)
                                 ).controls["x"].continuous_update is False  # fmt: skip


def test_interpolate_linear_and_slerp():
    z0, z1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(vae.interpolate(z0, z1, 0.5, "linear"), torch.tensor([0.5, 0.5]))
    mid = vae.interpolate(z0, z1, 0.5, "slerp")
    assert torch.allclose(mid, torch.tensor([1.0, 1.0]) / math.sqrt(2))
    for t in (0.0, 1.0):
        assert torch.allclose(vae.interpolate(z0, z1, t, "slerp"), z0 if t == 0 else z1, atol=1e-6)
    parallel = vae.interpolate(z0, 3 * z0, 0.5, "slerp")
    assert torch.allclose(parallel, torch.tensor([2.0, 0.0]))
    with pytest.raises(ValueError, match="method"):
        vae.interpolate(z0, z1, 0.5, "cubic")
    with pytest.raises(ValueError, match="t: expected"):
        vae.interpolate(z0, z1, 1.5)
    with pytest.raises(ValueError, match="z1"):
        vae.interpolate(z0, torch.zeros(3), 0.5)


def _decode(z: torch.Tensor) -> torch.Tensor:
    """A stand-in decoder: latents [N, L] -> 4x4 images [N, 16] in [0, 1]."""
    return torch.sigmoid(z.sum(1, keepdim=True) * torch.linspace(-1, 1, 16))


def test_interpolation_figure_marks_the_current_point_on_the_chosen_path():
    z0, z1 = torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 0.0])
    fig = vae.interpolation_figure(_decode, z0, z1, 0.5, "slerp")
    image_ax, strip_ax, path_ax = fig.axes
    assert image_ax.get_title() == "slerp, t = 0.50"
    assert [line.get_label() for line in path_ax.lines] == ["linear", "slerp"]
    point = path_ax.collections[0].get_offsets()[0]
    assert list(point) == pytest.approx([math.sqrt(2), math.sqrt(2)])  # on the circle of radius 2


def test_latent_explorer_and_beta_figures():
    codes, labels = torch.randn(30, 2), torch.arange(30) % 10
    fig = vae.latent_explorer_figure(_decode, codes, labels, 1.0, -0.5)
    assert "(1.00, -0.50)" in fig.axes[1].get_title()  # axes: codes, image, colorbar
    with pytest.raises(ValueError, match="codes"):
        vae.latent_explorer_figure(_decode, torch.randn(30, 3), labels, 0.0, 0.0)
    results = {
        b: {
            "samples": torch.rand(8, 64),
            "reconstructions": torch.rand(8, 64),
            "kl": 10 / b,
            "reconstruction": b,
        }
        for b in (0.5, 1.0, 2.0)
    }
    fig = vae.beta_figure(results, 2.0)
    assert fig.axes[0].get_title() == "β = 2: samples"
    assert list(fig.axes[2].lines[0].get_ydata()) == [20.0, 10.0, 5.0]
    with pytest.raises(ValueError, match="beta"):
        vae.beta_figure(results, 3.0)
