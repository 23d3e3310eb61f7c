"""`course release DIR`: the student-facing course, without solutions or hidden tests.

The release of this checkout is read file by file (its own grep, not only
``check_release``'s), its package imported, its ``make lab`` dry-run, and its exercise 00
self-graded with its own package and default source: 0 points on every question.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_utils import cli
from course_utils.grading import release

ROOT = Path(__file__).resolve().parents[1]
LINE_MARKER = re.compile(r"^\s*(### BEGIN SOLUTION|### END SOLUTION|# HIDDEN TEST)", re.M)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("release") / "student"
    assert cli.main(["release", str(target), "--root", str(ROOT)]) == 0
    return target


def _env(released: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(released)}


def test_the_release_holds_what_students_use_and_no_instructor_file(released):
    top = {p.name for p in released.iterdir()}
    assert top == set(release.RELEASED)
    assert not top & {"solutions", "tests", "tools", "e2e", "docs", ".git", "conftest.py"}
    for folder in ("lectures", "exercises"):
        assert sorted(p.name for p in (released / folder).glob("*.ipynb")) == sorted(
            p.name for p in (ROOT / folder).glob("*.ipynb")
        )
    files = [p for p in released.rglob("*") if p.is_file()]
    assert not [p for p in files if "__pycache__" in p.parts or "grader_cases" in p.parts]
    assert not [p for p in files if p.name.startswith("mutation")]
    leaks = []
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if path.suffix == ".ipynb":
            for cell in json.loads(text)["cells"]:
                source = (
                    "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                )
                if "hidden" in cell["metadata"].get("tags", []) or LINE_MARKER.search(source):
                    leaks.append(path)
        elif LINE_MARKER.search(text):
            leaks.append(path)
    assert leaks == []
    assert release.check_release(released) == []
    assert "Student release" in (released / "README.md").read_text()


def test_the_released_package_imports_and_make_lab_is_there(released):
    proc = subprocess.run(
        [sys.executable, "-c", "import course_utils, course_utils.grading, course_utils.viz; "
         "print(course_utils.__file__)"],
        env=_env(released), cwd=released, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(released)
    dry = subprocess.run(
        ["make", "-n", "lab", "PYTHON=python3"], cwd=released, capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stderr
    assert "pip install -c constraints.txt -e '.[lab,test]'" in dry.stdout
    assert "jupyter lab" in dry.stdout and (released / "lectures/00_foundations.ipynb").is_file()


def test_check_release_names_every_leak(tmp_path):
    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / "a.py").write_text("def f():\n    ### BEGIN SOLUTION\n    return 1\n")
    nb = {"cells": [{"cell_type": "code", "source": ["# HIDDEN TEST f\n", "check(1)"],
                     "metadata": {"tags": ["graded", "hidden"]}}]}  # fmt: skip
    (tmp_path / "exercises" / "b.ipynb").write_text(json.dumps(nb))
    (tmp_path / "exercises" / "c.py").write_text("# %%\n# HIDDEN TEST f\ncheck(1)\n")
    (tmp_path / "tests" / "grader_cases").mkdir(parents=True)
    (tmp_path / "tests" / "grader_cases" / "x.py").write_text("")
    (tmp_path / "README.md").write_text("Hidden tests start `# HIDDEN TEST name` (mid-line).\n")
    assert release.check_release(tmp_path) == [
        "exercises/a.py:2: '### BEGIN SOLUTION'",
        "exercises/b.ipynb: cell 0 is a solution or hidden test",
        "exercises/c.py:2: '# HIDDEN TEST'",
        "tests: instructor-only",
    ]


def test_release_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(release.ReleaseError, match="DIR: expected a new or empty folder"):
        release.release(ROOT, tmp_path / "full")
    with pytest.raises(release.ReleaseError, match="DIR: expected a folder outside"):
        release.release(ROOT, ROOT / "lectures" / "student")
    assert not (ROOT / "lectures" / "student").exists()


def test_a_release_with_the_solutions_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "RELEASED", (*release.RELEASED, "solutions"))
    with pytest.raises(release.ReleaseError, match="solutions: instructor-only"):
        release.release(ROOT, tmp_path / "student")


@pytest.mark.notebook
def test_the_released_exercise_earns_nothing_with_the_released_package(released, tmp_path):
    """And a copy whose test cells say ``pass`` is graded against the release's canonical
    cells (the default source of a release, which has no solutions/): 0 too."""
    nb = json.loads((released / "exercises" / "00_foundations.ipynb").read_text())
    for cell in nb["cells"]:
        if "graded" in cell["metadata"].get("tags", []):
            cell["source"] = "pass"
    (released / "mine_00_foundations.ipynb").write_text(json.dumps(nb))
    grades = tmp_path / "grades.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils.cli", "grade", "exercises/00_foundations.ipynb",
         "mine_00_foundations.ipynb", "--csv", str(grades)],
        env=_env(released), cwd=released, capture_output=True, text=True,
    )  # fmt: skip
    (released / "mine_00_foundations.ipynb").unlink()
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(grades, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for row in rows:
        questions = {k: v for k, v in row.items() if k.startswith("00_foundations:")}
        assert len(questions) == 4 and set(questions.values()) == {"0"}, row
        assert float(row["possible"]) == 8
