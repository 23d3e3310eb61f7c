"""The reference functions of the 08_text_to_image exercise set (lecture 08).

* ``clip_loss`` (CLIP's symmetric contrastive loss, Radford et al. 2021) and
  ``zero_shot_classify`` (classes from prompts, by cosine similarity).
* ``cross_attention`` (queries from image features, keys and values from text tokens;
  Rombach et al. 2022).
* ``guided_eps`` (classifier-free guidance, Ho & Salimans 2022, in Stable Diffusion's
  convention: scale 1 is the conditional model).
* ``slant`` (a digit's shear from its image moments) and ``latent_scale`` (the factor that
  gives an autoencoder's latents unit variance).

Each is marked ``# Copied from solutions/08_text_to_image.py``: ``course build`` writes
it from the solution (``course build --check`` fails when one drifts).

Conventions (``docs/EXERCISE_API.md``): embeddings are ``[batch, d]``; a text context is
``[batch, m, c]`` with a boolean ``context_mask [batch, m]``, True at real tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)


# Copied from solutions/08_text_to_image.py: clip_loss
def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE, a scalar: ``image_emb``, ``text_emb [batch, d]``
    L2-normalized, ``logits = logit_scale * image @ textᵀ``, pair ``i`` matching pair ``i``;
    the mean of the image->text and text->image cross-entropies."""
    image_emb = F.normalize(image_emb, dim=-1)
    text_emb = F.normalize(text_emb, dim=-1)
    logits = logit_scale * image_emb @ text_emb.T
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


# Copied from solutions/08_text_to_image.py: zero_shot_classify
def zero_shot_classify(image_emb: torch.Tensor, class_text_emb: torch.Tensor) -> torch.Tensor:
    """``[batch]`` LongTensor: for each image embedding ``[batch, d]``, the class whose
    text embedding (``class_text_emb [K, d]``) has the largest cosine similarity."""
    sims = F.normalize(image_emb, dim=-1) @ F.normalize(class_text_emb, dim=-1).T
    return sims.argmax(-1)


# Copied from solutions/08_text_to_image.py: cross_attention
def cross_attention(
    x: torch.Tensor,
    context: torch.Tensor,
    w_q: torch.Tensor,
    w_k: torch.Tensor,
    w_v: torch.Tensor,
    w_out: torch.Tensor,
    n_heads: int,
    context_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[batch, n, d]``: queries ``x @ w_q`` from ``x [batch, n, d]``, keys and values
    ``context @ w_k``, ``context @ w_v`` from ``context [batch, m, c]``, ``n_heads`` heads
    of size ``d / n_heads`` scaled by ``1 / sqrt(d / n_heads)``, keys where
    ``context_mask [batch, m]`` is False never attended to, heads concatenated, ``@ w_out``."""
    b, n, d = x.shape
    m, h = context.shape[1], n_heads
    q = (x @ w_q).view(b, n, h, d // h).transpose(1, 2)  # [b, h, n, d/h]
    k = (context @ w_k).view(b, m, h, d // h).transpose(1, 2)  # [b, h, m, d/h]
    v = (context @ w_v).view(b, m, h, d // h).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d // h)  # [b, h, n, m]
    if context_mask is not None:
        scores = scores.masked_fill(~context_mask[:, None, None, :], float("-inf"))
    out = scores.softmax(-1) @ v  # [b, h, n, d/h]
    return out.transpose(1, 2).reshape(b, n, d) @ w_out


# Copied from solutions/08_text_to_image.py: guided_eps
def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``eps_uncond + scale * (eps_cond - eps_uncond)`` (scale 1
    is the conditional model; lecture 04's ``w`` is ``scale - 1``). With a negative prompt,
    its prediction is ``eps_uncond``."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


# Copied from solutions/08_text_to_image.py: slant
def slant(images: torch.Tensor) -> torch.Tensor:
    """``[batch]``: each digit's shear ``-mu11 / mu02`` from ``images [batch, H, W]``
    (nonnegative weights; ``x`` the column index, growing right, ``y`` the row index,
    growing down; central moments about the weighted centroid). Positive when the top of
    the digit leans right."""
    b, height, width = images.shape
    w = images.reshape(b, -1)
    y, x = torch.meshgrid(
        torch.arange(height, dtype=w.dtype), torch.arange(width, dtype=w.dtype), indexing="ij"
    )
    x, y = x.reshape(-1), y.reshape(-1)
    mass = w.sum(-1, keepdim=True)
    dx = x - (w * x).sum(-1, keepdim=True) / mass
    dy = y - (w * y).sum(-1, keepdim=True) / mass
    return -(w * dx * dy).sum(-1) / (w * dy**2).sum(-1)


# Copied from solutions/08_text_to_image.py: latent_scale
def latent_scale(latents: torch.Tensor) -> float:
    """``1 / latents.std()`` over all elements: the factor that gives an autoencoder's
    latents unit variance before diffusion (Rombach et al. 2022)."""
    return 1.0 / latents.std().item()
