"""CLIP at digit scale (Radford et al. 2021): an image encoder (a small CNN) and a text
encoder (lecture 07's transformer block over caption words, read at ``[EOT]``) trained
with ``clip_loss`` so that an image and its caption land close in one embedding space.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from course_utils.language_models.gpt import Block, GptConfig
from course_utils.text_to_image import captions


class TextEncoder(nn.Module):
    """Caption word ids ``[B, m]`` -> token states ``[B, m, width]`` and the ``[EOT]``
    state ``[B, width]``: causal blocks (CLIP's text encoder is causal too), so with the
    padding on the right no real token ever reads a ``[PAD]``."""

    def __init__(self, width: int = 64, layers: int = 2, heads: int = 4) -> None:
        super().__init__()
        config = GptConfig(vocab_size=len(captions.WORDS), block_size=captions.CAPTION_LEN,
                           n_layer=layers, n_head=heads, n_embd=width)  # fmt: skip
        self.wte = nn.Embedding(config.vocab_size, width)
        self.wpe = nn.Embedding(config.block_size, width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width, bias=False)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x, _ = block(x)
        x = self.ln_f(x)
        eot = (ids == captions.WORDS.index("[EOT]")).int().argmax(-1)  # [B]
        return x, x[torch.arange(len(ids)), eot]


class ImageEncoder(nn.Module):
    """``[B, 1, 28, 28]`` in [0, 1] -> ``[B, width]``: three convolutions (28 -> 14 -> 7)
    and a linear layer."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.GELU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.GELU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, width),
        )  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class Clip(nn.Module):
    """Both encoders, their linear projections to a shared ``dim``-dimensional space, and
    the learned temperature ``logit_scale = exp(t)`` (initialized to 1/0.07, clamped at
    100, as CLIP)."""

    def __init__(self, dim: int = 64, text_width: int = 64, image_width: int = 128) -> None:
        super().__init__()
        self.text = TextEncoder(text_width)
        self.image = ImageEncoder(image_width)
        self.text_proj = nn.Linear(text_width, dim, bias=False)
        self.image_proj = nn.Linear(image_width, dim, bias=False)
        self.t = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def logit_scale(self) -> torch.Tensor:
        return self.t.exp().clamp(max=100.0)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B, m]`` word ids -> ``[B, dim]`` (not normalized)."""
        return self.text_proj(self.text(ids)[1])

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1, 28, 28]`` -> ``[B, dim]`` (not normalized)."""
        return self.image_proj(self.image(images))
