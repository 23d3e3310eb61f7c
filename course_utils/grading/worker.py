"""The two processes of class grading: the student's (in the sandbox) and the judge.

``python -m course_utils.grading.worker record JOB OUT [PROGRESS_FD]`` runs in the sandbox.
It executes a submission's cells in order in an IPython shell; each test cell arrives
already split (``course_utils.grading.cells``), so it only records the first argument of
each check. Before each cell it writes the cell's number to PROGRESS_FD (the grader
enforces the per-cell limit from there); after each test cell it writes ``OUT/<n>.pt``:
the recorded values as plain tensors and numbers, and the cell's error if it raised.
Everything in this process may be tampered with by the student's code; nothing it writes
is trusted.

``python -m course_utils.grading.worker judge JOB`` runs outside the sandbox, on the
instructor's solution notebook with the judge side of every test cell (visible and
hidden), and keeps each check's arguments. Then, for each request on stdin (a sandbox's
OUT folder), it loads the records safely (``torch.load(weights_only=True)``, exact base
types only, sizes capped) and calls the real checks on them: the verdicts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

import torch

from course_utils.grading import checks
from course_utils.grading.report import clean, error_hint

# Bound now, before any student code runs: a notebook that replaces them in the module
# changes nothing the worker uses.
HIDDEN_GENERATOR, SET_HIDDEN_SEED, SOLUTION = (
    checks.hidden_generator,
    checks.set_hidden_seed,
    checks.solution,
)
MAX_RECORD_BYTES = 64 * 2**20  # per test cell (a trained model's state_dict is a few MB)
MAX_ERROR_CHARS = 2000  # of a test cell's error message, as loaded (hints show at most 600)
MAX_DEPTH = 8
MAX_ITEMS = 10_000
MAX_NODES = 200_000  # values in one record, after pickle's memo is expanded
MAX_ELEMENTS = 50_000_000  # tensor elements in one submission's records (200 MB of float32)


class CellTimeout(BaseException):
    """Raised in a cell that ran past its time limit (BaseException: no `except Exception`
    in student code swallows it)."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise CellTimeout(f"the cell ran past its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def derived_seed(seed: int, key: str) -> int:
    """A 32-bit seed from the grading seed and a test cell's key (question or q:hidden)."""
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)


def reseed(seed: int, key: str) -> None:
    """Seed torch, numpy and ``random`` from the grading seed and a test cell's key, so a
    test cell starts from the same random state in the sandbox and in the judge whatever
    the cells before it did."""
    import random

    import numpy as np

    value = derived_seed(seed, key)
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)


def course_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an exercise function on a forked torch generator seeded from the global one:
    the test cell's own random draws are then the same in the sandbox and in the judge."""
    seed = int(torch.randint(0, 2**62, ()))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return function(*args, **kwargs)


def _course_args(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


# ------------------------------------------------------------------ plain data


def to_plain(value: Any, depth: int = 0) -> Any:
    """``value`` as data ``torch.save`` writes and ``weights_only`` reads back: tensors
    (detached, on the CPU, of class ``torch.Tensor``), numbers, strings, and lists, tuples
    and dicts of them. Anything else becomes ``{"__opaque__": type name, "repr": ...}``."""
    if depth > MAX_DEPTH:
        return {"__opaque__": "too deeply nested", "repr": ""}
    if isinstance(value, torch.Tensor):
        return torch.Tensor(value.detach().cpu()).clone()
    if value is None or type(value) in (bool, int, float, str):
        return value if type(value) is not str else value[:2000]
    if isinstance(value, bool) or type(value).__name__ == "bool_":  # numpy's bool too
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list | tuple):
        items = [to_plain(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {str(k): to_plain(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    return {"__opaque__": type(value).__name__, "repr": repr(value)[:200]}


class Opaque:
    """What the judge sees of a value that was not plain data (a list of arrays, a
    module, ...): its type name and repr, so a check can say what it got."""

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return self.text


def _opaque(type_name: str, text: str) -> Opaque:
    name = "".join(ch for ch in clean(type_name, 60) if ch.isalnum() or ch == "_") or "object"
    return type(name, (Opaque,), {})(name, clean(text, 200))


class _Budget:
    """How much a loaded record may expand to: pickle's memo lets a few bytes name the same
    list a million times, and an expanded tensor (stride 0) clones to gigabytes."""

    def __init__(self) -> None:
        self.nodes, self.elements = MAX_NODES, MAX_ELEMENTS

    def spend(self, nodes: int = 1, elements: int = 0) -> None:
        self.nodes -= nodes
        self.elements -= elements
        if self.nodes < 0 or self.elements < 0:
            raise ValueError("record expands past the grader's limits")


def from_plain(value: Any, depth: int = 0, budget: _Budget | None = None) -> Any:
    """Rebuild a loaded record with exact base types only (the judge's side of
    ``to_plain``), within ``MAX_NODES`` values and ``MAX_ELEMENTS`` tensor elements.
    Raises ``ValueError`` on anything else."""
    budget = budget or _Budget()
    budget.spend()
    if depth > MAX_DEPTH + 1:
        raise ValueError("record nested too deeply")
    kind = type(value)
    if kind is torch.Tensor or kind is torch.nn.Parameter:
        budget.spend(elements=value.numel())
        return torch.Tensor(value.detach()).clone()
    if value is None or kind in (bool, int, float):
        return value
    if kind is str:
        return value[:2000]
    if kind in (list, tuple):
        if len(value) > MAX_ITEMS:
            raise ValueError("record too long")
        items = [from_plain(v, depth + 1, budget) for v in value]
        return items if kind is list else tuple(items)
    if kind is dict or kind.__name__ == "OrderedDict":
        if set(value) == {"__opaque__", "repr"}:
            return _opaque(str(value["__opaque__"]), str(value["repr"]))
        if len(value) > MAX_ITEMS or not all(type(k) is str for k in value):
            raise ValueError("record dict too long or with non-string keys")
        return {k: from_plain(v, depth + 1, budget) for k, v in value.items()}
    raise ValueError(f"record of type {kind.__name__}")


def open_regular(path: Path) -> BinaryIO | None:
    """``path`` opened for reading if it is a regular file (not a link, a FIFO, a device:
    the sandbox wrote it and may have made it anything), else ``None``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def load_record(path: Path, budget: _Budget | None = None) -> dict[str, Any] | None:
    """One test cell's record, safely: ``{"records": [(k, value), ...], "error": ...}``
    with the checks' first arguments in the order the cell reached them; ``None`` if there
    is no such regular file. ``budget``: shared by the records of one submission."""
    f = open_regular(path)
    if f is None:
        return None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_RECORD_BYTES:
            raise ValueError(f"record of {size} bytes, over the limit")
        raw = torch.load(f, weights_only=True, map_location="cpu")
    if type(raw) is not dict:
        raise ValueError("record is not a dict")
    records = raw.get("records", [])
    if type(records) is not list or len(records) > MAX_ITEMS:
        raise ValueError("malformed records")
    for item in records:
        if type(item) is not tuple or len(item) != 2 or type(item[0]) is not int:
            raise ValueError("malformed records")
    error = raw.get("error")
    if error is not None and not (
        type(error) is tuple and len(error) == 2 and all(type(e) is str for e in error)
    ):
        raise ValueError("malformed error")
    if error is not None:  # capped before anything reads it (a 150 MB message is legal data)
        error = (error[0][:80], error[1][:MAX_ERROR_CHARS])
    budget = budget or _Budget()
    return {"records": [(k, from_plain(v, 0, budget)) for k, v in records], "error": error}


# ------------------------------------------------------------------ running cells


def _shell(namespace: dict[str, Any]) -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance(colors="nocolor")
    shell.user_ns.update(namespace)
    return shell


def cell_namespace(user_ns: dict[str, Any], key: str, seed: int) -> dict[str, Any]:
    """Where the test cell ``key`` (a question, or ``"<question>:hidden"``) runs: the
    notebook's namespace; for a hidden test, a copy of it (its inputs cannot replace names
    the later visible tests use) with its own hidden seed, derived from the grading seed and
    its question, so that its inputs do not depend on which hidden tests ran before it."""
    if not key.endswith(":hidden"):
        return user_ns
    SET_HIDDEN_SEED(derived_seed(seed, key))
    return {**user_ns, "hidden_generator": HIDDEN_GENERATOR, "solution": SOLUTION}


def run_test(
    source: str, user_ns: dict[str, Any], key: str, seed: int, timeout: float
) -> tuple[str, str] | None:
    """Run one test cell ``key`` (either side of a split cell, or a whole one) where the
    notebook's cells ran, from the random state of (``seed``, ``key``); its error as
    ``(name, message)``, or ``None``. Whatever the cell raises is caught (the student's
    error, whatever it is); past ``timeout`` seconds it is stopped."""
    reseed(seed, key)
    try:
        with _time_limit(timeout):
            exec(compile(source, f"<test {key}>", "exec"), cell_namespace(user_ns, key, seed))
    except CellTimeout as exc:
        return ("Timeout", str(exc))
    except BaseException as exc:
        return (type(exc).__name__, str(exc)[:2000])
    return None


class Recorder:
    """``__course_record__`` on the student side: keeps each check's first argument, as
    plain data, in the order the cell reached it."""

    def __init__(self) -> None:
        self.records: list[tuple[int, Any]] = []

    def __call__(self, k: int, thunk: Callable[[], Any]) -> None:
        with torch.random.fork_rng(devices=[]):
            value = thunk()
        self.records.append((k, to_plain(value)))


class SiteCollector:
    """``__course_site__`` on the judge side: keeps each check's kind and the arguments the
    solution gives it, in the order the cell reached it."""

    def __init__(self) -> None:
        self.sites: list[tuple[int, str, tuple, dict]] = []

    def __call__(self, k: int, kind: str, thunk: Callable[[], Any]) -> None:
        with torch.random.fork_rng(devices=[]):
            args, kwargs = thunk()
        self.sites.append((k, kind, args, kwargs))


def student_globals(recorder: Recorder) -> dict[str, Any]:
    """The names the student side of a split test cell calls."""
    return {"__course_call__": course_call, "__course_record__": recorder}


def judge_globals(collector: SiteCollector) -> dict[str, Any]:
    """The names the judge side of a split test cell calls."""
    return {
        "__course_call__": course_call,
        "__course_site__": collector,
        "__course_args__": _course_args,
    }


def save_record(path: Path, records: list[tuple[int, Any]], error: tuple[str, str] | None) -> None:
    """One test cell's record, as ``load_record`` reads it back."""
    torch.save({"records": list(records), "error": error}, path)


def _run_code_cell(shell: Any, source: str, timeout: float) -> bool:
    """A student (or solution) code cell, as a kernel would run it: magics included; an
    error is the cell's and the next cell runs. Returns whether it ran past ``timeout``."""
    try:
        with _time_limit(timeout):
            result = shell.run_cell(source, store_history=False, silent=True)
    except CellTimeout:  # raised outside the code IPython runs (its own bookkeeping)
        return True
    return isinstance(result.error_in_exec, CellTimeout)  # IPython catches it in the code


def record(job_path: Path, out: Path, progress_fd: int | None = None) -> None:
    """The sandbox side: run the cells, write one record per test cell. Before each cell,
    its number goes to ``progress_fd``: the grader stops a cell that runs past its limit
    from outside (this process's own alarm only lets a notebook go on after a slow cell)."""
    job = json.loads(job_path.read_text())
    progress = os.fdopen(progress_fd, "w", buffering=1) if progress_fd is not None else None
    recorder = Recorder()
    shell = _shell(student_globals(recorder))
    stopped: int | None = None  # the latest code cell stopped at the time limit
    for n, cell in enumerate(job["cells"]):
        if progress is not None:
            with contextlib.suppress(OSError, ValueError):
                progress.write(f"{n}\n")
        if cell["test"] is None:
            if _run_code_cell(shell, cell["source"], job["cell_timeout"]):
                stopped = n
            continue
        recorder.records.clear()
        error = run_test(
            cell["source"], shell.user_ns, cell["test"], job["seed"], job["cell_timeout"]
        )
        if error is not None and error[0] != "Timeout" and stopped is not None:
            # what the test misses was never made: say why, not only "name undefined"
            error = (
                "Timeout",
                f"{job['cells'][stopped]['label']} ran past the "
                f"{job['cell_timeout']} s per-cell limit "
                f"before this test ({error[0]}: {error[1][:200]})",
            )
        with contextlib.suppress(Exception):
            save_record(out / f"{n}.pt", recorder.records, error)


Site = tuple[int, str, tuple, dict]


class Judge:
    """The judge side: the solution notebook's check arguments, and verdicts.

    ``sites`` maps each test (``"<question>"`` or ``"<question>:hidden"``) to the checks
    its judge side reached, ``static`` to each check's kind and literal hint
    (``cells.SplitCell.static``); ``points`` is every question's points, in order."""

    def __init__(
        self,
        points: dict[str, float],
        sites: dict[str, list[Site]],
        static: dict[str, dict[int, tuple[str, str | None]]],
    ) -> None:
        self.points, self.sites, self.static = points, sites, static

    @classmethod
    def from_job(cls, job: dict[str, Any]) -> Judge:
        """Run the solution notebook (``job["cells"]``, test cells already split) and keep
        the arguments of every check.

        Raises:
            RuntimeError: a solution code cell failed.
        """
        sites: dict[str, list[Site]] = {}
        static: dict[str, dict[int, tuple[str, str | None]]] = {}
        collector = SiteCollector()
        shell = _shell(judge_globals(collector))
        for n, cell in enumerate(job["cells"]):
            if cell["test"] is None:
                result = shell.run_cell(cell["source"], store_history=False, silent=True)
                if not result.success:
                    raise RuntimeError(f"solution cell {n} failed: {result.error_in_exec!r}")
                continue
            collector.sites = []
            reseed(job["seed"], cell["test"])
            exec(
                compile(cell["source"], f"<judge {n}>", "exec"),
                cell_namespace(shell.user_ns, cell["test"], job["seed"]),
            )
            sites[cell["test"]] = collector.sites
            static[cell["test"]] = {int(k): tuple(v) for k, v in cell["static"].items()}
        return cls(job["points"], sites, static)

    def verdicts(self, out: Path, tests: dict[str, str]) -> list[dict[str, Any]]:
        """One row per question from the sandbox's records in ``out``; ``tests`` maps a
        record's file name to the part it answers (``"<question>"`` or
        ``"<question>:hidden"``)."""
        parts: dict[str, dict[str, Any] | str] = {}
        budget = _Budget()
        for name, part in tests.items():
            try:
                loaded = load_record(out / name, budget)
            except Exception as exc:
                parts[part] = f"the sandbox returned an unreadable record ({clean(exc, 120)})"
                continue
            if loaded is not None:
                parts[part] = loaded
        rows = []
        for question, points in self.points.items():
            hint = None
            for part in (question, f"{question}:hidden"):
                if part not in self.sites:
                    continue
                hint = self._judge_part(
                    self.sites[part], self.static[part], parts.get(part), part.endswith(":hidden")
                )
                if hint is not None:
                    break
            passed = hint is None
            rows.append(
                {
                    "question": question,
                    "points": points,
                    "earned": points if passed else 0.0,
                    "passed": passed,
                    "hint": hint or "",
                }
            )
        return rows

    @staticmethod
    def _judge_part(
        sites: list[tuple[int, str, tuple, dict]],
        static: dict[int, tuple[str, str | None]],
        got: Any,
        hidden: bool = False,
    ) -> str | None:
        """``None`` if every check passes on the student's values, else the hint.

        The student's records are walked in the order their cell reached them; each is
        judged with the judge's arguments for the same check (its n-th run). A ``check``
        the solution's run never reached (an ``except`` branch) is judged on its own
        condition with its literal hint; other such records decide nothing. Every check
        the solution reached must have been reached and passed.
        """
        if got is None:
            return "the test cell did not run (an earlier fault stopped the notebook)"
        if isinstance(got, str):
            return got
        pending: dict[int, list[tuple[str, tuple, dict]]] = {}
        for k, kind, args, kwargs in sites:
            pending.setdefault(k, []).append((kind, args, kwargs))
        for k, value in got["records"]:
            try:
                if pending.get(k):
                    kind, args, kwargs = pending[k].pop(0)
                    _apply(kind, value, args, kwargs)
                elif static.get(k, ("",))[0] == "check":
                    _apply("check", value, (), {"hint": static[k][1]})
            except AssertionError as exc:
                return _without_values(str(exc)) if hidden else str(exc)
            except Exception as exc:  # a value the check cannot even read
                return (
                    f"{static.get(k, ('check',))[0]}: could not check the value ({clean(exc, 200)})"
                )
        if any(pending.values()):
            if got["error"] is not None:
                return describe_error(got["error"])
            return "the test cell stopped before one of its checks"
        return describe_error(got["error"]) if got["error"] is not None else None


def _without_values(message: str) -> str:
    """A hidden check's failure without its expected values (which a student could copy
    into the next submission): the check's name and its likely-mistake advice only."""
    name = message.split(":", 1)[0][:80] if ":" in message.splitlines()[0] else "a check"
    advice = message.partition("\nLikely mistake: ")[2]
    return f"{name}: wrong on the hidden test's inputs (values not shown)" + (
        f". Likely mistake: {advice}" if advice else ""
    )


def describe_error(error: tuple[str, str]) -> str:
    """The hint for a test cell that raised ``(name, message)``."""
    ename, evalue = error
    if ename == "Timeout":
        return f"Timeout: {evalue} (an infinite loop, or far too slow?)"
    return error_hint(ename, evalue)


def _apply(kind: str, value: Any, args: tuple, kwargs: dict[str, Any]) -> None:
    if kind == "check":
        if type(value) is not tuple or len(value) != 2:
            raise ValueError("malformed condition record")
        condition, message = value  # the student's message: it can only show their values
        if isinstance(condition, Opaque):
            raise ValueError(f"a condition of type {type(condition).__name__}")
        checks.check(bool(condition), clean(message), *args, **kwargs)
    elif kind == "check_grad":
        checks.check_grad(SimpleNamespace(grad=value), *args, **kwargs)
    else:
        getattr(checks, kind)(value, *args, **kwargs)


def judge(job_path: Path) -> None:
    """Serve verdicts: one JSON request per stdin line, one JSON reply per stdout line."""
    job = json.loads(job_path.read_text())
    reply = os.fdopen(os.dup(1), "w")  # replies only: the solution's prints go to stderr
    os.dup2(2, 1)
    try:
        judge_ = Judge.from_job(job)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), file=reply, flush=True)
        return
    print(json.dumps({"ready": True}), file=reply, flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        rows = judge_.verdicts(Path(request["out"]), request["tests"])
        print(json.dumps({"rows": rows}), file=reply, flush=True)


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    os.environ.setdefault("MPLBACKEND", "Agg")
    if argv[:1] == ["record"] and len(argv) in (3, 4):
        record(Path(argv[1]), Path(argv[2]), int(argv[3]) if len(argv) == 4 else None)
        return 0
    if argv[:1] == ["judge"] and len(argv) == 2:
        judge(Path(argv[1]))
        return 0
    print("usage: worker record JOB OUT [PROGRESS_FD] | worker judge JOB", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
