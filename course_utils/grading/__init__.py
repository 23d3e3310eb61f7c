"""Grading: the checks test cells call, self-grading (one notebook in its own kernel,
trusted) and class grading (each submission sandboxed, every verdict judged outside it).

* ``checks``: ``check``, ``check_close``, ... (re-exported here for the notebooks).
* ``notebooks``: reading submissions (nbformat 3 and 4.x), questions, canonical test cells.
* ``plugin``: the pytest plugin that scores a notebook under ``--nbval-lax`` (self-grading).
* ``selfgrade``: ``course grade NB``, one notebook in its own kernel, trusted.
* ``classgrade``: ``course grade FOLDER``, a class's submissions, each in a sandbox
  (``sandbox``), its test cells split (``cells``) so that only plain data leaves it and
  every verdict is computed by a judge outside it (``worker``).
* ``report``: score tables, the CSV, the per-question summary.
* ``command``: ``course grade``, its options and what it prints.
* ``autograder``: ``course autograder``, one set as a Gradescope autograder (class grading).
* ``release``: ``course release DIR``, the course without solutions or hidden tests.
* ``similarity``: ``course grade FOLDER --similarity``, code shared between submissions.

The threat model is in the README ("Grading a class") and docs/DESIGN.md.
"""

# Bound when the package is imported: a notebook that later rebinds checks.X does not change
# what its test cells import from here (tests/test_class_attacks.py, hidden_seed).
from course_utils.grading.checks import (
    check,
    check_close,
    check_finite,
    check_grad,
    check_score,
    check_shape,
    check_tensor,
    hidden_generator,
    solution,
)

__all__ = [
    "check",
    "check_close",
    "check_finite",
    "check_grad",
    "check_score",
    "check_shape",
    "check_tensor",
    "hidden_generator",
    "solution",
]
