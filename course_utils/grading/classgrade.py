"""Class grading: a folder of submissions, each in a sandbox, judged outside it.

For each exercise, a **judge** process runs the instructor's solution notebook once, with
the judge side of every visible and hidden test cell (``cells``), and keeps the arguments
of every check. For each submission, the notebook's own cells and the student side of the
canonical test cells run in a **sandbox** (``sandbox``); what comes back is plain data (the
first argument of each check), which the judge feeds to the real checks. So:

* nothing in the student's process holds an expected value, a tolerance or a check that
  decides anything: patching ``check_close``, torch, builtins or IPython, tracing the test
  cell, or returning objects that lie changes only the student's own recorded values;
* hidden test cells (in ``solutions/`` only) use inputs drawn from a seed chosen for this
  grading run, so values copied from the visible tests do not pass them;
* the sandbox cannot see the solutions, the exercise sources, the other submissions or
  the CSV, cannot write outside its private ``/tmp`` and ``/out``, and all its processes
  end with it;
* a submission's fault is its own status (``ok``, ``timeout``, ``crashed``, ``invalid``,
  ``error``); the batch always goes on; a question earns 0 or its points.
"""

from __future__ import annotations

import ast
import compileall
import contextlib
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from course_utils.grading.cells import split_test_cell
from course_utils.grading.notebooks import (
    HIDDEN_TAG,
    GradeInputError,
    graded_question,
    hidden_question,
    questions,
    read_notebook,
    read_submission,
    with_canonical_tests,
)
from course_utils.grading.report import GradeResult, clean, zero_row
from course_utils.grading.sandbox import (
    Limits,
    Running,
    Sandbox,
    check_available,
    data_folders,
    installed_package,
)
from course_utils.grading.selfgrade import DEFAULT_CELL_TIMEOUT, DEFAULT_TOTAL_TIMEOUT

_DEF = re.compile(r"^def (\w+)\(", re.M)
WATCH_SECONDS = 0.25  # how often a running sandbox's output folder is measured
CELL_GRACE_SECONDS = 5  # past a cell's limit, before the grader stops the sandbox
JUDGE_REPLY_SECONDS = 120  # one submission's verdicts (the records are small and capped)
JUDGE_MEMORY_BYTES = 8 * 2**30
REGRADED = (
    "graded again alone, after the others: it ran past a time limit while other "
    "submissions were graded beside it"
)


@dataclass(frozen=True)
class Submission:
    path: Path
    student: str
    exercise: Path


def matching_exercise(path: Path, source: Path) -> Path | None:
    """The exercise in ``source`` whose name ends ``path``'s name (the longest such name),
    e.g. ``exercises/01_vae.ipynb`` for ``alice_01_vae.ipynb``; ``None`` if none does."""
    candidates = sorted(source.glob("*.ipynb"), key=lambda p: -len(p.stem))
    return next((e for e in candidates if path.stem.endswith(e.stem)), None)


def find_submissions(folder: Path, source: Path) -> tuple[list[Submission], list[Path]]:
    """Pair each notebook under ``folder`` with its exercise in ``source``.

    A submission is ``<student>/<exercise>.ipynb`` (the folder names the student, whatever
    the file is called: ``alice/bob_01_vae.ipynb`` is alice's) or, at the top level,
    ``<student>_<exercise>.ipynb``. Links to folders are not followed, so every submission
    lies inside ``folder``; a name ending ``.ipynb`` that is not a regular file (a link, a
    FIFO) is still a submission, graded ``invalid`` (``notebooks.read_submission``).
    Students whose names print the same (an invisible character, another Unicode form)
    are told apart: ``student_labels``. Returns the pairs (sorted by path) and the
    notebooks that match no exercise.
    """
    if not any(source.glob("*.ipynb")):
        raise GradeInputError(f"{source}: no exercise notebooks (.ipynb) to grade against")
    paths = []
    for top, dirs, files in os.walk(folder):  # never into a linked folder
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        paths += [Path(top) / f for f in files if f.endswith(".ipynb")]
    found, unmatched = [], []
    for path in sorted(paths):
        exercise = matching_exercise(path, source)
        if exercise is None:
            unmatched.append(path)
            continue
        relative = path.relative_to(folder)
        if len(relative.parts) > 1:
            student = relative.parts[0]
        else:
            student = path.stem[: -len(exercise.stem)].rstrip("_-. ") or path.stem
        found.append(Submission(path, student, exercise))
    labels = student_labels([s.student for s in found])
    return [Submission(s.path, labels[s.student], s.exercise) for s in found], unmatched


def student_labels(names: list[str]) -> dict[str, str]:
    """A printable, distinct label per student name: invisible and control characters
    shown as ``<U+200B>``; names that still print alike (composed and decomposed accents,
    full-width letters: the same under NFKC) get `` (2)``, `` (3)``, ... after the first."""
    labels, seen = {}, {}
    for name in sorted(set(names)):
        label = "".join(
            f"<U+{ord(ch):04X}>"
            if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")
            else ch
            for ch in name
        )
        key = unicodedata.normalize("NFKC", label)
        seen[key] = seen.get(key, 0) + 1
        labels[name] = label if seen[key] == 1 else f"{label} ({seen[key]})"
    return labels


# ------------------------------------------------------------------ exercises and judges


@dataclass
class Exercise:
    """A canonical exercise, read and hashed once, and what grading it needs."""

    name: str
    path: Path
    sha256: str
    notebook: nbformat.NotebookNode
    points: dict[str, float]
    student_tests: dict[str, str]  # question (or "q:hidden") -> student side of its cell
    judge_cells: list[dict[str, Any]]
    functions: list[str]


def load_exercise(path: Path, solutions: Path) -> Exercise:
    """Read ``path`` and its solution ``solutions/<name>.ipynb``, and split their tests.

    Raises:
        GradeInputError: no solution notebook, or one whose visible tests differ from the
            exercise's (rebuild with ``course build``).
    """
    data = path.read_bytes()
    exercise = read_notebook(path)
    solution_path = solutions / path.name
    if not solution_path.is_file():
        raise GradeInputError(
            f"{solution_path}: class grading needs the solution notebook of {path.name} "
            "(its judge runs it); pass --solutions DIR"
        )
    solution = read_notebook(solution_path)
    functions = sorted(
        {
            n
            for c in solution.cells
            if "### BEGIN SOLUTION" in c.source
            for n in _DEF.findall(c.source)
        }
    )
    visible = {q: c.source for c in exercise.cells if (q := _question(c))}
    student_tests: dict[str, str] = {}
    judge_cells: list[dict[str, Any]] = []
    for cell in solution.cells:
        if cell.cell_type != "code":
            continue
        key = _question(cell)
        hidden = hidden_question(cell)
        if key is not None and visible.get(key) != cell.source:
            raise GradeInputError(
                f"{path} and {solution_path} differ in the test cell of {key!r}: run `course build`"
            )
        if hidden is not None:
            key = f"{hidden}:hidden"
        if key is None:
            judge_cells.append({"source": cell.source, "test": None})
            continue
        split = split_test_cell(cell.source, functions)
        student_tests[key] = split.student
        judge_cells.append({"source": split.judge, "test": key, "static": split.static})
    points = dict(questions(exercise))
    return Exercise(
        path.stem, path, hashlib.sha256(data).hexdigest(), exercise, points, student_tests,
        judge_cells, functions,
    )  # fmt: skip


def _claims_hidden(cell: Any) -> bool:
    tags = cell.get("metadata", {}).get("tags") or []
    return HIDDEN_TAG in tags or "# HIDDEN TEST " in cell.get("source", "").split("\n", 1)[0]


def _question(cell: Any) -> str | None:
    question = graded_question(cell) if cell.get("cell_type") == "code" else None
    return question[0] if question else None


def grading_package(exercise: str, functions: Collection[str], workdir: Path) -> Path:
    """A copy of the course package's sources for grading ``exercise`` in a sandbox: every
    module-level function named like one the exercise asks for (``functions``) raises a
    ``RuntimeError`` that names the question instead of answering it, in the copy's source
    too. Data folders stay empty here: the sandbox mounts the originals over them
    (``sandbox.data_folders``). Self-grading and the judge use the real package.
    """
    original = installed_package()
    copy = workdir / f"package-{exercise}"
    data = {folder.name for folder in data_folders(original)}
    for path in sorted(original.rglob("*")):
        relative = path.relative_to(original)
        if "__pycache__" in relative.parts or relative.parts[0] in data:
            continue
        target = copy / relative
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".py":
            target.parent.mkdir(parents=True, exist_ok=True)
            module = ".".join(("course_utils", *relative.with_suffix("").parts))
            target.write_text(_without_answers(path.read_text(), functions, module, exercise))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    for name in data:
        (copy / name).mkdir(parents=True, exist_ok=True)
    compileall.compile_dir(copy, quiet=2)  # the sandbox cannot write its bytecode
    return copy


def _without_answers(source: str, functions: Collection[str], module: str, exercise: str) -> str:
    tree = ast.parse(source)
    changed = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in functions:
            message = (
                f"{module}.{node.name} answers question {node.name!r} of exercise {exercise}: "
                "it is not available while the class is graded (write your own)"
            )
            node.body = [
                ast.Raise(
                    ast.Call(ast.Name("RuntimeError", ast.Load()), [ast.Constant(message)], [])
                )
            ]
            changed = True
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n" if changed else source


class JudgeProcess:
    """The judge of one exercise: a trusted process that ran the solution notebook and
    turns a sandbox's records into rows, one request at a time. If a record kills it,
    that submission's grading fails (status ``error``) and the next request starts a new
    judge."""

    def __init__(self, exercise: Exercise, seed: int, workdir: Path) -> None:
        self.job = workdir / f"judge-{exercise.name}.json"
        self.job.write_text(
            json.dumps({"cells": exercise.judge_cells, "seed": seed, "points": exercise.points})
        )
        self.exercise, self.workdir = exercise, workdir
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self._start()

    def _start(self) -> None:
        """Start the judge; it runs the solution notebook while the first sandboxes run."""
        self.ready = False
        self.proc = subprocess.Popen(
            ["prlimit", f"--as={JUDGE_MEMORY_BYTES}", "--core=0", "--",
             sys.executable, "-m", "course_utils.grading.worker", "judge", str(self.job)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, cwd=self.workdir, start_new_session=True,
        )  # fmt: skip

    def wait_ready(self) -> None:
        """Wait until the judge ran the solution notebook.

        Raises:
            GradeInputError: the solution notebook failed in the judge.
        """
        if self.ready:
            return
        first = self._reply(DEFAULT_TOTAL_TIMEOUT)
        if "error" in first:
            self.close()
            raise GradeInputError(
                f"{self.exercise.path}: the solution notebook failed in the judge: {first['error']}"
            )
        self.ready = True

    def _reply(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise RuntimeError(f"the judge of {self.exercise.name} gave no reply in {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the judge of {self.exercise.name} exited")
        return json.loads(line)

    def verdicts(self, out: Path, tests: dict[str, str]) -> list[dict[str, Any]]:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            self.wait_ready()
            assert self.proc is not None and self.proc.stdin is not None
            try:
                self.proc.stdin.write(json.dumps({"out": str(out), "tests": tests}) + "\n")
                self.proc.stdin.flush()
                return self._reply(JUDGE_REPLY_SECONDS)["rows"]
            except (OSError, RuntimeError, ValueError, KeyError):
                self.close()
                raise

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()


# ------------------------------------------------------------------ one submission


def submission_cells(
    submission: nbformat.NotebookNode, exercise: Exercise
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
    """What the sandbox runs: the submission's code cells with each canonical test cell
    (student side) in its place and the question's hidden test after it. Returns the cells,
    the record file of each test (``"<n>.pt"`` -> question or ``"q:hidden"``), and the
    questions whose code cell is missing (from ``with_canonical_tests``). Each cell has a
    ``label`` that names it for the student (a code cell's number in the notebook and its
    first line, or the question a test cell checks)."""
    submission = nbformat.from_dict(dict(submission))
    submission.cells = [c for c in submission.cells if not _claims_hidden(c)]  # ours run
    merged, missing = with_canonical_tests(submission, exercise.notebook)
    cells: list[dict[str, Any]] = []
    tests: dict[str, str] = {}
    code = [c for c in merged.cells if c.cell_type == "code"]
    for number, cell in enumerate(code, 1):
        question = _question(cell)
        if question is None or question not in exercise.student_tests:
            first = cell.source.strip().split("\n", 1)[0][:40]
            label = f'code cell {number} ("{first}")'
            cells.append({"source": cell.source, "test": None, "label": label})
            continue
        for key in (question, f"{question}:hidden"):
            if key in exercise.student_tests:
                tests[f"{len(cells)}.pt"] = key
                label = f"the {'hidden ' if key.endswith(':hidden') else ''}test of {question}"
                cells.append({"source": exercise.student_tests[key], "test": key, "label": label})
    return cells, tests, missing


def grade_submission(
    sub: Submission,
    exercise: Exercise,
    judge: JudgeProcess,
    sandbox: Sandbox,
    seed: int,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
    package: Path | None = None,
) -> GradeResult:
    """Grade one submission (``package``: the course package the sandbox sees,
    ``grading_package``). Never raises: a fault is the result's status."""
    try:
        nb = read_submission(sub.path)
    except GradeInputError as exc:
        rows = [
            zero_row(q, p, "the notebook could not be read") for q, p in exercise.points.items()
        ]
        return GradeResult(
            sub.path, exercise.name, sub.student, "invalid", rows, clean(exc), exercise.sha256
        )
    work = Path(tempfile.mkdtemp(prefix="course-job-"))
    try:
        cells, tests, missing = submission_cells(nb, exercise)
        job, out = work / "job", work / "out"
        job.mkdir()
        out.mkdir()
        (job / "job.json").write_text(
            json.dumps({"cells": cells, "seed": seed, "cell_timeout": cell_timeout})
        )
        running = sandbox.start(job, out, package)
        try:
            stopped = _watch(running, out, total_timeout, cell_timeout, sandbox.limits, cells)
        finally:
            # every process it started is gone before judging
            out_of_memory = sandbox.stop(running)
        if out_of_memory:
            gib = sandbox.limits.memory_bytes / 2**30
            stopped = Stopped(
                "crashed",
                f"out of memory: the notebook's processes together passed the sandbox's "
                f"limit of {gib:g} GiB and the kernel stopped one",
            )
        rows = judge.verdicts(out, tests)
        for row in rows:
            if row["question"] in missing:
                row.update(earned=0.0, passed=False, hint=missing[row["question"]])
            if stopped is not None and not row["passed"] and "did not run" in row["hint"]:
                row["hint"] = f"not run: {stopped.reason}"
        # Complete when every record it was asked for is there: not a marker file or an exit
        # code, which the student's process controls.
        finished = all(_is_regular(out / name) for name in tests)
        if stopped is not None:
            status, reason = stopped.status, stopped.reason
        elif not finished:
            status, reason = (
                "crashed",
                "the student's process died before its last test (os._exit, a crash, or out "
                "of memory)",
            )
        elif any(r["hint"].startswith("Timeout") for r in rows):
            status, reason = "timeout", "a cell ran past the per-cell time limit"
        else:
            status, reason = "ok", ""
        return GradeResult(
            sub.path, exercise.name, sub.student, status, rows, reason, exercise.sha256
        )
    except Exception as exc:  # the grader's own failure on this one: recorded, batch goes on
        rows = [zero_row(q, p, "not graded: grader error") for q, p in exercise.points.items()]
        return GradeResult(
            sub.path,
            exercise.name,
            sub.student,
            "error",
            rows,
            clean(f"{type(exc).__name__}: {exc}"),
            exercise.sha256,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True)
class Stopped:
    """Why the grader stopped a sandbox: the status it gives the submission, and why."""

    status: str
    reason: str


def _watch(
    running: Running,
    out: Path,
    total_timeout: float,
    cell_timeout: float,
    limits: Limits,
    cells: list[dict[str, Any]],
) -> Stopped | None:
    """Wait for the sandbox; ``None`` if it ended by itself, else why the grader must stop
    it (it is still running): the total time limit, one cell's time limit (the cell the
    worker last said it started, given ``CELL_GRACE_SECONDS`` past the worker's own
    alarm, which student code can catch), or its output folder past the limits.

    The worker's progress lines come from a process the student controls: a line can only
    move on to a later cell, so forged ones buy at most one cell limit per cell, and the
    total limit holds whatever they say."""
    now = time.monotonic()
    deadline, cell, started, pending = now + total_timeout, -1, now, b""
    while running.proc.poll() is None:
        now = time.monotonic()
        if now > deadline:
            return Stopped(
                "timeout", f"the notebook exceeded its total time limit of {total_timeout:g} s"
            )
        if cell >= 0 and now > started + cell_timeout + CELL_GRACE_SECONDS:
            return Stopped(
                "timeout",
                f"{cells[cell]['label']} ran past the per-cell time limit of "
                f"{cell_timeout:g} s and was stopped by the grader",
            )
        with contextlib.suppress(BlockingIOError, OSError):
            pending += os.read(running.progress, 4096)
        *lines, pending = pending.split(b"\n")
        pending = pending[-32:]
        for line in lines:
            if line.isdigit() and cell < int(line) < len(cells):
                cell, started = int(line), now
        files, size = _usage(out, limits.output_files)
        if files > limits.output_files or size > limits.output_bytes:
            return Stopped(
                "crashed",
                f"the notebook wrote past the output limits ({files} files, {size} bytes; "
                f"at most {limits.output_files} files, {limits.output_bytes} bytes)",
            )
        with contextlib.suppress(subprocess.TimeoutExpired):
            running.proc.wait(timeout=WATCH_SECONDS)
    return None


def _usage(folder: Path, max_files: int) -> tuple[int, int]:
    """Entries and bytes under ``folder`` (links not followed), counting at most
    ``max_files + 1`` entries."""
    files = size = 0
    stack = [folder]
    while stack and files <= max_files:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                files += 1
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    size += info.st_size
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(Path(entry.path))
                if files > max_files:
                    break
    return files, size


def _is_regular(path: Path) -> bool:
    """A regular file, not a link to one (the sandbox wrote ``path``)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


# ------------------------------------------------------------------ the class


def grade_folder(
    folder: Path,
    source: Path,
    solutions: Path | None = None,
    jobs: int = 1,
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
    sandboxed: bool = True,
    hide: tuple[Path, ...] = (),
    seed: int | None = None,
    limits: Limits | None = None,
) -> tuple[list[GradeResult], list[Path]]:
    """Grade every submission in ``folder``, ``jobs`` at a time; results in path order.
    A submission stopped by a time limit while others ran beside it (``jobs`` > 1) is
    graded again alone after them, and that grade stands (its reason says so).

    ``solutions`` defaults to the ``solutions/`` folder beside ``source``. ``hide`` adds
    folders the sandbox must not see (the CSV's); ``seed`` fixes the hidden tests' inputs
    (default: a fresh random seed).

    Raises:
        ValueError: ``jobs`` is not a positive int.
        GradeInputError: no exercises, no solutions, or a solution notebook that fails.
        SandboxUnavailable: ``sandboxed`` and no sandbox can be made here.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs: expected a positive int, got {jobs!r}")
    solutions = solutions if solutions is not None else source.resolve().parent / "solutions"
    if sandboxed:
        check_available()
    submissions, unmatched = find_submissions(folder, source)
    seed = secrets.randbits(31) if seed is None else seed
    exercises = {e: load_exercise(e, solutions) for e in sorted({s.exercise for s in submissions})}
    with tempfile.TemporaryDirectory(prefix="course-judges-") as tmp:
        hidden = (folder, source, solutions, source.resolve().parent, Path.cwd(), *hide)
        hidden += (Path(tempfile.gettempdir()), Path(tmp))  # jobs, judges: wherever TMPDIR is
        sandbox = Sandbox(hidden=hidden, limits=limits or Limits(), enabled=sandboxed)
        judges: dict[Path, JudgeProcess] = {}
        packages: dict[Path, Path | None] = {}
        try:
            for path, exercise in exercises.items():
                judges[path] = JudgeProcess(exercise, seed, Path(tmp))
                packages[path] = (
                    grading_package(exercise.name, exercise.functions, Path(tmp))
                    if sandboxed
                    else None  # without a sandbox the student reads the real package anyway
                )

            def grade(sub: Submission) -> GradeResult:
                return grade_submission(
                    sub, exercises[sub.exercise], judges[sub.exercise], sandbox, seed,
                    cell_timeout, total_timeout, packages[sub.exercise],
                )  # fmt: skip

            with ThreadPoolExecutor(max_workers=jobs) as pool:
                results = list(pool.map(grade, submissions))
            if jobs > 1 and len(submissions) > 1:  # fair to a notebook slowed by its peers
                for i, result in enumerate(results):
                    if result.status == "timeout":
                        results[i] = grade(submissions[i])
                        results[i].reason = "; ".join(r for r in (results[i].reason, REGRADED) if r)
            return results, unmatched
        finally:
            for judge in judges.values():
                judge.close()
