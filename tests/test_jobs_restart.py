"""Restart behaviour: nothing stays "running" forever, queued work survives, janitor tidies up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_jobs_providers import (
    TEST_PROVIDERS,
    WAIT_S,
    BandSplitProvider,
    registry_of,
    spec_for,
    wait_until,
    write_tone,
)

from services.config import Settings
from services.inputs import InputInfo, ingest_path
from services.jobs.model import Job, JobStatus
from services.jobs.store import JobStore
from services.jobs.worker import INTERRUPTED, MAX_ATTEMPTS, STALE_AFTER_S
from services.jobs.workspace import new_job_id
from services.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def song(settings: Settings, tmp_path: Path) -> InputInfo:
    return ingest_path(write_tone(tmp_path / "restart.wav", seed=7), settings)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def left_running(
    store: JobStore,
    song: InputInfo,
    worker_id: str,
    heartbeat_at: float,
    attempts: int,
    **spec_changes: object,
) -> Job:
    """A record exactly as a process that died mid-job leaves it."""
    job = Job(
        id=new_job_id(),
        spec=spec_for(song, **spec_changes),
        status=JobStatus.RUNNING,
        progress=0.4,
        stage="splitting bands",
        created_at=time.time(),
        started_at=heartbeat_at,
        attempts=attempts,
        worker_id=worker_id,
        heartbeat_at=heartbeat_at,
    )
    store.insert(job)
    return job


def test_job_of_a_dead_process_is_requeued_and_completes(settings: Settings, song: InputInfo):
    store = JobStore(settings.database)
    job = left_running(store, song, f"{socket.gethostname()}:{dead_pid()}:x", time.time(), 1)
    store.update(job.id, facts={"remote_id": "r-1"})  # remembered by the first attempt
    rt = Runtime.start(settings, registry=TEST_PROVIDERS)
    try:
        done = rt.wait(job.id, WAIT_S)
        assert done.status is JobStatus.SUCCEEDED, done.error
        assert done.attempts == 2 and done.worker_id == rt.worker.worker_id
        assert done.facts["resumed"] == "r-1"  # the provider saw what the first attempt kept
    finally:
        rt.shutdown()
        store.close()


def test_stale_job_past_the_attempt_limit_fails(settings: Settings, song: InputInfo) -> None:
    store = JobStore(settings.database)
    stale = time.time() - STALE_AFTER_S - 60
    job = left_running(store, song, "another-host:1:x", stale, MAX_ATTEMPTS)
    (settings.jobs_dir / job.id / "raw").mkdir(parents=True)  # its half-written files
    rt = Runtime.start(settings, registry=TEST_PROVIDERS)
    try:
        done = rt.get(job.id)
        assert done.status is JobStatus.FAILED and done.error == INTERRUPTED
        assert done.finished_at is not None
        assert not (settings.jobs_dir / job.id).exists()  # the janitor ran after the sweep
    finally:
        rt.shutdown()
        store.close()


def test_live_job_of_another_process_is_left_alone(settings: Settings, song: InputInfo) -> None:
    store = JobStore(settings.database)
    job = left_running(store, song, "another-host:1:x", time.time(), 1)
    rt = Runtime.start(settings, registry=TEST_PROVIDERS)
    try:
        got = rt.get(job.id)
        assert got.status is JobStatus.RUNNING and got.worker_id == "another-host:1:x"
    finally:
        rt.shutdown()
        store.close()


def test_queued_jobs_of_a_previous_process_are_picked_up(settings: Settings, song: InputInfo):
    first = Runtime.start(settings, registry=TEST_PROVIDERS)
    first.worker.stop()  # the process stops before its worker takes the job
    job = first.submit(spec_for(song))
    first.shutdown()
    rt = Runtime.start(settings, registry=TEST_PROVIDERS)
    try:
        assert rt.wait(job.id, WAIT_S).status is JobStatus.SUCCEEDED
    finally:
        rt.shutdown()


def test_shutdown_puts_running_work_back_in_the_queue(settings: Settings, song: InputInfo):
    rt = Runtime.start(settings, registry=TEST_PROVIDERS)
    job = rt.submit(spec_for(song, provider="slow"))
    wait_until(lambda: rt.get(job.id).progress > 0, what="the job to start")
    rt.shutdown()
    store = JobStore(settings.database)
    try:
        again = store.get(job.id)
        assert again.status is JobStatus.QUEUED and again.attempts == 0
    finally:
        store.close()


KILLED_APP = textwrap.dedent(
    """
    import sys, time
    from services.config import load_settings
    from services.inputs import ingest_path
    from services.jobs.model import JobSpec
    from services.runtime import Runtime
    from test_jobs_providers import TEST_PROVIDERS

    settings = load_settings()
    stored = ingest_path(__import__("pathlib").Path(sys.argv[1]), settings)
    rt = Runtime.start(settings, registry=TEST_PROVIDERS)
    job = rt.submit(JobSpec(stored.hash, stored.name, stored.info.duration_s, "slow", "2",
                            export={"format": "wav", "bit_depth": 16}))
    print(job.id, flush=True)
    time.sleep(600)
    """
)


def test_sigkill_mid_job_then_restart_ends_terminal(settings: Settings, tmp_path: Path) -> None:
    source = write_tone(tmp_path / "killed.wav", seed=3)
    env = {
        **os.environ,
        "STEMDECK_DATA_DIR": str(settings.data_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_APP, str(source)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = proc.stdout.readline().strip()
        assert len(job_id) == 32, "the app did not start"
        store = JobStore(settings.database)
        wait_until(lambda: store.get(job_id).progress > 0, what="the job to run")
        assert store.get(job_id).status is JobStatus.RUNNING
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert store.get(job_id).status is JobStatus.RUNNING  # what the dead process left
        store.close()
    finally:
        proc.kill()
        proc.wait()
    # The restarted app runs the same provider name, quickly, so the test stays short.
    rt = Runtime.start(settings, registry=registry_of(slow=BandSplitProvider))
    try:
        done = rt.wait(job_id, WAIT_S)
        assert done.status is JobStatus.SUCCEEDED, done.error
        assert done.attempts == 2
    finally:
        rt.shutdown()


def test_janitor_removes_orphans_and_failed_work(settings: Settings, song: InputInfo) -> None:
    rt = Runtime.start(settings, registry=TEST_PROVIDERS)
    kept = rt.wait(rt.submit(spec_for(song)).id, WAIT_S)
    failed = rt.wait(rt.submit(spec_for(song, provider="failing")).id, WAIT_S)
    rt.shutdown()
    orphan = settings.jobs_dir / new_job_id()
    (orphan / "raw").mkdir(parents=True)
    (orphan / "raw" / "vocals.wav").write_bytes(b"partial")
    (settings.jobs_dir / failed.id / "raw").mkdir(parents=True)
    foreign = settings.jobs_dir / "not-a-job"
    foreign.mkdir()
    Runtime.start(settings, registry=TEST_PROVIDERS).shutdown()
    assert not orphan.exists() and not (settings.jobs_dir / failed.id).exists()
    assert (settings.jobs_dir / kept.id / kept.artifacts[0].file).is_file()
    assert foreign.is_dir()  # only job-id folders are ever touched
