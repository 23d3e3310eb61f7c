"""The time table of the last test runs, per run and layer (``make test`` and ``make e2e``
print it at their end).

Each pytest run saves its own (``conftest.py``) to ``build/test-times/RUN.json``: per layer,
the tests, the seconds summed over them (both workers: about twice the wall time) and the
notebooks run (kernels, sandboxes, judges, browser runs), and the run's wall time.

    python tools/test_times.py RUN [RUN ...]     e.g. venv oldest e2e
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMES = ROOT / "build" / "test-times"
LAYERS = ("browser", "notebook", "class_batch", "sandbox", "mutation", "unit")


def main(runs: list[str]) -> int:
    header = f"{'run':<8}{'layer':<13}{'tests':>7}{'seconds':>9}{'notebooks':>11}{'wall s':>9}"
    lines, walls, total = [header], 0.0, {"tests": 0, "seconds": 0.0, "notebooks": 0}
    for run in runs:
        path = TIMES / f"{run}.json"
        if not path.is_file():
            lines.append(f"{run:<8}(no time table: {path.relative_to(ROOT)} is missing)")
            continue
        saved = json.loads(path.read_text())
        layers = saved["layers"]
        for i, name in enumerate(n for n in LAYERS if n in layers):
            row = layers[name]
            wall = f"{saved['wall']:>9.0f}" if i == 0 else ""
            lines.append(
                f"{run if i == 0 else '':<8}{name:<13}{row['tests']:>7}{row['seconds']:>9.0f}"
                f"{row['notebooks']:>11}{wall}"
            )
            for key in total:
                total[key] += row[key]
        walls += saved["wall"]
    lines.append(
        f"{'total':<21}{total['tests']:>7}{total['seconds']:>9.0f}{total['notebooks']:>11}"
        f"{walls:>9.0f}"
    )
    print("\n".join(["", "time per run and layer (build/test-times/)", *lines]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
