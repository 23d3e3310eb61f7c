"""What a grade looks like: score tables, the class CSV, the per-question summary.

Every text that came from a student (hints quoting their errors, names, file names) is
made safe here: control characters (ANSI escapes, carriage returns) are removed before it
reaches a terminal, and CSV cells that a spreadsheet would run as a formula are escaped.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tempfile
import textwrap
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_HINT_CHARS = 600
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_ERROR_ADVICE = {
    "NotImplementedError": "not implemented yet: replace `raise NotImplementedError()` "
    "with your code",
    "NameError": "a name is undefined: did an earlier cell fail or not run, "
    "or was a function renamed?",
}


STATUSES = ("ok", "timeout", "crashed", "invalid", "error")


@dataclass
class GradeResult:
    """One graded notebook. ``status``: ``ok``; ``timeout`` (a cell, or the whole notebook,
    ran past its limit); ``crashed`` (the student's process died: ``os._exit``, a segfault,
    memory); ``invalid`` (not a readable notebook); ``error`` (the grader failed on it)."""

    path: Path
    notebook: str  # the exercise it answers (file stem)
    student: str
    status: str  # one of STATUSES
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per question
    reason: str = ""
    source_sha256: str = ""  # of the canonical exercise it was graded against (class grading)
    cells: list[dict[str, Any]] = field(default_factory=list)  # self-grading: every code cell

    @property
    def earned(self) -> float:
        return sum(r["earned"] for r in self.rows)

    @property
    def possible(self) -> float:
        return sum(r["points"] for r in self.rows)


def zero_row(question: str, points: float, hint: str) -> dict[str, Any]:
    """A question that earned nothing, and why."""
    return {"question": question, "points": points, "earned": 0.0, "passed": False, "hint": hint}


def clean(text: Any, limit: int = MAX_HINT_CHARS) -> str:
    """``text`` as one printable line: escapes and control characters removed, runs of
    whitespace collapsed, at most ``limit`` characters."""
    text = _CONTROL.sub("", str(text))
    # Lone surrogates (no UTF-8 encoding: the CSV would fail) and format characters
    # (bidi overrides such as U+202E reorder what the terminal shows) go too.
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cs", "Cf"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def csv_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: cleaned, and a leading ``= + - @`` quoted
    with ``'`` (OWASP's advice against formula injection). Numbers are left alone."""
    text = clean(value, 10_000)
    if text.startswith(_FORMULA_START) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def error_hint(ename: str, evalue: str) -> str:
    """``NotImplementedError: ... (not implemented yet: ...)``: an error with its advice."""
    ename, evalue = clean(ename, 80), str(evalue).strip()
    message = f"{ename}: {evalue}" if evalue else ename
    advice = _ERROR_ADVICE.get(ename)
    return f"{message} ({advice})" if advice else message


def format_points(x: float) -> str:
    """``2`` for whole points, ``1.5`` otherwise."""
    return str(int(x)) if math.isclose(x, round(x)) else f"{x:.1f}"


def format_score_table(rows: Sequence[dict[str, Any]], hint_width: int = 90) -> list[str]:
    """``question | points | earned | hint`` lines (hints cleaned, wrapped, capped), then the
    total."""
    names = [clean(r["question"], 60) for r in rows]
    width = max([len("question"), *(len(n) for n in names)]) + 2
    indent = " " * (width + 17)
    lines = [f"{'question':<{width}}{'points':>7}{'earned':>8}  hint"]
    for name, r in zip(names, rows, strict=True):
        hint = clean(r["hint"]) if not r["passed"] else ""
        wrapped = textwrap.wrap(hint, hint_width) or [""]
        points, earned = format_points(r["points"]), format_points(r["earned"])
        row = f"{name:<{width}}{points:>7}{earned:>8}  {wrapped[0]}"
        lines.append(row.rstrip())
        lines.extend(indent + part for part in wrapped[1:])
    total = sum(r["points"] for r in rows)
    earned = sum(r["earned"] for r in rows)
    lines.append(f"{'total':<{width}}{format_points(total):>7}{format_points(earned):>8}")
    return lines


def _column(notebook: str, row: dict[str, Any]) -> str:
    return f"{notebook}:{row['question']} ({format_points(row['points'])})"


def write_csv(results: Iterable[Any], path: Path) -> None:
    """One row per submission: student, notebook, file, status, total, possible, reason,
    then one column per question, ``<notebook>:<question> (<points>)``, holding the points
    earned. Written to a temporary file beside ``path`` and renamed over it, so a reader
    never sees half a file."""
    results = list(results)
    columns: dict[str, None] = {}
    for r in results:
        for row in r.rows:
            columns.setdefault(_column(r.notebook, row))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["student", "notebook", "file", "status", "total", "possible", "reason", *columns]
            )
            for r in results:
                earned = {_column(r.notebook, row): format_points(row["earned"]) for row in r.rows}
                fixed = [r.student, r.notebook, str(r.path), r.status]
                points = [format_points(r.earned), format_points(r.possible)]
                writer.writerow(
                    [csv_cell(v) for v in fixed]
                    + points
                    + [csv_cell(r.reason)]
                    + [earned.get(c, "") for c in columns]
                )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def question_summary(results: Iterable[Any]) -> list[str]:
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
