"""The job record: the single durable fact behind Results, History and (later) Compare."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.audio.formats import ExportFormat
    from services.inputs import InputInfo


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the user asked for. Equal specs give equal results, so the spec is the cache key."""

    input_hash: str
    input_name: str
    duration_s: float
    provider: str
    mode: str
    stems: tuple[str, ...] = ()
    preprocessing: tuple[str, ...] = ()
    export: dict[str, Any] = field(default_factory=dict)  # ExportFormat.as_options()
    source_url: str | None = None

    @classmethod
    def for_input(
        cls,
        stored: InputInfo,
        provider: str,
        mode: str,
        export: ExportFormat,
        stems: tuple[str, ...] = (),
        preprocessing: tuple[str, ...] = (),
    ) -> JobSpec:
        """The spec for a stored input; the one place the Split page and the CLI build it."""
        return cls(
            input_hash=stored.hash,
            input_name=stored.name,
            duration_s=stored.info.duration_s,
            provider=provider,
            mode=mode,
            stems=stems,
            preprocessing=preprocessing,
            export=export.as_options(),
            source_url=stored.source_url,
        )

    @property
    def cache_key(self) -> str:
        """sha256 over input content, provider, mode and options (not the file name)."""
        payload = {
            "input": self.input_hash,
            "provider": self.provider,
            "mode": self.mode,
            "stems": sorted(self.stems),
            "pre": sorted(self.preprocessing),
            "export": self.export,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Artifact:
    """One stem of a finished job; paths are relative to the job workspace."""

    stem: str
    provider_stem: str
    file: str  # in the user's chosen export format
    preview: str  # compressed (MP3) copy the browser plays
    peaks: str  # JSON min/max envelope for the waveform
    rms_db: float = float("-inf")  # loudness, so the UI can flag a near-silent stem


@dataclass(slots=True)
class Job:
    id: str
    spec: JobSpec
    status: JobStatus = JobStatus.QUEUED
    progress: float = 0.0
    stage: str = "queued"
    eta_s: float | None = None
    error: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    estimated_cost: float | None = None
    actual_cost: float | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    attempts: int = 0
    facts: dict[str, str] = field(default_factory=dict)  # provider-remembered (remote id, …)
    worker_id: str | None = None
    heartbeat_at: float | None = None

    @property
    def elapsed_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of audio processed per second of wall time (higher is faster)."""
        elapsed = self.elapsed_s
        return self.spec.duration_s / elapsed if elapsed else None

    def artifacts_json(self) -> str:
        return json.dumps([asdict(a) for a in self.artifacts])
