"""The worker's two pools: local-engine jobs and remote-provider jobs are claimed separately."""

from __future__ import annotations

from pathlib import Path

from test_jobs_store import make_job

from services.config import load_settings
from services.jobs.store import JobStore
from services.jobs.worker import LOCAL_PROVIDERS


def test_claims_filter_on_the_provider_oldest_first(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3")
    try:
        local = make_job(1.0, provider="local")
        remote_old, remote_new = make_job(2.0, provider="kie"), make_job(3.0, provider="musicgpt")
        for job in (remote_new, local, remote_old):
            store.insert(job)
        assert store.claim_next("r", 5.0, LOCAL_PROVIDERS, exclude=True).id == remote_old.id
        assert store.claim_next("r", 5.0, LOCAL_PROVIDERS, exclude=True).id == remote_new.id
        assert store.claim_next("r", 5.0, LOCAL_PROVIDERS, exclude=True) is None
        assert store.claim_next("l", 5.0, LOCAL_PROVIDERS).id == local.id
        assert store.claim_next("l", 5.0, LOCAL_PROVIDERS) is None
    finally:
        store.close()


def test_remote_pool_size_comes_from_the_environment() -> None:
    assert load_settings(env={}).remote_workers == 6
    assert load_settings(env={"STEMDECK_REMOTE_WORKERS": "2"}).remote_workers == 2
