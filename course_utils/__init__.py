"""Helper package of the Deep Generative Models course.

Plumbing (data, a training loop, plots, metrics, widgets, checkpoints, the
build and grading pipeline) and one reference module per topic (``vae``, ``gan``,
``flows``, ``diffusion``, ``flow_matching``, ``autoregressive``, ``vqvae``), which train
and load the shipped weights and run the benchmarks. A lecture writes out the models it
teaches; ``tests/test_lecture_twins.py`` keeps its copy and the topic module's in step.
Importing the package sets a deliberate CPU thread count (see ``course_utils.device``).
"""

from course_utils.device import configure_threads, get_device, seed_everything

__all__ = ["configure_threads", "get_device", "seed_everything"]
__version__ = "0.1.0"

configure_threads()
