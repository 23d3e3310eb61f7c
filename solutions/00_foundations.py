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
# # Exercises 00 — Divergences
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/solutions/00_foundations.ipynb)
#
# Four functions that every later lecture relies on. For each one: read the definition,
# replace `# YOUR CODE HERE` / `raise NotImplementedError()` with your code, and run the test
# cell below it. A failing test tells you what it expected, what it got, and the likely
# mistake.
#
# **Grade yourself** from a terminal in the course folder:
#
# ```
# course grade exercises/00_foundations.ipynb
# ```
#
# It runs this notebook top to bottom in a fresh kernel and prints each question's points.
# Only the test cells tagged `graded` count, and editing them gains nothing: instructors
# grade with the original test cells.
#
# Conventions: natural logarithms (nats); probability vectors along the **last** dimension,
# so `p` of shape `[..., K]` gives a result of shape `[...]`; and $0 \log 0 = 0$.

# %%
import math

import torch

from course_utils.grading import check, check_close, check_shape

# %% [markdown]
# ## 1. KL divergence of discrete distributions (2 points)
#
# $$\mathrm{KL}(p \,\|\, q) = \sum_k p_k \log \frac{p_k}{q_k}$$
#
# Terms with $p_k = 0$ contribute $0$; a term with $p_k > 0$ and $q_k = 0$ makes the
# divergence $+\infty$. Hint: `torch.special.xlogy(x, y)` computes $x \log y$ with
# $0 \log 0 = 0$.


# %%
def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) for probability vectors along the last dim: [..., K], [..., K] -> [...]."""
    ### BEGIN SOLUTION
    return (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum(dim=-1)
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST kl_divergence (2 points)
p = torch.tensor([0.7, 0.2, 0.1])
q = torch.tensor([0.2, 0.5, 0.3])
check_close(
    kl_divergence(p, q), 0.5838147, "kl_divergence(p, q) for p=[0.7, 0.2, 0.1], q=[0.2, 0.5, 0.3]",
    mistakes={
        "the sign is flipped: KL(p||q) sums p * log(p / q), not p * log(q / p)": -0.5838147,
        "use the natural log (nats), not log2": 0.5838147 / math.log(2),
        "the arguments are swapped: the weights are p, the first argument": 0.5371765,
    },
)  # fmt: skip
check_close(
    kl_divergence(p, p), 0.0, "kl_divergence(p, p)", hint="KL of a distribution with itself is 0"
)
check_close(
    kl_divergence(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.25, 0.25, 0.5])), math.log(2),
    "kl_divergence([0.5, 0.5, 0], [0.25, 0.25, 0.5])",
    hint="a zero in p must contribute 0 (0 log 0 = 0); 0 * log(0) in floating point is NaN",
)  # fmt: skip
check_close(
    kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])), math.inf,
    "kl_divergence([0.5, 0.5], [1, 0])", hint="p > 0 where q = 0 makes the divergence +inf",
)  # fmt: skip
batch_p, batch_q = (
    torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]),
    torch.tensor([[0.2, 0.5, 0.3]] * 2),
)
batch = kl_divergence(batch_p, batch_q)
check_shape(batch, (2,), "kl_divergence on a batch [2, 3]", hint="sum over the last dimension only")
check_close(batch[0], 0.5838147, "kl_divergence(batch)[0]", hint="each row is its own distribution")
random_p = torch.distributions.Dirichlet(torch.ones(5)).sample((100,))
random_q = torch.distributions.Dirichlet(torch.ones(5)).sample((100,))
check(
    bool((kl_divergence(random_p, random_q) >= -1e-6).all()),
    "kl_divergence: KL must never be negative",
)

# %% tags=["hidden"]
# HIDDEN TEST kl_divergence
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
from course_utils.grading import hidden_generator

g = hidden_generator()
p = torch.softmax(3 * torch.randn(6, 5, generator=g), -1)
p[:, 0] = 0.0  # 0 log 0 = 0
p = p / p.sum(-1, keepdim=True)
q = torch.softmax(torch.randn(6, 5, generator=g), -1)
check_close(
    kl_divergence(p, q), (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum(-1),
    "kl_divergence on random distributions",
)  # fmt: skip

# %% [markdown]
# ## 2. KL divergence of two Gaussians, in closed form (2 points)
#
# For one-dimensional Gaussians $p = \mathcal{N}(\mu_p, \sigma_p^2)$ and
# $q = \mathcal{N}(\mu_q, \sigma_q^2)$,
#
# $$\mathrm{KL}(p \,\|\, q) = \log \frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2 \sigma_q^2} - \frac12 .$$
#
# (Derive it: write $\log p(x) - \log q(x)$ and take its expectation under $p$, using
# $\mathbb{E}_p[(x-\mu_p)^2] = \sigma_p^2$ and $\mathbb{E}_p[(x-\mu_q)^2] = \sigma_p^2 + (\mu_p-\mu_q)^2$.)
# The arguments are standard deviations, not variances, and may be tensors of any
# (broadcastable) shape.


# %%
def gaussian_kl(mu_p, sigma_p, mu_q, sigma_q) -> torch.Tensor:
    """Closed-form KL(N(mu_p, sigma_p^2) || N(mu_q, sigma_q^2)), elementwise."""
    mu_p, sigma_p, mu_q, sigma_q = (
        torch.as_tensor(v, dtype=torch.float32) for v in (mu_p, sigma_p, mu_q, sigma_q)
    )
    ### BEGIN SOLUTION
    return torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST gaussian_kl (2 points)
check_close(
    gaussian_kl(1.0, 0.5, 0.0, 2.0), 1.0425444, "gaussian_kl(mu_p=1, sigma_p=0.5, mu_q=0, sigma_q=2)",
    mistakes={
        "the quadratic term is divided by 2 sigma_q^2: the factor 1/2 is missing": 1.1987944,
        "the constant -1/2 is missing": 1.5425444,
        "the log term is log(sigma_q / sigma_p), not log(sigma_p / sigma_q)": -1.7300444,
        "the log term uses standard deviations: log(sigma_q / sigma_p), not variances": 2.4288388,
        "the arguments are swapped: this is KL(q || p)": 8.1137056,
    },
)  # fmt: skip
check_close(gaussian_kl(0.3, 1.5, 0.3, 1.5), 0.0, "gaussian_kl of a Gaussian with itself")
values = gaussian_kl(torch.zeros(4), torch.ones(4), torch.arange(4.0), torch.ones(4))
check_close(
    values, torch.tensor([0.0, 0.5, 2.0, 4.5]), "gaussian_kl(0, 1, [0, 1, 2, 3], 1)",
    hint="with equal unit variances the KL is (mu_p - mu_q)^2 / 2, elementwise",
)  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST gaussian_kl
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
g = hidden_generator()
mu_p, mu_q = torch.randn(8, generator=g), torch.randn(8, generator=g)
sigma_p, sigma_q = 0.3 + torch.rand(8, generator=g), 0.3 + torch.rand(8, generator=g)
check_close(
    gaussian_kl(mu_p, sigma_p, mu_q, sigma_q),
    torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5,
    "gaussian_kl on random parameters",
)  # fmt: skip

# %% [markdown]
# ## 3. A Monte Carlo estimate of the same KL (2 points)
#
# Most KLs in this course have no closed form, and we estimate them from samples:
#
# $$\mathrm{KL}(p \,\|\, q) = \mathbb{E}_{x \sim p}\big[\log p(x) - \log q(x)\big] \approx \frac1n \sum_{i=1}^n \big(\log p(x_i) - \log q(x_i)\big), \quad x_i \sim p .$$
#
# Draw the $n$ samples with `torch.randn(n, generator=generator)` (so results are
# reproducible) and return the estimate as a 0-dimensional tensor. `torch.distributions.Normal`
# has a `log_prob` method.


# %%
def monte_carlo_kl(
    mu_p: float, sigma_p: float, mu_q: float, sigma_q: float, n: int, generator: torch.Generator
) -> torch.Tensor:
    """Monte Carlo estimate of KL(N(mu_p, sigma_p^2) || N(mu_q, sigma_q^2)) from n samples of p."""
    ### BEGIN SOLUTION
    x = mu_p + sigma_p * torch.randn(n, generator=generator)
    p = torch.distributions.Normal(mu_p, sigma_p)
    q = torch.distributions.Normal(mu_q, sigma_q)
    return (p.log_prob(x) - q.log_prob(x)).mean()
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST monte_carlo_kl (2 points)
exact = 1.0425444  # KL(N(1, 0.5^2) || N(0, 2^2))
estimate = monte_carlo_kl(1.0, 0.5, 0.0, 2.0, n=200_000, generator=torch.Generator().manual_seed(0))
check_shape(estimate, (), "monte_carlo_kl(...)", hint="return the mean as a 0-dimensional tensor")
check(
    float(estimate) > 0,
    f"monte_carlo_kl(1, 0.5, 0, 2): expected about {exact:.3f}, got {float(estimate):.3f}",
    hint="sample x from p (mu_p, sigma_p), not from q: KL(p||q) = E_p[log p(x) - log q(x)]",
)
check_close(
    estimate, exact, "monte_carlo_kl(1, 0.5, 0, 2, n=200000)", atol=0.02, rtol=0,
    hint="average log p(x) - log q(x) over samples x ~ p; sigma is a standard deviation",
)  # fmt: skip
small = torch.stack(
    [monte_carlo_kl(1.0, 0.5, 0.0, 2.0, 20, torch.Generator().manual_seed(s)) for s in range(300)]
)
check(
    float(small.std()) > 1e-3,
    "monte_carlo_kl: 300 estimates with different seeds are all equal",
    hint="use random samples from the generator, not the closed form",
)
check_close(
    small.mean(), exact, "the mean of 300 estimates with n=20", atol=0.05, rtol=0,
    hint="the estimator should be unbiased: average over samples, do not take logs of averages",
)  # fmt: skip
again = monte_carlo_kl(1.0, 0.5, 0.0, 2.0, 20, torch.Generator().manual_seed(7))
check_close(
    again - small[7], 0.0, "monte_carlo_kl with the same seed twice: the difference",
    hint="draw the samples with the generator you are given: torch.randn(n, generator=generator)",
)  # fmt: skip

# %% tags=["hidden"]
# HIDDEN TEST monte_carlo_kl
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
g = hidden_generator()
for _ in range(3):  # three parameter sets: a constant answer passes one in ten, not all three
    mu_p, mu_q = (2 * torch.rand(2, generator=g) - 1).tolist()
    sigma_p, sigma_q = (0.5 + torch.rand(2, generator=g)).tolist()
    seed = int(torch.randint(0, 2**31, (), generator=g))
    # log p(x) - log q(x) = c + a z^2 + b z with x = mu_p + sigma_p z: its variance is 2a^2 + b^2,
    # and the tolerance is 5 standard errors of the mean of n (an honest answer fails 1 in 10^6)
    a, b = sigma_p**2 / (2 * sigma_q**2) - 0.5, sigma_p * (mu_p - mu_q) / sigma_q**2
    check_close(
        monte_carlo_kl(mu_p, sigma_p, mu_q, sigma_q, n=200_000, generator=torch.Generator().manual_seed(seed)),
        math.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5,
        "monte_carlo_kl with random parameters, n=200000", atol=max(0.03, 5 * math.sqrt((2 * a**2 + b**2) / 200_000)), rtol=0,
    )  # fmt: skip

# %% [markdown]
# ## 4. Jensen–Shannon divergence (2 points)
#
# $$\mathrm{JS}(p, q) = \tfrac12 \mathrm{KL}(p \,\|\, m) + \tfrac12 \mathrm{KL}(q \,\|\, m), \qquad m = \tfrac12 (p + q).$$
#
# It is symmetric and always finite: $0 \le \mathrm{JS} \le \log 2$, with $\log 2$ exactly
# when $p$ and $q$ do not overlap. Make sure zeros give no NaN.


# %%
def js_divergence(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """JS(p, q) for probability vectors along the last dim: [..., K], [..., K] -> [...]."""
    ### BEGIN SOLUTION
    m = 0.5 * (p + q)
    kl_pm = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(-1)
    kl_qm = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1)
    return 0.5 * kl_pm + 0.5 * kl_qm
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST js_divergence (2 points)
p = torch.tensor([0.7, 0.2, 0.1])
q = torch.tensor([0.2, 0.5, 0.3])
check_close(
    js_divergence(p, q), 0.1329180, "js_divergence(p, q) for p=[0.7, 0.2, 0.1], q=[0.2, 0.5, 0.3]",
    mistakes={
        "each KL term is weighted by 1/2": 2 * 0.1329180,
        "use the natural log (nats), not log2": 0.1329180 / math.log(2),
        "the KLs are to the mixture m = (p + q) / 2, not between p and q": 0.5 * (0.5838147 + 0.5371765),
    },
)  # fmt: skip
check_close(js_divergence(q, p), 0.1329180, "js_divergence(q, p)", hint="JS is symmetric")
check_close(
    js_divergence(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])), math.log(2),
    "js_divergence([1, 0], [0, 1])",
    hint="disjoint distributions give exactly log 2; zeros must contribute 0, not NaN",
)  # fmt: skip
random_p = torch.distributions.Dirichlet(torch.full((6,), 0.3)).sample((200,))
random_q = torch.distributions.Dirichlet(torch.full((6,), 0.3)).sample((200,))
values = js_divergence(random_p, random_q)
check_shape(
    values, (200,), "js_divergence on a batch [200, 6]", hint="sum over the last dimension only"
)
check(
    bool(((values >= -1e-6) & (values <= math.log(2) + 1e-6)).all()),
    f"js_divergence: expected values in [0, log 2], got min {values.min():.4f}, max {values.max():.4f}",
)

# %% tags=["hidden"]
# HIDDEN TEST js_divergence
# Instructor-only: `course build` leaves this cell out of the exercise. Class grading
# draws its inputs afresh for every grading run.
g = hidden_generator()
p = torch.softmax(2 * torch.randn(6, 7, generator=g), -1)
q = torch.softmax(2 * torch.randn(6, 7, generator=g), -1)
m = (p + q) / 2
check_close(
    js_divergence(p, q),
    0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1),
    "js_divergence on random distributions",
)  # fmt: skip

# %% [markdown]
# ## Explore (not graded)
#
# How fast does the Monte Carlo error shrink? Plot the absolute error of your
# `monte_carlo_kl` against $n$ on log–log axes next to the $1/\sqrt{n}$ rate.

# %%
import matplotlib.pyplot as plt

ns = [10, 100, 1_000, 10_000, 100_000]
exact = float(gaussian_kl(1.0, 0.5, 0.0, 2.0))
errors = [
    torch.stack(
        [
            monte_carlo_kl(1.0, 0.5, 0.0, 2.0, n, torch.Generator().manual_seed(s)) - exact
            for s in range(20)
        ]
    )
    .abs()
    .mean()
    for n in ns
]
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(ns, errors, "o-", label="mean |estimate - exact| over 20 seeds")
ax.loglog(ns, [errors[0] * math.sqrt(ns[0] / n) for n in ns], "--", label=r"$\propto 1/\sqrt{n}$")
ax.set_title("Monte Carlo error of the KL estimate")
ax.set_xlabel("number of samples n")
ax.set_ylabel("absolute error (nats)")
ax.legend()
plt.show()
