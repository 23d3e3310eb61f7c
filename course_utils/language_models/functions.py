"""The reference functions of the 07_language_models exercise set (lecture 07).

* Byte-pair encoding's two steps (Sennrich et al. 2016): ``most_frequent_pair`` and
  ``merge_pair``, on Python lists of ids.
* ``lm_loss`` (next-token cross-entropy), ``multi_head_attention`` (Vaswani et al. 2017),
  ``top_p_filter`` (nucleus filtering, Holtzman et al. 2020), ``mask_tokens`` (BERT's
  80/10/10 corruption, Devlin et al. 2019), ``response_log_prob`` (a response's
  log-probability given its prompt), ``dpo_loss`` (Rafailov et al. 2023) and
  ``lora_linear`` (Hu et al. 2021).

Each is marked ``# Copied from solutions/07_language_models.py``: ``course build`` writes
it from the solution (``course build --check`` fails when one drifts).

Conventions (``docs/EXERCISE_API.md``): a token sequence is a LongTensor ``[batch, n]``;
logits are ``[batch, n, V]``, position ``i`` predicting token ``i + 1``; attention inputs
are ``[batch, n, d]``; a boolean mask is True where attention is allowed; log-probabilities
in nats.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise

import torch
import torch.nn.functional as F

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)


# Copied from solutions/07_language_models.py: most_frequent_pair
def most_frequent_pair(ids: list[int]) -> tuple[int, int] | None:
    """The adjacent pair ``(a, b)`` that occurs most often in ``ids`` (overlapping
    occurrences counted, as in ``zip(ids, ids[1:])``); ties go to the pair seen first;
    ``None`` for fewer than two ids."""
    pairs = Counter(pairwise(ids))
    return max(pairs, key=pairs.get) if pairs else None


# Copied from solutions/07_language_models.py: merge_pair
def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """A new list: every occurrence of ``pair`` in ``ids``, scanned left to right without
    overlap, replaced by ``new_id`` (``[a, a, a]`` with pair ``(a, a)`` gives
    ``[new_id, a]``)."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# Copied from solutions/07_language_models.py: lm_loss
def lm_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy in nats, a scalar: ``logits [batch, n, V]`` computed from
    ``tokens [batch, n]``, position ``i`` predicting ``tokens[:, i + 1]``; the mean over
    the ``batch * (n - 1)`` predicted positions."""
    if logits.dim() != 3 or tuple(tokens.shape) != tuple(logits.shape[:2]) or tokens.shape[1] < 2:
        raise ValueError(
            f"logits, tokens: expected logits [batch, n, V] and tokens [batch, n] with n >= 2, "
            f"got {tuple(logits.shape)} and {tuple(tokens.shape)}"
        )
    vocab = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), tokens[:, 1:].reshape(-1))


# Copied from solutions/07_language_models.py: multi_head_attention
def multi_head_attention(
    x: torch.Tensor,
    w_qkv: torch.Tensor,
    w_out: torch.Tensor,
    n_heads: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-head self-attention, ``[batch, n, d]``: ``q, k, v = (x @ w_qkv).split(d, -1)``
    (``w_qkv [d, 3d]``), each cut along the features into ``n_heads`` heads of size
    ``d / n_heads``, ``softmax(q kᵀ / √(d / n_heads))`` per head with the scores where
    ``mask`` (bool, broadcastable to ``[n, n]``) is False at ``-inf``, the heads
    concatenated in order, then ``@ w_out [d, d]``."""
    if x.dim() != 3 or x.shape[-1] % n_heads != 0:
        raise ValueError(
            f"x, n_heads: expected x [batch, n, d] with d divisible by n_heads, got "
            f"{tuple(x.shape)} and {n_heads!r}"
        )
    b, n, d = x.shape
    q, k, v = (
        t.view(b, n, n_heads, d // n_heads).transpose(1, 2) for t in (x @ w_qkv).split(d, -1)
    )
    scores = q @ k.transpose(-2, -1) / math.sqrt(d // n_heads)  # [b, h, n, n]
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    heads = torch.softmax(scores, dim=-1) @ v  # [b, h, n, d_h]
    return heads.transpose(1, 2).reshape(b, n, d) @ w_out


# Copied from solutions/07_language_models.py: top_p_filter
def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering over the last dim: the smallest set of most probable tokens whose
    probabilities sum to at least ``p`` keeps its logits (the most probable token always
    does), the others are set to ``-inf``; same shape as ``logits``."""
    sorted_probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
    drop = sorted_probs.cumsum(-1) - sorted_probs >= p  # the more probable ones reach p
    drop[..., 0] = False  # the most probable token always stays
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


# Copied from solutions/07_language_models.py: mask_tokens
def mask_tokens(
    tokens: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    p: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of ``tokens`` (LongTensor, any shape): each position chosen with
    probability ``p``; of the chosen, 80% become ``mask_id``, 10% a uniform token in
    ``[0, vocab_size)``, 10% stay. Returns ``(inputs, labels)``, ``labels = tokens`` at the
    chosen positions and ``-100`` elsewhere."""
    chosen = torch.rand(tokens.shape, generator=generator, device=tokens.device) < p
    roll = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    noise = torch.randint(vocab_size, tokens.shape, generator=generator, device=tokens.device)
    inputs = torch.where(chosen & (roll < 0.8), mask_id, tokens)
    inputs = torch.where(chosen & (roll >= 0.9), noise, inputs)
    return inputs, torch.where(chosen, tokens, -100)


# Copied from solutions/07_language_models.py: response_log_prob
def response_log_prob(logits: torch.Tensor, tokens: torch.Tensor, start: int) -> torch.Tensor:
    """``sum_{i >= start} log p(tokens[:, i] | tokens[:, :i])`` per example, ``[batch]``,
    read from ``logits [batch, n, V]`` computed on ``tokens [batch, n]`` (position ``i - 1``
    predicts token ``i``); ``start >= 1``."""
    if not 1 <= start < tokens.shape[1]:
        raise ValueError(f"start: expected 1 <= start < n = {tokens.shape[1]}, got {start!r}")
    # log p(token i + 1 | tokens 0..i), read at position i: [batch, n - 1]
    log_probs = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
    return log_probs[:, start - 1 :].sum(-1)


# Copied from solutions/07_language_models.py: dpo_loss
def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """DPO (Rafailov et al. 2023), a scalar: the batch mean of ``-log sigmoid(beta *
    ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)))`` for per-example
    sequence log-probabilities, computed stably with ``logsigmoid``."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin).mean()


# Copied from solutions/07_language_models.py: lora_linear
def lora_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    lora_a: torch.Tensor,
    lora_b: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """LoRA (Hu et al. 2021): ``x @ weight.T + bias + (alpha / r) * (x @ lora_a.T) @
    lora_b.T`` with ``weight [out, in]``, ``lora_a [r, in]``, ``lora_b [out, r]``,
    ``r = lora_a.shape[0]``; ``bias`` may be ``None``; ``x`` is ``[..., in]``."""
    if lora_a.shape[1] != weight.shape[1] or lora_b.shape != (weight.shape[0], lora_a.shape[0]):
        raise ValueError(
            f"weight, lora_a, lora_b: expected [out, in], [r, in] and [out, r], got "
            f"{tuple(weight.shape)}, {tuple(lora_a.shape)} and {tuple(lora_b.shape)}"
        )
    r = lora_a.shape[0]
    return F.linear(x, weight, bias) + (alpha / r) * (x @ lora_a.T) @ lora_b.T
