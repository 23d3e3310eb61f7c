"""Splitting a test cell into the part the student's code may see and the part it may not.

Class grading runs every graded test cell twice, from the same source:

* **student side**, in the sandbox, with the student's functions: each ``check_*(actual,
  expected, ...)`` statement becomes ``__course_record__(k, lambda: actual)``, which only
  records ``actual`` as plain data. The expected values, tolerances and hints are not in
  this code at all.
* **judge side**, outside the sandbox, with the solution's functions: the same statement
  becomes ``__course_site__(k, "check_close", lambda: (expected, ...))``, which records
  the arguments the check will be called with.

The judge then calls each real check with the student's recorded ``actual`` and its own
arguments (``course_utils.grading.worker``). On both sides every call of an exercise
function goes through ``__course_call__``, which draws a fresh seed from the global torch
generator and runs the function on a forked generator, so the cell's own random inputs
are the same on both sides whatever the function does with randomness.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from dataclasses import dataclass

CHECKS = (
    "check",
    "check_tensor",
    "check_shape",
    "check_finite",
    "check_close",
    "check_grad",
    "check_score",
)
_FIRST_KEYWORDS = ("condition", "value", "actual", "tensor")


@dataclass(frozen=True)
class SplitCell:
    student: str  # runs in the sandbox: records the first argument of each check
    judge: str  # runs in the judge: records every other argument of each check
    sites: int  # how many check statements the cell has
    # per site: its kind and its hint when the hint is a literal, for a `check` that ran
    # in the sandbox on a path the solution never takes (an `except` branch)
    static: dict[int, tuple[str, str | None]]


class TestCellError(ValueError):
    """A test cell that cannot be split: a check used other than as a statement."""


def _call(name: str, *args: ast.expr, keywords: list[ast.keyword] | None = None) -> ast.Call:
    return ast.Call(func=ast.Name(name, ast.Load()), args=list(args), keywords=keywords or [])


def _thunk(body: ast.expr) -> ast.Lambda:
    empty = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
    return ast.Lambda(args=empty, body=body)


def _take(call: ast.Call, position: int, names: tuple[str, ...]) -> ast.expr | None:
    """Remove and return the argument at ``position`` (or given by keyword)."""
    if len(call.args) > position and not isinstance(call.args[position], ast.Starred):
        return call.args.pop(position)
    for i, kw in enumerate(call.keywords):
        if kw.arg in names:
            return call.keywords.pop(i).value
    return None


class _Split(ast.NodeTransformer):
    def __init__(self, functions: Collection[str], side: str) -> None:
        self.functions, self.side, self.sites = set(functions), side, 0
        self.static: dict[int, tuple[str, str | None]] = {}

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in self.functions:
            return _call("__course_call__", node.func, *node.args, keywords=node.keywords)
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        call = node.value
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id in CHECKS
        ):
            return self.generic_visit(node)
        call.args = [self.visit(a) for a in call.args]
        for kw in call.keywords:
            kw.value = self.visit(kw.value)
        kind, k = call.func.id, self.sites
        self.sites += 1
        self.static[k] = (kind, _literal_hint(call))
        actual = _take(call, 0, _FIRST_KEYWORDS)
        if actual is None:
            raise TestCellError(f"line {node.lineno}: {kind}() without its first argument")
        if kind == "check":
            message = _take(call, 0, ("message",)) or ast.Constant("")
            actual = ast.Tuple([actual, message], ast.Load())
        elif kind == "check_grad":
            actual = ast.Attribute(actual, "grad", ast.Load())
        if self.side == "student":
            stmt = _call("__course_record__", ast.Constant(k), _thunk(actual))
        else:
            rest = _call("__course_args__", *call.args, keywords=call.keywords)
            stmt = _call("__course_site__", ast.Constant(k), ast.Constant(kind), _thunk(rest))
        return ast.copy_location(ast.Expr(stmt), node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in CHECKS:
            raise TestCellError(
                f"line {node.lineno}: {node.id} is used other than as a statement "
                f"`{node.id}(...)`: class grading cannot split it"
            )
        return node


def _literal_hint(call: ast.Call) -> str | None:
    for kw in call.keywords:
        if kw.arg == "hint" and isinstance(kw.value, ast.Constant):
            return str(kw.value.value)
    position = 2 if call.func.id == "check" else None  # type: ignore[attr-defined]
    if position is not None and len(call.args) > position:
        arg = call.args[position]
        return str(arg.value) if isinstance(arg, ast.Constant) else None
    return None


def split_test_cell(source: str, functions: Collection[str]) -> SplitCell:
    """The student and judge sides of a test cell; ``functions`` are the exercise's.

    Raises:
        TestCellError: a check used inside an expression (``x = check_tensor(...)``).
        SyntaxError: the cell does not parse.
    """
    sides = {}
    for side in ("student", "judge"):
        split = _Split(functions, side)
        tree = ast.fix_missing_locations(split.visit(ast.parse(source)))
        sides[side] = ast.unparse(tree)
    return SplitCell(sides["student"], sides["judge"], split.sites, split.static)


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _calls(node: ast.AST) -> set[str]:
    return {
        n.func.id
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }


def expected_from_exercise(source: str, functions: Collection[str]) -> list[str]:
    """Checks whose expected side (every argument but the value checked) is computed with
    an exercise function, directly or through a variable of the cell.

    Class grading evaluates that side in the judge, with the solution's functions: the
    check then compares the student's value with the solution's, where self-grading
    compares it with the student's own (``check_close(f(x, seed), f(x, seed))`` passes
    any deterministic ``f`` when self-graded). Compute such a comparison into the value
    checked instead (``check_close(f(x, seed) - f(x, seed), 0.0, ...)``). Hidden tests
    name the solution explicitly (``solution.f``), which is not flagged. One line per
    check, naming what it uses.
    """
    functions, tainted, problems = set(functions), set(), []

    def uses(node: ast.AST) -> set[str]:
        return (_calls(node) & functions) | (_names(node) & tainted)

    def walk(statements: list[ast.stmt]) -> None:
        for stmt in statements:
            if isinstance(stmt, ast.Assign | ast.AnnAssign | ast.AugAssign) and stmt.value:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                names = {n for t in targets for n in _names(t)}
                if uses(stmt.value) or (isinstance(stmt, ast.AugAssign) and names & tainted):
                    tainted.update(names)
                else:
                    tainted.difference_update(names)
            elif isinstance(stmt, ast.For):
                if uses(stmt.iter):
                    tainted.update(_names(stmt.target))
            call = stmt.value if isinstance(stmt, ast.Expr) else None
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
                kind = call.func.id
                if kind in CHECKS:
                    skip = 2 if kind == "check" else 1  # a check's message is the student's
                    rest = call.args[skip:] + [
                        k.value for k in call.keywords if k.arg not in (*_FIRST_KEYWORDS, "message")
                    ]
                    found = set().union(*(uses(a) for a in rest)) if rest else set()
                    if found:
                        problems.append(
                            f"line {stmt.lineno}: {kind}'s expected side uses "
                            f"{', '.join(sorted(found))}, computed with the exercise's functions"
                        )
            for field in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(stmt, field, None)
                if isinstance(block, list):
                    walk(
                        [s for s in block if isinstance(s, ast.stmt)]
                        + [s for h in block if isinstance(h, ast.ExceptHandler) for s in h.body]
                    )

    walk(ast.parse(source).body)
    return problems
