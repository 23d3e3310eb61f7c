"""Lecture 07's figures: a text cut into tokens, text samples, the attention maps of every
head of a layer. Text is drawn in a monospaced font, one cell per character, so that
token boundaries and attention rows line up with the characters they belong to.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_utils.viz import MAX_WIDTH_PX, as_numpy, tidy

COLUMNS = 64  # characters per drawn line
CELL_IN = 0.145  # inches per character cell at 10 pt monospace
LINE_IN = 0.3  # inches per drawn line


def _shown(text: str) -> str:
    """Text as drawn: each newline as the ``¶`` sign (a line break would break the grid)."""
    return text.replace("\n", "¶")


def tokens_figure(tokens: list[str], title: str) -> Figure:
    """``tokens`` (the texts of consecutive tokens) in alternating coloured boxes, wrapped
    at ``COLUMNS`` characters (a token never split across lines); newlines drawn as ¶."""
    if not tokens:
        raise ValueError("tokens: expected at least one token, got none")
    rows: list[list[tuple[int, str]]] = [[]]
    col = 0
    for tok in tokens:
        shown = _shown(tok)
        if col + len(shown) > COLUMNS and rows[-1]:
            rows.append([])
            col = 0
        rows[-1].append((col, shown))
        col += len(shown)
    fig, ax = plt.subplots(figsize=(COLUMNS * CELL_IN + 0.4, len(rows) * LINE_IN + 0.7))
    colours = ("#cfe3f7", "#fde2c4")
    k = 0
    for r, row in enumerate(rows):
        y = len(rows) - 1 - r
        for col, shown in row:
            ax.add_patch(Rectangle((col + 0.05, y + 0.1), len(shown) - 0.1, 0.8,
                                   facecolor=colours[k % 2], edgecolor="#555", lw=0.6))  # fmt: skip
            for j, ch in enumerate(shown):
                ax.text(col + j + 0.5, y + 0.5, ch, ha="center", va="center",
                        family="monospace", fontsize=10)  # fmt: skip
            k += 1
    ax.set_xlim(0, COLUMNS)
    ax.set_ylim(0, len(rows))
    ax.axis("off")
    ax.set_title(title, fontsize=11, loc="left")
    tidy(fig)
    return fig


def text_figure(text: str, title: str, columns: int = 88) -> Figure:
    """``text`` in a monospaced panel, each line wrapped at ``columns`` characters."""
    lines = [w for line in text.split("\n") for w in (textwrap.wrap(line, columns) or [""])]
    width = min(columns * 0.1 + 0.4, MAX_WIDTH_PX / 100)
    fig, ax = plt.subplots(figsize=(width, 0.19 * len(lines) + 0.6))
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", family="monospace",
            fontsize=9.5, transform=ax.transAxes)  # fmt: skip
    ax.axis("off")
    ax.set_title(title, fontsize=11, loc="left")
    tidy(fig)
    return fig


def attention_figure(maps: torch.Tensor, text: str, layer: int) -> Figure:
    """The heads of ``layer`` of ``maps [layers, heads, n, n]`` (``attention_maps`` of one
    sequence) over ``text`` (its ``n`` characters): one panel per head, queries down,
    keys across, each labelled with its character (about 24 characters stay legible)."""
    if maps.dim() != 4 or maps.shape[-1] != len(text):
        raise ValueError(
            f"maps: expected [layers, heads, {len(text)}, {len(text)}] for the text's "
            f"characters, got {tuple(maps.shape)}"
        )
    if not 0 <= layer < maps.shape[0]:
        raise ValueError(f"layer: expected an int in [0, {maps.shape[0] - 1}], got {layer!r}")
    heads = maps.shape[1]
    cols = min(heads, 3)
    rows = -(-heads // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(min(3.3 * cols, MAX_WIDTH_PX / 100), 3.3 * rows),
                             squeeze=False)  # fmt: skip
    labels = [_shown(c) if c != " " else "␣" for c in text]
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        ax.imshow(as_numpy(maps[layer, h]), cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(text)), labels, fontsize=7, family="monospace")
        ax.set_yticks(range(len(text)), labels, fontsize=7, family="monospace")
        ax.set_title(f"head {h + 1}", fontsize=10)
        ax.set_xlabel("key (attended to)", fontsize=9)
        ax.set_ylabel("query (predicting the next)", fontsize=9)
    fig.suptitle(f"Attention of layer {layer + 1}'s heads\non {_shown(text)!r}", fontsize=11)
    tidy(fig)
    return fig
