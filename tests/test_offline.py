"""Nothing downloads at run time: the test process cannot open a non-loopback connection
(conftest's guard), and no course code calls a download API."""

import re
import socket

import pytest

DOWNLOAD_APIS = re.compile(
    r"urlopen|urlretrieve|urllib\.request|requests\.(get|post)|torch\.hub|hf_hub|"
    r"download\s*=\s*True|fetch_openml|load_dataset\("
)


def test_guard_blocks_outside_connections():
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s,
        pytest.raises(RuntimeError, match="network access"),
    ):
        s.connect(("192.0.2.1", 80))  # TEST-NET-1: refused by the guard before any packet


def test_no_course_code_calls_a_download_api(root):
    files = [
        *root.glob("course_utils/*.py"),
        *root.glob("lectures/*.py"),
        *root.glob("solutions/*.py"),
    ]
    assert len(files) > 10
    offenders = [f.relative_to(root) for f in files if DOWNLOAD_APIS.search(f.read_text())]
    assert offenders == []
