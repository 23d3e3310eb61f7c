"""How the course measures generative models: nats and bits/dim, mode coverage (VEEGAN
protocol), FID, precision/recall and class coverage on the shipped classifier's features,
and the classifier's recipe.

* Likelihood: nats and bits per dimension, ``log_mean_exp`` for importance-weighted bounds.
* 2D mixtures: mode coverage and high-quality rate (the VEEGAN protocol).
* MNIST samples: features of a small shipped classifier give a Fréchet distance ("FID on
  MNIST"), k-NN precision/recall, and class coverage from its predictions.

The classifier is a stand-in for Inception: these numbers compare models within the
course, not with papers' CIFAR/ImageNet FIDs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import checkpoints, data
from course_utils.device import get_device, seed_everything
from course_utils.registry import recipe
from course_utils.train import fit

NUM_CLASSES = 10
FEATURE_DIM = 128


def _check_tensor(arg: str, x: object, ndim: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{arg}: expected a torch.Tensor, got {type(x).__name__}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{arg}: expected a {ndim}-d tensor, got shape {tuple(x.shape)}")
    return x


def nats_to_bits_per_dim(nll_nats: torch.Tensor | float, num_dims: int) -> torch.Tensor | float:
    """Convert a negative log-likelihood in nats (per example) to bits per dimension:
    ``nll / (num_dims * ln 2)``."""
    if not isinstance(num_dims, int) or num_dims < 1:
        raise ValueError(f"num_dims: expected a positive int, got {num_dims!r}")
    return nll_nats / (num_dims * math.log(2))


def log_mean_exp(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``log(mean(exp(x), dim))`` computed stably with ``logsumexp``."""
    _check_tensor("x", x)
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])


@dataclass(frozen=True)
class ModeCoverage:
    """Result of ``mode_coverage``: modes captured out of ``num_modes``, and the fraction
    of samples within 3 std of their nearest mode center."""

    modes_captured: int
    num_modes: int
    high_quality_rate: float


def mode_coverage(samples: torch.Tensor, centers: torch.Tensor, std: float) -> ModeCoverage:
    """VEEGAN's protocol for a 2D Gaussian mixture (use 2500 samples).

    A sample is *high quality* if it lies within ``3 * std`` of its nearest center; a mode
    is *captured* if it is the nearest center of at least one high-quality sample.

    Args:
        samples: ``[N, 2]`` generated points.
        centers: ``[k, 2]`` mixture centers (``data.mode_centers``).
        std: the mixture's component std (``data.mode_std``).
    """
    _check_tensor("samples", samples, 2)
    _check_tensor("centers", centers, 2)
    if samples.shape[1] != 2 or centers.shape[1] != 2:
        raise ValueError(
            f"samples/centers: expected [N, 2] and [k, 2], got {tuple(samples.shape)} and "
            f"{tuple(centers.shape)}"
        )
    if not std > 0:
        raise ValueError(f"std: expected a positive float, got {std!r}")
    dist = torch.cdist(samples.float(), centers.float().to(samples.device))
    nearest = dist.min(dim=1)
    high_quality = nearest.values <= 3 * std
    captured = nearest.indices[high_quality].unique().numel()
    return ModeCoverage(int(captured), len(centers), float(high_quality.float().mean()))


class MnistClassifier(nn.Module):
    """The course's MNIST feature extractor: two conv blocks and a 128-d feature layer.

    ``features(x)`` returns the penultimate activations ``[N, 128]`` used by FID and
    precision/recall; ``forward(x)`` returns class logits ``[N, 10]``.
    """

    def __init__(self, width: int = 32, feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, feature_dim), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, NUM_CLASSES))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1, 28, 28]`` (or ``[N, 784]``) images in [0, 1] -> ``[N, 128]`` features."""
        return self.body(_as_images(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _as_images(x: torch.Tensor) -> torch.Tensor:
    _check_tensor("images", x)
    if x.ndim == 2 and x.shape[1] == 784:
        return x.reshape(-1, 1, 28, 28)
    if x.ndim == 4 and tuple(x.shape[1:]) == (1, 28, 28):
        return x
    raise ValueError(f"images: expected shape [N, 1, 28, 28] or [N, 784], got {tuple(x.shape)}")


@lru_cache(maxsize=4)
def _classifier(device: str) -> MnistClassifier:
    from course_utils.checkpoints import load_pretrained

    model = load_pretrained("classifier", device=device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def classifier_features(images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Features ``[N, 128]`` of MNIST-like images ``[N, 1, 28, 28]`` in [0, 1] (on their device)."""
    x = _as_images(images).float()
    model = _classifier(str(x.device))
    return torch.cat([model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def classifier_probs(images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities ``[N, 10]`` of MNIST-like images (softmax of the logits)."""
    x = _as_images(images).float()
    model = _classifier(str(x.device))
    logits = [model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(logits).softmax(dim=1)


def classifier_predict(images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted digit ``[N]`` (int64) of each image."""
    return classifier_probs(images, batch_size).argmax(dim=1)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[N, d]``, ``[M, d]``:

    ``‖μ_a − μ_b‖² + tr(Σ_a) + tr(Σ_b) − 2 tr((Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2})``

    computed in float64 with symmetric eigendecompositions (no ``sqrtm`` of a
    non-symmetric product, so no complex round-off).
    """
    a = _check_tensor("features_a", features_a, 2).cpu().double()  # MPS has no float64
    b = _check_tensor("features_b", features_b, 2).cpu().double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"features_b: expected {a.shape[1]} features like features_a, got {b.shape[1]}"
        )
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"features: need at least 2 rows each, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    evals, evecs = torch.linalg.eigh(cov_a)
    sqrt_a = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
    cross = torch.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clamp(min=0).sqrt().sum()
    fd = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return float(fd.clamp(min=0))


def fid(images_a: torch.Tensor, images_b: torch.Tensor) -> float:
    """ "FID on MNIST": Fréchet distance between classifier features of two image sets."""
    return frechet_distance(classifier_features(images_a), classifier_features(images_b))


def precision_recall(
    real_features: torch.Tensor, fake_features: torch.Tensor, k: int = 3
) -> tuple[float, float]:
    """k-NN precision and recall (Kynkäänniemi et al., 2019).

    Each set's manifold is the union of balls around its points with radius the distance
    to the point's k-th nearest neighbour in the same set. Precision: the fraction of fake
    points inside the real manifold (quality). Recall: the fraction of real points inside
    the fake manifold (coverage).
    """
    real = _check_tensor("real_features", real_features, 2).float()
    fake = _check_tensor("fake_features", fake_features, 2).float().to(real.device)
    if not isinstance(k, int) or k < 1 or k >= min(len(real), len(fake)):
        raise ValueError(f"k: expected an int in [1, min(N, M) - 1], got {k!r}")

    def radii(x: torch.Tensor) -> torch.Tensor:  # distance to the k-th neighbour, self excluded
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values

    def inside(points: torch.Tensor, centers: torch.Tensor, r: torch.Tensor) -> float:
        return float((torch.cdist(points, centers) <= r[None, :]).any(dim=1).float().mean())

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


@dataclass(frozen=True)
class ClassCoverage:
    """Predicted-class statistics of a batch of samples."""

    histogram: list[int]  # count per digit 0..9
    classes_present: int  # digits predicted at least once
    entropy: float  # of the predicted-class histogram, in nats; max log(10) = 2.303


def class_coverage(images: torch.Tensor) -> ClassCoverage:
    """Which digits a batch of samples contains, by the shipped classifier's predictions."""
    hist = torch.bincount(classifier_predict(images).cpu(), minlength=NUM_CLASSES)
    p = hist.double() / hist.sum()
    entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
    return ClassCoverage(hist.tolist(), int((hist > 0).sum()), entropy)


# -- pretraining recipe (the shipped classifier) ---------------------------------------


@recipe(
    "classifier",
    model="course_utils.metrics:MnistClassifier",
    summary="MNIST feature extractor behind FID, precision/recall, class coverage",
    numbers=(
        "accuracy {test_accuracy:.1%}; FID(train vs test) = {fid_train_vs_test:.2f}, the data floor"
    ),
)
def pretrain_classifier(out: Path, epochs: int = 15, seed: int = 0) -> dict[str, float]:
    """Train ``MnistClassifier`` on the MNIST train split (4000 images)."""
    device = get_device()
    seed_everything(seed)
    x_train, y_train = data.mnist("train", device=device)
    x_test, y_test = data.mnist("test", device=device)
    config = {"width": 32, "feature_dim": FEATURE_DIM}
    model = MnistClassifier(**config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    shifts = torch.Generator().manual_seed(seed)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(data.random_shift(x, 2, shifts)), y)

    start = time.perf_counter()
    model.train()
    fit(loss_fn, opt, (x_train, y_train), batch_size=64, epochs=epochs, seed=seed, progress=False)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
        train_feats, test_feats = model.features(x_train), model.features(x_test)
    results = {
        "test_accuracy": accuracy,
        "fid_train_vs_test": frechet_distance(train_feats, test_feats),
        "train_seconds": seconds,
    }
    checkpoints.save(
        model, out, name="classifier", config=config, pixel_range=(0, 1), metrics=results
    )
    return results
