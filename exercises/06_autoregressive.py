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
# # Exercises 06 — Autoregressive models and discrete latents
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/exercises/06_autoregressive.ipynb)
#
# Ten functions: the causal mask of a transformer, PixelCNN's masked-convolution mask,
# the exact negative log-likelihood of categorical pixels, sampling with a temperature,
# scaled dot-product self-attention, VQ-VAE's vector quantization and its two extra
# losses, MADE's masks, VQ-VAE's EMA codebook update and top-k filtering. Then your mask
# and your likelihood train a small PixelCNN on the digits.
# For each function: read the definition, replace `# YOUR CODE HERE` /
# `raise NotImplementedError()` with your code, and run the test cell below it. A failing
# test says what it expected, what it got, and the likely mistake.
#
# **Grade yourself** from a terminal in the course folder:
#
# ```
# course grade exercises/06_autoregressive.ipynb
# ```
#
# Conventions (as in lecture 06): images are integer tensors of levels $0 \dots K-1$;
# logits are `[batch, K, ...]`, the class dimension second, as
# `torch.nn.functional.cross_entropy` expects; attention tensors are `[batch, n, d]`; a
# boolean mask is `True` where attention is allowed.

# %%
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data
from course_utils.grading import check, check_close, check_grad, check_score
from course_utils.train import fit

torch.manual_seed(0)

# %% [markdown]
# ## 1. The causal mask (1 point)
#
# An autoregressive model factorizes $p(x) = \prod_i p(x_i \mid x_{<i})$, so the output at
# position $i$ may depend on positions $j \le i$ of its input (the input is the sequence
# shifted by one, so position $i$ holds $x_{i-1}$). In self-attention this is a mask: row
# $i$ (the query) may attend to column $j$ (the key) when $j \le i$. Return a boolean
# `[n, n]` tensor, `True` where attention is allowed.


# %%
def causal_mask(n: int) -> torch.Tensor:
    """Bool ``[n, n]``: True where position ``i`` (row) may attend to ``j`` (column), j <= i."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST causal_mask (1 point)
mask = causal_mask(4)
check(isinstance(mask, torch.Tensor) and mask.dtype == torch.bool, "causal_mask(4) must be a bool tensor",
      hint="a boolean tensor: torch.ones(n, n, dtype=torch.bool), then keep the allowed part")  # fmt: skip
check_close(
    mask.float(), torch.ones(4, 4).tril(), "causal_mask(4) (1 = may attend)",
    hint="row i (the query) may attend to every column j <= i, itself included",
    mistakes={
        "a position may attend to itself: j <= i, not j < i (the input is already shifted by one)": torch.ones(4, 4).tril(-1),
        "row i is the query and column j the key: allowed where j <= i (lower triangle), not j >= i": torch.ones(4, 4).triu(),
    },
)  # fmt: skip

# %% [markdown]
# ## 2. PixelCNN's masked convolution (2 points)
#
# PixelCNN (van den Oord et al. 2016) orders the pixels in raster order (row by row, left
# to right) and keeps the convolution causal by multiplying its kernel by a mask: 1 at
# every position **above the centre row**, and **left of the centre in the centre row**;
# 0 elsewhere. The centre itself is 0 for a **type A** mask (the first layer: the
# prediction for a pixel must not see that pixel) and 1 for a **type B** mask (later
# layers: their centre holds features that already exclude the pixel). Return the float
# `[kernel_size, kernel_size]` mask; `kernel_size` is odd.


# %%
def masked_conv_mask(kernel_size: int, mask_type: str) -> torch.Tensor:
    """PixelCNN's spatial mask, float ``[kernel_size, kernel_size]``: 1 above the centre
    row and left of the centre in the centre row; the centre is 0 for type ``"A"`` (the
    first layer: a pixel must not see itself) and 1 for ``"B"``; 0 elsewhere."""
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected a positive odd int, got {kernel_size!r}")
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type: expected 'A' or 'B', got {mask_type!r}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST masked_conv_mask (2 points)
a5 = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0],
                   [0, 0, 0, 0, 0]], dtype=torch.float32)  # fmt: skip
centre = torch.zeros(5, 5)
centre[2, 2] = 1
right = torch.zeros(5, 5)
right[2, 3:] = 1
below = torch.zeros(5, 5)
below[3:] = 1
check_close(
    masked_conv_mask(5, "A"), a5, "masked_conv_mask(5, 'A')",
    hint="1 above the centre row and left of the centre in the centre row; type A closes the centre",
    mistakes={
        "type A closes the centre: the first layer's output for a pixel must not see the pixel itself": a5 + centre,
        "nothing right of the centre in the centre row: those pixels come later in raster order": a5 + right,
        "the rows below the centre come later in raster order: they must be 0": a5 + below,
        "nothing right of the centre, nor below it: only the pixels before the centre in raster order": a5 + right + below,
    },
)  # fmt: skip
check_close(
    masked_conv_mask(3, "B"), torch.tensor([[1.0, 1, 1], [1, 1, 0], [0, 0, 0]]), "masked_conv_mask(3, 'B')",
    hint="type B opens the centre, and only the centre, on top of type A",
    mistakes={"type B opens the centre (its features already exclude the pixel)": torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 0, 0]])},
)  # fmt: skip

# %% [markdown]
# ## 3. The exact negative log-likelihood (2 points)
#
# With logits $\ell \in \mathbb{R}^{K}$ at each pixel, the model's probability of level
# $x_i$ is $\mathrm{softmax}(\ell)_{x_i}$, and by the chain rule the image's NLL is
# $-\log p(x) = -\sum_i \log \mathrm{softmax}(\ell_i)_{x_i}$ in nats, **summed** over all
# pixels (a per-pixel average is a different number: it is what `bits/dim` normalizes
# afterwards). `logits` is `[batch, K, ...]` and `x` `[batch, ...]`; return one value per
# example, `[batch]`. Compute $\log\mathrm{softmax}$ in one stable step
# (`torch.log_softmax`, or `F.cross_entropy`): `log(softmax(l))` underflows to
# $-\infty$ once a level's probability is below about $10^{-38}$.


# %%
def categorical_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-log p(x)`` in nats, ``[batch]``: independent categoricals with ``logits``
    ``[batch, K, ...]`` over levels ``x`` ``[batch, ...]``, summed over all non-batch dims."""
    if logits.dim() != x.dim() + 1 or logits.shape[:1] + logits.shape[2:] != x.shape:
        raise ValueError(
            f"logits, x: expected logits [batch, K, *dims] and x [batch, *dims], got "
            f"{tuple(logits.shape)} and {tuple(x.shape)}"
        )
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST categorical_nll (2 points)
torch.manual_seed(0)
logits, x = torch.randn(2, 5, 3, 4), torch.randint(0, 5, (2, 3, 4))
per_pixel = -logits.log_softmax(1).gather(1, x[:, None])[:, 0]  # [2, 3, 4]
expected = per_pixel.flatten(1).sum(1)
wrong_dim = -logits.log_softmax(-1).gather(1, x[:, None])[:, 0].flatten(1).sum(1)
check_close(
    categorical_nll(logits, x), expected, "categorical_nll of [2, 5, 3, 4] logits",
    hint="-log_softmax over the class dim (1), taken at x, summed over every pixel: one value per example",
    mistakes={
        "sum over the pixels: the NLL of an image is the sum of its pixels' NLLs, not their mean": per_pixel.flatten(1).mean(1),
        "the softmax runs over the class dim, dim 1 of [batch, K, ...], not the last dim": wrong_dim,
        "one value per example, [batch]: sum over the pixels only, not over the batch": expected.sum(),
    },
)  # fmt: skip
confident = torch.tensor([[[300.0], [0.0], [-300.0]]])  # [1, 3, 1]: level 2 has p = e^-600
check_close(
    categorical_nll(confident, torch.tensor([[2]])), 600.0, "categorical_nll of a level with probability e^-600",
    hint="log(softmax(l)) underflows: use torch.log_softmax (or F.cross_entropy), which computes it in one stable step",
)  # fmt: skip

# %% [markdown]
# ## 4. Sampling with a temperature (2 points)
#
# Dividing the logits by a temperature $T$ before the softmax, $p_T \propto
# \exp(\ell / T)$, sharpens the distribution ($T < 1$) or flattens it ($T > 1$); $T \to 0$
# is the argmax. Draw one sample per row from $\mathrm{softmax}(\ell / T)$ over the last
# dim (`torch.multinomial` wants a 2-D input: flatten the leading dims, then reshape), with
# `temperature = 0` meaning the argmax; return a LongTensor of `logits.shape[:-1]`. Pass
# `generator` on to the sampler.


# %%
def sample_with_temperature(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One draw per row from ``softmax(logits / temperature)`` over the last dim
    (``temperature = 0``: the argmax); LongTensor of ``logits.shape[:-1]``."""
    if temperature < 0:
        raise ValueError(f"temperature: expected >= 0, got {temperature!r}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST sample_with_temperature (2 points)
# Two levels with logits 0 and log 3: p(level 1) = 3^(1/T) / (1 + 3^(1/T)).
two = torch.tensor([0.0, math.log(3.0)]).expand(200_000, 2)
frequency = {
    T: sample_with_temperature(two, T, torch.Generator().manual_seed(0)).float().mean()
    for T in (1.0, 0.5, 2.0)
}
check_close(frequency[1.0], 0.75, "frequency of level 1 at T = 1 (p = 0.75)", atol=0.005,
            hint="sample from softmax(logits) over the last dim, e.g. torch.multinomial(probs, 1)")  # fmt: skip
check_close(
    frequency[0.5], 0.9, "frequency of level 1 at T = 0.5 (p = 9/10)", atol=0.005,
    hint="divide the logits by T before the softmax",
    mistakes={
        "divide the logits by T before the softmax: scaling the probabilities afterwards changes nothing once they are renormalized": 0.75,
        "divide the logits by T, do not multiply them": 3**0.5 / (1 + 3**0.5),
    },
)  # fmt: skip
check_close(frequency[2.0], 3**0.5 / (1 + 3**0.5), "frequency of level 1 at T = 2", atol=0.005,
            hint="divide the logits by T before the softmax", mistakes={"divide the logits by T, do not multiply them": 0.9})  # fmt: skip
grid = torch.randn(3, 4, 7)
draws = sample_with_temperature(grid, 1.0)
check(isinstance(draws, torch.Tensor) and draws.shape == (3, 4) and draws.dtype == torch.long,
      "sample_with_temperature of [3, 4, 7] logits must return a LongTensor [3, 4]",
      hint="flatten to [rows, K] for torch.multinomial, then reshape to logits.shape[:-1]")  # fmt: skip
check_close(sample_with_temperature(grid, 0).float(), grid.argmax(-1).float(), "sample_with_temperature at T = 0",
            hint="temperature = 0 means the argmax (do not divide by zero)")  # fmt: skip
# [batch, 3, 2] logits: each position draws from its own last-dim distribution.
log3, log9 = math.log(3.0), math.log(9.0)
three = torch.tensor([[0.0, log3], [log3, 0.0], [0.0, log9]]).expand(100_000, 3, 2)
check_close(
    sample_with_temperature(three, 1.0, torch.Generator().manual_seed(0)).float().mean(0), torch.tensor([0.75, 0.25, 0.9]),
    "frequency of level 1 at each of 3 positions", atol=0.01,
    hint="the softmax runs over the last dim (dim=-1), the levels; the other dims are positions",
)  # fmt: skip
# The draws come from the generator given, whatever the global random state.
torch.manual_seed(1)
first = sample_with_temperature(grid, 1.0, torch.Generator().manual_seed(5))
torch.manual_seed(2)
again = sample_with_temperature(grid, 1.0, torch.Generator().manual_seed(5))
check_close((again != first).sum(), 0, "draws that differ between two generators seeded alike",
            hint="draw with the generator given: torch.multinomial(probs, 1, generator=generator)")  # fmt: skip

# %% [markdown]
# ## 5. Scaled dot-product self-attention (2 points)
#
# Each query $q_i$ scores every key $k_j$ by $q_i \cdot k_j / \sqrt{d}$ (Vaswani et al.
# 2017; the $\sqrt d$ keeps the scores' variance near 1 when the entries are), the scores
# of the masked keys are set to $-\infty$, a softmax **over the keys** turns each row into
# weights, and the output is the weighted sum of the values:
# $\mathrm{softmax}(q k^\top / \sqrt{d} + M)\,v$. `q, k, v` are `[batch, n, d]`; `mask`
# (bool `[n, n]` or `None`) is `True` where query $i$ may attend to key $j$.


# %%
def self_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``softmax(q kᵀ / √d, masked = -inf) v`` for ``q, k, v`` ``[batch, n, d]``; ``mask``
    (bool, broadcastable to ``[batch, n, n]``) is True where query i may attend to key j."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST self_attention (2 points)
torch.manual_seed(0)
q, k, v = torch.randn(3, 2, 5, 8).unbind(0)
scores = q @ k.transpose(1, 2)
tril = torch.ones(5, 5, dtype=torch.bool).tril()
check_close(
    self_attention(q, k, v), (scores / 8**0.5).softmax(-1) @ v, "self_attention without a mask",
    hint="softmax(q k^T / sqrt(d)) over the keys (the last dim), times v",
    mistakes={
        "scale the scores by 1/sqrt(d) before the softmax": scores.softmax(-1) @ v,
        "the softmax runs over the keys (the last dim of q k^T), not over the queries": (scores / 8**0.5).softmax(1) @ v,
    },
)  # fmt: skip
check_close(
    self_attention(q, k, v, tril), (scores / 8**0.5).masked_fill(~tril, -math.inf).softmax(-1) @ v,
    "self_attention with a causal mask",
    hint="set the scores where the mask is False to -inf before the softmax",
    mistakes={"the mask is ignored: set the scores where it is False to -inf before the softmax": (scores / 8**0.5).softmax(-1) @ v},
)  # fmt: skip
check_close(self_attention(q, k, v, tril)[:, 0], v[:, 0], "under a causal mask, position 0 attends to itself only",
            hint="masked_fill(~mask, -inf): True means allowed")  # fmt: skip

# %% [markdown]
# ## 6. Vector quantization (2 points)
#
# VQ-VAE (van den Oord et al. 2017) replaces each encoder output $z_e \in \mathbb{R}^D$
# by its **nearest** code in a codebook $\{e_1, \dots, e_K\}$ by Euclidean distance,
# $k = \arg\min_j \lVert z_e - e_j \rVert^2$ (not the largest dot product: codes of
# different norms disagree). The argmin has no gradient, so the **straight-through**
# estimator copies the decoder's gradient to the encoder: return
# $z_q = z_e + \mathrm{sg}[e_k - z_e]$ (`.detach()` is $\mathrm{sg}$), whose value is the
# code and whose gradient with respect to $z_e$ is the identity. `z` is `[N, D]`,
# `codebook` `[K, D]`; return `(z_q [N, D], indices [N])`.


# %%
def vector_quantize(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest code by Euclidean distance: ``z`` ``[N, D]``, ``codebook`` ``[K, D]`` ->
    ``(z_q [N, D], indices [N])`` with ``z_q = z + (e_k - z).detach()`` (straight-through:
    the forward value is the code, the gradient reaches ``z``)."""
    if z.dim() != 2 or codebook.dim() != 2 or z.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"z, codebook: expected [N, D] and [K, D], got {tuple(z.shape)} and "
            f"{tuple(codebook.shape)}"
        )
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST vector_quantize (2 points)
codebook = torch.tensor([[0.0, 0.0], [3.0, 3.0], [-1.0, 0.5]])
z = torch.tensor([[0.5, 0.4], [1.4, 1.4], [-0.2, 0.1], [2.0, 2.5]], requires_grad=True)
z_q, indices = vector_quantize(z, codebook)
check_close(
    indices.float(), torch.tensor([0.0, 0.0, 0.0, 1.0]), "vector_quantize: the chosen codes",
    hint="the nearest code: argmin over j of ||z - e_j||^2",
    mistakes={"the nearest code by Euclidean distance, not the largest dot product z . e_j": torch.tensor([1.0, 1.0, 2.0, 1.0])},
)  # fmt: skip
check_close(
    z_q,
    codebook[[0, 0, 0, 1]],
    "vector_quantize: z_q's value",
    hint="z_q's forward value is the chosen code codebook[indices]",
)
if z_q.requires_grad:  # no gradient path at all: check_grad below says why
    (z_q * torch.tensor([1.0, 2.0])).sum().backward()
hint = "the straight-through estimator: z_q = z + (codebook[indices] - z).detach() lets the gradient reach z"
check_grad(z, "z (the encoder output)", hint=hint)
check_close(
    z.grad,
    torch.tensor([[1.0, 2.0]]).expand(4, 2),
    "the gradient reaching z",
    hint=hint + " unchanged",
)

# %% [markdown]
# ## 7. VQ-VAE's codebook and commitment losses (2 points)
#
# The straight-through gradient skips the codebook, so VQ-VAE adds two terms (van den
# Oord et al. 2017, eq. 3), with $e$ the chosen codes `codebook[indices]`:
#
# $$\underbrace{\lVert \mathrm{sg}[z_e] - e \rVert^2}_{\text{codebook: moves the codes}}
# \;+\; \beta\,\underbrace{\lVert z_e - \mathrm{sg}[e] \rVert^2}_{\text{commitment: keeps the encoder near its codes}}$$
#
# Return both, as means over all elements: `(codebook_loss, commitment_loss)`, the
# commitment term already multiplied by `beta`. The stop-gradients decide which tensor
# each term trains: the codebook loss must not move the encoder, nor the commitment loss
# the codes.
#
# **Which tensor is `z_q`.** Here `z_q` is the **raw code** $e$ = `codebook[indices]`,
# whose gradient reaches the codebook. It is *not* the `z_q` that `vector_quantize`
# returns: that straight-through tensor $z_e + \mathrm{sg}[e - z_e]$ has the code's value
# but its gradient goes to $z_e$, never to the codebook. Passed here, it makes the
# codebook loss train the encoder and the codes never move. (The argument keeps the name
# `z_q`, the contract's, so calls by name keep working.) In a training step:
#
# ```python
# z_st, indices = vector_quantize(z_e, codebook)  # the decoder's input
# codebook_loss, commitment_loss = vq_losses(z_e, codebook[indices])  # not z_st
# ```


# %%
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
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST vq_losses (2 points)
def grad_of(loss: torch.Tensor, tensor: torch.Tensor) -> torch.Tensor:
    """d loss / d tensor, zeros where the loss does not reach it."""
    tensor.grad = None
    if loss.requires_grad:
        loss.backward(retain_graph=True)
    return tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)


z_e = torch.tensor([[1.0, 2.0], [0.0, -1.0]], requires_grad=True)
z_q = torch.tensor([[0.0, 2.0], [1.0, 1.0]], requires_grad=True)
codebook_loss, commitment_loss = vq_losses(z_e, z_q, beta=0.5)
check_close(
    torch.stack([codebook_loss, commitment_loss]), torch.tensor([1.5, 0.75]), "vq_losses(beta = 0.5): (codebook, commitment)",
    hint="codebook_loss = mean((z_e - z_q)^2) and commitment_loss = beta * the same mean, each with its stop-gradient",
    mistakes={
        "the two terms are swapped: beta weights the commitment loss, the second one": torch.tensor([0.75, 1.5]),
        "means over all elements, not sums": torch.tensor([6.0, 3.0]),
    },
)  # fmt: skip
check_close(
    grad_of(codebook_loss, z_e), torch.zeros(2, 2), "the codebook loss's gradient on z_e",
    hint="the codebook loss moves the codes only: detach z_e in it, mean((z_e.detach() - z_q)^2), "
    "and detach nothing else there (z_q is the raw codes codebook[indices], not vector_quantize's "
    "straight-through output, whose gradient goes to z_e)",
)  # fmt: skip
check_close(grad_of(codebook_loss, z_q), (z_q - z_e).detach() / 2, "the codebook loss's gradient on z_q",
            hint="the codebook loss must move the codes: do not detach z_q in it")  # fmt: skip
check_close(
    grad_of(commitment_loss, z_q), torch.zeros(2, 2), "the commitment loss's gradient on z_q",
    hint="the commitment loss trains the encoder only: detach z_q in it, beta * mean((z_e - z_q.detach())^2)",
)  # fmt: skip
check_close(grad_of(commitment_loss, z_e), 0.5 * (z_e - z_q).detach() / 2, "the commitment loss's gradient on z_e",
            hint="the commitment loss must reach the encoder: do not detach z_e in it")  # fmt: skip
# A VQ-VAE step as lecture 06 takes it: the decoder gets the straight-through tensor, the
# codebook loss the raw codes, so the codebook loss's gradient reaches the codebook.
codebook = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)
z_e = torch.tensor([[0.5, 0.0], [1.5, 2.5]], requires_grad=True)
codes = codebook[torch.tensor([0, 1])]
codebook_loss, _ = vq_losses(z_e, codes)
check_close(
    grad_of(codebook_loss, codebook), (codes - z_e).detach() / 2, "the codebook loss's gradient on the codebook",
    hint="the codebook loss must reach the codebook through z_q = codebook[indices]: detach z_e, not z_q",
    mistakes={"this is what vector_quantize's straight-through output gives: the codes get no gradient. "
              "z_q in vq_losses is the raw codes codebook[indices]": torch.zeros(2, 2)},
)  # fmt: skip

# %% [markdown]
# ## 8. MADE's masks (2 points)
#
# MADE (Germain et al. 2015) makes a multilayer perceptron autoregressive by multiplying
# its weight matrices by binary masks. Each input $d$ has a degree $m(d)$, its place in
# the order ($1 \dots D$; the identity order is $m(d) = d$), and each hidden unit $k$ a
# degree $m(k) \in \{1, \dots, D-1\}$. Hidden unit $k$ may see input $d$ when its degree
# is **at least** the input's, and output $d$ may see hidden unit $k$ only when its
# degree is **strictly greater**:
#
# $$M^{W}_{k,d} = 1_{m(k) \ge m(d)}, \qquad M^{V}_{d,k} = 1_{m(d) > m(k)} .$$
#
# (The paper writes $d$ for $m(d)$, its inputs being in the identity order.) A path from
# input $d'$ to output $d$ then needs $m(d') \le m(k) < m(d)$: output $d$ never sees
# $x_d$ nor anything after it. Given the input degrees `[D]` and the hidden degrees
# `[H]` (integer tensors), return the two float masks shaped like `nn.Linear`'s weights:
# `(mask_hidden [H, D], mask_out [D, H])`.


# %%
def made_masks(
    input_degrees: torch.Tensor, hidden_degrees: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MADE's masks (Germain et al. 2015) for one hidden layer: ``input_degrees`` ``[D]``
    (the order, a permutation of ``1 … D``) and ``hidden_degrees`` ``[H]`` (in
    ``1 … D-1``) -> ``(mask_hidden [H, D], mask_out [D, H])``, float:
    ``mask_hidden[k, d] = 1[m(k) >= m(d)]``, ``mask_out[d, k] = 1[m(d) > m(k)]``."""
    for name, degrees in (("input_degrees", input_degrees), ("hidden_degrees", hidden_degrees)):
        if not isinstance(degrees, torch.Tensor) or degrees.dim() != 1:
            raise ValueError(f"{name}: expected a 1-D tensor of degrees, got {degrees!r}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST made_masks (2 points)
m_in, m_hidden = torch.tensor([1, 2, 3]), torch.tensor([1, 2, 2, 1])
mask_hidden, mask_out = made_masks(m_in, m_hidden)
check(isinstance(mask_hidden, torch.Tensor) and isinstance(mask_out, torch.Tensor)
      and mask_hidden.dtype == mask_out.dtype == torch.float32, "made_masks must return two float32 masks",
      hint="float masks, as the contract says: (m(k) >= m(d)).float()")  # fmt: skip
sees = torch.tensor([[1.0, 0, 0], [1, 1, 0], [1, 1, 0], [1, 0, 0]])  # [H, D]: m(k) >= d
seen = torch.tensor([[0.0, 0, 0, 0], [1, 0, 0, 1], [1, 1, 1, 1]])  # [D, H]: d > m(k)
check_close(
    mask_hidden, sees, "made_masks([1, 2, 3], [1, 2, 2, 1])[0], the hidden mask [H, D]",
    hint="hidden unit k sees input d when m(k) >= m(d), shaped like nn.Linear's weight [out, in]: [H, D], rows are hidden units",
    mistakes={
        "the hidden mask is m(k) >= m(d), at least: a unit of degree k may see input k itself (strictly greater is the output mask)": (m_hidden[:, None] > m_in).float(),
    },
)  # fmt: skip
check_close(
    mask_out, seen, "made_masks([1, 2, 3], [1, 2, 2, 1])[1], the output mask [D, H]",
    hint="output d sees hidden unit k when m(d) > m(k), strictly, shaped like nn.Linear's weight [out, in]: [D, H], rows are outputs",
    mistakes={
        "the output mask is m(d) > m(k), strictly: with >= output d would see x_d itself through a unit of degree m(d)": (m_in[:, None] >= m_hidden).float(),
    },
)  # fmt: skip
# Another order: input 0 comes third, input 1 first, input 2 second.
order, units = torch.tensor([3, 1, 2]), torch.tensor([2, 1])
loops = torch.tensor([[float(units[k] >= order[d]) for d in range(3)] for k in range(2)])
check_close(made_masks(order, units)[0], loops, "made_masks([3, 1, 2], [2, 1])[0] (another order)",
            hint="compare the degrees m(d) = input_degrees[d], not the inputs' positions d")  # fmt: skip
# Any path from input d' to output d needs m(d') <= m(k) < m(d): the net's Jacobian is
# zero wherever m(d') >= m(d).
g = torch.Generator().manual_seed(0)
order, units = torch.randperm(6, generator=g) + 1, torch.randint(1, 6, (32,), generator=g)
w1, w2 = torch.randn(32, 6, generator=g), torch.randn(6, 32, generator=g)
mask_hidden, mask_out = made_masks(order, units)
jacobian = torch.autograd.functional.jacobian(
    lambda x: (mask_out * w2) @ torch.tanh((mask_hidden * w1) @ x), torch.randn(6, generator=g)
)  # [D, D]: d output d / d input d'
later = order[None, :] >= order[:, None]  # [d, d']: input d' not before output d
check_close(jacobian[later].abs().sum(), 0.0, "|d output d / d input d'| summed where m(d') >= m(d)",
            hint="output d must depend only on inputs before it in the order: m(k) >= m(d') to see an input, m(d) > m(k) to be seen")  # fmt: skip

# %% [markdown]
# ## 9. The EMA codebook update (2 points)
#
# VQ-VAE's appendix (van den Oord et al. 2017) can replace the codebook loss by
# exponential moving averages with decay $\gamma$: with $n_i$ the number of encoder
# outputs assigned to code $i$ in the batch and $z_{i,j}$ those outputs,
#
# $$N_i \leftarrow \gamma N_i + (1 - \gamma)\, n_i, \qquad
#   m_i \leftarrow \gamma m_i + (1 - \gamma) \sum_j z_{i,j}, \qquad
#   e_i = \frac{m_i}{N_i} .$$
#
# The **old** value keeps the weight $\gamma$ (close to 1, e.g. 0.99), the batch
# $1 - \gamma$. A code no output has chosen for a while has $N_i \approx 0$, and $m_i / N_i$
# is $0/0$. Implementations (Sonnet's `VectorQuantizerEMA`, used by Razavi et al. 2019)
# divide by the **Laplace-smoothed** count instead, with $n = \sum_i N_i$ and $K$ codes:
#
# $$\tilde N_i = \frac{N_i + \epsilon}{n + K \epsilon}\, n, \qquad e_i = \frac{m_i}{\tilde N_i} .$$
#
# `z_e` is `[N, D]`, `indices` `[N]` (each output's code), `ema_count` `[K]` and
# `ema_sum` `[K, D]` the averages so far. Return `(codebook [K, D], ema_count [K],
# ema_sum [K, D])`, the new averages **unsmoothed** (the smoothing is only for the
# division), without changing the inputs. (Lecture 06's shipped model restarts dead codes
# instead of smoothing: `VQVAE.update_codebook`.)


# %%
def ema_codebook_update(
    z_e: torch.Tensor,
    indices: torch.Tensor,
    ema_count: torch.Tensor,
    ema_sum: torch.Tensor,
    decay: float = 0.99,
    epsilon: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One EMA step of VQ-VAE's codebook (van den Oord et al. 2017, appendix) with Laplace
    smoothing: ``z_e`` ``[N, D]``, ``indices`` ``[N]``, ``ema_count`` ``[K]``, ``ema_sum``
    ``[K, D]`` -> ``(codebook [K, D], ema_count [K], ema_sum [K, D])``;
    ``N_i <- γ N_i + (1-γ) n_i``, ``m_i <- γ m_i + (1-γ) Σ_j z_ij``,
    ``e_i = m_i / ((N_i + ε) / (n + K ε) · n)`` with ``n = Σ_i N_i`` (γ = ``decay``)."""
    if z_e.dim() != 2 or ema_sum.dim() != 2 or z_e.shape[1] != ema_sum.shape[1]:
        raise ValueError(
            f"z_e, ema_sum: expected [N, D] and [K, D], got {tuple(z_e.shape)} and "
            f"{tuple(ema_sum.shape)}"
        )
    if indices.shape != z_e.shape[:1] or ema_count.shape != ema_sum.shape[:1]:
        raise ValueError(
            f"indices, ema_count: expected [N] = {z_e.shape[0]} and [K] = {ema_sum.shape[0]}, "
            f"got {tuple(indices.shape)} and {tuple(ema_count.shape)}"
        )
    if not 0 <= decay < 1:
        raise ValueError(f"decay: expected a number in [0, 1), got {decay!r}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST ema_codebook_update (2 points)
z_e = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, -4.0]])
indices = torch.tensor([0, 0, 2])  # code 1 is not used
count, total = torch.tensor([4.0, 0.0, 2.0]), torch.tensor([[4.0, 4.0], [0.0, 0.0], [2.0, -2.0]])
count_before, total_before = count.clone(), total.clone()
codebook, new_count, new_total = ema_codebook_update(
    z_e, indices, count, total, decay=0.75, epsilon=0.5
)
counts_right = torch.tensor([0.75 * 4 + 0.25 * 2, 0.0, 0.75 * 2 + 0.25 * 1])  # [3.5, 0, 1.75]
sums_right = torch.tensor(
    [[0.75 * 4 + 0.25 * 4, 0.75 * 4 + 0.25 * 2], [0.0, 0.0], [0.75 * 2, 0.75 * -2 - 0.25 * 4]]
)
n = counts_right.sum()
smoothed = (counts_right + 0.5) / (n + 3 * 0.5) * n  # epsilon = 0.5, large enough to see
check_close(
    new_count, counts_right, "ema_codebook_update(decay = 0.75)'s ema_count",
    hint="N_i <- decay * N_i + (1 - decay) * n_i, n_i the number of outputs assigned to code i",
    mistakes={
        "the old average keeps the weight decay, the batch 1 - decay: N <- decay N + (1 - decay) n, not the other way round": 0.25 * count + 0.75 * torch.tensor([2.0, 0, 1]),
        "return the new counts before smoothing: the smoothed counts are only for the division": smoothed,
    },
)  # fmt: skip
check_close(
    new_total, sums_right, "ema_codebook_update(decay = 0.75)'s ema_sum",
    hint="m_i <- decay * m_i + (1 - decay) * (the sum of the outputs assigned to code i)",
    mistakes={"the old average keeps the weight decay, the batch 1 - decay": 0.25 * total + 0.75 * torch.tensor([[4.0, 2.0], [0, 0], [0, -4]])},
)  # fmt: skip
check_close(
    codebook, sums_right / smoothed[:, None], "ema_codebook_update(decay = 0.75, epsilon = 0.5)'s codebook (code 1 unused, N = 0)",
    hint="divide by the Laplace-smoothed counts N~_i = (N_i + eps) / (n + K eps) * n, n = sum of the N_i "
    "(m_i / N_i is 0/0 for a code no output uses)",
)  # fmt: skip
check_close((count - count_before).abs().sum() + (total - total_before).abs().sum(), 0.0,
            "change to the ema_count and ema_sum passed in", hint="return new tensors; do not update the inputs in place")  # fmt: skip

# %% [markdown]
# ## 10. Top-k filtering (1 point)
#
# Top-k sampling (Fan et al. 2018) draws only from the $k$ most probable levels: keep the
# $k$ largest logits of each row (the last dim), set the others to $-\infty$, and the
# softmax renormalizes over the $k$ kept. Exactly $k$ stay, also when logits tie (which
# of the tied ones is kept is up to you: `torch.topk` picks one). `k = None` keeps all
# (given). Return a tensor shaped like `logits`.


# %%
def keep_top_k(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """``logits`` ``[..., K]`` with all but the ``k`` largest of each row (last dim) set to
    ``-inf``, exactly ``k`` kept when logits tie (top-k sampling, Fan et al. 2018);
    ``logits`` itself when ``k`` is None."""
    if k is None:
        return logits
    if not isinstance(k, int) or not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k: expected an int in [1, {logits.shape[-1]}] or None, got {k!r}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST keep_top_k (1 point)
logits = torch.tensor([[0.5, 2.0, -1.0, 1.0, 3.0], [1.0, 0.0, 2.0, -3.0, 0.5]])
inf = float("-inf")
top2 = torch.tensor([[inf, 2.0, inf, inf, 3.0], [1.0, inf, 2.0, inf, inf]])
check_close(
    keep_top_k(logits, 2), top2, "keep_top_k of two rows, k = 2",
    hint="keep the k largest logits of each row (the last dim) as they are, set the others to -inf",
    mistakes={
        "keep k logits, not k - 1: the k-th largest stays (logits < kth are dropped, not logits <= kth)": torch.tensor([[inf, inf, inf, inf, 3.0], [inf, inf, 2.0, inf, inf]]),
        "drop the others by setting them to -inf, not 0: exp(0) = 1 is a probability": top2.nan_to_num(neginf=0.0),
        "keep the largest logits, not the smallest": torch.tensor([[0.5, inf, -1.0, inf, inf], [inf, 0.0, inf, -3.0, inf]]),
    },
)  # fmt: skip
ties = torch.tensor([[1.0, 2.0, 2.0, 2.0, 0.0]])
kept = keep_top_k(ties, 2)
check_close(torch.isfinite(kept).sum(), 2, "logits kept by keep_top_k([1, 2, 2, 2, 0], k = 2)",
            hint="exactly k logits stay, also when the k-th largest ties with others: keep the indices torch.topk returns")  # fmt: skip
check_close(kept.nan_to_num(neginf=0.0).sum(), 4.0, "the sum of the kept logits of [1, 2, 2, 2, 0], k = 2",
            hint="the kept logits are the k largest: two of the three 2s")  # fmt: skip

# %% [markdown]
# ## 11. Your PixelCNN on the digits (2 points)
#
# sklearn's 8×8 digits have 17 grey levels, $0 \dots 16$: each pixel is a 17-way
# categorical. A small PixelCNN (your type-A mask on a 5×5 first layer, then four
# residual type-B 3×3 layers) trains on the first 1000 digits with your `categorical_nll`
# for 10 epochs, about 10 seconds. Its exact test NLL must be at most **92 nats per
# image** (the solution reaches 87.5); the cell also prints the NLL of the best model that ignores the context
# (an independent categorical per pixel position), for scale. Then it samples 8 digits
# pixel by pixel with your `sample_with_temperature`.


# %%
class MaskedConv2d(nn.Conv2d):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, mask_type: str) -> None:
        super().__init__(c_in, c_out, kernel_size, padding=kernel_size // 2)
        self.register_buffer(
            "mask",
            torch.as_tensor(masked_conv_mask(kernel_size, mask_type)).float(),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class TinyPixelCNN(nn.Module):
    def __init__(self, levels: int = 17, channels: int = 48, blocks: int = 4) -> None:
        super().__init__()
        self.levels = levels
        self.first = MaskedConv2d(levels, channels, 5, "A")
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), MaskedConv2d(channels, channels, 3, "B"), nn.ReLU(), nn.Conv2d(channels, channels, 1))
            for _ in range(blocks)
        )  # fmt: skip
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, levels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 8, 8] levels -> [B, 17, 8, 8] logits
        h = self.first(F.one_hot(x, self.levels).permute(0, 3, 1, 2).float())
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


x_train, x_val, x_test = (x.view(-1, 8, 8).long() for x in data.digits_protocol())  # levels 0..16
torch.manual_seed(0)
pixel_cnn = TinyPixelCNN()
optimizer = torch.optim.Adam(pixel_cnn.parameters(), lr=2e-3)
fit(
    lambda x: categorical_nll(pixel_cnn(x), x).mean(),
    optimizer,
    x_train,
    batch_size=50,
    epochs=10,
    seed=0,
    progress=False,
)
pixel_cnn.eval()
counts = F.one_hot(x_train, 17).sum(0).float() + 0.5  # [8, 8, 17], add-1/2 smoothing
log_p = counts.div(counts.sum(-1, keepdim=True)).log()
independent = -log_p[torch.arange(8)[:, None], torch.arange(8), x_test].flatten(1).sum(1).mean()
with torch.no_grad():
    print(f"test NLL: PixelCNN {categorical_nll(pixel_cnn(x_test), x_test).mean():.2f} nats per image, "
          f"independent pixels {independent:.2f}")  # fmt: skip
    samples = torch.zeros(8, 8, 8, dtype=torch.long)
    for i in range(8):
        for j in range(8):
            samples[:, i, j] = sample_with_temperature(pixel_cnn(samples)[:, :, i, j], 1.0)
print("\n\n".join("\n".join("".join(" .:-=+*#%@"[min(9, int(p) * 10 // 17)] for p in row) for row in image)
                  for image in samples[:3]))  # fmt: skip


# %% tags=["graded"] points=2
# TEST digits_pixelcnn (2 points)
# The grade loads your trained weights into a copy of the network whose masks are the
# course's own, and computes the exact test NLL with the course's likelihood: a mask that
# lets a pixel see itself or later pixels trains a model that cheats, and it fails here.
def trained_nll(state: dict, template: nn.Module = pixel_cnn) -> float:
    from course_utils import autoregressive  # the course's reference (class grading: the judge's)

    net = copy.deepcopy(template)
    net.load_state_dict(state)
    for layer in net.modules():
        if isinstance(layer, MaskedConv2d):
            kind = "A" if layer is net.first else "B"
            layer.mask = autoregressive.masked_conv_mask(layer.kernel_size[0], kind)
    with torch.no_grad():
        return autoregressive.categorical_nll(net(x_test), x_test).mean().item()


check_score(
    pixel_cnn.state_dict(), trained_nll,
    "PixelCNN on the digits: exact test NLL in nats per image (by the course's masks and likelihood)", at_most=92,
    hint="check masked_conv_mask (type A closes the centre; nothing right of it or below) and categorical_nll; "
    "then run the training cell again",
)  # fmt: skip
