"""Plant known mistakes in a solution script and grade it through `course grade`'s code,
both ways: self-grading (the student's own kernel) and class grading (sandboxed, judged
outside), which must agree on every variant.

A set's grader cases (``tests/grader_cases/``) list, per question, wrong implementations
(the mistake, the body that replaces the function's solution region, and words its hint
must contain). Round i plants the i-th mistake of every question at once; each planted
question must score 0 with its hint, questions that build on it (``depends``) score 0 too,
questions that may or may not survive it (``may_affect``: an end-to-end run that a
harmless mistake still passes) score 0 or full marks, and every other question keeps its
points.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from course_utils import build
from course_utils.grading import classgrade, selfgrade

ROOT = Path(__file__).resolve().parents[1]

Wrong = dict[str, list[tuple[str, str, str]]]


def with_body(solution: str, function: str, body: str) -> str:
    """The solution script with ``function``'s solution region replaced by ``body``."""
    start = solution.index(f"def {function}(")
    begin = solution.index("### BEGIN SOLUTION\n", start) + len("### BEGIN SOLUTION\n")
    end = solution.rindex("\n", 0, solution.index("### END SOLUTION", begin)) + 1
    return (
        solution[:begin]
        + textwrap.indent(textwrap.dedent(body).strip() + "\n", "    ")
        + solution[end:]
    )


def grade_text(text: str, tmp_path: Path, name: str, **kwargs) -> dict[str, dict]:
    """Build ``text`` into ``tmp_path/name.ipynb`` and grade it: question -> row."""
    path = tmp_path / f"{name}.ipynb"
    path.write_text(build.notebook_text(build.without_hidden_tests(text), "variant"))
    return {row["question"]: row for row in selfgrade.grade_notebook(path, **kwargs).rows}


def rounds(wrong: Wrong) -> range:
    return range(max(len(v) for v in wrong.values()))


def planted(solution: str, wrong: Wrong, round_index: int) -> tuple[str, dict[str, tuple]]:
    """The solution with the i-th mistake of every question, and what was planted where."""
    text, where = solution, {}
    for question, variants in wrong.items():
        if round_index < len(variants):
            mistake, body, hint = variants[round_index]
            text = with_body(text, question, body)
            where[question] = (mistake, hint)
    return text, where


def assert_round(
    rows: dict[str, dict],
    points: dict[str, float],
    where: dict[str, tuple],
    depends: dict[str, list[str]] | None = None,
    may_affect: dict[str, list[str]] | None = None,
) -> None:
    assert {q: r["points"] for q, r in rows.items()} == points
    dependents = {d for q in where for d in (depends or {}).get(q, [])}
    affected = {d for q in where for d in (may_affect or {}).get(q, [])} - dependents
    for question, full in points.items():
        row = rows[question]
        if question in where:
            mistake, hint = where[question]
            assert row["earned"] == 0, f"{question}: '{mistake}' was not caught"
            assert hint in row["hint"], (question, mistake, row["hint"])
        elif question in dependents:
            assert row["earned"] == 0, f"{question} should fail: it builds on a planted mistake"
        elif question in affected:
            assert row["earned"] in (0, full), (question, row)
        else:
            assert row["earned"] == full, (question, row["hint"])


def check_round(
    solution: str,
    tmp_path: Path,
    name: str,
    points: dict[str, float],
    wrong: Wrong,
    round_index: int,
    depends: dict[str, list[str]] | None = None,
    may_affect: dict[str, list[str]] | None = None,
) -> None:
    text, where = planted(solution, wrong, round_index)
    assert_round(grade_text(text, tmp_path, name), points, where, depends, may_affect)


def with_alternatives(solution: str, alternatives: dict[str, str]) -> str:
    text = solution
    for question, body in alternatives.items():
        text = with_body(text, question, body)
    return text


def check_alternatives(
    solution: str, tmp_path: Path, name: str, points: dict[str, float], alternatives: dict[str, str]
) -> None:
    rows = grade_text(with_alternatives(solution, alternatives), tmp_path, name)
    assert {q: r["earned"] for q, r in rows.items()} == points, rows


def check_class_grading_agrees(
    solution: str,
    tmp_path: Path,
    name: str,
    points: dict[str, float],
    wrong: Wrong,
    alternatives: dict[str, str],
    depends: dict[str, list[str]] | None = None,
    may_affect: dict[str, list[str]] | None = None,
) -> None:
    """Every round of planted mistakes and the alternative solution, graded as one class
    (sandboxed, judged outside, hidden tests included): the same verdicts as self-grading."""
    folder = tmp_path / "class"
    folder.mkdir()
    texts = {f"round{i}": planted(solution, wrong, i)[0] for i in rounds(wrong)}
    texts["alternative"] = with_alternatives(solution, alternatives)
    for student, text in texts.items():
        notebook = build.notebook_text(build.without_hidden_tests(text), student)
        (folder / f"{student}_{name}.ipynb").write_text(notebook)
    # Training cells (set 02's WGAN-GP ring) take ~30 s alone; under `make test`'s two
    # workers, each grading two sandboxes at once, the default 60 s per cell is too tight.
    results, _ = classgrade.grade_folder(
        folder, ROOT / "exercises", jobs=2, seed=12345, cell_timeout=240
    )
    graded = {r.student: {row["question"]: row for row in r.rows} for r in results}
    assert {r.student: r.status for r in results} == dict.fromkeys(texts, "ok")
    for i in rounds(wrong):
        where = planted(solution, wrong, i)[1]
        assert_round(graded[f"round{i}"], points, where, depends, may_affect)
    alternative = graded["alternative"]
    assert {q: r["earned"] for q, r in alternative.items()} == points, alternative
