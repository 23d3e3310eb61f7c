"""The graded tests' strength, kept: every graded function's mutants graded through the
function-level path (``tools/mutation.py``, ``make mutation``), per exercise set. Each set
must kill at least 95% of its non-equivalent mutants (today all of them), the two graders
must agree on every mutant, and every mutant listed as equivalent
(``tools/mutation_equivalent.toml``, with its reason) must still exist.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SETS = sorted(p.stem for p in (ROOT / "solutions").glob("*.py"))


@pytest.mark.mutation
@pytest.mark.parametrize("name", SETS)
def test_the_graded_tests_kill_the_mutants_of_every_function(name):
    run = subprocess.run(
        [sys.executable, "tools/mutation.py", "--jobs", "1", name],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "no longer generated" not in run.stdout, run.stdout[-4000:]
