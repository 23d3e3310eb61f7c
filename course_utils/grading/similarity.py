"""``course grade FOLDER --similarity report.html`` (or ``.csv``): which submissions share
code with each other or with the course's reference implementation.

For each graded function of an exercise (the functions its solution fills in), the body
each student wrote (after its docstring) is fingerprinted with copydetect's winnowing
(Schleimer, Wilkerson and Aiken, "Winnowing: local algorithms for document
fingerprinting", SIGMOD 2003, as MOSS does): pygments tokens with whitespace and comments
dropped, every name written ``V``, function names ``F``, strings ``S``; k-grams of
``K`` characters, one fingerprint per window of ``WINDOW``. The exercise's own stub (``raise
NotImplementedError()``) is boilerplate, left out. Every pair of students, and every
student against the solution's body ("reference"), gets the share of fingerprints they
have in common (the smaller of the two shares: a short body inside a long one is not a
copy of it); the pairs at or above the threshold are reported with both bodies side by
side. Nothing here changes a grade.
"""

from __future__ import annotations

import ast
import csv
import html
import io
import os
import tempfile
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils.grading.classgrade import Submission, load_exercise
from course_utils.grading.notebooks import GradeInputError, read_notebook, read_submission
from course_utils.grading.report import clean, csv_cell

K = 10  # characters of normalized code per k-gram: set 00's shortest bodies are ~20
WINDOW = 4  # winnowing window: any match of K + WINDOW - 1 characters is caught
DEFAULT_THRESHOLD = 0.8
REFERENCE = "reference (the solution)"


@dataclass(frozen=True)
class Pair:
    """Two bodies of ``function`` (``exercise``) that share ``score`` of their fingerprints."""

    exercise: str
    function: str
    a: str
    b: str
    score: float
    code_a: str
    code_b: str


def function_bodies(nb: nbformat.NotebookNode, functions: Iterable[str]) -> dict[str, str]:
    """The body (after its docstring, dedented) of each module-level ``def`` in ``nb``'s
    code cells named in ``functions``; the last definition wins. Cells that do not parse
    (IPython magics aside) are skipped."""
    wanted, out = set(functions), {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = [
            "" if line.lstrip().startswith(("%", "!")) else line for line in cell.source.split("\n")
        ]
        try:
            tree = ast.parse("\n".join(lines))
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or (
                node.name not in wanted
            ):
                continue
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                body = body[1:]
            if body:
                text = "\n".join(lines[body[0].lineno - 1 : node.end_lineno])
                out[node.name] = textwrap.dedent(text).strip("\n") + "\n"
    return out


def _fingerprint(code: str, boilerplate: list[int] | None = None):  # -> CodeFingerprint | None
    from copydetect import CodeFingerprint

    fp = CodeFingerprint("body.py", K, WINDOW, boilerplate=boilerplate, fp=io.StringIO(code))
    return fp if len(fp.hashes) else None


def _without_given(code: str, stub: str | None) -> str:
    """``code`` without the lines the exercise's ``stub`` gives everyone (compared without
    indentation): the k-grams that straddle given code and a short answer would otherwise
    make two different answers look alike."""
    given = {line.strip() for line in (stub or "").splitlines() if line.strip()}
    return "".join(line + "\n" for line in code.splitlines() if line.strip() not in given)


def similar_pairs(
    exercise: str,
    bodies: dict[str, dict[str, str]],
    reference: dict[str, str],
    stubs: dict[str, str],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Pair]:
    """The pairs of ``bodies`` (label -> function -> body), and of each body with
    ``reference``, whose share of common fingerprints is at least ``threshold``; a body
    equal to its stub (``stubs``, the exercise's) is not compared."""
    from copydetect import compare_files
    from copydetect.utils import hashed_kgrams

    pairs = []
    for function in sorted({f for b in bodies.values() for f in b}):
        stub = stubs.get(function)
        boiler = _fingerprint(stub) if stub else None
        # Every k-gram of the stub, not only its winnowed ones: winnowing picks by Python's
        # hash(), which is salted per process, so the stub's picks and a body's picks of
        # the same given lines would differ from run to run and leak shared fingerprints.
        boilerplate = (
            sorted(set(hashed_kgrams(boiler.filtered_code, K).tolist()))
            if boiler is not None
            else None
        )
        entries = []
        if function in reference:
            entries.append((REFERENCE, reference[function]))
        entries += [
            (label, b[function])
            for label, b in sorted(bodies.items())
            if function in b and b[function] != stub
        ]
        prints = [
            (label, code, _fingerprint(_without_given(code, stub), boilerplate))
            for label, code in entries
        ]
        prints = [p for p in prints if p[2] is not None]
        for i, (label_a, code_a, fp_a) in enumerate(prints):
            for label_b, code_b, fp_b in prints[i + 1 :]:
                _, (share_a, share_b), _ = compare_files(fp_a, fp_b)
                score = float(min(share_a, share_b))
                if score >= threshold:
                    pairs.append(Pair(exercise, function, label_a, label_b, score, code_a, code_b))
    return sorted(pairs, key=lambda p: (-p.score, p.exercise, p.function, p.a, p.b))


def class_similarity(
    submissions: list[Submission], solutions: Path, threshold: float = DEFAULT_THRESHOLD
) -> list[Pair]:
    """``similar_pairs`` for each exercise of ``submissions`` (``classgrade.find_submissions``);
    submissions that cannot be read are left out (grading says why)."""
    by_exercise: dict[Path, list[Submission]] = {}
    for sub in submissions:
        by_exercise.setdefault(sub.exercise, []).append(sub)
    pairs = []
    for path, subs in sorted(by_exercise.items()):
        exercise = load_exercise(path, solutions)
        reference = function_bodies(read_notebook(solutions / path.name), exercise.functions)
        stubs = function_bodies(exercise.notebook, exercise.functions)
        bodies = {}
        for sub in subs:
            try:
                nb = read_submission(sub.path)
            except GradeInputError:
                continue
            bodies[sub.student] = function_bodies(nb, exercise.functions)
        pairs += similar_pairs(exercise.name, bodies, reference, stubs, threshold)
    return pairs


def write_report(pairs: list[Pair], path: Path, threshold: float, students: int) -> None:
    """``.csv``: one row per pair (exercise, function, a, b, similarity, both bodies);
    anything else: an HTML page with both bodies side by side. Written atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            if path.suffix.lower() == ".csv":
                writer = csv.writer(f)
                header = ["exercise", "function", "a", "b", "similarity", "code_a", "code_b"]
                writer.writerow(header)
                for p in pairs:
                    writer.writerow(
                        [csv_cell(p.exercise), csv_cell(p.function), csv_cell(p.a), csv_cell(p.b),
                         f"{p.score:.2f}", csv_cell(p.code_a), csv_cell(p.code_b)]
                    )  # fmt: skip
            else:
                f.write(_html(pairs, threshold, students))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _html(pairs: list[Pair], threshold: float, students: int) -> str:
    e = html.escape
    rows = []
    for p in pairs:
        rows.append(
            f"<h2>{e(p.exercise)}: {e(p.function)}, {p.score:.0%}</h2>"
            f"<table><tr><th>{e(clean(p.a, 200))}</th><th>{e(clean(p.b, 200))}</th></tr>"
            f"<tr><td><pre>{e(p.code_a)}</pre></td><td><pre>{e(p.code_b)}</pre></td></tr></table>"
        )
    body = "\n".join(rows) or "<p>No pair at or above the threshold.</p>"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Similarity</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #999;vertical-align:top;padding:4px;width:50%}"
        "pre{margin:0;white-space:pre-wrap}</style></head><body>"
        f"<h1>Similarity of the graded functions</h1><p>{students} submissions; "
        f"{len(pairs)} pairs share at least {threshold:.0%} of their winnowed fingerprints "
        "(copydetect; names, whitespace and comments normalized; the exercise's stub left "
        "out). A high score is a reason to read both, not a verdict.</p>"
        f"{body}</body></html>\n"
    )
