"""Lecture twins: a model a lecture writes out for students and a shipped checkpoint loads
into has a reference copy in ``course_utils`` (which trains and loads the shipped weights).
The two must not drift apart: same ``state_dict`` keys and shapes, and the same outputs
on a seeded input with the shipped weights (docs/DESIGN.md, "How data and weights move").

The lecture's classes come from its percent script without running it: only its imports,
constants, functions and classes are executed.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import torch

from course_utils import checkpoints, gan, vae

ROOT = Path(__file__).resolve().parents[1]


def lecture_definitions(script: Path) -> dict[str, Any]:
    """The namespace of ``script``'s top-level imports, constant assignments, functions and
    classes (no training, no plots)."""
    tree = ast.parse(script.read_text())
    kept = [
        node
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.ClassDef)
        or (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant))
    ]
    namespace: dict[str, Any] = {"__name__": f"lecture_{script.stem}"}
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(script), "exec"), namespace)
    return namespace


def _vae_outputs(model: torch.nn.Module) -> list[torch.Tensor]:
    x = (torch.rand(5, 784, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    z = torch.randn(5, model.latent_dim, generator=torch.Generator().manual_seed(1))
    return [*model.encoder(x), model.decoder(z)]


def _generator_outputs(model: torch.nn.Module) -> list[torch.Tensor]:
    z = torch.randn(10, model.latent_dim, generator=torch.Generator().manual_seed(0))
    return [model(z, torch.arange(10) if model.num_classes else None)]


# (lecture script, its class, the reference class, checkpoint, the outputs to compare)
TWINS = [
    ("01_vae.py", "VAE", vae.MlpVae, "vae_mnist", _vae_outputs),
    ("01_vae.py", "VAE", vae.MlpVae, "vae_mnist_2d", _vae_outputs),
    ("02_gan.py", "Generator", gan.DcganGenerator, "dcgan_mnist", _generator_outputs),
    ("02_gan.py", "Generator", gan.DcganGenerator, "cgan_mnist", _generator_outputs),
]


@pytest.mark.parametrize("script, name, reference, checkpoint, outputs", TWINS)
def test_the_lecture_model_and_its_reference_copy_agree(
    script, name, reference, checkpoint, outputs
):
    state, meta = checkpoints.shipped_state(checkpoint)
    lecture_class = lecture_definitions(ROOT / "lectures" / script)[name]
    ours, theirs = lecture_class(**meta["config"]), reference(**meta["config"])
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    for model in (ours, theirs):
        model.load_state_dict(state)
        model.eval()
    with torch.no_grad():
        for a, b in zip(outputs(ours), outputs(theirs), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
