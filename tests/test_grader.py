"""Every exercise set's grader, from its cases in ``tests/grader_cases/``.

**Function level** (in-process, ``course_utils.grading.variants``): each known mistake,
planted alone in its function, fails its question with a hint that names it, both
self-grading's way (the test cells' checks called directly) and class grading's (the split
cells, the records, the judge), and the two agree; the alternative correct
implementations and the solution itself pass both ways. Visible and hidden tests run.

**End to end** (one sandboxed class per set, ``course grade FOLDER``'s code): the solution,
the blank exercise, the alternatives, and each round of planted mistakes (the i-th mistake
of every question at once: the questions that train a model then meet them). The
solution earns full marks, the exercise 0 with each function's own NotImplementedError,
each round loses exactly its planted questions and those that build on them, the
alternative full marks.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from types import ModuleType

import graderlib
import nbformat
import pytest

from course_utils import build
from course_utils.grading import checks, classgrade, variants, worker

ROOT = Path(__file__).resolve().parents[1]
SETS = sorted(p.stem for p in (ROOT / "solutions").glob("*.py"))
CASES: dict[str, ModuleType] = {}
for _module in sorted((ROOT / "tests" / "grader_cases").glob("[!_]*.py")):
    _cases = importlib.import_module(f"grader_cases.{_module.stem}")
    CASES[_cases.NAME] = _cases


@functools.cache
def exercise_set(name: str) -> variants.ExerciseSet:
    """The set's solution, run once per worker."""
    return variants.ExerciseSet((ROOT / "solutions" / f"{name}.py").read_text(), seed=12345)


def test_every_exercise_set_has_its_cases():
    assert SETS and sorted(CASES) == SETS
    for name, cases in CASES.items():
        assert cases.SOLUTION == f"solutions/{name}.py"
        assert cases.POINTS == dict(build.graded_questions((ROOT / cases.SOLUTION).read_text()))
        known = set(exercise_set(name).functions)
        assert set(cases.WRONG) <= known and set(cases.ALTERNATIVE_CORRECT) <= known


# ------------------------------------------------------------------ function level

WRONG = [
    pytest.param(name, question, i, id=f"{name}-{question}-{i}")
    for name, cases in CASES.items()
    for question, variants_ in cases.WRONG.items()
    for i in range(len(variants_))
]


@pytest.mark.parametrize("name", SETS)
def test_the_solution_passes_both_ways(name):
    verdicts = exercise_set(name).reference
    assert set(verdicts) == set(exercise_set(name).functions)
    failed = {
        q: (v.hint, v.class_hint) for q, v in verdicts.items() if not (v.passed and v.class_passed)
    }
    assert failed == {}


HIDDEN_SEEDS = 300  # grading seeds per hidden test


@pytest.mark.parametrize("name", SETS)
def test_the_hidden_tests_pass_the_solution_whatever_the_seed(name):
    """Class grading draws a fresh seed for every run, and one seed serves the whole class:
    a hidden test that an honest answer fails for some seeds costs everyone its points in
    that run (monte_carlo_kl's fixed tolerance, tighter than 5 standard errors of its
    estimate for some parameters, failed the solution for grading seeds 264, 619 and 945)."""
    solved = exercise_set(name)
    failed: dict[str, list[int]] = {}
    with checks.solution_from(solved.namespace):
        for cell in solved.cells:
            if cell.test is None or not cell.test.endswith(":hidden"):
                continue
            for seed in range(HIDDEN_SEEDS):
                if worker.run_test(cell.source, solved.namespace, cell.test, seed, 60) is not None:
                    failed.setdefault(cell.test, []).append(seed)
    assert failed == {}


@pytest.mark.parametrize("name, question, index", WRONG)
def test_each_known_mistake_fails_its_question_both_ways(name, question, index):
    mistake, body, hint = CASES[name].WRONG[question][index]
    verdicts = exercise_set(name).grade(question, body)
    v = verdicts[question]
    assert not v.passed, f"'{mistake}' passed the checks called directly"
    assert not v.class_passed, f"'{mistake}' passed class grading"
    assert hint in v.hint, (mistake, v.hint)
    assert hint in v.class_hint, (mistake, v.class_hint)
    others = {q: (w.passed, w.class_passed) for q, w in verdicts.items() if q != question}
    assert all(a and b for a, b in others.values()), others  # a shared cell's other question


@pytest.mark.parametrize("name", SETS)
def test_alternative_correct_implementations_pass_both_ways(name):
    for question, body in CASES[name].ALTERNATIVE_CORRECT.items():
        v = exercise_set(name).grade(question, body)[question]
        assert v.passed and v.class_passed, (question, v.hint, v.class_hint)


# ------------------------------------------------------------------ end to end


def _import_the_course_answers(name: str, path: Path) -> list[str]:
    """The unsolved exercise with ``from course_utils.<module> import f`` after each stub
    ``f`` that the course package defines too (the answer a student could import); written
    to ``path`` when there is one. Returns the functions imported."""
    import ast

    import course_utils

    package = Path(course_utils.__file__).parent
    modules: dict[str, str] = {}
    for source in sorted(package.rglob("*.py")):
        module = ".".join(("course_utils", *source.relative_to(package).with_suffix("").parts))
        for node in ast.parse(source.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                modules.setdefault(node.name, module)
    nb = nbformat.read(ROOT / "exercises" / f"{name}.ipynb", as_version=4)
    imported = []
    for function in exercise_set(name).functions:
        if function in modules:
            cell = next(c for c in nb.cells if f"def {function}(" in c.source)
            line = f"from {modules[function]} import {function}  # noqa: F811"
            nb.cells.insert(nb.cells.index(cell) + 1, nbformat.v4.new_code_cell(line))
            imported.append(function)
    if imported:
        nbformat.write(nb, path)
    return imported


@pytest.mark.class_batch
@pytest.mark.parametrize("name", SETS)
def test_one_class_per_set_is_graded_as_its_cases_say(name, tmp_path):
    c = CASES[name]
    solution = (ROOT / c.SOLUTION).read_text()
    folder = tmp_path / "class"
    folder.mkdir()
    texts = {
        f"round{i}": graderlib.planted(solution, c.WRONG, i)[0] for i in graderlib.rounds(c.WRONG)
    }
    texts["alternative"] = graderlib.with_alternatives(solution, c.ALTERNATIVE_CORRECT)
    for student, text in texts.items():
        notebook = build.notebook_text(build.without_hidden_tests(text), student)
        (folder / f"{student}_{name}.ipynb").write_text(notebook)
    for student, kind in (("solution", "solutions"), ("blank", "exercises")):
        (folder / f"{student}_{name}.ipynb").write_bytes(
            (ROOT / kind / f"{name}.ipynb").read_bytes()
        )
    imported = _import_the_course_answers(name, folder / f"importer_{name}.ipynb")
    # Training cells (set 02's WGAN-GP ring) take ~30 s alone; with other sandboxes on the
    # same two cores, the default 60 s per cell is too tight.
    results, _ = classgrade.grade_folder(
        folder, ROOT / "exercises", jobs=2, seed=12345, cell_timeout=240
    )
    graded = {r.student: {row["question"]: row for row in r.rows} for r in results}
    students = [*texts, "solution", "blank", *(["importer"] if imported else [])]
    assert {r.student: r.status for r in results} == dict.fromkeys(students, "ok")
    for question in imported:  # the course's same-named function raises in the sandbox
        row = graded["importer"][question]
        assert row["earned"] == 0 and "not available while the class is graded" in row["hint"], row
    if imported:
        assert sum(row["earned"] for row in graded["importer"].values()) == 0
    assert {q: r["earned"] for q, r in graded["solution"].items()} == c.POINTS
    functions = set(exercise_set(name).functions)
    for question, row in graded["blank"].items():
        assert row["earned"] == 0, (question, row)
        if question in functions:
            assert row["hint"].startswith("NotImplementedError"), (question, row["hint"])
    for i in graderlib.rounds(c.WRONG):
        where = graderlib.planted(solution, c.WRONG, i)[1]
        graderlib.assert_round(graded[f"round{i}"], c.POINTS, where, c.DEPENDS, c.MAY_AFFECT)
    assert {q: r["earned"] for q, r in graded["alternative"].items()} == c.POINTS
