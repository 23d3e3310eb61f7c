"""Produce the checkpoints shipped in ``course_utils/weights``.

    python -m course_utils.pretrain classifier      # the MNIST feature extractor for metrics
    python -m course_utils.pretrain vae             # lecture 01: both MNIST VAEs below
    python -m course_utils.pretrain vae_mnist       # lecture 01: MLP VAE, 16-d latent
    python -m course_utils.pretrain vae_mnist_2d    # lecture 01: MLP VAE, 2-d latent
    python -m course_utils.pretrain vae_digits      # lecture 01: the digits benchmark model
    python -m course_utils.pretrain dcgan           # lecture 02: both MNIST GANs below
    python -m course_utils.pretrain dcgan_mnist     # lecture 02: DCGAN
    python -m course_utils.pretrain cgan_mnist      # lecture 02: conditional DCGAN
    python -m course_utils.pretrain flow            # lecture 03: both flows below
    python -m course_utils.pretrain flow_mnist      # lecture 03: Glow-style flow on MNIST
    python -m course_utils.pretrain flow_digits     # lecture 03: the digits benchmark model
    python -m course_utils.pretrain ddpm            # lecture 04: the MNIST diffusion U-Net

Each recipe trains from a fixed seed on the CPU (or GPU when there is one), prints the
metrics it reaches and stores them in the checkpoint's metadata.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from course_utils import checkpoints, data, diffusion, flows, metrics, models
from course_utils.device import get_device, seed_everything
from course_utils.train import fit, run


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


def _step_and_average(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    model: torch.nn.Module,
    averaged: torch.nn.Module,
    ema_decay: float,
) -> None:
    """One optimizer step on ``loss``, then ``averaged <- ema_decay * averaged + (1 -
    ema_decay) * model``, parameter by parameter."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for avg, p in zip(averaged.parameters(), model.parameters(), strict=True):
            avg.lerp_(p, 1 - ema_decay)


def _train_keeping_best(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    validate: Callable[[torch.nn.Module], float],
    x_train: torch.Tensor,
    *,
    seconds: float | None,
    epochs: int | None,
    batch_size: int,
    ema_decay: float,
    eval_every: int,
    seed: int,
) -> dict[str, float]:
    """Minimize ``loss_fn(batch)`` in rounds of ``eval_every`` epochs until the time or
    epoch budget is spent, keeping an exponential moving average of the weights
    (``ema_decay = 0``: the weights themselves). After each round ``validate(averaged)``
    scores the average (lower is better); the best one is loaded into ``model`` (eval
    mode). Returns ``{"best_val", "best_epoch", "epochs", "train_seconds"}``."""
    averaged = copy.deepcopy(model)

    def step(x: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = loss_fn(x)
        _step_and_average(loss, optimizer, model, averaged, ema_decay)
        return {"loss": loss}

    best, best_state, best_epoch, epoch = float("inf"), None, 0, 0
    start = time.perf_counter()
    while (seconds is None or time.perf_counter() - start < seconds) and (
        epochs is None or epoch < epochs
    ):
        model.train()
        run(step, x_train, batch_size=batch_size, epochs=eval_every, progress=False,
            seed=seed + epoch)  # fmt: skip
        epoch += eval_every
        averaged.eval()
        val = validate(averaged)
        if val < best:
            best, best_state, best_epoch = val, copy.deepcopy(averaged.state_dict()), epoch
    model.load_state_dict(best_state)
    model.eval()
    return {
        "best_val": best,
        "best_epoch": best_epoch,
        "epochs": epoch,
        "train_seconds": time.perf_counter() - start,
    }


def train_vae(
    model: torch.nn.Module,
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    *,
    seconds: float | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    ema_decay: float = 0.0,
    eval_every: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Maximise the ELBO; keep the weights with the best validation ELBO.

    Trains in rounds of ``eval_every`` epochs until the time or epoch budget is spent. With
    ``ema_decay > 0`` the evaluated (and returned) weights are an exponential moving average
    of the trained ones. Loads the best weights into ``model`` (eval mode) and returns
    ``{"best_val_neg_elbo", "best_epoch", "epochs", "train_seconds"}``.
    """
    seed_everything(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    info = _train_keeping_best(
        model, opt, lambda x: -models.log_weights(model, x, 1).mean(),
        lambda averaged: models.negative_elbo(averaged, x_val).mean().item(), x_train,
        seconds=seconds, epochs=epochs, batch_size=batch_size, ema_decay=ema_decay,
        eval_every=eval_every, seed=seed,
    )  # fmt: skip
    return {"best_val_neg_elbo": info.pop("best_val"), **info}


DIGITS_VAE_CONFIG = {"latent_dim": 16, "channels": 16, "dropout": 0.2}


def digits_vae_benchmark(seconds: float = 50.0, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """The intro_dgm digits protocol: train on the first 1000 images, select on the next 350,
    report the test negative ELBO (nats per image) and the IWAE (k=1000) NLL."""
    device = get_device()
    x_train, _ = data.digits("train", device=device)
    x_val, _ = data.digits("val", device=device)
    x_test, _ = data.digits("test", device=device)
    seed_everything(seed)
    model = models.ConvDigitsVae(**DIGITS_VAE_CONFIG).to(device)
    info = train_vae(
        model, x_train, x_val, seconds=seconds, batch_size=64, lr=1e-3,
        weight_decay=0.05, ema_decay=0.999, eval_every=10, seed=seed,
    )  # fmt: skip
    torch.manual_seed(seed)
    results = {
        "test_neg_elbo": models.negative_elbo(model, x_test).mean().item(),
        "test_iwae_nll_k1000": models.iwae_nll(model, x_test, k=1000, chunk=50).mean().item(),
        "parameters": float(sum(p.numel() for p in model.parameters())),
        **info,
    }
    return model, results


def pretrain_vae_digits(out: Path, seconds: float = 50.0, seed: int = 0) -> dict[str, float]:
    """The digits benchmark model (``ConvDigitsVae``), trained for ``seconds``."""
    model, results = digits_vae_benchmark(seconds, seed)
    checkpoints.save(model, out, name="vae_digits", config=DIGITS_VAE_CONFIG, metrics=results)
    return results


def _pretrain_vae_mnist(
    out: Path, name: str, latent_dim: int, epochs: int = 300, seed: int = 0
) -> dict[str, float]:
    """MLP VAE on binarized MNIST: 3600 train images, 400 for selection, 1000 test."""
    device = get_device()
    x, _ = data.mnist("train", device=device, flatten=True, binarize=True)
    x_test, _ = data.mnist("test", device=device, flatten=True, binarize=True)
    x_grey, _ = data.mnist("test", device=device)
    config = {"data_dim": 784, "hidden": 400, "latent_dim": latent_dim}
    seed_everything(seed)
    model = models.MlpVae(**config).to(device)
    info = train_vae(
        model, x[:3600], x[3600:], epochs=epochs, batch_size=128, eval_every=10, seed=seed
    )
    torch.manual_seed(seed)
    with torch.no_grad():
        samples = torch.sigmoid(model.decoder(torch.randn(1000, latent_dim, device=device)))
    coverage = metrics.class_coverage(samples)
    results = {
        "test_neg_elbo": models.negative_elbo(model, x_test).mean().item(),
        "test_iwae_nll_k1000": models.iwae_nll(model, x_test, k=1000).mean().item(),
        "fid_prior_samples": metrics.fid(samples, x_grey),
        "classes_present": float(coverage.classes_present),
        "class_entropy": coverage.entropy,
        **info,
    }
    checkpoints.save(model, out, name=name, config=config, metrics=results)
    return results


def pretrain_vae_mnist(out: Path, epochs: int = 300, seed: int = 0) -> dict[str, float]:
    return _pretrain_vae_mnist(out, "vae_mnist", 16, epochs, seed)


def pretrain_vae_mnist_2d(out: Path, epochs: int = 300, seed: int = 0) -> dict[str, float]:
    return _pretrain_vae_mnist(out, "vae_mnist_2d", 2, epochs, seed)


def train_dcgan(
    generator: models.DcganGenerator,
    discriminator: models.DcganDiscriminator,
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
            F.softplus(-discriminator(2 * x - 1, y)).mean()
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
    generator = models.DcganGenerator(**config).to(device)
    discriminator = models.DcganDiscriminator(width=64, num_classes=num_classes).to(device)
    info = train_dcgan(generator, discriminator, x, y, epochs=epochs, seed=seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(1000, config["latent_dim"], device=device)
        labels = torch.arange(1000, device=device) % 10 if num_classes else None
        samples = (generator(z, labels) + 1) / 2
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
    checkpoints.save(generator, out, name=name, config=config, metrics=results)
    return results


def pretrain_dcgan_mnist(out: Path, epochs: int = 100, seed: int = 0) -> dict[str, float]:
    return _pretrain_dcgan(out, "dcgan_mnist", 0, epochs, seed)


def pretrain_cgan_mnist(out: Path, epochs: int = 40, seed: int = 0) -> dict[str, float]:
    return _pretrain_dcgan(out, "cgan_mnist", 10, epochs, seed)


def train_flow(
    flow: flows.Flow,
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    *,
    seconds: float | None = None,
    epochs: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    ema_decay: float = 0.995,
    eval_every: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Maximum likelihood on dequantized integer data (``x + u``, fresh ``u`` each step).

    Trains in rounds of ``eval_every`` epochs until the time or epoch budget is spent, and
    keeps the exponential moving average of the weights with the best validation NLL bound
    (nats per example, 2 noise draws). Loads them into ``flow`` (eval mode) and returns
    ``{"best_val_nll", "best_epoch", "epochs", "train_seconds"}``.
    """
    seed_everything(seed)
    flow.train()
    with torch.no_grad():  # ActNorm's data-dependent initialization, on a large batch
        flow(flows.dequantize(x_train[:512]))
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    info = _train_keeping_best(
        flow, opt, lambda x: -flow.log_prob(flows.dequantize(x)).mean(),
        lambda averaged: flows.discrete_nll_bound(averaged, x_val, draws=2).mean().item(),
        x_train, seconds=seconds, epochs=epochs, batch_size=batch_size, ema_decay=ema_decay,
        eval_every=eval_every, seed=seed,
    )  # fmt: skip
    return {"best_val_nll": info.pop("best_val"), **info}


FLOW_DIGITS_CONFIG = {"num_blocks": 4, "hidden": 256}


def flow_digits_benchmark(seconds: float = 55.0, seed: int = 0) -> tuple[flows.Flow, dict]:
    """The intro_dgm digits protocol for flows: train on the first 1000 images, select on
    the next 350, report the test NLL bound ``-E_u log p(x + u)`` (nats per image)."""
    device = get_device()
    x_train, _ = data.digits("train", device=device)
    x_val, _ = data.digits("val", device=device)
    x_test, _ = data.digits("test", device=device)
    seed_everything(seed)
    flow = flows.realnvp_digits(**FLOW_DIGITS_CONFIG).to(device)
    info = train_flow(flow, x_train, x_val, seconds=seconds, seed=seed)
    torch.manual_seed(seed)
    nll = flows.discrete_nll_bound(flow, x_test, draws=10).mean().item()
    results = {
        "test_nll": nll,
        "test_bits_per_dim": nll / (64 * math.log(2)),
        "parameters": float(sum(p.numel() for p in flow.parameters())),
        **info,
    }
    return flow, results


def pretrain_flow_digits(out: Path, seconds: float = 55.0, seed: int = 0) -> dict[str, float]:
    flow, results = flow_digits_benchmark(seconds, seed)
    checkpoints.save(flow, out, name="flow_digits", config=FLOW_DIGITS_CONFIG, metrics=results)
    return results


FLOW_MNIST_CONFIG = {"steps_per_scale": [4, 8], "hidden": 64}


def pretrain_flow_mnist(out: Path, epochs: int = 100, seed: int = 0) -> dict[str, float]:
    """The Glow-style flow on MNIST (256 grey levels): 3600 train images, 400 for
    selection; test bits/dim, and FID / class coverage of 1000 samples at temperature 1
    and 0.7."""
    device = get_device()
    x, _ = data.mnist("train", device=device)
    x_test, _ = data.mnist("test", device=device)
    levels = 255 * x
    seed_everything(seed)
    flow = flows.glow_mnist(**FLOW_MNIST_CONFIG).to(device)
    info = train_flow(flow, levels[:3600], levels[3600:], epochs=epochs, eval_every=5, seed=seed)
    torch.manual_seed(seed)
    nll = flows.discrete_nll_bound(flow, 255 * x_test, draws=2).mean().item()
    samples = (flow.sample(1000) / 256).clamp(0, 1)
    coverage = metrics.class_coverage(samples)
    torch.manual_seed(seed)
    cooled = (flow.sample(1000, temperature=0.7) / 256).clamp(0, 1)
    results = {
        "test_bits_per_dim": nll / (784 * math.log(2)),
        "fid_samples": metrics.fid(samples, x_test),
        "classes_present": float(coverage.classes_present),
        "class_entropy": coverage.entropy,
        "fid_samples_t07": metrics.fid(cooled, x_test),
        "classes_present_t07": float(metrics.class_coverage(cooled).classes_present),
        **info,
    }
    checkpoints.save(flow, out, name="flow_mnist", config=FLOW_MNIST_CONFIG, metrics=results)
    return results


def train_ddpm(
    model: models.DiffusionUnet,
    images: torch.Tensor,
    labels: torch.Tensor,
    alpha_bar: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 5e-4,
    ema_decay: float = 0.999,
    p_uncond: float = 0.1,
    seed: int = 0,
) -> dict[str, float]:
    """Algorithm 1 (``diffusion.ddpm_loss``) with classifier-free guidance's label dropout:
    each label is replaced by the "no label" token with probability ``p_uncond``. Loads the
    exponential moving average of the weights into ``model`` (eval mode).

    Args:
        images: ``[N, 1, 28, 28]`` in [0, 1]; rescaled to [-1, 1].
        labels: ``[N]`` digit labels.
        alpha_bar: ``[T]`` noise schedule.
    """
    seed_everything(seed)
    averaged = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        drop = torch.rand(len(y), device=y.device) < p_uncond
        y = torch.where(drop, model.num_classes, y)
        loss = diffusion.ddpm_loss(lambda x_t, t: model(x_t, t, y), 2 * x - 1, alpha_bar)
        _step_and_average(loss, opt, model, averaged, ema_decay)
        return {"loss": loss}

    start = time.perf_counter()
    model.train()
    history = run(step, (images, labels), batch_size=batch_size, epochs=epochs, seed=seed,
                  progress=False)  # fmt: skip
    model.load_state_dict(averaged.state_dict())
    model.eval()
    return {
        "train_seconds": time.perf_counter() - start,
        "epochs": float(epochs),
        "final_loss": float(sum(history["loss"][-50:]) / len(history["loss"][-50:])),
    }


DDPM_T = 1000  # linear betas 1e-4 -> 0.02, as in Ho et al.
DDPM_MNIST_CONFIG = {"width": 16, "mults": [1, 2, 4], "num_classes": 10}


def pretrain_ddpm_mnist(out: Path, epochs: int = 250, seed: int = 0) -> dict[str, float]:
    """The class-conditional DDPM U-Net on the MNIST train split (batch 64), trained with
    label dropout so that one network serves unconditional sampling and guidance. Reports
    FID and class coverage of 1000 unconditional DDIM-50 samples, and the classifier's
    accuracy on 1000 guided (w = 2) samples of requested digits. The shipped run used
    ``COURSE_NUM_THREADS=2`` (25 minutes on 2 cores)."""
    device = get_device()
    x, y = data.mnist("train", device=device)
    x_test, _ = data.mnist("test", device=device)
    alpha_bar = diffusion.alpha_bar_of(diffusion.linear_beta_schedule(DDPM_T))
    seed_everything(seed)
    model = models.DiffusionUnet(**DDPM_MNIST_CONFIG).to(device)
    info = train_ddpm(model, x, y, alpha_bar, epochs=epochs, seed=seed)
    torch.manual_seed(seed)
    x_T = torch.randn(1000, 1, 28, 28, device=device)
    samples, _ = diffusion.sample_ddim(model, x_T, alpha_bar, 50)
    samples = ((samples + 1) / 2).clamp(0, 1)
    coverage = metrics.class_coverage(samples)
    wanted = torch.arange(1000, device=device) % 10
    guided, _ = diffusion.sample_ddim(diffusion.guided(model, wanted, 2.0), x_T, alpha_bar, 50)
    guided = ((guided + 1) / 2).clamp(0, 1)
    results = {
        "fid_ddim50": metrics.fid(samples, x_test),
        "classes_present": float(coverage.classes_present),
        "class_entropy": coverage.entropy,
        "fid_guided_w2": metrics.fid(guided, x_test),
        "label_accuracy_w2": float((metrics.classifier_predict(guided) == wanted).float().mean()),
        **info,
    }
    checkpoints.save(model, out, name="ddpm_mnist", config=DDPM_MNIST_CONFIG, metrics=results)
    return results


RECIPES: dict[str, Callable[..., dict[str, float]]] = {
    "classifier": pretrain_classifier,
    "vae_mnist": pretrain_vae_mnist,
    "vae_mnist_2d": pretrain_vae_mnist_2d,
    "vae_digits": pretrain_vae_digits,
    "dcgan_mnist": pretrain_dcgan_mnist,
    "cgan_mnist": pretrain_cgan_mnist,
    "flow_digits": pretrain_flow_digits,
    "flow_mnist": pretrain_flow_mnist,
    "ddpm_mnist": pretrain_ddpm_mnist,
}
GROUPS: dict[str, list[str]] = {
    "vae": ["vae_mnist", "vae_mnist_2d"],
    "dcgan": ["dcgan_mnist", "cgan_mnist"],
    "flow": ["flow_mnist", "flow_digits"],
    "ddpm": ["ddpm_mnist"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted([*RECIPES, *GROUPS]), help="what to produce")
    parser.add_argument("--out", type=Path, default=None, help="default: the package weights")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's own")
    args = parser.parse_args(argv)
    names = GROUPS.get(args.name, [args.name])
    if args.out is not None and len(names) > 1:
        parser.error(f"--out: {args.name!r} writes {len(names)} checkpoints ({', '.join(names)})")
    options = {} if args.epochs is None else {"epochs": args.epochs}
    for name in names:
        out = args.out or checkpoints.WEIGHTS_DIR / f"{name}.pt"
        results = RECIPES[name](out, **options)
        print(f"wrote {out}")
        for key, value in results.items():
            print(f"  {key}: {value:.4f}")


if __name__ == "__main__":
    main()
