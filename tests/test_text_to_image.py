"""Lecture 08's package: the exercise functions against their definitions, the caption
attributes against transformations whose effect is known (a shear, a dilation, a bar of
known width), the caption grammar and its word ids, CLIP's encoders' shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.text_to_image import captions
from course_utils.text_to_image.clip import Clip
from course_utils.text_to_image.functions import (
    clip_loss,
    cross_attention,
    guided_eps,
    latent_scale,
    slant,
    zero_shot_classify,
)


def test_clip_loss_is_the_mean_of_both_directions_on_normalized_embeddings():
    g = torch.Generator().manual_seed(0)
    image, text = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    logits = 3.0 * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    one_way = F.cross_entropy(logits, torch.arange(6))
    other_way = F.cross_entropy(logits.T, torch.arange(6))
    assert clip_loss(image, text, 3.0) == pytest.approx(
        ((one_way + other_way) / 2).item(), rel=1e-6
    )
    assert clip_loss(image * 7, text * 0.1, 3.0) == pytest.approx(
        clip_loss(image, text, 3.0).item(), rel=1e-5
    )
    assert one_way != pytest.approx(other_way.item())  # the two directions differ


def test_zero_shot_uses_cosine_not_dot_product():
    image = torch.tensor([[1.0, 0.1]])
    classes = torch.tensor([[10.0, 10.0], [1.0, 0.0]])  # class 0 only wins by its norm
    assert zero_shot_classify(image, classes).tolist() == [1]


def test_cross_attention_is_masked_multi_head_attention_over_the_text():
    g = torch.Generator().manual_seed(0)
    b, n, m, d, c, h = 2, 5, 4, 8, 6, 2
    x, context = torch.randn(b, n, d, generator=g), torch.randn(b, m, c, generator=g)
    w_q, w_out = torch.randn(d, d, generator=g), torch.randn(d, d, generator=g)
    w_k, w_v = torch.randn(c, d, generator=g), torch.randn(c, d, generator=g)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    out = cross_attention(x, context, w_q, w_k, w_v, w_out, h, mask)
    split = lambda t: t.view(b, -1, h, d // h).transpose(1, 2)  # noqa: E731
    ref = F.scaled_dot_product_attention(split(x @ w_q), split(context @ w_k), split(context @ w_v),
                                         attn_mask=mask[:, None, None, :])  # fmt: skip
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(b, n, d) @ w_out)
    padded = context.clone()
    padded[~mask] = 100.0  # what sits at the padding never matters
    torch.testing.assert_close(cross_attention(x, padded, w_q, w_k, w_v, w_out, h, mask), out)


def test_guidance_scale_one_is_the_conditional_model():
    cond, uncond = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])
    assert guided_eps(cond, uncond, 1.0).tolist() == [1.0, 2.0]
    assert guided_eps(cond, uncond, 0.0).tolist() == [0.0, 1.0]
    assert guided_eps(cond, uncond, 3.0).tolist() == [3.0, 4.0]


def _shear(images: torch.Tensor, k: float) -> torch.Tensor:
    """Each row y moved right by k (y_centre - y): the top leans right by k."""
    theta = torch.tensor([[1.0, k, 0.0], [0.0, 1.0, 0.0]]).expand(len(images), 2, 3)
    grid = F.affine_grid(theta, (len(images), 1, 28, 28), align_corners=False)
    return F.grid_sample(images[:, None], grid, align_corners=False)[:, 0]


def _bar(width: int, length: int = 16) -> torch.Tensor:
    image = torch.zeros(28, 28)
    image[6 : 6 + length, 14 - width // 2 : 14 - width // 2 + width] = 1.0
    return image


def test_slant_measures_a_known_shear_with_its_sign():
    bars = torch.stack([_bar(3), _bar(4)])
    assert slant(bars).abs().max() < 1e-6
    for k in (-0.4, 0.3):
        assert slant(_shear(bars, k)) == pytest.approx([k, k], abs=0.02)


def test_thickness_of_a_bar_is_about_its_width_and_grows_by_dilation():
    for width in (2, 3, 5):  # a w x L rectangle: 2 wL / (2w + 2L)
        assert captions.thickness(_bar(width)[None]).item() == pytest.approx(
            width * 16 / (width + 16)
        )
    bars = torch.stack([_bar(2), _bar(3)])
    dilated = F.max_pool2d(bars[:, None], 3, 1, 1)[:, 0]
    grown = [(w + 2) * 18 / (w + 2 + 18) for w in (2, 3)]  # a 3x3 dilation: 2 px wider, longer
    assert captions.thickness(dilated).tolist() == pytest.approx(grown)


def test_latent_scale_gives_unit_variance():
    z = 3.0 * torch.randn(100, 4, 7, 7, generator=torch.Generator().manual_seed(0))
    assert (z * latent_scale(z)).std().item() == pytest.approx(1.0, abs=1e-5)


def test_captions_follow_the_grammar_and_become_word_ids():
    assert captions.caption(7, 2, 2) == "a thick seven leaning right"
    assert captions.caption(8, 1, 1) == "an eight upright"
    assert captions.caption(8, 0, 0) == "a thin eight leaning left"
    every = {captions.caption(d, s, t) for d in range(10) for s in range(3) for t in range(3)}
    assert len(every) == 90
    ids = captions.encode(["a thick seven leaning right", "an eight upright"])
    assert ids.shape == (2, captions.CAPTION_LEN)
    assert [captions.WORDS[i] for i in ids[1]] == [
        "[SOS]",
        "an",
        "eight",
        "upright",
        "[EOT]",
        "[PAD]",
        "[PAD]",
    ]
    with pytest.raises(ValueError, match="texts"):
        captions.encode(["a purple seven"])


def test_clip_embeds_images_and_captions_in_one_space():
    torch.manual_seed(0)
    model = Clip().eval()
    ids = captions.encode(["a seven upright", "a thick seven upright"])
    assert model.encode_text(ids).shape == (2, 64)
    assert model.encode_image(torch.rand(3, 1, 28, 28)).shape == (3, 64)
    assert model.logit_scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    # causal text encoder, read at [EOT]: appending padding changes nothing
    states, eot = model.text(ids)
    assert math.isfinite(states.sum().item()) and eot.shape == (2, 64)


def test_the_autoencoder_maps_digits_to_a_4x7x7_latent_and_back():
    from course_utils.text_to_image.autoencoder import KlAutoencoder

    torch.manual_seed(0)
    ae, x = KlAutoencoder(), torch.rand(3, 1, 28, 28)
    mu, logvar = ae.encode(x)
    assert mu.shape == logvar.shape == (3, 4, 7, 7)
    assert ae.decode(mu).shape == (3, 1, 28, 28)
    nll, kl = ae.loss(x, beta=0.01, generator=torch.Generator().manual_seed(0))
    expected_kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum() / 3
    assert kl.item() == pytest.approx(expected_kl.item(), rel=1e-5)
    assert nll.item() > 0


def test_the_denoiser_starts_at_zero_and_reads_only_real_words():
    from course_utils.text_to_image.latent import LatentDenoiser

    torch.manual_seed(0)
    net = LatentDenoiser(channels=4, width=32, context=16, heads=2, depth=1)
    z, t = torch.randn(2, 4, 7, 7), torch.tensor([10, 900])
    context, mask = torch.randn(2, 5, 16), torch.tensor([[True, True, False, False, False]] * 2)
    assert net(z, t, context, mask).abs().max() == 0  # zero-initialized output convolution
    torch.nn.init.normal_(net.out[-1].weight)
    changed = context.clone()
    changed[:, 2:] = torch.randn(2, 3, 16)  # only the padding changes
    assert torch.equal(net(z, t, context, mask), net(z, t, changed, mask))
    changed[:, 1] += 1.0  # a real word changes
    assert not torch.allclose(net(z, t, context, mask), net(z, t, changed, mask))


def test_the_shipped_pipeline_draws_the_requested_digits():
    from course_utils import metrics
    from course_utils.text_to_image import digits

    prompts = [captions.caption(d, 1, 1) for d in range(10)]
    images = digits.generate(prompts, scale=3.0, steps=25, seed=0)
    assert images.shape == (10, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, digits.generate(prompts, scale=3.0, steps=25, seed=0))
    assert (metrics.classifier_predict(images) == torch.arange(10)).sum() >= 8
