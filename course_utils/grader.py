"""Grading notebooks: one at a time, or a class's folder of submissions.

Each notebook runs under ``pytest --nbval-lax`` in its own kernel, on a temporary copy
(submissions are never modified), with a per-cell and a total time limit. Before it runs,
every graded test cell is replaced by the **canonical** cell of the exercise source,
matched by question name (the ``# TEST name`` header) or by the stable cell id
``test-<name>`` that ``course build`` assigns; a deleted test cell is put back where it
belongs. Cells the student added stay.

A run ends in one of four statuses: ``ok``; ``timeout`` (a cell, or the whole notebook,
ran past its limit); ``crashed`` (the kernel died: ``os._exit``, a segfault, memory);
``invalid`` (not a readable notebook). A notebook earns what its cells earned before the
fault, and a batch always goes on to the next submission.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from course_utils.grading import GRADED_TAG, format_points, graded_question, parse_test_header

DEFAULT_CELL_TIMEOUT = 60  # seconds per cell
DEFAULT_TOTAL_TIMEOUT = 600  # seconds per notebook
STATUSES = ("ok", "timeout", "crashed", "invalid")


class GradeInputError(ValueError):
    """A file that cannot be graded: missing, not a notebook, or not valid notebook JSON."""


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook.

    Raises:
        GradeInputError: missing file, a folder or another suffix, or invalid notebook JSON.
    """
    if not path.exists():
        raise GradeInputError(f"{path}: no such file")
    if path.is_dir() or path.suffix != ".ipynb":
        got = "a folder" if path.is_dir() else repr(path.suffix or "no suffix")
        raise GradeInputError(f"{path}: expected a Jupyter notebook (.ipynb), got {got}")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        return nb
    except Exception as exc:  # json, nbformat validation and decoding errors alike
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GradeInputError(
            f"{path}: not a valid notebook ({type(exc).__name__}: {first})"
        ) from None


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
      question or carries the ``graded`` tag stays, but ungraded: its tag and header are
      neutralised, so it can neither earn nor override points.
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
    cell.metadata["tags"] = [t for t in cell.metadata.get("tags", []) if t != GRADED_TAG]
    cell.metadata.pop("points", None)
    cell.source = re.sub(r"^(\s*)# TEST ", r"\1# (student cell, not graded) ", cell.source)
    if str(cell.get("id", "")).startswith("test-"):
        cell.id = "student-" + cell.id
    return cell


def _is_graded(cell: Any) -> bool:
    return GRADED_TAG in (cell.get("metadata", {}).get("tags") or []) or bool(
        parse_test_header(cell.get("source", ""))
    )


# ------------------------------------------------------------------ running one notebook


def run_notebook(
    path: Path,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
) -> tuple[list[dict[str, Any]], str | None]:
    """Run ``pytest --nbval-lax`` on a copy of ``path`` in a fresh kernel.

    Returns one row per code cell that reported, ``{"cell", "question", "points", "earned",
    "passed", "hint", "timed_out", "crashed"}`` (``question`` is ``None`` for ungraded
    cells), and why the whole run stopped early (``None`` if it did not).

    Raises:
        GradeInputError: the file is missing, not an ``.ipynb``, or not valid JSON.
    """
    read_notebook(path)
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        work = Path(tmp)
        copy = work / "notebook.ipynb"
        shutil.copyfile(path, copy)
        (work / "pytest.ini").write_text("[pytest]\naddopts =\n")
        report = work / "report.jsonl"
        cmd = [
            sys.executable, "-m", "pytest", str(copy), "-q", "-p", "no:cacheprovider",
            "-c", str(work / "pytest.ini"), "--rootdir", str(work),
            "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={cell_timeout}",
            "--course-report", str(report),
        ]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
        proc = subprocess.Popen(
            cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True,  # the kernel joins this process group: kill them together
        )  # fmt: skip
        stopped = None
        try:
            proc.wait(timeout=total_timeout)
        except subprocess.TimeoutExpired:
            stopped = f"the notebook exceeded its total time limit of {total_timeout} s"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        lines = report.read_text().splitlines() if report.is_file() else []
    return [json.loads(line) for line in lines if line.strip()], stopped


# ------------------------------------------------------------------ grading


@dataclass
class GradeResult:
    """One graded notebook."""

    path: Path
    notebook: str  # the exercise it answers (file stem)
    student: str
    status: str  # one of STATUSES
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per question
    reason: str = ""

    @property
    def earned(self) -> float:
        return sum(r["earned"] for r in self.rows)

    @property
    def possible(self) -> float:
        return sum(r["points"] for r in self.rows)


def grade_notebook(
    path: Path,
    exercise: Path | None = None,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
    student: str = "",
) -> GradeResult:
    """Grade one notebook; with ``exercise``, against its canonical test cells.

    Never raises for a broken submission: an unreadable one gets status ``invalid`` (with
    the exercise's questions at 0 points when the exercise is known).
    """
    source = read_notebook(exercise) if exercise is not None else None
    name = exercise.stem if exercise is not None else path.stem
    try:
        submission = read_notebook(path)
    except GradeInputError as exc:
        rows = [_zero_row(q, p, "the notebook could not be read") for q, p in _questions(source)]
        return GradeResult(path, name, student, "invalid", rows, str(exc))
    notes: dict[str, str] = {}
    if source is not None:
        submission, notes = with_canonical_tests(submission, source)
    questions = _questions(source if source is not None else submission)
    with tempfile.TemporaryDirectory(prefix="course-submission-") as tmp:
        prepared = Path(tmp) / "notebook.ipynb"
        nbformat.write(submission, prepared)
        cells, stopped = run_notebook(prepared, cell_timeout, total_timeout)
    reported = {c["question"]: c for c in cells if c["question"] is not None}
    rows = []
    for question, points in questions:
        row = dict(
            reported.get(question) or _zero_row(question, points, stopped or "the cell did not run")
        )
        if question in notes:
            row.update(earned=0.0, passed=False, hint=notes[question])
        rows.append(row)
    if any(c.get("crashed") for c in cells):
        status, reason = "crashed", "the kernel died"
    elif stopped or any(c.get("timed_out") for c in cells):
        status, reason = "timeout", stopped or "a cell ran past the per-cell time limit"
    else:
        status, reason = "ok", ""
    return GradeResult(path, name, student, status, rows, reason)


def _questions(nb: nbformat.NotebookNode | None) -> list[tuple[str, float]]:
    if nb is None:
        return []
    return [q for q in (graded_question(c) for c in nb.cells if c.get("cell_type") == "code") if q]


def _zero_row(question: str, points: float, hint: str) -> dict[str, Any]:
    return {"question": question, "points": points, "earned": 0.0, "passed": False, "hint": hint}


# ------------------------------------------------------------------ a folder of submissions


def matching_exercise(path: Path, source: Path) -> Path | None:
    """The exercise in ``source`` whose name ends ``path``'s name (the longest such name),
    e.g. ``exercises/01_vae.ipynb`` for ``alice_01_vae.ipynb``; ``None`` if none does."""
    candidates = sorted(source.glob("*.ipynb"), key=lambda p: -len(p.stem))
    return next((e for e in candidates if path.stem.endswith(e.stem)), None)


@dataclass(frozen=True)
class Submission:
    path: Path
    student: str
    exercise: Path


def find_submissions(folder: Path, source: Path) -> tuple[list[Submission], list[Path]]:
    """Pair each notebook under ``folder`` with its exercise in ``source``.

    A submission is ``<student>_<exercise>.ipynb`` (e.g. ``alice_01_vae.ipynb``) or
    ``<student>/<exercise>.ipynb``. Returns the pairs (sorted by path) and the notebooks
    that match no exercise.
    """
    if not any(source.glob("*.ipynb")):
        raise GradeInputError(f"{source}: no exercise notebooks (.ipynb) to grade against")
    found, unmatched = [], []
    for path in sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts):
        exercise = matching_exercise(path, source)
        if exercise is None:
            unmatched.append(path)
            continue
        prefix = path.stem[: -len(exercise.stem)].rstrip("_-. ")
        student = prefix or (path.parent.name if path.parent != folder else path.stem)
        found.append(Submission(path, student, exercise))
    return found, unmatched


def grade_folder(
    folder: Path,
    source: Path,
    jobs: int = 1,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
) -> tuple[list[GradeResult], list[Path]]:
    """Grade every submission in ``folder``, ``jobs`` at a time; results in path order."""
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: expected a positive int, got {jobs!r}")
    submissions, unmatched = find_submissions(folder, source)

    def grade(sub: Submission) -> GradeResult:
        return grade_notebook(sub.path, sub.exercise, cell_timeout, total_timeout, sub.student)

    with ThreadPoolExecutor(max_workers=jobs) as pool:  # each job waits on its own subprocess
        return list(pool.map(grade, submissions)), unmatched


def write_csv(results: Iterable[GradeResult], path: Path) -> None:
    """One row per submission: student, notebook, status, total, possible, reason, then
    one column per question, ``<notebook>:<question> (<points>)``, holding the points earned."""
    results = list(results)
    columns: dict[str, None] = {}
    for r in results:
        for row in r.rows:
            columns.setdefault(f"{r.notebook}:{row['question']} ({format_points(row['points'])})")
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["student", "notebook", "file", "status", "total", "possible", "reason", *columns]
        )
        for r in results:
            earned = {
                f"{r.notebook}:{row['question']} ({format_points(row['points'])})": format_points(
                    row["earned"]
                )
                for row in r.rows
            }
            writer.writerow(
                [
                    r.student,
                    r.notebook,
                    str(r.path),
                    r.status,
                    format_points(r.earned),
                    format_points(r.possible),
                    r.reason,
                ]
                + [earned.get(c, "") for c in columns]
            )


def question_summary(results: Iterable[GradeResult]) -> list[str]:
    """How many submissions passed each question: what the class found hard."""
    counts: dict[tuple[str, str], list[int]] = {}
    for r in results:
        for row in r.rows:
            passed_total = counts.setdefault((r.notebook, row["question"]), [0, 0])
            passed_total[0] += bool(row["passed"])
            passed_total[1] += 1
    width = max([len("question"), *(len(f"{n}:{q}") for n, q in counts)]) + 2
    lines = [f"{'question':<{width}}{'passed':>8}{'of':>5}"]
    for (notebook, question), (passed, total) in counts.items():
        lines.append(f"{notebook + ':' + question:<{width}}{passed:>8}{total:>5}")
    return lines
