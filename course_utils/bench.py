"""``course bench NAME``: runs a registered benchmark; what the benchmarks share (the
machine line, two-column tables, the JSON results shipped in ``course_utils/weights``).

Each topic module registers its benchmarks (``@registry.benchmark``) next to the code they
measure and ``course bench`` runs them; ``course bench --help`` lists them all. Each
prints a table; nothing here is asserted by the tests (timings vary by machine).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys

import torch

from course_utils import registry
from course_utils.checkpoints import WEIGHTS_DIR


def machine() -> str:
    """The line each benchmark prints about where it ran."""
    threads = torch.get_num_threads()
    return f"{platform.machine()}, {threads} torch threads now, torch {torch.__version__}"


def print_rows(rows: list[tuple[str, str]]) -> None:
    """A two-column table: names left-aligned, values right-aligned."""
    width = max(len(name) for name, _ in rows) + 2
    for name, value in rows:
        print(f"{name:<{width}}{value:>12}")


def print_digits_benchmark(title: str, rows: list[tuple[str, str]], results: dict) -> None:
    """A digits benchmark's table: ``title``, its own ``rows``, then the training time,
    the epochs (and the one selected on validation) and the parameter count."""
    print(f"{title} on sklearn digits (train 1000 / val 350 / test 447); {machine()}")
    print_rows([
        *rows,
        ("training time (s)", f"{results['train_seconds']:.1f}"),
        ("epochs (best on validation)", f"{results['epochs']} ({results['best_epoch']})"),
        ("parameters", f"{int(results['parameters']):,}"),
    ])  # fmt: skip


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def stdev(values: list[float]) -> float:
    """The sample standard deviation (0 for one value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def load_json(filename: str, path: str | None) -> dict:
    """Benchmark results: ``path``, or the shipped ``course_utils/weights/<filename>``."""
    with open(path or WEIGHTS_DIR / filename) as f:
        return json.load(f)


def save_json(result: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}")


def main(argv: list[str]) -> int:
    """``course bench NAME [options]``: run the registered benchmark ``NAME``."""
    benchmarks = registry.benchmarks()
    parser = argparse.ArgumentParser(
        prog="course bench",
        description="run a benchmark and print its table",
        epilog="benchmarks:\n"
        + "\n".join(f"  {n:<13}{b.summary}" for n, b in sorted(benchmarks.items())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted(benchmarks))
    for option, (kind, text) in registry.OPTIONS.items():
        users = ", ".join(n for n, b in sorted(benchmarks.items()) if option in b.options)
        parser.add_argument(f"--{option}", type=kind, help=f"{users}: {text}")
    args = parser.parse_args(argv)
    bench = benchmarks[args.name]
    given = {k: getattr(args, k) for k in registry.OPTIONS if getattr(args, k) is not None}
    for option in given:
        if option not in bench.options:
            users = sorted(n for n, b in benchmarks.items() if option in b.options)
            print(
                f"course bench: --{option} only applies to {' and '.join(map(repr, users))}",
                file=sys.stderr,
            )
            return 2
    bench.run(**given)
    return 0
