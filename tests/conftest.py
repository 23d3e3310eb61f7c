"""Shared fixtures. Tests run on the CPU with the course's default of one thread."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Set 00's class fixtures and attacks, graded once (tests/classbatch.py); its tests are
    in one xdist group, so that one worker grades it."""
    import classbatch

    return classbatch.grade_class(ROOT, tmp_path_factory.mktemp("class"))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Fail any test that opens a connection beyond this machine (kernels use loopback)."""
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise RuntimeError(f"network access attempted during tests: {address!r}")
        return real_connect(self, address)

    socket.socket.connect = guarded_connect
    yield
    socket.socket.connect = real_connect
