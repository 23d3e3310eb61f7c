"""Save and load model weights (``save``, ``load``, ``load_pretrained(name)``,
``shipped_state(name)``): a ``state_dict`` plus plain metadata, never a pickled model.

A checkpoint file holds ``{"state_dict": ..., "meta": {"name", "config", "metrics",
"pixel_range", "torch_version"}}`` (and ``"schedule"`` for a diffusion model): everything
needed to use it. ``config`` rebuilds the model, ``pixel_range`` is the range of the data
it models (``data.to_unit`` turns such values into images in [0, 1]), ``schedule`` the
noise schedule it was trained with (``diffusion.betas_from``).
``torch.load(weights_only=True)`` reads it: only tensors and plain Python values.

Shipped checkpoints live in ``course_utils/weights/NAME.pt`` and are made by
``python -m course_utils.pretrain NAME``; ``load_pretrained(NAME)`` builds the model class
that NAME's recipe names (``course_utils.registry``) from the stored config and loads the
weights. How weights move between lectures, recipes and the README: docs/DESIGN.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)
from course_utils import registry

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def save(
    model: nn.Module,
    path: str | Path,
    *,
    name: str,
    config: dict[str, Any],
    pixel_range: tuple[float, float],
    metrics: dict[str, float] | None = None,
    schedule: dict[str, Any] | None = None,
) -> Path:
    """Write ``model.state_dict()`` and metadata to ``path``; return the path.

    ``config`` holds the constructor arguments of the model class, so that
    ``load_pretrained`` can rebuild it; ``pixel_range`` the ``(low, high)`` of the data the
    model was trained on; ``metrics`` the numbers the model reached; ``schedule`` a
    diffusion model's noise schedule.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "name": name,
        "config": dict(config),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "pixel_range": [float(pixel_range[0]), float(pixel_range[1])],
        "torch_version": str(torch.__version__),
    }
    if schedule is not None:
        meta["schedule"] = dict(schedule)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "meta": meta}, path)
    return path


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by ``save``; return ``(state_dict, meta)``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a course checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint file at {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or set(blob) != {"state_dict", "meta"}:
        raise ValueError(f"path: {path} is not a course checkpoint (expected state_dict + meta)")
    return blob["state_dict"], blob["meta"]


def available() -> list[str]:
    """Names of the checkpoints shipped with the package."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))


def shipped_state(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` of a shipped checkpoint, to load into a lecture's own class.

    Raises:
        ValueError: ``name`` is not a registered checkpoint.
        FileNotFoundError: its file is missing (run ``python -m course_utils.pretrain NAME``).
    """
    recipes = registry.recipes()
    if name not in recipes:
        raise ValueError(f"name: expected one of {sorted(recipes)}, got {name!r}")
    path = WEIGHTS_DIR / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"name: checkpoint {name!r} is not shipped at {path}; "
            f"create it with `python -m course_utils.pretrain {name}`"
        )
    return load(path)


def load_pretrained(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """Build the registered model for ``name``, load its shipped weights, set eval mode.

    The metadata (config, metrics, torch version) is attached as ``model.meta``.

    Raises:
        ValueError: ``name`` is not a registered checkpoint.
        FileNotFoundError: the registered checkpoint's file is missing (run
            ``python -m course_utils.pretrain NAME``).
    """
    state_dict, meta = shipped_state(name)
    model = registry.model_class(name)(**meta["config"])
    model.load_state_dict(state_dict)
    model.meta = meta
    return model.to(device).eval()
