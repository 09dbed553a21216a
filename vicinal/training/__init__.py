"""Training a classifier: the method contract (:mod:`.method`) and its random state (:mod:`.rng`), the
classifiers (:mod:`.models`), augmentation (:mod:`.augment`) and the loop shared by every method
(:mod:`.loop`). The built-in methods themselves live in ``methods/`` (installed as ``vicinal.methods``)."""

from typing import Any


def __getattr__(name: str) -> Any:
    # vicinal.training was a module in 0.1: its names are still served, with a warning, until 0.3.
    from vicinal._compat import moved_name

    return moved_name(__name__, name)
