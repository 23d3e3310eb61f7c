"""What the course ships and measures, registered where it is defined: the recipes and
benchmarks the topics register (``@recipe``, ``@benchmark``), and ``TOPICS``.

A topic module (``TOPICS``; ``metrics`` too, for the shipped classifier) decorates each
pretraining recipe with ``@recipe`` and each benchmark with ``@benchmark``. ``course
pretrain``, ``course bench``, ``checkpoints.load_pretrained`` and ``course build`` read
these tables; none of them names a topic. The registry does not import the topics either
(they import it): it loads them by name, as a plugin system loads its entry points, the
first time a table is asked for. A new topic adds its name to ``TOPICS`` (the checklist is
in docs/DESIGN.md, "Add a topic"); tests/test_imports.py checks that no plumbing module
imports a topic and that no two modules import each other, lazily or not.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The topic modules of course_utils, in lecture order: the one line a new topic adds.
TOPICS = (
    "foundations",
    "vae",
    "gan",
    "flows",
    "diffusion",
    "flow_matching",
    "autoregressive",
    "vqvae",
    "language_models",
    "text_to_image",
)
# Every module that registers a recipe or a benchmark, loaded by name (never imported here).
REGISTERING = ("metrics", *TOPICS)


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


def _load() -> None:
    for name in REGISTERING:
        importlib.import_module(f"{__package__}.{name}")


def _in_topic_order(table: dict[str, Any], module_of: Callable[[Any], str]) -> dict[str, Any]:
    """``table`` in ``REGISTERING`` order (then in the order each module registered), whatever
    order the modules were imported in. A module of a topic package counts as its topic."""
    order = {f"{__package__}.{name}": i for i, name in enumerate(REGISTERING)}

    def rank(item: tuple[str, Any]) -> int:
        module = module_of(item[1])
        while module not in order and "." in module:
            module = module.rsplit(".", 1)[0]
        return order.get(module, len(order))

    return dict(sorted(table.items(), key=rank))


def recipes() -> dict[str, Recipe]:
    """Every registered recipe, by checkpoint name, in ``REGISTERING`` order."""
    _load()
    return _in_topic_order(_RECIPES, lambda r: r.make.__module__)


def groups() -> dict[str, list[str]]:
    """``pretrain`` targets that make several checkpoints: group -> checkpoint names."""
    out: dict[str, list[str]] = {}
    for r in recipes().values():
        if r.group is not None:
            out.setdefault(r.group, []).append(r.name)
    return out


def benchmarks() -> dict[str, Benchmark]:
    """Every registered benchmark, by name, in ``REGISTERING`` order."""
    _load()
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
