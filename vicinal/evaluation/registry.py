"""The evaluator registry on its own, without the evaluator contract (which needs torch): listing the
evaluators (``vicinal evaluators``) reads the built-in files' decorators from source and need not import
torch. :mod:`vicinal.evaluation.evaluator` registers into it."""

from __future__ import annotations

from typing import Any

from vicinal.core.registry import Registry

#: Evaluator name → its class (a subclass of :class:`vicinal.evaluation.evaluator.Evaluator`).
EVALUATORS: Registry[type[Any]] = Registry("evaluator", "vicinal.evaluators", "vicinal.evaluators")
