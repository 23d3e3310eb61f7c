"""Every exercise set's grader, from its cases in ``tests/grader_cases/``: each known mistake
loses exactly its question's points with a hint that names it, alternative correct
implementations pass, and class grading (sandboxed, judged outside, hidden tests included)
gives the same verdicts. Everything runs through `course grade`'s own code path.
(Unsolved = 0 and solution = full marks hold for every set: test_exercise_sets.py.)

One class per set, so that pytest-xdist's ``--dist loadscope`` spreads the sets over its
workers; a new set adds its cases module and one class here.
"""

from __future__ import annotations

import re
from types import ModuleType

import graderlib
import pytest
from grader_cases import autoregressive, diffusion, flow_matching, flows, foundations, gan, vae

from course_utils import cli
from course_utils.grading import notebooks


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "round_index" in metafunc.fixturenames:
        metafunc.parametrize("round_index", graderlib.rounds(metafunc.cls.cases.WRONG))


class GraderSet:
    cases: ModuleType

    def test_each_known_mistake_loses_exactly_its_question(self, root, tmp_path, round_index):
        c = self.cases
        solution = (root / c.SOLUTION).read_text()
        graderlib.check_round(
            solution, tmp_path, c.NAME, c.POINTS, c.WRONG, round_index, c.DEPENDS, c.MAY_AFFECT
        )

    def test_alternative_correct_implementations_pass(self, root, tmp_path):
        c = self.cases
        graderlib.check_alternatives(
            (root / c.SOLUTION).read_text(), tmp_path, c.NAME, c.POINTS, c.ALTERNATIVE_CORRECT
        )

    def test_class_grading_agrees_on_every_variant(self, root, tmp_path):
        c = self.cases
        graderlib.check_class_grading_agrees(
            (root / c.SOLUTION).read_text(), tmp_path, c.NAME, c.POINTS, c.WRONG,
            c.ALTERNATIVE_CORRECT, c.DEPENDS, c.MAY_AFFECT,
        )  # fmt: skip


class TestFoundations(GraderSet):
    cases = foundations


class TestVae(GraderSet):
    cases = vae


class TestGan(GraderSet):
    cases = gan


class TestFlows(GraderSet):
    cases = flows


class TestDiffusion(GraderSet):
    cases = diffusion


class TestFlowMatching(GraderSet):
    cases = flow_matching


class TestAutoregressive(GraderSet):
    cases = autoregressive


def test_a_cell_that_hangs_times_out_and_grading_goes_on(root, tmp_path):
    text = graderlib.with_body(
        (root / foundations.SOLUTION).read_text(), "gaussian_kl", "while True:\n    pass"
    )
    rows = graderlib.grade_text(text, tmp_path, foundations.NAME, cell_timeout=10)
    assert rows["gaussian_kl"]["earned"] == 0 and "Timeout" in rows["gaussian_kl"]["hint"]
    assert rows["kl_divergence"]["earned"] == 2 and rows["js_divergence"]["earned"] == 2


def test_grade_reports_bad_files_in_one_line(tmp_path, capsys):
    (tmp_path / "broken.ipynb").write_text("{not json")
    (tmp_path / "notes.txt").write_text("hello")
    for name, message in [
        ("missing.ipynb", "no such file"),
        ("notes.txt", "expected a Jupyter notebook (.ipynb), got '.txt'"),
        ("broken.ipynb", "not a valid notebook"),
    ]:
        with pytest.raises(notebooks.GradeInputError, match=re.escape(message)):
            notebooks.read_notebook(tmp_path / name)
        assert cli.main(["grade", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
