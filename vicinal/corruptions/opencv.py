"""OpenCV for CPU batches: where a step is one of OpenCV's own functions and OpenCV's C code, called
image by image (or plane by plane), beats batched torch ops on the CPU, the engine calls it (measured in
BENCHMARKS.md; each use is checked against the torch path, which other devices keep, in the tests).

OpenCV keeps its own thread pool, one thread per core by default, beside torch's (which vicinal's
thread policy governs). The per-image calls made here gain nothing from it (a 224-px separable filter
takes the same time on one thread as on two), so OpenCV is held to one thread while the engine calls it
and given back as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType


@contextmanager
def serial_opencv() -> Iterator[ModuleType]:
    """``cv2``, on one thread for the duration of the block."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield cv2
    finally:
        cv2.setNumThreads(threads)
