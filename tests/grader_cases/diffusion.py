"""Exercise set 04's grader cases (played by tests/test_grader.py): the mistakes the
issue names, each of which must lose its question's points with a hint that names it, and
alternative correct implementations that must pass. swissroll_diffusion trains and
samples with the student's ddpm_loss and p_sample_step; a mistake there may or may not
still give a good model (noise at t = 0 matters little), so it may pass. The solution's
ddpm_loss forms x_t itself, so a q_sample mistake costs only q_sample's points."""

from __future__ import annotations

SOLUTION = "solutions/04_diffusion.py"
NAME = "04_diffusion"
POINTS = {
    "linear_beta_schedule": 1, "cosine_alpha_bar": 2, "q_sample": 2,
    "posterior_mean_variance": 3, "predict_x0": 1, "ddpm_loss": 2, "p_sample_step": 2,
    "ddim_step": 2, "swissroll_diffusion": 2,
}  # fmt: skip
DEPENDS: dict[str, list[str]] = {}
MAY_AFFECT = {q: ["swissroll_diffusion"] for q in ("ddpm_loss", "p_sample_step")}

POSTERIOR = """
    alphas = 1 - betas
    alpha_bar = torch.cumprod(alphas, dim=0)
    alpha_bar_prev = {prev}
    shape = (-1,) + (1,) * (x_t.dim() - 1)
    beta, alpha = betas[t].view(shape), alphas[t].view(shape)
    ab, ab_prev = {ab}[t].view(shape), alpha_bar_prev[t].view(shape)
    mean = ab_prev.sqrt() * beta / (1 - ab) * x0 + alpha.sqrt() * (1 - ab_prev) / (1 - ab) * x_t
    return mean, {var}
"""


def posterior(prev="torch.cat([torch.ones(1), alpha_bar[:-1]])", ab="alpha_bar",
              var="(1 - ab_prev) / (1 - ab) * beta"):  # fmt: skip
    return POSTERIOR.format(prev=prev, ab=ab, var=var)


WRONG = {
    "cosine_alpha_bar": [
        ("no clipping", """
            steps = torch.arange(T + 1, dtype=torch.float64) / T
            f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
            return (f[1:] / f[0]).float()""", "clip the betas at 0.999"),
    ],
    "q_sample": [
        ("missing square roots", """
            ab = alpha_bar[t].view(-1, *[1] * (x0.dim() - 1))
            return ab * x0 + (1 - ab) * noise""", "take the square roots"),
        ("t off by one", """
            ab = alpha_bar[t - 1].view(-1, *[1] * (x0.dim() - 1))
            return ab.sqrt() * x0 + (1 - ab).sqrt() * noise""", "off by one"),
    ],
    "posterior_mean_variance": [
        ("variance beta_t", posterior(var="beta"), "that is beta_t"),
        ("alpha instead of alpha_bar", posterior(ab="alphas"), "alpha_bar, not alpha"),
        ("t off by one", posterior(prev="alpha_bar"), "ab_prev"),
    ],
    "p_sample_step": [
        ("noise added at the last step", """
            alpha_bar = torch.cumprod(1 - betas, dim=0)
            eps = eps_model(x_t, torch.full((x_t.shape[0],), t, dtype=torch.long))
            mean = (x_t - betas[t] / (1 - alpha_bar[t]).sqrt() * eps) / (1 - betas[t]).sqrt()
            return mean + betas[t].sqrt() * noise""", "no noise is added at the last step"),
        ("alpha instead of alpha_bar", """
            eps = eps_model(x_t, torch.full((x_t.shape[0],), t, dtype=torch.long))
            mean = (x_t - betas[t] / betas[t].sqrt() * eps) / (1 - betas[t]).sqrt()
            return mean + betas[t].sqrt() * noise if t > 0 else mean""", "alpha_bar, not alpha"),
    ],
    "ddim_step": [
        ("reuses alpha_bar[t] for the previous step", """
            eps = eps_model(x_t, torch.full((x_t.shape[0],), t, dtype=torch.long))
            ab = alpha_bar[t]
            x0_hat = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
            return ab.sqrt() * x0_hat + (1 - ab).sqrt() * eps""", "uses alpha_bar[t_prev]"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "linear_beta_schedule": "return (beta_start + (beta_end - beta_start) * torch.arange(T) / (T - 1)).float()",
    "cosine_alpha_bar": """
        t = torch.linspace(0, T, T + 1, dtype=torch.float64)
        f = torch.cos((t / T + s) / (1 + s) * torch.pi / 2).pow(2)
        alpha_bar = f / f[0]
        betas = torch.clip(1 - alpha_bar[1:] / alpha_bar[:-1], 0, 0.999)
        return torch.cumprod(1 - betas, 0).to(torch.float32)""",
    "q_sample": """
        ab = alpha_bar.gather(0, t).reshape(len(t), *([1] * (x0.dim() - 1)))
        return torch.sqrt(ab) * x0 + torch.sqrt(1 - ab) * noise""",
    "posterior_mean_variance": """
        alpha_bar = torch.cumprod(1 - betas, 0)
        ab_prev = torch.where(t > 0, alpha_bar[(t - 1).clamp(min=0)], torch.ones_like(alpha_bar[t]))
        r = lambda v: v.reshape(-1, *[1] * (x_t.dim() - 1))
        ab, ab_prev, beta = r(alpha_bar[t]), r(ab_prev), r(betas[t])
        mean = (torch.sqrt(ab_prev) * beta * x0 + torch.sqrt(1 - beta) * (1 - ab_prev) * x_t) / (1 - ab)
        return mean, beta * (1 - ab_prev) / (1 - ab)""",
    "predict_x0": """
        ab = alpha_bar[t].reshape(-1, *[1] * (x_t.dim() - 1))
        return x_t / ab.sqrt() - (1 / ab - 1).sqrt() * eps""",
    "ddpm_loss": """
        t = torch.randint(len(alpha_bar), (len(x0),))
        eps = torch.randn_like(x0)
        ab = alpha_bar[t].unsqueeze(-1)
        return torch.nn.functional.mse_loss(eps_model(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t), eps)""",
    "p_sample_step": """
        alpha_bar = torch.cumprod(1 - betas, 0)
        eps = eps_model(x_t, torch.full((len(x_t),), t))
        sigma = betas[t].sqrt() if t > 0 else 0.0
        return (x_t - betas[t] / torch.sqrt(1 - alpha_bar[t]) * eps) / torch.sqrt(1 - betas[t]) + sigma * noise""",
    "ddim_step": """
        eps = eps_model(x_t, torch.full((len(x_t),), t))
        a_t = alpha_bar[t]
        a_prev = alpha_bar[t_prev] if t_prev >= 0 else torch.ones(())
        x0 = (x_t - torch.sqrt(1 - a_t) * eps) / torch.sqrt(a_t)
        sigma = eta * torch.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        z = torch.randn_like(x_t) if noise is None else noise
        return torch.sqrt(a_prev) * x0 + torch.sqrt(1 - a_prev - sigma**2) * eps + sigma * z""",
}
