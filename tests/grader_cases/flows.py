"""Exercise set 03's grader cases (played by tests/test_grader.py): the mistakes the
issue names, each of which must lose its question's points with a hint that names it, and
alternative correct implementations that must pass. moons_flow trains with the
student's coupling_forward and flow_log_prob, so it builds on them."""

from __future__ import annotations

SOLUTION = "solutions/03_flows.py"
NAME = "03_flows"
POINTS = {
    "coupling_forward": 2, "coupling_inverse": 2, "actnorm_forward": 2, "conv1x1_log_det": 1,
    "flow_log_prob": 2, "bits_per_dim": 1, "moons_flow": 2,
}  # fmt: skip
# moons_flow is graded by the course's likelihood of the networks the student's code
# trained: a training objective off by a constant (the missing base constant) still trains
# a good flow, and may pass; a wrong log-det or transform trains a bad one.
DEPENDS = {"coupling_forward": ["moons_flow"]}
MAY_AFFECT = {"flow_log_prob": ["moons_flow"]}

FORWARD = """
    x_masked = mask * x
    s, t = scale_net({source}), shift_net({source})
    y = x_masked + (1 - mask) * (x * torch.exp({sign}s) + t)
    return y, {log_det}
"""


def forward(source="x_masked", sign="", log_det="((1 - mask) * s).flatten(1).sum(1)"):
    return FORWARD.format(source=source, sign=sign, log_det=log_det)


WRONG = {
    "coupling_forward": [
        ("log_det with the wrong sign", forward(log_det="-((1 - mask) * s).flatten(1).sum(1)"), "sign"),
        ("log_det summed over the masked part too", forward(log_det="s.flatten(1).sum(1)"), "add 0 to log|det J|"),
        ("scale exp(-s) in forward", forward(sign="-"), "not exp(-s)"),
        ("s and t from the unmasked part", forward(source="(1 - mask) * x"), "computed from the masked"),
    ],
    "coupling_inverse": [
        ("divides before subtracting t", """
            s, t = scale_net(mask * y), shift_net(mask * y)
            return mask * y + (1 - mask) * (y * torch.exp(-s) - t)""", "subtract t first"),
        ("multiplies by exp(s)", """
            s, t = scale_net(mask * y), shift_net(mask * y)
            return mask * y + (1 - mask) * (y - t) * torch.exp(s)""", "multiply by exp(-s)"),
    ],
    "actnorm_forward": [
        ("log_det without H*W", """
            shape = (1, -1) + (1,) * (x.dim() - 2)
            y = x * torch.exp(log_scale).view(shape) + bias.view(shape)
            return y, log_scale.sum().expand(x.shape[0])""", "count every spatial position"),
        ("log_scale used as the scale", """
            shape = (1, -1) + (1,) * (x.dim() - 2)
            y = x * log_scale.view(shape) + bias.view(shape)
            return y, x[0, 0].numel() * log_scale.sum().expand(x.shape[0])""", "not log_scale itself"),
    ],
    "conv1x1_log_det": [
        ("missing H*W", "return torch.linalg.slogdet(weight)[1]", "multiply log|det W| by height*width"),
        ("det instead of log|det|", "return height * width * torch.linalg.det(weight)", "not det W"),
        ("log of a negative det", "return height * width * torch.log(torch.linalg.det(weight))", "slogdet"),
    ],
    "flow_log_prob": [
        ("missing base constant", """
            log_det = torch.zeros(x.shape[0])
            for layer in layers:
                x, ld = layer(x)
                log_det = log_det + ld
            return -0.5 * (x.flatten(1) ** 2).sum(1) + log_det""", "normalizing constant"),
        ("log_dets subtracted", """
            log_det = torch.zeros(x.shape[0])
            for layer in layers:
                x, ld = layer(x)
                log_det = log_det + ld
            return torch.distributions.Normal(0.0, 1.0).log_prob(x).flatten(1).sum(1) - log_det""", "sign"),
    ],
    "bits_per_dim": [
        ("log base e", "return -log_prob / num_dims", "divide by ln 2"),
        ("sign", "return log_prob / (num_dims * math.log(2))", "sign"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "coupling_forward": """
        s = scale_net(x * mask)
        t = shift_net(x * mask)
        y = torch.where(mask.bool(), x, x * s.exp() + t)
        return y, (s * (1 - mask)).reshape(len(x), -1).sum(-1)""",
    "coupling_inverse": """
        s, t = scale_net(y * mask), shift_net(y * mask)
        return torch.where(mask.bool(), y, (y - t) / s.exp())""",
    "actnorm_forward": """
        c = x.shape[1]
        scale = log_scale.exp().reshape(1, c, *[1] * (x.dim() - 2))
        y = x * scale + bias.reshape(1, c, *[1] * (x.dim() - 2))
        return y, torch.full((len(x),), float(log_scale.sum()) * (x.numel() // (len(x) * c)))""",
    "conv1x1_log_det": "return height * width * torch.log(torch.abs(torch.det(weight)))",
    "flow_log_prob": """
        total = 0
        for layer in layers:
            x, log_det = layer(x)
            total = total + log_det
        return torch.distributions.Normal(0.0, 1.0).log_prob(x).flatten(1).sum(1) + total""",
    "bits_per_dim": "return -log_prob / num_dims / math.log(2)",
}
