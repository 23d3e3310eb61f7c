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
# # Exercises 02 — GANs and Wasserstein GANs
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/exercises/02_gan.ipynb)
#
# Thirteen functions: the GAN losses, the optimal discriminator, the Jensen–Shannon
# divergence, the WGAN losses, weight clipping, the gradient penalty, spectral
# normalization's power iteration, CycleGAN's cycle-consistency loss, the R1 penalty and
# discriminator rejection sampling's acceptance probability. Then your WGAN-GP losses
# train
# a generator on the 8-Gaussian ring. For each function: read the definition, replace
# `# YOUR CODE HERE` / `raise NotImplementedError()` with your code, and run the test cell
# below it. A failing test says what it expected, what it got, and the likely mistake.
#
# **Grade yourself** from a terminal in the course folder:
#
# ```
# course grade exercises/02_gan.ipynb
# ```
#
# Conventions (lecture 02): a discriminator returns **logits** $l$, with
# $D(x) = \sigma(l)$; a WGAN critic returns **scores** $f(x)$. Both are tensors of shape
# `[batch]`. "$\mathbb{E}$" is the mean over the batch. Natural logarithms.

# %%
import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data, gan, metrics
from course_utils.grading import check, check_close, check_finite, check_grad, check_score

torch.manual_seed(0)

# %% [markdown]
# ## 1. The discriminator loss (2 points)
#
# The discriminator maximizes $\mathbb{E}_{x}[\log D(x)] + \mathbb{E}_{z}[\log(1 - D(G(z)))]$,
# so it **minimizes**
#
# $$\mathcal{L}_D = -\mathbb{E}_{x}[\log D(x)] - \mathbb{E}_{z}[\log(1 - D(G(z)))], \qquad D = \sigma(l).$$
#
# Compute it from the logits, stably: $\log\sigma(l) = -\operatorname{softplus}(-l)$ and
# $\log(1-\sigma(l)) = -\operatorname{softplus}(l)$. Taking `torch.sigmoid` first and then a
# `log` gives `-inf` once $\sigma(l)$ rounds to 1 or 0. In float32 `torch.sigmoid(l)` is
# exactly 1 from $l \approx 16.7$ on, so $\log(1 - \sigma(l)) = -\infty$ for any
# confidently "real" logit; it reaches 0 only near $l \approx -88.7$ (where $e^{-l}$
# overflows), so $\log \sigma(l)$ survives much longer on the negative side.


# %%
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(x)] - E[log(1 - D(G(z)))] with D = sigmoid(logits), computed from the
    logits; a scalar."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST discriminator_loss (2 points)
real = torch.tensor([2.0, -1.0, 0.0, 0.5])
fake = torch.tensor([-3.0, 0.5, 1.0])
expected = math.log(1 + math.exp(-2)) / 4 + math.log(1 + math.exp(1)) / 4 + math.log(2) / 4
expected += math.log(1 + math.exp(-0.5)) / 4
expected += (
    math.log(1 + math.exp(-3)) + math.log(1 + math.exp(0.5)) + math.log(1 + math.exp(1))
) / 3
check_close(
    discriminator_loss(real, fake), expected, "discriminator_loss(real, fake)", atol=1e-5,
    hint="-mean(log sigmoid(real)) - mean(log(1 - sigmoid(fake)))",
    mistakes={
        "sign: the discriminator *minimizes* the negative log-likelihood, -E[log D(x)] - E[log(1 - D(G(z)))]": -expected,
        "the loss is the sum of the two expectations, not their average": expected / 2,
    },
)  # fmt: skip
confident = discriminator_loss(torch.tensor([200.0, -200.0]), torch.tensor([-200.0, 200.0]))
hint = (
    "compute the loss from the logits (F.softplus, F.logsigmoid or "
    "F.binary_cross_entropy_with_logits): sigmoid(200) rounds to 1, so log(1 - D) is -inf, "
    "and F.binary_cross_entropy clamps log at -100"
)
check_finite(confident, "discriminator_loss with logits of +-200", hint=hint)
check_close(confident, 200.0, "discriminator_loss with logits of +-200", atol=1e-3, hint=hint)

# %% [markdown]
# ## 2. Two generator losses (1 + 1 points)
#
# In the minimax game the generator minimizes $\mathbb{E}_z[\log(1 - D(G(z)))]$: the
# **saturating** loss, whose gradient vanishes exactly when the discriminator confidently
# rejects the fakes ($l \to -\infty$). Goodfellow et al. propose the **non-saturating**
# loss $-\mathbb{E}_z[\log D(G(z))]$ instead: same fixed point, strong gradients early on.
# Both stably from logits.


# %%
def generator_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """The saturating generator loss E[log(1 - D(G(z)))] (log(1 - sigmoid(l)) is
    -softplus(l)); a scalar."""
    # YOUR CODE HERE
    raise NotImplementedError()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -E[log D(G(z))]; a scalar."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST generator_loss_minimax (1 point)
fake = torch.tensor([-3.0, 0.5, 1.0])
minimax = -sum(math.log(1 + math.exp(v)) for v in (-3.0, 0.5, 1.0)) / 3
nonsaturating = sum(math.log(1 + math.exp(-v)) for v in (-3.0, 0.5, 1.0)) / 3
check_close(
    generator_loss_minimax(fake), minimax, "generator_loss_minimax(fake)", atol=1e-5,
    hint="E[log(1 - sigmoid(l))] = -mean(softplus(l))",
    mistakes={
        "that is the non-saturating loss -E[log D(G(z))]; the minimax generator minimizes E[log(1 - D(G(z)))]": nonsaturating,
        "sign: the minimax generator minimizes E[log(1 - D(G(z)))], which is negative": -minimax,
    },
)  # fmt: skip
logit = torch.tensor([-200.0, 200.0], requires_grad=True)
value = generator_loss_minimax(logit)
check_finite(
    value,
    "generator_loss_minimax at logits of +-200",
    hint="use -F.softplus(l), not log(1 - sigmoid(l))",
)
value.backward()
check_close(
    logit.grad, torch.tensor([0.0, -0.5]), "d loss / d logit at l = -200 and l = 200", atol=1e-4,
    hint="the saturating loss has (almost) no gradient where the discriminator rejects the fake (l = -200)",
)  # fmt: skip

# %% tags=["graded"] points=1
# TEST generator_loss_nonsaturating (1 point)
check_close(
    generator_loss_nonsaturating(fake), nonsaturating, "generator_loss_nonsaturating(fake)", atol=1e-5,
    hint="-E[log sigmoid(l)] = mean(softplus(-l))",
    mistakes={
        "that is the minimax (saturating) loss E[log(1 - D(G(z)))]; the non-saturating one is -E[log D(G(z))]": minimax,
        "sign: the generator minimizes -E[log D(G(z))], which is positive": -nonsaturating,
    },
)  # fmt: skip
logit = torch.tensor([-200.0, 200.0], requires_grad=True)
value = generator_loss_nonsaturating(logit)
check_close(
    value,
    100.0,
    "generator_loss_nonsaturating at logits of +-200",
    atol=1e-3,
    hint="use F.softplus(-l), not -log(sigmoid(l))",
)
value.backward()
check_close(
    logit.grad, torch.tensor([-0.5, 0.0]), "d loss / d logit at l = -200 and l = 200", atol=1e-4,
    hint="the non-saturating loss keeps a gradient of -1/B where the fake is rejected (l = -200)",
)  # fmt: skip

# %% [markdown]
# ## 3. The optimal discriminator (1 point)
#
# For a fixed generator, the discriminator that maximizes the value function is
# $D^*(x) = \dfrac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)}$ (Goodfellow et al.,
# Prop. 1). Evaluate it elementwise for two densities given on a grid.


# %%
def optimal_discriminator(p_data: torch.Tensor, p_model: torch.Tensor) -> torch.Tensor:
    """p_data / (p_data + p_model), elementwise; same shape as the inputs."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST optimal_discriminator (1 point)
p_data = torch.tensor([0.1, 0.4, 0.3, 0.0])
p_model = torch.tensor([0.3, 0.4, 0.0, 0.2])
expected = torch.tensor([0.25, 0.5, 1.0, 0.0])
check_close(
    optimal_discriminator(p_data, p_model), expected, "optimal_discriminator(p_data, p_model)",
    hint="D*(x) = p_data(x) / (p_data(x) + p_model(x)): 1 where only the data has mass",
    mistakes={"p_data and p_model are swapped: D* is high where the *data* is": 1 - expected},
)  # fmt: skip
grid = torch.linspace(-3, 3, 7)
normal = torch.distributions.Normal
d_star = optimal_discriminator(
    normal(0.0, 1.0).log_prob(grid).exp(), normal(1.0, 1.0).log_prob(grid).exp()
)
check_close(d_star, torch.sigmoid(0.5 - grid), "D* for N(0,1) data vs an N(1,1) model", atol=1e-5)

# %% [markdown]
# ## 4. The Jensen–Shannon divergence (2 points)
#
# $$\mathrm{JS}(p\,\|\,q) = \tfrac12 \mathrm{KL}(p\,\|\,m) + \tfrac12 \mathrm{KL}(q\,\|\,m), \qquad m = \tfrac12(p + q),$$
#
# for probability vectors, with natural logs and the convention $0 \log 0 = 0$. It lies in
# $[0, \log 2]$, and $C(G) = -\log 4 + 2\,\mathrm{JS}(p_\text{data}\,\|\,p_g)$ is the value
# of the game at $D^*$. (`torch.xlogy(a, b)` computes $a\log b$ with $0\log 0 = 0$.)


# %%
def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence of two probability vectors (natural log); a scalar."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST js_divergence (2 points)
p = torch.tensor([0.5, 0.3, 0.2, 0.0])
q = torch.tensor([0.1, 0.1, 0.4, 0.4])
m = (p + q) / 2


def entropy(v: torch.Tensor) -> float:
    return -sum(x * math.log(x) for x in v.tolist() if x > 0)


expected = entropy(m) - (entropy(p) + entropy(q)) / 2  # JS = H(m) - (H(p) + H(q)) / 2
check_close(
    js_divergence(torch.tensor([0.2, 0.8]), torch.tensor([0.2, 0.8])), 0.0, "JS(p || p)", atol=1e-6
)
disjoint = js_divergence(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
hint = "0 log 0 counts as 0: use torch.xlogy, or sum only where the probability is positive"
check_finite(disjoint, "JS of two disjoint distributions", hint=hint)
check_close(
    disjoint, math.log(2), "JS of two disjoint distributions (its maximum, log 2)", atol=1e-5, hint=hint,
    mistakes={
        "the 1/2 factors: JS = KL(p||m)/2 + KL(q||m)/2": 2 * math.log(2),
        "natural logarithm: log 2 is the maximum in nats (you returned 1 bit)": 1.0,
    },
)  # fmt: skip
check_close(
    js_divergence(p, q), expected, "js_divergence(p, q)", atol=1e-5, hint=hint,
    mistakes={
        "the 1/2 factors: JS = KL(p||m)/2 + KL(q||m)/2": 2 * expected,
        "natural logarithm, not log2": expected / math.log(2),
    },
)  # fmt: skip

# %% [markdown]
# ## 5. The WGAN losses (1 + 1 points)
#
# By Kantorovich–Rubinstein duality,
# $W_1(p_\text{data}, p_g) = \sup_{\|f\|_L \le 1} \mathbb{E}_{x \sim p_\text{data}}[f(x)] - \mathbb{E}_{z}[f(G(z))]$.
# The critic maximizes the difference, so it **minimizes**
# $\mathbb{E}_z[f(G(z))] - \mathbb{E}_x[f(x)]$; the generator minimizes
# $-\mathbb{E}_z[f(G(z))]$. No logs, no sigmoid: $f$ is a score, not a probability.


# %%
def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss to minimize, E[f(fake)] - E[f(real)]; a scalar."""
    # YOUR CODE HERE
    raise NotImplementedError()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss -E[f(G(z))]; a scalar."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST critic_loss (1 point)
real = torch.tensor([3.0, 1.0, 2.0])
fake = torch.tensor([-1.0, 0.0, 0.5, 0.5])
check_close(
    critic_loss(real, fake), 0.0 - 2.0, "critic_loss(real, fake)",
    hint="E[f(fake)] - E[f(real)]: the critic scores real data high",
    mistakes={
        "sign: the critic *maximizes* E[f(real)] - E[f(fake)], so it minimizes E[f(fake)] - E[f(real)]": 2.0,
        "no logs or sigmoids in the WGAN losses: f is a score, not a probability":
            F.softplus(-real).mean() + F.softplus(fake).mean(),
    },
)  # fmt: skip

# %% tags=["graded"] points=1
# TEST wgan_generator_loss (1 point)
check_close(
    wgan_generator_loss(torch.tensor([1.0, 2.0])), -1.5, "wgan_generator_loss([1, 2])",
    hint="-E[f(G(z))]: the generator wants its samples scored high",
    mistakes={"sign: the generator minimizes -E[f(G(z))]": 1.5},
)  # fmt: skip

# %% [markdown]
# ## 6. Weight clipping (1 point)
#
# The original WGAN keeps the critic (roughly) Lipschitz by clamping every parameter to
# $[-c, c]$ after each critic update. Do it **in place** (`p.clamp_` under
# `torch.no_grad()`, or on `p.data`): the optimizer holds references to these tensors.


# %%
def clip_weights_(critic: nn.Module, c: float) -> None:
    """Clamp every parameter of critic to [-c, c] in place; return None."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST clip_weights_ (1 point)
torch.manual_seed(0)
critic = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
before = [p.detach().clone() for p in critic.parameters()]
ids = [id(p) for p in critic.parameters()]
try:
    returned = clip_weights_(critic, 0.1)
except NotImplementedError:
    raise
except RuntimeError as error:
    returned = None
    check(
        False,
        f"clip_weights_ raised {error}",
        hint="clamp under torch.no_grad(): autograd refuses in-place changes to a leaf that requires grad",
    )
check(
    returned is None,
    f"clip_weights_ returned {type(returned).__name__}, expected None",
    hint="clamp the critic's own parameters in place; returning clipped copies leaves the critic unchanged",
)
check(
    [id(p) for p in critic.parameters()] == ids,
    "clip_weights_ replaced the parameter objects",
    hint="clamp in place: the optimizer keeps references to the original parameters",
)
for (name, p), old in zip(critic.named_parameters(), before, strict=True):
    check_close(
        p.detach(),
        old.clamp(-0.1, 0.1),
        f"{name} after clip_weights_(critic, 0.1)",
        hint="every parameter (weights and biases) clamped in place to [-c, c]; a clamped copy changes nothing",
    )
check(
    all(p.requires_grad for p in critic.parameters()),
    "clip_weights_ turned off requires_grad",
    hint="clamp the values, keep them trainable",
)

# %% [markdown]
# ## 7. The gradient penalty (3 points)
#
# WGAN-GP (Gulrajani et al., 2017) enforces the Lipschitz constraint softly: with
# $\hat x = \epsilon x + (1 - \epsilon)\tilde x$, **one** $\epsilon \sim U[0, 1]$ per example
# (shape `[B, 1, ...]`, broadcast over the features),
#
# $$\mathrm{GP} = \mathbb{E}_{\hat x}\Big[\big(\|\nabla_{\hat x} f(\hat x)\|_2 - 1\big)^2\Big],$$
#
# with the norm over all non-batch dimensions. The penalty must train the critic, so the
# gradient is itself differentiable: `torch.autograd.grad(..., create_graph=True)`.


# %%
def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x f(x_hat)||_2 - 1)^2] at x_hat = eps*real + (1-eps)*fake, eps ~ U[0,1]
    per example (Gulrajani et al. 2017); a scalar, differentiable w.r.t. the critic's
    parameters.

    Args:
        critic: maps [B, ...] to scores [B] (or [B, 1]).
        real, fake: [B, ...] batches of the same shape.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real/fake: expected equal shapes, got {real.shape} and {fake.shape}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=3
# TEST gradient_penalty (3 points)
# A linear critic f(x) = w.x has gradient w everywhere: GP = (||w|| - 1)^2, exactly.
linear = nn.Linear(3, 1, bias=False)
with torch.no_grad():
    linear.weight.copy_(torch.tensor([[2.0, 0.0, 0.0]]))
real, fake = torch.randn(8, 3), torch.randn(8, 3)
gp = gradient_penalty(linear, real, fake)
check_close(
    gp,
    1.0,
    "gradient_penalty for f(x) = 2 x_1",
    atol=1e-5,
    hint="(||grad f(x_hat)||_2 - 1)^2, averaged over the batch",
)
check(
    gp.requires_grad,
    "gradient_penalty: the penalty does not depend on the critic's parameters in the graph",
    hint="pass create_graph=True to torch.autograd.grad, or the penalty cannot train the critic",
)
gp.backward()
check_grad(
    linear.weight, "the critic's weight", hint="pass create_graph=True to torch.autograd.grad"
)
check_close(
    linear.weight.grad,
    torch.tensor([[2.0, 0.0, 0.0]]),
    "d GP / d w at w = (2, 0, 0)",
    atol=1e-5,
    hint="d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||",
)


# The quadratic critic f(x) = ||x||^2 / 2 has gradient x_hat. With fake = -real and
# ||real|| = 3, x_hat = (2 eps - 1) real, so GP = E[(3 |2 eps - 1| - 1)^2] = 1 for eps ~ U[0, 1].
class HalfSquaredNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.square().flatten(1).sum(1)


torch.manual_seed(0)
direction = torch.randn(20_000, 100)
real = 3 * direction / direction.norm(dim=1, keepdim=True)
gp = gradient_penalty(HalfSquaredNorm(), real, -real)
check_finite(gp, "gradient_penalty(critic, real, fake)")
check(
    float(torch.as_tensor(gp).detach()) < 10,
    f"GP of f(x) = ||x||^2/2 with fake = -real, ||real|| = 3: expected about 1, got {float(torch.as_tensor(gp).detach()):.2f}",
    hint="eps ~ U[0, 1] (torch.rand), not a standard normal (torch.randn)",
)
per_feature = (((2 * torch.rand_like(real) - 1) * real).norm(dim=1) - 1).square().mean()
check_close(
    gp, 1.0, "GP of f(x) = ||x||^2/2 with fake = -real, ||real|| = 3 (expected 1 for eps ~ U[0,1] per example)", atol=0.05,
    hint="one eps ~ U[0, 1] per example, shape [B, 1]: torch.rand(B, 1)",
    mistakes={
        "one eps per *example*, shape [B, 1], not one per feature ([B, D])": per_feature,
        "the penalty is taken at random interpolates x_hat = eps*real + (1-eps)*fake, not at the real (or fake) points": 4.0,
    },
)  # fmt: skip
# The same test on images [B, 1, 4, 4], each of norm 3: eps is [B, 1, 1, 1] and the norm
# runs over all non-batch dimensions, so the expected value is 1 again.
images = torch.randn(20_000, 1, 4, 4)
images = 3 * images / images.flatten(1).norm(dim=1)[:, None, None, None]
try:
    gp = gradient_penalty(HalfSquaredNorm(), images, -images)
except RuntimeError as error:
    gp = None
    check(
        False,
        f"gradient_penalty on images [B, 1, 4, 4] raised {error}",
        hint="eps must broadcast over all non-batch dims: shape [B, 1, 1, 1] for images",
    )
check(
    gp.dim() == 0,
    f"gradient_penalty on images returned shape {tuple(gp.shape)}, expected a scalar",
    hint="take the norm over all non-batch dims: grad.flatten(1).norm(dim=1)",
)
check_close(
    gp, 1.0, "GP on images [B, 1, 4, 4] of norm 3 (expected 1)", atol=0.05,
    hint="the gradient norm is over all non-batch dims (grad.flatten(1).norm(dim=1)), with one eps per image",
)  # fmt: skip

# %% [markdown]
# ## 8. Spectral normalization: power iteration (2 points)
#
# A function $f$ is **1-Lipschitz** if $|f(a) - f(b)| \le \lVert a - b \rVert$ for all $a,
# b$: its output never moves faster than its input. A linear layer $x \mapsto Wx$ is
# Lipschitz with constant $\sigma(W)$, the **largest singular value** of $W$ (the most it
# stretches any vector), and ReLU is 1-Lipschitz, so a network whose every weight is
# divided by its own $\sigma(W)$ is 1-Lipschitz: **spectral normalization** (Miyato et al.,
# 2018). An SVD per layer per step is too slow; one step of **power iteration** per
# training step, with $u \in \mathbb{R}^m$ carried over from step to step, is enough:
#
# $$v = \frac{W^\top u}{\lVert W^\top u \rVert_2}, \qquad u_\text{new} = \frac{W v}{\lVert
#   W v \rVert_2}, \qquad \sigma = u_\text{new}^\top W v .$$
#
# Repeated, $u$ and $v$ turn towards the top left and right singular vectors and $\sigma$
# converges to $\sigma(W)$. Normalize each vector by its own L2 norm plus $10^{-12}$ (not
# by a norm of $W$), and return `(sigma, u_new)`.


# %%
def power_iteration(weight: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One power-iteration step for the largest singular value of weight [m, n] (spectral
    normalization, Miyato et al. 2018), with u [m]: v = normalize(W^T u),
    u_new = normalize(W v), sigma = u_new^T W v. Returns (sigma, u_new [m])."""
    if weight.dim() != 2 or u.shape != weight.shape[:1]:
        raise ValueError(
            f"weight/u: expected [m, n] and [m], got {tuple(weight.shape)} and {tuple(u.shape)}"
        )
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST power_iteration (2 points)
torch.manual_seed(0)
W, u0 = torch.randn(5, 3), torch.randn(5)
v = W.T @ u0 / (W.T @ u0).norm()
expected_u = W @ v / (W @ v).norm()
frobenius_v = W.T @ u0 / W.norm()  # the mistake: divide by ||W||_F instead of the vector's norm
frobenius_u = W @ frobenius_v / W.norm()
try:
    sigma, u_new = power_iteration(W, u0)
except NotImplementedError:
    raise
except RuntimeError as error:
    check(
        False,
        f"power_iteration(W [5, 3], u [5]) raised {error}",
        hint="v = normalize(W^T u), with the transpose: for W [m, n] and u [m], W^T u has n entries and W u none",
    )
check_close(
    u_new, expected_u, "u_new after one step of power_iteration(W [5, 3], u [5])",
    hint="v = normalize(W^T u), then u_new = normalize(W v), each divided by its own L2 norm",
    mistakes={
        "divide each vector by its own L2 norm, not by the Frobenius norm of W": frobenius_u,
        "return the new u (normalize(W v)), not the u you were given": u0,
    },
)  # fmt: skip
check_close(
    sigma, expected_u @ W @ v, "sigma after one step", hint="sigma = u_new^T W v",
    mistakes={"sigma estimates the largest singular value, not the Frobenius norm": W.norm()},
)  # fmt: skip
# A square W: W u has the right size too, but the step needs W^T u.
W_sq, u_sq = torch.randn(4, 4), torch.randn(4)
v_sq = W_sq.T @ u_sq / (W_sq.T @ u_sq).norm()
v_wrong = W_sq @ u_sq / (W_sq @ u_sq).norm()
check_close(
    power_iteration(W_sq, u_sq)[1], W_sq @ v_sq / (W_sq @ v_sq).norm(), "u_new for a square W [4, 4]",
    hint="v = normalize(W^T u), then u_new = normalize(W v)",
    mistakes={"v = normalize(W^T u), with the transpose: W u only has the right size when W is square": W_sq @ v_wrong / (W_sq @ v_wrong).norm()},
)  # fmt: skip
u = torch.randn(5)
for _ in range(100):
    sigma, u = power_iteration(W, u)
check_close(
    sigma, torch.linalg.matrix_norm(W, ord=2), "sigma after 100 steps vs torch.linalg.matrix_norm(W, ord=2)",
    hint="feed each step's u_new into the next step: the iteration must converge to the largest singular value",
)  # fmt: skip

# %% [markdown]
# ## 9. CycleGAN's cycle-consistency loss (1 point)
#
# Unpaired image-to-image translation (Zhu et al., 2017) trains two generators, $G: X \to
# Y$ and $F: Y \to X$, each with a GAN loss against its target domain. Nothing in those
# losses ties an output to its input: $G$ could map every horse to the same zebra. The
# **cycle-consistency loss** asks that translating there and back returns the input, in
# both directions, in L1:
#
# $$\mathcal{L}_\text{cyc}(G, F) = \mathbb{E}_{x}\big[\lVert F(G(x)) - x \rVert_1\big] +
#   \mathbb{E}_{y}\big[\lVert G(F(y)) - y \rVert_1\big].$$
#
# Take each expectation as the mean absolute difference over all elements of its batch
# (`x` and `y` may hold different numbers of examples).


# %%
def cycle_consistency_loss(
    x: torch.Tensor, y: torch.Tensor, G: Callable, F: Callable
) -> torch.Tensor:
    """CycleGAN's cycle-consistency loss mean |F(G(x)) - x| + mean |G(F(y)) - y| (L1) for
    G: X -> Y and F: Y -> X; a scalar."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST cycle_consistency_loss (1 point)
torch.manual_seed(0)
x, y = torch.randn(4, 3), torch.randn(6, 3)
G_toy = lambda a: 2 * a + 1  # noqa: E731
F_toy = lambda b: 0.4 * b  # noqa: E731
forward_cycle, backward_cycle = F_toy(G_toy(x)) - x, G_toy(F_toy(y)) - y
check_close(
    cycle_consistency_loss(x, y, G_toy, F_toy),
    forward_cycle.abs().mean() + backward_cycle.abs().mean(),
    "cycle_consistency_loss for G(a) = 2a + 1, F(b) = 0.4b",
    hint="mean |F(G(x)) - x| + mean |G(F(y)) - y|",
    mistakes={
        "add the backward cycle G(F(y)) -> y: the loss has both directions": forward_cycle.abs().mean(),
        "add the forward cycle F(G(x)) -> x: the loss has both directions": backward_cycle.abs().mean(),
        "the cycle loss is L1 (mean absolute difference), not squared (L2)":
            forward_cycle.square().mean() + backward_cycle.square().mean(),
    },
)  # fmt: skip
check_close(
    cycle_consistency_loss(x, y, lambda a: a, lambda b: b), 0.0, "cycle_consistency_loss of two identities",
)  # fmt: skip

# %% [markdown]
# ## 10. The R1 penalty (2 points)
#
# Mescheder et al. (2018) show that a GAN's training dynamics converge near the
# equilibrium once the discriminator is penalized for having a gradient **on the data**:
# with $D_\psi(x)$ the discriminator's **logit**,
#
# $$R_1(\psi) = \frac{\gamma}{2}\, \mathbb{E}_{x \sim p_\mathcal{D}}\big[\lVert \nabla_x D_\psi(x) \rVert^2\big],$$
#
# the squared L2 norm over all non-batch dimensions, averaged over the **real** batch
# (no interpolation as in WGAN-GP, no fake samples: `fake` is not used, it is there so
# that the course's trainer can call `r1_penalty` and `gradient_penalty` alike). The
# penalty is added to the discriminator's loss, so, as in the gradient penalty, the
# gradient must itself be differentiable: `torch.autograd.grad(..., create_graph=True)`.
# Return the scalar $R_1$ with its factor $\gamma / 2$.


# %%
def r1_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    """Mescheder et al.'s (2018) ``R1 = (γ/2) E_{x~p_data}[‖∇_x D(x)‖₂²]`` at the real
    batch only, ``D`` the discriminator's logit (``fake`` is unused; the argument keeps
    ``ToyGanConfig.penalty``'s signature); a scalar, differentiable w.r.t. the critic's
    parameters. The discriminator minimizes its loss ``+ R1``.

    Args:
        critic: maps ``[B, ...]`` to logits ``[B]`` (or ``[B, 1]``).
        real: ``[B, ...]`` data batch.
        fake: unused.
        gamma: the penalty's weight γ.
    """
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST r1_penalty (2 points)
# The quadratic critic D(x) = ||x||^2 / 2 has gradient x: R1 = (gamma/2) E||x||^2 over the real batch.
class HalfSquaredNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.square().flatten(1).sum(1)


real = torch.tensor([[1.0, 2.0], [0.0, 3.0], [2.0, 2.0]])  # squared norms 5, 9, 8
fake = torch.tensor([[0.5, 0.0], [0.0, 0.5], [1.0, 0.0]])  # squared norms 0.25, 0.25, 1
r1 = r1_penalty(HalfSquaredNorm(), real, fake, gamma=3.0)
check_close(
    r1, 1.5 * 22 / 3, "r1_penalty(D(x) = ||x||^2/2, gamma = 3) = (3/2) * mean(5, 9, 8)",
    hint="(gamma / 2) * the batch mean of the squared gradient norm, at the real batch",
    mistakes={
        "the penalty is taken at the real data, not at the fake batch": 1.5 * 1.5 / 3,
        "multiply by gamma / 2: R1 = (gamma/2) E||grad D||^2": 22 / 3,
        "multiply by gamma / 2, not gamma": 3 * 22 / 3,
        "the squared norm ||grad D||^2, not the norm": 1.5 * (5**0.5 + 3 + 8**0.5) / 3,
        "average over the batch (E is a mean), do not sum": 1.5 * 22,
    },
)  # fmt: skip
# A linear critic D(x) = w.x on images [B, 1, 2, 2]: the gradient is w everywhere.
linear = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
with torch.no_grad():
    linear[1].weight.copy_(torch.tensor([[1.0, -2.0, 0.0, 2.0]]))
r1 = r1_penalty(linear, torch.randn(5, 1, 2, 2), torch.randn(5, 1, 2, 2), gamma=2.0)
check_close(r1, 9.0, "r1_penalty of a linear critic on images [B, 1, 2, 2], ||w||^2 = 9, gamma = 2",
            hint="the squared norm runs over all non-batch dims: grad.flatten(1).square().sum(1)")  # fmt: skip
check(
    r1.requires_grad,
    "r1_penalty: the penalty does not depend on the critic's parameters in the graph",
    hint="pass create_graph=True to torch.autograd.grad, or the penalty cannot train the discriminator",
)
r1.backward()
check_grad(
    linear[1].weight, "the critic's weight", hint="pass create_graph=True to torch.autograd.grad"
)
check_close(linear[1].weight.grad, 2 * torch.tensor([[1.0, -2.0, 0.0, 2.0]]), "d R1 / d w = gamma * w",
            hint="R1 = (gamma/2) ||w||^2 for a linear critic: its gradient in w is gamma * w")  # fmt: skip

# The penalty trains the discriminator only: a real batch that carries a graph (data
# augmentation with a learned parameter, say) gets no gradient from it.
scale = torch.tensor(2.0, requires_grad=True)
r1 = r1_penalty(HalfSquaredNorm(), scale * real, fake)
if r1.requires_grad:
    r1.backward()
check_close(
    scale.grad if scale.grad is not None else 0.0, 0.0, "d R1 / d (a parameter upstream of the real batch)",
    hint="take the gradient at a detached copy, real.detach().requires_grad_(True): R1 is a function of the discriminator only",
)  # fmt: skip

# %% [markdown]
# ## 11. Discriminator rejection sampling: the acceptance probability (2 points)
#
# A discriminator trained to optimality has the logit $\tilde D^*(x) = \log
# p_\text{data}(x) / p_g(x)$ (question 3). Rejection sampling from $p_g$ keeps a sample
# with probability $p_\text{data}(x) / (M p_g(x)) = \exp(\tilde D^*(x) - \tilde D^*_M)$,
# with $\tilde D^*_M = \log M$ the largest logit. Azadi et al. (2019) compute it in logit
# space, where they can also shift it:
#
# $$F(x) = \tilde D^*(x) - \tilde D^*_M - \log\big(1 - e^{\tilde D^*(x) - \tilde D^*_M - \epsilon}\big) - \gamma,
#   \qquad p_\text{accept}(x) = \sigma\big(F(x)\big).$$
#
# With $\gamma = 0$ and $\epsilon \to 0$, $\sigma(F) = e^{\tilde D^* - \tilde D^*_M}$
# exactly: the logit of the acceptance probability is the first three terms. $\epsilon$
# keeps the logarithm finite at the maximum itself; $\gamma$ raises ($\gamma < 0$) or lowers
# ($\gamma > 0$) every acceptance, trading exactness for speed. (Lecture 02's
# `gan.rejection_sample` keeps a candidate with probability $\min(1, e^{\tilde D - M})$ with
# $M$ a high quantile of the logits, a heuristic; this is the paper's rule.) Given `logits`
# `[N]` and `max_logit` $\tilde D^*_M \ge$ every logit, return $\sigma(F)$, `[N]`. Compute
# $\log(1 - e^{u})$ for $u < 0$ as `torch.log1p(-torch.exp(u))`.


# %%
def drs_acceptance(
    logits: torch.Tensor, max_logit: float, epsilon: float = 1e-6, gamma: float = 0.0
) -> torch.Tensor:
    """Discriminator rejection sampling's acceptance probability (Azadi et al. 2019):
    ``sigmoid(F)``, ``F = l - l_M - log(1 - exp(l - l_M - epsilon)) - gamma`` for the
    discriminator's ``logits`` ``[N]`` and ``max_logit`` ``l_M`` (at least every logit);
    ``[N]`` in ``[0, 1]``."""
    if epsilon <= 0:
        raise ValueError(f"epsilon: expected > 0, got {epsilon!r}")
    if logits.numel() and float(logits.max()) > max_logit:
        raise ValueError(
            f"max_logit: expected at least every logit, got {max_logit!r} below "
            f"{float(logits.max())!r}"
        )
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST drs_acceptance (2 points)
logits = torch.tensor([-3.0, -1.0, 0.0, 1.5, 2.0])
u = logits - 2.0
check_close(
    drs_acceptance(logits, 2.0), u.exp(), "drs_acceptance(gamma = 0, epsilon = 1e-6) = exp(l - l_M)",
    hint="sigmoid(F) with F = l - l_M - log(1 - exp(l - l_M - epsilon)) - gamma: at gamma = 0 it is exp(l - l_M)",
    mistakes={
        "the acceptance is sigmoid(F) with F = l - l_M - log(1 - exp(l - l_M - epsilon)) - gamma: keep the log term": torch.sigmoid(u),
        "return the probability sigmoid(F), not the logit F": u - torch.log1p(-torch.exp(u - 1e-6)),
    },
)  # fmt: skip
eps, gamma = 0.5, 0.7
f = u - torch.log1p(-torch.exp(u - eps)) - gamma
check_close(
    drs_acceptance(logits, 2.0, epsilon=eps, gamma=gamma), torch.sigmoid(f),
    "drs_acceptance(epsilon = 0.5, gamma = 0.7)",
    hint="F = l - l_M - log(1 - exp(l - l_M - epsilon)) - gamma, then sigmoid(F)",
    mistakes={
        "subtract gamma: a positive gamma lowers every acceptance": torch.sigmoid(f + 2 * gamma),
        "epsilon goes inside the exponential, exp(l - l_M - epsilon)": torch.sigmoid(u - torch.log1p(-torch.exp(u)) - gamma),
        "the acceptance is sigmoid(F) with F = l - l_M - log(1 - exp(l - l_M - epsilon)) - gamma: keep the log term": torch.sigmoid(u - gamma),
    },
)  # fmt: skip
check_close(drs_acceptance(torch.tensor([-200.0, 0.0]), 0.0)[0], 0.0, "the acceptance of a logit 200 below the maximum",
            hint="a logit far below the maximum is (almost) never accepted: sigmoid(F) of a very negative F is 0")  # fmt: skip

# %% [markdown]
# ## 12. Your WGAN-GP on the ring (2 points)
#
# Your `critic_loss`, `wgan_generator_loss` and `gradient_penalty` now train a WGAN-GP on the
# 8-Gaussian ring: 5 critic steps per generator step, λ = 1, Adam(1e-3, β = (0.5, 0.9)),
# 1000 generator steps (about 15 s). `course_utils.gan.train_toy_gan` is the loop of
# lecture 02. The test asks for **all 8 modes** and at least 30% high-quality samples
# (within 3 standard deviations of a mode centre) among 2500 samples.

# %%
ring = data.toy_2d("ring", 20_000, seed=0)
config = gan.ToyGanConfig(
    critic_loss=critic_loss,
    generator_loss=wgan_generator_loss,
    penalty=gradient_penalty,
    gp_weight=1.0,
)
result = gan.train_toy_gan(ring, config, steps=1000, seed=0)
coverage = metrics.mode_coverage(
    result.sample(2500, seed=0), data.mode_centers("ring"), data.mode_std("ring")
)
print(
    f"{coverage.modes_captured}/8 modes, {100 * coverage.high_quality_rate:.1f}% high-quality samples"
)


# %% tags=["graded"] points=2
# TEST wgan_gp_ring (2 points)
# The grade samples your trained generator itself and measures it with the course's metric.
def ring_coverage(state: dict, template: nn.Module = result.generator) -> metrics.ModeCoverage:
    generator = copy.deepcopy(template)
    generator.load_state_dict(state)
    z = torch.randn(2500, result.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        samples = generator(z)
    return metrics.mode_coverage(samples, data.mode_centers("ring"), data.mode_std("ring"))


hint = (
    "check the signs of critic_loss and wgan_generator_loss, and that gradient_penalty "
    "trains the critic (create_graph=True); run the cell above again after fixing them"
)
check_score(
    result.generator.state_dict(), lambda s: ring_coverage(s).modes_captured,
    "WGAN-GP on the ring: modes captured of 8", at_least=8, hint=hint,
)  # fmt: skip
check_score(
    result.generator.state_dict(), lambda s: ring_coverage(s).high_quality_rate,
    "WGAN-GP on the ring: fraction of high-quality samples", at_least=0.3, hint=hint,
)  # fmt: skip
