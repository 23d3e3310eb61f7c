"""One sandbox's control group: its processes, memory and CPU limited as a whole.

A fresh group is made under the grader's own (so the sandbox stays inside whatever limits
the grader itself runs under), with as many of three controllers as this machine lets the
grader use: ``pids`` (the number of processes), ``memory`` (every process of the sandbox
and its private tmpfs together; swap included where it is accounted) and ``cpu`` (a quota
of CPU cores, so that a sandbox full of busy processes slows only itself). cgroup v2 puts
them in one folder, cgroup v1 in one folder per controller. Where none can be made the
sandbox runs without (the fallback: ``sandbox.Sandbox`` says what still holds).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("pids", "memory", "cpu")
CPU_PERIOD_US = 100_000
OPTIONAL = ("memory.swap.max", "memory.memsw.limit_in_bytes")  # only where swap is accounted


@dataclass
class Cgroup:
    """The folders of one sandbox's group: controller name -> folder (with cgroup v2 every
    controller has the same folder)."""

    folders: dict[str, Path]

    @classmethod
    def make(cls, processes: int, memory_bytes: int, cpus: float) -> Cgroup | None:
        """A group with every controller it could get, each limited; ``None`` if none."""
        name = f"course-grade-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        unified = (ROOT / "cgroup.controllers").is_file()
        folders = {}
        for controller in CONTROLLERS:
            parent = _parent(controller, unified)
            if parent is None:
                continue
            folder = parent / name
            try:
                folder.mkdir(exist_ok=unified)
                for file, value in _settings(controller, unified, processes, memory_bytes, cpus):
                    if file not in OPTIONAL or (folder / file).exists():
                        (folder / file).write_text(value)
            except OSError:
                if not unified or not folders:
                    with contextlib.suppress(OSError):
                        folder.rmdir()
                continue
            folders[controller] = folder
        return cls(folders) if folders else None

    def procs(self) -> list[Path]:
        """The ``cgroup.procs`` file of each folder: a process written there joins."""
        return [f / "cgroup.procs" for f in sorted(set(self.folders.values()))]

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the group for passing its memory limit."""
        folder = self.folders.get("memory")
        if folder is None:
            return False
        for file in ("memory.events", "memory.oom_control"):  # v2, v1
            for line in _read(folder / file).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip() not in ("", "0"):
                    return True
        return False

    def remove(self) -> None:
        """Kill every process left in the group and remove its folders."""
        for folder in sorted(set(self.folders.values())):
            for _ in range(100):
                for pid in _read(folder / "cgroup.procs").split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


def _parent(controller: str, unified: bool) -> Path | None:
    """The grader's own group for ``controller``, if the grader may make groups in it."""
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, names, path = line.split(":", 2)
        if unified and names == "":
            folder = ROOT / path.lstrip("/")
            enabled = _read(folder / "cgroup.subtree_control").split()
            if controller not in enabled:
                with contextlib.suppress(OSError):
                    (folder / "cgroup.subtree_control").write_text(f"+{controller}")
                enabled = _read(folder / "cgroup.subtree_control").split()
            return folder if controller in enabled and os.access(folder, os.W_OK) else None
        if not unified and controller in names.split(","):
            folder = ROOT / controller / path.lstrip("/")
            return folder if os.access(folder, os.W_OK) else None
    return None


def _settings(
    controller: str, unified: bool, processes: int, memory_bytes: int, cpus: float
) -> list[tuple[str, str]]:
    """The files that set ``controller``'s limit, and their values, in the order to write."""
    quota = str(int(cpus * CPU_PERIOD_US))
    if controller == "pids":
        return [("pids.max", str(processes))]
    if controller == "memory":
        if unified:
            return [("memory.max", str(memory_bytes)), ("memory.swap.max", "0")]
        return [
            ("memory.limit_in_bytes", str(memory_bytes)),
            ("memory.memsw.limit_in_bytes", str(memory_bytes)),
        ]
    if unified:
        return [("cpu.max", f"{quota} {CPU_PERIOD_US}")]
    return [("cpu.cfs_period_us", str(CPU_PERIOD_US)), ("cpu.cfs_quota_us", quota)]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
