"""DCGAN (lecture 02's MNIST models): the models, their training and the recipes of the
shipped checkpoints.

* ``DcganGenerator`` / ``DcganDiscriminator``: the reference copies of lecture 02's MNIST
  models, whose checkpoints ship (``dcgan_mnist``, ``cgan_mnist``); the lecture loads them
  into its own classes, which ``tests/test_lecture_twins.py`` keeps in step.
* ``train_dcgan`` and the ``@recipe``s that make the two checkpoints.

Images are ``[B, 1, 28, 28]``, in [-1, 1] for the tanh generator; logits are ``[B]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import checkpoints, data, metrics
from course_utils.device import get_device, seed_everything
from course_utils.registry import recipe
from course_utils.train import run


class DcganGenerator(nn.Module):
    """DCGAN generator for 28x28 digits: ``z [B, latent_dim]`` (and optional class labels
    ``y [B]``) -> images ``[B, 1, 28, 28]`` in [-1, 1] (tanh).

    Linear to 7x7 feature maps, then two stride-2 transposed convolutions (7 -> 14 -> 28),
    batch norm and ReLU in between (Radford et al., 2016). With ``num_classes > 0`` it is
    a conditional GAN: the one-hot label is concatenated to ``z``.
    """

    def __init__(self, latent_dim: int = 64, width: int = 64, num_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.project = nn.Sequential(
            nn.Linear(latent_dim + num_classes, 2 * width * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * width * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, 7, 7)),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if y is None:
                raise ValueError("y: expected class labels [B] for a conditional generator")
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        return self.upsample(self.project(z))


class DcganDiscriminator(nn.Module):
    """DCGAN discriminator: images ``[B, 1, 28, 28]`` in [-1, 1] (and optional labels
    ``y [B]``) -> logits ``[B]``.

    Two stride-2 convolutions (28 -> 14 -> 7) with LeakyReLU(0.2), batch norm on the
    second, then a linear layer. Conditional: one-hot label planes are stacked on the image.
    """

    def __init__(self, width: int = 64, num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1 + num_classes, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            if y is None:
                raise ValueError("y: expected class labels [B] for a conditional discriminator")
            planes = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)
        return self.body(x).squeeze(1)


# -- pretraining recipes (the checkpoints in course_utils/weights) ---------------------


def train_dcgan(
    generator: DcganGenerator,
    discriminator: DcganDiscriminator,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """DCGAN training with the non-saturating loss, Adam(2e-4, betas=(0.5, 0.999)).

    Args:
        images: ``[N, 1, 28, 28]`` in [0, 1]; rescaled to [-1, 1] for the tanh generator.
        labels: ``[N]`` digit labels, used when the models are conditional.
    """
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    conditional = generator.num_classes > 0

    def step(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        y = y if conditional else None
        z = torch.randn(len(x), generator.latent_dim, device=x.device)
        fake = generator(z, y)
        d_loss = (
            F.softplus(-discriminator(data.from_unit(x), y)).mean()
            + F.softplus(discriminator(fake.detach(), y)).mean()
        )
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-discriminator(fake, y)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        return {"d_loss": d_loss, "g_loss": g_loss}

    start = time.perf_counter()
    generator.train(), discriminator.train()
    run(step, (images, labels), batch_size=batch_size, epochs=epochs, seed=seed, progress=False)
    generator.eval(), discriminator.eval()
    return {"train_seconds": time.perf_counter() - start, "epochs": float(epochs)}


def _pretrain_dcgan(
    out: Path, name: str, num_classes: int, epochs: int, seed: int
) -> dict[str, float]:
    """(Conditional) DCGAN on the MNIST train split; FID of 1000 samples vs the test split."""
    device = get_device()
    x, y = data.mnist("train", device=device)
    x_test, _ = data.mnist("test", device=device)
    config = {"latent_dim": 64, "width": 64, "num_classes": num_classes}
    seed_everything(seed)
    generator = DcganGenerator(**config).to(device)
    discriminator = DcganDiscriminator(width=64, num_classes=num_classes).to(device)
    info = train_dcgan(generator, discriminator, x, y, epochs=epochs, seed=seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(1000, config["latent_dim"], device=device)
        labels = torch.arange(1000, device=device) % 10 if num_classes else None
        samples = data.to_unit(generator(z, labels))
    coverage = metrics.class_coverage(samples)
    results = {
        "fid_samples": metrics.fid(samples, x_test),
        "classes_present": float(coverage.classes_present),
        "class_entropy": coverage.entropy,
        **info,
    }
    if num_classes:
        predicted = metrics.classifier_predict(samples)
        results["label_accuracy"] = float((predicted == labels).float().mean())
    checkpoints.save(
        generator, out, name=name, config=config, pixel_range=data.SIGNED, metrics=results
    )
    return results


@recipe(
    "dcgan_mnist",
    model="course_utils.gan.dcgan:DcganGenerator",
    group="dcgan",
    summary="DCGAN generator, 64-d latent (lecture 02)",
    numbers=(
        "1000 samples: FID {fid_samples:.1f}, {classes_present:.0f}/10 digits, class entropy "
        "{class_entropy:.2f}; {epochs:.0f} epochs"
    ),
)
def pretrain_dcgan_mnist(out: Path, epochs: int = 100, seed: int = 0) -> dict[str, float]:
    return _pretrain_dcgan(out, "dcgan_mnist", 0, epochs, seed)


@recipe(
    "cgan_mnist",
    model="course_utils.gan.dcgan:DcganGenerator",
    group="dcgan",
    summary="conditional DCGAN generator (lecture 02)",
    numbers=(
        "1000 samples, 100 per class: FID {fid_samples:.1f}, the classifier reads the "
        "requested digit in {label_accuracy:.1%}; {epochs:.0f} epochs"
    ),
)
def pretrain_cgan_mnist(out: Path, epochs: int = 40, seed: int = 0) -> dict[str, float]:
    return _pretrain_dcgan(out, "cgan_mnist", 10, epochs, seed)
