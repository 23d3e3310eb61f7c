"""Mutants of a solution region: small, plausible edits of its syntax tree.

Each mutant changes one node of the region's code, as a student's slip would: an
operator (``+`` for ``-``, ``<`` for ``<=``, ``and`` for ``or``), a number (``n`` to
``n + 1``, 0 and 1 swapped, a sign dropped), a reduction or a function (``mean`` for
``sum``, ``max`` for ``min``, ``softmax`` for ``log_softmax``, a call such as ``sqrt``
dropped), a keyword argument dropped, two arguments swapped, a statement deleted. The
operators follow the classic mutation-testing sets (mutmut's, cosmic-ray's) with the
reductions that tensor code adds. ``tools/mutation.py`` grades each mutant with
``grading.variants`` (``make mutation``): a mutant the tests do not fail has survived.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from dataclasses import dataclass

_BINOPS: dict[type, list[type]] = {
    ast.Add: [ast.Sub],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Div],
    ast.Div: [ast.Mult],
    ast.FloorDiv: [ast.Div],
    ast.Pow: [ast.Mult],
    ast.MatMult: [ast.Mult],
    ast.Mod: [ast.FloorDiv],
}
_COMPARE: dict[type, list[type]] = {
    ast.Lt: [ast.LtE, ast.Gt],
    ast.LtE: [ast.Lt, ast.GtE],
    ast.Gt: [ast.GtE, ast.Lt],
    ast.GtE: [ast.Gt, ast.LtE],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
}
# Reductions and elementwise functions a slip swaps, by attribute or function name.
_NAMES: dict[str, list[str]] = {
    "mean": ["sum"],
    "sum": ["mean"],
    "max": ["min"],
    "min": ["max"],
    "amax": ["amin"],
    "amin": ["amax"],
    "argmax": ["argmin"],
    "argmin": ["argmax"],
    "exp": ["log"],
    "log": ["exp"],
    "log_softmax": ["softmax"],
    "softmax": ["log_softmax"],
    "logsumexp": ["sum"],
    "sigmoid": ["tanh"],
    "tanh": ["sigmoid"],
    "sin": ["cos"],
    "cos": ["sin"],
    "zeros_like": ["ones_like"],
    "ones_like": ["zeros_like"],
    "randn_like": ["rand_like"],
    "randn": ["rand"],
    "rand": ["randn"],
    "clamp_min": ["clamp_max"],
    "clamp_max": ["clamp_min"],
    "triu": ["tril"],
    "tril": ["triu"],
    "detach": ["clone"],
    "t": ["clone"],
    "T": ["mT"],
}
# Calls whose removal keeps the code running: f(x) -> x, x.f() -> x.
_DROPPABLE = {
    "sqrt", "abs", "exp", "log", "square", "detach", "neg", "sigmoid", "float", "t", "softmax",
    "log_softmax", "clamp", "clamp_min", "clamp_max", "squeeze", "unsqueeze", "flatten",
    "contiguous", "clone", "log1p", "expm1", "relu", "tanh", "rsqrt",
}  # fmt: skip


_MODULES = {"torch", "F", "functional", "math", "np", "numpy", "nn"}


def _function_form(call: ast.Call) -> bool:
    """``torch.sqrt(x)``, ``math.sqrt(x)``, ``abs(x)`` (dropped: ``x``), not the method
    ``x.sqrt()`` (dropped: ``x`` too, but the receiver)."""
    func = call.func
    if isinstance(func, ast.Name):
        return True
    base = func.value if isinstance(func, ast.Attribute) else None
    while isinstance(base, ast.Attribute):
        if base.attr in _MODULES:
            return True
        base = base.value
    return isinstance(base, ast.Name) and base.id in _MODULES


@dataclass(frozen=True)
class Mutant:
    """One mutant: ``body`` is the whole mutated region, ``key`` names the change
    (``function: before => after``, the changed line of the region), stable while that
    line is unchanged."""

    function: str
    operator: str
    key: str
    body: str


def _number_mutations(value: object) -> list[object]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return {0: [1], 1: [0, 2]}.get(value, [value + 1, value - 1])
    if isinstance(value, float):
        return [0.0, 1.0] if value not in (0.0, 1.0) else [1.0 - value, 2.0]
    return []


class _Points(ast.NodeVisitor):
    """Every (node, operator, replacement) a mutant can make, in a fixed order."""

    def __init__(self) -> None:
        self.points: list[tuple[ast.AST, str, object]] = []

    def add(self, node: ast.AST, operator: str, replacement: object) -> None:
        self.points.append((node, operator, replacement))

    def visit_BinOp(self, node: ast.BinOp) -> None:
        for op in _BINOPS.get(type(node.op), []):
            self.add(node, "binary operator", op)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        for op in _BINOPS.get(type(node.op), []):
            self.add(node, "augmented assignment", op)
        self.add(node, "statement deleted", None)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.USub | ast.Not | ast.Invert):
            self.add(node, "unary operator dropped", None)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            for new in _COMPARE.get(type(op), []):
                self.add(node, "comparison", (i, new))
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.add(node, "boolean operator", ast.Or if isinstance(node.op, ast.And) else ast.And)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        for value in _number_mutations(node.value):
            self.add(node, "number", value)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        for name in _NAMES.get(node.attr, []):
            self.add(node, "function swapped", name)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = (
            node.func.attr
            if isinstance(node.func, ast.Attribute)
            else node.func.id
            if isinstance(node.func, ast.Name)
            else None
        )
        if isinstance(node.func, ast.Name):
            for new in _NAMES.get(node.func.id, []):
                self.add(node, "function swapped", new)
        if name in _DROPPABLE and (node.args or not _function_form(node)):
            self.add(node, "call dropped", None)
        for i, _ in enumerate(node.keywords):
            self.add(node, "keyword dropped", i)
        plain = [a for a in node.args if not isinstance(a, ast.Starred)]
        if len(plain) == len(node.args) >= 2 and ast.dump(node.args[0]) != ast.dump(node.args[1]):
            self.add(node, "arguments swapped", None)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.add(node, "statement deleted", None)
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if not isinstance(node.value, ast.Constant):  # not a docstring
            self.add(node, "statement deleted", None)
        self.generic_visit(node)


class _Apply(ast.NodeTransformer):
    def __init__(self, target: ast.AST, operator: str, replacement: object) -> None:
        self.target, self.operator, self.replacement = target, operator, replacement

    def visit(self, node: ast.AST) -> ast.AST | None:
        if node is not self.target:
            return super().visit(node)
        op, new = self.operator, self.replacement
        if op in ("binary operator", "augmented assignment"):
            node.op = new()  # type: ignore[attr-defined, operator]
        elif op == "unary operator dropped":
            return node.operand  # type: ignore[attr-defined]
        elif op == "comparison":
            i, cls = new  # type: ignore[misc]
            node.ops[i] = cls()  # type: ignore[attr-defined]
        elif op == "boolean operator":
            node.op = new()  # type: ignore[attr-defined, operator]
        elif op == "number":
            node.value = new  # type: ignore[attr-defined]
        elif op == "function swapped" and isinstance(node, ast.Attribute):
            node.attr = new  # type: ignore[assignment]
        elif op == "function swapped":
            node.func.id = new  # type: ignore[attr-defined]
        elif op == "call dropped":
            return node.args[0] if _function_form(node) else node.func.value  # type: ignore[attr-defined, arg-type]
        elif op == "keyword dropped":
            del node.keywords[new]  # type: ignore[attr-defined, arg-type]
        elif op == "arguments swapped":
            args = node.args  # type: ignore[attr-defined]
            args[0], args[1] = args[1], args[0]
        elif op == "statement deleted":
            return ast.copy_location(ast.Pass(), node)
        return node


def _changed_line(before: str, after: str) -> tuple[str, str]:
    a, b = before.splitlines(), after.splitlines()
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    j = 0
    while j < min(len(a), len(b)) - i - 1 and a[-1 - j] == b[-1 - j]:
        j += 1
    return " / ".join(s.strip() for s in a[i : len(a) - j]), " / ".join(
        s.strip() for s in b[i : len(b) - j]
    )


def mutants(function: str, region: str) -> Iterator[Mutant]:
    """Every mutant of ``region`` (a function's solution region, dedented), one change
    each, in a fixed order. Mutants whose code is the region's own are skipped."""
    tree = ast.parse(region)
    original = ast.unparse(tree)
    count = len(_collect(tree))
    seen: set[str] = set()
    for k in range(count):
        mutated = copy.deepcopy(tree)
        node, operator, replacement = _collect(mutated)[k]
        try:
            body = ast.unparse(
                ast.fix_missing_locations(_Apply(node, operator, replacement).visit(mutated))
            )
        except (AttributeError, TypeError, ValueError):
            continue
        if body == original or body in seen:
            continue
        seen.add(body)
        before, after = _changed_line(original, body)
        yield Mutant(function, operator, f"{function}: {before} => {after}", body)


def _collect(tree: ast.AST) -> list[tuple[ast.AST, str, object]]:
    points = _Points()
    points.visit(tree)
    return points.points
