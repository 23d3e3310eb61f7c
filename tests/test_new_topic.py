"""A new topic touches only its own files plus one line of ``registry.TOPICS`` (and its
section of docs/EXERCISE_API.md, a contract written on purpose; docs/DESIGN.md, "Add a
topic"): a throwaway topic, built in a copy of the course, is
picked up by ``course build`` (notebooks, exercises, every README table), ``course
pretrain``, ``course bench``, the layering test and the grader tests with no other edit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("new_topic")  # one copy of the course, on one worker

MODULE = '''\
"""A throwaway topic (tests/test_new_topic.py): ``Doubler``, its recipe and a benchmark."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from course_utils import checkpoints
from course_utils.registry import benchmark, recipe


class Doubler(nn.Module):
    def __init__(self, width: int = 2) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((width,), 2.0))


@recipe("doubler", model="course_utils.throwaway:Doubler", summary="a doubler",
        numbers="error {error:.1f}")
def pretrain_doubler(out: Path) -> dict[str, float]:
    metrics = {"error": 0.0}
    checkpoints.save(Doubler(), out, name="doubler", config={"width": 2},
                     pixel_range=(0.0, 1.0), metrics=metrics)
    return metrics


@benchmark("throwaway", summary="a benchmark of the throwaway topic")
def bench_throwaway() -> None:
    print("measured")
'''

LECTURE = """\
# %% [markdown]
# # Lecture 97: a throwaway topic

# %%
from course_utils.throwaway import Doubler

print(Doubler().scale)
"""

SOLUTION = """\
# %% [markdown]
# # Exercises 97: a throwaway topic

# %%
import torch

from course_utils.grading import check_close


# %%
def double(x: torch.Tensor) -> torch.Tensor:
    \"\"\"Twice ``x``: [N] -> [N].\"\"\"
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION


# %% tags=["graded"] points=1
# TEST double (1 point)
check_close(double(torch.ones(3)), torch.full((3,), 2.0), "double(ones)",
            mistakes={"multiply by two, do not add two": torch.full((3,), 3.0)})
"""

ROW = """\
exercises = "`double`"
learn = "how a topic joins the course"
run_time = "lecture 1 s, solution 1 s"
"""

CASES = """\
SOLUTION = "solutions/97_throwaway.py"
NAME = "97_throwaway"
POINTS = {"double": 1}
WRONG = {"double": [("adds two", "return x + 2", "multiply by two")]}
ALTERNATIVE_CORRECT = {"double": "return x + x"}
"""

COPIED = ("course_utils", "lectures", "solutions", "exercises", "tests", "docs")


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A copy of the course with the throwaway topic's files and its one registry line."""
    root = tmp_path_factory.mktemp("course")
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
    for name in COPIED:
        shutil.copytree(ROOT / name, root / name, ignore=ignore)
    for name in ("README.md", "pyproject.toml", "jupytext.toml", "conftest.py"):
        shutil.copy(ROOT / name, root / name)
    (root / "course_utils" / "throwaway.py").write_text(MODULE)
    (root / "lectures" / "97_throwaway.py").write_text(LECTURE)
    (root / "lectures" / "97_throwaway.toml").write_text(ROW)
    (root / "solutions" / "97_throwaway.py").write_text(SOLUTION)
    (root / "tests" / "grader_cases" / "throwaway.py").write_text(CASES)
    registry = root / "course_utils" / "registry.py"
    head, tail = registry.read_text().split("TOPICS = (\n", 1)
    topics, rest = tail.split("\n)\n", 1)
    registry.write_text(f'{head}TOPICS = (\n{topics}\n    "throwaway",\n)\n{rest}')
    return root


def _run(course: Path, *args: str, timeout: int = 300) -> str:
    env = {**os.environ, "PYTHONPATH": str(course)}  # the copy's course_utils, not ours
    run = subprocess.run(
        [sys.executable, *args], cwd=course, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert run.returncode == 0, (args, run.stdout[-3000:], run.stderr[-3000:])
    return run.stdout


def test_pretrain_and_bench_list_the_new_topic_and_run_it(course):
    assert re.search(
        r"^\s+doubler\s+a doubler$",
        _run(course, "-m", "course_utils.cli", "pretrain", "--help"),
        re.M,
    )
    _run(course, "-m", "course_utils.cli", "pretrain", "doubler")
    assert (course / "course_utils" / "weights" / "doubler.pt").is_file()
    assert "throwaway    a benchmark" in _run(course, "-m", "course_utils.cli", "bench", "--help")
    assert "measured" in _run(course, "-m", "course_utils.cli", "bench", "throwaway")


def test_build_writes_its_notebooks_and_every_readme_table(course):
    if not (course / "course_utils" / "weights" / "doubler.pt").is_file():
        _run(course, "-m", "course_utils.cli", "pretrain", "doubler")
    _run(course, "-m", "course_utils.cli", "build")
    for path in (
        "lectures/97_throwaway.ipynb",
        "solutions/97_throwaway.ipynb",
        "exercises/97_throwaway.ipynb",
        "exercises/97_throwaway.py",
    ):
        assert (course / path).is_file(), path
    exercise = (course / "exercises" / "97_throwaway.py").read_text()
    assert "return 2 * x" not in exercise and "raise NotImplementedError()" in exercise
    readme = (course / "README.md").read_text()
    expected = [
        "| 97 | [`lectures/97_throwaway`](lectures/97_throwaway.ipynb) | "
        "[`exercises/97_throwaway`](exercises/97_throwaway.ipynb): `double` | "
        "how a topic joins the course | lecture 1 s, solution 1 s |",
        "| `throwaway` | A throwaway topic (tests/test_new_topic.py): `Doubler`, its recipe and a "
        "benchmark. |",
        "| `doubler` | a doubler | error 0.0 |",
        "| `97_throwaway` | [![Open In Colab]",
    ]
    for line in expected:
        assert line in readme, line
    topics = readme.split("<!-- topic modules")[1].split("<!-- end of topic modules")[0]
    assert topics.rstrip().endswith(
        "| `throwaway` | A throwaway topic (tests/test_new_topic.py):"
        " `Doubler`, its recipe and a benchmark. |"
    )
    _run(course, "-m", "course_utils.cli", "build", "--check")


def test_the_layering_and_grader_tests_pick_it_up(course):
    out = _run(course, "tests/test_imports.py")
    assert re.search(r"^topic\s+throwaway\s+checkpoints registry$", out, re.M), out
    out = _run(
        course,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-n",
        "0",
        "tests/test_imports.py",
        "tests/test_grader.py",
        "-k",
        "imports or 97_throwaway or every_exercise_set",
        "-m",  # a sandbox does not see a course under /tmp (its own /tmp is private)
        "not class_batch",
        "-rA",
        timeout=600,
    )
    passed = [
        "test_grader.py::test_each_known_mistake_fails_its_question_both_ways[97_throwaway-double-0]",
        "test_grader.py::test_alternative_correct_implementations_pass_both_ways[97_throwaway]",
        "test_grader.py::test_the_solution_passes_both_ways[97_throwaway]",
        "test_grader.py::test_every_exercise_set_has_its_cases",
        "test_imports.py::test_plumbing_never_imports_a_topic",
        "test_imports.py::test_no_module_imports_itself_through_others",
    ]
    for test in passed:
        assert f"PASSED tests/{test}" in out, (test, out[-2000:])


def test_the_checklist_names_the_files_this_test_writes():
    """docs/DESIGN.md, "Add a topic", says exactly what a new topic touches."""
    design = (ROOT / "docs" / "DESIGN.md").read_text()
    checklist = design.split("## Add a topic")[1].split("\n## ")[0]
    for path in (
        "lectures/NN_topic.py",
        "solutions/NN_topic.py",
        "course_utils/topic.py",
        "registry.TOPICS",
        "tests/grader_cases/topic.py",
        "lectures/NN_topic.toml",
    ):
        assert path in checklist, path
