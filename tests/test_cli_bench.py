"""`course build --check` exit codes and the benchmark commands (structure only: no timing
assertions, timings depend on the machine)."""

import shutil

import pytest

from course_utils import cli, foundations
from course_utils.grading import command


def test_build_check_exit_codes(root, tmp_path, capsys):
    assert cli.main(["build", "--check", "--root", str(root)]) == 0
    for folder in ("lectures", "solutions", "exercises"):
        shutil.copytree(root / folder, tmp_path / folder)
    shutil.copy(root / "jupytext.toml", tmp_path)
    shutil.copy(root / "pyproject.toml", tmp_path)  # the repository URL of the Colab entry
    (tmp_path / "exercises" / "00_foundations.ipynb").write_text("{}")
    capsys.readouterr()
    assert cli.main(["build", "--check", "--root", str(tmp_path)]) == 1
    assert "stale: exercises/00_foundations.ipynb" in capsys.readouterr().out
    assert cli.main(["build", "--root", str(tmp_path)]) == 0
    assert cli.main(["build", "--check", "--root", str(tmp_path)]) == 0


def test_build_reports_broken_sources_without_traceback(root, tmp_path, capsys):
    for folder in ("lectures", "solutions", "exercises"):
        (tmp_path / folder).mkdir()
    shutil.copy(root / "jupytext.toml", tmp_path)
    shutil.copy(root / "pyproject.toml", tmp_path)  # the repository URL of the Colab entry
    (tmp_path / "solutions" / "01_bad.py").write_text(
        '# %%\n### BEGIN SOLUTION\nx = 1\n\n# %% tags=["graded"] points=1\n# TEST x (1 point)\n'
        'check_close(x, 1, "x")\n'
    )
    assert cli.main(["build", "--root", str(tmp_path)]) == 2
    assert "never closed" in capsys.readouterr().err


def test_bench_loop_and_threads_print_their_tables(capsys):
    loop = foundations.bench_loop(epochs=1)
    assert len(loop) == 2 and all(ratio > 0 for ratio in loop.values())
    threads = foundations.bench_threads(seconds_per_case=0.05)
    assert {(load, t) for (_, load, t) in threads} == {
        (load, t) for load in ("idle", "busy") for t in (1, 2)
    }
    out = capsys.readouterr().out
    assert "DataLoader" in out and "MLP VAE" in out and "2t / 1t" in out
    import torch

    assert torch.get_num_threads() == 1  # the benchmark restores the course's default


def test_unknown_bench_is_an_argparse_error():
    with pytest.raises(SystemExit):
        cli.main(["bench", "everything"])


def test_bench_options_only_apply_where_they_mean_something(capsys):
    assert cli.main(["bench", "loop", "--seeds", "2"]) == 2
    assert "--seeds only applies to 'gan'" in capsys.readouterr().err
    assert cli.main(["bench", "diffusion", "--steps", "20"]) == 2
    assert "--steps only applies to 'gan'" in capsys.readouterr().err
    assert cli.main(["bench", "vae-digits", "--save", "x.json"]) == 2
    assert "--save only applies to 'diffusion' and 'gan'" in capsys.readouterr().err
    assert cli.main(["bench", "loop", "--methods", "gan"]) == 2
    assert "--methods only applies to 'gan'" in capsys.readouterr().err


def test_grade_finds_the_course_exercises_from_any_directory(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a student's copy outside the course, as in Colab
    assert command._default_source() == root / "exercises"
