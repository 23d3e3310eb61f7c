"""``course autograder``: one exercise set as a Gradescope autograder, graded by class grading.

Gradescope's autograder specification (https://gradescope-autograders.readthedocs.io/en/
latest/specs/): a zip with ``setup.sh`` and ``run_autograder`` at its root, unpacked into
``/autograder/source``; ``setup.sh`` runs once, as root, when Gradescope builds the image
(Ubuntu); ``run_autograder`` runs once per submission, in a fresh container, with the
student's files in ``/autograder/submission`` and must write
``/autograder/results/results.json``: ``tests`` (``name``, ``score``, ``max_score``,
``status``, ``output``, ``visibility``), ``score``, ``output``. otter-grader's
``otter generate`` (``otter/gs_generator.py``) builds the same kind of zip.

The zip holds the course (the package with its data, the set's exercise and solution
notebooks, ``pyproject.toml``, ``constraints.txt``) under ``course/`` and
``autograder.json`` naming the set: it is the instructor's, never the students' (the
solution is in it). ``run_autograder`` runs ``python -m course_utils.grading.autograder
ROOT``, which stages every notebook under ``ROOT/submission`` as a one-student class and
grades it with ``classgrade.grade_folder``, the code of ``course grade FOLDER``: the
submission in bubblewrap where it works in the container (``sandbox`` ``auto``), the
judge outside. ``ROOT`` is ``$COURSE_AUTOGRADER_ROOT``, default ``/autograder`` (a test
unpacks the zip into a temporary ``{source,submission,results}``).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any

from course_utils.build import BuildError, find_root
from course_utils.grading import classgrade
from course_utils.grading.notebooks import MAX_NOTEBOOK_BYTES, GradeInputError
from course_utils.grading.report import GradeResult, clean, format_points, format_score_table
from course_utils.grading.sandbox import SandboxUnavailable, check_available
from course_utils.grading.selfgrade import DEFAULT_CELL_TIMEOUT, DEFAULT_TOTAL_TIMEOUT

SPEC_URL = "https://gradescope-autograders.readthedocs.io/en/latest/specs/"
DEFAULT_ROOT = Path("/autograder")
ROOT_ENV = "COURSE_AUTOGRADER_ROOT"  # where source/, submission/, results/ are
PYTHON_ENV = "COURSE_AUTOGRADER_PYTHON"  # the Python run_autograder runs (setup.sh's venv)
SEED_ENV = "COURSE_AUTOGRADER_SEED"  # the hidden tests' seed (default: a fresh one)
CONFIG = "autograder.json"
COURSE = "course"  # the course's folder inside the zip (and /autograder/source)
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")  # the spec's
SANDBOX_MODES = ("auto", "required", "off")
# setup.sh's torch: the CPU wheel (Gradescope has no GPU; PyPI's Linux torch is a CUDA build).
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
COURSE_FILES = ("pyproject.toml", "constraints.txt", "README.md")  # pip install -e needs these

SETUP_SH = f"""\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu):
# Python 3.11, bubblewrap (the sandbox), and the course with its pinned dependencies
# (constraints.txt), torch as the CPU wheel. Nothing downloads when a submission is graded.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y python3.11 python3.11-venv bubblewrap util-linux
python3.11 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --upgrade pip
TORCH=$(grep -i '^torch==' /autograder/source/{COURSE}/constraints.txt)
/autograder/venv/bin/python -m pip install --index-url {TORCH_INDEX} "$TORCH"
/autograder/venv/bin/python -m pip install -c /autograder/source/{COURSE}/constraints.txt \\
    -e /autograder/source/{COURSE}
# A course that does not import fails the image's build, not every submission.
/autograder/venv/bin/python -c "import course_utils.grading.autograder"
"""

RUN_AUTOGRADER = f"""\
#!/usr/bin/env bash
# Gradescope runs this once per submission (working directory /autograder). It grades every
# notebook under $ROOT/submission with the course's class grading and writes
# $ROOT/results/results.json ({SPEC_URL}).
ROOT="${{{ROOT_ENV}:-/autograder}}"
PYTHON="${{{PYTHON_ENV}:-/autograder/venv/bin/python}}"
export PYTHONPATH="$ROOT/source/{COURSE}"
cd "$ROOT/source/{COURSE}" && exec "$PYTHON" -m course_utils.grading.autograder "$ROOT"
"""


# ------------------------------------------------------------------ building the zip


def _members(root: Path, exercise: Path) -> list[tuple[str, Path]]:
    """(name in the zip, file) for the course's part of the zip."""
    out = [(f"{COURSE}/{name}", root / name) for name in COURSE_FILES]
    out.append((f"{COURSE}/exercises/{exercise.name}", exercise))
    out.append((f"{COURSE}/solutions/{exercise.name}", root / "solutions" / exercise.name))
    package = root / "course_utils"
    for path in sorted(package.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and "__pycache__" not in relative.parts and path.suffix != ".pyc":
            out.append((f"{COURSE}/{relative.as_posix()}", path))
    return out


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # the same bytes each time
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build_autograder(
    exercise: Path,
    output: Path,
    visibility: str = "visible",
    sandbox: str = "auto",
    cell_timeout: int = DEFAULT_CELL_TIMEOUT,
    total_timeout: int = DEFAULT_TOTAL_TIMEOUT,
) -> list[str]:
    """Write the Gradescope autograder of ``exercise`` (``exercises/NN_topic.ipynb`` of a
    course) to ``output``; returns the names in the zip.

    ``visibility``: each test's (Gradescope's ``hidden``, ``after_due_date``,
    ``after_published``, ``visible``). ``sandbox``: ``auto`` (bubblewrap where it works in
    the container, else the submission runs without it: Gradescope's container is the
    only wall, and the solution is in it), ``required`` (no sandbox, no grade: an error
    entry), ``off``.

    Raises:
        GradeInputError: ``exercise`` is not an exercise notebook of a course with its
            solution, or an argument is out of range.
    """
    if visibility not in VISIBILITIES:
        raise GradeInputError(f"visibility: expected one of {VISIBILITIES}, got {visibility!r}")
    if sandbox not in SANDBOX_MODES:
        raise GradeInputError(f"sandbox: expected one of {SANDBOX_MODES}, got {sandbox!r}")
    for name, value in (("cell_timeout", cell_timeout), ("total_timeout", total_timeout)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GradeInputError(f"{name}: expected a positive int of seconds, got {value!r}")
    exercise = Path(exercise)
    if exercise.suffix != ".ipynb" or not exercise.is_file():
        raise GradeInputError(f"exercise: expected an exercise notebook (.ipynb), got {exercise}")
    try:
        root = find_root(exercise.parent)
    except BuildError as exc:
        raise GradeInputError(f"exercise: {exc}") from exc
    if exercise.resolve().parent != (root / "exercises").resolve():
        raise GradeInputError(
            f"exercise: expected a notebook in {root / 'exercises'}, got {exercise}"
        )
    loaded = classgrade.load_exercise(exercise, root / "solutions")  # its solution, in step
    config = {
        "exercise": exercise.stem,
        "points": loaded.points,
        "visibility": visibility,
        "sandbox": sandbox,
        "cell_timeout": cell_timeout,
        "total_timeout": total_timeout,
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    names = []
    tmp = output.with_name(f".{output.name}.tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for name, text, mode in (
            ("setup.sh", SETUP_SH, 0o755),
            ("run_autograder", RUN_AUTOGRADER, 0o755),
            (f"{COURSE}/{CONFIG}", json.dumps(config, indent=1) + "\n", 0o644),
        ):
            _add(archive, name, text.encode(), mode)
            names.append(name)
        for name, path in _members(root, exercise):
            _add(archive, name, path.read_bytes())
            names.append(name)
    os.replace(tmp, output)
    return names


def unpack(zip_path: Path, source: Path) -> None:
    """Unpack the autograder as Gradescope does (into ``source``), modes included."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            target = source / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
            target.chmod((info.external_attr >> 16) & 0o777 or 0o644)


# ------------------------------------------------------------------ grading one submission


def _notebooks(folder: Path) -> list[Path]:
    """Every ``.ipynb`` under ``folder``, as ``classgrade.find_submissions`` finds them
    (linked folders not followed, ``.ipynb_checkpoints`` skipped)."""
    paths = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        paths += [Path(top) / f for f in files if f.endswith(".ipynb")]
    return sorted(paths)


def _stage(paths: list[Path], staging: Path, name: str) -> dict[Path, Path]:
    """One student folder per notebook, the notebook renamed ``<name>.ipynb`` (whatever the
    student called it). A regular file is copied (at most one byte past the size a
    notebook may have, so an oversized one is still refused as such); anything else (a
    link, a FIFO) becomes a link to it, which class grading refuses (``invalid``)."""
    staged = {}
    for i, path in enumerate(paths, 1):
        folder = staging / f"notebook{i}"
        folder.mkdir()
        target = folder / f"{name}.ipynb"
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode):
            with open(path, "rb") as src, open(target, "wb") as dst:
                dst.write(src.read(MAX_NOTEBOOK_BYTES + 1))
        else:
            target.symlink_to(path)
        staged[target] = path
    return staged


def _error_result(message: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """A results.json for a submission that could not be graded: every question at 0 and
    one test that says why."""
    visibility = (config or {}).get("visibility", "visible")
    tests = [
        {"name": "submission", "score": 0.0, "max_score": 0.0, "status": "failed",
         "output": message, "visibility": "visible"},
    ]  # fmt: skip
    for question, points in ((config or {}).get("points") or {}).items():
        tests.append(
            {"name": question, "score": 0.0, "max_score": float(points), "status": "failed",
             "output": "not graded: see the test named submission", "visibility": visibility}
        )  # fmt: skip
    return {"score": 0.0, "output": message, "tests": tests}


def results_json(graded: list[GradeResult], names: list[str], visibility: str) -> dict[str, Any]:
    """Gradescope's results for the notebooks of one submission (``names``: how the student
    called each): a test per question per notebook, with the hint as its output (never an
    expected value: class grading's hints hold none), and one per notebook that was not
    graded ``ok``. The score is the best notebook's total (uploading a notebook twice
    does not count it twice)."""
    tests: list[dict[str, Any]] = []
    summary = []
    several = len(graded) > 1
    for result, name in zip(graded, names, strict=True):
        suffix = f" ({clean(name, 200)})" if several else ""
        if result.status != "ok":
            tests.append(
                {"name": f"notebook{suffix}: {result.status}", "score": 0.0, "max_score": 0.0,
                 "status": "failed", "output": clean(result.reason), "visibility": "visible"}
            )  # fmt: skip
        for row in result.rows:
            tests.append(
                {
                    "name": f"{clean(row['question'], 200)}{suffix}",
                    "score": float(row["earned"]),
                    "max_score": float(row["points"]),
                    "status": "passed" if row["passed"] else "failed",
                    "output": "" if row["passed"] else clean(row["hint"]),
                    "visibility": visibility,
                }
            )
        status = "" if result.status == "ok" else f" [{result.status}: {clean(result.reason)}]"
        summary.append(
            f"{clean(name, 200)}: {format_points(result.earned)} of "
            f"{format_points(result.possible)} points{status}"
        )
    score = max((r.earned for r in graded), default=0.0)
    if several:
        summary.append(f"{len(graded)} notebooks graded; the score is the best one's.")
    return {"score": float(score), "output": "\n".join(summary), "tests": tests}


def grade_root(root: Path) -> dict[str, Any]:
    """Grade the submission under ``root`` (``root/source/course`` holds the course and its
    ``autograder.json``) and return Gradescope's results; never raises."""
    config = None
    try:
        course = root / "source" / COURSE
        config = json.loads((course / CONFIG).read_text())
        name = config["exercise"]
        submission = root / "submission"
        paths = _notebooks(submission) if submission.is_dir() else []
        if not paths:
            return _error_result(
                f"No notebook (.ipynb) in the submission: upload your {name}.ipynb.", config
            )
        sandboxed = config["sandbox"] != "off"
        if config["sandbox"] == "auto":
            try:
                check_available()
            except SandboxUnavailable as exc:
                print(f"autograder: no sandbox in this container ({clean(exc)}): the "
                      "submission runs without one, in the container only")  # fmt: skip
                sandboxed = False
        seed = int(os.environ[SEED_ENV]) if os.environ.get(SEED_ENV) else None
        with tempfile.TemporaryDirectory(prefix="course-autograder-") as tmp:
            staged = _stage(paths, Path(tmp), name)
            graded, _ = classgrade.grade_folder(
                Path(tmp), course / "exercises", solutions=course / "solutions",
                cell_timeout=config["cell_timeout"], total_timeout=config["total_timeout"],
                sandboxed=sandboxed, hide=(root,), seed=seed,
            )  # fmt: skip
            names = [str(staged[r.path].relative_to(submission)) for r in graded]
        for result, shown in zip(graded, names, strict=True):  # the student's name, not ours
            result.reason = result.reason.replace(str(result.path), shown)
        for result, shown in zip(graded, names, strict=True):
            print(f"== {clean(shown, 200)} [{result.status}] {clean(result.reason)}")
            print("\n".join(format_score_table(result.rows)))
        return results_json(graded, names, config["visibility"])
    except SandboxUnavailable as exc:
        return _error_result(f"The autograder cannot grade here: {clean(exc)}", config)
    except Exception as exc:  # the autograder's own failure: an error entry, not a crash
        traceback.print_exc()  # to results/stdout, which only the instructor sees
        message = f"The autograder failed ({type(exc).__name__}); ask your instructor."
        return _error_result(message, config)


def run(root: Path) -> dict[str, Any]:
    """``run_autograder``: grade, write ``root/results/results.json``, return it."""
    start = time.monotonic()
    result = grade_root(root)
    result["execution_time"] = round(time.monotonic() - start)
    results = root / "results"
    results.mkdir(parents=True, exist_ok=True)
    tmp = results / ".results.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, results / "results.json")
    return result


# ------------------------------------------------------------------ command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course autograder",
        description="Write a Gradescope autograder (zip) for one exercise set: it grades each "
        "submission as `course grade FOLDER` does. It holds the solution: keep it private "
        "(README: On Gradescope).",
    )
    parser.add_argument("exercise", help="the exercise notebook, exercises/NN_topic.ipynb")
    parser.add_argument("-o", "--output", default="autograder.zip", help="the zip to write")
    parser.add_argument(
        "--visibility", choices=VISIBILITIES, default="visible",
        help="when students see each question's result (Gradescope's)",
    )  # fmt: skip
    parser.add_argument(
        "--sandbox", choices=SANDBOX_MODES, default="auto",
        help="bubblewrap in the container: auto (where it works), required, off",
    )  # fmt: skip
    parser.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT)
    parser.add_argument("--total-timeout", type=int, default=DEFAULT_TOTAL_TIMEOUT)
    return parser


def main(argv: list[str]) -> int:
    """``course autograder EXERCISE -o ZIP``."""
    args = _parser().parse_args(argv)
    try:
        names = build_autograder(
            Path(args.exercise), Path(args.output), args.visibility, args.sandbox,
            args.cell_timeout, args.total_timeout,
        )  # fmt: skip
    except GradeInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output} ({len(names)} files, {size / 2**20:.1f} MiB): upload it as the "
          "assignment's autograder; it holds the solution, keep it private")  # fmt: skip
    return 0


if __name__ == "__main__":
    # run_autograder: python -m course_utils.grading.autograder [ROOT]
    root = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get(ROOT_ENV, DEFAULT_ROOT))
    out = run(root)
    print(f"autograder: score {format_points(out['score'])}, {len(out['tests'])} tests")
    sys.exit(0)
