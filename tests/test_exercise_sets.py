"""Contracts every exercise set holds (docs/DESIGN.md, 'Tests'), each
notebook self-graded once (``course grade NB``, a kernel under nbval):

* the unsolved exercise fails every graded cell and no other cell before its first graded
  one, so it scores 0, each function's question with its own NotImplementedError;
* its solution runs without any error and scores full marks.

(The sets' graders, planted mistakes included: tests/test_grader.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from course_utils import build
from course_utils.grading import selfgrade

ROOT = Path(__file__).resolve().parents[1]
SETS = sorted(p.stem for p in (ROOT / "solutions").glob("*.py"))


def test_there_is_an_exercise_set_per_solution():
    assert SETS and SETS == sorted(p.stem for p in (ROOT / "exercises").glob("*.ipynb"))


@pytest.mark.notebook
@pytest.mark.parametrize("name", SETS)
def test_unsolved_exercise_scores_zero_and_fails_only_at_graded_cells(name):
    result = selfgrade.grade_notebook(ROOT / "exercises" / f"{name}.ipynb")
    assert result.status == "ok", result.reason
    expected = build.graded_questions((ROOT / "solutions" / f"{name}.py").read_text())
    assert [(r["question"], r["points"]) for r in result.rows] == expected
    assert all(not r["passed"] and r["earned"] == 0 for r in result.rows)
    script = (ROOT / "exercises" / f"{name}.py").read_text()
    for row in result.rows:
        if f"def {row['question']}(" in script:  # a function's own stub, not a later error
            assert row["hint"].startswith("NotImplementedError"), row
    graded = [c["cell"] for c in result.cells if c["question"] is not None]
    early = [c for c in result.cells if c["cell"] < min(graded) and not c["passed"]]
    assert early == [], early


@pytest.mark.notebook
@pytest.mark.parametrize("name", SETS)
def test_solution_runs_cleanly_and_scores_full_marks(name):
    result = selfgrade.grade_notebook(ROOT / "solutions" / f"{name}.ipynb")
    assert result.status == "ok", result.reason
    assert [c for c in result.cells if not c["passed"]] == []
    assert result.earned == result.possible > 0
