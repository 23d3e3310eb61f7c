"""Device choice (``get_device()``: cuda > mps > cpu; ``COURSE_DEVICE=cpu|cuda|mps``
overrides), seeding (``seed_everything``) and the CPU thread count.

The course's models are small (MLPs and tiny CNNs on 2D points, 8x8 digits and 28x28
MNIST). For them, more intra-op threads do not help on a laptop, and on a busy machine
they hurt badly: `course bench threads` measures it. So on the CPU we run one thread by
default; set ``COURSE_NUM_THREADS`` to override. ``COURSE_DEVICE`` (cpu, cuda, mps)
overrides the automatic choice of device.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

DEFAULT_CPU_THREADS = 1
THREADS_ENV = "COURSE_NUM_THREADS"
DEVICE_ENV = "COURSE_DEVICE"
DEVICE_TYPES = ("cuda", "mps", "cpu")


def get_device(prefer: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then the CPU.

    Args:
        prefer: force a device type ("cuda", "mps" or "cpu"); ``None`` reads
            ``COURSE_DEVICE`` and, when it is unset or empty, picks the best.

    Raises:
        ValueError: ``prefer`` (or ``COURSE_DEVICE``) is not one of the three names, or
            names a device that is not available here.
    """
    arg = "prefer"
    if prefer is None and os.environ.get(DEVICE_ENV):
        arg, prefer = DEVICE_ENV, os.environ[DEVICE_ENV]
    if prefer is not None:
        if prefer not in DEVICE_TYPES:
            raise ValueError(f"{arg}: expected 'cuda', 'mps' or 'cpu', got {prefer!r}")
        if prefer == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{arg}: 'cuda' was asked for but no CUDA device is available")
        if prefer == "mps" and not _mps_available():
            raise ValueError(f"{arg}: 'mps' was asked for but no Apple MPS device is available")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a seeded CPU generator.

    Raises:
        TypeError: ``seed`` is not an int.
        ValueError: ``seed`` is negative.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def configure_threads(num_threads: int | None = None) -> int:
    """Set PyTorch's intra-op CPU thread count and return it.

    ``None`` reads ``COURSE_NUM_THREADS`` and falls back to ``DEFAULT_CPU_THREADS`` (1),
    the fastest choice measured for the course's small models (`course bench threads`).

    Raises:
        ValueError: the count (argument or environment variable) is not a positive int.
    """
    if num_threads is None:
        raw = os.environ.get(THREADS_ENV)
        if raw is None:
            num_threads = DEFAULT_CPU_THREADS
        else:
            try:
                num_threads = int(raw)
            except ValueError:
                raise ValueError(
                    f"{THREADS_ENV}: expected a positive integer, got {raw!r}"
                ) from None
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
        raise ValueError(f"num_threads: expected a positive int, got {num_threads!r}")
    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
    return num_threads


configure_threads()  # on import: every course module that computes imports this one
