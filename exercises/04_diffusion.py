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
# # Exercises 04 — Diffusion models (DDPM, DDIM)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/exercises/04_diffusion.ipynb)
#
# Eight functions: two noise schedules, the forward process in closed form, the posterior
# $q(x_{t-1} \mid x_t, x_0)$, the $x_0$ implied by a noise prediction, the training loss
# $L_\text{simple}$, one step of DDPM sampling and one DDIM step. Then your functions train
# and sample a diffusion model on the 2D swiss roll. For each function: read the
# definition, replace `# YOUR CODE HERE` / `raise NotImplementedError()` with your code,
# and run the test cell below it.
#
# **Grade yourself** from a terminal in the course folder:
#
# ```
# course grade exercises/04_diffusion.ipynb
# ```
#
# Conventions (Ho et al., 2020, shifted to Python indices): schedules are length-$T$
# tensors indexed by $t = 0, \dots, T-1$, where index $t$ is the paper's step $t + 1$;
# $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$. A batch of time
# steps `t` is a `LongTensor` of shape `[batch]`; per-example coefficients must broadcast
# over the other dimensions (reshape to `[batch, 1, ...]`). Tensors you create (time steps,
# random draws) go on the device of the inputs (`device=x0.device`), so that your
# functions run on a GPU too.

# %%
import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from course_utils import data
from course_utils.grading import check, check_close, check_finite, check_score, check_shape
from course_utils.train import fit

# eps_model(x_t, t): the noise predicted from x_t at the steps t, shaped like x_t (a network
# or any function of the two)
EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
torch.manual_seed(0)

# %% [markdown]
# ## 1. The linear schedule (1 point)
#
# Ho et al. use $T = 1000$ betas evenly spaced from $10^{-4}$ to $0.02$.


# %%
def linear_beta_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al.'s schedule: T evenly spaced betas from beta_start to beta_end, both
    included; float32 [T]."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T: expected a positive int, got {T!r}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST linear_beta_schedule (1 point)
betas = linear_beta_schedule(1000)
check_shape(betas, (1000,), "linear_beta_schedule(1000)")
check(
    betas.dtype == torch.float32,
    f"linear_beta_schedule: dtype {betas.dtype}, expected torch.float32",
    hint="pass dtype=torch.float32",
)
check_close(betas[[0, 1, -1]], torch.tensor([1e-4, 1e-4 + 0.0199 / 999, 0.02]), "betas[0], betas[1], betas[-1]", atol=1e-7,
            hint="torch.linspace(beta_start, beta_end, T): both ends included")  # fmt: skip

# %% [markdown]
# ## 2. The cosine schedule (2 points)
#
# Nichol & Dhariwal (2021) define $\bar\alpha$ directly:
# $f(t) = \cos^2\!\Big(\dfrac{t/T + s}{1 + s}\cdot\dfrac{\pi}{2}\Big)$ for $t = 0, \dots, T$, and
# $\bar\alpha_t = f(t)/f(0)$. Near $t = T$, $f \to 0$ and the implied
# $\beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1}$ approaches 1, which makes sampling
# singular, so they **clip $\beta_t$ at 0.999** and recompute $\bar\alpha$ as the
# cumulative product of $1 - \beta$. Return the $T$ values for paper steps $1 \dots T$.


# %%
def cosine_alpha_bar(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: alpha_bar [T], float32, for the paper's steps
    1..T, from f(t) = cos(((t/T + s) / (1 + s)) pi/2)^2 and alpha_bar_t = f(t) / f(0), the
    implied betas clipped at 0.999 (near t = T they approach 1)."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T: expected a positive int, got {T!r}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST cosine_alpha_bar (2 points)
def f_cos(t: torch.Tensor, T: int, s: float = 0.008) -> torch.Tensor:
    return torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2


ab = cosine_alpha_bar(1000)
check_shape(ab, (1000,), "cosine_alpha_bar(1000)", hint="T values, for the paper's steps 1..T")
check(ab.dtype == torch.float32, f"cosine_alpha_bar returned {ab.dtype}",
      hint="compute in float64 if you like, return float32 (.float()) like the rest of the model")  # fmt: skip
t = torch.tensor([0.0, 1.0, 499.0])
expected = f_cos(t + 1, 1000) / f_cos(torch.tensor(0.0), 1000)
check_close(
    ab[[0, 1, 499]], expected, "cosine_alpha_bar(1000)[[0, 1, 499]]", atol=1e-5,
    hint="alpha_bar_t = f(t)/f(0) for the paper's steps t = 1..T (index 0 is step 1)",
    mistakes={"index 0 is the paper's step 1: alpha_bar[0] = f(1)/f(0), not f(0)/f(0) = 1": f_cos(t, 1000) / f_cos(torch.tensor(0.0), 1000)},
)  # fmt: skip
implied = 1 - ab[1:] / ab[:-1]
check(
    float(ab[-1]) > 0,
    "cosine_alpha_bar: the last alpha_bar is 0",
    hint="clip the betas at 0.999 before taking the cumulative product",
)
check(
    float(implied.max()) <= 0.999 + 1e-4,
    f"cosine_alpha_bar: an implied beta is {float(implied.max()):.5f} > 0.999",
    hint="clip the betas at 0.999 before taking the cumulative product",
)
check_close(
    float(implied[-1]),
    0.999,
    "the last implied beta",
    atol=1e-4,
    hint="the last betas hit the 0.999 clip",
)

# %% [markdown]
# ## 3. The forward process in closed form (2 points)
#
# $q(x_t \mid x_0) = \mathcal{N}\big(\sqrt{\bar\alpha_t}\,x_0,\,(1 - \bar\alpha_t) I\big)$, so
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon$: one jump to any step.
# Note the **bar** ($\bar\alpha$, not $\alpha$) and the **square roots**.


# %%
def q_sample(
    x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """A sample of q(x_t | x0): sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) noise, per
    example, for x0 and noise [B, ...] and the steps t, a LongTensor [B] (alpha_bar [T] on
    t's device, in x0's dtype)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST q_sample (2 points)
alpha_bar = torch.tensor([0.9, 0.64, 0.25, 0.04])
x0 = torch.ones(3, 1, 2, 2)
noise = torch.full((3, 1, 2, 2), 2.0)
t = torch.tensor([1, 2, 3])


def closed_form(ab: torch.Tensor) -> torch.Tensor:
    return (ab.sqrt() + 2 * (1 - ab).sqrt()).view(3, 1, 1, 1).expand(3, 1, 2, 2)


check_close(
    q_sample(x0, t, noise, alpha_bar), closed_form(alpha_bar[t]), "q_sample(x0 = 1, t = [1, 2, 3], noise = 2)",
    hint="sqrt(alpha_bar[t]) * x0 + sqrt(1 - alpha_bar[t]) * noise, with alpha_bar[t] reshaped to [B, 1, 1, 1]",
    mistakes={
        "take the square roots: x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise": (alpha_bar[t] + 2 * (1 - alpha_bar[t])).view(3, 1, 1, 1).expand(3, 1, 2, 2),
        "t is off by one: index t is alpha_bar[t], not alpha_bar[t - 1]": closed_form(alpha_bar[t - 1]),
        "t is off by one: index t is alpha_bar[t], not alpha_bar[t + 1]": closed_form(alpha_bar[(t + 1).clamp(max=3)]),
    },
)  # fmt: skip

# %% [markdown]
# ## 4. The posterior $q(x_{t-1} \mid x_t, x_0)$ (3 points)
#
# By Bayes' rule on Gaussians (Ho et al., eqs. 6–7), with $\bar\alpha_{t-1} = 1$ at the
# first step (index 0),
#
# $$\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\,x_t, \qquad \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\,\beta_t.$$
#
# You get the `betas`; compute $\alpha$ and $\bar\alpha$ from them. Return the variance
# broadcastable to `x_t` (shape `[B, 1, ...]` is fine).


# %%
def posterior_mean_variance(
    x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, betas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [B, ...] and variance [B, 1, ...] of q(x_{t-1} | x_t, x0) (Ho et al., eqs. 6-7)
    for x0 and x_t [B, ...], the steps t [B] and the schedule betas [T] (on the CPU):

    mean = sqrt(ab_prev) beta_t / (1 - ab_t) x0 + sqrt(alpha_t) (1 - ab_prev) / (1 - ab_t) x_t
    var  = (1 - ab_prev) / (1 - ab_t) beta_t          (ab_prev = 1 at t = 0)
    """
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=3
# TEST posterior_mean_variance (3 points)
betas = torch.tensor([0.1, 0.2, 0.3, 0.4])
alphas = 1 - betas
ab = torch.cumprod(alphas, 0)  # 0.9, 0.72, 0.504, 0.3024
x0, x_t = torch.tensor([[1.0, -1.0], [0.5, 0.0]]), torch.tensor([[0.2, 0.4], [-1.0, 2.0]])
t = torch.tensor([2, 0])
ab_prev = torch.tensor([0.72, 1.0])
coef0 = ab_prev.sqrt() * betas[t] / (1 - ab[t])
coef1 = alphas[t].sqrt() * (1 - ab_prev) / (1 - ab[t])
expected_mean = coef0[:, None] * x0 + coef1[:, None] * x_t
expected_var = (1 - ab_prev) / (1 - ab[t]) * betas[t]
mean, var = posterior_mean_variance(x0, x_t, t, betas)
check_close(
    mean, expected_mean, "posterior mean at t = [2, 0]", atol=1e-5,
    hint="mean = sqrt(ab_prev) beta / (1 - ab) x0 + sqrt(alpha) (1 - ab_prev) / (1 - ab) x_t, with ab_prev = 1 at t = 0",
    mistakes={
        "alpha_bar, not alpha, in the denominators and in ab_prev: 1 - alpha_bar_t": (ab_prev.sqrt() * betas[t] / (1 - alphas[t]))[:, None] * x0 + (alphas[t].sqrt() * (1 - ab_prev) / (1 - alphas[t]))[:, None] * x_t,
    },
)  # fmt: skip
check_close(
    torch.as_tensor(var).expand(2, 2), expected_var[:, None].expand(2, 2), "posterior variance at t = [2, 0]", atol=1e-6,
    hint="the posterior variance is beta_tilde = (1 - ab_prev) / (1 - ab_t) beta_t, and 0 at t = 0",
    mistakes={"that is beta_t: the posterior variance is beta_tilde_t = (1 - ab_prev)/(1 - ab_t) beta_t": betas[t][:, None].expand(2, 2)},
)  # fmt: skip
mean_mid, _ = posterior_mean_variance(x0[:1], x_t[:1], torch.tensor([1]), betas)
ab_p = torch.tensor(0.9)
check_close(
    mean_mid, ab_p.sqrt() * 0.2 / (1 - 0.72) * x0[:1] + alphas[1].sqrt() * (1 - ab_p) / (1 - 0.72) * x_t[:1], "posterior mean at t = 1", atol=1e-5,
    hint="ab_prev at index t is alpha_bar[t - 1] (and 1 at t = 0); check your shift by one",
)  # fmt: skip
mean_last, _ = posterior_mean_variance(x0[:1], x_t[:1], torch.tensor([3]), betas)
check_close(
    mean_last, ab[2].sqrt() * 0.4 / (1 - ab[3]) * x0[:1] + alphas[3].sqrt() * (1 - ab[2]) / (1 - ab[3]) * x_t[:1],
    "posterior mean at the last step t = 3", atol=1e-5,
    hint="ab_prev is [1, alpha_bar[0], ..., alpha_bar[T - 2]]: T values, one per step",
)  # fmt: skip

# %% [markdown]
# ## 5. The $x_0$ implied by a noise prediction (1 point)
#
# Invert the closed form: $\hat x_0 = \big(x_t - \sqrt{1 - \bar\alpha_t}\,\hat\epsilon\big) / \sqrt{\bar\alpha_t}$.


# %%
def predict_x0(
    x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor
) -> torch.Tensor:
    """The x0 implied by a noise prediction eps: (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t), for
    x_t and eps [B, ...] and the steps t [B] (alpha_bar [T] on t's device, in x_t's dtype)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST predict_x0 (1 point)
alpha_bar = torch.tensor([0.9, 0.64, 0.25, 0.04])
x0, eps, t = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 3])
x_t = alpha_bar[t, None].sqrt() * x0 + (1 - alpha_bar[t, None]).sqrt() * eps
check_close(predict_x0(x_t, t, eps, alpha_bar), x0, "predict_x0(q_sample(x0, t, eps), t, eps)", atol=1e-5,
            hint="(x_t - sqrt(1 - alpha_bar[t]) eps) / sqrt(alpha_bar[t])")  # fmt: skip

# %% [markdown]
# ## 6. The training loss $L_\text{simple}$ (2 points)
#
# Algorithm 1: for each example draw $t$ uniformly from $\{0, \dots, T-1\}$ and
# $\epsilon \sim \mathcal{N}(0, I)$, form $x_t$ with `q_sample`, and return the mean squared
# error between $\epsilon$ and `eps_model(x_t, t)`.


# %%
def ddpm_loss(eps_model: EpsModel, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """L_simple (Ho et al., Algorithm 1) on a batch x0 [B, ...]: t uniform over 0..T-1 and
    noise ~ N(0, I) per example, the mean squared error between the noise and
    eps_model(x_t, t); a scalar. alpha_bar [T] is on x0's device."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST ddpm_loss (2 points)
class Recorder(nn.Module):
    """Predicts zero noise and records the time steps and inputs it was given."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.t, self.x_t = t, x_t
        return torch.zeros_like(x_t)


torch.manual_seed(0)
alpha_bar = torch.cumprod(1 - torch.linspace(0.05, 0.5, 10), 0)
recorder = Recorder()
loss = ddpm_loss(recorder, torch.zeros(20_000, 2), alpha_bar)
check_finite(loss, "ddpm_loss")
check(recorder.t.dtype == torch.long and recorder.t.shape == (20_000,), f"eps_model got t of dtype {recorder.t.dtype} and shape {tuple(recorder.t.shape)}",
      hint="one integer time step per example: torch.randint(0, T, (B,))")  # fmt: skip
check(int(recorder.t.min()) == 0 and int(recorder.t.max()) == 9, f"t ranged over [{int(recorder.t.min())}, {int(recorder.t.max())}], expected [0, 9]",
      hint="indices run over 0..T-1: torch.randint(0, T, ...) (the upper bound is exclusive)")  # fmt: skip
counts = torch.bincount(recorder.t, minlength=10).float() / 20_000
check_close(
    counts,
    torch.full((10,), 0.1),
    "frequency of each t",
    atol=0.015,
    hint="t is uniform over 0..T-1",
)
check_close(
    loss,
    1.0,
    "ddpm_loss with a zero predictor (E[eps^2] = 1)",
    atol=0.03,
    hint="the mean squared error between the *noise* and the prediction",
)
x_t_var = recorder.x_t.var(0).mean()
check_close(x_t_var, (1 - alpha_bar).mean(), "variance of x_t for x0 = 0", atol=0.03,
            hint="x_t = q_sample(x0, t, noise, alpha_bar) with the same noise the loss compares against")  # fmt: skip


class Perfect(nn.Module):
    """The exact noise predictor when all data is the single point x0 = 0.5."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = alpha_bar[t].view(-1, 1)
        return (x_t - ab.sqrt() * 0.5) / (1 - ab).sqrt()


check_close(ddpm_loss(Perfect(), torch.full((500, 2), 0.5), alpha_bar), 0.0, "ddpm_loss with the perfect predictor", atol=1e-8,
            hint="compare eps_model(x_t, t) with the noise used to build x_t")  # fmt: skip

# %% [markdown]
# ## 7. One DDPM sampling step (2 points)
#
# Algorithm 2 with $\sigma_t^2 = \beta_t$:
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big) + \sigma_t z,$$
#
# with $z$ the given `noise`, **except at the last step** (index $t = 0$), which adds no
# noise. `t` is a Python int; call `eps_model` with a `LongTensor` of `t`'s, one per example,
# on `x_t`'s device.


# %%
def p_sample_step(
    eps_model: EpsModel, x_t: torch.Tensor, t: int, betas: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """One step of DDPM's Algorithm 2 from index t to t - 1, with sigma_t^2 = beta_t:
    x_{t-1} = (x_t - beta_t / sqrt(1 - ab_t) eps) / sqrt(alpha_t) + sigma_t z for x_t and
    the given z = noise [B, ...], no noise at t = 0; one evaluation of eps_model."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST p_sample_step (2 points)
class Constant(nn.Module):
    """Predicts eps = 0.5 everywhere and records t."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.t = t
        return torch.full_like(x_t, 0.5)


betas = torch.tensor([0.1, 0.2, 0.3])
ab = torch.cumprod(1 - betas, 0)
x_t, noise = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.3, -0.7]])
model = Constant()


def expected_step(t: int, with_noise: bool) -> torch.Tensor:
    mean = (x_t - betas[t] / (1 - ab[t]).sqrt() * 0.5) / (1 - betas[t]).sqrt()
    return mean + betas[t].sqrt() * noise if with_noise else mean


check_close(
    p_sample_step(model, x_t, 2, betas, noise), expected_step(2, True), "p_sample_step at t = 2", atol=1e-5,
    hint="(x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) + sqrt(beta_t) z",
    mistakes={
        "sigma_t = sqrt(beta_t): the noise is scaled by the standard deviation, not beta_t": expected_step(2, False) + betas[2] * noise,
        "alpha_bar, not alpha: the eps coefficient is beta_t / sqrt(1 - alpha_bar_t)": (x_t - betas[2].sqrt() * 0.5) / (1 - betas[2]).sqrt() + betas[2].sqrt() * noise,
    },
)  # fmt: skip
check(
    list(model.t.shape) == [1] and int(model.t[0]) == 2,
    f"eps_model was called with t = {model.t.tolist()}",
    hint="pass a LongTensor of t, one per example",
)
check_close(
    p_sample_step(model, x_t, 0, betas, noise), expected_step(0, False), "p_sample_step at the last step (t = 0)", atol=1e-5,
    hint="no noise at the last step (index t = 0): return the mean",
    mistakes={"no noise is added at the last step (index t = 0)": expected_step(0, True)},
)  # fmt: skip

# %% [markdown]
# ## 8. One DDIM step (2 points)
#
# Song et al. (2021) skip steps. From index `t` to `t_prev` (with $\bar\alpha = 1$ when
# `t_prev = -1`): predict $\hat x_0$ from $\epsilon_\theta(x_t, t)$, then
#
# $$x_{t_\text{prev}} = \sqrt{\bar\alpha_{t_\text{prev}}}\,\hat x_0 + \sqrt{1 - \bar\alpha_{t_\text{prev}} - \sigma^2}\,\epsilon_\theta + \sigma z, \qquad \sigma = \eta\sqrt{\frac{1 - \bar\alpha_{t_\text{prev}}}{1 - \bar\alpha_t}}\sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_{t_\text{prev}}}}.$$
#
# At $\eta = 0$ it is deterministic. Use **$\bar\alpha_{t_\text{prev}}$** for the new
# point, not $\bar\alpha_t$; when $\sigma > 0$ and `noise` is `None`, draw $z$ with
# `torch.randn_like`.


# %%
def ddim_step(
    eps_model: EpsModel, x_t: torch.Tensor, t: int, t_prev: int, alpha_bar: torch.Tensor,
    eta: float = 0.0, noise: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """One DDIM update (Song et al., eq. 12) of x_t [B, ...] from index t to t_prev (-1: the
    data, alpha_bar = 1), one evaluation of eps_model:

        x_prev = sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev - sigma^2) eps + sigma z,
        sigma  = eta sqrt((1 - ab_prev) / (1 - ab_t)) sqrt(1 - ab_t / ab_prev),

    z the given noise, drawn when None and sigma > 0."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST ddim_step (2 points)
alpha_bar = torch.tensor([0.9, 0.64, 0.25, 0.04])
x_t, noise = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.3, -0.7]])
x0_hat = (x_t - (1 - 0.25) ** 0.5 * 0.5) / 0.25**0.5
deterministic = 0.9**0.5 * x0_hat + (1 - 0.9) ** 0.5 * 0.5
check_close(
    ddim_step(Constant(), x_t, 2, 0, alpha_bar), deterministic, "ddim_step from t = 2 to t_prev = 0, eta = 0", atol=1e-5,
    hint="sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps at eta = 0",
    mistakes={"the new point uses alpha_bar[t_prev], not alpha_bar[t]": 0.25**0.5 * x0_hat + (1 - 0.25) ** 0.5 * 0.5},
)  # fmt: skip
check_close(ddim_step(Constant(), x_t, 0, -1, alpha_bar), (x_t - 0.1**0.5 * 0.5) / 0.9**0.5, "ddim_step to t_prev = -1 (the data)", atol=1e-5,
            hint="at t_prev = -1 use alpha_bar = 1: the step returns x0_hat")  # fmt: skip
sigma = 1.0 * ((1 - 0.9) / (1 - 0.25)) ** 0.5 * (1 - 0.25 / 0.9) ** 0.5
stochastic = 0.9**0.5 * x0_hat + (1 - 0.9 - sigma**2) ** 0.5 * 0.5 + sigma * noise
check_close(ddim_step(Constant(), x_t, 2, 0, alpha_bar, eta=1.0, noise=noise), stochastic, "ddim_step with eta = 1", atol=1e-5,
            hint="sigma = eta sqrt((1 - ab_prev)/(1 - ab_t)) sqrt(1 - ab_t/ab_prev), and the eps term shrinks to sqrt(1 - ab_prev - sigma^2)")  # fmt: skip
# With no noise given, the step draws it: standard normal, so the steps spread by sigma.
torch.manual_seed(0)
drawn = ddim_step(Constant(), x_t.expand(20_000, 2), 2, 0, alpha_bar, eta=1.0)
check_close(drawn.mean(0), stochastic[0] - sigma * noise[0], "mean of 20000 ddim_steps with eta = 1 and no noise given", atol=0.02,
            hint="with noise=None draw it from N(0, I): torch.randn_like(x_t)")  # fmt: skip
check_close(drawn.std(0), torch.full((2,), sigma), "std of 20000 ddim_steps with eta = 1 and no noise given", atol=0.02,
            hint="with noise=None draw it from N(0, I): torch.randn_like(x_t), times sigma")  # fmt: skip

# %% [markdown]
# ## 9. Your diffusion model on the swiss roll (2 points)
#
# A small MLP $\epsilon_\theta(x_t, t)$ with a sinusoidal time embedding, trained with your
# `ddpm_loss` for 4000 steps on the linear schedule ($T = 1000$), then 2000 samples drawn
# with your `p_sample_step` (about 15 s in all). The test compares them with held-out data
# by the **Chamfer distance** (mean distance from each sample to its nearest data point,
# plus the reverse): below **0.2**. The cell also prints the score of a Gaussian fit and
# of fresh data from the swiss roll, for scale.


# %%
class EpsMlp(nn.Module):
    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 + 32, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 2))  # fmt: skip

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None].float() * torch.exp(-math.log(1000.0) * torch.arange(16) / 16)
        return self.net(torch.cat([x_t, angles.sin(), angles.cos()], dim=1))


def chamfer(a: torch.Tensor, b: torch.Tensor) -> float:
    d = torch.cdist(a, b)
    return (d.min(1).values.mean() + d.min(0).values.mean()).item()


torch.manual_seed(0)
roll_train, roll_test = (
    data.toy_2d("swissroll", 20_000, seed=0),
    data.toy_2d("swissroll", 2000, seed=1),
)
roll_betas = linear_beta_schedule(1000)
roll_alpha_bar = torch.cumprod(1 - roll_betas, 0)
eps_net = EpsMlp()
optimizer = torch.optim.Adam(eps_net.parameters(), lr=2e-3)
fit(
    lambda x: ddpm_loss(eps_net, x, roll_alpha_bar),
    optimizer,
    roll_train,
    batch_size=256,
    steps=4000,
    seed=0,
    progress=False,
)
with torch.no_grad():
    x = torch.randn(2000, 2)
    for step in range(999, -1, -1):
        x = p_sample_step(eps_net, x, step, roll_betas, torch.randn_like(x))
roll_samples = x
gaussian = (
    roll_train.mean(0) + torch.randn(2000, 2) @ torch.linalg.cholesky(torch.cov(roll_train.T)).T
)
print(f"Chamfer distance: samples {chamfer(roll_samples, roll_test):.3f}, a Gaussian fit {chamfer(gaussian, roll_test):.3f}, "
      f"fresh data {chamfer(data.toy_2d('swissroll', 2000, seed=2), roll_test):.3f}")  # fmt: skip


# %% tags=["graded"] points=2
# TEST swissroll_diffusion (2 points)
# The grade samples your trained network with the course's own DDPM sampler (Algorithm 2,
# sigma_t^2 = beta_t, the linear schedule) and measures the samples against held-out points.
def trained_chamfer(state: dict, template: nn.Module = eps_net) -> float:
    net = copy.deepcopy(template)
    net.load_state_dict(state)
    betas_ref = torch.linspace(1e-4, 0.02, 1000)
    alpha_bar_ref = torch.cumprod(1 - betas_ref, 0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 2, generator=g)
    with torch.no_grad():
        for t in range(999, -1, -1):
            eps = net(x, torch.full((len(x),), t))
            x = (x - betas_ref[t] / (1 - alpha_bar_ref[t]).sqrt() * eps) / (1 - betas_ref[t]).sqrt()
            if t > 0:
                x = x + betas_ref[t].sqrt() * torch.randn(x.shape, generator=g)
    return chamfer(x, roll_test) if torch.isfinite(x).all() else math.inf


check_score(
    eps_net.state_dict(), trained_chamfer,
    "diffusion on the swiss roll: Chamfer distance of 2000 samples", at_most=0.2,
    hint="check q_sample and ddpm_loss (the model must learn the noise); then run the training "
    "cell again",
)  # fmt: skip
