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
# # Lecture 08 — Text to image: captions, CLIP, cross-attention and a small Stable Diffusion
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dgm-course/deep-generative-models/blob/main/lectures/08_text_to_image.ipynb)
#
# Every conditional model so far took a *label*: lecture 02's conditional GAN a digit
# class, lecture 04's classifier-free guidance the same ten classes. Text-to-image systems
# take a sentence instead — "a thick seven leaning right" — and Stable Diffusion (the
# released model built on Rombach et al. 2022's latent diffusion) does it with three
# separately trained parts: a frozen **text encoder** (CLIP's),
# an **autoencoder** that compresses images to a small latent grid, and a **diffusion
# model** in that latent space that reads the text through **cross-attention**. This
# lecture builds each part at digit scale, on a laptop CPU, and then puts them together:
#
# 1. from labels to text: a captioned digits set, its captions written by a program from
#    measured attributes (slant, stroke thickness), the measures checked;
# 2. a text encoder: lecture 07's transformer block over caption words;
# 3. CLIP: the symmetric contrastive loss and its learned temperature, one embedding space
#    for images and captions, zero-shot classification from prompts, retrieval;
# 4. cross-attention: queries from image features, keys and values from the words, and
#    which word each position of a trained model reads;
# 5. latent diffusion: a KL autoencoder, the latent scale factor, the cost of a step in
#    latent space against pixel space, measured;
# 6. guidance with text: caption dropout, the guidance scale (Stable Diffusion's $s$,
#    lecture 04's $w = s - 1$), negative prompts, fidelity against diversity, measured;
#    widget: a prompt from dropdowns and the scale;
# 7. a small Stable Diffusion, evaluated: the course classifier, the attribute measures,
#    FID and the CLIP score;
# 8. where the real systems go further: unCLIP, Imagen, DiT, video.
#
# Run time on a laptop CPU: under a minute; the three models are shipped checkpoints
# (`course pretrain text-to-image` retrains them, about 25 CPU minutes).
#
# **Notation.** Images $x$, captions $c$ (a sequence of word tokens), CLIP's encoders
# $f(x)$ and $g(c)$; the temperature as CLIP writes it, a logit scale $e^{t}$ multiplying
# cosine similarities. Diffusion follows lecture 04 (Ho et al. 2020): $\bar\alpha_t$,
# $\epsilon_\theta(z_t, t, c)$; latents $z = E(x)$ and decoder $D$ as in Rombach et al.
# Guidance uses Stable Diffusion's scale $s$, where Ho & Salimans (2022) and lecture 04
# write $w = s - 1$.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from course_utils import checkpoints, data, metrics, widgets
from course_utils import text_to_image as t2i
from course_utils.diffusion import DDPM_MNIST_CONFIG, DiffusionUnet, cosine_alpha_bar, q_sample
from course_utils.text_to_image import captions, digits
from course_utils.text_to_image.figures import captioned_images, word_maps

torch.manual_seed(0)
x_train, y_train = data.mnist("train")
x_test, y_test = data.mnist("test")
clip, ae, denoiser = digits.shipped()  # the three shipped models, in eval mode

# %% [markdown]
# ## 1. From labels to text
#
# A label names one of ten classes; a sentence can say more, and can say it in words never
# paired with that image. To learn from text at digit scale we need digits with captions.
# MNIST has none, so a program writes them from the label and two attributes it measures
# on the image:
#
# - **slant**, from the image's second moments. With pixel intensities $w$ as weights,
#   $x$ the column (growing right), $y$ the row (growing down) and $(\bar x, \bar y)$ the
#   weighted centroid, $\mu_{11} = \sum w (x - \bar x)(y - \bar y)$ and
#   $\mu_{02} = \sum w (y - \bar y)^2$. The shear $x \mapsto x + k (\bar y - y)$ that tilts
#   the top right by $k$ changes $\mu_{11}$ by $-k\,\mu_{02}$, so
#   $\text{slant} = -\mu_{11} / \mu_{02}$ measures $k$: the tangent of the lean, positive
#   to the right (exercise 1 of set 08).
# - **stroke thickness**: twice the ink's area over its boundary length. A stroke of width
#   $w$ and length $L$ has area $wL$ and perimeter $2(w + L)$, so the ratio is
#   $wL / (w + L) \approx w$ for $L \gg w$.
#
# We check both on transformations whose effect we know: shearing test digits by
# $k = 0.3$ must add 0.3 to their slant; dilating their ink by one pixel on every side (a
# 3×3 maximum) must add a little under 2 pixels of thickness (exactly 2 only for an
# infinitely long stroke).

# %%
k = 0.3
theta = torch.tensor([[1.0, k, 0.0], [0.0, 1.0, 0.0]]).expand(len(x_test), 2, 3)
grid = F.affine_grid(theta, list(x_test.shape), align_corners=False)
sheared = F.grid_sample(x_test, grid, align_corners=False)
slant_change = t2i.slant(sheared[:, 0]) - t2i.slant(x_test[:, 0])
dilated = F.max_pool2d(x_test, 3, stride=1, padding=1)
thick_change = t2i.thickness(dilated[:, 0]) - t2i.thickness(x_test[:, 0])
print(f"shear by k = {k}: slant changes by {slant_change.mean():.3f} ± {slant_change.std():.3f}")
print(f"3x3 dilation: thickness changes by {thick_change.mean():.2f} ± {thick_change.std():.2f} px")

# %% [markdown]
# Each measure is cut at the training split's terciles, rounded (the cuts are printed
# below), so each word describes about a third of the digits; the medium thickness says
# nothing. The grammar:
#
# `a [thin | thick] <zero … nine> <leaning left | upright | leaning right>`
#
# ("an eight" when no adjective comes first).

# %%
train_captions = captions.captions(x_train, y_train)
slant_class, thick_class = captions.attributes(x_train)
print(f"slant cuts {captions.SLANT_CUTS}, thickness cuts {captions.THICKNESS_CUTS} px")
print("slant classes (left, upright, right):", torch.bincount(slant_class).tolist())
print("thickness classes (thin, -, thick):", torch.bincount(thick_class).tolist())
grammar = {captions.caption(d, s, t) for d in range(10) for s in range(3) for t in range(3)}
print(f"the grammar makes {len(grammar)} distinct captions; the training split uses "
      f"{len(set(train_captions))} of them")  # fmt: skip
captioned_images(x_train[:12], train_captions[:12], "Training digits and their captions")
plt.show()
# %% [markdown]
# ## 2. A text encoder
#
# Words become ids from a vocabulary of the grammar's words and three markers: `[SOS]`
# starts a caption, `[EOT]` ends it, `[PAD]` fills it to a fixed length. Then embeddings
# and two of lecture 07's transformer blocks (`lm.Gpt`'s `Block`). CLIP's text encoder is
# *causal*, like a GPT, and reads its output at the `[EOT]` position: with the padding on
# the right no real word ever attends to a `[PAD]`, so padding needs no mask inside the
# encoder — it will need one in cross-attention (section 4). The encoder returns every
# position's state (what the diffusion model attends to) and the `[EOT]` state (CLIP's
# summary of the caption).

# %%
example = [train_captions[0], "an eight upright"]
ids = captions.encode(example)
print(f"{len(captions.WORDS)} word ids:", " ".join(captions.WORDS))
for text, row in zip(example, ids, strict=True):
    print(f"{text!r:32} -> {row.tolist()}")
states, summary = clip.text(ids)
print("word states", tuple(states.shape), "and the [EOT] summaries", tuple(summary.shape))

# %% [markdown]
# ## 3. CLIP: one space for images and captions
#
# CLIP (Radford et al. 2021) trains an image encoder $f$ and a text encoder $g$ so that a
# batch of $N$ matching pairs $(x_i, c_i)$ line up: with unit vectors
# $u_i = f(x_i)/\|f(x_i)\|$ and $v_j = g(c_j)/\|g(c_j)\|$ and logits
# $\ell_{ij} = e^{t}\, u_i^\top v_j$, each image must pick its caption among the $N$ in
# the batch and each caption its image:
#
# $$\mathcal L = \frac{1}{2N} \sum_i \Big[ -\log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ij}}}
#   - \log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ji}}} \Big].$$
#
# This is InfoNCE (van den Oord et al. 2018) in both directions (exercise 2). The
# **temperature** $e^{-t}$ is learned (CLIP starts at 0.07 and clips $e^{t}$ at 100):
# cosine similarities live in $[-1, 1]$, and without a scale the softmax over a batch
# could never be confident. Normalizing matters: without it the model can lower the loss
# by inflating norms instead of aligning directions.
#
# Our setting differs from CLIP's web scale in two ways: only 90 captions exist, so a batch
# of 128 holds repeated captions, and some "negatives" are in fact correct; and a lesson
# from training it: with a plain CNN as image encoder the loss fell to $\ln N$ within 30
# steps and stayed there — every embedding equal, a collapse the loss cannot leave, since
# its gradient vanishes there — while batch normalization in the image encoder avoids it.
#
# **Zero-shot classification**: embed one prompt per class ("a seven upright") and give
# each test image the class of the nearest prompt by cosine similarity (exercise 3); no
# classifier was ever trained. **Retrieval**: for each test caption, the most similar test
# image; recall@1 counts a hit when that image has the query's caption.

# %%
with torch.no_grad():
    image_emb = F.normalize(clip.encode_image(x_test), dim=-1)
    prompt_emb = F.normalize(clip.encode_text(captions.encode(digits.class_prompts())), dim=-1)
scores = digits.clip_metrics(clip)
print(f"learned logit scale e^t = {clip.logit_scale().item():.1f} (temperature "
      f"{1 / clip.logit_scale().item():.3f}; it started at 1/0.07 = 14.3)")  # fmt: skip
print(f"zero-shot digit accuracy from ten prompts: {scores['zero_shot']:.1%}; "
      f"caption -> image recall@1 over the 1000 test images: {scores['recall_at_1']:.2f}")  # fmt: skip

# one space: the mean cosine similarity between the test images of each digit and each prompt
similarity = torch.stack([(image_emb[y_test == d] @ prompt_emb.T).mean(0) for d in range(10)])
fig, ax = plt.subplots(figsize=(6.4, 5))
heat = ax.imshow(similarity, cmap="viridis")
ax.set_xticks(range(10), [p.split()[1] for p in digits.class_prompts()], rotation=45)
ax.set_yticks(range(10), range(10))
ax.set(title="CLIP: mean cosine, test images against prompts", xlabel="prompt \u201ca <digit> upright\u201d",
       ylabel="digit of the test images")  # fmt: skip
fig.colorbar(heat, ax=ax, label="mean cosine similarity")
fig.tight_layout()
print(f"mean cosine to the right prompt {similarity.diag().mean():.2f}, to the other nine "
      f"{(similarity.sum() - similarity.diag().sum()) / 90:.2f}")  # fmt: skip

# %% [markdown]
# Retrieval, caption → image: for three captions of the grammar, the four test images
# CLIP ranks first.

# %%
queries = ["a thick two leaning right", "a thin seven leaning left", "a four upright"]
with torch.no_grad():
    query_emb = F.normalize(clip.encode_text(captions.encode(queries)), dim=-1)
top = (query_emb @ image_emb.T).topk(4, dim=-1).indices
shown = x_test[top.flatten()]
titles = [
    captions.captions(x_test[i : i + 1], y_test[i : i + 1])[0] for i in top.flatten().tolist()
]
for i, q in enumerate(queries):
    print(f"row {i + 1}: {q!r}")
captioned_images(shown, titles, "The 4 test images CLIP ranks first, one row per query", ncol=4)
plt.show()
# %% [markdown]
# The titles are the images' *own* captions, measured:
# where they differ from the query, CLIP's ranking disagrees with the measure.
#
# ## 4. Cross-attention
#
# A diffusion model must read the caption at every denoising step. The simplest way adds
# one vector — CLIP's `[EOT]` summary — to the time embedding, as lecture 04 added a class
# embedding. Stable Diffusion instead lets every spatial position of the denoiser's
# features *ask* the caption what it needs: queries from the image features $h$ (one per
# position), keys and values from the word states $\tau$ (one per word):
#
# $$\mathrm{CrossAttn}(h, \tau) = \mathrm{softmax}\Big(\frac{(h W_Q)(\tau W_K)^\top}
#   {\sqrt{d_h}}\Big)\, \tau W_V, \qquad d_h = d / H \text{ per head},$$
#
# with the keys of padding tokens masked out, since they are not words (exercise 4). A
# pooled vector must carry everything in one fixed-size summary; cross-attention lets each
# position read the words it needs, and its maps show which.
#
# The shipped denoiser (section 5) works on a 7×7 latent grid: 49 positions, each with
# queries, reading the caption's word states. Below, for one caption, the share of each
# position's attention (averaged over heads, in the last cross-attention layer, at a
# middle step $t = 500$ of the noising) that goes to each word.

# %%
prompt = "a thick seven leaning right"
context, mask = digits.text_states(clip, [prompt])
captured = {}
layer = denoiser.cross_attn[-1]
hook = layer.register_forward_pre_hook(lambda module, args: captured.update(h=args[0]))
torch.manual_seed(3)
with torch.no_grad():
    sample = digits.generate([prompt], seed=3)
    z0 = ae.encode(sample)[0] * denoiser.latent_scale
    t = torch.tensor([500])
    denoiser(q_sample(z0, t, torch.randn_like(z0), digits.alpha_bar()), t, context, mask)
hook.remove()
with torch.no_grad():
    h = layer.norm(captured["h"]).flatten(2).transpose(1, 2)  # [1, 49, d]
    heads, d = layer.heads, h.shape[-1]
    q = (h @ layer.q.weight.T).view(1, 49, heads, d // heads).transpose(1, 2)
    k = (context @ layer.k.weight.T).view(1, -1, heads, d // heads).transpose(1, 2)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(d // heads)).masked_fill(
        ~mask[:, None, None], -math.inf
    )
    attention = scores.softmax(-1).mean(1)[0]  # [49, words]
words = ["[SOS]", *prompt.split(), "[EOT]"]
word_maps(sample[0], words, attention[:, : len(words)].T.reshape(-1, 7, 7),
          f"Cross-attention to each word of \u201c{prompt}\u201d (last layer, t = 500)")  # fmt: skip
plt.show()

# %% [markdown]
# At each position the maps sum to one across the words (padding, when a caption has
# any, gets exactly zero).
# Which words carry weight is learned, not designed. Here much of the attention rests on
# `[SOS]` and "a", words that carry no content: a position that needs nothing from the
# caption must still put its attention somewhere, and the first tokens serve as that
# sink (as in language models; Xiao et al. 2023). And since the text encoder is causal,
# every word's state already holds the words before it, so "right" can carry the whole
# caption.
#
# ## 5. Latent diffusion
#
# Stable Diffusion's autoencoder maps a 512×512×3 image to a 64×64×4 latent $z = E(x)$
# (8× smaller per side) and back, $\hat x = D(z)$; the diffusion model never sees a pixel.
# Rombach et al. regularize the latent lightly — a KL term toward $\mathcal N(0, I)$ with
# a tiny weight, or a vector quantizer inside the decoder — so that it stays smooth enough
# to diffuse in without giving up detail. Ours maps 28×28 to 4×7×7 (196 numbers instead
# of 784), trained with a Bernoulli reconstruction loss and a KL weight of $10^{-2}$.
#
# **The latent scale factor** (exercise 6). Lecture 04's noise schedule assumes data of
# roughly unit variance: $\bar\alpha_T$ is small *relative to a signal of size one*. An
# autoencoder's latents have whatever scale training gave them, so they are multiplied by
# $1 / \mathrm{std}(z)$ over the training latents before diffusion (Stable Diffusion's
# 0.18215) and divided by it again before decoding.

# %%
with torch.no_grad():
    z_train = ae.encode(x_train)[0]
    recon = torch.sigmoid(ae.decode(ae.encode(x_test[:12])[0]))
scale = t2i.latent_scale(z_train)
print(f"latent std {z_train.std():.3f} -> latent_scale {scale:.3f} "
      f"(stored with the denoiser: {denoiser.latent_scale.item():.3f})")  # fmt: skip
print(f"autoencoder on the test split: MSE {ae.meta['metrics']['mse']:.4f}, FID of the "
      f"reconstructions {ae.meta['metrics']['fid_reconstruction']:.2f}")  # fmt: skip
captioned_images(torch.cat([x_test[:6], recon[:6]]), ["test digit"] * 6 + ["decoded from 4x7x7"] * 6,
                 "The autoencoder: test digits (top) and their reconstructions (bottom)")  # fmt: skip
plt.show()

# %% [markdown]
# **Why a KL latent rather than lecture 06's VQ-VAE.** Diffusing in the VQ-VAE's
# pre-quantization space (16×7×7) and quantizing before decoding gave stroke fragments
# (FID above 200): a small error in $z$ picks another of the 64 codes, and each code
# decodes to a whole patch. A KL-regularized latent degrades gracefully instead. And the
# schedule: the denoiser uses lecture 04's *linear* schedule. With the cosine schedule,
# whose last $\bar\alpha$ is tiny (printed below), DDIM's first estimate
# $\hat z_0 = (z_T - \sqrt{1 - \bar\alpha_T}\,\hat\epsilon) / \sqrt{\bar\alpha_T}$
# multiplies the model's error by $1/\sqrt{\bar\alpha_T}$, and samples fell apart.
#
# **The cost, measured.** One training step (forward and backward, batch 64) and one
# network evaluation of a sampling step (batch 64) of the latent denoiser, against
# lecture 04's shipped pixel-space U-Net (its architecture, random weights).

# %%
pixel_unet = DiffusionUnet(**DDPM_MNIST_CONFIG)  # lecture 04's shipped architecture
last = cosine_alpha_bar(1000)[-1].item()
print(f"the cosine schedule's last alpha_bar {last:.1e}: DDIM's first step multiplies the model's "
      f"error by 1/sqrt(alpha_bar) = {last**-0.5:.0f}")  # fmt: skip


def seconds_per_call(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


t64 = torch.randint(1000, (64,))
ctx64, mask64 = context.expand(64, -1, -1), mask.expand(64, -1)
latent_in, pixel_in = torch.randn(64, 4, 7, 7), torch.randn(64, 1, 28, 28)
cost = {
    "latent": (lambda: denoiser(latent_in, t64, ctx64, mask64).square().mean().backward(),
               lambda: denoiser(latent_in, t64, ctx64, mask64)),
    "pixel": (lambda: pixel_unet(pixel_in, t64, None).square().mean().backward(),
              lambda: pixel_unet(pixel_in, t64, None)),
}  # fmt: skip
timings = {}
for name, (train_step, eval_step) in cost.items():
    with torch.no_grad():
        evaluation = seconds_per_call(eval_step)
    timings[name] = (seconds_per_call(train_step), evaluation)
params = {"latent": sum(p.numel() for p in denoiser.parameters()),
          "pixel": sum(p.numel() for p in pixel_unet.parameters())}  # fmt: skip
for name, (train_s, eval_s) in timings.items():
    print(f"{name:6} space: {params[name]:9,} parameters, training step {1000 * train_s:6.1f} ms, "
          f"one sampling evaluation {1000 * eval_s:6.1f} ms (batch 64, {torch.get_num_threads()} thread(s))")  # fmt: skip
print(f"pixel / latent: {timings['pixel'][0] / timings['latent'][0]:.1f}x per training step, "
      f"{timings['pixel'][1] / timings['latent'][1]:.1f}x per evaluation")  # fmt: skip

# %% [markdown]
# ## 6. Guidance with text
#
# Classifier-free guidance (Ho & Salimans 2022) needs one network that is both
# conditional and unconditional: during training the caption is replaced by the empty
# caption (just `[SOS] [EOT]`) for a fixed share of the training pairs (printed below).
# At sampling time
# (exercise 5),
#
# $$\tilde\epsilon = \epsilon_\theta(z_t, t, \varnothing) + s\,\big(\epsilon_\theta(z_t, t, c)
#   - \epsilon_\theta(z_t, t, \varnothing)\big),$$
#
# Stable Diffusion's **guidance scale** $s$: $s = 1$ is the plain conditional model,
# $s = 0$ the unconditional one, $s > 1$ extrapolates away from the unconditional
# prediction. Lecture 04 wrote the same rule as $(1 + w)\,\epsilon_c - w\,\epsilon_u$
# (Ho & Salimans' $w$): $w = s - 1$, so lecture 04's $w = 2$ is $s = 3$ here.
#
# **The trade-off, measured**: 300 test captions as prompts at each scale; the share of
# samples whose digit the course classifier reads as requested, whose measured slant and
# thickness classes match the caption's, their FID to the test images (on 300 samples, so
# higher than the 1000-sample numbers of section 7), and their *diversity*: the mean
# distance between two samples of the same prompt from different noise.

# %%
print(f"caption dropout in training: {digits.CAPTION_DROPOUT:.0%} of the pairs")
prompts = captions.captions(x_test[:300], y_test[:300])
sweep = {}
for s in (1.0, 2.0, 4.0, 7.0):
    images = digits.generate(prompts, scale=s, seed=0, steps=25)
    again = digits.generate(prompts[:100], scale=s, seed=1, steps=25)
    sweep[s] = {**digits.evaluate(images, (x_test[:300], y_test[:300])),
                "diversity": (images[:100] - again).flatten(1).norm(dim=1).mean().item()}  # fmt: skip
    row = sweep[s]
    print(f"s = {s:.0f} (w = {s - 1:.0f}): digit {row['digit']:.1%}  slant {row['slant']:.1%}  "
          f"thickness {row['thickness']:.1%}  FID {row['fid']:5.1f}  diversity {row['diversity']:.2f}")  # fmt: skip
fig, ax = plt.subplots(figsize=(6.5, 4.4))
for key in ("digit", "slant", "thickness"):
    ax.plot(list(sweep), [sweep[s][key] for s in sweep], "o-", label=f"{key} as requested")
ax.set(
    xlabel="guidance scale s",
    ylabel="share of 300 samples",
    title="Prompt fidelity against guidance",
)
ax2 = ax.twinx()
ax2.plot(list(sweep), [sweep[s]["diversity"] for s in sweep], "k--", label="diversity (right axis)")
ax2.set_ylabel("mean distance between two samples")
fig.legend(loc="lower center", ncol=2, fontsize=9)
fig.tight_layout(rect=(0, 0.13, 1, 1))

# %% [markdown]
# **Negative prompts** replace $\varnothing$ by a caption to move away from: with
# $\epsilon_\theta(z_t, t, c_{\text{neg}})$ as the unconditional term, the extrapolation
# pushes from the negative prompt toward the prompt rather than from "anything". Below,
# 100 samples of "a seven upright" with no negative prompt, then with the negative prompt
# "a thin seven upright", from the same noise: we measure the strokes' thickness and how
# often the classifier still reads a seven.

# %%
plain = digits.generate(["a seven upright"] * 100, seed=5)
pushed = digits.generate(["a seven upright"] * 100, seed=5, negative="a thin seven upright")
for name, images in (("no negative prompt", plain), ("negative 'a thin seven upright'", pushed)):
    sevens = (metrics.classifier_predict(images) == 7).float().mean()
    print(
        f"{name:32}: thickness {t2i.thickness(images[:, 0]).mean():.2f} px, read as a seven {sevens:.0%}"
    )
captioned_images(torch.cat([plain[:6], pushed[:6]]), ["no negative"] * 6 + ["negative: thin"] * 6,
                 "\u201ca seven upright\u201d, without and with a negative prompt")  # fmt: skip
plt.show()

# %% [markdown]
# The strokes thicken, and the sevens get worse. Both prompts say "seven", so in
# $\epsilon_c - \epsilon_{\text{neg}}$ the seven cancels: guidance now amplifies only
# "not thin", and the digit rests on the negative prompt's own, unamplified prediction —
# at $s = 1$ fidelity, where section 6's sweep reads far fewer requested digits. A
# negative prompt that shares the prompt's subject trades that subject's guidance for
# the attribute's; a lower scale, or a negative prompt that only names the attribute,
# would keep more of it (this grammar has no such caption).

# %% [markdown]
# ### Widget: build a prompt
#
# Eight samples of the prompt the dropdowns make, DDIM with 25 steps, the same noise for
# every prompt and scale.


# %% tags=["nbval-ignore-output"]
def prompt_figure(digit: str, thickness: str, slant: str, scale: float) -> plt.Figure:
    text = captions.caption(captions.DIGITS.index(digit), captions.SLANTS.index(slant),
                            captions.THICKNESSES.index("" if thickness == "medium" else thickness))  # fmt: skip
    images = digits.generate([text] * 8, scale=scale, seed=0, steps=25)
    return captioned_images(images, [""] * 8, f"\u201c{text}\u201d, guidance s = {scale:g}", ncol=4)


widgets.figure_widget(
    prompt_figure,
    digit=list(captions.DIGITS),
    thickness=["thin", "medium", "thick"],
    slant=list(captions.SLANTS),
    scale=[1.0, 2.0, 4.0, 7.0],
)

# %% [markdown]
# ## 7. Putting it together: a small Stable Diffusion
#
# Prompt → CLIP's text encoder → word states; noise on the 4×7×7 grid → 50 DDIM steps of
# the denoiser, guided at the shipped scale `digits.EVAL_SCALE` (the smallest that meets
# every bar of the course's benchmark, below) → the decoder → an image. The shipped model's numbers,
# computed when it was trained (`course pretrain ldm_digits`) on the 1000 test captions:

# %%
m = denoiser.meta["metrics"]
print(f"at s = {m['eval_scale']:g}: digit as requested {m['digit']:.1%}, slant {m['slant']:.1%}, thickness "
      f"{m['thickness']:.1%}, FID {m['fid']:.1f}; trained in {m['train_seconds']:.0f} s")  # fmt: skip
print("course bench text-to-image (1000 test captions per scale):")
print("\n".join(t2i.format_t2i_bench(t2i.load_t2i_bench()["rows"])))
others = {
    name: checkpoints.shipped_state(name)[1]["metrics"]
    for name in ("cgan_mnist", "vq_prior_mnist", "ddpm_mnist")
}
print(f"for scale, FID of the course's class-conditional GAN {others['cgan_mnist']['fid_samples']:.1f}, VQ-VAE prior "
      f"{others['vq_prior_mnist']['fid']:.1f}, class-guided pixel DDPM (w = 2) {others['ddpm_mnist']['fid_guided_w2']:.1f}")  # fmt: skip

# the CLIP score: the cosine between a sample's CLIP embedding and its prompt's
with torch.no_grad():
    generated = digits.generate(prompts[:300], seed=0)
    text_emb = F.normalize(clip.encode_text(captions.encode(prompts[:300])), dim=-1)
    fake = (F.normalize(clip.encode_image(generated), dim=-1) * text_emb).sum(-1).mean()
    real = (image_emb[:300] * text_emb).sum(-1).mean()  # section 3's normalized test embeddings
    shuffled = (image_emb[:300] * text_emb.roll(1, 0)).sum(-1).mean()
print(f"CLIP score (cosine): samples {fake:.3f}, the real test images with their own captions "
      f"{real:.3f}, with another image's caption {shuffled:.3f}")  # fmt: skip
captioned_images(
    generated[:12],
    prompts[:12],
    f"Samples of the small Stable Diffusion, s = {digits.EVAL_SCALE:g}",
)
plt.show()

# %% [markdown]
# ## 8. Where the real systems go further
#
# - **unCLIP / DALL·E 2** (Ramesh et al. 2022) generates a CLIP *image* embedding from the
#   text with a prior, then decodes it with diffusion: the text reaches pixels through
#   CLIP's image space.
# - **Imagen** (Saharia et al. 2022) replaces CLIP's text encoder by a frozen large
#   language model (T5-XXL) and finds that scaling the text encoder helps more than
#   scaling the U-Net; it diffuses in pixels, in a cascade of resolutions.
# - **DiT** (Peebles & Xie 2023) replaces the U-Net by a transformer over latent patches
#   (Stable Diffusion 3 and most video models follow), and its quality scales with
#   compute as a language model's does.
# - **Video** models diffuse in a latent of space *and* time, attention across frames.
#
# What changes with scale is the data (billions of captioned images instead of a program's
# 90 captions) and everything it allows; the three parts and how they connect are the ones
# built here.
