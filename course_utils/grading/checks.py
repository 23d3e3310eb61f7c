"""The ``check_*`` helpers that graded test cells call.

Each raises ``AssertionError`` with a message that teaches: what was checked, what was
expected, what came out, and the likely mistake. In self-grading they run in the
student's kernel; in class grading (``course_utils.grading.judge``) the first argument of
each call is computed in the student's sandbox and the call itself runs in the judge.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)

_HIDDEN_SEED = 0


def hidden_generator() -> torch.Generator:
    """The generator a hidden test cell draws its inputs from.

    Class grading seeds it afresh for every grading run, with the same seed in the
    sandbox and in the judge (``set_hidden_seed``); elsewhere (a solution notebook run
    top to bottom) its seed is 0.
    """
    return torch.Generator().manual_seed(_HIDDEN_SEED)


def set_hidden_seed(seed: int) -> None:
    """Seed ``hidden_generator`` (class grading calls this before running any cell)."""
    global _HIDDEN_SEED
    _HIDDEN_SEED = int(seed)


class _Solution:
    """``solution.f``: the notebook's own ``f``, named so in a hidden test's expected value.

    In a hidden test cell, ``check_close(f(x), solution.f(x), ...)`` reads "the student's
    ``f`` agrees with the solution's". Class grading evaluates the expected argument only
    in the judge, where the notebook is the instructor's solution; run top to bottom in
    the solution notebook itself, both sides are the solution.
    """

    def __getattr__(self, name: str) -> Any:
        namespace = _SOLUTION_NAMESPACE or sys._getframe(1).f_globals
        if name not in namespace:
            raise AttributeError(f"solution.{name}: the notebook defines no {name!r}")
        return namespace[name]


solution = _Solution()
_SOLUTION_NAMESPACE: dict[str, Any] | None = None


@contextlib.contextmanager
def solution_from(namespace: dict[str, Any]) -> Iterator[None]:
    """Within this block, ``solution.f`` is ``namespace["f"]``: a hidden test run beside a
    variant of the solution (``grading.variants``) compares it with the solution itself."""
    global _SOLUTION_NAMESPACE
    previous, _SOLUTION_NAMESPACE = _SOLUTION_NAMESPACE, namespace
    try:
        yield
    finally:
        _SOLUTION_NAMESPACE = previous


# ---------------------------------------------------------------------------- checks


def _fail(message: str, hint: str | None) -> None:
    raise AssertionError(f"{message}" + (f"\nLikely mistake: {hint}" if hint else ""))


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        if x.ndim == 0:
            return f"{x.item():.6g}"
        if x.numel() <= 6:
            return f"tensor {x.detach().cpu().tolist()} (shape {tuple(x.shape)})"
        return f"tensor of shape {tuple(x.shape)}, dtype {x.dtype}"
    return repr(x)


def check(condition: bool, message: str, hint: str | None = None) -> None:
    """Fail with ``message`` (and ``hint``) unless ``condition`` holds."""
    if not condition:
        _fail(message, hint)


def check_tensor(value: Any, name: str, hint: str | None = None) -> torch.Tensor:
    """``value`` must be a ``torch.Tensor``; returns it."""
    if not isinstance(value, torch.Tensor):
        _fail(f"{name}: expected a torch.Tensor, got {type(value).__name__} ({value!r:.60})", hint)
    return value


def check_shape(value: Any, shape: Sequence[int], name: str, hint: str | None = None) -> None:
    """``value`` must be a tensor of exactly ``shape``."""
    t = check_tensor(value, name, hint)
    if tuple(t.shape) != tuple(shape):
        _fail(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}", hint)


def check_finite(value: Any, name: str, hint: str | None = None) -> None:
    """``value`` (tensor or number) must contain no NaN or infinity."""
    t = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        _fail(f"{name}: expected finite values, got {bad} NaN/inf in {_describe(t)}", hint)


def _close(a: torch.Tensor, e: torch.Tensor, atol: float, rtol: float) -> bool:
    return a.shape == e.shape and bool(torch.allclose(a, e, atol=atol, rtol=rtol))


def _as_float64(value: Any, name: str, hint: str | None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double()  # MPS has no float64
    if isinstance(value, int | float) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    _fail(f"{name}: expected a tensor or a number, got {type(value).__name__}", hint)
    raise AssertionError  # unreachable: _fail raises


def check_close(
    actual: Any,
    expected: Any,
    name: str,
    *,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str | None = None,
    mistakes: Mapping[str, Any] | None = None,
) -> None:
    """``actual`` must match ``expected`` (tensors or numbers) within ``atol + rtol*|expected|``.

    A one-element tensor matches a number. ``mistakes`` maps a hint to the value a known
    mistake would produce: when ``actual`` matches one of them, that hint is shown instead
    of ``hint``. Shape and finiteness are checked first, each with its own message.
    """
    e = _as_float64(expected, "expected", None)
    a = _as_float64(actual, name, hint)
    if e.numel() == 1 and a.numel() == 1:
        a, e = a.reshape(()), e.reshape(())
    elif a.shape != e.shape:
        _fail(f"{name}: expected shape {tuple(e.shape)}, got {tuple(a.shape)}", hint)
    for mistake_hint, wrong in (mistakes or {}).items():
        w = _as_float64(wrong, "mistakes", None)
        w = w.reshape(a.shape) if w.numel() == a.numel() else w
        if _close(a, w, atol, rtol) and not _close(a, e, atol, rtol):
            hint = mistake_hint
            break
    if torch.isnan(a).any() and not torch.isnan(e).any():
        _fail(f"{name}: expected {_describe(e.float())}, got NaN in {_describe(a.float())}", hint)
    if not torch.equal(torch.isinf(a), torch.isinf(e)) or not torch.equal(
        a[torch.isinf(a)], e[torch.isinf(e)]
    ):
        _fail(
            f"{name}: expected {_describe(e.float())}, got {_describe(a.float())} "
            "(infinities differ)",
            hint,
        )
    finite = torch.isfinite(e)
    if not torch.allclose(a[finite], e[finite], atol=atol, rtol=rtol):
        err = (a[finite] - e[finite]).abs().max().item()
        _fail(
            f"{name}: expected {_describe(e.float())}, got {_describe(a.float())} "
            f"(max abs error {err:.3g}, tolerance atol={atol:g}, rtol={rtol:g})",
            hint,
        )


def check_grad(tensor: torch.Tensor, name: str, hint: str | None = None) -> None:
    """After ``backward()``, ``tensor.grad`` must exist and be non-zero."""
    if tensor.grad is None or not torch.any(tensor.grad != 0):
        _fail(f"{name}: expected a non-zero gradient to flow back to it, got none", hint)


def check_score(
    value: Any,
    score: Callable[[Any], float],
    name: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    hint: str | None = None,
) -> float:
    """``score(value)`` must be finite and within ``[at_least, at_most]``; returns it.

    For questions that train: ``value`` is what the student's code produced (a model's
    ``state_dict``) and ``score`` the course's own evaluation of it. In class grading
    ``value`` comes out of the sandbox and ``score`` runs in the judge, so a student's
    code cannot report a flattering number about itself.
    """
    result = float(score(value))
    bounds = [f"at least {at_least:g}"] if at_least is not None else []
    bounds += [f"at most {at_most:g}"] if at_most is not None else []
    inside = math.isfinite(result) and (at_least is None or result >= at_least)
    inside = inside and (at_most is None or result <= at_most)
    check(
        inside,
        f"{name}: expected {' and '.join(bounds) or 'a finite score'}, got {result:.4g}",
        hint,
    )
    return result
