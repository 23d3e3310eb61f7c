import inspect

import pytest
import torch

from course_utils import checkpoints, registry
from course_utils.metrics import MnistClassifier


def test_save_load_roundtrip_with_plain_metadata(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = checkpoints.save(
        model, tmp_path / "m.pt", name="lin", config={"a": 1}, pixel_range=(0, 1),
        metrics={"nll": 2},
    )  # fmt: skip
    raw = torch.load(path, weights_only=True)  # no pickled objects: weights-only loading works
    assert set(raw) == {"state_dict", "meta"}
    state, meta = checkpoints.load(path)
    assert meta == {"name": "lin", "config": {"a": 1}, "metrics": {"nll": 2.0},
                    "pixel_range": [0.0, 1.0], "torch_version": str(torch.__version__)}  # fmt: skip
    fresh = torch.nn.Linear(3, 2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.weight, model.weight)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        checkpoints.load(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a course checkpoint"):
        checkpoints.load(tmp_path / "other.pt")
    with pytest.raises(TypeError, match="model"):
        checkpoints.save("not a model", tmp_path / "x.pt", name="x", config={}, pixel_range=(0, 1))


def test_load_pretrained_classifier_and_errors(monkeypatch, tmp_path):
    assert "classifier" in checkpoints.available()
    model = checkpoints.load_pretrained("classifier")
    assert isinstance(model, MnistClassifier) and not model.training
    assert model.meta["metrics"]["test_accuracy"] > 0.95
    with pytest.raises(ValueError, match="name: expected one of"):
        checkpoints.load_pretrained("gpt")
    monkeypatch.setattr(checkpoints, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="pretrain classifier"):
        checkpoints.load_pretrained("classifier")


def test_every_registered_checkpoint_ships_and_loads():
    assert set(checkpoints.available()) == set(registry.recipes())
    for name in registry.recipes():
        model = checkpoints.load_pretrained(name)
        assert not model.training and model.meta["name"] == name and model.meta["metrics"]


def test_every_shipped_checkpoint_says_how_to_use_it():
    """Its metadata carries the architecture, the data's pixel range and, for a diffusion
    model, the schedule: the recipe's own constants (one source)."""
    from course_utils import diffusion

    for name in registry.recipes():
        meta = checkpoints.shipped_state(name)[1]
        low, high = meta["pixel_range"]
        assert low < high, name
        model_class = registry.model_class(name)
        parameters = inspect.signature(model_class).parameters.values()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            model_class(**meta["config"])  # its config dataclass refuses an unknown key
        else:
            assert set(meta["config"]) <= {p.name for p in parameters}, name
    assert checkpoints.shipped_state("ddpm_mnist")[1]["schedule"] == diffusion.DDPM_SCHEDULE
    assert torch.equal(
        diffusion.betas_from(diffusion.DDPM_SCHEDULE), diffusion.linear_beta_schedule(1000)
    )
