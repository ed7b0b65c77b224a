"""The one object pages and the CLI talk to: submit, watch, cancel, delete and download jobs.

One :class:`Runtime` per process (the UI keeps it in ``st.cache_resource``). It owns the store,
the workspaces and the worker; everything it returns is a plain :class:`Job` snapshot.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from services.audio.encode import zip_files
from services.audio.formats import ExportFormat
from services.config import Settings
from services.errors import InputRejected, JobCancelled, ProviderError, StemDeckError
from services.jobs.model import Job, JobSpec, JobStatus
from services.jobs.runner import build_request
from services.jobs.store import JobStore
from services.jobs.worker import Worker
from services.jobs.workspace import Workspaces, new_job_id
from services.providers.base import SeparationProvider
from services.providers.registry import DEFAULT, Registry

log = logging.getLogger(__name__)

WAIT_POLL_S = 0.1
DELETE_WAIT_S = 15.0


class Runtime:
    """Store + workspaces + worker behind the service API the brief names."""

    def __init__(self, settings: Settings, registry: Registry, store: JobStore) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.workspaces = Workspaces(settings.jobs_dir)
        self.worker = Worker(
            store, self.workspaces, settings, self.provider, settings.local_workers
        )
        self._submit_lock = threading.Lock()
        self._zip_lock = threading.Lock()

    @classmethod
    def start(cls, settings: Settings, registry: Registry | None = None) -> Runtime:
        """Open the store, sweep what a dead process left behind, start the worker threads."""
        runtime = cls(settings, registry or DEFAULT, JobStore(settings.database))
        runtime.worker.start()  # sweeps first, so jobs it fails are tidied by the janitor below
        report = runtime.workspaces.janitor(runtime.store.statuses)
        if report.orphans or report.failed:
            log.info(
                "janitor removed %d orphan and %d failed workspaces",
                len(report.orphans),
                len(report.failed),
            )
        return runtime

    def provider(self, name: str) -> SeparationProvider:
        return self.registry.get(name, self.settings)

    def providers(self) -> dict[str, SeparationProvider]:
        return {name: self.provider(name) for name in self.registry.names()}

    def submit(self, spec: JobSpec, fresh: bool = False) -> Job:
        """Queue ``spec``; an identical stored result (unless ``fresh``) or run is returned."""
        provider = self.provider(spec.provider)
        try:
            provider.capabilities.mode(spec.mode)
        except KeyError:
            modes = ", ".join(m.id for m in provider.capabilities.modes)
            raise ProviderError(
                f"{provider.capabilities.display_name} has no mode {spec.mode!r} "
                f"(available: {modes})."
            ) from None
        ExportFormat.from_options(spec.export)  # refuse a bad format before any work
        with self._submit_lock:
            done = None if fresh else self.cached(spec)
            if done is not None:
                return done
            active = self.store.find_active(spec.cache_key)
            if active is not None:
                return active
            job = Job(id=new_job_id(), spec=spec, created_at=time.time())
            estimate = provider.estimate(build_request(job, self.settings))
            job.estimated_cost = estimate.credits
            self.store.insert(job)
        self.worker.wake()
        return job

    def cached(self, spec: JobSpec) -> Job | None:
        """The stored result for ``spec`` (same cache key) whose files are all still there."""
        done = self.store.find_succeeded(spec.cache_key)
        return done if done is not None and self._files_present(done) else None

    def _files_present(self, job: Job) -> bool:
        """A cached result is only reusable if nobody removed its files meanwhile."""
        try:
            return all(
                self.artifact_path(job, rel).is_file()
                for a in job.artifacts
                for rel in (a.file, a.preview, a.peaks)
            )
        except ValueError:
            return False

    def get(self, job_id: str) -> Job | None:
        return self.store.get(job_id)

    def list_jobs(self, limit: int = 200) -> list[Job]:
        """Newest first."""
        return self.store.list(limit)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job at once, or ask a running one (here or elsewhere) to stop."""
        cancelled = self.store.update(
            job_id,
            only_if={"status": JobStatus.QUEUED},
            status=JobStatus.CANCELLED,
            stage="cancelled",
            error=JobCancelled().user_message,
            finished_at=time.time(),
        )
        if not cancelled:
            self.store.request_cancel(job_id)
            self.worker.cancel(job_id)
        return self.get(job_id)

    def delete(self, job_id: str) -> None:
        """Remove record and files; a job still working is cancelled (and awaited) first."""
        job = self.get(job_id)
        if job is None:
            return
        if not job.status.terminal:
            self.cancel(job_id)
            if not self.wait(job_id, DELETE_WAIT_S).status.terminal:
                raise StemDeckError("This job is still stopping; try deleting it again shortly.")
        self.store.delete(job_id)
        self.workspaces.delete(job_id)

    def workspace(self, job_id: str) -> Path:
        return self.workspaces.path(job_id)

    def artifact_path(self, job: Job, artifact_relpath: str) -> Path:
        """Absolute path of a file recorded on ``job``; never outside its workspace."""
        return self.workspaces.resolve(job.id, artifact_relpath)

    def zip_for(self, job_id: str) -> Path:
        """A zip of every stem in the job's export format, built on first request."""
        job = self.get(job_id)
        if job is None or job.status is not JobStatus.SUCCEEDED:
            raise InputRejected("Only a finished job can be downloaded as a zip.")
        dest = self.workspace(job_id) / zip_name(job)
        with self._zip_lock:
            if not dest.is_file():
                members = [
                    (Path(a.file).name, self.artifact_path(job, a.file)) for a in job.artifacts
                ]
                zip_files(members, dest)  # atomic: a half-built zip never has the real name
        return dest

    def wait(self, job_id: str, timeout_s: float | None = None) -> Job:
        """Block until the job is terminal or ``timeout_s`` passes; returns the latest record."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.get(job_id)
            if job is None:
                raise StemDeckError(f"Job {job_id} no longer exists.")
            if job.status.terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                return job
            time.sleep(WAIT_POLL_S)

    def shutdown(self) -> None:
        """Stop the worker (running jobs go back to the queue) and close the store."""
        self.worker.stop()
        self.store.close()


def zip_name(job: Job) -> str:
    """``<input name>-<mode>-stems.zip`` with only safe characters (it becomes a file name)."""
    stem = Path(job.spec.input_name).stem
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80] or "stems"
    mode = re.sub(r"[^A-Za-z0-9]+", "", job.spec.mode) or "mode"
    return f"{safe}-{mode}-stems.zip"
