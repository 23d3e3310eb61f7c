# DRAFT of lectures/08_text_to_image.py (issue 33): text of sections 1-4 and 6, code to come
# with the shipped checkpoints. Numbers marked {…} are printed by cells, not typed.

# %% [markdown]
# # Lecture 08 — Text to image: captions, CLIP, cross-attention and a small Stable Diffusion
#
# Every conditional model so far took a *label*: lecture 02's conditional GAN a digit class,
# lecture 04's classifier-free guidance the same ten classes. Text-to-image systems take a
# sentence instead — "a thick seven leaning right" — and Stable Diffusion (Rombach et al.
# 2022) does it with three separately trained parts: a **text encoder** (CLIP's), an
# **autoencoder** that compresses images to a small latent grid, and a **diffusion model**
# in that latent space that reads the text through **cross-attention**. This lecture builds
# each part at digit scale, on a laptop CPU, and then puts them together:
#
# 1. from labels to text: a captioned digits set, its captions made by a program from
#    measured attributes (slant, stroke thickness), the measures checked;
# 2. a text encoder: lecture 07's transformer block over caption words;
# 3. CLIP: the symmetric contrastive loss and its learned temperature, one embedding space
#    for images and captions, zero-shot classification from prompts, retrieval;
# 4. cross-attention: queries from image features, keys and values from text tokens, and
#    why not one text vector;
# 5. latent diffusion: an autoencoder, the latent scale factor, diffusion in the latent
#    space, its cost against pixel space, measured;
# 6. guidance with text: classifier-free guidance with caption dropout, the guidance scale
#    (Stable Diffusion's s against lecture 04's w = s − 1), negative prompts, fidelity
#    against diversity, measured; widget: a prompt from dropdowns and the scale;
# 7. a small Stable Diffusion: prompt to samples, evaluated by the course classifier, by
#    the attribute measures, by FID and by the CLIP score;
# 8. where the real systems go further: unCLIP, Imagen, DiT, video.
#
# **Notation.** Images $x$, captions $c$ (a sequence of word tokens), CLIP's encoders
# $f(x)$ and $g(c)$ with unit-normalized outputs; the temperature as CLIP writes it, a
# logit scale $e^{t}$ multiplying cosine similarities. Diffusion follows lecture 04 (Ho et
# al. 2020): $\bar\alpha_t$, $\epsilon_\theta(z_t, t, c)$; latents $z = E(x)$ and decoder
# $D$ as in Rombach et al. Guidance uses Stable Diffusion's scale $s$; lecture 04's
# weight is $w = s - 1$ (Ho & Salimans 2022 write $w$).

# %% [markdown]
# ## 1. From labels to text
#
# A label names one of ten classes; a sentence can say more, and can say it in words
# never paired with that image. To learn from text at digit scale we need digits with
# captions. MNIST has none, so a program writes them from the label and two attributes
# it measures on the image:
#
# - **slant**, from the image's second moments. With pixel intensities $w$ as weights,
#   $x$ the column (growing right), $y$ the row (growing down) and $(\bar x, \bar y)$ the
#   weighted centroid, $\mu_{11} = \sum w (x - \bar x)(y - \bar y)$ and
#   $\mu_{02} = \sum w (y - \bar y)^2$. The shear $x \mapsto x + k (\bar y - y)$ that tilts
#   the top right by $k$ changes $\mu_{11}$ by $-k\,\mu_{02}$, so
#   $\text{slant} = -\mu_{11} / \mu_{02}$ measures $k$: the tangent of the lean, positive
#   to the right. (A digit with its own lean adds its own; we check the measure by
#   shearing digits by a known $k$.)
# - **stroke thickness**: twice the ink's area over its boundary length. A stroke of width
#   $w$ and length $L$ has area $wL$ and perimeter $2(w + L)$, so the ratio is
#   $wL / (w + L) \approx w$ for $L \gg w$. Dilating the ink by one pixel on each side
#   (a 3×3 maximum) should add about 2.
#
# Each measure is cut at the training split's terciles (rounded), so each word describes
# about a third of the digits; the medium thickness says nothing. The grammar:
#
# `a [thin | thick] <zero … nine> <leaning left | upright | leaning right>`
#
# ("an eight" when no adjective comes first): 10 × 3 × 3 = 90 distinct captions.
#
# ## 2. A text encoder
#
# Words become ids (a vocabulary of {…} words and three markers: `[SOS]` starts a
# caption, `[EOT]` ends it, `[PAD]` fills it to 7 positions), embeddings, and two of
# lecture 07's transformer blocks. CLIP's text encoder is *causal*, like a GPT, and reads
# its output at the `[EOT]` position: with the padding on the right, no real word ever
# attends to a `[PAD]`, so padding needs no mask inside the encoder (it will need one in
# cross-attention, section 4). The encoder returns every position's state (what the
# diffusion model will attend to) and the `[EOT]` state (CLIP's summary of the caption).
#
# ## 3. CLIP: one space for images and captions
#
# CLIP (Radford et al. 2021) trains an image encoder $f$ and a text encoder $g$ so that a
# batch of $N$ matching pairs $(x_i, c_i)$ line up: with unit vectors
# $u_i = f(x_i)/\|f(x_i)\|$ and $v_j = g(c_j)/\|g(c_j)\|$ and logits
# $\ell_{ij} = e^{t}\, u_i^\top v_j$, each image must pick its caption among the $N$ in the
# batch and each caption its image:
#
# $$\mathcal L = \frac{1}{2N} \sum_i \Big[ -\log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ij}}}
#   - \log \frac{e^{\ell_{ii}}}{\sum_j e^{\ell_{ji}}} \Big].$$
#
# This is InfoNCE (van den Oord et al. 2018) in both directions. The **temperature**
# $e^{-t}$ is learned (CLIP starts at 0.07 and clips $e^{t}$ at 100): cosine similarities
# live in $[-1, 1]$, and without a scale the softmax over a batch could never be
# confident. Normalizing matters: without it the model can lower the loss by inflating
# norms instead of aligning directions.
#
# Two things differ from CLIP's web-scale setting and the lecture measures both: our 90
# captions repeat within a batch, so some "negatives" are in fact correct (false
# negatives), and our images are tiny. A first lesson from training it: with a plain CNN
# the loss fell to $\ln N$ and stayed — every embedding equal, a collapse the symmetric
# loss cannot leave — and batch normalization in the image encoder avoids it.
#
# **Zero-shot classification**: embed one prompt per class ("a seven upright") and give
# each test image the class of the nearest prompt by cosine similarity; no classifier was
# ever trained. CLIP's *prompt ensembling* averages the normalized embeddings of several
# prompts per class (here: the 9 attribute variants). **Retrieval**: for each caption, the
# most similar test image; recall@1 counts a hit when that image has the query's caption.
#
# ## 4. Cross-attention
#
# A diffusion model must read the caption at every denoising step. The simplest way adds
# one vector — CLIP's `[EOT]` state — to the time embedding, as lecture 04 added a class
# embedding. Stable Diffusion instead lets every spatial position of the U-Net's features
# *ask* the caption what it needs: queries from the image features $h$ (one per position),
# keys and values from the text tokens' states $\tau$ (one per word):
#
# $$\mathrm{CrossAttn}(h, \tau) = \mathrm{softmax}\Big(\frac{(h W_Q)(\tau W_K)^\top}
#   {\sqrt{d_h}}\Big)\, \tau W_V, \qquad d_h = d / H \text{ per head},$$
#
# with padding tokens' keys masked out (they are not words). A pooled vector must carry
# everything in one fixed-size summary; cross-attention lets the top of the digit attend
# to "leaning" while the strokes attend to "thick", and its maps show which word each
# position reads.

# %% [markdown]
# ## 5. Latent diffusion
#
# Stable Diffusion's autoencoder maps a 512×512×3 image to a 64×64×4 latent $z = E(x)$
# (8× smaller per side) and back, $\hat x = D(z)$; the diffusion model never sees a pixel.
# Rombach et al. regularize the latent lightly — a KL term toward $\mathcal N(0, I)$ with
# a tiny weight, or a vector quantizer inside the decoder — so that it stays smooth enough
# to diffuse in without giving up detail. Ours maps 28×28 to 7×7×4 (196 numbers instead
# of 784) with a KL weight of $10^{-2}$ per image.
#
# **The latent scale factor.** Lecture 04's noise schedule assumes data of roughly unit
# variance: $\bar\alpha_T$ is small *relative to a signal of size one*. An autoencoder's
# latents have whatever scale training gave them (Stable Diffusion's: a standard deviation
# near 5.5), so they are multiplied by $1 / \mathrm{std}(z)$ over the training latents
# before diffusion (SD's 0.18215) and divided by it again before decoding.
#
# The cost: one training step and one sample of the diffusion network in latent space
# against lecture 04's pixel-space U-Net at the same batch, measured on this machine.
#
# **Why quantized latents were a poor place to diffuse here.** Diffusing in lecture 06's
# VQ-VAE's pre-quantization space (16×7×7) and quantizing before decoding gave stroke
# fragments: a small error in $z$ picks a different code among 64, and each code is a
# whole 4×4 patch. A KL-regularized latent degrades gracefully instead.
#
# ## 6. Guidance with text
#
# Classifier-free guidance (Ho & Salimans 2022) needs one network that is both conditional
# and unconditional: during training the caption is replaced by the empty caption (just
# `[SOS] [EOT]`) 10% of the time. At sampling time,
#
# $$\tilde\epsilon = \epsilon_\theta(z_t, t, \varnothing) + s\,\big(\epsilon_\theta(z_t, t, c)
#   - \epsilon_\theta(z_t, t, \varnothing)\big),$$
#
# Stable Diffusion's **guidance scale** $s$: $s = 1$ is the plain conditional model,
# $s = 0$ the unconditional one, $s > 1$ extrapolates away from the unconditional
# prediction. Lecture 04 wrote the same rule as $(1 + w)\,\epsilon_c - w\,\epsilon_u$
# (Ho & Salimans' $w$): $w = s - 1$, so lecture 04's $w = 2$ is $s = 3$ here.
#
# **Negative prompts** replace $\varnothing$ by a caption to move away from: with
# $\epsilon_\theta(z_t, t, c_{\text{neg}})$ in place of the unconditional term, the
# extrapolation pushes from "a thick seven" toward the prompt "a thin seven" rather than
# from "anything".
