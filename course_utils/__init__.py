"""Helper package of the Deep Generative Models course.

Plumbing only: data, a training loop, plots, metrics, widgets, checkpoints and the
build/grading pipeline. The models a lecture teaches are written in the lecture.
Importing the package sets a deliberate CPU thread count (see ``course_utils.device``).
"""

from course_utils.device import configure_threads, get_device, seed_everything

__all__ = ["configure_threads", "get_device", "seed_everything"]
__version__ = "0.1.0"

configure_threads()
