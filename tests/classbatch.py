"""The class that tests/test_class_grading.py and tests/test_class_attacks.py grade, graded
once (``course grade FOLDER``, sandboxed): set 00's solution, blank exercise and one
submission per way a notebook can go wrong, and one unsolved submission per family of
attack (a few lines in one cell), plus a few attacks added to a solved notebook.

``graded_class`` (tests/conftest.py, one per test session) returns what the tests read:
the CSV's rows, the exit code, the terminal output, the files before and after, the
processes left running.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
from grader_cases.foundations import ALTERNATIVE_CORRECT

from course_utils import build, cli
from course_utils.grading.variants import with_body

NAME = "00_foundations"
ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT_S = 10  # a set-00 cell takes well under a second; an import, a few
TOTAL_TIMEOUT_S = 60  # an honest set-00 notebook takes ~10 s on a busy machine


def _code_cell_defining(nb, function):
    return next(c for c in nb.cells if c.cell_type == "code" and f"def {function}(" in c.source)


def _test_cells(nb):
    return [c for c in nb.cells if "graded" in c.metadata.get("tags", [])]


def make_class(root: Path, folder: Path) -> None:
    """One submission per way a set-00 notebook can go wrong (test_class_grading.EXPECTED)."""
    solved = nbformat.read(root / "solutions" / f"{NAME}.ipynb", as_version=4)
    blank = nbformat.read(root / "exercises" / f"{NAME}.ipynb", as_version=4)
    subs = {}

    def variant(base, edit=None):
        nb = nbformat.from_dict(json.loads(json.dumps(base)))
        if edit:
            edit(nb)
        return nb

    def body(nb, function, code):
        cell = _code_cell_defining(nb, function)
        cell.source = re.sub(
            r"(### BEGIN SOLUTION\n).*?(\n\s*### END SOLUTION)",
            lambda m: m[1] + code + m[2],
            cell.source,
            flags=re.S,
        )

    subs["alice"] = variant(solved)
    subs["bob"] = variant(blank)
    subs["carol"] = variant(
        blank, lambda nb: [setattr(c, "source", "pass") for c in _test_cells(nb)]
    )
    subs["dave"] = variant(solved, lambda nb: nb.cells.remove(_test_cells(nb)[-1]))
    subs["erin"] = variant(
        solved,
        lambda nb: setattr(
            _code_cell_defining(nb, "kl_divergence"),
            "source",
            _code_cell_defining(nb, "kl_divergence").source.replace(
                "def kl_divergence(", "def kl_div("
            ),
        ),
    )
    subs["frank"] = variant(
        solved, lambda nb: body(nb, "gaussian_kl", "    while True:\n        pass")
    )
    subs["grace"] = variant(
        solved, lambda nb: body(nb, "monte_carlo_kl", "    import os\n    os._exit(1)")
    )
    subs["heidi"] = variant(solved, lambda nb: body(nb, "js_divergence", "    return (p +* q"))
    subs["peggy"] = variant(
        solved, lambda nb: body(nb, "js_divergence", "    import ctypes\n    ctypes.string_at(0)")
    )

    def impersonate(nb):  # an unsolved notebook with a forged, always-passing copy of a test
        fake = nbformat.v4.new_code_cell("# TEST kl_divergence (2 points)\npass")
        fake.metadata = {"tags": ["graded"], "points": 2}
        nb.cells.append(fake)
        _test_cells(nb)[0].source = "pass"

    subs["oscar"] = variant(blank, impersonate)
    alternative = build.notebook_text(
        _alternative_text(root), "alternative"
    )  # a solution written differently: torch.distributions etc.
    # An error message that tries to redraw the terminal, with a bidi override and a
    # lone surrogate (which no UTF-8 CSV can hold).
    redraw = '    raise ValueError("\\x1b[2J\\x1b[H\\r\\udcff\\u202etotal 8 8")'
    subs["trent"] = variant(solved, lambda nb: body(nb, "js_divergence", redraw))
    # a code cell that hangs before it defines js_divergence: the test then misses the name
    subs["uma"] = variant(
        solved,
        lambda nb: setattr(
            _code_cell_defining(nb, "js_divergence"),
            "source",
            "while True:\n    pass\n" + _code_cell_defining(nb, "js_divergence").source,
        ),
    )

    def stall(nb):  # cells under the per-cell limit, past the total limit together
        at = nb.cells.index(_code_cell_defining(nb, "js_divergence"))
        for _ in range(TOTAL_TIMEOUT_S // (CELL_TIMEOUT_S - 5)):
            nb.cells.insert(
                at, nbformat.v4.new_code_cell(f"import time\ntime.sleep({CELL_TIMEOUT_S - 5})")
            )

    subs["sam"] = variant(solved, stall)
    folder.mkdir()
    for student, nb in subs.items():
        nbformat.write(nb, folder / f"{student}_{NAME}.ipynb")
    old = nbformat.from_dict(json.loads(json.dumps(solved)))  # nbformat 4.4: no cell ids
    old.nbformat_minor = 4
    for cell in old.cells:
        cell.pop("id", None)
    # a name a spreadsheet would run as a formula, in nbformat 4.4
    (folder / f"=1+2_{NAME}.ipynb").write_text(json.dumps(old))
    v3 = nbformat.convert(nbformat.from_dict(json.loads(json.dumps(old))), 3)
    (folder / "victor").mkdir()  # <student>/<exercise>: the folder names the student
    (folder / "victor" / f"walter_{NAME}.ipynb").write_text(json.dumps(v3))  # nbformat 3
    # a file name that is not UTF-8, and a cell that prints 50 MB
    flood = variant(
        solved, lambda nb: nb.cells.insert(3, nbformat.v4.new_code_cell('print("x" * 50_000_000)'))
    )
    nbformat.write(flood, folder / os.fsdecode(f"zo\xffe_{NAME}.ipynb".encode("latin-1")))
    (folder / f"mallory_{NAME}.ipynb").write_text(alternative)
    (folder / f"judy_{NAME}.ipynb").write_text('{"cells": [ broken json')
    (folder / "notes.ipynb").write_text("{}")  # matches no exercise: skipped, reported
    # Not regular files: links to the solution and to a peer, a FIFO (reading it would
    # block the batch), and a linked folder that leads out of the class (never followed).
    (folder / f"lena_{NAME}.ipynb").symlink_to(root / "solutions" / f"{NAME}.ipynb")
    (folder / f"mike_{NAME}.ipynb").symlink_to(folder / f"alice_{NAME}.ipynb")
    os.mkfifo(folder / f"fifi_{NAME}.ipynb")
    outside = folder.parent / "outside"
    outside.mkdir()
    nbformat.write(solved, outside / f"{NAME}.ipynb")
    (folder / "olaf").symlink_to(outside, target_is_directory=True)
    # Names that print alike: a zero-width space, and an accent composed or not.
    nbformat.write(solved, folder / f"alice\u200b_{NAME}.ipynb")
    nbformat.write(blank, folder / f"jos\u00e9_{NAME}.ipynb")
    nbformat.write(solved, folder / f"jose\u0301_{NAME}.ipynb")


def _alternative_text(root):
    text = (root / "solutions" / f"{NAME}.py").read_text()
    for question, code in ALTERNATIVE_CORRECT.items():
        text = with_body(text, question, code)
    return text


MARKER = "course-attack-marker"  # written to files and process titles an attack leaves
SECRET = "course-attack-secret.py"  # an owner-only file in sys.prefix (grade_class)

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
    # the grader's solutions, found through the installed package, executed for their answers
    # (the sandbox sees the package's grading copy, not the repository around it)
    "read_solutions": """
import course_utils, glob, pathlib
root = pathlib.Path(course_utils.__file__).resolve().parents[1]
for path in glob.glob(str(root / "solutions" / "*.py")):
    source = open(path).read()
    if "def kl_divergence" in source:
        for cell in source.split("# %%"):
            if "### BEGIN SOLUTION" in cell:
                exec(cell.split("\\n", 1)[1])
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
            if "alice" in path and "def kl_divergence" in text:
                for cell in json.loads(text)["cells"]:
                    if "### BEGIN SOLUTION" in "".join(cell["source"]):
                        exec("".join(cell["source"]))
            with open(path, "w") as f:
                f.write("{}")
        except Exception:
            pass
""",
    # a detached process that outlives grading and rewrites the CSV, and kills everything
    "processes": f"""
import os, signal, subprocess, sys
code = (
    "import time, glob\\nfor _ in range(12):\\n    time.sleep(5)\\n"
    "    for p in glob.glob('/**/*.csv', recursive=True): open(p, 'w').write('attacker,1000')"
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
    # the completion marker the worker used to write, then a clean exit before any test
    "forged_done": """
import os
open("/tmp/out/done", "w").close()
os._exit(0)
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
    # the judges' job files (every solution cell) where TMPDIR points outside /tmp, as on a
    # cluster (grade_class sets it under /var/tmp)
    "tmpdir_judge": """
import glob, json
for path in glob.glob("/var/tmp/**/judge-*.json", recursive=True):
    try:
        for cell in json.load(open(path))["cells"]:
            if cell["test"] is None and "def " in cell["source"]:
                exec(cell["source"])
    except Exception:
        pass
""",
    # a file only the grader's user may read, in a folder the sandbox sees (sys.prefix):
    # grade_class puts the solution's functions in it
    "grader_secret": f"""
import sys
try:
    exec(open(sys.prefix + "/{SECRET}").read())
except OSError:
    pass
""",
    # a cell that catches the per-cell alarm and keeps running (under the total limit)
    "catch_timeout": f"""
import time
start = time.monotonic()
while time.monotonic() - start < {TOTAL_TIMEOUT_S // 2}:
    try:
        time.sleep(1)
    except BaseException:
        pass
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


# Where an attack's cell goes: after the imports (default), at the end, or before every test
# cell (so that what it defines replaces the stubs the tests would call).
AT_END = ("processes", "poisoned_records")
BEFORE_EACH_TEST = ("read_solutions", "peers", "tmpdir_judge", "grader_secret")


def _with_cell(base: nbformat.NotebookNode, source: str, where: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(base)))
    cell = nbformat.v4.new_code_cell(source.strip())
    if where == "end":
        nb.cells.append(cell)
    elif where == "tests":
        for test in _test_cells(nb):
            nb.cells.insert(nb.cells.index(test), nbformat.v4.new_code_cell(source.strip()))
    else:
        imports = next(
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and "import torch" in c.source and "colab" not in c.source
        )
        nb.cells.insert(imports + 1, cell)
    return nb


def _tree_hashes(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders``."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _marker_processes() -> list[str]:
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if MARKER in line and "ps -eo" not in line]


def add_attacks(root: Path, folder: Path) -> None:
    """One submission per attack, and the attacks that leave a solved notebook's marks
    alone added to one (the honest and blank peers are make_class's alice and bob)."""
    solved = nbformat.read(root / "solutions" / f"{NAME}.ipynb", as_version=4)
    blank = nbformat.read(root / "exercises" / f"{NAME}.ipynb", as_version=4)
    for name, code in ATTACKS.items():
        where = "end" if name in AT_END else "tests" if name in BEFORE_EACH_TEST else "start"
        nbformat.write(_with_cell(blank, code, where), folder / f"{name}_{NAME}.ipynb")
    for name in HONEST_WITH:
        path = folder / f"solved+{name}_{NAME}.ipynb"
        nbformat.write(_with_cell(solved, ATTACKS[name], "start"), path)


@contextlib.contextmanager
def _tmpdir(path: Path) -> Iterator[None]:
    """``TMPDIR`` (and ``tempfile``'s cached folder) set to ``path`` for a while."""
    before, cached = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(path), None
    try:
        yield
    finally:
        tempfile.tempdir = cached
        if before is None:
            os.environ.pop("TMPDIR")
        else:
            os.environ["TMPDIR"] = before


def grade_class(root: Path, work: Path) -> dict[str, Any]:
    """Build the class in ``work/submissions`` and grade it once, as the README says."""
    folder = work / "submissions"
    make_class(root, folder)
    add_attacks(root, folder)
    guarded = (root / "exercises", root / "solutions", root / "course_utils")
    before, submissions_before = _tree_hashes(*guarded), _tree_hashes(folder)
    csv_path = work / "grades.csv"
    secret = Path(sys.prefix) / SECRET
    solved = (root / "solutions" / f"{NAME}.py").read_text().split("# %%")
    secret.write_text("\n".join(c.split("\n", 1)[1] for c in solved if "BEGIN SOLUTION" in c))
    secret.chmod(0o600)
    tmpdir = Path(tempfile.mkdtemp(prefix="course-test-tmpdir-", dir="/var/tmp"))
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out, _tmpdir(tmpdir):
            code = cli.main([
                "grade", str(folder), "--source", str(root / "exercises"), "--csv", str(csv_path),
                "--jobs", "3", "--cell-timeout", str(CELL_TIMEOUT_S),
                "--total-timeout", str(TOTAL_TIMEOUT_S),
            ])  # fmt: skip
    finally:
        secret.unlink()
        shutil.rmtree(tmpdir, ignore_errors=True)
    after = _tree_hashes(*guarded)
    with csv_path.open() as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return {
        "code": code,
        "rows": rows,
        "stdout": out.getvalue(),
        "folder": folder,
        "changed": {p for p, h in before.items() if after.get(p) != h},
        "new_files": set(after) - set(before),
        "submissions_before": submissions_before,
        "submissions_after": _tree_hashes(folder),
        "csv_path": csv_path,
        "processes": _marker_processes(),
    }
