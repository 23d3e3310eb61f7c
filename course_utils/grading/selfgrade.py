"""Self-grading: one notebook under ``pytest --nbval-lax``, as the student sees it.

Each notebook runs under ``pytest --nbval-lax`` in its own kernel, on a temporary copy
(submissions are never modified), with a per-cell and a total time limit. Before it runs,
every graded test cell is replaced by the **canonical** cell of the exercise source,
matched by question name (the ``# TEST name`` header) or by the stable cell id
``test-<name>`` that ``course build`` assigns; a deleted test cell is put back where it
belongs. Cells the student added stay.

A run ends in a status of ``report.STATUSES``; a notebook earns what its cells earned
before the fault. This trusts the student's kernel (a student can fake a pass): it is
for checking one's own work. Class grading is ``course_utils.grading.classgrade``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat

from course_utils.grading.notebooks import (
    GradeInputError,
    questions,
    read_notebook,
    with_canonical_tests,
)
from course_utils.grading.report import GradeResult, zero_row

DEFAULT_CELL_TIMEOUT = 60  # seconds per cell
DEFAULT_TOTAL_TIMEOUT = 600  # seconds per notebook


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
        rows = [zero_row(q, p, "the notebook could not be read") for q, p in questions(source)]
        return GradeResult(path, name, student, "invalid", rows, str(exc))
    notes: dict[str, str] = {}
    if source is not None:
        submission, notes = with_canonical_tests(submission, source)
    asked = questions(source if source is not None else submission)
    with tempfile.TemporaryDirectory(prefix="course-submission-") as tmp:
        prepared = Path(tmp) / "notebook.ipynb"
        nbformat.write(submission, prepared)
        cells, stopped = run_notebook(prepared, cell_timeout, total_timeout)
    reported = {c["question"]: c for c in cells if c["question"] is not None}
    rows = []
    for question, points in asked:
        row = dict(
            reported.get(question) or zero_row(question, points, stopped or "the cell did not run")
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
    return GradeResult(path, name, student, status, rows, reason, cells=cells)
