"""Exercise set 02's grader cases (played by tests/test_grader.py): the mistakes the
issue names, each of which must lose its question's points with a hint that names it, and
alternative correct implementations that must pass. wgan_gp_ring trains with the
student's critic_loss, wgan_generator_loss and gradient_penalty, so it builds on them."""

from __future__ import annotations

SOLUTION = "solutions/02_gan.py"
NAME = "02_gan"
POINTS = {
    "discriminator_loss": 2, "generator_loss_minimax": 1, "generator_loss_nonsaturating": 1,
    "optimal_discriminator": 1, "js_divergence": 2, "critic_loss": 1, "wgan_generator_loss": 1,
    "clip_weights_": 1, "gradient_penalty": 3, "power_iteration": 2, "cycle_consistency_loss": 1,
    "r1_penalty": 2, "drs_acceptance": 2, "wgan_gp_ring": 2,
}  # fmt: skip
# A sign error in either WGAN loss makes the ring run diverge: it must fail. (Both signs
# flipped together is the same game with f -> -f, so the rounds never plant both.)
DEPENDS = {"critic_loss": ["wgan_gp_ring"], "wgan_generator_loss": ["wgan_gp_ring"]}
# A wrong penalty may or may not still cover the ring in 1000 steps: either is honest.
MAY_AFFECT = {"gradient_penalty": ["wgan_gp_ring"]}

R1_TEMPLATE = """
    x = {at}.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph={graph})
    grad = grad{after}
    return {factor}grad.flatten(1).{norm}.{mean}
"""


def r1(**parts):
    base = {"at": "real", "graph": "True", "after": "", "factor": "gamma / 2 * ",
            "norm": "square().sum(dim=1)", "mean": "mean()"}  # fmt: skip
    return R1_TEMPLATE.format(**{**base, **parts})


DRS_TEMPLATE = """
    u = logits - max_logit
    f = {f}
    return {out}
"""


def drs(**parts):
    base = {"f": "u - torch.log1p(-torch.exp(u - epsilon)) - gamma", "out": "torch.sigmoid(f)"}
    return DRS_TEMPLATE.format(**{**base, **parts})


WRONG = {
    "discriminator_loss": [
        ("BCE from probabilities", """
            d_real, d_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
            return -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())""", "from the logits"),
        ("sign flipped", "return -(F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())", "sign"),
        ("F.binary_cross_entropy on probabilities (clamps the log at -100)", """
            d_real, d_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
            return F.binary_cross_entropy(d_real, torch.ones_like(d_real)) + F.binary_cross_entropy(d_fake, torch.zeros_like(d_fake))""",
         "clamps log at -100"),
        ("average of the two terms", "return (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()) / 2", "not their average"),
    ],
    "generator_loss_minimax": [
        ("swapped with the non-saturating loss", "return F.softplus(-fake_logits).mean()", "that is the non-saturating loss"),
        ("sign flipped", "return F.softplus(fake_logits).mean()", "sign"),
        ("log(1 - sigmoid) overflows", "return torch.log(1 - torch.sigmoid(fake_logits)).mean()", "not log(1 - sigmoid(l))"),
    ],
    "generator_loss_nonsaturating": [
        ("swapped with the minimax loss", "return -F.softplus(fake_logits).mean()", "that is the minimax"),
        ("sign flipped", "return -F.softplus(-fake_logits).mean()", "sign"),
        ("-log(sigmoid) overflows", "return -torch.log(torch.sigmoid(fake_logits)).mean()", "not -log(sigmoid(l))"),
    ],
    "optimal_discriminator": [
        ("data and model swapped", "return p_model / (p_data + p_model)", "swapped"),
    ],
    "js_divergence": [
        ("NaN at zero probabilities", """
            m = 0.5 * (p + q)
            return 0.5 * (p * torch.log(p / m)).sum() + 0.5 * (q * torch.log(q / m)).sum()""", "0 log 0 counts as 0"),
        ("missing 1/2", """
            m = 0.5 * (p + q)
            return (torch.xlogy(p, p) - torch.xlogy(p, m)).sum() + (torch.xlogy(q, q) - torch.xlogy(q, m)).sum()""",
         "the 1/2 factors"),
        ("log base 2", """
            m = 0.5 * (p + q)
            kl = lambda a: ((torch.xlogy(a, a) - torch.xlogy(a, m)) / math.log(2)).sum()
            return 0.5 * kl(p) + 0.5 * kl(q)""", "natural log"),
    ],
    "critic_loss": [
        ("GAN losses on critic scores", "return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()", "no logs or sigmoids"),
        ("sign flipped", "return real_scores.mean() - fake_scores.mean()", "sign"),
    ],
    "wgan_generator_loss": [
        ("sign flipped", "return fake_scores.mean()", "sign"),
    ],
    "clip_weights_": [
        ("returns clipped copies", "return [p.clamp(-c, c) for p in critic.parameters()]", "returning clipped copies"),
        ("clamps a copy", """
            for p in critic.parameters():
                p = p.clamp(-c, c)""", "a clamped copy changes nothing"),
        ("in-place on a leaf outside no_grad", """
            for p in critic.parameters():
                p.clamp_(-c, c)""", "torch.no_grad()"),
    ],
    "gradient_penalty": [
        ("no create_graph", """
            eps = torch.rand(real.shape[0], *[1] * (real.dim() - 1))
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat)
            return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()""", "create_graph=True"),
        ("eps per feature", """
            eps = torch.rand_like(real)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
            return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()""", "not one per feature"),
        ("eps from a normal", """
            eps = torch.randn(real.shape[0], *[1] * (real.dim() - 1))
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
            return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()""", "not a standard normal"),
        ("penalty at the real points (eps = 1)", """
            x_hat = real.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
            return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()""", "not at the real"),
        ("eps of shape [B, 1] breaks on images", """
            eps = torch.rand(real.shape[0], 1)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
            return (grad.norm(dim=1) - 1).pow(2).mean()""", "[B, 1, 1, 1]"),
        ("norm over dim 1 only", """
            eps = torch.rand(real.shape[0], *[1] * (real.dim() - 1))
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
            return (grad.norm(dim=1) - 1).pow(2).mean()""", "all non-batch dims"),
    ],
    "power_iteration": [
        ("v = W u instead of W^T u", """
            v = weight @ u
            v = v / (v.norm() + 1e-12)
            u_new = weight @ v
            u_new = u_new / (u_new.norm() + 1e-12)
            return u_new @ weight @ v, u_new""", "with the transpose"),
        ("normalized by the Frobenius norm of W", """
            v = weight.T @ u / weight.norm()
            u_new = weight @ v / weight.norm()
            return u_new @ weight @ v, u_new""", "not by the Frobenius norm"),
        ("u not updated", """
            v = weight.T @ u
            v = v / (v.norm() + 1e-12)
            u_new = weight @ v
            u_new = u_new / (u_new.norm() + 1e-12)
            return u_new @ weight @ v, u""", "not the u you were given"),
        ("v not normalized", """
            v = weight.T @ u
            u_new = weight @ v
            u_new = u_new / (u_new.norm() + 1e-12)
            return u_new @ weight @ v, u_new""", "sigma = u_new^T W v"),
        ("sigma is the Frobenius norm", """
            v = weight.T @ u
            v = v / (v.norm() + 1e-12)
            u_new = weight @ v
            return weight.norm(), u_new / (u_new.norm() + 1e-12)""", "not the Frobenius norm"),
    ],
    "cycle_consistency_loss": [
        ("the forward cycle only", "return (F(G(x)) - x).abs().mean()", "both directions"),
        ("the backward cycle only", "return (G(F(y)) - y).abs().mean()", "both directions"),
        ("L2 where the text says L1", "return (F(G(x)) - x).square().mean() + (G(F(y)) - y).square().mean()", "not squared (L2)"),
    ],
    "r1_penalty": [
        ("at the fake batch", r1(at="fake"), "at the real data, not at the fake batch"),
        ("no gamma / 2", r1(factor=""), "multiply by gamma / 2"),
        ("gamma instead of gamma / 2", r1(factor="gamma * "), "not gamma"),
        ("the norm, not squared", r1(norm="norm(dim=1)"), "the squared norm"),
        ("summed over the batch", r1(mean="sum()"), "do not sum"),
        ("no create_graph", r1(graph="False"), "create_graph=True"),
        ("the gradient detached", r1(graph="True", after=".detach()"), "create_graph=True"),
    ],
    "drs_acceptance": [
        ("no log term", drs(f="u - gamma"), "keep the log term"),
        ("the logit F, not sigmoid(F)", drs(out="f"), "not the logit F"),
        ("gamma added", drs(f="u - torch.log1p(-torch.exp(u - epsilon)) + gamma"), "subtract gamma"),
        ("epsilon forgotten", drs(f="u - torch.log1p(-torch.exp(u)) - gamma"), "epsilon goes inside"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "r1_penalty": """
        x = real.clone().detach().requires_grad_()
        g = torch.autograd.grad(critic(x).sum(), x, create_graph=True)[0]
        return gamma * 0.5 * (g * g).reshape(len(x), -1).sum(-1).mean()""",
    "drs_acceptance": """
        u = logits - max_logit
        log_ratio = u - torch.log(-torch.expm1(u - epsilon))
        return 1 / (1 + torch.exp(gamma - log_ratio))""",
    "discriminator_loss": """
        ones, zeros = torch.ones_like(real_logits), torch.zeros_like(fake_logits)
        return F.binary_cross_entropy_with_logits(real_logits, ones) + F.binary_cross_entropy_with_logits(fake_logits, zeros)""",
    "generator_loss_minimax": "return F.logsigmoid(-fake_logits).mean()",
    "generator_loss_nonsaturating": "return -F.logsigmoid(fake_logits).mean()",
    "optimal_discriminator": "return torch.sigmoid(torch.log(p_data) - torch.log(p_model))",
    "js_divergence": """
        m = (p + q) / 2
        def kl(a):
            return torch.where(a > 0, a * torch.log(a / m), torch.zeros_like(a)).sum()
        return (kl(p) + kl(q)) / 2""",
    "critic_loss": "return -(real_scores.mean() - fake_scores.mean())",
    "wgan_generator_loss": "return fake_scores.mean().neg()",
    "clip_weights_": """
        for p in critic.parameters():
            p.data.clamp_(-c, c)""",
    "gradient_penalty": """
        eps = torch.rand(len(real), device=real.device).view(-1, *[1] * (real.dim() - 1))
        x_hat = eps * real + (1 - eps) * fake
        x_hat.requires_grad_()
        out = critic(x_hat)
        grad = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)[0]
        return ((grad.reshape(len(grad), -1).norm(2, dim=1) - 1) ** 2).mean()""",
    "power_iteration": """
        v = F.normalize(weight.T @ u, dim=0, eps=1e-12)
        u_new = F.normalize(weight @ v, dim=0, eps=1e-12)
        return (weight @ v).norm(), u_new""",
    "cycle_consistency_loss": """
        l1 = torch.nn.L1Loss()
        return l1(F(G(x)), x) + l1(G(F(y)), y)""",
}
