"""Lecture 08's shipped models and the small Stable Diffusion they make together:
``clip_digits`` (CLIP on captioned MNIST), ``ae_digits`` (the KL autoencoder) and
``ldm_digits`` (the text-conditioned latent denoiser, trained on the shipped autoencoder's
latents and the shipped CLIP text encoder's word states, both frozen), with their recipes
(``course pretrain text-to-image`` makes the three in order) and ``generate``: prompts ->
images.

Diffusion uses lecture 04's linear schedule (``DDPM_SCHEDULE``) and DDIM. Not the cosine
schedule: its last alpha_bar is ~2e-9 (beta clipped at 0.999), so DDIM's first estimate of
z_0 multiplies the model's error by 1/sqrt(alpha_bar) ~ 2e4 (tried: FID above 300).
"""

from __future__ import annotations

import copy
import math
import time
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from course_utils import checkpoints, data, metrics
from course_utils.diffusion import DDPM_SCHEDULE, alpha_bar_of, betas_from, q_sample, sample_ddim
from course_utils.registry import recipe
from course_utils.text_to_image import captions
from course_utils.text_to_image.autoencoder import KlAutoencoder
from course_utils.text_to_image.clip import Clip
from course_utils.text_to_image.functions import (
    clip_loss,
    guided_eps,
    latent_scale,
    zero_shot_classify,
)
from course_utils.text_to_image.latent import LatentDenoiser

GROUP = "text-to-image"
CLIP_CONFIG = {"dim": 64, "text_width": 64, "image_width": 128}
AE_CONFIG = {"channels": 4, "width": 64}
LDM_CONFIG = {"channels": 4, "width": 64, "context": 64, "heads": 4, "depth": 2}
CAPTION_DROPOUT = 0.1  # the share of training captions replaced by the empty one
# The guidance scale s of the shipped model's metrics: in `course bench text-to-image`, the
# smallest at which digit, slant, thickness and FID all meet issue 33's bars.
EVAL_SCALE = 4.0
PAD = captions.WORDS.index("[PAD]")


def _seconds(since: tuple[float, float]) -> dict[str, float]:
    return {"train_seconds": time.perf_counter() - since[0],
            "cpu_seconds": time.process_time() - since[1],
            "threads": float(torch.get_num_threads())}  # fmt: skip


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def class_prompts() -> list[str]:
    """One prompt per digit, the plainest caption: "a zero upright", ..."""
    return [captions.caption(d, 1, 1) for d in range(10)]


@torch.no_grad()
def clip_metrics(model: Clip) -> dict[str, float]:
    """On the test split: zero-shot digit accuracy from ``class_prompts`` alone, and caption ->
    image recall@1 (the nearest image has the query's caption) over the 1000 test images."""
    x, y = data.mnist("test")
    model.eval()
    images = model.encode_image(x)
    prompts = model.encode_text(captions.encode(class_prompts()))
    ids = captions.encode(captions.captions(x, y))
    sims = F.normalize(model.encode_text(ids), dim=-1) @ F.normalize(images, dim=-1).T
    best = sims.argmax(-1)
    return {
        "zero_shot": (zero_shot_classify(images, prompts) == y).float().mean().item(),
        "recall_at_1": (ids[best] == ids).all(-1).float().mean().item(),
    }


def train_clip(epochs: int = 40, batch: int = 128, lr: float = 2e-3, seed: int = 0):
    """CLIP on the training split's captioned digits with ``clip_loss``: AdamW (weight decay
    0.1), a cosine learning rate per step, each batch shifted by up to 2 pixels."""
    x, y = data.mnist("train")
    ids = captions.encode(captions.captions(x, y))
    torch.manual_seed(seed)
    model = Clip(**CLIP_CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    g = torch.Generator().manual_seed(seed)
    steps, step, since = epochs * (len(x) // batch), 0, _clock()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch + 1, batch):
            j = perm[i : i + batch]
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            images = data.random_shift(x[j], 2, g)
            loss = clip_loss(
                model.encode_image(images), model.encode_text(ids[j]), model.logit_scale()
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        print(f"epoch {epoch + 1:3d}  loss {loss.item():.3f}  "
              f"logit scale {model.logit_scale().item():.1f}", flush=True)  # fmt: skip
    return model.eval(), {**_seconds(since), **clip_metrics(model)}


@recipe("clip_digits", model="course_utils.text_to_image.clip:Clip", group=GROUP,
        summary="CLIP on captioned MNIST digits (lecture 08)",
        numbers="zero-shot digit accuracy {zero_shot:.1%} from prompts alone; caption -> image "
                "recall@1 {recall_at_1:.2f}; {train_seconds:.0f} s of training")  # fmt: skip
def pretrain_clip_digits(out: Path, epochs: int = 40, seed: int = 0) -> dict[str, float]:
    model, results = train_clip(epochs=epochs, seed=seed)
    checkpoints.save(model, out, name="clip_digits", config=CLIP_CONFIG, pixel_range=(0.0, 1.0),
                     metrics=results)  # fmt: skip
    return results


def train_autoencoder(epochs: int = 20, beta: float = 1e-2, batch: int = 128, seed: int = 0):
    """``KlAutoencoder`` on the training split: Adam 2e-3, loss ``nll + beta * kl``."""
    x, _ = data.mnist("train")
    torch.manual_seed(seed)
    model = KlAutoencoder(**AE_CONFIG)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g, since = torch.Generator().manual_seed(seed), _clock()
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            nll, kl = model.loss(x[perm[i : i + batch]], beta)
            opt.zero_grad()
            (nll + beta * kl).backward()
            opt.step()
        print(f"epoch {epoch + 1:3d}  nll {nll.item():.1f}  kl {kl.item():.1f}", flush=True)
    model.eval()
    xt, _ = data.mnist("test")
    with torch.no_grad():
        recon = torch.sigmoid(model.decode(model.encode(xt)[0]))
        train_mu = model.encode(x)[0]
    return model, {**_seconds(since), "mse": F.mse_loss(recon, xt).item(),
                   "fid_reconstruction": metrics.fid(recon, xt),
                   "latent_scale": latent_scale(train_mu)}  # fmt: skip


@recipe("ae_digits", model="course_utils.text_to_image.autoencoder:KlAutoencoder", group=GROUP,
        summary="KL autoencoder, 28x28 digits to a 4x7x7 latent (lecture 08)",
        numbers="test MSE {mse:.4f}, FID of the reconstructions {fid_reconstruction:.2f}; "
                "{train_seconds:.0f} s of training")  # fmt: skip
def pretrain_ae_digits(out: Path, epochs: int = 20, seed: int = 0) -> dict[str, float]:
    model, results = train_autoencoder(epochs=epochs, seed=seed)
    checkpoints.save(model, out, name="ae_digits", config=AE_CONFIG, pixel_range=(0.0, 1.0),
                     metrics=results)  # fmt: skip
    return results


@lru_cache(maxsize=1)
def alpha_bar() -> torch.Tensor:
    """``[T]``: lecture 04's linear schedule, the one the latent denoiser trains with."""
    return alpha_bar_of(betas_from(DDPM_SCHEDULE))


@torch.no_grad()
def text_states(clip: Clip, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen text encoder's word states ``[B, m, c]`` and the mask of real words
    ``[B, m]`` (``[PAD]`` False) of ``texts``."""
    ids = captions.encode(texts)
    return clip.text(ids)[0], ids != PAD


def train_denoiser(clip: Clip, ae: KlAutoencoder, steps: int = 12_000, batch: int = 128,
                   lr: float = 1e-3, seed: int = 0):  # fmt: skip
    """``LatentDenoiser`` on the training split's latents (the encoder's means times
    ``latent_scale``) and captions, ``CAPTION_DROPOUT`` of them replaced by the empty
    caption; AdamW with 200 warm-up steps; returns the EMA of its weights (decay 0.999)."""
    x, y = data.mnist("train")
    with torch.no_grad():
        z = ae.encode(x)[0]
    torch.manual_seed(seed)
    model = LatentDenoiser(**LDM_CONFIG)
    model.latent_scale.fill_(latent_scale(z))
    z = z * model.latent_scale
    context, mask = text_states(clip, captions.captions(x, y))
    empty_context, empty_mask = text_states(clip, [""])
    ema = copy.deepcopy(model)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    g, ab, since = torch.Generator().manual_seed(seed), alpha_bar(), _clock()
    for step in range(steps):
        j = torch.randint(len(z), (batch,), generator=g)
        drop = torch.rand(batch, generator=g) < CAPTION_DROPOUT
        c = torch.where(drop[:, None, None], empty_context, context[j])
        m = torch.where(drop[:, None], empty_mask, mask[j])
        t = torch.randint(len(ab), (batch,), generator=g)
        noise = torch.randn(z[j].shape, generator=g)
        loss = F.mse_loss(model(q_sample(z[j], t, noise, ab), t, c, m), noise)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / 200)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1 - decay)
        if (step + 1) % 1000 == 0:
            print(f"step {step + 1:6d}  loss {loss.item():.4f}", flush=True)
    return ema.eval(), _seconds(since)


@torch.no_grad()
def generate(prompts: list[str], scale: float = EVAL_SCALE, steps: int = 50, seed: int = 0,
             negative: str = "", models: tuple | None = None) -> torch.Tensor:  # fmt: skip
    """Images ``[len(prompts), 1, 28, 28]`` in [0, 1]: DDIM with ``steps`` steps in the
    latent space from noise drawn with ``seed``, classifier-free guidance at ``scale``
    towards each prompt and away from ``negative`` (default: the empty caption), decoded by
    the autoencoder. ``models``: ``(clip, ae, denoiser)``, default the shipped ones."""
    clip, ae, denoiser = models or shipped()
    context, mask = text_states(clip, prompts)
    n = len(prompts)
    away, away_mask = text_states(clip, [negative])
    away, away_mask = away.expand(n, -1, -1), away_mask.expand(n, -1)

    def eps_model(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cond = denoiser(z, t, context, mask)
        return cond if scale == 1 else guided_eps(cond, denoiser(z, t, away, away_mask), scale)

    noise = torch.randn(n, denoiser.out[-1].out_channels, 7, 7,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip
    z = sample_ddim(eps_model, noise, alpha_bar(), steps) / denoiser.latent_scale
    return torch.sigmoid(ae.decode(z))


def evaluate(images: torch.Tensor, prompts_from: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """How well ``images`` (generated from the captions of the test images ``prompts_from =
    (x, y)``, in order) follow them: the share the course classifier reads as the requested
    digit, the share with the requested slant and thickness class, FID to the test images."""
    x, y = prompts_from
    slant, thick = captions.attributes(x)
    got_slant, got_thick = captions.attributes(images)
    return {
        "digit": (metrics.classifier_predict(images) == y).float().mean().item(),
        "slant": (got_slant == slant).float().mean().item(),
        "thickness": (got_thick == thick).float().mean().item(),
        "fid": metrics.fid(images, x),
    }


@recipe("ldm_digits", model="course_utils.text_to_image.latent:LatentDenoiser", group=GROUP,
        summary="text-conditioned latent diffusion on ae_digits' latents, clip_digits' text "
                "encoder (lecture 08)",
        numbers="at guidance s = {eval_scale:g}, on the 1000 test captions: digit "
                "{digit:.1%}, slant {slant:.1%}, thickness {thickness:.1%}, FID {fid:.1f}; "
                "{train_seconds:.0f} s of training")  # fmt: skip
def pretrain_ldm_digits(out: Path, epochs: int = 384, seed: int = 0) -> dict[str, float]:
    """Needs the shipped ``clip_digits`` and ``ae_digits`` (made first by the group);
    ``epochs`` of 4000 latents in batches of 128 (384: 12000 steps)."""
    clip, ae = checkpoints.load_pretrained("clip_digits"), checkpoints.load_pretrained("ae_digits")
    batch = 128
    steps = epochs * len(data.mnist("train")[1]) // batch
    denoiser, results = train_denoiser(clip, ae, steps=steps, batch=batch, seed=seed)
    x, y = data.mnist("test")
    images = generate(captions.captions(x, y), EVAL_SCALE, models=(clip, ae, denoiser))
    results.update(evaluate(images, (x, y)), eval_scale=EVAL_SCALE)
    checkpoints.save(denoiser, out, name="ldm_digits", config=LDM_CONFIG, pixel_range=(0.0, 1.0),
                     metrics=results, schedule=DDPM_SCHEDULE)  # fmt: skip
    return results


@lru_cache(maxsize=1)
def shipped() -> tuple[Clip, KlAutoencoder, LatentDenoiser]:
    """The shipped ``(clip_digits, ae_digits, ldm_digits)``, in eval mode."""
    return tuple(checkpoints.load_pretrained(n) for n in ("clip_digits", "ae_digits", "ldm_digits"))
