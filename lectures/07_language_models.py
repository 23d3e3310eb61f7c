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
# # Lecture 07 — Language models: from next-token prediction to an assistant
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/lectures/07_language_models.ipynb)
#
# Lecture 06 built autoregressive models of pixels: the chain rule, a causal mask, one
# attention head over 64 positions. A **language model** is the same model over text, and
# at scale it is the most capable generative model there is. This lecture takes the
# transformer of lecture 06 to Shakespeare's text and then on to what turns a language
# model into an assistant, every step on a laptop CPU:
#
# 1. text as tokens: characters, words and byte-pair encoding; widget: BPE's merges;
# 2. the chain rule for text: n-gram models by counting; cross-entropy, perplexity,
#    bits per character;
# 3. GPT: multi-head causal self-attention, positions, the pre-norm block, weight tying;
#    a small GPT trained here, then the course's shipped one; widget: its heads' attention;
# 4. sampling: greedy, temperature, top-k and top-p, measured; widget: the same prompt
#    under each; a key/value cache, checked and timed;
# 5. BERT: the same transformer with another mask and objective; fill-in-the-blank, and
#    generation by iterative unmasking (MaskGIT); widget: unmasking step by step;
# 6. in-context learning: a small transformer learns each sequence's own rules from its
#    context, suddenly, and the induction head that does it forms in its attention;
# 7. from a language model to an assistant: instruction tuning, RLHF, and DPO derived and
#    run on a property a program can check;
# 8. LoRA: low-rank adapters against full fine-tuning, merged weights, what rank buys.
#
# Run time on a laptop CPU: about 3 minutes; the two big models are shipped checkpoints
# (`course pretrain gpt_shakespeare` and `course pretrain bert_shakespeare` retrain them).
#
# **Notation.** A text is a sequence of tokens $x = (x_1, \dots, x_n)$ from a vocabulary
# of size $V$, $x_{<i} = (x_1, \dots, x_{i-1})$. Logits at position $i$ score the *next*
# token, $x_{i+1}$, as in code (0-based: position $i$ predicts token $i + 1$).
# Attention follows Vaswani et al. (2017): $Q, K, V$ with head size $d_h = d / H$ for $H$
# heads of a width-$d$ model; where $V$ could mean both the vocabulary size and the values,
# the text says which. Alignment follows Ouyang et al. (2022) and Rafailov et al. (2023):
# a policy $\pi_\theta(y \mid x)$, a reference $\pi_{\mathrm{ref}}$, a reward $r(x, y)$.

# %%
import copy
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import checkpoints, data, widgets
from course_utils import language_models as lm

torch.manual_seed(0)
train_text, val_text = data.shakespeare("train"), data.shakespeare("val")
chars = lm.tokenizer()  # the 65 characters of the whole text
train_ids, val_ids = lm.shakespeare_ids("train"), lm.shakespeare_ids("val")
print(f"tiny Shakespeare: {len(train_text):,} training and {len(val_text):,} validation "
      f"characters, {chars.vocab_size} distinct")  # fmt: skip
print(train_text[:240])

# %% [markdown]
# ## 1. Text as tokens
#
# A model reads integers, so text is first cut into **tokens** from a fixed vocabulary.
# Three choices:
#
# - **Characters**: a tiny vocabulary (65 here), no unknown words, but long sequences —
#   every attention layer pays for each character, and the model must learn spelling.
# - **Words**: short sequences, but a huge vocabulary, and a word unseen in training
#   has no token at all.
# - **Byte-pair encoding** (BPE; Sennrich et al. 2016, from Gage's 1994 compressor; GPT-2
#   runs it on bytes): start from characters and repeatedly **merge the most frequent
#   adjacent pair** into a new token. Frequent words become single tokens, rare words
#   stay spelled in pieces, and nothing is ever unknown. The vocabulary size is a knob:
#   the number of merges.
#
# The course's `train_bpe` counts pairs within words only (a word keeps its leading
# space, as GPT-2's pre-tokenizer does), so a merge never crosses a space. We learn 256
# merges on the first 200,000 training characters and measure the compression on the
# validation text.

# %%
t0 = time.perf_counter()
bpe = lm.train_bpe(train_text[:200_000], merges=256)
print(f"256 merges learned in {time.perf_counter() - t0:.1f} s; the first 12:",
      [bpe.token_text(len(bpe.chars) + j) for j in range(12)])  # fmt: skip
print("the last 8:", [bpe.token_text(len(bpe.chars) + j) for j in range(248, 256)])

probe_text = "".join(c for c in val_text[:30_000] if c in bpe.chars)
merge_counts = [0, 8, 16, 32, 64, 128, 256]
chars_per_token = []
for k in merge_counts:
    sub = lm.Bpe(bpe.chars, bpe.merges[:k])  # the tokenizer after the first k merges
    chars_per_token.append(len(probe_text) / len(sub.encode(probe_text)))
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot([len(bpe.chars) + k for k in merge_counts], chars_per_token, "o-")
ax.set_xlabel("vocabulary size (characters + merges)")
ax.set_ylabel("characters per token")
ax.set_title("BPE compression on the validation text")
ax.grid(alpha=0.3)
plt.show()
print(
    "characters per token:",
    dict(zip(merge_counts, [round(c, 2) for c in chars_per_token], strict=True)),
)

# %% [markdown]
# Each doubling of the merges buys a little more compression. The first merges join the
# pairs inside the most frequent words (" t", "he", then " the"); the late ones make whole
# words, and speakers' names, which repeat before every speech, become single tokens.
# What a tokenizer does to a **rare** word: a frequent word is one or two tokens, a rare
# name is spelled in small pieces. A model sees fewer, richer tokens for common text and
# pays more positions for rare text.

# %%
for word in [" the", " king", " love", " Bolingbroke", " unsubstantial"]:
    print(f"{word!r:18} -> {[bpe.token_text(t) for t in bpe.encode(word)]}")

# %% [markdown]
# ### Widget: BPE's merges, one at a time
#
# A sentence encoded with the first $k$ merges: each box is one token. Move the slider
# and watch frequent pairs fuse first.

# %%
sentence = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind"


def bpe_step_figure(merges: int) -> plt.Figure:
    sub = lm.Bpe(bpe.chars, bpe.merges[:merges])
    tokens = [sub.token_text(t) for t in sub.encode(sentence)]
    new = "" if merges == 0 else f"; merge {merges}: {sub.token_text(sub.vocab_size - 1)!r}"
    return lm.tokens_figure(tokens, f"after {merges} merges: {len(tokens)} tokens{new}")


# %% tags=["nbval-ignore-output"]
widgets.figure_widget(bpe_step_figure, merges=(0, 96, 1))

# %% [markdown]
# The rest of the lecture uses **characters** as tokens, as nanoGPT's `shakespeare_char`
# does: the corpus has one million characters, too few to train embeddings for
# thousands of tokens, and a character model's samples show plainly what it has learned.
#
# ## 2. The chain rule for text, and counting
#
# As in lecture 06, any distribution over sequences factorizes exactly:
#
# $$p(x_1, \dots, x_n) = \prod_{i=1}^{n} p(x_i \mid x_{<i}).$$
#
# A model is judged by the **cross-entropy** on held-out text, the mean negative
# log-likelihood per token, $H = -\frac{1}{n} \sum_i \log p(x_i \mid x_{<i})$ in nats.
# Two other units of the same number: **bits per character** $H / \ln 2$ (the length a
# compressor driven by the model would need) and **perplexity** $e^{H}$, the number of
# equally likely choices the model is as uncertain as. A uniform guess over 65 characters
# has $H = \ln 65 = 4.17$ nats, perplexity 65.
#
# The oldest language model cuts the context: an **n-gram** model conditions on the last
# $n - 1$ tokens only and estimates each conditional by counting,
# $p(x_i \mid x_{i-n+1:i-1}) = \frac{c(x_{i-n+1:i}) + \alpha}{c(x_{i-n+1:i-1}) + \alpha V}$,
# with **add-$\alpha$ smoothing** so that an n-gram never seen in training does not get
# probability 0 (and the validation loss infinity). We choose $\alpha$ on the last
# 100,000 training characters (counts from the rest), then count on the whole training
# split and measure on the validation split.

# %%
V = chars.vocab_size


def ngram_counts(ids: torch.Tensor, n: int) -> torch.Tensor:
    """c(x_1 … x_n) for every n-gram of ids [N]: a [V] * n tensor of counts."""
    index = torch.zeros(len(ids) - n + 1, dtype=torch.long)
    for j in range(n):  # the n-gram's id in base V
        index = index * V + ids[j : len(ids) - n + 1 + j]
    return torch.bincount(index, minlength=V**n).view(*[V] * n).float()


def ngram_loss(counts: torch.Tensor, ids: torch.Tensor, alpha: float) -> float:
    """Mean -log p(x_i | the n - 1 before it) over ids [N], nats per character."""
    n = counts.dim()
    log_p = ((counts + alpha) / (counts + alpha).sum(-1, keepdim=True)).log()
    grams = [ids[j : len(ids) - n + 1 + j] for j in range(n)]
    return -log_p[tuple(grams)].mean().item()


fit, dev = train_ids[:-100_000], train_ids[-100_000:]
ngram_rows = []
for n in (1, 2, 3, 4):
    alpha = min((0.001, 0.01, 0.1, 1.0), key=lambda a: ngram_loss(ngram_counts(fit, n), dev, a))
    loss = ngram_loss(ngram_counts(train_ids, n), val_ids, alpha)
    ngram_rows.append((f"{n}-gram (alpha {alpha})", loss))
for name, loss in ngram_rows:
    print(f"{name:18} {loss:.3f} nats/char = {loss / math.log(2):.2f} bits/char, "
          f"perplexity {math.exp(loss):5.2f}")  # fmt: skip

# %% [markdown]
# Each extra character of context helps, but the table of counts grows as $V^n$
# ($65^4 \approx 1.8$ million cells for the 4-gram, most of them never seen): the data
# cannot fill it, and the 4-gram gains less than the 3-gram did. A 5-gram would need
# $65^5 \approx 1.2$ billion cells for one million characters of text. A neural model
# shares what it learns across contexts instead of keeping a cell for each.
#
# ## 3. GPT
#
# GPT (Radford et al. 2018, 2019) is lecture 06's causal transformer with a few changes
# that matter at depth. For a width-$d$ model with $H$ heads of size $d_h = d / H$:
#
# - **Embeddings.** $h^{(0)}_i = W_E[x_i] + W_P[i]$: a token embedding plus a learned
#   **position** embedding; attention itself is blind to order.
# - **Multi-head causal self-attention.** Each head $h$ projects
#   $Q_h = X W^Q_h$, $K_h = X W^K_h$, $V_h = X W^V_h$ (each $[n, d_h]$) and computes
#   $\mathrm{softmax}\big(Q_h K_h^\top / \sqrt{d_h} + M\big) V_h$ with $M_{ij} = -\infty$
#   for $j > i$: a position sees only itself and the past. The heads are concatenated and
#   mixed, $\mathrm{MHA}(X) = [\mathrm{head}_1, \dots, \mathrm{head}_H] W^O$. **Why
#   several heads**: one softmax gives one weighted average per position; $H$ heads can
#   look at $H$ different places at once (the previous character, the start of the
#   word, the speaker's name) for the cost of one head of width $d$.
# - **Pre-norm blocks** (GPT-2): $x \leftarrow x + \mathrm{MHA}(\mathrm{LN}(x))$, then
#   $x \leftarrow x + \mathrm{MLP}(\mathrm{LN}(x))$, the MLP $d \to 4d \to d$ with a GELU.
#   With the normalization inside the branch, the residual stream carries the signal
#   through many layers unchanged, and training tolerates larger learning rates (Xiong
#   et al. 2020).
# - **Weight tying** (Press & Wolf 2017): the output layer is $W_E^\top$, so the same
#   vector represents a token going in and coming out, and $V \cdot d$ parameters are saved.
#
# Training minimizes the next-token cross-entropy of section 2 on random windows of the
# text. `lm.Gpt` is this model (nanoGPT's layout); its attention is the exercise set's
# `multi_head_attention` with the causal mask, which we check on random weights:

# %%
tiny = lm.Gpt(vocab_size=V, block_size=32, n_layer=1, n_head=4, n_embd=64)
x = torch.randn(2, 10, 64)
attn = tiny.blocks[0].attn
causal = torch.ones(10, 10, dtype=torch.bool).tril()
ours = lm.multi_head_attention(x, attn.qkv.weight.T, attn.proj.weight.T, 4, causal)
print("multi_head_attention == the model's attention:",
      torch.allclose(ours, attn(x)[0], atol=1e-6))  # fmt: skip

# %% [markdown]
# A small GPT trained here, for 600 steps of 12 windows of 64 characters (2 blocks,
# 4 heads, width 128; the course's benchmark recipe, cut short): the training loss at each
# step, the loss on the first 16,384 validation characters every 100 steps, and a sample
# from the same prompt at four stages of training.

# %%
small = lm.Gpt(vocab_size=V, block_size=64, n_layer=2, n_head=4, n_embd=128)
recipe = lm.TrainConfig(steps=600, batch_size=12, lr=6e-3, min_lr=6e-4, warmup=50)
prompt = torch.tensor([chars.encode("ROMEO:\n")])
train_curve, val_curve, stage_samples = [], [], {}


def log_small(step: int, loss: float) -> None:
    train_curve.append(loss)
    if step + 1 in (1, 100, 200, 300, 400, 500, 600):
        val_curve.append((step + 1, lm.split_loss(small, val_ids[:16_384])))
    if step + 1 in (1, 100, 300, 600):
        drawn = lm.generate(small, prompt, 120, generator=torch.Generator().manual_seed(0))
        stage_samples[step + 1] = chars.decode(drawn[0].tolist())
        small.train()


info = lm.train_gpt(small, train_ids, recipe, log=log_small)
print(f"{small.parameter_count():,} parameters, {recipe.steps} steps in "
      f"{info['train_seconds']:.0f} s (sampling and validation included)")  # fmt: skip

fig, ax = plt.subplots(figsize=(6.5, 3.6))
ax.plot(range(1, len(train_curve) + 1), train_curve, lw=0.8, alpha=0.6, label="training batch")
ax.plot(*zip(*val_curve, strict=True), "o-", label="validation (16,384 characters)")
for name, loss in ngram_rows[1:3]:
    ax.axhline(loss, ls=":", color="grey")
    ax.text(recipe.steps, loss, name.split(" ")[0], ha="right", va="bottom", fontsize=9)
ax.set_xlabel("training step")
ax.set_ylabel("cross-entropy (nats per character)")
ax.set_title("A 2-block GPT learning Shakespeare")
ax.set_ylim(1.4, 4.5)
ax.legend()
plt.show()
for step, text in stage_samples.items():
    print(f"--- after {step} steps ---\n{text}\n")

# %% [markdown]
# After one step the model samples characters nearly uniformly; by step 100 it has the
# character frequencies and word lengths (the unigram and bigram statistics); by 300
# short real words; by 600 more of them, and a validation loss below the trigram's. The
# 4-gram, a table of counts of every context in the training text, is still ahead: a
# strong baseline at this budget, which the longer runs below pass.
#
# The **shipped model** (`course pretrain gpt_shakespeare`) is larger — 4 blocks of 6
# heads, width 192, context 128 — and trained for longer; its recipe, its loss on the
# whole validation split and its training time are in its checkpoint:

# %%
gpt = checkpoints.load_pretrained("gpt_shakespeare")
meta = gpt.meta["metrics"]
print(f"{gpt.parameter_count():,} parameters; trained on {meta['characters']:,.0f} characters "
      f"in {meta['train_seconds'] / 60:.1f} min on {meta['threads']:.0f} CPU threads")  # fmt: skip
gpt_val = lm.split_loss(gpt, val_ids)
bench_rows = {r["recipe"]: r for r in lm.load_gpt_bench()["rows"]}
rows = ngram_rows[1:] + [
    ("GPT trained above", val_curve[-1][1]),
    ("nanoGPT CPU recipe (bench)", bench_rows["nanogpt-cpu"]["val_loss"]),
    ("course bench recipe", bench_rows["course"]["val_loss"]),
    ("shipped GPT", gpt_val),
]
for name, loss in rows:
    print(f"{name:28} {loss:.3f} nats/char  {loss / math.log(2):.2f} bits/char  "
          f"perplexity {math.exp(loss):.2f}")  # fmt: skip

# %% [markdown]
# (The small GPT's number is on the first 16,384 validation characters, the others on
# the whole split.) Read the shipped model's perplexity as a count: at each character it
# is as unsure as a fair choice among that many.
#
# ### What the heads look at
#
# The attention probabilities of every head of the shipped model on one line of the
# validation text (`lm.attention_maps` recomputes them from each block's input). Row $i$
# is the distribution the query at character $i$ puts over the characters up to $i$.
# Below, one pattern measured: the mean attention each head gives the **previous
# character**. One head of the first layer does little else (a bigram feature, built in
# one layer); the widget shows the others, some of which look back to the start of the
# word or the line, and some of which spread over everything before.

# %%
head_line = "ROMEO:\nWhat says he now?"
head_maps = lm.attention_maps(gpt, torch.tensor([chars.encode(head_line)]))[0]  # [L, H, n, n]
prev = torch.stack([head_maps[:, :, i, i - 1] for i in range(1, len(head_line))], -1).mean(-1)
print("mean attention to the previous character, layer x head:\n", prev.numpy().round(2))

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda layer: lm.attention_figure(head_maps, head_line, layer - 1),
    layer=(1, gpt.config.n_layer, 1),
)

# %% [markdown]
# ## 4. Sampling
#
# A language model gives a distribution over the next token; a **decoding** rule turns it
# into text. With logits $z$ and $p = \mathrm{softmax}(z)$:
#
# - **Greedy**: $\arg\max_v p_v$ at each step. Deterministic, and the most likely
#   *continuation* token by token is not the most likely *text*: it falls into loops.
# - **Temperature** $T$: sample from $\mathrm{softmax}(z / T)$. $T < 1$ sharpens toward
#   greedy, $T > 1$ flattens toward uniform; $T = 1$ is the model's own distribution.
# - **Top-k** (Fan et al. 2018): keep the $k$ largest logits, renormalize.
# - **Top-p, nucleus** (Holtzman et al. 2020): keep the smallest set of most probable
#   tokens whose probability reaches $p$ — few tokens where the model is sure, many where
#   it is not, which a fixed $k$ cannot do.
#
# We measure each rule on 32 samples that fill the context after the prompt "ROMEO:\n":
# **distinct-2**, the fraction of word pairs that are unique across the samples
# (diversity; Li et al. 2016); **repetition**, the fraction of 8-character strings in a
# sample that already occurred earlier in the same sample; **real words**, the fraction
# of words that occur in the training text; and the **model's NLL** of the sampled
# characters under $T = 1$ (how unsurprising the text is to the model: the lower, the
# safer).

# %%
known_words = set(train_text.split())


def sample_metrics(texts: list[str], drawn: torch.Tensor, start: int) -> dict[str, float]:
    """Diversity and quality of samples: their texts, and drawn [B, n] (prompt first)."""
    words = [t.split() for t in texts]
    pairs = [tuple(ws[i : i + 2]) for ws in words for i in range(len(ws) - 1)]
    repeated, grams = 0, 0
    for text in texts:  # 8-character strings seen earlier in the same sample
        seen = set()
        for i in range(len(text) - 7):
            repeated += text[i : i + 8] in seen
            seen.add(text[i : i + 8])
            grams += 1
    with torch.no_grad():  # nats per sampled character under the model at T = 1
        nll = -lm.response_log_prob(gpt(drawn), drawn, start) / (drawn.shape[1] - start)
    return {
        "distinct-2": len(set(pairs)) / max(1, len(pairs)),
        "repetition": repeated / max(1, grams),
        "real words": sum(w in known_words for ws in words for w in ws) / sum(map(len, words)),
        "model NLL": nll.mean().item(),
    }


START = "ROMEO:\n"
prompt = torch.tensor([chars.encode(START)] * 32)
new_tokens = gpt.config.block_size - prompt.shape[1]  # the whole context, all cached
rules = {("greedy", "none"): {"greedy": True}}
for temperature in (0.5, 0.8, 1.0, 1.3):
    for name, cut in (("none", {}), ("top-k 10", {"top_k": 10}), ("top-p 0.9", {"top_p": 0.9})):
        rules[temperature, name] = {"temperature": temperature, **cut}
samples, metrics_by_rule = {}, {}
t0 = time.perf_counter()
for key, rule in rules.items():
    drawn = lm.generate(gpt, prompt, new_tokens, generator=torch.Generator().manual_seed(1), **rule)
    samples[key] = [chars.decode(row[prompt.shape[1] :].tolist()) for row in drawn]
    metrics_by_rule[key] = sample_metrics(samples[key], drawn, prompt.shape[1])
print(f"{len(rules)} rules x 32 samples x {new_tokens} characters in "
      f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
print(f"{'T':>5} {'filter':10}" + "".join(f"{k:>12}" for k in metrics_by_rule["greedy", "none"]))
for (temperature, name), m in metrics_by_rule.items():
    print(f"{temperature!s:>5} {name:10}" + "".join(f"{v:12.3f}" for v in m.values()))

# %% [markdown]
# Greedy decoding gives one text for all 32 samples (distinct-2 near zero: every sample
# has the same word pairs), the most repetition and the lowest NLL: the model's favourite
# text, which is rarely what text looks like. Lowering the temperature trades diversity
# for real words and a low NLL; raising it does the opposite, and at $T = 1.3$ invented
# words appear. From $T = 0.8$ up, top-k and top-p cut the tail of unlikely characters,
# where most misspellings come from: they keep most of the diversity with more real
# words (top-p more than top-k). At $T = 1$ without a filter the samples' NLL is below
# the validation loss: on real text the cross-entropy pays for everything the model gets
# wrong about Shakespeare ($H(p_{\text{data}}) + \mathrm{KL}(p_{\text{data}} \,\|\,
# p_\theta)$), on its own samples it does not.
#
# ### Widget: temperature, top-k and top-p on the same prompt
#
# The first two of each setting's 32 samples (the same random numbers for every setting).


# %% tags=["nbval-ignore-output"]
def sampling_figure(temperature: float, cut: str) -> plt.Figure:
    key = ("greedy", "none") if temperature == "greedy" else (temperature, cut)
    m = metrics_by_rule[key]
    return lm.text_figure(
        "\n\n".join(START + s for s in samples[key][:2]),
        f"T {temperature}, {cut}: distinct-2 {m['distinct-2']:.2f}, real words "
        f"{m['real words']:.2f}, model NLL {m['model NLL']:.2f}",
    )


widgets.figure_widget(
    sampling_figure,
    temperature=["greedy", 0.5, 0.8, 1.0, 1.3],
    cut=["none", "top-k 10", "top-p 0.9"],
)

# %% [markdown]
# ### A key/value cache
#
# Generating token $n + 1$ runs the model on all $n$ tokens, yet the keys and values of
# the first $n$ do not change (the mask keeps the past from seeing the future). A
# **KV cache** stores them: each step runs one new position through the network and
# attends to the stored keys, $O(n)$ work per step instead of $O(n^2)$ for the attention
# and $O(1)$ instead of $O(n)$ for everything else. `lm.generate(..., use_cache=False)`
# recomputes; we check that both give the same logits and time them on 120 new tokens.

# %%
seq = torch.tensor([chars.encode(val_text[:100])])
with torch.no_grad():
    full = gpt(seq)
    cache, stepped = None, []
    for i in range(seq.shape[1]):
        logits, cache = gpt.forward_cached(seq[:, i : i + 1], cache)
        stepped.append(logits)
print("max |cached - full| logit:", (torch.cat(stepped, 1) - full).abs().max().item())

start = torch.tensor([chars.encode("ROMEO:\n")])
times = {}
for use_cache in (True, False):
    t0 = time.perf_counter()
    for _ in range(3):
        out = lm.generate(gpt, start, 120, greedy=True, use_cache=use_cache)
    times[use_cache] = (time.perf_counter() - t0) / 3
    texts = chars.decode(out[0].tolist())
print(f"120 tokens: {1000 * times[True] / 120:.2f} ms/token with the cache, "
      f"{1000 * times[False] / 120:.2f} without ({times[False] / times[True]:.1f}x)")  # fmt: skip

# %% [markdown]
# ## 5. BERT: the same transformer, another mask and objective
#
# BERT (Devlin et al. 2019) keeps the block and drops the causal mask: every position
# attends to every other, left and right. That makes next-token prediction trivial (the
# answer is in the input), so the objective changes to the **masked language model**:
# choose 15% of the positions; of those, replace 80% by a `[MASK]` token, 10% by a random
# token, leave 10% unchanged; predict the original token at the chosen positions only.
# The random and unchanged 10%s matter because `[MASK]` never appears when the model is
# used: they make the model produce a good representation at *every* position, not only
# at masked ones.
#
# Our BERT is `lm.Gpt` with `causal=False` and one extra token id for `[MASK]`, trained
# with the exercise set's `mask_tokens` (`course pretrain bert_shakespeare`; a masked LM
# learns from only the chosen positions, so it needs many more steps than the GPT above
# to get going, and it ships). One departure from BERT: the masking rate $p$ is drawn per
# batch, uniformly between 15% and 100% (MaskGIT, Chang et al. 2022, draws it from a
# cosine schedule), so that the same model can also generate from a fully masked
# sequence below. The objective on one batch:

# %%
bert = checkpoints.load_pretrained("bert_shakespeare")
MASK = bert.config.vocab_size - 1  # the extra token, after the 65 characters
x, _ = lm.random_windows(val_ids, bert.config.block_size, 256, torch.Generator().manual_seed(1))
inputs, labels = lm.mask_tokens(x, MASK, V, p=0.15, generator=torch.Generator().manual_seed(2))
with torch.no_grad():
    logits = bert(inputs)
chosen = labels != -100  # the 15% chosen; labels are -100 (ignored) elsewhere
loss = F.cross_entropy(logits.reshape(-1, MASK + 1), labels.reshape(-1))
bert_acc = (logits.argmax(-1)[chosen] == labels[chosen]).float().mean().item()
print(f"{chosen.float().mean():.1%} of positions chosen; of those "
      f"{(inputs[chosen] == MASK).float().mean():.1%} masked, "
      f"{(inputs[chosen] == labels[chosen]).float().mean():.1%} unchanged")  # fmt: skip
print(f"masked-LM loss {loss:.2f} nats per chosen character, accuracy {bert_acc:.1%} "
      f"({bert.parameter_count():,} parameters, trained "
      f"{bert.meta['metrics']['train_seconds'] / 60:.0f} min)")  # fmt: skip

# %% [markdown]
# This masked LM has the architecture of the benchmark's GPT (2 blocks, width 128,
# context 64). Seen from both sides, a masked character is easier to guess than the next
# character seen from the left: compare the loss above with that GPT's on the next
# character (the table in section 3). A whole word is harder: here one is blanked out of
# a famous line and filled in one pass.


# %%
def show_masked(ids: torch.Tensor) -> str:
    """ids [1, n] as text, each [MASK] drawn as an underscore."""
    return "".join("_" if t == MASK else chars.chars[t] for t in ids[0].tolist())


famous = "To be, or not to be, that is the question: whether 'tis nobler"
blank = famous.index("question")
ids = torch.tensor([chars.encode(famous)])
masked = ids.clone()
masked[0, blank : blank + 8] = MASK
with torch.no_grad():
    guess = bert(masked).argmax(-1)
filled = masked.clone()
filled[0, blank : blank + 8] = guess[0, blank : blank + 8]
print("masked:", show_masked(masked))
print(
    "filled:",
    chars.decode(filled[0].tolist()).replace("\n", "¶"),
    "(each blank independently, in one pass)",
)

# %% [markdown]
# **Why a masked LM is not a left-to-right generator.** BERT predicts each masked
# position *independently* given the visible ones: it models the marginals
# $p(x_i \mid x_{\text{visible}})$, not a factorization of $p(x)$, so there is no exact
# likelihood and no ancestral sampling. Filling many blanks at once in one pass gives
# each blank its own most likely character, and the characters need not agree with each
# other.
#
# **Iterative unmasking** makes one anyway (MaskGIT, Chang et al. 2022; discrete
# diffusion, Austin et al. 2021, is the same idea with a noise schedule): start from all
# `[MASK]`, predict every masked position, **keep the most confident few**, and repeat
# with those now visible; after $S$ steps nothing is masked. Each step conditions on the
# earlier choices, which restores the dependence between positions that one pass lacks.
# Below: the same blank filled in 8 rounds (three times, with different random draws),
# then a whole line generated from "ROMEO:" alone.


# %%
def unmask(model: lm.Gpt, ids: torch.Tensor, steps: int, generator: torch.Generator) -> list:
    """MaskGIT's decoding of ids [1, n] (MASK where unknown) in `steps` rounds: each round
    samples every masked position and keeps the most confident ones (a cosine schedule of
    how many stay masked). Returns the sequence after each round."""
    ids = ids.clone()
    history = [ids.clone()]
    total = int((ids == MASK).sum())
    for s in range(1, steps + 1):
        masked = ids == MASK
        with torch.no_grad():
            probs = model(ids)[..., :V].softmax(-1)  # never sample [MASK] itself
        drawn = torch.multinomial(probs[0], 1, generator=generator)[:, 0][None]
        confidence = probs.gather(-1, drawn[..., None])[..., 0].masked_fill(~masked, -1.0)
        keep_masked = int(total * math.cos(math.pi / 2 * s / steps))
        reveal = int(masked.sum()) - keep_masked
        top = confidence[0].topk(reveal).indices
        ids[0, top] = drawn[0, top]
        history.append(ids.clone())
    return history


fills = [unmask(bert, masked, steps=8, generator=torch.Generator().manual_seed(k))[-1]
         for k in range(3)]  # fmt: skip
for ids in fills:
    print("iterative fill:", chars.decode(ids[0].tolist()))

start = torch.full((1, bert.config.block_size), MASK)
start[0, :7] = torch.tensor(chars.encode("ROMEO:\n"))
history = unmask(bert, start, steps=8, generator=torch.Generator().manual_seed(0))
for s in (0, 2, 4, 8):
    print(f"from scratch, after {s} rounds: {show_masked(history[s])!r}")

# %% [markdown]
# The one-pass fill is a run of each position's favourite character (mostly "e"s and
# spaces, the commonest; ¶ marks a line break), which reads as nothing. The iterative fills at least form syllables
# and short words that fit each other, though not the right word; and the line from
# scratch has word shapes and frequent words but less sense than the GPT's samples. This
# masked LM is small and briefly trained, and generating from an all-masked sequence is
# the hardest input it sees; MaskGIT and discrete diffusion models close the gap with
# scale, and in exchange decode many positions per step.
#
# ### Widget: iterative unmasking, round by round

# %% tags=["nbval-ignore-output"]
widgets.figure_widget(
    lambda round: lm.text_figure(
        show_masked(history[round]).replace("\n", "¶\n"),
        f"MaskGIT decoding, after round {round} of 8: "
        f"{int((history[round] == MASK).sum())} of {int((history[0] == MASK).sum())} still masked",
        columns=64,
    ),
    round=(0, 8, 1),
)

# %% [markdown]
# ## 6. In-context learning, seen in a small model
#
# A large language model can pick up a pattern from its prompt — a format, a
# translation, a list of examples — without any change to its weights: **in-context
# learning** (Brown et al. 2020). Its simplest form is copying: if the context contains
# "... A B ... A", predict "B". Olsson et al. (2022) found the circuit that does it in
# two layers, an **induction head**: a head in layer 1 writes into each position what
# token came *before* it (a **previous-token head**); a head in layer 2 then matches the
# current token against those and attends to the positions **just after** its earlier
# occurrences, whose tokens it copies.
#
# We watch it form on a task where the context is the only source of the answer
# (Edelman et al. 2024). Each training sequence is 48 tokens of its **own Markov chain**
# over 6 symbols: a fresh transition matrix per sequence, each row drawn from a
# Dirichlet($\alpha = 0.3$), so most symbols have one or two likely successors. No rule
# holds across sequences; the rules of *this* sequence are written in its past. The
# best any predictor can do is Bayes' rule, and for Dirichlet rows it is section 2's
# bigram with add-$\alpha$ counts, counted in the context:
#
# $$p(x_{i+1} = b \mid x_{\le i},\ x_i = a) = \frac{n_{ab} + \alpha}{n_a + 6\alpha},$$
#
# with $n_{ab}$ the times $a$ was followed by $b$ earlier in the sequence. To compute it, a
# transformer must find the earlier occurrences of $a$ and look at what came right after
# them: an induction head. We train the smallest model that can hold one — 2 blocks of
# **one head** each, width 64 — and record, every 50 steps on 256 held-out sequences, two
# scores: how much attention layer 1 gives to the previous position, and how much layer 2
# gives to the positions just after earlier occurrences of the current token.

# %%
ICL_VOCAB, ICL_LEN, ICL_ALPHA = 6, 48, 0.3


def markov_sequences(batch: int) -> torch.Tensor:
    """[batch, 48] tokens, each row a walk of its own Markov chain over 6 symbols (rows of
    its transition matrix ~ Dirichlet(0.3)); draws from torch's global generator."""
    rules = torch.distributions.Dirichlet(torch.full((ICL_VOCAB,), ICL_ALPHA))
    cdf = rules.sample((batch, ICL_VOCAB)).cumsum(-1)  # [batch, from, to]
    u, rows = torch.rand(batch, ICL_LEN), torch.arange(batch)
    x = torch.empty(batch, ICL_LEN, dtype=torch.long)
    x[:, 0] = torch.randint(ICL_VOCAB, (batch,))
    for i in range(1, ICL_LEN):  # inverse CDF: the first symbol whose CDF passes u
        x[:, i] = (u[:, i, None] > cdf[rows, x[:, i - 1]]).sum(-1).clamp(max=ICL_VOCAB - 1)
    return x


def in_context_bigram_nll(x: torch.Tensor) -> torch.Tensor:
    """[B, n - 1]: -log p(x_{i+1} | x_{<=i}) under add-alpha counts of the sequence's own
    bigrams so far (the Bayes predictor for Dirichlet(alpha) rows)."""
    counts = torch.full((x.shape[0], ICL_VOCAB, ICL_VOCAB), ICL_ALPHA)
    rows, nll = torch.arange(x.shape[0]), []
    for i in range(x.shape[1] - 1):
        p = counts[rows, x[:, i]]  # [B, 6]: counts of what followed x_i so far
        nll.append(-(p[rows, x[:, i + 1]] / p.sum(-1)).log())
        counts[rows, x[:, i], x[:, i + 1]] += 1
    return torch.stack(nll, 1)


def seen_before(x: torch.Tensor) -> torch.Tensor:
    """[B, n]: how many times x_i occurred at positions before i."""
    earlier = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril(-1)
    return ((x[:, :, None] == x[:, None, :]) & earlier).sum(-1)


def follows_same_token(x: torch.Tensor) -> torch.Tensor:
    """[B, n, n]: key j (<= query i) comes just after an occurrence of x_i at j - 1."""
    after = F.pad(x[:, None, :-1] == x[:, :, None], (1, 0))
    return after & torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).tril()


def circuit_scores(model: lm.Gpt, x: torch.Tensor) -> tuple[float, float]:
    """Layer 1's mean attention to the previous position; layer 2's attention to keys
    just after earlier occurrences of the query's token (queries whose token was seen)."""
    maps = lm.attention_maps(model, x)  # [B, 2 layers, 1 head, n, n]
    previous = maps[:, 0, 0].diagonal(offset=-1, dim1=1, dim2=2).mean().item()
    induction = (maps[:, 1, 0] * follows_same_token(x)).sum(-1)[seen_before(x) > 0]
    return previous, induction.mean().item()


torch.manual_seed(0)
probe = markov_sequences(256)
inducer = lm.Gpt(vocab_size=ICL_VOCAB, block_size=ICL_LEN, n_layer=2, n_head=1, n_embd=64)
optimizer = torch.optim.AdamW(inducer.parameters(), lr=1e-3, weight_decay=0.0)
icl_log = []  # (step, held-out loss, previous-token score, induction score)
t0 = time.perf_counter()
for step in range(1, 1201):
    x = markov_sequences(32)
    loss = F.cross_entropy(inducer(x[:, :-1]).transpose(1, 2), x[:, 1:])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        with torch.no_grad():
            probe_loss = F.cross_entropy(inducer(probe[:, :-1]).transpose(1, 2), probe[:, 1:])
            icl_log.append((step, probe_loss.item(), *circuit_scores(inducer, probe[:, :-1])))
inducer.eval()
print(f"1200 steps in {time.perf_counter() - t0:.0f} s")

x = markov_sequences(1024)  # held out: fresh chains
with torch.no_grad():
    model_nll = F.cross_entropy(inducer(x[:, :-1]).transpose(1, 2), x[:, 1:], reduction="none")
bayes_nll = in_context_bigram_nll(x)
seen = seen_before(x[:, :-1]).clamp(max=4)  # [1024, 47]: 0, 1, 2, 3, 4 or more
uniform = (follows_same_token(x[:, :-1]).sum(-1) / torch.arange(1, ICL_LEN))[seen > 0]
print(f"held-out loss: model {model_nll.mean():.3f} nats, Bayes (in-context bigram) "
      f"{bayes_nll.mean():.3f}, ln 6 = {math.log(6):.3f}")  # fmt: skip
for k in range(5):
    print(f"current token seen {k}{'+' if k == 4 else ''} times before: model "
          f"{model_nll[seen == k].mean():.2f} nats, Bayes {bayes_nll[seen == k].mean():.2f}")  # fmt: skip
previous, induction = circuit_scores(inducer, x[:, :-1])
print(f"layer 1 -> previous position: {previous:.2f}; layer 2 -> just after an earlier "
      f"occurrence: {induction:.2f} (uniform attention would give {uniform.mean():.2f})")  # fmt: skip

fig, axes = plt.subplots(1, 3, figsize=(11, 3.3))
steps, probe_losses, previous_scores, induction_scores = zip(*icl_log, strict=True)
axes[0].plot(steps, probe_losses, label="model")
axes[0].axhline(in_context_bigram_nll(probe).mean(), color="k", ls=":", label="Bayes")
axes[0].set_xlabel("training step")
axes[0].set_ylabel("held-out loss (nats/token)")
axes[0].set_title("Loss", fontsize=10)
axes[0].legend()
axes[1].plot(steps, previous_scores, label="layer 1: previous position")
axes[1].plot(steps, induction_scores, label="layer 2: after earlier occurrence")
axes[1].set_ylim(0, 1)
axes[1].set_xlabel("training step")
axes[1].set_ylabel("attention")
axes[1].set_title("The two heads forming", fontsize=10)
axes[1].legend(fontsize=8)
axes[2].plot(range(5), [model_nll[seen == k].mean() for k in range(5)], "o-", label="model")
axes[2].plot(range(5), [bayes_nll[seen == k].mean() for k in range(5)], "k:", label="Bayes")
axes[2].set_xticks(range(5), ["0", "1", "2", "3", "4+"])
axes[2].set_xlabel("times the current token was seen before")
axes[2].set_ylabel("loss (nats/token)")
axes[2].set_title("Loss by occurrence", fontsize=10)
axes[2].legend()
fig.suptitle("In-context learning of a Markov chain: an induction head forms")
fig.tight_layout()
plt.show()

# %% [markdown]
# At the first occurrence of a symbol the model can only guess (about $\ln 6$); from the
# second on, its loss falls with each earlier occurrence, as the counting rule's does,
# and it stays within a few hundredths of a nat of Bayes. The loss sits on a plateau
# for the first hundred-odd steps, then drops while the two heads form: Olsson et al.
# saw the same **phase change** in large models, at the moment their induction heads
# appeared. In this run layer 2's score rises first and layer 1's keeps climbing for
# the rest of training — which circuit a network finds, and in what order, is an
# empirical question that **mechanistic interpretability** asks, and attention maps are
# where it starts.
#
# Below, one held-out sequence, written with letters: layer 1's map is the diagonal just
# under the main one (each position looks at the one before), layer 2's a scatter of
# dots in the columns just after earlier copies of each row's letter.

# %%
example = markov_sequences(1)[:, :24]
letters = "".join("ABCDEF"[t] for t in example[0])
example_maps = lm.attention_maps(inducer, example)[0]  # [2 layers, 1 head, 24, 24]
for layer in range(2):
    lm.attention_figure(example_maps, letters, layer)
    plt.show()

# %% [markdown]
# As $\alpha \to 0$ each symbol has a single successor and the counting rule becomes
# copying, "A B ... A → B": the same circuit in its simplest use. The shipped
# Shakespeare model, by contrast, does **not** copy: a made-up name or a
# string of random letters costs it as much the second time as the first (try it: the
# loss of `"Marbolio ... Marbolio"` under `gpt`). Tiny Shakespeare rarely rewards copying
# more than a name or two, a context of 128 characters holds few repeats, and the model is
# small; induction heads appear reliably in models trained on large, varied text.

# %% [markdown]
# ## 7. From a language model to an assistant
#
# A pretrained model continues text; an assistant answers. Ouyang et al. (2022,
# InstructGPT) made one from the other in three stages:
#
# 1. **Supervised fine-tuning (SFT)**: train on prompt → response pairs written in a
#    fixed template, with the loss on the response tokens only (the prompt is given,
#    not predicted).
# 2. **A reward model** $r_\phi(x, y)$ fitted to human preferences between two responses
#    $y_w \succ y_l$ to the same prompt $x$, with the Bradley–Terry model
#    $P(y_w \succ y_l \mid x) = \sigma\big(r_\phi(x, y_w) - r_\phi(x, y_l)\big)$.
# 3. **RL**: maximize the reward with a penalty for drifting from the SFT model
#    $\pi_{\mathrm{ref}}$ (PPO in practice),
#    $$\max_{\pi_\theta}\; \mathbb{E}_{x,\, y \sim \pi_\theta(\cdot \mid x)}\big[r(x, y)\big]
#      - \beta\, \mathrm{KL}\big(\pi_\theta(\cdot \mid x) \,\|\, \pi_{\mathrm{ref}}(\cdot \mid x)\big).$$
#    The KL term keeps the policy where the reward model was trained and stops it from
#    exploiting the reward model's mistakes.
#
# ### Supervised fine-tuning on dialogue
#
# Our prompt → response set is built from the play by a program: the **last line of a
# speech** is the prompt and the **first line of the reply** (the next speech, after its
# speaker's name) the response, both 8–40 characters long, written in a template the
# pretrained model never saw:
#
# ```
# Q: <the line>
# A: <the reply>
# ```
#
# Prompts are left-padded with newlines to 48 characters so that every response starts
# at the same position; the labels are $-100$ (ignored by `F.cross_entropy`) everywhere
# but on the response.

# %%
P, R = 48, 44  # prompt and response widths (characters)
NEWLINE = chars.encode("\n")[0]


def dialogue_pairs(text: str) -> list[tuple[str, str]]:
    """(last line of a speech, first line of the reply) for consecutive speeches."""
    speeches = [s.split("\n") for s in text.split("\n\n")]
    pairs = []
    for this, reply in zip(speeches, speeches[1:], strict=False):
        if len(this) >= 2 and len(reply) >= 2:  # line 0 is the speaker's name
            q, r = this[-1], reply[1]
            if 8 <= len(q) <= 40 and 8 <= len(r) <= 40:
                pairs.append((q, r))
    return pairs


def prompt_ids(q: str) -> list[int]:
    return chars.encode(f"Q: {q}\nA:".rjust(P, "\n"))


def sft_batch(pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens [B, P + R] and labels [B, P + R]: the response's ids, -100 elsewhere."""
    tokens, labels = [], []
    for q, r in pairs:
        response = chars.encode(f" {r}\n")
        pad = R - len(response)
        tokens.append(prompt_ids(q) + response + [NEWLINE] * pad)
        labels.append([-100] * P + response + [-100] * pad)
    return torch.tensor(tokens), torch.tensor(labels)


def sft_loss(model: lm.Gpt, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the response characters (position i predicts token i + 1)."""
    return F.cross_entropy(model(tokens[:, :-1]).transpose(1, 2), labels[:, 1:])


train_pairs, val_pairs = dialogue_pairs(train_text), dialogue_pairs(val_text)
print(f"{len(train_pairs)} training and {len(val_pairs)} held-out pairs, e.g. {train_pairs[7]}")
val_tokens, val_labels = sft_batch(val_pairs[:256])
with torch.no_grad():
    base_nll = sft_loss(gpt, val_tokens, val_labels).item()


def fine_tune(model: lm.Gpt, steps: int, lr: float) -> lm.Gpt:
    """SFT: `steps` steps of 16 training pairs on the parameters that require grad."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch = [train_pairs[i] for i in torch.randint(len(train_pairs), (16,), generator=g)]
        loss = sft_loss(model, *sft_batch(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


t0 = time.perf_counter()
SFT_STEPS = 120
sft = fine_tune(copy.deepcopy(gpt), steps=SFT_STEPS, lr=3e-4)
sft_seconds = time.perf_counter() - t0
with torch.no_grad():
    sft_nll = sft_loss(sft, val_tokens, val_labels).item()
print(f"held-out response loss: pretrained {base_nll:.3f}, after SFT {sft_nll:.3f} nats/char "
      f"({SFT_STEPS} steps, {sft_seconds:.0f} s)")  # fmt: skip


def answer(model: lm.Gpt, q: str, seed: int = 0) -> str:
    """One sampled response to q (temperature 0.8), up to its first newline."""
    out = lm.generate(model, torch.tensor([prompt_ids(q)]), R, temperature=0.8,
                      generator=torch.Generator().manual_seed(seed))  # fmt: skip
    return chars.decode(out[0, P:].tolist()).split("\n")[0]


for q, r in val_pairs[:4]:
    print(f"Q: {q}\n   pretrained: {answer(gpt, q)!r}\n   SFT:        {answer(sft, q)!r}"
          f"\n   the play:   {r!r}")  # fmt: skip

# %% [markdown]
# The pretrained model already replies in the play's voice: the template is new, but a
# line after a line is what it has read a million times. Its replies barely depend on
# the question (the same random numbers give nearly the same reply to different
# prompts). A few seconds of SFT lower the loss of held-out replies: the model has
# learned what follows "A:". Nothing here knows what a *good* answer is: that is what
# preferences add.
#
# ### DPO: the RLHF objective without the RL
#
# Rafailov et al. (2023) solve the KL-regularized objective above in closed form. For a
# fixed $x$, maximizing $\mathbb{E}_{y \sim \pi}[r(x, y)] - \beta\,\mathrm{KL}(\pi \,\|\,
# \pi_{\mathrm{ref}})$ over distributions $\pi$ is maximizing
# $-\beta\, \mathrm{KL}\big(\pi \,\|\, \pi_{\mathrm{ref}}\, e^{r / \beta} / Z(x)\big) +
# \beta \log Z(x)$, with $Z(x) = \sum_y \pi_{\mathrm{ref}}(y \mid x)\, e^{r(x, y)/\beta}$;
# the KL is zero at the optimum,
#
# $$\pi^*(y \mid x) = \frac{1}{Z(x)}\, \pi_{\mathrm{ref}}(y \mid x)\, e^{r(x, y)/\beta}
#   \quad\Longleftrightarrow\quad
#   r(x, y) = \beta \log \frac{\pi^*(y \mid x)}{\pi_{\mathrm{ref}}(y \mid x)} + \beta \log Z(x).$$
#
# Put this reward into Bradley–Terry: $Z(x)$ cancels in the difference, and the
# preference probability is written with the policy alone. Maximum likelihood on the
# preference pairs is then the **DPO loss**
#
# $$\mathcal{L}_{\mathrm{DPO}} = -\,\mathbb{E}\Big[\log \sigma\Big(
#   \beta \log \frac{\pi_\theta(y_w \mid x)}{\pi_{\mathrm{ref}}(y_w \mid x)}
#   - \beta \log \frac{\pi_\theta(y_l \mid x)}{\pi_{\mathrm{ref}}(y_l \mid x)}\Big)\Big]:$$
#
# no reward model and no sampling during training, only sequence log-probabilities
# (`response_log_prob`) under the policy and the frozen reference (`dpo_loss`).
#
# **The preference here** is one a program can judge: a **lipogram**, the fewer letters
# "e" the better (the reward is minus the fraction of the response's letters that are e
# or E). The pairs: two responses of 40 characters sampled from the SFT model for each of
# 400 training prompts, the one with the lower e-rate chosen (ties dropped).


# %%
def e_rate(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c in "eE" for c in letters) / max(1, len(letters))


N_NEW = 40


def responses(model: lm.Gpt, qs: list[str], seed: int) -> tuple[torch.Tensor, list[str]]:
    """One 40-character response to each prompt: ids [B, P + 40] and the texts."""
    out = lm.generate(model, torch.tensor([prompt_ids(q) for q in qs]), N_NEW,
                      generator=torch.Generator().manual_seed(seed))  # fmt: skip
    return out, [chars.decode(row[P:].tolist()) for row in out]


def log_prob(model: lm.Gpt, ids: torch.Tensor) -> torch.Tensor:
    """log pi(response | prompt) of ids [B, P + 40], [B]."""
    return lm.response_log_prob(model(ids), ids, P)


qs = [q for q, _ in train_pairs[:400]]
t0 = time.perf_counter()
ids_a, texts_a = responses(sft, qs, seed=1)
ids_b, texts_b = responses(sft, qs, seed=2)
a_better = torch.tensor([e_rate(a) < e_rate(b) for a, b in zip(texts_a, texts_b, strict=True)])
differ = torch.tensor([e_rate(a) != e_rate(b) for a, b in zip(texts_a, texts_b, strict=True)])
chosen = torch.where(a_better[:, None], ids_a, ids_b)[differ]
rejected = torch.where(a_better[:, None], ids_b, ids_a)[differ]
with torch.no_grad():
    ref_chosen, ref_rejected = log_prob(sft, chosen), log_prob(sft, rejected)
print(f"{len(chosen)} preference pairs (of 400 prompts) in {time.perf_counter() - t0:.0f} s")

policy = copy.deepcopy(sft).train()
optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
g = torch.Generator().manual_seed(0)
dpo_curve = []
t0 = time.perf_counter()
for _ in range(60):
    i = torch.randint(len(chosen), (16,), generator=g)
    loss = lm.dpo_loss(log_prob(policy, chosen[i]), log_prob(policy, rejected[i]),
                       ref_chosen[i], ref_rejected[i], beta=0.1)  # fmt: skip
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    dpo_curve.append(loss.item())
policy.eval()
print(f"DPO: 60 steps in {time.perf_counter() - t0:.0f} s, loss {dpo_curve[0]:.3f} -> "
      f"{sum(dpo_curve[-10:]) / 10:.3f} (ln 2 = {math.log(2):.3f} at the start)")  # fmt: skip

# %% [markdown]
# Measured on 200 **held-out** prompts: one response from the policy and one from the
# reference for each; the **win rate** is how often the policy's has the lower e-rate
# (ties count half; about 0.5 when the two models are the same: the reference's own row
# measures that noise), and the **KL** to the reference is estimated on the policy's own
# responses as the mean of $\log \pi_\theta(y \mid x) - \log \pi_{\mathrm{ref}}(y \mid x)$
# (nats per response).
# The real-word rate checks what the policy gave up for its reward.

# %%
held_out = [q for q, _ in val_pairs[:200]]


def evaluate(model: lm.Gpt, seed: int) -> dict[str, float]:
    ids, texts = responses(model, held_out, seed)
    _, ref_texts = responses(sft, held_out, seed + 1)
    wins = [
        1.0 if e_rate(t) < e_rate(r) else 0.5 if e_rate(t) == e_rate(r) else 0.0
        for t, r in zip(texts, ref_texts, strict=True)
    ]
    with torch.no_grad():
        kl = (log_prob(model, ids) - log_prob(sft, ids)).mean().item()
    words = [w for t in texts for w in t.split()]
    return {
        "e-rate": sum(map(e_rate, texts)) / len(texts),
        "win rate": sum(wins) / len(wins),
        "KL (nats)": kl,
        "real words": sum(w in known_words for w in words) / len(words),
    }


dpo_rows = {"SFT (reference)": evaluate(sft, 10), "after DPO": evaluate(policy, 10)}
print(f"{'':16}" + "".join(f"{k:>12}" for k in dpo_rows["after DPO"]))
for name, row in dpo_rows.items():
    print(f"{name:16}" + "".join(f"{v:12.3f}" for v in row.values()))
_, sample_texts = responses(policy, held_out[:3], 20)
for q, t in zip(held_out[:3], sample_texts, strict=True):
    print(f"Q: {q}\n   after DPO: {t.split(chr(10))[0]!r}")

# %% [markdown]
# DPO moved the policy toward fewer e's on prompts it never trained on, at a measured KL
# cost, and without giving up real words; the KL is what $\beta$ prices. A smaller
# $\beta$ buys more reward for more drift, and with a reward a model can game (a real
# reward model is such a one) too much drift is how a policy learns to please the judge
# instead of the user.
#
# ## 8. LoRA: fine-tuning a low-rank update
#
# Full fine-tuning stores a new copy of every weight for every task. Hu et al. (2021)
# observed that the update a task needs has low rank, and train only that: a frozen
# weight $W_0 \in \mathbb{R}^{d_{out} \times d_{in}}$ becomes
#
# $$h = W_0 x + \frac{\alpha}{r}\, B A x, \qquad A \in \mathbb{R}^{r \times d_{in}},\;
#   B \in \mathbb{R}^{d_{out} \times r},\; r \ll \min(d_{in}, d_{out}),$$
#
# with $A$ random and $B = 0$ at the start (the adapted model starts as the pretrained
# one) and $\alpha / r$ a fixed scale, so that changing $r$ does not change the step size
# a learning rate means. After training, $W = W_0 + \frac{\alpha}{r} B A$ is **merged**:
# inference costs nothing extra. Below, adapters of rank $r$ on every attention and MLP
# matrix (`lora_linear` from the exercises), everything else frozen, trained by the same
# SFT as section 7 at a larger learning rate (the adapters start from zero).


# %%
class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable rank-r update (alpha / r) B A."""

    def __init__(self, base: nn.Linear, r: int, alpha: float) -> None:
        super().__init__()
        self.base, self.alpha = base, alpha
        self.lora_a = nn.Parameter(torch.randn(r, base.in_features) / math.sqrt(base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lm.lora_linear(x, self.base.weight, self.base.bias, self.lora_a, self.lora_b,
                              self.alpha)  # fmt: skip

    def merged(self) -> nn.Linear:
        out = copy.deepcopy(self.base)
        r = self.lora_a.shape[0]
        out.weight.data += (self.alpha / r) * self.lora_b.data @ self.lora_a.data
        return out


def with_lora(model: lm.Gpt, r: int, alpha: float) -> lm.Gpt:
    """A copy of model with LoRA on qkv, proj and both MLP matrices of every block."""
    model = copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for block in model.blocks:
        block.attn.qkv = LoRALinear(block.attn.qkv, r, alpha)
        block.attn.proj = LoRALinear(block.attn.proj, r, alpha)
        block.mlp[0] = LoRALinear(block.mlp[0], r, alpha)
        block.mlp[2] = LoRALinear(block.mlp[2], r, alpha)
    return model


def merge(model: lm.Gpt) -> lm.Gpt:
    model = copy.deepcopy(model)
    for block in model.blocks:
        block.attn.qkv, block.attn.proj = block.attn.qkv.merged(), block.attn.proj.merged()
        block.mlp[0], block.mlp[2] = block.mlp[0].merged(), block.mlp[2].merged()
    return model


lora_rows = {}
for r in (1, 4, 16):
    t0 = time.perf_counter()
    adapted = fine_tune(with_lora(gpt, r, alpha=2 * r), steps=SFT_STEPS, lr=2e-3)
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    with torch.no_grad():
        nll = sft_loss(adapted, val_tokens, val_labels).item()
    lora_rows[f"LoRA r = {r}"] = (trainable, nll, time.perf_counter() - t0)
lora_rows["full fine-tuning"] = (gpt.parameter_count(), sft_nll, sft_seconds)
print(f"{'':18}{'trainable':>12}{'share':>8}{'held-out NLL':>14}{'seconds':>9}")
for name, (trainable, nll, seconds) in lora_rows.items():
    print(f"{name:18}{trainable:>12,}{trainable / gpt.parameter_count():>8.1%}{nll:>14.3f}"
          f"{seconds:>9.0f}")  # fmt: skip
print(f"pretrained, no fine-tuning: held-out NLL {base_nll:.3f}")

merged = merge(adapted)
with torch.no_grad():
    gap = (merged(val_tokens[:8]) - adapted(val_tokens[:8])).abs().max().item()
print(f"rank 16 merged into the weights: max |logit difference| {gap:.1e}, "
      f"{sum(p.numel() for p in merged.parameters()):,} parameters as before")  # fmt: skip

# %% [markdown]
# On this task every rank reaches about the held-out loss of full fine-tuning, rank 1 with
# under 1% of the trainable parameters: a few seconds of SFT on two thousand pairs change
# the model in few directions, and more rank buys nothing here. (Hu et al. found ranks
# 1–8 enough for GPT-3 on their benchmarks; a task further from pretraining needs more.)
# The adapters also train at a larger learning rate than full fine-tuning tolerates. The
# merged model is the adapted one to rounding, at the original size and speed.
#
# ## Where the real systems go further
#
# Everything here runs at scale with the same equations: GPT-3 is this lecture's GPT with
# 96 blocks of width 12,288 and a BPE of 50,257 tokens, trained on 300 billion tokens;
# InstructGPT and the chat models that followed are SFT and RLHF (or DPO) on human
# preferences; LoRA and its quantized variant QLoRA are how most fine-tuning of open
# models is done. The exercise set (`exercises/07_language_models.ipynb`) asks you for
# BPE's pair counting and merging, the next-token loss, multi-head attention, top-p,
# BERT's masking, a response's log-probability, the DPO loss and a LoRA layer, then
# trains a small GPT with your attention and loss.
