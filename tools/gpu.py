"""Every lecture and solution on a GPU, one line per notebook (``make gpu``).

Each notebook runs top to bottom under ``pytest --nbval-lax`` in its own kernel (as
self-grading runs it: ``course_utils.grading.selfgrade.run_notebook``) with
``COURSE_DEVICE`` set, so ``course_utils.device.get_device`` fails loudly if the device is
missing. A last cell, added to a temporary copy, records the kernel's peak GPU memory
(0 for a notebook that computes on small CPU tensors only, as exercise set 00 does).
Several notebooks run at once (the GPU and the CPU cores are shared). CI never needs a
GPU: this is for a machine that has one.

    python tools/gpu.py [--device cuda] [--jobs 4] [--timeout 600] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PROBE = """\
# make gpu: how much the notebook put on the accelerator
import json, os, torch
device = os.environ["COURSE_DEVICE"]
peak = torch.cuda.max_memory_allocated() if device == "cuda" else -1
json.dump({{"peak_bytes": peak}}, open({report!r}, "w"))
"""


def run(path: Path, device: str, timeout: int) -> dict[str, object]:
    """Run one notebook on ``device``: status, seconds, failed cells, peak GPU memory."""
    from course_utils.grading import selfgrade

    with tempfile.TemporaryDirectory(prefix="course-gpu-") as tmp:
        copy, report = Path(tmp) / path.name, Path(tmp) / "gpu.json"
        nb = nbformat.read(path, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(PROBE.format(report=str(report))))
        nbformat.write(nb, copy)
        start = time.monotonic()
        cells, stopped = selfgrade.run_notebook(copy, cell_timeout=timeout, total_timeout=timeout)
        seconds = time.monotonic() - start
        peak = json.loads(report.read_text())["peak_bytes"] if report.is_file() else None
    bad = [c for c in cells if not c["passed"]]
    failed = [f"cell {c['cell']}: {c['hint'][:120]}" for c in bad[:1]]  # the first is the cause
    failed += [f"... and {len(bad) - 1} later cells"] if len(bad) > 1 else []
    status = "timeout" if stopped else "failed" if failed or peak is None else "ok"
    gib = None if peak is None or peak < 0 else peak / 2**30
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    return {
        "notebook": name,
        "status": status,
        "seconds": seconds,
        "peak_gib": gib,
        "failed": failed,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="default: every lecture and solution"
    )
    parser.add_argument("--device", default="cuda", help="COURSE_DEVICE (default cuda)")
    parser.add_argument("--jobs", type=int, default=4, help="notebooks at once (default 4)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per notebook")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(
        [*(ROOT / "lectures").glob("*.ipynb"), *(ROOT / "solutions").glob("*.ipynb")]
    )
    os.environ["COURSE_DEVICE"] = args.device
    os.environ.setdefault("MPLBACKEND", "Agg")
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda p: run(p, args.device, args.timeout), paths))
    print(f"\n{'notebook':<36}{'status':>8}{'seconds':>9}{'peak GPU GiB':>14}")
    for r in rows:
        peak = "" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        print(f"{r['notebook']:<36}{r['status']:>8}{r['seconds']:>9.1f}{peak:>14}")
        for line in r["failed"]:
            print(f"    {line}")
    ok = sum(r["status"] == "ok" for r in rows)
    print(f"{ok}/{len(rows)} ok on {args.device}, {time.monotonic() - start:.0f} s in all "
          f"with {args.jobs} at once")  # fmt: skip
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
