"""course_utils.vqvae: shapes and the straight-through gradient, the EMA codebook update
against its formula, dead-code restarts, codebook usage, and the codebook figure."""

import math

import pytest
import torch

from course_utils import vqvae


def test_vqvae_round_trip_and_straight_through_gradient():
    torch.manual_seed(0)
    model = vqvae.VQVAE(codes=8, dim=4, hidden=8)
    x = torch.rand(3, 1, 28, 28)
    logits, z_e, tokens = model(x)
    assert logits.shape == x.shape and z_e.shape == (3, 4, 7, 7) and tokens.shape == (3, 7, 7)
    assert torch.equal(model.encode(x), tokens)
    assert model.decode(tokens).shape == x.shape
    logits.sum().backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0, "no gradient reached the encoder"
    z_q, _ = model.quantize(z_e)
    assert torch.allclose(z_q, model.codebook[tokens].permute(0, 3, 1, 2))


def test_ema_update_follows_its_formula_and_restarts_dead_codes():
    model = vqvae.VQVAE(codes=3, dim=2, hidden=4)
    model.initialized.fill_(True)
    model.ema_count.copy_(torch.tensor([10.0, 10.0, 1.2]))
    model.ema_sum.copy_(torch.tensor([[10.0, 0.0], [0.0, 10.0], [1.2, 1.2]]))
    z_e = torch.tensor([[3.0, 5.0], [1.0, 3.0]]).reshape(1, 2, 1, 2)  # vectors (3, 1), (5, 3)
    tokens = torch.tensor([[[0, 0]]])
    restarted = model.update_codebook(z_e, tokens, decay=0.75)
    # N_0 = 0.75*10 + 0.25*2 = 8; m_0 = 0.75*(10, 0) + 0.25*(8, 4) = (9.5, 1); code 2: N = 0.9 < 1
    assert restarted == 1
    assert torch.allclose(model.ema_count[:2], torch.tensor([8.0, 7.5]))
    assert torch.allclose(model.codebook[0], torch.tensor([9.5, 1.0]) / 8)
    assert torch.allclose(model.codebook[1], torch.tensor([0.0, 1.0]))
    assert any(
        torch.allclose(model.codebook[2], v)
        for v in (torch.tensor([3.0, 1.0]), torch.tensor([5.0, 3.0]))
    )


def test_first_update_initializes_every_code_from_the_data():
    torch.manual_seed(0)
    model = vqvae.VQVAE(codes=4, dim=2, hidden=4)
    z_e = torch.randn(1, 2, 7, 7) + 100
    assert model.update_codebook(z_e, torch.zeros(1, 7, 7, dtype=torch.long), 0.99) == 4
    assert torch.all(model.codebook > 90)


def test_codebook_usage():
    assert vqvae.codebook_usage(torch.arange(8), 8) == {
        "codes_used": 8.0,
        "perplexity": pytest.approx(8.0),
    }
    one = vqvae.codebook_usage(torch.zeros(5, dtype=torch.long), 8)
    assert one["codes_used"] == 1 and math.isclose(one["perplexity"], 1.0)


def test_codebook_figure_has_titles_and_rejects_bad_input():
    torch.manual_seed(0)
    model = vqvae.VQVAE(codes=8, dim=4, hidden=8).eval()
    x = torch.rand(4, 1, 28, 28)
    tokens = model.encode(x)
    fig = vqvae.codebook_figure(model, tokens, x, int(tokens[0, 0, 0]))
    assert all(ax.get_title() for ax in fig.axes)
    with pytest.raises(ValueError, match="code"):
        vqvae.codebook_figure(model, tokens, x, 8)
