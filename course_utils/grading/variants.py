"""One exercise function's variants graded in-process, through both graders' code.

How strong is a test cell: does it fail a wrong implementation with the hint that names
the mistake, and pass a correct one written differently? Running a whole notebook per
variant costs seconds to minutes; here the solution script runs once, in this process,
and a variant of function ``f`` re-runs only the cell that defines ``f`` (with the
variant's body in its solution region) and the cells after it up to ``f``'s tests, from a
copy of the namespace as it was before that cell. Each test cell is graded both ways,
from the same random state (``worker.run_test``):

* **self-grading**: the canonical test cell as it is, its checks called directly, as in
  the student's kernel under ``course grade NB``;
* **class grading**: the student side of the split cell (``cells.split_test_cell``)
  records the checks' first arguments, written and read back as a sandbox's records are
  (``worker.save_record``, ``worker.load_record``), and ``worker.Judge`` gives the verdict
  from the check arguments its judge side computed on the solution.

The visible test runs first, then the hidden one (``solution.f`` is the solution's ``f``
both ways: ``checks.solution_from``). Used by tests/test_grader.py (planted mistakes and
alternatives) and tools/mutation.py (``make mutation``). Questions that train a model
come after every function question and are not run here; a whole notebook, sandboxed,
covers them (tests/test_grader.py's class batches).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import re
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jupytext

from course_utils.grading import checks, worker
from course_utils.grading.cells import split_test_cell
from course_utils.grading.notebooks import (
    GRADED_TAG,
    HIDDEN_HEADER,
    HIDDEN_TAG,
    parse_test_header,
)

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_DEF = re.compile(r"^def (\w+)\(", re.M)
DEFAULT_TIMEOUT = 60.0  # seconds per cell
# A variant's cell may take this many times the solution's time for it, and at least
# VARIANT_FLOOR_S (never more than the set's timeout): a mutant that loops forever
# (``i += 1`` -> ``i -= 1``) costs seconds, not the full timeout for each of its cells.
VARIANT_FACTOR, VARIANT_FLOOR_S = 20.0, 2.0


class VariantError(ValueError):
    """A function or script the harness cannot vary (no such function, no solution region)."""


@dataclass(frozen=True)
class Verdict:
    """One question, graded both ways: ``passed`` / ``hint`` with the checks called
    directly (self-grading), ``class_passed`` / ``class_hint`` through the split cells and
    the judge (class grading; a hidden test's hint there shows no values)."""

    question: str
    passed: bool
    hint: str
    class_passed: bool
    class_hint: str

    @property
    def agree(self) -> bool:
        return self.passed == self.class_passed


def with_body(script: str, function: str, body: str) -> str:
    """``script`` with the solution region of ``function`` replaced by ``body`` (dedented,
    then indented as the region's ``### BEGIN SOLUTION`` line).

    Raises:
        VariantError: ``script`` defines no ``function`` with a solution region.
    """
    start = script.find(f"def {function}(")
    begin = script.find(BEGIN, start)
    if start < 0 or begin < 0:
        raise VariantError(f"function: no solution region in a def {function}(...) of the script")
    line_start = script.rindex("\n", 0, begin) + 1
    indent = script[line_start:begin]
    first = script.index("\n", begin) + 1
    end = script.rindex("\n", 0, script.index(END, first)) + 1
    code = textwrap.indent(textwrap.dedent(body).strip() + "\n", indent)
    return script[:first] + code + script[end:]


def solution_region(script: str, function: str) -> str:
    """The code between ``function``'s solution markers, dedented."""
    start = script.find(f"def {function}(")
    begin = script.find(BEGIN, start)
    if start < 0 or begin < 0:
        raise VariantError(f"function: no solution region in a def {function}(...) of the script")
    first = script.index("\n", begin) + 1
    end = script.rindex("\n", 0, script.index(END, first)) + 1
    return textwrap.dedent(script[first:end])


@dataclass(frozen=True)
class _Cell:
    source: str
    test: str | None  # "<question>", "<question>:hidden" or None for a code cell
    student: str = ""  # the split sides of a test cell
    judge: str = ""
    static: dict[int, tuple[str, str | None]] | None = None


def _test_key(cell: Any) -> str | None:
    tags = cell.metadata.get("tags", [])
    if GRADED_TAG in tags:
        header = parse_test_header(cell.source)
        return header[0] if header else None
    if HIDDEN_TAG in tags:
        m = HIDDEN_HEADER.match(cell.source.lstrip("\n").split("\n", 1)[0])
        return f"{m['name']}:hidden" if m else None
    return None


class ExerciseSet:
    """A solution script, run once in this process up to its last function question's
    tests, ready to grade variants of its functions (``grade``).

    ``functions``: the functions with a solution region that a graded question of the
    same name tests, in order. ``reference``: every such question's verdicts for the
    solution itself (all must pass).

    Raises:
        RuntimeError: a solution cell failed.
    """

    def __init__(self, script: str, seed: int = 0, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.script, self.seed, self.timeout = script, seed, timeout
        nb = jupytext.reads(script, fmt="py:percent")
        code = [c for c in nb.cells if c.cell_type == "code"]
        solved = sorted({n for c in code if BEGIN in c.source for n in _DEF.findall(c.source)})
        self.points: dict[str, float] = {}
        self.cells: list[_Cell] = []
        for cell in code:
            key = _test_key(cell)
            if key is None:
                self.cells.append(_Cell(cell.source, None))
                continue
            if not key.endswith(":hidden"):
                self.points[key] = float(cell.metadata.get("points", 0))
            split = split_test_cell(cell.source, solved)
            self.cells.append(_Cell(cell.source, key, split.student, split.judge, split.static))
        self._defined_in = {
            name: i
            for i, c in enumerate(self.cells)
            if c.test is None and BEGIN in c.source
            for name in _DEF.findall(c.source)
        }
        self._last_test = {}
        for i, c in enumerate(self.cells):
            if c.test is not None and c.test.removesuffix(":hidden") in self._defined_in:
                self._last_test[c.test.removesuffix(":hidden")] = i
        self.functions = [
            f for f in sorted(self._defined_in, key=self._defined_in.get) if f in self._last_test
        ]
        if not self.functions:
            raise VariantError("script: no function with a solution region has a graded test")
        self._snapshots: dict[int, dict[str, Any]] = {}
        self._seconds: dict[int, float] = {}  # the solution's time per cell
        self._sites: dict[str, list[worker.Site]] = {}
        self._static: dict[str, dict[int, tuple[str, str | None]]] = {}
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.reference = self._reference_pass()

    # -------------------------------------------------------------- the solution, once

    def _reference_pass(self) -> dict[str, Verdict]:
        ns, stop = self.namespace, max(self._last_test.values())
        snapshot_at = set(self._defined_in.values())
        collector = worker.SiteCollector()
        ns.update(worker.judge_globals(collector))
        for i, cell in enumerate(self.cells[: stop + 1]):
            if i in snapshot_at:
                self._snapshots[i] = dict(ns)
            started = time.perf_counter()
            if cell.test is None:
                error = self._run_code(cell.source, ns)
                self._seconds[i] = time.perf_counter() - started
                if error is not None:
                    raise RuntimeError(f"solution cell {i} failed: {error[0]}: {error[1]}")
                continue
            collector.sites = []
            error = worker.run_test(cell.judge, ns, cell.test, self.seed, self.timeout)
            self._seconds[i] = time.perf_counter() - started
            if error is not None:
                raise RuntimeError(f"the judge side of test {cell.test} failed: {error}")
            self._sites[cell.test] = collector.sites
            self._static[cell.test] = cell.static or {}
        self.judge = worker.Judge(self.points, self._sites, self._static)
        verdicts: dict[str, Verdict] = {}
        for function in self.functions:
            verdicts.update(self.grade(function))
        return verdicts

    def _limit(self, i: int) -> float:
        """Seconds a variant's cell ``i`` may take: ``VARIANT_FACTOR`` times the solution's,
        at least ``VARIANT_FLOOR_S``, at most the set's ``timeout``."""
        if i not in self._seconds:  # the reference pass itself
            return self.timeout
        return min(self.timeout, max(VARIANT_FLOOR_S, VARIANT_FACTOR * self._seconds[i]))

    def _run_code(
        self, source: str, ns: dict[str, Any], timeout: float | None = None
    ) -> tuple[str, str] | None:
        """A code cell: its error, if any (the next cell runs anyway, as in a kernel)."""
        limit = self.timeout if timeout is None else timeout
        try:
            with contextlib.redirect_stdout(io.StringIO()), worker._time_limit(limit):
                exec(compile(source, "<cell>", "exec"), ns)
        except BaseException as exc:  # the variant's error, whatever it is
            return (type(exc).__name__, str(exc)[:2000])
        return None

    # -------------------------------------------------------------- one variant

    def grade(self, function: str, body: str | None = None) -> dict[str, Verdict]:
        """Verdicts, both ways, with ``function``'s solution region replaced by ``body``
        (``None``: the solution's own), for the questions whose tests follow the cell that
        defines it, up to ``function``'s own.

        Raises:
            VariantError: ``function`` is not one of ``functions``.
        """
        if function not in self.functions:
            raise VariantError(
                f"function: expected one of {', '.join(self.functions)}, got {function!r}"
            )
        start, stop = self._defined_in[function], self._last_test[function]
        ns = dict(self._snapshots[start])
        recorder = worker.Recorder()
        ns.update(worker.student_globals(recorder))
        source = self.cells[start].source
        variant = source if body is None else with_body(source, function, body)
        self._run_code(variant, ns, self._limit(start))
        direct: dict[str, str | None] = {}
        tests: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="course-variant-") as tmp:
            for i in range(start + 1, stop + 1):
                cell = self.cells[i]
                if cell.test is None:
                    self._run_code(cell.source, ns, self._limit(i))
                    continue
                question = cell.test.removesuffix(":hidden")
                hint = self._direct(cell, ns, self._limit(i))
                if direct.get(question) is None:
                    direct[question] = hint
                recorder.records.clear()
                error = worker.run_test(cell.student, ns, cell.test, self.seed, self._limit(i))
                worker.save_record(Path(tmp) / f"{i}.pt", recorder.records, error)
                tests[f"{i}.pt"] = cell.test
            rows = {r["question"]: r for r in self.judge.verdicts(Path(tmp), tests)}
        return {
            q: Verdict(q, hint is None, hint or "", rows[q]["passed"], rows[q]["hint"])
            for q, hint in direct.items()
        }

    def _direct(self, cell: _Cell, ns: dict[str, Any], timeout: float) -> str | None:
        """The test cell with its checks called directly: ``None`` if it passed, else the
        hint self-grading shows (the check's message, or the error)."""
        assert cell.test is not None
        reference = self.namespace if cell.test.endswith(":hidden") else ns
        with checks.solution_from(reference):
            error = worker.run_test(cell.source, ns, cell.test, self.seed, timeout)
        if error is None:
            return None
        return error[1] if error[0] == "AssertionError" else worker.describe_error(error)
