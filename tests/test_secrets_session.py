"""A whole sandbox session with three distinctive keys — one typed in the browser session, one
saved on request, one from the environment — and then a search for them everywhere the app
writes or shows anything: 0 occurrences.

The session runs jobs on three providers, two of which fail with an error whose text ECHOES the
caller's key (some APIs do: "invalid key sk_…"), a comparison with its JSON/CSV/HTML exports,
the stems zips, and every page rendered by AppTest. Searched: DEBUG logs of every thread, the
data directory (job store and its WAL, comparison store, workspaces, inputs, log files, zips
unpacked), exports, job records and rendered pages. Only the keys file may hold a key — and it
must be owner-only and outside the repository.
"""

from __future__ import annotations

import logging
import stat
import zipfile
from pathlib import Path

import pytest

from components.navigation import SETTINGS
from sandbox.common import Fault
from services.audio.formats import ExportFormat
from services.compare.model import LaneSpec
from services.compare.service import Comparisons
from services.inputs import ingest_path
from services.jobs.model import JobSpec, JobStatus
from services.providers import keys
from services.providers.credentials import Credential
from tests.leakcheck import files_containing

pytest_plugins = ("tests.provider_fixtures",)
pytestmark = pytest.mark.usefixtures("clean_provider_env", "public_base")

ROOT = Path(__file__).resolve().parents[1]
JOB_WAIT_S = 90.0
WAV = ExportFormat("wav", 16)


def unpacked(zip_path: Path) -> bytes:
    with zipfile.ZipFile(zip_path) as archive:
        return b"".join(archive.read(name) for name in archive.namelist())


def test_a_full_session_leaks_no_key_anywhere(
    app, app_runtime, emulator, make_song, settings, caplog, monkeypatch
) -> None:
    caplog.set_level(logging.DEBUG)
    typed, saved, env = emulator("aistemsplitter"), emulator("musicgpt"), emulator("kie")
    secrets = [typed.api_key, saved.api_key, env.api_key]
    monkeypatch.setenv(keys.env_var("kie", "API_KEY"), env.api_key)
    monkeypatch.setenv(keys.env_var("kie", "BASE_URL"), env.base_url)
    app_runtime.save_credential("musicgpt", Credential(saved.api_key, saved.base_url))
    session = Credential(typed.api_key, typed.base_url)
    key_file = app_runtime.credentials.saved.path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert ROOT not in key_file.resolve().parents

    echo_create = Fault(
        r"POST /api/v1/vocal-removal/generate",
        status=400,
        message=f"Key {env.api_key} is not allowed to call this model",
    )
    echo_poll = Fault(
        r"GET /audio/splits/.*", status=400, message=f"Invalid API key: {typed.api_key}"
    )
    env.inject(echo_create)
    stored = ingest_path(make_song("Secret Song.wav", 2.0), settings)

    def run(provider: str, mode: str, credential: Credential | None = None):
        job = app_runtime.submit(JobSpec.for_input(stored, provider, mode, WAV), False, credential)
        return app_runtime.wait(job.id, JOB_WAIT_S)

    ok_typed = run("aistemsplitter", "2", session)
    ok_saved = run("musicgpt", "2")
    failed_env = run("kie", "separate_vocal")
    typed.inject(echo_poll)
    failed_typed = run("aistemsplitter", "4", session)
    assert ok_typed.status is JobStatus.SUCCEEDED, ok_typed.error
    assert ok_saved.status is JobStatus.SUCCEEDED, ok_saved.error
    for failed in (failed_env, failed_typed):
        assert failed.status is JobStatus.FAILED and failed.error
    assert echo_create.times == 0 and echo_poll.times == 0, "an echoing error was never sent"
    assert "[redacted]" in failed_env.error + failed_typed.error  # the echo was scrubbed

    comparisons = Comparisons(app_runtime)
    try:
        lanes = [LaneSpec("aistemsplitter", "2"), LaneSpec("musicgpt", "2")]
        comparison = comparisons.start(stored, lanes, WAV, {"aistemsplitter": session})
        for job_id in comparison.job_ids:
            app_runtime.wait(job_id, JOB_WAIT_S)
        exports = [
            comparisons.export_json(comparison.id),
            comparisons.export_csv(comparison.id),
            comparisons.export_html(comparison.id),
        ]
    finally:
        comparisons.close()
    zips = [unpacked(app_runtime.zip_for(j.id)) for j in (ok_typed, ok_saved)]

    rendered: list[str] = []
    app.run()
    for page in (
        "pages/split.py",
        "pages/results.py",
        "pages/history.py",
        "pages/compare.py",
        SETTINGS,
    ):
        app.switch_page(page).run()
        assert not app.exception, page
        rendered.append(str(app))
    records = [repr(app_runtime.get(j.id)) for j in (ok_typed, ok_saved, failed_env, failed_typed)]

    assert any("/v1/" in r.getMessage() for r in caplog.records), "job logging not captured"
    for secret in secrets:
        stored_files = [p for p in files_containing(settings.data_dir, secret) if p != key_file]
        assert stored_files == [], secret
        assert secret not in caplog.text
        assert not any(secret.encode() in z for z in zips)
        assert not any(secret in text for text in exports + rendered + records)
    print(
        f"\nsecrets: 3 keys (typed, saved, env), 4 jobs (2 failed echoing a key), 1 comparison, "
        f"{len(exports)} exports, {len(zips)} zips, {len(rendered)} pages, "
        f"{len(caplog.records)} log records, data dir scanned: 0 occurrences"
    )
