"""What the course ships and measures, registered where it is defined.

A topic module (``vae``, ``gan``, ``flows``, ``diffusion``, ``flow_matching``,
``autoregressive``, ``vqvae``; ``metrics`` for the classifier) decorates each pretraining
recipe with ``@recipe`` and each benchmark with ``@benchmark``. ``course pretrain`` / ``python -m
course_utils.pretrain``, ``course bench``, ``checkpoints.load_pretrained`` and their help
text read these tables; none of them names a topic. ``TOPICS`` is the one list of topic
modules (a new topic adds its line here; the checklist is in docs/DESIGN.md, "Add a topic").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TOPICS = (
    "course_utils.metrics",
    "course_utils.vae",
    "course_utils.gan",
    "course_utils.flows",
    "course_utils.diffusion",
    "course_utils.flow_matching",
    "course_utils.autoregressive",
    "course_utils.vqvae",
)


@dataclass(frozen=True)
class Recipe:
    """How a shipped checkpoint is made: ``make(out, **options) -> metrics`` trains and
    saves it; its weights load into ``model`` (``"module:attribute"``, called with the
    checkpoint's config); ``summary`` says what it is and ``numbers`` (a ``str.format``
    template over its stored metrics) what it reached, for the README's table; ``group``
    names the ``pretrain`` target that makes several."""

    name: str
    make: Callable[..., dict[str, float]]
    model: str
    summary: str
    numbers: str
    group: str | None = None


@dataclass(frozen=True)
class Benchmark:
    """A ``course bench NAME``: ``run(**options)`` prints its table; ``options`` are the
    command-line options it takes (of ``OPTIONS``); ``table()``, when the results ship,
    gives their table's lines (``course build`` writes it into the README)."""

    name: str
    run: Callable[..., Any]
    summary: str
    options: tuple[str, ...] = ()
    table: Callable[[], list[str]] | None = None


# The options a benchmark may take on the command line, with their help.
OPTIONS = {
    "seeds": (int, "seeds per method"),
    "steps": (int, "training steps"),
    "save": (str, "also write the results as JSON to this file"),
    "methods": (
        str,
        "comma-separated methods to run (default: all); with --save, their rows "
        "replace theirs in the file",
    ),
}

_RECIPES: dict[str, Recipe] = {}
_BENCHMARKS: dict[str, Benchmark] = {}


def recipe(
    name: str, *, model: str, summary: str, numbers: str, group: str | None = None
) -> Callable[[Callable[..., dict[str, float]]], Callable[..., dict[str, float]]]:
    """Register the decorated ``make(out, **options)`` as the recipe of checkpoint ``name``."""

    def register(make: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
        if name in _RECIPES:
            raise ValueError(f"name: recipe {name!r} is registered twice")
        _RECIPES[name] = Recipe(name, make, model, summary, numbers, group)
        return make

    return register


def benchmark(
    name: str,
    *,
    summary: str,
    options: tuple[str, ...] = (),
    table: Callable[[], list[str]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as ``course bench name``."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"options: expected some of {sorted(OPTIONS)}, got {sorted(unknown)}")

    def register(run: Callable[..., Any]) -> Callable[..., Any]:
        if name in _BENCHMARKS:
            raise ValueError(f"name: benchmark {name!r} is registered twice")
        _BENCHMARKS[name] = Benchmark(name, run, summary, tuple(options), table)
        return run

    return register


def _load_topics() -> None:
    for module in TOPICS:
        importlib.import_module(module)


def _in_topic_order(table: dict[str, Any], module_of: Callable[[Any], str]) -> dict[str, Any]:
    """``table`` in ``TOPICS`` order (then in the order each module registered), whatever
    order the modules were imported in."""
    order = {m: i for i, m in enumerate(TOPICS)}
    items = sorted(table.items(), key=lambda item: order.get(module_of(item[1]), -1))
    return dict(items)


def recipes() -> dict[str, Recipe]:
    """Every registered recipe, by checkpoint name, in ``TOPICS`` order."""
    _load_topics()
    return _in_topic_order(_RECIPES, lambda r: r.make.__module__)


def groups() -> dict[str, list[str]]:
    """``pretrain`` targets that make several checkpoints: group -> checkpoint names."""
    out: dict[str, list[str]] = {}
    for r in recipes().values():
        if r.group is not None:
            out.setdefault(r.group, []).append(r.name)
    return out


def benchmarks() -> dict[str, Benchmark]:
    """Every registered benchmark, by name: ``bench``'s own, then ``TOPICS`` order."""
    importlib.import_module("course_utils.bench")
    _load_topics()
    return _in_topic_order(_BENCHMARKS, lambda b: b.run.__module__)


def model_class(name: str) -> Callable[..., Any]:
    """The class (or factory) that checkpoint ``name``'s weights load into.

    Raises:
        ValueError: ``name`` is not a registered checkpoint.
    """
    known = recipes()
    if name not in known:
        raise ValueError(f"name: expected one of {sorted(known)}, got {name!r}")
    module, attribute = known[name].model.split(":")
    return getattr(importlib.import_module(module), attribute)
