"""The sandbox a submission's code runs in during class grading (Linux: bubblewrap).

What the student's process sees is an allow-list, read-only: the system's programs and
libraries (``/usr`` and its links ``/bin``, ``/lib``, ...), the few files of ``/etc`` the
dynamic linker and fontconfig read, the Python installation and virtual environment the
grader runs, the course package (in class grading its grading copy, without the answers)
and the package's data. Nothing else of the machine: not the grader's home, its temporary
folders (wherever ``TMPDIR`` points), the course sources, the solutions, the other
submissions or the CSV; a folder the grader hides that lies inside an allowed one gets an
empty file system mounted over it. It gets an empty private ``/tmp`` and ``/dev/shm``
(size-capped tmpfs), its job folder read-only at ``/tmp/job`` and an empty output folder at
``/tmp/out`` (polled by the grader, which kills the sandbox when it grows past its cap); its
own PID, network, IPC and UTS namespaces (no network; it sees only its own processes); an
environment with nothing of the grader's.

Its user owns none of the grader's files. Run as root, bubblewrap needs no user namespace:
it makes the mounts with its own privileges, then ``setpriv`` drops to uid and gid 65534
(``nobody``) with no capabilities and no supplementary groups before the worker starts, so
a file only its owner may read stays unreadable. Run as another user, the sandbox is a user
namespace in which the grader's uid is shown as 65534: its files are the grader's, which is
why the allow-list hides everything but Python and the course.

Limits: CPU seconds, address space, file size and open files per process (``prlimit``);
processes, memory (all processes and the tmpfs together) and CPU cores per sandbox through
a control group where one can be made (``cgroups``). Without one, memory is limited per
process only, and processes by ``RLIMIT_NPROC`` when the grader is not root. When the
sandbox's first process ends, the kernel kills every process in its PID namespace, so
nothing the student started outlives its grading.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from course_utils.grading.cgroups import Cgroup

BWRAP = "bwrap"
SANDBOX_UID = 65534  # nobody
# Never hidden, even when grading runs from one of them: the sandbox's Python needs them.
SYSTEM_DIRS = {Path(p) for p in ("/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt")}
SYSTEM_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # beside /usr
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts", "localtime")
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
    memory_bytes: int = 8 * 2**30  # each process, and the whole sandbox where a cgroup can be made
    file_bytes: int = 512 * 2**20
    open_files: int = 512
    processes: int = 256
    cpus: float = 1.0  # CPU cores the whole sandbox may use at once (cgroup quota)
    scratch_bytes: int = 2**30  # each of the private /tmp and /dev/shm (RAM-backed tmpfs)
    output_bytes: int = 2**30  # all records together; the grader polls and kills past it
    output_files: int = 1000


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made here (not Linux, no bubblewrap, or user namespaces off)."""


@dataclass
class Running:
    """A started sandbox: its process, its control group (or ``None``), and the read end
    of the pipe on which the worker says which cell it starts (``worker.record``)."""

    proc: subprocess.Popen
    cgroup: Cgroup | None
    progress: int


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
        self,
        job: Path,
        out: Path,
        cgroup: Cgroup | None,
        package: Path | None = None,
        progress_fd: int | None = None,
        program: list[str] | None = None,
    ) -> list[str]:
        """The worker's command line: limits (``prlimit``), the cgroup, bubblewrap.
        ``package``: a grading copy of the course package (``classgrade.grading_package``)
        mounted where the installed one is, so that its sources are all the sandbox sees;
        the package's data folders (``data_folders``) are mounted from the original.
        ``progress_fd``: the pipe the worker reports each cell's start on. ``program``:
        run this instead of the worker, in the same sandbox (a probe)."""
        inside_job, inside_out = ("/tmp/job", "/tmp/out") if self.enabled else (str(job), str(out))
        worker = program or [
            sys.executable, "-m", "course_utils.grading.worker", "record",
            f"{inside_job}/job.json", inside_out,
            *([str(progress_fd)] if progress_fd is not None else []),
        ]  # fmt: skip
        limits = self.limits
        prlimit = [
            "prlimit", f"--cpu={limits.cpu_seconds}", f"--as={limits.memory_bytes}",
            f"--fsize={limits.file_bytes}", f"--nofile={limits.open_files}", "--core=0",
        ]  # fmt: skip
        root = os.geteuid() == 0
        if not root:  # RLIMIT_NPROC counts all of the user's processes; root is exempt
            prlimit.append(f"--nproc={limits.processes * 16}")
        procs = [str(p) for p in cgroup.procs()] if cgroup is not None else []
        enter = [  # join the cgroup before anything else runs, so no child escapes it
            "sh", "-c", 'while [ "$1" != -- ]; do echo $$ > "$1"; shift; done; shift; exec "$@"',
            "sh", *procs, "--",
        ]  # fmt: skip
        if not self.enabled:
            return [*enter, *prlimit, "--", *worker]
        size = ["--size", str(limits.scratch_bytes)]
        cmd = [  # the private mounts first: a bind below /tmp (a clone there) goes on top
            BWRAP, "--proc", "/proc", "--dev", "/dev", *size, "--perms", "1777", "--tmpfs",
            "/tmp", *size, "--perms", "1777", "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            *self._system(), *self._python(package),
        ]  # fmt: skip
        for path in self._hidden_inside(cmd):
            cmd += ["--size", "1048576", "--tmpfs", path, "--remount-ro", path]
        if package is not None:
            installed = installed_package()
            cmd += ["--ro-bind", str(package), str(installed)]
            for folder in data_folders(installed):
                cmd += ["--ro-bind", str(folder), str(installed / folder.name)]
        cmd += [
            "--ro-bind", str(job), "/tmp/job", "--bind", str(out), "/tmp/out",
            "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--hostname", "sandbox", "--die-with-parent",
            "--new-session", "--chdir", "/tmp", "--clearenv",
        ]  # fmt: skip
        for key, value in self.environment().items():
            cmd += ["--setenv", key, value]
        if not root:  # a user namespace in which the grader's uid is shown as nobody
            cmd += ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
            return [*enter, *prlimit, "--", *cmd, "--cap-drop", "ALL", "--", *worker]
        uid = str(SANDBOX_UID)
        drop = [  # after the mounts: the worker runs as nobody, with no capabilities
            "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        ]  # fmt: skip
        caps = ["--cap-drop", "ALL"] + [
            a for c in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP") for a in ("--cap-add", c)
        ]
        return [*enter, *prlimit, "--", *cmd, *caps, "--", *drop, *worker]

    @staticmethod
    def _system() -> list[str]:
        """bubblewrap's arguments for the system: ``/usr``, its links, a few ``/etc`` files."""
        args = ["--ro-bind", "/usr", "/usr"]
        for name in SYSTEM_LINKS:
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in ETC_FILES:
            if (Path("/etc") / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        return args

    def _python(self, package: Path | None) -> list[str]:
        """bubblewrap's arguments for Python (the installation, the virtual environment, its
        site-packages) and the installed course package, each folder above them made
        readable (bubblewrap makes missing folders owner-only when run as root)."""
        wanted = {
            Path(p).resolve()
            for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                      *site.getsitepackages(), Path(sys.executable).resolve().parent.parent)
            if Path(p).is_dir()
        }  # fmt: skip
        if package is None:
            wanted.add(installed_package())
        wanted = {p for p in wanted if not any(q in p.parents for q in wanted)}
        kept = sorted(p for p in wanted if p.parts[:2] != ("/", "usr"))
        targets = [*kept, installed_package()] if package is not None else kept
        args: list[str] = []
        made: set[Path] = set()
        for target in targets:
            for folder in reversed(target.parents):
                inside = any(folder == w or w in folder.parents for w in wanted)
                if folder != Path("/") and folder not in made and not inside:
                    made.add(folder)
                    args += ["--perms", "0755", "--dir", str(folder)]
        for path in kept:
            args += ["--ro-bind", str(path), str(path)]
        return args

    def _hidden_inside(self, args: list[str]) -> list[str]:
        """The hidden folders that lie inside a folder the sandbox sees (``args``' binds)."""
        bound = [Path(args[i + 2]) for i, a in enumerate(args) if a == "--ro-bind"]
        inside = [h for h in self.hidden if any(h == b or b in h.parents for b in bound)]
        return [str(h) for h in inside if h.exists()]

    @staticmethod
    def environment() -> dict[str, str]:
        """The only variables the student's process gets. ``PYTHONPATH`` is the folder of
        the package the grader runs (``installed_package``), so the sandbox imports that
        one (its grading copy), not another that an editable install's finder points to
        (a second clone of the course, which the sandbox cannot see)."""
        return {
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(installed_package().parent),
            "HOME": "/tmp",
            "TMPDIR": "/tmp",
            "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg",
            "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, job: Path, out: Path, package: Path | None = None) -> Running:
        """Start the worker on ``job/job.json`` writing to ``out`` (``package``: see
        ``command``); its output is discarded. Pass what it returns to ``stop``."""
        limits = self.limits
        cgroup = Cgroup.make(limits.processes, limits.memory_bytes, limits.cpus)
        self.hand_over(job, out)
        read, write = os.pipe()
        try:
            proc = subprocess.Popen(
                self.command(job, out, cgroup, package, write),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=self.environment(), start_new_session=True, pass_fds=(write,),
            )  # fmt: skip
        except BaseException:
            os.close(read)
            if cgroup is not None:
                cgroup.remove()
            raise
        finally:
            os.close(write)
        os.set_blocking(read, False)
        return Running(proc, cgroup, read)

    def hand_over(self, job: Path, out: Path) -> None:
        """Let the sandbox's user read ``job`` and write ``out``: as root the sandbox runs as
        nobody, who owns neither."""
        if self.enabled and os.geteuid() == 0:
            job.chmod(0o755)
            for path in job.iterdir():
                path.chmod(0o644)
            os.chown(out, SANDBOX_UID, SANDBOX_UID)

    @staticmethod
    def stop(running: Running) -> bool:
        """Kill the sandbox and everything in it; remove its cgroup. Returns whether the
        kernel killed one of its processes for passing the sandbox's memory limit."""
        proc = running.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with contextlib.suppress(OSError):
            os.close(running.progress)
        if running.cgroup is None:
            return False
        out_of_memory = running.cgroup.out_of_memory()
        running.cgroup.remove()
        return out_of_memory


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
    with tempfile.TemporaryDirectory(prefix="course-probe-") as tmp:
        job, out = Path(tmp, "job"), Path(tmp, "out")
        job.mkdir()
        out.mkdir()
        sandbox = Sandbox(hidden=[])
        sandbox.hand_over(job, out)
        program = [sys.executable, "-c", "import course_utils"]
        probe = subprocess.run(
            sandbox.command(job, out, None, program=program), capture_output=True, text=True
        )
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap cannot make a sandbox here: {probe.stderr.strip()[:300]} "
            "(are unprivileged user namespaces disabled?)"
        )
