import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from course_utils import viz


def test_image_grid_layout_and_input_forms():
    images = torch.arange(6 * 4, dtype=torch.float32).reshape(6, 1, 2, 2)
    grid = viz.image_grid(images, nrow=3, pad=1)
    assert grid.shape == (2 * 3 - 1, 3 * 3 - 1)
    assert np.array_equal(grid[0:2, 3:5], images[1, 0].numpy())  # image 1: row 0, column 1
    assert np.array_equal(grid[3:5, 0:2], images[3, 0].numpy())  # image 3: row 1, column 0
    assert np.array_equal(viz.image_grid(images.reshape(6, 4), nrow=3), grid)  # flat [N, D]
    assert np.array_equal(viz.image_grid(images[:, 0].numpy(), nrow=3), grid)  # numpy [N, H, W]


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.zeros(3, 5), ValueError, "square"),
        (torch.zeros(0, 1, 2, 2), ValueError, "N>0"),
        (torch.zeros(2, 3, 4, 4), ValueError, r"\[N,1,H,W\]"),
        ([[0.0]], TypeError, "images"),
    ],
)
def test_image_grid_bad_input(bad, error, match):
    with pytest.raises(error, match=match):
        viz.image_grid(bad)


def _has_title_and_labels(fig: Figure) -> bool:
    ax = fig.axes[0]
    return bool(ax.get_title() and ax.get_xlabel() and ax.get_ylabel())


def test_image_grids_have_a_title_and_no_axis_labels_or_ticks():
    ax = viz.show_images(torch.rand(4, 784), "digits").axes[0]
    assert ax.get_title() == "digits"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("", "")
    assert len(ax.get_xticks()) == len(ax.get_yticks()) == 0


def test_every_plot_returns_a_titled_labelled_figure():
    pts = torch.randn(50, 2)
    figures = [
        viz.scatter_2d(pts, "points", centers=torch.zeros(1, 2), lim=3),
        viz.scatter_2d(pts, "coloured", color=pts[:, 0]),
        viz.density_heatmap(lambda p: -p.square().sum(1), "gaussian", resolution=20),
        viz.plot_history({"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0]}),
        viz.plot_trajectories(torch.randn(5, 10, 2), "paths"),
    ]
    assert all(isinstance(f, Figure) and _has_title_and_labels(f) for f in figures)


def test_grid_points_orientation():
    pts = viz.grid_points((0, 1, 10, 11), resolution=3)
    assert pts.shape == (9, 2)
    assert pts[:3, 1].tolist() == [10, 10, 10]  # first row: lowest x_2
    assert pts[:3, 0].tolist() == [0, 0.5, 1]
    with pytest.raises(ValueError, match="extent"):
        viz.grid_points((1, 0, 0, 1))
    with pytest.raises(ValueError, match="resolution"):
        viz.grid_points(resolution=1)


def test_plot_bad_input():
    with pytest.raises(ValueError, match=r"points: expected shape \[N, 2\]"):
        viz.scatter_2d(torch.zeros(5, 3), "x")
    with pytest.raises(ValueError, match="log_prob_fn"):
        viz.density_heatmap(lambda p: p, "x", resolution=5)
    with pytest.raises(ValueError, match="keys"):
        viz.plot_history({"step": [1], "loss": [1.0]}, keys=["acc"])
    with pytest.raises(ValueError, match="trajectories"):
        viz.plot_trajectories(torch.zeros(5, 2), "x")
