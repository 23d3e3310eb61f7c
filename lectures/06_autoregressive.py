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
# # Lecture 06 — Autoregressive models and discrete latents
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/lectures/06_autoregressive.ipynb)
#
# Every model so far paid for its flexibility somewhere: the VAE optimizes a bound, the
# GAN has no density, a flow must be invertible, a diffusion model samples in many steps.
# An **autoregressive model** pays in sampling time only: it factorizes the density by
# the chain rule of probability, so its log-likelihood is **exact** and computed in one
# network pass, with no restriction on the network except one — each output may look only
# at the inputs *before* it. Language models, PixelCNN and WaveNet are this model; VQ-VAE
# turns images into short sequences of discrete tokens so that an autoregressive prior
# (VQ-VAE-2, MaskGIT's predecessors) can model them; DALL·E does the same with tokens from
# a discrete VAE.
#
# This lecture:
#
# 1. the chain rule as a model; MADE's masks, checked by the model's Jacobian;
# 2. PixelCNN: masked convolutions of type A and B, the receptive field and its blind
#    spot; exact test NLL on the digits, sampling pixel by pixel; widget: the generation
#    order; the gated PixelCNN, whose two stacks remove the blind spot;
# 3. causal self-attention: queries, keys, values, the causal mask, positions; a tiny
#    transformer over pixels, against the PixelCNN;
# 4. sampling: temperature and top-k, likelihood against diversity; widgets: temperature
#    and top-k, completion of a half digit;
# 5. VQ-VAE: vector quantization, the straight-through estimator, the codebook and
#    commitment losses and the EMA update, dead codes; MNIST as 7x7 tokens and a
#    transformer prior over them; widget: the codebook;
# 6. hierarchical VAEs, diffusion as one, and posterior collapse.
#
# The models are shipped checkpoints (`course pretrain pixelcnn_digits`,
# `course pretrain gated_pixelcnn_digits` and `course pretrain vqvae` retrain them); the
# lecture trains only the tiny transformer of section 3.
#
# **Notation.** $x = (x_1, \dots, x_D)$ in a fixed order, $x_{<i} = (x_1, \dots, x_{i-1})$;
# pixels are integer grey levels $0, \dots, K - 1$ ($K = 17$ on the 8x8 digits). The
# transformer's $Q, K, V$ follow Vaswani et al. (2017); where $K$ could mean both, the
# number of levels is spelled out.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_utils import autoregressive, checkpoints, data, metrics, viz, vqvae, widgets
from course_utils.autoregressive import CausalTransformer, MaskedConv2d

torch.manual_seed(0)
x_train, x_val, x_test = autoregressive.digits_levels()  # [N, 8, 8] levels 0..16
LEVELS = int(x_train.max()) + 1
assert LEVELS == 17 and x_train.shape[1:] == (8, 8)  # the K = 17 levels of the notation
print(f"digits: train {len(x_train)}, validation {len(x_val)}, test {len(x_test)}; "
      f"{LEVELS} grey levels")  # fmt: skip

# %% [markdown]
# ## 1. The chain rule as a model
#
# Any joint distribution factorizes, in any order of the variables, as
#
# $$p(x) = \prod_{i=1}^{D} p(x_i \mid x_{<i}), \qquad
#   \log p(x) = \sum_{i=1}^{D} \log p(x_i \mid x_{<i}).$$
#
# An autoregressive model parameterizes each conditional with a network and keeps the
# product exact. Three consequences follow, and the rest of the lecture is about them:
#
# - **Exact likelihood.** Training is maximum likelihood, $-\log p(x)$ is a sum of
#   cross-entropies, and the test NLL is a number, not a bound (lecture 01's ELBO) or an
#   estimate.
# - **Sequential sampling.** $x_1 \sim p(x_1)$, then $x_2 \sim p(x_2 \mid x_1)$, ...: $D$
#   steps, one network pass each. Evaluating is parallel; sampling is not.
# - **The order is a choice.** Raster order for images is a convention; every order gives
#   the same family in principle but not the same model in practice.
#
# With one shared network we must make sure output $i$ sees only $x_{<i}$. For a
# multilayer perceptron, **MADE** (Germain et al. 2015) multiplies each weight matrix by
# a binary mask. Give input $d$ the degree $m(d) = d$ and each hidden unit a degree
# $m(k) \in \{1, \dots, D - 1\}$: hidden unit $k$ may see input $d$ when $m(k) \ge d$,
# and output $d$ may see hidden unit $k$ when $d > m(k)$ (strictly). Any path from input
# $d'$ to output $d$ then has $d' \le m(k) < d$, so the Jacobian $\partial \hat x / \partial
# x$ is **strictly lower triangular**: output $d$ does not depend on $x_d$ or later inputs.

# %%
D, H = 6, 24
g = torch.Generator().manual_seed(0)
m_in = torch.arange(1, D + 1)  # input degrees m(d) = d
m_hidden = torch.randint(1, D, (H,), generator=g)  # hidden degrees in 1 .. D-1
M1 = (m_hidden[:, None] >= m_in[None, :]).float()  # [H, D]: unit k sees input d iff m(k) >= d
M2 = (m_in[:, None] > m_hidden[None, :]).float()  # [D, H]: output d sees unit k iff d > m(k)
W1, W2 = torch.randn(H, D, generator=g), torch.randn(D, H, generator=g)


def made(x: torch.Tensor) -> torch.Tensor:
    """A one-hidden-layer MADE: x [D] -> the D conditionals' parameters [D]."""
    return (M2 * W2) @ torch.tanh((M1 * W1) @ x)


J = torch.autograd.functional.jacobian(made, torch.randn(D, generator=g))  # [D, D]
print("Jacobian strictly lower triangular:", bool(torch.all(J.triu() == 0)))
print(
    "entries below the diagonal that are non-zero:",
    int((J.tril(-1) != 0).sum()),
    "of",
    D * (D - 1) // 2,
)

fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for ax, (matrix, title, xlabel, ylabel) in zip(axes, [
    (M1, "mask M1: hidden k sees input d", "input d", "hidden unit k"),
    (M2, "mask M2: output d sees hidden k", "hidden unit k", "output d"),
    ((J != 0).float(), "d output / d input is non-zero", "input d", "output d"),
], strict=True):  # fmt: skip
    ax.imshow(matrix, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
fig.tight_layout()

# %% [markdown]
# A unit of degree $D$ would be seen by no output, and an input of degree $D$ is never
# used: $x_D$ is predicted, never a predictor. MADE samples new degrees (and so new
# masks, new orders) during training to ensemble orders. MAF and IAF use the same masks
# as flow layers (lecture 03, section "Autoregressive flows (MAF/IAF)").
#
# ## 2. PixelCNN
#
# For images, van den Oord et al. (2016) mask **convolutions** instead: in raster order,
# pixel $(i, j)$ may see the rows above and the pixels to its left. A $k \times k$ kernel
# is zeroed below its centre row and right of its centre. The **first** layer must not
# see the pixel it predicts (**type A**: centre zeroed); later layers may see their own
# position (**type B**: centre kept), because there it already holds only information
# about earlier pixels.

# %%
fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2))
for ax, kind in zip(axes, "AB", strict=True):
    ax.imshow(autoregressive.masked_conv_mask(5, kind), cmap="Greys", vmin=0, vmax=1.4)
    ax.set_title(f"5x5 mask, type {kind}")
    ax.set_xlabel("kernel column")
    ax.set_ylabel("kernel row")
fig.tight_layout()

# %% [markdown]
# **The receptive field and its blind spot.** Stack one type-A and several type-B 3x3
# layers and ask which inputs reach the output at the centre pixel: the gradient of that
# output with respect to the input image, with all weights set to one so that nothing
# cancels. Two different things keep an earlier pixel out of the field:
#
# - **depth**: each layer adds one pixel of reach (a 3x3 kernel), so a pixel $a$ rows up
#   or $b$ columns away needs at least $\max(a, |b|)$ layers; more layers fix this;
# - **the blind spot**: a type-B kernel reaches one row up and one column right at most,
#   so a pixel $a$ rows up and $b > a$ columns to the right is never reached, however deep
#   the stack.
#
# The cell counts the two apart on a 15x15 grid: the earlier pixels (raster order), the
# blind spot predicted by $b > a$, and what a stack deep enough for depth not to matter
# (as many layers as the grid is wide) reaches — exactly the earlier pixels outside the blind spot.


# %%
def receptive_field(layers: int, size: int = 15) -> torch.Tensor:
    """Which input pixels reach the centre output of a type-A + (layers-1) type-B stack."""
    stack = [MaskedConv2d(1, 1, 3, "A")] + [MaskedConv2d(1, 1, 3, "B") for _ in range(layers - 1)]
    image = torch.zeros(1, 1, size, size, requires_grad=True)
    h = image
    for conv in stack:
        torch.nn.init.ones_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
        h = conv(h)
    h[0, 0, size // 2, size // 2].backward()
    return (image.grad[0, 0] != 0).float()


size = 15
centre = size // 2
row, column = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
earlier = row * size + column < centre * size + centre  # before the centre, raster order
blind = earlier & (row < centre) & (column - centre > centre - row)  # b > a: never reached
assert torch.equal(receptive_field(size).bool(), earlier & ~blind)  # depth no longer limits
fig, axes = plt.subplots(1, 3, figsize=(10, 3.5))
for ax, layers in zip(axes, (1, 3, 6), strict=True):
    field = receptive_field(layers).bool()
    assert not (field & ~earlier).any() and not (field & blind).any()
    too_far = earlier & ~blind & ~field  # reached by a deeper stack
    print(f"{layers} layer(s): {int(field.sum()):3d} of the {int(earlier.sum())} earlier pixels "
          f"seen; {int(too_far.sum()):3d} out of reach (depth); {int(blind.sum())} never "
          "reached (the blind spot)")  # fmt: skip
    shown = field.float()
    shown[centre, centre] = 0.5  # the pixel being predicted
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    ax.set_title(f"{layers} layer(s): {int(field.sum())} pixels seen")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
fig.suptitle("Inputs reaching the centre pixel (light square); blank above-right: the blind spot")
fig.tight_layout()

# %% [markdown]
# ### The shipped PixelCNN on the digits
#
# Pixels are **categorical** over the 17 grey levels: the network outputs 17 logits per
# pixel and $-\log p(x) = \sum_{i} \text{CE}(\text{logits}_i, x_i)$, `categorical_nll`
# of exercise set 06 (question 3). The shipped model
# (`course_utils.autoregressive.PixelCNN`) is a type-A 3x3 layer and 12 residual type-B
# blocks of 64 channels, with three additions that matter on a training split this small (chosen on the validation split, see the README's
# benchmark): dropout; a learned per-position offset, since a digit's edges are almost
# always blank; and an output head that mixes 5 discretized logistics over the ordered
# levels (Salimans et al. 2017, PixelCNN++) plus free logits, so that the likelihood of a
# level also informs its neighbours. Trained on the same protocol as lecture 01's VAE and
# lecture 03's flow, its exact test NLL is the lowest of the course so far:

# %%
pixelcnn = checkpoints.load_pretrained("pixelcnn_digits")
config = pixelcnn.meta["config"]  # the architecture the text describes
assert [config[k] for k in ("first_kernel", "blocks", "channels", "mixture")] == [3, 12, 64, 5]
with torch.no_grad():
    test_nll = -pixelcnn.log_prob(x_test).mean().item()  # one pass over every test image
print(f"one network pass scored all {len(x_test)} test images")
vae_metrics = checkpoints.shipped_state("vae_digits")[1]["metrics"]
flow_metrics = checkpoints.shipped_state("flow_digits")[1]["metrics"]
rows = [
    ("PixelCNN, exact -log p(x)", test_nll),
    ("VAE (lecture 01), IWAE-1000 estimate", vae_metrics["test_iwae_nll_k1000"]),
    ("VAE (lecture 01), -ELBO", vae_metrics["test_neg_elbo"]),
    ("RealNVP (lecture 03), dequantized bound", flow_metrics["test_nll"]),
]
for name, nll in rows:
    print(f"{name:<40} {nll:7.2f} nats/image  {metrics.nats_to_bits_per_dim(nll, 64):.3f} bits/dim")
assert test_nll < min(nll for _, nll in rows[1:])  # the text's "lowest of the course"

# %% [markdown]
# One network pass scored every test image. Sampling needs one pass per pixel, 64 here:

# %%
t0 = time.perf_counter()
samples = pixelcnn.sample(32, generator=torch.Generator().manual_seed(1))
pixelcnn_seconds = time.perf_counter() - t0
print(f"32 samples, {x_test[0].numel()} network passes: {pixelcnn_seconds:.2f} s")
viz.show_images(samples, "PixelCNN samples (temperature 1)", nrow=16)
plt.show()

# %% [markdown]
# ### Widget: the generation order
#
# One network pass on a finished sample gives **every** conditional at once: the logits
# at pixel $i$ depend only on $x_{<i}$, exactly as they did when pixel $i$ was drawn. The
# slider replays the sampling of the first digit above: the pixels drawn so far (sand:
# not drawn yet), the next pixel in red, and the model's $p(x_i \mid x_{<i})$ over the 17
# levels. Early in a row of background the model is sure; on a stroke it hesitates.

# %%
digit = samples[0]
with torch.no_grad():
    conditionals = torch.softmax(pixelcnn(digit[None]), 1)[0].flatten(1).T  # [64, 17]

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda step: autoregressive.generation_figure(digit, conditionals, step), step=(0, 64, 1)
)

# %% [markdown]
# ### Gated PixelCNN: two stacks, no blind spot
#
# van den Oord et al. (2016b, *Conditional Image Generation with PixelCNN Decoders*)
# remove the blind spot by splitting each layer into two stacks of feature maps, each of
# $p$ channels, that see different parts of the past of pixel $(i, j)$:
#
# - the **vertical stack** $v$ sees **every pixel of the rows above**, left and right of
#   $j$, and nothing of row $i$: a $k \times k$ kernel cut to its top $\lfloor k/2 \rfloor
#   + 1$ rows (`VerticalConv`), whose first layer reads the image shifted down one row;
# - the **horizontal stack** $h$ sees **row $i$ left of $j$**: a $1 \times (\lfloor k/2
#   \rfloor + 1)$ kernel (`HorizontalConv`), whose first layer reads the image shifted
#   right one column;
# - the vertical stack feeds the horizontal one at the same position (a 1x1 convolution),
#   never the other way: the horizontal stack has seen row $i$, and the vertical stack
#   spreads to the right, so the other way would leak pixels right of $j$.
#
# No kernel is cut diagonally, so no triangle of pixels falls between the two reaches.
# Each layer uses the paper's **gated activation** (its eq. 2) in place of a ReLU,
# $y = \tanh(W_{k,f} * x) \odot \sigma(W_{k,g} * x)$, with $*$ a convolution, $\odot$
# the element-wise product and $k$ the layer: the sigmoid is a multiplicative gate, as in
# an LSTM. With the vertical pre-activations $a_k = W^{v}_{k} * v_k$ (the $2p$ channels
# of $W^{v}_{k,f}$ and $W^{v}_{k,g}$), `GatedBlock` computes (the paper's fig. 2)
#
# $$v_{k+1} = \tanh(a_{k,f}) \odot \sigma(a_{k,g}), \qquad
#   h_{k+1} = h_k + W^{1\times1}_k \big[\tanh(W^{h}_{k,f} * h_k + V_{k,f}\, a_k) \odot
#   \sigma(W^{h}_{k,g} * h_k + V_{k,g}\, a_k)\big],$$
#
# $V_k$ the 1x1 vertical-to-horizontal connection and the **residual** on the horizontal
# stack only; the output head reads $h$. Two departures from the paper, both as in the
# UvA deep-learning tutorial 12: the paper's vertical stack sees the current row too and
# shifts its output down one row before feeding $h$, whereas ours sees only the rows
# above from its first layer on (the first layer's shift), so no shift is needed at the
# connection; and the paper's class-conditional terms $V^\top \mathbf{h}$ are left out
# (the model is unconditional). The input, the learned per-position offset, the context
# dropout and the mixture head are the masked PixelCNN's, so the two differ only in
# their layers.
#
# **The receptive field, checked.** Take the shipped models (`course pretrain
# gated_pixelcnn_digits` retrains the gated one) and differentiate the log-likelihood of
# one pixel's conditional, summed over a few test digits, with respect to the input
# image: an input pixel reaches the output exactly where the gradient is non-zero. The
# masked PixelCNN has depth to spare on 8x8 images, so the earlier pixels it misses are
# its blind spot ($b > a$, as counted above); the gated one misses none, and neither
# model sees its own pixel or a later one.

# %%
gated = checkpoints.load_pretrained("gated_pixelcnn_digits")
i, j = 5, 2  # the pixel whose conditional we differentiate
rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
before = rows * 8 + cols < i * 8 + j  # the earlier pixels, raster order
blind_spot = before & (rows < i) & (cols - j > i - rows)  # a = i - row up, b = col - j > a
fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
for ax, (name, model) in zip(axes, [("masked PixelCNN", pixelcnn), ("gated PixelCNN", gated)],
                             strict=True):  # fmt: skip
    reached = autoregressive.pixel_gradient(model, x_test[:16], i, j) != 0  # [8, 8]
    assert not reached[~before].any(), f"{name}: its own pixel or a later one reaches it"
    missed = before & ~reached
    print(f"{name:<16}: {int((before & reached).sum())} of the {int(before.sum())} earlier "
          f"pixels reach pixel ({i}, {j}); never reached: {int(missed.sum())}")  # fmt: skip
    expected = blind_spot if model is pixelcnn else torch.zeros_like(missed)
    assert torch.equal(missed, expected), name  # masked: the blind spot; gated: nothing
    shown = reached.float()
    shown[missed] = 0.3  # earlier, but never reached
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1)
    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:red", lw=2.5))
    ax.set_title(f"{name}: {int(missed.sum())} earlier pixels never reached", fontsize=10)
    ax.set_xticks(range(8))
    ax.set_yticks(range(8))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
fig.suptitle(f"Inputs with a non-zero gradient at pixel ({i}, {j}) (red): dark blue; "
             "earlier but never reached: pale")  # fmt: skip
fig.tight_layout()
plt.show()

# %% [markdown]
# Trained on the same digits, levels and split as the masked PixelCNN, with the same
# protocol (the EMA weights best on validation), it is scored on the same test images,
# and its exact NLL is lower (the cell asserts it; the README's benchmark has both
# models' training times):

# %%
with torch.no_grad():
    gated_nll = -gated.log_prob(x_test).mean().item()
assert gated_nll < test_nll
for name, model, nll in [
    ("masked PixelCNN", pixelcnn, test_nll),
    ("gated PixelCNN", gated, gated_nll),
]:
    trained = model.meta["metrics"]
    cpu = trained.get("train_cpu_seconds")  # older checkpoints kept only the wall clock
    spent = f"{cpu:.0f} CPU s" if cpu else f"{trained['train_seconds']:.0f} s"
    print(f"{name:<16} exact test NLL {nll:6.2f} nats/image; {int(trained['parameters']):,} "
          f"parameters, {trained['epochs']:.0f} epochs in {spent} of training")  # fmt: skip
viz.show_images(gated.sample(32, generator=torch.Generator().manual_seed(1)),
                "Gated PixelCNN samples (temperature 1)", nrow=16)  # fmt: skip
plt.show()

# %% [markdown]
# ## 3. Causal self-attention
#
# A convolution sees a fixed neighbourhood; **self-attention** lets every position read
# every earlier one, with weights computed from the data. Each position $t$ emits a
# query $q_t$, a key $k_t$ and a value $v_t$ (linear maps of its features, of dimension
# $d$); position $t$ outputs the values averaged with weights
#
# $$\text{Attention}(Q, K, V) = \text{softmax}\!\left(\frac{Q K^\top}{\sqrt d} + M\right)V,
# \qquad M_{ts} = \begin{cases} 0 & s \le t \\ -\infty & s > t, \end{cases}$$
#
# the softmax over the **keys** $s$ (each row of weights sums to one). The $1/\sqrt d$
# keeps the scores' variance near one when $q, k$ have unit-variance entries, so the
# softmax does not saturate; the **causal mask** $M$ removes the future, which is what
# makes the model autoregressive. `autoregressive.self_attention` (exercise set 06,
# question 5) and PyTorch's
# fused `F.scaled_dot_product_attention` agree:

# %%
q, k, v = torch.randn(3, 2, 10, 16).unbind(0)  # [batch 2, n 10, d 16] each
ours = autoregressive.self_attention(q, k, v, autoregressive.causal_mask(10))
fused = F.scaled_dot_product_attention(q, k, v, is_causal=True)
print("max |ours - PyTorch|:", f"{(ours - fused).abs().max():.1e}")

# %% [markdown]
# **Positions.** Attention on its own is permutation-equivariant: shuffle the inputs (and
# drop the mask) and the outputs shuffle the same way — it does not know where anything
# is. A transformer therefore adds a **positional embedding** to each input (learned
# here; sinusoids in Vaswani et al.).

# %%
perm = torch.randperm(10)
shuffled = autoregressive.self_attention(q[:, perm], k[:, perm], v[:, perm])
print("unmasked attention is permutation-equivariant:",
      torch.allclose(shuffled, autoregressive.self_attention(q, k, v)[:, perm], atol=1e-6))  # fmt: skip

# %% [markdown]
# ### A tiny transformer over pixels
#
# `CausalTransformer` is a decoder-only transformer (pre-norm blocks: multi-head causal
# attention, then an MLP). Its input is the sequence shifted right behind a start token,
# so position $t$ predicts $x_t$ from $x_{<t}$. Trained here on the digits' 64-pixel
# sequences (the cell prints its size, epochs and training time):

# %%
torch.manual_seed(0)
tiny = CausalTransformer(vocab=17, length=64, d=64, layers=2, heads=4, dropout=0.1)
info = autoregressive.train_transformer(tiny, x_train.flatten(1), epochs=30, lr=3e-3, batch_size=50)
with torch.no_grad():
    tiny_nll = -tiny.log_prob(x_test.flatten(1)).mean().item()
t0 = time.perf_counter()
tiny_samples = tiny.sample(32, generator=torch.Generator().manual_seed(1))
tiny_seconds = time.perf_counter() - t0
print(
    f"transformer: {len(tiny.blocks)} blocks of {tiny.blocks[0].heads} heads, "
    f"{sum(p.numel() for p in tiny.parameters()):,} parameters, {info['epochs']} epochs in "
    f"{info['train_seconds']:.0f} s, test NLL {tiny_nll:.2f} nats; "
    f"32 samples in {tiny_seconds:.2f} s"
)
print(f"PixelCNN:    {sum(p.numel() for p in pixelcnn.parameters()):,} parameters, "
      f"test NLL {test_nll:.2f} nats; 32 samples in {pixelcnn_seconds:.2f} s")  # fmt: skip
viz.show_images(tiny_samples.view(-1, 8, 8), "Tiny transformer samples (temperature 1)", nrow=16)
plt.show()

# %% [markdown]
# The two differ in what each output sees and in what sampling costs:
#
# | | receptive field | cost of one pass | a sample |
# |---|---|---|---|
# | PixelCNN | grows by one pixel per layer, up and left; blind spot | $O(D)$, local | $D$ full passes |
# | causal transformer | all of $x_{<t}$ from the first layer | $O(D^2)$ attention | $D$ passes (a cache of keys and values makes each $O(D)$) |
#
# On a thousand-odd small images the convolution's built-in locality wins; at scale, with data
# enough to learn locality, attention's global context does — hence image transformers
# and the token priors of section 5.
#
# ## 4. Sampling: temperature and top-k
#
# Sampling draws each $x_i$ from the model's conditional. Two knobs trade diversity for
# fidelity, applied to the logits $\ell$ before the softmax:
#
# - **temperature** $\tau$: $p_\tau(x_i = k) \propto \exp(\ell_k / \tau)$; $\tau < 1$
#   sharpens towards the mode (at $\tau \to 0$: greedy argmax), $\tau > 1$ flattens;
# - **top-k**: keep the $k$ largest logits, set the rest to $-\infty$, renormalize.
#
# Neither samples the model any more: lower temperatures give samples of higher
# likelihood under the model but less variety. The table below shows the first half: the
# samples' NLL under the model falls as $\tau$ drops, and top-3 lowers it at every
# temperature. The mean pixel distance between samples hardly moves, so it is too crude a
# measure to see the second half; the widget shows it (more and more of the low-temperature
# samples are the same heavy 1). Likelihood and sample quality are different criteria
# (Theis et al. 2016): a model can be excellent at one and poor at the other.

# %%
settings = [(tau, top) for tau in (0.6, 0.8, 1.0, 1.3) for top in (None, 3)]
by_setting = {}
for tau, top in settings:
    gen = torch.Generator().manual_seed(2)
    by_setting[tau, top] = pixelcnn.sample(12, temperature=tau, top_k=top, generator=gen)
sample_nll = {}
for (tau, top), imgs in by_setting.items():
    with torch.no_grad():
        nll = sample_nll[tau, top] = -pixelcnn.log_prob(imgs).mean().item()
    spread = torch.pdist(imgs.flatten(1).float()).mean().item()
    name = "all 17" if top is None else top
    print(f"temperature {tau:3.1f}, top-k {name!s:>6}: model NLL of the samples {nll:6.1f} nats, "
          f"mean distance between samples {spread:5.1f}")  # fmt: skip
temperatures = sorted({tau for tau, _ in settings})
for top in (None, 3):  # the text's claims: the NLL falls as tau drops; top-3 lowers it
    nlls = [sample_nll[tau, top] for tau in temperatures]
    assert nlls == sorted(nlls), f"top-k {top}: the samples' NLL does not fall with tau"
assert all(sample_nll[tau, 3] < sample_nll[tau, None] for tau in temperatures)

# %% [markdown]
# ### Widget: temperature and top-k
#
# Twelve samples per setting, from the same random numbers. At 0.6 the strokes thicken
# and many samples become the same heavy 1; at 1.3 grey speckle creeps in; top-3 cuts the
# speckle at every temperature.

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda temperature, top_k: viz.show_images(
        by_setting[temperature, top_k],
        f"PixelCNN samples, temperature {temperature}, top-k: {top_k or 'all 17 levels'}", nrow=12,
    ),
    temperature=[0.6, 0.8, 1.0, 1.3],
    top_k=[("all 17 levels", None), ("3", 3)],
)  # fmt: skip

# %% [markdown]
# ### Widget: completion
#
# Conditioning on the pixels we know is free in an autoregressive model when they come
# first in the order: fix them, then sample the rest as usual. Here the first rows of a
# test digit are given (`PixelCNN.sample(..., given=...)`, with $-1$ where unknown) and
# the model completes it five times. With two rows given it often changes the digit; with
# six it rarely does.

# %%
originals = x_test[:6]
completions = {}
for rows_given in (2, 4, 6):
    given = originals.repeat_interleave(5, 0).clone()  # five completions per digit
    given[:, rows_given:] = -1
    drawn = pixelcnn.sample(len(given), given=given, generator=torch.Generator().manual_seed(3))
    completions[rows_given] = drawn.view(6, 5, 8, 8)

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda test_digit, rows_given: autoregressive.completion_figure(
        originals[test_digit], completions[rows_given][test_digit], rows_given
    ),
    test_digit=(0, 5, 1),
    rows_given=[2, 4, 6],
)

# %% [markdown]
# ## 5. Discrete latents: VQ-VAE
#
# An autoregressive model over the 784 pixels of MNIST takes 784 passes per sample and
# spends its capacity on pixel noise. **VQ-VAE** (van den Oord et al. 2017) first learns a
# *discrete* code: an encoder maps $x$ to a grid of vectors $z_e(x)$, and each vector is
# replaced by its nearest neighbour in a learned **codebook** $\{e_1, \dots, e_{K}\}$:
#
# $$z_q = e_{k^*}, \qquad k^* = \arg\min_j \lVert z_e - e_j \rVert^2 .$$
#
# The decoder reconstructs $x$ from $z_q$. Then, **second stage**, an autoregressive prior
# learns the distribution of the code indices — a 7x7 grid of tokens here instead of
# 28x28 pixels (the shapes are printed below). VQ-VAE-2 (Razavi et al. 2019) does this
# with a hierarchy of grids and PixelCNN priors; MaskGIT
# (Chang et al. 2022) with a bidirectional transformer that fills in masked tokens in a few
# parallel steps; latent diffusion (Rombach et al. 2022) keeps the autoencoder and swaps
# the prior for diffusion. DALL·E (Ramesh et al. 2021) has the same two stages, a
# transformer over text and image tokens, but its image tokens come from a **discrete
# VAE** trained with the Gumbel-softmax relaxation (Jang et al. 2017; Maddison et al.
# 2017) of the categorical latent, not from vector quantization with a straight-through
# gradient.
#
# **Gradients through the argmin.** The argmin has no gradient. The **straight-through
# estimator** copies the decoder's gradient to the encoder as if quantization were the
# identity: $z_q = z_e + \text{sg}[e_{k^*} - z_e]$, whose value is $e_{k^*}$ and whose
# Jacobian with respect to $z_e$ is $I$ ($\text{sg}$ is the stop-gradient, `.detach()`).
# That gradient skips the codebook, so two terms are added (eq. 3 of the paper):
#
# $$\mathcal{L} = -\log p(x \mid z_q) + \lVert \text{sg}[z_e] - e \rVert^2 +
#   \beta \lVert z_e - \text{sg}[e] \rVert^2 .$$
#
# The **codebook loss** moves each used code toward the encoder outputs assigned to it;
# the **commitment loss** ($\beta = 0.25$) keeps the encoder from drifting away from its
# codes. The paper's appendix replaces the codebook loss with an **exponential moving
# average** (decay $\gamma$): with $n_j$ the vectors assigned to code $j$ in a batch,
#
# $$N_j \leftarrow \gamma N_j + (1 - \gamma)\, n_j, \qquad
#   m_j \leftarrow \gamma m_j + (1 - \gamma) \sum_{i: k^*_i = j} z_{e,i}, \qquad
#   e_j = m_j / N_j ,$$
#
# a running k-means that converges faster; the shipped model uses it
# (`VQVAE.update_codebook`). A code that no encoder output is near is never updated and
# never used: a **dead code**. The shipped model restarts any code whose average count
# fell below one vector per batch on a random encoder output, and initializes the
# codebook from the first batch.
#
# **Usage.** With $p_j$ the share of tokens using code $j$, the **perplexity**
# $\exp(-\sum_j p_j \log p_j)$ counts the codes in effective use: $K$ when all are used
# equally, 1 when one is.

# %%
vq = checkpoints.load_pretrained("vqvae_mnist")
prior = checkpoints.load_pretrained("vq_prior_mnist")
x_mnist, y_mnist = data.mnist("test")
tokens = vq.encode(x_mnist)  # [1000, 7, 7]
assert x_mnist.shape[2:] == (28, 28) and tokens.shape[1:] == (7, 7)  # the text's grids
reconstructions = vq.decode(tokens)
usage = vqvae.codebook_usage(tokens, vq.codes)
print(
    f"test images {tuple(x_mnist.shape[1:])} -> tokens {tuple(tokens.shape[1:])} of {vq.codes} codes: "
    f"{x_mnist[0].numel() * 8 // (tokens[0].numel() * int(math.log2(vq.codes)))}x fewer "
    "bits than 8-bit pixels"
)
print(f"reconstruction MSE {(reconstructions - x_mnist).square().mean():.4f}; codes used "
      f"{usage['codes_used']:.0f}/{vq.codes}, perplexity {usage['perplexity']:.1f}")  # fmt: skip
fig, axes = plt.subplots(2, 1, figsize=(9, 3.4))
viz.show_images(x_mnist[:12], "test digits", nrow=12, ax=axes[0])
viz.show_images(reconstructions[:12], f"decoded from their {tokens[0].numel()} tokens", nrow=12,
                ax=axes[1])  # fmt: skip
fig.tight_layout()

# %% [markdown]
# ### Widget: the codebook
#
# Pick a code: how often the test tokens use it, what the decoder paints for a 3x3 patch
# of it in a grid of the most used code (the background), the test pixels around every
# cell the encoder gave that code (3x3 cells averaged, the code's own cell outlined), and
# the test image that uses it most, its 4x4-pixel cells outlined. The decoder's
# convolutions read each token with its neighbours, so a code is not a fixed patch of
# pixels: some paint stroke, some paint nothing on a blank grid (the panel's title says
# so) and only matter next to other codes, which the mean of the test pixels around them
# shows.

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda code: vqvae.codebook_figure(vq, tokens, x_mnist, code), code=(0, vq.codes - 1, 1)
)

# %% [markdown]
# ### A transformer prior over the tokens
#
# The prior is the `CausalTransformer` of section 3 over the 49 tokens in raster order,
# **class-conditional**: its start token is the digit's label, so
# $p(\text{tokens} \mid y) = \prod_t p(\text{token}_t \mid \text{token}_{<t}, y)$. Trained
# on the tokens of the training digits (each in 8 copies shifted by up to 2 pixels), its
# samples are decoded by the VQ-VAE; one pass of a small transformer per token:

# %%
labels = torch.arange(10).repeat_interleave(10)
t0 = time.perf_counter()
vq_samples = vqvae.sample_images(prior, vq, labels, generator=torch.Generator().manual_seed(4))
print(
    f"100 samples in {time.perf_counter() - t0:.1f} s; the classifier reads the requested "
    f"digit in {(metrics.classifier_predict(vq_samples) == labels).float().mean():.0%}"
)
with torch.no_grad():
    token_nll = -prior.log_prob(tokens.flatten(1), y_mnist).mean().item()
print(f"prior's test NLL: {token_nll:.1f} nats per image of {tokens[0].numel()} tokens")
shipped = checkpoints.shipped_state("vq_prior_mnist")[1]["metrics"]
print(
    f"shipped recipe, 1000 samples (100 per digit): FID {shipped['fid']:.1f}, "
    f"requested digit {shipped['label_accuracy']:.1%}"
)
ddim_fid = checkpoints.shipped_state("ddpm_mnist")[1]["metrics"]["fid_ddim50"]
print(f"for comparison, lecture 04's DDPM with DDIM-50 (1000 samples, same features): FID "
      f"{ddim_fid:.1f}")  # fmt: skip
viz.show_images(vq_samples, "VQ-VAE + transformer prior: one row per requested digit 0-9", nrow=10)
plt.show()

# %% [markdown]
# The token NLL is not the image's NLL: the decoder is deterministic, so this model has
# no likelihood of pixels; it is judged by its samples (the FID of lecture 00's classifier
# features, printed above next to lecture 04's DDPM sampled with DDIM in 50 steps).
#
# ## 6. Hierarchical VAEs, diffusion, and posterior collapse
#
# **Hierarchical VAEs.** Lecture 01's VAE has one latent. A hierarchical VAE has $L$,
# generated top-down, $p(z_L)\,p(z_{L-1} \mid z_L) \cdots p(x \mid z_1)$; ladder VAEs
# (Sønderby et al. 2016), NVAE (Vahdat & Kautz 2020) and VDVAE (Child 2021) infer them
# top-down too, $q(z_L \mid x)\, q(z_{L-1} \mid z_L, x) \cdots$, sharing the generative
# path so that the approximate posterior corrects the prior layer by layer. The ELBO
# keeps lecture 01's form, with one KL term per layer:
#
# $$\log p(x) \ge \mathbb{E}_q[\log p(x \mid z_1)] - \sum_{l} \mathbb{E}_q\,
#   \mathrm{KL}\big(q(z_l \mid z_{>l}, x) \,\|\, p(z_l \mid z_{>l})\big).$$
#
# **Diffusion is a hierarchical VAE with a fixed encoder** (lecture 04): the latents are
# $x_1, \dots, x_T$, all of the data's dimension; the encoder $q(x_t \mid x_{t-1})$ is
# the fixed noising chain rather than learned; and the ELBO's per-layer KL terms are
# lecture 04's $L_{t-1}$. Fixing the encoder is what makes every term a cheap regression.
#
# **Posterior collapse.** Give a VAE an autoregressive decoder $p(x \mid z) = \prod_i
# p(x_i \mid x_{<i}, z)$ strong enough to model $x$ alone (a PixelCNN), and the optimum
# may ignore $z$: with $q(z \mid x) = p(z)$ the KL term is zero and the decoder does all
# the work, so the ELBO is as good as the decoder's own likelihood, with a useless latent
# (Bowman et al. 2016; Chen et al. 2017). The KL term is a cost of information in $z$;
# a decoder that needs none pays none. Remedies limit the decoder (a small receptive
# field, PixelVAE), or the KL's pressure: KL annealing, *free bits* (no penalty below a
# floor per latent group, Kingma et al. 2016), or a quantized latent — VQ-VAE's KL is the
# constant $\log K$ per token, so it cannot collapse that way, which is one reason it
# pairs well with strong autoregressive priors.
#
# ## Summary
#
# - The chain rule makes any network with the right masks an exact-likelihood model:
#   MADE masks an MLP, PixelCNN its convolutions (type A first, then B), a transformer
#   its attention. Evaluation is one pass; sampling is one pass per dimension.
# - PixelCNN's stacked masked convolutions have a blind spot; the gated PixelCNN's
#   vertical and horizontal stacks remove it, and its output then sees every earlier
#   pixel (checked by the gradient above). On the digits the PixelCNNs reach the course's
#   lowest test NLL (computed above); the tiny transformer sees all its past, yet on a
#   training set this small it trails.
# - Temperature and top-k trade the model's own distribution for typical samples:
#   higher likelihood, less variety.
# - VQ-VAE quantizes an encoder's grid to a learned codebook (straight-through gradient,
#   codebook and commitment losses or their EMA form); a transformer prior over the
#   tokens then samples an image in one step per token instead of one per pixel.
# - Hierarchical VAEs stack latents; diffusion is one with a fixed encoder; a strong
#   autoregressive decoder can make a VAE ignore its latent.
#
# **Further reading.** Larochelle & Murray (2011), *NADE*; Germain et al. (2015), *MADE*;
# van den Oord et al. (2016), *Pixel Recurrent Neural Networks* and *Conditional Image
# Generation with PixelCNN Decoders*; Salimans et al. (2017), *PixelCNN++*; Vaswani et
# al. (2017), *Attention Is All You Need*; van den Oord et al. (2017), *Neural Discrete
# Representation Learning*; Razavi et al. (2019), *VQ-VAE-2*; Ramesh et al. (2021),
# *Zero-Shot Text-to-Image Generation*; Esser et al. (2021), *Taming Transformers*; Chang
# et al. (2022), *MaskGIT*; Vahdat & Kautz (2020), *NVAE*; Tomczak (2024), *Deep
# Generative Modeling*, chapter 2.
