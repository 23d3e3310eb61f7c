import math

import pytest
import torch

from course_utils import widgets


def test_bimodal_density_integrates_to_one():
    dx = (widgets.KL_GRID[1] - widgets.KL_GRID[0]).item()
    assert widgets.bimodal_density(widgets.KL_GRID).sum().item() * dx == pytest.approx(1, abs=1e-6)


def test_kl_fit_values_known_points():
    # forward KL is minimised by moment matching: mean 0, variance 0.6^2 + 2^2
    best = widgets.kl_fit_values(0.0, math.sqrt(0.36 + 4))[0]
    assert best < widgets.kl_fit_values(0.3, 2.088)[0]
    assert best < widgets.kl_fit_values(0.0, 1.5)[0]
    # reverse KL on one mode: p = (q + q_other)/2, so KL(q||p) = log 2 - E_q[log(1 + q_other/q)],
    # just below log 2 because the other mode's tail overlaps q a little
    assert math.log(2) - 0.005 < widgets.kl_fit_values(2.0, 0.6)[1] < math.log(2)
    forward, reverse = widgets.kl_fit_values(1.0, 1.0)
    assert forward > 0 and reverse > 0 and forward != pytest.approx(reverse)
    with pytest.raises(ValueError, match="sigma"):
        widgets.kl_fit_values(0.0, 0.0)


def test_kl_on_grid_checks_shapes():
    with pytest.raises(ValueError, match="q: expected the shape of p"):
        widgets.kl_on_grid(torch.ones(3), torch.ones(4), 0.1)


def test_kl_fit_figure_title_shows_both_values():
    fig = widgets.kl_fit_figure(2.0, 0.6)
    forward, reverse = widgets.kl_fit_values(2.0, 0.6)
    title = fig.axes[0].get_title()
    assert f"{forward:.3f}" in title and f"{reverse:.3f}" in title
    assert fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()


def test_figure_widget_updates_its_figure_when_a_slider_moves():
    w = widgets.figure_widget(widgets.kl_fit_figure, mu=(-4.0, 4.0, 0.1), sigma=(0.2, 4.0, 0.05))
    mu_slider, sigma_slider = w.children[0], w.children[1]
    assert (mu_slider.description, sigma_slider.description) == ("mu", "sigma")
    mu_slider.value, sigma_slider.value = 2.0, 0.6
    _, reverse = widgets.kl_fit_values(2.0, 0.6)
    assert f"{reverse:.3f}" in w.result.axes[0].get_title()
