"""Every lecture runs in JupyterLab in a real browser, and every figure widget draws an
image and redraws within 2 s when one of its controls moves (keyboard, mouse, dropdown)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from course_utils.lab import RERUN_NOTE
from e2e.conftest import OUT, ROOT, STATE_LOG, Lab

LECTURES = sorted(p.name for p in (ROOT / "lectures").glob("0*.ipynb"))
RUN_ALL_TIMEOUT_S = 480  # per lecture: 02_gan takes 2.5 min, 5.5 min on a busy machine
REDRAW_LIMIT_S = 2.0
QUIET_S = 0.6  # an image is final once it has not changed for this long

# A widget that shows nothing: `interactive` keeps the returned figure in `.result` and
# displays no image.
BROKEN_SOURCE = """\
import ipywidgets
import matplotlib.pyplot as plt


def draw(x):
    fig, ax = plt.subplots()
    ax.plot([0, x])
    plt.close(fig)
    return fig


broken = ipywidgets.interactive(draw, x=(0, 10))
broken.add_class("course-figure-widget")
broken"""
# The notebook panel in front: its model, kernel and code cells, as seen by JupyterLab.
STATE_JS = """() => {
  const panel = window.jupyterapp?.shell.currentWidget;
  const model = panel?.context?.isReady ? panel.context.model : null;
  if (!model) return null;
  const cells = [];
  for (let i = 0; i < model.cells.length; i++) {
    const cell = model.cells.get(i);
    if (cell.type !== 'code' || !cell.sharedModel.getSource().trim()) continue;
    const errors = [];
    for (let j = 0; j < cell.outputs.length; j++) {
      const output = cell.outputs.get(j);
      const {ename, evalue} = output.type === 'error' ? output.toJSON() : {};
      if (ename) errors.push(`${ename}: ${evalue}`);
    }
    cells.push({index: i, count: cell.executionCount, state: cell.executionState, errors});
  }
  return {dirty: model.dirty, kernel: panel.sessionContext.session?.kernel?.status ?? null,
          cells};
}"""
# Records when the widget's image changes and when the last user action ended.
WATCH_JS = """w => {
  const out = w.querySelector('.widget-output');
  let last = out.querySelector('img')?.src;
  w.changes = [];
  new MutationObserver(() => {
    const src = out.querySelector('img')?.src;
    if (src && src !== last) { last = src; w.changes.push(performance.now()); }
  }).observe(out, {subtree: true, childList: true, attributes: true});
  for (const type of ['keyup', 'pointerup', 'mouseup', 'change'])
    window.addEventListener(type, () => { window.actionEnd = performance.now(); }, true);
}"""
SETTLED_JS = f"""([w, n]) => w.changes.length > n
  && performance.now() - w.changes[w.changes.length - 1] > {QUIET_S * 1000}"""


def wait_for_state(page: Page, done: Callable[[dict], bool], timeout_s: float) -> dict:
    """Poll the notebook's state until ``done(state)``; fail on any error output."""
    deadline = page.evaluate("performance.now()") + timeout_s * 1000
    while True:
        state = page.evaluate(STATE_JS)
        if state:
            errors = [f"cell {c['index']}: {e}" for c in state["cells"] for e in c["errors"]]
            assert not errors, f"error output: {errors}"
            if done(state):
                return state
        assert page.evaluate("performance.now()") < deadline, f"timed out, last state {state}"
        page.wait_for_timeout(1000)


def all_ran(state: dict) -> bool:
    """The kernel is idle and every code cell has run."""
    cells = state["cells"]
    return state["kernel"] == "idle" and all(
        c["count"] is not None and c["state"] != "running" for c in cells
    )


def run_notebook(page: Page, lab: Lab, name: str) -> dict[str, object]:
    """Open ``name`` in its own workspace, Run All, and wait until every cell has run.
    Returns what was seen on the way: the dirty flag, how long Run All took."""
    page.goto(f"{lab.url}/lab/workspaces/{Path(name).stem}/tree/{name}?token={lab.token}")
    seen = {"dirty on open": wait_for_state(page, lambda s: True, 60)["dirty"]}
    seen["dirty once the kernel is idle"] = wait_for_state(
        page, lambda s: s["kernel"] == "idle", 120
    )["dirty"]
    start = time.monotonic()
    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
    wait_for_state(page, all_ran, RUN_ALL_TIMEOUT_S)
    seen["Run All seconds"] = round(time.monotonic() - start, 1)
    outputs = " ".join(page.locator(".jp-OutputArea").all_text_contents())
    for text in ("Error displaying widget", "model not found"):
        assert text not in outputs, f"{name}: {text!r} in an output"
    return seen


def check_moves(
    page: Page, widget: Locator, control: Locator, moves: list[Callable[[], None]]
) -> list[float]:
    """Make each move and return the seconds from its end to the image's final change."""
    latencies = []
    for move in moves:
        before_src = widget.locator(".widget-output img").first.get_attribute("src")
        before_value = control_value(control)
        n = widget.evaluate("w => w.changes.length")
        move()
        assert control_value(control) != before_value, "the control did not move"
        try:
            page.wait_for_function(
                SETTLED_JS, arg=[widget.element_handle(), n], polling=50,
                timeout=(REDRAW_LIMIT_S + QUIET_S + 2) * 1000,
            )  # fmt: skip
        except PlaywrightTimeoutError as error:
            raise AssertionError(f"the image did not change within {REDRAW_LIMIT_S} s") from error
        latency = widget.evaluate("w => (w.changes[w.changes.length - 1] - window.actionEnd)")
        latencies.append(max(latency, 0.0) / 1000)
        assert latencies[-1] <= REDRAW_LIMIT_S, f"redrawn after {latencies[-1]:.2f} s"
        assert widget.locator(".widget-output img").first.get_attribute("src") != before_src
        check_output(widget)
    return latencies


def control_value(control: Locator) -> str:
    """A slider's value or a dropdown's selected option."""
    if control.locator("select").count():
        return control.locator("select").input_value()
    # Not aria-valuenow: noUiSlider rounds it to one decimal.
    return str(control.locator(".noUi-target").evaluate("e => e.noUiSlider.get()"))


def check_output(widget: Locator) -> None:
    """The widget's output holds exactly one image and no error."""
    output = widget.locator(".widget-output")
    stderr = output.locator("[data-mime-type='application/vnd.jupyter.stderr']")
    assert not stderr.count(), f"error in the widget: {stderr.first.text_content()}"
    assert output.locator("img").count() == 1, "no <img> in the widget's output"


def slider_moves(page: Page, control: Locator) -> list[Callable[[], None]]:
    """One keyboard step away from the nearer end, one back, then a mouse drag."""
    handle = control.locator(".noUi-handle")
    value, low, high = (
        float(handle.get_attribute(f"aria-value{k}")) for k in ("now", "min", "max")
    )
    away, back = (
        ("ArrowLeft", "ArrowRight") if value > (low + high) / 2 else ("ArrowRight", "ArrowLeft")
    )

    def key(name: str) -> Callable[[], None]:
        def press() -> None:
            handle.focus()
            page.keyboard.press(name)

        return press

    def drag() -> None:
        box, track = handle.bounding_box(), control.locator(".noUi-base").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        dx = track["width"] / 4 * (1 if x < track["x"] + track["width"] / 2 else -1)
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + dx, y, steps=8)
        page.mouse.up()

    return [key(away), key(back), drag]


def dropdown_moves(control: Locator) -> list[Callable[[], None]]:
    """Pick the next option, then the first one again."""
    select = control.locator("select")
    count = select.locator("option").count()
    start = select.evaluate("s => s.selectedIndex")
    return [
        lambda: select.select_option(index=(start + 1) % count),
        lambda: select.select_option(index=start),
    ]


def check_widgets(page: Page, lecture: str) -> list[tuple[str, int, str, int, float, float]]:
    """Move every control of every figure widget; a latency row per control."""
    rows = []
    widgets = page.locator(".course-figure-widget")
    assert widgets.count(), f"{lecture}: no .course-figure-widget"
    for index in range(widgets.count()):
        widget = widgets.nth(index)
        widget.scroll_into_view_if_needed()
        where = f"{lecture} widget {index}"
        try:
            check_output(widget)
            widget.evaluate(WATCH_JS)
            controls = widget.locator(":scope > .jupyter-widgets:not(.widget-output)")
            for c in range(controls.count()):
                control = controls.nth(c)
                label = control.locator(".widget-label").first.text_content()
                if control.locator(".noUi-handle").count():
                    moves = slider_moves(page, control)
                elif control.locator("select").count():
                    moves = dropdown_moves(control)
                else:
                    raise AssertionError(f"control {label!r}: neither a slider nor a dropdown")
                try:
                    latencies = check_moves(page, widget, control, moves)
                except AssertionError as error:
                    raise AssertionError(f"control {label!r}: {error}") from error
                median = statistics.median(latencies)
                rows.append((lecture, index, label, len(latencies), median, max(latencies)))
        except AssertionError as error:
            raise AssertionError(
                f"{where}: {error} (see {OUT}/{lecture}_widget{index}.png)"
            ) from error
        finally:
            widget.screenshot(path=OUT / f"{lecture}_widget{index}.png")
    return rows


def save_and_compare_metadata(page: Page, path: Path, original: dict) -> dict[str, object]:
    """Save with Ctrl+S; the top-level metadata keys whose value differs from ``original``."""
    page.click(".lm-TabBar-tab.jp-mod-current")  # focus out of the widgets
    page.keyboard.press("Control+s")
    wait_for_state(page, lambda s: not s["dirty"], 30)
    saved = json.loads(path.read_text())["metadata"]
    return {
        k: (original.get(k), saved.get(k))
        for k in original | saved
        if original.get(k) != saved.get(k)
    }


def check_reopened(page: Page, lab: Lab, name: str, widgets: int) -> None:
    """Reopen the saved notebook with its kernel gone: every widget cell says to run it
    again (course_utils.lab's pre-save hook), none says "Error displaying widget"."""
    saved = (lab.root_dir / name).read_text()
    assert saved.count(RERUN_NOTE) == widgets, f"{name} saved with live widget views"
    lab.shutdown_sessions()
    page.goto(f"{lab.url}/lab/workspaces/{Path(name).stem}-again/tree/{name}?token={lab.token}")
    page.wait_for_selector(".jp-OutputArea-output", timeout=60_000)
    outputs = " ".join(page.locator(".jp-OutputArea").all_text_contents())
    for text in ("Error displaying widget", "model not found"):
        assert text not in outputs, f"{name} reopened: {text!r} in an output"
    assert outputs.count(RERUN_NOTE) == widgets, f"{name} reopened: expected {widgets} notes"


@pytest.mark.browser
@pytest.mark.parametrize("name", LECTURES, ids=[Path(n).stem for n in LECTURES])
def test_lecture_widgets_redraw(page: Page, lab: Lab, name: str, latency_rows: list) -> None:
    lecture = Path(name).stem
    original = json.loads((lab.root_dir / name).read_text())["metadata"]
    seen = run_notebook(page, lab, name)
    rows = check_widgets(page, lecture)
    latency_rows.extend(rows)
    seen["metadata changed by Run All + save"] = save_and_compare_metadata(
        page, lab.root_dir / name, original
    )
    check_reopened(page, lab, name, len({row[1] for row in rows}))
    with STATE_LOG.open("a") as notes:
        notes.write(f"{lecture}: {seen}\n")
    assert not page.problems, f"{lecture}: {page.problems}"


@pytest.mark.browser
def test_suite_detects_a_widget_that_draws_nothing(page: Page, lab: Lab) -> None:
    cell = {"cell_type": "code", "execution_count": None, "id": "broken", "metadata": {},
            "outputs": [], "source": BROKEN_SOURCE}  # fmt: skip
    kernelspec = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook = {"cells": [cell], "metadata": {"kernelspec": kernelspec}, "nbformat": 4,
                "nbformat_minor": 5}  # fmt: skip
    (lab.root_dir / "broken_widget.ipynb").write_text(json.dumps(notebook))
    run_notebook(page, lab, "broken_widget.ipynb")
    with pytest.raises(AssertionError, match="no <img> in the widget's output"):
        check_widgets(page, "broken_widget")
