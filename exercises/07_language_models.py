# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["colab-setup"]
# Colab setup (written by `course build`). In Google Colab: clone the course, install it
# without touching Colab's torch, numpy and ipywidgets, and import it in this kernel.
# Anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import importlib.metadata
    import os
    import subprocess

    # COURSE_REPO, COURSE_DIR (optional): clone a fork, or a local copy, elsewhere
    repo = os.environ.get("COURSE_REPO", "https://github.com/dgm-course/deep-generative-models")
    course = os.environ.get("COURSE_DIR", "/content/course")
    if not os.path.isdir(course):
        subprocess.run(["git", "clone", "--depth=1", repo, course], check=True)
    keep = []  # pip must keep these exactly as Colab has them
    for name in ("torch", "numpy", "ipywidgets"):
        try:
            keep.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    with open("/tmp/course-keep.txt", "w") as constraints:
        constraints.write("\n".join(keep) + "\n")
    pip = [sys.executable, "-m", "pip", "install", "-q", "-c", "/tmp/course-keep.txt"]
    subprocess.run([*pip, "-e", course], check=True)
    sys.path.insert(0, course)  # this kernel started before the install

# %% [markdown]
# # Exercises 07 — Language models, from next-token prediction to an assistant
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/exercises/07_language_models.ipynb)
#
# Nine functions: byte-pair encoding's two steps (the most frequent pair, and merging
# it), the next-token loss, multi-head causal self-attention, nucleus (top-p) filtering,
# BERT's masked-LM corruption, the log-probability of a response given its prompt, the
# DPO loss, and a LoRA linear layer. Then your attention and your loss train a tiny
# character-level GPT on Shakespeare, and it writes.
# For each function: read the definition, replace `# YOUR CODE HERE` /
# `raise NotImplementedError()` with your code, and run the test cell below it. A failing
# test says what it expected, what it got, and the likely mistake.
#
# **Grade yourself** from a terminal in the course folder:
#
# ```
# course grade exercises/07_language_models.ipynb
# ```
#
# Conventions (as in lecture 07): a token sequence is a LongTensor `[batch, n]` (a Python
# list of ints for the tokenizer); logits are `[batch, n, V]`, the vocabulary last, and
# position $i$ holds the prediction for token $i + 1$ given tokens $0 \dots i$. Attention
# inputs are `[batch, n, d]`; a boolean mask is `True` where attention is allowed.
# Log-probabilities are natural logs (nats).

# %%
import copy
import math
import time
from collections import Counter  # noqa: F401  (for question 1)
from itertools import pairwise  # noqa: F401  (for question 1)

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data
from course_utils.grading import check, check_close, check_score, check_shape

torch.manual_seed(0)

# %% [markdown]
# ## 1. Byte-pair encoding: the most frequent pair (1 point)
#
# BPE (Sennrich et al. 2016; GPT-2's tokenizer works on bytes) starts from single symbols
# and repeatedly replaces the most frequent **adjacent pair** by a new symbol. Count every
# adjacent pair of the list `ids`, overlapping occurrences included (the pairs of
# `zip(ids, ids[1:])`: `[7, 7, 7]` holds `(7, 7)` twice), and return the most frequent
# one as a tuple `(a, b)`. Ties go to the pair **seen first**, so the tokenizer is
# deterministic; a list of fewer than two ids has no pair: return `None`.
# (`itertools.pairwise(ids)` gives the adjacent pairs; `collections.Counter` counts them
# and keeps its keys in the order it first saw them. Both are imported above.)


# %%
def most_frequent_pair(ids: list[int]) -> tuple[int, int] | None:
    """The adjacent pair ``(a, b)`` that occurs most often in ``ids`` (overlapping
    occurrences counted, as in ``zip(ids, ids[1:])``); ties go to the pair seen first;
    ``None`` for fewer than two ids."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST most_frequent_pair (1 point)
pair = most_frequent_pair([1, 2, 3, 1, 2, 4, 1, 2])
check(isinstance(pair, tuple) and len(pair) == 2, f"most_frequent_pair must return a tuple (a, b), got {pair!r}",
      hint="return the pair itself, a tuple of two ids (not its count)")  # fmt: skip
check_close(torch.tensor(pair), torch.tensor([1, 2]), "most_frequent_pair([1, 2, 3, 1, 2, 4, 1, 2])",
            hint="count the adjacent pairs zip(ids, ids[1:]) and return the most frequent")  # fmt: skip
# (1, 2) four times, (5, 5) five times when overlapping occurrences count (three if not)
check_close(
    torch.tensor(most_frequent_pair([1, 2, 1, 2, 1, 2, 1, 2, 5, 5, 5, 5, 5, 5])), torch.tensor([5, 5]),
    "most_frequent_pair([1, 2] * 4 + [5] * 6)",
    hint="count every adjacent pair, overlapping ones included: six 5s hold (5, 5) five times",
    mistakes={"count overlapping occurrences too, as zip(ids, ids[1:]) does: six 5s hold (5, 5) five times": torch.tensor([1, 2])},
)  # fmt: skip
# (6, 2) and (0, 1) both twice: the first seen wins
check_close(
    torch.tensor(most_frequent_pair([6, 2, 6, 2, 0, 1, 0, 1])), torch.tensor([6, 2]),
    "most_frequent_pair([6, 2, 6, 2, 0, 1, 0, 1]) (a tie)",
    hint="ties go to the pair seen first",
    mistakes={"ties go to the pair seen first, not the smallest or the last one": torch.tensor([0, 1])},
)  # fmt: skip
check_close(torch.tensor(most_frequent_pair([4, 2])), torch.tensor([4, 2]), "most_frequent_pair([4, 2])",
            hint="two ids make one pair")  # fmt: skip
check(most_frequent_pair([5]) is None and most_frequent_pair([]) is None,
      "most_frequent_pair of [5] and of [] must be None", hint="fewer than two ids have no pair: return None")  # fmt: skip

# %% [markdown]
# ## 2. Byte-pair encoding: merging a pair (1 point)
#
# Each BPE step gives the chosen pair a new id and rewrites the sequence. Return a **new**
# list where every occurrence of `pair`, scanned **left to right without overlap**, is
# replaced by `new_id`: with `pair = (7, 7)`, `[7, 7, 7]` becomes `[new_id, 7]` (the
# first two 7s merge; the third has no partner left). Leave `ids` itself unchanged.


# %%
def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """A new list: every occurrence of ``pair`` in ``ids``, scanned left to right without
    overlap, replaced by ``new_id`` (``[a, a, a]`` with pair ``(a, a)`` gives
    ``[new_id, a]``)."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=1
# TEST merge_pair (1 point)
ids = [1, 2, 3, 1, 2]
merged = merge_pair(ids, (1, 2), 9)
check(isinstance(merged, list), f"merge_pair must return a list, got {type(merged).__name__}",
      hint="build a new list: out = [], then append each id or new_id")  # fmt: skip
check_close(torch.tensor(merged), torch.tensor([9, 3, 9]), "merge_pair([1, 2, 3, 1, 2], (1, 2), 9)",
            hint="replace each occurrence of the pair (two ids) by the one new id")  # fmt: skip
check(ids == [1, 2, 3, 1, 2], f"merge_pair changed its input ids to {ids}", hint="return a new list; leave ids unchanged")  # fmt: skip
check_close(
    torch.tensor(merge_pair([7, 7, 7], (7, 7), 99)), torch.tensor([99, 7]), "merge_pair([7, 7, 7], (7, 7), 99)",
    hint="scan left to right; after a merge, go on after the pair (no overlap)",
    mistakes={"scan left to right: the first two 7s merge and the third is left, [99, 7]": torch.tensor([7, 99])},
)  # fmt: skip
check_close(torch.tensor(merge_pair([3, 1, 2, 1], (1, 2), 9)), torch.tensor([3, 9, 1]),
            "merge_pair([3, 1, 2, 1], (1, 2), 9): the last id starts the pair but has no partner",
            hint="at the last id there is no pair left: check i + 1 < len(ids) before looking at ids[i + 1]")  # fmt: skip
check_close(torch.tensor(merge_pair([2, 1, 2, 1], (1, 2), 9)), torch.tensor([2, 9, 1]),
            "merge_pair([2, 1, 2, 1], (1, 2), 9): the pair is ordered", hint="(1, 2) is not (2, 1): match ids[i] to pair[0] and ids[i + 1] to pair[1]")  # fmt: skip
check(merge_pair([], (1, 2), 9) == [], "merge_pair([], (1, 2), 9) must be []", hint="an empty list stays empty")  # fmt: skip

# %% [markdown]
# Your two functions are a tokenizer trainer. On the bytes of the first 20,000 characters
# of Shakespeare, 60 merges (the vocabulary grows from 256 bytes to 316 tokens) shorten
# the sequence; the first merges are the commonest pairs of English letters and spaces.

# %%
sample_bytes = list(data.shakespeare("train")[:20_000].encode("utf-8"))
tokens, vocab = sample_bytes, {i: bytes([i]) for i in range(256)}
for new_id in range(256, 316):
    a, b = most_frequent_pair(tokens)
    tokens, vocab[new_id] = merge_pair(tokens, (a, b), new_id), vocab[a] + vocab[b]
ratio = len(sample_bytes) / len(tokens)
print(f"{len(sample_bytes)} bytes -> {len(tokens)} tokens: {ratio:.2f} bytes per token")
print("first merges:", ", ".join(repr(vocab[i].decode()) for i in range(256, 268)))

# %% [markdown]
# ## 3. The next-token loss (2 points)
#
# A language model factorizes $p(x_0, \dots, x_{n-1}) = \prod_i p(x_i \mid x_{<i})$. A
# decoder-only transformer reads the whole sequence `tokens [batch, n]` at once and
# returns `logits [batch, n, V]`; under its causal mask, position $i$ has seen tokens
# $0 \dots i$ and predicts token $i + 1$. So the logits at positions $0 \dots n-2$ are
# scored against the tokens at positions $1 \dots n-1$ (position $n - 1$ has no target):
#
# $$\mathcal{L} = -\frac{1}{B\,(n-1)} \sum_{b} \sum_{i=0}^{n-2} \log \mathrm{softmax}(\ell_{b,i})_{x_{b,i+1}}.$$
#
# Return this mean over the `batch * (n - 1)` predicted positions, in nats, a scalar.
# `F.cross_entropy` wants the classes in dim 1 (or flat `[N, V]` logits and `[N]`
# targets), and computes $\log\mathrm{softmax}$ in one stable step.


# %%
def lm_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy in nats, a scalar: ``logits [batch, n, V]`` computed from
    ``tokens [batch, n]``, position ``i`` predicting ``tokens[:, i + 1]``; the mean over
    the ``batch * (n - 1)`` predicted positions."""
    if logits.dim() != 3 or tuple(tokens.shape) != tuple(logits.shape[:2]) or tokens.shape[1] < 2:
        raise ValueError(
            f"logits, tokens: expected logits [batch, n, V] and tokens [batch, n] with n >= 2, "
            f"got {tuple(logits.shape)} and {tuple(tokens.shape)}"
        )
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST lm_loss (2 points)
torch.manual_seed(0)
logits, tokens = torch.randn(2, 6, 5), torch.randint(0, 5, (2, 6))
log_p = logits.log_softmax(-1)  # [2, 6, 5]
next_token = -log_p[:, :-1].gather(-1, tokens[:, 1:, None])  # [2, 5, 1]: position i, token i + 1
check_close(
    lm_loss(logits, tokens), next_token.mean(), "lm_loss of [2, 6, 5] logits",
    hint="position i predicts token i + 1: cross-entropy of logits[:, :-1] against tokens[:, 1:], mean over the positions",
    mistakes={
        "the targets are not shifted: position i predicts the NEXT token, logits[:, :-1] against tokens[:, 1:] "
        "(unshifted, the model learns to copy its input)": -log_p.gather(-1, tokens[..., None]).mean(),
        "the targets are shifted the wrong way: logits[:, :-1] predict tokens[:, 1:], not logits[:, 1:] tokens[:, :-1] "
        "(that predicts the past)": -log_p[:, 1:].gather(-1, tokens[:, :-1, None]).mean(),
        "the mean over the vocabulary too divides the loss by V: average over the predicted positions only "
        "(take the target's log-probability, then the mean)": next_token.mean() / 5,
        "the mean over the vocabulary of the log-probabilities scores a uniform target: take the log-probability "
        "of the next token only (gather at tokens[:, 1:])": -log_p[:, :-1].mean(),
        "a mean, not a sum, over the batch * (n - 1) predicted positions": next_token.sum(),
    },
)  # fmt: skip
# token 2 after token 0 has probability e^-600
confident = torch.tensor([[[300.0, 0.0, -300.0], [0.0, 0.0, 0.0]]])
check_close(
    lm_loss(confident, torch.tensor([[0, 2]])), 600.0, "lm_loss where the next token has probability e^-600",
    hint="log(softmax(l)) underflows: use F.cross_entropy (or log_softmax), which computes it in one stable step",
)  # fmt: skip
uniform = torch.zeros(3, 4, 7)
check_close(lm_loss(uniform, torch.randint(0, 7, (3, 4))), math.log(7), "lm_loss of uniform logits over 7 tokens (log 7)",
            hint="the cross-entropy of a uniform prediction over V tokens is log V")  # fmt: skip

# %% [markdown]
# ## 4. Multi-head causal self-attention (3 points)
#
# Lecture 06's attention, with $h$ heads (Vaswani et al. 2017). One matrix
# `w_qkv [d, 3d]` makes the queries, keys and values: `q, k, v = (x @ w_qkv).split(d,
# -1)`, each `[batch, n, d]`. Each is cut **along the feature axis** into `n_heads` heads
# of size $d_h = d / h$: head $j$ holds features $j d_h \dots (j + 1) d_h - 1$ at every
# position (`view(batch, n, h, d_h)`, then `transpose(1, 2)` to `[batch, h, n, d_h]`).
# Each head attends on its own, scaled by $1/\sqrt{d_h}$ (the size of the vectors it
# dots), with the masked scores at $-\infty$ and the softmax over the keys:
# $\mathrm{head}_j = \mathrm{softmax}(q_j k_j^\top / \sqrt{d_h} + M)\, v_j$. The heads are
# concatenated back **in order** along the features, `[batch, n, d]`, and projected by
# `w_out [d, d]`. `mask` (bool `[n, n]`, or `None`) is `True` where query $i$ may attend
# to key $j$. (`F.scaled_dot_product_attention` is allowed; the point is the heads.)


# %%
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
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=3
# TEST multi_head_attention (3 points)
torch.manual_seed(0)
x = torch.randn(2, 5, 12)
w_qkv, w_out = torch.randn(12, 36) / 12**0.5, torch.randn(12, 12) / 12**0.5
q, k, v = (x @ w_qkv).split(12, -1)
tril = torch.ones(5, 5, dtype=torch.bool).tril()


def attend(q, k, v, scale, mask=None, dim=-1):  # one head (or a stack of heads)
    scores = q @ k.transpose(-2, -1) * scale
    return (scores if mask is None else scores.masked_fill(~mask, -math.inf)).softmax(dim) @ v


def concat_heads(q, k, v, scale=0.5, mask=None, h=3, cut=None, dim=-1):  # h heads, concatenated
    size = 12 // h
    cut = cut or (lambda t, j: t[..., size * j : size * (j + 1)])
    return torch.cat(
        [attend(cut(q, j), cut(k, j), cut(v, j), scale, mask, dim) for j in range(h)], -1
    )


def heads(t):  # [2, 5, 12] -> [2, 3, 5, 4], the right cut
    return t.view(2, 5, 3, 4).transpose(1, 2)


def across_positions(t):  # [2, 5, 12] viewed as [2, 3, 5, 4]: this cut runs across positions
    return t.reshape(2, 3, 5, 4)


stacked = attend(heads(q), heads(k), heads(v), 0.5)  # [2, 3, 5, 4]
expected = concat_heads(q, k, v) @ w_out
check_shape(multi_head_attention(x, w_qkv, w_out, 3), (2, 5, 12), "multi_head_attention of x [2, 5, 12]",
            hint="concatenate the heads back to [batch, n, d] before @ w_out")  # fmt: skip
check_close(
    multi_head_attention(x, w_qkv, w_out, 3), expected, "multi_head_attention, d = 12, 3 heads, no mask",
    hint="3 heads of 4 features: head j attends with q, k, v[..., 4j:4j+4], scaled by 1/sqrt(4); heads concatenated, then @ w_out",
    mistakes={
        "scale each head's scores by 1/sqrt(d / n_heads), the size of the vectors it dots, not 1/sqrt(d)":
            concat_heads(q, k, v, 12**-0.5) @ w_out,
        "heads split along the wrong axis: cut the features, view(b, n, h, d/h).transpose(1, 2); view(b, h, n, d/h) mixes positions":
            attend(across_positions(q), across_positions(k), across_positions(v), 0.5).reshape(2, 5, 12) @ w_out,
        "heads split along the wrong axis: head j holds the contiguous features j*d/h ... (j+1)*d/h - 1, view(b, n, h, d/h), "
        "not every h-th feature, view(b, n, d/h, h)": concat_heads(q, k, v, cut=lambda t, j: t[..., j::3]) @ w_out,
        "heads split along the wrong axis: head j holds the contiguous features j*d/h ... (j+1)*d/h - 1 "
        "(view(b, n, h, d/h).transpose(1, 2)), not every h-th feature":
            concat_heads(q, k, v, cut=lambda t, j: t[..., j::3]).view(2, 5, 3, 4).transpose(-1, -2).reshape(2, 5, 12) @ w_out,
        "heads merged in the wrong order: transpose [b, h, n, d/h] back to [b, n, h, d/h] before reshaping to [b, n, d]":
            stacked.reshape(2, 5, 12) @ w_out,
        "heads merged in the wrong order: concatenate the heads one after the other along the features, "
        "transpose(1, 2).reshape(b, n, d)": stacked.permute(0, 2, 3, 1).reshape(2, 5, 12) @ w_out,
        "the projection is missing: the concatenated heads go through @ w_out": concat_heads(q, k, v),
        "(x @ w_qkv).split(d, -1) gives q, k, v in that order": concat_heads(k, q, v) @ w_out,
        "the softmax runs over the keys (the last dim of q k^T), not over the queries": concat_heads(q, k, v, dim=-2) @ w_out,
    },
)  # fmt: skip
check_close(
    multi_head_attention(x, w_qkv, w_out, 3, tril), concat_heads(q, k, v, mask=tril) @ w_out,
    "multi_head_attention with a causal mask",
    hint="in every head, set the scores where the mask is False (True means allowed) to -inf before the softmax",
    mistakes={"the mask is ignored: set the scores where it is False to -inf before the softmax": expected},
)  # fmt: skip
check_close(multi_head_attention(x, w_qkv, w_out, 1, tril), attend(q, k, v, 12**-0.5, tril) @ w_out,
            "multi_head_attention with one head: lecture 06's attention, then @ w_out",
            hint="with one head, d_h = d: softmax(q k^T / sqrt(d), masked) v @ w_out")  # fmt: skip
check_close(multi_head_attention(x, w_qkv, w_out, 12, tril), concat_heads(q, k, v, 1.0, tril, h=12) @ w_out,
            "multi_head_attention with 12 heads of one feature", hint="n_heads heads of d / n_heads features each")  # fmt: skip

# %% [markdown]
# ## 5. Nucleus (top-p) filtering (2 points)
#
# Sampling from the full softmax now and then picks one of the thousands of unlikely
# tokens, and one bad token derails the rest. Nucleus sampling (Holtzman et al. 2020)
# samples only from the **smallest set of most probable tokens whose probabilities sum to
# at least `p`**: sort the probabilities in decreasing order and keep tokens until the
# running sum reaches `p`, the token that **crosses** `p` included. The most probable
# token is always kept, so at least one token survives. Return the logits with every
# other token set to $-\infty$ (the kept ones unchanged), over the last dim, any leading
# dims.


# %%
def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering over the last dim: the smallest set of most probable tokens whose
    probabilities sum to at least ``p`` keeps its logits (the most probable token always
    does), the others are set to ``-inf``; same shape as ``logits``."""
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST top_p_filter (2 points)
# sorted: 0.4, 0.3, 0.15 (the sum reaches 0.85), 0.1, 0.05
probs = torch.tensor([0.1, 0.4, 0.05, 0.3, 0.15])
logits = probs.log() + 1.0


def keeping(*kept, value=-math.inf):  # the logits, every token but those kept set to value
    dropped = ~torch.isin(torch.arange(5), torch.tensor(kept, dtype=torch.long))
    return logits.masked_fill(dropped, value)


check_close(
    top_p_filter(logits, 0.3), keeping(1), "top_p_filter at p = 0.3, below the top probability 0.4",
    hint="the most probable token is always kept: it alone reaches p = 0.3",
    mistakes={"keeping none: the most probable token alone reaches p = 0.3 (it crosses p), so it stays": keeping()},
)  # fmt: skip
check_close(
    top_p_filter(logits, 0.8), keeping(1, 3, 4), "top_p_filter at p = 0.8",
    hint="keep the most probable tokens until their probabilities sum to at least p, the token that crosses p included",
    mistakes={
        "keep the token that crosses p: 0.4 + 0.3 = 0.7 falls short of 0.8, so 0.15 is needed too": keeping(1, 3),
        "sort the probabilities in decreasing order: the nucleus is the most probable tokens": keeping(0, 2, 4),
        "set the dropped logits to -inf (probability 0 after the softmax), not to 0": keeping(1, 3, 4, value=0.0),
    },
)  # fmt: skip
check_close(top_p_filter(logits, 0.0), keeping(1), "top_p_filter at p = 0 (greedy)",
            hint="the most probable token is always kept, even at p = 0")  # fmt: skip
check_close(top_p_filter(logits, 0.99), logits.clone(), "top_p_filter at p = 0.99 (every token needed)",
            hint="0.4 + 0.3 + 0.15 + 0.1 = 0.95 < 0.99: the last token crosses p and is kept")  # fmt: skip
# two tokens of probability exactly 1/2: the first alone reaches p = 1/2
halves = torch.tensor([[0.0, -math.inf, 0.0], [5.0, -math.inf, 5.0]])
check_close(torch.isfinite(top_p_filter(halves, 0.5)).sum(-1), torch.tensor([1, 1]), "tokens kept of [1/2, 0, 1/2] at p = 1/2",
            hint="keep tokens until the sum is AT LEAST p: one token of 1/2 already reaches p = 1/2")  # fmt: skip
torch.manual_seed(0)
rows = 2 * torch.randn(2, 3, 8)
expected = rows.clone()
for row, out in zip(rows.view(-1, 8), expected.view(-1, 8), strict=True):
    total = 0.0
    for token in row.softmax(-1).argsort(descending=True).tolist():
        if total >= 0.9:
            out[token] = -math.inf
        total += row.softmax(-1)[token].item()
check_close(top_p_filter(rows, 0.9), expected, "top_p_filter of [2, 3, 8] logits at p = 0.9",
            hint="filter each row of the last dim on its own: sort, cumsum and compare over dim=-1, then put the tokens back in place")  # fmt: skip

# %% [markdown]
# ## 6. BERT's masked-LM corruption (2 points)
#
# BERT (Devlin et al. 2019) trains a bidirectional transformer to fill in blanks. Each
# position is **chosen** with probability `p` (15%); of the chosen positions, **80%**
# become `mask_id`, **10%** a token drawn uniformly from `[0, vocab_size)`, and **10%**
# stay as they are (so the model cannot tell which tokens to trust, and learns a
# representation of every token, not only of `[MASK]`). The loss is computed at the
# chosen positions only: `labels` holds the original token there and `-100` (which
# `F.cross_entropy` ignores by default) everywhere else. Return `(inputs, labels)`, both
# shaped like `tokens`. Draw every random number with `generator` (`torch.rand(...,
# generator=generator)`, `torch.randint(..., generator=generator)`).


# %%
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
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST mask_tokens (2 points)
tokens = torch.randint(1, 1000, (400, 500))  # 200,000 positions; mask_id 0 is none of them
inputs, labels = mask_tokens(tokens, 0, 1000, generator=torch.Generator().manual_seed(0))
check_shape(
    inputs,
    (400, 500),
    "mask_tokens' inputs",
    hint="return (inputs, labels), each shaped like tokens",
)
check_shape(
    labels,
    (400, 500),
    "mask_tokens' labels",
    hint="return (inputs, labels), each shaped like tokens",
)
chosen = labels != -100
check_close(
    chosen.float().mean(), 0.15, "fraction of positions with a label (chosen), p = 0.15", atol=0.005,
    hint="choose each position with probability p; labels = tokens there and -100 everywhere else",
    mistakes={
        "labels kept at unchosen positions: labels are -100 wherever no position was chosen (the loss ignores them)": 1.0,
        "labels at every chosen position, the 10% left unchanged and the 10% randomized too, not only the masked ones": 0.12,
    },
)  # fmt: skip
check_close(
    (labels[chosen] != tokens[chosen]).sum(), 0, "chosen positions whose label is not the original token",
    hint="labels = the original tokens at the chosen positions (not the corrupted inputs)",
)  # fmt: skip
check_close((inputs != tokens)[~chosen].sum(), 0, "unchosen positions whose input changed",
            hint="only the chosen positions are corrupted; the others keep their token")  # fmt: skip
masked = (inputs == 0)[chosen].float().mean()
kept = (inputs == tokens)[chosen].float().mean()
check_close(
    masked, 0.8, "fraction of the chosen positions that became mask_id", atol=0.012,
    hint="BERT's 80/10/10: 80% of the chosen positions become mask_id",
    mistakes={
        "BERT's 80/10/10: only 80% of the chosen become mask_id; 10% a random token and 10% stay": 1.0,
        "BERT's 80/10/10: 80% become mask_id, 10% a random token; not 10% mask_id": 0.1,
    },
)  # fmt: skip
check_close(
    kept, 0.1 + 0.1 / 1000, "fraction of the chosen positions left unchanged", atol=0.008,
    hint="BERT's 80/10/10: 10% of the chosen positions keep their token (and 1 in vocab_size random tokens is the same one)",
    mistakes={
        "BERT's 80/10/10: 10% of the chosen stay unchanged, 10% become a random token (not 20% random)": 0.0002,
        "BERT's 80/10/10: 10% of the chosen become a random token, not 20% left unchanged": 0.2,
        "BERT's 80/10/10: of the 20% not masked, half become a random token (0.5 of the rest, not 0.1)": 0.18,
    },
)  # fmt: skip
random_tokens = inputs[chosen & (inputs != 0) & (inputs != tokens)]
check_close(random_tokens.float().mean(), 499.5, "mean of the random replacement tokens (uniform on 0..999)", atol=25,
            hint="the random token is uniform on [0, vocab_size): torch.randint(vocab_size, shape, generator=generator)")  # fmt: skip
# The draws come from the generator given, whatever the global random state.
small = torch.randint(1, 50, (20, 50))
torch.manual_seed(1)
first = torch.cat(mask_tokens(small, 0, 50, 0.5, torch.Generator().manual_seed(3)))
torch.manual_seed(2)
again = torch.cat(mask_tokens(small, 0, 50, 0.5, torch.Generator().manual_seed(3)))
check_close((first != again).sum(), 0, "entries that differ between two calls with generators seeded alike",
            hint="draw every random number with the generator given: torch.rand(..., generator=generator), torch.randint(..., generator=generator)")  # fmt: skip

# %% [markdown]
# ## 7. The log-probability of a response (2 points)
#
# Instruction tuning and preference learning score a **response** given its **prompt**:
# the sequence `tokens [batch, n]` is the prompt (positions $0 \dots$ `start - 1`)
# followed by the response (positions `start` $\dots n - 1$), and the model's
# `logits [batch, n, V]` were computed on the whole sequence. Return, per example,
#
# $$\log p(\text{response} \mid \text{prompt}) = \sum_{i \ge \mathtt{start}} \log p(x_i \mid x_{<i}),$$
#
# where $\log p(x_i \mid x_{<i})$ is read from the logits at position $i - 1$ (as in
# question 3). The prompt's own tokens are not counted; `start >= 1`. Return `[batch]`.


# %%
def response_log_prob(logits: torch.Tensor, tokens: torch.Tensor, start: int) -> torch.Tensor:
    """``sum_{i >= start} log p(tokens[:, i] | tokens[:, :i])`` per example, ``[batch]``,
    read from ``logits [batch, n, V]`` computed on ``tokens [batch, n]`` (position ``i - 1``
    predicts token ``i``); ``start >= 1``."""
    if not 1 <= start < tokens.shape[1]:
        raise ValueError(f"start: expected 1 <= start < n = {tokens.shape[1]}, got {start!r}")
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST response_log_prob (2 points)
torch.manual_seed(0)
logits, tokens = 2 * torch.randn(2, 7, 6), torch.randint(0, 6, (2, 7))
log_p = logits.log_softmax(-1)
# [2, 6]: token i read at position i - 1, i = 1 ... 6
token_log_p = torch.stack(
    [log_p[:, i - 1].gather(-1, tokens[:, i, None])[:, 0] for i in range(1, 7)], 1
)
# [2, 7]: position i scored on its own token (no shift)
at_itself = log_p.gather(-1, tokens[..., None])[..., 0]
check_close(
    response_log_prob(logits, tokens, 3), token_log_p[:, 2:].sum(1), "response_log_prob with the response at positions 3..6",
    hint="sum over i >= start of log_softmax(logits[:, i - 1])[tokens[:, i]]: position i - 1 predicts token i",
    mistakes={
        "off by one position: token i is predicted by the logits at position i - 1, so the response starts at logits[:, start - 1]": token_log_p[:, 3:].sum(1),
        "off by one position: the response's first token is tokens[:, start], predicted at position start - 1; "
        "the token at start - 1 is the prompt's": token_log_p[:, 1:].sum(1),
        "off by one position: the logits are not shifted; position i - 1 predicts token i": at_itself[:, 3:].sum(1),
        "including the prompt: sum over the response's tokens only, i >= start": token_log_p.sum(1),
        "a sum over the response's tokens (a log-probability of the whole response), not a mean": token_log_p[:, 2:].mean(1),
    },
)  # fmt: skip
check_close(response_log_prob(logits, tokens, 6), token_log_p[:, 5], "response_log_prob of the last token only (start = n - 1)",
            hint="start = n - 1: only the last token, read from the logits at position n - 2")  # fmt: skip
check_close(response_log_prob(logits, tokens, 1), token_log_p.sum(1), "response_log_prob from start = 1 (every token but the first)",
            hint="start = 1: every token after the first, each read from the position before it")  # fmt: skip
confident = torch.tensor([[[300.0, 0.0, -300.0], [0.0, 0.0, 0.0]]])
check_close(
    response_log_prob(confident, torch.tensor([[0, 2]]), 1), -600.0, "response_log_prob of a token with probability e^-600",
    hint="log(softmax(l)) underflows: use log_softmax (or F.cross_entropy), which computes it in one stable step",
)  # fmt: skip

# %% [markdown]
# ## 8. Direct preference optimization (2 points)
#
# RLHF fits a reward model to human preferences, then maximizes the reward with a KL
# penalty to the reference model. DPO (Rafailov et al. 2023) shows that the optimum of
# that objective makes $\beta \log \frac{\pi(y \mid x)}{\pi_{\mathrm{ref}}(y \mid x)}$ the
# reward, and fits it to the preferences directly: for a prompt with a chosen response
# $y_w$ and a rejected one $y_l$,
#
# $$\mathcal{L}_{\mathrm{DPO}} = -\log \sigma\Big(\beta \Big[\big(\log \pi(y_w) - \log \pi_{\mathrm{ref}}(y_w)\big) - \big(\log \pi(y_l) - \log \pi_{\mathrm{ref}}(y_l)\big)\Big]\Big),$$
#
# averaged over the batch. The inputs are per-example sequence log-probabilities
# (question 7's), `[batch]` each. Compute $\log\sigma$ stably: `torch.log(torch.sigmoid(z))`
# is $\log 0 = -\infty$ once $z < -104$ in float32; `F.logsigmoid` is not.


# %%
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
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST dpo_loss (2 points)
policy_chosen, policy_rejected = (
    torch.tensor([-12.0, -30.0, -8.0]),
    torch.tensor([-15.0, -22.0, -9.0]),
)
ref_chosen, ref_rejected = torch.tensor([-14.0, -25.0, -7.0]), torch.tensor([-13.0, -24.0, -10.0])


def neg_log_sigmoid(z):  # -log sigmoid(z), for moderate z
    return torch.log1p(torch.exp(-z))


margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)  # [5, -7, -2]
check_close(
    dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.5), neg_log_sigmoid(0.5 * margin).mean(),
    "dpo_loss at beta = 0.5",
    hint="-log sigmoid(beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))), averaged over the batch",
    mistakes={
        "the sign is swapped: the loss must fall as the chosen response gains on the rejected one, -log sigmoid(+beta * margin)":
            neg_log_sigmoid(-0.5 * margin).mean(),
        "the reference terms are missing: the margin is (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)":
            neg_log_sigmoid(0.5 * (policy_chosen - policy_rejected)).mean(),
        "the reference terms are subtracted: the margin is (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)":
            neg_log_sigmoid(0.5 * (policy_chosen + ref_chosen - policy_rejected - ref_rejected)).mean(),
        "beta multiplies the whole margin, inside the sigmoid": neg_log_sigmoid(margin).mean(),
        "the batch mean, not the sum": neg_log_sigmoid(0.5 * margin).sum(),
    },
)  # fmt: skip
# a policy far off on one pair: beta * margin = -300, where sigmoid underflows to 0 in float32
check_close(
    dpo_loss(torch.tensor([-3000.0, -10.0]), torch.tensor([0.0, -10.0]), torch.zeros(2), torch.zeros(2), beta=0.1),
    (300 + math.log(2)) / 2, "dpo_loss where beta * margin = -300 on one pair",
    hint="log(sigmoid(z)) underflows to log 0 = -inf for z < -104: use F.logsigmoid (or -F.softplus(-z))",
)  # fmt: skip
check_close(dpo_loss(torch.tensor([-5.0]), torch.tensor([-9.0]), torch.tensor([-5.0]), torch.tensor([-9.0])), math.log(2),
            "dpo_loss of a policy equal to its reference (log 2)", hint="a policy equal to the reference has margin 0: -log sigmoid(0) = log 2")  # fmt: skip

# %% [markdown]
# ## 9. A LoRA linear layer (2 points)
#
# Fine-tuning every weight of a large model costs a copy of every weight per task. LoRA
# (Hu et al. 2021) freezes the weight $W$ `[out, in]` and learns a low-rank update
# $\Delta W = \frac{\alpha}{r} B A$ with `lora_a` $= A$ `[r, in]` and `lora_b` $= B$
# `[out, r]`, $r \ll \min(\text{in}, \text{out})$ (the rank, `lora_a.shape[0]`). The
# layer computes
#
# $$y = x W^\top + b + \frac{\alpha}{r}\,(x A^\top) B^\top,$$
#
# never forming $\Delta W$: $x$ goes through $A$ (down to $r$ features), then $B$ (up to
# `out`). $B$ starts at zero, so the adapted model starts as the pretrained one; the
# scale $\alpha / r$ keeps the update's size from depending on the rank. `bias` may be
# `None`; `x` is `[..., in]`.


# %%
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
    # YOUR CODE HERE
    raise NotImplementedError()


# %% tags=["graded"] points=2
# TEST lora_linear (2 points)
torch.manual_seed(0)
x, weight, bias = torch.randn(2, 3, 6), torch.randn(6, 6), torch.randn(6)
lora_a, lora_b = torch.randn(2, 6), torch.randn(6, 2)  # rank 2, alpha 4: scale 2
base = x @ weight.T + bias
update = x @ lora_a.T @ lora_b.T
check_close(
    lora_linear(x, weight, bias, lora_a, lora_b, 4.0), base + 2 * update, "lora_linear, in = out = 6, rank 2, alpha = 4",
    hint="x @ weight.T + bias + (alpha / r) * (x @ lora_a.T) @ lora_b.T, with r = lora_a.shape[0]",
    mistakes={
        "the alpha / r scale is missing: (alpha / r) * (x @ lora_a.T) @ lora_b.T": base + update,
        "the scale is alpha / r, not alpha": base + 4 * update,
        "the scale is alpha / r with r = lora_a.shape[0] (the rank), not the input size": base + 4 / 6 * update,
        "B and A swapped: x goes through A first (down to r features), then B: (x @ lora_a.T) @ lora_b.T": base + 2 * (x @ lora_b @ lora_a),
        "the bias is missing: x @ weight.T + bias": base - bias + 2 * update,
    },
)  # fmt: skip
wide_a, wide_b, w53 = torch.randn(3, 5), torch.randn(4, 3), torch.randn(4, 5)
x5 = torch.randn(7, 5)
check_close(lora_linear(x5, w53, None, wide_a, wide_b, 1.5), x5 @ w53.T + 0.5 * x5 @ wide_a.T @ wide_b.T,
            "lora_linear, in = 5, out = 4, rank 3, alpha = 1.5, no bias",
            hint="bias may be None (F.linear(x, weight, bias) takes it); weight is [out, in], lora_a [r, in], lora_b [out, r]")  # fmt: skip
check_close(lora_linear(x, weight, bias, lora_a, torch.zeros(6, 2), 4.0), base, "lora_linear with B = 0 (LoRA's initialization)",
            hint="with lora_b = 0 the layer is the pretrained one: x @ weight.T + bias")  # fmt: skip

# %% [markdown]
# ## 10. Your GPT on Shakespeare (2 points)
#
# Tiny Shakespeare (1,115,394 characters; the first 90% to train on, the last 10% to
# validate) as 65 characters. A GPT of two pre-norm blocks, 64 features, 4 heads, a
# context of 32 characters (about 110,000 parameters), whose attention is your
# `multi_head_attention` under a causal mask, trains with your `lm_loss` for 1,200 steps
# of 32 random windows (AdamW, a one-cycle learning rate; 20 to 40 seconds on one CPU
# thread). Its validation loss on the first 32,768 characters of the validation split
# (1,024 windows of 32) must be at most **2.0 nats per character** (the solution
# reaches 1.89); for scale, the cell prints a bigram model's (counted on the
# training split) and the uniform model's, $\log 65 = 4.17$. Then the model writes, with
# your `top_p_filter`.


# %%
class Block(nn.Module):
    """A pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.w_qkv = nn.Parameter(torch.randn(d, 3 * d) / math.sqrt(d))
        self.w_out = nn.Parameter(torch.randn(d, d) / math.sqrt(4 * d))
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, attention, mask: torch.Tensor) -> torch.Tensor:
        x = x + attention(self.norm1(x), self.w_qkv, self.w_out, self.n_heads, mask)
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab=65, d=64, n_heads=4, layers=2, context=32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.position = nn.Parameter(0.02 * torch.randn(context, d))
        self.blocks = nn.ModuleList(Block(d, n_heads) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, tokens: torch.Tensor, attention=None) -> torch.Tensor:
        """Logits ``[B, n, V]`` of ``tokens [B, n]``, with ``attention`` (default: yours)."""
        attention = attention or multi_head_attention
        n = tokens.shape[1]
        mask = torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril()
        x = self.embed(tokens) + self.position[:n]
        for block in self.blocks:
            x = block(x, attention, mask)
        return self.head(self.norm(x))


chars = sorted(set(data.shakespeare("all")))  # 65 characters
index = {c: i for i, c in enumerate(chars)}
train_ids = torch.tensor([index[c] for c in data.shakespeare("train")])
# the first 32,768 validation characters as 1,024 windows of 32
val_windows = torch.tensor([index[c] for c in data.shakespeare("val")[:32_768]]).view(-1, 32)

# for scale: a bigram model, counted on the training split (add-one smoothing)
counts = torch.ones(65, 65).index_put_(
    (train_ids[:-1], train_ids[1:]), torch.ones(len(train_ids) - 1), accumulate=True
)
log_bigram = counts.div(counts.sum(1, keepdim=True)).log()
bigram_loss = -log_bigram[val_windows[:, :-1], val_windows[:, 1:]].mean()

torch.manual_seed(0)
gpt, steps, batch, context = TinyGPT(), 1200, 32, 32
optimizer = torch.optim.AdamW(gpt.parameters(), lr=5e-3, weight_decay=0.01)
schedule = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=5e-3, total_steps=steps, pct_start=0.1
)
windows = torch.Generator().manual_seed(0)
start_time = time.perf_counter()
for step in range(steps):
    starts = torch.randint(len(train_ids) - context, (batch,), generator=windows)
    x = train_ids[starts[:, None] + torch.arange(context)]  # [32, 32] random windows
    loss = lm_loss(gpt(x), x)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    if step % 300 == 0 or step == steps - 1:
        print(f"step {step:4d}  training loss {loss.item():.3f}")
gpt.eval()
with torch.no_grad():
    val_loss = lm_loss(gpt(val_windows), val_windows).item()
print(f"trained in {time.perf_counter() - start_time:.0f} s; validation loss: GPT {val_loss:.3f} nats per character, "
      f"bigram {bigram_loss:.3f}, uniform {math.log(65):.3f}")  # fmt: skip

# Writing: the last 32 characters in, one character out, from the nucleus at p = 0.9.
generator = torch.Generator().manual_seed(1)
text = [index[c] for c in "ROMEO:\n"]
with torch.no_grad():
    for _ in range(300):
        logits = gpt(torch.tensor([text[-context:]]))[0, -1]
        probs = F.softmax(top_p_filter(logits, 0.9), dim=-1)
        text.append(int(torch.multinomial(probs, 1, generator=generator)))
print("".join(chars[i] for i in text))


# %% tags=["graded"] points=2
# TEST shakespeare_gpt (2 points)
# The grade loads your trained weights into a copy of the GPT whose attention and loss are
# the course's own: an attention that lets a position see later ones (a missing or
# inverted mask) trains a model that reads the answer, and it fails here.
def validation_loss(state: dict, template: nn.Module = gpt) -> float:
    # the course's references (class grading: the judge's)
    from course_utils.language_models import lm_loss, multi_head_attention

    net = copy.deepcopy(template)
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        return lm_loss(net(val_windows, attention=multi_head_attention), val_windows).item()


check_score(
    gpt.state_dict(), validation_loss,
    "GPT on Shakespeare: validation loss in nats per character (by the course's attention and loss)", at_most=2.0,
    hint="check multi_head_attention (the causal mask, the heads, the 1/sqrt(d / n_heads) scale) and lm_loss "
    "(position i predicts token i + 1); then run the training cell again",
)  # fmt: skip
