"""The course's data sets, in memory, as float tensors on the chosen device: 2D toys
(``moons``, ``ring``, ``grid``, ``swissroll``, ``checkerboard``) with mode centers;
``digits`` (sklearn 8x8, intro_dgm split) and ``mnist`` (a 5000-image subset, 4000/1000
stratified split); ``to_unit`` / ``from_unit`` between a model's pixel range and images in
[0, 1].

Everything here is offline: the 2D toys are sampled; ``digits`` (sklearn's 8x8 set) and
``mnist`` (a 5000-image subset) are shipped in ``course_utils/datasets``.
No DataLoader: the data sets are small, so batches are index slices (``train.batches``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.device import get_device

TOY_NAMES = ("moons", "ring", "grid", "swissroll", "checkerboard")
MIXTURE_STD = {"ring": 0.01, "grid": 0.05}
DIGITS_SPLITS = {"train": slice(0, 1000), "val": slice(1000, 1350), "test": slice(1350, None)}
MNIST_TEST_PER_CLASS = 100
MNIST_SPLIT_SEED = 0
MNIST_FILE = Path(__file__).parent / "datasets" / "mnist_5k.npz"  # source: datasets/README.md
DIGITS_FILE = Path(__file__).parent / "datasets" / "digits.npz"  # source: datasets/README.md
SHAKESPEARE_FILE = Path(__file__).parent / "datasets" / "tinyshakespeare.txt"  # datasets/README.md
SHAKESPEARE_TRAIN_FRACTION = 0.9  # nanoGPT's shakespeare_char split: first 90% train, last 10% val


def _resolve_device(device: torch.device | str | None) -> torch.device:
    return get_device() if device is None else torch.device(device)


def _check_choice(arg: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{arg}: expected one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_count(arg: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{arg}: expected an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{arg}: expected a positive int, got {value}")


def mode_centers(name: str, device: torch.device | str | None = None) -> torch.Tensor:
    """Centers of a 2D Gaussian mixture, shape ``[k, 2]``.

    ``"ring"``: 8 centers on the unit circle (k=8). ``"grid"``: the 25 points of
    {-4,-2,0,2,4}^2 (k=25).

    Raises:
        ValueError: ``name`` is not ``"ring"`` or ``"grid"``.
    """
    _check_choice("name", name, tuple(MIXTURE_STD))
    if name == "ring":
        angles = torch.arange(8, dtype=torch.float32) * (2 * math.pi / 8)
        centers = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    else:
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        centers = torch.cartesian_prod(axis, axis)
    return centers.to(_resolve_device(device))


def mode_std(name: str) -> float:
    """Standard deviation of each component of a 2D mixture ("ring": 0.01, "grid": 0.05)."""
    _check_choice("name", name, tuple(MIXTURE_STD))
    return MIXTURE_STD[name]


def toy_2d(
    name: str, n: int, *, seed: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """Sample ``n`` points of a 2D toy distribution, shape ``[n, 2]``, float32.

    Names: ``"moons"`` (two interleaved half circles, centred and scaled by 2, noise
    std 0.1), ``"ring"`` (8 Gaussians,
    radius 1, std 0.01), ``"grid"`` (25 Gaussians, std 0.05), ``"swissroll"`` (scaled to
    about [-2, 2]^2), ``"checkerboard"`` (uniform on 8 squares of [-4, 4]^2).

    Raises:
        ValueError: unknown ``name`` or non-positive ``n``.
        TypeError: ``n`` is not an int.
    """
    _check_choice("name", name, TOY_NAMES)
    _check_count("n", n)
    g = torch.Generator().manual_seed(seed)
    if name in MIXTURE_STD:
        centers = mode_centers(name, device="cpu")
        idx = torch.randint(len(centers), (n,), generator=g)
        x = centers[idx] + MIXTURE_STD[name] * torch.randn(n, 2, generator=g)
    elif name == "moons":
        upper = torch.rand(n, generator=g) < 0.5
        angle = math.pi * torch.rand(n, generator=g)
        x = torch.where(
            upper[:, None],
            torch.stack([torch.cos(angle), torch.sin(angle)], dim=1),
            torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], dim=1),
        )
        x = (x - torch.tensor([0.5, 0.25])) * 2 + 0.05 * 2 * torch.randn(n, 2, generator=g)
    elif name == "swissroll":
        turn = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
        x = torch.stack([turn * torch.cos(turn), turn * torch.sin(turn)], dim=1) / 7.5
        x = x + 0.05 * torch.randn(n, 2, generator=g)
    else:  # checkerboard (as in FFJORD): 8 unit squares, alternating, scaled by 2
        x1 = 4 * torch.rand(n, generator=g) - 2
        x2 = torch.rand(n, generator=g) - 2 * torch.randint(0, 2, (n,), generator=g)
        x = 2 * torch.stack([x1, x2 + torch.floor(x1) % 2], dim=1)
    return x.float().to(_resolve_device(device))


SIGNED = (-1.0, 1.0)  # the tanh generators' and the diffusion models' pixel range


def to_unit(x: torch.Tensor, pixel_range: tuple[float, float] = SIGNED) -> torch.Tensor:
    """Values in ``pixel_range = (low, high)`` as images in [0, 1], clamped: ``(x - low) /
    (high - low)``. The default turns a [-1, 1] model's output into images."""
    low, high = pixel_range
    return ((x - low) / (high - low)).clamp(0, 1)


def from_unit(images: torch.Tensor, pixel_range: tuple[float, float] = SIGNED) -> torch.Tensor:
    """Images in [0, 1] as values in ``pixel_range`` (the inverse of ``to_unit``)."""
    low, high = pixel_range
    return low + (high - low) * images


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """``images [N, C, H, W]`` translated together by one random offset of up to
    ``max_shift`` pixels in each direction (zero fill), drawn from ``generator``: the
    augmentation of the shipped classifier and of ``clip_digits``."""
    padded = F.pad(images, [max_shift] * 4)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + images.shape[2], dx : dx + images.shape[3]]


@lru_cache(maxsize=1)
def _digits_numpy() -> tuple[np.ndarray, np.ndarray]:
    with np.load(DIGITS_FILE) as shipped:  # sklearn's load_digits(), in its order
        return (
            shipped["images"].reshape(-1, 64).astype(np.float32),
            shipped["labels"].astype(np.int64),
        )


def digits(
    split: str = "train", device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits: images ``[N, 64]`` (float32, integer values 0..16), labels ``[N]``.

    Splits follow the intro_dgm protocol: ``"train"`` = first 1000, ``"val"`` = next 350,
    ``"test"`` = the remaining 447; ``"all"`` = all 1797.

    Raises:
        ValueError: unknown ``split``.
    """
    _check_choice("split", split, (*DIGITS_SPLITS, "all"))
    x, y = _digits_numpy()
    part = DIGITS_SPLITS.get(split, slice(None))
    dev = _resolve_device(device)
    return torch.from_numpy(x[part].copy()).to(dev), torch.from_numpy(y[part].copy()).to(dev)


def digits_protocol(
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The intro_dgm protocol's images: train ``[1000, 64]``, validation ``[350, 64]`` (model
    selection), test ``[447, 64]`` (the reported number)."""
    return tuple(digits(split, device)[0] for split in ("train", "val", "test"))  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _mnist_numpy() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(MNIST_FILE) as shipped:  # 5000 images in 0..255, sorted by class, 500 each
        x = (shipped["images"] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
        y = shipped["labels"].astype(np.int64)
    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    test_idx = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:MNIST_TEST_PER_CLASS] for c in range(10)]
    )
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test_idx] = True
    order = rng.permutation(len(y))  # mix the classes so that x[:k] is a fair sample
    train, test = order[~is_test[order]], order[is_test[order]]
    return {"train": (x[train], y[train]), "test": (x[test], y[test]), "all": (x[order], y[order])}


def mnist(
    split: str = "train",
    device: torch.device | str | None = None,
    flatten: bool = False,
    binarize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The offline MNIST subset: images ``[N, 1, 28, 28]`` in [0, 1] (``[N, 784]`` when
    ``flatten``), labels ``[N]`` (int64).

    A fixed stratified split: ``"train"`` has 4000 images (400 per class), ``"test"`` 1000
    (100 per class); ``"all"`` has all 5000. Classes are shuffled, so ``x[:k]`` is mixed.
    ``binarize`` thresholds pixels at 0.5 (fixed, "statically binarized" MNIST), so that a
    Bernoulli decoder is a proper likelihood.

    Raises:
        ValueError: unknown ``split``.
    """
    _check_choice("split", split, ("train", "test", "all"))
    x, y = _mnist_numpy()[split]
    dev = _resolve_device(device)
    xt = torch.from_numpy(x.copy()).to(dev)
    if binarize:
        xt = (xt > 0.5).float()
    if flatten:
        xt = xt.reshape(len(xt), -1)
    return xt, torch.from_numpy(y.copy()).to(dev)


@lru_cache(maxsize=1)
def _shakespeare_text() -> str:
    return SHAKESPEARE_FILE.read_text(encoding="utf-8")


def shakespeare(split: str = "train") -> str:
    """Tiny Shakespeare (1,115,394 characters, 65 distinct) as text: ``"train"`` is its first
    90% of characters, ``"val"`` the last 10% (nanoGPT's ``shakespeare_char`` split), ``"all"``
    the whole file.

    Raises:
        ValueError: unknown ``split``.
    """
    _check_choice("split", split, ("train", "val", "all"))
    text = _shakespeare_text()
    cut = int(len(text) * SHAKESPEARE_TRAIN_FRACTION)
    return {"train": text[:cut], "val": text[cut:], "all": text}[split]
