"""`course build --check` exit codes and the benchmark commands (structure only: no timing
assertions, timings depend on the machine)."""

import shutil

import pytest

from course_utils import bench, cli, diffusion, gan


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
    loop = bench.bench_loop(epochs=1)
    assert len(loop) == 2 and all(ratio > 0 for ratio in loop.values())
    threads = bench.bench_threads(seconds_per_case=0.05)
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


def test_gan_bench_case_scores_every_method_and_drs():
    rows = gan._gan_case(("ring", "wgan-gp", 0, 10))
    assert [r["variant"] for r in rows] == ["wgan-gp", "wgan-gp + DRS"]
    assert all(r["num_modes"] == 8 and 0 <= r["high_quality_rate"] <= 1 for r in rows)
    assert rows[1]["cpu_seconds"] > rows[0]["cpu_seconds"] and 0 < rows[1]["acceptance"] <= 1
    lines = gan.format_gan_bench(rows)
    assert lines[0].split()[:2] == ["data", "method"] and len(lines) == 3


def test_shipped_gan_bench_is_complete_and_in_the_readme(root):
    shipped = gan.load_gan_bench()
    variants = {(r["dataset"], r["variant"]) for r in shipped["rows"]}
    assert variants == {(d, v) for d in ("ring", "grid") for v in gan.GAN_VARIANTS}
    assert len(shipped["rows"]) == 2 * len(gan.GAN_VARIANTS) * shipped["seeds"]
    readme = (root / "README.md").read_text()
    for line in gan.format_gan_bench(shipped["rows"]):
        assert line in readme


def test_bench_options_only_apply_where_they_mean_something(capsys):
    assert cli.main(["bench", "loop", "--seeds", "2"]) == 2
    assert "--seeds only applies to 'gan'" in capsys.readouterr().err
    assert cli.main(["bench", "diffusion", "--steps", "20"]) == 2
    assert "--steps only applies to 'gan'" in capsys.readouterr().err
    assert cli.main(["bench", "vae-digits", "--save", "x.json"]) == 2
    assert "--save only applies to 'diffusion' and 'gan'" in capsys.readouterr().err


def test_diffusion_bench_case_samples_scores_and_times():
    row = diffusion._diffusion_case(("DDIM", 3, 0.0, 20))
    assert (row["sampler"], row["steps"], row["eta"], row["samples"]) == ("DDIM", 3, 0.0, 20)
    assert row["fid"] > 0 and row["seconds_per_1000"] > 0
    assert 1 <= row["classes_present"] <= 10 and 0 <= row["class_entropy"] <= 2.31
    ddpm = {**row, "sampler": "DDPM", "steps": 1000, "eta": 1.0, "fid": 2 * row["fid"]}
    lines = diffusion.format_diffusion_bench({"fid_floor": 7.0, "rows": [ddpm, row]})
    assert lines[0].split()[:3] == ["sampler", "steps", "FID"] and len(lines) == 4
    assert lines[1].split()[:4] == ["DDPM", "1000", f"{ddpm['fid']:.1f}", "1.00"]
    assert lines[2].split()[:5] == ["DDIM", "eta=0", "3", f"{row['fid']:.1f}", "0.50"]
    assert lines[3].startswith("data floor") and lines[3].endswith("7.0")


def test_shipped_diffusion_bench_is_complete_and_in_the_readme(root):
    shipped = diffusion.load_diffusion_bench()
    assert shipped["samples"] == 1000
    ran = [(r["sampler"], r["steps"], r["eta"]) for r in shipped["rows"]]
    assert ran == diffusion.DIFFUSION_SAMPLERS
    readme = (root / "README.md").read_text()
    for line in diffusion.format_diffusion_bench(shipped):
        assert line in readme


def test_grade_finds_the_course_exercises_from_any_directory(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a student's copy outside the course, as in Colab
    assert cli._default_source() == root / "exercises"
