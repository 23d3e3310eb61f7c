"""Test layers, for tests/ and e2e/ alike (markers registered in pyproject.toml).

A test's layer is its first marker of ``LAYERS``, else ``unit``. The Makefile selects
layers with ``-m``: ``make check`` the unit layer, ``make test`` everything but
``notebook`` in ``.venv`` and everything but ``class_batch`` in ``.venv-oldest``,
``make e2e`` the browser. Here:

* the long poles go first (by layer), so that ``--dist loadgroup --no-loadscope-reorder``
  hands them out before the many short tests fill the gaps;
* every run ends with a time table per layer (tests, summed seconds, notebooks run),
  saved to ``build/test-times/$COURSE_TEST_RUN.json`` for ``tools/test_times.py``.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

# Costliest first; a test with none of these markers is in the unit layer.
LAYERS = ("browser", "notebook", "class_batch", "sandbox", "mutation")
TIMES = Path(__file__).resolve().parent / "build" / "test-times"
_NOTEBOOKS = [0]  # whole notebooks this process started: kernels, sandboxes, judges


def layer(item: pytest.Item) -> str:
    return next((name for name in LAYERS if item.get_closest_marker(name)), "unit")


def _counted(owner: Any, name: str) -> None:
    """Count every call of ``owner.name`` as one notebook run."""
    original = getattr(owner, name)
    if getattr(original, "counts_notebooks", False):
        return

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        _NOTEBOOKS[0] += 1
        return original(*args, **kwargs)

    run.counts_notebooks = True
    setattr(owner, name, run)


def pytest_configure(config: pytest.Config) -> None:
    import nbclient

    from course_utils.grading import classgrade, selfgrade

    _counted(selfgrade, "run_notebook")  # a kernel under nbval
    _counted(classgrade, "grade_submission")  # a sandbox
    _counted(classgrade.JudgeProcess, "_start")  # a judge runs the solution
    _counted(nbclient.NotebookClient, "setup_kernel")  # the widget kernel test
    _START[0] = time.monotonic()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate((*LAYERS, "unit"))}
    items.sort(key=lambda item: rank[layer(item)])  # stable: file order within a layer


def pytest_collection_finish(session: pytest.Session) -> None:
    import sys

    browser = sys.modules.get("e2e.test_lectures_in_browser")
    if browser is not None:
        _counted(browser, "run_notebook")  # Run All in JupyterLab


_BEFORE = pytest.StashKey[int]()
_ROWS: dict[str, dict[str, Any]] = {}  # layer -> tests, seconds, notebooks (the controller's)
_START = [0.0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    item.user_properties.append(("layer", layer(item)))
    item.stash[_BEFORE] = _NOTEBOOKS[0]
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    if call.when == "teardown":
        item.user_properties.append(("notebooks", _NOTEBOOKS[0] - item.stash[_BEFORE]))
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties)
    if "layer" not in props:
        return
    row = _ROWS.setdefault(props["layer"], {"tests": set(), "seconds": 0.0, "notebooks": 0})
    row["tests"].add(report.nodeid)
    row["seconds"] += report.duration
    if report.when == "teardown":
        row["notebooks"] += props.get("notebooks", 0)


def table(rows: dict[str, dict[str, Any]], wall: float | None = None) -> list[str]:
    """The time table's lines: a row per layer, then the total."""
    lines = [f"{'layer':<14}{'tests':>7}{'seconds':>10}{'notebooks':>11}"]
    order = [name for name in (*LAYERS, "unit") if name in rows]
    for name in order:
        r = rows[name]
        lines.append(f"{name:<14}{r['tests']:>7}{r['seconds']:>10.0f}{r['notebooks']:>11}")
    total = {k: sum(rows[n][k] for n in order) for k in ("tests", "seconds", "notebooks")}
    lines.append(
        f"{'total':<14}{total['tests']:>7}{total['seconds']:>10.0f}{total['notebooks']:>11}"
        + (f"   wall {wall:.0f} s" if wall is not None else "")
    )
    return lines


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # an xdist worker: its reports reach the controller, which prints
    rows = {
        name: {"tests": len(r["tests"]), "seconds": r["seconds"], "notebooks": r["notebooks"]}
        for name, r in _ROWS.items()
    }
    if not rows:
        return
    wall = time.monotonic() - _START[0]
    run = os.environ.get("COURSE_TEST_RUN", "pytest")
    TIMES.mkdir(parents=True, exist_ok=True)
    (TIMES / f"{run}.json").write_text(json.dumps({"run": run, "wall": wall, "layers": rows}))
    terminalreporter.section(f"time per layer ({run}; seconds summed over tests)")
    for line in table(rows, wall):
        terminalreporter.write_line(line)
