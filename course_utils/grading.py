"""Grading: ``check_*`` helpers for test cells, and the pytest plugin that scores them.

Test cells call the helpers; each raises ``AssertionError`` with a message that teaches:
what was checked, what was expected, what came out, and the likely mistake.

The plugin (registered as the ``pytest11`` entry point ``course_grading``) works under
``pytest --nbval-lax``: a code cell tagged ``graded`` with metadata ``points`` and a first
line ``# TEST question (N points)`` earns its points if it runs without error. It prints a
score table and, with ``--course-report FILE``, appends one JSON line per cell to FILE as
each cell finishes (so a run killed half-way still reports what it earned), and notices a
dead kernel within about a second instead of waiting out the cell timeout.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
import torch

GRADED_TAG = "graded"
MAX_HINT_CHARS = 600
TEST_HEADER = re.compile(r"^# TEST (?P<name>[A-Za-z_][\w.]*) \((?P<points>\d+) points?\)\s*$")

# ---------------------------------------------------------------------------- checks


def _fail(message: str, hint: str | None) -> None:
    raise AssertionError(f"{message}" + (f"\nLikely mistake: {hint}" if hint else ""))


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        if x.ndim == 0:
            return f"{x.item():.6g}"
        if x.numel() <= 6:
            return f"tensor {x.detach().cpu().tolist()} (shape {tuple(x.shape)})"
        return f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}"
    return repr(x)


def check(condition: bool, message: str, hint: str | None = None) -> None:
    """Fail with ``message`` (and ``hint``) unless ``condition`` holds."""
    if not condition:
        _fail(message, hint)


def check_tensor(value: Any, name: str, hint: str | None = None) -> torch.Tensor:
    """``value`` must be a ``torch.Tensor``; returns it."""
    if not isinstance(value, torch.Tensor):
        _fail(f"{name}: expected a torch.Tensor, got {type(value).__name__} ({value!r:.60})", hint)
    return value


def check_shape(value: Any, shape: Sequence[int], name: str, hint: str | None = None) -> None:
    """``value`` must be a tensor of exactly ``shape``."""
    t = check_tensor(value, name, hint)
    if tuple(t.shape) != tuple(shape):
        _fail(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}", hint)


def check_finite(value: Any, name: str, hint: str | None = None) -> None:
    """``value`` (tensor or number) must contain no NaN or infinity."""
    t = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        _fail(f"{name}: expected finite values, got {bad} NaN/inf in {_describe(t)}", hint)


def _close(a: torch.Tensor, e: torch.Tensor, atol: float, rtol: float) -> bool:
    return a.shape == e.shape and bool(torch.allclose(a, e, atol=atol, rtol=rtol))


def _as_float64(value: Any, name: str, hint: str | None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double()  # MPS has no float64
    if isinstance(value, int | float) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    _fail(f"{name}: expected a tensor or a number, got {type(value).__name__}", hint)
    raise AssertionError  # unreachable: _fail raises


def check_close(
    actual: Any,
    expected: Any,
    name: str,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str | None = None,
    mistakes: Mapping[str, Any] | None = None,
) -> None:
    """``actual`` must match ``expected`` (tensors or numbers) within ``atol + rtol*|expected|``.

    A one-element tensor matches a number. ``mistakes`` maps a hint to the value a known
    mistake would produce: when ``actual`` matches one of them, that hint is shown instead
    of ``hint``. Shape and finiteness are checked first, each with its own message.
    """
    e = _as_float64(expected, "expected", None)
    a = _as_float64(actual, name, hint)
    if e.numel() == 1 and a.numel() == 1:
        a, e = a.reshape(()), e.reshape(())
    elif a.shape != e.shape:
        _fail(f"{name}: expected shape {tuple(e.shape)}, got {tuple(a.shape)}", hint)
    for mistake_hint, wrong in (mistakes or {}).items():
        w = _as_float64(wrong, "mistakes", None)
        w = w.reshape(a.shape) if w.numel() == a.numel() else w
        if _close(a, w, atol, rtol) and not _close(a, e, atol, rtol):
            hint = mistake_hint
            break
    if torch.isnan(a).any() and not torch.isnan(e).any():
        _fail(f"{name}: expected {_describe(e.float())}, got NaN in {_describe(a.float())}", hint)
    if not torch.equal(torch.isinf(a), torch.isinf(e)) or not torch.equal(
        a[torch.isinf(a)], e[torch.isinf(e)]
    ):
        _fail(
            f"{name}: expected {_describe(e.float())}, got {_describe(a.float())} "
            "(infinities differ)",
            hint,
        )
    finite = torch.isfinite(e)
    if not torch.allclose(a[finite], e[finite], atol=atol, rtol=rtol):
        err = (a[finite] - e[finite]).abs().max().item()
        _fail(
            f"{name}: expected {_describe(e.float())}, got {_describe(a.float())} "
            f"(max abs error {err:.3g}, tolerance atol={atol:g}, rtol={rtol:g})",
            hint,
        )


def check_grad(tensor: torch.Tensor, name: str, hint: str | None = None) -> None:
    """After ``backward()``, ``tensor.grad`` must exist and be non-zero."""
    if tensor.grad is None or not torch.any(tensor.grad != 0):
        _fail(f"{name}: expected a non-zero gradient to flow back to it, got none", hint)


# ---------------------------------------------------------------------------- plugin


def parse_test_header(source: str) -> tuple[str, int] | None:
    """``("kl", 2)`` from a cell whose first line is ``# TEST kl (2 points)``, else ``None``."""
    first = source.lstrip("\n").split("\n", 1)[0]
    m = TEST_HEADER.match(first)
    return (m["name"], int(m["points"])) if m else None


def graded_question(cell: Any) -> tuple[str, float] | None:
    """(question, points) of a notebook cell tagged ``graded``, else ``None``."""
    metadata = getattr(cell, "metadata", None) or {}
    if GRADED_TAG not in metadata.get("tags", []):
        return None
    header = parse_test_header(getattr(cell, "source", ""))
    name = header[0] if header else f"cell {metadata.get('id', '?')}"
    return name, float(metadata.get("points", header[1] if header else 0))


_ERROR_ADVICE = {
    "NotImplementedError": "not implemented yet: replace `raise NotImplementedError()` "
    "with your code",
    "NameError": "a name is undefined: did an earlier cell fail or not run, "
    "or was a function renamed?",
}


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
            ename, evalue = out.get("ename", "Error"), str(out.get("evalue", "")).strip()
            message = f"{ename}: {evalue}" if evalue else ename
            advice = _ERROR_ADVICE.get(ename)
            return f"{message} ({advice})" if advice else message
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


def format_score_table(rows: Sequence[dict[str, Any]], hint_width: int = 90) -> list[str]:
    """``question | points | earned | hint`` lines (hints wrapped, capped), then the total."""
    width = max([len("question"), *(len(r["question"]) for r in rows)]) + 2
    indent = " " * (width + 17)
    lines = [f"{'question':<{width}}{'points':>7}{'earned':>8}  hint"]
    for r in rows:
        hint = " ".join(r["hint"].split()) if not r["passed"] else ""
        if len(hint) > MAX_HINT_CHARS:
            hint = hint[: MAX_HINT_CHARS - 3] + "..."
        wrapped = textwrap.wrap(hint, hint_width) or [""]
        points, earned = format_points(r["points"]), format_points(r["earned"])
        row = f"{r['question']:<{width}}{points:>7}{earned:>8}  {wrapped[0]}"
        lines.append(row.rstrip())
        lines.extend(indent + part for part in wrapped[1:])
    total = sum(r["points"] for r in rows)
    earned = sum(r["earned"] for r in rows)
    lines.append(f"{'total':<{width}}{format_points(total):>7}{format_points(earned):>8}")
    return lines


def format_points(x: float) -> str:
    """``2`` for whole points, ``1.5`` otherwise."""
    return str(int(x)) if math.isclose(x, round(x)) else f"{x:.1f}"
