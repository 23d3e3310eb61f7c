"""Exercise set 08's grader cases (played by tests/test_grader.py): the mistakes issue 33
names, each of which must lose its question's points with a hint that names it, and
alternative correct implementations that must pass (``F.scaled_dot_product_attention``,
``torch.einsum``, ``torch.cov``-style moments, ``F.cosine_similarity``). clip_zero_shot
trains with the student's clip_loss and is scored with the course's zero_shot_classify; a
loss mistake that still pulls matched pairs together (one direction only, a temperature
that divides) may still train a CLIP that passes there."""

from __future__ import annotations

SOLUTION = "solutions/08_text_to_image.py"
NAME = "08_text_to_image"
POINTS = {
    "slant": 2, "clip_loss": 3, "zero_shot_classify": 1, "cross_attention": 3, "guided_eps": 1,
    "latent_scale": 1, "clip_zero_shot": 2,
}  # fmt: skip
DEPENDS: dict[str, list[str]] = {}
MAY_AFFECT = {"clip_loss": ["clip_zero_shot"], "zero_shot_classify": ["clip_zero_shot"]}

SLANT = """
    b, height, width = images.shape
    w = images.reshape(b, -1)
    y, x = torch.meshgrid(torch.arange(height, dtype=w.dtype), torch.arange(width, dtype=w.dtype), indexing="ij")
    x, y = x.reshape(-1), y.reshape(-1)
    mass = w.sum(-1, keepdim=True)
    dx = x - {centre_x}
    dy = y - {centre_y}
    return {wrap}({sign}(w * dx * dy).sum(-1) / (w * {second}).sum(-1))
"""
CENTRED = {
    "centre_x": "(w * x).sum(-1, keepdim=True) / mass",
    "centre_y": "(w * y).sum(-1, keepdim=True) / mass",
}


def slant(sign="-", second="dy**2", wrap="", **centre):
    return SLANT.format(sign=sign, second=second, wrap=wrap, **{**CENTRED, **centre})


CLIP = """
    i, t = {normalize}
    logits = {logits}
    targets = {targets}
    return {combine}
"""


def clip(normalize="F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)",
         logits="logit_scale * i @ t.T", targets="torch.arange(len(logits))",
         combine="(F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2"):  # fmt: skip
    return CLIP.format(normalize=normalize, logits=logits, targets=targets, combine=combine)


CROSS = """
    b, n, d = x.shape
    m, h = context.shape[1], n_heads
    q = (x @ w_q).view(b, n, h, d // h).transpose(1, 2)
    k = ({kv} @ w_k).view(b, -1, h, d // h).transpose(1, 2)
    v = ({kv} @ w_v).view(b, -1, h, d // h).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / math.sqrt({size})
    if context_mask is not None:
        scores = scores.masked_fill({masked}, float("-inf"))
    out = scores.softmax(-1) @ v
    return out.transpose(1, 2).reshape(b, n, d) @ w_out
"""


def cross(kv="context", size="d // h", masked="~context_mask[:, None, None, :]"):
    return CROSS.format(kv=kv, size=size, masked=masked)


WRONG = {
    "slant": [
        ("the sign", slant(sign=""), "the sign"),
        ("mu20 instead of mu02", slant(second="dx**2"), "the wrong central moment"),
        ("raw moments", slant(centre_x="0", centre_y="0"), "the moments must be central"),
        ("the absolute value", slant(wrap="torch.abs"), "negative slant"),
    ],
    "clip_loss": [
        (
            "embeddings not normalized",
            clip(normalize="image_emb, text_emb"),
            "normalize both embeddings",
        ),
        (
            "normalized over the batch",
            clip(normalize="F.normalize(image_emb, dim=0), F.normalize(text_emb, dim=0)"),
            "normalize each embedding over its features",
        ),
        (
            "image -> text only",
            clip(combine="F.cross_entropy(logits, targets)"),
            "one direction only",
        ),
        (
            "text -> image only",
            clip(combine="F.cross_entropy(logits.T, targets)"),
            "one direction only",
        ),
        (
            "targets all zero",
            clip(targets="torch.zeros(len(logits), dtype=torch.long)"),
            "the targets are the diagonal",
        ),
        (
            "targets reversed",
            clip(targets="torch.arange(len(logits)).flip(0)"),
            "the targets are the diagonal",
        ),
        ("the temperature divides", clip(logits="i @ t.T / logit_scale"), "inverse temperature"),
        (
            "embeddings detached",
            clip(
                normalize="F.normalize(image_emb.detach(), dim=-1), F.normalize(text_emb.detach(), dim=-1)"
            ),
            "never detach",
        ),
        (
            "norms computed without gradient",
            """
    with torch.no_grad():
        norms = image_emb.norm(dim=-1, keepdim=True), text_emb.norm(dim=-1, keepdim=True)
    i, t = image_emb / norms[0], text_emb / norms[1]
    logits = logit_scale * i @ t.T
    targets = torch.arange(len(logits))
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
""",
            "compute their norms under no_grad",
        ),
        (
            "the sum of the two directions",
            clip(combine="F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)"),
            "not their sum",
        ),
    ],
    "zero_shot_classify": [
        ("dot product", "return (image_emb @ class_text_emb.T).argmax(-1)", "not the dot product"),
        (
            "images normalized over the batch",
            "return (F.normalize(image_emb, dim=0) @ F.normalize(class_text_emb, dim=-1).T).argmax(-1)",
            "over its own features",
        ),
        (
            "only the images normalized",
            "return (F.normalize(image_emb, dim=-1) @ class_text_emb.T).argmax(-1)",
            "not the dot product",
        ),
    ],
    "cross_attention": [
        ("keys and values from the image", cross(kv="x"), "keys and values come from the text"),
        (
            "padding not masked",
            cross(masked="torch.zeros_like(context_mask)[:, None, None, :]"),
            "not masked",
        ),
        (
            "the mask inverted",
            cross(masked="context_mask[:, None, None, :]"),
            "mask the keys where it is False",
        ),
        ("scale 1/sqrt(d)", cross(size="d"), "not 1/sqrt(d)"),
    ],
    "guided_eps": [
        (
            "conditional and unconditional swapped",
            "return eps_cond + scale * (eps_uncond - eps_cond)",
            "swapped",
        ),
        (
            "lecture 04's w used as s",
            "return (1 + scale) * eps_cond - scale * eps_uncond",
            "w = s - 1",
        ),
    ],
    "latent_scale": [
        ("inverted", "return latents.std().item()", "inverted"),
        ("over the variance", "return 1.0 / latents.var().item()", "not over the variance"),
        ("per channel", "return 1.0 / latents.std(dim=(0, 2, 3)).mean().item()", "not per channel"),
    ],
}

ALTERNATIVE_CORRECT = {
    "slant": """
        # moments from the intensity-weighted covariance of the pixel coordinates
        b, height, width = images.shape
        rows = torch.arange(height, dtype=images.dtype)[:, None].expand(height, width).reshape(-1)
        cols = torch.arange(width, dtype=images.dtype)[None, :].expand(height, width).reshape(-1)
        out = []
        for w in images.reshape(b, -1):
            cov = torch.cov(torch.stack([cols, rows]), aweights=w, correction=0)
            out.append(-cov[0, 1] / cov[1, 1])
        return torch.stack(out)""",
    "clip_loss": """
        sims = F.cosine_similarity(image_emb[:, None], text_emb[None, :], dim=-1)
        logits = sims * logit_scale
        n = logits.shape[0]
        to_text = -torch.diagonal(logits.log_softmax(dim=1)).sum() / n
        to_image = -torch.diagonal(logits.log_softmax(dim=0)).sum() / n
        return 0.5 * (to_text + to_image)""",
    "zero_shot_classify": """
        sims = F.cosine_similarity(image_emb[:, None, :], class_text_emb[None, :, :], dim=-1)
        return torch.argmax(sims, dim=1)""",
    "cross_attention": """
        b, n, d = x.shape
        h = n_heads
        q = torch.einsum("bnd,de->bne", x, w_q).unflatten(-1, (h, d // h)).transpose(1, 2)
        k = torch.einsum("bmc,cd->bmd", context, w_k).unflatten(-1, (h, d // h)).transpose(1, 2)
        v = torch.einsum("bmc,cd->bmd", context, w_v).unflatten(-1, (h, d // h)).transpose(1, 2)
        mask = None if context_mask is None else context_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.transpose(1, 2).flatten(2) @ w_out""",
    "guided_eps": """
        w = scale - 1  # lecture 04's weight
        return (1 + w) * eps_cond - w * eps_uncond""",
    "latent_scale": """
        return 1.0 / latents.std(unbiased=False).item()  # the population std: N, not N - 1""",
}
