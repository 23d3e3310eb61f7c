"""VAEs (lecture 01): ``MlpVae``, ``ConvDigitsVae``, ELBO and IWAE estimators, ``train_vae``,
the VAE recipes, ``course bench vae-digits``, the interpolation, latent explorer and β
figures.

The lecture writes its own models, where students read them; ``MlpVae`` is its reference
copy, with the same parameter names, so the lecture loads the shipped ``state_dict`` into
its own class (``tests/test_lecture_twins.py`` keeps the two in step).

``negative_elbo_estimate(model, x, draws)`` evaluates ``-ELBO(x)`` in nats per example,
averaged over ``draws`` reparameterized samples; lecture 01's own ``negative_elbo(model, x,
beta)`` is its one-sample training loss (with the β of β-VAE), and exercise 01's ``elbo``
the per-example ELBO itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from course_utils import checkpoints, data, metrics
from course_utils.bench import print_digits_benchmark
from course_utils.device import get_device, seed_everything
from course_utils.metrics import log_mean_exp
from course_utils.registry import benchmark, recipe
from course_utils.train import train_keeping_best
from course_utils.viz import as_numpy, image_axes, tidy

Decode = Callable[[torch.Tensor], torch.Tensor]  # latents [N, L] -> images [N, D] in [0, 1]


DIGITS_LEVELS = 17  # pixel values 0..16


class MlpVae(nn.Module):
    """MLP VAE with a Bernoulli decoder for flat images ``[B, D]`` in {0, 1} (or [0, 1]).

    ``encoder(x) -> (mu, logvar)`` of ``q(z|x)``, each ``[B, latent_dim]``;
    ``decoder(z) -> logits`` of ``p(x|z)``, ``[B, D]``.
    """

    def __init__(self, data_dim: int = 784, hidden: int = 400, latent_dim: int = 16) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.enc = nn.Sequential(
            nn.Linear(data_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.dec = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, data_dim)
        )

    def encoder(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        return mu, logvar

    def decoder(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)


class ConvDigitsVae(nn.Module):
    """Convolutional VAE for sklearn digits ``[B, 64]`` with values 0..16, decoded as a
    17-way categorical per pixel (the intro_dgm protocol).

    ``encoder(x) -> (mu, logvar)``; ``decoder(z) -> logits [B, 64, 17]``. The last 1x1-style
    convolution shares one map from features to the 17 level logits across all pixels,
    which generalises far better on 1000 training images than a dense 64x17 output layer.
    """

    def __init__(self, latent_dim: int = 16, channels: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        c = channels
        self.latent_dim = latent_dim
        self.enc = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, c, 3, padding=1), nn.LeakyReLU(), nn.Dropout(dropout),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(), nn.Dropout(dropout),  # 4x4
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.LeakyReLU(),  # 2x2
            nn.Flatten(), nn.Linear(16 * c, 2 * latent_dim),
        )  # fmt: skip
        self.dec = nn.Sequential(
            nn.Linear(latent_dim, 16 * c), nn.LeakyReLU(), nn.Unflatten(1, (4 * c, 2, 2)),
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), nn.LeakyReLU(), nn.Dropout(dropout),  # 4x4
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), nn.LeakyReLU(), nn.Dropout(dropout),  # 8x8
            nn.Conv2d(c, DIGITS_LEVELS, 3, padding=1),
        )  # fmt: skip
        self.level_bias = nn.Parameter(torch.zeros(DIGITS_LEVELS, 8, 8))

    def encoder(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x / 8 - 1).chunk(2, dim=-1)  # inputs scaled to [-1, 1]
        return mu, logvar

    def decoder(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.dec(z) + self.level_bias  # [B, 17, 8, 8]
        return logits.permute(0, 2, 3, 1).reshape(len(z), 64, DIGITS_LEVELS)


def log_normal_diag(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` summed over the last dim: ``[..., L] -> [...]``."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).square() / logvar.exp()).sum(-1)


def log_likelihood(model: nn.Module, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``log p(x|z)`` per example for either model: Bernoulli (``MlpVae``) or 17-way
    categorical (``ConvDigitsVae``); ``x: [B, D]``, ``z: [B, L]`` -> ``[B]``."""
    logits = model.decoder(z)
    if logits.ndim == 3:  # categorical: [B, D, K]
        return -F.cross_entropy(logits.transpose(1, 2), x.long(), reduction="none").sum(-1)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def log_weights(model: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    """Importance log-weights ``log p(x, z_i) - log q(z_i|x)`` for ``k`` samples ``z_i ~ q``:
    ``[B, D] -> [k, B]``. Their mean is a single-sample ELBO estimate per sample; their
    ``log_mean_exp`` over ``k`` is the IWAE bound."""
    mu, logvar = model.encoder(x)
    z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape, device=mu.device)  # [k, B, L]
    zero = torch.zeros_like(z)
    log_prior = log_normal_diag(z, zero, zero)
    log_q = log_normal_diag(z, mu, logvar)
    log_px = log_likelihood(model, x.repeat(k, 1), z.reshape(-1, z.shape[-1])).reshape(k, -1)
    return log_px + log_prior - log_q


@torch.no_grad()
def negative_elbo_estimate(model: nn.Module, x: torch.Tensor, draws: int = 10) -> torch.Tensor:
    """Per-example negative ELBO ``[B]``: the single-sample estimator, averaged over ``draws``
    independent draws (same expectation, lower variance)."""
    return -log_weights(model, x, draws).mean(0)


@torch.no_grad()
def iwae_nll(model: nn.Module, x: torch.Tensor, k: int = 1000, chunk: int = 100) -> torch.Tensor:
    """Per-example ``-log p(x)`` estimated by the IWAE bound with ``k`` samples ``[B]``
    (an upper bound on the NLL that tightens as ``k`` grows); computed ``chunk`` examples
    at a time to bound memory."""
    out = []
    for i in range(0, len(x), chunk):
        lw = log_weights(model, x[i : i + chunk], k)
        out.append(-log_mean_exp(lw, dim=0))
    return torch.cat(out)


# -- pretraining recipes (the checkpoints in course_utils/weights) ---------------------


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
    info = train_keeping_best(
        model, opt, lambda x: -log_weights(model, x, 1).mean(),
        lambda averaged: negative_elbo_estimate(averaged, x_val).mean().item(), x_train,
        seconds=seconds, epochs=epochs, batch_size=batch_size, ema_decay=ema_decay,
        eval_every=eval_every, seed=seed,
    )  # fmt: skip
    return {"best_val_neg_elbo": info.pop("best_val"), **info}


DIGITS_VAE_CONFIG = {"latent_dim": 16, "channels": 16, "dropout": 0.2}


def digits_vae_benchmark(seconds: float = 50.0, seed: int = 0) -> tuple[torch.nn.Module, dict]:
    """The intro_dgm digits protocol: train on the first 1000 images, select on the next 350,
    report the test negative ELBO (nats per image) and the IWAE (k=1000) NLL."""
    device = get_device()
    x_train, x_val, x_test = data.digits_protocol(device)
    seed_everything(seed)
    model = ConvDigitsVae(**DIGITS_VAE_CONFIG).to(device)
    info = train_vae(
        model, x_train, x_val, seconds=seconds, batch_size=64, lr=1e-3,
        weight_decay=0.05, ema_decay=0.999, eval_every=10, seed=seed,
    )  # fmt: skip
    torch.manual_seed(seed)
    results = {
        "test_neg_elbo": negative_elbo_estimate(model, x_test).mean().item(),
        "test_iwae_nll_k1000": iwae_nll(model, x_test, k=1000, chunk=50).mean().item(),
        "parameters": float(sum(p.numel() for p in model.parameters())),
        **info,
    }
    return model, results


@recipe(
    "vae_digits",
    model="course_utils.vae:ConvDigitsVae",
    summary="conv VAE, sklearn digits, 17-way categorical pixels (lecture 01)",
    numbers=(
        "−ELBO {test_neg_elbo:.2f} nats, IWAE (k=1000) NLL {test_iwae_nll_k1000:.2f} nats, "
        "{train_seconds:.0f} s of training"
    ),
)
def pretrain_vae_digits(out: Path, seconds: float = 50.0, seed: int = 0) -> dict[str, float]:
    """The digits benchmark model (``ConvDigitsVae``), trained for ``seconds``."""
    model, results = digits_vae_benchmark(seconds, seed)
    checkpoints.save(
        model, out, name="vae_digits", config=DIGITS_VAE_CONFIG, pixel_range=(0, 16),
        metrics=results,
    )  # fmt: skip
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
    model = MlpVae(**config).to(device)
    info = train_vae(
        model, x[:3600], x[3600:], epochs=epochs, batch_size=128, eval_every=10, seed=seed
    )
    torch.manual_seed(seed)
    with torch.no_grad():
        samples = torch.sigmoid(model.decoder(torch.randn(1000, latent_dim, device=device)))
    coverage = metrics.class_coverage(samples)
    results = {
        "test_neg_elbo": negative_elbo_estimate(model, x_test).mean().item(),
        "test_iwae_nll_k1000": iwae_nll(model, x_test, k=1000).mean().item(),
        "fid_prior_samples": metrics.fid(samples, x_grey),
        "classes_present": float(coverage.classes_present),
        "class_entropy": coverage.entropy,
        **info,
    }
    checkpoints.save(model, out, name=name, config=config, pixel_range=(0, 1), metrics=results)
    return results


@recipe(
    "vae_mnist",
    model="course_utils.vae:MlpVae",
    group="vae",
    summary="MLP VAE, 16-d latent, binarized MNIST (lecture 01)",
    numbers=(
        "−ELBO {test_neg_elbo:.1f} nats, IWAE (k=1000) NLL {test_iwae_nll_k1000:.2f} nats; "
        "prior samples: FID {fid_prior_samples:.0f}, {classes_present:.0f}/10 digits"
    ),
)
def pretrain_vae_mnist(out: Path, epochs: int = 300, seed: int = 0) -> dict[str, float]:
    return _pretrain_vae_mnist(out, "vae_mnist", 16, epochs, seed)


@recipe(
    "vae_mnist_2d",
    model="course_utils.vae:MlpVae",
    group="vae",
    summary="the same with a 2-d latent",
    numbers="−ELBO {test_neg_elbo:.1f}, IWAE (k=1000) NLL {test_iwae_nll_k1000:.1f} nats",
)
def pretrain_vae_mnist_2d(out: Path, epochs: int = 300, seed: int = 0) -> dict[str, float]:
    return _pretrain_vae_mnist(out, "vae_mnist_2d", 2, epochs, seed)


# -- benchmark (`course bench vae-digits`) ---------------------------------------------


@benchmark("vae-digits", summary="the digits VAE of lecture 01: test nats per image")
def bench_vae_digits(seconds: float = 50.0, seed: int = 0) -> dict[str, float]:
    """The digits VAE benchmark (intro_dgm protocol, goal <= 92 nats): train, then print the
    test negative ELBO, the IWAE (k=1000) NLL, the time and the parameter count."""
    _, results = digits_vae_benchmark(seconds=seconds, seed=seed)
    rows = [
        ("test negative ELBO (nats/image)", f"{results['test_neg_elbo']:.2f}"),
        ("test NLL, IWAE k=1000 (nats/image)", f"{results['test_iwae_nll_k1000']:.2f}"),
    ]
    print_digits_benchmark("ConvDigitsVae", rows, results)
    return results


# -- widget figures (lecture 01) -------------------------------------------------------


def interpolate(
    z0: torch.Tensor, z1: torch.Tensor, t: float, method: str = "slerp"
) -> torch.Tensor:
    """A point on the path from ``z0`` to ``z1`` (both ``[L]``) at ``t`` in [0, 1].

    ``"linear"``: ``(1 - t) z0 + t z1``. ``"slerp"``: along the great circle,
    ``sin((1-t)Ω)/sin Ω · z0 + sin(tΩ)/sin Ω · z1`` with ``Ω`` the angle between them (linear
    when they are parallel). Under a Gaussian prior, slerp keeps the norm typical of the
    prior, where linear paths cut through the low-norm centre.
    """
    if method not in ("linear", "slerp"):
        raise ValueError(f"method: expected 'linear' or 'slerp', got {method!r}")
    if z0.shape != z1.shape or z0.ndim != 1:
        raise ValueError(
            f"z1: expected a 1-d tensor shaped like z0 {tuple(z0.shape)}, got {tuple(z1.shape)}"
        )
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t: expected a number in [0, 1], got {t!r}")
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if method == "linear" or torch.sin(omega).abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def _plane_coordinates(points: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Coordinates ``[N, 2]`` of ``points`` ``[N, L]`` in an orthonormal basis of span(z0, z1)."""
    e0 = z0 / z0.norm()
    rest = z1 - torch.dot(z1, e0) * e0
    e1 = rest / rest.norm().clamp_min(1e-12)
    return torch.stack([points @ e0, points @ e1], dim=1)


@torch.no_grad()
def interpolation_figure(
    decode: Decode,
    z0: torch.Tensor,
    z1: torch.Tensor,
    t: float,
    method: str = "slerp",
    steps: int = 9,
) -> Figure:
    """The decoded image at ``t``, decodes along the whole path, and both paths (linear and
    slerp) drawn in the plane spanned by ``z0`` and ``z1``."""
    from course_utils.viz import image_grid

    ts = torch.linspace(0, 1, steps).tolist()
    path = torch.stack([interpolate(z0, z1, s, method) for s in ts])
    current = interpolate(z0, z1, t, method)
    images = decode(torch.cat([current[None], path]))
    fig = plt.figure(figsize=(10, 3.2))
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 2.6, 1.3])
    ax_img, ax_strip, ax_path = (fig.add_subplot(grid[0, i]) for i in range(3))
    side = int(math.isqrt(images.shape[1]))
    ax_img.imshow(as_numpy(images[0].reshape(side, side)), cmap="gray_r", vmin=0, vmax=1)
    ax_img.set_title(f"{method}, t = {t:.2f}")
    ax_strip.imshow(image_grid(images[1:], nrow=steps), cmap="gray_r", vmin=0, vmax=1)
    ax_strip.set_title(
        f"decodes along the {method} path,\nt = 0 (first digit) … 1 (second) in {steps} steps"
    )
    for ax in (ax_img, ax_strip):
        image_axes(ax)
    dense = torch.linspace(0, 1, 50).tolist()
    for name, style in (("linear", "--"), ("slerp", "-")):
        pts = _plane_coordinates(torch.stack([interpolate(z0, z1, s, name) for s in dense]), z0, z1)
        ax_path.plot(as_numpy(pts[:, 0]), as_numpy(pts[:, 1]), style, label=name)
    here = as_numpy(_plane_coordinates(current[None], z0, z1)[0])
    ax_path.scatter([here[0]], [here[1]], color="red", zorder=3, label="current point")
    ax_path.set_aspect("equal")
    ax_path.set_title("path in the plane of z0, z1")
    ax_path.set_xlabel("along z0")
    ax_path.set_ylabel("orthogonal to z0")
    ax_path.legend(fontsize=8)
    tidy(fig)
    return fig


@torch.no_grad()
def latent_explorer_figure(
    decode: Decode, codes: torch.Tensor, labels: torch.Tensor, z1: float, z2: float
) -> Figure:
    """Encoded points ``codes`` ``[N, 2]`` coloured by ``labels`` ``[N]`` with ``(z1, z2)``
    marked, next to the image decoded at ``(z1, z2)``."""
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(
            f"codes: expected shape [N, 2] (a 2-d latent space), got {tuple(codes.shape)}"
        )
    point = torch.tensor([[z1, z2]], dtype=codes.dtype, device=codes.device)
    image = decode(point)[0]
    side = int(math.isqrt(image.numel()))
    fig, (ax_codes, ax_img) = plt.subplots(
        1, 2, figsize=(9, 4), gridspec_kw={"width_ratios": [1.3, 1]}
    )
    sc = ax_codes.scatter(
        as_numpy(codes[:, 0]), as_numpy(codes[:, 1]), c=as_numpy(labels), cmap="tab10", s=4
    )
    fig.colorbar(sc, ax=ax_codes, label="digit")
    ax_codes.scatter([z1], [z2], marker="*", s=250, color="black", label="decoded point")
    ax_codes.set_title("test set encoded (posterior means)")
    ax_codes.set_xlabel("$z_1$")
    ax_codes.set_ylabel("$z_2$")
    ax_codes.legend(loc="upper right", fontsize=8)
    ax_img.imshow(as_numpy(image.reshape(side, side)), cmap="gray_r", vmin=0, vmax=1)
    ax_img.set_title(f"decoder mean at z = ({z1:.2f}, {z2:.2f})")
    image_axes(ax_img)
    tidy(fig)
    return fig


def beta_figure(results: dict[float, dict[str, torch.Tensor | float]], beta: float) -> Figure:
    """β-VAE trade-off: samples and reconstructions of the model trained with ``beta``, and
    the KL and reconstruction terms of every trained β with the chosen one marked.

    ``results[b]`` holds ``"samples"`` and ``"reconstructions"`` (images ``[n, D]``), ``"kl"``
    and ``"reconstruction"`` (nats per image, test set).
    """
    from course_utils.viz import image_grid

    if beta not in results:
        raise ValueError(
            f"beta: expected one of the trained values {sorted(results)}, got {beta!r}"
        )
    betas = sorted(results)
    chosen = results[beta]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    for ax, key in zip(axes[:2], ("samples", "reconstructions"), strict=True):
        ax.imshow(image_grid(chosen[key], nrow=8), cmap="gray_r")
        ax.set_title(f"β = {beta:g}: {key}")
        image_axes(ax)
    axes[2].plot(betas, [results[b]["kl"] for b in betas], "o-", label="KL(q(z|x) || p(z))")
    axes[2].plot(
        betas, [results[b]["reconstruction"] for b in betas], "s-", label="−E_q[log p(x|z)]"
    )
    axes[2].axvline(beta, color="gray", ls=":", label="chosen β")
    axes[2].set_xscale("log")
    axes[2].set_xticks(betas, [f"{b:g}" for b in betas])  # one label per trained β
    axes[2].minorticks_off()
    axes[2].set_title("the two ELBO terms vs β (test set)")
    axes[2].set_xlabel("β")
    axes[2].set_ylabel("nats per image")
    axes[2].legend(fontsize=8)
    tidy(fig)
    return fig
