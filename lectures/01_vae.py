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
# # Lecture 01 — Variational autoencoders
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/lectures/01_vae.ipynb)
#
# Lecture 00 ended with an autoencoder whose latent space we could not sample from: nothing
# told the encoder where to put the codes. The **variational autoencoder** (VAE; Kingma &
# Welling, 2014; Rezende et al., 2014) fixes this by making the latent code a random
# variable with a prior, and training encoder and decoder together on a lower bound of the
# data's log-likelihood.
#
# 1. latent variable models, and why their likelihood is hard to compute;
# 2. the evidence lower bound (ELBO), derived two ways;
# 3. the reparameterization trick;
# 4. the Gaussian KL in closed form;
# 5. Gaussian vs Bernoulli decoders, first on 2D data;
# 6. a VAE on MNIST: samples, reconstructions, a 2D latent manifold, interpolation;
# 7. β-VAE and the importance-weighted bound (IWAE);
# 8. a likelihood benchmark on digits, and the limits of VAEs.
#
# Runs in about two minutes on a laptop CPU, using shipped weights for the MNIST models
# (set `RETRAIN = True` to train them here instead).

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import checkpoints, data, metrics, viz, widgets
from course_utils.device import get_device, seed_everything
from course_utils.train import fit
from course_utils.vae import (
    beta_figure,
    interpolate,
    interpolation_figure,
    iwae_nll,
    latent_explorer_figure,
    negative_elbo_estimate,
)

RETRAIN = False  # True: train the MNIST VAEs in this notebook (about a minute each on a CPU)
device = get_device()
seed_everything(0)

# %% [markdown]
# ## 1. Latent variable models
#
# A latent variable model explains each data point $x$ by an unobserved code $z$:
#
# $$p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz, \qquad p(z) = \mathcal{N}(0, I).$$
#
# The **decoder** $p_\theta(x \mid z)$ is a neural network that outputs the parameters of a
# simple distribution; for binary MNIST pixels, independent Bernoullis:
# $p_\theta(x \mid z) = \prod_{d} \mathrm{Bern}(x_d;\ \mathrm{sigmoid}(f_\theta(z))_d)$. Even
# when each factor is simple, the integral over $z$ has no closed form, so maximum likelihood
# cannot be applied directly.
#
# We use one model class all lecture: an MLP encoder that outputs the mean and
# log-variance of a Gaussian over $z$ (section 2 says why), and an MLP decoder that outputs
# Bernoulli logits.


# %%
class VAE(nn.Module):
    """q_phi(z|x) = N(mu, diag(exp(logvar))) and a Bernoulli decoder p_theta(x|z)."""

    def __init__(self, data_dim: int = 784, hidden: int = 400, latent_dim: int = 16) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.enc = nn.Sequential(
            nn.Linear(data_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.dec = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, data_dim)
        )

    def encoder(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, D] -> (mu, logvar), each [B, L]."""
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        return mu, logvar

    def decoder(self, z: torch.Tensor) -> torch.Tensor:
        """z [..., L] -> Bernoulli logits [..., D]."""
        return self.dec(z)


def log_p_x_given_z(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Bern(x; sigmoid(logits)) summed over pixels: [..., D] -> [...]."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(
        -1
    )


# %% [markdown]
# Binary MNIST: we threshold pixels at 0.5, so that the Bernoulli decoder defines a proper
# probability over images. The course ships a VAE with a 16-dimensional latent trained on
# the 4000 training images (section 6 trains it, or `RETRAIN` does it here).

# %%
x_train, y_train = data.mnist("train", device=device, flatten=True, binarize=True)  # [4000, 784]
x_test, y_test = data.mnist("test", device=device, flatten=True, binarize=True)  # [1000, 784]


# %% [markdown]
# **Naive Monte Carlo fails.** The integral is an expectation under the prior,
# $p_\theta(x) = \mathbb{E}_{z \sim p(z)}[p_\theta(x \mid z)]$, so why not average
# $p_\theta(x \mid z_s)$ over samples $z_s \sim p(z)$? Because almost every $z$ from the
# prior decodes to an image that explains $x$ terribly: the average is dominated by rare
# lucky draws. Watch the estimate of $\log p(x)$ for one test image as the number of prior
# samples $S$ grows (10 repetitions each), against the importance-sampled estimate of
# section 7 that samples $z$ where the encoder says $x$'s codes are.


# %%
def naive_log_px(model: VAE, x: torch.Tensor, num_samples: int) -> float:
    """log (1/S) sum_s p(x | z_s), z_s ~ N(0, I): the prior as proposal. x: [1, D]."""
    z = torch.randn(num_samples, model.latent_dim, device=device)
    return (
        torch.logsumexp(log_p_x_given_z(model.decoder(z), x), dim=0) - math.log(num_samples)
    ).item()


# %% [markdown]
# We need the training code before we can use a model, so sections 2–5 come first; the
# experiment runs in section 6.
#
# ## 2. The evidence lower bound (ELBO)
#
# Introduce any distribution $q_\phi(z \mid x)$ over codes — the **encoder**, or inference
# network — and rewrite the likelihood as an expectation under it.
#
# **Derivation 1 (Jensen).** For any $q$ with $q > 0$ wherever $p(x, z) > 0$,
#
# $$\log p_\theta(x) = \log \int q_\phi(z\mid x)\,\frac{p_\theta(x, z)}{q_\phi(z\mid x)}\,dz
# = \log \mathbb{E}_{q_\phi}\!\left[\frac{p_\theta(x, z)}{q_\phi(z\mid x)}\right]
# \;\ge\; \mathbb{E}_{q_\phi}\!\left[\log \frac{p_\theta(x, z)}{q_\phi(z\mid x)}\right] =: \mathcal{L}(\theta, \phi; x),$$
#
# by Jensen's inequality ($\log$ is concave; lecture 00, section 3).
#
# **Derivation 2 (the gap).** Since $\log p_\theta(x)$ does not depend on $z$,
#
# $$\log p_\theta(x) = \mathbb{E}_{q_\phi}\!\left[\log \frac{p_\theta(x, z)}{p_\theta(z \mid x)}\right]
# = \mathbb{E}_{q_\phi}\!\left[\log \frac{p_\theta(x, z)}{q_\phi(z \mid x)}\right] + \mathbb{E}_{q_\phi}\!\left[\log \frac{q_\phi(z \mid x)}{p_\theta(z \mid x)}\right]
# = \mathcal{L}(\theta, \phi; x) + \mathrm{KL}\big(q_\phi(z\mid x) \,\|\, p_\theta(z \mid x)\big).$$
#
# The KL is $\ge 0$, so $\mathcal{L}$ is a lower bound, and it is tight exactly when the
# encoder equals the true posterior. Maximizing $\mathcal{L}$ over $\phi$ therefore pushes
# $q_\phi(z \mid x)$ towards $p_\theta(z \mid x)$ (a *reverse* KL: mode seeking, lecture 00),
# and maximizing over $\theta$ raises the likelihood.
#
# **The two terms.** Splitting $p_\theta(x, z) = p_\theta(x \mid z)\,p(z)$:
#
# $$\mathcal{L}(\theta, \phi; x) = \underbrace{\mathbb{E}_{q_\phi(z\mid x)}\big[\log p_\theta(x \mid z)\big]}_{\text{reconstruction}} - \underbrace{\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big)}_{\text{prior matching}} .$$
#
# The first term rewards codes that decode back to $x$ (an autoencoder's loss); the second
# keeps every $q_\phi(z \mid x)$ close to the prior, which fills the holes of lecture 00:
# codes come from $p(z)$, and sampling is decoding $z \sim \mathcal{N}(0, I)$.
#
# We choose $q_\phi(z \mid x) = \mathcal{N}(\mu_\phi(x), \operatorname{diag}\sigma^2_\phi(x))$.
# The encoder outputs $\log \sigma^2$ rather than $\sigma$: any real number is a valid
# log-variance, so no constraint is needed.
#
# ## 3. The reparameterization trick
#
# To train $\phi$ we need $\nabla_\phi\, \mathbb{E}_{q_\phi(z\mid x)}[f(z)]$, but the
# distribution we sample from depends on $\phi$: a sample is a number with no memory of
# how it was drawn, so no gradient flows through it. Write the sample as a deterministic,
# differentiable function of $\phi$ and of noise that does not depend on $\phi$:
#
# $$z = \mu_\phi(x) + \sigma_\phi(x) \odot \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I), \qquad \sigma = \exp(\tfrac12 \log \sigma^2),$$
#
# $$\nabla_\phi\, \mathbb{E}_{q_\phi}[f(z)] = \mathbb{E}_{\varepsilon}\big[\nabla_\phi f(\mu_\phi + \sigma_\phi \odot \varepsilon)\big].$$
#
# In PyTorch, `Normal(mu, std).sample()` cuts the graph; `rsample()` is the reparameterized
# draw:

# %%
mu = torch.tensor([0.5], requires_grad=True)
log_var = torch.tensor([0.0], requires_grad=True)
std = torch.exp(0.5 * log_var)
print(f"sample():  requires_grad = {torch.distributions.Normal(mu, std).sample().requires_grad}")
z = torch.distributions.Normal(mu, std).rsample()
(z**2).sum().backward()
print(
    f"rsample(): d z^2 / d mu = {mu.grad.item():.3f}, d z^2 / d logvar = {log_var.grad.item():.3f}"
)

# %% [markdown]
# The alternative that needs no reparameterization, the score-function (REINFORCE)
# estimator $\mathbb{E}_q[f(z)\,\nabla_\phi \log q_\phi(z)]$, is unbiased too, but far noisier.
# Compare both single-sample estimators of $\frac{d}{d\mu}\mathbb{E}_{\mathcal{N}(\mu, 1)}[z^2] = 2\mu$ at $\mu = 1$:

# %%
eps = torch.randn(100_000, dtype=torch.float64)
z = 1.0 + eps  # mu = 1, sigma = 1
reparam = 2 * z  # d/dmu (mu + eps)^2
score = z**2 * (z - 1.0)  # f(z) * d/dmu log N(z; mu, 1) = f(z) * (z - mu)
for name, g in (("reparameterization", reparam), ("score function", score)):
    print(f"{name:>18}: mean {g.mean():.3f} (exact 2.000), std of one estimate {g.std():.2f}")

# %% [markdown]
# ## 4. The Gaussian KL in closed form
#
# For $q = \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ and $p = \mathcal{N}(0, I)$ in
# $L$ dimensions, both log-densities are sums over dimensions, so the KL is too. In one
# dimension, with $\mathbb{E}_q[(z-\mu)^2] = \sigma^2$ and $\mathbb{E}_q[z^2] = \mu^2 + \sigma^2$:
#
# $$\mathrm{KL}(q\,\|\,p) = \mathbb{E}_q\Big[-\tfrac12\log(2\pi\sigma^2) - \tfrac{(z-\mu)^2}{2\sigma^2} + \tfrac12 \log(2\pi) + \tfrac{z^2}{2}\Big]
# = -\tfrac12 \log \sigma^2 - \tfrac12 + \tfrac12(\mu^2 + \sigma^2),$$
#
# $$\mathrm{KL}\big(\mathcal{N}(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal{N}(0, I)\big) = \frac12 \sum_{j=1}^{L} \left(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\right).$$
#
# So the ELBO needs sampling only for the reconstruction term. Check the formula against a
# Monte Carlo estimate $\frac1S \sum_s [\log q(z_s) - \log p(z_s)]$, $z_s \sim q$:


# %%
def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), summed over the last dim: [B, L] -> [B]."""
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)


mu_check, logvar_check = (
    torch.randn(4, 16, dtype=torch.float64),
    torch.randn(4, 16, dtype=torch.float64),
)
q = torch.distributions.Normal(mu_check, (0.5 * logvar_check).exp())
z = q.rsample((20_000,))  # [S, 4, 16]
p = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
monte_carlo = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
print("closed form:", kl_to_standard_normal(mu_check, logvar_check).numpy().round(2))
print("Monte Carlo:", monte_carlo.numpy().round(2))

# %% [markdown]
# ## 5. Decoders: Gaussian or Bernoulli
#
# The reconstruction term is a log-likelihood, so the decoder's distribution decides the
# loss:
#
# * **Bernoulli** (binary data): $\log p_\theta(x\mid z) = \sum_d x_d \log \hat x_d + (1-x_d)\log(1-\hat x_d)$
#   with $\hat x = \mathrm{sigmoid}(f_\theta(z))$: the negative binary cross-entropy,
#   computed from logits for numerical stability.
# * **Gaussian** (real-valued data), $p_\theta(x \mid z) = \mathcal{N}(x;\ \hat x_\theta(z), \sigma^2 I)$:
#
# $$\log p_\theta(x \mid z) = -\frac{\|x - \hat x_\theta(z)\|^2}{2\sigma^2} - \frac{D}{2}\log(2\pi\sigma^2).$$
#
# With a fixed $\sigma$ this is the squared error of an autoencoder, weighted by
# $1/(2\sigma^2)$ against the KL term. A small $\sigma$ says "reconstruct exactly" and lets
# the KL be ignored; a large $\sigma$ says "most of $x$ is noise" and lets the codes collapse
# onto the prior. Intuition first, on 2D data (seconds per model): a VAE with a 2D latent
# and a Gaussian decoder on the two moons, for three values of $\sigma$. Samples are
# $x \sim \mathcal{N}(\hat x_\theta(z), \sigma^2 I)$ with $z \sim p(z)$.

# %%
moons = data.toy_2d("moons", 4000, seed=0, device=device)


def train_gaussian_vae(sigma: float, steps: int = 3000) -> VAE:
    seed_everything(0)
    model = VAE(data_dim=2, hidden=128, latent_dim=2).to(device)

    def loss(x: torch.Tensor) -> torch.Tensor:
        mu, logvar = model.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterization
        x_hat = model.decoder(z)  # the Gaussian decoder's mean
        log_px = -((x - x_hat) ** 2).sum(-1) / (2 * sigma**2) - x.shape[1] / 2 * math.log(
            2 * math.pi * sigma**2
        )
        return -(log_px - kl_to_standard_normal(mu, logvar)).mean()

    fit(
        loss,
        torch.optim.Adam(model.parameters(), lr=2e-3),
        moons,
        batch_size=256,
        steps=steps,
        progress=False,
    )
    return model.eval()


fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
for ax, sigma in zip(axes, (0.05, 0.2, 0.8), strict=True):
    toy = train_gaussian_vae(sigma)
    with torch.no_grad():
        x_hat = toy.decoder(torch.randn(2000, 2, device=device))
        samples = x_hat + sigma * torch.randn_like(x_hat)
        kl = kl_to_standard_normal(*toy.encoder(moons)).mean().item()
    ax.scatter(
        moons[:, 0].cpu().numpy(),
        moons[:, 1].cpu().numpy(),
        s=2,
        alpha=0.2,
        color="gray",
        label="data",
    )
    ax.scatter(
        samples[:, 0].cpu().numpy(), samples[:, 1].cpu().numpy(), s=2, alpha=0.5, label="samples"
    )
    ax.set_xlim(-3.5, 3.5)
    ax.set_ylim(-2.5, 2.5)
    ax.set_title(f"σ = {sigma}: KL(q(z|x)||p(z)) = {kl:.2f} nats")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.legend(loc="lower left", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Read the three panels from the right. With a large $\sigma$ the decoder attributes most
# of the moons' shape to noise: the KL is small (the codes carry little information) and
# samples are a cloud around the curve. With a small $\sigma$ the reconstruction term
# dominates: the codes carry every detail (the largest KL), the encoder spreads the data
# over latent regions the prior does not match, and prior samples land where the decoder
# was never trained — they scatter too. In between, samples follow the moons. In practice
# $\sigma$ is tuned, or learned per pixel.
#
# ## 6. A VAE on MNIST
#
# The training objective is the negative ELBO averaged over a mini-batch, with a single
# reparameterized sample per example (Kingma & Welling's SGVB estimator with the analytic
# KL):


# %%
def negative_elbo(model: VAE, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """-(E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))), one sample of z: [B, D] -> [B]."""
    mu, logvar = model.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    return -(log_p_x_given_z(model.decoder(z), x) - beta * kl_to_standard_normal(mu, logvar))


def train_vae(model: VAE, x: torch.Tensor, epochs: int, beta: float = 1.0) -> dict:
    return fit(
        lambda batch: negative_elbo(model, batch, beta).mean(),
        torch.optim.Adam(model.parameters(), lr=1e-3),
        x,
        batch_size=128,
        epochs=epochs,
        seed=0,
    )


def load_or_train(name: str, latent_dim: int) -> VAE:
    """The shipped weights of `name` loaded into our VAE class, or (RETRAIN) trained here."""
    model = VAE(latent_dim=latent_dim).to(device)
    if RETRAIN:
        train_vae(model, x_train, epochs=100)  # the shipped models were selected on held-out data
    else:
        state, _ = checkpoints.shipped_state(name)
        model.load_state_dict(state)
    return model.eval()


vae = load_or_train("vae_mnist", latent_dim=16)
with torch.no_grad():
    test_nelbo = torch.stack([negative_elbo(vae, x_test) for _ in range(10)]).mean().item()
print(f"test negative ELBO: {test_nelbo:.1f} nats per image (an upper bound on -log p(x))")

# %% [markdown]
# Now the experiment of section 1: naive Monte Carlo with the prior as proposal, on the
# first test image.

# %%
x0 = x_test[:1]
with torch.no_grad():
    print(f"{'S':>7} {'mean estimate of log p(x)':>27} {'std over 10 runs':>17}")
    for num_samples in (10, 100, 1_000, 10_000):
        runs = torch.tensor([naive_log_px(vae, x0, num_samples) for _ in range(10)])
        print(f"{num_samples:>7} {runs.mean():>27.1f} {runs.std():>17.1f}")
    elbo_x0 = -torch.stack([negative_elbo(vae, x0) for _ in range(100)]).mean().item()
print(f"ELBO of the same image (encoder as proposal): {elbo_x0:.1f}")

# %% [markdown]
# Even 10,000 prior samples estimate $\log p(x)$ far below the ELBO — and the ELBO is
# itself a *lower* bound on $\log p(x)$. The prior almost never proposes a code that
# explains this image; the encoder proposes such codes directly. That is the "amortized
# inference" a VAE learns.
#
# **Samples and reconstructions.** Samples decode $z \sim \mathcal{N}(0, I)$; we show the
# decoder's mean $\hat x = \mathrm{sigmoid}(f_\theta(z))$ (the Bernoulli samples themselves
# are speckled). Reconstructions decode the posterior mean $\mu_\phi(x)$.

# %%
with torch.no_grad():
    prior_samples = torch.sigmoid(vae.decoder(torch.randn(1000, 16, device=device)))
    reconstructions = torch.sigmoid(vae.decoder(vae.encoder(x_test[:32])[0]))
fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
viz.show_images(prior_samples[:64], "Samples: decoder means at z ~ N(0, I)", nrow=8, ax=axes[0])
viz.show_images(
    torch.stack([x_test[:32], reconstructions], 1).reshape(64, -1),
    "Test images (odd columns) and reconstructions",
    nrow=8,
    ax=axes[1],
)
plt.tight_layout()
plt.show()
grey_test, _ = data.mnist("test", device=device)  # FID compares with the grey-scale images
coverage = metrics.class_coverage(prior_samples)
print(
    f"1000 prior samples: FID {metrics.fid(prior_samples, grey_test):.1f} "
    f"(data floor {metrics.fid(data.mnist('train', device=device)[0][:1000], grey_test):.1f}), "
    f"{coverage.classes_present} digits present, class entropy {coverage.entropy:.2f} "
    f"(max {math.log(10):.2f})"
)

# %% [markdown]
# **A 2D latent space.** With $L = 2$ we can look at the whole learned manifold, as in
# Kingma & Welling's Figure 4: decode a grid of latent points placed at the quantiles of
# the prior, $z = \Phi^{-1}(u)$ for $u$ on a uniform grid in $(0, 1)^2$.

# %%
vae2 = load_or_train("vae_mnist_2d", latent_dim=2)
u = torch.linspace(0.03, 0.97, 20, device=device)
quantiles = torch.distributions.Normal(0.0, 1.0).icdf(u)
z2_grid, z1_grid = torch.meshgrid(quantiles.flip(0), quantiles, indexing="ij")  # top row: high z_2
with torch.no_grad():
    manifold = torch.sigmoid(vae2.decoder(torch.stack([z1_grid, z2_grid], -1).reshape(-1, 2)))
    codes2 = vae2.encoder(x_test)[0]
fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
viz.show_images(manifold, "Decoded manifold at prior quantiles", nrow=20, ax=axes[0])
sc = axes[1].scatter(
    codes2[:, 0].cpu().numpy(),
    codes2[:, 1].cpu().numpy(),
    c=y_test.cpu().numpy(),
    cmap="tab10",
    s=4,
)
fig.colorbar(sc, ax=axes[1], label="digit")
axes[1].set_title("Posterior means of the test set")
axes[1].set_xlabel("$z_1$")
axes[1].set_ylabel("$z_2$")
plt.tight_layout()
plt.show()
print(
    f"test codes: mean {codes2.mean(0).cpu().numpy().round(2)}, std {codes2.std(0).cpu().numpy().round(2)}"
)

# %% [markdown]
# Unlike the autoencoder's codes (lecture 00), these fill a roughly standard-normal disc:
# the KL term put them there. Explore it: move $(z_1, z_2)$ and watch the decoded digit.

# %% tags=["nbval-ignore-output"]
decode2 = lambda z: torch.sigmoid(vae2.decoder(z))  # noqa: E731
widgets.figure_widget(
    lambda z1, z2: latent_explorer_figure(decode2, codes2, y_test, z1, z2),
    z1=(-3.0, 3.0, 0.1),
    z2=(-3.0, 3.0, 0.1),
)

# %% [markdown]
# **Interpolation.** Walk between the codes of two test digits. Linear interpolation cuts
# through the centre of the latent space, where a 16-dimensional Gaussian has almost no
# mass: its samples concentrate near the sphere of radius $\sqrt{L} = 4$. Spherical
# interpolation (slerp) follows the great circle and keeps a typical norm:
#
# $$\mathrm{slerp}(z_0, z_1; t) = \frac{\sin((1-t)\Omega)}{\sin\Omega} z_0 + \frac{\sin(t\Omega)}{\sin\Omega} z_1, \qquad \cos\Omega = \frac{z_0^\top z_1}{\|z_0\|\,\|z_1\|}.$$


# %%
def code_of(digit: int) -> torch.Tensor:
    """Posterior mean of the first test image of `digit`: [16]."""
    return vae.encoder(x_test[y_test == digit][:1])[0][0].detach()


z_a, z_b = code_of(3), code_of(8)
norm_prior = torch.randn(10_000, 16).norm(dim=1)
print(f"norm of prior samples: {norm_prior.mean():.2f} ± {norm_prior.std():.2f}")
for method in ("linear", "slerp"):
    print(
        f"{method:>6} midpoint norm: {interpolate(z_a, z_b, 0.5, method).norm():.2f}"
        f"   (endpoints {z_a.norm():.2f}, {z_b.norm():.2f})"
    )

# %% tags=["nbval-ignore-output"]
decode16 = lambda z: torch.sigmoid(vae.decoder(z))  # noqa: E731
widgets.figure_widget(
    lambda first_digit, second_digit, t, method: interpolation_figure(
        decode16, code_of(first_digit), code_of(second_digit), t, method
    ),
    first_digit=list(range(10)),
    second_digit=[8, *range(8), 9],
    t=(0.0, 1.0, 0.05),
    method=["slerp", "linear"],
)

# %% [markdown]
# ## 7. β-VAE and the importance-weighted bound
#
# **β-VAE** (Higgins et al., 2017) weights the prior-matching term:
# $\mathcal{L}_\beta = \mathbb{E}_q[\log p(x\mid z)] - \beta\, \mathrm{KL}(q(z\mid x)\,\|\,p(z))$.
# $\beta > 1$ squeezes information out of the codes: fewer latent dimensions stay in use,
# which encourages each to capture one factor of variation (disentanglement), at the price
# of reconstructions. $\beta < 1$ does the opposite. For $\beta \ne 1$ it is no longer a
# bound on $\log p(x)$. We train five small β-VAEs on the 8x8 digits, binarized, a few
# seconds each, and count the *active* latent dimensions: those whose posterior mean
# varies across the data, $\operatorname{Var}_x(\mathbb{E}_q[z_j]) > 0.01$ (Burda et al., 2016).

# %%
digits_train = (data.digits("train", device=device)[0] >= 8).float()  # [1000, 64] binary
digits_test = (data.digits("test", device=device)[0] >= 8).float()
beta_results = {}
for beta in (0.25, 0.5, 1.0, 2.0, 4.0):
    seed_everything(0)
    small = VAE(data_dim=64, hidden=128, latent_dim=8).to(device)
    fit(
        lambda batch, m=small, b=beta: negative_elbo(m, batch, b).mean(),
        torch.optim.Adam(small.parameters(), lr=2e-3),
        digits_train,
        batch_size=64,
        epochs=150,
        progress=False,
    )
    small.eval()
    with torch.no_grad():
        mu, logvar = small.encoder(digits_test)
        kl = kl_to_standard_normal(mu, logvar).mean().item()
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        reconstruction = -log_p_x_given_z(small.decoder(z), digits_test).mean().item()
        beta_results[beta] = {
            "samples": torch.sigmoid(small.decoder(torch.randn(32, 8, device=device))),
            "reconstructions": torch.sigmoid(small.decoder(mu[:32])),
            "kl": kl,
            "reconstruction": reconstruction,
            "active_units": int((mu.var(0) > 0.01).sum()),
        }
print(f"{'beta':>5} {'KL':>7} {'-E[log p(x|z)]':>15} {'active units of 8':>18}")
for beta, r in beta_results.items():
    print(f"{beta:>5} {r['kl']:>7.2f} {r['reconstruction']:>15.2f} {r['active_units']:>18}")

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(lambda beta: beta_figure(beta_results, beta), beta=list(beta_results))

# %% [markdown]
# **The IWAE bound** (Burda et al., 2016). Draw $k$ codes $z_1, \dots, z_k \sim q_\phi(z\mid x)$
# and average the importance weights $w_i = p_\theta(x, z_i)/q_\phi(z_i\mid x)$ *inside* the log:
#
# $$\mathcal{L}_k(x) = \mathbb{E}_{z_{1:k} \sim q}\left[\log \frac1k \sum_{i=1}^k \frac{p_\theta(x, z_i)}{q_\phi(z_i \mid x)}\right].$$
#
# $\mathcal{L}_1$ is the ELBO; $\mathcal{L}_k \le \mathcal{L}_{k+1} \le \log p_\theta(x)$, and
# $\mathcal{L}_k \to \log p_\theta(x)$ as $k \to \infty$ (by Jensen, on a mean of fewer
# weights). Compute it with `logsumexp` (the weights under- and overflow) and $-\log k$:


# %%
def log_importance_weights(model: VAE, x: torch.Tensor, k: int) -> torch.Tensor:
    """log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z|x): [B, D] -> [k, B]."""
    mu, logvar = model.encoder(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    z = q.rsample((k,))  # [k, B, L]
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    return log_p_x_given_z(model.decoder(z), x) + log_prior - q.log_prob(z).sum(-1)


def iwae_bound(model: VAE, x: torch.Tensor, k: int) -> torch.Tensor:
    """L_k per example: [B, D] -> [B]."""
    return torch.logsumexp(log_importance_weights(model, x, k), dim=0) - math.log(k)


with torch.no_grad():
    subset = x_test[:200]
    for k in (1, 5, 50, 500):
        print(
            f"k = {k:>3}: L_k = {iwae_bound(vae, subset, k).mean():.2f} nats (mean over 200 test images)"
        )

# %% [markdown]
# The bound rises with $k$, so the ELBO is below the log-likelihood by at least
# $\mathcal{L}_{500} - \mathcal{L}_1$. That gap, $\mathrm{KL}(q_\phi(z \mid x) \,\|\,
# p_\theta(z \mid x))$, has two parts (Cremer et al. 2018): the **approximation gap**, what
# even the best Gaussian for this $x$ would leave (the family cannot express the true
# posterior), and the **amortization gap**, what the encoder loses by predicting $q$ for
# all $x$ with one network instead of optimizing it for each $x$. We report a model's test NLL as $-\mathcal{L}_k$ with large $k$ (an upper bound
# on the NLL that is close to tight); the shipped model's metadata holds $k = 1000$, from
# `python -m course_utils.pretrain vae`:

# %%
with torch.no_grad():
    nll_100 = -iwae_bound(vae, x_test, 100).mean().item()
shipped = checkpoints.shipped_state("vae_mnist")[1]["metrics"]
print(
    f"test NLL: IWAE k=100 (computed now) {nll_100:.2f}; k=1000 (shipped metadata) {shipped['test_iwae_nll_k1000']:.2f} nats"
)
print(
    f"test negative ELBO {test_nelbo:.2f} nats: the ELBO gap is about {test_nelbo - nll_100:.1f} nats"
)

# %% [markdown]
# ## 8. A likelihood benchmark on digits
#
# On sklearn's 8x8 digits, following Tomczak's *intro_dgm* protocol (train on the first 1000
# images, select the model on the next 350, test on the remaining 447; each pixel's value
# 0..16 is a 17-way categorical), the course's tuned model — a small convolutional VAE,
# `course_utils.vae.ConvDigitsVae`, trained for 50 s on a CPU — is shipped. Its test
# negative ELBO and IWAE NLL, recomputed here (reproduce the training with
# `course bench vae-digits`):

# %%
digits_vae = checkpoints.load_pretrained("vae_digits", device=device)
x_digits_test = data.digits("test", device=device)[0]
torch.manual_seed(0)
with torch.no_grad():
    digits_nelbo = negative_elbo_estimate(digits_vae, x_digits_test).mean().item()
    digits_nll = iwae_nll(digits_vae, x_digits_test, k=100).mean().item()
print(
    f"digits test: negative ELBO {digits_nelbo:.2f} nats (goal <= 92), IWAE k=100 NLL {digits_nll:.2f} nats"
)
print(
    f"trained in {digits_vae.meta['metrics']['train_seconds']:.0f} s, "
    f"{int(digits_vae.meta['metrics']['parameters']):,} parameters"
)

# %% [markdown]
# Two things made the difference on 1000 training images: convolutions, and a last layer
# that shares one map from features to the 17 level logits across all pixels. An MLP whose
# dense output layer has $64 \times 17$ separate logits per hidden unit memorized the
# training set: its training ELBO kept improving while the validation ELBO got worse.
#
# ## Limits, and what comes next
#
# * **Blurry samples.** The decoder's factorized likelihood treats pixels as independent
#   given $z$; whatever $z$ cannot encode is averaged into grey. Sharper decoders
#   (autoregressive ones) help, but may then ignore $z$ (*posterior collapse*).
# * **A bound, not the likelihood.** Training maximizes the ELBO; the gap to $\log p(x)$ is
#   the KL to the true posterior: the Gaussian family's approximation gap plus the
#   encoder's amortization gap (IWAE shows their sum).
# * Three answers follow: **GANs** drop the likelihood and learn to produce sharp samples
#   (lecture 02); **normalizing flows** make the likelihood exact (lecture 03); **diffusion
#   models** stack many small Gaussian steps, each easy to learn (lecture 04).
#
# **Exercises:** `exercises/01_vae.ipynb` asks you to implement `reparameterize`, the
# Gaussian KL, both decoder likelihoods, the ELBO, the IWAE bound and slerp, then to train a
# VAE on digits with your ELBO. Grade yourself with `course grade exercises/01_vae.ipynb`.
