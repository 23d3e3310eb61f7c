import pytest
import torch

from course_utils import device


def test_get_device_is_cpu_here_and_prefer_cpu_works():
    expected = "cuda" if torch.cuda.is_available() else None
    assert device.get_device().type in ("cpu", "cuda", "mps")
    if expected:
        assert device.get_device().type == expected
    assert device.get_device("cpu") == torch.device("cpu")


def test_get_device_rejects_unknown_and_unavailable():
    with pytest.raises(ValueError, match="prefer"):
        device.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            device.get_device("cuda")


def test_course_device_overrides_the_choice(monkeypatch):
    monkeypatch.setenv(device.DEVICE_ENV, "cpu")
    assert device.get_device() == torch.device("cpu")
    assert device.get_device("cpu") == torch.device("cpu")  # an argument wins
    monkeypatch.setenv(device.DEVICE_ENV, "gpu")
    with pytest.raises(ValueError, match="COURSE_DEVICE: expected 'cuda', 'mps' or 'cpu'"):
        device.get_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv(device.DEVICE_ENV, "cuda")
        with pytest.raises(ValueError, match="COURSE_DEVICE: 'cuda' was asked for but no CUDA"):
            device.get_device()
    monkeypatch.setenv(device.DEVICE_ENV, "")
    assert device.get_device().type in device.DEVICE_TYPES


def test_seed_everything_reproduces_torch_and_returns_generator():
    g = device.seed_everything(3)
    a = torch.randn(4)
    b = torch.randn(4, generator=g)
    g2 = device.seed_everything(3)
    assert torch.equal(a, torch.randn(4))
    assert torch.equal(b, torch.randn(4, generator=g2))


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (1.5, TypeError), ("3", TypeError)])
def test_seed_everything_rejects_bad_seeds(bad, error):
    with pytest.raises(error, match="seed"):
        device.seed_everything(bad)


def test_import_sets_one_thread_by_default():
    # course_utils was imported by the test session: the default policy is in force.
    assert torch.get_num_threads() == device.DEFAULT_CPU_THREADS == 1


def test_configure_threads_env_override_and_errors(monkeypatch):
    try:
        monkeypatch.setenv(device.THREADS_ENV, "2")
        assert device.configure_threads() == 2
        assert torch.get_num_threads() == 2
        monkeypatch.setenv(device.THREADS_ENV, "many")
        with pytest.raises(ValueError, match="COURSE_NUM_THREADS"):
            device.configure_threads()
        with pytest.raises(ValueError, match="num_threads"):
            device.configure_threads(0)
    finally:
        monkeypatch.delenv(device.THREADS_ENV, raising=False)
        device.configure_threads()
    assert torch.get_num_threads() == 1
