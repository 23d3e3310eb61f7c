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
# # Lecture 05 — Scores, SDEs and flow matching
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/lectures/05_flow_matching.ipynb)
#
# Lecture 04 trained a network to predict the noise in $x_t$ and then used it in two ways
# that it never justified: it turned $\epsilon_\theta$ into the **score**
# $\nabla_x \log p$, and it called DDIM an **ODE solver**. This lecture makes both
# precise, and then drops the noise schedule altogether: **flow matching** learns the
# velocity of a path from noise to data by plain regression, and its straight paths
# sample in a handful of steps.
#
# This lecture:
#
# 0. one convention: noise at $t = 0$, data at $t = 1$, one Gaussian path, and the
#    conversions between velocity, score and noise prediction, checked numerically;
# 1. scores: why $\nabla_x \log p$ needs no normalizing constant; denoising score
#    matching derived; Tweedie's formula and $\text{score} = -\epsilon/\sigma_t$
#    checked on a Gaussian mixture whose score is known;
# 2. Langevin dynamics: sampling with a score; step size, steps, and annealing over noise
#    levels; widget: the chain step by step;
# 3. SDEs: DDPM as the discretization of the VP-SDE, the reverse-time SDE and the
#    probability-flow ODE, checked against each other in 2D;
# 4. DDIM is an Euler step of the probability-flow ODE, derived and checked on lecture
#    04's model; Heun and DPM-Solver++(2M) on the same model;
# 5. flow matching: conditional paths, the conditional loss and why its gradient is the
#    marginal loss's, straight vs curved paths; widget: the probability path; the
#    flow-matching model driving an SDE sampler through the score;
# 6. the likelihood of a continuous flow: $d \log p / dt = -\nabla\!\cdot v$, exact and
#    Hutchinson's estimate;
# 7. MNIST: a class-conditional flow-matching U-Net against lecture 04's DDPM model at
#    equal network evaluations; widget: quality per step.
#
# The MNIST models are shipped checkpoints (`python -m course_utils.pretrain fm_mnist`
# retrains this lecture's); the README's course map gives the lecture's measured run time.
#
# ## 0. One convention: noise at $t = 0$, data at $t = 1$
#
# The whole lecture, the exercises 05 and `course_utils.flow_matching` use one time
# direction, as MIT's 6.S184 does: $t \in [0, 1]$, **noise $x_0 \sim \mathcal{N}(0, I)$ at
# $t = 0$, data $x_1 \sim q$ at $t = 1$**, and one family of Gaussian paths
#
# $$x_t = \alpha_t\,x_1 + \sigma_t\,x_0, \qquad \alpha_0 = 0,\ \alpha_1 = 1,\ \sigma_0 = 1,\ \sigma_1 = 0 .$$
#
# Flow matching's linear path is $\alpha_t = t$, $\sigma_t = 1 - t$. Lecture 04's DDPM is
# $\alpha_t = \sqrt{\bar\alpha}$, $\sigma_t = \sqrt{1 - \bar\alpha}$, and its noise $\epsilon$
# is our $x_0$. **Papers that run time the other way**: Ho et al. (2020) and Song et al.
# (2021) put the data at their $t = 0$ and the noise at $t = T$ or $1$; their $t$ is
# $1 -$ ours (lecture 04's step $i$ of $T$ is our $t = 1 - i/T$), and the lecture says so
# where it uses their equations. Ho et al. also write $x_0$ for the data; here it is $x_1$,
# and a hat marks a network's prediction.
#
# A network trained on the path can predict any of four things at $(x_t, t)$, and each
# determines the others:
#
# - the **noise** $\hat\epsilon = \mathbb{E}[x_0 \mid x_t]$ (lecture 04's $\epsilon_\theta$);
# - the **data** $\hat x_1 = \mathbb{E}[x_1 \mid x_t] = (x_t - \sigma_t\,\hat\epsilon)/\alpha_t$
#   (lecture 04's $\hat x_0$; Karras et al.'s denoiser $D(x_t)$);
# - the **score** $\nabla \log p_t(x_t) = -\hat\epsilon/\sigma_t$ (Tweedie's formula, section 1);
# - the **velocity** $u_t(x_t) = \mathbb{E}[\dot\alpha_t x_1 + \dot\sigma_t x_0 \mid x_t] =
#   \dot\alpha_t\,\hat x_1 + \dot\sigma_t\,\hat\epsilon$ (section 5).
#
# Substituting the first three into the last, with $s = \nabla \log p_t$:
#
# $$u_t(x) = \frac{\dot\alpha_t}{\alpha_t}\,x + \Big(\sigma_t^2\,\frac{\dot\alpha_t}{\alpha_t} - \dot\sigma_t\,\sigma_t\Big)\,s_t(x),$$
#
# and for the linear path ($\dot\alpha = 1$, $\dot\sigma = -1$):
#
# $$\hat\epsilon = x_t - t\,u, \qquad \hat x_1 = x_t + (1 - t)\,u, \qquad
# s = \frac{t\,u - x_t}{1 - t}, \qquad u = \frac{x_t + (1 - t)\,s}{t}$$
#
# (`flow_matching.eps_from_velocity`, `data_from_velocity`, `score_from_velocity`,
# `velocity_from_score`). A check on a mixture of 8 Gaussians on a ring (section 1), whose
# velocity $u_t$ and the score of each $p_t$ are both known in closed form: convert the
# exact velocity to a score and compare with the exact score, then convert back.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

from course_utils import checkpoints, data, diffusion, flow_matching, viz, widgets
from course_utils.device import get_device
from course_utils.flow_matching import GaussianMixture, VpSde
from course_utils.train import fit

device = get_device()
torch.manual_seed(0)
DIGITS_STEPS = 6000  # flow matching on the 8x8 digits (section 6; the cell prints its time)

# %%
ring = flow_matching.ring()  # 8 modes on a circle of radius 2, std s = 0.15
g = torch.Generator().manual_seed(0)
x0_check, x1_check = torch.randn(6, 2, generator=g), ring.sample(6, g)
for t in (0.2, 0.5, 0.9):
    times_t = torch.full((6,), t)
    x_t = flow_matching.interpolant(x0_check, x1_check, times_t)  # alpha_t = t, sigma_t = 1 - t
    u = ring.velocity(x_t, times_t)  # the exact marginal velocity
    exact = ring.scaled(t, 1 - t).score(x_t)  # p_t is the ring scaled by t, noised by 1 - t
    via_u = flow_matching.score_from_velocity(u, x_t, times_t)
    eps_hat = flow_matching.eps_from_velocity(u, x_t, times_t)
    x1_hat = flow_matching.data_from_velocity(u, x_t, times_t)
    assert torch.allclose(via_u, exact, atol=1e-4, rtol=1e-4)  # velocity -> score
    assert torch.allclose(via_u, -eps_hat / (1 - t), atol=1e-5)  # score = -eps / sigma_t
    assert torch.allclose(t * x1_hat + (1 - t) * eps_hat, x_t, atol=1e-5)  # the path again
    back = flow_matching.velocity_from_score(exact, x_t, times_t)
    assert torch.allclose(back, u, atol=1e-4, rtol=1e-4)  # score -> velocity
    print(f"t = {t}: max |score from u - exact score| = {(via_u - exact).abs().max():.1e}, "
          f"max |u from the exact score - u| = {(back - u).abs().max():.1e}")  # fmt: skip

# %% [markdown]
# ## 1. Scores
#
# An energy-based density $p(x) = e^{-E(x)}/Z$ is hard to train by maximum likelihood
# because $Z = \int e^{-E}$ is intractable, and so is its gradient. The **score**
#
# $$s(x) = \nabla_x \log p(x) = -\nabla_x E(x) - \underbrace{\nabla_x \log Z}_{=\,0}$$
#
# does not see $Z$ at all: it is a vector field that points uphill in density, and it
# determines $p$ (up to the constant, which a density fixes). Our running example is a
# mixture of 8 Gaussians on a ring (section 0), whose score is known in closed form:
# $\nabla \log p(x) = \sum_k p(k \mid x)\,(\mu_k - x)/s^2$
# (`course_utils.flow_matching.GaussianMixture`).

# %%
grid = torch.linspace(-3, 3, 21)
xx, yy = torch.meshgrid(grid, grid, indexing="xy")
points = torch.stack([xx.flatten(), yy.flatten()], 1)
smooth = ring.scaled(1.0, 0.5)  # the ring noised with sigma = 0.5: its score is smoother
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, (name, density) in zip(axes, (("data, s = 0.15", ring), ("noised, sigma = 0.5", smooth)),
                               strict=True):  # fmt: skip
    fine = torch.linspace(-3, 3, 150)
    fx, fy = torch.meshgrid(fine, fine, indexing="xy")
    p = density.log_prob(torch.stack([fx.flatten(), fy.flatten()], 1)).exp().view(150, 150)
    ax.contourf(fx, fy, p, levels=12, cmap="Greys")
    score = density.score(points)
    score = score / score.norm(dim=1, keepdim=True).clamp_min(1e-8)  # directions only
    ax.quiver(points[:, 0], points[:, 1], score[:, 0], score[:, 1], color="tab:red", width=0.004)
    ax.set_title(f"{name}: density and score directions")
    ax.set_xlabel("coordinate 1")
    ax.set_ylabel("coordinate 2")
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()

# %% [markdown]
# Far from the data the score is pure guesswork for a model: no sample lands there. That
# is why score models are trained on **noised** data.
#
# ### Denoising score matching
#
# We want $s_\theta \approx \nabla \log q_\sigma$, the score of the data convolved with
# noise, $q_\sigma(\tilde x) = \int p(x)\, q_\sigma(\tilde x \mid x)\,dx$ with
# $q_\sigma(\tilde x \mid x) = \mathcal{N}(\tilde x; x, \sigma^2 I)$. The *explicit* loss
# needs the unknown score; Vincent (2011) showed that the *denoising* loss, which needs
# only the kernel's score, differs from it by a constant:
#
# $$J_\text{ESM}(\theta) = \tfrac12\,\mathbb{E}_{q_\sigma(\tilde x)}\big\|s_\theta(\tilde x) - \nabla \log q_\sigma(\tilde x)\big\|^2,
# \qquad
# J_\text{DSM}(\theta) = \tfrac12\,\mathbb{E}_{p(x)\,q_\sigma(\tilde x \mid x)}\big\|s_\theta(\tilde x) - \nabla_{\tilde x} \log q_\sigma(\tilde x \mid x)\big\|^2.$$
#
# *Proof.* Expand both squares. The terms $\tfrac12\mathbb{E}\|s_\theta(\tilde x)\|^2$ are
# equal (both are expectations over $q_\sigma(\tilde x)$), and the squared targets do not
# depend on $\theta$. The cross terms are equal too:
#
# $$\mathbb{E}_{q_\sigma(\tilde x)}\big\langle s_\theta(\tilde x), \nabla \log q_\sigma(\tilde x)\big\rangle
# = \int \big\langle s_\theta(\tilde x), \nabla q_\sigma(\tilde x)\big\rangle d\tilde x
# = \int\!\!\int p(x) \big\langle s_\theta(\tilde x), \nabla_{\tilde x} q_\sigma(\tilde x \mid x)\big\rangle dx\, d\tilde x$$
# $$= \int\!\!\int p(x)\, q_\sigma(\tilde x \mid x) \big\langle s_\theta(\tilde x), \nabla_{\tilde x} \log q_\sigma(\tilde x \mid x)\big\rangle dx\, d\tilde x
# = \mathbb{E}_{p(x)\,q_\sigma(\tilde x \mid x)}\big\langle s_\theta(\tilde x), \nabla_{\tilde x} \log q_\sigma(\tilde x \mid x)\big\rangle,$$
#
# using $\nabla q = q\,\nabla \log q$ twice. So $J_\text{DSM} = J_\text{ESM} + C$. $\square$
#
# For the Gaussian kernel $\nabla_{\tilde x} \log q_\sigma(\tilde x \mid x) = -(\tilde x -
# x)/\sigma^2 = -\epsilon/\sigma$ with $\tilde x = x + \sigma\epsilon$: **the network learns
# to point from the noisy sample back to where it came from**, on average. Weighted by
# $\sigma^2$ (Song & Ermon, 2019), the loss is $\tfrac12\,\mathbb{E}\|\sigma s_\theta(\tilde
# x) + \epsilon\|^2$: lecture 04's $L_\text{simple}$ with $\epsilon_\theta = -\sigma
# s_\theta$. That identity is for this **variance-exploding** perturbation $\tilde x = x +
# \sigma\epsilon$; for lecture 04's **variance-preserving** $x_t = \sqrt{\bar\alpha}\,x_1 +
# \sqrt{1 - \bar\alpha}\,\epsilon$ it is $\epsilon_\theta = -\sqrt{1 - \bar\alpha}\;s_\theta$
# (Tweedie, below). Both are section 0's $\hat\epsilon = -\sigma_t\,s$ with the path's
# $\sigma_t$. Exercise 05.1 writes `dsm_loss`; here is a small network trained with it at
# $\sigma = 0.3$ and compared with the exact score of $q_\sigma$, the ring noised by $\sigma$.


# %%
class FieldMlp(nn.Module):
    """An MLP on (x, time features) -> a 2-d vector: a score s(x) (no time input) or a
    velocity v(x, t) (t in [0, 1], sinusoidal features of 8 frequencies)."""

    def __init__(self, timed: bool = True, hidden: int = 128) -> None:
        super().__init__()
        self.timed = timed
        self.net = nn.Sequential(nn.Linear(2 + 16 * timed, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))  # fmt: skip

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        if not self.timed:
            return self.net(x)
        angles = t[:, None] * torch.exp(math.log(100.0) * torch.arange(8, device=x.device) / 8)
        return self.net(torch.cat([x, angles.sin(), angles.cos()], dim=1))


sigma = 0.3
ring_train = ring.sample(20_000, torch.Generator().manual_seed(0)).to(device)
torch.manual_seed(0)
score_net = FieldMlp(timed=False).to(device)
start = time.perf_counter()
fit(lambda x: flow_matching.dsm_loss(score_net, x, sigma),
    torch.optim.Adam(score_net.parameters(), lr=2e-3), ring_train, batch_size=256, steps=2000,
    progress=False)  # fmt: skip
noised = ring.scaled(1.0, sigma)  # q_sigma: the ring convolved with N(0, sigma^2 I)
probe = 8 * torch.rand(20_000, 2, generator=torch.Generator().manual_seed(1)) - 4  # [-4, 4]^2
with torch.no_grad():
    error = (score_net(probe.to(device)).cpu() - noised.score(probe)).norm(dim=1)
below_peak = noised.log_prob(probe) - noised.log_prob(probe).max()  # log q_sigma - its maximum
print(f"DSM at sigma = {sigma}, 2000 steps: {time.perf_counter() - start:.1f} s")
relative = error / noised.score(probe).norm(dim=1)
print("median error of s_theta where log q_sigma - max log q_sigma is in:   absolute  relative")
band_errors = []
for low, high in ((-3, 0), (-8, -3), (-20, -8), (-math.inf, -20)):
    band = (below_peak > low) & (below_peak <= high)
    band_errors.append(float(error[band].median()))
    print(
        f"  ({low:>5}, {high:>3}] ({int(band.sum()):>5} points){error[band].median():>30.2f}"
        f"{relative[band].median():>10.2f}"
    )
assert band_errors == sorted(band_errors)  # the text below: the error grows as the density falls

# %% [markdown]
# The learned score's error grows steadily as the density falls: where little noised
# data lives, the network has seen few examples. (The exact score grows there too, as
# the relative column shows, so the error is not larger in proportion.) This is what Song & Ermon (2019) point to: a sampler that starts in those empty
# places follows a poor score. Noise fills them in, so it helps to learn the score at
# **several** noise levels, which is what the diffusion models of lecture 04 do.
#
# ### Tweedie's formula
#
# The score of the noised data says how to denoise. Differentiate $q_\sigma(\tilde x) =
# \int p(x)\,\mathcal{N}(\tilde x; x, \sigma^2 I)\,dx$ under the integral:
# $\nabla q_\sigma(\tilde x) = \int p(x)\,\mathcal{N}(\tilde x; x, \sigma^2 I)\,(x -
# \tilde x)/\sigma^2\,dx$, and divide by $q_\sigma(\tilde x)$:
#
# $$\nabla \log q_\sigma(\tilde x) = \frac{\mathbb{E}[x \mid \tilde x] - \tilde x}{\sigma^2}
# \qquad\Longleftrightarrow\qquad \mathbb{E}[x \mid \tilde x] = \tilde x + \sigma^2\,\nabla \log q_\sigma(\tilde x).$$
#
# (Robbins 1956, Efron 2011.) For lecture 04's $x_t = \sqrt{\bar\alpha_t}\,x_1 +
# \sqrt{1-\bar\alpha_t}\,\epsilon$ (Ho et al. write $x_0$ for the data; in section 0's
# notation the data is $x_1$ and $\epsilon$ is the noise $x_0$) the same computation, with
# mean $\sqrt{\bar\alpha_t}\,x_1$ and variance $1 - \bar\alpha_t$, gives $\nabla \log
# q(x_t) = (\sqrt{\bar\alpha_t}\, \mathbb{E}[x_1 \mid x_t] - x_t)/(1 - \bar\alpha_t)$, and
# since $x_t - \sqrt{\bar\alpha_t}\, \mathbb{E}[x_1 \mid x_t] = \sqrt{1 -
# \bar\alpha_t}\,\mathbb{E}[\epsilon \mid x_t]$:
#
# $$\nabla \log q(x_t) = -\frac{\mathbb{E}[\epsilon \mid x_t]}{\sqrt{1 - \bar\alpha_t}}
# \approx -\frac{\epsilon_\theta(x_t, t)}{\sqrt{1 - \bar\alpha_t}},$$
#
# since the minimizer of $L_\text{simple}$ is $\epsilon_\theta(x_t, t) = \mathbb{E}[\epsilon
# \mid x_t]$ (exercise 05.2, `score_from_eps`): section 0's $s = -\hat\epsilon/\sigma_t$ with
# $\sigma_t = \sqrt{1 - \bar\alpha_t}$. A numerical check on the ring at $\bar\alpha =
# 0.5$: estimate $\mathbb{E}[\epsilon \mid x_t]$ by Monte Carlo (draw many $(x_1,
# \epsilon)$ pairs, weight each by how well it explains $x_t$) and compare with the exact
# score of the noised ring.

# %%
ab = 0.5
noised_ring = ring.scaled(math.sqrt(ab), math.sqrt(1 - ab))  # q(x_t) in closed form
g = torch.Generator().manual_seed(2)
x_query = noised_ring.sample(6, g)
x1_draws = ring.sample(400_000, g)  # data draws
# E[eps | x_t]: over draws x1 ~ q, weight each by q(x_t | x1) = N(x_t; sqrt(ab) x1, (1 - ab) I)
log_w = -(x_query[:, None] - math.sqrt(ab) * x1_draws[None]).square().sum(-1) / (2 * (1 - ab))
weights = log_w.softmax(dim=1)  # [6, 400000], self-normalized
eps_given_x = (x_query[:, None] - math.sqrt(ab) * x1_draws[None]) / math.sqrt(1 - ab)
expected_eps = (weights[:, :, None] * eps_given_x).sum(1)
via_tweedie = flow_matching.score_from_eps(expected_eps, ab)
print("exact score        :", noised_ring.score(x_query)[:3].numpy().round(3).tolist())
print("-E[eps|x_t]/sqrt(1-ab):", via_tweedie[:3].numpy().round(3).tolist())
print(
    f"max abs difference over 6 points: {(via_tweedie - noised_ring.score(x_query)).abs().max():.4f}"
)

# %% [markdown]
# ## 2. Langevin dynamics
#
# With a score we can sample without a normalizing constant. The **Langevin diffusion**
# $dx = \nabla \log p(x)\,dt + \sqrt 2\,dW$ has $p$ as its stationary law: in its
# Fokker–Planck equation $\partial_t \rho = -\nabla\!\cdot(\rho\,\nabla \log p) + \Delta\rho$,
# $\rho = p$ gives $-\nabla\!\cdot(\nabla p) + \Delta p = 0$. Its Euler–Maruyama
# discretization is the **unadjusted Langevin algorithm** (exercise 05.3):
#
# $$x_{k+1} = x_k + h\,\nabla \log p(x_k) + \sqrt{2h}\,z_k, \qquad z_k \sim \mathcal{N}(0, I).$$
#
# A step size $h$ trades speed against bias (without a Metropolis correction the chain's
# law is $O(h)$ away from $p$). On a standard normal, each step maps variance $v$ to
# $(1 - h)^2 v + 2h$: the gap to its fixed point $1/(1 - h/2)$ shrinks by $(1 - h)^2$ per
# step, so a small $h$ is accurate but slow, and a large one fast but biased. Started
# at variance 9:

# %%
torch.manual_seed(0)
normal_score = lambda x: -x  # noqa: E731  (the score of N(0, I))
print(f"{'h':>6}{'var after 10 steps':>20}{'after 300':>11}{'theory 1/(1-h/2)':>18}")
for h in (0.01, 0.1, 0.5):
    x = 3 * torch.randn(50_000, 2)
    variances = []
    for k in range(300):
        x = flow_matching.langevin_step(normal_score, x, h, torch.randn_like(x))
        if k + 1 in (10, 300):
            variances.append(float(x.var(0).mean()))
    print(f"{h:>6}{variances[0]:>20.3f}{variances[1]:>11.3f}{1 / (1 - h / 2):>18.3f}")

# %% [markdown]
# The real difficulty is **mixing**. Take two well-separated modes with weights 0.8 and
# 0.2. Started spread over the plane, each Langevin chain falls into the nearer mode and
# stays: the barrier between the modes has a density of $e^{-12}$ of the peak, and the
# share of chains in the heavy mode stays at whatever the start gave it. The score is
# blind to the weights, since away from the barrier it is the same as that of a single
# Gaussian.
#
# **Annealed Langevin dynamics** (Song & Ermon, 2019) runs the chain on the data noised at
# levels $\sigma_1 > \sigma_2 > \dots > \sigma_L$, each for a few steps, starting each
# level from where the last ended. At large $\sigma$ the modes overlap and the chains
# redistribute themselves by weight; as $\sigma$ shrinks they settle into the modes. Here
# the scores are exact (the noised mixture); with a learned score at each level this is
# Song & Ermon's NCSN sampler. The step size at each level is proportional to the
# variance of each noised component, $s^2 + \sigma_i^2$ (Song & Ermon's Algorithm 1 uses
# $\sigma_i^2$; their last level is not 0).

# %%
two_modes = GaussianMixture(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]), 0.4, torch.tensor([0.8, 0.2]))
n_chains, steps_per_level, levels = (
    2000,
    100,
    torch.tensor([4.0, 2.5, 1.6, 1.0, 0.6, 0.35, 0.2, 0.1, 0.05, 0.0]),
)
start_points = 8 * torch.rand(n_chains, 2, generator=torch.Generator().manual_seed(3)) - 4
torch.manual_seed(3)
plain, annealed = [start_points], [start_points]
x_plain, x_annealed = start_points, start_points
for level in levels.tolist():
    at_level = two_modes.scaled(1.0, level)  # p convolved with N(0, level^2 I)
    h = 0.05 * at_level.std**2  # step proportional to this level's variance
    for _ in range(steps_per_level):
        x_plain = flow_matching.langevin_step(
            two_modes.score, x_plain, 0.05 * 0.4**2, torch.randn_like(x_plain)
        )
        x_annealed = flow_matching.langevin_step(
            at_level.score, x_annealed, h, torch.randn_like(x_annealed)
        )
    plain.append(x_plain)
    annealed.append(x_annealed)
heavy_plain = float((x_plain[:, 0] < 0).float().mean())
heavy_annealed = float((x_annealed[:, 0] < 0).float().mean())
print(
    f"share in the heavy mode (target 0.80) after {len(levels) * steps_per_level} steps: "
    f"Langevin {heavy_plain:.3f}, annealed Langevin {heavy_annealed:.3f}"
)
print(f"within-mode std (target 0.40): Langevin {x_plain[x_plain[:, 0] < 0, 1].std():.3f}, "
      f"annealed {x_annealed[x_annealed[:, 0] < 0, 1].std():.3f}")  # fmt: skip
start_share = float((start_points[:, 0] < 0).float().mean())
assert abs(heavy_plain - start_share) < 0.05 and abs(heavy_annealed - 0.8) < 0.03  # see the text

# %% [markdown]
# ### Widget: Langevin step by step
#
# The slider moves along the two chains above, one kept state per noise level (100
# steps each): 0 is the start, uniform on $[-4, 4]^2$. The titles give the share of
# chains nearest to each mode. Plain Langevin keeps the split of its uniform start (the
# cell above asserts it) for ever; annealed Langevin moves chains across while the noise
# level is high.

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda step: flow_matching.langevin_figure(
        {"Langevin (exact score)": torch.stack(plain),
         f"annealed Langevin, sigma = {levels[0]:g} ... 0": torch.stack(annealed)},
        step, two_modes,
    ),
    step=(0, len(levels), 1),
)  # fmt: skip

# %% [markdown]
# ## 3. Diffusion as an SDE
#
# *Song et al. (2021) run time from data to noise. In this section their time is written
# $s$, and ours is $t = 1 - s$.*
#
# Lecture 04's forward step is $x_i = \sqrt{1 - \beta_i}\,x_{i-1} + \sqrt{\beta_i}\,z_i$
# for $i = 1, \dots, T$, from the data ($i = 0$) to the noise. Write $\beta_i =
# \beta(s)\,\Delta s$ with $s = i/T$ and $\Delta s = 1/T$. Since $\sqrt{1 - \beta(s)\Delta
# s} = 1 - \tfrac12\beta(s)\,\Delta s + O(\Delta s^2)$,
#
# $$x_{s + \Delta s} - x_s \approx -\tfrac12\beta(s)\,x_s\,\Delta s + \sqrt{\beta(s)\,\Delta s}\;z,$$
#
# which is the Euler–Maruyama step of the **variance-preserving SDE** (Song et al., 2021)
#
# $$dx = \underbrace{-\tfrac12\beta(s)\,x}_{f(x, s)}\,ds + \underbrace{\sqrt{\beta(s)}}_{g(s)}\,dW, \qquad s \in [0, 1].$$
#
# Ho et al.'s $\beta_i$ from $10^{-4}$ to $0.02$ over $T = 1000$ steps is, up to
# $O(1/T)$, $\beta(s) = 0.1 + 19.9\,s$: Song et al.'s defaults $\beta_\text{min} = 0.1$,
# $\beta_\text{max} = 20$; and $\prod_{j \le i}(1 - \beta_j) \approx \exp(-\int_0^s \beta)$,
# since $\log(1 - \beta_j) = -\beta_j + O(\beta_j^2)$. In our time this is section 0's
# path with $\alpha_t = \sqrt{\bar\alpha(t)}$, $\sigma_t = \sqrt{1 - \bar\alpha(t)}$,
# $\bar\alpha(t) = \exp(-\int_0^{1-t} \beta)$, which grows from nearly 0 at the noise to 1
# at the data (`flow_matching.VpSde`, which takes our $t$).
#
# **Reversing time.** Anderson (1982): the process run backwards, from $s = 1$ to $0$, is
# again a diffusion, with the score in its drift: $dx = [f - g^2\,\nabla_x \log p]\,ds +
# g\,d\bar W$ with $ds < 0$. Written in our time ($dt = -ds > 0$, $f$ and $g$ taken at $s
# = 1 - t$), the generative SDE runs forward:
#
# $$dx = \big[-f(x) + g^2\,\nabla_x \log p_t(x)\big]\,dt + g\,dW.$$
#
# **The probability-flow ODE.** The marginals of the forward SDE obey the Fokker–Planck
# equation $\partial_s p = -\nabla\!\cdot(f p) + \tfrac12 g^2 \Delta p$. Since $\Delta p =
# \nabla\!\cdot(p \nabla \log p)$, this is $\partial_s p = -\nabla\!\cdot\big[(f - \tfrac12
# g^2 \nabla \log p)\,p\big]$: the continuity equation of the **deterministic** flow
# $dx/ds = f - \tfrac12 g^2 \nabla \log p$ (Song et al., 2021, section 4.3), in our time
#
# $$\frac{dx}{dt} = -f(x) + \tfrac12\,g^2\,\nabla_x \log p_t(x) = \tfrac12\beta\,\big(x + \nabla_x \log p_t(x)\big),$$
#
# which has the same marginals $p_t$ at every $t$. It is section 0's velocity of the VP
# path: there $\dot\alpha_t/\alpha_t = \tfrac12\beta$ and $\sigma_t\dot\sigma_t = -\tfrac12\beta\bar\alpha$,
# so $\sigma_t^2\dot\alpha_t/\alpha_t - \dot\sigma_t\sigma_t = \tfrac12\beta$. So there are two
# samplers from one score: the reverse SDE and the ODE. A check with the exact score of
# the noised ring (`VpSde.marginal`): run both from the same noise $x_0 \sim \mathcal{N}(0,
# I)$ at $t = 0$, 500 steps to $t = 0.999$, and compare their samples at several $t$ with
# fresh samples of the exact $p_t$, by the total variation between 2D histograms (40×40
# bins over $[-3, 3]^2$; two independent exact sample sets give the noise floor).

# %%
sde = VpSde()
exact_score = lambda x, t: sde.marginal(ring, t).score(x)  # noqa: E731
torch.manual_seed(4)
x_noise = torch.randn(20_000, 2)  # x0 at t = 0
sde_path = diffusion.sampled_path(sde.reverse, exact_score, x_noise, 500)  # [501, 20000, 2]
ode_path = diffusion.sampled_path(sde.reverse, exact_score, x_noise, 500, ode=True)
times = [i * 0.999 / 500 for i in range(501)]  # our t, from the noise to t_end = 0.999


def histogram_tv(a: torch.Tensor, b: torch.Tensor) -> float:
    """Total variation between the 40x40 histograms of two 2D sample sets on [-3, 3]^2."""
    ha, hb = (
        torch.histogramdd(s.clamp(-3, 2.999), bins=[40, 40], range=[-3, 3, -3, 3])[0]
        for s in (a, b)
    )
    return 0.5 * float((ha / ha.sum() - hb / hb.sum()).abs().sum())


shown = [100, 300, 400, 450, 500]  # step indices: t = 0.2, 0.6, 0.8, 0.9, 0.999
fig, axes = plt.subplots(3, len(shown), figsize=(2.6 * len(shown), 8))
print(f"{'t':>6}{'TV(SDE, exact)':>16}{'TV(ODE, exact)':>16}{'TV(exact, exact)':>18}")
for col, k in enumerate(shown):
    t = times[k]
    exact_a, exact_b = (
        sde.marginal(ring, t).sample(20_000, torch.Generator().manual_seed(s)) for s in (5, 6)
    )
    tvs = [histogram_tv(p, exact_a) for p in (sde_path[k], ode_path[k], exact_b)]
    print(f"{t:>6.3f}{tvs[0]:>16.3f}{tvs[1]:>16.3f}{tvs[2]:>18.3f}")
    # the text below: both within the histograms' own noise, the SDE a little above at the end
    assert max(tvs[:2]) - tvs[2] < (0.02 if k == shown[-1] else 0.01)
    for row, (name, samples) in enumerate(
        (
            ("reverse SDE", sde_path[k]),
            ("probability-flow ODE", ode_path[k]),
            ("exact $p_t$", exact_a),
        )
    ):
        axes[row, col].hist2d(*samples.T.numpy(), bins=60, range=[[-3, 3], [-3, 3]], cmap="Blues")
        axes[row, col].set_title(f"{name}\nt = {t:.3f}", fontsize=9)
        axes[row, col].set_aspect("equal")
        axes[row, col].set_xlabel("coordinate 1")
        axes[row, col].set_ylabel("coordinate 2")
plt.tight_layout()
plt.show()

# %% [markdown]
# Both samplers reproduce $p_t$ to within the histogram's own noise at every $t$, except
# for a small excess of the SDE's at the last step (Euler–Maruyama near the data). They
# differ per sample: the SDE's paths are random, the ODE's are a deterministic map from
# the noise $x_0$ to a sample — which is what lets us use any ODE solver, and take big
# steps.
#
# ## 4. DDIM is an Euler step of the probability-flow ODE
#
# Put lecture 04's network into the ODE. With $\nabla \log p_t(x) = -\epsilon_\theta(x,
# t)/\sqrt{1 - \bar\alpha(t)}$ (Tweedie, section 1) the probability-flow ODE of section 3
# is, in our time,
#
# $$\frac{dx}{dt} = \tfrac12\beta\Big[x - \frac{\epsilon_\theta(x, t)}{\sqrt{1 - \bar\alpha(t)}}\Big].$$
#
# (The network itself keeps lecture 04's integer steps: its step $i$ of $T$ is our $t = 1 -
# i/T$.) Change variables (Song, Meng & Ermon, 2021, section 4.3) to $\bar x =
# x/\sqrt{\bar\alpha} = x/\alpha_t$ and the noise-to-signal ratio $\bar\sigma =
# \sqrt{(1 - \bar\alpha)/\bar\alpha} = \sigma_t/\alpha_t$ (the DDIM paper and Karras et al.
# call it $\sigma$, and the DDIM paper writes $\alpha_t$ for our $\bar\alpha$; the bar keeps
# it apart from section 0's $\sigma_t$). Then $\bar x = x_1 + \bar\sigma\epsilon$: section 1's
# variance-exploding perturbation of the data at noise level $\bar\sigma$, where
# $\epsilon = -\bar\sigma\,\nabla_{\bar x} \log p$. In our time $\bar\alpha$ grows,
# $d\bar\alpha/dt = \beta\bar\alpha$, so
#
# $$\frac{d\bar x}{dt} = \frac{1}{\sqrt{\bar\alpha}}\frac{dx}{dt} - \frac{\beta}{2\sqrt{\bar\alpha}}\,x
# = -\frac{\beta\,\epsilon_\theta}{2\sqrt{\bar\alpha}\sqrt{1 - \bar\alpha}},
# \qquad
# \frac{d\bar\sigma}{dt} = \frac{1}{2\bar\sigma}\frac{d}{dt}\Big(\frac{1}{\bar\alpha} - 1\Big) = -\frac{\beta}{2\bar\alpha\,\bar\sigma}
# = -\frac{\beta}{2\sqrt{\bar\alpha}\sqrt{1 - \bar\alpha}},$$
#
# so the drift's linear part disappears and
#
# $$\frac{d\bar x}{d\bar\sigma} = \epsilon_\theta(x, t).$$
#
# One **Euler step** in $\bar\sigma$ from $t$ to the next time $t'$, towards the data,
# multiplied by $\sqrt{\bar\alpha_{t'}}$:
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\Big[\frac{x_t}{\sqrt{\bar\alpha_t}} + (\bar\sigma_{t'} - \bar\sigma_t)\,\epsilon_\theta\Big]
# = \sqrt{\bar\alpha_{t'}}\,\underbrace{\frac{x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon_\theta}{\sqrt{\bar\alpha_t}}}_{\hat x_1}
# + \sqrt{1 - \bar\alpha_{t'}}\;\epsilon_\theta,$$
#
# using $\sqrt{\bar\alpha}\,\bar\sigma = \sqrt{1 - \bar\alpha}$. Here $\hat x_1$ is the data
# prediction of section 0 (lecture 04 wrote it $\hat x_0$, in Ho et al.'s notation; in this
# lecture $x_0$ is the noise). That is DDIM's update with $\eta = 0$ (lecture 04, section
# 8), term for term. Numerically, on the shipped model:

# %%
ddpm = checkpoints.load_pretrained("ddpm_mnist", device=device)
alpha_bar = diffusion.alpha_bar_of(diffusion.betas_from(ddpm.meta["schedule"])).to(device)
torch.manual_seed(7)
x_T = torch.randn(16, 1, 28, 28, device=device)
ddim_10 = diffusion.sample_ddim(ddpm, x_T, alpha_bar, 10)
euler_10 = flow_matching.sample_ddim_euler(ddpm, x_T, alpha_bar, 10)
print(f"10 steps: max |DDIM - Euler in (x / sqrt(ab), sigma_bar)| = {(ddim_10 - euler_10).abs().max():.1e} "
      f"(pixels in [-1, 1])")  # fmt: skip

# %% [markdown]
# ### Better solvers for the same ODE
#
# Euler's error per step is $O(h^2)$, so its global error is $O(h)$. Two second-order
# alternatives that need no retraining:
#
# - **Heun** (Karras et al., 2022): predict with Euler, then take the average of the slopes
#   $\epsilon_\theta$ at both ends. Two evaluations per step, except the last step to
#   $\bar\sigma = 0$, which is plain Euler: $2S - 1$ evaluations for $S$ steps.
# - **DPM-Solver++(2M)** (Lu et al., 2022): in $\lambda = \log(\alpha_t/\sigma_t) =
#   \log(\sqrt{\bar\alpha}/\sqrt{1 - \bar\alpha})$ the ODE's linear part can be solved
#   exactly, leaving an integral of the data prediction $\hat x_1$ (Lu et al.'s
#   $x_\theta$); approximating $\hat x_1$ linearly through the current and the previous
#   step's prediction gives, with $h = \lambda_\text{next} - \lambda$ and $r =
#   h_\text{prev}/h$,
#   $$x_\text{next} = \frac{\sqrt{1 - \bar\alpha_\text{next}}}{\sqrt{1 - \bar\alpha}}\,x - \sqrt{\bar\alpha_\text{next}}\,(e^{-h} - 1)\,D,
#   \qquad D = \Big(1 + \frac{1}{2r}\Big)\hat x_1 - \frac{1}{2r}\,\hat x_1^\text{prev}:$$
#   second order at **one** evaluation per step, by reusing the last one. (With
#   $D = \hat x_1$ it is exactly DDIM again.)
#
# How fast does each converge to the ODE's true solution? Measure the error against a
# fine solution (DPM-Solver++(2M), 250 steps) from the same $x_T$, as a function of the
# network evaluations spent, on a log–log plot.

# %%
start = time.perf_counter()
reference = flow_matching.sample_dpm_solver_2m(ddpm, x_T[:8], alpha_bar, 250)
solvers = {
    "DDIM (Euler)": (flow_matching.sample_ddim_euler, lambda nfe: nfe),
    "Heun": (flow_matching.sample_ddim_heun, lambda nfe: (nfe + 1) // 2),
    "DPM-Solver++(2M)": (flow_matching.sample_dpm_solver_2m, lambda nfe: nfe),
}
budgets = [5, 9, 19, 49]
errors = {name: [] for name in solvers}
for name, (solve, steps_for) in solvers.items():
    for nfe in budgets:
        x = solve(ddpm, x_T[:8], alpha_bar, steps_for(nfe))
        errors[name].append(float((x - reference).square().mean().sqrt()))
print(f"solver convergence: {time.perf_counter() - start:.1f} s")
print(f"{'evaluations':<18}" + "".join(f"{n:>8}" for n in budgets))
for name, values in errors.items():
    print(f"{name:<18}" + "".join(f"{v:>8.3f}" for v in values))
fig, ax = plt.subplots(figsize=(5.5, 4))
for name, values in errors.items():
    ax.loglog(budgets, values, "o-", label=name)
ax.set_xlabel("network evaluations")
ax.set_ylabel("RMS distance to the fine ODE solution")
ax.set_title("Solving the probability-flow ODE of the DDPM model")
ax.legend()
plt.show()
three_steps = torch.linspace(len(alpha_bar) - 1, 0, 3).round().long()
sigma_bar = [float(((1 - alpha_bar[t]) / alpha_bar[t]).sqrt()) for t in three_steps]
print("sigma_bar = sqrt((1 - ab) / ab) at Heun's 3-step grid:",
      [round(v, 3) for v in sigma_bar], f"then 0; first interval h / 2 = {(sigma_bar[0] - sigma_bar[1]) / 2:.1f}")  # fmt: skip
by_budget = {n: {name: errors[name][k] for name in errors} for k, n in enumerate(budgets)}
# what the text below says, asserted so that a change of model or grid fails here
assert all(min(by_budget[n], key=by_budget[n].get) == "DDIM (Euler)" for n in (5, 9))
assert all(min(by_budget[n], key=by_budget[n].get) == "DPM-Solver++(2M)" for n in (19, 49))
assert all(by_budget[n]["Heun"] > by_budget[n]["DDIM (Euler)"] for n in (5, 9, 19))
assert by_budget[49]["Heun"] < by_budget[49]["DDIM (Euler)"]
assert sigma_bar[0] > 10 * sigma_bar[1]

# %% [markdown]
# DPM-Solver++(2M) has the steepest slope and is the most accurate from 19 evaluations
# on; at 5–9 evaluations on this grid (evenly spaced in $t$) plain DDIM is still closest,
# and Heun is worse than Euler until 49. Asymptotically the slope is the order (the
# reference is DPM-Solver++ itself, which favours it slightly). Heun's collapse at 5
# evaluations is not a bug: on the 3-step grid printed above, its first interval runs
# from the first $\bar\sigma$ printed to the second, more than ten times smaller.
# The Euler predictor lands on DDIM's point, a normal input for the network, but the
# corrector weights the change of $\epsilon_\theta$ between the two ends by $h/2$ (printed),
# although $\epsilon_\theta$ varies on the scale of $\bar\sigma$ itself: the corrected $x$
# lies far from anything the network was trained on, and the next evaluation is made
# there. A higher order pays only once the steps are small enough for the Taylor
# expansion to hold; Karras et al. (2022) space the steps evenly in $\bar\sigma^{1/7}$ for
# this reason, and DPM-Solver sidesteps it by solving the linear part exactly in
# $\lambda$.
#
# ## 5. Flow matching
#
# The probability-flow ODE is one deterministic path from noise to data, found by way of
# an SDE and a score. **Flow matching** (Lipman et al., 2023; as **rectified flow**, Liu
# et al., 2023; as **stochastic interpolants**, Albergo & Vanden-Eijnden, 2023) chooses
# the path first and regresses its velocity directly.
#
# **Conditional paths.** Pick a path between a noise sample and one data point $x_1$, for
# instance the straight line $x_t = (1 - t)\,x_0 + t\,x_1$, $x_0 \sim \mathcal{N}(0, I)$
# (exercise 05.4). Given $x_1$ it has the conditional law $p_t(x \mid x_1) = \mathcal{N}(x;
# t x_1, (1 - t)^2 I)$ and the velocity $u_t(x \mid x_1) = \frac{d x_t}{dt} = x_1 - x_0 =
# \frac{x_1 - x}{1 - t}$ (exercise 05.5). Averaging over the data gives the **marginal
# path** $p_t(x) = \int p_t(x \mid x_1)\,q(x_1)\,dx_1$, from $p_0 = \mathcal{N}(0, I)$ to
# $p_1 = q$ (blurred by nothing: the line ends at $x_1$), and the **marginal velocity**
#
# $$u_t(x) = \mathbb{E}\big[u_t(x_t \mid x_1) \,\big|\, x_t = x\big] = \int u_t(x \mid x_1)\,\frac{p_t(x \mid x_1)\,q(x_1)}{p_t(x)}\,dx_1 .$$
#
# It generates the marginal path: each $p_t(\cdot \mid x_1)$ satisfies the continuity
# equation $\partial_t p_t(x \mid x_1) + \nabla\!\cdot\big(p_t(x \mid x_1)\,u_t(x \mid
# x_1)\big) = 0$, and integrating it against $q(x_1)$ gives $\partial_t p_t +
# \nabla\!\cdot(p_t u_t) = 0$, by the definition of $u_t$. So integrating $dx/dt =
# u_t(x)$ from $x_0 \sim \mathcal{N}(0, I)$ lands on the data distribution.
#
# **The loss.** $u_t(x)$ is intractable (it averages over the whole dataset), but it need
# not be computed. The flow matching loss and the **conditional** flow matching loss
#
# $$\mathcal{L}_\text{FM}(\theta) = \mathbb{E}_{t, x_t}\big\|v_\theta(x_t, t) - u_t(x_t)\big\|^2,
# \qquad
# \mathcal{L}_\text{CFM}(\theta) = \mathbb{E}_{t, x_1, x_0}\big\|v_\theta(x_t, t) - (x_1 - x_0)\big\|^2$$
#
# have the same gradient (Lipman et al., Theorem 2): expand both squares; the
# $\|v_\theta\|^2$ terms are equal, the targets' squares do not involve $\theta$, and the
# cross terms agree by the tower rule,
# $\mathbb{E}\langle v_\theta(x_t, t), x_1 - x_0\rangle = \mathbb{E}\big\langle v_\theta(x_t, t),
# \mathbb{E}[x_1 - x_0 \mid x_t]\big\rangle = \mathbb{E}\langle v_\theta(x_t, t), u_t(x_t)\rangle$
# — the same argument as denoising score matching in section 1. With $t \sim U[0, 1]$
# drawn per example, this is exercise 05.6's `flow_matching_loss`: a regression, no
# schedule, no SDE.
#
# **Other paths.** Any path of section 0, $x_t = \alpha_t\,x_1 + \sigma_t\,x_0$, works, with
# conditional velocity $\frac{d x_t}{dt} = \dot\alpha_t x_1 + \dot\sigma_t x_0$. The
# diffusion path of section 3 is $\alpha_t = \sqrt{\bar\alpha(t)}$, $\sigma_t = \sqrt{1 -
# \bar\alpha(t)}$ (with $\bar\alpha(t) = \exp(-\int_0^{1-t}\beta)$ in our time); its regression target
# mixes $x_1$ and $x_0$ with weights that change fast near the ends, and its paths bend.
# The linear path is the displacement interpolation between $x_0$ and $x_1$ (optimal
# transport between the two points, not between the distributions).
#
# Training on the ring is quick (the cell prints its time). Since the ring is a Gaussian mixture, the marginal
# velocity $u_t(x)$ has a closed form (`GaussianMixture.velocity`: given the component,
# $x_1$ and $x_t$ are jointly Gaussian), so we can check what the network learned.

# %%
torch.manual_seed(0)
v_net = FieldMlp().to(device)
start = time.perf_counter()
fit(lambda x: flow_matching.flow_matching_loss(v_net, x),
    torch.optim.Adam(v_net.parameters(), lr=2e-3), ring_train, batch_size=256, steps=3000,
    progress=False)  # fmt: skip
v_net.eval()
print(f"flow matching on the ring, 3000 steps: {time.perf_counter() - start:.1f} s")
g = torch.Generator().manual_seed(8)
x0_probe, x1_probe = torch.randn(5000, 2, generator=g), ring.sample(5000, g)
for t in (0.1, 0.5, 0.9):
    times_t = torch.full((5000,), t)
    x_t = flow_matching.interpolant(x0_probe, x1_probe, times_t)
    with torch.no_grad():
        learned = v_net(x_t.to(device), times_t.to(device)).cpu()
    exact = ring.velocity(x_t, times_t)
    print(
        f"t = {t}: relative error of the learned velocity on samples of p_t: "
        f"{(learned - exact).norm() / exact.norm():.3f}"
    )

# %% [markdown]
# ### Widget: the probability path
#
# The slider moves $t$ from noise (0) to data (1): the blue points are samples of $p_t$,
# the arrows the learned velocity $v_\theta(\cdot, t)$ and, for comparison, the exact
# marginal velocity $u_t$. Early on every arrow points roughly at the ring's centre of
# mass; near $t = 1$ the field splits into eight basins, one per mode, and grows large
# between them ($u_t = (\mathbb{E}[x_1 \mid x_t] - x_t)/(1 - t)$).

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    learned_field = lambda x, t: v_net(x.to(device), t.to(device)).cpu()  # noqa: E731
widgets.figure_widget(
    lambda t: flow_matching.probability_path_figure(
        x0_probe[:2000], x1_probe[:2000], t,
        {"learned $v_\\theta$": learned_field, "exact $u_t$": ring.velocity},
    ),
    t=(0.0, 0.95, 0.05),
)  # fmt: skip

# %% [markdown]
# ### Straight paths sample in few steps
#
# What makes an ODE cheap to solve is not only how the path looks but how it is run: one
# Euler step is exact on a straight line travelled at constant speed. Liu et al. (2023)
# measure exactly that, $S = \int_0^1 \mathbb{E}\|(x_1 - x_0) - \dot x_t\|^2 dt$,
# here divided by $\mathbb{E}\|x_1 - x_0\|^2$ (`flow_matching.straightness`: 0 for
# straight, constant-speed paths). The conditional paths have $S = 0$; the marginal ones
# do not, because where conditional lines cross, $u_t$ averages them and the flow bends.
# Compare the exact flows of both paths on the ring, from the same noise, and what that
# means for Euler's error at a few steps, against a 1000-step solution:

# %%
x_start = torch.randn(2000, 2, generator=torch.Generator().manual_seed(9))
fm_paths = diffusion.sampled_path(flow_matching.euler_sample, ring.velocity, x_start, 1000)
vp_paths = diffusion.sampled_path(sde.reverse, exact_score, x_start, 1000, ode=True)


def chord_over_length(paths: torch.Tensor) -> float:
    """Mean |x_end - x_start| / path length: 1 for straight lines, whatever their speed."""
    return float(
        ((paths[-1] - paths[0]).norm(dim=1) / (paths[1:] - paths[:-1]).norm(dim=2).sum(0)).mean()
    )


def vp_euler_in_sigma(n: int, t_end: float = 0.999) -> torch.Tensor:
    """The VP ODE by Euler in DDIM's variables (section 4): d xbar / d sigma_bar = eps, with
    eps = -sqrt(1 - ab) * score, on n steps evenly spaced in t from 0 to t_end."""
    ts = [i * t_end / n for i in range(n + 1)]
    ab = [sde.alpha_bar(t) for t in ts]
    sig = [math.sqrt((1 - a) / a) for a in ab]
    xbar = x_start / math.sqrt(ab[0])
    for i in range(n):
        eps = -math.sqrt(1 - ab[i]) * exact_score(xbar * math.sqrt(ab[i]), ts[i])
        xbar = xbar + (sig[i + 1] - sig[i]) * eps
    return xbar * math.sqrt(ab[-1])


print(f"{'exact flow':<30}{'S':>7}{'chord/length':>14}   mean distance to the 1000-step solution")
print(f"{'':<51}" + "".join(f"{f'{n} steps':>10}" for n in (2, 4, 8, 16)))
euler_error = {}  # name -> mean distance at 2, 4, 8, 16 steps
for name, paths, solve in (
    (
        "flow matching, Euler in t",
        fm_paths,
        lambda n: flow_matching.euler_sample(ring.velocity, x_start, n),
    ),
    ("VP ODE, Euler in t", vp_paths, lambda n: sde.reverse(exact_score, x_start, n, ode=True)),
    ("VP ODE, Euler in sigma (DDIM)", vp_paths, vp_euler_in_sigma),
):
    euler_error[name] = [float((solve(n) - paths[-1]).norm(dim=1).mean()) for n in (2, 4, 8, 16)]
    print(f"{name:<30}{flow_matching.straightness(paths):>7.2f}{chord_over_length(paths):>14.2f}"
          + "".join(f"{e:>10.3f}" for e in euler_error[name]))  # fmt: skip
fm_err, vp_t_err, vp_sigma_err = euler_error.values()
worse_in_sigma = sum(s > t for s, t in zip(vp_sigma_err, vp_t_err, strict=True))
print(f"Euler in sigma_bar vs Euler in t on the VP ODE: worse at {worse_in_sigma} of 4 step counts, "
      f"by a factor {min(s / t for s, t in zip(vp_sigma_err, vp_t_err, strict=True)):.2f} to "
      f"{max(s / t for s, t in zip(vp_sigma_err, vp_t_err, strict=True)):.2f}")  # fmt: skip
assert all(f < t for f, t in zip(fm_err, vp_t_err, strict=True))  # the text below says so
assert worse_in_sigma == 4  # and this
for name, paths in (("flow matching", fm_paths), ("VP ODE", vp_paths)):
    speed = (paths[1:] - paths[:-1]).norm(dim=2).mean(1) * 1000  # mean |dx/dt| at each step
    print(
        f"mean speed per tenth of the time, noise to data, {name:<14}:",
        " ".join(f"{float(c.mean()):.2f}" for c in speed.chunk(10)),
    )
fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
for ax, (name, paths) in zip(
    axes,
    (("flow matching, linear path", fm_paths), ("VP-SDE probability-flow ODE", vp_paths)),
    strict=True,
):
    for i in range(40):
        ax.plot(paths[:, i, 0], paths[:, i, 1], color="tab:blue", lw=0.7, alpha=0.7)
    ax.scatter(paths[0, :40, 0], paths[0, :40, 1], s=8, color="k", label="noise")
    ax.scatter(paths[-1, :40, 0], paths[-1, :40, 1], s=8, color="tab:red", label="sample")
    ax.set_title(f"{name}\nstraightness S = {flow_matching.straightness(paths):.2f}")
    ax.set_xlabel("coordinate 1")
    ax.set_ylabel("coordinate 2")
    ax.set_aspect("equal")
    ax.legend(loc="upper right")
plt.tight_layout()
plt.show()

# %% [markdown]
# Geometrically the flow-matching paths are *not* straighter here (many first head for
# the ring's centre of mass, where $u_0(x) = \mathbb{E}[x_1] - x$ points, then turn out to
# a mode), but they are run at a much steadier speed: the VP ODE barely moves for the
# first third of its time, while $\bar\alpha$ is still nearly 0, and does most of its
# travel in the last half. That is what $S$ sees, and what Euler in $t$ pays for: with
# the same number of steps, its error on the VP ODE is larger at every step count above.
# The last row solves the same VP paths in DDIM's variables of section 4, on the same
# grid in $t$ ($S$ and chord/length are measured in $t$, so they are the VP ODE's): it is
# *worse* than Euler in $t$ at every step count measured (the count and the factors are
# printed, and asserted), so the change of variables alone does not give the VP ODE what
# the linear path has by construction: on this grid, evenly spaced in $t$, the first step
# in $\bar\sigma$ spans most of the noise levels at once.
#
# Few-step sampling with the *learned* field: Euler and Heun (exercises 05.7–05.8) at a
# few network evaluations, scored by the Chamfer distance to held-out data (mean distance
# from each sample to its nearest data point, plus the reverse). One reflow round (Liu et
# al., 2023: retrain on the model's own (noise, sample) pairs, which straightens the
# paths further) is reported to improve the 1–2-step numbers; we stop here.


# %%
def chamfer(a: torch.Tensor, b: torch.Tensor) -> float:
    d = torch.cdist(a, b)
    return float(d.min(1).values.mean() + d.min(0).values.mean())


ring_test = ring.sample(2000, torch.Generator().manual_seed(10))
x_noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(11)).to(device)
print(
    f"{'evaluations':<13}{'Euler':>8}{'Heun':>8}   (fresh data: {chamfer(ring.sample(2000), ring_test):.3f})"
)
for nfe in (1, 2, 4, 10, 50):
    euler = chamfer(flow_matching.euler_sample(v_net, x_noise, nfe).cpu(), ring_test)
    heun = (
        chamfer(flow_matching.heun_sample(v_net, x_noise, nfe // 2).cpu(), ring_test)
        if nfe > 1
        else math.nan
    )
    print(f"{nfe:<13}{euler:>8.3f}{heun:>8.3f}")

# %% [markdown]
# ### From velocity to score: a stochastic sampler
#
# Section 0's conversions turn the velocity model into a score model,
# $s_\theta(x, t) = (t\,v_\theta(x, t) - x)/(1 - t)$, and with a score there is a whole
# family of samplers. For any $g_t \ge 0$ the SDE
#
# $$dx = \big[v_t(x) + \tfrac12 g_t^2\,\nabla \log p_t(x)\big]\,dt + g_t\,dW$$
#
# has the same marginals $p_t$ as the ODE $dx/dt = v_t(x)$: in its Fokker–Planck equation
# $\partial_t p = -\nabla\!\cdot(p\,v) - \tfrac12 g^2\,\nabla\!\cdot(p\,\nabla \log p) +
# \tfrac12 g^2 \Delta p$ the last two terms cancel, since $p\,\nabla \log p = \nabla p$. (This
# is how MIT's 6.S184 turns a flow into an SDE; section 3's reverse SDE is the case
# $g^2 = \beta$ of the VP path, whose drift $-f + g^2 s$ is the ODE's $-f + \tfrac12 g^2
# s$ plus $\tfrac12 g^2 s$.) The added score drift and noise are a Langevin step of section 2
# at the current $p_t$: they pull the samples back towards $p_t$ where the ODE's errors
# have pushed them off. We take $g_t^2 = \gamma\,(1 - t)$, which vanishes at the data, so
# that $\tfrac12 g_t^2\,s_\theta = \tfrac12\gamma\,(t\,v_\theta - x)$ stays finite at $t = 1$
# (`flow_matching.sde_sample`, Euler–Maruyama, one network evaluation per step, $\gamma$
# the `churn`). The learned $v_\theta$ on the ring drives both, from the same noise and
# with the same evaluations, scored by the histogram total variation of section 3 against
# exact samples of the ring:

# %%
ring_exact = ring.sample(6000, torch.Generator().manual_seed(17))
tv_floor = histogram_tv(ring.sample(6000, torch.Generator().manual_seed(18)), ring_exact)
x_sde = torch.randn(6000, 2, generator=torch.Generator().manual_seed(19)).to(device)
churns = (1.0, 4.0)
sampler_names = ["ODE (Euler)"] + [f"SDE, churn {c:g}" for c in churns]
step_counts = (5, 10, 20, 50)
samples_at, tv = {}, {name: [] for name in sampler_names}
start = time.perf_counter()
for steps in step_counts:
    samples_at[steps, sampler_names[0]] = flow_matching.euler_sample(v_net, x_sde, steps).cpu()
    for name, churn in zip(sampler_names[1:], churns, strict=True):
        torch.manual_seed(20)
        samples_at[steps, name] = flow_matching.sde_sample(v_net, x_sde, steps, churn).cpu()
    for name in sampler_names:
        tv[name].append(histogram_tv(samples_at[steps, name], ring_exact))
print(f"ODE and SDE samplers on the learned velocity: {time.perf_counter() - start:.1f} s")
print(f"TV to exact ring samples (two exact sets: {tv_floor:.3f})")
print(f"{'evaluations':<20}" + "".join(f"{n:>8}" for n in step_counts))
for name in sampler_names:
    print(f"{name:<20}" + "".join(f"{v:>8.3f}" for v in tv[name]))
fig, axes = plt.subplots(1, 4, figsize=(14, 3.9))
for ax, (title, points) in zip(axes, [("exact ring samples", ring_exact)] + [
        (f"{name}, 20 evaluations\nTV {tv[name][step_counts.index(20)]:.3f}", samples_at[20, name])
        for name in sampler_names], strict=True):  # fmt: skip
    ax.hist2d(*points.T.numpy(), bins=60, range=[[-3, 3], [-3, 3]], cmap="Blues")
    ax.set_title(title)
    ax.set_xlabel("coordinate 1")
    ax.set_ylabel("coordinate 2")
    ax.set_aspect("equal")
plt.tight_layout()
plt.show()
ode_tv, mild_tv, strong_tv = tv.values()
assert all(m < o for m, o in zip(mild_tv, ode_tv, strict=True))  # the text below says so
assert strong_tv[0] > max(ode_tv[0], mild_tv[0])

# %% [markdown]
# With a mild churn the SDE is closer to the data than the ODE at every step count above:
# the flow-matching model is the same, only the sampler differs, and the Langevin part
# pulls samples that the learned field's errors carried off $p_t$ back towards it. A
# strong churn is worst at the fewest steps: Euler–Maruyama's error grows with the noise
# it injects, so more noise needs smaller steps. (Karras et al., 2022,
# tune the "churn" of their stochastic sampler for the same reason.) On MNIST the same conversion applies to
# `FlowMatchingUnet` unchanged: `flow_matching.sde_sample(fm_model, noise, steps, churn)`.
#
# ## 6. The likelihood of a continuous flow
#
# A flow-matching model is a **continuous normalizing flow** (Chen et al., 2018): the ODE
# $dx/dt = v_\theta(x, t)$ is an invertible map from $x_0$ to $x_1$, so it has an exact
# likelihood, as lecture 03's flows do, with the log-determinant replaced by an integral.
# Along a solution $x_t$ the density obeys the continuity equation $\partial_t p_t = -\nabla
# \!\cdot(p_t v) = -\langle \nabla p_t, v\rangle - p_t\,\nabla\!\cdot v$; the total
# derivative along the path adds $\langle \nabla p_t, v\rangle$ back:
#
# $$\frac{d}{dt}\log p_t(x_t) = \frac{\partial_t p_t + \langle \nabla p_t, v\rangle}{p_t} = -\nabla\!\cdot v(x_t, t)
# \qquad\Longrightarrow\qquad
# \log p_1(x_1) = \log \mathcal{N}(x_0; 0, I) - \int_0^1 \nabla\!\cdot v(x_t, t)\,dt,$$
#
# where $x_0$ is found by integrating the ODE **backwards** from the data point $x_1$.
# (This is the instantaneous change of variables; the divergence is the trace of the
# Jacobian $\partial v/\partial x$, the continuous-time $\log|\det|$.)
# `flow_matching.log_likelihood` integrates $x$ and the divergence together with Heun's
# method. First a check where the answer is known: for data $\mathcal{N}(\mu, s^2 I)$ the
# exact marginal velocity is available (`GaussianMixture.velocity` with one component).

# %%
gaussian = GaussianMixture(torch.tensor([[1.0, -2.0]]), 0.5)
x_check = gaussian.sample(5, torch.Generator().manual_seed(12))
print("log p(x), exact            :", gaussian.log_prob(x_check).numpy().round(4).tolist())
print(
    "log p(x), ODE, 100 steps   :",
    flow_matching.log_likelihood(gaussian.velocity, x_check, steps=100).numpy().round(4).tolist(),
)

# %% [markdown]
# **The divergence in high dimension.** The exact divergence $\sum_i \partial v_i/\partial
# x_i$ costs one backward pass per dimension: 784 for an MNIST image, at every step.
# Hutchinson's estimator replaces it with one vector–Jacobian product: for a random
# $z$ with $\mathbb{E}[z z^\top] = I$ (Rademacher $\pm 1$ entries, or Gaussian),
# $\mathbb{E}[z^\top J z] = \operatorname{tr}(J\,\mathbb{E}[z z^\top]) = \operatorname{tr} J$
# (FFJORD, Grathwohl et al., 2019). It is unbiased, so the log-likelihood estimate is
# too, but noisy; keeping the same $z$ along the whole path (as FFJORD does) keeps the
# ODE deterministic.
#
# We measure both on the 8×8 digits, under the protocol of lectures 01 and 03 (train on
# the first 1000, report the test images): a velocity MLP trained with flow matching on
# uniformly dequantized pixels, $y = 2\,(x + u)/17 - 1$ with $u \sim U[0, 1)^{64}$. The
# change of variables from $y$ back to $x + u$ adds $64 \log(2/17)$, and averaging over
# $u$ bounds the discrete likelihood as in lecture 03:
# $-\log P(x) \le \mathbb{E}_u[-\log p(x + u)]$.


# %%
class DigitsVelocity(nn.Module):
    """v(y, t) for 64-d digits: an MLP on y and 32 sinusoidal features of t."""

    def __init__(self, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64 + 32, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 64))  # fmt: skip

    def forward(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * torch.exp(math.log(1000.0) * torch.arange(16, device=y.device) / 16)
        return self.net(torch.cat([y, angles.sin(), angles.cos()], dim=1))


def dequantized(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pixels 0..16 -> y = 2 (x + u) / 17 - 1 in [-1, 1), u ~ U[0, 1) per pixel."""
    return 2 * (x + torch.rand(x.shape, generator=generator).to(x.device)) / 17 - 1


digits_train, _, digits_test = data.digits_protocol(device)
torch.manual_seed(0)
digits_net = DigitsVelocity().to(device)
start = time.perf_counter()
fit(lambda x: flow_matching.flow_matching_loss(digits_net, dequantized(x)),
    torch.optim.Adam(digits_net.parameters(), lr=1e-3), digits_train, batch_size=128,
    steps=DIGITS_STEPS, progress=False)  # fmt: skip
digits_net.eval()
print(f"flow matching on the digits, {DIGITS_STEPS} steps: {time.perf_counter() - start:.1f} s")
y_test = dequantized(digits_test, torch.Generator().manual_seed(13))
start = time.perf_counter()
exact_ll = flow_matching.log_likelihood(digits_net, y_test, steps=20)
exact_seconds = time.perf_counter() - start
nll = -(exact_ll + 64 * math.log(2 / 17))  # nats per image, for x + u
start = time.perf_counter()
probe_g = torch.Generator().manual_seed(14)
hutchinson_ll = torch.stack([flow_matching.log_likelihood(digits_net, y_test, steps=20, hutchinson=True, generator=probe_g)
                             for _ in range(4)])  # fmt: skip
hutchinson_seconds = (time.perf_counter() - start) / 4
vae_metrics = checkpoints.shipped_state("vae_digits")[1]["metrics"]
flow_metrics = checkpoints.shipped_state("flow_digits")[1]["metrics"]
print(f"test NLL, {len(digits_test)} digits (nats per image; bits/dim = nats / (64 ln 2)):")
print(
    f"  flow matching (ODE, 20 Heun steps, exact divergence): {nll.mean():.2f} nats = "
    f"{nll.mean() / (64 * math.log(2)):.3f} bits/dim, {exact_seconds:.1f} s"
)
print(f"  lecture 01's VAE: -ELBO {vae_metrics['test_neg_elbo']:.2f}, IWAE-1000 {vae_metrics['test_iwae_nll_k1000']:.2f}; "
      f"lecture 03's RealNVP: {flow_metrics['test_nll']:.2f}")  # fmt: skip
spread = hutchinson_ll.std(0).mean()
print(f"Hutchinson (one Rademacher probe per path): {hutchinson_seconds:.1f} s, std of a single image's "
      f"estimate {spread:.2f} nats, of the test mean {hutchinson_ll.mean(1).std():.2f} nats; "
      f"mean {-(hutchinson_ll.mean() + 64 * math.log(2 / 17)):.2f}")  # fmt: skip
finer = -(flow_matching.log_likelihood(digits_net, y_test[:100], steps=40) + 64 * math.log(2 / 17))
print(
    f"ODE discretization, first 100 test digits: 20 steps {nll[:100].mean():.2f} nats, "
    f"40 steps {finer.mean():.2f} nats"
)
# the text below, asserted: worse than the likelihood-trained models; Hutchinson cheaper,
# and noisier per image than over the test mean
assert nll.mean() > max(flow_metrics["test_nll"], vae_metrics["test_iwae_nll_k1000"])
assert hutchinson_seconds < exact_seconds and spread > hutchinson_ll.mean(1).std()

# %% [markdown]
# Flow matching is trained by regression, not by maximum likelihood, and it shows: its
# likelihood is worse than that of the models trained for it. Hutchinson's estimate is
# much cheaper, and its noise averages out over a test set, but a single image's estimate
# is too noisy to compare two images by.
#
# ## 7. MNIST: flow matching against DDPM at equal cost
#
# The shipped model (`course_utils.flow_matching.FlowMatchingUnet`) is lecture 04's U-Net
# with the same widths, the same training loop and the same label dropout
# (classifier-free guidance works unchanged: `diffusion.guided` combines two velocity
# predictions as it did two noise predictions); the loss is exercise 05.6's
# `flow_matching_loss`, with $t$ fed to the network as $1000\,t$. It trained for fewer
# epochs than the DDPM model (both printed below), which handicaps it in the comparison.
# Samples from the same noise at a few budgets of network evaluations (NFE):

# %%
fm_model = checkpoints.load_pretrained("fm_mnist", device=device)
print("shipped metadata:", {k: round(v, 3) for k, v in fm_model.meta["metrics"].items()})
print(f"epochs: flow matching {fm_model.meta['metrics']['epochs']:.0f}, "
      f"DDPM {ddpm.meta['metrics']['epochs']:.0f}")  # fmt: skip
torch.manual_seed(15)
noise = torch.randn(16, 1, 28, 28, device=device)
fig, axes = plt.subplots(1, 5, figsize=(13, 3))
for ax, nfe in zip(axes, (1, 2, 4, 10, 50), strict=True):
    images = flow_matching.euler_sample(fm_model, noise, nfe)
    viz.show_images(data.to_unit(images), f"flow matching, Euler\n{nfe} evaluations", nrow=4, ax=ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# **Guidance.** The guided velocity $(1 + w)\,v_\theta(x, t, y) - w\,v_\theta(x, t,
# \varnothing)$, 10 Euler steps, one row per requested digit:

# %%
wanted = torch.arange(10, device=device).repeat_interleave(8)
torch.manual_seed(16)
guided_images = flow_matching.euler_sample(
    diffusion.guided(fm_model, wanted, 2.0), torch.randn(80, 1, 28, 28, device=device), 10
)
viz.show_images(
    data.to_unit(guided_images), "flow matching, guided (w = 2), 10 Euler steps: rows 0-9", nrow=8
)
plt.show()

# %% [markdown]
# ### Widget: quality per network evaluation
#
# The slider sets the budget of network evaluations; each panel spends it from the same
# 16 starting noises: DDIM and DPM-Solver++(2M) on lecture 04's DDPM model, Euler and Heun
# on the flow-matching model (Heun spends two per step, so it needs an even budget). At
# 1–2 evaluations DDIM returns a blurry average digit, the data prediction $\hat x_1$
# (section 0) from pure noise; flow matching's single Euler step from $t = 0$ lands on
# $x_0 + u_0(x_0) = \hat x_1 = \mathbb{E}[x_1]$, the same mean digit for every noise.

# %%
budgets_shown = [1, 2, 4, 6, 8, 10, 20]
start = time.perf_counter()
with torch.no_grad():
    by_sampler = {
        "DDIM (DDPM model)": {n: flow_matching.sample_ddim_euler(ddpm, noise, alpha_bar, n) for n in budgets_shown},
        "DPM-Solver++(2M) (DDPM model)": {n: flow_matching.sample_dpm_solver_2m(ddpm, noise, alpha_bar, n) for n in budgets_shown},
        "Euler (flow matching)": {n: flow_matching.euler_sample(fm_model, noise, n) for n in budgets_shown},
        "Heun (flow matching)": {n: flow_matching.heun_sample(fm_model, noise, n // 2) if n % 2 == 0 else None
                                for n in budgets_shown},
    }  # fmt: skip
print(f"{len(budgets_shown)} budgets x 4 samplers: {time.perf_counter() - start:.1f} s")

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(lambda nfe: flow_matching.steps_figure(by_sampler, nfe), nfe=budgets_shown)

# %% [markdown]
# ### The benchmark: FID per network evaluation
#
# The widget shows 16 digits; `course bench sampling` scores 1000 per case with the FID on
# the course classifier's features (lecture 00), from the same noise for every solver,
# next to DDPM's 1000-step stochastic sampler (lecture 04's benchmark). Its shipped
# results, not rerun here (the cell prints the sampling time the run measured):

# %%
sampling_bench = flow_matching.load_sampling_bench()
print("\n".join(flow_matching.format_sampling_bench(sampling_bench)))
sampling_seconds = sum(r["seconds_per_1000"] * r["samples"] / 1000 for r in sampling_bench["rows"])
print(f"sampling time of the run, summed over its cases (one thread each): "
      f"{sampling_seconds / 60:.0f} CPU minutes, on {sampling_bench['machine']}")  # fmt: skip

# %% [markdown]
# ## Summary
#
# - The score $\nabla_x \log p$ needs no normalizing constant. Denoising score matching
#   learns the score of noised data by regression on $-(\tilde x - x)/\sigma^2$, and by
#   Tweedie's formula a noise predictor is a score model: $\nabla \log p_t(x_t) =
#   -\epsilon_\theta/\sigma_t$ ($\sigma$ for a variance-exploding perturbation,
#   $\sqrt{1 - \bar\alpha_t}$ for lecture 04's variance-preserving one).
# - One convention: noise $x_0$ at $t = 0$, data $x_1$ at $t = 1$, $x_t = \alpha_t x_1 +
#   \sigma_t x_0$. Noise prediction, data prediction, score and velocity are four views of
#   one network; the conversions between them are exact.
# - Langevin dynamics samples with a score but mixes poorly between separated modes;
#   annealing over noise levels fixes the weights.
# - DDPM discretizes the VP-SDE. Its reverse-time SDE and its probability-flow ODE share
#   the marginals $p_t$; DDIM is exactly Euler's method on that ODE in $(x/\sqrt{\bar\alpha},
#   \bar\sigma)$, and better ODE solvers (DPM-Solver++(2M)) converge faster once the steps are
#   small enough, with no retraining.
# - Flow matching regresses the conditional velocity $x_1 - x_0$ of a chosen path; the
#   conditional loss has the marginal loss's gradient. The linear path runs at a steadier
#   speed than the VP ODE, so Euler is more accurate at few steps. Through the score, the
#   same velocity model drives an SDE sampler with the same marginals.
# - A flow-matching model is a continuous normalizing flow with an exact likelihood,
#   $\log p_1(x_1) = \log p_0(x_0) - \int \nabla\!\cdot v\,dt$; Hutchinson's estimator makes
#   its divergence cheap, at the price of variance.
#
# **Further reading.** Vincent (2011), *A Connection Between Score Matching and Denoising
# Autoencoders*; Song & Ermon (2019), *Generative Modeling by Estimating Gradients of the
# Data Distribution*; Song et al. (2021), *Score-Based Generative Modeling through
# Stochastic Differential Equations*; Karras et al. (2022), *Elucidating the Design Space
# of Diffusion-Based Generative Models*; Lu et al. (2022), *DPM-Solver++*; Lipman et al.
# (2023), *Flow Matching for Generative Modeling*; Liu et al. (2023), *Flow Straight and
# Fast*; Albergo & Vanden-Eijnden (2023), *Building Normalizing Flows with Stochastic
# Interpolants*; Grathwohl et al. (2019), *FFJORD*; Lipman et al. (2024), *Flow Matching
# Guide and Code*.
