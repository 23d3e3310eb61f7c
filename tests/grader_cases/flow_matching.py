"""Exercise set 05's grader cases (played by tests/test_grader.py): the mistakes the
issue names, each of which must lose its question's points with a hint that names it, and
alternative correct implementations that must pass. moons_flow trains with the student's
flow_matching_loss and samples with the course's own Heun sampler, so a loss mistake may
or may not leave a usable model (a swapped target trains the reverse flow, which fails);
a sampler mistake costs only the sampler's points."""

from __future__ import annotations

SOLUTION = "solutions/05_flow_matching.py"
NAME = "05_flow_matching"
POINTS = {
    "dsm_loss": 2, "score_from_eps": 1, "langevin_step": 1, "interpolant": 1,
    "target_velocity": 1, "flow_matching_loss": 2, "euler_sample": 2, "heun_sample": 2,
    "divergence_hutchinson": 2, "dpm_solver_2m_step": 2, "moons_flow": 2,
}  # fmt: skip
DEPENDS: dict[str, list[str]] = {}
MAY_AFFECT = {"flow_matching_loss": ["moons_flow"]}

FM_LOSS = """
    t = {t}
    x0 = torch.randn_like(x1)
    t_ = t.view(-1, *[1] * (x1.dim() - 1))
    x_t = {x_t}
    return {loss}
"""


def fm_loss(
    t="torch.rand(x1.shape[0])",
    x_t="(1 - t_) * x0 + t_ * x1",
    target="x1 - x0",
    loss="((v_model(x_t, t) - ({target})) ** 2).mean()",
):
    return FM_LOSS.format(t=t, x_t=x_t, loss=loss.format(target=target))


EULER = """
    x, dt = x0, 1.0 / steps
    for i in range(steps):
        t = torch.full((x.shape[0],), {t})
        x = x {op} {dt}v_model(x, t)
    return x
"""

HEUN = """
    x, dt = x0, 1.0 / steps
    for i in range(steps):
        t = torch.full((x.shape[0],), i * dt)
        d = v_model(x, t)
        x_pred = x + dt * d
        x = x + {update}
    return x
"""

HUTCHINSON = """
    import contextlib

    with {grad_mode}:
        x = {x}
        v = v_model(x, t)
        probe_ = {probe}
        (vjp,) = torch.autograd.grad(v, x, probe_)
    div = {div}
    return {v}, div.detach()
"""


def hutchinson(**parts):
    base = {"grad_mode": "torch.enable_grad()", "x": "x.detach().requires_grad_(True)",
            "probe": "probe", "div": "(vjp * probe_).flatten(1).sum(1)", "v": "v.detach()"}  # fmt: skip
    return HUTCHINSON.format(**{**base, **parts})


DPM = """
    lam, lam_next = {lam}, {lam_next}
    h = lam_next - lam
    D = x1_hat
    if x1_hat_prev is not None:
        r = {r}
        D = {D2}
    return {out}
"""


def dpm(**parts):
    base = {"lam": "math.log(t / (1 - t))", "lam_next": "math.log(t_next / (1 - t_next))",
            "r": "(lam - math.log(t_prev / (1 - t_prev))) / h",
            "D2": "(1 + 1 / (2 * r)) * x1_hat - 1 / (2 * r) * x1_hat_prev",
            "out": "(1 - t_next) / (1 - t) * x - t_next * {factor} * D",
            "factor": "math.expm1(-h)"}  # fmt: skip
    merged = {**base, **parts}
    merged["out"] = merged["out"].format(factor=merged["factor"])
    return DPM.format(**merged)


WRONG = {
    "dsm_loss": [
        ("target without 1/sigma^2", """
            x_noisy = x + sigma * torch.randn_like(x)
            target = -(x_noisy - x)
            return 0.5 * sigma**2 * (score_model(x_noisy) - target).flatten(1).square().sum(1).mean()""",
         "divided by sigma^2"),
        ("target with the wrong sign", """
            x_noisy = x + sigma * torch.randn_like(x)
            target = (x_noisy - x) / sigma**2
            return 0.5 * sigma**2 * (score_model(x_noisy) - target).flatten(1).square().sum(1).mean()""",
         "the target's sign"),
        ("squared error summed over the last dimension only", """
            x_noisy = x + sigma * torch.randn_like(x)
            target = -(x_noisy - x) / sigma**2
            return 0.5 * sigma**2 * (score_model(x_noisy) - target).square().sum(-1).mean()""",
         "not only the last one"),
        ("mean over dimensions instead of the squared norm", """
            x_noisy = x + sigma * torch.randn_like(x)
            target = -(x_noisy - x) / sigma**2
            return 0.5 * sigma**2 * (score_model(x_noisy) - target).square().mean()""",
         "sum the squared error over the non-batch dimensions"),
    ],
    "score_from_eps": [
        ("missing the square root", """
            ab = torch.as_tensor(alpha_bar_t).view(-1, *[1] * (eps.dim() - 1)) if torch.as_tensor(alpha_bar_t).dim() else alpha_bar_t
            return -eps / (1 - ab)""", "take the square root"),
        ("alpha_bar instead of 1 - alpha_bar", """
            ab = torch.as_tensor(alpha_bar_t).view(-1, *[1] * (eps.dim() - 1)) if torch.as_tensor(alpha_bar_t).dim() else torch.as_tensor(alpha_bar_t)
            return -eps / ab.sqrt()""", "1 - alpha_bar_t, not alpha_bar_t"),
    ],
    "langevin_step": [
        ("noise sqrt(h) instead of sqrt(2h)", "return x + step_size * score(x) + math.sqrt(step_size) * noise",
         "not sqrt(h) z"),
    ],
    "interpolant": [
        ("x0 and x1 swapped", """
            t = t.view(-1, *[1] * (x0.dim() - 1))
            return t * x0 + (1 - t) * x1""", "not t x0 + (1 - t) x1"),
        ("t not broadcast per example", "return (1 - t) * x0 + t * x1", "one time per example"),
    ],
    "target_velocity": [
        ("the velocity's sign", "return x0 - x1", "the sign"),
    ],
    "flow_matching_loss": [
        ("one t for the whole batch", fm_loss(t="torch.rand(1).expand(x1.shape[0])"),
         "not one t for the whole batch"),
        ("the velocity's sign", fm_loss(target="x0 - x1"), "the target's sign"),
        ("x0 and x1 swapped in the interpolant", fm_loss(x_t="t_ * x0 + (1 - t_) * x1"),
         "x0 and x1 swapped"),
        ("the absolute error (L1)", fm_loss(loss="(v_model(x_t, t) - (x1 - x0)).abs().mean()"),
         "not the mean absolute error"),
        ("the error not squared", fm_loss(loss="(v_model(x_t, t) - (x1 - x0)).mean()"),
         "square the error"),
        ("summed instead of averaged", fm_loss(loss="((v_model(x_t, t) - (x1 - x0)) ** 2).sum()"),
         "not the sum"),
    ],
    "euler_sample": [
        ("integrates backwards from t = 1", EULER.format(t="1 - i * dt", op="-", dt="dt * "),
         "integrate forwards, from t = 0"),
        ("ignores dt", EULER.format(t="i * dt", op="+", dt=""), "multiply the velocity by dt"),
        ("times 1 - i dt", EULER.format(t="1 - i * dt", op="+", dt="dt * "),
         "the times are 0, dt, ..., 1 - dt"),
    ],
    "heun_sample": [
        ("corrector with the end slope only", HEUN.format(update="dt * v_model(x_pred, t + dt)"),
         "not the end slope alone"),
        ("corrector's slope at the old time", HEUN.format(update="dt / 2 * (d + v_model(x_pred, t))"),
         "at the new time t + dt"),
    ],
    "divergence_hutchinson": [
        ("the probe on one side only", hutchinson(div="vjp.flatten(1).sum(1)"), "multiply the vector-Jacobian product by the probe again"),
        ("no enable_grad (fails under no_grad)", hutchinson(grad_mode="contextlib.nullcontext()"), "inside torch.enable_grad()"),
        ("the caller's x made to require grad", hutchinson(x="x.requires_grad_(True)"), "leave the caller's x as it was"),
        ("v not detached", hutchinson(v="v"), "return detached tensors"),
        ("a fresh Rademacher probe instead of the one given", hutchinson(
            probe="torch.randint(0, 2, x.shape).to(x) * 2 - 1"), "times the probe"),
    ],
    "dpm_solver_2m_step": [
        ("r inverted", dpm(r="h / (lam - math.log(t_prev / (1 - t_prev)))"), "not h / h_prev"),
        ("the previous prediction ignored", dpm(D2="x1_hat"), "use the previous prediction"),
        ("h negative, e^h", dpm(factor="math.expm1(h)"), "the factor is e^{-h} - 1"),
        ("alpha and sigma swapped", dpm(lam="math.log((1 - t) / t)", lam_next="math.log((1 - t_next) / t_next)",
                                         out="t_next / t * x - (1 - t_next) * {factor} * D"),
         "alpha_t = t and sigma_t = 1 - t"),
        ("intervals in t", dpm(r="(t - t_prev) / (t_next - t)"), "not in t"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "divergence_hutchinson": """
        with torch.enable_grad():
            y = x.clone().detach().requires_grad_()
            out = v_model(y, t)
            (row,) = torch.autograd.grad((out * probe).sum(), y)
        return out.detach(), (row * probe).reshape(len(y), -1).sum(-1).detach()""",
    "dpm_solver_2m_step": """
        def snr_log(s):
            return math.log(s) - math.log1p(-s)

        h = snr_log(t_next) - snr_log(t)
        if x1_hat_prev is None:
            D = x1_hat
        else:
            c = h / (2 * (snr_log(t) - snr_log(t_prev)))
            D = x1_hat + c * (x1_hat - x1_hat_prev)
        return (1 - t_next) / (1 - t) * x + t_next * (1 - math.exp(-h)) * D""",
    "dsm_loss": """
        eps = torch.randn_like(x)
        residual = score_model(x + sigma * eps) + eps / sigma
        return 0.5 * sigma**2 * torch.sum(residual.reshape(len(x), -1) ** 2, dim=-1).mean()""",
    "score_from_eps": """
        if isinstance(alpha_bar_t, torch.Tensor) and alpha_bar_t.dim() == 1:
            alpha_bar_t = alpha_bar_t.reshape(len(alpha_bar_t), *([1] * (eps.dim() - 1)))
        return -eps * torch.rsqrt(1 - torch.as_tensor(alpha_bar_t))""",
    "langevin_step": "return x + step_size * score(x) + (2 * step_size) ** 0.5 * noise",
    "interpolant": "return torch.lerp(x0, x1, t.reshape(-1, *([1] * (x0.dim() - 1))))",
    "target_velocity": "return -(x0 - x1)",
    "flow_matching_loss": """
        t = torch.rand(len(x1), device=x1.device)
        noise = torch.randn_like(x1)
        x_t = torch.lerp(noise, x1, t.reshape(-1, *([1] * (x1.dim() - 1))))
        return torch.nn.functional.mse_loss(v_model(x_t, t), x1 - noise)""",
    "euler_sample": """
        times = torch.linspace(0, 1, steps + 1)
        x = x0
        for t0, t1 in zip(times[:-1], times[1:]):
            x = x + (t1 - t0) * v_model(x, t0.expand(len(x)))
        return x""",
    "heun_sample": """
        times = torch.linspace(0, 1, steps + 1)
        x = x0
        for t0, t1 in zip(times[:-1], times[1:]):
            h = t1 - t0
            k1 = v_model(x, t0.repeat(len(x)))
            k2 = v_model(x + h * k1, t1.repeat(len(x)))
            x = x + h * (k1 + k2) / 2
        return x""",
}
