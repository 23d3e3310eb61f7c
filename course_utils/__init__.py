"""Helper package of the Deep Generative Models course.

Plumbing (data, a training loop, plots, metrics, widgets, checkpoints, the
build and grading pipeline) and one reference module per topic (``registry.TOPICS``),
which train and load the shipped weights and run the benchmarks. A lecture writes out the
models it teaches; ``tests/test_lecture_twins.py`` keeps its copy and the topic module's in
step. Every module that computes with torch imports ``course_utils.device``, which sets a
deliberate CPU thread count; the package itself imports nothing, so the ``course`` command
starts without torch. Which module may import which: docs/DESIGN.md, "Layers".
"""

__version__ = "0.1.0"
