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
# # Lecture 02 — Generative adversarial networks and Wasserstein GANs
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/lectures/02_gan.ipynb)
#
# A VAE writes down a likelihood and bounds it. A **GAN** gives that up: the generator
# $G_\theta$ maps noise $z \sim p(z)$ to a sample $x = G_\theta(z)$, and nothing in the
# model says how likely $x$ is. Such an **implicit model** is trained by comparison: a
# second network, the **discriminator**, learns to tell real samples from generated ones,
# and the generator learns to fool it. The discriminator is a learned two-sample test.
#
# This lecture:
#
# 1. the minimax game, the optimal discriminator and what the game minimizes (JS);
# 2. the saturating and non-saturating generator losses;
# 3. why JS is a poor training signal (the parallel-lines example), mode collapse, and
#    the training dynamics of the Dirac-GAN;
# 4. the Wasserstein GAN: earth mover's distance, Kantorovich–Rubinstein duality, weight
#    clipping, the gradient penalty (WGAN-GP) and spectral normalization, with a
#    training-snapshot widget;
# 5. the mode-coverage benchmark and discriminator rejection sampling;
# 6. DCGAN and a conditional GAN on MNIST: transposed convolutions, the truncation trick,
#    progressive growing; and the table of loss variants.
#
# The README's table of lectures gives this one's measured run time on a laptop CPU. The
# MNIST GANs load shipped weights (`python -m course_utils.pretrain dcgan` retrains them;
# section 6 prints how long that took).

# %%
import dataclasses
import inspect
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from course_utils import checkpoints, data, gan, metrics, vae, viz, widgets
from course_utils.device import get_device

device = get_device()
torch.manual_seed(0)
RETRAIN = False  # True: train the MNIST GANs here (section 6 prints the shipped runs' times)

# %% [markdown]
# ## 1. The minimax game
#
# Goodfellow et al. (2014) define the value function
#
# $$V(D, G) = \mathbb{E}_{x \sim p_\text{data}}[\log D(x)] + \mathbb{E}_{z \sim p(z)}[\log(1 - D(G(z)))],$$
#
# where $D(x) \in (0, 1)$ is the probability that $x$ is real. The discriminator
# maximizes it (it is the log-likelihood of a binary classifier with labels real = 1,
# fake = 0), the generator minimizes it: $\min_G \max_D V(D, G)$.
#
# **Algorithm 1** (Goodfellow et al.) alternates: for each generator step, take $k$
# discriminator steps, each on a fresh batch of $m$ real and $m$ generated samples,
# ascending $\nabla_{\theta_d} \frac1m\sum_i [\log D(x^{(i)}) + \log(1 - D(G(z^{(i)})))]$;
# then one generator step descending $\nabla_{\theta_g}\frac1m \sum_i \log(1 - D(G(z^{(i)})))$.
# (The paper used $k = 1$.)
#
# ### The optimal discriminator
#
# For a fixed $G$ with sample density $p_g$, $V = \int p_\text{data}(x)\log D(x) + p_g(x)\log(1 - D(x))\,dx$.
# Pointwise, $a\log y + b\log(1-y)$ is maximized at $y = a/(a+b)$, so
#
# $$D^*_G(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)}.$$
#
# Let us check that a trained discriminator finds it. The "generator" here is fixed,
# $p_g = \mathcal{N}(0, 1)$; the data is a mixture of two Gaussians. The discriminator is a
# small MLP trained with the logistic loss on fresh samples of both.


# %%
def p_data_1d(x: torch.Tensor) -> torch.Tensor:
    """Mixture 0.5 N(-1.5, 0.5^2) + 0.5 N(1.5, 0.5^2)."""
    normal = torch.distributions.Normal
    return 0.5 * normal(-1.5, 0.5).log_prob(x).exp() + 0.5 * normal(1.5, 0.5).log_prob(x).exp()


def sample_data_1d(n: int) -> torch.Tensor:
    return 1.5 * (2 * torch.randint(0, 2, (n, 1)) - 1) + 0.5 * torch.randn(n, 1)


def p_g_1d(x: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Normal(0.0, 1.0).log_prob(x).exp()


torch.manual_seed(0)
D_1d = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
opt = torch.optim.Adam(D_1d.parameters(), lr=3e-3)
for _ in range(2000):
    real, fake = sample_data_1d(256), torch.randn(256, 1)
    loss = gan.discriminator_loss(D_1d(real).squeeze(1), D_1d(fake).squeeze(1))
    opt.zero_grad()
    loss.backward()
    opt.step()

xs = torch.linspace(-4, 4, 801)
d_star = p_data_1d(xs) / (p_data_1d(xs) + p_g_1d(xs))
with torch.no_grad():
    d_trained = torch.sigmoid(D_1d(xs[:, None]).squeeze(1))
has_mass = (p_data_1d(xs) + p_g_1d(xs)) > 0.05  # where either distribution has samples
print(f"max |D - D*| where p_data + p_g > 0.05: {(d_trained - d_star)[has_mass].abs().max():.3f}")
print(f"max |D - D*| over [-4, 4]:              {(d_trained - d_star).abs().max():.3f}")

fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(xs.numpy(), p_data_1d(xs).numpy(), label="$p_{data}$", color="tab:blue")
ax.plot(xs.numpy(), p_g_1d(xs).numpy(), label="$p_g$", color="tab:green")
ax.plot(xs.numpy(), d_star.numpy(), "k--", label="$D^*$ (formula)")
ax.plot(xs.numpy(), d_trained.numpy(), color="tab:red", label="trained $D$")
ax.set_title("A trained discriminator approaches $D^* = p_{data} / (p_{data} + p_g)$")
ax.set_xlabel("$x$")
ax.set_ylabel("density / probability")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Where samples fall, the trained discriminator matches $D^*$. In the tails neither
# distribution sends samples, nothing constrains $D$, and it extrapolates: the formula
# holds only on the support of $p_\text{data} + p_g$.
#
# ### What the generator minimizes
#
# Substituting $D^*$, with $m = \frac12(p_\text{data} + p_g)$:
#
# $$C(G) = \max_D V(D, G) = \mathbb{E}_{p_\text{data}}\Big[\log \frac{p_\text{data}}{2m}\Big] + \mathbb{E}_{p_g}\Big[\log \frac{p_g}{2m}\Big] = -\log 4 + \mathrm{KL}(p_\text{data}\,\|\,m) + \mathrm{KL}(p_g\,\|\,m) = -\log 4 + 2\,\mathrm{JS}(p_\text{data}\,\|\,p_g).$$
#
# So, with an optimal discriminator, the generator minimizes the Jensen–Shannon
# divergence, whose minimum $0$ is reached only at $p_g = p_\text{data}$, where
# $C(G) = -\log 4$ and $D^* \equiv \frac12$. Numerically, on the grid above:

# %%
dx = float(xs[1] - xs[0])
p, q = p_data_1d(xs), p_g_1d(xs)
m = (p + q) / 2
value_at_d_star = ((p * torch.log(d_star) + q * torch.log(1 - d_star)).sum() * dx).item()
js = (0.5 * (torch.xlogy(p, p / m) + torch.xlogy(q, q / m)).sum() * dx).item()
print(f"V(D*, G)          = {value_at_d_star:.4f}")
print(f"-log 4 + 2 JS     = {-math.log(4) + 2 * js:.4f}   (JS = {js:.4f} nats)")

# %% [markdown]
# ## 2. Saturating vs non-saturating generator loss
#
# Early in training the discriminator rejects the fakes easily: $D(G(z)) \approx 0$. The
# minimax generator loss $\log(1 - D(G(z)))$ is flat there. Write $D = \sigma(l)$ with $l$
# the logit; then
#
# $$\frac{\partial}{\partial l}\log(1 - \sigma(l)) = -\sigma(l) \xrightarrow{\;l \to -\infty\;} 0, \qquad \frac{\partial}{\partial l}\big[-\log \sigma(l)\big] = -(1 - \sigma(l)) \xrightarrow{\;l \to -\infty\;} -1.$$
#
# The **non-saturating** loss $-\log D(G(z))$ has the same fixed point but a strong
# gradient exactly when the generator is bad. In practice everyone uses it. Both curves and
# their gradients, computed by autograd:

# %%
logits = torch.linspace(-8, 8, 400, requires_grad=True)
losses = {
    "minimax  log(1 - D(G(z)))": gan.generator_loss_minimax,
    "non-saturating  -log D(G(z))": gan.generator_loss_nonsaturating,
}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
for name, loss_fn in losses.items():
    per_sample = torch.stack([loss_fn(logit[None]) for logit in logits])
    (grad,) = torch.autograd.grad(per_sample.sum(), logits)
    d = torch.sigmoid(logits).detach().numpy()
    axes[0].plot(d, per_sample.detach().numpy(), label=name)
    axes[1].plot(d, grad.numpy(), label=name)
axes[0].set_title("Generator loss against $D(G(z))$")
axes[1].set_title("Its gradient w.r.t. the logit $l$")
for ax, ylabel in zip(axes, ["loss", "d loss / d l"], strict=True):
    ax.set_xlabel("$D(G(z)) = \\sigma(l)$")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 3. Why JS is a poor training signal
#
# **The parallel lines** (Arjovsky et al., 2017, Example 1). Let $Z \sim U[0, 1]$,
# $P_0$ the law of $(0, Z)$ and $P_\theta$ the law of $(\theta, Z)$: two vertical segments
# a distance $|\theta|$ apart. For $\theta \neq 0$ the supports are disjoint, so
#
# $$\mathrm{TV} = 1, \quad \mathrm{KL} = +\infty, \quad \mathrm{JS} = \log 2, \quad W_1 = |\theta|.$$
#
# Only the Wasserstein distance $W_1$ (next section) says "you are getting closer" as
# $\theta \to 0$; the others are constant, so their gradient in $\theta$ is zero. We compute
# all four on 400 evenly spaced points per distribution, $z_i = (i + \tfrac12)/400$ (the
# empirical law of $Z$, without sampling noise): TV, KL and JS from histograms on
# $0.05 \times 0.05$ bins, and $W_1$ as the optimal matching between the two point sets
# (`scipy.optimize.linear_sum_assignment`, exact for equal-size empirical measures).

# %%
n_lines = 400
z_line = (torch.arange(n_lines) + 0.5) / n_lines  # evenly spaced: the empirical law of Z
thetas = np.round(np.linspace(-1, 1, 41), 2)
bins = np.arange(-1.025, 1.05, 0.05), np.linspace(0, 1, 21)


def histogram(points: np.ndarray) -> np.ndarray:
    counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=bins)
    return counts / counts.sum()


def divergences(theta: float) -> dict[str, float]:
    z = z_line.numpy()
    p0 = np.stack([np.zeros_like(z), z], 1)
    p1 = np.stack([np.full_like(z, theta), z], 1)
    hp, hq = histogram(p0), histogram(p1)
    hm = (hp + hq) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.sum(np.where(hp > 0, hp * np.log(hp / hq), 0.0))
        js = 0.5 * np.sum(np.where(hp > 0, hp * np.log(hp / hm), 0.0)) + 0.5 * np.sum(
            np.where(hq > 0, hq * np.log(hq / hm), 0.0)
        )
    cost = np.linalg.norm(p0[:, None, :] - p1[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(cost)
    return {"TV": 0.5 * np.abs(hp - hq).sum(), "KL": kl, "JS": js, "W1": cost[rows, cols].mean()}


table = {theta: divergences(theta) for theta in thetas}
fig, ax = plt.subplots(figsize=(7, 3.6))
for key, style in [("TV", "-"), ("JS", "-"), ("W1", "-")]:
    ax.plot(thetas, [table[t][key] for t in thetas], style, marker=".", label=key)
ax.axhline(math.log(2), color="grey", ls=":", lw=1)
ax.set_title(
    "Parallel lines: only $W_1$ changes with $\\theta$ (KL = $\\infty$ for $\\theta \\neq 0$)"
)
ax.set_xlabel("$\\theta$")
ax.set_ylabel("distance / divergence (nats)")
ax.legend(fontsize=8)
plt.show()
for theta in (0.0, 0.1, 0.5):
    print(f"theta = {theta:4}: " + ", ".join(f"{k} = {v:.3f}" for k, v in table[theta].items()))

# %% [markdown]
# This is not a curiosity. Images live near low-dimensional manifolds of pixel space, and
# a generator with a $d$-dimensional latent produces samples on (at most) a
# $d$-dimensional manifold. Two such manifolds may intersect, but unless they align
# perfectly (which a small perturbation of either undoes) their intersection has
# **measure zero** in each of them (Arjovsky & Bottou, 2017, Lemmas 2 and 3): the
# overlap carries no probability. Then a perfect discriminator exists (their
# Theorem 2.2), $\mathrm{JS} = \log 2$, and the minimax generator's gradient vanishes.
#
# ### Mode collapse
#
# The other classic failure: the generator puts its mass on a few modes that currently
# fool the discriminator, the discriminator adapts, the generator hops elsewhere, and some
# modes are never (or no longer) produced. We train
# the non-saturating GAN of Algorithm 1 ($k = 1$; two MLPs with 3 hidden layers of 128
# units; `course_utils.gan.train_toy_gan` is that loop) on the two standard benchmarks of
# the VEEGAN protocol: 8 Gaussians on a circle (std 0.01) and 25 on a grid (std 0.05). A
# sample is *high quality* within 3 std of a centre; a mode is *captured* when it has a
# high-quality sample. Look for missing modes, and for samples strung along the paths
# between modes (a continuous generator cannot jump between islands).

# %%
ring, grid = data.toy_2d("ring", 20_000, seed=0), data.toy_2d("grid", 20_000, seed=0)
mixtures = {"ring": ring, "grid": grid}


def coverage_of(samples: torch.Tensor, name: str) -> metrics.ModeCoverage:
    return metrics.mode_coverage(samples, data.mode_centers(name), data.mode_std(name))


vanilla = {name: gan.train_toy_gan(x, "gan", steps=1200, seed=0) for name, x in mixtures.items()}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, (name, result) in zip(axes, vanilla.items(), strict=True):
    samples = result.sample(2500, seed=0)
    cov = coverage_of(samples, name)
    viz.scatter_2d(
        samples, f"Vanilla GAN on the {name}: {cov.modes_captured}/{cov.num_modes} modes, "
        f"{100 * cov.high_quality_rate:.0f}% HQ", ax=ax, centers=data.mode_centers(name), color="tab:red",
    )  # fmt: skip
plt.show()

# %% [markdown]
# **Why the non-saturating loss drops modes.** Against the optimal discriminator $D^*$
# held fixed at the current generator, the non-saturating loss's gradient is that of
# a reverse KL minus twice JS (Arjovsky & Bottou, 2017, Theorem 2.5):
#
# $$\mathbb{E}_z\big[-\nabla_\theta \log D^*(G_\theta(z))\big] = \nabla_\theta\big[
#   \mathrm{KL}(p_g \,\|\, p_\text{data}) - 2\,\mathrm{JS}(p_\text{data}, p_g)\big].$$
#
# The reverse KL (lecture 00) is large where $p_g$ puts mass that $p_\text{data}$ lacks,
# and nearly blind to data modes that $p_g$ misses; the $-2\,\mathrm{JS}$ term even
# rewards pulling away. So generating a few modes well costs little, and missing one is
# hardly penalized: mode dropping. A check of the identity on 1D Gaussians, $p_\text{data}
# = \mathcal{N}(0, 1)$ and $p_g = \mathcal{N}(\theta, 1)$ at $\theta = 1.5$, integrals on a
# fine grid and gradients by autograd:

# %%
x_line = torch.linspace(-12, 12, 24_001, dtype=torch.float64)
dx = x_line[1] - x_line[0]


def gaussian(mean: torch.Tensor | float) -> torch.Tensor:
    return torch.exp(-0.5 * (x_line - mean) ** 2) / math.sqrt(2 * math.pi)


p_data_line = gaussian(0.0)
d_star_line = p_data_line / (p_data_line + gaussian(1.5))  # D* at theta = 1.5, held fixed
theta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
p_g_line = gaussian(theta)
m_line = (p_data_line + p_g_line) / 2
nonsaturating = (p_g_line * -torch.log(d_star_line)).sum() * dx  # E_{x ~ p_g}[-log D*(x)]
kl_reverse = (p_g_line * torch.log(p_g_line / p_data_line)).sum() * dx
js_line = 0.5 * ((p_g_line * torch.log(p_g_line / m_line)).sum()
                 + (p_data_line * torch.log(p_data_line / m_line)).sum()) * dx  # fmt: skip
(lhs,) = torch.autograd.grad(nonsaturating, theta, retain_graph=True)
(rhs,) = torch.autograd.grad(kl_reverse - 2 * js_line, theta)
print(f"d/dtheta of E[-log D*]: {lhs:.6f};  d/dtheta of KL(p_g || p_data) - 2 JS: {rhs:.6f}")

# %% [markdown]
# ### Training dynamics: the Dirac-GAN
#
# Even when an equilibrium exists, gradient play need not reach it. Mescheder et al.
# (2018) strip a GAN to two numbers: the data are a point mass at 0, the generator a point
# mass at $\theta$, the discriminator linear, $D_\psi(x) = \psi x$. With $f(t) = -\log(1
# + e^{-t})$ the game is
#
# $$\min_\theta \max_\psi\; L(\theta, \psi) = f(\psi\theta) + f(0),$$
#
# whose only equilibrium is $(\theta, \psi) = (0, 0)$. The gradient field
# $v = (-f'(\psi\theta)\,\psi,\; f'(\psi\theta)\,\theta)$ turns around it: at the
# equilibrium its Jacobian $\begin{pmatrix} 0 & -f'(0) \\ f'(0) & 0 \end{pmatrix}$ has
# purely imaginary eigenvalues $\pm i f'(0)$. So:
#
# - **simultaneous** steps (both players from the same point), near the equilibrium,
#   multiply the distance to it by about $\sqrt{1 + h^2 f'(0)^2} > 1$ each step: they spiral out;
# - **alternating** steps (the discriminator first) stay on closed orbits: they cycle
#   for ever, never converging; more discriminator steps $k$ per generator step do not
#   help;
# - a **gradient penalty** on the discriminator at the data, Mescheder's $R_1 =
#   \tfrac{\gamma}{2}\lVert \nabla_x D_\psi(x) \rVert^2 = \tfrac{\gamma}{2}\psi^2$, adds
#   damping (the eigenvalues get a negative real part), and both schemes converge for
#   small enough steps.
#
# `gan.dirac_gan_path` plays the game; the distance from $(0, 0)$ after 1000 generator
# steps of size $h = 0.1$ from $(1, 1)$ (distance 1.414):

# %%
for label, simultaneous, d_steps, gamma in [
    ("simultaneous", True, 1, 0.0), ("alternating", False, 1, 0.0),
    ("alternating, 5 D steps", False, 5, 0.0), ("simultaneous + R1 (0.3)", True, 1, 0.3),
    ("alternating + R1 (0.3)", False, 1, 0.3),
]:  # fmt: skip
    end = gan.dirac_gan_path(0.1, 1000, simultaneous, d_steps, gamma)[-1]
    print(f"{label:<26} distance {end.norm():.2e}")

# %% [markdown]
# ### Widget: the Dirac-GAN's dynamics
#
# The path in the $(\theta, \psi)$ plane over the gradient field (grey arrows), and its
# distance from the equilibrium. Raise the learning rate: simultaneous steps spiral out
# faster; alternating ones keep cycling; a penalty $\gamma > 0$ pulls both in.

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    gan.dirac_gan_figure,
    update=list(gan.DIRAC_UPDATES),
    learning_rate=(0.05, 0.5, 0.05),
    gamma=[0.0, 0.1, 0.3, 1.0],
)

# %% [markdown]
# ## 4. Wasserstein GANs
#
# The **earth mover's** (Wasserstein-1) distance is the cheapest way to move the mass of
# $p_g$ onto $p_\text{data}$:
#
# $$W_1(p_\text{data}, p_g) = \inf_{\gamma \in \Pi(p_\text{data}, p_g)} \mathbb{E}_{(x, y) \sim \gamma}\big[\|x - y\|\big],$$
#
# the infimum over couplings $\gamma$ with marginals $p_\text{data}$ and $p_g$. It is
# continuous in $\theta$ under mild conditions (Arjovsky et al., Theorem 1), as the
# parallel lines showed. The infimum over couplings is intractable, but
# **Kantorovich–Rubinstein duality** turns it into a supremum over 1-Lipschitz functions:
#
# $$W_1(p_\text{data}, p_g) = \sup_{\|f\|_L \le 1} \; \mathbb{E}_{x \sim p_\text{data}}[f(x)] - \mathbb{E}_{z \sim p(z)}[f(G(z))].$$
#
# Here $f$ is **1-Lipschitz** ($\|f\|_L \le 1$): $|f(a) - f(b)| \le \|a - b\|$ for all
# $a, b$, so its output never changes faster than its input.
#
# A network $f_w$, the **critic**, plays the role of $f$: it outputs an unbounded score,
# not a probability. The critic minimizes $\mathbb{E}[f(G(z))] - \mathbb{E}[f(x)]$, the
# generator minimizes $-\mathbb{E}[f(G(z))]$, and the critic is trained to near-optimality
# ($n_\text{critic} = 5$ steps per generator step) because its loss then estimates $W_1$.
#
# ### Weight clipping, and why it fails
#
# The WGAN paper keeps $f_w$ Lipschitz by clamping every weight to $[-c, c]$ ($c = 0.01$,
# RMSProp, learning rate $5\cdot 10^{-5}$). Gulrajani et al. (2017) showed what this does:
# the weights pile up at $\pm c$, and the critic collapses to very simple functions
# (capacity underuse), or, with larger $c$, gradients explode.

# %%
clipped = gan.train_toy_gan(ring, "wgan", steps=500, seed=0, snapshot_steps=(500,))
weights = torch.cat([p.detach().flatten() for p in clipped.critic.parameters() if p.ndim == 2])
at_bound = (weights.abs() > 0.0099).float().mean().item()
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
axes[0].hist(weights.numpy(), bins=60, color="tab:purple")
axes[0].set_title(f"WGAN critic weights after 500 steps: {100 * at_bound:.0f}% at $\\pm c$")
axes[0].set_xticks([-0.01, -0.005, 0.0, 0.005, 0.01])
axes[0].set_xlabel("weight value")
axes[0].set_ylabel("count")
landscape = clipped.snapshots[-1].landscape.numpy()
im = axes[1].imshow(landscape, origin="lower", extent=clipped.extent, cmap="coolwarm")
fig.colorbar(im, ax=axes[1], label="critic f(x)")
axes[1].scatter(*ring[:500].T.numpy(), s=2, c="k")
axes[1].set_title(f"Clipped critic: scores span only {landscape.max() - landscape.min():.4f}")
axes[1].set_xlabel("$x_1$")
axes[1].set_ylabel("$x_2$")
plt.show()

# %% [markdown]
# ### WGAN-GP: a gradient penalty
#
# A differentiable $f$ is 1-Lipschitz iff $\|\nabla f\| \le 1$ everywhere, and the optimal
# critic has $\|\nabla f^*\| = 1$ on the lines between coupled points (Gulrajani et al.,
# Prop. 1). So penalize the gradient norm at random points on lines between real and
# generated samples:
#
# $$L = \underbrace{\mathbb{E}_{\tilde x \sim p_g}[f(\tilde x)] - \mathbb{E}_{x \sim p_\text{data}}[f(x)]}_{\text{critic loss}} + \lambda\,\mathbb{E}_{\hat x}\Big[\big(\|\nabla_{\hat x} f(\hat x)\|_2 - 1\big)^2\Big], \qquad \hat x = \epsilon x + (1 - \epsilon)\tilde x,\; \epsilon \sim U[0, 1].$$
#
# One $\epsilon$ per example; the gradient is taken with `create_graph=True` so the penalty
# itself trains the critic (exercise set 02, question 7). No batch norm in the critic: it would couple the
# examples the penalty treats independently.
#
# **Our settings, and why.** The paper's $\lambda = 10$, $n_\text{critic} = 5$,
# Adam($10^{-4}$, $\beta = (0, 0.9)$) are tuned for images. On these toys, with 2D data,
# 5000 generator steps and a CPU budget, we use Adam($10^{-3}$, $\beta = (0.5, 0.9)$) with
# the learning rate decaying linearly to 0, and $\lambda = 1$: the grid spans
# $[-4, 4]^2$, and a unit-gradient constraint that strong keeps the critic from separating
# 25 narrow modes in time. (The WGAN-GP authors' own toy script also lowers $\lambda$, to
# 0.1.) The cell below compares $\lambda = 10$ and $\lambda = 1$ on the grid, same seed,
# 600 steps.

# %%
lambda_runs = {}
for gp_weight in (10.0, 1.0):
    config = gan.ToyGanConfig(gan.critic_loss, gan.wgan_generator_loss, gp_weight=gp_weight)
    result = gan.train_toy_gan(grid, config, steps=600, seed=0)
    lambda_runs[gp_weight] = result
    cov = coverage_of(result.sample(2500, seed=0), "grid")
    print(f"lambda = {gp_weight:4}: {cov.modes_captured}/25 modes, "
          f"{100 * cov.high_quality_rate:.1f}% high quality, {result.seconds:.0f} s")  # fmt: skip

# %% [markdown]
# ### Spectral normalization, and the three constraints compared
#
# A third way to a Lipschitz critic (Miyato et al., 2018) bounds it layer by layer. A
# linear layer $x \mapsto Wx$ is Lipschitz with constant $\sigma(W)$, its **largest
# singular value**; ReLU and LeakyReLU are 1-Lipschitz; and Lipschitz constants multiply
# under composition. So dividing every weight by its own $\sigma(W)$ makes the whole
# network 1-Lipschitz. $\sigma(W)$ comes from **power iteration**, one step per training
# step with $u$ carried over (exercise set 02, question 8):
#
# $$v \leftarrow \frac{W^\top u}{\|W^\top u\|}, \qquad u \leftarrow \frac{W v}{\|W v\|},
#   \qquad \sigma(W) \approx u^\top W v .$$
#
# Checked against the exact value, `torch.linalg.matrix_norm(W, ord=2)`, for a random
# $128 \times 128$ weight from a random $u$:

# %%
torch.manual_seed(0)
W_check = torch.randn(128, 128) / math.sqrt(128)
sigma_exact = torch.linalg.matrix_norm(W_check, ord=2)
u = torch.randn(128)
for k in range(1, 51):
    sigma_k, u = gan.power_iteration(W_check, u)
    if k in (1, 2, 5, 10, 20, 50):
        print(f"after {k:2d} steps: sigma = {sigma_k:.5f}  (exact {sigma_exact:.5f}, "
              f"relative error {abs(sigma_k - sigma_exact) / sigma_exact:.1e})")  # fmt: skip

# %% [markdown]
# The estimate approaches $\sigma(W)$ from below. In training, the weights change a little
# per step, so one step per step keeps $u$ close to the top singular vector; PyTorch's
# `torch.nn.utils.parametrizations.spectral_norm` does exactly this.
#
# | constraint | how | cost | weakness |
# |---|---|---|---|
# | weight clipping (WGAN) | clamp every weight to $[-c, c]$ | free | the critic is pushed to simple functions or exploding gradients |
# | gradient penalty (WGAN-GP) | $\lambda(\|\nabla f\| - 1)^2$ at random points between real and fake | a second backward pass | soft, and only where it is sampled |
# | spectral normalization (SN-GAN) | $W / \sigma(W)$ per layer | one matrix-vector product pair per layer | the product of per-layer bounds can be far above the network's true constant: a stricter critic than needed |

# %% [markdown]
# ### Widget: vanilla GAN vs WGAN-GP, step by step
#
# Both trained on the ring from the same seed, with snapshots every 30 of their 600 generator steps.
# Left, the discriminator's probability $D(x)$; right, the WGAN-GP critic's score $f(x)$,
# with the data in white and the generated samples in red. Move the slider and watch how
# each landscape pulls the samples towards the data: the discriminator's output is
# squashed between 0 and 1, while the critic's score keeps a slope wherever the penalty
# lets it.

# %%
snapshot_steps = range(0, 601, 30)
duel = {
    "vanilla GAN": gan.train_toy_gan(ring, "gan", steps=600, seed=1, snapshot_steps=snapshot_steps,
                                     extent=(-1.6, 1.6, -1.6, 1.6)),
    "WGAN-GP": gan.train_toy_gan(ring, "wgan-gp", steps=600, seed=1, snapshot_steps=snapshot_steps,
                                 extent=(-1.6, 1.6, -1.6, 1.6)),
}  # fmt: skip
for name, result in duel.items():
    cov = coverage_of(result.sample(2500, seed=0), "ring")
    print(f"{name}: {cov.modes_captured}/8 modes, {100 * cov.high_quality_rate:.1f}% HQ")

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda snapshot: gan.gan_snapshot_figure(duel, snapshot, ring[:1000]),
    snapshot=(0, len(snapshot_steps) - 1, 1),
)

# %% [markdown]
# ## 5. The mode-coverage benchmark
#
# `course bench gan` trains each method on both mixtures, 5 seeds each, and scores 2500
# samples: the three Lipschitz constraints of section 4 (`wgan` clips, `wgan-gp`
# penalizes, `sn-gan` is the non-saturating GAN with a spectrally normalized
# discriminator and one discriminator step per generator step) next to the vanilla GAN
# and `r1-gan`, the vanilla GAN whose discriminator also minimizes section 3's penalty
# $\tfrac{\gamma}{2}\,\mathbb{E}_{x \sim p_\text{data}}\lVert \nabla_x D(x) \rVert^2$
# ($\gamma = 1$, `gan.r1_penalty`; Mescheder et al., 2018). Each runs 5000 generator
# steps except `r1-gan`: with one discriminator step per generator step and no
# interpolates, its steps are cheap, and it gets 10000 for less CPU time than WGAN-GP's
# 5000 (the table's CPU column). The table below is the shipped result of that command
# (`course bench gan --save course_utils/weights/gan_bench.json`; the cell prints its CPU
# time, summed over runs); published numbers on the same protocol, for comparison (modes / % HQ, ring
# then grid): VEEGAN 8 / 52.9 and 24.6 / 40; WGAN-GP 8 / 59.6 and 24.2 / 28.7; GDPP
# 8 / 71.7 and 24.8 / 68.5; PacGAN4 7.8 / 95.9 and 24.8 / 93.6.

# %%
shipped = gan.load_gan_bench()
cpu_minutes = gan.bench_cpu_seconds(shipped["rows"]) / 60
print(f"{shipped['seeds']} seeds per method ({shipped['machine']}), "
      f"{cpu_minutes:.0f} CPU minutes in all")  # fmt: skip
print("\n".join(gan.format_gan_bench(shipped["rows"])))

# %% [markdown]
# ### SN-GAN needs a scale, not a looser constraint
#
# With every layer divided by its spectral norm, the discriminator's logit $l$ is
# 1-Lipschitz, and SN-GAN keeps the **logistic** loss, $D = \sigma(l)$. The two do not go
# together on this toy. Every ring point lies at distance at most 2 from every other, so
# $l$ varies by at most 2 over the whole data region, and $D$ by at most
# $\sigma(1) - \sigma(-1) \approx 0.46$: it can never say "real" or "fake" with confidence, and
# the generator's gradient $\nabla_x \log D$ is weak and nearly uniform. WGAN's loss is
# linear in the critic, so scaling the critic by $c$ scales the loss by $c$ and changes
# nothing but the step size: any Lipschitz constant will do. The logistic loss is **not**
# scale-invariant. The cure is to multiply the logit by a constant $c$ (a
# $c$-Lipschitz discriminator), `logit_scale` in `gan.ToyGanConfig`. Images need no such
# factor because their distances are large: the cell prints the mean distance between two
# MNIST test digits, so a 1-Lipschitz logit has room there. Same critic, same seed, three
# scales:

# %%
x_digits = data.mnist("test")[0][:200].flatten(1) * 2 - 1  # pixels in [-1, 1]
print(f"ring: largest distance between modes {torch.cdist(data.mode_centers('ring'), data.mode_centers('ring')).max():.1f}; "
      f"MNIST: mean distance between two test digits {torch.pdist(x_digits).mean():.1f}")  # fmt: skip
SN_SCALES = (1.0, 10.0, 50.0)
sn_runs = {
    c: gan.train_toy_gan(ring, dataclasses.replace(gan.CONFIGS["sn-gan"], logit_scale=c), steps=1500, seed=0)
    for c in SN_SCALES
}  # fmt: skip
fig, axes = plt.subplots(1, len(SN_SCALES), figsize=(12, 4.2))
for ax, (c, result) in zip(axes, sn_runs.items(), strict=True):
    samples = result.sample(2500, seed=0)
    cov = coverage_of(samples, "ring")
    viz.scatter_2d(
        samples, f"SN-GAN, logit × {c:g}: {cov.modes_captured}/8 modes, {100 * cov.high_quality_rate:.0f}% HQ",
        ax=ax, centers=data.mode_centers("ring"), color="tab:red",
    )  # fmt: skip
plt.show()
print(f"course bench gan's sn-gan recipe: logit × {gan.CONFIGS['sn-gan'].logit_scale:g}")
bench_sn_gan = [r for r in shipped["rows"] if (r["dataset"], r["variant"]) == ("ring", "sn-gan")]
assert all(r["modes_captured"] == r["num_modes"] for r in bench_sn_gan)

# %% [markdown]
# The benchmark's `sn-gan` recipe uses a scale that works here (printed above); the
# table's SN-GAN rows are that recipe: every mode of the ring in every seed. The R1-GAN sits at the other end: no Lipschitz constraint at all, only
# section 3's damping penalty at the data, so its discriminator can be as sharp as the modes
# while the game still settles; read its rows against WGAN-GP's, before and after DRS.
#
# ### Discriminator rejection sampling
#
# The benchmark's WGAN-GP (5000 steps) captures every mode of the grid (the cell below
# checks the shipped rows), but many
# samples fall on the "bridges" between modes: a continuous generator fed with connected
# Gaussian noise cannot jump between 25 islands (the 600-step run of section 4, below,
# shows the bridges more plainly and misses modes besides).
# The `+ DRS` rows fix that *after* training, with the result of section 1:
# a discriminator trained to optimality satisfies
#
# $$D^*(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)} \quad\Longrightarrow\quad \frac{p_\text{data}(x)}{p_g(x)} = \frac{D^*(x)}{1 - D^*(x)} = e^{\,l^*(x)},$$
#
# with $l^*$ its logit. Rejection sampling from $p_g$ with acceptance probability
# $e^{l(x)} / M$, where $M \ge \max_x e^{l(x)}$, then yields samples from
# $p_\text{data}$ (Azadi et al., 2019, DRS). The benchmark trains a fresh logistic
# discriminator against the frozen generator (`gan.rejection_sample`; its settings are
# printed below; fewer steps here, on section 4's 600-step WGAN-GP, to save time), with a
# learning rate decaying to 0 so that the final discriminator is converged rather than one
# noisy iterate. For `r1-gan + DRS` the discriminator is not fresh: like Azadi et al., who
# keep training the GAN's own discriminator, DRS starts from the R1-GAN's discriminator
# (already near $D^*$ after training, and with no constraint that would stop it from
# reaching it) and fine-tunes a copy without the penalty, which did better on the grid
# than a fresh discriminator trained as long (the README gives the measurement).
#
# **Choosing $M$ is a heuristic, in both versions.** Exact rejection sampling needs $M$ at
# the true maximum of $e^{l}$, which is dominated by a few outliers and makes the acceptance
# rate tiny. The course takes $M$ at a high quantile of $e^{l}$ over a pool of candidates
# and accepts everything above it with probability 1, so the rare samples with the largest
# density ratio are under-represented. Azadi et al. keep $M$ the largest logit seen so far
# and accept with probability $\sigma(F(x))$,
#
# $$F(x) = l(x) - \log M - \log\big(1 - e^{\,l(x) - \log M - \epsilon}\big) - \gamma,$$
#
# a smoothed version of $e^{l(x)}/M$ ($\epsilon$ for stability) with a shift $\gamma$ that
# trades acceptance rate against fidelity: neither is exact sampling from
# $p_\text{data}$. The price is the
# acceptance rate in the table: DRS spends many generator samples per kept sample, and it
# only reweights: modes the generator never visits stay missing.

# %%
grid_run = lambda_runs[1.0]
bench_wgan_gp = [r for r in shipped["rows"] if (r["dataset"], r["variant"]) == ("grid", "wgan-gp")]
assert all(r["modes_captured"] == r["num_modes"] for r in bench_wgan_gp)
drs = inspect.signature(gan.rejection_sample).parameters
print(f"the benchmark's DRS: a fresh discriminator, {drs['steps'].default} steps on batches of "
      f"{drs['batch_size'].default}, M at the {100 * drs['quantile'].default}% quantile; "
      f"the R1-GAN's own discriminator fine-tuned {gan.DRS_FINE_TUNE_STEPS} steps")  # fmt: skip
kept, acceptance = gan.rejection_sample(grid_run.sample, grid, 2500, steps=1500, seed=0)
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
for ax, (title, samples) in zip(axes, [("WGAN-GP", grid_run.sample(2500, seed=0)),
                                       ("WGAN-GP + DRS", kept)], strict=True):  # fmt: skip
    cov = coverage_of(samples, "grid")
    viz.scatter_2d(
        samples, f"{title}: {cov.modes_captured}/25 modes, {100 * cov.high_quality_rate:.0f}% HQ",
        ax=ax, centers=data.mode_centers("grid"), color="tab:red",
    )  # fmt: skip
plt.show()
print(f"acceptance rate: {100 * acceptance:.1f}%")

# %% [markdown]
# ## 6. DCGAN on MNIST
#
# Radford et al. (2016) found an architecture that trains stably on images: strided
# (transposed) convolutions instead of pooling, batch norm in both networks (not on the
# generator's output or the discriminator's input), ReLU in the generator with a tanh
# output, LeakyReLU(0.2) in the discriminator, Adam($2\cdot 10^{-4}$, $\beta_1 = 0.5$).
# Ours, sized for 28×28 digits and a CPU:


# %%
class Generator(nn.Module):
    """z [B, latent_dim] (+ labels y [B] when conditional) -> images [B, 1, 28, 28] in [-1, 1]."""

    def __init__(self, latent_dim: int = 64, width: int = 64, num_classes: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.project = nn.Sequential(  # z -> 2*width feature maps of 7x7
            nn.Linear(latent_dim + num_classes, 2 * width * 7 * 7, bias=False),
            nn.BatchNorm1d(2 * width * 7 * 7), nn.ReLU(), nn.Unflatten(1, (2 * width, 7, 7)),
        )  # fmt: skip
        self.upsample = nn.Sequential(  # 7x7 -> 14x14 -> 28x28
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:  # conditional GAN: the label is part of the input
            z = torch.cat([z, F.one_hot(y, self.num_classes).float()], dim=1)
        return self.upsample(self.project(z))


def load_generator(name: str, num_classes: int) -> Generator:
    """The shipped weights of `name` in our class, or (RETRAIN) trained here."""
    model = Generator(num_classes=num_classes).to(device)
    if RETRAIN:
        from course_utils.gan import DcganDiscriminator, train_dcgan

        x_train, y_train = data.mnist("train", device=device)
        critic = DcganDiscriminator(num_classes=num_classes).to(device)
        epochs = int(checkpoints.shipped_state(name)[1]["metrics"]["epochs"])  # as shipped
        train_dcgan(model, critic, x_train, y_train, epochs=epochs)
    else:
        state, meta = checkpoints.shipped_state(name)
        model.load_state_dict(state)
        shipped = meta["metrics"]
        print(f"{name}: shipped weights, {shipped['epochs']:.0f} epochs trained in "
              f"{shipped['train_seconds'] / 60:.0f} CPU minutes")  # fmt: skip
    return model.eval()


dcgan = load_generator("dcgan_mnist", num_classes=0)
x_test, _ = data.mnist("test", device=device)
torch.manual_seed(0)
with torch.no_grad():
    samples = data.to_unit(dcgan(torch.randn(1000, 64, device=device)))  # (x + 1) / 2: [0, 1]
coverage = metrics.class_coverage(samples)
print(f"FID (1000 samples vs the 1000 test images): {metrics.fid(samples, x_test):.1f}")
print(f"data floor (1000 train vs 1000 test images): "
      f"{metrics.fid(data.mnist('train', device=device)[0][:1000], x_test):.1f}")  # fmt: skip
print(f"classes present: {coverage.classes_present}/10, class entropy {coverage.entropy:.2f} "
      f"(uniform: {math.log(10):.2f})")  # fmt: skip
viz.show_images(samples[:64], "DCGAN samples (shipped weights)")
plt.show()

# %% [markdown]
# ### The transposed convolution
#
# The generator grows $7 \times 7$ maps to $28 \times 28$ with `ConvTranspose2d(kernel 4,
# stride 2, padding 1)`. A transposed convolution is the gradient (the adjoint) of a
# convolution: each input pixel *scatters* a copy of the kernel, scaled by its value, into
# the output, the copies placed `stride` pixels apart and summed where they overlap. Its
# output size, for input size $H_\text{in}$, kernel $k$, stride $s$, padding $p$ (and
# `output_padding` $a$), is
#
# $$H_\text{out} = (H_\text{in} - 1)\, s - 2p + k + a,$$
#
# so $(7 - 1) \cdot 2 - 2 + 4 = 14$, then 28. Checked against PyTorch, and the overlap
# counted: with an all-ones input and an all-ones kernel, each output pixel shows how
# many kernel copies land on it. When $k$ is not a multiple of $s$ the count alternates
# from pixel to pixel, and the generator must learn to cancel that pattern: the
# **checkerboard artifacts** of Odena et al. (2016). $k = 4$, $s = 2$ overlaps evenly
# (away from the border), which is one reason DCGAN-style generators use it; resizing
# then convolving avoids the problem altogether.

# %%
for k, s_, p_ in [(4, 2, 1), (3, 2, 1)]:
    layer = nn.ConvTranspose2d(1, 1, k, stride=s_, padding=p_, bias=False)
    predicted = (7 - 1) * s_ - 2 * p_ + k
    print(f"kernel {k}, stride {s_}, padding {p_}: formula {predicted}, "
          f"PyTorch {layer(torch.zeros(1, 1, 7, 7)).shape[-1]}")  # fmt: skip
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
for ax, k in zip(axes, (4, 3), strict=True):
    layer = nn.ConvTranspose2d(1, 1, k, stride=2, padding=1, bias=False)
    nn.init.ones_(layer.weight)
    with torch.no_grad():
        overlap = layer(torch.ones(1, 1, 7, 7))[0, 0]
    im = ax.imshow(overlap.numpy(), cmap="viridis")
    fig.colorbar(im, ax=ax, fraction=0.046, label="kernel copies summed")
    ax.set_title(f"kernel {k}, stride 2: {overlap[2:-2, 2:-2].unique().numel()} "
                 "interior value(s)")  # fmt: skip
    ax.set_xlabel("output column")
    ax.set_ylabel("output row")
fig.suptitle("Transposed convolution of an all-ones 7x7 input with an all-ones kernel")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The truncation trick
#
# Sampling $z$ from a narrower distribution trades diversity for fidelity: BigGAN (Brock
# et al., 2019) resamples the entries of $z$ above a threshold; StyleGAN (Karras et al.,
# 2019) moves the latent towards its mean, $w' = \bar w + \psi (w - \bar w)$, after a
# **mapping network** has turned $z$ into the intermediate latent $w$. Our DCGAN has no
# mapping network, so we apply StyleGAN's form to $z$ itself, whose mean is 0: $z' = \psi
# z$. For each $\psi$, 1000 samples against the 1000 test images: FID; k-NN precision
# (the share of samples inside the test images' feature manifold: fidelity) and recall
# (the share of test images inside the samples' manifold: diversity; Kynkäänniemi et al.,
# 2019, `metrics.precision_recall`); and the entropy of the classifier's predicted
# classes (2.30 for ten equally frequent digits):

# %%
psis = [0.2, 0.4, 0.6, 0.8, 1.0, 1.2]
torch.manual_seed(0)
z_truncation = torch.randn(1000, 64, device=device)
test_features = metrics.classifier_features(x_test)
truncated = {}
for psi in psis:
    with torch.no_grad():
        images = data.to_unit(dcgan(psi * z_truncation))
    cov = metrics.class_coverage(images)
    precision, recall = metrics.precision_recall(test_features, metrics.classifier_features(images))
    truncated[psi] = (images[:32], metrics.fid(images, x_test), cov.entropy)
    print(f"psi = {psi:.1f}: FID {truncated[psi][1]:6.1f}, precision {precision:.2f}, "
          f"recall {recall:.2f}, class entropy {cov.entropy:.2f}")  # fmt: skip

# %% [markdown]
# Shrinking $\psi$ from 1 first raises precision while recall and the class entropy fall:
# fidelity bought with diversity. Far enough, both fall: $z$ near 0 is not a typical input
# of the generator (lecture 01: a Gaussian's mass lies far from its mean). FID counts
# both kinds of error, and on this model it is best at $\psi \ge 1$.

# %% [markdown]
# ### Widget: truncation
#
# The same 32 noise vectors, scaled by $\psi$: as $\psi$ shrinks the digits converge to
# a few shapes; at $\psi = 1$ they are the model's own distribution.

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda psi: viz.show_images(
        truncated[psi][0],
        f"DCGAN, z' = psi z with psi = {psi}: FID {truncated[psi][1]:.1f}, "
        f"class entropy {truncated[psi][2]:.2f}", nrow=16,
    ),
    psi=psis,
)  # fmt: skip

# %% [markdown]
# **Progressive growing** (Karras et al., 2018) trains a GAN on $4 \times 4$ images
# first, then adds layers for $8 \times 8$, $16 \times 16$, ... During each transition the
# new layer's output is faded in: the image is $(1 - \alpha)\,\text{up}(x_\text{low}) +
# \alpha\, x_\text{high}$ with $\alpha$ rising from 0 to 1, so the new layer starts as a
# small correction to an already trained coarse generator. Below, that blend for a digit,
# with $x_\text{low}$ the $7 \times 7$ average-pooled digit upsampled and $x_\text{high}$
# the digit itself:

# %%
digit_high = x_test[:1]
digit_low = F.interpolate(F.avg_pool2d(digit_high, 4), scale_factor=4, mode="nearest")
alphas = torch.linspace(0, 1, 6, device=device)
fade = torch.cat([(1 - a) * digit_low + a * digit_high for a in alphas])
viz.show_images(fade, "fade-in: (1 - alpha) up(7x7) + alpha 28x28, alpha = 0, 0.2, ..., 1", nrow=6)
plt.show()

# %% [markdown]
# ### Latent interpolation
#
# Walking in $z$ between two samples changes the digit smoothly: the generator has learned
# a continuous map, not a lookup table of training images. We interpolate along the great
# circle (slerp), which keeps $\|z\|$ typical for a Gaussian in 64 dimensions (lecture 01).

# %%
torch.manual_seed(3)
z_pairs = torch.randn(4, 2, 64, device=device)
rows = []
with torch.no_grad():
    for z0, z1 in z_pairs:
        path = torch.stack(
            [vae.interpolate(z0, z1, t, method="slerp") for t in np.linspace(0, 1, 10)]
        )
        rows.append(data.to_unit(dcgan(path)))
viz.show_images(torch.cat(rows), "DCGAN: slerp between two latent codes (one row each)", nrow=10)
plt.show()

# %% [markdown]
# ### A conditional GAN
#
# Give both networks the label: the generator sees $[z, \text{one-hot}(y)]$, the
# discriminator sees the image with 10 extra constant planes, one-hot in $y$ (Mirza &
# Osindero, 2014). The game becomes $\min_G\max_D \mathbb{E}[\log D(x, y)] + \mathbb{E}[\log(1 - D(G(z, y), y))]$:
# the discriminator rejects a good "3" labelled 7, so the generator must respect the
# label. One row per class, one column per noise vector $z$ (shared across rows):

# %%
cgan = load_generator("cgan_mnist", num_classes=10)
torch.manual_seed(0)
with torch.no_grad():
    z = torch.randn(8, 64, device=device).repeat(10, 1)
    labels = torch.arange(10, device=device).repeat_interleave(8)
    grid_images = data.to_unit(cgan(z, labels))
    z_eval = torch.randn(1000, 64, device=device)
    y_eval = torch.arange(1000, device=device) % 10
    eval_images = data.to_unit(cgan(z_eval, y_eval))
accuracy = (metrics.classifier_predict(eval_images) == y_eval).float().mean().item()
print(f"conditional GAN: the classifier reads the requested digit in {100 * accuracy:.1f}% of "
      f"1000 samples; FID {metrics.fid(eval_images, x_test):.1f}")  # fmt: skip
viz.show_images(grid_images, "Conditional GAN: row = requested digit, column = shared z", nrow=8)
plt.show()

# %% [markdown]
# ## 7. Image-to-image translation: pix2pix and CycleGAN
#
# A conditional GAN can condition on a whole image instead of a label. **pix2pix** (Isola
# et al., 2017) learns a map $G: X \to Y$ (edges to photos, maps to aerial views) from
# **paired** examples $(x, y)$. Its discriminator judges pairs, real $(x, y)$ against fake
# $(x, G(x))$, and an L1 term ties the output to the paired target:
#
# $$G^* = \arg\min_G \max_D\ \mathbb{E}_{x,y}[\log D(x, y)] + \mathbb{E}_{x}[\log(1 - D(x, G(x)))]
#   + \lambda\, \mathbb{E}_{x,y}\|y - G(x)\|_1, \qquad \lambda = 100 .$$
#
# L1 alone gives the blurry conditional median; the adversarial term makes the output
# sharp. (pix2pix's noise is dropout inside $G$; its $D$ scores $70 \times 70$ patches.)
#
# Pairs are rare: nobody has the same horse photographed as a zebra. **CycleGAN** (Zhu et
# al., 2017) learns from two **unpaired** sets. Two translators $G: X \to Y$ and
# $F: Y \to X$, two discriminators $D_Y$ (real $y$ against $G(x)$) and $D_X$ (real $x$
# against $F(y)$). The adversarial terms only ask that $G(X)$ *look like* $Y$: any map that
# pushes $p_X$ onto $p_Y$ wins, and there are infinitely many. The **cycle-consistency
# loss** asks $G$ and $F$ to undo each other, which rules out maps that forget where a
# point came from:
#
# $$\mathcal{L}_\text{cyc}(G, F) = \mathbb{E}_{x}\|F(G(x)) - x\|_1 + \mathbb{E}_{y}\|G(F(y)) - y\|_1,$$
#
# $$\mathcal{L}(G, F, D_X, D_Y) = \mathcal{L}_\text{GAN}(G, D_Y) + \mathcal{L}_\text{GAN}(F, D_X)
#   + \lambda\, \mathcal{L}_\text{cyc}(G, F),$$
#
# with least-squares adversarial losses (LSGAN, section 8) and $\lambda = 10$ in the paper.
# (`gan.cycle_consistency_loss`, which you write in exercise set 02, question 9, averages $|\cdot|$ over
# coordinates too: $\|\cdot\|_1 / 2$ for 2D points.)
#
# A task that trains in seconds per run: $X$ is the ring of 8 Gaussians, $Y$
# is 8 Gaussians on a line, with no pairing between them. `gan.train_cyclegan` trains all
# four networks (3-layer MLPs of width 64, 1000 steps) for three values of $\lambda$:

# %%
line_centers = torch.stack([torch.linspace(-3.5, 3.5, 8), torch.zeros(8)], dim=1)
line_std = 0.05
g = torch.Generator().manual_seed(1)
line = line_centers[torch.randint(8, (10_000,), generator=g)]
line = line + line_std * torch.randn(10_000, 2, generator=g)
line_centers, line = line_centers.to(ring.device), line.to(ring.device)
cycle_runs = {
    f"lambda = {lam:g}": gan.train_cyclegan(
        ring[:10_000], line, cycle_weight=lam, steps=1000, seed=0
    )
    for lam in (0.0, 2.0, 10.0)
}

# %% [markdown]
# On 2000 fresh ring points we measure, for each $\lambda$: how many of $Y$'s modes $G$
# reaches and its share of high-quality translations (the benchmark's protocol, section 5);
# whether each source mode lands on **one** target mode (the share of points that go
# where the majority of their mode goes) and which; and the two cycle errors.

# %%
ring_test = data.toy_2d("ring", 2000, seed=5)
ring_centers = data.mode_centers("ring")
source_mode = torch.cdist(ring_test, ring_centers).argmin(1)
y_test = line[:2000]
for name, cyc in cycle_runs.items():
    with torch.no_grad():
        translated = cyc.G(ring_test)
        error_x = (cyc.F(translated) - ring_test).abs().mean().item()
        error_y = (cyc.G(cyc.F(y_test)) - y_test).abs().mean().item()
    cov = metrics.mode_coverage(translated, line_centers, line_std)
    target = torch.cdist(translated, line_centers).argmin(1)
    majority = [int(target[source_mode == k].mode().values) for k in range(8)]
    kept = sum(int((target[source_mode == k] == majority[k]).sum()) for k in range(8))
    print(f"{name:>11}: G reaches {cov.modes_captured}/8 line modes, "
          f"{100 * cov.high_quality_rate:5.1f}% HQ; ring mode k -> line mode {majority} "
          f"({100 * kept / len(ring_test):.1f}% follow); E|F(G(x)) - x| = {error_x:.4f}, "
          f"E|G(F(y)) - y| = {error_y:.4f}; {cyc.seconds:.0f} s")  # fmt: skip

# %% [markdown]
# Each column below colors the ring's points by their mode: top, where $G$ sends them on
# the line; bottom, where $F$ brings them back.

# %%
gan.cyclegan_figure(cycle_runs, ring_test, y_test, ring_centers, line_centers)
plt.show()

# %% [markdown]
# Three regimes, read off the numbers above:
#
# - $\lambda = 0$: two independent GANs. $G$ alone may well push the ring onto the line,
#   but $F(G(x))$ lands far from $x$, often on another mode: nothing asks $F$ to invert
#   $G$.
# - $\lambda = 2$: $G$ reaches every line mode, one ring mode per line mode, and the cycle
#   errors are far smaller: $F \approx G^{-1}$ on the data (in the bottom row each color is
#   back on its own mode). Which ring mode goes to which line mode is *not* determined by
#   the loss; neighbours on the ring tend to stay neighbours on the line only because $G$
#   is a smooth network.
# - $\lambda = 10$, the paper's weight: here the cycle term dominates. $G$ and $F$ become
#   near-perfect inverses of each other and the adversarial terms lose: $G$ piles several
#   ring modes onto the same few line modes. Cycle consistency constrains the pair; it
#   gives no reason to match $p_Y$, so its weight has to leave the adversarial terms in
#   charge. (On images, where the paper uses 10, the L1 term is averaged over pixels in
#   $[-1, 1]$, a different scale from these coordinates.)

# %% [markdown]
# ## 8. The loss variants, one line each
#
# | variant | critic / discriminator minimizes | generator minimizes |
# |---|---|---|
# | MM (Goodfellow et al.) | $-\mathbb{E}\log D(x) - \mathbb{E}\log(1 - D(G(z)))$ | $\mathbb{E}\log(1 - D(G(z)))$ |
# | NS (Goodfellow et al.) | same | $-\mathbb{E}\log D(G(z))$ |
# | WGAN (Arjovsky et al.) | $\mathbb{E}f(G(z)) - \mathbb{E}f(x)$, weights clipped to $[-c, c]$ | $-\mathbb{E}f(G(z))$ |
# | WGAN-GP (Gulrajani et al.) | WGAN's $+\ \lambda\,\mathbb{E}(\|\nabla_{\hat x} f(\hat x)\|_2 - 1)^2$ | $-\mathbb{E}f(G(z))$ |
# | LSGAN (Mao et al.) | $\tfrac12\mathbb{E}(D(x) - 1)^2 + \tfrac12\mathbb{E}D(G(z))^2$ | $\tfrac12\mathbb{E}(D(G(z)) - 1)^2$ |
#
# In code, with `r`, `f` the critic's outputs on real and fake batches (logits for MM and
# NS, scores otherwise) and `gp` the penalty:

# %%
sp = F.softplus  # log sigma(l) = -softplus(-l), log(1 - sigma(l)) = -softplus(l)
LOSSES = {  # name: (critic loss, generator loss)
    "MM": (lambda r, f: sp(-r).mean() + sp(f).mean(), lambda f: -sp(f).mean()),
    "NS": (lambda r, f: sp(-r).mean() + sp(f).mean(), lambda f: sp(-f).mean()),
    "WGAN": (lambda r, f: f.mean() - r.mean(), lambda f: -f.mean()),
    "WGAN-GP": (lambda r, f, gp, lam=10.0: f.mean() - r.mean() + lam * gp, lambda f: -f.mean()),
    "LSGAN": (lambda r, f: 0.5 * (r - 1).pow(2).mean() + 0.5 * f.pow(2).mean(),
              lambda f: 0.5 * (f - 1).pow(2).mean()),
}  # fmt: skip
r, f = torch.randn(5), torch.randn(5)
references = {
    "MM": (gan.discriminator_loss(r, f), gan.generator_loss_minimax(f)),
    "NS": (gan.discriminator_loss(r, f), gan.generator_loss_nonsaturating(f)),
    "WGAN": (gan.critic_loss(r, f), gan.wgan_generator_loss(f)),
    "LSGAN": (gan.lsgan_discriminator_loss(r, f), gan.lsgan_generator_loss(f)),
}
for name, (critic_ref, generator_ref) in references.items():
    critic_fn, generator_fn = LOSSES[name]
    assert torch.allclose(critic_fn(r, f), critic_ref) and torch.allclose(
        generator_fn(f), generator_ref
    )
print("each one-liner matches course_utils.gan's reference implementation")

# %% [markdown]
# ## Summary
#
# - A GAN trains an implicit model through a learned two-sample test. With the optimal
#   discriminator $D^* = p_\text{data}/(p_\text{data} + p_g)$ the generator minimizes
#   $-\log 4 + 2\,\mathrm{JS}$.
# - JS is constant for disjoint supports, so it gives no gradient; the minimax loss
#   saturates. Use the non-saturating loss, and watch for mode collapse.
# - The game's dynamics matter: on the Dirac-GAN, simultaneous gradient steps spiral away
#   from the equilibrium, alternating steps circle it, a gradient penalty (R1) converges;
#   on the 2D mixtures the R1-penalized GAN is the benchmark's best, cheap per step.
# - WGAN replaces JS with $W_1$ through Kantorovich–Rubinstein duality; the Lipschitz
#   constraint is enforced badly by clipping, well by the gradient penalty; spectral
#   normalization divides each layer by its largest singular value (power iteration).
# - A trained discriminator estimates $p_\text{data}/p_g$: DRS uses it to reject bad
#   samples after training.
# - DCGAN's architecture makes image GANs train; a label input makes them conditional.
# - pix2pix translates with paired data (conditional GAN + L1); CycleGAN with unpaired
#   data, through two translators that must undo each other (cycle consistency).
#
# GANs give sharp samples but no likelihood. The next lecture builds models with an
# **exact** likelihood: normalizing flows.
#
# **Exercises:** `exercises/02_gan.ipynb` (the losses, the optimal discriminator, JS,
# weight clipping, the gradient penalty, power iteration, the cycle-consistency loss, and
# your WGAN-GP on the ring). Grade yourself with
# `course grade exercises/02_gan.ipynb`.
