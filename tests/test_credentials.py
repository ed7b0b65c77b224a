"""Where keys come from, the owner-only key file, the vault that hands a typed key to a job
run later, per-key provider instances, and the pre-flight checks behind submit."""

from __future__ import annotations

import logging
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from services.config import Settings
from services.errors import InputRejected, MissingKey, StemDeckError
from services.inputs import ingest_path
from services.jobs.model import JobSpec, JobStatus
from services.jobs.store import JobStore
from services.providers import keys
from services.providers.credentials import (
    APP_ROOT,
    CREDENTIAL_FACT,
    Credential,
    Credentials,
    KeyFile,
)
from services.providers.registry import Registry
from services.public_files import NeedsPublicUrl
from services.runtime import Runtime
from tests.leakcheck import distinctive_key, files_containing
from tests.test_jobs_providers import BandSplitProvider

pytest_plugins = ("tests.provider_fixtures",)
pytestmark = pytest.mark.usefixtures("clean_provider_env")

WAIT_S = 60.0


def spec_for(settings: Settings, song: Path, provider: str, mode: str) -> JobSpec:
    stored = ingest_path(song, settings)
    return JobSpec(stored.hash, stored.name, stored.info.duration_s, provider, mode,
                   export={"format": "wav", "bit_depth": 16})


def test_a_credential_never_shows_its_key() -> None:
    key = distinctive_key("acme")
    credential = Credential(f"  {key} ", "https://api.example.com/v1/")
    assert credential.api_key == key and credential.base_url == "https://api.example.com/v1"
    for text in (repr(credential), str(credential), f"{credential}", repr([credential])):
        assert key not in text and key[-4:] in text


def test_each_field_comes_from_the_first_source_that_has_it(settings: Settings) -> None:
    env = {"ACME_API_KEY": "env_key_123456", "ACME_BASE_URL": "https://env.example.com"}
    creds = Credentials(settings, env=env)
    assert (creds.resolve("acme").key_source, creds.resolve("acme").url_source) == ("env", "env")
    creds.set_secrets({"ACME_API_KEY": "secret_key_123456", "unrelated": {"nested": 1}})
    found = creds.resolve("acme")
    assert found.credential == Credential("secret_key_123456", "https://env.example.com")
    assert (found.key_source, found.url_source) == ("secrets", "env")
    creds.save("acme", Credential("saved_key_1234567"))
    assert creds.resolve("acme").key_source == "saved"
    session = Credential(base_url="https://session.example.com")
    found = creds.resolve("acme", session)
    assert found.credential == Credential("saved_key_1234567", "https://session.example.com")
    assert (found.key_source, found.url_source, found.hint) == ("saved", "session", "••••4567")
    assert creds.resolve("other").key_source == "none" and not creds.resolve("other").has_key


def test_saved_keys_are_owner_only_and_outside_the_app(settings: Settings) -> None:
    key = distinctive_key("acme")
    creds = Credentials(settings, env={})
    creds.save("acme", Credential(key))
    path = creds.saved.path
    assert not path.resolve().is_relative_to(APP_ROOT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # someone loosened it: the next read makes it owner-only again
    assert creds.resolve("acme").credential.api_key == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds.save("acme", Credential(base_url="https://x.example.com"))  # a URL alone keeps the key
    assert creds.saved.load()["acme"] == Credential(key, "https://x.example.com")
    creds.forget("acme")
    assert creds.saved.load() == {} and key not in path.read_text()


def test_a_key_file_inside_the_app_folder_is_refused() -> None:
    inside = KeyFile(APP_ROOT / "keys-test.json")
    with pytest.raises(StemDeckError, match="never saved inside the app folder"):
        inside.save("acme", Credential("some_key_123456"))
    assert not inside.path.exists()


def test_one_provider_instance_per_key_and_base_url(settings: Settings, fast_registry) -> None:
    key_a, key_b = distinctive_key("a"), distinctive_key("b")
    url = "http://127.0.0.1:9/v1"
    first = fast_registry.get("aistemsplitter", settings, api_key=key_a, base_url=url)
    assert fast_registry.get("aistemsplitter", settings, api_key=key_a, base_url=url) is first
    assert fast_registry.get("aistemsplitter", settings, api_key=key_b, base_url=url) is not first
    assert fast_registry.get("aistemsplitter", settings, api_key=key_a) is not first
    assert first.base_url == url and key_a not in repr(first)
    assert key_a not in repr(fast_registry._instances)  # the cache holds a salted hash
    fast_registry.forget("aistemsplitter", key_a)
    assert fast_registry.get("aistemsplitter", settings, api_key=key_a, base_url=url) is not first


def test_a_typed_key_reaches_a_job_run_later_but_never_its_record(
    settings: Settings, fast_registry, emulator, make_song
) -> None:
    emu = emulator("aistemsplitter")
    runtime = Runtime.start(settings, fast_registry)
    try:
        spec = spec_for(settings, make_song("Song.wav", 2.0), "aistemsplitter", "2")
        job = runtime.submit(spec, session=Credential(emu.api_key, emu.base_url))
        assert set(job.facts) == {CREDENTIAL_FACT} and emu.api_key not in str(job.facts)
        job = runtime.wait(job.id, WAIT_S)
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert emu.api_key not in repr(job)
    finally:
        runtime.shutdown()
    assert emu.ledger.charges  # the emulator ran (and billed) it with the typed key
    assert files_containing(settings.data_dir, emu.api_key) == []
    with sqlite3.connect(settings.database) as db:
        rows = db.execute("SELECT * FROM jobs").fetchall()
    assert emu.api_key not in repr(rows)


def test_after_a_restart_a_job_whose_key_is_gone_asks_for_it_again(
    settings: Settings, fast_registry, emulator, make_song
) -> None:
    emu = emulator("aistemsplitter")
    spec = spec_for(settings, make_song("Song.wav", 2.0), "aistemsplitter", "2")
    before = Runtime(settings, fast_registry, JobStore(settings.database))  # no worker: it queues
    queued = before.submit(spec, session=Credential(emu.api_key, emu.base_url))
    before.shutdown()
    after = Runtime.start(settings, fast_registry)  # a new process: an empty vault
    try:
        job = after.wait(queued.id, WAIT_S)
    finally:
        after.shutdown()
    assert job.status is JobStatus.FAILED
    assert "Re-enter the key on the Settings page" in job.error
    assert emu.calls == []  # nothing was sent without a key


def test_after_a_restart_a_configured_key_takes_over(
    settings: Settings, fast_registry, emulator, make_song, monkeypatch
) -> None:
    emu = emulator("aistemsplitter")
    spec = spec_for(settings, make_song("Song.wav", 2.0), "aistemsplitter", "2")
    before = Runtime(settings, fast_registry, JobStore(settings.database))
    queued = before.submit(spec, session=Credential(emu.api_key, emu.base_url))
    before.shutdown()
    monkeypatch.setenv("AISTEMSPLITTER_API_KEY", emu.api_key)
    monkeypatch.setenv("AISTEMSPLITTER_BASE_URL", emu.base_url)
    after = Runtime.start(settings, fast_registry)
    try:
        assert after.wait(queued.id, WAIT_S).status is JobStatus.SUCCEEDED
    finally:
        after.shutdown()


def test_submit_refuses_what_preflight_finds(settings: Settings, fast_registry, make_song):
    runtime = Runtime(settings, fast_registry, JobStore(settings.database))
    try:
        song = make_song("Song.wav", 1.0)
        no_key = spec_for(settings, song, "musicgpt", "2")
        assert runtime.preflight(no_key).kind == "needs_key"
        with pytest.raises(MissingKey, match="MusicGPT needs an API key"):
            runtime.submit(no_key)
        url_only = spec_for(settings, song, "soundverse", "vocals")
        session = Credential("sv_key_123456789")
        problem = runtime.preflight(url_only, session)
        assert problem.kind == "needs_public_url" and "only accepts a public URL" in problem.message
        with pytest.raises(NeedsPublicUrl):
            runtime.submit(url_only, session=session)
        bad_stems = replace(spec_for(settings, song, "aistemsplitter", "4"), stems=("piano",))
        problem = runtime.preflight(bad_stems, Credential("ast_key_123456789"))
        assert problem.kind == "options" and "only an extra instrumental" in problem.message
        assert runtime.list_jobs() == []
    finally:
        runtime.shutdown()


class ShortOnly(BandSplitProvider):
    """A real provider that takes at most half a second of audio."""

    capabilities = replace(BandSplitProvider.capabilities, max_duration_s=0.5)


def test_provider_limits_are_checked_before_anything_runs(settings: Settings, make_song):
    registry = Registry({"short": f"{__name__}:ShortOnly"})
    runtime = Runtime(settings, registry, JobStore(settings.database))
    try:
        spec = spec_for(settings, make_song("Song.wav", 1.0), "short", "2")
        problem = runtime.preflight(spec)
        assert problem.kind == "limits"
        assert problem.message == "Band split (test) takes at most 0:00; this track is 0:01."
        with pytest.raises(InputRejected, match="takes at most"):
            runtime.submit(spec)
    finally:
        runtime.shutdown()


def test_the_log_filter_scrubs_known_keys_from_messages_and_tracebacks(tmp_path: Path) -> None:
    key = distinctive_key("acme")
    Credential(key)  # every key the app sees is remembered for redaction
    path = tmp_path / "app.log"
    handler = logging.FileHandler(path)
    handler.addFilter(keys.RedactFilter())
    logger = logging.getLogger("stemdeck.test.redact")
    logger.addHandler(handler)
    try:
        logger.warning("header was %s", f"Bearer {key}")
        try:
            raise ValueError(f"Illegal header value {key!r}")
        except ValueError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = path.read_text()
    assert key not in text
    assert text.count("[redacted]") == 2 and "ValueError" in text
