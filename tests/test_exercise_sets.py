"""Contracts every exercise set holds (DESIGN.md, 'Contracts that tests hold'):

* the unsolved exercise notebook fails every graded cell and raises no other error before
  its first graded cell, so it scores 0;
* its solution notebook runs without any error and scores full marks.
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


@pytest.mark.parametrize("name", SETS)
def test_unsolved_exercise_scores_zero_and_fails_only_at_graded_cells(name):
    cells, stopped = selfgrade.run_notebook(ROOT / "exercises" / f"{name}.ipynb")
    assert stopped is None
    graded = [c for c in cells if c["question"] is not None]
    expected = build.graded_questions((ROOT / "solutions" / f"{name}.py").read_text())
    assert [(c["question"], c["points"]) for c in graded] == expected
    assert all(not c["passed"] and c["earned"] == 0 for c in graded)
    first_graded = min(c["cell"] for c in graded)
    early_failures = [c for c in cells if c["cell"] < first_graded and not c["passed"]]
    assert early_failures == [], early_failures


@pytest.mark.parametrize("name", SETS)
def test_solution_runs_cleanly_and_scores_full_marks(name):
    cells, stopped = selfgrade.run_notebook(ROOT / "solutions" / f"{name}.ipynb")
    assert stopped is None
    assert [c for c in cells if not c["passed"]] == []
    rows = selfgrade.grade_notebook(ROOT / "solutions" / f"{name}.ipynb").rows
    assert sum(r["earned"] for r in rows) == sum(r["points"] for r in rows) > 0
