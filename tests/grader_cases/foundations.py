"""Exercise set 00's grader cases (played by tests/test_grader.py): known mistakes, each of
which must lose exactly its question's points with a hint that names the mistake, and
alternative correct implementations that must pass."""

from __future__ import annotations

SOLUTION = "solutions/00_foundations.py"
NAME = "00_foundations"
POINTS = {"kl_divergence": 2, "gaussian_kl": 2, "monte_carlo_kl": 2, "js_divergence": 2}

# question -> [(mistake, replacement body, words the hint must contain)]
WRONG = {
    "kl_divergence": [
        ("sign flipped", "return (torch.special.xlogy(p, q) - torch.special.xlogy(p, p)).sum(-1)",
         "sign is flipped"),
        ("log base 2", "return ((torch.special.xlogy(p, p) - torch.special.xlogy(p, q)) / math.log(2)).sum(-1)",
         "natural log"),
        ("0 log 0 gives NaN", "return (p * (p / q).log()).sum(-1)", "0 log 0 = 0"),
        ("arguments swapped", "return (torch.special.xlogy(q, q) - torch.special.xlogy(q, p)).sum(-1)",
         "arguments are swapped"),
        ("sums the batch too", "return (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum()",
         "last dimension only"),
    ],
    "gaussian_kl": [
        ("missing 1/2 on the quadratic term",
         "return torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / sigma_q**2 - 0.5",
         "factor 1/2 is missing"),
        ("missing -1/2",
         "return torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2)",
         "constant -1/2 is missing"),
        ("variances in the log",
         "return torch.log(sigma_q**2 / sigma_p**2) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5",
         "not variances"),
        ("log ratio upside down",
         "return torch.log(sigma_p / sigma_q) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5",
         "not log(sigma_p / sigma_q)"),
    ],
    "monte_carlo_kl": [
        ("samples from q", """
            x = mu_q + sigma_q * torch.randn(n, generator=generator)
            p, q = torch.distributions.Normal(mu_p, sigma_p), torch.distributions.Normal(mu_q, sigma_q)
            return (p.log_prob(x) - q.log_prob(x)).mean()""", "sample x from p"),
        ("closed form, no sampling", """
            kl = math.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5
            return torch.tensor(kl)""", "not the closed form"),
        ("ignores the generator", """
            x = mu_p + sigma_p * torch.randn(n)
            p, q = torch.distributions.Normal(mu_p, sigma_p), torch.distributions.Normal(mu_q, sigma_q)
            return (p.log_prob(x) - q.log_prob(x)).mean()""", "generator you are given"),
    ],
    "js_divergence": [
        ("NaN for zeros", """
            m = 0.5 * (p + q)
            return 0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)""",
         "not NaN"),
        ("missing 1/2", """
            m = 0.5 * (p + q)
            kl_pm = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(-1)
            kl_qm = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1)
            return kl_pm + kl_qm""", "weighted by 1/2"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "kl_divergence": """
        Categorical = torch.distributions.Categorical
        return torch.distributions.kl_divergence(Categorical(probs=p), Categorical(probs=q))""",
    "gaussian_kl": """
        Normal = torch.distributions.Normal
        return torch.distributions.kl_divergence(Normal(mu_p, sigma_p), Normal(mu_q, sigma_q))""",
    "monte_carlo_kl": """
        x = torch.randn(n, generator=generator) * sigma_p + mu_p
        log_ratio = math.log(sigma_q / sigma_p) - 0.5 * ((x - mu_p) / sigma_p) ** 2 + 0.5 * ((x - mu_q) / sigma_q) ** 2
        return log_ratio.mean()""",
    "js_divergence": """
        m = (p + q) / 2
        terms = torch.where(p > 0, p * (p / m).log(), 0.0) + torch.where(q > 0, q * (q / m).log(), 0.0)
        return terms.sum(-1) / 2""",
}

DEPENDS: dict[str, list[str]] = {}
MAY_AFFECT: dict[str, list[str]] = {}
