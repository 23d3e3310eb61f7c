"""The maintainer's tools that run notebooks: make gpu (tools/gpu.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.notebook
def test_make_gpu_prints_a_line_per_notebook_and_the_first_failing_cell(tmp_path):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), good)
    cells = [nbformat.v4.new_code_cell(c) for c in ("1 / 0", "y = undefined", "z = 2")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), bad)
    run = subprocess.run(
        [sys.executable, "tools/gpu.py", "--device", "cpu", "--jobs", "2", str(good), str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = run.stdout.splitlines()
    assert run.returncode == 1, run.stdout + run.stderr
    assert any(line.startswith(str(good)) and line.split()[1] == "ok" for line in lines)
    assert any(line.startswith(str(bad)) and line.split()[1] == "failed" for line in lines)
    assert "cell 0: ZeroDivisionError" in run.stdout and "and 1 later cells" in run.stdout
    assert "1/2 ok on cpu" in run.stdout
