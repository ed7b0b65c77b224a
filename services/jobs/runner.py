"""Run one job: provider separation, then the shared finalisation every provider gets.

Providers only write raw stems into the workspace. Export to the user's format, the browser
preview, the waveform peaks and the artifact list are done here once, so a new provider never
re-implements them. Failures become a terminal status with a message safe to show a user.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services import stems as stem_names
from services.audio.encode import export_audio, write_preview
from services.audio.formats import ExportFormat
from services.audio.peaks import compute_peaks, save_peaks
from services.config import Settings
from services.errors import InputRejected, JobCancelled, MalformedResponse, StemDeckError
from services.inputs import find_input
from services.jobs.model import Artifact, Job, JobStatus
from services.pricing.actual import SOURCE_FACT, actual_cost
from services.progress import ProgressCallback, ProgressEvent, scaled
from services.providers.base import (
    RunContext,
    SeparatedStem,
    SeparationProvider,
    SeparationRequest,
)

log = logging.getLogger(__name__)

SEPARATION_SHARE = 0.9
"""Fraction of the progress bar given to the provider; the rest is export/preview/peaks."""

INTERNAL = "Internal error while separating; see the server log"
"""Shown for unexpected exceptions; the traceback goes to the log only, never to the record."""
STEMS_DIR = "stems"
PREVIEW_DIR = "preview"
PEAKS_DIR = "peaks"


@dataclass
class RunResult:
    """The terminal state of one attempt, ready to be written to the job record."""

    status: JobStatus
    artifacts: list[Artifact] = field(default_factory=list)
    error: str | None = None
    actual_cost: float | None = None  # credits: reported by the provider, else the list price


def build_request(job: Job, settings: Settings) -> SeparationRequest:
    """The provider request for a job; the stored input must still exist."""
    spec = job.spec
    stored = find_input(spec.input_hash, settings)
    if stored is None:
        raise InputRejected(
            f"The input file of this job ({spec.input_name}) is no longer stored; add it again."
        )
    return SeparationRequest(
        input_path=stored.path,
        input_hash=spec.input_hash,
        duration_s=spec.duration_s,
        mode=spec.mode,
        stems=spec.stems,
        preprocessing=spec.preprocessing,
        source_url=spec.source_url,
    )


def run_job(
    job: Job,
    provider_for: Callable[[str], SeparationProvider],
    settings: Settings,
    workspace: Path,
    progress: ProgressCallback,
    remember: Callable[[str, str], None],
) -> RunResult:
    """Separate and finalise; never raises (except on interpreter exit): returns the outcome."""
    try:
        provider = provider_for(job.spec.provider)
        request = build_request(job, settings)
        facts = dict(job.facts)  # plus what this attempt remembers: the provider's reported cost

        def keep(key: str, value: str) -> None:
            facts[key] = value
            remember(key, value)

        ctx = RunContext(
            workspace, scaled(progress, 0.0, SEPARATION_SHARE), keep, facts=dict(job.facts)
        )
        separated = provider.run(request, ctx)
        artifacts = finalize(
            separated,
            workspace,
            ExportFormat.from_options(job.spec.export),
            scaled(progress, SEPARATION_SHARE, 1.0),
        )
    except JobCancelled as exc:
        return RunResult(JobStatus.CANCELLED, error=exc.user_message)
    except StemDeckError as exc:
        log.info("job %s failed: %s", job.id, exc.user_message)
        return RunResult(JobStatus.FAILED, error=exc.user_message)
    except Exception:
        log.exception("job %s crashed", job.id)
        return RunResult(
            JobStatus.FAILED,
            error=f"{INTERNAL} (job {job.id}).",
        )
    cost = _actual_cost(provider, request, facts, remember)
    return RunResult(JobStatus.SUCCEEDED, artifacts=artifacts, actual_cost=cost)


def _actual_cost(
    provider: SeparationProvider,
    request: SeparationRequest,
    facts: dict[str, str],
    remember: Callable[[str, str], None],
) -> float | None:
    """The reported charge, else the list price, noting which on the job (never fails a job)."""
    free = provider.capabilities.pricing_unit == "free"
    try:
        estimate = None if free else provider.estimate(request)
    except StemDeckError:
        estimate = None
    cost, source = actual_cost(facts, estimate, free)
    if source is not None:
        remember(SOURCE_FACT, source)
    return cost


def finalize(
    separated: list[SeparatedStem], workspace: Path, fmt: ExportFormat, progress: ProgressCallback
) -> list[Artifact]:
    """Export, preview and peaks per stem (canonical order), then drop the raw files."""
    if not separated:
        raise MalformedResponse("The provider returned no stems.")
    ordered = sorted(separated, key=lambda s: stem_names.sort_key(s.stem))
    names = [s.stem for s in ordered]
    if len(set(names)) != len(names):
        raise MalformedResponse(f"The provider returned a stem twice ({', '.join(names)}).")
    for folder in (STEMS_DIR, PREVIEW_DIR, PEAKS_DIR):
        (workspace / folder).mkdir(parents=True, exist_ok=True)
    steps = 3 * len(ordered)
    done = 0

    def step(stage: str) -> None:
        nonlocal done
        done += 1
        progress(ProgressEvent(done / steps, stage))

    artifacts = []
    for item in ordered:
        label = stem_names.label(item.stem).lower()
        exported = export_audio(item.path, workspace / STEMS_DIR / item.stem, fmt)
        step(f"exporting {label}")
        preview = write_preview(item.path, workspace / PREVIEW_DIR / f"{item.stem}.mp3")
        step(f"preview of {label}")
        peaks = compute_peaks(item.path)
        peaks_path = workspace / PEAKS_DIR / f"{item.stem}.json"
        save_peaks(peaks, peaks_path)
        step(f"waveform of {label}")
        artifacts.append(
            Artifact(
                stem=item.stem,
                provider_stem=item.provider_stem,
                file=exported.relative_to(workspace).as_posix(),
                preview=preview.relative_to(workspace).as_posix(),
                peaks=peaks_path.relative_to(workspace).as_posix(),
                rms_db=peaks.rms_db,
            )
        )
    _drop_raw(ordered, workspace, {workspace / a.file for a in artifacts})
    return artifacts


def _drop_raw(separated: list[SeparatedStem], workspace: Path, keep: set[Path]) -> None:
    """Remove the provider's intermediate files (large float WAVs) once exported."""
    for item in separated:
        path = item.path
        if path.is_relative_to(workspace) and path not in keep:
            path.unlink(missing_ok=True)
    shutil.rmtree(workspace / "raw", ignore_errors=True)
