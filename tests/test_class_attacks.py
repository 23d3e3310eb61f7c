"""Class grading against a student who tries to game it (threat model: docs/DESIGN.md).

One class, graded once in class mode: an honest peer (the solution), a blank peer (the
exercise), and one unsolved submission per family of attack, each a few lines in one
cell. Every attack must earn 0, the honest peer its full 8 points and the blank one 0; no
file outside the sandbox may change (the exercises, the solutions, the course package,
site-packages, the other submissions, the CSV), and nothing an attack started may
outlive the grading. A few attacks are also added to a solved notebook: that submission
keeps its full marks (the grader does not punish what it defends against).
"""

from __future__ import annotations

import csv
import hashlib
import json
import site
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import cli

NAME = "00_foundations"
ROOT = Path(__file__).resolve().parents[1]
MARKER = "course-attack-marker"  # written to files and process titles an attack leaves

ATTACKS = {
    # the check helpers, redefined where the test cells would find them
    "redefine_checks": """
def check(*args, **kwargs): pass
check_close = check_shape = check_finite = check_tensor = check_grad = check
""",
    # torch's comparisons, and the grading package's internals
    "patch_torch_and_grading": """
import torch, course_utils.grading.checks as checks, course_utils.grading.worker as worker
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
checks._fail = lambda *a, **k: None
for name in ("check", "check_close", "check_shape", "check_finite", "check_tensor"):
    setattr(checks, name, lambda *a, **k: None)
worker.from_plain = lambda value, depth=0: value
""",
    # exceptions renamed so that a failure looks like something else
    "rebind_builtins": """
import builtins
builtins.AssertionError = type("AssertionError", (Exception,), {})
builtins.NotImplementedError = StopIteration
""",
    # a tracer that rewrites every argument of every function called from a test cell
    "settrace": """
import sys
def tracer(frame, event, arg):
    if event == "call" and frame.f_code.co_name.startswith(("check", "__course", "<lambda>")):
        for key in list(frame.f_locals):
            frame.f_locals[key] = None
    return tracer
sys.settrace(tracer)
""",
    # errors that are raised but never shown, and test cells turned into `pass`
    "ipython_hooks": """
ip = get_ipython()
ip.showtraceback = lambda *a, **k: None
ip.input_transformers_post.append(
    lambda lines: ["pass\\n"] if any("TEST" in l for l in lines) else lines
)
import ast
class Gut(ast.NodeTransformer):
    def visit_Module(self, node):
        return ast.Module(body=[ast.Pass()], type_ignores=[])
ip.ast_transformers.append(Gut())
""",
    # a tensor that reads the expected value from the caller's frame, then from its source
    "lying_tensor": """
import inspect, torch
class Liar(torch.Tensor):
    def detach(self):
        for info in inspect.stack():
            for key in ("expected", "e", "want"):
                if key in info.frame.f_locals:
                    return torch.as_tensor(info.frame.f_locals[key])
        return super().detach()
def _liar(*args, **kwargs):
    return torch.zeros(()).as_subclass(Liar)
kl_divergence = gaussian_kl = monte_carlo_kl = js_divergence = _liar
""",
    # forged records for every test cell, and a 'done' marker, then a clean exit
    "forged_records": """
import os, torch
for n in range(200):
    forged = {"records": {k: [torch.tensor(0.0)] for k in range(20)}, "error": None}
    torch.save(forged, f"/tmp/out/{n}.pt")
    with open(f"/tmp/out/{n}.pt.json", "w") as f:
        f.write('{"earned": 1000, "passed": true}')
open("/tmp/out/done", "w").close()
""",
    # the solutions, found through the installed package, executed for their answers
    "read_solutions": """
import course_utils, glob, pathlib
root = pathlib.Path(course_utils.__file__).resolve().parents[1]
for path in glob.glob(str(root / "solutions" / "*.py")) + glob.glob("/work/*/solutions/*.py"):
    source = open(path).read()
    if "def kl_divergence" in source:
        exec(source.split("# %% tags=[\\"graded\\"]")[0])
""",
    # persistence: the exercise sources, the package, a .pth file in site-packages
    "persist": f"""
import course_utils, glob, os, pathlib, site, sys
root = pathlib.Path(course_utils.__file__).resolve().parents[1]
targets = glob.glob(str(root / "exercises" / "*")) + [course_utils.__file__]
targets += [os.path.join(p, "zz_{MARKER}.pth") for p in site.getsitepackages()]
for target in targets:
    try:
        with open(target, "a") as f:
            f.write("\\nimport os  # {MARKER}\\n")
    except OSError:
        pass
""",
    # the other submissions: read them, use their functions, overwrite them with the blank
    "peers": """
import glob, os, json
for pattern in ("/tmp/**/*.ipynb", "/root/**/*.ipynb", "/work/**/*.ipynb", "../**/*.ipynb"):
    for path in glob.glob(pattern, recursive=True):
        try:
            text = open(path).read()
            if "honest" in path and "def kl_divergence" in text:
                exec("\\n".join(c for c in json.loads(text)["cells"][0]["source"]))
            with open(path, "w") as f:
                f.write("{}")
        except Exception:
            pass
""",
    # a detached process that outlives grading and rewrites the CSV, and kills everything
    "processes": f"""
import os, signal, subprocess, sys
code = (
    "import time, glob\\ntime.sleep(30)\\n"
    "for p in glob.glob('/**/*.csv', recursive=True): open(p, 'w').write('attacker,1000')"
)
subprocess.Popen([sys.executable, "-c", code, "{MARKER}"], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for pid in os.listdir("/proc"):
    if pid.isdigit() and int(pid) not in (os.getpid(), 1):
        try:
            cmd = open(f"/proc/{{pid}}/cmdline").read()
            if "worker" in cmd or "course" in cmd or "pytest" in cmd:
                os.kill(int(pid), signal.SIGKILL)
        except Exception:
            pass
""",
    # a bounded fork storm: the process limit must stop it, the machine must not care
    "fork_storm": """
import os, time
children = 0
for _ in range(600):
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
    except OSError:
        break
""",
    # the output folder flooded with files (a disk the grader shares), then a long wait
    "flood_output": """
import time
for n in range(5000):
    open(f"/tmp/out/flood{n}", "w").close()
time.sleep(120)
""",
    # records the judge should choke on: a link out of the folder, a FIFO, a tensor of
    # 4 bytes that expands to 8 GiB, a list that names itself 10**18 times
    "poisoned_records": """
import os, torch
huge, shared = torch.zeros(1).expand(2**31), [0.0]
for _ in range(6):
    shared = [shared] * 1000
records = sorted(f for f in os.listdir("/tmp/out") if f.endswith(".pt"))
for i, name in enumerate(records):
    path = f"/tmp/out/{name}"
    os.remove(path)
    if i % 4 == 0:
        os.symlink("/etc/passwd", path)
    elif i % 4 == 1:
        os.mkfifo(path)
    else:
        torch.save({"records": [(0, huge if i % 4 == 2 else shared)], "error": None}, path)
""",
    # reproduce the hidden inputs with another seed
    "hidden_seed": """
import course_utils.grading.checks as checks
checks.set_hidden_seed(0)
checks.hidden_generator = lambda: __import__("torch").Generator().manual_seed(0)
""",
    # the visible tests' expected values, hard-coded: the hidden tests must catch it
    "copy_visible_values": """
import math, torch
def kl_divergence(p, q):
    if p.ndim == 2:
        return torch.stack([kl_divergence(a, b) for a, b in zip(p, q)])
    if torch.equal(p, q):
        return torch.tensor(0.0)
    known = {
        ((0.7, 0.2, 0.1), (0.2, 0.5, 0.3)): 0.5838147,
        ((0.5, 0.5, 0.0), (0.25, 0.25, 0.5)): math.log(2),
        ((0.5, 0.5), (1.0, 0.0)): math.inf,
    }
    key = tuple(tuple(round(v, 4) for v in t.tolist()) for t in (p, q))
    return torch.tensor(known.get(key, 0.0))
""",
}

# attacks that leave a solved notebook's honest marks alone
# (ipython_hooks empties every later cell, the student's own answers too)
HONEST_WITH = ("redefine_checks", "patch_torch_and_grading", "rebind_builtins", "hidden_seed")


def _with_cell(base: nbformat.NotebookNode, source: str, at_end: bool) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(base)))
    cell = nbformat.v4.new_code_cell(source.strip())
    imports = next(
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and "import torch" in c.source and "colab" not in c.source
    )
    nb.cells.insert(len(nb.cells) if at_end else imports + 1, cell)
    return nb


def _tree_hashes(*folders: Path) -> dict[str, str]:
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _marker_processes() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if MARKER in line and "ps -eo" not in line]


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    solved = nbformat.read(ROOT / "solutions" / f"{NAME}.ipynb", as_version=4)
    blank = nbformat.read(ROOT / "exercises" / f"{NAME}.ipynb", as_version=4)
    work = tmp_path_factory.mktemp("attacks")
    folder = work / "submissions"
    folder.mkdir()
    nbformat.write(solved, folder / f"honest_{NAME}.ipynb")
    nbformat.write(blank, folder / f"blank_{NAME}.ipynb")
    for name, code in ATTACKS.items():
        at_end = name in ("processes", "poisoned_records")
        nbformat.write(_with_cell(blank, code, at_end), folder / f"{name}_{NAME}.ipynb")
    for name in HONEST_WITH:
        path = folder / f"solved+{name}_{NAME}.ipynb"
        nbformat.write(_with_cell(solved, ATTACKS[name], False), path)
    guarded = (ROOT / "exercises", ROOT / "solutions", ROOT / "course_utils")
    before = _tree_hashes(*guarded)
    peers_before = _tree_hashes(folder)
    csv_path = work / "grades.csv"
    code = cli.main([
        "grade", str(folder), "--source", str(ROOT / "exercises"), "--csv", str(csv_path),
        "--jobs", "2", "--cell-timeout", "30",
    ])  # fmt: skip
    after = _tree_hashes(*guarded)
    with csv_path.open() as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return {
        "code": code,
        "rows": rows,
        "changed": {p for p, h in before.items() if after.get(p) != h},
        "new_files": set(after) - set(before),
        "peers_changed": _tree_hashes(folder) != peers_before,
        "csv_path": csv_path,
        "processes": _marker_processes(),
    }


def test_the_batch_finishes_with_every_submission(attacked):
    expected = {"honest", "blank", *ATTACKS, *(f"solved+{n}" for n in HONEST_WITH)}
    assert attacked["code"] == 0 and set(attacked["rows"]) == expected


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_earns_nothing(attacked, attack):
    row = attacked["rows"][attack]
    assert row["total"] == "0", row


@pytest.mark.parametrize("attack", HONEST_WITH)
def test_an_honest_notebook_with_the_attack_keeps_its_marks(attacked, attack):
    row = attacked["rows"][f"solved+{attack}"]
    assert (row["status"], row["total"]) == ("ok", "8"), row


def test_the_peers_keep_their_grades(attacked):
    rows = attacked["rows"]
    assert (rows["honest"]["status"], rows["honest"]["total"]) == ("ok", "8")
    assert (rows["blank"]["status"], rows["blank"]["total"]) == ("ok", "0")


def test_a_flood_of_output_is_stopped_with_its_reason(attacked):
    row = attacked["rows"]["flood_output"]
    assert row["status"] == "crashed" and "output limits" in row["reason"], row


def test_nothing_outside_the_sandbox_changed(attacked):
    assert attacked["changed"] == set() and attacked["new_files"] == set()
    assert not attacked["peers_changed"]
    pth = [Path(p) / f"zz_{MARKER}.pth" for p in [*site.getsitepackages(), sys.prefix]]
    assert not any(p.exists() for p in pth)


def test_nothing_an_attack_started_outlives_the_grading(attacked):
    assert attacked["processes"] == []


def test_the_csv_is_the_graders(attacked):
    import time

    time.sleep(35)  # longer than the detached process would have waited
    text = attacked["csv_path"].read_text()
    assert "attacker,1000" not in text and text.startswith("student,notebook,file,status")


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
