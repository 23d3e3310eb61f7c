import ast
import json
import re
import shutil
from pathlib import Path

import pytest

from course_utils import build, registry

ROOT = Path(__file__).resolve().parents[1]

SOLUTION = '''# %%
def f(x):
    """doc"""
    ### BEGIN SOLUTION
    y = x + 1
    return y
    ### END SOLUTION


# %% tags=["graded"] points=2
# TEST f (2 points)
check_close(f(1), 2, "f(1)")
'''
CHECK = 'check_close(f(1), 2, "f(1)")'


def test_solution_to_exercise_keeps_indentation_and_the_rest():
    out = build.solution_to_exercise(SOLUTION)
    assert "    # YOUR CODE HERE\n    raise NotImplementedError()\n" in out
    assert "y = x + 1" not in out and "BEGIN SOLUTION" not in out
    assert '"""doc"""' in out and "# TEST f (2 points)" in out
    top = build.solution_to_exercise("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\nprint(x)\n")
    assert top == "# YOUR CODE HERE\nraise NotImplementedError()\nprint(x)\n"


@pytest.mark.parametrize(
    "text, match",
    [
        ("### BEGIN SOLUTION\nx\n", r"<text>:1: ### BEGIN SOLUTION is never closed"),
        ("x\n### END SOLUTION\n", r"<text>:2: ### END SOLUTION without"),
        (
            "### BEGIN SOLUTION\n### BEGIN SOLUTION\n",
            r"<text>:2: .* inside the region opened at line 1",
        ),
    ],
)
def test_bad_markers_name_file_and_line(text, match):
    with pytest.raises(build.BuildError, match=match):
        build.solution_to_exercise(text)


def test_notebook_has_deterministic_ids_and_graded_metadata():
    text = build.notebook_text(SOLUTION, "s.py")
    assert text == build.notebook_text(SOLUTION, "s.py")
    nb = json.loads(text)
    ids = [c["id"] for c in nb["cells"]]
    assert ids == ["cell-0", "test-f"]
    graded = nb["cells"][1]
    assert graded["metadata"] == {"points": 2, "tags": ["graded"]} and graded["outputs"] == []
    assert build.graded_questions(SOLUTION) == [("f", 2)]


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            SOLUTION.replace("points=2", "points=3"),
            "says 2 points in its header but metadata points=3",
        ),
        (SOLUTION.replace("# TEST f (2 points)", "# test f"), "must start with '# TEST name"),
        (SOLUTION + '\n# %% tags=["graded"] points=1\n# TEST f (1 point)\n', "two graded cells"),
        (SOLUTION.replace(CHECK, "assert f(1) == 2"), "judges no value"),
        (SOLUTION.replace(CHECK, 'check(f(1) == 2, "f")'), "judges no value"),
        # the judge would compute f(1) with the solution's f: self-grading with the student's
        (SOLUTION.replace(CHECK, 'check_close(f(2) - 1, f(1), "f")'), "expected side uses f"),
        (SOLUTION.replace(CHECK, 'y = f(1)\ncheck_close(f(1), y, "f")'), "expected side uses y"),
    ],
)
def test_malformed_graded_cells_are_build_errors(bad, match):
    with pytest.raises(build.BuildError, match=match):
        build.notebook_text(bad, "s.py")


def _course_copy(root, tmp_path):
    for folder in ("lectures", "solutions", "exercises"):
        shutil.copytree(root / folder, tmp_path / folder)
    shutil.copy(root / "jupytext.toml", tmp_path)
    shutil.copy(root / "pyproject.toml", tmp_path)
    return tmp_path


def test_repository_is_built(root):
    assert build.stale(root) == []


def test_check_detects_every_kind_of_staleness_and_build_repairs_it(root, tmp_path):
    course = _course_copy(root, tmp_path)
    assert build.stale(course) == []
    (course / "exercises" / "00_foundations.ipynb").write_text("{}")  # hand-edited exercise
    lecture = course / "lectures" / "00_foundations.py"
    lecture.write_text(lecture.read_text() + "\n# %%\nprint('new cell')\n")  # edited, not synced
    solution = course / "solutions" / "00_foundations.py"
    solution.write_text(solution.read_text().replace("#       jupytext_version: 1.19.6\n", ""))
    (course / "exercises" / "99_orphan.ipynb").write_text("{}")  # no solution produces it
    stale = {p.relative_to(course).as_posix() for p in build.stale(course)}
    assert stale == {
        "exercises/00_foundations.ipynb",
        "lectures/00_foundations.ipynb",
        "solutions/00_foundations.py",  # not in jupytext's canonical form
        "exercises/99_orphan.ipynb",
    }
    build.build(course)
    assert build.stale(course) == []
    assert not (course / "exercises" / "99_orphan.ipynb").exists()


def test_a_copied_function_has_one_source(root, tmp_path):
    """A package function marked ``# Copied from solutions/X.py: name`` is the solution's:
    an edit of the copy (or of the solution alone) is stale, and the build rewrites it."""
    course = _course_copy(root, tmp_path)
    shutil.copytree(root / "course_utils", course / "course_utils")
    losses = course / "course_utils" / "gan" / "losses.py"  # in a subpackage: rglob finds it
    original = losses.read_text()
    edited = original.replace(
        "    return fake_scores.mean() - real_scores.mean()",
        "    return (fake_scores - real_scores).mean()",
    )
    assert edited != original
    losses.write_text(edited)
    assert build.stale(course) == [losses]
    assert build.with_copies(edited, course, "course_utils/gan/losses.py") == original
    solution = course / "solutions" / "02_gan.py"
    solution.write_text(solution.read_text().replace("WGAN critic loss to minimize", "WGAN loss"))
    assert "WGAN loss" in build.with_copies(original, course, "course_utils/gan/losses.py")


@pytest.mark.parametrize(
    ("module", "match"),
    [
        ("# Copied from solutions/02_gan.py: critic_loss\n\ndef critic_loss():\n    pass\n",
         "not right above def critic_loss"),
        ("# Copied from solutions/02_gan.py: no_such\ndef no_such():\n    pass\n",
         "no function no_such"),
    ],
)  # fmt: skip
def test_a_bad_copy_marker_is_a_build_error(root, module, match):
    with pytest.raises(build.BuildError, match=match):
        build.with_copies(module, root, "course_utils/x.py")


def test_a_lecture_run_and_saved_in_the_lab_is_not_stale(root, tmp_path):
    import json

    from course_utils import lab

    course = _course_copy(root, tmp_path)
    path = course / "lectures" / "00_foundations.ipynb"
    built = path.read_text()
    nb = json.loads(built)
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
    nb["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for count, cell in enumerate(code, start=1):
        cell["execution_count"] = count
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran\n"]}]
    code[0]["outputs"].append(
        {
            "output_type": "execute_result",
            "execution_count": 1,
            "metadata": {},
            "data": {lab.WIDGET_VIEW: {"model_id": "x"}},
        }
    )
    assert lab.without_live_widgets(nb) == 1 and "widgets" not in nb["metadata"]
    assert code[0]["outputs"][1]["data"] == {"text/plain": lab.RERUN_NOTE}
    path.write_text(json.dumps(nb))
    assert build.stale(course) == [] and build.build(course) == []
    assert json.loads(path.read_text())["cells"] == nb["cells"]  # the student's outputs stay
    code[0]["source"] = ["edited in the lab\n"]
    path.write_text(json.dumps(nb))
    assert build.stale(course) == [path]
    build.build(course)
    assert path.read_text() == built


def test_the_lab_saves_notebooks_without_live_widgets():
    from course_utils import lab

    nb = {
        "metadata": {"widgets": {}},
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {"output_type": "display_data", "metadata": {}, "data": {lab.WIDGET_VIEW: {}}}
                ],
            }
        ],
    }
    model = {"type": "notebook", "content": nb}
    lab.pre_save_hook(model=model, path="lectures/x.ipynb", contents_manager=None)
    assert nb == {
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"text/plain": lab.RERUN_NOTE},
                    }
                ],
            }
        ],
    }
    text = {"type": "file", "content": "plain text"}
    lab.pre_save_hook(model=text, path="notes.txt")
    assert text == {"type": "file", "content": "plain text"}


NOTEBOOKS = sorted(f"{d}/{p.name}" for d in ("lectures", "solutions", "exercises")
                   for p in (build.find_root(Path(__file__)) / d).glob("*.ipynb"))  # fmt: skip


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_starts_with_the_colab_setup_and_has_its_badge(root, name):
    nb = json.loads((root / name).read_text())
    entry = build.ColabEntry(build.repository_url(root), name)
    setup, title = nb["cells"][0], nb["cells"][1]
    assert setup["metadata"]["tags"] == [build.SETUP_TAG]
    assert "".join(setup["source"]) == entry.setup_source
    assert "".join(title["source"]).startswith("# ") and entry.badge in "".join(title["source"])
    assert entry.open_url.endswith(f"/blob/main/{name}")
    assert sum(build.SETUP_TAG in c["metadata"].get("tags", []) for c in nb["cells"]) == 1


def test_the_colab_entry_is_rebuilt_not_repeated_and_follows_the_url(root, tmp_path):
    course = _course_copy(root, tmp_path)
    pyproject = course / "pyproject.toml"
    url = build.repository_url(course)
    pyproject.write_text(pyproject.read_text().replace(url, "https://github.com/a-fork/dgm"))
    assert "lectures/00_foundations.py" in {p.relative_to(course).as_posix()
                                            for p in build.stale(course)}  # fmt: skip
    build.build(course)
    text = (course / "lectures" / "00_foundations.py").read_text()
    assert text.count("colab-setup") == 1 and text.count("Open In Colab") == 1
    assert url not in text and "github.com/a-fork/dgm" in text and build.stale(course) == []
    pyproject.write_text(pyproject.read_text().replace("https://github.com/a-fork/dgm", "dgm"))
    with pytest.raises(build.BuildError, match="Repository: expected https://github.com/"):
        build.plan(course)


def test_readme_badges_are_written_between_the_markers(root):
    url = build.repository_url(root)
    readme = f"intro\n{build.BADGES_BEGIN}\nstale row\n{build.BADGES_END}\nrest\n"
    text = build.readme_with_badges(readme, root, url)
    assert text.startswith("intro\n") and text.endswith(f"{build.BADGES_END}\nrest\n")
    assert "stale row" not in text
    for name in NOTEBOOKS:
        assert build.ColabEntry(url, name).badge in text
    assert build.readme_with_badges("no markers", root, url) == "no markers"


def test_the_setup_cell_installs_in_colab_only_keeping_colabs_packages(monkeypatch):
    import importlib.metadata
    import subprocess
    import sys
    import types

    entry = build.ColabEntry("https://github.com/o/n", "lectures/x.ipynb")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    monkeypatch.setattr("os.path.isdir", lambda p: False)
    exec(entry.setup_source, {})
    assert calls == []  # outside Colab: nothing
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(entry.setup_source, {})
    (clone, kw1), (pip, kw2) = calls
    assert clone == ["git", "clone", "--depth=1", "https://github.com/o/n", "/content/course"]
    assert pip[:3] == [sys.executable, "-m", "pip"] and pip[-2:] == ["-e", "/content/course"]
    assert kw1 == kw2 == {"check": True} and sys.path[0] == "/content/course"
    kept = Path(pip[pip.index("-c") + 1]).read_text().split()
    assert kept == [
        f"{n}=={importlib.metadata.version(n)}" for n in ("torch", "numpy", "ipywidgets")
    ]


def test_solutions_need_a_graded_cell(root, tmp_path):
    course = _course_copy(root, tmp_path)
    (course / "solutions" / "01_empty.py").write_text("# %%\nx = 1\n")
    with pytest.raises(build.BuildError, match="at least one graded cell"):
        build.plan(course)


def test_exercise_matches_solution_except_solution_regions(root):
    solution = (root / "solutions" / "00_foundations.py").read_text()
    exercise = (root / "exercises" / "00_foundations.py").read_text()
    assert "### BEGIN SOLUTION" in solution and "BEGIN SOLUTION" not in exercise
    stubs = re.findall(r"^\s*raise NotImplementedError\(\)$", exercise, re.M)
    assert len(stubs) == solution.count("### BEGIN SOLUTION") == 4
    assert build.graded_questions(exercise) == build.graded_questions(solution)


def test_find_root(root, tmp_path):
    assert build.find_root(root / "lectures") == root
    with pytest.raises(build.BuildError, match="root"):
        build.find_root(tmp_path)


def test_readme_tables_come_from_the_shipped_metadata_and_results(root):
    """The checkpoints' table and the benchmark tables are written by `course build`, so a
    hand edit or a retrained checkpoint makes `course build --check` fail until rebuilt."""
    from course_utils import checkpoints

    readme = (root / "README.md").read_text()
    assert build.readme_with_tables(readme) == readme  # up to date
    fid = f"{checkpoints.shipped_state('ddpm_mnist')[1]['metrics']['fid_ddim50']:.1f}"
    edited = readme.replace(f"DDIM-50 samples: FID {fid}", "DDIM-50 samples: FID 1.0")
    assert edited != readme and build.readme_with_tables(edited) == readme
    dropped = readme.replace("grid  wgan-gp + DRS", "grid  WGAN-GP + DRS")
    assert dropped != readme and build.readme_with_tables(dropped) == readme
    for marker in (build.CHECKPOINTS_BEGIN, *build.bench_markers("gan")):
        assert marker in readme


def test_a_missing_checkpoint_is_a_build_error_that_names_the_command(root, monkeypatch):
    from course_utils import checkpoints

    monkeypatch.setattr(checkpoints, "WEIGHTS_DIR", root / "nowhere")
    with pytest.raises(build.BuildError, match="course_utils.pretrain"):
        build.readme_with_tables((root / "README.md").read_text())


def test_the_course_map_and_module_tables_come_from_the_topics_and_docstrings(root, tmp_path):
    """The course map (each lecture's ``lectures/NN_topic.toml``) and the two module tables
    (each module's docstring) are written by `course build`: a hand edit is undone, a
    module's new docstring shows, and a lecture without its row is a build error."""
    readme = (root / "README.md").read_text()
    assert build.readme_with_modules(build.readme_with_course_map(readme, root), root) == readme
    edited = readme.replace("lecture 29 s, solution 7 s", "lecture 1 s, solution 7 s")
    assert edited != readme and build.readme_with_course_map(edited, root) == readme
    rows = readme.split(build.TOPICS_BEGIN)[1].split(build.TOPICS_END)[0]
    assert [line.split("`")[1] for line in rows.splitlines()[3:]] == list(registry.TOPICS)
    course = _course_copy(root, tmp_path)
    shutil.copytree(root / "course_utils", course / "course_utils")
    viz = course / "course_utils" / "viz.py"
    viz.write_text(viz.read_text().replace('"""Plots the lectures share', '"""Plots | shared', 1))
    assert "| `viz` | Plots \\| shared" in build.readme_with_modules(readme, course)
    (course / "lectures" / "98_orphan.py").write_text("# %% [markdown]\n# # Orphan\n")
    with pytest.raises(build.BuildError, match=r"98_orphan.py: expected its course-map row in"):
        build.readme_with_course_map(readme, course)
    (course / "lectures" / "98_orphan.toml").write_text('exercises = "x"\nlearn = "y"\n')
    with pytest.raises(build.BuildError, match=r"98_orphan.toml: expected the strings exercises"):
        build.readme_with_course_map(readme, course)


def _signature(node: ast.FunctionDef) -> list[tuple[str, object]]:
    """(name, default) of every parameter; a default is its literal value, or its source."""
    a = node.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    pairs = [
        *zip(positional, defaults, strict=True),
        *zip(a.kwonlyargs, a.kw_defaults, strict=True),
    ]

    def value(d: ast.expr | None) -> object:
        try:
            return ast.literal_eval(d) if d is not None else None
        except ValueError:
            return ast.unparse(d)

    return [(p.arg, value(d)) for p, d in pairs]


def test_the_exercise_api_is_the_solutions():
    """docs/EXERCISE_API.md, the contract of every exercise function, names each set's
    graded functions (those with a solution region) with the solution's own signature."""
    doc = (ROOT / "docs" / "EXERCISE_API.md").read_text()
    sections = {s.split("\n", 1)[0].strip(): s for s in re.split(r"^## ", doc, flags=re.M)[1:]}
    for path in sorted((ROOT / "solutions").glob("*.py")):
        text = path.read_text()
        graded = {
            n.name: n
            for cell in text.split("# %%")
            if "### BEGIN SOLUTION" in cell
            for n in ast.parse(cell.split("\n", 1)[1]).body
            if isinstance(n, ast.FunctionDef)
        }
        assert path.stem in sections, f"docs/EXERCISE_API.md has no section {path.stem}"
        rows = re.findall(r"^\| `(\w+)\((.*?)\)` \|", sections[path.stem], flags=re.M)
        assert sorted(n for n, _ in rows) == sorted(graded), path.stem
        for name, args in rows:
            documented = ast.parse(f"def {name}({args}): pass").body[0]
            assert _signature(documented) == _signature(graded[name]), (path.stem, name)
