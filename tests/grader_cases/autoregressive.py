"""Exercise set 06's grader cases (played by tests/test_grader.py): the mistakes the
issue names, each of which must lose its question's points with a hint that names it, and
alternative correct implementations that must pass. digits_pixelcnn trains with the
student's mask and NLL and is scored with the course's masks and likelihood, so a mask
that lets a pixel see itself trains a model that cheats and fails there."""

from __future__ import annotations

SOLUTION = "solutions/06_autoregressive.py"
NAME = "06_autoregressive"
POINTS = {
    "causal_mask": 1, "masked_conv_mask": 2, "categorical_nll": 2, "sample_with_temperature": 2,
    "self_attention": 2, "vector_quantize": 2, "vq_losses": 2, "digits_pixelcnn": 2,
}  # fmt: skip
DEPENDS: dict[str, list[str]] = {"masked_conv_mask": ["digits_pixelcnn"]}
MAY_AFFECT = {"categorical_nll": ["digits_pixelcnn"]}

MASK = """
    c = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size)
    mask[:c] = 1
    mask[c, : {centre_row}] = 1
    {extra}
    return mask
"""


def conv_mask(centre_row="c + (mask_type == 'B')", extra="pass"):
    return MASK.format(centre_row=centre_row, extra=extra)


ATTENTION = """
    scores = q @ k.transpose(-2, -1){scale}
    if mask is not None{use_mask}:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim={dim}) @ v
"""


def attention(scale=" / math.sqrt(q.shape[-1])", dim="-1", use_mask=""):
    return ATTENTION.format(scale=scale, dim=dim, use_mask=use_mask)


TEMPERATURE = """
    if temperature == 0:
        return logits.argmax(-1)
    probs = {probs}
    flat = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
    return flat.view(logits.shape[:-1])
"""

VQ = """
    distances = {distances}
    indices = distances.argmin(1)
    return {z_q}, indices
"""
EUCLID = "torch.cdist(z, codebook)"

WRONG = {
    "causal_mask": [
        ("strict: j < i", "return torch.ones(n, n, dtype=torch.bool).tril(-1)", "j <= i, not j < i"),
        ("transposed", "return torch.ones(n, n, dtype=torch.bool).triu()", "not j >= i"),
    ],
    "masked_conv_mask": [
        ("type A keeps the centre", conv_mask(centre_row="c + 1"), "type A closes the centre"),
        ("open right of the centre", conv_mask(extra="mask[c, c + 1:] = 1"),
         "nothing right of the centre"),
        ("open below the centre", conv_mask(extra="mask[c + 1:] = 1"), "the rows below the centre"),
    ],
    "categorical_nll": [
        ("averaged over pixels", "return F.cross_entropy(logits, x, reduction='none').flatten(1).mean(1)",
         "sum over the pixels"),
        ("softmax over the last dim", """
            return -logits.log_softmax(-1).gather(1, x[:, None]).squeeze(1).flatten(1).sum(1)""",
         "the softmax runs over the class dim"),
        ("log of the softmax underflows", """
            return -torch.log(torch.softmax(logits, 1)).gather(1, x[:, None]).squeeze(1).flatten(1).sum(1)""",
         "log(softmax(l)) underflows"),
    ],
    "sample_with_temperature": [
        ("temperature after the softmax", TEMPERATURE.format(probs="torch.softmax(logits, dim=-1) / temperature"),
         "scaling the probabilities afterwards changes nothing"),
        ("logits multiplied by the temperature", TEMPERATURE.format(probs="torch.softmax(logits * temperature, dim=-1)"),
         "do not multiply them"),
    ],
    "self_attention": [
        ("no 1/sqrt(d) scale", attention(scale=""), "scale the scores by 1/sqrt(d)"),
        ("softmax over the queries", attention(dim="-2"), "not over the queries"),
        ("the mask ignored", attention(use_mask=" and False"), "the mask is ignored"),
    ],
    "vector_quantize": [
        ("no straight-through gradient", VQ.format(distances=EUCLID, z_q="codebook[indices]"),
         "the straight-through estimator"),
        ("codes chosen by dot product", VQ.format(distances="-(z @ codebook.T)", z_q="z + (codebook[indices] - z).detach()"),
         "not the largest dot product"),
    ],
    "vq_losses": [
        ("the two terms swapped", """
            return beta * (z_e - z_q.detach()).square().mean(), (z_e.detach() - z_q).square().mean()""",
         "the two terms are swapped"),
        ("no stop-gradients", """
            return (z_e - z_q).square().mean(), beta * (z_e - z_q).square().mean()""",
         "detach z_e in it"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "causal_mask": "return torch.arange(n)[:, None] >= torch.arange(n)[None, :]",
    "masked_conv_mask": """
        i, j = torch.meshgrid(torch.arange(kernel_size), torch.arange(kernel_size), indexing="ij")
        c = kernel_size // 2
        before = (i < c) | ((i == c) & (j < c))
        if mask_type == "B":
            before = before | ((i == c) & (j == c))
        return before.float()""",
    "categorical_nll": """
        log_p = torch.distributions.Categorical(logits=logits.movedim(1, -1)).log_prob(x)
        return -log_p.reshape(len(x), -1).sum(-1)""",
    "sample_with_temperature": """
        if temperature == 0:
            return torch.argmax(logits, dim=-1)
        rows = logits.reshape(-1, logits.shape[-1]) / temperature
        probs = torch.exp(rows - torch.logsumexp(rows, dim=-1, keepdim=True))
        return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1])""",
    "self_attention": "return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)",
    "vector_quantize": """
        d = (z[:, None, :] - codebook[None, :, :]).pow(2).sum(-1)
        idx = torch.argmin(d, dim=1)
        e = codebook[idx]
        return z + (e - z).detach(), idx""",
    "vq_losses": """
        sg = torch.Tensor.detach
        mse = torch.nn.functional.mse_loss
        return mse(z_q, sg(z_e)), beta * mse(z_e, sg(z_q))""",
}
