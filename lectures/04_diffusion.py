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
# # Lecture 04 — Diffusion models
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/lectures/04_diffusion.ipynb)
#
# A VAE learns an encoder and a decoder; a flow learns one invertible map. A **diffusion
# model** fixes the encoder: it destroys the data by adding Gaussian noise in $T$ small
# steps, $x_0 \to x_1 \to \dots \to x_T$, until nothing but noise is left, and learns to
# undo one small step at a time. Each learned step is a simple Gaussian denoiser, yet the
# chain of $T$ of them generates images as good as any GAN's (Ho et al., 2020), with a
# training loss as plain as regression.
#
# Seen from lecture 01, it is a **hierarchical VAE** with $T$ latent layers
# $x_1, \dots, x_T$, each of the same size as the data, where the encoder
# $q(x_t \mid x_{t-1})$ has no parameters and the decoders $p_\theta(x_{t-1} \mid x_t)$
# share one network.
#
# This lecture:
#
# 1. the forward process and its closed form $q(x_t \mid x_0)$;
# 2. noise schedules (linear, cosine), by $\bar\alpha_t$ and the signal-to-noise ratio;
#    widget: noising a digit;
# 3. the reverse process and the ELBO, term by term;
# 4. the posterior $q(x_{t-1} \mid x_t, x_0)$, derived and checked;
# 5. the $\epsilon$-parameterization and $L_\text{simple}$;
# 6. Algorithms 1 and 2, line by line, on the swiss roll;
# 7. a U-Net on MNIST; widget: denoising step by step;
# 8. DDIM: sampling in fewer steps, and the steps-vs-quality benchmark;
# 9. conditioning with classifier-free guidance, and latent diffusion.
#
# The README's table of lectures gives this one's measured run time on a laptop CPU; the
# MNIST model is a shipped checkpoint (`python -m course_utils.pretrain ddpm` retrains it;
# section 7 prints how long that took).
#
# **Notation.** The formulas follow Ho et al.: steps $t = 1, \dots, T$, $\alpha_t = 1 -
# \beta_t$, $\bar\alpha_t = \prod_{s=1}^t \alpha_s$. Python counts from 0, and the code
# departs from the paper here, as `course_utils.diffusion` and the exercises do: the time
# index is `t = 0, ..., T-1`, index `t` is the paper's step $t + 1$, and `alpha_bar[t]` is
# $\bar\alpha_{t+1}$. A printout or a title that names a step gives the paper's $t$.

# %%
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

from course_utils import checkpoints, data, diffusion, metrics, viz, widgets
from course_utils.device import get_device
from course_utils.train import fit

device = get_device()
torch.manual_seed(0)
RETRAIN = False  # True: train the MNIST U-Net here (section 7 prints the shipped run's time)

# %% [markdown]
# ## 1. The forward process
#
# Each step shrinks the signal a little and adds a little noise:
#
# $$q(x_t \mid x_{t-1}) = \mathcal{N}\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big),
# \qquad q(x_{1:T} \mid x_0) = \prod_{t=1}^T q(x_t \mid x_{t-1}),$$
#
# with small variances $\beta_1 < \dots < \beta_T$. The factor $\sqrt{1 - \beta_t}$ keeps
# the variance in check: if $x_{t-1}$ has unit variance, so does $x_t$.
#
# **Closed form.** We never need to run the chain: for every $t$,
#
# $$q(x_t \mid x_0) = \mathcal{N}\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big),
# \quad\text{i.e.}\quad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,
# \ \ \epsilon \sim \mathcal{N}(0, I).$$
#
# *Proof by induction.* For $t = 1$ it is the definition ($\bar\alpha_1 = \alpha_1 =
# 1 - \beta_1$). Suppose it holds at $t - 1$: $x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,x_0 +
# \sqrt{1-\bar\alpha_{t-1}}\,\bar\epsilon$. One more step, with fresh noise $\epsilon_t$:
#
# $$x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_t
# = \sqrt{\bar\alpha_t}\,x_0 + \underbrace{\sqrt{\alpha_t(1-\bar\alpha_{t-1})}\,\bar\epsilon
# + \sqrt{1-\alpha_t}\,\epsilon_t}_{\text{independent Gaussians}}.$$
#
# A sum of independent zero-mean Gaussians is Gaussian with the sum of the variances:
# $\alpha_t(1-\bar\alpha_{t-1}) + 1 - \alpha_t = 1 - \alpha_t\bar\alpha_{t-1} = 1 -
# \bar\alpha_t$. $\square$
#
# In code, `t` is the array index of the paper's step $t + 1$ (see Notation above). The
# lecture keeps its schedule in float64, because $1 - \bar\alpha_t$ for small $t$ loses
# digits in float32; exercise 04 and `course_utils` return float32 schedules, the
# precision the networks compute in. The cell measures what float32 costs: a relative
# error in $1 - \bar\alpha_t$ far below anything a network's $\epsilon_\theta$ gets right,
# so both choices are sound; float64 matters where a result is a small difference of
# numbers near 1, like $L_T$ below.

# %%
T = 1000
betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)  # Ho et al.'s beta_1 ... beta_T
alphas = 1 - betas  # alpha_t = 1 - beta_t
alpha_bar = torch.cumprod(alphas, dim=0)  # alpha_bar_t = prod_{s <= t} alpha_s
alpha_bar_32 = torch.cumprod(1 - betas.float(), dim=0)
error_32 = ((1 - alpha_bar_32.double()) / (1 - alpha_bar) - 1).abs()
print(f"float32 schedule: relative error of 1 - alpha_bar_t up to {error_32.max():.1e} "
      f"(at t = {int(error_32.argmax()) + 1}); {error_32[:10].max():.1e} over t <= 10")  # fmt: skip


def q_sample(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, for the indices t [B]."""
    ab = alpha_bar.to(x0)[t].view(-1, *[1] * (x0.dim() - 1))  # x0's device and dtype
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


# %% [markdown]
# **Checked by simulation.** Run 100,000 chains of 1D data step by step from $x_0 = 1.5$
# and compare the mean and variance of $x_t$ with $\sqrt{\bar\alpha_t}\,x_0$ and
# $1 - \bar\alpha_t$.

# %%
x0_value, chains = 1.5, 100_000
x = torch.full((chains,), x0_value)
print(f"{'t':>5}{'chain mean':>12}{'closed form':>13}{'chain var':>11}{'closed form':>13}")
for t in range(T):
    x = alphas[t].sqrt() * x + betas[t].sqrt() * torch.randn(chains)  # one step of q
    if t + 1 in (1, 10, 100, 300, 600, 1000):
        print(f"{t + 1:>5}{x.mean():>12.4f}{alpha_bar[t].sqrt() * x0_value:>13.4f}"
              f"{x.var():>11.4f}{1 - alpha_bar[t]:>13.4f}")  # fmt: skip
closed = q_sample(torch.full((chains,), x0_value), torch.full((chains,), T - 1),
                  torch.randn(chains))  # fmt: skip
print(f"closed-form samples at t = {T}: mean {closed.mean():.4f}, var {closed.var():.4f}")

# %% [markdown]
# The agreement is within Monte Carlo error (the standard error of the mean is about
# $\sqrt{\text{var}/10^5} \approx 0.003$). At $t = T$ the signal is gone:
# $\sqrt{\bar\alpha_T} \approx 0.006$, so $q(x_T \mid x_0) \approx \mathcal{N}(0, I)$ for
# any $x_0$. That is what lets the reverse process start from pure noise.
#
# ## 2. Noise schedules
#
# The schedule decides how fast information is destroyed. Ho et al. use $\beta_t$
# linear from $10^{-4}$ to $0.02$. Nichol & Dhariwal (2021) noticed that with it the last
# quarter of the steps see almost pure noise, and proposed the **cosine** schedule, defined
# through $\bar\alpha_t$ directly:
#
# $$\bar\alpha_t = \frac{f(t)}{f(0)}, \qquad f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}
# \cdot \frac{\pi}{2}\Big), \quad s = 0.008,$$
#
# with the implied $\beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1}$ clipped at 0.999 (at
# $t = T$, $f(T) = 0$ and $\beta_T$ would be 1).
#
# A good way to compare schedules is the **signal-to-noise ratio** of $x_t$,
# $\text{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$: the variance of the signal
# part over the variance of the noise part. Kingma et al. (2021) show that **in
# continuous time** ($T \to \infty$) the ELBO depends on the schedule only through SNR at
# the two ends; the shape in between decides where the model spends its effort. (With a
# finite $T$, as here, the shape changes the ELBO too.)

# %%
schedules = {"linear": alpha_bar, "cosine": diffusion.cosine_alpha_bar(T)}
steps = torch.arange(1, T + 1)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for name, ab in schedules.items():
    axes[0].plot(steps, ab, label=name)
    axes[1].plot(steps, torch.log(ab / (1 - ab)), label=name)
    half = int((ab < 0.5).nonzero()[0]) + 1  # first step with SNR < 1
    print(f"{name:>7}: SNR falls below 1 at t = {half:4d}; alpha_bar_T = {ab[-1]:.2e}; "
          f"steps with alpha_bar < 0.01: {int((ab < 0.01).sum())}")  # fmt: skip
axes[0].set(title=r"$\bar\alpha_t$: the signal's share of the variance", xlabel="step t",
            ylabel=r"$\bar\alpha_t$")  # fmt: skip
axes[1].set(title="log signal-to-noise ratio", xlabel="step t",
            ylabel=r"$\log \bar\alpha_t / (1 - \bar\alpha_t)$")  # fmt: skip
for ax in axes:
    ax.legend()
plt.show()

# %% [markdown]
# The printout puts numbers on the picture: with the linear schedule the signal's share
# falls below 1% well before the end, so many steps are spent on near-pure noise; the
# cosine schedule destroys information more evenly (its log-SNR is close to linear in $t$
# over most of the range).
#
# ### Widget: noising a digit
#
# Move $t$: the digit $x_t$ under both schedules (the same noise $\epsilon$), the
# histogram of its pixels and $\bar\alpha_t$. The slider and the titles count as the
# paper does, $t = 1, \dots, T$ (the arrays' index is $t - 1$). Pixels are scaled to
# $[-1, 1]$, as the model sees them. Watch the histogram go from two spikes (background and ink) to one
# standard normal.

# %%
x_mnist, y_mnist = data.mnist("train", device=device)
x_mnist_test, _ = data.mnist("test", device=device)
digit = 2 * x_mnist[0].cpu() - 1  # [1, 28, 28] in [-1, 1]

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(lambda t: diffusion.noising_figure(digit, t, schedules), t=(1, T, 1))

# %% [markdown]
# ## 3. The reverse process and the ELBO
#
# To generate, run the chain backwards. If the $\beta_t$ are small, each reverse step
# $q(x_{t-1} \mid x_t)$ is close to a Gaussian (Feller, 1949; Sohl-Dickstein et al.,
# 2015), but it depends on the whole data distribution, so we learn it:
#
# $$p_\theta(x_{0:T}) = p(x_T)\prod_{t=1}^T p_\theta(x_{t-1} \mid x_t), \qquad
# p(x_T) = \mathcal{N}(0, I), \qquad
# p_\theta(x_{t-1} \mid x_t) = \mathcal{N}\big(\mu_\theta(x_t, t), \sigma_t^2 I\big).$$
#
# As in a VAE, $x_{1:T}$ are latent variables with "encoder" $q(x_{1:T} \mid x_0)$, and
# Jensen's inequality bounds the negative log-likelihood:
#
# $$-\log p_\theta(x_0) \le \mathbb{E}_q\Big[-\log \frac{p_\theta(x_{0:T})}{q(x_{1:T}
# \mid x_0)}\Big] =: L.$$
#
# (Notation: lecture 01 wrote $\mathcal{L}$ for the ELBO, a lower bound on $\log p$; here,
# as in Ho et al., $L = -\text{ELBO}$ is an upper bound on $-\log p$, to be minimized.)
#
# **Rewriting $L$ as KL divergences.** By the Markov property $q(x_t \mid x_{t-1}) =
# q(x_t \mid x_{t-1}, x_0)$, and by Bayes' rule, for $t \ge 2$,
#
# $$q(x_t \mid x_{t-1}, x_0) = \frac{q(x_{t-1} \mid x_t, x_0)\, q(x_t \mid x_0)}{q(x_{t-1}
# \mid x_0)}.$$
#
# Line by line. Write out the joint and split off the $t = 1$ term:
#
# $$L = \mathbb{E}_q\Big[-\log p(x_T) - \sum_{t=2}^{T} \log \frac{p_\theta(x_{t-1} \mid
#   x_t)}{q(x_t \mid x_{t-1})} - \log \frac{p_\theta(x_0 \mid x_1)}{q(x_1 \mid x_0)}\Big].$$
#
# Replace each $q(x_t \mid x_{t-1})$, $t \ge 2$, by Bayes' rule above; the log of the
# product splits into two sums:
#
# $$L = \mathbb{E}_q\Big[-\log p(x_T) - \sum_{t=2}^{T} \log \frac{p_\theta(x_{t-1} \mid
#   x_t)}{q(x_{t-1} \mid x_t, x_0)} - \sum_{t=2}^{T} \log \frac{q(x_{t-1} \mid
#   x_0)}{q(x_t \mid x_0)} - \log \frac{p_\theta(x_0 \mid x_1)}{q(x_1 \mid x_0)}\Big].$$
#
# The second sum **telescopes**: its terms are $\log q(x_1 \mid x_0) - \log q(x_2 \mid
# x_0) + \log q(x_2 \mid x_0) - \dots - \log q(x_T \mid x_0)$, so only $\log q(x_1 \mid
# x_0) - \log q(x_T \mid x_0)$ survives:
#
# $$L = \mathbb{E}_q\Big[-\log p(x_T) - \sum_{t=2}^{T} \log \frac{p_\theta(x_{t-1} \mid
#   x_t)}{q(x_{t-1} \mid x_t, x_0)} - \log q(x_1 \mid x_0) + \log q(x_T \mid x_0) - \log
#   p_\theta(x_0 \mid x_1) + \log q(x_1 \mid x_0)\Big].$$
#
# The two $\log q(x_1 \mid x_0)$ cancel; gather $\log q(x_T \mid x_0) - \log p(x_T)$:
#
# $$L = \mathbb{E}_q\Big[\log \frac{q(x_T \mid x_0)}{p(x_T)} + \sum_{t=2}^{T} \log
#   \frac{q(x_{t-1} \mid x_t, x_0)}{p_\theta(x_{t-1} \mid x_t)} - \log p_\theta(x_0 \mid
#   x_1)\Big].$$
#
# Finally, the expectation of each log-ratio over the variable in its numerator is a KL
# divergence: $\mathbb{E}_{q(x_T \mid x_0)}$ of the first is $D_\text{KL}(q(x_T \mid x_0)
# \,\|\, p(x_T))$, and $\mathbb{E}_{q(x_{t-1} \mid x_t, x_0)}$ of the $t$-th, inside the
# expectation over $x_t$, is a KL between the two reverse steps. This gives Ho et al.'s
# eq. 5:
#
# $$L = \mathbb{E}_q\Big[\underbrace{D_\text{KL}\big(q(x_T \mid x_0)\,\|\,p(x_T)\big)}_{L_T}
# + \sum_{t=2}^T \underbrace{D_\text{KL}\big(q(x_{t-1} \mid x_t, x_0)\,\|\,p_\theta(x_{t-1}
# \mid x_t)\big)}_{L_{t-1}} \underbrace{- \log p_\theta(x_0 \mid x_1)}_{L_0}\Big].$$
#
# - $L_T$ has no parameters: the forward process ends near $\mathcal{N}(0, I)$.
# - Each $L_{t-1}$ compares the learned step with the **posterior** $q(x_{t-1} \mid
#   x_t, x_0)$: the true reverse step *when $x_0$ is known*. It is Gaussian (next
#   section), so each term is a KL between Gaussians, in closed form: no Monte Carlo over
#   $x_{t-1}$.
# - $L_0$ is a decoder likelihood, as in a VAE (Ho et al. discretize it to the 256 pixel
#   levels).
#
# How large is $L_T$ for a real digit? Per pixel, $D_\text{KL}(\mathcal{N}(m, v)\,\|\,
# \mathcal{N}(0, 1)) = \tfrac12(m^2 + v - 1 - \log v)$ with $m = \sqrt{\bar\alpha_T}x_0$,
# $v = 1 - \bar\alpha_T$:

# %%
for name, ab in schedules.items():
    m, v = ab[-1].double().sqrt() * digit, 1 - ab[-1].double()  # float64: v is 1 - 2e-9
    L_T = (0.5 * (m**2 + v - 1 - torch.log(v))).sum()
    print(f"{name:>7} schedule: L_T = {L_T:.2e} nats for the whole image")

# %% [markdown]
# Negligible, and fixed: training can ignore it.
#
# ## 4. The posterior $q(x_{t-1} \mid x_t, x_0)$
#
# By Bayes' rule, $q(x_{t-1} \mid x_t, x_0) \propto q(x_t \mid x_{t-1})\,q(x_{t-1} \mid
# x_0)$, a product of two Gaussians in $x_{t-1}$. Per coordinate, the exponent is
#
# $$-\frac12\Big[\frac{(x_t - \sqrt{\alpha_t}\,x_{t-1})^2}{\beta_t} + \frac{(x_{t-1} -
# \sqrt{\bar\alpha_{t-1}}\,x_0)^2}{1 - \bar\alpha_{t-1}}\Big].$$
#
# Collect the powers of $x_{t-1}$. The coefficient of $-\tfrac12 x_{t-1}^2$ is the
# precision
#
# $$\frac{\alpha_t}{\beta_t} + \frac{1}{1 - \bar\alpha_{t-1}} = \frac{\alpha_t(1 -
# \bar\alpha_{t-1}) + \beta_t}{\beta_t(1 - \bar\alpha_{t-1})} = \frac{1 -
# \bar\alpha_t}{\beta_t(1 - \bar\alpha_{t-1})}
# \quad\Longrightarrow\quad \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 -
# \bar\alpha_t}\,\beta_t,$$
#
# (using $\alpha_t + \beta_t = 1$), and the mean is the variance times the coefficient of
# $x_{t-1}$, $\frac{\sqrt{\alpha_t}}{\beta_t}x_t + \frac{\sqrt{\bar\alpha_{t-1}}}{1 -
# \bar\alpha_{t-1}}x_0$:
#
# $$\tilde\mu_t(x_t, x_0) = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}\,x_0
# + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\,x_t,
# \qquad q(x_{t-1} \mid x_t, x_0) = \mathcal{N}\big(\tilde\mu_t(x_t, x_0),
# \tilde\beta_t I\big)$$
#
# (Ho et al., eqs. 6–7; $\bar\alpha_0 = 1$, so at $t = 1$ the posterior is a point mass
# at $x_0$.)

# %%
alpha_bar_prev = torch.cat([torch.ones(1), alpha_bar[:-1]])  # alpha_bar_{t-1}; alpha_bar_0 = 1


def posterior(x0: torch.Tensor, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, float]:
    """Mean mu~_t(x_t, x0) and variance beta~_t of q(x_{t-1} | x_t, x0) at index t."""
    beta, ab, ab_prev = betas[t], alpha_bar[t], alpha_bar_prev[t]
    mean = ab_prev.sqrt() * beta / (1 - ab) * x0 + alphas[t].sqrt() * (1 - ab_prev) / (1 - ab) * x_t
    return mean, float((1 - ab_prev) / (1 - ab) * beta)


# %% [markdown]
# **Checked by Monte Carlo.** Simulate many pairs $(x_{t-1}, x_t)$ from $x_0$: draw
# $x_{t-1} \sim q(x_{t-1} \mid x_0)$ with the closed form, then one forward step. Keep
# the pairs whose $x_t$ lands in a narrow window around a chosen value $a$: their
# $x_{t-1}$ are samples of $q(x_{t-1} \mid x_t \approx a, x_0)$.

# %%
x0_value, pairs, window = 1.0, 6_000_000, 0.002
print(f"{'t':>5}{'x_t':>6}{'kept':>8}{'MC mean':>10}{'formula':>10}{'MC var':>11}{'formula':>11}")
for t, a in ((9, 0.9), (99, 0.5), (499, 0.0)):  # the paper's t = 10, 100, 500
    x_prev = alpha_bar[t - 1].sqrt() * x0_value + (1 - alpha_bar[t - 1]).sqrt() * torch.randn(pairs)
    x_t = alphas[t].sqrt() * x_prev + betas[t].sqrt() * torch.randn(pairs)
    kept = x_prev[(x_t - a).abs() < window]
    mean, var = posterior(torch.tensor(x0_value), torch.tensor(a), t)
    print(f"{t + 1:>5}{a:>6}{len(kept):>8}{kept.mean():>10.4f}{mean:>10.4f}{kept.var():>11.2e}"
          f"{var:>11.2e}")  # fmt: skip
x0_one, x_t_one = (
    torch.tensor([x0_value], dtype=torch.float64),
    torch.tensor([0.5], dtype=torch.float64),
)
ref_mean, ref_var = diffusion.posterior_mean_variance(x0_one, x_t_one, torch.tensor([99]), betas)
our_mean, our_var = posterior(x0_one, x_t_one, 99)
print(f"course_utils.diffusion at t = 100, x_t = 0.5: mean {ref_mean.item():.6f} (ours "
      f"{our_mean.item():.6f}), variance {ref_var.item():.4e} (ours {our_var:.4e})")  # fmt: skip

# %% [markdown]
# The means agree to Monte Carlo error (about $\sqrt{\tilde\beta_t / \text{kept}}$) and
# the variances to a few percent. Note how small $\tilde\beta_t$ is next to $1 -
# \bar\alpha_{t-1}$: knowing $x_t$ pins $x_{t-1}$ down.
#
# ## 5. Predicting the noise: $L_\text{simple}$
#
# Both $q(x_{t-1} \mid x_t, x_0)$ and $p_\theta(x_{t-1} \mid x_t)$ are Gaussians; with
# the variance of $p_\theta$ fixed to $\sigma_t^2$, the KL is a squared distance between
# means:
#
# $$L_{t-1} = \mathbb{E}_q\Big[\frac{1}{2\sigma_t^2}\big\|\tilde\mu_t(x_t, x_0) -
# \mu_\theta(x_t, t)\big\|^2\Big] + C.$$
#
# Write $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon$ and
# substitute $x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon) / \sqrt{\bar\alpha_t}$ in
# $\tilde\mu_t$. The coefficient of $x_t$ becomes $\frac{\alpha_t(1 - \bar\alpha_{t-1}) +
# \beta_t}{(1 - \bar\alpha_t)\sqrt{\alpha_t}} = \frac{1}{\sqrt{\alpha_t}}$ (using
# $\sqrt{\bar\alpha_{t-1}/\bar\alpha_t} = 1/\sqrt{\alpha_t}$), so
#
# $$\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 -
# \bar\alpha_t}}\,\epsilon\Big).$$
#
# The mean to learn is $x_t$ minus a scaled copy of the noise that was added. Ho et al.
# therefore let the network predict the **noise**:
#
# $$\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 -
# \bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big)
# \quad\Longrightarrow\quad
# L_{t-1} - C = \mathbb{E}_{x_0, \epsilon}\Big[\underbrace{\frac{\beta_t^2}{2\sigma_t^2
# \alpha_t(1 - \bar\alpha_t)}}_{\lambda_t}\big\|\epsilon - \epsilon_\theta(\sqrt{\bar
# \alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon,\ t)\big\|^2\Big].$$
#
# The identity for $\tilde\mu_t$, checked on random numbers:

# %%
x0_check, eps_check = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
for t in (0, 10, 500, 999):
    x_t_check = q_sample(x0_check, torch.full((5,), t), eps_check)
    via_eps = (x_t_check - betas[t] / (1 - alpha_bar[t]).sqrt() * eps_check) / alphas[t].sqrt()
    gap = (posterior(x0_check, x_t_check, t)[0] - via_eps).abs().max()
    print(f"t = {t + 1:4d}: max |mu~(x_t, x0) - mu~ via eps| = {gap:.1e}")

# %% [markdown]
# **$L_\text{simple}$.** Ho et al. drop the weight $\lambda_t$ and sample $t$ uniformly:
#
# $$L_\text{simple}(\theta) = \mathbb{E}_{t \sim U\{1..T\},\, x_0,\, \epsilon}
# \big\|\epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,
# \epsilon,\ t)\big\|^2.$$
#
# It is a reweighted ELBO. With $\sigma_t^2 = \beta_t$ the ELBO's weight is
# $\lambda_t = \beta_t / (2\alpha_t(1 - \bar\alpha_t))$; the plot shows it is largest at
# small $t$, where denoising is easy. Dropping it moves the effort to the harder, noisier
# steps, which gave better samples (FID 3.17 against 13.51 for the true bound on
# CIFAR-10, Ho et al., Table 2), at the price of a worse likelihood.

# %%
lam = betas / (2 * alphas * (1 - alpha_bar))
fig, ax = plt.subplots(figsize=(6, 3.6))
ax.semilogy(steps, lam, label=r"ELBO weight $\lambda_t$ ($\sigma_t^2 = \beta_t$)")
ax.semilogy(steps, torch.ones(T), label=r"$L_\mathrm{simple}$: 1")
ax.set(title="How each step's noise error is weighted", xlabel="step t", ylabel="weight")
ax.legend()
plt.show()
print(f"lambda_1 = {lam[0]:.3f}, lambda_100 = {lam[99]:.4f}, lambda_T = {lam[-1]:.4f}")

# %% [markdown]
# ## 6. Algorithms 1 and 2, line by line
#
# | Algorithm 1 (training) | Algorithm 2 (sampling) |
# |---|---|
# | 1: **repeat** | 1: $x_T \sim \mathcal{N}(0, I)$ |
# | 2: $x_0 \sim q(x_0)$ | 2: **for** $t = T, \dots, 1$ **do** |
# | 3: $t \sim \text{Uniform}(\{1, \dots, T\})$ | 3: $z \sim \mathcal{N}(0, I)$ if $t > 1$, else $z = 0$ |
# | 4: $\epsilon \sim \mathcal{N}(0, I)$ | 4: $x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{1 - \alpha_t}{\sqrt{1 - \bar\alpha_t}}\epsilon_\theta(x_t, t)\big) + \sigma_t z$ |
# | 5: gradient step on $\nabla_\theta \big\|\epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1 - \bar\alpha_t}\epsilon, t)\big\|^2$ | 5: **end for** |
# | 6: **until** converged | 6: **return** $x_0$ |
#
# Line 4 of Algorithm 2 is $\mu_\theta$ from section 5 plus noise; we use $\sigma_t^2 =
# \beta_t$ (Ho et al. found $\tilde\beta_t$ equally good). The two functions below follow
# the numbering.


# %%
def algorithm_1_loss(eps_model: nn.Module, x0: torch.Tensor) -> torch.Tensor:
    """L_simple on a batch x0 [B, ...] (lines 2-5 of Algorithm 1; the caller steps)."""
    t = torch.randint(0, T, (len(x0),), device=x0.device)  # 3: t ~ U{1..T}, as indices
    eps = torch.randn_like(x0)  # 4: eps ~ N(0, I)
    return (eps - eps_model(q_sample(x0, t, eps), t)).square().mean()  # 5: ||eps - eps_theta||^2


@torch.no_grad()
def algorithm_2(
    eps_model: diffusion.EpsModel, x_T: torch.Tensor, keep_every: int = 0
) -> list[torch.Tensor]:
    """Sample from x_T (line 1 is the caller's); returns [x_T, ..., x_0] every `keep_every` steps
    (just [x_0] if 0)."""
    x, kept = x_T, []
    for t in range(T - 1, -1, -1):  # 2: for t = T, ..., 1 (indices T - 1, ..., 0)
        if keep_every and t % keep_every == keep_every - 1:
            kept.append(x)
        z = torch.randn_like(x) if t > 0 else torch.zeros_like(x)  # 3
        eps = eps_model(x, torch.full((len(x),), t, device=x.device))
        x = (x - (1 - alphas[t]) / (1 - alpha_bar[t]).sqrt() * eps) / alphas[t].sqrt() \
            + betas[t].sqrt() * z  # 4: sigma_t = sqrt(beta_t)  # fmt: skip
    return [*kept, x]  # 6: return x_0


# %% [markdown]
# ### A diffusion model on the swiss roll
#
# $\epsilon_\theta$ is an MLP that sees $x_t$ and a sinusoidal embedding of $t$ (the
# transformer's position encoding, `diffusion.timestep_embedding`: $\sin(t\,\omega_k)$ and
# $\cos(t\,\omega_k)$ at the 16 geometric frequencies $\omega_k = 1000^{-k/16}$), so one
# network serves all 1000 steps. The cell prints how long 12,000 steps of Algorithm 1
# take.


# %%
class EpsMlp(nn.Module):
    """eps_theta(x_t, t) for vectors: x_t [B, D] and index [B] -> predicted noise [B, D]."""

    def __init__(self, dim: int = 2, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + 32, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, dim),
        )  # fmt: skip

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t_emb = diffusion.timestep_embedding(t, 32, max_period=1000.0)  # U-Net's embedding, too
        return self.net(torch.cat([x_t, t_emb], dim=1))


roll = data.toy_2d("swissroll", 20_000, seed=0, device=device)
torch.manual_seed(0)
roll_model = EpsMlp().to(device)
start = time.perf_counter()
history = fit(lambda x: algorithm_1_loss(roll_model, x),
              torch.optim.Adam(roll_model.parameters(), lr=1e-3), roll, batch_size=256,
              steps=12_000, progress=False)  # fmt: skip
print(f"12,000 steps of Algorithm 1 in {time.perf_counter() - start:.1f} s; "
      f"L_simple over the last 200 steps: {sum(history['loss'][-200:]) / 200:.3f}")  # fmt: skip

# %% [markdown]
# Algorithm 2 from 2000 points of noise, keeping every 10th step. Our function and
# `course_utils.diffusion.sample_ddpm` draw the same noise in the same order, so from the
# same seed they return the same samples, up to float32 rounding:

# %%
roll_model.eval()
torch.manual_seed(1)
path = algorithm_2(roll_model, torch.randn(2000, 2, device=device), keep_every=10)
torch.manual_seed(1)
reference = diffusion.sample_ddpm(roll_model, torch.randn(2000, 2, device=device), betas)
print(f"max |ours - course_utils.diffusion.sample_ddpm| = {(path[-1] - reference).abs().max():.1e}")

fig, axes = plt.subplots(1, 6, figsize=(18, 3.3), sharex=True, sharey=True)
for ax, k in zip(axes, (0, 50, 80, 90, 100), strict=False):
    t_shown = T - 10 * k  # path[k] is x_t before step t = T - 10 k
    viz.scatter_2d(path[k], f"$x_{{{t_shown}}}$", ax=ax, lim=2.5)
viz.scatter_2d(roll[:2000], "data", ax=axes[5], lim=2.5, color="tab:green")
plt.show()
fig, ax = plt.subplots(figsize=(5, 5))
ax.scatter(*roll[:2000].T.cpu(), s=2, color="tab:green", alpha=0.3, label="data")
viz.plot_trajectories(
    torch.stack(path)[:, :10].cpu(), "Algorithm 2: 10 paths from $x_T$ (red) to $x_0$ (blue)", ax=ax
)
plt.show()

# %% [markdown]
# The cloud stays a blob for most of the steps and takes its shape in the last 200 or so,
# where the signal-to-noise ratio is high (section 2). The paths are jagged: every step
# of Algorithm 2 adds fresh noise $\sigma_t z$.
#
# ## 7. A U-Net on MNIST
#
# For images, $\epsilon_\theta$ is a **U-Net** (Ronneberger et al., 2015, as adapted by
# Ho et al.): convolutions at 28×28, 14×14 and 7×7, with skip connections from each
# resolution on the way down to the same resolution on the way up, so that the output
# can keep the input's fine detail. Each residual block adds an embedding of $t$ (the
# sinusoidal features through a small MLP) to its feature maps: one network, told which
# noise level it is looking at. The course's version is `course_utils.diffusion.DiffusionUnet`
# (widths 16, 32 and 64, 0.46 M parameters); section 9 explains its label input.
#
# Training is Algorithm 1 with pixels scaled to $[-1, 1]$, Adam (learning rate
# $5 \cdot 10^{-4}$), batch 64, for 250 epochs of the 4000 training digits (16,000 steps). Sampling uses an **exponential moving average** (EMA) of
# the weights, $\bar\theta \leftarrow 0.999\,\bar\theta + 0.001\,\theta$ after each step:
# the averaged network is smoother in $t$ and gives cleaner samples than the last iterate.
# Ho et al. use a decay of 0.9999 over 800,000 steps; that averages over the last
# $\sim 1/(1 - 0.9999) = 10{,}000$ steps, which would lag far behind a 16,000-step run, so
# the course uses 0.999 (about the last 1000 steps).

# %%
ddpm_state, ddpm_meta = checkpoints.shipped_state("ddpm_mnist")
# The checkpoint records the schedule it was trained with: it must be the one defined above.
assert ddpm_meta["schedule"] == {"kind": "linear", "T": T, "beta_start": 1e-4, "beta_end": 0.02}
unet = diffusion.DiffusionUnet(**ddpm_meta["config"]).to(device)
if RETRAIN:
    from course_utils.diffusion import train_ddpm

    train_ddpm(
        unet,
        x_mnist,
        y_mnist,
        alpha_bar.float().to(device),
        epochs=int(ddpm_meta["metrics"]["epochs"]),
    )
else:
    unet.load_state_dict(ddpm_state)
unet.eval()
print(f"U-Net: {sum(p.numel() for p in unet.parameters()):,} parameters; shipped metadata: "
      f"{ddpm_meta['metrics']['epochs']:.0f} epochs in {ddpm_meta['metrics']['train_seconds'] / 60:.0f} "
      f"min, final L_simple {ddpm_meta['metrics']['final_loss']:.4f}")  # fmt: skip


def eps_unet(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The U-Net as an unconditional eps_theta (no label)."""
    return unet(x_t, t)


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] (the checkpoint's pixel range) -> pixels [0, 1]: (x + 1) / 2."""
    return data.to_unit(x, ddpm_meta["pixel_range"])


# %% [markdown]
# Our Algorithm 2 with the U-Net: 1000 network evaluations for 16 digits.

# %%
torch.manual_seed(0)
start = time.perf_counter()
ddpm_digits = algorithm_2(eps_unet, torch.randn(16, 1, 28, 28, device=device))[-1]
print(f"Algorithm 2, 1000 steps, 16 digits: {time.perf_counter() - start:.1f} s")
viz.show_images(to_pixels(ddpm_digits), "DDPM samples (1000 steps)", nrow=8)
plt.show()

# %% [markdown]
# ### Widget: denoising step by step
#
# The network's noise prediction also gives a guess of the final image at every step:
# invert the closed form, $\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon_\theta(x_t,
# t)) / \sqrt{\bar\alpha_t}$. Move the slider along a stored trajectory of 8 digits: $x_t$
# and $\hat x_0$ for DDPM (1000 steps, 25 of them shown) and for DDIM (25 steps, next
# section) from the same $x_T$. The slider counts the 25 shown steps, from pure noise (1)
# to the final sample (25); the titles give the paper's $t$. Early guesses are blurry
# averages of digits; the identity of each digit is settled long before its strokes are
# sharp. The samplers return only the sample: the trajectory comes from wrapping the
# network in a `diffusion.Recorder`, which keeps every call, its $x_t$, $t$ and
# $\epsilon_\theta(x_t, t)$, and counts the network evaluations.

# %%
torch.manual_seed(2)
x_T = torch.randn(8, 1, 28, 28, device=device)
ddpm_net, ddim_net = diffusion.Recorder(eps_unet), diffusion.Recorder(eps_unet)
diffusion.sample_ddpm(ddpm_net, x_T, betas)
diffusion.sample_ddim(ddim_net, x_T, alpha_bar, steps=25)
shown_t = set(diffusion.ddim_times(alpha_bar, 25))  # DDPM shown at DDIM's 25 steps
ddpm_path = diffusion.denoising_steps(
    [e for e in ddpm_net.evaluations if int(e.t[0]) in shown_t], alpha_bar
)
ddim_path = diffusion.denoising_steps(ddim_net.evaluations, alpha_bar)
print(f"network evaluations: DDPM {len(ddpm_net.evaluations)}, DDIM {len(ddim_net.evaluations)}")
print("DDPM kept steps (paper's t):", [s.t + 1 for s in ddpm_path][:6], "...")
print("DDIM steps      (paper's t):", [s.t + 1 for s in ddim_path][:6], "...")

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda reverse_step: diffusion.denoising_figure(
        {"DDPM": ddpm_path, "DDIM": ddim_path}, reverse_step - 1, nrow=4
    ),
    reverse_step=(1, len(ddim_path), 1),
)

# %% [markdown]
# ## 8. Sampling is slow: DDIM
#
# 1000 network evaluations per sample is the price of small steps. Song, Meng & Ermon
# (2021) observed that $L_\text{simple}$ only involves the marginals $q(x_t \mid x_0)$, never
# the joint $q(x_{1:T} \mid x_0)$. Many forward processes share those marginals, including
# **non-Markovian** ones whose reverse step can skip ahead. Their family, indexed by
# $\sigma_t$, has the reverse update (DDIM, eq. 12, in this course's notation: **the DDIM
# paper writes $\alpha_t$ for what we call $\bar\alpha_t$**, the cumulative product):
#
# $$x_{t-1} = \sqrt{\bar\alpha_{t-1}}\,\underbrace{\hat x_0(x_t)}_{\text{predicted } x_0}
# + \underbrace{\sqrt{1 - \bar\alpha_{t-1} - \sigma_t^2}\;\epsilon_\theta(x_t, t)}_{\text{
# direction pointing to } x_t} + \underbrace{\sigma_t z}_{\text{random noise}},
# \qquad \sigma_t = \eta\sqrt{\frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}}\sqrt{1 -
# \frac{\bar\alpha_t}{\bar\alpha_{t-1}}}.$$
#
# - The same trained $\epsilon_\theta$ works for every member: no retraining.
# - $\eta = 1$ gives $\sigma_t^2 = \tilde\beta_t$: DDPM with the posterior variance.
# - $\eta = 0$ is **deterministic**: $x_T$ determines $x_0$ (an ODE solver in disguise,
#   Song et al., 2021b: lecture 05 derives it as Euler's method on the probability-flow
#   ODE), so nearby $x_T$ give similar digits.
# - The update only needs $\bar\alpha$ at the two times, so it can jump along a short
#   subsequence $\tau_S > \dots > \tau_1$ of the 1000 steps, with $\bar\alpha_{\tau_{i-1}}$
#   in place of $\bar\alpha_{t-1}$.
#
# Two checks: $\eta = 1$ on consecutive steps gives DDPM's $\tilde\beta_t$; and from the
# same $x_T$ our deterministic sampler matches `course_utils.diffusion.sample_ddim`.


# %%
def ddim_sample(
    eps_model: diffusion.EpsModel, x_T: torch.Tensor, S: int, eta: float = 0.0
) -> torch.Tensor:
    """DDIM along S evenly spaced indices from T - 1 down to 0, then to the data."""
    tau = torch.linspace(T - 1, 0, S).round().long().tolist()
    x = x_T
    for t, t_prev in zip(tau, [*tau[1:], -1], strict=True):
        ab, ab_prev = alpha_bar[t], alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
        eps = eps_model(x, torch.full((len(x),), t, device=x.device))
        x0_hat = (x - (1 - ab).sqrt() * eps) / ab.sqrt()  # predicted x_0
        sigma = eta * ((1 - ab_prev) / (1 - ab)).sqrt() * (1 - ab / ab_prev).sqrt()
        x = ab_prev.sqrt() * x0_hat + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps \
            + sigma * torch.randn_like(x)  # fmt: skip
    return x


t = torch.arange(1, T)
sigma2_eta1 = (1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * (1 - alpha_bar[t] / alpha_bar[t - 1])
beta_tilde = (1 - alpha_bar_prev[t]) / (1 - alpha_bar[t]) * betas[t]
print(f"eta = 1: max |sigma_t^2 - beta~_t| = {(sigma2_eta1 - beta_tilde).abs().max():.1e}")
with torch.no_grad():
    ours = ddim_sample(eps_unet, x_T, 20)
    reference = diffusion.sample_ddim(eps_unet, x_T, alpha_bar, 20)
print(f"ours vs course_utils, 20 DDIM steps: max difference {(ours - reference).abs().max():.1e}")

# %% [markdown]
# Same $x_T$, deterministic DDIM with $S$ = 10, 20, 50 and 100 steps, and DDIM with
# $\eta = 1$ at 50 steps. With $\eta = 0$ the digits barely change from 20 steps on: the
# 1000-step chain is a very fine discretization of a smooth path.

# %%
torch.manual_seed(3)
x_T = torch.randn(10, 1, 28, 28, device=device)
rows = {}
with torch.no_grad():
    for S, eta in ((10, 0.0), (20, 0.0), (50, 0.0), (100, 0.0), (50, 1.0)):
        torch.manual_seed(4)
        rows[f"S = {S}, eta = {eta:g}"] = ddim_sample(eps_unet, x_T, S, eta)
fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.2 * len(rows) + 0.6))
for ax, (name, images) in zip(axes, rows.items(), strict=True):
    viz.show_images(to_pixels(images), name, nrow=10, ax=ax)
    ax.set_xlabel("")
fig.suptitle("DDIM from the same $x_T$: steps and $\\eta$")
plt.tight_layout()
plt.show()
gaps = {S: (rows[f"S = {S}, eta = 0"] - rows["S = 100, eta = 0"]).abs().mean().item()
        for S in (10, 20, 50)}  # fmt: skip
print("mean |pixel difference| to S = 100 (eta = 0):",
      ", ".join(f"S = {S}: {g:.3f}" for S, g in gaps.items()))  # fmt: skip

# %% [markdown]
# ### Benchmark: steps vs quality
#
# `course bench diffusion` samples 1000 unconditional digits with each sampler from the
# same $x_T$ and scores them by FID on the course classifier's features against the test
# split (lecture 00), next to the **data floor**: the FID of 1000 *training* images, the
# best a perfect model could score on this small test set. It also counts the digits the
# classifier sees and times the sampling. The table is the shipped result
# (`course bench diffusion --save course_utils/weights/diffusion_bench.json`).

# %%
shipped = diffusion.load_diffusion_bench()
print(f"{shipped['samples']} samples per sampler ({shipped['machine']})")
print("\n".join(diffusion.format_diffusion_bench(shipped)))
ddim_rows = [r for r in shipped["rows"] if r["sampler"] == "DDIM" and r["eta"] == 0]
ddpm_fid = next(r["fid"] for r in shipped["rows"] if r["sampler"] == "DDPM")
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.semilogx([r["steps"] for r in ddim_rows], [r["fid"] for r in ddim_rows], "o-",
            label=r"DDIM, $\eta = 0$")  # fmt: skip
ax.axhline(ddpm_fid, color="tab:red", ls="--", label="DDPM, 1000 steps")
ax.axhline(shipped["fid_floor"], color="gray", ls=":", label="data floor")
ax.set(title="Sample quality vs sampling steps", xlabel="steps S",
       ylabel="FID (course classifier)")  # fmt: skip
ax.legend()
plt.show()
fid_of = {(r["sampler"], r["steps"], r["eta"]): r["fid"] for r in shipped["rows"]}
# The DDIM paper's CIFAR-10 FIDs (Song et al. 2021, Table 1): DDPM's 1000-step sampler with
# sigma-hat, and DDIM (eta = 0) with 50 and 1000 steps.
paper = {"DDPM-1000": 3.17, "DDIM-50": 4.67, "DDIM-1000": 4.04}
print(
    f"DDIM-50 / DDPM-1000 FID: {fid_of['DDIM', 50, 0.0] / ddpm_fid:.2f} (goal: at most 1.2; "
    f"the DDIM paper's CIFAR-10: {paper['DDIM-50'] / paper['DDPM-1000']:.2f})"
)
print(
    f"DDIM-50 / DDIM-1000 (both eta = 0): {fid_of['DDIM', 50, 0.0] / fid_of['DDIM', 1000, 0.0]:.2f}"
)
print(
    f"DDIM-1000 (eta = 0) / DDPM-1000: {fid_of['DDIM', 1000, 0.0] / ddpm_fid:.2f} "
    f"(the paper's: {paper['DDIM-1000'] / paper['DDPM-1000']:.2f})"
)
print(f"DDIM-50 with eta = 1 / DDPM-1000: {fid_of['DDIM', 50, 1.0] / ddpm_fid:.2f}")  # fmt: skip

# %% [markdown]
# Read the table in two directions.
#
# - **Fewer steps cost little.** Along the deterministic rows, going from 1000 steps to
#   50 barely moves the FID (the second ratio): a 20× cheaper sampler for almost the same
#   samples, as Song et al. found. Below 20 steps the digits degrade quickly.
# - **Determinism costs more on this model.** Every $\eta = 0$ row is worse than DDPM,
#   even with all 1000 steps (the third ratio), so the gap to the 1.2 goal comes from
#   $\eta = 0$ itself, not from skipping steps. A stochastic sampler re-injects fresh
#   noise at every step, which washes out part of the network's errors; the deterministic
#   one carries every error to the end (look for faint speckle on some $\eta = 0$ digits
#   above). DDIM with $\eta = 1$ at 50 steps closes most of the gap (last ratio).
# - **The paper sees the same.** Song et al.'s own CIFAR-10 table puts DDIM-50 and
#   DDIM-1000 at about the ratios printed next to ours, measured against DDPM's 1000-step
#   sampler (with $\hat\sigma$, its best): a deterministic sampler trails the stochastic
#   one there too. The 1.2 goal asks more than the paper's model reaches; our small
#   network is not what stands in the way.
#
# Few-step sampling is still an open problem, and the field's answers go further: better
# ODE solvers (DPM-Solver, Lu et al., 2022), distilling the sampler into fewer steps
# (progressive distillation, Salimans & Ho, 2022) or into one (consistency models, Song et
# al., 2023). Other open questions: diffusion models' likelihoods lag behind their sample
# quality unless trained for it (Kingma et al., 2021); and large models can memorize and
# reproduce training images (Carlini et al., 2023).
#
# ## 9. Conditioning
#
# ### Classifier-free guidance
#
# To ask for a digit $y$, give the network the label: $\epsilon_\theta(x_t, t, y)$. Ho &
# Salimans (2022) train **one** network for both the conditional and the unconditional
# model by replacing the label with a "no label" token $\varnothing$ 10% of the time, and
# sample with the **guided** prediction
#
# $$\tilde\epsilon_\theta(x_t, t, y) = (1 + w)\,\epsilon_\theta(x_t, t, y) -
# w\,\epsilon_\theta(x_t, t, \varnothing).$$
#
# Why it works: $\epsilon_\theta(x_t, t, \cdot) \approx -\sqrt{1 - \bar\alpha_t}\,
# \nabla_{x_t} \log p(x_t \mid \cdot)$ (the noise prediction is a scaled score: Tweedie's
# formula, lecture 05), and
# $\nabla \log p(x_t \mid y) - \nabla \log p(x_t) = \nabla \log p(y \mid x_t)$ by Bayes'
# rule. So $\tilde\epsilon$ follows $\nabla \log p(x_t \mid y) + w\,\nabla \log p(y \mid
# x_t)$: the conditional model pushed further towards images an *implicit classifier*
# would label $y$. $w = 0$ is the plain conditional model; larger $w$ buys fidelity with
# diversity. The shipped U-Net was trained this way (its label embedding has an 11th
# entry, $\varnothing$, and the unconditional samples above used it).
#
# Below: 100 digits per guidance weight (10 of each class, DDIM 50 steps), the share the
# classifier reads as the requested digit, and a diversity measure (the mean pixel
# distance between two samples of the same class). The slider shows 4 samples per class.

# %%
wanted = torch.arange(100, device=device) % 10
torch.manual_seed(5)
x_T = torch.randn(100, 1, 28, 28, device=device)
guided = {}
print(f"{'w':>4}{'label accuracy':>16}{'diversity':>11}")
with torch.no_grad():
    for w in (0.0, 1.0, 3.0):
        images = to_pixels(ddim_sample(diffusion.guided(unet, wanted, w), x_T, 50))
        guided[w] = images
        accuracy = (metrics.classifier_predict(images) == wanted).float().mean()
        same_class = torch.stack([torch.pdist(images[wanted == c].flatten(1)).mean()
                                  for c in range(10)])  # fmt: skip
        print(f"{w:>4g}{accuracy:>16.2f}{same_class.mean():>11.2f}")

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda w: viz.show_images(
        guided[w][:40], f"guidance w = {w:g}: one column per digit 0 … 9", nrow=10
    ),
    w=sorted(guided),
)

# %% [markdown]
# ### Latent diffusion
#
# Pixels are an expensive place to diffuse: most of a 512×512 image's bits are
# imperceptible detail. **Latent diffusion** (Rombach et al., 2022; the model behind
# Stable Diffusion) first trains an autoencoder that compresses images 8× per side, then
# runs the whole diffusion machinery on the latents, and decodes once at the end. The
# diffusion model is smaller and faster, and the autoencoder handles the fine detail;
# text conditioning enters through cross-attention in the U-Net.
#
# A miniature of the idea with what we already have: lecture 01's MNIST VAE (16-d
# latents). Encode the 4000 training digits to their posterior means, train the MLP of
# section 6 with Algorithm 1 on those 16-d vectors, sample with Algorithm 2, decode. The
# VAE's own samples decode $z \sim \mathcal{N}(0, I)$, which lands in the "holes" of the
# aggregate posterior; the diffusion model learns where the codes actually are.

# %%
vae = checkpoints.load_pretrained("vae_mnist", device=device)
with torch.no_grad():
    codes = vae.encoder((x_mnist.flatten(1) > 0.5).float())[0]  # posterior means [4000, 16]
scale = codes.std()
torch.manual_seed(0)
latent_model = EpsMlp(dim=16, hidden=256).to(device)
start = time.perf_counter()
fit(lambda z: algorithm_1_loss(latent_model, z / scale),
    torch.optim.Adam(latent_model.parameters(), lr=1e-3), codes, batch_size=256, steps=4000,
    progress=False)  # fmt: skip
latent_model.eval()
torch.manual_seed(6)
z_diffusion = algorithm_2(latent_model, torch.randn(1000, 16, device=device))[-1] * scale
with torch.no_grad():
    from_diffusion = torch.sigmoid(vae.decoder(z_diffusion)).view(-1, 1, 28, 28)
    from_prior = torch.sigmoid(vae.decoder(torch.randn(1000, 16, device=device))).view(
        -1, 1, 28, 28
    )
print(f"latent diffusion: trained and sampled in {time.perf_counter() - start:.1f} s")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for ax, (name, images) in zip(axes, (("VAE prior", from_prior), ("latent diffusion", from_diffusion)),
                              strict=True):  # fmt: skip
    viz.show_images(
        images[:32], f"{name}: FID {metrics.fid(images, x_mnist_test):.1f}", nrow=8, ax=ax
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - A diffusion model is a hierarchical VAE with a fixed Gaussian encoder; $q(x_t \mid
#   x_0)$ has a closed form, so training samples any step directly.
# - The ELBO splits into KLs between the posterior $q(x_{t-1} \mid x_t, x_0)$ and the
#   learned steps; with the $\epsilon$-parameterization each is a weighted noise
#   regression, and $L_\text{simple}$ drops the weights.
# - Sampling runs the learned chain (Algorithm 2); DDIM reuses the same network on a
#   short, deterministic path: 50 steps give almost the FID of its own 1000 steps at a
#   twentieth of the cost, while both stay behind the stochastic 1000-step DDPM sampler.
# - Classifier-free guidance turns one label-dropout network into a tunable conditional
#   model; latent diffusion moves it all into an autoencoder's latent space.
#
# **Further reading.** Ho et al. (2020), *Denoising Diffusion Probabilistic Models*; Song
# et al. (2021), *Denoising Diffusion Implicit Models*; Nichol & Dhariwal (2021),
# *Improved DDPM*; Ho & Salimans (2022), *Classifier-Free Diffusion Guidance*; Song et al.
# (2021), *Score-Based Generative Modeling through SDEs*; Rombach et al. (2022), *Latent
# Diffusion*; Kingma et al. (2021), *Variational Diffusion Models*.
