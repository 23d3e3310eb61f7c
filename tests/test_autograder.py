"""`course autograder`: set 00 as a Gradescope autograder, run without Gradescope.

The zip is unpacked into a temporary root laid out as Gradescope's ``/autograder``
(``source``, ``submission``, ``results``; ``$COURSE_AUTOGRADER_ROOT``) and its
``run_autograder`` graded the solution, the blank exercise, a mistake and a file that is no
notebook; each ``results.json`` is checked against the specification's schema (``SCHEMA``,
written from https://gradescope-autograders.readthedocs.io/en/latest/specs/) and its
scores against ``course grade FOLDER``'s on the same submissions with the same seed.
``setup.sh`` downloads (apt, PyPI, PyTorch's index), so it is read here, never run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import nbformat
import pytest

from course_utils import cli
from course_utils.grading import autograder
from course_utils.grading.notebooks import GradeInputError
from course_utils.grading.report import GradeResult
from course_utils.grading.variants import with_body

NAME = "00_foundations"
SEED = 1234
# Gradescope's results.json (the specification's "Output format"): what each key may hold.
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
SCHEMA = {
    "type": "object",
    "required": ["tests"],
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "score", "max_score", "output", "visibility"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "score": {"type": "number", "minimum": 0},
                    "max_score": {"type": "number", "minimum": 0},
                    "status": {"enum": ["passed", "failed"]},
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": VISIBILITY,
                    "extra_data": {"type": "object"},
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory) -> Path:
    root = Path(__file__).resolve().parents[1]
    path = tmp_path_factory.mktemp("zip") / "autograder.zip"
    assert cli.main(["autograder", str(root / "exercises" / f"{NAME}.ipynb"), "-o", str(path)]) == 0
    return path


def _submissions(root: Path) -> dict[str, bytes]:
    """The solution, the blank exercise, a mistake (JS's KL terms not halved), no notebook."""
    solution = (root / "solutions" / f"{NAME}.ipynb").read_bytes()
    nb = nbformat.reads(solution.decode(), as_version=4)
    cell = next(c for c in nb.cells if "def js_divergence(" in c.source)
    cell.source = with_body(cell.source, "js_divergence", "m = 0.5 * (p + q)\n"
        "return (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(-1) + "
        "(torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1)")  # fmt: skip
    return {
        "solution": solution,
        "blank": (root / "exercises" / f"{NAME}.ipynb").read_bytes(),
        "mistake": nbformat.writes(nb).encode(),
        "invalid": b"this is not a notebook",
    }


def _unpacked(zip_path: Path, where: Path) -> Path:
    ag = where / "autograder"
    autograder.unpack(zip_path, ag / "source")
    for name in ("submission", "results"):
        (ag / name).mkdir()
    return ag


def _run_autograder(ag: Path) -> dict:
    env = {
        **os.environ,
        autograder.ROOT_ENV: str(ag),
        autograder.PYTHON_ENV: sys.executable,
        autograder.SEED_ENV: str(SEED),
    }
    env.pop("PYTHONPATH", None)  # run_autograder sets it: the zip's package, not this checkout's
    proc = subprocess.run(
        [str(ag / "source" / "run_autograder")], env=env, cwd=ag, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((ag / "results" / "results.json").read_text())
    jsonschema.validate(results, SCHEMA)
    return results


# ------------------------------------------------------------------ the zip, no grading


def test_the_zip_holds_the_scripts_the_course_and_the_set(zip_path):
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
        setup = archive.read("setup.sh").decode()
        config = json.loads(archive.read("course/autograder.json"))
    for script in ("setup.sh", "run_autograder"):  # at the zip's root, executable (the spec)
        assert script in names and modes[script] & 0o111
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "course_utils/__init__.py",
                   f"exercises/{NAME}.ipynb", f"solutions/{NAME}.ipynb"):  # fmt: skip
        assert f"course/{needed}" in names, needed
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("course/exercises/", "course/solutions/"))
                and NAME not in n]  # fmt: skip  # only this set's notebooks
    assert config["exercise"] == NAME and sum(config["points"].values()) == 8
    assert "python3.11-venv" in setup and "bubblewrap" in setup
    assert "--index-url https://download.pytorch.org/whl/cpu" in setup
    assert "-c /autograder/source/course/constraints.txt" in setup


def test_building_refuses_what_is_not_an_exercise(root, tmp_path):
    with pytest.raises(GradeInputError, match="exercise: expected an exercise notebook"):
        autograder.build_autograder(root / "exercises" / f"{NAME}.py", tmp_path / "a.zip")
    with pytest.raises(GradeInputError, match="exercise: expected a notebook in"):
        autograder.build_autograder(root / "solutions" / f"{NAME}.ipynb", tmp_path / "a.zip")
    with pytest.raises(GradeInputError, match="visibility: expected one of"):
        autograder.build_autograder(root / "exercises" / f"{NAME}.ipynb", tmp_path / "a.zip",
                                    visibility="students")  # fmt: skip
    assert not (tmp_path / "a.zip").exists()


def test_results_json_follows_the_spec_and_shows_hints_only_on_failure():
    rows = [
        {"question": "a", "points": 2, "earned": 2.0, "passed": True, "hint": "unused"},
        {"question": "b", "points": 3, "earned": 0.0, "passed": False, "hint": "b is off"},
    ]
    good = GradeResult(Path("x/00.ipynb"), NAME, "s", "ok", rows)
    bad = GradeResult(Path("y/00.ipynb"), NAME, "s", "timeout", rows[:1], "too slow")
    one = autograder.results_json([good], ["mine.ipynb"], "after_due_date")
    jsonschema.validate(one, SCHEMA)
    assert one["score"] == 2.0
    assert [(t["name"], t["score"], t["max_score"], t["output"]) for t in one["tests"]] == [
        ("a", 2.0, 2.0, ""), ("b", 0.0, 3.0, "b is off")
    ]  # fmt: skip
    assert {t["visibility"] for t in one["tests"]} == {"after_due_date"}
    two = autograder.results_json([good, bad], ["mine.ipynb", "copy.ipynb"], "visible")
    jsonschema.validate(two, SCHEMA)
    assert two["score"] == 2.0  # the best notebook's, not the sum
    status = [t for t in two["tests"] if t["name"] == "notebook (copy.ipynb): timeout"]
    assert status and status[0]["output"] == "too slow" and status[0]["max_score"] == 0


def test_no_notebook_and_a_broken_autograder_are_error_entries(tmp_path):
    ag = tmp_path / "ag"
    (ag / "source" / "course").mkdir(parents=True)
    (ag / "submission").mkdir()
    config = {"exercise": NAME, "points": {"q": 2}, "visibility": "visible", "sandbox": "off",
              "cell_timeout": 5, "total_timeout": 10}  # fmt: skip
    (ag / "source" / "course" / "autograder.json").write_text(json.dumps(config))
    (ag / "submission" / "notes.txt").write_text("no notebook")
    out = autograder.run(ag)
    assert json.loads((ag / "results" / "results.json").read_text()) == out
    jsonschema.validate(out, SCHEMA)
    assert out["score"] == 0 and "No notebook (.ipynb) in the submission" in out["output"]
    assert [(t["name"], t["max_score"]) for t in out["tests"]] == [("submission", 0), ("q", 2)]
    (ag / "submission" / f"{NAME}.ipynb").write_text("{}")  # no exercises/ in the course
    out = autograder.run(ag)
    jsonschema.validate(out, SCHEMA)
    assert out["score"] == 0 and "The autograder failed (GradeInputError)" in out["output"]


# ------------------------------------------------------------------ graded in the sandbox


@pytest.mark.sandbox
@pytest.mark.xdist_group("autograder")
def test_run_autograder_grades_as_course_grade_does(root, zip_path, tmp_path):
    subs = _submissions(root)
    results = {}
    for name, data in subs.items():
        ag = _unpacked(zip_path, tmp_path / name)
        mode = os.stat(ag / "source" / "run_autograder").st_mode
        assert mode & stat.S_IXUSR  # unpacked as Gradescope does, modes kept
        (ag / "submission" / f"{name}_{NAME}.ipynb").write_bytes(data)
        results[name] = _run_autograder(ag)
        shutil.rmtree(ag / "source")
    by_test = {n: {t["name"]: t for t in r["tests"]} for n, r in results.items()}
    questions = ["kl_divergence", "gaussian_kl", "monte_carlo_kl", "js_divergence"]
    assert results["solution"]["score"] == 8
    assert all(by_test["solution"][q]["output"] == "" for q in questions)
    assert results["blank"]["score"] == 0
    assert "NotImplementedError" in by_test["blank"]["kl_divergence"]["output"]
    assert results["mistake"]["score"] == 6
    assert "each KL term is weighted by 1/2" in by_test["mistake"]["js_divergence"]["output"]
    assert results["invalid"]["score"] == 0
    assert by_test["invalid"]["notebook: invalid"]["status"] == "failed"
    invalid = by_test["invalid"]["notebook: invalid"]["output"]
    assert invalid.startswith(f"invalid_{NAME}.ipynb: not a valid notebook"), invalid

    # course grade FOLDER on the same four, with the same seed: the same points per question
    folder = tmp_path / "class"
    folder.mkdir()
    for name, data in subs.items():
        (folder / f"{name}_{NAME}.ipynb").write_bytes(data)
    grades = tmp_path / "grades.csv"
    code = cli.main(["grade", str(folder), "--source", str(root / "exercises"),
                     "--csv", str(grades), "--seed", str(SEED)])  # fmt: skip
    assert code == 0
    with open(grades, newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(subs)
    for name, tests in by_test.items():
        column = {c.split(":")[1].split(" ")[0]: c for c in rows[name] if c.startswith(NAME)}
        assert {q: float(rows[name][column[q]]) for q in questions} == {
            q: tests[q]["score"] for q in questions
        }, name
        assert float(rows[name]["total"]) == results[name]["score"]


def test_the_sandbox_imports_the_package_the_grader_runs():
    """An editable install's finder may point at another clone of the course (which the
    sandbox cannot see): the sandbox's PYTHONPATH names the folder of the grader's own."""
    from course_utils.grading.sandbox import Sandbox, installed_package

    assert Sandbox.environment()["PYTHONPATH"] == str(installed_package().parent)
