"""Captioned digits: a caption for each MNIST image, made by a program from its label and
two measured attributes, the slant (``functions.slant``, image moments) and the stroke
thickness (``thickness``: twice the ink area over the ink's boundary length, in pixels).

The grammar: ``a [thin|thick] <digit> <leaning left|upright|leaning right>`` ("an" before
"eight" when no thickness word comes first); the medium thickness says nothing. The
thresholds (``SLANT_CUTS``, ``THICKNESS_CUTS``) are the training split's terciles, rounded:
each word describes about a third of the digits. 10 x 3 x 3 = 90 distinct captions.

Captions become word ids with ``WORDS``: ``[SOS] words... [EOT]`` then ``[PAD]`` to
``CAPTION_LEN`` (CLIP's text encoder reads the ``[EOT]`` position).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from course_utils.text_to_image.functions import slant

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SLANTS = ("leaning left", "upright", "leaning right")
THICKNESSES = ("thin", "", "thick")
SLANT_CUTS = (0.0, 0.25)  # slant = tan of the lean: below 0 left, above 0.25 (14°) right
THICKNESS_CUTS = (1.75, 2.15)  # stroke width in pixels
INK = 0.5  # a pixel is ink above this intensity

WORDS = ("[PAD]", "[SOS]", "[EOT]", "a", "an", "thin", "thick", *DIGITS, "leaning", "left",
         "right", "upright")  # fmt: skip
CAPTION_LEN = 7  # [SOS] a thick seven leaning right [EOT]


def thickness(images: torch.Tensor) -> torch.Tensor:
    """``[batch]``: stroke width in pixels of ``images [batch, H, W]``, ``2 * area /
    perimeter`` of the ink (pixels above ``INK``; the perimeter counts ink/background
    edges between 4-neighbours). A w x L rectangle gives wL / (w + L), about w when L >> w."""
    ink = F.pad(images > INK, (1, 1, 1, 1))
    edges = (ink[:, 1:] != ink[:, :-1]).sum((1, 2)) + (ink[:, :, 1:] != ink[:, :, :-1]).sum((1, 2))
    return 2 * ink.sum((1, 2)).float() / edges.clamp(min=1).float()


def attributes(
    images: torch.Tensor, slant_fn: Callable[[torch.Tensor], torch.Tensor] = slant
) -> tuple[torch.Tensor, torch.Tensor]:
    """``images [batch, 1, 28, 28]`` -> (slant class, thickness class), each ``[batch]`` in
    {0, 1, 2}: indices into ``SLANTS`` and ``THICKNESSES``. ``slant_fn``: the slant measure
    (exercise set 08 passes the student's own)."""
    x = images[:, 0]
    return (torch.bucketize(slant_fn(x), torch.tensor(SLANT_CUTS)),
            torch.bucketize(thickness(x), torch.tensor(THICKNESS_CUTS)))  # fmt: skip


def caption(digit: int, slant_class: int, thickness_class: int) -> str:
    """The caption of a digit with these attribute classes: ``caption(7, 2, 2)`` is
    "a thick seven leaning right"."""
    words = " ".join(w for w in (THICKNESSES[thickness_class], DIGITS[digit]) if w)
    article = "an" if words.startswith("eight") else "a"
    return f"{article} {words} {SLANTS[slant_class]}"


def captions(
    images: torch.Tensor,
    labels: torch.Tensor,
    slant_fn: Callable[[torch.Tensor], torch.Tensor] = slant,
) -> list[str]:
    """The caption of each image ``[batch, 1, 28, 28]`` with its digit ``labels [batch]``
    (the slant measured by ``slant_fn``)."""
    s, t = attributes(images, slant_fn)
    return [
        caption(d, a, b) for d, a, b in zip(labels.tolist(), s.tolist(), t.tolist(), strict=True)
    ]


def encode(texts: list[str]) -> torch.Tensor:
    """``[batch, CAPTION_LEN]`` word ids: ``[SOS]``, the words, ``[EOT]``, ``[PAD]``s."""
    index = {w: i for i, w in enumerate(WORDS)}
    rows = []
    for text in texts:
        words = text.split()
        unknown = [w for w in words if w not in index]
        if unknown or len(words) > CAPTION_LEN - 2:
            raise ValueError(
                f"texts: expected at most {CAPTION_LEN - 2} words from WORDS, got {text!r}"
            )
        ids = [index["[SOS]"], *(index[w] for w in words), index["[EOT]"]]
        rows.append(ids + [index["[PAD]"]] * (CAPTION_LEN - len(ids)))
    return torch.tensor(rows)
