"""Autoregressive models and discrete latents (lecture 06): the 06 reference functions,
``MaskedConv2d``, ``PixelCNN`` and the ``GatedPixelCNN`` (no blind spot)
with their recipes, ``pixel_gradient`` (which inputs reach an output),
``CausalTransformer`` (decoder-only, optionally class-conditional) and
``train_transformer``, ``course bench pixelcnn-digits``, the generation-order and
completion figures.

* The exercise set 06 reference functions: ``causal_mask``, ``masked_conv_mask``,
  ``categorical_nll``, ``sample_with_temperature``, ``self_attention``,
  ``vector_quantize``, ``vq_losses``, ``keep_top_k`` (top-k filtering, which
  ``PixelCNN.sample`` and ``CausalTransformer.sample`` use).
* ``PixelCNN`` (van den Oord et al. 2016) over K-level categorical pixels: a type-A
  masked convolution, then residual type-B blocks; exact log-likelihood in one pass,
  sampling pixel by pixel (``sample``, with temperature and top-k, and completion of a
  given top).
* ``GatedPixelCNN`` (van den Oord et al. 2016b): vertical and horizontal stacks with
  gated activations ``tanh ⊙ σ``, the vertical stack feeding the horizontal one, a
  residual horizontal stack; every earlier pixel reaches each output (``pixel_gradient``
  shows it).
* ``course bench pixelcnn-digits``: the intro_dgm digits protocol (17 levels), exact test
  NLL in nats per image, masked and gated.

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
from course_utils.bench import load_json, machine, print_digits_benchmark, save_json
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


def mixture_logits(out: torch.Tensor, levels: int, mixture: int, free_logits: bool) -> torch.Tensor:
    """A PixelCNN head's output ``out`` ``[B, C, H, W]`` -> logits ``[B, levels, H, W]``.

    ``mixture = 0``: ``out`` are the logits. Otherwise ``out`` holds, per pixel, the
    weights, means and log-scales of ``mixture`` logistics discretized over the ordered
    levels (Salimans et al. 2017, PixelCNN++), then (``free_logits``) ``levels`` free
    logits added to the mixture's log-probabilities."""
    if not mixture:
        return out
    m = mixture
    weights, means, log_scales = out[:, :m], out[:, m : 2 * m], out[:, 2 * m : 3 * m]
    k = torch.arange(levels, device=out.device, dtype=out.dtype).view(1, -1, 1, 1, 1)
    means = (means[:, None] + 0.5) * (levels - 1) / 2  # [B, 1, M, H, W]
    inv_s = torch.exp(-log_scales.clamp(min=-5))[:, None] * 2 / (levels - 1)
    upper = torch.where(k == levels - 1, torch.inf, (k + 0.5 - means) * inv_s)
    lower = torch.where(k == 0, -torch.inf, (k - 0.5 - means) * inv_s)
    probs = (torch.sigmoid(upper) - torch.sigmoid(lower)).clamp(min=1e-12)  # [B, K, M, H, W]
    logits = torch.logsumexp(probs.log() + weights.log_softmax(1)[:, None], dim=2)
    if free_logits:
        logits = logits + out[:, 3 * m :]
    return logits


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

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Levels ``[B, H, W]`` -> the network's input ``[B, levels + 1, H, W]``: the
        one-hot level and the level scaled to [0, 1]."""
        one_hot = F.one_hot(x.long(), self.levels).permute(0, 3, 1, 2).float()
        return torch.cat([one_hot, x[:, None].float() / (self.levels - 1)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.inputs(x))

    def network(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` ``[B, levels + 1, H, W]`` (``inputs(x)``) -> logits ``[B, levels, H,
        W]``; differentiable in ``inputs``, to see which pixels reach an output."""
        if self.training and self.context_dropout > 0:
            keep = torch.rand_like(inputs[:, :1]) >= self.context_dropout
            inputs = inputs * keep
        h = self.first(inputs)
        if self.position is not None:
            h = h + self.position
        for block in self.blocks:
            h = h + block(h)
        return mixture_logits(self.head(h), self.levels, self.mixture, self.free_logits)

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


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` moved down one row (row 0 zeros): row i then holds row i-1."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` moved right one column (column 0 zeros)."""
    return F.pad(x, (1, 0))[..., :-1]


class VerticalConv(nn.Conv2d):
    """The gated PixelCNN's vertical-stack convolution, ``[B, C_in, H, W] -> [B, C_out, H,
    W]``: output row i sees input rows ``i - kernel_size // 2 … i``, every column within
    ``kernel_size // 2`` (a ``(k//2 + 1) x k`` kernel, padded on top and at the sides)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, (kernel_size // 2 + 1, kernel_size))
        self.pad = (kernel_size // 2, kernel_size // 2, kernel_size // 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class HorizontalConv(nn.Conv2d):
    """The gated PixelCNN's horizontal-stack convolution, ``[B, C_in, H, W] -> [B, C_out,
    H, W]``: output (i, j) sees input row i, columns ``j - kernel_size // 2 … j`` (a
    ``1 x (k//2 + 1)`` kernel padded on the left)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, (1, kernel_size // 2 + 1))
        self.pad = (kernel_size // 2, 0, 0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


def gate(h: torch.Tensor) -> torch.Tensor:
    """The gated activation ``tanh(f) ⊙ σ(g)`` of ``h = [f, g]`` split along channels:
    ``[B, 2p, H, W] -> [B, p, H, W]``."""
    f, g = h.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class GatedBlock(nn.Module):
    """One gated PixelCNN layer (van den Oord et al. 2016b, fig. 2), ``(v, h) -> (v', h')``,
    each ``[B, p, H, W]``:

    ``v' = tanh(W_{v,f} * v) ⊙ σ(W_{v,g} * v)`` (vertical stack, no residual);
    ``h' = h + W_1x1 [tanh(W_{h,f} * h + V_f (W_v * v)) ⊙ σ(W_{h,g} * h + V_g (W_v * v))]``,
    where ``V`` is the 1x1 vertical-to-horizontal connection. Dropout before ``W_1x1``."""

    def __init__(self, channels: int, kernel_size: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.vertical = VerticalConv(channels, 2 * channels, kernel_size)
        self.horizontal = HorizontalConv(channels, 2 * channels, kernel_size)
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_pre = self.vertical(v)  # [B, 2p, H, W]; row i saw only rows < i (see GatedPixelCNN)
        h_pre = self.horizontal(h) + self.vertical_to_horizontal(v_pre)
        return gate(v_pre), h + self.out(self.dropout(gate(h_pre)))


class GatedPixelCNN(nn.Module):
    """The gated PixelCNN (van den Oord et al. 2016b) without the blind spot:
    ``levels``-way categorical pixels ``[B, H, W]`` -> logits ``[B, levels, H, W]``.

    Two stacks: the **vertical** one at row i sees every pixel of the rows above (its
    first convolution reads the input shifted down one row, later ones rows ``<= i`` of
    features that only saw rows ``< i``); the **horizontal** one at (i, j) sees row i left
    of j (its first convolution reads the input shifted right one column) and, through the
    vertical-to-horizontal connection, the rows above. Then ``blocks`` ``GatedBlock``s and
    a 1x1 head on the horizontal stack. The input, the learned per-position offset, the
    context dropout and the discretized-logistic ``mixture`` head are ``PixelCNN``'s."""

    def __init__(
        self,
        levels: int = 17,
        channels: int = 64,
        blocks: int = 8,
        kernel_size: int = 3,
        dropout: float = 0.0,
        positional: bool = False,
        context_dropout: float = 0.0,
        mixture: int = 0,
        free_logits: bool = True,
    ) -> None:
        super().__init__()
        self.levels, self.context_dropout = levels, context_dropout
        self.mixture, self.free_logits = mixture, free_logits
        self.first_vertical = VerticalConv(levels + 1, channels, kernel_size)
        self.first_horizontal = HorizontalConv(levels + 1, channels, kernel_size)
        self.position = nn.Parameter(torch.zeros(2, channels, 8, 8)) if positional else None
        self.blocks = nn.ModuleList(
            GatedBlock(channels, kernel_size, dropout) for _ in range(blocks)
        )
        outputs = 3 * mixture + (levels if free_logits or not mixture else 0)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, outputs, 1))

    inputs = PixelCNN.inputs

    def network(self, inputs: torch.Tensor) -> torch.Tensor:
        """``inputs`` ``[B, levels + 1, H, W]`` (``inputs(x)``) -> logits ``[B, levels, H,
        W]``; differentiable in ``inputs``, to see which pixels reach an output."""
        if self.training and self.context_dropout > 0:
            keep = torch.rand_like(inputs[:, :1]) >= self.context_dropout
            inputs = inputs * keep
        v = self.first_vertical(shift_down(inputs))  # row i: rows < i
        h = self.first_horizontal(shift_right(inputs))  # (i, j): row i, columns < j
        if self.position is not None:
            v, h = v + self.position[0], h + self.position[1]
        for block in self.blocks:
            v, h = block(v, h)
        return mixture_logits(self.head(h), self.levels, self.mixture, self.free_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.inputs(x))

    log_prob = PixelCNN.log_prob
    sample = PixelCNN.sample


def pixel_gradient(
    model: PixelCNN | GatedPixelCNN, x: torch.Tensor, row: int, column: int
) -> torch.Tensor:
    """``|∂ Σ_b log p(x_b[row, column] | x_b,<) / ∂ inputs|`` summed over the input
    channels and the images ``x`` ``[B, H, W]``: ``[H, W]``, non-zero exactly at the
    pixels that reach the conditional of pixel ``(row, column)`` (up to an exact
    cancellation, which summing over several images makes unlikely)."""
    h, w = x.shape[1:]
    if not (0 <= row < h and 0 <= column < w):
        raise ValueError(f"row, column: expected a pixel of a {h}x{w} image, got ({row}, {column})")
    inputs = model.inputs(x).requires_grad_(True)
    log_probs = model.network(inputs)[:, :, row, column].log_softmax(1)  # [B, levels]
    picked = log_probs.gather(1, x[:, row, column].long()[:, None]).sum()
    (grad,) = torch.autograd.grad(picked, inputs)
    return grad.abs().sum((0, 1))


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

GATED_PIXELCNN_DIGITS_CONFIG = {
    "levels": 17, "channels": 48, "blocks": 10, "kernel_size": 3, "dropout": 0.2,
    "positional": True, "context_dropout": 0.2, "mixture": 5,
}  # fmt: skip
# Epochs, not seconds, so that a run is the same on a busy machine: the masked recipe's
# shipped run stopped after 35 epochs of its 110 s; the gated one's epochs fit in 2 CPU
# minutes on one thread (README: the benchmark).
PIXELCNN_DIGITS_TRAINING = {
    "masked": {"epochs": 35, "lr": 2e-3, "batch_size": 50},
    "gated": {"epochs": 25, "lr": 4e-3, "batch_size": 50},
}


def digits_levels(device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]:
    """The intro_dgm protocol's images as ``[N, 8, 8]`` integer levels 0..16: train 1000,
    validation 350, test 447."""
    return tuple(x.view(-1, 8, 8).long() for x in data.digits_protocol(device))


def train_pixelcnn_digits(
    seconds: float | None = None,
    seed: int = 0,
    lr: float | None = None,
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    ema_decay: float = 0.99,
    gated: bool = False,
    epochs: int | None = None,
    **config: Any,
) -> tuple[PixelCNN | GatedPixelCNN, dict[str, float]]:
    """Maximum likelihood on the digits (train 1000) for ``seconds`` (wall clock) or
    ``epochs``, the EMA weights with the best validation NLL kept (``epochs``, ``lr``,
    ``batch_size`` None: the model's ``PIXELCNN_DIGITS_TRAINING``, epochs only when
    ``seconds`` is None too); ``gated``: a ``GatedPixelCNN`` of ``GATED_PIXELCNN_DIGITS_CONFIG``,
    else a ``PixelCNN`` of ``PIXELCNN_DIGITS_CONFIG`` (``config`` overrides either).
    Returns the model (eval mode) and its test NLL (nats per image, and bits/dim), the
    wall-clock and CPU time and the parameter count."""
    training = PIXELCNN_DIGITS_TRAINING["gated" if gated else "masked"]
    if seconds is None and epochs is None:
        epochs = training["epochs"]
    lr = training["lr"] if lr is None else lr
    batch_size = training["batch_size"] if batch_size is None else batch_size
    device = get_device()
    x_train, x_val, x_test = digits_levels(device)
    seed_everything(seed)
    if gated:
        model = GatedPixelCNN(**{**GATED_PIXELCNN_DIGITS_CONFIG, **config}).to(device)
    else:
        model = PixelCNN(**{**PIXELCNN_DIGITS_CONFIG, **config}).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def nll(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return -m.log_prob(x).mean()

    cpu_start = time.process_time()
    info = train_keeping_best(
        model, optimizer, lambda x: -model.log_prob(x).mean(),
        lambda averaged: nll(averaged, x_val).item(), x_train, seconds=seconds, epochs=epochs,
        batch_size=batch_size, ema_decay=ema_decay, eval_every=5, seed=seed,
    )  # fmt: skip
    cpu_seconds = time.process_time() - cpu_start
    test_nll = nll(model, x_test).item()
    return model, {
        "test_nll": test_nll,
        "test_bits_per_dim": test_nll / (64 * math.log(2)),
        "parameters": float(sum(p.numel() for p in model.parameters())),
        "best_val_nll": info.pop("best_val"),
        "train_cpu_seconds": cpu_seconds,
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
def pretrain_pixelcnn_digits(out: Path, seed: int = 0) -> dict[str, float]:
    """``train_pixelcnn_digits`` (the benchmark's masked run), saved."""
    model, results = train_pixelcnn_digits(seed=seed)
    checkpoints.save(model, out, name="pixelcnn_digits", config=PIXELCNN_DIGITS_CONFIG,
                     pixel_range=(0.0, 16.0), metrics=results)  # fmt: skip
    return results


@recipe(
    "gated_pixelcnn_digits",
    model="course_utils.autoregressive:GatedPixelCNN",
    summary=(
        "gated PixelCNN (vertical and horizontal stacks, no blind spot) over 17-level "
        "sklearn digits (EMA weights best on validation; lecture 06)"
    ),
    numbers=(
        "exact test NLL {test_nll:.2f} nats/image ({test_bits_per_dim:.3f} bits/dim); "
        "{epochs:.0f} epochs (best {best_epoch:.0f}), {train_cpu_seconds:.0f} CPU s"
    ),
)
def pretrain_gated_pixelcnn_digits(out: Path, seed: int = 0) -> dict[str, float]:
    """``train_pixelcnn_digits(gated=True)`` (the benchmark's gated run), saved."""
    model, results = train_pixelcnn_digits(seed=seed, gated=True)
    checkpoints.save(model, out, name="gated_pixelcnn_digits",
                     config=GATED_PIXELCNN_DIGITS_CONFIG, pixel_range=(0.0, 16.0),
                     metrics=results)  # fmt: skip
    return results


PIXELCNN_BENCH_METHODS = ("masked", "gated")


def format_pixelcnn_bench(rows: list[dict]) -> list[str]:
    """The table of ``bench_pixelcnn_digits`` rows: per model, the exact test NLL (nats per
    image and bits/dim), the parameters, the epochs (best on validation), the wall-clock
    and CPU seconds of training."""
    lines = [
        f"{'model':<18}{'test NLL':>9}{'bits/dim':>10}{'parameters':>12}{'epochs (best)':>15}"
        f"{'train s':>9}{'CPU s':>7}"
    ]
    for r in rows:
        name = f"{r['method']} PixelCNN"
        epochs = f"{r['epochs']:.0f} ({r['best_epoch']:.0f})"
        lines.append(
            f"{name:<18}{r['test_nll']:>9.2f}{r['test_bits_per_dim']:>10.3f}"
            f"{int(r['parameters']):>12,}{epochs:>15}{r['train_seconds']:>9.0f}"
            f"{r['train_cpu_seconds']:>7.0f}"
        )
    return lines


def load_pixelcnn_bench(path: str | None = None) -> dict:
    """The shipped ``course bench pixelcnn-digits`` results
    (``course_utils/weights/pixelcnn_bench.json``): ``{"machine", "rows"}``."""
    return load_json("pixelcnn_bench.json", path)


@benchmark(
    "pixelcnn-digits",
    summary="the digits PixelCNNs of lecture 06, masked and gated: exact test nats per image",
    options=("save", "methods"),
    table=lambda: format_pixelcnn_bench(load_pixelcnn_bench()["rows"]),
)
def bench_pixelcnn_digits(
    seed: int = 0, save: str | None = None, methods: str | None = None
) -> list[dict]:
    """The autoregressive digits benchmark (intro_dgm protocol, 17-level categorical
    pixels): train the masked and the gated PixelCNN of the recipes as
    ``PIXELCNN_DIGITS_TRAINING`` says, one CPU thread, then print their exact test NLL, times and
    parameters, next to the course's other models on the same protocol.

    Args:
        save: write ``{"machine", "rows"}`` there as JSON.
        methods: comma-separated names in ``PIXELCNN_BENCH_METHODS`` (default: all). With
            ``save`` naming an existing file, their rows replace theirs and the others stay.
    """
    names = list(PIXELCNN_BENCH_METHODS) if methods is None else methods.split(",")
    unknown = [name for name in names if name not in PIXELCNN_BENCH_METHODS]
    if unknown:
        raise ValueError(
            f"methods: expected names in {list(PIXELCNN_BENCH_METHODS)}, got {unknown}"
        )
    kept = []  # the rows of the methods not rerun, from the file ``save`` names
    if save and methods is not None and Path(save).exists():
        kept = [r for r in load_pixelcnn_bench(save)["rows"] if r["method"] not in names]
    rows = []
    for name in names:
        _, results = train_pixelcnn_digits(seed=seed, gated=name == "gated")
        rows.append({"method": name, **results})
        print_digits_benchmark(f"{name} PixelCNN", [
            ("exact test NLL -log p(x) (nats/image)", f"{results['test_nll']:.2f}"),
            ("test bits/dim", f"{results['test_bits_per_dim']:.3f}"),
            ("training CPU time (s)", f"{results['train_cpu_seconds']:.1f}"),
        ], results)  # fmt: skip
    vae = checkpoints.shipped_state("vae_digits")[1]["metrics"]
    flow = checkpoints.shipped_state("flow_digits")[1]["metrics"]
    print(f"for comparison, the shipped VAE's -ELBO {vae['test_neg_elbo']:.2f} and IWAE-1000 "
          f"{vae['test_iwae_nll_k1000']:.2f}, RealNVP's bound {flow['test_nll']:.2f}")  # fmt: skip
    rows = sorted(kept + rows, key=lambda r: PIXELCNN_BENCH_METHODS.index(r["method"]))
    print("\n".join(format_pixelcnn_bench(rows)))
    if save:
        save_json({"machine": machine(), "rows": rows}, save)
    return rows


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
