"""Lecture twins: a model a lecture writes out for students and a shipped checkpoint loads
into has a reference copy in ``course_utils`` (which trains and loads the shipped weights).
The two must not drift apart: the lecture's class, built from the checkpoint's config,
loads the shipped ``state_dict`` strictly and gives the same outputs, to the bit, as
``checkpoints.load_pretrained`` on a seeded input (docs/DESIGN.md, "How data and weights
move").

Two kinds of twin: a whole model (``TWINS``: lecture 01's ``VAE`` is ``vae.MlpVae``), or a
layer of a shipped model (``LAYER_TWINS``: lecture 03's ``AffineCoupling`` stands in for
every ``flows.AffineCoupling`` of the shipped flows). The pairs are listed by hand, each
with the outputs it compares, and checked against what the lectures and the registry say
(``test_every_lecture_model_that_holds_shipped_weights_has_a_twin_test``), so that a new
lecture's model is not left out.

The lecture's classes come from its percent script without running it: only its imports,
constants, functions and classes are executed.
"""

from __future__ import annotations

import ast
import copy
import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from course_utils import checkpoints, registry

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("[0-9][0-9]_*.py"))


@functools.cache
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


def lecture_models(script: Path) -> dict[str, type[nn.Module]]:
    """The ``nn.Module`` classes ``script`` defines at top level, by name."""
    namespace = lecture_definitions(script)
    names = [n.name for n in ast.parse(script.read_text()).body if isinstance(n, ast.ClassDef)]
    return {n: namespace[n] for n in names if issubclass(namespace[n], nn.Module)}


@functools.cache
def shipped(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``checkpoints.shipped_state(name)``, read once."""
    return checkpoints.shipped_state(name)


def fresh_model(name: str) -> nn.Module:
    """Checkpoint ``name``'s registered model class built from its config, untrained."""
    return registry.model_class(name)(**shipped(name)[1]["config"])


# The outputs compared: each takes a model in eval mode and draws its inputs from fixed seeds.


def _vae_outputs(model: nn.Module) -> list[torch.Tensor]:
    x = (torch.rand(5, 784, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    z = torch.randn(5, model.latent_dim, generator=torch.Generator().manual_seed(1))
    return [*model.encoder(x), model.decoder(z)]


def _generator_outputs(model: nn.Module) -> list[torch.Tensor]:
    z = torch.randn(10, model.latent_dim, generator=torch.Generator().manual_seed(0))
    return [model(z, torch.arange(10) if model.num_classes else None)]


def _flow_outputs(model: nn.Module) -> list[torch.Tensor]:
    """Both directions: ``inverse`` of base points, and ``(z, log_det)`` of pixel levels
    (``Dequantize`` comes first) of the data's shape."""
    z = torch.randn(4, *model.shape, generator=torch.Generator().manual_seed(0))
    x = model.inverse(z)
    levels = model.layers[0].levels * torch.rand(
        x.shape, generator=torch.Generator().manual_seed(1)
    )
    return [x, *model(levels)]


def _coupling(lecture_class: type[nn.Module], layer: nn.Module) -> nn.Module:
    """The lecture's coupling with the shipped layer's mask and a copy of its network (the
    lecture builds it the same way: ``AffineCoupling(mask, flows.mlp(...))``)."""
    return lecture_class(layer.mask.clone(), copy.deepcopy(layer.net))


Outputs = Callable[[nn.Module], list[torch.Tensor]]

# (lecture script, its class, checkpoint, the outputs to compare): the lecture's class is
# the checkpoint's whole model.
TWINS: list[tuple[str, str, str, Outputs]] = [
    ("01_vae.py", "VAE", "vae_mnist", _vae_outputs),
    ("01_vae.py", "VAE", "vae_mnist_2d", _vae_outputs),
    ("02_gan.py", "Generator", "dcgan_mnist", _generator_outputs),
    ("02_gan.py", "Generator", "cgan_mnist", _generator_outputs),
]

# (lecture script, its class, checkpoint, how to build it from the package's layer it
# replaces, the whole model's outputs to compare): the lecture's class is a layer of the
# checkpoint's model, the package class of the same name.
LAYER_TWINS: list[tuple[str, str, str, Callable[..., nn.Module], Outputs]] = [
    ("03_flows.py", "AffineCoupling", "flow_digits", _coupling, _flow_outputs),
    ("03_flows.py", "AffineCoupling", "flow_mnist", _coupling, _flow_outputs),
]


def _assert_same_outputs(ours: nn.Module, checkpoint: str, outputs: Outputs) -> None:
    theirs = checkpoints.load_pretrained(checkpoint)
    ours.eval()
    with torch.no_grad():
        for a, b in zip(outputs(ours), outputs(theirs), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("script, name, checkpoint, outputs", TWINS)
def test_the_lecture_model_and_its_reference_copy_agree(script, name, checkpoint, outputs):
    """The lecture's class, built from the checkpoint's config, holds the shipped weights
    (strict ``load_state_dict``: same keys and shapes) and computes what
    ``checkpoints.load_pretrained`` computes, to the bit."""
    state, meta = shipped(checkpoint)
    ours = lecture_models(ROOT / "lectures" / script)[name](**meta["config"])
    ours.load_state_dict(state)
    _assert_same_outputs(ours, checkpoint, outputs)


@pytest.mark.parametrize("script, name, checkpoint, build, outputs", LAYER_TWINS)
def test_the_lecture_layer_and_its_reference_copy_agree(script, name, checkpoint, build, outputs):
    """The shipped model with the lecture's class in place of every package layer of the
    same name holds the shipped weights (strict ``load_state_dict`` of the whole file) and
    computes what ``checkpoints.load_pretrained`` computes, to the bit."""
    lecture_class = lecture_models(ROOT / "lectures" / script)[name]
    ours, swapped = fresh_model(checkpoint), 0
    for parent in list(ours.modules()):
        for key, child in list(parent.named_children()):
            if type(child).__name__ == name and not isinstance(child, lecture_class):
                setattr(parent, key, build(lecture_class, child))
                swapped += 1
    assert swapped, f"{checkpoint}'s model has no {name} layer for the lecture's to replace"
    ours.load_state_dict(shipped(checkpoint)[0])
    _assert_same_outputs(ours, checkpoint, outputs)


def _holds(model_class: type[nn.Module], checkpoint: str) -> bool:
    """Whether ``model_class(**config)`` loads ``checkpoint``'s weights strictly."""
    state, meta = shipped(checkpoint)
    try:
        model = model_class(**meta["config"])
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError):  # another config, other keys or shapes
        return False
    return True


def _called(tree: ast.AST) -> set[str]:
    """The names of the functions and methods ``tree`` calls (``f(...)``, ``x.f(...)``)."""
    calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
    return {f.id for f in calls if isinstance(f, ast.Name)} | {
        f.attr for f in calls if isinstance(f, ast.Attribute)
    }


def _given_shipped_weights(script: Path) -> set[str]:
    """The classes of ``script`` built in a cell that also calls ``shipped_state`` and
    ``load_state_dict``: those the lecture loads shipped weights into."""
    models, found = lecture_models(script), set()
    for cell in re.split(r"^# %%.*$", script.read_text(), flags=re.MULTILINE):
        called = _called(ast.parse(cell))
        if {"shipped_state", "load_state_dict"} <= called:
            found |= called & set(models)
    return found


def test_every_lecture_model_that_holds_shipped_weights_has_a_twin_test():
    """Guards the tables above against a lecture model left out. Every ``nn.Module`` class
    a lecture defines is checked against every registered checkpoint, three ways:

    - built from a checkpoint's config, it loads the checkpoint strictly: it is that
      model's twin, and ``TWINS`` lists exactly these pairs;
    - the lecture builds it in a cell that loads a shipped ``state_dict``: ``TWINS`` lists it;
    - it has the name of a ``course_utils`` class that a checkpoint's model is or holds
      (a twin whose keys drifted no longer loads, but keeps its name): ``TWINS`` or
      ``LAYER_TWINS`` lists it with that checkpoint.
    """
    names = list(registry.recipes())
    package_classes = {
        name: {
            type(m).__name__
            for m in fresh_model(name).modules()
            if type(m).__module__.startswith("course_utils")
        }
        for name in names
    }
    holds, loaded, named = set(), set(), set()
    for script in LECTURES:
        for cls_name, cls in lecture_models(script).items():
            holds |= {(script.name, cls_name, n) for n in names if _holds(cls, n)}
            named |= {(script.name, cls_name, n) for n in names if cls_name in package_classes[n]}
        loaded |= {(script.name, cls_name) for cls_name in _given_shipped_weights(script)}
    twins = {(script, name, checkpoint) for script, name, checkpoint, _ in TWINS}
    layer_twins = {(script, name, checkpoint) for script, name, checkpoint, *_ in LAYER_TWINS}
    assert not holds - twins, (
        "lecture models that hold a shipped checkpoint's weights, with no twin test: "
        f"{sorted(holds - twins)}: list them in TWINS, with the outputs to compare"
    )
    assert not twins - holds, (
        f"TWINS lists {sorted(twins - holds)}, but the lecture's class built from the "
        "checkpoint's config does not load it strictly (or is gone)"
    )
    uncovered = loaded - {(script, name) for script, name, _ in twins}
    assert not uncovered, (
        f"lectures load shipped weights into {sorted(uncovered)}, but built from the "
        "checkpoint's config the class does not load them strictly: it has drifted from its "
        "course_utils twin"
    )
    uncovered = named - twins - layer_twins
    assert not uncovered, (
        "lecture classes named like a course_utils class that a shipped model is or holds, "
        f"with no twin test: {sorted(uncovered)}: list them in TWINS or LAYER_TWINS"
    )
