"""Self-grading: the pytest plugin that scores a notebook run under ``pytest --nbval-lax``.

Registered as the ``pytest11`` entry point ``course_grading``. A code cell tagged
``graded`` with metadata ``points`` and a first line ``# TEST question (N points)`` earns
its points if it runs without error. The plugin prints a score table and, with
``--course-report FILE``, appends one JSON line per cell to FILE as each cell finishes (so
a run killed half-way still reports what it earned), and notices a dead kernel within
about a second instead of waiting out the cell timeout.

This trusts the student's kernel: it is for students checking their own work. Class
grading (``course_utils.grading.classgrade``) decides verdicts outside the student's code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from queue import Empty
from typing import Any

import pytest

from course_utils.grading.notebooks import graded_question
from course_utils.grading.report import error_hint, format_score_table

KERNEL_DIED = "the kernel died while running this cell (os._exit, a crash, or out of memory)"


def failure_hint(outputs: Sequence[Any] | None, fallback: str) -> str:
    """The teaching message of a failed cell: the error's type and message.

    ``fallback`` is nbval's own message; it wins for a timeout, whose cell output is only
    the ``KeyboardInterrupt`` that nbval sent to stop the cell.
    """
    if fallback.startswith("Timeout"):
        return f"{fallback.splitlines()[0]} (an infinite loop, or far too slow?)"
    for out in outputs or []:
        if out.get("output_type") == "error" or "ename" in out:
            return error_hint(out.get("ename", "Error"), str(out.get("evalue", "")))
    return fallback.strip().splitlines()[0] if fallback.strip() else "the cell failed"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course", "course grading")
    group.addoption(
        "--course-report",
        default=None,
        metavar="FILE",
        help="write the graded questions' results as JSON to FILE",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Attach each notebook cell's outcome (and its question, when graded) to its report."""
    outcome = yield
    cell = getattr(item, "cell", None)
    if cell is None or not hasattr(item, "cell_num"):
        return  # not an nbval notebook cell
    report = outcome.get_result()
    if report.when == "call" or (report.when == "setup" and report.failed):
        hint, crashed = "", False
        if report.failed:
            kernel = getattr(item.parent, "kernel", None)
            crashed = kernel is not None and not kernel.is_alive() and not _stopped_by_nbval(item)
            fallback = str(call.excinfo.value) if call.excinfo else report.longreprtext
            hint = (
                KERNEL_DIED
                if crashed
                else failure_hint(getattr(item, "test_outputs", None), fallback)
            )
        question = graded_question(cell)
        info = {
            "cell": item.cell_num,
            "question": question[0] if question else None,
            "points": question[1] if question else 0.0,
            "hint": hint,
            "timed_out": hint.startswith("Timeout"),
            "crashed": crashed,
        }
        report.user_properties.append(("course_cell", info))


def _stopped_by_nbval(item: pytest.Item) -> bool:
    """nbval stops the kernel itself when a timed-out cell cannot be interrupted."""
    return bool(getattr(item.parent, "timed_out", False)) and not getattr(
        item.parent.kernel, "course_died", False
    )


def _notice_dead_kernels() -> None:
    """Make nbval's wait for a cell's reply give up as soon as the kernel is dead.

    nbval polls with the whole cell timeout; a kernel killed by ``os._exit`` or a segfault
    would cost that long. Waiting in one-second slices and checking the kernel in between
    costs nothing otherwise.
    """
    from nbval.kernel import RunningKernel

    if getattr(RunningKernel.await_reply, "course_patched", False):
        return
    original = RunningKernel.await_reply

    def await_reply(self: Any, msg_id: str, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise Empty
            try:
                return original(
                    self, msg_id, timeout=1.0 if remaining is None else min(1.0, remaining)
                )
            except Empty:
                if not self.is_alive():
                    self.course_died = True
                    raise

    await_reply.course_patched = True
    RunningKernel.await_reply = await_reply


class _ScoreKeeper:
    """Collects every notebook cell's outcome; prints the graded ones and streams all of
    them to the report file, one JSON line per cell."""

    def __init__(self, report_path: str | None) -> None:
        self.report_path = Path(report_path) if report_path else None
        self.cells: dict[str, list[dict[str, Any]]] = {}
        if self.report_path is not None:
            self.report_path.write_text("")

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, info in report.user_properties:
            if key == "course_cell":
                notebook = report.nodeid.split("::", 1)[0]
                earned = info["points"] if report.passed else 0.0
                row = {
                    **info,
                    "notebook": notebook,
                    "earned": earned,
                    "passed": bool(report.passed),
                }
                self.cells.setdefault(notebook, []).append(row)
                if self.report_path is not None:
                    with self.report_path.open("a") as f:
                        f.write(json.dumps(row) + "\n")

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for notebook, cells in self.cells.items():
            questions = [c for c in cells if c["question"] is not None]
            if questions:
                terminalreporter.write_sep("=", f"score: {notebook}")
                for line in format_score_table(questions):
                    terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    report = config.getoption("course_report")
    if report:
        _notice_dead_kernels()
    config.pluginmanager.register(_ScoreKeeper(report), "course-scores")
