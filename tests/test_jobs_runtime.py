"""Runtime + worker + runner end to end with real (test) providers, real files, real SQLite."""

from __future__ import annotations

import logging
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_jobs_providers import (
    TEST_PROVIDERS,
    WAIT_S,
    CrashingProvider,
    spec_for,
    split_bands,
    wait_until,
    write_tone,
)

from services.audio.peaks import load_peaks
from services.config import Settings
from services.errors import InputRejected, ProviderError
from services.inputs import InputInfo, ingest_path
from services.jobs.model import Job, JobStatus
from services.jobs.runner import run_job
from services.jobs.store import JobStore
from services.jobs.worker import PROGRESS_INTERVAL_S, JobProgress
from services.jobs.workspace import new_job_id
from services.progress import ProgressEvent
from services.providers.registry import UnknownProvider
from services.runtime import Runtime


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.start(settings, registry=TEST_PROVIDERS)
    try:
        yield runtime
    finally:
        runtime.shutdown()


@pytest.fixture
def song(settings: Settings, tmp_path: Path) -> InputInfo:
    return ingest_path(write_tone(tmp_path / "My Song (live).wav"), settings)


def test_job_runs_in_the_background_and_produces_artifacts(rt: Runtime, song: InputInfo) -> None:
    job = rt.submit(spec_for(song))
    assert job.status is JobStatus.QUEUED and job.estimated_cost == 0.0
    done = rt.wait(job.id, WAIT_S)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.facts["thread"].startswith("stemdeck-job")  # ran off the calling thread
    assert threading.current_thread().name != done.facts["thread"]
    assert done.progress == 1.0 and done.error is None and done.actual_cost == 0.0
    assert done.started_at is not None and done.finished_at >= done.started_at
    assert [a.stem for a in done.artifacts] == ["bass", "other"]  # canonical order
    assert [a.provider_stem for a in done.artifacts] == ["low", "high"]
    original, rate = sf.read(song.path, dtype="float32")
    low, _high = split_bands(original, rate)
    for artifact in done.artifacts:
        exported = rt.artifact_path(done, artifact.file)
        info = sf.info(exported)
        assert (info.format, info.subtype, info.channels) == ("FLAC", "PCM_24", 2)
        assert rt.artifact_path(done, artifact.preview).read_bytes()[:3] in (b"ID3", b"\xff\xfb")
        peaks = load_peaks(rt.artifact_path(done, artifact.peaks))
        assert peaks.rms_db == artifact.rms_db and -60 < artifact.rms_db < 0
    bass, _ = sf.read(rt.artifact_path(done, done.artifacts[0].file), dtype="float32")
    assert np.abs(bass - low).max() < 1e-3  # the exported file holds the provider's stem
    assert not (rt.workspace(job.id) / "raw").exists()  # intermediates removed


def test_progress_is_monotonic_and_reaches_one(rt: Runtime, song: InputInfo) -> None:
    job = rt.submit(spec_for(song, provider="slow"))
    snapshots: list[Job] = []
    wait_until(
        lambda: snapshots.append(rt.get(job.id)) or snapshots[-1].progress > 0.01,
        what="progress",
    )
    first_beat = snapshots[-1].heartbeat_at
    wait_until(lambda: rt.get(job.id).heartbeat_at > first_beat, what="a newer heartbeat")
    running = rt.get(job.id)
    assert running.worker_id == rt.worker.worker_id and running.stage == "splitting bands"
    assert running.eta_s is not None and running.eta_s > 0
    rt.cancel(job.id)
    assert rt.wait(job.id, WAIT_S).status is JobStatus.CANCELLED
    seen = [s.progress for s in snapshots]
    assert seen == sorted(seen)

    # The runner's own events (separation 0..0.9, finalisation 0.9..1) never go backwards.
    events: list[ProgressEvent] = []
    fresh = Job(id=new_job_id(), spec=spec_for(song))
    workspace = rt.workspaces.fresh(fresh.id)
    result = run_job(fresh, rt.provider, rt.settings, workspace, events.append, lambda _k, _v: None)
    assert result.status is JobStatus.SUCCEEDED
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any(e.stage.startswith("exporting") for e in events if e.fraction > 0.9)


def test_same_spec_returns_the_stored_result_unless_fresh(rt: Runtime, song: InputInfo) -> None:
    first = rt.wait(rt.submit(spec_for(song)).id, WAIT_S)
    again = rt.submit(spec_for(song, input_name="renamed copy.wav"))  # name is not in the key
    assert again.id == first.id and again.status is JobStatus.SUCCEEDED
    other_format = rt.submit(spec_for(song, export={"format": "wav", "bit_depth": 16}))
    assert other_format.id != first.id
    fresh = rt.submit(spec_for(song), fresh=True)
    assert fresh.id != first.id
    assert rt.wait(fresh.id, WAIT_S).status is JobStatus.SUCCEEDED
    assert rt.submit(spec_for(song)).id in (first.id, fresh.id)


def test_cached_result_with_missing_files_is_recomputed(rt: Runtime, song: InputInfo) -> None:
    first = rt.wait(rt.submit(spec_for(song)).id, WAIT_S)
    assert rt.stored_result(spec_for(song)) == first
    rt.artifact_path(first, first.artifacts[0].file).unlink()
    assert rt.stored_result(spec_for(song)) is None
    assert rt.submit(spec_for(song)).id != first.id


def test_identical_running_job_is_shared(rt: Runtime, song: InputInfo) -> None:
    first = rt.submit(spec_for(song, provider="slow"))
    second = rt.submit(spec_for(song, provider="slow"), fresh=True)
    assert second.id == first.id
    assert len(rt.list_jobs()) == 1
    rt.cancel(first.id)


def test_cancel_a_running_job(rt: Runtime, song: InputInfo) -> None:
    job = rt.submit(spec_for(song, provider="slow"))
    wait_until(lambda: rt.get(job.id).progress > 0, what="the job to start")
    rt.cancel(job.id)
    done = rt.wait(job.id, WAIT_S)
    assert done.status is JobStatus.CANCELLED and done.error == "Cancelled by the user."
    assert done.progress < 0.9
    assert not rt.workspace(job.id).exists()  # partial files removed


def test_cancel_a_queued_job_and_cancel_from_another_process(
    settings: Settings, song: InputInfo, tmp_path: Path
) -> None:
    """A second Runtime on the same data dir stands in for a second process."""
    worker = Runtime.start(settings, registry=TEST_PROVIDERS)
    other = Runtime.start(settings, registry=TEST_PROVIDERS)
    other.worker.stop()  # this one only submits and cancels, like a UI whose worker is elsewhere
    try:
        running = other.submit(spec_for(song, provider="slow"))
        wait_until(lambda: worker.get(running.id).status is JobStatus.RUNNING, what="start")
        queued = other.submit(spec_for(song, provider="slow", mode="2", stems=("x",)))
        assert other.cancel(queued.id).status is JobStatus.CANCELLED
        other.cancel(running.id)  # only the store connects the two
        assert worker.wait(running.id, WAIT_S).status is JobStatus.CANCELLED
    finally:
        other.shutdown()
        worker.shutdown()


def test_typed_error_becomes_the_job_message(rt: Runtime, song: InputInfo) -> None:
    done = rt.wait(rt.submit(spec_for(song, provider="failing")).id, WAIT_S)
    assert done.status is JobStatus.FAILED
    assert done.error == "The band service is down; try again later."
    assert not rt.workspace(done.id).exists()


def test_unexpected_error_is_generic_and_the_traceback_goes_to_the_log(
    rt: Runtime, song: InputInfo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="services.jobs.runner")
    done = rt.wait(rt.submit(spec_for(song, provider="crashing")).id, WAIT_S)
    assert done.status is JobStatus.FAILED
    assert done.error == (f"Internal error while separating; see the server log (job {done.id}).")
    record = repr(rt.store.get(done.id))
    assert CrashingProvider.SECRET not in record and "Traceback" not in record
    logged = "\n".join(r.getMessage() + str(r.exc_text or r.exc_info) for r in caplog.records)
    assert done.id in logged and CrashingProvider.SECRET in logged


def test_missing_input_fails_with_a_clear_message(rt: Runtime, song: InputInfo) -> None:
    job = Job(
        id=new_job_id(),
        spec=spec_for(song, input_hash="0" * 64, input_name="gone.wav"),
        created_at=time.time(),
    )
    rt.store.insert(job)
    rt.worker.wake()
    done = rt.wait(job.id, WAIT_S)
    assert done.status is JobStatus.FAILED and "gone.wav" in done.error
    with pytest.raises(InputRejected, match="no longer stored"):
        rt.submit(spec_for(song, input_hash="0" * 64, input_name="gone.wav"))


def test_submit_refuses_unknown_provider_and_mode(rt: Runtime, song: InputInfo) -> None:
    with pytest.raises(UnknownProvider):
        rt.submit(spec_for(song, provider="nope"))
    with pytest.raises(ProviderError, match=r"no mode '7' \(available: 2\)"):
        rt.submit(spec_for(song, mode="7"))
    assert rt.list_jobs() == []


def test_delete_removes_record_and_files_and_stops_running_work(
    rt: Runtime, song: InputInfo
) -> None:
    done = rt.wait(rt.submit(spec_for(song)).id, WAIT_S)
    assert rt.workspace(done.id).is_dir()
    rt.delete(done.id)
    assert rt.get(done.id) is None and not rt.workspace(done.id).exists()

    running = rt.submit(spec_for(song, provider="slow"))
    wait_until(lambda: rt.get(running.id).status is JobStatus.RUNNING, what="start")
    rt.delete(running.id)
    assert rt.get(running.id) is None and not rt.workspace(running.id).exists()
    rt.delete(running.id)  # deleting twice is harmless


def test_zip_is_built_once_with_a_safe_name(rt: Runtime, song: InputInfo) -> None:
    done = rt.wait(rt.submit(spec_for(song)).id, WAIT_S)
    path = rt.zip_for(done.id)
    assert path.name == "My_Song_live-2-stems.zip"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["bass.flac", "other.flac"]
    stamp = path.stat().st_mtime_ns
    assert rt.zip_for(done.id) == path and path.stat().st_mtime_ns == stamp
    with pytest.raises(InputRejected):
        rt.zip_for(rt.submit(spec_for(song, provider="slow")).id)


def test_artifact_paths_cannot_escape_the_workspace(rt: Runtime, song: InputInfo) -> None:
    done = rt.wait(rt.submit(spec_for(song)).id, WAIT_S)
    with pytest.raises(ValueError):
        rt.artifact_path(done, "../../jobs.sqlite3")
    with pytest.raises(ValueError):
        rt.workspace("../etc")


def test_providers_lists_the_registry(rt: Runtime) -> None:
    assert sorted(rt.providers()) == ["bands", "crashing", "failing", "slow"]
    assert rt.providers()["bands"] is rt.provider("bands")


class CountingStore(JobStore):
    """A real store that also counts progress writes."""

    writes = 0

    def progress(self, job_id: str, worker_id: str, **values: object) -> bool:
        self.writes += 1
        return super().progress(job_id, worker_id, **values)


def test_progress_writes_are_throttled_and_flushed(settings: Settings, song: InputInfo) -> None:
    store = CountingStore(settings.database)
    store.insert(Job(id=new_job_id(), spec=spec_for(song), created_at=1.0))
    job = store.claim_next("me", now=time.time())
    report = JobProgress(store, job, "me")
    started = time.monotonic()
    for i in range(1, 501):
        report(ProgressEvent(i / 1000, "busy"))
    elapsed = time.monotonic() - started
    assert 1 <= store.writes <= 1 + elapsed / PROGRESS_INTERVAL_S
    report.flush()  # what the worker's tick does: the held-back value reaches the store
    assert store.get(job.id).progress == 0.5
    report(ProgressEvent(0.2, "a provider going backwards"))
    report.flush()
    assert store.get(job.id).progress == 0.5  # never backwards
    store.close()
