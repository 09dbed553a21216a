"""Metrics derived across a suite's results when a board is built, such as mCE against the suite's
baseline method: registered by name (``@register_derivation``), declared by the evaluator whose metrics
they read (``Declarations.derived``, recorded in each result file), computed by the renderers.

Deriving at render time keeps every result file self-contained and lets derived numbers follow when the
baseline is re-run. A derivation takes one suite's measured results and returns copies with metrics (and
their ``MetricInfo``) added; it must not import torch, since the leaderboard does not.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from vicinal.core.errors import VicinalError
from vicinal.core.registry import Registry
from vicinal.store.results import Result

Derivation = Callable[[list[Result]], list[Result]]
#: Built-in derivations live in :mod:`vicinal.board.relative`; plugins add theirs through the entry-point
# group : ``vicinal.derivations`` or ``--plugin``.
DERIVATIONS: Registry[Derivation] = Registry("derivation", "vicinal.board.relative", "vicinal.derivations")
register_derivation = DERIVATIONS.register
log = logging.getLogger("vicinal")


def declared_derivations(results: list[Result]) -> dict[str, str]:
    """``{derivation: the evaluator that declared it}``, in the order the results declare them."""
    out: dict[str, str] = {}
    for r in results:
        for evaluator, declared in r.declares.items():
            for name in declared.derived:
                out.setdefault(name, evaluator)
    return out


def derive(results: list[Result]) -> list[Result]:
    """The results with every declared derivation applied; the metrics a derivation adds are attributed
    to the evaluator that declared it. A derivation that is not registered here (a plugin's, not loaded)
    is skipped with a warning: the other numbers are still right."""
    for name, evaluator in declared_derivations(results).items():
        try:
            derivation = DERIVATIONS.get(name)
        except VicinalError as exc:
            log.warning(
                "metrics derived by %r (declared by evaluator %s) are left out: %s", name, evaluator, exc
            )
            continue
        before = [set(r.metric_info) for r in results]
        results = [
            dataclasses.replace(
                r,
                metric_info={
                    k: dataclasses.replace(v, evaluator=evaluator) if k not in old and not v.evaluator else v
                    for k, v in r.metric_info.items()
                },
            )
            for r, old in zip(derivation(results), before, strict=True)
        ]
    return results
