"""Background worker: two small thread pools (local engine, remote providers) that drain
the store's queue.

The queue *is* the store (queued jobs in creation order), so jobs survive restarts and several
processes (the app, the CLI) can share one data directory. Progress, stage, ETA and a heartbeat
go to the store; a restart sweep turns jobs orphaned by a dead process back into queued (once)
or failed, so nothing stays "running" forever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from services.config import Settings
from services.errors import JobCancelled
from services.jobs.model import Job, JobStatus
from services.jobs.runner import INTERNAL, RunResult, run_job
from services.jobs.store import JobStore
from services.jobs.workspace import Workspaces
from services.progress import ProgressEvent
from services.providers.base import SeparationProvider

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2
"""A job interrupted by a restart is retried once; a second interruption fails it."""
STALE_AFTER_S = 30.0
"""A running job whose heartbeat is older than this belongs to a dead process."""
PROGRESS_INTERVAL_S = 0.25
"""At most four progress writes per second per job; the tick flushes what was held back."""
TICK_S = 1.0
HEARTBEAT_S = 5.0
SWEEP_S = 30.0
INTERRUPTED = "Interrupted when the app restarted; run it again."


def make_worker_id() -> str:
    """``host:pid:token`` — host and pid let a restart tell a dead owner from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_abandoned(job: Job, now: float) -> bool:
    """True when the process that ran ``job`` is gone (dead pid on this host, or silent)."""
    host, _, rest = (job.worker_id or "").partition(":")
    pid = rest.partition(":")[0]
    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return True
    last_sign = job.heartbeat_at or job.started_at or 0.0
    return now - last_sign > STALE_AFTER_S


def sweep(store: JobStore, own_worker_id: str, now: float) -> list[tuple[str, JobStatus]]:
    """Re-queue (attempts left) or fail running jobs whose process died; returns what changed."""
    changed = []
    for job in store.in_status(JobStatus.RUNNING):
        if job.worker_id == own_worker_id or not is_abandoned(job, now):
            continue
        owner = {"status": JobStatus.RUNNING, "worker_id": job.worker_id}
        if job.attempts < MAX_ATTEMPTS:
            values = {
                "status": JobStatus.QUEUED,
                "stage": "queued again after a restart",
                "progress": 0.0,
                "eta_s": None,
                "worker_id": None,
                "heartbeat_at": None,
            }
        else:
            values = {
                "status": JobStatus.FAILED,
                "stage": "failed",
                "error": INTERRUPTED,
                "eta_s": None,
                "finished_at": now,
            }
        if store.update(job.id, only_if=owner, **values):
            log.warning("job %s abandoned by %s: now %s", job.id, job.worker_id, values["status"])
            changed.append((job.id, values["status"]))
    return changed


class JobProgress:
    """The progress callback of one running job: cancel check, monotonic fraction, throttle."""

    def __init__(self, store: JobStore, job: Job, worker_id: str) -> None:
        self.store, self.job_id, self.worker_id = store, job.id, worker_id
        self.cancel = threading.Event()
        self.shutdown = False
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._fraction = 0.0
        self._stage = "starting"
        self._written_at = 0.0
        self._dirty = False

    def __call__(self, event: ProgressEvent) -> None:
        if self.cancel.is_set():
            raise JobCancelled()
        with self._lock:
            self._fraction = min(1.0, max(self._fraction, event.fraction))
            self._stage = event.stage
            self._dirty = True
            due = time.monotonic() - self._written_at >= PROGRESS_INTERVAL_S
        if due:
            self.flush()
        if self.cancel.is_set():
            raise JobCancelled()

    def flush(self) -> None:
        """Write held-back progress (called by the job thread and by the worker's tick)."""
        with self._lock:
            if not self._dirty:
                return
            fraction, stage = self._fraction, self._stage
            self._dirty = False
            self._written_at = now = time.monotonic()
        elapsed = now - self._started
        eta = elapsed * (1.0 - fraction) / fraction if fraction >= 0.01 else None
        stop = self.store.progress(
            self.job_id,
            self.worker_id,
            progress=fraction,
            stage=stage,
            eta_s=eta,
            heartbeat_at=time.time(),
        )
        if stop:
            self.cancel.set()


LOCAL_PROVIDERS = frozenset({"local"})
"""Providers that separate on this machine's CPU; every other provider waits on the network."""


class Worker:
    """Job threads in two pools plus one tick thread (progress flush, heartbeat, sweep).

    ``threads`` bound the CPU-bound local-engine jobs (each uses every core); remote jobs, which
    mostly wait on a provider, run on ``settings.remote_workers`` threads of their own, so a
    comparison's remote lanes run side by side instead of queueing behind the local one.
    """

    def __init__(
        self,
        store: JobStore,
        workspaces: Workspaces,
        settings: Settings,
        provider_for: Callable[[str], SeparationProvider],
        threads: int,
    ) -> None:
        self.store, self.workspaces, self.settings = store, workspaces, settings
        self.provider_for = provider_for
        self.worker_id = make_worker_id()
        self._threads = max(1, threads)
        self._remote_threads = max(1, settings.remote_workers)
        self._running: dict[str, JobProgress] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._pool: list[threading.Thread] = []

    def start(self) -> None:
        sweep(self.store, self.worker_id, time.time())
        loops: list[tuple[str, Callable[..., None], tuple[bool, ...]]] = [
            (f"stemdeck-job-{i}", self._job_loop, (False,)) for i in range(self._threads)
        ]
        loops += [
            (f"stemdeck-job-remote-{i}", self._job_loop, (True,))
            for i in range(self._remote_threads)
        ]
        loops.append(("stemdeck-tick", self._tick_loop, ()))
        for name, target, args in loops:
            thread = threading.Thread(target=target, args=args, name=name, daemon=True)
            thread.start()
            self._pool.append(thread)

    def wake(self) -> None:
        """A job was queued: let an idle thread pick it up now rather than at its next poll."""
        with self._wake:
            self._wake.notify_all()

    def cancel(self, job_id: str) -> bool:
        """Flag a job running in this process; it stops at its next progress report."""
        with self._lock:
            progress = self._running.get(job_id)
        if progress is not None:
            progress.cancel.set()
        return progress is not None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Interrupt running jobs (they go back to the queue) and join the threads."""
        self._stopping.set()
        with self._lock:
            for progress in self._running.values():
                progress.shutdown = True
                progress.cancel.set()
        self.wake()
        deadline = time.monotonic() + timeout_s
        for thread in self._pool:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _job_loop(self, remote: bool) -> None:
        while not self._stopping.is_set():
            try:
                job = self.store.claim_next(
                    self.worker_id, time.time(), LOCAL_PROVIDERS, exclude=remote
                )
            except Exception:
                log.exception("could not read the job queue")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(TICK_S)
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        progress = JobProgress(self.store, job, self.worker_id)
        with self._lock:
            self._running[job.id] = progress
            if self._stopping.is_set():  # claimed while stop() was flagging the others
                progress.shutdown = True
                progress.cancel.set()
        try:
            workspace = self.workspaces.fresh(job.id)
            result = run_job(
                job,
                self.provider_for,
                self.settings,
                workspace,
                progress,
                lambda key, value: self._remember(job.id, key, value),
            )
        except Exception:  # e.g. the workspace could not be created (disk full)
            log.exception("job %s could not run", job.id)
            result = RunResult(JobStatus.FAILED, error=f"{INTERNAL} (job {job.id}).")
        try:
            self._finish(job, progress, result)
        except Exception:
            log.exception("job %s: could not record the outcome", job.id)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _remember(self, job_id: str, key: str, value: str) -> None:
        job = self.store.get(job_id)
        if job is not None:
            self.store.update(job_id, facts={**job.facts, key: value})

    def _finish(self, job: Job, progress: JobProgress, result: RunResult) -> None:
        owner = {"status": JobStatus.RUNNING, "worker_id": self.worker_id}
        if progress.shutdown and result.status is JobStatus.CANCELLED:
            self.store.update(
                job.id,
                only_if=owner,
                status=JobStatus.QUEUED,
                stage="queued (app stopped)",
                progress=0.0,
                eta_s=None,
                worker_id=None,
                heartbeat_at=None,
                attempts=job.attempts - 1,
            )
            return
        done = result.status is JobStatus.SUCCEEDED
        values = {
            "status": result.status,
            "artifacts": result.artifacts,
            "error": result.error,
            "stage": str(result.status),
            "eta_s": None,
            "finished_at": time.time(),
            "actual_cost": result.actual_cost,
        }
        if done:
            values["progress"] = 1.0
        if not self.store.update(job.id, only_if=owner, **values):
            log.warning("job %s was taken over or deleted while it ran", job.id)
        elif not done:
            self.workspaces.delete(job.id)  # partial files are of no use to anyone

    def _tick_loop(self) -> None:
        last_beat = last_sweep = time.monotonic()
        while not self._stopping.wait(TICK_S):
            try:
                with self._lock:
                    running = list(self._running.values())
                for progress in running:
                    progress.flush()
                now = time.monotonic()
                if now - last_beat >= HEARTBEAT_S:
                    self.store.heartbeat(self.worker_id, time.time())
                    last_beat = now
                if now - last_sweep >= SWEEP_S:
                    sweep(self.store, self.worker_id, time.time())
                    last_sweep = now
            except Exception:
                log.exception("worker tick failed")
