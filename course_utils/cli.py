"""The ``course`` command.

course build [--check]            regenerate notebooks and exercises (or report stale ones)
course grade NB [NB ...]          grade your own notebooks: question | points | earned | hint
course grade FOLDER --source DIR [--csv F --jobs N]   grade a class, each submission sandboxed
course bench NAME [--seeds N --steps N --methods A,B] [--save F]  run a benchmark, print its table
course pretrain NAME [--out F --epochs N]   train a shipped checkpoint (--help lists them)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_utils import registry
from course_utils.build import BuildError, build, find_root, stale
from course_utils.grading import classgrade, selfgrade
from course_utils.grading.notebooks import GradeInputError, read_notebook
from course_utils.grading.report import (
    GradeResult,
    clean,
    format_score_table,
    question_summary,
    write_csv,
)
from course_utils.grading.sandbox import EXPOSED_WITHOUT_SANDBOX, SandboxUnavailable


def _cmd_build(args: argparse.Namespace) -> int:
    root = find_root(Path(args.root))
    if args.check:
        out = stale(root)
        for path in out:
            print(f"stale: {path.relative_to(root)}")
        if out:
            print(
                f"{len(out)} file(s) out of date: run `course build` (or `make build`) and commit."
            )
            return 1
        print("course build --check: every notebook and exercise is up to date")
        return 0
    for path in build(root):
        print(f"wrote {path.relative_to(root)}")
    return 0


def _default_source() -> Path | None:
    """The course's ``exercises/``: above the working directory, else above the installed
    package (a clone installed with ``pip install -e``, as in Colab), so a student's copy
    anywhere is graded against the canonical test cells."""
    for start in (Path.cwd(), Path(__file__).parent):
        try:
            folder = find_root(start) / "exercises"
        except BuildError:
            continue
        if folder.is_dir():
            return folder
    return None


def _print_result(result: GradeResult) -> None:
    status = "" if result.status == "ok" else f"  [{result.status}: {clean(result.reason)}]"
    who = f"{clean(result.student, 80)}: " if result.student else ""
    print(f"== {who}{clean(result.path, 300)}{status}")
    if result.rows:
        print("\n".join(format_score_table(result.rows)))
    else:
        print("no graded cells (cells tagged 'graded') in this notebook")


def _grade_folder(path: Path, source: Path | None, args: argparse.Namespace) -> list[GradeResult]:
    if source is None:
        raise GradeInputError(f"{path}: grading a folder needs --source EXERCISES_DIR")
    if args.unsafe_no_sandbox:
        print(f"warning: {EXPOSED_WITHOUT_SANDBOX}", file=sys.stderr)
    hide = (Path(args.csv).resolve().parent,) if args.csv else ()
    graded, unmatched = classgrade.grade_folder(
        path, source, solutions=Path(args.solutions) if args.solutions else None,
        jobs=args.jobs, cell_timeout=args.cell_timeout, total_timeout=args.total_timeout,
        sandboxed=not args.unsafe_no_sandbox, hide=hide, seed=args.seed,
    )  # fmt: skip
    for stray in unmatched:
        print(f"skipped: {clean(stray, 300)} matches no exercise in {source}", file=sys.stderr)
    for result in graded:  # the label is not the name on disk (classgrade.student_labels)
        if result.student not in str(result.path):
            print(
                f"warning: {clean(result.path, 300)} is graded as student {result.student!r}: "
                "the name on disk has invisible characters or prints like another student's",
                file=sys.stderr,
            )
    for name, digest in sorted({(r.notebook, r.source_sha256) for r in graded}):
        print(f"graded against {source / name}.ipynb (sha256 {digest[:16]}, read once)")
    return graded


def _cmd_grade(args: argparse.Namespace) -> int:
    source = Path(args.source) if args.source else _default_source()
    if source is not None and not source.is_dir():
        print(
            f"error: --source: expected a folder of exercise notebooks, got {source}",
            file=sys.stderr,
        )
        return 2
    status, results = 0, []
    timeouts = {"cell_timeout": args.cell_timeout, "total_timeout": args.total_timeout}
    for name in args.paths:
        path = Path(name)
        try:
            if path.is_dir():
                graded = _grade_folder(path, source, args)
            else:
                read_notebook(path)
                exercise = classgrade.matching_exercise(path, source) if source else None
                graded = [selfgrade.grade_notebook(path, exercise, **timeouts)]
        except SandboxUnavailable as exc:
            print(
                f"error: {exc}.\nClass grading runs each submission in a sandbox; without one, "
                "pass --unsafe-no-sandbox (and read what it exposes).",
                file=sys.stderr,
            )
            return 2
        except GradeInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        results += graded
    if args.csv and results:  # before anything a submission wrote reaches the terminal
        write_csv(results, Path(args.csv))
    for result in results:
        _print_result(result)
    if len(results) > 1:
        print("\n== per question: submissions that passed")
        print("\n".join(question_summary(results)))
    if args.csv and results:
        print(f"wrote {args.csv} ({len(results)} rows)")
    return status


def _cmd_bench(args: argparse.Namespace) -> int:
    bench = registry.benchmarks()[args.name]
    given = {k: getattr(args, k) for k in registry.OPTIONS if getattr(args, k) is not None}
    for option in given:
        if option not in bench.options:
            users = sorted(n for n, b in registry.benchmarks().items() if option in b.options)
            print(
                f"course bench: --{option} only applies to {' and '.join(map(repr, users))}",
                file=sys.stderr,
            )
            return 2
    bench.run(**given)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pretrain"]:  # its own parser, with its own --help
        from course_utils import pretrain

        pretrain.main(argv[1:])
        return 0
    benchmarks = registry.benchmarks()
    parser = argparse.ArgumentParser(
        prog="course", description="Deep generative models course tools"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="regenerate notebooks and exercises from the scripts")
    p_build.add_argument("--check", action="store_true", help="exit 1 if anything is stale")
    p_build.add_argument("--root", default=".", help="the course folder (default: search upward)")
    p_build.set_defaults(func=_cmd_build)
    p_grade = sub.add_parser(
        "grade",
        help="grade notebooks, or folders of submissions: question | points | earned | hint",
        description="A notebook runs in a fresh kernel on a copy, its graded test cells "
        "replaced by the canonical cells of the matching exercise in --source (self-grading). "
        "A folder is a class: each submission runs in a sandbox and is judged outside it "
        "against the solutions (README: Grading a class).",
    )
    p_grade.add_argument("paths", nargs="+", help="notebooks (.ipynb) or folders of submissions")
    p_grade.add_argument(
        "--source", help="folder of exercise notebooks (default: the course's exercises/)"
    )
    p_grade.add_argument(
        "--solutions", help="class grading: the solution notebooks (default: beside --source)"
    )
    p_grade.add_argument("--csv", help="write one row per graded notebook to this CSV file")
    p_grade.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel")
    p_grade.add_argument(
        "--cell-timeout", type=int, default=classgrade.DEFAULT_CELL_TIMEOUT, help="seconds per cell"
    )
    p_grade.add_argument(
        "--total-timeout",
        type=int,
        default=classgrade.DEFAULT_TOTAL_TIMEOUT,
        help="seconds per notebook",
    )
    p_grade.add_argument(
        "--seed", type=int, help="class grading: the hidden tests' seed (default: random)"
    )
    p_grade.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="class grading without a sandbox (no bubblewrap, macOS): see the warning it prints",
    )
    p_grade.set_defaults(func=_cmd_grade)
    p_bench = sub.add_parser(
        "bench",
        help="run a benchmark and print its table",
        epilog="benchmarks:\n"
        + "\n".join(f"  {n:<13}{b.summary}" for n, b in sorted(benchmarks.items())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_bench.add_argument("name", choices=sorted(benchmarks))
    for option, (kind, text) in registry.OPTIONS.items():
        users = ", ".join(n for n, b in sorted(benchmarks.items()) if option in b.options)
        p_bench.add_argument(f"--{option}", type=kind, help=f"{users}: {text}")
    p_bench.set_defaults(func=_cmd_bench)
    sub.add_parser(  # handled above; listed here for `course --help`
        "pretrain",
        help="train a shipped checkpoint (python -m course_utils.pretrain; --help lists them)",
    )
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
