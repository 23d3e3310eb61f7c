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
# # Lecture 00 — Foundations of generative modelling
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/lectures/00_foundations.ipynb)
#
# A generative model is a probability distribution $p_\theta(x)$ over data that we can fit
# to examples and then use: to **sample** new data, to **score** how likely a data point is,
# or to **reason** about hidden causes. This lecture builds the toolkit every later lecture
# uses:
#
# 1. generative vs discriminative models, and Bayes' rule as the bridge between them;
# 2. explicit vs implicit densities (a map of the course);
# 3. expectations, Monte Carlo and Jensen's inequality;
# 4. the KL divergence, forward vs reverse, and the Jensen–Shannon divergence;
# 5. an autoencoder whose latent space has *holes* — the problem the VAE solves;
# 6. how generative models are evaluated, and what each number misses.
#
# Everything runs on a laptop CPU in about a minute. Every number printed is computed below.

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data, foundations, metrics, viz, widgets
from course_utils.device import get_device, seed_everything
from course_utils.train import fit

device = get_device()
seed_everything(0)
print(f"device: {device}, CPU threads used by torch: {torch.get_num_threads()}")

# %% [markdown]
# ## 1. Generative vs discriminative
#
# A **discriminative** model learns $p(y \mid x)$: given an image, which digit is it?
# A **generative** model learns how the data itself is distributed: $p(x)$, or jointly
# $p(x, y) = p(x \mid y)\,p(y)$. A generative model can do more:
#
# * **sample**: draw $y \sim p(y)$, then $x \sim p(x \mid y)$;
# * **score**: the *marginal likelihood* $p(x) = \sum_y p(x \mid y)\,p(y)$ (marginalization:
#   sum the joint over what we do not observe);
# * **classify** with **Bayes' rule**:
#
# $$p(y \mid x) = \frac{p(x \mid y)\,p(y)}{p(x)} = \frac{p(x \mid y)\,p(y)}{\sum_{y'} p(x \mid y')\,p(y')}.$$
#
# The simplest generative model of MNIST puts one Gaussian on each class,
# $p(x \mid y) = \mathcal{N}(x; \mu_y, \Sigma_y)$, fitted by maximum likelihood: $\mu_y$ and
# $\Sigma_y$ are the mean and covariance of the class's images. With 400 images per class and
# 784 pixels, $\Sigma_y$ is singular, so we add $\lambda I$ to its diagonal.

# %%
x_train, y_train = data.mnist("train", device=device, flatten=True)  # [4000, 784] in [0, 1]
x_test, y_test = data.mnist("test", device=device, flatten=True)  # [1000, 784]
D = x_train.shape[1]
LAMBDA = 0.05  # variance added to every pixel: keeps Sigma_y invertible

# float64 for the Cholesky factors of 784 x 784 covariances, on the CPU (Apple's MPS
# has no float64).
x_cpu, y_cpu = x_train.cpu(), y_train.cpu()
means, scale_trils = [], []
for c in range(10):
    x_c = x_cpu[y_cpu == c].double()
    sigma_c = torch.cov(x_c.T) + LAMBDA * torch.eye(D, dtype=torch.float64)
    means.append(x_c.mean(0))
    scale_trils.append(torch.linalg.cholesky(sigma_c))  # Sigma_y = L L^T
p_x_given_y = torch.distributions.MultivariateNormal(
    torch.stack(means), scale_tril=torch.stack(scale_trils)
)  # a batch of 10 Gaussians over R^784
log_p_y = (torch.bincount(y_cpu, minlength=10).double() / len(y_cpu)).log()  # log p(y)


def log_joint(x: torch.Tensor) -> torch.Tensor:
    """log p(x, y) = log p(x|y) + log p(y) for every class: [N, 784] -> [N, 10]."""
    return p_x_given_y.log_prob(x.cpu().double()[:, None, :]) + log_p_y


log_p_xy = log_joint(x_test)
log_p_x = torch.logsumexp(log_p_xy, dim=1)  # marginalize y: log sum_y p(x, y)
posterior = (log_p_xy - log_p_x[:, None]).exp()  # Bayes: p(y|x)
bayes_accuracy = (posterior.argmax(1) == y_test.cpu()).double().mean().item()
print(f"Bayes classifier from the generative model: test accuracy {bayes_accuracy:.1%}")
print(f"posterior rows sum to 1: max |sum - 1| = {(posterior.sum(1) - 1).abs().max():.1e}")

# %% [markdown]
# The discriminative counterpart models $p(y \mid x)$ directly; the simplest one is
# multinomial logistic regression, $p(y \mid x) = \mathrm{softmax}(Wx + b)_y$, trained by
# minimizing the cross-entropy. It only answers "which digit?": it cannot sample or score an
# image.

# %%
logreg = nn.Linear(D, 10).to(device)
history = fit(
    lambda x, y: F.cross_entropy(logreg(x), y),
    torch.optim.Adam(logreg.parameters(), lr=1e-2),
    (x_train, y_train),
    batch_size=128,
    epochs=15,
    seed=0,
    progress=False,
)
with torch.no_grad():
    logreg_accuracy = (logreg(x_test).argmax(1) == y_test).float().mean().item()
print(f"logistic regression (discriminative): test accuracy {logreg_accuracy:.1%}")

# %% [markdown]
# The generative model can also *sample*. One row per class, drawn from $p(x \mid y)$:

# %%
with torch.no_grad():
    gaussian_samples = p_x_given_y.sample((8,)).float().clamp(0, 1)  # [8, 10, 784]
viz.show_images(
    gaussian_samples.transpose(0, 1).reshape(-1, D),
    "Samples of the class-conditional Gaussians",
    nrow=8,
)
plt.show()

# %% [markdown]
# Recognisable, but noisy: a Gaussian cannot express "strokes are either on or off". The
# rest of the course replaces $\mathcal{N}(\mu_y, \Sigma_y)$ by far more flexible models.
#
# ## 2. Explicit vs implicit densities: a map of the course
#
# | model family | density $p_\theta(x)$ | sampling | lecture |
# |---|---|---|---|
# | Gaussian, mixtures (above) | explicit, exact | easy | 00 |
# | Variational autoencoder | explicit *latent-variable* model, $\int p(x\mid z)p(z)\,dz$ intractable; we optimize a lower bound (ELBO) | one pass | 01 |
# | GAN / WGAN | **implicit**: $x = G(z)$, no density at all; trained by a critic | one pass | 02 |
# | Normalizing flow | explicit, exact, via the change of variables | one pass | 03 |
# | Diffusion model | explicit latent-variable model (a chain of Gaussians); ELBO | many steps | 04 |
# | Score model / flow matching | explicit through the probability-flow ODE: exact log-likelihood by integrating the divergence, at a cost | a few to many steps | 05 |
# | Autoregressive model (PixelCNN, transformer) | explicit, exact, by the chain rule $\prod_i p(x_i \mid x_{<i})$ | one pass per pixel or token | 06 |
#
# ## 3. Expectations, Monte Carlo and Jensen's inequality
#
# Almost every objective in this course is an expectation $\mathbb{E}_{x \sim p}[f(x)]$ that
# we cannot compute exactly. The **Monte Carlo** estimate averages $f$ over samples,
#
# $$\mathbb{E}_{p}[f(x)] \approx \frac{1}{n}\sum_{i=1}^n f(x_i), \qquad x_i \sim p,$$
#
# unbiased, with standard error $\sqrt{\operatorname{Var}_p[f(x)] / n}$. Example:
# $f(x) = x^2$, $x \sim \mathcal{N}(0, 1)$: $\mathbb{E}[x^2] = 1$, $\operatorname{Var}[x^2] = 2$.

# %%
print(f"{'n':>8} {'estimate':>10} {'|error|':>10} {'predicted std error':>20}")
for n in [10, 100, 1_000, 10_000, 100_000]:
    x = torch.randn(n, dtype=torch.float64)
    estimate = (x**2).mean().item()
    print(f"{n:>8} {estimate:>10.4f} {abs(estimate - 1):>10.4f} {math.sqrt(2 / n):>20.4f}")

# %% [markdown]
# **Jensen's inequality.** For a concave function such as $\log$,
# $\log \mathbb{E}[X] \ge \mathbb{E}[\log X]$, with equality only when $X$ is constant.
# Lecture 01 builds the ELBO from exactly this step. Check it on $X = e^{Z}$,
# $Z \sim \mathcal{N}(0, s^2)$, where both sides are known: $\log \mathbb{E}[X] = s^2/2$ and
# $\mathbb{E}[\log X] = 0$, so the gap is $s^2/2$.

# %%
for s in [0.1, 0.5, 1.0, 2.0]:
    X = torch.exp(s * torch.randn(1_000_000, dtype=torch.float64))
    gap = (X.mean().log() - X.log().mean()).item()
    print(f"s = {s:3.1f}: log E[X] - E[log X] = {gap:.4f}   (exact s^2/2 = {s * s / 2:.4f})")

# %% [markdown]
# ## 4. Divergences: how far is $q$ from $p$?
#
# The **Kullback–Leibler divergence** is
#
# $$\mathrm{KL}(p \,\|\, q) = \mathbb{E}_{x \sim p}\left[\log \frac{p(x)}{q(x)}\right].$$
#
# It is never negative, by Jensen: $-\mathrm{KL}(p\|q) = \mathbb{E}_p[\log \tfrac{q}{p}]
# \le \log \mathbb{E}_p[\tfrac{q}{p}] = \log \int_{p > 0} q(x)\,dx \le \log 1 = 0$ (the
# integral runs over $p$'s support only, so it is 1 just when $q$ puts no mass outside
# it), with equality iff $p = q$.
# It is **not symmetric**, and the direction matters when $q$ is too simple to match $p$:
#
# * **forward** $\mathrm{KL}(p\|q)$ averages over the data $p$. Wherever $p > 0$ and
#   $q \approx 0$ the log-ratio explodes, so $q$ must *cover every mode* of $p$. Maximum
#   likelihood minimizes this direction (up to a constant, $-\mathbb{E}_p[\log q]$).
# * **reverse** $\mathrm{KL}(q\|p)$ averages over the model $q$. $q$ is punished for putting
#   mass where $p \approx 0$, not for missing modes, so it *seeks one mode*. Variational
#   inference (lecture 01) minimizes this direction.
#
# Fit $q = \mathcal{N}(\mu, \sigma^2)$ to the bimodal
# $p = \tfrac12 \mathcal{N}(-2, 0.6^2) + \tfrac12 \mathcal{N}(2, 0.6^2)$ by gradient descent on
# each direction, with the integrals computed on a fine grid, starting from
# $q = \mathcal{N}(0.5, 0.5^2)$. (Reverse KL has several local optima: one per mode, and a
# wide one between them that a start with large $\sigma$ can fall into. Try it below.)

# %%
xs = foundations.KL_GRID  # 4001 points on [-8, 8], float64
dx = (xs[1] - xs[0]).item()
log_p = foundations.bimodal_density(xs).log()


def fit_gaussian(direction: str, steps: int = 600) -> tuple[float, float]:
    """Minimize KL(p||q) ('forward') or KL(q||p) ('reverse') over q = N(mu, sigma^2)."""
    mu = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    log_sigma = torch.tensor(math.log(0.5), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([mu, log_sigma], lr=0.05)
    for _ in range(steps):
        log_q = torch.distributions.Normal(mu, log_sigma.exp()).log_prob(xs)
        if direction == "forward":
            kl = (log_p.exp() * (log_p - log_q)).sum() * dx  # E_p[log p - log q]
        else:
            kl = (log_q.exp() * (log_q - log_p)).sum() * dx  # E_q[log q - log p]
        optimizer.zero_grad()
        kl.backward()
        optimizer.step()
    return mu.item(), log_sigma.exp().item()


fits = {direction: fit_gaussian(direction) for direction in ("forward", "reverse")}
p_mean = (log_p.exp() * xs).sum().item() * dx
p_std = math.sqrt((log_p.exp() * (xs - p_mean) ** 2).sum().item() * dx)
for direction, (mu, sigma) in fits.items():
    forward, reverse = foundations.kl_fit_values(mu, sigma)
    print(
        f"{direction:>7} fit: mu = {mu:+.3f}, sigma = {sigma:.3f}   "
        f"KL(p||q) = {forward:.3f}, KL(q||p) = {reverse:.3f} nats"
    )
print(f"moments of p: mean {p_mean:+.3f}, std {p_std:.3f} (the forward fit matches them)")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for ax, (direction, (mu, sigma)) in zip(axes, fits.items(), strict=True):
    ax.fill_between(xs.numpy(), log_p.exp().numpy(), alpha=0.3, label="p")
    q = torch.distributions.Normal(mu, sigma).log_prob(xs).exp()
    ax.plot(xs.numpy(), q.numpy(), color="tab:red", label="best q")
    ax.set_xlim(-6, 6)
    ax.set_title(
        f"{direction} KL: " + ("mode covering" if direction == "forward" else "mode seeking")
    )
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend()
plt.tight_layout()

# %% [markdown]
# Move $\mu$ and $\sigma$ yourself and watch both divergences. Can you find the two optima?

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(foundations.kl_fit_figure, mu=(-4.0, 4.0, 0.1), sigma=(0.2, 4.0, 0.05))

# %% [markdown]
# **Jensen–Shannon divergence.** With the mixture $m = \tfrac12(p + q)$,
#
# $$\mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m),$$
#
# symmetric, finite, and bounded: $0 \le \mathrm{JS} \le \log 2$. The original GAN minimizes
# it (lecture 02). Its bound is also its weakness: once two distributions stop overlapping,
# JS is stuck at $\log 2$ however far apart they are, and gives no gradient. Compare with KL
# on two unit Gaussians at distance $d$ (where $\mathrm{KL} = d^2/2$), computed on the grid:

# %%
distances = torch.linspace(0, 10, 41, dtype=torch.float64)
ys = torch.linspace(-10.0, 20.0, 6001, dtype=torch.float64)  # wide enough for both Gaussians
dy = (ys[1] - ys[0]).item()
js_values, kl_values = [], []
for d in distances:
    log_p1 = torch.distributions.Normal(0.0, 1.0).log_prob(ys)
    log_p2 = torch.distributions.Normal(d, 1.0).log_prob(ys)
    log_m = torch.logaddexp(log_p1, log_p2) - math.log(2)
    kl_1m = (log_p1.exp() * (log_p1 - log_m)).sum() * dy
    kl_2m = (log_p2.exp() * (log_p2 - log_m)).sum() * dy
    js_values.append((0.5 * kl_1m + 0.5 * kl_2m).item())
    kl_values.append(((log_p1.exp() * (log_p1 - log_p2)).sum() * dy).item())

fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(distances, js_values, label="JS(p, q)")
ax.plot(distances, kl_values, label="KL(p || q)")
ax.axhline(math.log(2), color="gray", ls="--", label="log 2")
ax.set_ylim(0, 3)
ax.set_title("Two unit Gaussians at distance d")
ax.set_xlabel("distance d between the means")
ax.set_ylabel("divergence (nats)")
ax.legend()
plt.show()
print(
    f"JS at d = 10: {js_values[-1]:.6f}  (log 2 = {math.log(2):.6f}); KL at d = 10: {kl_values[-1]:.2f} (d^2/2 = 50)"
)

# %% [markdown]
# ## 5. Autoencoders, and the holes in their latent space
#
# An **autoencoder** compresses $x$ to a code $z = f(x)$ and decodes $\hat x = g(z)$, trained
# to reconstruct: $\min_{f,g} \sum_i \ell(x_i, g(f(x_i)))$. With a 2-dimensional code we can
# look at the whole latent space. Is the decoder $g$ a generative model — can we pick any $z$
# and decode a digit? Train one on MNIST (binary cross-entropy per pixel, summed).


# %%
class AutoEncoder(nn.Module):
    def __init__(self, latent_dim: int = 2, hidden: int = 256) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(784, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 64),
            nn.ReLU(),
            nn.Linear(64, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 64),
            nn.ReLU(),
            nn.Linear(64, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 784),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 784] -> reconstruction logits [B, 784]."""
        return self.decoder(self.encoder(x))


seed_everything(0)
autoencoder = AutoEncoder().to(device)


def reconstruction_loss(x: torch.Tensor) -> torch.Tensor:
    logits = autoencoder(x)
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1).mean()


ae_history = fit(
    reconstruction_loss,
    torch.optim.Adam(autoencoder.parameters(), lr=2e-3),
    x_train,
    batch_size=128,
    epochs=40,
    seed=0,
    plot_every=320,  # redraw the loss curve every 10 epochs while training
)
print(
    f"{ae_history['step'][-1]} steps in {ae_history['time'][-1]:.1f} s; "
    f"final loss {ae_history['loss'][-1]:.1f} nats per image"
)

# %%
with torch.no_grad():
    codes = autoencoder.encoder(x_test)  # [1000, 2]
    lo, hi = codes.min(0).values, codes.max(0).values
    g1 = torch.linspace(lo[0].item(), hi[0].item(), 15, device=device)
    g2 = torch.linspace(hi[1].item(), lo[1].item(), 15, device=device)  # top row = high z_2
    z2, z1 = torch.meshgrid(g2, g1, indexing="ij")  # row i: z_2 = g2[i]; column j: z_1 = g1[j]
    grid_z = torch.stack([z1, z2], dim=-1).reshape(-1, 2)
    grid_images = torch.sigmoid(autoencoder.decoder(grid_z))

fig, axes = plt.subplots(1, 2, figsize=(11, 5))
sc = axes[0].scatter(
    codes[:, 0].cpu().numpy(), codes[:, 1].cpu().numpy(), c=y_test.cpu().numpy(), cmap="tab10", s=5
)
fig.colorbar(sc, ax=axes[0], label="digit")
axes[0].set_title("Latent codes of the test set")
axes[0].set_xlabel("$z_1$")
axes[0].set_ylabel("$z_2$")
viz.show_images(grid_images, "Decoded 15x15 grid over the codes' bounding box", nrow=15, ax=axes[1])
plt.tight_layout()

# %% [markdown]
# The decoder is smooth, so most of the grid decodes to something digit-like. The trouble
# for *sampling* is the codes themselves: nothing told the encoder where to put them. They
# crowd near the origin, some classes sprawl over half the box, and between the clusters are
# **holes** that no training image maps to. Measure both: draw 1000 latent points uniformly
# in the codes' bounding box, compare their distance to the nearest test code with the
# distance between neighbouring codes, and ask the course's MNIST classifier which digits
# their decodes show (real data: 10% each).

# %%
with torch.no_grad():
    z_random = lo + (hi - lo) * torch.rand(1000, 2, device=device)
    random_decodes = torch.sigmoid(autoencoder.decoder(z_random))
    reconstructions = torch.sigmoid(autoencoder(x_test))
    nearest_code = torch.cdist(z_random, codes).min(1).values
    neighbour_gap = torch.cdist(codes, codes).topk(2, largest=False).values[:, 1]
print(
    f"median distance to the nearest test code: random points {nearest_code.median():.3f}, "
    f"test codes to their nearest neighbour {neighbour_gap.median():.3f}"
)
share = torch.bincount(metrics.classifier_predict(random_decodes), minlength=10) / 1000
print("digits among decodes of random latent points:")
print("  " + ", ".join(f"{digit}: {p:.0%}" for digit, p in enumerate(share.tolist())))
deepest = nearest_code.topk(24).indices
viz.show_images(
    random_decodes[deepest],
    "Decodes of the 24 random latent points farthest from any code",
    nrow=12,
)
plt.show()

# %% [markdown]
# The autoencoder gives us no distribution over $z$ to sample from, and its latent space is
# not organised for sampling. The **variational autoencoder** (lecture 01) fixes both: it
# places a prior $p(z) = \mathcal{N}(0, I)$ on the codes and trains the encoder to spread
# each $x$ as a distribution $q(z \mid x)$ that stays close to that prior.
#
# ## 6. Evaluating generative models
#
# No single number says "this generative model is good". The course uses four families.
#
# **Likelihood.** The average $-\log p_\theta(x)$ on *held-out* data, in nats per image or in
# **bits per dimension** $= -\log p_\theta(x) / (D \ln 2)$. Best for comparing models of the
# same data; only for models with a density. Beware continuous densities on discrete data:
# MNIST pixels here are mostly exactly 0, and a Gaussian can pile density on them. The
# class-conditional Gaussian of section 1 scores:

# %%
nll_nats = -log_p_x.mean().item()
print(
    f"Gaussian model, test NLL: {nll_nats:.1f} nats per image = "
    f"{metrics.nats_to_bits_per_dim(nll_nats, D):.3f} bits/dim"
)

# %% [markdown]
# A *negative* NLL: a density can exceed 1, and shrinking $\lambda$ would make it as
# negative as we like without producing better samples. Likelihoods of continuous models
# are only meaningful on **dequantized** data (lecture 03 explains how).
#
# Likelihood and sample quality can also disagree (Theis et al., 2016). A model that is
# 99% white noise and 1% a good model $p$, $0.01\,p + 0.99\,\text{noise}$, has
# $\log(0.01\,p(x) + \dots) \ge \log p(x) - \log 100$: at most $\log 100$ nats per image worse,

# %%
print(
    f"log 100 = {math.log(100):.2f} nats per image = "
    f"{metrics.nats_to_bits_per_dim(math.log(100), D):.4f} bits/dim on MNIST"
)

# %% [markdown]
# a tiny difference in bits/dim, although 99% of its samples are noise.
#
# **Sample statistics in a feature space: FID.** Embed real and generated images with a
# network, fit a Gaussian to each set of features, and compute the Fréchet distance
#
# $$\mathrm{FD} = \|\mu_r - \mu_g\|^2 + \operatorname{tr}\!\left(\Sigma_r + \Sigma_g - 2(\Sigma_r^{1/2}\Sigma_g\Sigma_r^{1/2})^{1/2}\right).$$
#
# Papers use Inception-v3 features on natural images ("FID", Heusel et al., 2017); on MNIST
# the course uses the 128-d features of a small shipped classifier, so our numbers compare
# models within the course only. Two sets of *real* images do not score 0 (finite samples):
# the train-vs-test FID is the **data floor**.
#
# **Precision and recall** (Kynkäänniemi et al., 2019) split FID's single number into
# quality (the fraction of samples inside the data's k-NN manifold) and coverage (the
# fraction of data inside the samples' manifold). **Class coverage** asks the classifier
# which digits the samples contain. Compare the models of this lecture with real data and
# with noise (1000 images each, against the 1000 test images):

# %%
with torch.no_grad():
    candidates = {
        "MNIST train images (data floor)": x_train[:1000],
        "AE reconstructions of test images": reconstructions,
        "class-conditional Gaussian samples": p_x_given_y.sample((100,))
        .float()
        .clamp(0, 1)
        .reshape(-1, D),
        "AE decodes of random latent points": random_decodes,
        "uniform noise": torch.rand(1000, D, device=device),
    }
test_features = metrics.classifier_features(x_test)
print(f"{'images':<38}{'FID':>8}{'precision':>11}{'recall':>8}{'classes':>9}{'entropy':>9}")
for name, images in candidates.items():
    features = metrics.classifier_features(images)
    precision, recall = metrics.precision_recall(test_features, features, k=3)
    coverage = metrics.class_coverage(images)
    print(
        f"{name:<38}{metrics.frechet_distance(test_features, features):>8.2f}"
        f"{precision:>11.2f}{recall:>8.2f}{coverage.classes_present:>9}{coverage.entropy:>9.2f}"
    )
print(f"(class entropy is at most log 10 = {math.log(10):.2f} nats: all digits equally often)")
print(
    f"data floor with all 4000 train images instead of 1000: FID {metrics.fid(x_train, x_test):.2f}"
)

# %% [markdown]
# How to read the table: FID orders the candidates, with the data floor first and noise
# last. Precision is high for every image set that looks like digits at all, while recall
# separates them: the decoder of a 2-d autoencoder produces smooth, typical digits but not
# the variety of real handwriting. Reconstructions are not samples (they start from real
# test images), so they are a reference, not a competitor.
#
# FID has blind spots: a "model" that memorises and replays the training set scores the
# data floor, the best possible FID, without generalising at all; and FID is biased upwards
# for small samples (the floor is higher here, with 1000 train images, than with all 4000),
# so compare FIDs only at equal $n$.
#
# **Mode coverage on 2D mixtures.** On toy data we know the modes, so we can count them
# (the VEEGAN protocol, Srivastava et al., 2017): draw 2500 samples; a sample is
# *high quality* if it lies within $3\sigma$ of its nearest mode; a mode is *captured* if it
# is the nearest mode of at least one high-quality sample. Two typical failures:
# **mode collapse** (all samples on a few modes) and **blur** (samples between modes).

# %%
ring_centers, ring_std = data.mode_centers("ring", device=device), data.mode_std("ring")
real = data.toy_2d("ring", 2500, seed=1, device=device)
collapsed = ring_centers[torch.randint(0, 3, (2500,), device=device)] + ring_std * torch.randn(
    2500, 2, device=device
)
blurry = ring_centers[torch.randint(0, 8, (2500,), device=device)] + 10 * ring_std * torch.randn(
    2500, 2, device=device
)

fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, (name, samples) in zip(
    axes,
    {"real ring samples": real, "mode collapse": collapsed, "blur": blurry}.items(),
    strict=True,
):
    result = metrics.mode_coverage(samples, ring_centers, ring_std)
    viz.scatter_2d(
        samples,
        f"{name}: {result.modes_captured}/{result.num_modes} modes, "
        f"{result.high_quality_rate:.0%} HQ",
        ax=ax,
        centers=ring_centers,
        lim=1.5,
    )
plt.tight_layout()

# %% [markdown]
# Each metric sees one failure and misses others: collapse keeps 100% high-quality samples,
# blur captures every mode. Report several numbers, always with the data's own score as a
# reference, and look at samples.
#
# ## Summary
#
# * Generative models learn $p(x)$; Bayes' rule and marginalization connect them with
#   classifiers and with latent variables.
# * Monte Carlo turns expectations into averages; Jensen turns $\log \mathbb{E}$ into a
#   bound — the ELBO of lectures 01 and 04.
# * Forward KL covers modes, reverse KL seeks them; JS saturates at $\log 2$ when supports
#   separate — the trouble with GANs (lecture 02).
# * A plain autoencoder has holes in its latent space: the motivation for the VAE.
# * Evaluate with likelihood (bits/dim, on dequantized data), FID with its data floor,
#   precision/recall, class and mode coverage, and your eyes.
#
# **Exercises:** open `exercises/00_foundations.ipynb` and implement the discrete KL, the
# closed-form and Monte Carlo Gaussian KL, and the JS divergence; then run
# `course grade exercises/00_foundations.ipynb`.
