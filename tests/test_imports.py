"""course_utils's layers (docs/DESIGN.md, "Layers"), read from the source.

Plumbing never imports a topic, not even lazily; no module imports itself through others;
the registry finds the topics by name (``registry.REGISTERING``), and every module that
registers something is among them; every module that computes with torch imports
``course_utils.device`` (which sets the thread count); ``course --help`` imports neither
torch nor a topic. ``python tests/test_imports.py`` prints the graph.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from course_utils import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "course_utils"


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package by its ``__init__``)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_import_module(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("import_module", "__import__")


def imports(name: str, path: Path, modules: set[str]) -> tuple[set[str], set[str], list[int]]:
    """What module ``name`` imports: ``(every import, the top-level ones, the lines of imports
    by a computed name)``. Counted: ``import``/``from`` anywhere (in a function too),
    ``import_module("...")`` with a literal, and ``"module:attribute"`` strings (a recipe's
    model class)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    every: set[str] = set()
    top: set[str] = set()
    dynamic: list[int] = []

    def add(target: str, node: ast.AST) -> None:
        if target in modules and target != name:
            every.add(target)
            if node in tree.body:
                top.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:  # `from pkg import module` imports the module
                target = f"{base}.{alias.name}"
                add(target if target in modules else base, node)
        elif isinstance(node, ast.Call) and _is_import_module(node):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                add(arg.value, node)
            else:
                dynamic.append(node.lineno)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
            add(node.value.partition(":")[0], node)
    return every, top, dynamic


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, list[int]]]:
    files = module_files()
    found = {name: imports(name, path, set(files)) for name, path in files.items()}
    return (
        {n: f[0] for n, f in found.items()},
        {n: f[1] for n, f in found.items()},
        {n: f[2] for n, f in found.items() if f[2]},
    )


def is_topic(module: str) -> bool:
    """A topic module, or a module of a topic package."""
    return any(
        module == f"course_utils.{t}" or module.startswith(f"course_utils.{t}.")
        for t in registry.TOPICS
    )


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_plumbing_never_imports_a_topic():
    edges, _, _ = graph()
    wrong = {
        f"{m} -> {t}" for m, targets in edges.items() if not is_topic(m) for t in targets
        if is_topic(t)
    }  # fmt: skip
    assert not wrong, sorted(wrong)


def test_no_module_imports_itself_through_others():
    edges, _, _ = graph()
    assert cycles(edges) == []


def test_the_registry_alone_imports_by_a_computed_name_and_finds_every_registering_module():
    _, _, dynamic = graph()
    assert list(dynamic) == ["course_utils.registry"], dynamic
    assert registry.REGISTERING == ("metrics", *registry.TOPICS)
    files = module_files()
    assert {f"course_utils.{t}" for t in registry.TOPICS} <= set(files), registry.TOPICS
    registering = set()
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            decorator = isinstance(node, ast.Call) and getattr(node.func, "id", "")
            if decorator in ("recipe", "benchmark") and name != "course_utils.registry":
                registering.add(name)
    loaded = {f"course_utils.{n}" for n in registry.REGISTERING}
    unseen = {m for m in registering if not any(m == r or m.startswith(r + ".") for r in loaded)}
    assert not unseen, f"registers but registry.REGISTERING does not load it: {sorted(unseen)}"


def test_every_module_that_computes_sets_the_thread_count():
    """Importing course_utils no longer imports torch, so each module that does must import
    ``course_utils.device`` (at its top level, directly or through another module)."""
    _, top, _ = graph()
    files = module_files()

    def reaches_device(module: str, seen: set[str]) -> bool:
        if module == "course_utils.device":
            return True
        seen.add(module)
        return any(reaches_device(m, seen) for m in top[module] if m not in seen)

    computing = {
        name for name, path in files.items()
        if any(
            isinstance(node, (ast.Import, ast.ImportFrom))
            and any(a.name == "torch" or a.name.startswith("torch.") for a in node.names)
            or isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch")
            for node in ast.parse(path.read_text()).body
        )
    }  # fmt: skip
    assert "course_utils.viz" in computing and "course_utils.device" in computing
    missing = sorted(m for m in computing if not reaches_device(m, set()))
    assert not missing, missing


def test_course_help_imports_neither_torch_nor_a_topic():
    probe = (
        "import sys\nfrom course_utils import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m == 'jupytext' "
        "or m.startswith('course_utils.')))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "usage: course" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "['course_utils.cli']", run.stdout


if __name__ == "__main__":
    edges, _, dynamic = graph()
    for module in sorted(edges):
        layer = "topic" if is_topic(module) else "plumbing"
        name = module.removeprefix("course_utils.") or "(package)"
        short = sorted(t.removeprefix("course_utils.") for t in edges[module])
        print(f"{layer:<9}{name:<28}{' '.join(short)}")
    print(f"cycles: {cycles(edges)}; imports by a computed name: {dynamic}")
