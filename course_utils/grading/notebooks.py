"""Reading submissions and finding their questions.

A graded test cell is a code cell tagged ``graded`` whose first line is
``# TEST name (N points)``; ``course build`` gives it the cell id ``test-<name>``. A hidden
test cell (tag ``hidden``, first line ``# HIDDEN TEST name``) exists only in the solution
source: ``course build`` strips it from the student's notebook, and class grading runs it
after the question's visible test.
"""

from __future__ import annotations

import json
import os
import re
import stat
import uuid
from pathlib import Path
from typing import Any

import nbformat

GRADED_TAG = "graded"
HIDDEN_TAG = "hidden"
TEST_HEADER = re.compile(r"^# TEST (?P<name>[A-Za-z_][\w.]*) \((?P<points>\d+) points?\)\s*$")
HIDDEN_HEADER = re.compile(r"^# HIDDEN TEST (?P<name>[A-Za-z_][\w.]*)\s*$")


class GradeInputError(ValueError):
    """A file that cannot be graded: missing, not a notebook, or not valid notebook JSON."""


MAX_NOTEBOOK_BYTES = 64 * 2**20  # a notebook with its images; more is not a submission
MAX_CELLS = 2000  # the longest course notebook has 58; a student may add some
KEPT_METADATA = ("tags", "points")  # what grading reads of a cell's metadata


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook of format 3 or 4.x as a valid nbformat 4.5 notebook, without its
    stored outputs (grading runs the sources; outputs only cost time and memory).

    Older formats are converted; cells without an id (before 4.5) get one, so canonical
    cells, which carry ids, can be merged into any of them.

    Raises:
        GradeInputError: missing file, a folder or another suffix, over
            ``MAX_NOTEBOOK_BYTES``, or invalid notebook JSON.
    """
    if not path.exists():
        raise GradeInputError(f"{path}: no such file")
    if path.is_dir() or path.suffix != ".ipynb":
        got = "a folder" if path.is_dir() else repr(path.suffix or "no suffix")
        raise GradeInputError(f"{path}: expected a Jupyter notebook (.ipynb), got {got}")
    with path.open("rb") as f:
        return parse_notebook(f.read(MAX_NOTEBOOK_BYTES + 1), path)


def read_submission(path: Path) -> nbformat.NotebookNode:
    """``read_notebook`` for a file a student handed in (class grading): it must be a
    regular file itself, not a link (to a solution, to a peer's notebook), a FIFO (which
    would block the reader) or a device, and at most ``MAX_NOTEBOOK_BYTES``. The file is
    opened without following a link and without blocking, and checked once open.

    Raises:
        GradeInputError: anything else, with the reason.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        kind = "a symbolic link" if path.is_symlink() else exc.strerror or "unreadable"
        raise GradeInputError(f"{path}: not a regular file ({kind}): not graded") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise GradeInputError(f"{path}: not a regular file (a FIFO, a device or a folder)")
        if info.st_size > MAX_NOTEBOOK_BYTES:
            raise GradeInputError(
                f"{path}: {info.st_size} bytes, more than a notebook may have "
                f"({MAX_NOTEBOOK_BYTES} bytes)"
            )
        return parse_notebook(f.read(MAX_NOTEBOOK_BYTES + 1), path)


def parse_notebook(data: bytes, path: Path) -> nbformat.NotebookNode:
    """The notebook in ``data`` (read from ``path``), reduced to what grading reads before
    it is validated: outputs, the notebook's metadata and every cell metadata key but
    ``KEPT_METADATA`` are dropped, and at most ``MAX_CELLS`` cells are accepted (with the
    size cap, this bounds the time parsing takes: no timer needed).

    Raises:
        GradeInputError: over ``MAX_NOTEBOOK_BYTES``, or not valid notebook JSON.
    """
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise GradeInputError(f"{path}: more than {MAX_NOTEBOOK_BYTES} bytes: not a notebook")
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        cells = list(raw.get("cells") or [])
        for sheet in raw.get("worksheets") or []:  # nbformat 3
            cells += sheet.get("cells") or [] if isinstance(sheet, dict) else []
        if len(cells) > MAX_CELLS:
            raise ValueError(f"{len(cells)} cells, more than a notebook may have ({MAX_CELLS})")
        raw["metadata"] = {}  # nothing of it is graded, and it may be as large as the file
        for cell in cells:
            if not isinstance(cell, dict):
                continue
            if cell.get("cell_type") == "code":
                cell["outputs"] = []
            metadata = cell.get("metadata")
            if isinstance(metadata, dict):
                cell["metadata"] = {k: metadata[k] for k in KEPT_METADATA if k in metadata}
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        nb.nbformat_minor = max(int(nb.get("nbformat_minor", 0)), 5)
        for cell in nb.cells:
            cell.setdefault("id", uuid.uuid4().hex[:8])
        nbformat.validate(nb)
        return nb
    except Exception as exc:  # json, nbformat validation and decoding errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GradeInputError(
            f"{path}: not a valid notebook ({type(exc).__name__}: {first[:200]})"
        ) from None


def parse_test_header(source: str) -> tuple[str, int] | None:
    """``("kl", 2)`` from a cell whose first line is ``# TEST kl (2 points)``, else ``None``."""
    first = source.lstrip("\n").split("\n", 1)[0]
    m = TEST_HEADER.match(first)
    return (m["name"], int(m["points"])) if m else None


def hidden_question(cell: Any) -> str | None:
    """The question a hidden test cell belongs to (``# HIDDEN TEST name``), else ``None``."""
    if cell.get("cell_type") != "code":
        return None
    if HIDDEN_TAG not in (cell.get("metadata", {}).get("tags") or []):
        return None
    m = HIDDEN_HEADER.match(cell.get("source", "").lstrip("\n").split("\n", 1)[0])
    return m["name"] if m else None


def graded_question(cell: Any) -> tuple[str, float] | None:
    """(question, points) of a notebook cell tagged ``graded``, else ``None``."""
    metadata = getattr(cell, "metadata", None) or {}
    if GRADED_TAG not in metadata.get("tags", []):
        return None
    header = parse_test_header(getattr(cell, "source", ""))
    name = header[0] if header else f"cell {metadata.get('id', '?')}"
    return name, float(metadata.get("points", header[1] if header else 0))


def questions(nb: nbformat.NotebookNode | None) -> list[tuple[str, float]]:
    """Every (question, points) of a notebook, in order."""
    if nb is None:
        return []
    return [q for q in (graded_question(c) for c in nb.cells if c.get("cell_type") == "code") if q]


# ------------------------------------------------------------------ canonical test cells


def _question_of(cell: Any) -> str | None:
    """The question a code cell tests: its ``# TEST`` header or its ``test-<name>`` id."""
    if cell.get("cell_type") != "code":
        return None
    header = parse_test_header(cell.get("source", ""))
    if header:
        return header[0]
    cell_id = cell.get("id") or ""
    return cell_id[len("test-") :] if cell_id.startswith("test-") else None


def with_canonical_tests(
    submission: nbformat.NotebookNode, exercise: nbformat.NotebookNode
) -> tuple[nbformat.NotebookNode, dict[str, str]]:
    """The submission with each graded cell replaced by the exercise's canonical cell.

    * The first submission cell that claims a question (its ``# TEST`` header, or the id
      ``test-<name>``) is replaced by the canonical cell. Any other cell that claims a
      question or carries the ``graded`` or ``hidden`` tag stays, but ungraded: its tags
      and header are neutralised, so it can neither earn nor override points.
    * A deleted test cell is re-inserted after the submission's copy of the cell that
      precedes it in the exercise (by cell id), else after the previous question's test,
      else at the end.

    Returns the new notebook and, per question whose own code cell (the function it tests)
    is missing from the submission, the reason.
    """
    out = [_copy(c) for c in submission.cells]
    claimed: set[str] = set()
    for i, cell in enumerate(out):
        question = _question_of(cell)
        if question and question not in claimed:
            claimed.add(question)
        elif question or (cell.get("cell_type") == "code" and _is_graded(cell)):
            out[i] = _ungraded(cell)
    missing_code: dict[str, str] = {}
    previous: int | None = None
    canonical = exercise.cells
    for index, cell in enumerate(canonical):
        if not (cell.get("cell_type") == "code" and _is_graded(cell)):
            continue
        question = _question_of(cell)
        position = _find(out, lambda c, q=question: _question_of(c) == q)
        if position is not None:
            out[position] = _copy(cell)
        else:
            anchor = canonical[index - 1].get("id") if index > 0 else None
            found = _find(out, lambda c, a=anchor: a is not None and c.get("id") == a)
            position = (
                found if found is not None else previous if previous is not None else len(out) - 1
            ) + 1
            out.insert(position, _copy(cell))
        previous = position
        code = canonical[index - 1] if index > 0 else None
        names = re.findall(r"^def (\w+)\(", code.get("source", ""), re.M) if code else []
        if names and not any(
            re.search(rf"^def {n}\(", c.get("source", ""), re.M) for n in names for c in out
        ):
            defines = ", ".join(f"{n}()" for n in names)
            missing_code[question] = (
                f"no cell defines {defines}: its code cell was deleted or renamed"
            )
    merged = _copy(submission)
    merged.cells = out
    return merged, missing_code


def _copy(node: Any) -> nbformat.NotebookNode:
    return nbformat.from_dict(json.loads(json.dumps(node)))


def _find(cells: list[Any], predicate: Any) -> int | None:
    return next((i for i, c in enumerate(cells) if predicate(c)), None)


def _ungraded(cell: Any) -> nbformat.NotebookNode:
    """A student's copy of a test cell: runs, but is not graded and claims no question."""
    cell = _copy(cell)
    tags = cell.metadata.get("tags", [])
    cell.metadata["tags"] = [t for t in tags if t not in (GRADED_TAG, HIDDEN_TAG)]
    cell.metadata.pop("points", None)
    cell.source = re.sub(
        r"^(\s*)# (HIDDEN )?TEST ", r"\1# (student cell, not graded) ", cell.source
    )
    if str(cell.get("id", "")).startswith("test-"):
        cell.id = "student-" + cell.id
    return cell


def _is_graded(cell: Any) -> bool:
    tags = cell.get("metadata", {}).get("tags") or []
    return (
        GRADED_TAG in tags
        or HIDDEN_TAG in tags
        or bool(parse_test_header(cell.get("source", "")) or hidden_question(cell))
    )
