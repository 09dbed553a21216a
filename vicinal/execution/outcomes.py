"""What became of each run: finished (:class:`RunOutcome`) or failed (:class:`RunFailure`), and the error
that ends a command whose runs partly failed (:class:`RunsFailed`, with the finished ones kept)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vicinal.core.errors import VicinalError
from vicinal.core.io import atomic_write_text

if TYPE_CHECKING:
    from vicinal.execution.jobs import RunJob


@dataclass
class RunOutcome:
    method: str
    seed: int
    path: Path
    #: "trained"; "re-evaluated" (its trained model came from the cache: only the evaluation ran, after
    #: an evaluator or its settings changed); "reused" (its result file was kept).
    status: str
    metrics: dict[str, float]


@dataclass
class RunFailure:
    method: str
    seed: int
    message: str
    #: Where the full traceback was written, for an error that is not a user-facing one.
    details: Path | None = None

    @classmethod
    def of(cls, job: RunJob, exc: BaseException, cache_dir: Path) -> RunFailure:
        if isinstance(exc, VicinalError):
            return cls(job.method.name, job.seed, str(exc))
        return cls.of_traceback(
            job, f"{type(exc).__name__}: {exc}", "".join(traceback.format_exception(exc)), cache_dir
        )

    @classmethod
    def of_traceback(cls, job: RunJob, summary: str, trace: str, cache_dir: Path) -> RunFailure:
        """A failure known by its text: ``summary`` ("RuntimeError: …") and its full traceback, written to
        the driver's cache folder for a bug report (a run on another machine sends both back as text)."""
        details: Path | None = cache_dir / "errors" / f"{job.result_path.stem}-{job.method.name}.txt"
        try:
            atomic_write_text(details, trace)
        except VicinalError:
            details = None
        where = f" (traceback in {details})" if details else ""
        return cls(job.method.name, job.seed, f"{summary}{where}", details)


class RunsFailed(VicinalError):
    """Some runs failed; the others finished and their results are kept (exit code 1)."""

    exit_code = 1

    def __init__(self, failures: list[RunFailure], finished: int):
        self.failures = failures
        lines = "; ".join(f"{f.method} seed {f.seed}: {f.message}" for f in failures)
        super().__init__(
            f"{len(failures)} run(s) failed, {finished} finished and kept — {lines}. "
            "Fix the cause and run the same command again: finished runs are reused."
        )
