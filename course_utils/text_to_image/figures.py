"""Lecture 08's figures: digits with their captions, and a caption's words' attention maps."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)
from course_utils.viz import image_axes, tidy


def captioned_images(images: torch.Tensor, titles: list[str], title: str, ncol: int = 6) -> Figure:
    """``images [N, 1, 28, 28]`` in [0, 1], each above its caption (``titles``, N strings,
    wrapped before "leaning"/"upright"; an empty one shows no title), ``ncol`` per row,
    under one ``title``."""
    if len(images) != len(titles):
        raise ValueError(f"titles: expected {len(images)} captions, got {len(titles)}")
    rows = math.ceil(len(images) / ncol)
    height = 1.85 if any(titles) else 1.5
    fig, axes = plt.subplots(rows, ncol, figsize=(1.55 * ncol, height * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, text in zip(axes.flat, images, titles, strict=False):
        ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        words = text.split()
        cut = next((i for i, w in enumerate(words) if w in ("leaning", "upright")), len(words))
        if words:
            ax.set_title(" ".join(words[:cut]) + "\n" + " ".join(words[cut:]), fontsize=9)
    fig.suptitle(title)
    tidy(fig)
    return fig


def word_maps(image: torch.Tensor, words: list[str], maps: torch.Tensor, title: str) -> Figure:
    """The generated ``image [1, 28, 28]`` and, per word, its attention map ``maps [W, 7,
    7]`` (the share of each latent position's attention that goes to that word)."""
    n = len(words) + 1
    fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 2.3))
    axes[0].imshow(image[0], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    axes[0].set_title("sample", fontsize=9)
    top = float(maps.max())
    for ax, word, m in zip(axes[1:], words, maps, strict=True):
        ax.imshow(m, cmap="magma", vmin=0, vmax=top, interpolation="nearest")
        ax.set_title(f"{word}\n(mean {float(m.mean()):.2f})", fontsize=9)
    for ax in axes:
        image_axes(ax)
    fig.suptitle(title)
    tidy(fig)
    return fig
