"""Progress reporting from engines and providers to the job worker (and so to the UI)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One progress report: ``fraction`` in [0, 1] of the whole job, ``stage`` a short label."""

    fraction: float
    stage: str


ProgressCallback = Callable[[ProgressEvent], None]
"""Called by long work; may raise :class:`services.errors.JobCancelled` to stop it."""


def scaled(callback: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """Map a sub-task's 0..1 progress into ``start..end`` of the parent's range."""

    def report(event: ProgressEvent) -> None:
        callback(ProgressEvent(start + (end - start) * event.fraction, event.stage))

    return report


def ignore(_event: ProgressEvent) -> None:
    """A callback for callers that do not display progress (CLI quiet mode, benchmarks)."""
