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

import os
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from classbatch import ATTACKS, HONEST_WITH, MARKER

from course_utils.grading.cgroups import Cgroup
from course_utils.grading.classgrade import REGRADED
from course_utils.grading.sandbox import SANDBOX_UID, Limits, Sandbox

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_the_batch_finishes_with_every_submission(graded_class):
    expected = {*ATTACKS, *(f"solved+{n}" for n in HONEST_WITH)}
    assert graded_class["code"] == 0 and expected <= set(graded_class["rows"])


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_earns_nothing(graded_class, attack):
    if attack == "grader_secret" and os.geteuid() != 0:
        pytest.skip("run as another user, the sandbox's uid is the grader's (docs/DESIGN.md)")
    row = graded_class["rows"][attack]
    assert row["total"] == "0", row


@pytest.mark.sandbox
@pytest.mark.xdist_group("class")
def test_a_cell_that_catches_its_time_limit_is_stopped_from_outside(graded_class):
    row = graded_class["rows"]["catch_timeout"]
    assert row["status"] == "timeout", row
    assert "stopped by the grader" in row["reason"] and REGRADED in row["reason"], row


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
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    sandbox = Sandbox(hidden=[hidden], limits=Limits(scratch_bytes=2**20))
    probe = (
        "for f in /tmp/x /dev/shm/x; do head -c 3000000 /dev/zero > $f; wc -c < $f; done; "
        f"for f in /dev/x {hidden}/x /tmp/job/x; do touch $f 2>/dev/null && echo wrote $f; done; "
        "echo end"
    )
    run = _probe(sandbox, tmp_path, probe)
    assert run.stdout.split() == ["1048576", "1048576", "end"], run


def _probe(
    sandbox: Sandbox, tmp_path: Path, script: str, cgroup: Cgroup | None = None
) -> subprocess.CompletedProcess:
    """Run ``sh -c script`` where the worker would run, in ``sandbox`` (and ``cgroup``)."""
    job, out = tmp_path / "job", tmp_path / "out"
    job.mkdir()
    out.mkdir()
    sandbox.hand_over(job, out)
    command = sandbox.command(job, out, cgroup, program=["sh", "-c", script])
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.sandbox
def test_the_sandbox_sees_only_its_allow_list(tmp_path):
    """No bind of ``/``: the grader's home, /var (a cluster's TMPDIR), /srv, the working
    course sources and a hidden folder inside a visible one are not there; Python and the
    course package are. As root, the sandbox's uid owns none of the grader's files: an
    owner-only file in sys.prefix (which it sees) cannot be read."""
    secret = Path(tempfile.mkstemp(dir=sys.prefix, prefix="course-test-secret-")[1])
    hidden = Path(tempfile.mkdtemp(dir=sys.prefix, prefix="course-test-hidden-"))
    (hidden / "x").write_text("x")
    try:
        secret.write_text("secret")
        secret.chmod(0o600)
        probe = (
            f"for d in /var /srv /home /root/.bashrc {ROOT}/solutions {ROOT}/exercises; "
            f"do ls -d $d 2>/dev/null; done | wc -l; ls {hidden} | wc -l; "
            f"id -u; cat {secret} 2>/dev/null || echo unreadable; "
            f"{sys.executable} -c \"import course_utils, torch; print('python ok')\""
        )
        run = _probe(Sandbox(hidden=[hidden]), tmp_path, probe)
    finally:
        secret.unlink()
        (hidden / "x").unlink()
        hidden.rmdir()
    lines = run.stdout.split("\n")
    assert lines[:2] == ["0", "0"] and lines[-2] == "python ok", run
    if os.geteuid() == 0:
        assert lines[2:4] == [str(SANDBOX_UID), "unreadable"], run


@pytest.mark.sandbox
def test_a_sandbox_is_limited_as_a_whole(tmp_path):
    """Memory counts every process of a sandbox together (three children of 160 MiB each
    under a 400 MiB limit: the kernel stops one, and the group says so); the same group
    caps its processes and its CPU cores."""
    limits = Limits(memory_bytes=400 * 2**20, processes=32, cpus=1.0)
    group = Cgroup.make(limits.processes, limits.memory_bytes, limits.cpus)
    if group is None or "memory" not in group.folders:
        pytest.skip("no memory cgroup can be made here: memory is limited per process only")
    child = "b = bytearray(160 * 2**20); import time; time.sleep(2); print('kept')"
    script = f'for i in 1 2 3; do {sys.executable} -c "{child}" & done; wait'
    try:
        settings = {
            f.name: f.read_text().strip()
            for d in group.folders.values()
            for f in d.iterdir()
            if f.name in ("pids.max", "cpu.max", "cpu.cfs_quota_us")
        }
        run = _probe(Sandbox(hidden=[], limits=limits), tmp_path, script, cgroup=group)
        out_of_memory = group.out_of_memory()
    finally:
        group.remove()
    assert run.stdout.count("kept") < 3 and out_of_memory, run
    assert settings.get("pids.max", "32") == "32", settings
    assert settings.get("cpu.max", "100000").split()[0] == "100000", settings
    assert settings.get("cpu.cfs_quota_us", "100000") == "100000", settings


def test_python_under_tmp_stays_visible(tmp_path, monkeypatch):
    """A clone (and its virtual environment) under /tmp, as CI's fresh clone: the private
    /tmp is mounted before the binds, not over them."""
    monkeypatch.setattr(sys, "prefix", "/tmp/clone/.venv")
    monkeypatch.setattr(Path, "is_dir", lambda self: True)
    command = Sandbox(hidden=[]).command(tmp_path / "job", tmp_path / "out", None)
    tmpfs = command.index("/tmp", command.index("--tmpfs"))
    bind = command.index("/tmp/clone/.venv")
    assert command[bind - 1] == "--ro-bind" and tmpfs < bind, command
