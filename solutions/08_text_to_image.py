# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["colab-setup"]
# Colab setup (written by `course build`). In Google Colab: clone the course, install it
# without touching Colab's torch, numpy and ipywidgets, and import it in this kernel.
# Anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import importlib.metadata
    import os
    import subprocess

    # COURSE_REPO, COURSE_DIR (optional): clone a fork, or a local copy, elsewhere
    repo = os.environ.get("COURSE_REPO", "https://github.com/dgm-course/deep-generative-models")
    course = os.environ.get("COURSE_DIR", "/content/course")
    if not os.path.isdir(course):
        subprocess.run(["git", "clone", "--depth=1", repo, course], check=True)
    keep = []  # pip must keep these exactly as Colab has them
    for name in ("torch", "numpy", "ipywidgets"):
        try:
            keep.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    with open("/tmp/course-keep.txt", "w") as constraints:
        constraints.write("\n".join(keep) + "\n")
    pip = [sys.executable, "-m", "pip", "install", "-q", "-c", "/tmp/course-keep.txt"]
    subprocess.run([*pip, "-e", course], check=True)
    sys.path.insert(0, course)  # this kernel started before the install

# %% [markdown]
# # Exercises 08 — Text-to-image: captions, CLIP, cross-attention, guidance
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/solutions/08_text_to_image.ipynb)
#
# Six functions, the parts of a small Stable Diffusion that are ideas rather than
# plumbing: the slant measure that writes the captions, CLIP's contrastive loss,
# zero-shot classification from prompts, cross-attention from image positions to caption
# words, classifier-free guidance in Stable Diffusion's convention, and the latent scale
# factor. Then your `clip_loss` trains a small CLIP on captioned digits, and the grade
# asks it to name digits it was never told the classes of.
# For each function: read the definition, replace `# YOUR CODE HERE` /
# `raise NotImplementedError()` with your code, and run the test cell below it. A failing
# test says what it expected, what it got, and the likely mistake.
#
# **Grade yourself** from a terminal in the course folder:
#
# ```
# course grade exercises/08_text_to_image.ipynb
# ```
#
# Conventions (as in lecture 08): embeddings are `[batch, d]`; a text context is
# `[batch, m, c]` (word states) with a boolean `context_mask [batch, m]`, `True` at real
# words and `False` at padding. Guidance uses Stable Diffusion's scale $s$: $s = 1$ is the
# plain conditional model, and lecture 04's weight is $w = s - 1$.

# %%
import copy
import math
import time

import torch
import torch.nn.functional as F

from course_utils import data
from course_utils.grading import check, check_close, check_score, check_shape
from course_utils.text_to_image import Clip, captions

torch.manual_seed(0)

# %% [markdown]
# ## 1. A digit's slant from its image moments (2 points)
#
# The captions ("a thick seven leaning right") are written by a program from each
# digit's label and two measures. The slant is the first. Treat the image as a mass
# distribution: pixel intensity $w$ at column $x$ (growing to the right) and row $y$
# (growing **downwards**: pixel indices). With the centroid $\bar x = \sum w x / \sum w$,
# $\bar y = \sum w y / \sum w$, the central moments are
#
# $$\mu_{11} = \sum w\, (x - \bar x)(y - \bar y), \qquad \mu_{02} = \sum w\, (y - \bar y)^2 .$$
#
# The least-squares line $x - \bar x = k\,(y - \bar y)$ through the ink has slope
# $k = \mu_{11} / \mu_{02}$: how far the ink moves right per row **down**. A digit whose
# top leans right moves left as $y$ grows, so $k < 0$: return the slant
# $-\mu_{11} / \mu_{02}$, positive for a digit leaning right (the tangent of its lean).
# `images` is `[batch, H, W]`; return `[batch]`.


# %%
def slant(images: torch.Tensor) -> torch.Tensor:
    """``[batch]``: each digit's shear ``-mu11 / mu02`` from ``images [batch, H, W]``
    (nonnegative weights; ``x`` the column index, growing right, ``y`` the row index,
    growing down; central moments about the weighted centroid). Positive when the top of
    the digit leans right."""
    ### BEGIN SOLUTION
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
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST slant (2 points)
def moments(w):  # one image [H, W] -> (mu11, mu02, mu20, raw m11, raw m02), by loops
    total = sx = sy = 0.0
    for r in range(w.shape[0]):
        for c in range(w.shape[1]):
            total, sx, sy = total + w[r, c], sx + w[r, c] * c, sy + w[r, c] * r
    xbar, ybar = sx / total, sy / total
    m = [0.0] * 5
    for r in range(w.shape[0]):
        for c in range(w.shape[1]):
            m = [m[0] + w[r, c] * (c - xbar) * (r - ybar), m[1] + w[r, c] * (r - ybar) ** 2,
                 m[2] + w[r, c] * (c - xbar) ** 2, m[3] + w[r, c] * c * r, m[4] + w[r, c] * r * r]  # fmt: skip
    return [float(v) for v in m]


torch.manual_seed(0)
images = torch.rand(3, 6, 5) ** 3
m = [moments(w) for w in images]
check_shape(slant(images), (3,), "slant of images [3, 6, 5]", hint="one slant per image")
check_close(
    slant(images), torch.tensor([-a[0] / a[1] for a in m]), "slant of three random nonnegative images [6, 5]",
    hint="slant = -mu11 / mu02 with central moments about the intensity-weighted centroid; x the column, y the row",
    mistakes={
        "the sign: the slant is -mu11 / mu02 (y grows downwards, so a digit leaning right has mu11 < 0)":
            torch.tensor([a[0] / a[1] for a in m]),
        "the wrong central moment: divide by mu02 = sum w (y - ybar)^2 (rows), not mu20 (columns)":
            torch.tensor([-a[0] / a[2] for a in m]),
        "the moments must be central: subtract the weighted centroid (xbar, ybar) first":
            torch.tensor([-a[3] / a[4] for a in m]),
    },
)  # fmt: skip
check_close(slant(3 * images) - slant(images), torch.zeros(3), "slant of the same images three times brighter, minus theirs",
            hint="the centroid divides by the total weight sum(w): a brighter image has the same slant")  # fmt: skip
lean = torch.zeros(1, 8, 8)
for r in range(8):  # a stroke whose top leans right: one column left per row down
    lean[0, r, 7 - r] = 1.0
check(float(slant(lean)[0]) > 0, f"slant of a stroke whose top leans right: expected > 0, got {float(slant(lean)[0]):.3f}",
      hint="the sign: y (the row index) grows downwards, so a digit leaning right has mu11 < 0 and the slant is -mu11 / mu02")  # fmt: skip
check(float(slant(lean.flip(-1))[0]) < 0, f"slant of the stroke mirrored (its top leans left): expected < 0, got {float(slant(lean.flip(-1))[0]):.3f}",
      hint="a digit leaning left has a negative slant: return -mu11 / mu02 itself, with its sign")  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST slant
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
from course_utils.grading import hidden_generator, solution

g = hidden_generator()
h, w = (int(torch.randint(5, 12, (), generator=g)) for _ in range(2))
images = torch.rand(4, h, w, generator=g) ** 2
check_close(
    slant(images), solution.slant(images), f"slant of random images [4, {h}, {w}]", atol=1e-4
)

# %% [markdown]
# ## 2. CLIP's contrastive loss (3 points)
#
# CLIP (Radford et al. 2021) embeds a batch of $N$ images and their $N$ captions into one
# space. Normalize both to unit length, $\hat I_i = I_i / \lVert I_i \rVert$,
# $\hat T_j = T_j / \lVert T_j \rVert$, and score every pair,
# $\text{logits}_{ij} = \lambda\, \hat I_i \cdot \hat T_j$, where $\lambda$ = `logit_scale` is
# the learned **inverse** temperature ($e^t = 1/\tau$ in the paper, initialized to $1/0.07$): it
# **multiplies** the cosine similarities. Image $i$'s caption is text $i$, so the targets
# are the diagonal. The loss is the mean of two cross-entropies: each image picks its
# caption among the $N$ texts (the rows), and each caption picks its image among the $N$
# images (the columns, `logits.T`):
#
# $$\mathcal L = \tfrac12\Big[\tfrac1N \sum_i -\log \frac{e^{\text{logits}_{ii}}}{\sum_j e^{\text{logits}_{ij}}} + \tfrac1N \sum_j -\log \frac{e^{\text{logits}_{jj}}}{\sum_i e^{\text{logits}_{ij}}}\Big].$$


# %%
def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE, a scalar: ``image_emb``, ``text_emb [batch, d]``
    L2-normalized, ``logits = logit_scale * image @ textᵀ``, pair ``i`` matching pair ``i``;
    the mean of the image->text and text->image cross-entropies."""
    ### BEGIN SOLUTION
    image_emb = F.normalize(image_emb, dim=-1)
    text_emb = F.normalize(text_emb, dim=-1)
    logits = logit_scale * image_emb @ text_emb.T
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    ### END SOLUTION


# %% tags=["graded"] points=3
# TEST clip_loss (3 points)
torch.manual_seed(0)
image_emb = (
    torch.randn(6, 5) * torch.tensor([0.2, 1.0, 3.0, 0.5, 2.0, 1.0])[:, None]
)  # norms differ
text_emb = torch.randn(6, 5) * torch.tensor([1.0, 4.0, 0.3, 1.0, 0.7, 2.0])[:, None]
tau, diagonal = torch.tensor(7.0), torch.arange(6)


def info_nce(logits, targets=diagonal):  # -> (image->text, text->image)
    rows = -(logits.log_softmax(1)[torch.arange(6), targets]).mean()
    cols = -(logits.T.log_softmax(1)[torch.arange(6), targets]).mean()
    return rows, cols


unit_i, unit_t = (
    image_emb / image_emb.norm(dim=1, keepdim=True),
    text_emb / text_emb.norm(dim=1, keepdim=True),
)
rows, cols = info_nce(tau * unit_i @ unit_t.T)
loss = clip_loss(image_emb, text_emb, tau)
check_shape(
    loss, (), "clip_loss of a batch of 6", hint="return the mean loss, a 0-dimensional tensor"
)
check_close(
    loss, (rows + cols) / 2, "clip_loss of 6 pairs (embeddings of different norms), logit_scale 7",
    hint="normalize both embeddings, logits = logit_scale * image @ text.T, targets arange(N), "
    "the mean of the cross-entropies of logits and logits.T",
    mistakes={
        "normalize both embeddings to unit length first (F.normalize(..., dim=-1)): CLIP compares cosines":
            sum(info_nce(tau * image_emb @ text_emb.T)) / 2,
        "normalize each embedding over its features (dim=-1), not over the batch":
            sum(info_nce(tau * F.normalize(image_emb, dim=0) @ F.normalize(text_emb, dim=0).T)) / 2,
        "the loss in one direction only: average the image->text (rows) and the text->image (columns) cross-entropies": rows,
        "the loss in one direction only: average the text->image (columns) and the image->text (rows) cross-entropies": cols,
        "the targets are the diagonal: image i's caption is text i, targets = arange(N)":
            sum(info_nce(tau * unit_i @ unit_t.T, torch.zeros(6, dtype=torch.long))) / 2,
        "the targets are the diagonal, arange(N), not reversed":
            sum(info_nce(tau * unit_i @ unit_t.T, diagonal.flip(0))) / 2,
        "logit_scale is an inverse temperature: multiply the cosine similarities by it, do not divide":
            sum(info_nce(unit_i @ unit_t.T / tau)) / 2,
        "the logit scale is missing: logits = logit_scale * image @ text.T": sum(info_nce(unit_i @ unit_t.T)) / 2,
        "the mean of the two directions, not their sum": rows + cols,
    },
)  # fmt: skip
check_close(clip_loss(text_emb, image_emb, tau), (rows + cols) / 2, "clip_loss with images and texts swapped",
            hint="the loss is symmetric: both directions, averaged")  # fmt: skip
check_close(clip_loss(torch.eye(4), 5 * torch.eye(4), 100.0), 0.0, "clip_loss of 4 perfectly matched pairs, logit_scale 100",
            atol=1e-6, hint="matched orthogonal unit vectors: each cross-entropy is log(1 + 3 e^-100), about 0; "
            "use F.cross_entropy or log_softmax (exp(100) overflows float32 in a softmax written by hand)")  # fmt: skip
images, texts = image_emb.clone().requires_grad_(), text_emb.clone().requires_grad_()
loss = clip_loss(images, texts, tau)
check(loss.requires_grad, "clip_loss: no gradient reaches the embeddings",
      hint="the encoders learn through this loss: never detach the embeddings")  # fmt: skip
loss.backward()
reference_images, reference_texts = (
    image_emb.clone().requires_grad_(),
    text_emb.clone().requires_grad_(),
)
unit = lambda e: e / e.norm(dim=1, keepdim=True)  # noqa: E731
sum(info_nce(tau * unit(reference_images) @ unit(reference_texts).T)).div(2).backward()
check_close(
    torch.cat([images.grad, texts.grad]), torch.cat([reference_images.grad, reference_texts.grad]),
    "the gradient of clip_loss with respect to both embeddings",
    hint="the encoders learn through this gradient: never detach the embeddings or compute their norms under no_grad",
)  # fmt: skip
tau_param = torch.tensor(2.0, requires_grad=True)
clip_loss(image_emb, text_emb, tau_param).backward()
check(tau_param.grad is not None and tau_param.grad != 0, "clip_loss: no gradient reaches logit_scale",
      hint="the temperature is learned: compute the loss from logit_scale itself, not from a detached float")  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST clip_loss
g = hidden_generator()
n, d = (int(torch.randint(lo, hi, (), generator=g)) for lo, hi in ((2, 12), (2, 9)))
scales = 0.2 + 3 * torch.rand(2, n, 1, generator=g)
image_emb, text_emb = (
    scales[0] * torch.randn(n, d, generator=g),
    scales[1] * torch.randn(n, d, generator=g),
)
tau = float(1 + 40 * torch.rand((), generator=g))
check_close(clip_loss(image_emb, text_emb, tau), solution.clip_loss(image_emb, text_emb, tau),
            f"clip_loss of {n} random pairs in {d} dimensions, logit_scale {tau:.1f}")  # fmt: skip

# %% [markdown]
# ## 3. Zero-shot classification (1 point)
#
# A trained CLIP classifies without a classifier: embed one prompt per class ("a zero
# upright", "a one upright", ...), and give each image the class whose prompt embedding
# has the **largest cosine similarity** with its own. Cosine, not the dot product: text
# embeddings have different norms, and a long prompt vector would win every image.
# `class_text_emb` is `[K, d]`; return a LongTensor `[batch]` of class indices.


# %%
def zero_shot_classify(image_emb: torch.Tensor, class_text_emb: torch.Tensor) -> torch.Tensor:
    """``[batch]`` LongTensor: for each image embedding ``[batch, d]``, the class whose
    text embedding (``class_text_emb [K, d]``) has the largest cosine similarity."""
    ### BEGIN SOLUTION
    sims = F.normalize(image_emb, dim=-1) @ F.normalize(class_text_emb, dim=-1).T
    return sims.argmax(-1)
    ### END SOLUTION


# %% tags=["graded"] points=1
# TEST zero_shot_classify (1 point)
prompts = torch.tensor([[10.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.5]])  # norms 10, 1, 0.5
images = torch.tensor([[0.5, 1.0, 0.0], [0.0, 0.2, 1.0], [2.0, 0.1, 0.0], [0.3, 0.0, 0.4]])
predicted = zero_shot_classify(images, prompts)
check_shape(
    predicted, (4,), "zero_shot_classify of 4 images, 3 classes", hint="one class index per image"
)
check(predicted.dtype == torch.long, f"zero_shot_classify must return class indices (int64), got {predicted.dtype}",
      hint="return the argmax over the classes, a LongTensor")  # fmt: skip
check_close(
    predicted, torch.tensor([1, 2, 0, 2]), "zero_shot_classify (prompts of norms 10, 1 and 0.5)",
    hint="the class with the largest cosine similarity: normalize both the image and the prompt embeddings",
    mistakes={
        "cosine similarity, not the dot product: normalize the prompt embeddings too (their norms differ)":
            torch.tensor([0, 2, 0, 0]),
    },
)  # fmt: skip
torch.manual_seed(1)
images = torch.randn(12, 4) * torch.linspace(0.1, 5, 12)[:, None]  # image norms differ too
prompts = torch.randn(5, 4) * torch.tensor([0.3, 1.0, 4.0, 0.6, 2.0])[:, None]
cosines = (images / images.norm(dim=1, keepdim=True)) @ (
    prompts / prompts.norm(dim=1, keepdim=True)
).T
check_close(zero_shot_classify(images, prompts), cosines.argmax(1), "zero_shot_classify of 12 random images, 5 random prompts",
            hint="normalize each embedding over its own features (dim=-1), then take the argmax of the cosines over the classes")  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST zero_shot_classify
g = hidden_generator()
image_emb = torch.randn(20, 6, generator=g)
class_text_emb = torch.randn(5, 6, generator=g) * (0.1 + 5 * torch.rand(5, 1, generator=g))
check_close(zero_shot_classify(image_emb, class_text_emb), solution.zero_shot_classify(image_emb, class_text_emb),
            "zero_shot_classify of 20 random images, 5 prompts of random norms")  # fmt: skip

# %% [markdown]
# ## 4. Cross-attention (3 points)
#
# How the denoiser reads the caption (Rombach et al. 2022, section 3.3). The image
# positions ask, the words answer: **queries from the image features** `x [batch, n, d]`,
# **keys and values from the text** `context [batch, m, c]`:
# $Q = x W_Q$, $K = \text{context}\, W_K$, $V = \text{context}\, W_V$ (`w_q [d, d]`,
# `w_k`, `w_v [c, d]`). As in lecture 07's multi-head attention, cut $Q, K, V$ along the
# features into `n_heads` heads of size $d_h = d / h$, scale each head's scores by
# $1/\sqrt{d_h}$, softmax over the **words**, concatenate the heads in order and project
# by `w_out [d, d]`. Captions are padded to one length: where `context_mask [batch, m]`
# is `False` the word is padding, and no position may attend to it (its score is
# $-\infty$ before the softmax). `context_mask=None` means every word is real.
# (`F.scaled_dot_product_attention` with a boolean `attn_mask` is allowed.)


# %%
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
    ### BEGIN SOLUTION
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
    ### END SOLUTION


# %% tags=["graded"] points=3
# TEST cross_attention (3 points)
torch.manual_seed(0)
x, context = torch.randn(2, 4, 8), torch.randn(2, 3, 8)  # 4 image positions, 3 words, d = c = 8
w_q, w_k, w_v, w_out = (torch.randn(8, 8) / 8**0.5 for _ in range(4))
real = torch.tensor([[True, True, False], [True, False, True]])  # False: padding


def reference(x, context, scale=0.5, mask=real, h=2, w_k=w_k, w_v=w_v):  # by loops over batch, head
    out = torch.zeros(len(x), x.shape[1], 8)
    for b in range(len(x)):
        q, k, v = x[b] @ w_q, context[b] @ w_k, context[b] @ w_v
        for j in range(h):
            f = slice(8 // h * j, 8 // h * (j + 1))
            scores = q[:, f] @ k[:, f].T * scale
            if mask is not None:
                scores[:, ~mask[b]] = -math.inf
            out[b, :, f] = scores.softmax(-1) @ v[:, f]
    return out @ w_out


unmasked = reference(x, context, mask=None)
check_shape(cross_attention(x, context, w_q, w_k, w_v, w_out, 2), (2, 4, 8), "cross_attention of x [2, 4, 8], context [2, 3, 8]",
            hint="one output per image position: [batch, n, d]")  # fmt: skip
check_close(
    cross_attention(x, context, w_q, w_k, w_v, w_out, 2), unmasked, "cross_attention, 2 heads of 4, no padding",
    hint="Q = x @ w_q, K = context @ w_k, V = context @ w_v; 2 heads of 4 features scaled by 1/sqrt(4); "
    "softmax over the words; heads concatenated, then @ w_out",
    mistakes={
        "keys and values come from the text: K = context @ w_k, V = context @ w_v (queries from the image x)":
            reference(x, x, mask=None),
        "scale each head's scores by 1/sqrt(d / n_heads), the size of the vectors it dots, not 1/sqrt(d)":
            reference(x, context, scale=8**-0.5, mask=None),
        "the projection is missing: the concatenated heads go through @ w_out": unmasked @ torch.linalg.inv(w_out),
    },
)  # fmt: skip
check_close(
    cross_attention(x, context, w_q, w_k, w_v, w_out, 2, real), reference(x, context),
    "cross_attention, 2 heads of 4, with padding (context_mask False)",
    hint="set the scores of the keys where context_mask is False to -inf before the softmax",
    mistakes={
        "the padding words are not masked: set the scores of keys where context_mask is False to -inf": unmasked,
        "context_mask is True at real words: mask the keys where it is False, not where it is True":
            reference(x, context, mask=~real),
    },
)  # fmt: skip
check_close(
    cross_attention(x, context[:, :, :6], w_q, w_k[:6], w_v[:6], w_out, 4),
    reference(x, context[:, :, :6], scale=0.5**0.5, mask=None, h=4, w_k=w_k[:6], w_v=w_v[:6]),
    "cross_attention with word states of 6 features (c = 6, d = 8), 4 heads of 2",
    hint="w_k and w_v are [c, d]: they take the text's c features to the image's d",
)  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST cross_attention
g = hidden_generator()
h, d_h, n, m, c = (
    int(torch.randint(lo, hi, (), generator=g))
    for lo, hi in ((1, 5), (1, 5), (1, 8), (2, 7), (2, 9))
)
d = h * d_h
x, context = torch.randn(3, n, d, generator=g), torch.randn(3, m, c, generator=g)
w_q, w_k, w_v, w_out = (
    torch.randn(*shape, generator=g) for shape in ((d, d), (c, d), (c, d), (d, d))
)
context_mask = torch.rand(3, m, generator=g) < 0.7
context_mask[:, 0] = True
check_close(
    cross_attention(x, context, w_q, w_k, w_v, w_out, h, context_mask),
    solution.cross_attention(x, context, w_q, w_k, w_v, w_out, h, context_mask),
    f"cross_attention, {h} heads of {d_h}, {n} positions, {m} words of {c} features, random padding", atol=1e-4,
)  # fmt: skip

# %% [markdown]
# ## 5. Classifier-free guidance with text (1 point)
#
# The denoiser is trained with 10% of its captions replaced by the empty one, so one
# network predicts both $\epsilon_\theta(z_t, c)$ and $\epsilon_\theta(z_t, \varnothing)$.
# Guidance extrapolates from the unconditional prediction through the conditional one,
# with Stable Diffusion's **scale** $s$:
#
# $$\tilde\epsilon = \epsilon_\theta(z_t, \varnothing) + s\,\big(\epsilon_\theta(z_t, c) - \epsilon_\theta(z_t, \varnothing)\big).$$
#
# $s = 0$ ignores the text, $s = 1$ is the plain conditional model, $s > 1$ pushes
# towards the prompt. Lecture 04 wrote the same thing with $w = s - 1$:
# $(1 + w)\,\epsilon_\theta(z_t, c) - w\,\epsilon_\theta(z_t, \varnothing)$. A **negative
# prompt** takes the place of the empty caption: its prediction is passed as `eps_uncond`.


# %%
def guided_eps(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``eps_uncond + scale * (eps_cond - eps_uncond)`` (scale 1
    is the conditional model; lecture 04's ``w`` is ``scale - 1``). With a negative prompt,
    its prediction is ``eps_uncond``."""
    ### BEGIN SOLUTION
    return eps_uncond + scale * (eps_cond - eps_uncond)
    ### END SOLUTION


# %% tags=["graded"] points=1
# TEST guided_eps (1 point)
torch.manual_seed(0)
eps_c, eps_u = torch.randn(2, 4, 7, 7), torch.randn(2, 4, 7, 7)
check_close(
    guided_eps(eps_c, eps_u, 3.0), eps_u + 3 * (eps_c - eps_u), "guided_eps at scale 3",
    hint="eps_uncond + scale * (eps_cond - eps_uncond)",
    mistakes={
        "the conditional and unconditional predictions are swapped: eps_uncond + s * (eps_cond - eps_uncond)":
            eps_c + 3 * (eps_u - eps_c),
        "this is lecture 04's formula with w = s: Stable Diffusion's scale s is w + 1, "
        "so eps_uncond + s * (eps_cond - eps_uncond) = (1 + w) eps_cond - w eps_uncond with w = s - 1":
            eps_c + 3 * (eps_c - eps_u),
    },
)  # fmt: skip
check_close(guided_eps(eps_c, eps_u, 1.0), eps_c, "guided_eps at scale 1",
            hint="scale s = 1 is the plain conditional model: eps_uncond + 1 * (eps_cond - eps_uncond) = eps_cond")  # fmt: skip
check_close(guided_eps(eps_c, eps_u, 0.0), eps_u, "guided_eps at scale 0",
            hint="scale 0 ignores the text: the unconditional prediction")  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST guided_eps
g = hidden_generator()
eps_c, eps_u = torch.randn(3, 4, 7, 7, generator=g), torch.randn(3, 4, 7, 7, generator=g)
s = float(0.5 + 7 * torch.rand((), generator=g))
check_close(
    guided_eps(eps_c, eps_u, s),
    solution.guided_eps(eps_c, eps_u, s),
    f"guided_eps at scale {s:.2f}",
)

# %% [markdown]
# ## 6. The latent scale factor (1 point)
#
# Latent diffusion (Rombach et al. 2022) runs the forward process $z_t = \sqrt{\bar\alpha_t}
# z_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon$ on the autoencoder's latents, and the schedule
# was designed for data of unit variance: on latents of standard deviation 5, the
# signal-to-noise ratio at every step is 25 times the schedule's (the noise takes over
# only late in the process); on latents of 0.2 it is 25 times smaller (drowned early). So the latents are multiplied by one number before diffusion, and divided by it
# before decoding: the factor that gives them **unit standard deviation**, one over their
# standard deviation over all elements (Stable Diffusion's 0.18215 is this number for its
# autoencoder). Return it as a Python float.


# %%
def latent_scale(latents: torch.Tensor) -> float:
    """``1 / latents.std()`` over all elements: the factor that gives an autoencoder's
    latents unit variance before diffusion (Rombach et al. 2022)."""
    ### BEGIN SOLUTION
    return 1.0 / latents.std().item()
    ### END SOLUTION


# %% tags=["graded"] points=1
# TEST latent_scale (1 point)
torch.manual_seed(0)
latents = 0.5 + 4.0 * torch.randn(500, 4, 7, 7) * torch.tensor([0.5, 1.0, 1.2, 1.5])[:, None, None]
factor = latent_scale(latents)
check(isinstance(factor, float), f"latent_scale must return a Python float, got {type(factor).__name__}",
      hint="return 1 / latents.std().item()")  # fmt: skip
check_close(
    factor, 1 / latents.std().item(), f"latent_scale of latents with standard deviation {latents.std():.2f}",
    hint="the factor that makes the latents' standard deviation 1: one over their standard deviation",
    mistakes={
        "the scale is inverted: multiply the latents by 1 / std, not by std":
            latents.std().item(),
        "one over the standard deviation, not over the variance": 1 / latents.var().item(),
        "one standard deviation over all elements, not per channel": 1 / latents.std(dim=(0, 2, 3)).mean().item(),
    },
)  # fmt: skip
check_close((latents * factor).std(), 1.0, "the standard deviation of the scaled latents",
            hint="latents * latent_scale(latents) must have standard deviation 1")  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST latent_scale
g = hidden_generator()
spread = float(0.05 + 6 * torch.rand((), generator=g))
latents = spread * torch.randn(50, 3, 5, 5, generator=g) + float(torch.randn((), generator=g))
check_close(latent_scale(latents), solution.latent_scale(latents), f"latent_scale of latents with std {spread:.2f}",
            rtol=1e-3)  # fmt: skip

# %% [markdown]
# ## 7. Your CLIP names digits it was never told the classes of (2 points)
#
# The 4,000 training digits of the course's MNIST subset, each with its caption written
# by the program of lecture 08 with **your `slant`** (binned) and the stroke thickness:
# "a thick seven leaning right". A small CLIP (the course's `Clip`: three
# convolutions for the images, two transformer blocks for the captions, 64-dimensional
# embeddings, a learned logit scale starting at $1/0.07$) trains with **your
# `clip_loss`** for 12 epochs (AdamW, a cosine learning rate; about a minute on one CPU
# thread). No digit label is ever a training target: the model only learns which caption
# goes with which image. Then it classifies the 1,000 test digits **zero-shot**, from ten
# prompts alone ("a zero upright", ..., "a nine upright") with your `zero_shot_classify`.
# The grade asks for a zero-shot accuracy of at least **70%** (chance is 10%).


# %%
x_train, y_train = data.mnist("train")
x_test, y_test = data.mnist("test")
ids_train = captions.encode(captions.captions(x_train, y_train, slant_fn=slant))  # your slant
prompts = captions.encode([captions.caption(d, 1, 1) for d in range(10)])
print(
    "three training captions:",
    *captions.captions(x_train[:3], y_train[:3], slant_fn=slant),
    sep="\n  ",
)

torch.manual_seed(0)
clip, epochs, batch, lr = Clip(), 12, 128, 2e-3
optimizer = torch.optim.AdamW(clip.parameters(), lr=lr, weight_decay=0.1)
steps = epochs * (len(x_train) // batch)
schedule = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps))
)
shuffle = torch.Generator().manual_seed(0)
start_time = time.perf_counter()
for epoch in range(epochs):
    order = torch.randperm(len(x_train), generator=shuffle)
    for i in range(0, len(x_train) - batch + 1, batch):
        j = order[i : i + batch]
        loss = clip_loss(
            clip.encode_image(x_train[j]), clip.encode_text(ids_train[j]), clip.logit_scale()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    print(
        f"epoch {epoch + 1:2d}  loss {loss.item():.3f}  logit scale {clip.logit_scale().item():.1f}"
    )
clip.eval()
with torch.no_grad():
    predicted = zero_shot_classify(clip.encode_image(x_test), clip.encode_text(prompts))
print(f"trained in {time.perf_counter() - start_time:.0f} s; zero-shot accuracy on the test digits: "
      f"{(predicted == y_test).float().mean():.1%}")  # fmt: skip


# %% tags=["graded"] points=2
# TEST clip_zero_shot (2 points)
# The grade loads your trained weights into a copy of the CLIP and classifies with the
# course's own zero_shot_classify.
def zero_shot_accuracy(state: dict, template: Clip = clip) -> float:
    from course_utils.text_to_image import zero_shot_classify  # the course's reference

    model = copy.deepcopy(template)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        guess = zero_shot_classify(model.encode_image(x_test), model.encode_text(prompts))
    return (guess == y_test).float().mean().item()


check_score(
    clip.state_dict(), zero_shot_accuracy, "CLIP: zero-shot digit accuracy on the test split (from ten prompts)",
    at_least=0.70,
    hint="check clip_loss (normalized embeddings, logit_scale multiplying, both directions, diagonal targets); "
    "then run the training cell again",
)  # fmt: skip
