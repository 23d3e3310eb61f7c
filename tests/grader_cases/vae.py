"""Exercise set 01's grader cases (played by tests/test_grader.py): the mistakes the
issue names, each of which must lose its question's points with a hint that names it, and
alternative correct implementations (torch.distributions) that must pass.
train_vae trains with the student's elbo, so it builds on elbo."""

from __future__ import annotations

SOLUTION = "solutions/01_vae.py"
NAME = "01_vae"
POINTS = {
    "reparameterize": 2, "gaussian_kl": 2, "bernoulli_log_likelihood": 2,
    "gaussian_log_likelihood": 2, "elbo": 2, "iwae_bound": 2, "slerp": 1, "train_vae": 2,
}  # fmt: skip
DEPENDS = {"elbo": ["train_vae"]}

WRONG = {
    "reparameterize": [
        ("detached sample", "return (mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).detach()", "cut the gradient"),
        ("variance used as std", "return mu + torch.exp(logvar) * torch.randn_like(mu)", "not exp(logvar)"),
        ("sampling without the trick", "return torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).sample()", "cut the gradient"),
        ("log-variance used as std", "return mu + logvar * torch.randn_like(mu)", "not logvar itself"),
    ],
    "gaussian_kl": [
        ("sign flipped", "return -0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)", "sign is flipped"),
        ("missing 1/2", "return (mu**2 + logvar.exp() - 1 - logvar).sum(-1)", "factor 1/2 is missing"),
        ("averaged over latent dims", "return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).mean(-1)", "do not average"),
        ("log-variance used as std", "return 0.5 * (mu**2 + logvar**2 - 1 - torch.log(logvar**2)).sum(-1)", "logvar is log(sigma^2)"),
    ],
    "bernoulli_log_likelihood": [
        ("overflows for large logits", """
            p = torch.sigmoid(logits)
            return (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)""", "compute from logits"),
        ("returns the loss", "return F.binary_cross_entropy_with_logits(logits, x, reduction='none').flatten(1).sum(1)", "not the cross-entropy loss"),
        ("averaged over pixels", "return -F.binary_cross_entropy_with_logits(logits, x, reduction='none').flatten(1).mean(1)", "do not average"),
    ],
    "gaussian_log_likelihood": [
        ("missing constant", "return (-((x - x_hat) ** 2) / (2 * sigma**2)).flatten(1).sum(1)", "normalizing constant"),
        ("sigma used as variance", """
            sigma = torch.as_tensor(sigma)
            return (-((x - x_hat) ** 2) / (2 * sigma) - 0.5 * torch.log(2 * math.pi * sigma)).flatten(1).sum(1)""",
         "sigma is a standard deviation"),
        ("averaged over dimensions", """
            sigma = torch.as_tensor(sigma)
            return (-((x - x_hat) ** 2) / (2 * sigma**2) - 0.5 * torch.log(2 * math.pi * sigma**2)).flatten(1).mean(1)""",
         "do not average"),
    ],
    "elbo": [
        ("adds the KL", """
            mu, logvar = encoder(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            log_px = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").sum(1)
            return log_px + beta * 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)""", "subtract the KL term"),
        ("detached sample", """
            mu, logvar = encoder(x)
            z = (mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)).detach()
            log_px = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").sum(1)
            return log_px - beta * 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)""", "must be reparameterized"),
        ("averaged over pixels", """
            mu, logvar = encoder(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            log_px = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").mean(1)
            return log_px - beta * 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)""", "do not average"),
    ],
    "iwae_bound": [
        ("missing -log k", """
            mu, logvar = encoder(x)
            q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
            z = q.rsample((k,))
            log_px = -F.binary_cross_entropy_with_logits(decoder(z), x.expand(k, *x.shape), reduction="none").sum(-1)
            log_w = log_px + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
            return torch.logsumexp(log_w, dim=0)""", "subtract log k"),
        ("log of a mean of exps", """
            mu, logvar = encoder(x)
            q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
            z = q.rsample((k,))
            log_px = -F.binary_cross_entropy_with_logits(decoder(z), x.expand(k, *x.shape), reduction="none").sum(-1)
            log_w = log_px + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
            return torch.log(torch.exp(log_w).mean(0))""", "use torch.logsumexp"),
    ],
    "slerp": [
        ("linear interpolation", "return (1 - t) * z0 + t * z1", "that is linear interpolation"),
        ("no fallback for parallel vectors", """
            omega = torch.arccos((torch.dot(z0, z1) / (z0.norm() * z1.norm())).clamp(-1, 1))
            return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)""",
         "fall back to linear"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "reparameterize": "return torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).rsample()",
    "gaussian_kl": """
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        return torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)""",
    "bernoulli_log_likelihood": "return torch.distributions.Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)",
    "gaussian_log_likelihood": "return torch.distributions.Normal(x_hat, sigma).log_prob(x).flatten(1).sum(1)",
    "elbo": """
        mu, logvar = encoder(x)
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
        z = q.rsample()
        log_px = torch.distributions.Bernoulli(logits=decoder(z)).log_prob(x).sum(-1)
        return log_px - beta * torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)""",
    "iwae_bound": """
        mu, logvar = encoder(x)
        q = torch.distributions.Independent(torch.distributions.Normal(mu, torch.exp(0.5 * logvar)), 1)
        prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros_like(mu), 1.0), 1)
        log_ws = []
        for _ in range(k):
            z = q.rsample()
            log_px = torch.distributions.Bernoulli(logits=decoder(z)).log_prob(x).sum(-1)
            log_ws.append(log_px + prior.log_prob(z) - q.log_prob(z))
        return torch.logsumexp(torch.stack(log_ws), dim=0) - torch.log(torch.tensor(float(k)))""",
    "slerp": """
        a, b = z0 / z0.norm(), z1 / z1.norm()
        omega = torch.acos(torch.clamp((a * b).sum(), -1.0, 1.0))
        if float(torch.sin(omega)) < 1e-6:
            return torch.lerp(z0, z1, t)
        return (torch.sin((1 - t) * omega) / torch.sin(omega)) * z0 + (torch.sin(t * omega) / torch.sin(omega)) * z1""",
}
MAY_AFFECT: dict[str, list[str]] = {}
