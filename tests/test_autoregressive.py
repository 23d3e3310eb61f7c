"""course_utils.autoregressive: the reference functions against their definitions, the
PixelCNN's causality (no logit depends on its own or a later pixel) and normalization (the
probabilities of every image sum to one), and sampling with a given top."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import autoregressive as ar


def test_masks_are_the_raster_order_past():
    assert torch.equal(ar.causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]]).bool())
    a, b = ar.masked_conv_mask(3, "A"), ar.masked_conv_mask(3, "B")
    assert torch.equal(a, torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 0, 0]]))
    assert torch.equal(b - a, F.one_hot(torch.tensor(4), 9).view(3, 3).float())
    assert ar.masked_conv_mask(1, "A").sum() == 0 and ar.masked_conv_mask(1, "B").sum() == 1
    for bad, message in [((4, "A"), "kernel_size"), ((3, "C"), "mask_type")]:
        with pytest.raises(ValueError, match=message):
            ar.masked_conv_mask(*bad)


def test_categorical_nll_and_sampling():
    logits, x = torch.randn(2, 5, 3), torch.randint(0, 5, (2, 3))
    expected = -torch.distributions.Categorical(logits=logits.transpose(1, 2)).log_prob(x).sum(1)
    assert torch.allclose(ar.categorical_nll(logits, x), expected)
    assert ar.categorical_nll(torch.tensor([[[300.0], [-300.0]]]), torch.tensor([[1]])) == 600
    with pytest.raises(ValueError, match="logits, x"):
        ar.categorical_nll(logits, x[:, :2])
    rows = torch.tensor([0.0, math.log(3.0)]).expand(100_000, 2)
    at_half = ar.sample_with_temperature(rows, 0.5, torch.Generator().manual_seed(0))
    assert at_half.float().mean().item() == pytest.approx(0.9, abs=0.005)
    grid = torch.randn(3, 4, 7)
    assert torch.equal(ar.sample_with_temperature(grid, 0), grid.argmax(-1))
    with pytest.raises(ValueError, match="temperature"):
        ar.sample_with_temperature(grid, -1.0)


def test_self_attention_matches_torch():
    q, k, v = torch.randn(3, 2, 6, 4).unbind(0)
    mask = ar.causal_mask(6)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(ar.self_attention(q, k, v, mask), expected, atol=1e-6)


def test_vector_quantization_and_its_losses_route_the_gradients():
    codebook = torch.tensor([[0.0, 0.0], [3.0, 3.0]], requires_grad=True)
    z = torch.tensor([[1.4, 1.4], [2.0, 2.5]], requires_grad=True)  # dot product picks code 1
    z_q, indices = ar.vector_quantize(z, codebook)
    assert indices.tolist() == [0, 1] and torch.equal(z_q, codebook[indices].detach())
    z_q.sum().backward()
    assert torch.equal(z.grad, torch.ones(2, 2)) and codebook.grad is None
    z_e = torch.randn(4, 2, requires_grad=True)
    e = torch.randn(4, 2, requires_grad=True)
    codebook_loss, commitment_loss = ar.vq_losses(z_e, e, beta=0.5)
    assert torch.autograd.grad(codebook_loss, z_e, allow_unused=True)[0] is None
    assert torch.autograd.grad(commitment_loss, e, allow_unused=True)[0] is None
    assert commitment_loss.item() == pytest.approx(0.5 * codebook_loss.item())


@pytest.mark.parametrize("mixture", [0, 3])
def test_pixelcnn_is_causal(mixture):
    torch.manual_seed(0)
    model = ar.PixelCNN(levels=5, channels=8, blocks=3, first_kernel=3, mixture=mixture).eval()
    x = torch.randint(0, 5, (1, 8, 8))
    base = model(x)
    for q in (0, 9, 27, 63):  # change pixel q: logits at raster positions <= q must not move
        changed = x.clone()
        changed.view(-1)[q] = (changed.view(-1)[q] + 1) % 5
        moved = (model(changed) - base).abs().amax(1).view(-1) > 0
        assert not moved[: q + 1].any(), q
        assert q == 63 or moved[q + 1 :].any()


def test_pixelcnn_probabilities_sum_to_one():
    torch.manual_seed(0)
    model = ar.PixelCNN(levels=3, channels=8, blocks=2, first_kernel=3, mixture=2).eval()
    images = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 2, 2)
    with torch.no_grad():
        total = model.log_prob(images).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-5)


def test_pixelcnn_completion_keeps_the_given_pixels():
    torch.manual_seed(0)
    model = ar.PixelCNN(levels=17, channels=8, blocks=2, first_kernel=3).eval()
    given = torch.full((4, 8, 8), -1)
    given[:, :4] = torch.randint(0, 17, (4, 4, 8))
    out = model.sample(4, given=given, temperature=0.7, top_k=3)
    assert torch.equal(out[:, :4], given[:, :4]) and out.min() >= 0 and out.max() < 17


@pytest.mark.parametrize("classes", [0, 3])
def test_causal_transformer_is_causal_and_conditions_on_the_label(classes):
    torch.manual_seed(0)
    model = ar.CausalTransformer(vocab=5, length=6, classes=classes, d=16, layers=2, heads=2).eval()
    tokens, labels = torch.randint(0, 5, (1, 6)), torch.tensor([1])
    logits = model(tokens, labels)  # [1, 5, 6]
    for t in range(6):
        changed = tokens.clone()
        changed[0, t] = (changed[0, t] + 1) % 5
        moved = (model(changed, labels) - logits).abs().amax(1)[0]  # per position
        assert torch.all(moved[: t + 1] == 0), f"a logit at or before {t} saw token {t}"
        assert t == 5 or moved[t + 1 :].max() > 0
    if classes:
        assert (model(tokens, torch.tensor([2])) - logits)[..., 0].abs().max() > 0
    probs = torch.softmax(logits, 1)
    assert torch.allclose(probs.sum(1), torch.ones(1, 6))
    drawn = model.sample(4, torch.tensor([0, 1, 2, 0]), generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (4, 6) and drawn.min() >= 0 and drawn.max() < 5


def test_train_transformer_lowers_the_nll_of_a_pattern():
    torch.manual_seed(0)
    tokens = torch.arange(8).repeat(64, 1) % 3  # every sequence 0 1 2 0 1 2 0 1
    model = ar.CausalTransformer(vocab=3, length=8, d=16, layers=1, heads=2, dropout=0.0)
    before = -model.log_prob(tokens).mean().item()
    ar.train_transformer(model, tokens, epochs=20, lr=1e-2, batch_size=16)
    after = -model.log_prob(tokens).mean().item()
    assert after < 0.1 * before
    assert torch.equal(model.sample(2, temperature=0), tokens[:2])


def test_keep_top_k():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.equal(ar.keep_top_k(logits, 2).isinf(), torch.tensor([[True, False, False, True]]))
    assert ar.keep_top_k(logits, None) is logits


def test_widget_figures_have_titles_and_reject_bad_input():
    image = torch.randint(0, 17, (8, 8))
    probs = torch.softmax(torch.randn(64, 17), 1)
    for step in (0, 10, 64):
        fig = ar.generation_figure(image, probs, step)
        assert all(ax.get_title() for ax in fig.axes)
    with pytest.raises(ValueError, match="step"):
        ar.generation_figure(image, probs, 65)
    with pytest.raises(ValueError, match="probs"):
        ar.generation_figure(image, probs[:10], 3)
    fig = ar.completion_figure(image, torch.randint(0, 17, (3, 8, 8)), rows_given=4)
    assert fig.texts[0].get_text() if fig.texts else fig._suptitle.get_text()
    assert all(ax.get_title() for ax in fig.axes)
    with pytest.raises(ValueError, match="completions"):
        ar.completion_figure(image, torch.zeros(3, 7, 8), rows_given=4)


def _earlier(i: int, j: int, size: int = 8) -> torch.Tensor:
    """Bool ``[size, size]``: the pixels before (i, j) in raster order."""
    return (torch.arange(size * size) < i * size + j).view(size, size)


@pytest.mark.parametrize("pixel", [(0, 0), (0, 5), (3, 0), (5, 2), (4, 7), (7, 7)])
def test_gated_pixelcnn_sees_every_earlier_pixel_and_nothing_else(pixel):
    torch.manual_seed(0)
    model = ar.GatedPixelCNN(levels=5, channels=8, blocks=7, mixture=2, positional=True).eval()
    x = torch.randint(0, 5, (4, 8, 8))
    reached = ar.pixel_gradient(model, x, *pixel) != 0
    assert torch.equal(reached, _earlier(*pixel)), reached.int()


def test_masked_pixelcnn_misses_exactly_its_blind_spot():
    torch.manual_seed(0)
    model = ar.PixelCNN(levels=5, channels=8, blocks=8, first_kernel=3).eval()
    x = torch.randint(0, 5, (4, 8, 8))
    i, j = 5, 2
    reached = ar.pixel_gradient(model, x, i, j) != 0
    rows, cols = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    blind = _earlier(i, j) & (cols - j > i - rows)
    assert torch.equal(reached, _earlier(i, j) & ~blind)
    with pytest.raises(ValueError, match="row, column"):
        ar.pixel_gradient(model, x, 8, 0)


def test_gated_pixelcnn_is_normalized_and_samples_with_a_given_top():
    torch.manual_seed(0)
    model = ar.GatedPixelCNN(levels=3, channels=8, blocks=2, mixture=2).eval()
    images = torch.tensor(list(itertools.product(range(3), repeat=4))).view(-1, 2, 2)
    with torch.no_grad():
        assert model.log_prob(images).exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    given = torch.full((3, 8, 8), -1)
    given[:, :3] = torch.randint(0, 3, (3, 3, 8))
    out = model.sample(3, given=given, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :3], given[:, :3]) and out.min() >= 0 and out.max() < 3


def test_gated_block_gates_with_tanh_times_sigmoid():
    h = torch.randn(2, 6, 3, 3)
    assert torch.allclose(ar.gate(h), torch.tanh(h[:, :3]) * torch.sigmoid(h[:, 3:]))


def test_pixelcnn_bench_table_and_methods(tmp_path):
    row = {"test_nll": 80.0, "test_bits_per_dim": 1.8, "parameters": 1000.0, "epochs": 10,
           "best_epoch": 5, "train_seconds": 100.0, "train_cpu_seconds": 90.0}  # fmt: skip
    lines = ar.format_pixelcnn_bench([{"method": "masked", **row}, {"method": "gated", **row}])
    assert len(lines) == 3 and lines[2].startswith("gated PixelCNN") and "80.00" in lines[2]
    with pytest.raises(ValueError, match="methods"):
        ar.bench_pixelcnn_digits(methods="gated,blind")
