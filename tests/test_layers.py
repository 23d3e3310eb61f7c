"""The test pipeline itself (conftest.py): an xdist group stays on one worker, each test
lands in its layer, and a run ends with its time table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GROUPED = """
import os, pathlib, pytest

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    out = pathlib.Path(os.environ["WHERE"])
    out.joinpath(f"{i}").write_text(os.environ.get("PYTEST_XDIST_WORKER", "main"))

@pytest.mark.sandbox
def test_in_the_sandbox_layer():
    pass

@pytest.mark.parametrize("i", range(6))
def test_unit(i):
    pass
"""


def test_a_group_runs_on_one_worker_and_the_run_ends_with_its_time_table(tmp_path):
    """With pytest 9.2, xdist 3.8's loadgroup left every group to chance (constraints.txt)."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_grouped.py").write_text(GROUPED)
    (suite / "conftest.py").write_text((ROOT / "conftest.py").read_text())
    (suite / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n"
        + "".join(
            f"    {m}: x\n" for m in ("browser", "notebook", "class_batch", "sandbox", "mutation")
        )  # fmt: skip
    )
    where = tmp_path / "where"
    where.mkdir()
    env = {**os.environ, "WHERE": str(where), "COURSE_TEST_RUN": "probe"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup",
         "--no-loadscope-reorder", "-p", "no:cacheprovider", str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    workers = {p.read_text() for p in where.iterdir()}
    assert len(list(where.iterdir())) == 6 and len(workers) == 1, workers
    assert "time per layer (probe" in run.stdout
    saved = json.loads((suite / "build" / "test-times" / "probe.json").read_text())
    assert {k: v["tests"] for k, v in saved["layers"].items()} == {"sandbox": 1, "unit": 12}
