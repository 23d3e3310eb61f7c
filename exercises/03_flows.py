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
# # Exercises 03 — Normalizing flows
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/exercises/03_flows.ipynb)
#
# Six functions: the affine coupling layer and its inverse, ActNorm, the log-determinant of
# an invertible 1×1 convolution, the log-likelihood of a flow, and bits per dimension. Then
# your coupling layer trains a RealNVP on the two moons. For each function: read the
# definition, replace `# YOUR CODE HERE` / `raise NotImplementedError()` with your code, and
# run the test cell below it. A failing test says what it expected, what it got, and the
# likely mistake.
#
# **Grade yourself** from a terminal in the course folder:
#
# ```
# course grade exercises/03_flows.ipynb
# ```
#
# Conventions (lecture 03): a layer's forward pass maps data **towards the base
# distribution** (the normalizing direction) and returns `(output, log_det)`, with
# `log_det` $= \log|\det \partial\,\text{output} / \partial\,\text{input}|$ per example (shape
# `[batch]`, summed over every other dimension). Natural logarithms.

# %%
import copy
import math

import torch
from torch import nn

from course_utils import data
from course_utils.grading import check_close, check_finite, check_score, check_shape
from course_utils.train import fit

torch.manual_seed(0)

# %% [markdown]
# ## 1. The affine coupling layer (2 points)
#
# With a binary `mask` (1 = passes unchanged),
#
# $$s = \text{scale\_net}(m \odot x), \quad t = \text{shift\_net}(m \odot x), \quad y = m \odot x + (1 - m) \odot \big(x \odot e^{s} + t\big),$$
#
# and $\log|\det J| = \sum_j (1 - m_j)\, s_j$: the Jacobian is triangular, the masked
# coordinates contribute 1 to its diagonal and the others $e^{s_j}$. Sum over every
# non-batch dimension (`flatten(1).sum(1)`).


# %%
def coupling_forward(
    x: torch.Tensor, mask: torch.Tensor, scale_net: nn.Module, shift_net: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """Affine coupling, normalizing direction: returns (y, log_det) with log_det [B]."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST coupling_forward (2 points)
torch.manual_seed(0)
scale_net = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
shift_net = nn.Linear(4, 4)
mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
x = torch.randn(5, 4)
with torch.no_grad():
    y, log_det = coupling_forward(x, mask, scale_net, shift_net)
    s, t = scale_net(mask * x), shift_net(mask * x)
    expected_y = mask * x + (1 - mask) * (x * s.exp() + t)
    s_wrong, t_wrong = scale_net((1 - mask) * x), shift_net((1 - mask) * x)
check_shape(
    log_det, (5,), "log_det", hint="one log-determinant per example: sum over the non-batch dims"
)
check_close(
    y, expected_y, "y = coupling_forward(x, ...)[0]", atol=1e-5,
    hint="y = mask*x + (1-mask)*(x*exp(s) + t) with s, t computed from mask*x",
    mistakes={
        "forward scales by exp(s), not exp(-s) (exp(-s) belongs to the inverse)": mask * x + (1 - mask) * (x * (-s).exp() + t),
        "s and t must be computed from the masked (unchanged) part mask*x, or the layer cannot be inverted": mask * x + (1 - mask) * (x * s_wrong.exp() + t_wrong),
    },
)  # fmt: skip
check_close(
    log_det, ((1 - mask) * s).sum(1), "log_det", atol=1e-5,
    hint="log|det J| = sum over the transformed coordinates of s: ((1-mask)*s).flatten(1).sum(1)",
    mistakes={
        "sign: y = x*exp(s) on the transformed part, so log|det J| = +sum((1-mask)*s)": -((1 - mask) * s).sum(1),
        "the masked coordinates pass unchanged and add 0 to log|det J|: sum (1-mask)*s, not all of s": s.sum(1),
    },
)  # fmt: skip
jacobian = torch.autograd.functional.jacobian(
    lambda v: coupling_forward(v[None], mask, scale_net, shift_net)[0][0], x[0]
)
check_close(
    log_det[0] - torch.linalg.slogdet(jacobian)[1],
    0.0,
    "log_det minus log|det| of the layer's own autograd Jacobian",
    atol=1e-4,
    hint="log|det J| of y = mask*x + (1-mask)*(x*exp(s) + t) is the sum of s over the transformed coordinates",
)
images = torch.randn(2, 1, 4, 4)
checker = ((torch.arange(4)[:, None] + torch.arange(4)) % 2).float()[None, None]
conv_s = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Tanh())
conv_t = nn.Conv2d(1, 1, 3, padding=1)
with torch.no_grad():
    _, image_log_det = coupling_forward(images, checker, conv_s, conv_t)
    expected = ((1 - checker) * conv_s(checker * images)).flatten(1).sum(1)
check_close(
    image_log_det,
    expected,
    "log_det for images [2, 1, 4, 4]",
    atol=1e-5,
    hint="sum over all non-batch dims: .flatten(1).sum(1)",
)

# %% [markdown]
# ## 2. Its inverse (2 points)
#
# Given $y$, the masked part $m \odot y = m \odot x$ is known, so $s$ and $t$ can be
# recomputed exactly; then undo the affine map on the rest, **in reverse order**:
# first subtract $t$, then divide by $e^{s}$:
#
# $$x = m \odot y + (1 - m) \odot (y - t) \odot e^{-s}.$$


# %%
def coupling_inverse(
    y: torch.Tensor, mask: torch.Tensor, scale_net: nn.Module, shift_net: nn.Module
) -> torch.Tensor:
    """The exact inverse of coupling_forward: returns x."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST coupling_inverse (2 points)
torch.manual_seed(1)
x = torch.randn(6, 4)
with torch.no_grad():
    s, t = scale_net(mask * x), shift_net(mask * x)
    y = mask * x + (1 - mask) * (x * s.exp() + t)
    recovered = coupling_inverse(y, mask, scale_net, shift_net)
check_close(
    recovered, x, "coupling_inverse(coupling_forward(x))", atol=1e-5,
    hint="x = mask*y + (1-mask)*(y - t)*exp(-s), with s, t computed from mask*y",
    mistakes={
        "undo the steps in reverse order: subtract t first, then divide by exp(s)": mask * y + (1 - mask) * (y * (-s).exp() - t),
        "the inverse divides by exp(s): multiply by exp(-s), not exp(s)": mask * y + (1 - mask) * (y - t) * s.exp(),
    },
)  # fmt: skip

# %% [markdown]
# ## 3. ActNorm (2 points)
#
# Glow's activation normalization is a per-channel affine map,
# $y = x \odot e^{\text{log\_scale}} + \text{bias}$, broadcast along dim 1 (channels) of
# `[B, C]` or `[B, C, H, W]` inputs. Every spatial position is scaled, so
# $\log|\det J| = H \cdot W \cdot \sum_c \text{log\_scale}_c$ (with $H \cdot W = 1$ for
# vectors), the same for every example.


# %%
def actnorm_forward(
    x: torch.Tensor, log_scale: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x*exp(log_scale) + bias per channel (dim 1); returns (y, log_det [B])."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST actnorm_forward (2 points)
log_scale = torch.tensor([0.5, -1.0, 0.2])
bias = torch.tensor([1.0, 0.0, -2.0])
x = torch.randn(4, 3, 5, 2)
y, log_det = actnorm_forward(x, log_scale, bias)
check_close(
    y, x * log_scale.exp()[None, :, None, None] + bias[None, :, None, None], "y for images [4, 3, 5, 2]",
    hint="scale channel c (dim 1) by exp(log_scale[c]) and add bias[c]: reshape to [1, C, 1, 1]",
    mistakes={"the scale is exp(log_scale), not log_scale itself": x * log_scale[None, :, None, None] + bias[None, :, None, None]},
)  # fmt: skip
check_shape(log_det, (4,), "log_det", hint="one value per example (all equal)")
check_close(
    log_det, torch.full((4,), 10 * (-0.3)), "log_det for images [4, 3, 5, 2]", atol=1e-5,
    hint="every one of the H*W positions is scaled: log_det = H*W*sum(log_scale)",
    mistakes={
        "count every spatial position: log_det = H*W*sum(log_scale), not sum(log_scale)": torch.full((4,), -0.3),
        "sign: y = x*exp(log_scale), so log|det J| = +H*W*sum(log_scale)": torch.full((4,), 3.0),
    },
)  # fmt: skip
vectors = torch.randn(7, 3)
y, log_det = actnorm_forward(vectors, log_scale, bias)
check_close(y, vectors * log_scale.exp() + bias, "y for vectors [7, 3]")
check_close(
    log_det,
    torch.full((7,), -0.3),
    "log_det for vectors [7, 3]",
    atol=1e-5,
    hint="for vectors H*W = 1",
)

# %% [markdown]
# ## 4. The invertible 1×1 convolution's log-determinant (1 point)
#
# A 1×1 convolution applies the same $C \times C$ matrix $W$ to the channel vector at each
# of the $H \cdot W$ positions, so its Jacobian is block diagonal with $H \cdot W$ copies of
# $W$: $\log|\det J| = H \cdot W \cdot \log|\det W|$. The determinant may be negative:
# use `torch.linalg.slogdet`, whose second output is $\log|\det W|$.


# %%
def conv1x1_log_det(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """height * width * log|det weight| for a C x C weight; a scalar."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST conv1x1_log_det (1 point)
weight = torch.tensor([[0.0, 2.0, 0.0], [1.5, 0.0, 0.0], [0.0, 0.0, 0.5]])  # det = -1.5
value = conv1x1_log_det(weight, 4, 5)
check_finite(
    value,
    "conv1x1_log_det for a weight with det = -1.5",
    hint="log|det W|: the determinant may be negative, use torch.linalg.slogdet",
)
check_close(
    value, 20 * math.log(1.5), "conv1x1_log_det(W, 4, 5) with det W = -1.5", atol=1e-5,
    hint="H*W*log|det W|",
    mistakes={
        "W acts at each of the H*W positions: multiply log|det W| by height*width": math.log(1.5),
        "log|det W|, not det W": 20 * -1.5,
        "log|det W|, not |det W|": 20 * 1.5,
    },
)  # fmt: skip

# %% [markdown]
# ## 5. The log-likelihood of a flow (2 points)
#
# Apply every layer's forward in order, $h_0 = x$, $h_i = g_i(h_{i-1})$, $z = h_K$,
# collecting log-dets, and evaluate the standard normal base density. As in lecture 03,
# $g_i$ are the normalizing layers (data to noise) and $f$ the generative direction:
#
# $$\log p(x) = \log \mathcal{N}(z; 0, I) + \sum_{i=1}^{K} \log\Big|\det \frac{\partial g_i}{\partial h_{i-1}}\Big|, \qquad \log \mathcal{N}(z; 0, I) = -\tfrac12 \|z\|^2 - \tfrac{D}{2}\log 2\pi.$$
#
# `layers` is a list of modules, each returning `(output, log_det)`. Per example: `[B]`.


# %%
def flow_log_prob(x: torch.Tensor, layers: list[nn.Module]) -> torch.Tensor:
    """log p(x) = log N(z; 0, I) + sum of log_dets; per example [B]."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST flow_log_prob (2 points)
class Scale(nn.Module):
    """y = a * x, log_det = D log|a| (a toy layer)."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = a

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a * x, torch.full((x.shape[0],), x[0].numel() * math.log(abs(self.a)))


class Shift(nn.Module):
    def __init__(self, b: float) -> None:
        super().__init__()
        self.b = b

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x + self.b, torch.zeros(x.shape[0])


x = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
layers = [Shift(1.0), Scale(0.5)]  # x ~ N(-1, 4 I) exactly
value = flow_log_prob(x, layers)
expected = torch.distributions.Normal(-1.0, 2.0).log_prob(x).sum(1)
z = 0.5 * (x + 1)
check_close(
    value, expected, "flow_log_prob for z = 0.5 (x + 1), i.e. x ~ N(-1, 4I)", atol=1e-5,
    hint="log N(z; 0, I) + sum of log_dets, with log N(z; 0, I) = -||z||^2/2 - (D/2) log(2 pi)",
    mistakes={
        "the base density's normalizing constant -(D/2) log(2 pi) is missing": expected + 1.5 * math.log(2 * math.pi),
        "sign: add the log-determinants (change of variables), log p(x) = log N(z) + sum log_det": expected - 2 * 3 * math.log(0.5),
        "the log-determinants are missing": expected - 3 * math.log(0.5),
        "apply the layers in order, first to last (here: shift, then scale)": torch.distributions.Normal(-2.0, 2.0).log_prob(x).sum(1),
    },
)  # fmt: skip
images = torch.randn(3, 2, 2, 2)
check_close(flow_log_prob(images, [Scale(2.0)]), torch.distributions.Normal(0.0, 0.5).log_prob(images).flatten(1).sum(1),
            "flow_log_prob for images [3, 2, 2, 2]", atol=1e-4, hint="sum the base log-density over all non-batch dims")  # fmt: skip

# %% [markdown]
# ## 6. Bits per dimension (1 point)
#
# Likelihoods of images are reported in **bits per dimension**: the negative
# log-likelihood in bits, divided by the number of dimensions $D$:
# $\text{bpd} = -\log p(x) / (D \ln 2)$.


# %%
def bits_per_dim(log_prob: torch.Tensor, num_dims: int) -> torch.Tensor:
    """-log_prob / (num_dims * ln 2); same shape as log_prob."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST bits_per_dim (1 point)
log_prob = torch.tensor([-784 * math.log(2), -543.0])
check_close(
    bits_per_dim(log_prob, 784), torch.tensor([1.0, 543.0 / (784 * math.log(2))]), "bits_per_dim(log_prob, 784)",
    hint="bits: divide the nats by ln 2, and by the number of dimensions",
    mistakes={
        "bits, not nats: divide by ln 2 as well": -log_prob / 784,
        "sign: bits/dim is the *negative* log-likelihood": log_prob / (784 * math.log(2)),
    },
)  # fmt: skip

# %% [markdown]
# ## 7. Your coupling layers on the two moons (2 points)
#
# A RealNVP with 8 of your coupling layers (alternating masks `[1, 0]` and `[0, 1]`, small
# MLPs for $s$ and $t$, $s$ bounded by `tanh`), trained by maximum likelihood with your
# `flow_log_prob`, for 1500 steps (about 10 s). The test asks for a test NLL below
# **1.95 nats** per point; the cell prints the NLL of the best single Gaussian for
# comparison.


# %%
class Coupling(nn.Module):
    def __init__(self, mask: torch.Tensor, hidden: int = 64) -> None:
        super().__init__()
        self.mask = mask
        self.scale_net = nn.Sequential(
            nn.Linear(2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2),
            nn.Tanh(),
        )
        self.shift_net = nn.Sequential(
            nn.Linear(2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return coupling_forward(x, self.mask, self.scale_net, self.shift_net)


torch.manual_seed(0)
moons_train, moons_test = data.toy_2d("moons", 8000, seed=0), data.toy_2d("moons", 2000, seed=1)
flow_layers = nn.ModuleList(
    [
        Coupling(torch.tensor([1.0, 0.0]) if k % 2 == 0 else torch.tensor([0.0, 1.0]))
        for k in range(8)
    ]
)
optimizer = torch.optim.Adam(flow_layers.parameters(), lr=2e-3)
history = fit(
    lambda x: -flow_log_prob(x, list(flow_layers)).mean(),
    optimizer,
    moons_train,
    batch_size=256,
    steps=1500,
    seed=0,
    progress=False,
)
with torch.no_grad():
    test_nll = -flow_log_prob(moons_test, list(flow_layers)).mean().item()
gaussian = torch.distributions.MultivariateNormal(moons_train.mean(0), torch.cov(moons_train.T))
print(
    f"test NLL: {test_nll:.3f} nats per point (best Gaussian: {-gaussian.log_prob(moons_test).mean():.3f})"
)


# %% tags=["graded"] points=2
# TEST moons_flow (2 points)
# The grade uses the course's own likelihood of your trained networks, so a mistake in
# coupling_forward or flow_log_prob cannot report a flattering number about itself.
def reference_nll(layers: nn.ModuleList, x: torch.Tensor) -> float:
    log_det = torch.zeros(len(x))
    for layer in layers:
        m = layer.mask
        s, t = layer.scale_net(m * x), layer.shift_net(m * x)
        x = m * x + (1 - m) * (x * s.exp() + t)
        log_det = log_det + ((1 - m) * s).sum(1)
    return -(torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1) + log_det).mean().item()


def trained_nll(state: dict, template: nn.ModuleList = flow_layers) -> float:
    """The course's test NLL of coupling layers like ``template`` with these weights."""
    layers = copy.deepcopy(template)
    layers.load_state_dict(state)
    with torch.no_grad():
        return reference_nll(layers, moons_test)


check_score(
    flow_layers.state_dict(), trained_nll,
    "RealNVP on the moons: test NLL in nats (by the course's likelihood)", at_most=1.95,
    hint="check coupling_forward (log_det sign, exp(s) in forward, s and t from mask*x) and "
    "flow_log_prob (the log-dets); then run the training cell again",
)  # fmt: skip
