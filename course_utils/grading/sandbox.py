"""The sandbox a submission's code runs in during class grading (Linux: bubblewrap).

What the student's process gets: the whole file system read-only, except the folders the
grader hides (the course sources and solutions, the exercise sources, the submissions,
the CSV's folder, the working directory) over which an empty file system is mounted, with
the installed Python and the course package put back read-only; an empty private
``/tmp`` and ``/dev/shm``; its job folder read-only at ``/tmp/job`` and an empty output folder
at ``/tmp/out``; its own user, PID, network, IPC and UTS namespaces (no network; it sees only
its own processes; uid ``nobody``); an environment with nothing of the grader's. Writable:
``/tmp`` and ``/dev/shm`` (size-capped tmpfs) and ``/tmp/out`` (polled by the grader, which
kills the sandbox when it grows past its cap); ``/dev`` and the hidden folders are
read-only. Limits: CPU seconds, address space, file size, open files; processes through a
``pids`` cgroup where one can be made (``RLIMIT_NPROC`` does not bind a process started by
root). When
the sandbox's first process ends, the kernel kills every process in its PID namespace, so
nothing the student started outlives its grading.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

BWRAP = "bwrap"
# Never hidden, even when grading runs from one of them: the sandbox's Python needs them.
SYSTEM_DIRS = {Path(p) for p in ("/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt")}
EXPOSED_WITHOUT_SANDBOX = (
    "--unsafe-no-sandbox: each submission's code runs as you, with your files and "
    "processes in reach. It can read the solutions, the exercise sources and the other "
    "submissions, write anything you can write (the CSV, the course package, other "
    "notebooks), use the network, and start processes that outlive the grading. The "
    "verdicts are still computed outside it, so its own score can only be what its "
    "functions earn; use this only for submissions you trust."
)


@dataclass(frozen=True)
class Limits:
    """Per-submission resource limits."""

    cpu_seconds: int = 900
    memory_bytes: int = 8 * 2**30
    file_bytes: int = 512 * 2**20
    open_files: int = 512
    processes: int = 256
    scratch_bytes: int = 2**30  # each of the private /tmp and /dev/shm (RAM-backed tmpfs)
    output_bytes: int = 2**30  # all records together; the grader polls and kills past it
    output_files: int = 1000


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made here (not Linux, no bubblewrap, or user namespaces off)."""


def _pids_cgroup() -> Path | None:
    """A fresh ``pids`` cgroup (v2 or v1) this process may write, else ``None``."""
    for parent in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/pids")):
        if not (parent / "cgroup.procs").exists() or not os.access(parent, os.W_OK):
            continue
        if parent.name == "cgroup" and "pids" not in _read(parent / "cgroup.controllers"):
            continue
        group = parent / f"course-grade-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
            return group
        except OSError:
            continue
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@dataclass
class Sandbox:
    """Runs the class-grading worker on one job: in bubblewrap, or (``enabled=False``,
    ``--unsafe-no-sandbox``) directly, with the same limits and environment."""

    hidden: Iterable[Path]
    limits: Limits = field(default_factory=Limits)
    enabled: bool = True

    def __post_init__(self) -> None:
        resolved = {Path(p).resolve() for p in self.hidden}
        self.hidden = sorted(p for p in resolved if p not in SYSTEM_DIRS)

    def command(
        self, job: Path, out: Path, cgroup: Path | None, package: Path | None = None
    ) -> list[str]:
        """The worker's command line: limits (``prlimit``), the cgroup, bubblewrap.
        ``package``: a grading copy of the course package (``classgrade.grading_package``)
        mounted where the installed one is, so that its sources are all the sandbox sees;
        the package's data folders (``data_folders``) are mounted from the original."""
        inside_job, inside_out = ("/tmp/job", "/tmp/out") if self.enabled else (str(job), str(out))
        worker = [
            sys.executable, "-m", "course_utils.grading.worker", "record",
            f"{inside_job}/job.json", inside_out,
        ]  # fmt: skip
        limits = self.limits
        prlimit = [
            "prlimit", f"--cpu={limits.cpu_seconds}", f"--as={limits.memory_bytes}",
            f"--fsize={limits.file_bytes}", f"--nofile={limits.open_files}", "--core=0",
        ]  # fmt: skip
        if os.geteuid() != 0:  # RLIMIT_NPROC counts all of the user's processes
            prlimit.append(f"--nproc={limits.processes * 16}")
        procs = str(cgroup / "cgroup.procs") if cgroup is not None else "/dev/null"
        enter = ["sh", "-c", 'echo $$ > "$0" 2>/dev/null; exec "$@"', procs]
        if not self.enabled:
            return [*enter, *prlimit, "--", *worker]
        size = ["--size", str(limits.scratch_bytes)]
        cmd = [
            BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            *size, "--tmpfs", "/tmp", *size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
        ]  # fmt: skip
        hidden = [str(p) for p in self.hidden if p.exists() and p != Path("/")]
        for path in hidden:
            cmd += ["--size", "1048576", "--tmpfs", path]
        for keep in self._kept():
            cmd += ["--ro-bind", str(keep), str(keep)]
        if package is not None:
            installed = installed_package()
            cmd += ["--ro-bind", str(package), str(installed)]
            for folder in data_folders(installed):
                cmd += ["--ro-bind", str(folder), str(installed / folder.name)]
        for path in hidden:  # nothing can be written where the hidden folders were
            cmd += ["--remount-ro", path]
        cmd += [
            "--ro-bind", str(job), "/tmp/job", "--bind", str(out), "/tmp/out",
            "--unshare-all", "--uid", "65534", "--gid", "65534", "--hostname", "sandbox",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--chdir", "/tmp",
            "--clearenv",
        ]  # fmt: skip
        for key, value in self.environment().items():
            cmd += ["--setenv", key, value]
        return [*enter, *prlimit, "--", *cmd, "--", *worker]

    def _kept(self) -> list[Path]:
        """What must stay visible inside a hidden folder: Python and the course package."""
        wanted = [Path(sys.prefix), Path(sys.base_prefix), installed_package()]
        return [
            p
            for p in (w.resolve() for w in wanted)
            if any(p == h or h in p.parents for h in self.hidden)
        ]

    @staticmethod
    def environment() -> dict[str, str]:
        """The only variables the student's process gets."""
        return {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def start(
        self, job: Path, out: Path, package: Path | None = None
    ) -> tuple[subprocess.Popen, Path | None]:
        """Start the worker on ``job/job.json`` writing to ``out`` (``package``: see
        ``command``); its output is discarded. Returns the process and its cgroup (pass
        both to ``stop``)."""
        cgroup = _pids_cgroup()
        if cgroup is not None:
            (cgroup / "pids.max").write_text(str(self.limits.processes))
        proc = subprocess.Popen(
            self.command(job, out, cgroup, package),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=self.environment(), start_new_session=True, close_fds=True,
        )  # fmt: skip
        return proc, cgroup

    @staticmethod
    def stop(proc: subprocess.Popen, cgroup: Path | None) -> None:
        """Kill the sandbox and everything in it; remove its cgroup."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if cgroup is None:
            return
        for _ in range(100):
            for pid in _read(cgroup / "cgroup.procs").split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            try:
                cgroup.rmdir()
                return
            except OSError:
                time.sleep(0.05)


def installed_package() -> Path:
    """The folder of the course package this grader runs."""
    import course_utils

    return Path(course_utils.__file__).resolve().parent


def data_folders(package: Path) -> list[Path]:
    """The package's folders that hold data and no Python (shipped weights, datasets)."""
    return sorted(
        d
        for d in package.iterdir()
        if d.is_dir() and d.name != "__pycache__" and not any(d.rglob("*.py"))
    )


def check_available() -> None:
    """Raise ``SandboxUnavailable`` with the reason unless bubblewrap works here."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"class grading's sandbox needs Linux, this is {sys.platform}")
    if shutil.which(BWRAP) is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: `sudo apt-get install bubblewrap` "
            "(Debian, Ubuntu) or `sudo dnf install bubblewrap` (Fedora)"
        )
    probe = subprocess.run(
        [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all",
         "--uid", "65534", "--gid", "65534", "--die-with-parent", "--", "true"],
        capture_output=True, text=True,
    )  # fmt: skip
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap cannot make a sandbox here: {probe.stderr.strip()[:300]} "
            "(are unprivileged user namespaces disabled?)"
        )
