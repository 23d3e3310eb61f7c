"""Class grading that cannot be gamed (issue: `course grade` over a folder of submissions).

A fixture class is generated from exercise 00's notebooks (tests/classbatch.py, graded
once with the attacks of tests/test_class_attacks.py): one submission per way a notebook
can go wrong. Each must get its exact score and status, the batch must finish, no
submission file may change, and a re-run must give the same scores. Self-grading's own
limits (a cell that hangs, a notebook past its total time) are checked on one notebook
each.
"""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest
from classbatch import NAME, TOTAL_TIMEOUT_S

from course_utils import build, cli
from course_utils.grading import classgrade, command, notebooks, report, selfgrade
from course_utils.grading.variants import with_body


def _test_cells(nb):
    return [c for c in nb.cells if "graded" in c.metadata.get("tags", [])]


EXPECTED = {  # student: (status, total of 8, points per question)
    "alice": ("ok", 8, None),
    "bob": ("ok", 0, None),
    "carol": ("ok", 0, None),  # tests replaced by `pass` gain nothing
    "dave": ("ok", 8, None),  # deleted test cell: the canonical one is put back
    "erin": ("ok", 6, {"kl_divergence": 0}),
    "frank": ("timeout", 6, {"gaussian_kl": 0}),
    "grace": ("crashed", 4, {"monte_carlo_kl": 0, "js_divergence": 0}),
    "heidi": ("ok", 6, {"js_divergence": 0}),
    "judy": ("invalid", 0, None),
    "mallory": ("ok", 8, None),
    "oscar": ("ok", 0, None),  # a forged test cell neither earns nor overrides points
    "peggy": ("crashed", 6, {"js_divergence": 0}),
    "trent": ("ok", 6, {"js_divergence": 0}),
    "uma": ("timeout", 6, {"js_divergence": 0}),
    "'=1+2": ("ok", 8, None),  # escaped in the CSV; nbformat 4.4
    "victor": ("ok", 8, None),  # victor/walter_00_foundations.ipynb is victor's; nbformat 3
    "zo<U+DCFF>e": ("ok", 8, None),  # a file name that is not UTF-8: b"zo\xffe_..."; prints 50 MB
    "lena": ("invalid", 0, None),  # a symbolic link to the solution
    "mike": ("invalid", 0, None),  # a symbolic link to alice's notebook
    "fifi": ("invalid", 0, None),  # a FIFO
    "alice<U+200B>": ("ok", 8, None),  # prints like alice without the escape
    "jose\u0301": ("ok", 8, None),  # josé, the accent a combining character
    "jos\u00e9 (2)": ("ok", 0, None),  # josé, the blank exercise: told apart
    "sam": ("timeout", 6, {"js_divergence": 0}),  # cells under their limit, past the total
}


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_batch_finishes_and_reports_every_submission(graded_class):
    assert graded_class["code"] == 0
    assert set(EXPECTED) <= set(graded_class["rows"])


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_submission_gets_its_exact_score_and_status(graded_class, student):
    status, total, per_question = EXPECTED[student]
    row = graded_class["rows"][student]
    assert row["status"] in report.STATUSES
    assert (row["status"], int(row["total"]), int(row["possible"])) == (status, total, 8), row
    for question, earned in (per_question or {}).items():
        assert row[f"{NAME}:{question} (2)"] == str(earned)


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_reasons_are_clear(graded_class):
    rows = graded_class["rows"]
    assert "not a valid notebook" in rows["judy"]["reason"]
    assert "not a regular file (a symbolic link)" in rows["lena"]["reason"]
    assert "not a regular file (a FIFO" in rows["fifi"]["reason"]
    assert "olaf" not in rows and "outside" not in " ".join(r["file"] for r in rows.values())
    assert rows["grace"]["reason"] == rows["peggy"]["reason"]
    assert "process died" in rows["grace"]["reason"]
    assert "per-cell time limit" in rows["frank"]["reason"]
    assert "per-cell time limit" in rows["uma"]["reason"]
    assert f"total time limit of {TOTAL_TIMEOUT_S} s" in rows["sam"]["reason"]
    assert rows["heidi"]["status"] == "ok"  # a syntax error is the student's, not a fault


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_student_text_cannot_redraw_the_terminal(graded_class):
    assert "\x1b" not in graded_class["stdout"] and "\r" not in graded_class["stdout"]
    assert "ValueError: [2J[Htotal 8 8" not in graded_class["stdout"]
    assert "ValueError: total 8 8" in " ".join(graded_class["stdout"].split())


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_submissions_are_never_modified(graded_class):
    assert graded_class["submissions_before"] == graded_class["submissions_after"]


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_regrading_gives_identical_scores(graded_class, root, tmp_path):
    """Another grading run (another seed for the hidden tests) of a few of the class."""
    folder = graded_class["folder"]
    students = ("alice", "erin", "heidi", "mallory")
    for student in students:
        shutil.copy(folder / f"{student}_{NAME}.ipynb", tmp_path)
    results, _ = classgrade.grade_folder(tmp_path, root / "exercises", jobs=2)
    again = {r.student: (r.status, r.earned) for r in results}
    rows = graded_class["rows"]
    assert again == {s: (rows[s]["status"], float(rows[s]["total"])) for s in students}


@pytest.mark.notebook
def test_self_grading_a_missing_code_cell_scores_zero_with_its_reason(root, tmp_path):
    solved = nbformat.read(root / "solutions" / f"{NAME}.ipynb", as_version=4)
    cell = next(c for c in solved.cells if "def kl_divergence(" in c.source)
    cell.source = cell.source.replace("def kl_divergence(", "def kl_div(")
    nbformat.write(solved, tmp_path / f"erin_{NAME}.ipynb")
    result = selfgrade.grade_notebook(
        tmp_path / f"erin_{NAME}.ipynb", root / "exercises" / f"{NAME}.ipynb"
    )
    kl = next(r for r in result.rows if r["question"] == "kl_divergence")
    assert kl["earned"] == 0 and "no cell defines kl_divergence()" in kl["hint"]


@pytest.mark.notebook
def test_a_cell_that_hangs_times_out_and_self_grading_goes_on(root, tmp_path):
    text = with_body(
        (root / "solutions" / f"{NAME}.py").read_text(), "gaussian_kl", "while True:\n    pass"
    )
    path = tmp_path / f"{NAME}.ipynb"
    path.write_text(build.notebook_text(build.without_hidden_tests(text), "variant"))
    result = selfgrade.grade_notebook(path, cell_timeout=5)
    rows = {r["question"]: r for r in result.rows}
    assert rows["gaussian_kl"]["earned"] == 0 and "Timeout" in rows["gaussian_kl"]["hint"]
    assert rows["kl_divergence"]["earned"] == 2 and rows["js_divergence"]["earned"] == 2
    assert result.status == "timeout"


@pytest.mark.notebook
def test_total_timeout_kills_the_run_and_keeps_what_was_earned(root, tmp_path):
    text = (root / "solutions" / f"{NAME}.py").read_text()
    slow = with_body(text, "js_divergence", "import time\ntime.sleep(120)")
    path = tmp_path / f"slow_{NAME}.ipynb"
    path.write_text(build.notebook_text(slow, "slow"))
    result = selfgrade.grade_notebook(
        path, root / "exercises" / f"{NAME}.ipynb", cell_timeout=120, total_timeout=25
    )
    assert result.status == "timeout" and "total time limit of 25 s" in result.reason
    earned = {r["question"]: r["earned"] for r in result.rows}
    assert earned == {"kl_divergence": 2, "gaussian_kl": 2, "monte_carlo_kl": 2, "js_divergence": 0}


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


@pytest.mark.sandbox
def test_the_csv_is_written_before_anything_is_printed(root, tmp_path, monkeypatch):
    """A submission's text reaches the terminal after the grades are safe on disk."""
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / f"alice_{NAME}.ipynb").write_bytes(
        (root / "solutions" / f"{NAME}.ipynb").read_bytes()
    )

    def printing_fails(result):
        raise KeyboardInterrupt("the terminal went away")

    monkeypatch.setattr(command, "_print_result", printing_fails)
    csv_path = tmp_path / "grades.csv"
    args = ["grade", str(folder), "--source", str(root / "exercises"), "--csv", str(csv_path)]
    with pytest.raises(KeyboardInterrupt):
        cli.main(args)
    assert csv_path.read_text().count("\n") == 2  # the header and alice


@pytest.mark.sandbox
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


def test_students_told_apart_are_warned_about(root, tmp_path, monkeypatch, capsys):
    """A label that is not the name on disk (``student_labels``) is said on stderr."""
    folder = tmp_path / "subs"
    names = ("alice", "alice\u200b", "jos\u00e9", "jose\u0301")
    results = []
    for name in names:
        (folder / name).mkdir(parents=True)
        path = folder / name / f"{NAME}.ipynb"
        path.write_text("{}")
        results.append(report.GradeResult(path, NAME, name, "ok"))
    labels = classgrade.student_labels(list(names))
    for result in results:
        result.student = labels[result.student]
    monkeypatch.setattr(classgrade, "grade_folder", lambda *a, **k: (results, []))
    monkeypatch.setattr(command, "_print_result", lambda result: None)
    cli.main(["grade", str(folder), "--source", str(root / "exercises")])
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 2, warned
    assert "'alice<U+200B>'" in warned[0] and "'jos\u00e9 (2)'" in warned[1]


def test_parsing_a_submission_is_bounded_by_its_size_and_cells(root, tmp_path):
    """What grading never reads is dropped before validation (the notebook's metadata,
    cell metadata but tags and points, outputs), and past MAX_CELLS cells a notebook is
    invalid: a 40 MB notebook of 400,000 one-letter cells took 18 s to validate."""
    solved = json.loads((root / "solutions" / "00_foundations.ipynb").read_text())
    solved["metadata"]["bulk"] = [[1] * 10 for _ in range(1000)]
    solved["cells"][0]["metadata"]["bulk"] = "x" * 1000
    path = tmp_path / "alice_00_foundations.ipynb"
    path.write_text(json.dumps(solved))
    nb = notebooks.read_submission(path)
    assert "bulk" not in nb.metadata and "bulk" not in nb.cells[0].metadata
    assert any("graded" in c.metadata.get("tags", []) for c in nb.cells)
    solved["cells"] *= notebooks.MAX_CELLS // len(solved["cells"]) + 1
    path.write_text(json.dumps(solved))
    with pytest.raises(notebooks.GradeInputError, match=f"may have \\({notebooks.MAX_CELLS}\\)"):
        notebooks.read_submission(path)
