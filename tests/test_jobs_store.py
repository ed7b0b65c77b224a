"""The SQLite job store: round trips, queries, compare-and-set updates, migrations, corruption."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from services.jobs.model import Artifact, Job, JobSpec, JobStatus
from services.jobs.store import SCHEMA_VERSION, JobStore, StoreError
from services.jobs.workspace import new_job_id


def make_job(created_at: float = 1000.0, **spec_changes: object) -> Job:
    spec = {
        "input_hash": "ab" * 32,
        "input_name": "song.mp3",
        "duration_s": 3.0,
        "provider": "bands",
        "mode": "2",
        "export": {"format": "wav", "bit_depth": 16},
        **spec_changes,
    }
    return Job(id=new_job_id(), spec=JobSpec(**spec), created_at=created_at)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    store = JobStore(tmp_path / "deep" / "er" / "jobs.sqlite3")
    yield store
    store.close()


def test_round_trip_keeps_every_field(store: JobStore) -> None:
    job = make_job(stems=("vocals", "drums"), preprocessing=("denoise",), source_url="https://x/y")
    job.status = JobStatus.SUCCEEDED
    job.progress, job.stage, job.eta_s, job.error = 1.0, "done", 2.5, None
    job.started_at, job.finished_at = 1001.0, 1011.0
    job.estimated_cost, job.actual_cost, job.attempts = 1.5, 1.25, 1
    job.artifacts = [
        Artifact("vocals", "vocal", "stems/vocals.wav", "preview/vocals.mp3", "peaks/v.json", -12),
        Artifact("drums", "drum", "stems/drums.wav", "preview/drums.mp3", "peaks/d.json"),
    ]
    job.facts = {"remote_id": "r-1"}
    job.worker_id, job.heartbeat_at = "host:1:abc", 1010.0
    store.insert(job)
    assert store.get(job.id) == job
    assert store.get(job.id).artifacts[1].rms_db == float("-inf")
    assert store.get(job.id).spec.cache_key == job.spec.cache_key
    assert store.get("0" * 32) is None


def test_database_is_created_with_parents_in_wal_mode(store: JobStore) -> None:
    assert store.path.is_file()
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_list_is_newest_first_and_limited(store: JobStore) -> None:
    jobs = [make_job(created_at=t, input_name=f"{t}.wav") for t in (3.0, 1.0, 2.0)]
    for job in jobs:
        store.insert(job)
    assert [j.created_at for j in store.list()] == [3.0, 2.0, 1.0]
    assert [j.created_at for j in store.list(limit=2)] == [3.0, 2.0]


def test_update_and_compare_and_set(store: JobStore) -> None:
    job = make_job()
    store.insert(job)
    assert store.update(job.id, progress=0.5, stage="halfway", facts={"k": "v"})
    got = store.get(job.id)
    assert (got.progress, got.stage, got.facts) == (0.5, "halfway", {"k": "v"})
    # only_if: the transition happens only from the expected state
    assert not store.update(job.id, only_if={"status": JobStatus.RUNNING}, status="cancelled")
    assert store.update(job.id, only_if={"status": JobStatus.QUEUED}, status=JobStatus.CANCELLED)
    assert store.get(job.id).status is JobStatus.CANCELLED
    assert store.update(job.id, only_if={"worker_id": None}, error="x")


def test_delete(store: JobStore) -> None:
    job = make_job()
    store.insert(job)
    assert store.delete(job.id)
    assert store.get(job.id) is None
    assert not store.delete(job.id)


def test_cache_queries(store: JobStore) -> None:
    old, new, other = make_job(1.0), make_job(2.0), make_job(3.0, mode="4")
    for job in (old, new, other):
        store.insert(job)
    key = old.spec.cache_key
    assert store.find_succeeded(key) is None
    assert store.find_active(key).id == old.id  # the oldest queued one
    store.update(old.id, status=JobStatus.SUCCEEDED, finished_at=10.0)
    store.update(new.id, status=JobStatus.SUCCEEDED, finished_at=20.0)
    assert store.find_succeeded(key).id == new.id
    assert store.find_active(key) is None
    assert [j.id for j in store.in_status(JobStatus.QUEUED)] == [other.id]
    assert store.statuses() == {
        old.id: JobStatus.SUCCEEDED,
        new.id: JobStatus.SUCCEEDED,
        other.id: JobStatus.QUEUED,
    }


def test_claim_takes_queued_jobs_in_creation_order(store: JobStore) -> None:
    later, first = make_job(2.0), make_job(1.0)
    store.insert(later)
    store.insert(first)
    claimed = store.claim_next("w1", now=50.0)
    assert claimed.id == first.id
    assert (claimed.status, claimed.worker_id, claimed.attempts) == (JobStatus.RUNNING, "w1", 1)
    assert (claimed.started_at, claimed.heartbeat_at) == (50.0, 50.0)
    assert store.claim_next("w2", now=51.0).id == later.id
    assert store.claim_next("w3", now=52.0) is None


def test_claim_is_exclusive_across_connections(tmp_path: Path) -> None:
    """Two stores on one file behave like two processes: every job is claimed exactly once."""
    path = tmp_path / "jobs.sqlite3"
    stores = [JobStore(path), JobStore(path)]
    jobs = [make_job(float(i)) for i in range(30)]
    for job in jobs:
        stores[0].insert(job)
    claimed: list[str] = []

    def drain(store: JobStore, worker: str) -> None:
        while (job := store.claim_next(worker, now=1.0)) is not None:
            claimed.append(job.id)

    threads = [threading.Thread(target=drain, args=(s, f"w{i}")) for i, s in enumerate(stores * 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(j.id for j in jobs)
    for store in stores:
        store.close()


def test_progress_reports_cancel_and_lost_ownership(store: JobStore) -> None:
    job = make_job()
    store.insert(job)
    store.claim_next("me", now=1.0)
    assert store.progress(job.id, "me", progress=0.3, stage="working") is False
    assert store.get(job.id).progress == 0.3
    store.request_cancel(job.id)
    assert store.progress(job.id, "me", progress=0.4) is True
    assert store.progress(job.id, "someone-else", progress=0.9) is True  # not ours: stop
    assert store.get(job.id).progress == 0.4


def test_heartbeat_touches_only_own_running_jobs(store: JobStore) -> None:
    mine, theirs = make_job(1.0), make_job(2.0)
    store.insert(mine)
    store.insert(theirs)
    store.claim_next("me", now=1.0)
    store.claim_next("them", now=1.0)
    store.heartbeat("me", now=99.0)
    assert store.get(mine.id).heartbeat_at == 99.0
    assert store.get(theirs.id).heartbeat_at == 1.0


def test_new_database_gets_current_schema_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    store = JobStore(path)
    assert store.schema_version == SCHEMA_VERSION
    job = make_job()
    store.insert(job)
    store.close()
    again = JobStore(path)  # migrations are not re-applied to a current database
    assert again.get(job.id) == job
    again.close()


def test_empty_version_zero_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    sqlite3.connect(path).execute("CREATE TABLE unrelated (x)").connection.close()
    store = JobStore(path)
    assert store.schema_version == SCHEMA_VERSION
    store.insert(make_job())
    store.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer StemDeck"):
        JobStore(path)


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError) as info:
        JobStore(path)
    assert str(path) in str(info.value) and "Move it aside" in str(info.value)


def test_corrupt_record_is_a_clear_error(store: JobStore) -> None:
    job = make_job()
    store.insert(job)
    raw = sqlite3.connect(store.path)
    raw.execute("UPDATE jobs SET artifacts = '{not json' WHERE id = ?", (job.id,))
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match=f"Job {job.id} .* unreadable"):
        store.get(job.id)
