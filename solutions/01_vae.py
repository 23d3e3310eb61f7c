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
# # Exercises 01 — Variational autoencoders
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/solutions/01_vae.ipynb)
#
# Seven functions that make up a VAE, then a VAE trained with your ELBO. For each function:
# read the definition, replace `# YOUR CODE HERE` / `raise NotImplementedError()` with your
# code, and run the test cell below it. A failing test says what it expected, what it got,
# and the likely mistake.
#
# **Grade yourself** from a terminal in the course folder:
#
# ```
# course grade exercises/01_vae.ipynb
# ```
#
# Conventions (lecture 01): the encoder returns `(mu, logvar)` with `logvar` $= \log\sigma^2$;
# the decoder returns Bernoulli **logits**; "per-example" means a tensor of shape `[batch]`,
# summed over every other dimension (pixels, latent dimensions). Natural logarithms.

# %%
import math

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data
from course_utils.grading import (
    check,
    check_close,
    check_finite,
    check_grad,
    check_score,
    check_shape,
)
from course_utils.train import fit
from course_utils.vae import negative_elbo_estimate

torch.manual_seed(0)

# %% [markdown]
# ## 1. The reparameterization trick (2 points)
#
# Sample $z \sim \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$ as
# $z = \mu + \sigma \odot \varepsilon$ with $\varepsilon \sim \mathcal{N}(0, I)$ and
# $\sigma = \exp(\tfrac12 \log\sigma^2)$, so that gradients reach `mu` and `logvar`.
# (`torch.randn_like` draws $\varepsilon$.)


# %%
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """A differentiable sample of N(mu, diag(exp(logvar))); same shape as mu."""
    ### BEGIN SOLUTION
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST reparameterize (2 points)
mu = torch.tensor([1.0, -2.0]).repeat(100_000, 1)
logvar = torch.log(torch.tensor([4.0, 0.25])).repeat(100_000, 1)
z = reparameterize(mu, logvar)
check_shape(z, (100_000, 2), "reparameterize(mu, logvar)", hint="return one sample per entry of mu")
check_close(
    z.mean(0), torch.tensor([1.0, -2.0]), "mean of 100000 samples", atol=0.03,
    hint="the samples should be centred on mu",
)  # fmt: skip
check_close(
    z.std(0), torch.tensor([2.0, 0.5]), "std of 100000 samples", atol=0.02, rtol=0,
    hint="logvar is log(sigma^2), so sigma = exp(0.5 * logvar)",
    mistakes={
        "logvar is log(sigma^2): the std is exp(0.5 * logvar), not exp(logvar)": torch.tensor([4.0, 0.25]),
        "logvar is log(sigma^2): the std is exp(0.5 * logvar), not logvar itself": torch.tensor([1.386, 1.386]),
    },
)  # fmt: skip
mu_leaf = torch.zeros(3, requires_grad=True)
logvar_leaf = torch.zeros(3, requires_grad=True)
z = reparameterize(mu_leaf, logvar_leaf)
hint = "build z = mu + std * eps with tensor operations; .sample(), torch.normal or .detach() cut the gradient"
check(
    z.requires_grad,
    "reparameterize: the sample does not depend on mu and logvar in the graph",
    hint=hint,
)
(z**2).sum().backward()
check_grad(mu_leaf, "mu", hint=hint)
check_grad(logvar_leaf, "logvar", hint=hint)
check(
    not torch.equal(reparameterize(mu_leaf, logvar_leaf), reparameterize(mu_leaf, logvar_leaf)),
    "reparameterize: two calls returned the same values", hint="draw fresh noise on every call",
)  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST reparameterize
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
from course_utils.grading import hidden_generator, solution

g = hidden_generator()

mu = torch.randn(3, generator=g).requires_grad_()
logvar = (2 * torch.rand(3, generator=g) - 1).requires_grad_()
z = reparameterize(mu.expand(200_000, 3), logvar.expand(200_000, 3))
check_close(z.mean(0), mu.detach(), "mean of 200000 samples at random mu", atol=0.03, rtol=0)
check_close(
    z.std(0),
    (0.5 * logvar.detach()).exp(),
    "std of 200000 samples at random logvar",
    atol=0.02,
    rtol=0,
)
(z**2).mean(0).sum().backward()  # d/dmu = 2 mu, d/dlogvar = sigma^2 in expectation
check_close(
    mu.grad, 2 * mu.detach(), "the gradient of E[z^2] with respect to mu", atol=0.03, rtol=0
)
check_close(
    logvar.grad,
    logvar.detach().exp(),
    "the gradient of E[z^2] with respect to logvar",
    atol=0.05,
    rtol=0,
)

# %% [markdown]
# ## 2. KL divergence to the prior (2 points)
#
# $$\mathrm{KL}\big(\mathcal{N}(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal{N}(0, I)\big) = \frac12 \sum_{j} \left(\mu_j^2 + \sigma_j^2 - 1 - \log \sigma_j^2\right)$$
#
# summed over the **last** dimension (the latent dimensions): `[B, L] -> [B]`.


# %%
def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) summed over the last dim; per-example."""
    ### BEGIN SOLUTION
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST gaussian_kl (2 points)
mu = torch.tensor([[0.5, -1.0, 0.0], [0.0, 0.0, 0.0]])
logvar = torch.tensor([[0.0, math.log(2.0), -1.0], [0.0, 0.0, 0.0]])
kl = gaussian_kl(mu, logvar)
check_shape(
    kl,
    (2,),
    "gaussian_kl on mu, logvar of shape [2, 3]",
    hint="sum over the last (latent) dimension only; keep the batch",
)
check_close(
    kl, torch.tensor([0.9623661, 0.0]), "gaussian_kl(mu, logvar)",
    hint="logvar is log(sigma^2): sigma^2 = exp(logvar), and log(sigma^2) = logvar",
    mistakes={
        "the sign is flipped: KL = +1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2) >= 0": torch.tensor([-0.9623661, 0.0]),
        "the factor 1/2 is missing": torch.tensor([1.9247322, 0.0]),
        "sum over the latent dimensions, do not average": torch.tensor([0.3207887, 0.0]),
    },
)  # fmt: skip
check(
    bool((gaussian_kl(torch.randn(50, 4), torch.randn(50, 4)) >= 0).all()),
    "gaussian_kl: a KL must never be negative",
)
# [batch, samples, latent]: still one KL per row, summed over the last dimension.
check_close(
    gaussian_kl(mu.expand(4, 2, 3), logvar.expand(4, 2, 3)), torch.tensor([0.9623661, 0.0]).expand(4, 2),
    "gaussian_kl on mu, logvar of shape [4, 2, 3]", hint="sum over the last dimension (dim=-1), whatever comes before it",
)  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST gaussian_kl
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
g = hidden_generator()

mu, logvar = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
check_close(
    gaussian_kl(mu, logvar), solution.gaussian_kl(mu, logvar), "gaussian_kl on random inputs"
)

# %% [markdown]
# ## 3. Bernoulli log-likelihood (2 points)
#
# $\log p(x \mid z) = \sum_d x_d \log \hat x_d + (1 - x_d) \log (1 - \hat x_d)$ with
# $\hat x = \mathrm{sigmoid}(\text{logits})$, summed over **all** non-batch dimensions (an
# image may be `[B, 1, 28, 28]`). Computing `sigmoid` and then `log` overflows for large
# logits: use a form that works on logits directly (`F.binary_cross_entropy_with_logits`
# or `F.logsigmoid`).


# %%
def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | z) of a Bernoulli decoder given its logits; per-example."""
    ### BEGIN SOLUTION
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST bernoulli_log_likelihood (2 points)
value = bernoulli_log_likelihood(torch.tensor([[2.0, -1.0, 0.0]]), torch.tensor([[1.0, 0.0, 1.0]]))
check_close(
    value, torch.tensor([-1.1333369]), "bernoulli_log_likelihood([[2, -1, 0]], [[1, 0, 1]])",
    mistakes={
        "return the log-likelihood (<= 0), not the cross-entropy loss (its negative)": torch.tensor([1.1333369]),
        "sum over the pixels, do not average": torch.tensor([-0.3777790]),
    },
)  # fmt: skip
big = bernoulli_log_likelihood(torch.tensor([[100.0, -100.0]]), torch.tensor([[0.0, 1.0]]))
check_close(
    big, torch.tensor([-200.0]), "bernoulli_log_likelihood for logits +-100", rtol=1e-5,
    hint="sigmoid(100) rounds to 1.0 and log(1 - 1.0) = -inf: compute from logits, e.g. F.binary_cross_entropy_with_logits",
)  # fmt: skip
images = torch.randint(0, 2, (5, 1, 28, 28)).float()
check_shape(
    bernoulli_log_likelihood(torch.zeros(5, 1, 28, 28), images), (5,),
    "bernoulli_log_likelihood on images [5, 1, 28, 28]", hint="sum over every non-batch dimension",
)  # fmt: skip
check_close(
    bernoulli_log_likelihood(torch.zeros(5, 1, 28, 28), images), torch.full((5,), -784 * math.log(2)),
    "bernoulli_log_likelihood with logits 0", hint="each pixel contributes log(1/2)",
)  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST bernoulli_log_likelihood
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
g = hidden_generator()

logits = 30 * torch.randn(5, 3, 4, generator=g)
x = (torch.rand(5, 3, 4, generator=g) < 0.5).float()
check_close(
    bernoulli_log_likelihood(logits, x), solution.bernoulli_log_likelihood(logits, x),
    "bernoulli_log_likelihood on random logits (some large)", rtol=1e-5,
)  # fmt: skip

# %% [markdown]
# ## 4. Gaussian log-likelihood (2 points)
#
# $\log \mathcal{N}(x; \hat x, \sigma^2 I) = -\frac{\|x - \hat x\|^2}{2\sigma^2} - \frac{D}{2}\log(2\pi\sigma^2)$,
# **including** the constant, summed over all non-batch dimensions. `sigma` is a standard
# deviation: a float or a tensor that broadcasts against `x`.


# %%
def gaussian_log_likelihood(x_hat: torch.Tensor, x: torch.Tensor, sigma) -> torch.Tensor:
    """log N(x; x_hat, sigma^2 I) summed over non-batch dims; per-example."""
    ### BEGIN SOLUTION
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    log_density = -((x - x_hat) ** 2) / (2 * sigma**2) - 0.5 * torch.log(2 * math.pi * sigma**2)
    return log_density.flatten(1).sum(1)
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST gaussian_log_likelihood (2 points)
value = gaussian_log_likelihood(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]), 0.5)
check_close(
    value, torch.tensor([-1.4515827]), "gaussian_log_likelihood(x_hat=[[0, 1]], x=[[0.5, 0.5]], sigma=0.5)",
    mistakes={
        "include the normalizing constant -D/2 log(2 pi sigma^2)": torch.tensor([-1.0]),
        "the squared error is divided by 2 sigma^2: the factor 1/2 is missing": torch.tensor([-2.4515827]),
        "sigma is a standard deviation: divide by 2 sigma^2, not 2 sigma": torch.tensor([-1.6447299]),
        "sum over the dimensions, do not average": torch.tensor([-0.7257914]),
    },
)  # fmt: skip
torch.manual_seed(1)
x_hat, x = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
expected = torch.distributions.Normal(x_hat, 0.3).log_prob(x).sum((1, 2))
check_close(
    gaussian_log_likelihood(x_hat, x, 0.3),
    expected,
    "gaussian_log_likelihood on [4, 3, 2]",
    hint="sum over every non-batch dimension",
)
check_close(
    gaussian_log_likelihood(x_hat, x, torch.tensor(0.3)), expected, "gaussian_log_likelihood with a tensor sigma",
    hint="sigma may be a tensor: use torch operations (torch.log), not math.log",
)  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST gaussian_log_likelihood
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
g = hidden_generator()

x_hat, x = torch.randn(4, 2, 3, generator=g), torch.randn(4, 2, 3, generator=g)
sigma = 0.2 + 1.8 * float(torch.rand((), generator=g))
check_close(
    gaussian_log_likelihood(x_hat, x, sigma), solution.gaussian_log_likelihood(x_hat, x, sigma),
    "gaussian_log_likelihood on random inputs and sigma",
)  # fmt: skip

# %% [markdown]
# ## 5. The ELBO (2 points)
#
# A single-sample estimate, per example, with a Bernoulli decoder:
#
# $$\mathcal{L}_\beta(x) = \log p(x \mid z) - \beta\,\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big), \qquad z \sim q(z \mid x) \text{ (reparameterized)}.$$
#
# `encoder(x)` returns `(mu, logvar)`; `decoder(z)` returns logits. You may call your
# functions above (their tests should pass first).


# %%
def elbo(x: torch.Tensor, encoder, decoder, beta: float = 1.0) -> torch.Tensor:
    """Single-sample ELBO estimate with a Bernoulli decoder; per-example."""
    ### BEGIN SOLUTION
    mu, logvar = encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    log_px = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
    return log_px - beta * kl
    ### END SOLUTION


# %% [markdown]
# The tests use a model small enough to integrate exactly: a 1-d latent, three pixels,
# decoder logits $a z + b$, and an encoder that always returns $q = \mathcal{N}(0.4, 0.7^2)$.
# By numerical integration, this model's ELBO for $x = (1, 0, 1)$ is $-2.2242$ nats
# (reconstruction $-2.0425$, KL $0.1817$) and $\log p(x) = -1.7893$.

# %%
toy_decoder = nn.Linear(1, 3)
with torch.no_grad():
    toy_decoder.weight.copy_(torch.tensor([[2.0], [-1.5], [1.0]]))
    toy_decoder.bias.copy_(torch.tensor([0.5, 0.0, -1.0]))


def toy_encoder(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|x) = N(0.4, 0.7^2) for every x: ([B, 1], [B, 1])."""
    return torch.full((len(x), 1), 0.4), torch.full((len(x), 1), math.log(0.49))


toy_x = torch.tensor([[1.0, 0.0, 1.0]])

# %% tags=["graded"] points=2
# TEST elbo (2 points)
torch.manual_seed(0)
values = elbo(toy_x.repeat(50_000, 1), toy_encoder, toy_decoder)
check_shape(values, (50_000,), "elbo on a batch of 50000", hint="return one value per example")
check_close(
    values.mean(), -2.2242012, "mean of 50000 single-sample ELBOs", atol=0.02, rtol=0,
    hint="ELBO = log p(x|z) - beta * KL(q(z|x) || p(z)) with z = mu + exp(0.5 * logvar) * eps",
    mistakes={
        "subtract the KL term: ELBO = E[log p(x|z)] - KL": -1.8608514,
        "the ELBO includes the KL term, -KL(q(z|x) || p(z))": -2.0425263,
        "sum log p(x|z) over pixels, do not average": -0.8625170,
    },
)  # fmt: skip
check_close(
    elbo(toy_x.repeat(50_000, 1), toy_encoder, toy_decoder, beta=2.0).mean(), -2.4058761,
    "mean ELBO with beta=2", atol=0.02, rtol=0, hint="beta multiplies the KL term only",
)  # fmt: skip
encoder_net = nn.Linear(3, 2)
learned_encoder = lambda x: encoder_net(x).chunk(2, dim=-1)  # noqa: E731
# with beta = 0 only the reconstruction term is left: its gradient reaches the encoder only through z
(-elbo(toy_x, learned_encoder, toy_decoder, beta=0.0).sum()).backward()
check_grad(
    encoder_net.weight, "the encoder's weights",
    hint="the sample z must be reparameterized (no .sample(), torch.normal or .detach()) so the encoder gets gradients",
)  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST elbo
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
g = hidden_generator()

decoder = nn.Linear(2, 4)
with torch.no_grad():
    decoder.weight.copy_(torch.randn(4, 2, generator=g))
    decoder.bias.copy_(torch.randn(4, generator=g))
mu, logvar = torch.randn(2, generator=g), torch.rand(2, generator=g) - 1
encoder = lambda x: (mu.expand(len(x), 2), logvar.expand(len(x), 2))  # noqa: E731
x = (torch.rand(1, 4, generator=g) < 0.5).float().repeat(100_000, 1)
beta = 0.5 + float(torch.rand((), generator=g))
with torch.no_grad():
    check_close(
        elbo(x, encoder, decoder, beta=beta).mean(), solution.elbo(x.repeat(4, 1), encoder, decoder, beta=beta).mean(),
        "mean of 100000 ELBOs with a random decoder, q and beta", atol=0.05, rtol=0,
    )  # fmt: skip

# %% [markdown]
# ## 6. The IWAE bound (2 points)
#
# With $k$ samples $z_i \sim q(z \mid x)$ and log-weights
# $\log w_i = \log p(x \mid z_i) + \log p(z_i) - \log q(z_i \mid x)$:
#
# $$\mathcal{L}_k(x) = \log \frac1k \sum_{i=1}^k w_i = \operatorname{logsumexp}_i(\log w_i) - \log k .$$
#
# Use `torch.logsumexp` (the weights themselves under- and overflow). Per example; for
# `k = 1` it is a single-sample ELBO (with the KL estimated by sampling instead of in closed
# form). `torch.distributions.Normal(...).log_prob` evaluates the Gaussian log-densities.


# %%
def iwae_bound(x: torch.Tensor, encoder, decoder, k: int) -> torch.Tensor:
    """Importance-weighted bound with k samples; per-example."""
    ### BEGIN SOLUTION
    mu, logvar = encoder(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    z = q.rsample((k,))  # [k, B, L]
    log_px = -F.binary_cross_entropy_with_logits(
        decoder(z), x.expand(k, *x.shape), reduction="none"
    )
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_w = log_px.flatten(2).sum(-1) + log_pz - q.log_prob(z).sum(-1)  # [k, B]
    return torch.logsumexp(log_w, dim=0) - math.log(k)
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST iwae_bound (2 points)
torch.manual_seed(0)
log_px = -1.7893124  # exact, by numerical integration
with torch.no_grad():
    k1 = iwae_bound(toy_x.repeat(50_000, 1), toy_encoder, toy_decoder, k=1)
    k1000 = iwae_bound(toy_x.repeat(200, 1), toy_encoder, toy_decoder, k=1000)
    k10 = iwae_bound(toy_x.repeat(5_000, 1), toy_encoder, toy_decoder, k=10)
check_shape(
    k1000,
    (200,),
    "iwae_bound on a batch of 200",
    hint="reduce over the k samples only (dim 0 of your [k, B] log-weights)",
)
check_close(
    k1.mean(),
    -2.2242012,
    "mean of iwae_bound with k=1 (= the ELBO)",
    atol=0.03,
    rtol=0,
    hint="log w = log p(x|z) + log p(z) - log q(z|x), summed over pixels and latent dims",
)
check(
    float(k1000.mean()) <= log_px + 0.02,
    f"iwae_bound with k=1000: expected at most log p(x) = {log_px:.4f}, got {float(k1000.mean()):.4f}",
    hint="subtract log k: the bound averages the k weights, it does not sum them",
)
check_close(
    k1000.mean(), log_px, "mean of iwae_bound with k=1000 (close to log p(x))", atol=0.02, rtol=0
)
check(
    float(k1.mean()) < float(k10.mean()) < float(k1000.mean()),
    f"iwae_bound should increase with k, got k=1: {float(k1.mean()):.4f}, k=10: {float(k10.mean()):.4f}, k=1000: {float(k1000.mean()):.4f}",
)
sharp_decoder = nn.Linear(1, 784)
with torch.no_grad():
    sharp_decoder.weight.zero_()
    sharp_decoder.bias.fill_(8.0)  # every pixel predicted on, but the image is blank
prior_encoder = lambda x: (torch.zeros(len(x), 1), torch.zeros(len(x), 1))  # noqa: E731
with torch.no_grad():
    tiny = iwae_bound(torch.zeros(3, 784), prior_encoder, sharp_decoder, k=50)
check_close(
    tiny, torch.full((3,), -784 * F.softplus(torch.tensor(8.0)).item()), "iwae_bound with log-weights near -6272",
    hint="exp(-6272) underflows to 0 and log(0) = -inf: use torch.logsumexp on the log-weights",
)  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST iwae_bound
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
g = hidden_generator()

decoder = nn.Linear(2, 4)
with torch.no_grad():
    decoder.weight.copy_(torch.randn(4, 2, generator=g))
    decoder.bias.copy_(torch.randn(4, generator=g))
mu, logvar = torch.randn(2, generator=g), torch.rand(2, generator=g) - 1
encoder = lambda x: (mu.expand(len(x), 2), logvar.expand(len(x), 2))  # noqa: E731
x = (torch.rand(1, 4, generator=g) < 0.5).float().repeat(50_000, 1)
with torch.no_grad():
    check_close(
        iwae_bound(x, encoder, decoder, k=10).mean(), solution.iwae_bound(x.repeat(4, 1), encoder, decoder, k=10).mean(),
        "mean of 50000 IWAE bounds (k=10) with a random decoder and q", atol=0.1, rtol=0,
    )  # fmt: skip

# %% [markdown]
# ## 7. Spherical interpolation (1 point)
#
# $$\mathrm{slerp}(z_0, z_1; t) = \frac{\sin((1-t)\Omega)}{\sin\Omega} z_0 + \frac{\sin(t\Omega)}{\sin\Omega} z_1, \qquad \cos\Omega = \frac{z_0^\top z_1}{\|z_0\|\,\|z_1\|},$$
#
# for two vectors `[L]` and a scalar $t \in [0, 1]$. When $z_0$ and $z_1$ are parallel,
# $\sin\Omega = 0$: fall back to linear interpolation $(1-t) z_0 + t z_1$.


# %%
def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between z0 and z1 (both [L]) at t in [0, 1]."""
    ### BEGIN SOLUTION
    cos_omega = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    omega = torch.arccos(cos_omega.clamp(-1.0, 1.0))
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
    ### END SOLUTION


# %% tags=["graded"] points=1
# TEST slerp (1 point)
e0, e1 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 0.0])
check_close(slerp(e0, e1, 0.0), e0, "slerp(z0, z1, 0)")
check_close(slerp(e0, e1, 1.0), e1, "slerp(z0, z1, 1)")
check_close(
    slerp(e0, e1, 0.5), torch.tensor([0.7071068, 1.4142135, 0.0]), "slerp([1, 0, 0], [0, 2, 0], 0.5)",
    mistakes={"that is linear interpolation: follow the great circle with the sin weights": torch.tensor([0.5, 1.0, 0.0])},
)  # fmt: skip
u, v = torch.nn.functional.normalize(torch.randn(2, 16), dim=1)
check_close(
    slerp(u, v, 0.3).norm(),
    1.0,
    "norm of slerp between two unit vectors",
    hint="slerp keeps the norm of equal-norm endpoints",
)
parallel = slerp(e0, 3 * e0, 0.5)
check_finite(
    parallel,
    "slerp of parallel vectors",
    hint="when sin(omega) = 0, fall back to linear interpolation",
)
check_close(
    parallel,
    torch.tensor([2.0, 0.0, 0.0]),
    "slerp([1, 0, 0], [3, 0, 0], 0.5)",
    hint="parallel vectors: interpolate linearly",
)
# z with itself: in float32 the cosine comes out as 1.0000002, and arccos of it is NaN.
z = torch.randn(8, generator=torch.Generator().manual_seed(0))
check_close(
    slerp(z, z, 0.3), z, "slerp(z, z, 0.3), where z . z / |z|^2 rounds to 1.0000002",
    hint="clamp cos(omega) to [-1, 1] before arccos: rounding pushes it past 1",
)  # fmt: skip
check_finite(slerp(z, -z, 0.25), "slerp(z, -z, 0.25), where the cosine rounds to -1.0000002",
             hint="clamp cos(omega) to [-1, 1] before arccos: rounding pushes it past -1")  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST slerp
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
g = hidden_generator()

z0, z1 = torch.randn(8, generator=g), torch.randn(8, generator=g)
t = float(torch.rand((), generator=g))
check_close(slerp(z0, z1, t), solution.slerp(z0, z1, t), "slerp between random vectors at random t")

# %% [markdown]
# ## 8. Train a VAE with your ELBO (2 points)
#
# A small VAE (latent dimension 8) on the sklearn digits, binarized at 8 (out of 16), trained
# for 100 epochs with your `elbo`. The test measures the trained model's test ELBO with the
# course's own implementation (so a mis-scaled `elbo` cannot grade itself) and asks for at
# least $-22$ nats per image; a correct ELBO gets there with a margin.

# %%
digits_train = (data.digits("train", device="cpu")[0] >= 8).float()  # [1000, 64]
digits_test = (data.digits("test", device="cpu")[0] >= 8).float()  # [447, 64]


class SmallVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 16))
        self.dec = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 64))

    def encoder(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        return mu, logvar

    def decoder(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z)


# %% tags=["graded"] points=2
# TEST train_vae (2 points)
torch.manual_seed(0)
model = SmallVAE()
history = fit(
    lambda x: -elbo(x, model.encoder, model.decoder).mean(),
    torch.optim.Adam(model.parameters(), lr=2e-3),
    digits_train, batch_size=64, epochs=100, seed=0, progress=False,
)  # fmt: skip


def test_elbo(state: dict) -> float:
    """The course's reference ELBO (nats per image) of a SmallVAE with these weights."""
    vae = SmallVAE()
    vae.load_state_dict(state)
    vae.eval()
    return -negative_elbo_estimate(vae, digits_test, draws=20).mean().item()


check_score(
    model.state_dict(), test_elbo, "training with your elbo: the test ELBO", at_least=-22.0,
    hint="train on -elbo(...).mean(); check elbo's signs, its sums over pixels and latent dims, and beta",
)  # fmt: skip
