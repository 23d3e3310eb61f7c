import math

import pytest
import torch

from course_utils import data, metrics


def test_bits_per_dim_and_log_mean_exp():
    assert metrics.nats_to_bits_per_dim(784 * math.log(2), 784) == pytest.approx(1.0)
    x = torch.tensor([[0.0, math.log(3.0)], [1000.0, 1000.0]])
    assert torch.allclose(metrics.log_mean_exp(x, dim=1), torch.tensor([math.log(2.0), 1000.0]))
    with pytest.raises(ValueError, match="num_dims"):
        metrics.nats_to_bits_per_dim(1.0, 0)


def test_mode_coverage_veegan_protocol():
    centers, std = data.mode_centers("ring", device="cpu"), data.mode_std("ring")
    real = data.toy_2d("ring", 2500, device="cpu")
    result = metrics.mode_coverage(real, centers, std)
    assert (result.modes_captured, result.num_modes) == (8, 8)
    # a 2D isotropic Gaussian sample is within 3 std of its mean with probability 1 - e^{-9/2}
    assert result.high_quality_rate == pytest.approx(1 - math.exp(-4.5), abs=0.006)
    # three modes only, all high quality
    collapsed = centers[torch.arange(2500) % 3] + std * torch.randn(2500, 2).clamp(-2, 2)
    assert metrics.mode_coverage(collapsed, centers, std) == metrics.ModeCoverage(3, 8, 1.0)
    # half the samples far from any center: those are not high quality
    near = centers[torch.arange(1250) % 8] + std * torch.randn(1250, 2).clamp(-2, 2)
    far = torch.cat([near, torch.zeros(1250, 2)])
    result = metrics.mode_coverage(far, centers, std)
    assert result.high_quality_rate == pytest.approx(0.5) and result.modes_captured == 8
    # a mode whose only nearby samples are outside 3 std is not captured
    outside = centers[:1] + torch.tensor([[4 * std, 0.0]])
    assert metrics.mode_coverage(outside, centers, std).modes_captured == 0


def test_mode_coverage_bad_input():
    centers = data.mode_centers("grid", device="cpu")
    with pytest.raises(ValueError, match="samples/centers"):
        metrics.mode_coverage(torch.zeros(10, 3), centers, 0.05)
    with pytest.raises(ValueError, match="std"):
        metrics.mode_coverage(torch.zeros(10, 2), centers, 0.0)
    with pytest.raises(TypeError, match="samples"):
        metrics.mode_coverage([[0.0, 0.0]], centers, 0.05)


def test_frechet_distance_matches_gaussian_closed_form():
    torch.manual_seed(0)
    n, d = 200_000, 3
    a = torch.randn(n, d, dtype=torch.float64)
    scale = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    b = torch.randn(n, d, dtype=torch.float64) * scale + 1.0
    # N(0, I) vs N(1, diag(s^2)): |mu|^2 + sum (1 - s)^2
    expected = d * 1.0 + ((1 - scale) ** 2).sum().item()
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=0.02)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="features_b"):
        metrics.frechet_distance(a, b[:, :2])


def test_precision_recall_separate_quality_from_coverage():
    torch.manual_seed(0)
    real = torch.randn(1000, 2)
    half = real[real[:, 0] > 0][:400] + 0.01 * torch.randn(400, 2)  # good quality, half coverage
    precision, recall = metrics.precision_recall(real, half, k=3)
    assert precision > 0.9 and 0.3 < recall < 0.7
    precision, recall = metrics.precision_recall(real, torch.randn(1000, 2) + 10, k=3)
    assert precision == 0.0 and recall == 0.0
    with pytest.raises(ValueError, match="k"):
        metrics.precision_recall(real, half, k=0)


def test_classifier_ships_accurate_and_gives_features():
    x_test, y_test = data.mnist("test", device="cpu")
    probs = metrics.classifier_probs(x_test)
    assert probs.shape == (1000, 10) and torch.allclose(probs.sum(1), torch.ones(1000), atol=1e-5)
    accuracy = (metrics.classifier_predict(x_test) == y_test).float().mean().item()
    assert accuracy > 0.95
    assert metrics.classifier_features(x_test[:7].reshape(7, 784)).shape == (7, metrics.FEATURE_DIM)
    with pytest.raises(ValueError, match=r"images: expected shape \[N, 1, 28, 28\]"):
        metrics.classifier_features(torch.zeros(3, 64))


def test_fid_orders_real_below_noise_and_class_coverage():
    x_train, _ = data.mnist("train", device="cpu")
    x_test, _ = data.mnist("test", device="cpu")
    floor = metrics.fid(x_train[:1000], x_test)
    noise = metrics.fid(torch.rand(1000, 1, 28, 28), x_test)
    assert 0 < floor < 20 < 100 * floor < noise
    coverage = metrics.class_coverage(x_test)
    assert coverage.classes_present == 10 and sum(coverage.histogram) == 1000
    assert math.log(10) - 0.05 < coverage.entropy <= math.log(10) + 1e-9
    ones = x_test[metrics.classifier_predict(x_test) == 1]
    assert metrics.class_coverage(ones).classes_present == 1
    assert metrics.class_coverage(ones).entropy == 0.0
