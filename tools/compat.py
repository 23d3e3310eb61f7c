"""`make compat`: the course in Colab-like environments (issue 17).

For each Python given (3.12 and 3.13 by default): a fresh venv under ``build/compat/`` gets
what Colab ships — the newest torch on PyPI, numpy 2.0.x, matplotlib 3.10.x, ipywidgets
7.7.1, ipykernel 6 — then the course is installed by running the notebooks' own Colab setup
cell (``google.colab`` faked, the repository cloned from this working copy), and every
lecture (with the widget kernel test), every solution notebook and ``course grade`` on an
exercise and on a solution run in it. Prints a table: notebook, result, seconds.

It downloads gigabytes the first time (PyPI's Linux torch is a CUDA build), so it is not
part of ``make test``.

Usage: python tools/compat.py [PYTHON ...]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "compat"
COLAB = ["torch", "numpy==2.0.*", "matplotlib==3.10.*", "ipywidgets==7.7.1", "ipykernel==6.*"]
TEST_TOOLS = ["nbclient", "pytest-timeout"]  # what the tests need beyond the course


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run(cmd, text=True, **kwargs)


def _setup_cell() -> str:
    nb = json.loads((ROOT / "lectures" / "00_foundations.ipynb").read_text())
    return "".join(nb["cells"][0]["source"])


def _versions(python: Path) -> str:
    code = (
        "import sys, importlib.metadata as m; print('Python', sys.version.split()[0], *("
        "f'{n} {m.version(n)}' for n in ('torch', 'numpy', 'matplotlib', 'ipywidgets', "
        "'ipykernel')), sep=', ')"
    )
    return _run([str(python), "-c", code], capture_output=True).stdout.strip()


def _junit_rows(xml: Path) -> list[tuple[str, str, float]]:
    rows: dict[str, list] = {}
    for case in ET.parse(xml).iter("testcase"):
        name = case.get("name", "")
        notebook = case.get("file") or case.get("classname", "")
        if "[" in name:  # the widget kernel test, parametrized by lecture
            notebook = f"lectures/{name.split('[', 1)[1].rstrip(']')}.ipynb"
        elif "::" in notebook or notebook.endswith(".py"):
            notebook = case.get("classname", notebook)
        failed = case.find("failure") is not None or case.find("error") is not None
        row = rows.setdefault(notebook, [notebook, "passed", 0.0])
        row[1] = "FAILED" if failed or row[1] == "FAILED" else "passed"
        row[2] += float(case.get("time", 0))
    return [tuple(r) for r in rows.values()]


def compat(python: str) -> tuple[str, list[tuple[str, str, float]]]:
    """Build one Colab-like environment for ``python``; return its versions and rows."""
    where = WORK / Path(python).name
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    _run([python, "-m", "venv", str(where / "venv")], check=True)
    py = where / "venv" / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    _run([str(py), "-m", "pip", "install", "-q", *COLAB], check=True)
    fake = where / "fake"  # `import google.colab` succeeds, as in Colab
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text("")
    env = {
        **os.environ,
        "PYTHONPATH": str(fake),
        "COURSE_REPO": str(ROOT),
        "COURSE_DIR": str(where / "course"),
    }
    cell = f"import google.colab\n{_setup_cell()}\nimport course_utils\n"
    start = time.perf_counter()
    setup = _run([str(py), "-c", cell], env=env)
    rows = [("Colab setup cell", "passed" if setup.returncode == 0 else "FAILED",
             time.perf_counter() - start)]  # fmt: skip
    versions = _versions(py)
    if setup.returncode:
        return versions, rows
    _run([str(py), "-m", "pip", "install", "-q", *TEST_TOOLS], check=True)
    course = where / "course"
    xml = where / "junit.xml"
    _run(
        [str(py), "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", f"--junitxml={xml}", "tests/test_widgets_kernel.py",
         *sorted(str(p.relative_to(course)) for p in (course / "solutions").glob("*.ipynb"))],
        cwd=course,
    )  # fmt: skip
    rows += _junit_rows(xml)
    course_cli = where / "venv" / "bin" / "course"
    for label, notebook, expect in (
        ("course grade exercises/00_foundations.ipynb", "exercises/00_foundations.ipynb", "0"),
        ("course grade solutions/00_foundations.ipynb", "solutions/00_foundations.ipynb", "8"),
    ):
        start = time.perf_counter()
        out = _run([str(course_cli), "grade", notebook], cwd=course, capture_output=True)
        total = [line.split()[-1] for line in out.stdout.splitlines() if line.startswith("total")]
        ok = out.returncode == 0 and total == [expect]
        rows.append((f"{label} (total {total[0] if total else '?'}/8)",
                     "passed" if ok else "FAILED", time.perf_counter() - start))  # fmt: skip
    return versions, rows


def main(pythons: list[str]) -> int:
    failed = False
    report = []
    for python in pythons:
        versions, rows = compat(python)
        report.append(f"\n{versions}\n| notebook | result | s |\n|---|---|---|")
        report += [f"| {name} | {result} | {seconds:.0f} |" for name, result, seconds in rows]
        failed |= any(result != "passed" for _, result, _ in rows)
    text = "\n".join(report)
    print(text)
    (WORK / "report.md").write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["python3.12", "python3.13"]))
