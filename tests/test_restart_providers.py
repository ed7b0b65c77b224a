"""SIGKILL the app in the middle of a provider job and a local-engine job, then start it again.

The app is a real child process (Runtime + worker pools, the real local engine, the real
aistemsplitter adapter) against an emulator in this process whose job finishes only on the
test's cue, once the app is dead. After the kill and a restart: both jobs end terminal, the
provider job resumed polling by the remote id it remembered (the emulator's ledger shows ONE
charge and one create), the SQLite store passes ``PRAGMA integrity_check``, and after the
janitor no orphan workspace or half-written file is left in the data directory.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from services.config import Settings
from services.jobs.model import JobStatus
from services.jobs.store import JobStore
from services.providers import keys
from services.providers.registry import PROVIDERS, Registry
from services.runtime import Runtime
from tests.providers.conftest import FAST_RETRY
from tests.test_jobs_providers import wait_until

pytest_plugins = ("tests.provider_fixtures",)
pytestmark = pytest.mark.usefixtures("clean_provider_env")

ROOT = Path(__file__).resolve().parents[1]
PROVIDER_LATENCY_S = 600.0  # still running at the kill; the test ends it on cue afterwards
WAIT_S = 120.0  # only a stuck job reaches it
HALF_WRITTEN = (".part", ".tmp", "-journal")

APP = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from services.audio.formats import ExportFormat
    from services.config import load_settings
    from services.inputs import ingest_path
    from services.jobs.model import JobSpec
    from services.providers.registry import PROVIDERS, Registry
    from services.runtime import Runtime

    settings = load_settings()
    stored = ingest_path(Path(sys.argv[1]), settings)
    registry = Registry(PROVIDERS, options={"aistemsplitter": {"poll_interval_s": 0.2}})
    rt = Runtime.start(settings, registry)
    wav = ExportFormat("wav", 16)
    remote = rt.submit(JobSpec.for_input(stored, "aistemsplitter", "2", wav))
    local = rt.submit(JobSpec.for_input(stored, "local", "2", wav))
    print(remote.id, local.id, flush=True)
    time.sleep(600)
    """
)


def leftovers(data_dir: Path, keep: set[str]) -> list[str]:
    """Job folders not in ``keep`` and half-written files anywhere under the data dir."""
    jobs = data_dir / "jobs"
    found = [p.name for p in jobs.iterdir() if p.is_dir() and p.name not in keep]
    found += [str(p) for p in data_dir.rglob("*") if p.name.endswith(HALF_WRITTEN)]
    return found


def test_sigkill_mid_provider_and_local_job_then_restart(
    settings: Settings, emulator, make_song, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = emulator("aistemsplitter", latency_s=PROVIDER_LATENCY_S)
    monkeypatch.setenv(keys.env_var("aistemsplitter", "API_KEY"), emu.api_key)
    monkeypatch.setenv(keys.env_var("aistemsplitter", "BASE_URL"), emu.base_url)
    song = make_song("Restart Song.wav", 4.0)
    env = {**os.environ, "STEMDECK_DATA_DIR": str(settings.data_dir), "PYTHONPATH": str(ROOT)}
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(song)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    store = JobStore(settings.database)
    try:
        assert app.stdout is not None
        remote_id, local_id = app.stdout.readline().split()
        wait_until(lambda: "remote_id" in store.get(remote_id).facts, what="the remote create")
        wait_until(lambda: store.get(local_id).progress > 0, what="the local job to run")
        before = {j: store.get(j) for j in (remote_id, local_id)}
        assert all(job.status is JobStatus.RUNNING for job in before.values()), before
        os.kill(app.pid, signal.SIGKILL)
        app.wait()
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        store.close()
    remote = emu.jobs[before[remote_id].facts["remote_id"]]
    assert not remote.done.is_set()
    remote.latency_s = 0.0  # the provider finishes while the app is down

    registry = Registry(
        PROVIDERS, options={"aistemsplitter": {"poll_interval_s": 0.2, "retry_policy": FAST_RETRY}}
    )
    runtime = Runtime.start(settings, registry)
    try:
        done = {j: runtime.wait(j, WAIT_S) for j in (remote_id, local_id)}
    finally:
        runtime.shutdown()
    for job in done.values():
        assert job.status is JobStatus.SUCCEEDED, (job.spec.provider, job.error)
        assert job.attempts == 2  # requeued once by the restart sweep
    assert done[remote_id].facts["remote_id"] == before[remote_id].facts["remote_id"]
    assert len(emu.ledger.charges) == 1 and emu.calls_to("POST", r".*/audio/splits") == 1

    with sqlite3.connect(settings.database) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    Runtime.start(settings, registry).shutdown()  # the janitor runs on every start
    assert leftovers(settings.data_dir, keep=set(done)) == []
    print(
        f"\nrestart: 2 jobs killed mid-run (remote {before[remote_id].progress:.0%}, "
        f"local {before[local_id].progress:.0%}), 2 succeeded after restart, "
        f"{len(emu.ledger.charges)} charge, integrity ok, 0 orphan files"
    )
