"""Class grading against a student who tries to game it (threat model: docs/DESIGN.md).

One class, graded once in class mode (tests/classbatch.py, with the fixtures of
tests/test_class_grading.py): an honest peer (alice, the solution), a blank peer (bob, the
exercise), and one unsolved submission per family of attack (``classbatch.ATTACKS``), each a few
lines in one cell. Every attack must earn 0, the honest peer its full 8 points and the
blank one 0; no file outside the sandbox may change (the exercises, the solutions, the
course package, site-packages, the other submissions, the CSV), and nothing an attack
started may outlive the grading. A few attacks are also added to a solved notebook: that
submission keeps its full marks (the grader does not punish what it defends against).
"""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path

import pytest
from classbatch import ATTACKS, HONEST_WITH, MARKER


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_the_batch_finishes_with_every_submission(graded_class):
    expected = {*ATTACKS, *(f"solved+{n}" for n in HONEST_WITH)}
    assert graded_class["code"] == 0 and expected <= set(graded_class["rows"])


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_earns_nothing(graded_class, attack):
    row = graded_class["rows"][attack]
    assert row["total"] == "0", row


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
@pytest.mark.parametrize("attack", HONEST_WITH)
def test_an_honest_notebook_with_the_attack_keeps_its_marks(graded_class, attack):
    row = graded_class["rows"][f"solved+{attack}"]
    assert (row["status"], row["total"]) == ("ok", "8"), row


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_the_peers_keep_their_grades(graded_class):
    rows = graded_class["rows"]  # alice: the solution, bob: the exercise
    assert (rows["alice"]["status"], rows["alice"]["total"]) == ("ok", "8")
    assert (rows["bob"]["status"], rows["bob"]["total"]) == ("ok", "0")


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_a_forged_completion_marker_does_not_make_a_finished_notebook(graded_class):
    row = graded_class["rows"]["forged_done"]
    assert (row["status"], row["total"]) == ("crashed", "0"), row


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_a_flood_of_output_is_stopped_with_its_reason(graded_class):
    row = graded_class["rows"]["flood_output"]
    assert row["status"] == "crashed" and "output limits" in row["reason"], row


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_nothing_outside_the_sandbox_changed(graded_class):
    assert graded_class["changed"] == set() and graded_class["new_files"] == set()
    assert graded_class["submissions_before"] == graded_class["submissions_after"]
    pth = [Path(p) / f"zz_{MARKER}.pth" for p in [*site.getsitepackages(), sys.prefix]]
    assert not any(p.exists() for p in pth)


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_nothing_an_attack_started_outlives_the_grading(graded_class):
    assert graded_class["processes"] == []


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_the_csv_is_the_graders(graded_class):
    text = graded_class["csv_path"].read_text()
    assert "attacker,1000" not in text and text.startswith("student,notebook,file,status")


@pytest.mark.sandbox
def test_the_sandbox_can_write_only_capped_scratch_space(tmp_path):
    """Inside the sandbox: /tmp and /dev/shm hold at most ``scratch_bytes``; /dev and the
    hidden folders are read-only; the job folder is read-only."""
    from course_utils.grading.sandbox import Limits, Sandbox

    hidden = tmp_path / "hidden"
    hidden.mkdir()
    job, out = tmp_path / "job", tmp_path / "out"
    job.mkdir()
    out.mkdir()
    sandbox = Sandbox(hidden=[hidden], limits=Limits(scratch_bytes=2**20))
    command = sandbox.command(job, out, None)
    probe = (
        "for f in /tmp/x /dev/shm/x; do head -c 3000000 /dev/zero > $f; wc -c < $f; done; "
        f"for f in /dev/x {hidden}/x /tmp/job/x; do touch $f 2>/dev/null && echo wrote $f; done; "
        "echo end"
    )
    command = command[: len(command) - command[::-1].index("--")] + ["sh", "-c", probe]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["1048576", "1048576", "end"], run
