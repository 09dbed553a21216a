"""Models vicinal did not train: evaluating a given model under a suite's protocol (:mod:`.given`), and
RobustBench's model zoo in and out (:mod:`.robustbench`)."""

from typing import Any


def __getattr__(name: str) -> Any:
    # vicinal.external was a module in 0.1: its names are still served, with a warning, until 0.3.
    from vicinal._compat import moved_name

    return moved_name(__name__, name)
