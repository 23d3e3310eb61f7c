"""Every widget of every lecture draws, seen from a front end (issue 12).

Each lecture runs top to bottom in a real kernel (nbclient, which also fails on any cell
error). nbclient plays the front end's part for ``Output`` widgets: it routes the outputs
that the kernel sends while an ``Output`` captures into that widget's state, as JupyterLab
does. So for every cell that displays a widget we can check what a student would see:
an image in the widget's output on first display, and a *different* image after each
control's value is set from the kernel side.

This replaces nbval for the lectures: ``make test`` runs them here once, in
``.venv-oldest`` (ipywidgets 7, as Colab has), and ``make e2e`` once in a browser
(``.venv``, ipywidgets 8). The checks only a kernel can make (a figure wider than
``MAX_WIDTH_PX``, a figure shown twice) are made here.
"""

from __future__ import annotations

import base64
import struct
import sys
from pathlib import Path
from typing import Any

import ipykernel.kernelspec
import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from course_utils.lab import WIDGET_VIEW
from course_utils.viz import MAX_WIDTH_PX

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "lectures").glob("*.ipynb"))
CELL_TIMEOUT_S = 900

# Runs in the kernel right after a widget cell: move control `i` one step (a slider) or to
# the next option (a dropdown), as a student would, then report the new value.
MOVE = """\
_course_control = Out[{count}].children[{i}]
if hasattr(_course_control, "options"):
    _course_control.index = (_course_control.index + 1) % len(_course_control.options)
elif _course_control.value + _course_control.step <= _course_control.max:
    _course_control.value = _course_control.value + _course_control.step
else:
    _course_control.value = _course_control.value - _course_control.step
print(_course_control.description, "->", _course_control.value)
"""


class _ThisPython(KernelSpecManager):
    """The kernel runs on the interpreter running the tests, as ``--nbval-current-env``."""

    def get_kernel_spec(self, kernel_name: str) -> Any:
        return self.kernel_spec_class(
            resource_dir=ipykernel.kernelspec.RESOURCES, **ipykernel.kernelspec.get_kernel_dict()
        )


def _images(client: NotebookClient, output_id: str) -> list[str]:
    """The base64 PNGs an ``Output`` widget shows now; fails on an error shown there."""
    outputs = client.widget_state.get(output_id, {}).get("outputs", [])
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, "the widget shows an error:\n" + "\n".join(
        "\n".join(o["traceback"]) for o in errors
    )
    return [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]


def _png_width(b64: str) -> int:
    return struct.unpack(">I", base64.b64decode(b64)[16:20])[0]


def _check_widget(client: NotebookClient, cell: Any, where: str) -> list[str]:
    """Check the widget a cell displays; return one line per control moved."""
    (view,) = [o for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]
    state = client.widget_state[view["data"][WIDGET_VIEW]["model_id"]]
    children = [child.removeprefix("IPY_MODEL_") for child in state.get("children", [])]
    kinds = [client.widget_state[c].get("_model_name") for c in children]
    assert "OutputModel" in kinds, f"{where}: the widget has no Output to draw in: {kinds}"
    output = children[kinds.index("OutputModel")]
    shown = _images(client, output)
    assert len(shown) == 1, f"{where}: expected one image on first display, got {len(shown)}"
    assert _png_width(shown[0]) <= MAX_WIDTH_PX, (
        f"{where}: the figure is {_png_width(shown[0])} px wide, more than {MAX_WIDTH_PX}: "
        "the output area scales it down and its text becomes hard to read"
    )
    moved = []
    for i, kind in enumerate(kinds):
        if kind == "OutputModel":
            continue
        probe = nbformat.v4.new_code_cell(MOVE.format(count=cell.execution_count, i=i))
        client.nb.cells.append(probe)  # nbclient stores an executed cell at its index
        client.execute_cell(probe, len(client.nb.cells) - 1, store_history=False)
        before, now = shown[0], _images(client, output)
        label = f"{where}, control {i} ({kind})"
        assert len(now) == 1, f"{label}: expected one image after a move, got {len(now)}"
        assert now[0] != before, f"{label}: the image did not change when the control moved"
        moved.append(probe.outputs[0]["text"].strip())
        shown = now
    assert moved, f"{where}: the widget has no control"
    return moved


@pytest.mark.notebook
@pytest.mark.parametrize("path", LECTURES, ids=[p.stem for p in LECTURES])
def test_every_widget_draws_and_redraws(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    expected = sum("figure_widget(" in c.source for c in nb.cells if c.cell_type == "code")
    km = KernelManager(kernel_name="python3", kernel_spec_manager=_ThisPython())
    client = NotebookClient(
        nb, km=km, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(path.parent)}}
    )
    checked = []
    with client.setup_kernel():
        for index, cell in list(enumerate(nb.cells)):  # the probes are appended
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)  # raises CellExecutionError on any error
            pngs = [
                o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})
            ]
            assert len(set(pngs)) == len(pngs), (
                f"{path.name} cell {index} shows the same figure twice: a Figure returned as "
                "the cell's last expression is drawn again by the inline backend"
            )
            if any(WIDGET_VIEW in o.get("data", {}) for o in cell.outputs):
                checked += _check_widget(client, cell, f"{path.name} cell {index}")
    print(f"{path.name}: {checked}", file=sys.stderr)
    assert expected and len(checked) >= expected, (
        f"{path.name}: {expected} figure_widget cells, but widgets were found for "
        f"{len(checked)} controls"
    )
