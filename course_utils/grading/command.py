"""``course grade``: grade notebooks one by one (self-grading) or folders of submissions (a
class, each submission sandboxed and judged outside it); print the score tables, write
the CSV. The grading itself: ``selfgrade`` and ``classgrade``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from course_utils.build import BuildError, find_root
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course grade",
        description="A notebook runs in a fresh kernel on a copy, its graded test cells "
        "replaced by the canonical cells of the matching exercise in --source (self-grading). "
        "A folder is a class: each submission runs in a sandbox and is judged outside it "
        "against the solutions (README: Grading a class).",
    )
    parser.add_argument("paths", nargs="+", help="notebooks (.ipynb) or folders of submissions")
    parser.add_argument(
        "--source", help="folder of exercise notebooks (default: the course's exercises/)"
    )
    parser.add_argument(
        "--solutions", help="class grading: the solution notebooks (default: beside --source)"
    )
    parser.add_argument("--csv", help="write one row per graded notebook to this CSV file")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel")
    parser.add_argument(
        "--cell-timeout", type=int, default=classgrade.DEFAULT_CELL_TIMEOUT, help="seconds per cell"
    )
    parser.add_argument(
        "--total-timeout",
        type=int,
        default=classgrade.DEFAULT_TOTAL_TIMEOUT,
        help="seconds per notebook",
    )
    parser.add_argument(
        "--seed", type=int, help="class grading: the hidden tests' seed (default: random)"
    )
    parser.add_argument(
        "--similarity",
        help="class grading: write the pairs of graded functions that share code (with each "
        "other or the solution) to this .html or .csv report (README: Similarity)",
    )
    parser.add_argument(
        "--similarity-threshold",
        type=float,
        default=0.8,
        help="share of winnowed fingerprints from which a pair is reported (default 0.8)",
    )
    parser.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="class grading without a sandbox (no bubblewrap, macOS): see the warning it prints",
    )
    return parser


def _default_source() -> Path | None:
    """The course's ``exercises/`` (a clone's, or a student release's): above the working
    directory, else above the installed package (a clone installed with ``pip install
    -e``, as in Colab), so a student's copy anywhere is graded against the canonical test
    cells."""
    for start in (Path.cwd(), Path(__file__).parent):
        try:
            folder = find_root(start) / "exercises"
        except BuildError:  # a student release (``course release``) has no solutions/
            folder = next(
                (f / "exercises" for f in (start.resolve(), *start.resolve().parents)
                 if (f / "jupytext.toml").is_file() and (f / "exercises").is_dir()),
                Path("/nonexistent"),
            )  # fmt: skip
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
    hide = tuple(Path(f).resolve().parent for f in (args.csv, args.similarity) if f)
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
    if args.similarity:
        _similarity(path, source, args)
    return graded


def _similarity(folder: Path, source: Path, args: argparse.Namespace) -> None:
    """Write ``--similarity``'s report for ``folder`` (after grading: it changes no grade)."""
    from course_utils.grading import similarity

    submissions, _ = classgrade.find_submissions(folder, source)
    solutions = Path(args.solutions) if args.solutions else source.resolve().parent / "solutions"
    pairs = similarity.class_similarity(submissions, solutions, args.similarity_threshold)
    report = Path(args.similarity)
    similarity.write_report(pairs, report, args.similarity_threshold, len(submissions))
    print(
        f"wrote {report}: {len(pairs)} pairs of graded functions share at least "
        f"{args.similarity_threshold:.0%} of their fingerprints"
    )


def main(argv: list[str]) -> int:
    """``course grade ...``: parse ``argv`` (the arguments after ``grade``), grade, print."""
    args = _parser().parse_args(argv)
    if args.similarity and importlib.util.find_spec("copydetect") is None:
        print(
            "error: --similarity needs copydetect: pip install copydetect "
            "(make install puts it in .venv)",
            file=sys.stderr,
        )
        return 2
    if not 0 < args.similarity_threshold <= 1:
        print(
            f"error: --similarity-threshold: expected a share in (0, 1], "
            f"got {args.similarity_threshold}",
            file=sys.stderr,
        )
        return 2
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
