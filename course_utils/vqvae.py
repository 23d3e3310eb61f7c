"""VQ-VAE (lecture 06; van den Oord et al. 2017): ``VQVAE`` (EMA codebook with dead-code
restarts), ``codebook_usage`` (codes used, perplexity), the VQ-VAE and transformer-prior
recipes, ``sample_images``, the codebook figure.

The two-stage recipe of VQ-VAE-2, DALL·E and MaskGIT, at MNIST scale:

1. ``VQVAE`` compresses an image ``[B, 1, 28, 28]`` to a 7x7 grid of code indices (the
   tokens) and decodes them back; the codebook learns by exponential moving averages,
   and unused ("dead") codes restart on encoder outputs.
2. ``autoregressive.CausalTransformer`` models the 49 tokens of an image, given its digit
   class; samples are decoded by the VQ-VAE.

Shipped checkpoints ``vqvae_mnist`` and ``vq_prior_mnist`` (``course pretrain vqvae``);
the prior is trained on the tokens of the shipped ``vqvae_mnist``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from course_utils import checkpoints, data, metrics
from course_utils.autoregressive import CausalTransformer, train_transformer, vector_quantize
from course_utils.device import get_device, seed_everything
from course_utils.registry import recipe
from course_utils.train import batches
from course_utils.viz import allow_blank, as_numpy, image_axes, integer_ticks, tidy

PIXEL_RANGE = (0.0, 1.0)  # images in [0, 1], as data.mnist gives them


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VQVAE(nn.Module):
    """Images ``[B, 1, 28, 28]`` in [0, 1] <-> tokens ``[B, 7, 7]`` in ``0 … codes-1``.

    Encoder: two stride-2 convolutions and residual blocks to ``z_e`` ``[B, dim, 7, 7]``;
    each of its 49 vectors is replaced by the nearest of ``codes`` codebook vectors
    (``autoregressive.vector_quantize``, straight-through); the decoder mirrors the
    encoder and outputs pixel logits (Bernoulli likelihood on grey levels).

    The codebook is not a parameter: ``update_codebook`` moves it by exponential moving
    averages of the encoder outputs assigned to each code (van den Oord et al. 2017,
    appendix A.1), the alternative to the codebook loss ``||sg[z_e] - e||^2``."""

    def __init__(self, codes: int = 64, dim: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.codes, self.dim = codes, dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, hidden, 4, 2, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 4, 2, 1),
            _Residual(hidden), _Residual(hidden), nn.ReLU(), nn.Conv2d(hidden, dim, 1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, padding=1), _Residual(hidden), _Residual(hidden),
            nn.ReLU(), nn.ConvTranspose2d(hidden, hidden, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(hidden, 1, 4, 2, 1),
        )  # fmt: skip
        self.register_buffer("codebook", torch.randn(codes, dim))
        self.register_buffer("ema_count", torch.ones(codes))
        self.register_buffer("ema_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.tensor(False))

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z_e`` ``[B, dim, h, w]`` -> (``z_q`` same shape, straight-through; tokens
        ``[B, h, w]``)."""
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        z_q, tokens = vector_quantize(flat, self.codebook)
        return z_q.view(b, h, w, d).permute(0, 3, 1, 2), tokens.view(b, h, w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x`` ``[B, 1, 28, 28]`` -> (pixel logits ``[B, 1, 28, 28]``, ``z_e``, tokens)."""
        z_e = self.encoder(x)
        z_q, tokens = self.quantize(z_e)
        return self.decoder(z_q), z_e, tokens

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 1, 28, 28]`` -> tokens ``[B, 7, 7]``."""
        return self.quantize(self.encoder(x))[1]

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, 7, 7]`` -> images ``[B, 1, 28, 28]`` in [0, 1]."""
        z_q = self.codebook[tokens].permute(0, 3, 1, 2)
        return torch.sigmoid(self.decoder(z_q))

    @torch.no_grad()
    def update_codebook(self, z_e: torch.Tensor, tokens: torch.Tensor, decay: float) -> int:
        """One EMA step: ``N_j <- γ N_j + (1-γ) n_j``, ``m_j <- γ m_j + (1-γ) Σ_{i→j} z_i``,
        ``e_j = m_j / N_j`` (γ = ``decay``). Codes whose count ``N_j`` fell below one
        vector per batch are dead: they restart on random encoder outputs of the batch
        (the first call restarts all of them: a data-dependent initialization). Returns
        how many restarted."""
        flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, self.dim)
        one_hot = F.one_hot(tokens.flatten(), self.codes).type_as(flat)  # [B*h*w, codes]
        self.ema_count.lerp_(one_hot.sum(0), 1 - decay)
        self.ema_sum.lerp_(one_hot.T @ flat, 1 - decay)
        dead = (self.ema_count < 1.0) | ~self.initialized
        self.initialized.fill_(True)
        if dead.any():
            pick = torch.randint(len(flat), (int(dead.sum()),), device=flat.device)
            self.ema_sum[dead], self.ema_count[dead] = flat[pick], 1.0
        self.codebook.copy_(self.ema_sum / self.ema_count[:, None])
        return int(dead.sum())


def codebook_usage(tokens: torch.Tensor, codes: int) -> dict[str, float]:
    """How many of ``codes`` the tokens use, and the perplexity ``exp(H(p))`` of their
    frequencies ``p`` (``codes`` when all are used equally, 1 when one code is)."""
    p = torch.bincount(tokens.flatten(), minlength=codes).float()
    p = p / p.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return {"codes_used": float((p > 0).sum()), "perplexity": float(entropy.exp())}


def _shifted(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image ``[N, 1, 28, 28]`` translated by its own random offset in ``±shift``."""
    padded = F.pad(x, [shift] * 4)
    offsets = torch.randint(0, 2 * shift + 1, (len(x), 2), generator=generator)
    return torch.stack(
        [padded[i, :, dy : dy + 28, dx : dx + 28] for i, (dy, dx) in enumerate(offsets.tolist())]
    )


VQVAE_MNIST_CONFIG = {"codes": 64, "dim": 16, "hidden": 64}
PRIOR_MNIST_CONFIG = {"vocab": 64, "length": 49, "classes": 10, "d": 96, "layers": 3,
                      "heads": 4, "dropout": 0.1}  # fmt: skip


def train_vqvae(
    model: VQVAE,
    x: torch.Tensor,
    epochs: int,
    beta: float = 0.25,
    decay: float = 0.99,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
) -> dict[str, float]:
    """Minimize ``BCE(decoder(z_q), x) + β ||z_e - sg[e]||^2`` with Adam (the codebook
    moves by EMA, ``update_codebook``), on images shifted by up to 2 pixels."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, lr, total_steps=epochs * math.ceil(len(x) / batch_size)
    )
    g = torch.Generator().manual_seed(seed)
    restarts, start = 0, time.perf_counter()
    model.train()
    for _ in range(epochs):
        for (batch,) in batches(_shifted(x, 2, g), batch_size=batch_size, generator=g):
            logits, z_e, tokens = model(batch)
            commitment = (z_e - model.codebook[tokens].permute(0, 3, 1, 2)).square().mean()
            loss = F.binary_cross_entropy_with_logits(logits, batch) + beta * commitment
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            restarts += model.update_codebook(z_e, tokens, decay)
    model.eval()
    return {"train_seconds": time.perf_counter() - start, "epochs": epochs,
            "dead_code_restarts": restarts}  # fmt: skip


@recipe(
    "vqvae_mnist",
    model="course_utils.vqvae:VQVAE",
    group="vqvae",
    summary="VQ-VAE, 28x28 -> 7x7 tokens of 64 codes, EMA codebook (lecture 06)",
    numbers=(
        "test reconstruction MSE {test_mse:.4f}, FID of reconstructions {fid_reconstructions:.1f};"
        " {codes_used:.0f}/64 codes used, perplexity {perplexity:.1f}; {epochs:.0f} epochs, "
        "{train_seconds:.0f} s"
    ),
)
def pretrain_vqvae_mnist(out: Path, epochs: int = 20, seed: int = 0) -> dict[str, float]:
    """The VQ-VAE on the MNIST train split. Reports the test images' reconstruction MSE
    and FID, and the codebook's usage on the test tokens."""
    device = get_device()
    x, _ = data.mnist("train", device=device)
    x_test, _ = data.mnist("test", device=device)
    seed_everything(seed)
    model = VQVAE(**VQVAE_MNIST_CONFIG).to(device)
    info = train_vqvae(model, x, epochs, seed=seed)
    tokens = model.encode(x_test)
    reconstructions = model.decode(tokens)
    results = {
        "test_mse": float((reconstructions - x_test).square().mean()),
        "fid_reconstructions": metrics.fid(reconstructions, x_test),
        **codebook_usage(tokens, model.codes),
        **info,
    }
    checkpoints.save(model, out, name="vqvae_mnist", config=VQVAE_MNIST_CONFIG,
                     pixel_range=PIXEL_RANGE, metrics=results)  # fmt: skip
    return results


def sample_images(
    prior: CausalTransformer,
    vqvae: VQVAE,
    labels: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One image ``[len(labels), 1, 28, 28]`` in [0, 1] per requested digit: tokens from
    the prior, decoded by the VQ-VAE."""
    tokens = prior.sample(len(labels), labels, temperature, top_k, generator)
    return vqvae.decode(tokens.view(-1, 7, 7))


@recipe(
    "vq_prior_mnist",
    model="course_utils.autoregressive:CausalTransformer",
    group="vqvae",
    summary="class-conditional transformer prior over vqvae_mnist's 49 tokens (lecture 06)",
    numbers=(
        "test NLL {test_nll_tokens:.1f} nats per 49 tokens; 1000 samples, 100 per class: FID "
        "{fid:.1f}, the classifier reads the requested digit in {label_accuracy:.1%}; "
        "{epochs:.0f} epochs on 8 shifted copies of the train split, {train_seconds:.0f} s"
    ),
)
def pretrain_vq_prior_mnist(out: Path, epochs: int = 4, seed: int = 0) -> dict[str, float]:
    """The prior on the shipped ``vqvae_mnist``'s tokens of the MNIST train split, each
    image in 8 copies shifted by up to 2 pixels. Reports the test tokens' NLL and 1000
    class-balanced samples' FID and label accuracy (temperature 1, no top-k)."""
    device = get_device()
    vqvae = checkpoints.load_pretrained("vqvae_mnist", device)
    x, y = data.mnist("train", device=device)
    x_test, y_test = data.mnist("test", device=device)
    g = torch.Generator().manual_seed(seed)
    copies = torch.cat([x] + [_shifted(x, 2, g) for _ in range(7)])
    tokens = vqvae.encode(copies).flatten(1)
    labels = y.repeat(8)
    seed_everything(seed)
    prior = CausalTransformer(**PRIOR_MNIST_CONFIG).to(device)
    info = train_transformer(
        prior, tokens, labels, epochs=epochs, lr=3e-3, batch_size=64, seed=seed
    )
    with torch.no_grad():
        test_nll = -prior.log_prob(vqvae.encode(x_test).flatten(1), y_test).mean()
    requested = torch.arange(10, device=device).repeat_interleave(100)
    samples = sample_images(prior, vqvae, requested, generator=g)
    results = {
        "test_nll_tokens": float(test_nll),
        "fid": metrics.fid(samples, x_test),
        "label_accuracy": float((metrics.classifier_predict(samples) == requested).float().mean()),
        **info,
    }
    checkpoints.save(prior, out, name="vq_prior_mnist", config=PRIOR_MNIST_CONFIG,
                     pixel_range=PIXEL_RANGE, metrics=results)  # fmt: skip
    return results


def codebook_figure(vqvae: VQVAE, tokens: torch.Tensor, images: torch.Tensor, code: int) -> Figure:
    """What code ``code`` is and does, from the test ``images`` ``[N, 1, 28, 28]`` and
    their ``tokens`` ``[N, 7, 7]``: how often each code is used (``code`` in red), what a
    grid of the most used code with ``code`` in its centre 3x3 decodes to (the title says
    when that paints nothing: many codes only matter next to others), the mean of the test
    pixels around the cells coded ``code`` (3x3 cells, 12x12 pixels, its cell outlined), and
    the test image that uses ``code`` most, its 4x4-pixel cells coded ``code`` outlined."""
    if not isinstance(code, int) or not 0 <= code < vqvae.codes:
        raise ValueError(f"code: expected an int in [0, {vqvae.codes - 1}], got {code!r}")
    counts = torch.bincount(tokens.flatten(), minlength=vqvae.codes)
    grid = torch.full((1, 7, 7), int(counts.argmax()), device=tokens.device)
    grid[:, 2:5, 2:5] = code
    where = tokens == code  # [N, 7, 7]
    used = int(counts[code])
    example = int(where.flatten(1).sum(1).argmax())
    fig, axes = plt.subplots(1, 4, figsize=(10, 3.5), width_ratios=(1.5, 1, 1, 1))
    colors = ["tab:red" if j == code else "tab:blue" for j in range(vqvae.codes)]
    axes[0].bar(range(vqvae.codes), as_numpy(counts), color=colors)
    axes[0].set_title(f"code {code}: {used} of {tokens.numel()} test tokens", fontsize=10)
    axes[0].set_xlabel("code j")
    axes[0].set_ylabel("test tokens using it")
    integer_ticks(axes[0].xaxis)
    decoded = vqvae.decode(grid)[0, 0]
    im = axes[1].imshow(as_numpy(decoded), cmap="gray_r", vmin=0, vmax=1)
    title = f"decoded: code {code} in a\n3x3 patch on the background"
    if float(decoded.max() - decoded.min()) < 0.05:
        allow_blank(im)  # many codes only matter next to others: the title says so
        title = f"decoded: code {code} in a 3x3\npatch on the background\npaints nothing"
    axes[1].set_title(title, fontsize=10)
    if used:
        # the 12x12 pixels (3x3 cells) around each cell coded `code`, averaged
        padded = F.pad(images[:, 0], (4, 4, 4, 4))  # [N, 36, 36]
        windows = padded.unfold(1, 12, 4).unfold(2, 12, 4)  # [N, 7, 7, 12, 12]
        axes[2].imshow(as_numpy(windows[where].mean(0)), cmap="gray_r", vmin=0, vmax=1)
        axes[2].add_patch(Rectangle((3.5, 3.5), 4, 4, fill=False, ec="tab:red"))
        axes[2].set_title(f"test pixels around its\ncells, mean of {used}", fontsize=10)
        axes[3].imshow(as_numpy(images[example, 0]), cmap="gray_r", vmin=0, vmax=1)
        for i, j in as_numpy(where[example].nonzero()).tolist():
            axes[3].add_patch(Rectangle((4 * j - 0.5, 4 * i - 0.5), 4, 4, fill=False, ec="tab:red"))
        axes[3].set_title(f"test image {example}:\nits cells coded {code}", fontsize=10)
    else:
        for ax in axes[2:]:
            ax.set_axis_off()
        axes[2].text(0.5, 0.5, f"no test token\nuses code {code}", ha="center", va="center",
                     transform=axes[2].transAxes)  # fmt: skip
    for ax in axes[1:]:
        image_axes(ax)
    tidy(fig)
    return fig
