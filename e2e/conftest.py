"""Fixtures of the browser suite: JupyterLab serving a temporary copy of the lectures, and
Debian's Chromium driven by Playwright. Everything started here is stopped by its own pid.

Under pytest-xdist each worker has its own JupyterLab, Chromium and log files
(``build/e2e/*-<worker>.txt``); the latency rows reach the controller as user properties."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, Request, sync_playwright

from course_utils import build

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "e2e"
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
CONSOLE_LOG = OUT / f"console-{WORKER}.txt"
STATE_LOG = OUT / f"notebook_state-{WORKER}.txt"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The one outside request allowed: the Open-in-Colab badge under each lecture's title is a
# remote image in the markdown. Offline it cannot load ("Failed to load resource"), which
# only leaves the badge blank; JupyterLab and the course make no other outside request.
COLAB_BADGE = build.COLAB_BADGE
# (lecture, widget index, control label, moves, median s, max s), from the tests' reports.
LATENCY_ROWS: list[tuple[str, int, str, int, float, float]] = []


@dataclass
class Lab:
    """A running JupyterLab: where it serves from and how to reach it."""

    url: str
    token: str
    root_dir: Path
    runtime_dir: Path

    def api(self, path: str, method: str = "GET") -> object:
        """Call the server's REST API; the JSON answer, or None when empty."""
        request = urllib.request.Request(
            f"{self.url}/api/{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_sessions(self) -> None:
        """Shut down every notebook session and its kernel."""
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _our_kernels(runtime_dir: Path) -> list[int]:
    """Pids of ipykernel processes whose connection file is in ``runtime_dir``."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "ipykernel_launcher" in cmdline and str(runtime_dir) in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab from .venv on 127.0.0.1, serving a copy of lectures/*.ipynb."""
    base = tmp_path_factory.mktemp("lab")
    root_dir, runtime_dir = base / "notebooks", base / "runtime"
    root_dir.mkdir()
    for notebook in sorted((ROOT / "lectures").glob("0*.ipynb")):
        shutil.copy(notebook, root_dir)
    # Nor the page: no "get notified about Jupyter news?" toast (it asks while fetchNews is
    # "none", whatever news_url says), no update check.
    settings = base / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # Every cell in the page, not only those scrolled into view (JupyterLab's windowing),
    # so that the text checks see every output.
    notebook = settings.parent / "notebook-extension"
    notebook.mkdir()
    (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(24)
    env = {
        **os.environ,
        # Own config, data and runtime dirs: no user settings or workspaces leak in, and
        # kernels' connection files land where _our_kernels finds them.
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
    }
    command = [
        str(ROOT / ".venv" / "bin" / "jupyter"), "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir}",
        # No calls out: no news feed, no update check, no extension listing from PyPI.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        # window.jupyterapp: the tests read kernel status, cells and the dirty flag from it.
        "--LabApp.expose_app_in_browser=True",
    ]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    OUT.mkdir(parents=True, exist_ok=True)
    for appended in (CONSOLE_LOG, STATE_LOG):  # the tests append to these
        appended.unlink(missing_ok=True)
    log = (OUT / f"jupyter-{WORKER}.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    running = Lab(f"http://127.0.0.1:{port}", token, root_dir, runtime_dir)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, f"jupyter lab exited; see {log.name}"
            try:
                running.api("status")
                break
            except OSError:
                assert time.monotonic() < deadline, "jupyter lab did not answer in 90 s"
                time.sleep(0.5)
        yield running
    finally:
        server.send_signal(signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        left = _our_kernels(runtime_dir)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"kernels left running after the server stopped: {left}"


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1400, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext, lab: Lab) -> Iterator[Page]:
    """A new tab; ``page.problems`` collects console errors, page errors and requests that
    leave 127.0.0.1 (console warnings go to build/e2e/console.txt). Its notebook sessions
    are shut down afterwards."""
    tab = browser.new_page()
    tab.set_default_timeout(30_000)
    problems: list[str] = []
    warnings: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        where = message.location.get("url")
        if message.type == "error" and where != COLAB_BADGE:
            problems.append(f"console: {message.text} ({where})")
        elif message.type == "warning":
            warnings.append(f"{tab.url}: {message.text}")

    def on_request(request: Request) -> None:
        if not request.url.startswith(("data:", "blob:", lab.url, COLAB_BADGE)):
            problems.append(f"outside request: {request.url}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("request", on_request)
    tab.problems = problems
    try:
        yield tab
    finally:
        tab.close()
        lab.shutdown_sessions()
        with CONSOLE_LOG.open("a") as log:
            log.writelines(f"{line}\n" for line in warnings + problems)


@pytest.fixture
def latency_rows(request: pytest.FixtureRequest) -> list[tuple[str, int, str, int, float, float]]:
    """The test's rows of the latency table; they reach the controller with its report."""
    rows: list[tuple[str, int, str, int, float, float]] = []
    request.node.user_properties.append(("latency", rows))
    return rows


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        for key, rows in report.user_properties:
            if key == "latency":
                LATENCY_ROWS.extend(tuple(row) for row in rows)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the latency table and save it to build/e2e/latency.txt."""
    if not LATENCY_ROWS:
        return
    LATENCY_ROWS.sort()
    n = max(len("lecture"), *(len(row[0]) for row in LATENCY_ROWS))
    w = max(len("control"), *(len(row[2]) for row in LATENCY_ROWS))
    header = f"{'lecture':<{n}} {'widget':>6}  {'control':<{w}} {'moves':>5} {'median s':>8}"
    header += f" {'max s':>6}"
    lines = [header] + [
        f"{lecture:<{n}} {index:>6}  {label:<{w}} {moves:>5} {median:>8.3f} {worst:>6.3f}"
        for lecture, index, label, moves, median, worst in LATENCY_ROWS
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "latency.txt").write_text("\n".join(lines) + "\n")
    terminalreporter.section("widget update latency (build/e2e/latency.txt)")
    for line in lines:
        terminalreporter.write_line(line)
