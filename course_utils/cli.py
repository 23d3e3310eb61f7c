"""The ``course`` command.

course build [--check]            regenerate notebooks and exercises (or report stale ones)
course grade NB [NB ...]          grade notebooks: question | points | earned | hint
course bench {loop,threads}       run a benchmark and print its table
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat

from course_utils.build import BuildError, build, find_root, stale
from course_utils.grading import format_score_table, graded_question

DEFAULT_CELL_TIMEOUT = 120  # seconds per cell
DEFAULT_TOTAL_TIMEOUT = 900  # seconds per notebook


class GradeInputError(ValueError):
    """A file that cannot be graded: missing, not a notebook, or not valid notebook JSON."""


def _read_notebook(path: Path) -> nbformat.NotebookNode:
    if not path.exists():
        raise GradeInputError(f"{path}: no such file")
    if path.is_dir() or path.suffix != ".ipynb":
        got = "a folder" if path.is_dir() else repr(path.suffix or "no suffix")
        raise GradeInputError(f"{path}: expected a Jupyter notebook (.ipynb), got {got}")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # json errors, nbformat validation errors, decoding errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GradeInputError(
            f"{path}: not a valid notebook ({type(exc).__name__}: {first})"
        ) from None


def run_notebook(
    path: Path,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
) -> tuple[list[dict[str, Any]], str | None]:
    """Run ``pytest --nbval-lax`` on a copy of ``path`` (the original is never touched).

    Returns one row per code cell that reported, ``{"cell", "question", "points",
    "earned", "passed", "hint"}`` (``question`` is ``None`` for ungraded cells), and why the
    run stopped early (``None`` if it did not).

    Raises:
        GradeInputError: the file is missing, not an ``.ipynb``, or not valid JSON.
    """
    _read_notebook(path)
    with tempfile.TemporaryDirectory(prefix="course-grade-") as tmp:
        work = Path(tmp)
        copy = work / path.name
        shutil.copyfile(path, copy)
        (work / "pytest.ini").write_text("[pytest]\naddopts =\n")
        report = work / "report.json"
        cmd = [
            sys.executable, "-m", "pytest", str(copy), "-q", "-p", "no:cacheprovider",
            "-c", str(work / "pytest.ini"), "--rootdir", str(work),
            "--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={cell_timeout}",
            "--course-report", str(report),
        ]  # fmt: skip
        stopped = None
        try:
            subprocess.run(
                cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=total_timeout, check=False, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            stopped = f"the notebook exceeded its total time limit of {total_timeout} s"
        results = json.loads(report.read_text()) if report.is_file() else {}
    cells = [row for rows in results.values() for row in rows]
    return cells, stopped


def grade_notebook(
    path: Path,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
) -> list[dict[str, Any]]:
    """Grade ``path``: one row per graded question, in notebook order,
    ``{"question", "points", "earned", "passed", "hint"}``. A question whose cell never
    reported (the kernel died, the run timed out) earns 0.

    Raises:
        GradeInputError: the file is missing, not an ``.ipynb``, or not valid JSON.
    """
    nb = _read_notebook(path)
    questions = [q for q in (graded_question(c) for c in nb.cells if c.cell_type == "code") if q]
    cells, stopped = run_notebook(path, cell_timeout, total_timeout)
    reported = {c["question"]: c for c in cells if c["question"] is not None}
    missing = stopped or "the cell did not run"
    return [
        reported.get(name)
        or {"question": name, "points": points, "earned": 0.0, "passed": False, "hint": missing}
        for name, points in questions
    ]


def _cmd_build(args: argparse.Namespace) -> int:
    root = find_root(Path(args.root))
    if args.check:
        out = stale(root)
        for path in out:
            print(f"stale: {path.relative_to(root)}")
        if out:
            print(
                f"{len(out)} file(s) out of date: run `course build` (or `make build`) and commit."
            )
            return 1
        print("course build --check: every notebook and exercise is up to date")
        return 0
    for path in build(root):
        print(f"wrote {path.relative_to(root)}")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    status = 0
    for name in args.notebooks:
        path = Path(name)
        try:
            rows = grade_notebook(path, args.cell_timeout, args.total_timeout)
        except GradeInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"== {path}")
        if not rows:
            print("no graded cells (cells tagged 'graded') in this notebook")
            continue
        print("\n".join(format_score_table(rows)))
    return status


def _cmd_bench(args: argparse.Namespace) -> int:
    from course_utils.bench import BENCHMARKS

    BENCHMARKS[args.name]()
    return 0


def main(argv: list[str] | None = None) -> int:
    from course_utils.bench import BENCHMARKS

    parser = argparse.ArgumentParser(
        prog="course", description="Deep generative models course tools"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="regenerate notebooks and exercises from the scripts")
    p_build.add_argument("--check", action="store_true", help="exit 1 if anything is stale")
    p_build.add_argument("--root", default=".", help="the course folder (default: search upward)")
    p_build.set_defaults(func=_cmd_build)
    p_grade = sub.add_parser("grade", help="grade notebooks: question | points | earned | hint")
    p_grade.add_argument("notebooks", nargs="+", help="the .ipynb files to grade")
    p_grade.add_argument(
        "--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT, help="seconds per cell"
    )
    p_grade.add_argument(
        "--total-timeout", type=int, default=DEFAULT_TOTAL_TIMEOUT, help="seconds per notebook"
    )
    p_grade.set_defaults(func=_cmd_grade)
    p_bench = sub.add_parser("bench", help="run a benchmark and print its table")
    p_bench.add_argument("name", choices=sorted(BENCHMARKS))
    p_bench.set_defaults(func=_cmd_bench)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
