"""Produce the checkpoints shipped in ``course_utils/weights``.

    python -m course_utils.pretrain classifier      # the MNIST feature extractor for metrics

Each recipe trains from a fixed seed on the CPU (or GPU when there is one), prints the
metrics it reaches and stores them in the checkpoint's metadata.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from course_utils import checkpoints, data, metrics
from course_utils.device import get_device, seed_everything
from course_utils.train import fit


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image ``[N, 1, 28, 28]`` by up to ``max_shift`` pixels (zero fill)."""
    padded = F.pad(x, [max_shift] * 4)
    dx, dy = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + 28, dx : dx + 28]


def pretrain_classifier(out: Path, epochs: int = 15, seed: int = 0) -> dict[str, float]:
    """Train ``metrics.MnistClassifier`` on the MNIST train split (4000 images)."""
    device = get_device()
    seed_everything(seed)
    x_train, y_train = data.mnist("train", device=device)
    x_test, y_test = data.mnist("test", device=device)
    config = {"width": 32, "feature_dim": metrics.FEATURE_DIM}
    model = metrics.MnistClassifier(**config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    shifts = torch.Generator().manual_seed(seed)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(_random_shift(x, 2, shifts)), y)

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
        "fid_train_vs_test": metrics.frechet_distance(train_feats, test_feats),
        "train_seconds": seconds,
    }
    checkpoints.save(model, out, name="classifier", config=config, metrics=results)
    return results


RECIPES: dict[str, Callable[..., dict[str, float]]] = {"classifier": pretrain_classifier}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(RECIPES), help="which checkpoint to produce")
    parser.add_argument("--out", type=Path, default=None, help="default: the package weights")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's own")
    args = parser.parse_args(argv)
    out = args.out or checkpoints.WEIGHTS_DIR / f"{args.name}.pt"
    options = {} if args.epochs is None else {"epochs": args.epochs}
    results = RECIPES[args.name](out, **options)
    print(f"wrote {out}")
    for key, value in results.items():
        print(f"  {key}: {value:.4f}")


if __name__ == "__main__":
    main()
