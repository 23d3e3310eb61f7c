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
    "self_attention": 2, "vector_quantize": 2, "vq_losses": 2, "made_masks": 2,
    "ema_codebook_update": 2, "keep_top_k": 1, "digits_pixelcnn": 2,
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

EMA_TEMPLATE = """
    one_hot = F.one_hot(indices, len(ema_count)).type_as(z_e)
    count = {count}
    total = {total}
    n = count.sum()
    smoothed = (count + epsilon) / (n + len(count) * epsilon) * n
    return total / {smoothed}[:, None], {returned}, total
"""


def _ema(**parts):
    base = {"count": "decay * ema_count + (1 - decay) * one_hot.sum(0)",
            "total": "decay * ema_sum + (1 - decay) * one_hot.T @ z_e",
            "smoothed": "smoothed", "returned": "count"}  # fmt: skip
    return EMA_TEMPLATE.format(**{**base, **parts})


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
        # What passing vector_quantize's straight-through output instead of the raw codes
        # does: z_q's value, z_e's gradient.
        ("given the straight-through tensor", """
            z_q = z_e + (z_q - z_e).detach()
            return (z_e.detach() - z_q).square().mean(), beta * (z_e - z_q.detach()).square().mean()""",
         "not vector_quantize's straight-through output"),
        ("the stop-gradients on the wrong sides", """
            return (z_e - z_q.detach()).square().mean(), beta * (z_e.detach() - z_q).square().mean()""",
         "not vector_quantize's straight-through output"),
    ],
    "made_masks": [
        ("hidden mask strict", """
            return (hidden_degrees[:, None] > input_degrees).float(), (input_degrees[:, None] > hidden_degrees).float()""",
         "the hidden mask is m(k) >= m(d), at least"),
        ("output mask not strict", """
            return (hidden_degrees[:, None] >= input_degrees).float(), (input_degrees[:, None] >= hidden_degrees).float()""",
         "the output mask is m(d) > m(k), strictly"),
        ("transposed, [in, out]", """
            return (hidden_degrees[None, :] >= input_degrees[:, None]).float(), (input_degrees[None, :] > hidden_degrees[:, None]).float()""",
         "shaped like nn.Linear's weight"),
        ("positions instead of degrees", """
            positions = torch.arange(1, len(input_degrees) + 1)
            return (hidden_degrees[:, None] >= positions).float(), (positions[:, None] > hidden_degrees).float()""",
         "compare the degrees m(d) = input_degrees[d]"),
    ],
    "ema_codebook_update": [
        ("no Laplace smoothing", _ema(smoothed="count"), "divide by the Laplace-smoothed counts"),
        ("decay on the batch's side", _ema(
            count="(1 - decay) * ema_count + decay * one_hot.sum(0)",
            total="(1 - decay) * ema_sum + decay * one_hot.T @ z_e"),
         "the old average keeps the weight decay"),
        ("returns the smoothed counts", _ema(returned="smoothed"), "return the new counts before smoothing"),
        ("updates the inputs in place", _ema(
            count="ema_count.mul_(decay).add_((1 - decay) * one_hot.sum(0))",
            total="ema_sum.mul_(decay).add_((1 - decay) * one_hot.T @ z_e)"),
         "do not update the inputs in place"),
    ],
    "keep_top_k": [
        ("keeps k - 1", """
            kth = logits.topk(k, dim=-1).values[..., -1:]
            return logits.masked_fill(logits <= kth, float("-inf"))""", "keep k logits, not k - 1"),
        ("keeps every tie", """
            kth = logits.topk(k, dim=-1).values[..., -1:]
            return logits.masked_fill(logits < kth, float("-inf"))""", "exactly k logits stay"),
        ("zeros instead of -inf", """
            kth = logits.topk(k, dim=-1).values[..., -1:]
            return logits.masked_fill(logits < kth, 0.0)""", "not 0"),
        ("the smallest", """
            keep = torch.zeros_like(logits, dtype=torch.bool)
            keep.scatter_(-1, logits.topk(k, dim=-1, largest=False).indices, True)
            return logits.masked_fill(~keep, float("-inf"))""", "keep the largest logits, not the smallest"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "made_masks": """
        hidden = torch.zeros(len(hidden_degrees), len(input_degrees))
        for k, mk in enumerate(hidden_degrees.tolist()):
            for d, md in enumerate(input_degrees.tolist()):
                hidden[k, d] = float(mk >= md)
        out = [[float(md > mk) for mk in hidden_degrees.tolist()] for md in input_degrees.tolist()]
        return hidden, torch.tensor(out).reshape(len(input_degrees), len(hidden_degrees))""",
    "ema_codebook_update": """
        K = ema_count.shape[0]
        n_i = torch.bincount(indices, minlength=K).float()
        sums = torch.zeros_like(ema_sum).index_add_(0, indices, z_e)
        N = ema_count * decay + n_i * (1 - decay)
        m = ema_sum * decay + sums * (1 - decay)
        n = N.sum()
        return m / ((N + epsilon) / (n + K * epsilon) * n).unsqueeze(1), N, m""",
    "keep_top_k": """
        order = logits.argsort(dim=-1, descending=True, stable=True)
        ranks = order.argsort(dim=-1)
        return torch.where(ranks < k, logits, torch.full_like(logits, -math.inf))""",
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
