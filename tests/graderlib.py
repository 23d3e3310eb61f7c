"""Planted mistakes in a solution script (``tests/grader_cases/``), for the end-to-end
class batches of tests/test_grader.py.

A set's grader cases list, per question, wrong implementations (the mistake, the body
that replaces the function's solution region, and words its hint must contain). Round i
plants the i-th mistake of every question at once; each planted question must score 0
with its hint, questions that build on it (``depends``) score 0 too, questions that may
or may not survive it (``may_affect``: an end-to-end run that a harmless mistake still
passes) score 0 or full marks, and every other question keeps its points.
"""

from __future__ import annotations

from course_utils.grading.variants import with_body

Wrong = dict[str, list[tuple[str, str, str]]]


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


def with_alternatives(solution: str, alternatives: dict[str, str]) -> str:
    text = solution
    for question, body in alternatives.items():
        text = with_body(text, question, body)
    return text


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
