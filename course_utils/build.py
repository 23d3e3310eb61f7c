"""``course build``: every generated file, from its one source: notebooks from their percent
scripts, exercises from solutions, the package's copies of exercise functions, the
README's tables.

* ``lectures/X.py``  -> ``lectures/X.ipynb``
* ``solutions/X.py`` -> ``solutions/X.ipynb``, and the student version
  ``exercises/X.py`` + ``exercises/X.ipynb``, where each ``### BEGIN SOLUTION`` /
  ``### END SOLUTION`` region becomes ``# YOUR CODE HERE`` + ``raise NotImplementedError()``
  at the region's indentation, and every hidden test cell (tag ``hidden``, the
  instructor-only tests class grading adds) is left out.
* A function of the course package marked ``# Copied from solutions/X.py: name`` (the
  line above its ``def``) is rewritten as the solution's function, its solution markers
  dropped, so an exercise function has one source (as diffusers' ``make fix-copies``).
* Every notebook starts with the Colab setup cell (``SETUP_CELL``) and its title cell
  carries an "Open in Colab" badge, both made from the repository URL in
  ``pyproject.toml`` (``[project.urls] Repository``).

Scripts are rewritten in jupytext's canonical form, notebooks are stored without outputs
and with deterministic cell ids (``test-<question>`` for graded cells, ``cell-<n>``
otherwise), so that ``course build --check`` can compare byte for byte. What running a
notebook adds (outputs, execution counts, the kernel's ``language_info``, widget state) is
not compared and not overwritten: a lecture run and saved in JupyterLab is not stale.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

from course_utils.grading.cells import TestCellError, expected_from_exercise, split_test_cell
from course_utils.grading.notebooks import GRADED_TAG, HIDDEN_HEADER, HIDDEN_TAG, parse_test_header

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
NOTEBOOK_DIRS = ("lectures", "solutions")
# The kernel `make lab` registers (ipykernel's default name and display name, which Colab
# and a plain `pip install ipykernel` share): a notebook that names it exactly opens
# unmodified, and saving it does not rewrite the paired script's header.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
_MARKER = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>### (?:BEGIN|END) SOLUTION)\s*$")


class BuildError(ValueError):
    """A source script that cannot be built (bad markers, malformed graded cells)."""


# ------------------------------------------------------------- the Colab entry

SETUP_TAG = "colab-setup"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
_BADGE_LINE = re.compile(r"^\[!\[Open In Colab\]\(.*\n?", re.M)
SETUP_CELL = """\
# Colab setup (written by `course build`). In Google Colab: clone the course, install it
# without touching Colab's torch, numpy and ipywidgets, and import it in this kernel.
# Anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import importlib.metadata
    import os
    import subprocess

    # COURSE_REPO, COURSE_DIR (optional): clone a fork, or a local copy, elsewhere
    repo = os.environ.get("COURSE_REPO", "{url}")
    course = os.environ.get("COURSE_DIR", "/content/course")
    if not os.path.isdir(course):
        subprocess.run(["git", "clone", "--depth=1", repo, course], check=True)
    keep = []  # pip must keep these exactly as Colab has them
    for name in ("torch", "numpy", "ipywidgets"):
        try:
            keep.append(f"{{name}}=={{importlib.metadata.version(name)}}")
        except importlib.metadata.PackageNotFoundError:
            pass
    with open("/tmp/course-keep.txt", "w") as constraints:
        constraints.write("\\n".join(keep) + "\\n")
    pip = [sys.executable, "-m", "pip", "install", "-q", "-c", "/tmp/course-keep.txt"]
    subprocess.run([*pip, "-e", course], check=True)
    sys.path.insert(0, course)  # this kernel started before the install
"""


@dataclass(frozen=True)
class ColabEntry:
    """The repository a notebook is opened from in Colab, and the notebook's path in it."""

    repository: str  # https://github.com/OWNER/NAME
    path: str  # e.g. "lectures/00_foundations.ipynb"

    @property
    def open_url(self) -> str:
        owner_name = self.repository.removeprefix("https://github.com/").removesuffix(".git")
        return f"https://colab.research.google.com/github/{owner_name}/blob/main/{self.path}"

    @property
    def badge(self) -> str:
        return f"[![Open In Colab]({COLAB_BADGE})]({self.open_url})"

    @property
    def setup_source(self) -> str:
        return SETUP_CELL.format(url=self.repository).rstrip("\n")


def repository_url(root: Path) -> str:
    """``[project.urls] Repository`` of ``root/pyproject.toml``, a GitHub URL.

    Raises:
        BuildError: missing, or not ``https://github.com/OWNER/NAME``.
    """
    try:
        urls = tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]
        url = urls["Repository"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise BuildError(f"pyproject.toml: [project.urls] Repository is missing ({exc})") from None
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise BuildError(
            f"pyproject.toml: [project.urls] Repository: expected https://github.com/OWNER/NAME "
            f"(Colab opens notebooks from GitHub), got {url!r}"
        )
    return url


BADGES_BEGIN = "<!-- colab badges: written by `course build` -->"
BADGES_END = "<!-- end of colab badges -->"


def _between(readme: str, begin: str, end: str, lines: list[str]) -> str:
    """``readme`` with the text between the ``begin`` and ``end`` lines replaced by
    ``lines`` (indented as ``begin`` is); unchanged when a marker is missing."""
    if begin not in readme or end not in readme:
        return readme
    head, rest = readme.split(begin, 1)
    tail = rest.split(end, 1)[1]
    indent = head[head.rfind("\n") + 1 :]
    body = "".join(f"{indent}{line}\n" if line else "\n" for line in lines)
    return f"{head}{begin}\n{body}{indent}{end}{tail}"


CHECKPOINTS_BEGIN = "<!-- checkpoints: written by `course build` from the shipped metadata -->"
CHECKPOINTS_END = "<!-- end of checkpoints -->"


def bench_markers(name: str) -> tuple[str, str]:
    """The README markers around ``course bench NAME``'s shipped table."""
    return (
        f"<!-- course bench {name}: written by `course build` from the shipped results -->",
        f"<!-- end of course bench {name} -->",
    )


def readme_with_tables(readme: str) -> str:
    """``readme`` with the shipped checkpoints' table (from each recipe's summary and its
    checkpoint's stored metrics) and every shipped benchmark table rewritten."""
    from course_utils import checkpoints, registry

    rows = ["| name | what | numbers (test split) |", "|---|---|---|"]
    for name, recipe in registry.recipes().items():
        try:
            metrics = checkpoints.shipped_state(name)[1]["metrics"]
        except FileNotFoundError as exc:
            raise BuildError(f"README.md: the checkpoints' table needs {exc}") from None
        rows.append(f"| `{name}` | {recipe.summary} | {recipe.numbers.format(**metrics)} |")
    readme = _between(readme, CHECKPOINTS_BEGIN, CHECKPOINTS_END, rows)
    for name, bench in registry.benchmarks().items():
        if bench.table is None or bench_markers(name)[0] not in readme:
            continue
        try:
            table = bench.table()
        except FileNotFoundError as exc:
            raise BuildError(
                f"README.md: the table of `course bench {name}` needs its shipped results "
                f"({exc.filename}): run `course bench {name} --save {exc.filename}`"
            ) from None
        readme = _between(readme, *bench_markers(name), ["```", *table, "```"])
    return readme


COURSE_MAP_BEGIN = "<!-- course map: written by `course build` from lectures/*.toml -->"
COURSE_MAP_END = "<!-- end of course map -->"
PLUMBING_BEGIN = "<!-- plumbing modules: written by `course build` from their docstrings -->"
PLUMBING_END = "<!-- end of plumbing modules -->"
TOPICS_BEGIN = "<!-- topic modules: written by `course build` from their docstrings -->"
TOPICS_END = "<!-- end of topic modules -->"


def _cell(text: str) -> str:
    """``text`` as one Markdown table cell: one line, ``|`` escaped, RST literals as code."""
    return re.sub(r"``([^`]+)``", r"`\1`", " ".join(text.split())).replace("|", "\\|")


COURSE_MAP_KEYS = ("exercises", "learn", "run_time")


def course_map_row(path: Path) -> dict[str, str]:
    """A lecture's row of the course map, from ``lectures/NN_topic.toml``: what its
    exercise set asks for (``exercises``), what the lecture teaches (``learn``) and the
    measured ``run_time``.

    Raises:
        BuildError: the file is missing, is not TOML, or lacks a key or adds one.
    """
    if not path.is_file():
        raise BuildError(f"{path.with_suffix('.py').name}: expected its course-map row in {path}")
    try:
        row = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"{path}: not TOML ({exc})") from None
    if sorted(row) != sorted(COURSE_MAP_KEYS) or not all(isinstance(v, str) for v in row.values()):
        raise BuildError(
            f"{path}: expected the strings {', '.join(COURSE_MAP_KEYS)}, got {sorted(row)}"
        )
    return row


def readme_with_course_map(readme: str, root: Path) -> str:
    """``readme`` with the course map rewritten: a row per ``lectures/NN_topic.py``, from its
    ``lectures/NN_topic.toml`` (``course_map_row``)."""
    rows = [
        "| # | lecture | exercises | what you learn | CPU run time |",
        "|---|---|---|---|---|",
    ]
    for lecture in sorted((root / "lectures").glob("[0-9][0-9]_*.py")):
        row, stem = course_map_row(lecture.with_suffix(".toml")), lecture.stem
        exercises = "—"
        if (root / "solutions" / f"{stem}.py").is_file():
            exercises = f"[`exercises/{stem}`](exercises/{stem}.ipynb): {_cell(row['exercises'])}"
        rows.append(
            f"| {stem[:2]} | [`lectures/{stem}`](lectures/{stem}.ipynb) | {exercises} | "
            f"{_cell(row['learn'])} | {_cell(row['run_time'])} |"
        )
    return _between(readme, COURSE_MAP_BEGIN, COURSE_MAP_END, rows)


def module_summaries(root: Path) -> dict[str, str]:
    """Each module and subpackage of ``course_utils`` (by name) -> the first paragraph of its
    docstring, read from the source."""
    out = {}
    for path in sorted((root / "course_utils").glob("*")):
        source = path / "__init__.py" if path.is_dir() else path
        if source.suffix != ".py" or not source.is_file() or path.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(source.read_text())) or ""
        out[path.stem] = doc.split("\n\n")[0]
    return out


def readme_with_modules(readme: str, root: Path) -> str:
    """``readme`` with its two tables of ``course_utils`` modules (plumbing, then the topics
    in ``registry.TOPICS`` order) rewritten from the modules' docstrings."""
    from course_utils import registry

    summaries = module_summaries(root)
    header = ["| module | what it holds |", "|---|---|"]
    plumbing = [f"| `{m}` | {_cell(s)} |" for m, s in summaries.items() if m not in registry.TOPICS]
    topics = [f"| `{m}` | {_cell(summaries[m])} |" for m in registry.TOPICS if m in summaries]
    readme = _between(readme, PLUMBING_BEGIN, PLUMBING_END, header + plumbing)
    return _between(readme, TOPICS_BEGIN, TOPICS_END, header + topics)


def readme_with_badges(readme: str, root: Path, url: str) -> str:
    """``readme`` with the table between ``BADGES_BEGIN`` and ``BADGES_END`` rewritten: an
    "Open in Colab" badge for every lecture, exercise and solution notebook."""
    if BADGES_BEGIN not in readme or BADGES_END not in readme:
        return readme
    rows = ["| # | lecture | exercises | solutions |", "|---|---|---|---|"]
    numbers = sorted({p.stem for d in NOTEBOOK_DIRS for p in (root / d).glob("*.py")})
    for stem in numbers:
        lecture = (root / "lectures" / f"{stem}.py").is_file()
        exercise = (root / "solutions" / f"{stem}.py").is_file()
        folders = [("lectures", lecture), ("exercises", exercise), ("solutions", exercise)]
        cells = [
            ColabEntry(url, f"{d}/{stem}.ipynb").badge if there else "" for d, there in folders
        ]
        rows.append(f"| `{stem}` | " + " | ".join(cells) + " |")
    return _between(readme, BADGES_BEGIN, BADGES_END, rows)


def _add_colab_entry(nb: nbformat.NotebookNode, entry: ColabEntry) -> None:
    """Make the setup cell the first cell and put the badge under the title (idempotent)."""
    nb.cells = [c for c in nb.cells if SETUP_TAG not in c.metadata.get("tags", [])]
    title = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if title is not None:
        heading, _, rest = _BADGE_LINE.sub("", title.source).partition("\n")
        rest = rest.lstrip("\n")
        title.source = f"{heading}\n\n{entry.badge}" + (f"\n\n{rest}" if rest else "")
    setup = nbformat.v4.new_code_cell(entry.setup_source, metadata={"tags": [SETUP_TAG]})
    nb.cells.insert(0, setup)


def solution_to_exercise(text: str, source: str = "<text>") -> str:
    """Replace every solution region of a script with a stub, keeping its indentation.

    Raises:
        BuildError: nested, unclosed or unopened markers (names the file and line).
    """
    out: list[str] = []
    open_line: int | None = None
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):
        m = _MARKER.match(line.rstrip("\n"))
        if m and m["marker"] == BEGIN:
            if open_line is not None:
                raise BuildError(
                    f"{source}:{lineno}: {BEGIN} inside the region opened at line {open_line}"
                )
            open_line = lineno
            indent = m["indent"]
            out.append(f"{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n")
        elif m:
            if open_line is None:
                raise BuildError(f"{source}:{lineno}: {END} without a matching {BEGIN}")
            open_line = None
        elif open_line is None:
            out.append(line)
    if open_line is not None:
        raise BuildError(f"{source}:{open_line}: {BEGIN} is never closed by {END}")
    return "".join(out)


def _notebook(
    py_text: str, source: str, entry: ColabEntry | None = None
) -> jupytext.jupytext.NotebookNode:
    nb = jupytext.reads(py_text, fmt="py:percent")
    # A script without a header reads with filters that drop every cell's tags when written
    # back (the Colab cell's among them, so each build would add one more): keep them all.
    header = nb.metadata.setdefault("jupytext", {})
    for key in ("notebook_metadata_filter", "cell_metadata_filter", "main_language"):
        header.pop(key, None)
    header.setdefault("formats", "ipynb,py:percent")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    if entry is not None:
        _add_colab_entry(nb, entry)
    seen: set[str] = set()
    functions = {  # the exercise's: defined in a solution region
        f
        for c in nb.cells
        if BEGIN in c.source
        for f in re.findall(r"^def (\w+)\(", c.source, re.M)
    }
    hidden = 0  # hidden cells do not count: a cell's id is the same in solution and exercise
    for index, cell in enumerate(nb.cells):
        cell.pop("id", None)
        tags = cell.metadata.get("tags", [])
        if GRADED_TAG in tags:
            header = parse_test_header(cell.source)
            if header is None:
                raise BuildError(
                    f"{source}: graded cell {index} must start with '# TEST name (N points)', "
                    f"got {cell.source.splitlines()[0] if cell.source else '(empty)'!r}"
                )
            name, points = header
            if cell.metadata.get("points") != points:
                raise BuildError(
                    f"{source}: graded cell {name!r} says {points} points in its header but "
                    f"metadata points={cell.metadata.get('points')!r}"
                )
            if name in seen:
                raise BuildError(f"{source}: two graded cells are named {name!r}")
            if BEGIN in cell.source:
                raise BuildError(f"{source}: graded cell {name!r} contains a solution region")
            seen.add(name)
            cell.id = f"test-{name}"
            _check_splits(cell.source, source, name, functions)
        elif HIDDEN_TAG in tags:
            m = HIDDEN_HEADER.match(cell.source.split("\n", 1)[0])
            if m is None or m["name"] not in seen:
                raise BuildError(
                    f"{source}: hidden cell {index} must start with '# HIDDEN TEST name' "
                    "naming a graded cell above it"
                )
            cell.id = f"hidden-{m['name']}"
            hidden += 1
            _check_splits(cell.source, source, m["name"], functions)
        else:
            cell.id = f"cell-{index - hidden}"
    return nb


def _check_splits(cell_source: str, source: str, name: str, functions: set[str]) -> None:
    """Class grading must be able to split the test cell (``grading.cells``); the cell
    must judge at least one value: a bare ``check(condition, ...)`` is decided on a
    condition the student's process computed, so it can fail a question, never pass it;
    and no check's expected side may come from the exercise's ``functions``: the judge
    would compute it with the solution's, so the two graders would disagree."""
    try:
        split = split_test_cell(cell_source, ())
    except (TestCellError, SyntaxError) as exc:
        raise BuildError(f"{source}: test cell {name!r}: {exc}") from None
    if all(kind == "check" for kind, _ in split.static.values()):
        raise BuildError(
            f"{source}: test cell {name!r} judges no value: an assert or a "
            "check(condition, ...) is decided by the student's code; add a check_close, "
            "check_shape, check_tensor, check_finite, check_grad or check_score"
        )
    for problem in expected_from_exercise(cell_source, functions):
        raise BuildError(
            f"{source}: test cell {name!r}, {problem}: class grading computes the expected "
            "side with the solution's functions, self-grading with the student's; check the "
            "difference instead (check_close(a - b, 0.0, ...))"
        )


def without_hidden_tests(py_text: str) -> str:
    """The script without its hidden test cells (tag ``hidden``): the student's copy."""
    nb = jupytext.reads(py_text, fmt="py:percent")
    nb.cells = [c for c in nb.cells if HIDDEN_TAG not in c.metadata.get("tags", [])]
    return jupytext.writes(nb, fmt="py:percent")


def canonical_script(py_text: str, source: str, entry: ColabEntry | None = None) -> str:
    """The script as jupytext writes it (normalized header and cell markers), with the
    Colab entry of ``entry`` when given."""
    return jupytext.writes(_notebook(py_text, source, entry), fmt="py:percent")


def notebook_text(py_text: str, source: str, entry: ColabEntry | None = None) -> str:
    """The ``.ipynb`` JSON for a percent script: no outputs, deterministic ids."""
    return jupytext.writes(_notebook(py_text, source, entry), fmt="ipynb")


def graded_questions(py_text: str, source: str = "<text>") -> list[tuple[str, int]]:
    """``[(question, points), ...]`` of a script's graded cells, in order."""
    nb = _notebook(py_text, source)
    return [
        parse_test_header(c.source)  # type: ignore[misc]
        for c in nb.cells
        if GRADED_TAG in c.metadata.get("tags", [])
    ]


COPIED = re.compile(r"^# Copied from (solutions/\w+\.py): (\w+)$", re.M)


def with_copies(text: str, root: Path, source: str) -> str:
    """``text`` (a module of the course package, read from ``source``) with each function
    marked ``# Copied from solutions/X.py: name`` replaced by that solution's function,
    decorators and docstring included, its ``### BEGIN/END SOLUTION`` lines dropped.

    Raises:
        BuildError: the marker is not right above the ``def`` of ``name``, or the solution
            has no top-level function ``name``.
    """
    lines = text.splitlines(keepends=True)
    starts = {_first_line(n): n for n in _functions(text, source).values()}
    solutions: dict[str, tuple[list[str], dict[str, ast.FunctionDef]]] = {}
    for match in reversed(list(COPIED.finditer(text))):
        marker = text.count("\n", 0, match.start()) + 1
        path, name = match.groups()
        node = starts.get(marker + 1)
        if node is None or node.name != name:
            raise BuildError(f"{source}:{marker}: '# Copied from' is not right above def {name}")
        if path not in solutions:  # each solution read and parsed once
            solution = (root / path).read_text() if (root / path).is_file() else ""
            solutions[path] = (solution.splitlines(), _functions(solution, path))
        solution_lines, functions = solutions[path]
        if name not in functions:
            raise BuildError(f"{root / path}: no function {name} to copy into the course package")
        body = solution_lines[_first_line(functions[name]) - 1 : functions[name].end_lineno]
        copy = "".join(line + "\n" for line in body if line.strip() not in (BEGIN, END))
        lines[marker : node.end_lineno] = [copy]
    return "".join(lines)


def _functions(text: str, source: str) -> dict[str, ast.FunctionDef]:
    """The top-level functions of the module ``text`` (read from ``source``), by name."""
    tree = ast.parse(text, source)
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _first_line(node: ast.FunctionDef) -> int:
    """Where a function's source starts: its first decorator, else its ``def``."""
    return node.decorator_list[0].lineno if node.decorator_list else node.lineno


@dataclass(frozen=True)
class Planned:
    """A file ``course build`` writes, and the text it should hold."""

    path: Path
    text: str


def plan(root: Path) -> list[Planned]:
    """Every file the build owns under ``root``, with its expected content.

    Raises:
        BuildError: a script cannot be built, or an exercise set has no graded cell.
    """
    planned: list[Planned] = []
    url = repository_url(root)
    for folder in NOTEBOOK_DIRS:
        for py in sorted((root / folder).glob("*.py")):
            rel = py.relative_to(root)
            entry = ColabEntry(url, rel.with_suffix(".ipynb").as_posix())
            text = canonical_script(py.read_text(), str(rel), entry)
            planned += [
                Planned(py, text),
                Planned(py.with_suffix(".ipynb"), notebook_text(text, str(rel))),
            ]
            if folder == "solutions":
                if not graded_questions(text, str(rel)):
                    raise BuildError(f"{rel}: an exercise set needs at least one graded cell")
                entry = ColabEntry(url, f"exercises/{py.stem}.ipynb")
                student = without_hidden_tests(solution_to_exercise(text, str(rel)))
                exercise = canonical_script(student, str(rel), entry)
                target = root / "exercises" / py.name
                planned += [
                    Planned(target, exercise),
                    Planned(target.with_suffix(".ipynb"), notebook_text(exercise, str(rel))),
                ]
    for module in sorted((root / "course_utils").rglob("*.py")):
        text = module.read_text()
        if COPIED.search(text):
            planned.append(Planned(module, with_copies(text, root, str(module.relative_to(root)))))
    readme = root / "README.md"
    if readme.is_file():
        text = readme_with_badges(readme.read_text(), root, url)
        text = readme_with_modules(readme_with_course_map(text, root), root)
        text = readme_with_tables(text)
        planned.append(Planned(readme, text))
    return planned


def _orphans(root: Path, planned: list[Planned]) -> list[Path]:
    """Notebooks in the build's folders (and scripts in exercises/) that no source produces."""
    owned = {p.path for p in planned}
    found = [f for d in (*NOTEBOOK_DIRS, "exercises") for f in sorted((root / d).glob("*.ipynb"))]
    found += sorted((root / "exercises").glob("*.py"))
    return [f for f in found if f not in owned]


# What running a notebook writes into it; the build neither compares nor removes it.
RUN_METADATA = ("language_info", "widgets")


def _without_run_state(ipynb_text: str) -> dict | None:
    """The notebook JSON less outputs, execution counts and ``RUN_METADATA``; ``None`` if
    the text is not a notebook."""
    try:
        nb = json.loads(ipynb_text)
        for key in RUN_METADATA:
            nb["metadata"].pop(key, None)
        for cell in nb["cells"]:
            if cell.get("cell_type") == "code":
                cell["outputs"], cell["execution_count"] = [], None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return nb


def _up_to_date(planned: Planned) -> bool:
    if not planned.path.is_file():
        return False
    text = planned.path.read_text()
    if text == planned.text:
        return True
    if planned.path.suffix != ".ipynb":
        return False
    ran = _without_run_state(text)
    return ran is not None and ran == _without_run_state(planned.text)


def stale(root: Path) -> list[Path]:
    """Files whose content differs from what the build would write (for notebooks: apart
    from what running them adds), plus orphans."""
    planned = plan(root)
    return [p.path for p in planned if not _up_to_date(p)] + _orphans(root, planned)


def build(root: Path) -> list[Path]:
    """Write every planned file that changed and delete orphaned exercises; return the
    paths written or deleted. A notebook that differs only by what running it added is
    left as it is. Orphans elsewhere are left for a person to look at."""
    planned = plan(root)
    changed = []
    for p in planned:
        if not _up_to_date(p):
            p.path.parent.mkdir(parents=True, exist_ok=True)
            p.path.write_text(p.text)
            changed.append(p.path)
    for orphan in _orphans(root, planned):
        if orphan.parent == root / "exercises":
            orphan.unlink()
            changed.append(orphan)
    return changed


def find_root(start: Path) -> Path:
    """The course root: the nearest folder at or above ``start`` holding ``solutions/``
    and ``jupytext.toml``.

    Raises:
        BuildError: none found.
    """
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / "solutions").is_dir() and (folder / "jupytext.toml").is_file():
            return folder
    raise BuildError(
        f"root: no course folder (with solutions/ and jupytext.toml) at or above {start}"
    )


def main(argv: list[str]) -> int:
    """``course build [--check] [--root DIR]``: write every generated file, or list the
    stale ones and exit 1."""
    parser = argparse.ArgumentParser(prog="course build", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if anything is stale")
    parser.add_argument("--root", default=".", help="the course folder (default: search upward)")
    args = parser.parse_args(argv)
    try:
        root = find_root(Path(args.root))
        if not args.check:
            for path in build(root):
                print(f"wrote {path.relative_to(root)}")
            return 0
        out = stale(root)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in out:
        print(f"stale: {path.relative_to(root)}")
    if out:
        print(f"{len(out)} file(s) out of date: run `course build` (or `make build`) and commit.")
        return 1
    print("course build --check: every notebook and exercise is up to date")
    return 0
