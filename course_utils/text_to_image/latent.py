"""The denoiser of latent diffusion at digit scale: on the autoencoder's 7x7 latent grid,
``depth`` rounds of [residual block (lecture 04's, with the time step), self-attention over
the 49 positions, cross-attention from the positions to the caption's word states]. No
down-sampling: the grid is already small. The output convolution starts at zero, so the
untrained model predicts no noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.diffusion import ResBlock, timestep_embedding
from course_utils.text_to_image.functions import cross_attention


class CrossAttention(nn.Module):
    """``h [B, d, H, W]``, word states ``context [B, m, c]``, ``mask [B, m]`` (True: a real
    word) -> ``h`` plus the attention output: queries from the image positions, keys and
    values from the words (``functions.cross_attention``)."""

    def __init__(self, d: int, c: int, heads: int) -> None:
        super().__init__()
        self.heads, self.norm = heads, nn.GroupNorm(8, d)
        self.q, self.o = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.k, self.v = nn.Linear(c, d, bias=False), nn.Linear(c, d, bias=False)

    def forward(self, h: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, d, height, width = h.shape
        x = self.norm(h).flatten(2).transpose(1, 2)  # [B, HW, d]
        y = cross_attention(x, context, self.q.weight.T, self.k.weight.T, self.v.weight.T,
                            self.o.weight.T, self.heads, mask)  # fmt: skip
        return h + y.transpose(1, 2).reshape(b, d, height, width)


class SelfAttention(nn.Module):
    """``h [B, d, H, W]`` -> ``h`` plus multi-head self-attention over the ``H*W`` positions."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads, self.norm = heads, nn.GroupNorm(8, d)
        self.qkv, self.o = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, d, height, width = h.shape
        n = height * width
        x = self.norm(h).flatten(2).transpose(1, 2)
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        return h + self.o(y).transpose(1, 2).reshape(b, d, height, width)


class LatentDenoiser(nn.Module):
    """``eps_model(z_t [B, channels, 7, 7], t [B], context [B, m, c], mask [B, m])`` ->
    predicted noise ``[B, channels, 7, 7]``. ``latent_scale`` (a buffer, saved with the
    weights) is the factor the latents were multiplied by before diffusion."""

    def __init__(self, channels: int = 4, width: int = 64, context: int = 64, heads: int = 4,
                 depth: int = 2) -> None:  # fmt: skip
        super().__init__()
        self.width = width
        self.register_buffer("latent_scale", torch.tensor(1.0))
        self.time = nn.Sequential(nn.Linear(width, 4 * width), nn.SiLU(),
                                  nn.Linear(4 * width, 4 * width))  # fmt: skip
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.res = nn.ModuleList(ResBlock(width, width, 4 * width) for _ in range(depth))
        self.self_attn = nn.ModuleList(SelfAttention(width, heads) for _ in range(depth))
        self.cross_attn = nn.ModuleList(CrossAttention(width, context, heads) for _ in range(depth))
        self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(),
                                 nn.Conv2d(width, channels, 3, padding=1))  # fmt: skip
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(
        self, z: torch.Tensor, t: torch.Tensor, context: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        emb = self.time(timestep_embedding(t, self.width))
        h = self.inp(z)
        for res, attn, cross in zip(self.res, self.self_attn, self.cross_attn, strict=True):
            h = cross(attn(res(h, emb)), context, mask)
        return self.out(h)
