"""The sliders: ``figure_widget`` puts controls above a PNG of a pure figure function.

Each widget is a thin ipywidgets control around a pure function that returns the
matplotlib figure it shows; the topic modules hold those functions (lecture 00's in
``foundations``, 01's in ``vae``, ...), the tests call them directly, and
``tests/test_widgets_kernel.py`` checks in a real kernel that every lecture's widget draws.

Pattern::

    fig = foundations.kl_fit_figure(mu=0.0, sigma=1.0)          # pure: test this
    figure_widget(foundations.kl_fit_figure, mu=(-4, 4, 0.1))   # control: show this

``figure_widget`` renders the figure to a PNG and displays it in an ``Output`` below the
controls: on first display and after every change, on ipywidgets 7.7 (Colab) and 8.
(``ipywidgets.interactive`` alone stores the returned figure in ``.result`` and shows
nothing.)
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets
import matplotlib.pyplot as plt
from IPython import get_ipython
from IPython.display import Image, clear_output, display
from matplotlib.figure import Figure

# A redraw slower than this is only made when a slider is released, so that redraws do not
# queue up behind a drag (the threshold; the browser suite measures the latency).
SLOW_REDRAW_S = 0.2


class _NoneOption:
    """What a dropdown holds for an option whose value is ``None`` (see ``_control``)."""

    def __repr__(self) -> str:
        return "None"


NONE_OPTION = _NoneOption()


def figure_png(fig: Figure) -> bytes:
    """The PNG bytes of ``fig`` at its own dpi and size (its function lays it out)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # no bbox_inches="tight": it draws the figure twice
    return buffer.getvalue()


class FigureWidget(ipywidgets.VBox):
    """Controls above an ``Output`` that shows ``render(**values)`` as a PNG.

    Attributes:
        controls: name -> the control widget (set ``.value`` to move it from code).
        output: the ``Output`` that holds the current image.
        png: the PNG bytes shown now.
        figure: the (closed) figure they were drawn from, for tests to inspect.
        render_seconds: how long the latest render took.
    """

    def __init__(
        self,
        render: Callable[..., Figure],
        controls: Mapping[str, Any],
        continuous_update: bool | None = None,
    ) -> None:
        if not callable(render):
            raise TypeError(f"render: expected a callable returning a Figure, got {render!r}")
        if not controls:
            raise ValueError("controls: expected at least one name=control, got none")
        self.render = render
        self.controls = {name: _control(name, abbrev) for name, abbrev in controls.items()}
        self.output = ipywidgets.Output()
        super().__init__([*self.controls.values(), self.output])
        self.add_class("course-figure-widget")  # how the browser tests find it
        self.continuous_update = continuous_update
        self.png = b""
        self.figure: Figure | None = None
        self.render_seconds = 0.0
        self._draw()  # errors here fail the cell, as any error in a lecture should
        for control in self.controls.values():
            control.observe(self._redraw, names="value")

    def values(self) -> dict[str, Any]:
        """The controls' current values, by name."""
        return {
            name: None if control.value is NONE_OPTION else control.value
            for name, control in self.controls.items()
        }

    def _draw(self) -> None:
        start = time.perf_counter()
        fig = self.render(**self.values())
        if not isinstance(fig, Figure):
            plt.close("all")
            raise TypeError(f"render: expected it to return a Figure, got {type(fig).__name__}")
        try:
            png = figure_png(fig)
        finally:
            plt.close(fig)  # pyplot must not show it again below the cell
        self.figure, self.png = fig, png
        with self.output:
            clear_output(wait=True)  # replace the old image when the new one arrives
            display(Image(data=png, format="png"))
        self.render_seconds = time.perf_counter() - start
        self._set_continuous_update()

    def _set_continuous_update(self) -> None:
        """Redraw while dragging only when a redraw is cheap (unless told either way)."""
        continuous = self.continuous_update
        if continuous is None:
            continuous = self.render_seconds <= SLOW_REDRAW_S
        for control in self.controls.values():
            if "continuous_update" in control.trait_names():
                control.continuous_update = continuous

    def _redraw(self, _change: Any = None) -> None:
        try:
            self._draw()
        except Exception:  # a callback's error would vanish: show it where the image was
            shell = get_ipython()
            if shell is None:
                raise
            with self.output:
                clear_output()
                shell.showtraceback()


def _control(name: str, abbrev: Any) -> ipywidgets.ValueWidget:
    """A control from an ipywidgets abbreviation (``(min, max, step)``, a list of options,
    a bool) or a ready widget, described by ``name`` (``_`` read as a space) unless it has
    a description."""
    control = ipywidgets.interactive.widget_from_abbrev(abbrev)
    if not isinstance(control, ipywidgets.ValueWidget):
        raise TypeError(
            f"{name}: expected (min, max, step), a list of options, a bool or a control "
            f"widget, got {abbrev!r}"
        )
    if getattr(control, "options", None) and None in control._options_values:
        # ipywidgets reads the value None as "nothing chosen" and blanks the dropdown when
        # such an option is picked again: the control holds a stand-in, values() gives None
        index = control.index
        control.options = [
            (label, NONE_OPTION if value is None else value)
            for label, value in zip(control._options_labels, control._options_values, strict=True)
        ]
        control.index = 0 if index is None else index
    if not control.description:
        control.description = name.replace("_", " ")
    control.style.description_width = "initial"  # never cut a description short
    return control


def figure_widget(
    render: Callable[..., Figure], continuous_update: bool | None = None, **controls: Any
) -> FigureWidget:
    """Controls for ``render``'s keyword arguments above the figure it returns.

    Args:
        render: ``render(**values) -> Figure``, a pure function of the controls' values.
        continuous_update: redraw while a slider is dragged (True) or when it is released
            (False). Default: while the latest render took at most ``SLOW_REDRAW_S``.
        **controls: name -> ipywidgets abbreviation (``(min, max, step)``, a list of
            options, a bool) or a control widget.
    """
    return FigureWidget(render, controls, continuous_update)


# ------------------------------------------------------------- lecture 00: forward vs reverse KL
