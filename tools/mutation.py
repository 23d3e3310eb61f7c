"""How strong are the graded tests? Mutants of every graded function, graded (``make mutation``).

For each exercise set (``solutions/*.py``) and each function a graded question tests, every
mutant of its solution region (``course_utils.grading.mutants``) is graded through the
function-level path (``course_utils.grading.variants``: the question's visible and hidden
tests, both self-grading's and class grading's way). A mutant is **killed** when its
question fails, **equivalent** when ``tools/mutation_equivalent.toml`` lists it with the
reason it cannot be told from the solution, and **survived** otherwise. Prints a table per
set and every survivor; exits 1 if a set kills less than GOAL of its non-equivalent
mutants, or if the two graders ever disagree on a mutant.

    python tools/mutation.py [SET ...] [--jobs N] [--list]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = ROOT / "tools" / "mutation_equivalent.toml"
GOAL = 0.95
CELL_TIMEOUT_S = 20.0
MEMORY_BYTES = 6 * 2**30  # address space per process


@dataclass
class SetResult:
    name: str
    killed: int = 0
    equivalent: int = 0
    survivors: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    stale_equivalents: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        tried = self.killed + len(self.survivors)
        return self.killed / tried if tried else 1.0


def run_set(name: str, listed: dict[str, str], show: bool = False) -> SetResult:
    """Grade every mutant of set ``name``'s graded functions."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    # A mutant that asks for a huge tensor fails with its own error instead of the machine
    # killing the process (two such at once did, on 24 GiB).
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    import torch

    from course_utils.grading import mutants, variants

    torch.set_num_threads(1)
    start = time.monotonic()
    script = (ROOT / "solutions" / f"{name}.py").read_text()
    exercise = variants.ExerciseSet(script, seed=12345, timeout=CELL_TIMEOUT_S)
    result, seen = SetResult(name), set()
    for function in exercise.functions:
        region = variants.solution_region(script, function)
        for mutant in mutants.mutants(function, region):
            seen.add(mutant.key)
            verdict = exercise.grade(function, mutant.body)[function]
            if not verdict.agree:
                result.disagreements.append(
                    f"{mutant.key}\n      self: {verdict.hint[:200]!r}\n"
                    f"      class: {verdict.class_hint[:200]!r}"
                )
            if show:
                state = "passed" if verdict.passed else "killed"
                print(f"{name} {state:>7}  {mutant.key}", flush=True)
            if mutant.key in listed:
                result.equivalent += 1
            elif verdict.passed:
                result.survivors.append(f"[{mutant.operator}] {mutant.key}")
            else:
                result.killed += 1
    result.stale_equivalents = sorted(set(listed) - seen)
    result.seconds = time.monotonic() - start
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", help="exercise sets (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--list", action="store_true", help="print every mutant's verdict")
    args = parser.parse_args(argv)
    names = args.sets or sorted(p.stem for p in (ROOT / "solutions").glob("*.py"))
    equivalent = tomllib.loads(EQUIVALENT.read_text()) if EQUIVALENT.is_file() else {}
    start = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(
            pool.map(
                run_set, names, [equivalent.get(n, {}) for n in names], [args.list] * len(names)
            )
        )
    header = ("set", "mutants", "killed", "equiv.", "survived", "killed %", "s")
    print("\n{:<20}{:>8}{:>8}{:>8}{:>9}{:>10}{:>7}".format(*header))
    failed = False
    for r in results:
        total = r.killed + r.equivalent + len(r.survivors)
        print(
            f"{r.name:<20}{total:>8}{r.killed:>8}{r.equivalent:>8}{len(r.survivors):>9}"
            f"{100 * r.rate:>9.1f}%{r.seconds:>7.0f}"
        )
        failed |= r.rate < GOAL or bool(r.disagreements)
    for r in results:
        for title, items in (
            ("survived", r.survivors),
            ("self-grading and class grading disagree", r.disagreements),
            ("listed as equivalent but no longer generated", r.stale_equivalents),
        ):
            if items:
                print(f"\n{r.name}: {title} ({len(items)})")
                for item in items:
                    print(f"  {item}")
    print(f"\n{time.monotonic() - start:.0f} s; goal: at least {100 * GOAL:.0f}% of the "
          "non-equivalent mutants killed in every set, no disagreement")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
