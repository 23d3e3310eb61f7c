"""Class grading that cannot be gamed (issue: `course grade` over a folder of submissions).

A fixture class is generated from exercise 00's notebooks: one submission per way a
notebook can go wrong. Each must get its exact score and status, the batch must finish,
no submission file may change, and a re-run must give the same scores."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re

import graderlib
import nbformat
import pytest
from grader_cases.foundations import ALTERNATIVE_CORRECT

from course_utils import build, cli
from course_utils.grading import classgrade, notebooks, report, selfgrade

NAME = "00_foundations"


def _code_cell_defining(nb, function):
    return next(c for c in nb.cells if c.cell_type == "code" and f"def {function}(" in c.source)


def _test_cells(nb):
    return [c for c in nb.cells if "graded" in c.metadata.get("tags", [])]


def _make_class(root, folder):
    solved = nbformat.read(root / "solutions" / f"{NAME}.ipynb", as_version=4)
    blank = nbformat.read(root / "exercises" / f"{NAME}.ipynb", as_version=4)
    subs = {}

    def variant(base, edit=None):
        nb = nbformat.from_dict(json.loads(json.dumps(base)))
        if edit:
            edit(nb)
        return nb

    def body(nb, function, code):
        cell = _code_cell_defining(nb, function)
        cell.source = re.sub(
            r"(### BEGIN SOLUTION\n).*?(\n\s*### END SOLUTION)",
            lambda m: m[1] + code + m[2],
            cell.source,
            flags=re.S,
        )

    subs["alice"] = variant(solved)
    subs["bob"] = variant(blank)
    subs["carol"] = variant(
        blank, lambda nb: [setattr(c, "source", "pass") for c in _test_cells(nb)]
    )
    subs["dave"] = variant(solved, lambda nb: nb.cells.remove(_test_cells(nb)[-1]))
    subs["erin"] = variant(
        solved,
        lambda nb: setattr(
            _code_cell_defining(nb, "kl_divergence"),
            "source",
            _code_cell_defining(nb, "kl_divergence").source.replace(
                "def kl_divergence(", "def kl_div("
            ),
        ),
    )
    subs["frank"] = variant(
        solved, lambda nb: body(nb, "gaussian_kl", "    while True:\n        pass")
    )
    subs["grace"] = variant(
        solved, lambda nb: body(nb, "monte_carlo_kl", "    import os\n    os._exit(1)")
    )
    subs["heidi"] = variant(solved, lambda nb: body(nb, "js_divergence", "    return (p +* q"))
    subs["ivan"] = variant(
        solved, lambda nb: nb.cells.insert(3, nbformat.v4.new_code_cell('print("x" * 50_000_000)'))
    )
    subs["peggy"] = variant(
        solved, lambda nb: body(nb, "js_divergence", "    import ctypes\n    ctypes.string_at(0)")
    )

    def impersonate(nb):  # an unsolved notebook with a forged, always-passing copy of a test
        fake = nbformat.v4.new_code_cell("# TEST kl_divergence (2 points)\npass")
        fake.metadata = {"tags": ["graded"], "points": 2}
        nb.cells.append(fake)
        _test_cells(nb)[0].source = "pass"

    subs["oscar"] = variant(blank, impersonate)
    alternative = build.notebook_text(
        _alternative_text(root), "alternative"
    )  # a solution written differently: torch.distributions etc.
    # An error message that tries to redraw the terminal, with a bidi override and a
    # lone surrogate (which no UTF-8 CSV can hold).
    redraw = '    raise ValueError("\\x1b[2J\\x1b[H\\r\\udcff\\u202etotal 8 8")'
    subs["trent"] = variant(solved, lambda nb: body(nb, "js_divergence", redraw))
    # a code cell that hangs before it defines js_divergence: the test then misses the name
    subs["uma"] = variant(
        solved,
        lambda nb: setattr(
            _code_cell_defining(nb, "js_divergence"),
            "source",
            "while True:\n    pass\n" + _code_cell_defining(nb, "js_divergence").source,
        ),
    )
    subs["=1+2"] = variant(solved)  # a name a spreadsheet would run as a formula
    folder.mkdir()
    for student, nb in subs.items():
        nbformat.write(nb, folder / f"{student}_{NAME}.ipynb")
    old = nbformat.from_dict(json.loads(json.dumps(solved)))  # nbformat 4.4: no cell ids
    old.nbformat_minor = 4
    for cell in old.cells:
        cell.pop("id", None)
    (folder / f"nina_{NAME}.ipynb").write_text(json.dumps(old))
    v3 = nbformat.convert(nbformat.from_dict(json.loads(json.dumps(old))), 3)
    (folder / f"olga_{NAME}.ipynb").write_text(json.dumps(v3))
    (folder / "victor").mkdir()  # <student>/<exercise>: the folder names the student
    nbformat.write(solved, folder / "victor" / f"walter_{NAME}.ipynb")
    nbformat.write(solved, folder / os.fsdecode(f"zo\xffe_{NAME}.ipynb".encode("latin-1")))
    (folder / f"mallory_{NAME}.ipynb").write_text(alternative)
    (folder / f"judy_{NAME}.ipynb").write_text('{"cells": [ broken json')
    (folder / "notes.ipynb").write_text("{}")  # matches no exercise: skipped, reported


def _alternative_text(root):
    text = (root / "solutions" / f"{NAME}.py").read_text()
    for question, code in ALTERNATIVE_CORRECT.items():
        text = graderlib.with_body(text, question, code)
    return text


EXPECTED = {  # student: (status, total of 8, points per question)
    "alice": ("ok", 8, None),
    "bob": ("ok", 0, None),
    "carol": ("ok", 0, None),  # tests replaced by `pass` gain nothing
    "dave": ("ok", 8, None),  # deleted test cell: the canonical one is put back
    "erin": ("ok", 6, {"kl_divergence": 0}),
    "frank": ("timeout", 6, {"gaussian_kl": 0}),
    "grace": ("crashed", 4, {"monte_carlo_kl": 0, "js_divergence": 0}),
    "heidi": ("ok", 6, {"js_divergence": 0}),
    "ivan": ("ok", 8, None),
    "judy": ("invalid", 0, None),
    "mallory": ("ok", 8, None),
    "oscar": ("ok", 0, None),  # a forged test cell neither earns nor overrides points
    "peggy": ("crashed", 6, {"js_divergence": 0}),
    "trent": ("ok", 6, {"js_divergence": 0}),
    "uma": ("timeout", 6, {"js_divergence": 0}),
    "'=1+2": ("ok", 8, None),  # escaped in the CSV
    "nina": ("ok", 8, None),  # nbformat 4.4
    "olga": ("ok", 8, None),  # nbformat 3
    "victor": ("ok", 8, None),  # victor/walter_00_foundations.ipynb is victor's
    "zoe": ("ok", 8, None),  # a file name that is not UTF-8: b"zo\xffe_..."
}


def _hashes(folder):
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    folder = tmp_path_factory.mktemp("class") / "submissions"
    _make_class(root, folder)
    before = _hashes(folder)
    csv_path = folder.parent / "grades.csv"
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = cli.main([
            "grade", str(folder), "--source", str(root / "exercises"), "--csv", str(csv_path),
            "--jobs", "2", "--cell-timeout", "20",
        ])  # fmt: skip
    stdout = out.getvalue()
    after = _hashes(folder)
    with csv_path.open() as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return {
        "code": code,
        "rows": rows,
        "before": before,
        "after": after,
        "folder": folder,
        "root": root,
        "stdout": stdout,
    }


def test_batch_finishes_and_reports_every_submission(graded_class):
    assert graded_class["code"] == 0
    assert set(graded_class["rows"]) == set(EXPECTED)


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_submission_gets_its_exact_score_and_status(graded_class, student):
    status, total, per_question = EXPECTED[student]
    row = graded_class["rows"][student]
    assert row["status"] in report.STATUSES
    assert (row["status"], int(row["total"]), int(row["possible"])) == (status, total, 8), row
    for question, earned in (per_question or {}).items():
        assert row[f"{NAME}:{question} (2)"] == str(earned)


def test_reasons_are_clear(graded_class):
    rows = graded_class["rows"]
    assert "not a valid notebook" in rows["judy"]["reason"]
    assert rows["grace"]["reason"] == rows["peggy"]["reason"]
    assert "process died" in rows["grace"]["reason"]
    assert "per-cell time limit" in rows["frank"]["reason"]
    assert "per-cell time limit" in rows["uma"]["reason"]
    assert rows["heidi"]["status"] == "ok"  # a syntax error is the student's, not a fault


def test_student_text_cannot_redraw_the_terminal(graded_class):
    assert "\x1b" not in graded_class["stdout"] and "\r" not in graded_class["stdout"]
    assert "ValueError: [2J[Htotal 8 8" not in graded_class["stdout"]
    assert "ValueError: total 8 8" in " ".join(graded_class["stdout"].split())


def test_submissions_are_never_modified(graded_class):
    assert graded_class["before"] == graded_class["after"]


def test_a_missing_code_cell_scores_zero_with_its_reason(graded_class):
    root, folder = graded_class["root"], graded_class["folder"]
    result = selfgrade.grade_notebook(
        folder / f"erin_{NAME}.ipynb", root / "exercises" / f"{NAME}.ipynb"
    )
    kl = next(r for r in result.rows if r["question"] == "kl_divergence")
    assert kl["earned"] == 0 and "no cell defines kl_divergence()" in kl["hint"]


def test_regrading_gives_identical_scores(graded_class):
    root, folder = graded_class["root"], graded_class["folder"]
    results, _ = classgrade.grade_folder(folder, root / "exercises", jobs=2, cell_timeout=20)
    again = {report.csv_cell(r.student): (r.status, r.earned) for r in results}
    first = {s: (r["status"], float(r["total"])) for s, r in graded_class["rows"].items()}
    assert again == first


def test_canonical_cells_replace_and_restore_tests(root):
    exercise = nbformat.read(root / "exercises" / f"{NAME}.ipynb", as_version=4)
    tampered = nbformat.from_dict(json.loads(json.dumps(exercise)))
    tests = _test_cells(tampered)
    tests[0].source = "pass"  # weakened
    tampered.cells.remove(tests[1])  # deleted
    student_cell = nbformat.v4.new_code_cell("print('my own cell')")
    tampered.cells.insert(2, student_cell)  # added by the student
    merged, missing = notebooks.with_canonical_tests(tampered, exercise)
    canonical = [c.source for c in _test_cells(exercise)]
    assert [c.source for c in _test_cells(merged)] == canonical
    assert "print('my own cell')" in [c.source for c in merged.cells]
    assert missing == {}
    # each restored test sits right after the code cell it tests
    for test in _test_cells(merged):
        index = next(i for i, c in enumerate(merged.cells) if c is test)
        assert "def " in merged.cells[index - 1].source


def test_find_submissions_pairs_names_and_reports_strays(root, tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "carol").mkdir()
    names = ("bob_01_vae.ipynb", "alice/00_foundations.ipynb", "carol/bob_01_vae.ipynb", "x.ipynb")
    for name in names:
        (tmp_path / name).write_text("{}")
    found, unmatched = classgrade.find_submissions(tmp_path, root / "exercises")
    assert [(s.student, s.exercise.stem) for s in found] == [
        ("alice", "00_foundations"),
        ("bob", "01_vae"),
        ("carol", "01_vae"),  # the folder names the student, not the file
    ]
    assert unmatched == [tmp_path / "x.ipynb"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(notebooks.GradeInputError, match="no exercise notebooks"):
        classgrade.find_submissions(tmp_path, tmp_path / "empty")
    with pytest.raises(ValueError, match="jobs"):
        classgrade.grade_folder(tmp_path, root / "exercises", jobs=0)


def test_total_timeout_kills_the_run_and_keeps_what_was_earned(root, tmp_path):
    text = (root / "solutions" / f"{NAME}.py").read_text()
    slow = graderlib.with_body(text, "js_divergence", "import time\ntime.sleep(120)")
    path = tmp_path / f"slow_{NAME}.ipynb"
    path.write_text(build.notebook_text(slow, "slow"))
    result = selfgrade.grade_notebook(
        path, root / "exercises" / f"{NAME}.ipynb", cell_timeout=120, total_timeout=40
    )
    assert result.status == "timeout" and "total time limit of 40 s" in result.reason
    earned = {r["question"]: r["earned"] for r in result.rows}
    assert earned == {"kl_divergence": 2, "gaussian_kl": 2, "monte_carlo_kl": 2, "js_divergence": 0}


def test_class_total_timeout_kills_the_sandbox_and_keeps_what_was_earned(root, tmp_path):
    text = (root / "solutions" / f"{NAME}.py").read_text()
    slow = graderlib.with_body(text, "js_divergence", "import time\ntime.sleep(120)")
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / f"slow_{NAME}.ipynb").write_text(build.notebook_text(slow, "slow"))
    [result], _ = classgrade.grade_folder(
        folder, root / "exercises", cell_timeout=120, total_timeout=30
    )
    assert result.status == "timeout" and "total time limit of 30 s" in result.reason
    earned = {r["question"]: r["earned"] for r in result.rows}
    assert earned == {"kl_divergence": 2, "gaussian_kl": 2, "monte_carlo_kl": 2, "js_divergence": 0}


def test_without_a_sandbox_class_grading_refuses_unless_told(root, tmp_path, monkeypatch, capsys):
    from course_utils.grading import sandbox

    folder = tmp_path / "subs"
    folder.mkdir()
    solved = root / "solutions" / f"{NAME}.ipynb"
    (folder / f"alice_{NAME}.ipynb").write_bytes(solved.read_bytes())
    monkeypatch.setattr(sandbox, "BWRAP", "bwrap-that-is-not-installed")
    args = ["grade", str(folder), "--source", str(root / "exercises")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "bubblewrap (bwrap) is not installed" in err and "--unsafe-no-sandbox" in err
    assert cli.main([*args, "--unsafe-no-sandbox"]) == 0
    out, err = capsys.readouterr()
    assert "can read the solutions" in err and "total                 8       8" in out
