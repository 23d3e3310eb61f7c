"""Autoregressive models and discrete latents (lecture 06): the 06 reference functions,
``MaskedConv2d``, ``PixelCNN`` and its recipe, ``CausalTransformer``
(decoder-only, optionally class-conditional) and ``train_transformer``, ``course bench
pixelcnn-digits``, the generation-order and completion figures.

* The exercise set 06 reference functions: ``causal_mask``, ``masked_conv_mask``,
  ``categorical_nll``, ``sample_with_temperature``, ``self_attention``,
  ``vector_quantize``, ``vq_losses``, ``keep_top_k`` (top-k filtering, which
  ``PixelCNN.sample`` and ``CausalTransformer.sample`` use).
* ``PixelCNN`` (van den Oord et al. 2016) over K-level categorical pixels: a type-A
  masked convolution, then residual type-B blocks; exact log-likelihood in one pass,
  sampling pixel by pixel (``sample``, with temperature and top-k, and completion of a
  given top).
* ``course bench pixelcnn-digits``: the intro_dgm digits protocol (17 levels), exact test
  NLL in nats per image.

Conventions (``docs/EXERCISE_API.md``): images are integer tensors of levels
``0 … K-1``; logits are ``[batch, K, ...]`` (class dim 1, as ``F.cross_entropy``
expects); attention tensors are ``[batch, n, d]``; a boolean mask is True where attention
is allowed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from course_utils import checkpoints, data
from course_utils.bench import print_digits_benchmark
from course_utils.device import get_device, seed_everything
from course_utils.registry import benchmark, recipe
from course_utils.train import batches, train_keeping_best
from course_utils.viz import as_numpy

# -- the exercise set 06 reference functions --------------------------------------------


# Copied from solutions/06_autoregressive.py: causal_mask
def causal_mask(n: int) -> torch.Tensor:
    """Bool ``[n, n]``: True where position ``i`` (row) may attend to ``j`` (column), j <= i."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    return torch.ones(n, n, dtype=torch.bool).tril()


# Copied from solutions/06_autoregressive.py: masked_conv_mask
def masked_conv_mask(kernel_size: int, mask_type: str) -> torch.Tensor:
    """PixelCNN's spatial mask, float ``[kernel_size, kernel_size]``: 1 above the centre
    row and left of the centre in the centre row; the centre is 0 for type ``"A"`` (the
    first layer: a pixel must not see itself) and 1 for ``"B"``; 0 elsewhere."""
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected a positive odd int, got {kernel_size!r}")
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type: expected 'A' or 'B', got {mask_type!r}")
    c = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size)
    mask[:c] = 1
    mask[c, : c + (mask_type == "B")] = 1
    return mask


# Copied from solutions/06_autoregressive.py: categorical_nll
def categorical_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-log p(x)`` in nats, ``[batch]``: independent categoricals with ``logits``
    ``[batch, K, ...]`` over levels ``x`` ``[batch, ...]``, summed over all non-batch dims."""
    if logits.dim() != x.dim() + 1 or logits.shape[:1] + logits.shape[2:] != x.shape:
        raise ValueError(
            f"logits, x: expected logits [batch, K, *dims] and x [batch, *dims], got "
            f"{tuple(logits.shape)} and {tuple(x.shape)}"
        )
    return F.cross_entropy(logits, x.long(), reduction="none").flatten(1).sum(1)


# Copied from solutions/06_autoregressive.py: sample_with_temperature
def sample_with_temperature(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One draw per row from ``softmax(logits / temperature)`` over the last dim
    (``temperature = 0``: the argmax); LongTensor of ``logits.shape[:-1]``."""
    if temperature < 0:
        raise ValueError(f"temperature: expected >= 0, got {temperature!r}")
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    return flat.view(logits.shape[:-1])


# Copied from solutions/06_autoregressive.py: keep_top_k
def keep_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """``logits`` ``[..., K]`` with all but the ``k`` largest of each row (last dim) set to
    ``-inf``, exactly ``k`` kept when logits tie (top-k sampling, Fan et al. 2018);
    ``logits`` itself when ``k`` is None."""
    if k is None:
        return logits
    if not isinstance(k, int) or not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k: expected an int in [1, {logits.shape[-1]}] or None, got {k!r}")
    keep = torch.zeros_like(logits, dtype=torch.bool)
    keep.scatter_(-1, logits.topk(k, dim=-1).indices, True)
    return logits.masked_fill(~keep, float("-inf"))


# Copied from solutions/06_autoregressive.py: self_attention
def self_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / √d, masked = -inf) v`` for ``q, k, v`` ``[batch, n, d]``; ``mask``
    (bool, broadcastable to ``[batch, n, n]``) is True where query i may attend to key j."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # [batch, n_q, n_k]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


# Copied from solutions/06_autoregressive.py: vector_quantize
def vector_quantize(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest code by Euclidean distance: ``z`` ``[N, D]``, ``codebook`` ``[K, D]`` ->
    ``(z_q [N, D], indices [N])`` with ``z_q = z + (e_k - z).detach()`` (straight-through:
    the forward value is the code, the gradient reaches ``z``)."""
    if z.dim() != 2 or codebook.dim() != 2 or z.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"z, codebook: expected [N, D] and [K, D], got {tuple(z.shape)} and "
            f"{tuple(codebook.shape)}"
        )
    # ||z - e||² = ||z||² - 2 z·e + ||e||², without the [N, K, D] difference tensor
    distances = z.square().sum(1, keepdim=True) - 2 * z @ codebook.T + codebook.square().sum(1)
    indices = distances.argmin(1)
    return z + (codebook[indices] - z).detach(), indices


# Copied from solutions/06_autoregressive.py: vq_losses
def vq_losses(
    z_e: torch.Tensor, z_q: torch.Tensor, beta: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """VQ-VAE's two extra terms (van den Oord et al. 2017, eq. 3), for the encoder output
    ``z_e`` ``[N, D]`` and the raw codes ``z_q = codebook[indices]`` ``[N, D]``: the
    codebook loss ``‖sg[z_e] − e‖²`` moves the codes, the commitment loss
    ``β ‖z_e − sg[e]‖²`` the encoder; both means, scalars.

    ``z_q`` must be the raw codes, NOT ``vector_quantize``'s straight-through output
    ``z_e + (e − z_e).detach()``: that tensor's gradient goes to ``z_e``, so the codebook
    loss would train the encoder and never the codes."""
    codebook_loss = (z_e.detach() - z_q).square().mean()
    commitment_loss = beta * (z_e - z_q.detach()).square().mean()
    return codebook_loss, commitment_loss


# -- PixelCNN ---------------------------------------------------------------------------


class MaskedConv2d(nn.Conv2d):
    """A convolution whose kernel is multiplied by ``masked_conv_mask`` (the same spatial
    mask for every channel pair: one colour channel, so no channel ordering)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.register_buffer("mask", masked_conv_mask(kernel_size, mask_type))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """``levels``-way categorical pixels ``[B, H, W]`` -> logits ``[B, levels, H, W]``,
    where pixel (i, j)'s logits depend only on the pixels before it in raster order.

    The input is one-hot; a type-A ``first_kernel`` convolution, then ``blocks`` residual
    blocks (ReLU, type-B 3x3, ReLU, 1x1), then a 1x1 head. Dropout (``dropout``) on each
    block's hidden layer keeps it from memorizing a small training set."""

    def __init__(
        self,
        levels: int = 17,
        channels: int = 64,
        blocks: int = 6,
        first_kernel: int = 7,
        dropout: float = 0.0,
        positional: bool = False,
        context_dropout: float = 0.0,
        mixture: int = 0,
        free_logits: bool = True,
    ) -> None:
        super().__init__()
        self.levels = levels
        self.context_dropout = context_dropout
        self.first = MaskedConv2d(levels + 1, channels, first_kernel, "A")
        self.position = nn.Parameter(torch.zeros(channels, 8, 8)) if positional else None
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(), MaskedConv2d(channels, channels, 3, "B"), nn.ReLU(),
                nn.Dropout(dropout), nn.Conv2d(channels, channels, 1),
            )
            for _ in range(blocks)
        )  # fmt: skip
        self.mixture, self.free_logits = mixture, free_logits
        outputs = 3 * mixture + (levels if free_logits or not mixture else 0)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, outputs, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(x.long(), self.levels).permute(0, 3, 1, 2).float()
        level = x[:, None].float() / (self.levels - 1)
        inputs = torch.cat([one_hot, level], 1)
        if self.training and self.context_dropout > 0:
            keep = torch.rand_like(level) >= self.context_dropout
            inputs = inputs * keep
        h = self.first(inputs)
        if self.position is not None:
            h = h + self.position
        for block in self.blocks:
            h = h + block(h)
        out = self.head(h)
        if not self.mixture:
            return out
        m = self.mixture
        weights, means, log_scales = out[:, :m], out[:, m : 2 * m], out[:, 2 * m : 3 * m]
        k = torch.arange(self.levels, device=x.device, dtype=out.dtype).view(1, -1, 1, 1, 1)
        means = (means[:, None] + 0.5) * (self.levels - 1) / 2  # [B, 1, M, H, W]
        inv_s = torch.exp(-log_scales.clamp(min=-5))[:, None] * 2 / (self.levels - 1)
        upper = torch.where(k == self.levels - 1, torch.inf, (k + 0.5 - means) * inv_s)
        lower = torch.where(k == 0, -torch.inf, (k - 0.5 - means) * inv_s)
        probs = (torch.sigmoid(upper) - torch.sigmoid(lower)).clamp(min=1e-12)  # [B, K, M, H, W]
        logits = torch.logsumexp(probs.log() + weights.log_softmax(1)[:, None], dim=2)
        if self.free_logits:
            logits = logits + out[:, 3 * m :]
        return logits

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact ``log p(x)`` in nats, ``[B]``: one pass, by the chain rule."""
        return -categorical_nll(self(x), x)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        shape: tuple[int, int] = (8, 8),
        temperature: float = 1.0,
        top_k: int | None = None,
        given: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` images ``[n, H, W]`` drawn pixel by pixel in raster order (one network
        pass per pixel). ``given`` (``[n, H, W]`` with -1 where unknown) fixes the known
        pixels, e.g. a digit's top half for completion."""
        device = next(self.parameters()).device
        x = torch.zeros(n, *shape, dtype=torch.long, device=device)
        known = None
        if given is not None:
            known = given >= 0
            x = torch.where(known, given, x)
        for i in range(shape[0]):
            for j in range(shape[1]):
                logits = keep_top_k(self(x)[:, :, i, j], top_k)  # [n, levels]
                draw = sample_with_temperature(logits, temperature, generator)
                x[:, i, j] = (
                    draw if known is None else torch.where(known[:, i, j], x[:, i, j], draw)
                )
        return x


class CausalBlock(nn.Module):
    """A pre-norm transformer block: ``x + attention(LN(x))``, then ``x + MLP(LN(x))``,
    the attention causal (position t sees positions <= t). ``[B, n, d] -> [B, n, d]``."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(
            nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        # softmax(q k^T / sqrt(d_head) + causal mask) v, per head: self_attention's formula
        h = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.out(h.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


class CausalTransformer(nn.Module):
    """A decoder-only transformer over sequences of ``vocab`` tokens: ``tokens [B, n]``
    (``n <= length``) -> next-token logits ``[B, vocab, n]``.

    Position t's logits predict token t from a start token and tokens ``< t``: the input
    is shifted right by one behind the start token, which is the class label when
    ``classes > 0`` (a class-conditional prior; ``labels`` ``[B]``) and a single learned
    token otherwise. Learned positional embeddings give the attention the order."""

    def __init__(
        self,
        vocab: int,
        length: int,
        classes: int = 0,
        d: int = 128,
        layers: int = 4,
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.vocab, self.length, self.classes = vocab, length, classes
        self.embed = nn.Embedding(vocab + max(classes, 1), d)  # tokens, then start tokens
        self.position = nn.Parameter(torch.zeros(1, length, d))
        self.blocks = nn.Sequential(*(CausalBlock(d, heads, dropout) for _ in range(layers)))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        b, n = tokens.shape
        start = self.vocab + (labels if self.classes else torch.zeros_like(tokens[:, 0]))
        inputs = torch.cat([start[:, None], tokens[:, : n - 1]], 1)  # shift right
        h = self.blocks(self.embed(inputs) + self.position[:, :n])
        return self.head(self.norm(h)).transpose(1, 2)

    def log_prob(self, tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p(tokens | label)`` in nats, ``[B]``."""
        return -categorical_nll(self(tokens, labels), tokens)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` sequences ``[n, length]``, token by token; step t runs the network on the
        t tokens drawn so far (causal, so later positions would not change it)."""
        device = self.position.device
        tokens = torch.zeros(n, 0, dtype=torch.long, device=device)
        for t in range(self.length):
            padded = torch.cat([tokens, tokens.new_zeros(n, 1)], 1)  # position t's slot
            logits = keep_top_k(self(padded, labels)[:, :, t], top_k)
            draw = sample_with_temperature(logits, temperature, generator)
            tokens = torch.cat([tokens, draw[:, None]], 1)
        return tokens


def train_transformer(
    model: CausalTransformer,
    tokens: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
) -> dict[str, float]:
    """Maximum likelihood of ``tokens`` ``[N, n]`` (given ``labels`` ``[N]`` for a
    class-conditional model) with AdamW and a one-cycle learning rate; returns the time."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, lr, total_steps=epochs * math.ceil(len(tokens) / batch_size)
    )
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        for batch in batches(*([tokens] if labels is None else [tokens, labels]),
                             batch_size=batch_size, generator=g):  # fmt: skip
            loss = categorical_nll(model(*batch), batch[0]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    return {"train_seconds": time.perf_counter() - start, "epochs": epochs}


# -- the digits benchmark (`course bench pixelcnn-digits`) ------------------------------

# Chosen on the validation split (first_kernel 7/5/3, blocks 3-14, channels 32-96, dropout,
# context dropout, mixture heads; the sweep is in the issue 14 note): 3x3 kernels stacked
# deep beat one wide first layer, and the ordinal mixture head generalizes from 1000 images.
PIXELCNN_DIGITS_CONFIG = {
    "levels": 17, "channels": 64, "blocks": 12, "first_kernel": 3, "dropout": 0.2,
    "positional": True, "context_dropout": 0.2, "mixture": 5,
}  # fmt: skip


def digits_levels(device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]:
    """The intro_dgm protocol's images as ``[N, 8, 8]`` integer levels 0..16: train 1000,
    validation 350, test 447."""
    return tuple(x.view(-1, 8, 8).long() for x in data.digits_protocol(device))


def train_pixelcnn_digits(
    seconds: float = 110.0,
    seed: int = 0,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    batch_size: int = 50,
    ema_decay: float = 0.99,
    **config: Any,
) -> tuple[PixelCNN, dict[str, float]]:
    """Maximum likelihood on the digits (train 1000), the EMA weights with the best
    validation NLL kept; returns the model (eval mode) and its test NLL (nats per image,
    and bits/dim), the time and the parameter count."""
    device = get_device()
    x_train, x_val, x_test = digits_levels(device)
    seed_everything(seed)
    model = PixelCNN(**{**PIXELCNN_DIGITS_CONFIG, **config}).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def nll(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return -m.log_prob(x).mean()

    info = train_keeping_best(
        model, optimizer, lambda x: -model.log_prob(x).mean(),
        lambda averaged: nll(averaged, x_val).item(), x_train, seconds=seconds, epochs=None,
        batch_size=batch_size, ema_decay=ema_decay, eval_every=5, seed=seed,
    )  # fmt: skip
    test_nll = nll(model, x_test).item()
    return model, {
        "test_nll": test_nll,
        "test_bits_per_dim": test_nll / (64 * math.log(2)),
        "parameters": float(sum(p.numel() for p in model.parameters())),
        "best_val_nll": info.pop("best_val"),
        **info,
    }


@recipe(
    "pixelcnn_digits",
    model="course_utils.autoregressive:PixelCNN",
    summary="PixelCNN over 17-level sklearn digits (EMA weights best on validation; lecture 06)",
    numbers=(
        "exact test NLL {test_nll:.2f} nats/image ({test_bits_per_dim:.3f} bits/dim); "
        "{epochs:.0f} epochs (best {best_epoch:.0f}), {train_seconds:.0f} s"
    ),
)
def pretrain_pixelcnn_digits(out: Path, seconds: float = 110.0, seed: int = 0) -> dict[str, float]:
    """``train_pixelcnn_digits`` (the benchmark's run), saved."""
    model, results = train_pixelcnn_digits(seconds=seconds, seed=seed)
    checkpoints.save(model, out, name="pixelcnn_digits", config=PIXELCNN_DIGITS_CONFIG,
                     pixel_range=(0.0, 16.0), metrics=results)  # fmt: skip
    return results


@benchmark(
    "pixelcnn-digits",
    summary="the digits PixelCNN of lecture 06: exact test nats per image (goal <= 80)",
)
def bench_pixelcnn_digits(seconds: float = 110.0, seed: int = 0) -> dict[str, float]:
    """The autoregressive digits benchmark (intro_dgm protocol, 17-level categorical
    pixels): train a PixelCNN for ``seconds``, then print its exact test NLL, the time and
    the parameters, next to the course's other models on the same protocol."""
    _, results = train_pixelcnn_digits(seconds=seconds, seed=seed)
    rows = [
        ("exact test NLL -log p(x) (nats/image)", f"{results['test_nll']:.2f}"),
        ("test bits/dim", f"{results['test_bits_per_dim']:.3f}"),
        ("for comparison: VAE -ELBO / IWAE-1000 / RealNVP bound", "86.89 / 83.93 / 98.22"),
    ]
    print_digits_benchmark("PixelCNN", rows, results)
    return results


# -- lecture 06's widget figures ---------------------------------------------------------


def generation_figure(image: torch.Tensor, probs: torch.Tensor, step: int) -> Figure:
    """A digit ``image`` ``[H, W]`` (levels) sampled in raster order, after ``step`` of its
    ``H*W`` pixels, next to the model's distribution ``probs[step]`` (``probs``
    ``[H*W, levels]``: ``p(x_i | x_<i)`` for every pixel i) for the pixel drawn next."""
    from course_utils.viz import allow_blank, image_axes, integer_ticks, tidy

    h, w = image.shape
    if not isinstance(step, int) or not 0 <= step <= h * w:
        raise ValueError(f"step: expected an int in [0, {h * w}], got {step!r}")
    if probs.shape[0] != h * w:
        raise ValueError(f"probs: expected [{h * w}, levels], got {tuple(probs.shape)}")
    levels = probs.shape[1]
    shown = image.flatten().float().clone()
    shown[step:] = float("nan")  # not drawn yet
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.8), width_ratios=(1, 1.4))
    im = left.imshow(as_numpy(shown.view(h, w)), cmap="gray_r", vmin=0, vmax=levels - 1)
    if step == 0:
        allow_blank(im)  # nothing drawn yet: the title says so
    left.set_facecolor("#f3d9a4")
    left.set_title(f"{step} of {h * w} pixels drawn" + (" (none yet)" if step == 0 else ""))
    image_axes(left)
    if step < h * w:
        i, j = divmod(step, w)
        left.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:red", lw=2.5))
        drawn = int(image.flatten()[step])
        colors = ["tab:red" if k == drawn else "tab:blue" for k in range(levels)]
        right.bar(range(levels), as_numpy(probs[step]), color=colors)
        right.set_title(f"p(x_{step} | x_<{step}) for pixel ({i}, {j}); drawn: {drawn} (red)")
    else:
        right.set_title("all pixels drawn")
    right.set_xlabel("grey level")
    right.set_ylabel("probability")
    right.set_ylim(0, 1)
    integer_ticks(right.xaxis)  # grey levels are integers: no tick at 2.5
    tidy(fig)
    return fig


def completion_figure(original: torch.Tensor, completions: torch.Tensor, rows_given: int) -> Figure:
    """A test digit ``original`` ``[H, W]``, its first ``rows_given`` rows as given, and
    ``completions`` ``[n, H, W]`` sampled for the rest; a red line marks where the given
    part ends."""
    from course_utils.viz import image_axes, tidy

    h, w = original.shape
    if completions.shape[1:] != (h, w) or len(completions) == 0:
        raise ValueError(
            f"completions: expected [n, {h}, {w}] with n > 0, got {tuple(completions.shape)}"
        )
    given = original.float().clone()
    given[rows_given:] = float("nan")
    panels = [("test digit", original.float()), (f"given: {rows_given} rows", given)]
    panels += [(f"completion {k + 1}", c.float()) for k, c in enumerate(completions)]
    fig, axes = plt.subplots(1, len(panels), figsize=(min(1.35 * len(panels), 10), 2.3))
    for ax, (title, img) in zip(axes, panels, strict=True):
        ax.imshow(as_numpy(img), cmap="gray_r", vmin=0, vmax=int(original.max().clamp(min=1)))
        ax.set_facecolor("#f3d9a4")
        ax.axhline(rows_given - 0.5, color="tab:red", lw=1.5)
        ax.set_title(title, fontsize=9)
        image_axes(ax)
    fig.suptitle("The top is given; the PixelCNN samples the rest, pixel by pixel")
    tidy(fig)
    return fig
