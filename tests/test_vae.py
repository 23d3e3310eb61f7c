import math

import pytest
import torch

from course_utils import checkpoints, data, vae


class FixedPosterior(torch.nn.Module):
    """A 1-d latent model whose ELBO and log p(x) are known by quadrature (see exercise 01)."""

    def __init__(self) -> None:
        super().__init__()
        self.dec = torch.nn.Linear(1, 3)
        with torch.no_grad():
            self.dec.weight.copy_(torch.tensor([[2.0], [-1.5], [1.0]]))
            self.dec.bias.copy_(torch.tensor([0.5, 0.0, -1.0]))

    def encoder(self, x):
        return torch.full((len(x), 1), 0.4), torch.full((len(x), 1), math.log(0.49))

    def decoder(self, z):
        return self.dec(z)


def test_elbo_and_iwae_match_quadrature():
    torch.manual_seed(0)
    model, x = FixedPosterior(), torch.tensor([[1.0, 0.0, 1.0]])
    assert vae.negative_elbo_estimate(
        model, x.repeat(20_000, 1), draws=1
    ).mean().item() == pytest.approx(2.2242012, abs=0.02)
    nll = vae.iwae_nll(model, x.repeat(100, 1), k=2000, chunk=50)
    assert nll.shape == (100,) and nll.mean().item() == pytest.approx(1.7893124, abs=0.01)


def test_log_weights_shapes_for_both_decoders():
    torch.manual_seed(0)
    mlp = vae.MlpVae(data_dim=784, hidden=32, latent_dim=4)
    assert vae.log_weights(mlp, torch.rand(5, 784).round(), k=3).shape == (3, 5)
    conv = vae.ConvDigitsVae(latent_dim=4, channels=4).eval()
    x = data.digits("test", device="cpu")[0][:6]
    assert conv.decoder(torch.zeros(6, 4)).shape == (6, 64, vae.DIGITS_LEVELS)
    lw = vae.log_weights(conv, x, k=2)
    assert lw.shape == (2, 6) and torch.isfinite(lw).all()
    # an untrained categorical decoder is close to uniform: about 64 log 17 nats per image
    assert vae.negative_elbo_estimate(conv, x).mean().item() == pytest.approx(
        64 * math.log(17), rel=0.1
    )


def test_shipped_digits_vae_meets_the_benchmark_goal():
    torch.manual_seed(0)
    model = checkpoints.load_pretrained("vae_digits")
    x = data.digits("test", device="cpu")[0]
    nelbo = vae.negative_elbo_estimate(model, x).mean().item()
    assert nelbo <= 92 and nelbo == pytest.approx(model.meta["metrics"]["test_neg_elbo"], abs=0.5)
    assert model.meta["metrics"]["train_seconds"] <= 60


@pytest.mark.parametrize("name, latent", [("vae_mnist", 16), ("vae_mnist_2d", 2)])
def test_shipped_mnist_vaes_load_and_bound_consistently(name, latent):
    torch.manual_seed(0)
    model = checkpoints.load_pretrained(name)
    assert model.latent_dim == latent
    x = data.mnist("test", device="cpu", flatten=True, binarize=True)[0][:100]
    nelbo = vae.negative_elbo_estimate(model, x).mean().item()
    nll = vae.iwae_nll(model, x, k=50).mean().item()
    assert 50 < nll < nelbo  # the IWAE estimate is a tighter bound than the ELBO
    assert model.meta["metrics"]["classes_present"] == 10
