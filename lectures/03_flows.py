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
# # Lecture 03 — Normalizing flows
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/lectures/03_flows.ipynb)
#
# VAEs bound the likelihood; GANs drop it. A **normalizing flow** computes it exactly. The
# idea: take a simple base density $\pi(z)$ (a standard normal) and an **invertible**,
# differentiable map $f$; then $x = f(z)$ has a density we can write down with the change
# of variables formula. Stack many simple invertible maps and the result is flexible
# enough for images, with an exact $\log p(x)$ to train by maximum likelihood.
#
# This lecture:
#
# 1. the change of variables in 1D and in $n$ dimensions, and the log-likelihood of a
#    composition;
# 2. what makes a layer usable: invertible, with a cheap determinant;
# 3. RealNVP's affine coupling, its masks, and why they must alternate; autoregressive
#    flows (MAF and IAF): fast density or fast sampling;
# 4. Glow's ActNorm and invertible 1×1 convolution;
# 5. flows on 2D toys, layer by layer (widget);
# 6. flows on digits and MNIST: dequantization, bits/dim, samples;
# 7. strengths and limits.
#
# The README's table of lectures gives this one's measured run time on a laptop CPU; the
# image flows load shipped weights (`python -m course_utils.pretrain flow` retrains them;
# section 6 prints how long their training took).

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

from course_utils import checkpoints, data, flows, metrics, viz, widgets
from course_utils.device import get_device
from course_utils.train import fit

device = get_device()
torch.manual_seed(0)
RETRAIN = (
    False  # True: train the digits flow and the MNIST flow here (section 6 prints their times)
)

# %% [markdown]
# ## 1. Change of variables
#
# **In 1D.** Let $z \sim \pi$ and $x = f(z)$ with $f$ strictly increasing. Probability is
# conserved on matching intervals, $p(x)\,|dx| = \pi(z)\,|dz|$, so
#
# $$p(x) = \pi\big(f^{-1}(x)\big)\,\left|\frac{d f^{-1}}{dx}(x)\right| = \pi(z)\,\left|\frac{df}{dz}(z)\right|^{-1}.$$
#
# Where $f$ stretches space ($|f'| > 1$) the density thins out; where it compresses, the
# density piles up. Below, $z \sim \mathcal{N}(0, 1)$ and $f(z) = z + 0.45\sin 2z$, an
# increasing map ($f' = 1 + 0.9\cos 2z > 0$) that alternately compresses and stretches.
# The histogram of $f(z)$ matches the formula.


# %%
def f_1d(z: torch.Tensor) -> torch.Tensor:
    return z + 0.45 * torch.sin(2 * z)


def f_1d_prime(z: torch.Tensor) -> torch.Tensor:
    return 1 + 0.9 * torch.cos(2 * z)


z_grid = torch.linspace(-4, 4, 2001)
x_grid = f_1d(z_grid)  # increasing, so (x_grid, density) is a curve in x
density_x = torch.distributions.Normal(0.0, 1.0).log_prob(z_grid).exp() / f_1d_prime(z_grid)
samples_x = f_1d(torch.randn(200_000))
mass = torch.trapezoid(density_x, x_grid).item()

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
axes[0].plot(z_grid.numpy(), x_grid.numpy())
axes[0].set_title("$x = f(z) = z + 0.45 \\sin 2z$")
axes[0].set_xlabel("$z$")
axes[0].set_ylabel("$x$")
axes[1].hist(samples_x.numpy(), bins=200, density=True, alpha=0.5, label="histogram of $f(z)$")
axes[1].plot(x_grid.numpy(), density_x.numpy(), "k", label="$\\pi(z)\\,/\\,f'(z)$")
axes[1].plot(z_grid.numpy(), torch.distributions.Normal(0.0, 1.0).log_prob(z_grid).exp().numpy(),
             "--", color="grey", label="$\\pi$ (before)")  # fmt: skip
axes[1].set_title(f"The density of $x$ (integrates to {mass:.4f})")
axes[1].set_xlabel("$x$")
axes[1].set_ylabel("density")
axes[1].legend(fontsize=8)
plt.show()

# %% [markdown]
# **In $n$ dimensions**, a small cube around $z$ is mapped to a parallelepiped whose
# volume is $|\det J_f(z)|$ times larger, with $J_f = \partial f / \partial z$ the
# Jacobian. For invertible, differentiable $f$:
#
# $$p(x) = \pi(z)\,\big|\det J_f(z)\big|^{-1} = \pi\big(f^{-1}(x)\big)\,\big|\det J_{f^{-1}}(x)\big|, \qquad z = f^{-1}(x).$$
#
# **A composition** $x = f_K \circ \cdots \circ f_1(z_0)$, $z_i = f_i(z_{i-1})$, $x = z_K$:
# the determinants multiply, the logs add,
#
# $$\log p(x) = \log \pi(z_0) - \sum_{i=1}^{K} \log\left|\det \frac{\partial f_i}{\partial z_{i-1}}\right|.$$
#
# The code (and the exercises) uses the equivalent **normalizing direction**: each layer
# $g_i = f_{K+1-i}^{-1}$ maps data towards noise, $h_0 = x$, $h_i = g_i(h_{i-1})$,
# $z = h_K$, and
#
# $$\log p(x) = \log \pi(z) + \sum_{i=1}^{K} \log\left|\det \frac{\partial g_i}{\partial h_{i-1}}\right|.$$
#
# Training maximizes $\frac1N\sum_n \log p(x_n)$ directly: exact maximum likelihood.
# Sampling runs the layers backwards from $z \sim \pi$.
#
# ## 2. What a layer must offer
#
# 1. **Invertible**, with an inverse we can compute (for sampling);
# 2. a **cheap log-determinant** (for the likelihood, at every training step).
#
# A general $D \times D$ Jacobian costs $O(D^3)$ to factorize (LU) for its determinant,
# on top of the $D$ backward passes it takes to build it. Measured here for the
# determinant alone:

# %%
previous = None
for dim in (256, 512, 1024, 2048):
    matrix = torch.randn(dim, dim)
    torch.linalg.slogdet(matrix)  # warm-up
    start = time.perf_counter()
    for _ in range(3):
        torch.linalg.slogdet(matrix)
    ms = (time.perf_counter() - start) / 3 * 1000
    ratio = f"  ({ms / previous:4.1f}x the previous; D^3 predicts 8x)" if previous else ""
    print(f"D = {dim:5d}: slogdet {ms:8.2f} ms{ratio}")
    previous = ms

# %% [markdown]
# Doubling $D$ multiplies the cost by up to $2^3 = 8$ once the matrix is large (small ones
# are dominated by overheads and caches); a 64×64 RGB image has $D = 12288$. Flow layers
# are designed so that the Jacobian is triangular (determinant = product of the diagonal,
# $O(D)$) or block-diagonal with small blocks.
#
# ## 3. RealNVP: the affine coupling layer
#
# Dinh et al. (2017) split the coordinates with a binary mask $m$: the masked part passes
# unchanged and parameterizes an affine map of the rest,
#
# $$y = m \odot x + (1 - m) \odot \big(x \odot e^{s(m \odot x)} + t(m \odot x)\big),$$
#
# with $s$ and $t$ arbitrary networks (they are never inverted). Order the coordinates
# masked-first: $\partial y / \partial x$ is block triangular with the identity on the
# masked block and $\operatorname{diag}(e^{s})$ on the other, so
#
# $$\log|\det J| = \sum_j (1 - m_j)\, s_j(m \odot x), \qquad x = m \odot y + (1 - m) \odot \big(y - t(m \odot y)\big) \odot e^{-s(m \odot y)},$$
#
# the inverse using $m \odot y = m \odot x$. `course_utils.flows.AffineCoupling` is this
# layer (one network outputs $s$ and $t$; $s$ is bounded by a learned scale times $\tanh$
# for stability, and the last layer starts at zero so the layer starts as the identity).
# Line by line:


# %%
class AffineCoupling(nn.Module):
    """RealNVP coupling, normalizing direction: forward(x) -> (y, log_det [B])."""

    def __init__(self, mask: torch.Tensor, net: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mask", mask)  # m: 1 = passes unchanged
        self.net = net  # m*x -> [raw s, t] stacked on dim 1
        self.scale = nn.Parameter(torch.ones(1, mask.shape[1], *mask.shape[2:]))

    def _scale_shift(self, x_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw_s, t = self.net(x_masked).chunk(2, dim=1)
        keep = 1 - self.mask
        return keep * self.scale * torch.tanh(raw_s), keep * t  # s, t act on (1 - m) only

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._scale_shift(self.mask * x)
        y = self.mask * x + (1 - self.mask) * (x * torch.exp(s) + t)  # y = m x + (1-m)(x e^s + t)
        return y, s.flatten(1).sum(1)  # log|det J| = sum (1-m) s

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        s, t = self._scale_shift(self.mask * y)  # m*y = m*x: the same s, t
        return self.mask * y + (1 - self.mask) * ((y - t) * torch.exp(-s))


# the shipped checkpoints use course_utils.flows.AffineCoupling: same parameters, same maths
layer = AffineCoupling(flows.half_mask(2), flows.mlp(2, 4, 16))
reference = flows.AffineCoupling(flows.half_mask(2), flows.mlp(2, 4, 16))
with torch.no_grad():
    for p in reference.parameters():
        p.normal_(0, 0.5)
layer.load_state_dict(reference.state_dict())
x = torch.randn(5, 2)
y, log_det = layer(x)
jacobian_log_det = torch.stack([
    torch.linalg.slogdet(torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], xi))[1]
    for xi in x
])  # fmt: skip
print(f"max |inverse(forward(x)) - x|       = {(layer.inverse(y) - x).abs().max():.2e}")
print(f"max |log_det - log|det autograd J|| = {(log_det - jacobian_log_det).abs().max():.2e}")
print(f"matches the course_utils layer:       {torch.allclose(y, reference(x)[0])}")

# %% [markdown]
# ### Masks
#
# For 2D data the mask keeps one coordinate: $[1, 0]$ or $[0, 1]$. For images RealNVP
# uses a **checkerboard** mask (in pixel space) and a **channel** mask (after a squeeze
# that turns each 2×2 patch into 4 channels):

# %%
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, (title, mask) in zip(axes, [
    ("checkerboard, parity 0", flows.checkerboard_mask(8, 8, 0)[0, 0]),
    ("checkerboard, parity 1", flows.checkerboard_mask(8, 8, 1)[0, 0]),
    ("channel mask (4 channels)", flows.channel_mask(4)[0, :, 0, 0][None].repeat(4, 1).T),
], strict=True):  # fmt: skip
    ax.imshow(mask.numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("column" if "checker" in title else "position")
    ax.set_ylabel("row" if "checker" in title else "channel")
plt.show()

# %% [markdown]
# ### Why the masks must alternate
#
# A coupling never changes its masked coordinates. With the same mask in every layer,
# coordinate $x_1$ is never transformed: its marginal stays the base's $\mathcal{N}(0, 1)$
# whatever the training does. Alternating masks let every coordinate be transformed,
# conditioned on the others. Same number of layers, same training, on the two moons:

# %%
moons_train, moons_test = data.toy_2d("moons", 8000, seed=0), data.toy_2d("moons", 2000, seed=1)


def train_2d_flow(flow: flows.Flow, x: torch.Tensor, steps: int = 1500) -> flows.Flow:
    optimizer = torch.optim.Adam(flow.parameters(), lr=2e-3)
    fit(lambda b: -flow.log_prob(b).mean(), optimizer, x, batch_size=256, steps=steps, seed=0,
        progress=False)  # fmt: skip
    return flow.eval()


def test_nll(flow: flows.Flow, x: torch.Tensor) -> float:
    with torch.no_grad():
        return -flow.log_prob(x).mean().item()


torch.manual_seed(0)
fixed = flows.Flow(
    [flows.AffineCoupling(flows.half_mask(2, 0), flows.mlp(2, 4, 64)) for _ in range(6)], (2,)
)
alternating = flows.realnvp_2d(num_couplings=6, hidden=64)
for flow in (fixed, alternating):
    train_2d_flow(flow, moons_train)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
for ax, (name, flow) in zip(axes, [("same mask [1, 0] in all 6 layers", fixed),
                                   ("alternating masks", alternating)], strict=True):  # fmt: skip
    viz.density_heatmap(flow.log_prob, f"{name}: test NLL {test_nll(flow, moons_test):.2f} nats",
                        extent=(-4, 4, -4, 4), resolution=150, ax=ax)  # fmt: skip
plt.show()

# %% [markdown]
# The mask $[1, 0]$ keeps $x_1$ in every layer, so $z_1 = x_1$: the fixed-mask flow can
# shape $p(x_2 \mid x_1)$, but its marginal $p(x_1)$ is the base's $\mathcal{N}(0, 1)$. Its
# density is spread along $x_1$ where the moons have no mass.
#
# ### Autoregressive flows (MAF and IAF)
#
# A coupling transforms half of the coordinates given the other half. An **autoregressive
# flow** transforms every coordinate given all the earlier ones. The masked autoregressive
# flow (MAF, Papamakarios et al. 2017) generates, from $u \sim \mathcal{N}(0, I)$,
#
# $$x_i = u_i\,e^{\alpha_i} + \mu_i, \qquad (\mu_i, \alpha_i) \text{ functions of } x_{<i},$$
#
# so $x_i$ depends on $u_i$ and, through $x_{<i}$, on $u_{<i}$ only: the Jacobian $\partial
# x/\partial u$ is **triangular** with diagonal $e^{\alpha_i}$, and $\log|\det \partial
# x/\partial u| = \sum_i \alpha_i$. The inverse is explicit, $u_i = (x_i - \mu_i)\,
# e^{-\alpha_i}$, and $\log p(x) = \log \mathcal{N}(u; 0, I) - \sum_i \alpha_i$. (The sign
# convention is the paper's: $\alpha_i$ is the log-scale of the *generative* map. The
# course's layers return the log-det of the normalizing direction, so
# `flows.MaskedAutoregressive` returns $-\sum_i \alpha_i$.)
#
# One network computes every $(\mu_i, \alpha_i)$ with output $i$ seeing $x_{<i}$ only:
# **MADE** (Germain et al. 2015) multiplies the weights of an MLP by binary masks. Input
# $d$ gets the degree $d$, each hidden unit $k$ a degree $m(k) \in \{1, \dots, D - 1\}$;
# unit $k$ sees input $d$ iff $m(k) \ge d$, and output $d$ sees unit $k$ iff $d > m(k)$.
# (Lecture 06 uses the same masks for an autoregressive model of pixels.) The cost of the
# two directions is not the same:
#
# - **density** ($x \to u$): $x$ is given, so one MADE pass gives every $(\mu_i, \alpha_i)$;
# - **sampling** ($u \to x$): $x_i$ needs $x_{<i}$ first, so $D$ passes, one coordinate each.
#
# The **inverse autoregressive flow** (IAF, Kingma et al. 2016) conditions on the noise
# instead, $(\mu_i, \alpha_i)$ functions of $u_{<i}$: sampling in one pass, but the density
# of a new $x$ in $D$ passes. That suits a VAE's posterior, where only the model's own
# samples are scored (their $u$ is known). A coupling layer is the special case with two
# blocks of coordinates (in 2D a MAF layer is a coupling, up to a constant affine map of
# $x_1$), fast both ways but less expressive per layer. A check on a 5-dimensional layer with random weights: the
# Jacobian $\partial u/\partial x$ by autograd is triangular, its diagonal is
# $e^{-\alpha_i}$, and its $\log|\det|$ is the layer's; then the two directions timed at
# $D = 64$, the digits' dimension.

# %%
torch.manual_seed(0)
maf_layer = flows.MaskedAutoregressive(5, hidden=32)
with torch.no_grad():
    for p in maf_layer.parameters():
        p.add_(0.5 * torch.randn_like(p))  # random weights, not the identity it starts as
x_point = torch.randn(5)
J = torch.autograd.functional.jacobian(lambda v: maf_layer(v[None])[0][0], x_point)  # du/dx
mu, alpha = maf_layer.made(x_point[None])
print("du/dx (autograd):\n", J.numpy().round(3))
print(f"max |diag(du/dx) - exp(-alpha)| = {(J.diagonal() - (-alpha[0]).exp()).abs().max():.1e}; "
      f"log|det du/dx| = {torch.linalg.slogdet(J)[1]:.4f}, layer's -sum(alpha) = "
      f"{maf_layer(x_point[None])[1].item():.4f}")  # fmt: skip
assert torch.all(J.triu(1) == 0)  # u_i depends on x_1 .. x_i only
assert torch.allclose(torch.linalg.slogdet(J)[1], -alpha.sum(), atol=1e-5)
assert torch.allclose(maf_layer.inverse(maf_layer(x_point[None])[0]), x_point[None], atol=1e-5)

wide = flows.MaskedAutoregressive(64, hidden=256)
x_batch = torch.randn(500, 64)
with torch.no_grad():
    for p in wide.parameters():
        p.add_(0.1 * torch.randn_like(p))
    timings = {}
    for name, run in (("density, 1 pass", lambda: wide(x_batch)),
                      ("sampling, 64 passes", lambda: wide.inverse(x_batch))):  # fmt: skip
        run()  # warm-up
        start = time.perf_counter()
        for _ in range(3):
            run()
        timings[name] = (time.perf_counter() - start) / 3
for name, seconds in timings.items():
    print(f"MAF layer, D = 64, {len(x_batch)} points, {name:<20}: {1000 * seconds:7.2f} ms")
print(f"sampling / density: {timings['sampling, 64 passes'] / timings['density, 1 pass']:.0f}x")

# %% [markdown]
# ## 4. Glow's pieces
#
# Kingma & Dhariwal (2018) build each **flow step** from three layers:
#
# - **ActNorm**: a per-channel affine map $y = x \odot e^{\text{log\_scale}} + b$, like
#   batch norm but with learned parameters, **initialized from data**: on the first batch,
#   $b$ and $\text{log\_scale}$ are set so the output has zero mean and unit variance per
#   channel. Every spatial position is scaled, so
#   $\log|\det J| = H \cdot W \cdot \sum_c \text{log\_scale}_c$.
# - **Invertible 1×1 convolution**: a learned $C \times C$ matrix $W$ mixing the channels
#   at each position, a learned generalization of a fixed permutation.
#   $\log|\det J| = H \cdot W \cdot \log|\det W|$: a $C \times C$ determinant, cheap for
#   small $C$ (Glow optionally parameterizes $W = PL(U + \operatorname{diag}(s))$ to make
#   it $O(C)$).
# - **Affine coupling** with a channel mask.
#
# ActNorm's initialization, checked on a batch of images:

# %%
actnorm = flows.ActNorm(3)
batch = 5 + 3 * torch.randn(64, 3, 8, 8)
out, log_det = actnorm(batch)  # the first call initializes from this batch
print(f"per-channel mean after init: {out.mean((0, 2, 3)).detach().numpy().round(4)}")
print(f"per-channel std after init:  {out.std((0, 2, 3)).detach().numpy().round(4)}")
print(
    f"log_det = H*W*sum(log_scale) = 64 * {actnorm.log_scale.sum().item():.3f} = {log_det[0].item():.2f}"
)
conv = flows.InvConv1x1(4)
with torch.no_grad():
    conv.weight.mul_(torch.tensor([2.0, 1.0, 1.0, 1.0])[:, None])  # det W = +-2
print(f"1x1 conv on [B, 4, 14, 14] with |det W| = 2: log_det = {conv(torch.randn(2, 4, 14, 14))[1][0]:.3f}"
      f" = 196 log 2 = {196 * math.log(2):.3f}")  # fmt: skip

# %% [markdown]
# ## 5. Flows on 2D toys
#
# RealNVP with 8 alternating couplings on three datasets. Exact densities, samples, and
# the test negative log-likelihood in nats per point (lower is better; entropies differ
# across datasets, so compare models on the same data, not datasets).

# %%
toys, extents = {}, {"moons": 4.5, "checkerboard": 4.5, "ring": 1.5}
fig, axes = plt.subplots(2, 3, figsize=(15, 9))
for col, (name, lim) in enumerate(extents.items()):
    torch.manual_seed(0)
    x_train, x_test = data.toy_2d(name, 8000, seed=0), data.toy_2d(name, 2000, seed=1)
    toys[name] = train_2d_flow(flows.realnvp_2d(num_couplings=8, hidden=64), x_train, steps=2000)
    viz.density_heatmap(toys[name].log_prob, f"{name}: test NLL {test_nll(toys[name], x_test):.2f} nats",
                        extent=(-lim, lim, -lim, lim), resolution=150, ax=axes[0, col])  # fmt: skip
    viz.scatter_2d(toys[name].sample(2000), f"{name}: 2000 samples", ax=axes[1, col], lim=lim,
                   color="tab:red")  # fmt: skip
fig.tight_layout()
plt.show()

# %% [markdown]
# The checkerboard's sharp edges and the ring's tiny modes (std 0.01) are hard for a
# smooth invertible map of a Gaussian: mass leaks into thin bridges between the pieces,
# the same topological limit as the GAN generator in lecture 02. Flows cannot change the
# topology of the base; they can only make the bridges thin.
#
# ### Widget: the flow layer by layer
#
# The slider sets $k$, the number of layers applied: $k = 0$ is data space, $k = 8$ the
# base space. Left: the data pushed through the first
# $k$ layers, coloured by where each point ends up in base space (its angle). Middle: the
# model's density of the intermediate variable $h_k$. Right: base samples pulled back
# through layers $8, 7, \dots, k+1$.

# %% tags=["nbval-ignore-output"]
moons_flow = toys["moons"]
widgets.figure_widget(
    lambda layers_applied: flows.flow_layers_figure(moons_flow, moons_test[:1500], layers_applied),
    layers_applied=(0, len(moons_flow.layers), 1),
)

# %% [markdown]
# ## 6. Flows on images
#
# ### Dequantization
#
# Pixels are integers; a continuous density on them can cheat, piling infinite density
# on the integer points. **Uniform dequantization** adds $u \sim U[0, 1)^D$ and fits a
# continuous $p$ to $x + u$. Then, with $P(x) = \int_{[0,1)^D} p(x + u)\,du$ the discrete
# model it defines, Jensen's inequality gives
#
# $$\log P(x) = \log \mathbb{E}_u[p(x + u)] \ge \mathbb{E}_u[\log p(x + u)],$$
#
# so the continuous NLL $-\mathbb{E}_u \log p(x+u)$ is an **upper bound** on the discrete
# NLL: honest to report (Theis et al., 2016). In bits per dimension:
# $\text{bpd} = \text{NLL} / (D \ln 2)$.
#
# RealNVP also maps the dequantized pixels to logit space, so the flow models unbounded
# values: Dinh et al. (2017, section 4.1) use $y = \operatorname{logit}\big(\alpha + (1 -
# \alpha)\tfrac{x + u}{L}\big)$ with $L$ levels and $\alpha = 0.05$. The course uses a
# symmetric **variant**, $y = \operatorname{logit}\big(\alpha + (1 - 2\alpha)\tfrac{x +
# u}{L}\big)$, which squeezes $[0, 1]$ into $[\alpha, 1 - \alpha]$ so that black and white
# are treated alike; either way the map's log-determinant is added (`flows.Dequantize`).
#
# ### The digits benchmark
#
# sklearn's 8×8 digits (17 levels, $D = 64$) under Tomczak's *intro_dgm* protocol: train
# on the first 1000 images, select on the next 350, test on the last 447.
# `flows.realnvp_digits`: logit dequantization, then 4 blocks of ActNorm and two couplings
# with complementary checkerboard masks, 256-unit MLPs. `course bench flow-digits` trains it
# for 60 s and reports the test NLL bound (goal: ≤ 105 nats).

# %%
x_digits_test, _ = data.digits("test", device=device)
if RETRAIN:
    from course_utils.flows import flow_digits_benchmark

    digits_flow, digits_metrics = flow_digits_benchmark(seconds=60.0)
else:
    digits_flow = checkpoints.load_pretrained("flow_digits", device=device)
    digits_metrics = checkpoints.shipped_state("flow_digits")[1]["metrics"]
torch.manual_seed(0)
digits_nll = flows.discrete_nll_bound(digits_flow, x_digits_test, draws=10).mean().item()
vae_nll = checkpoints.shipped_state("vae_digits")[1]["metrics"]["test_neg_elbo"]
print(
    f"test NLL bound: {digits_nll:.2f} nats per image = {digits_nll / (64 * math.log(2)):.3f} bits/dim "
    f"({digits_metrics['train_seconds']:.0f} s of training, {int(digits_metrics['parameters']):,} parameters)"
)
print(f"for comparison, lecture 01's conv VAE: negative ELBO {vae_nll:.2f} nats (also an upper bound)")  # fmt: skip
with torch.no_grad():
    digit_samples = digits_flow.sample(64).clamp(0, 16.99).floor()
viz.show_images(
    digit_samples.reshape(-1, 1, 8, 8) / 16, "RealNVP samples on digits (T = 1)", nrow=8
)
plt.show()

# %% [markdown]
# ### A Glow-style flow on MNIST
#
# `flows.glow_mnist`: dequantization of the 256 grey levels to logit space, then two
# scales: a squeeze to $4 \times 14 \times 14$ and 4 Glow steps (ActNorm → 1×1 conv →
# coupling with a channel mask and a small conv net), another squeeze to
# $16 \times 7 \times 7$ and 8 more steps, where a few 3×3 convolutions see the whole
# digit (with one scale, every coupling's small convolutions would only ever see a small
# neighbourhood of pixels). The likelihood is exact, but
# a flow spends capacity on every pixel's noise: samples at temperature $T = 1$ look
# worse than the bits/dim suggest. Glow samples at a reduced **temperature**,
# $z \sim \mathcal{N}(0, T^2 I)$ with $T < 1$, trading diversity for quality. Compare the
# two panels: on this small model a lower temperature thins the strokes towards the
# blank background (the most likely image) and the FID gets worse, not better.
# Temperature is a knob to check, not a free improvement.

# %%
mnist_state, mnist_meta = checkpoints.shipped_state("flow_mnist")
mnist_metrics = mnist_meta["metrics"]
mnist_flow = flows.glow_mnist(**mnist_meta["config"]).to(device)
if RETRAIN:
    from course_utils.flows import train_flow

    x_mnist, _ = data.mnist("train", device=device)
    train_flow(
        mnist_flow, 255 * x_mnist[:3600], 255 * x_mnist[3600:], epochs=int(mnist_metrics["epochs"])
    )
else:
    mnist_flow.load_state_dict(mnist_state)
mnist_flow.eval()
x_mnist_test, _ = data.mnist("test", device=device)
torch.manual_seed(0)
test_bpd = flows.discrete_nll_bound(mnist_flow, 255 * x_mnist_test[:500], draws=1).mean().item() / (
    784 * math.log(2)
)
print(f"test bits/dim (500 test images, one noise draw): {test_bpd:.3f} "
      f"(shipped metadata, full test split: {mnist_metrics['test_bits_per_dim']:.3f}; "
      f"{mnist_metrics['epochs']:.0f} epochs trained in {mnist_metrics['train_seconds'] / 60:.0f} minutes)")  # fmt: skip
fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
for ax, temperature in zip(axes, (1.0, 0.7), strict=True):
    torch.manual_seed(0)
    images = (mnist_flow.sample(1000, temperature=temperature) / 256).clamp(0, 1)
    coverage = metrics.class_coverage(images)
    viz.show_images(images[:36], f"T = {temperature}: FID {metrics.fid(images, x_mnist_test):.0f}, "
                    f"{coverage.classes_present}/10 digits", ax=ax, nrow=6)  # fmt: skip
plt.show()

# %% [markdown]
# ## 7. Strengths and limits
#
# | | VAE | GAN | flow |
# |---|---|---|---|
# | likelihood | lower bound (ELBO, IWAE) | none | **exact** |
# | sampling | one decoder pass | one generator pass | one inverse pass |
# | latent space | low-dimensional, learned encoder | low-dimensional, no encoder | **same dimension as the data**, exact encoder $f^{-1}$ |
# | samples | blurry (Gaussian/Bernoulli decoder) | sharp, may drop modes | mass on everything, noisy at $T = 1$ |
# | architecture | any encoder/decoder | any generator/critic | invertible layers with cheap log-det only |
#
# The price of exactness is architectural: each layer must be invertible with a
# tractable Jacobian, so each is weak (an affine map of half the coordinates), and deep
# stacks are needed; the latent has the data's dimension, so there is no compression.
# **Diffusion models** (next lecture) keep a fixed, simple "flow" of noise addition from
# data to Gaussian, and learn only its reversal, one small denoising step at a time.
#
# **Exercises:** `exercises/03_flows.ipynb` (coupling forward and inverse, ActNorm, the 1×1
# convolution's log-det, the flow log-likelihood, bits/dim, and your RealNVP on the
# moons). Grade yourself with `course grade exercises/03_flows.ipynb`.
