"""JupyterLab as ``make lab`` runs it: the pre-save hook that keeps dead widget views out
of saved notebooks.

A widget lives only while its kernel runs. JupyterLab saves a widget's output as a
reference to a model that is gone once the kernel stops, and a reopened notebook shows
"Error displaying widget: model not found" in its place. ``pre_save_hook`` replaces each
such output, in the saved file only, by a line telling the student to run the cell again;
every other output is kept. ``make install`` configures every Jupyter server of the
course's ``.venv`` to use it (``.venv/etc/jupyter/jupyter_server_config.json``).
"""

from __future__ import annotations

from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RERUN_NOTE = "[interactive figure: run this cell again to show it]"


def without_live_widgets(nb: dict[str, Any]) -> int:
    """Replace, in place, every widget output of the notebook ``nb`` (nbformat 4 as a dict)
    by a ``text/plain`` note, and drop the saved widget state; return how many."""
    nb.get("metadata", {}).pop("widgets", None)
    replaced = 0
    for cell in nb.get("cells", []):
        outputs = cell.get("outputs", [])
        for i, output in enumerate(outputs):
            if WIDGET_VIEW in output.get("data", {}):
                outputs[i] = {
                    "output_type": "display_data",
                    "data": {"text/plain": RERUN_NOTE},
                    "metadata": {},
                }
                replaced += 1
    return replaced


def pre_save_hook(model: dict[str, Any], **kwargs: Any) -> None:
    """Jupyter Server's pre-save hook (``model``, ``path``, ``contents_manager``): notebooks
    are saved without live widgets (``without_live_widgets``); other files as they are."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        without_live_widgets(model["content"])
