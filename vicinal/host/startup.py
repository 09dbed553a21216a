"""Training without the import cost of torch's compiler stack (dynamo and inductor, ~2.5 s and a few
hundred modules before a run's first batch), which vicinal never uses.

Two torch calls on a run's path import it only to switch it off or configure it:

* ``torch.use_deterministic_algorithms`` imports ``torch._inductor.config`` to set inductor's
  ``deterministic`` option. :func:`set_deterministic` sets the same global flag the eager kernels read,
  and inductor's option too when inductor is already loaded.
* ``Optimizer.add_param_group``/``zero_grad``/``state_dict``/``load_state_dict`` are wrapped in
  ``torch._disable_dynamo``, which imports dynamo at the first call in order to exclude these methods
  from compilation. :func:`defer_dynamo` hands each wrapper a callable that runs the method directly
  while dynamo is not loaded (nothing can be compiling then, so there is nothing to exclude it from) and
  does exactly what torch does once dynamo is loaded. It relies on the wrapper's shape in
  ``torch/_compile.py``; a torch whose wrapper differs is left alone (and pays for the import).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

_OPTIMIZER_METHODS = ("add_param_group", "zero_grad", "state_dict", "load_state_dict")
_CACHE = "__dynamo_disable"  # where torch._disable_dynamo's wrapper caches its disabled function


def set_deterministic(mode: bool, *, warn_only: bool = True) -> None:
    """What ``torch.use_deterministic_algorithms(mode, warn_only=warn_only)`` does for eager execution."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:  # a torch without the private setter: pay for the import
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        return
    setter(mode, warn_only=warn_only)
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:
        inductor.deterministic = mode


def _until_dynamo(fn: Callable[..., Any], recursive: bool) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" not in sys.modules:
            return fn(*args, **kwargs)
        import torch._dynamo

        disabled = torch._dynamo.disable(fn, recursive, wrapping=False)
        setattr(fn, _CACHE, disabled)  # from now on torch's wrapper calls it itself
        return disabled(*args, **kwargs)

    return call


def defer_dynamo() -> list[str]:
    """Let the optimizer methods run without importing dynamo until something else imports it; returns
    the methods it applied to (none on a torch whose wrapper it does not recognise)."""
    from torch.optim import Optimizer

    done = []
    for name in _OPTIMIZER_METHODS:
        wrapper = getattr(Optimizer, name, None)
        closure = dict(
            zip(
                getattr(getattr(wrapper, "__code__", None), "co_freevars", ()),
                (cell.cell_contents for cell in getattr(wrapper, "__closure__", None) or ()),
                strict=False,
            )
        )
        fn = closure.get("fn")
        if fn is None or fn is not getattr(wrapper, "__wrapped__", None) or "recursive" not in closure:
            continue  # not torch._disable_dynamo's wrapper as this module knows it
        if getattr(fn, _CACHE, None) is None:
            setattr(fn, _CACHE, _until_dynamo(fn, closure["recursive"]))
        done.append(name)
    return done
