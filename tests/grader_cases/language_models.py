"""Exercise set 07's grader cases (played by tests/test_grader.py): the mistakes issue 36
names, each of which must lose its question's points with a hint that names it, and
alternative correct implementations that must pass (``F.scaled_dot_product_attention``,
``torch.distributions``, ``F.softplus`` for the log-sigmoid). shakespeare_gpt trains with
the student's attention and loss and is scored with the course's, so an attention that
sees the future, or a loss that teaches the model to copy its input, fails there; a
mistake Adam does not feel (a loss divided by V, a scale of 1/sqrt(d)) may still pass."""

from __future__ import annotations

SOLUTION = "solutions/07_language_models.py"
NAME = "07_language_models"
POINTS = {
    "most_frequent_pair": 1, "merge_pair": 1, "lm_loss": 2, "multi_head_attention": 3, "top_p_filter": 2,
    "mask_tokens": 2, "response_log_prob": 2, "dpo_loss": 2, "lora_linear": 2, "shakespeare_gpt": 2,
}  # fmt: skip
DEPENDS: dict[str, list[str]] = {}
MAY_AFFECT = {q: ["shakespeare_gpt"] for q in ("lm_loss", "multi_head_attention", "top_p_filter")}

ATTENTION = """
    b, n, d = x.shape
    h = n_heads
    q, k, v = (x @ w_qkv).split(d, -1)
    q, k, v = ({split} for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt({size})
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return {merge} @ w_out
"""


def attention(
    split="t.view(b, n, h, d // h).transpose(1, 2)",
    merge="out.transpose(1, 2).reshape(b, n, d)",
    size="d // h",
):
    return ATTENTION.format(split=split, merge=merge, size=size)


TOP_P = """
    probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
    drop = {drop}
    {always}
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
"""

MASK = """
    chosen = torch.rand(tokens.shape, generator=generator) < p
    roll = torch.rand(tokens.shape, generator=generator)
    noise = torch.randint(vocab_size, tokens.shape, generator=generator)
    inputs = torch.where(chosen & (roll < {masked}), mask_id, tokens)
    inputs = torch.where(chosen & (roll >= {kept}), noise, inputs)
    return inputs, {labels}
"""


def masking(masked="0.8", kept="0.9", labels="torch.where(chosen, tokens, -100)"):
    return MASK.format(masked=masked, kept=kept, labels=labels)


RESPONSE = """
    log_probs = {log_probs}
    return log_probs{part}.sum(-1)
"""
SHIFTED = "logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]"

DPO = """
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return {loss}
"""

WRONG = {
    "most_frequent_pair": [
        ("non-overlapping occurrences", """
            counts = {}
            for pair in dict.fromkeys(zip(ids, ids[1:])):
                i, counts[pair] = 0, 0
                while i + 1 < len(ids):
                    if (ids[i], ids[i + 1]) == pair:
                        counts[pair], i = counts[pair] + 1, i + 2
                    else:
                        i += 1
            return max(counts, key=counts.get) if counts else None""",
         "count overlapping occurrences too"),
        ("ties to the smallest pair", """
            pairs = Counter(zip(ids, ids[1:]))
            return min(pairs, key=lambda pair: (-pairs[pair], pair)) if pairs else None""",
         "ties go to the pair seen first"),
    ],
    "merge_pair": [
        ("scanned right to left", """
            out, i = [], len(ids) - 1
            while i >= 0:
                if i >= 1 and ids[i - 1] == pair[0] and ids[i] == pair[1]:
                    out.append(new_id)
                    i -= 2
                else:
                    out.append(ids[i])
                    i -= 1
            return out[::-1]""",
         "scan left to right"),
    ],
    "lm_loss": [
        ("targets not shifted", "return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))",
         "the targets are not shifted"),
        ("targets shifted the wrong way",
         "return F.cross_entropy(logits[:, 1:].reshape(-1, logits.shape[-1]), tokens[:, :-1].reshape(-1))",
         "shifted the wrong way"),
        ("the mean over the vocabulary", """
            log_p = logits[:, :-1].log_softmax(-1)
            return -(log_p * F.one_hot(tokens[:, 1:], logits.shape[-1])).mean()""",
         "the mean over the vocabulary"),
        ("the mean over the vocabulary of every log-probability", "return -logits[:, :-1].log_softmax(-1).mean()",
         "the mean over the vocabulary"),
        ("log of the softmax underflows",
         "return -torch.log(torch.softmax(logits[:, :-1], -1)).gather(-1, tokens[:, 1:, None]).mean()",
         "underflows"),
    ],
    "multi_head_attention": [
        ("scale 1/sqrt(d)", attention(size="d"), "not 1/sqrt(d)"),
        ("heads split across positions", attention(split="t.reshape(b, h, n, d // h)", merge="out.reshape(b, n, d)"),
         "heads split along the wrong axis"),
        ("heads split into every h-th feature",
         attention(split="t.view(b, n, d // h, h).permute(0, 3, 1, 2)", merge="out.permute(0, 2, 3, 1).reshape(b, n, d)"),
         "heads split along the wrong axis"),
        ("heads merged without the transpose", attention(merge="out.reshape(b, n, d)"),
         "heads merged in the wrong order"),
        ("heads merged feature by feature", attention(merge="out.permute(0, 2, 3, 1).reshape(b, n, d)"),
         "heads merged in the wrong order"),
    ],
    "top_p_filter": [
        ("the token that crosses p dropped", TOP_P.format(drop="probs.cumsum(-1) > p", always="drop[..., 0] = False"),
         "keep the token that crosses p"),
        ("keeping none when the top token alone crosses p", TOP_P.format(drop="probs.cumsum(-1) >= p", always="pass"),
         "keeping none"),
    ],
    "mask_tokens": [
        ("labels kept at unchosen positions", masking(labels="tokens.clone()"), "labels kept at unchosen positions"),
        ("every chosen position masked", masking(masked="1.0", kept="1.0"), "only 80% of the chosen become mask_id"),
        ("80% mask, 20% random", masking(kept="0.8"), "not 20% random"),
        ("10% mask, 80% random", masking(masked="0.1", kept="0.2"), "not 10% mask_id"),
        ("10% of the unmasked 20% randomized", masking(kept="0.98"), "half become a random token"),
    ],
    "response_log_prob": [
        ("off by one: the first response token dropped", RESPONSE.format(log_probs=SHIFTED, part="[:, start:]"),
         "off by one position"),
        ("off by one: logits not shifted",
         RESPONSE.format(log_probs="logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0]", part="[:, start:]"),
         "off by one position"),
        ("the prompt included", RESPONSE.format(log_probs=SHIFTED, part=""), "including the prompt"),
    ],
    "dpo_loss": [
        ("the sign swapped", DPO.format(loss="-F.logsigmoid(-beta * margin).mean()"), "the sign is swapped"),
        ("the reference terms missing", DPO.format(loss="-F.logsigmoid(beta * (policy_chosen - policy_rejected)).mean()"),
         "the reference terms are missing"),
        ("log(sigmoid) underflows", DPO.format(loss="-torch.log(torch.sigmoid(beta * margin)).mean()"), "underflows"),
    ],
    "lora_linear": [
        ("the alpha / r scale missing", "return F.linear(x, weight, bias) + (x @ lora_a.T) @ lora_b.T",
         "the alpha / r scale is missing"),
        ("B and A swapped", "return F.linear(x, weight, bias) + (alpha / lora_a.shape[0]) * (x @ lora_b) @ lora_a",
         "B and A swapped"),
        ("r read from the input size", "return F.linear(x, weight, bias) + (alpha / lora_a.shape[1]) * (x @ lora_a.T) @ lora_b.T",
         "the rank"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "most_frequent_pair": """
        counts = {}
        for pair in zip(ids, ids[1:]):
            counts[pair] = counts.get(pair, 0) + 1
        best = None
        for pair, count in counts.items():
            if best is None or count > counts[best]:
                best = pair
        return best""",
    "merge_pair": """
        out, skip = [], False
        for i, token in enumerate(ids):
            if skip:
                skip = False
            elif ids[i : i + 2] == list(pair):
                out.append(new_id)
                skip = True
            else:
                out.append(token)
        return out""",
    "lm_loss": """
        log_p = torch.distributions.Categorical(logits=logits[:, :-1]).log_prob(tokens[:, 1:])
        return -log_p.mean()""",
    "multi_head_attention": """
        b, n, d = x.shape
        q, k, v = torch.chunk(x @ w_qkv, 3, dim=-1)
        q, k, v = (t.reshape(b, n, n_heads, -1).permute(0, 2, 1, 3) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.permute(0, 2, 1, 3).reshape(b, n, d) @ w_out""",
    "top_p_filter": """
        # Hugging Face's TopPLogitsWarper: drop the least probable tokens whose total is at most 1 - p
        ascending, order = torch.sort(logits, descending=False)
        remove = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1 - p)
        remove[..., -1:] = False
        return logits.masked_fill(remove.scatter(-1, order, remove), -float("inf"))""",
    "mask_tokens": """
        # Hugging Face's DataCollatorForLanguageModeling
        labels = tokens.clone()
        chosen = torch.bernoulli(torch.full(tokens.shape, p), generator=generator).bool()
        labels[~chosen] = -100
        inputs = tokens.clone()
        replaced = torch.bernoulli(torch.full(tokens.shape, 0.8), generator=generator).bool() & chosen
        inputs[replaced] = mask_id
        randomized = torch.bernoulli(torch.full(tokens.shape, 0.5), generator=generator).bool() & chosen & ~replaced
        inputs[randomized] = torch.randint(vocab_size, tokens.shape, generator=generator)[randomized]
        return inputs, labels""",
    "response_log_prob": """
        dist = torch.distributions.Categorical(logits=logits[:, start - 1 : -1])
        return dist.log_prob(tokens[:, start:]).sum(dim=1)""",
    "dpo_loss": """
        chosen = beta * (policy_chosen - ref_chosen)
        rejected = beta * (policy_rejected - ref_rejected)
        return F.softplus(rejected - chosen).mean()""",
    "lora_linear": """
        merged = weight + (alpha / lora_a.shape[0]) * lora_b @ lora_a
        out = x @ merged.T
        return out if bias is None else out + bias""",
}
