"""MusicAPI.ai adapter against its emulator, over real sockets (import by URL, then stems)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from sandbox.common import Fault
from sandbox.musicapi import MusicAPIEmulator
from services.errors import (
    AuthError,
    InputRejected,
    InsufficientCredits,
    JobCancelled,
    MalformedResponse,
    MissingKey,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from services.providers.base import SeparationProvider
from services.providers.http import ProviderRejected
from services.providers.kie import TWELVE
from services.providers.musicapi import MusicAPIProvider, _stem_name
from services.providers.remote import ResultExpired
from services.public_files import NeedsPublicUrl, for_settings
from tests.providers.conftest import HANG_S, audio, request_for, total

pytest_plugins = ("tests.providers.emulated",)
pytestmark = pytest.mark.usefixtures("clean_env")

UPLOAD = r"/api/v1/sonic/upload"
STEMS = r"/api/v1/sonic/stems/.*"
TASK = r"/api/v1/sonic/task/.*"


@pytest.fixture
def emu(running):
    return running(MusicAPIEmulator, output_format="wav")


@pytest.fixture
def provider(wire, emu, files):
    return wire(MusicAPIProvider, emu, public=files)


@pytest.fixture
def upload(stored):
    return lambda mode, **kw: request_for(stored.path, mode, **kw)


def test_satisfies_the_protocol(provider) -> None:
    assert isinstance(provider, SeparationProvider)
    caps = provider.capabilities
    assert [m.id for m in caps.modes] == ["basic", "full"]
    assert caps.input_kinds == ("url", "file") and caps.max_duration_s == 480


def test_basic_imports_the_upload_by_url_then_splits(provider, emu, upload, song, job) -> None:
    run = job()
    stems = provider.run(upload("basic"), run.context())
    assert [(s.stem, s.provider_stem) for s in stems] == [
        ("vocals", "Vocals"),
        ("instrumental", "Instrumental"),
    ]
    assert np.allclose(total(stems, ("vocals", "instrumental")), audio(song), atol=1e-4)
    (clip_id,) = emu.clips
    assert emu.clips[clip_id][0].read_bytes() == song.read_bytes()  # fetched from the app
    (task_id,) = emu.jobs
    assert emu.ledger.charges == [(f"upload:{clip_id}", 2.0), (task_id, 15)]
    assert run.facts["clip_id"] == clip_id and run.facts["remote_id"] == task_id
    statuses = [c.status for c in emu.calls if c.path.startswith("/api/v1/sonic/task/")]
    assert statuses and statuses[-1] == 200  # 202 not_ready first: see the running-clips test


def test_full_returns_twelve_named_stems(provider, emu, upload, song, job) -> None:
    stems = provider.run(upload("full"), job().context())
    assert sorted(s.stem for s in stems) == sorted(TWELVE)
    assert {s.provider_stem for s in stems} >= {"Backing Vocals", "Keyboard", "FX", "Brass"}
    assert np.allclose(total(stems, TWELVE), audio(song), atol=1e-4)
    assert emu.ledger.total() == 77


def test_running_clips_keep_the_job_polling(wire, running, files, upload, job) -> None:
    emu = running(MusicAPIEmulator, latency_s=0.6)
    provider = wire(MusicAPIProvider, emu, public=files)
    run = job()
    assert len(provider.run(upload("basic"), run.context())) == 2
    assert any("running" in e.stage for e in run.events)  # 200 with clips still running
    assert any("queued" in e.stage for e in run.events)  # 202 not_ready


def test_a_users_url_is_imported_as_given(wire, emu, settings, song, job) -> None:
    provider = wire(MusicAPIProvider, emu, public=for_settings(settings))
    url = emu.link(song, "audio/wav")
    provider.run(request_for(song, "basic", source_url=url), job().context())
    (clip,) = emu.clips.values()
    assert clip[0].read_bytes() == song.read_bytes()


def test_an_upload_without_a_public_url_fails_before_any_call(wire, emu, settings, upload, job):
    provider = wire(MusicAPIProvider, emu, public=for_settings(settings))
    assert provider.capabilities.input_kinds == ("url",)
    with pytest.raises(NeedsPublicUrl, match=r"MusicAPI\.ai only accepts a public URL"):
        provider.run(upload("basic"), job().context())
    assert emu.calls == []
    estimate = provider.estimate(upload("basic"))
    assert estimate.credits == 17 and "STEMDECK_PUBLIC_BASE_URL" in estimate.note


def test_estimate_includes_the_import(provider, upload) -> None:
    assert provider.estimate(upload("basic")).credits == 17
    estimate = provider.estimate(upload("full"))
    assert estimate.credits == 77 and "import" in estimate.note


def test_unsupported_requests_are_refused_before_any_call(provider, emu, upload) -> None:
    for request in (
        upload("2"),
        upload("basic", pre=("denoise",)),
        upload("full", stems=("drums.kick",)),
    ):
        with pytest.raises(InputRejected):
            provider.estimate(request)
    assert emu.calls == []


def test_poll_cadence_is_15_s_unless_configured(emu, files, settings, monkeypatch) -> None:
    assert MusicAPIProvider(settings, public=files).poll_interval_s == 15.0
    monkeypatch.setenv("MUSICAPI_POLL_INTERVAL_S", "2")
    assert MusicAPIProvider(settings, public=files).poll_interval_s == 2.0
    assert MusicAPIProvider(settings, public=files, poll_interval_s=0.1).poll_interval_s == 0.1


@pytest.mark.parametrize(
    ("clip", "name"),
    [
        ({"title": "My Song (Live) (Vocals)"}, "Vocals"),
        ({"title": "Song (Backing Vocals) "}, "Backing Vocals"),
        ({"title": "Song (Drums)", "stem_type_group_name": "Percussion"}, "Percussion"),
        ({"title": "Keyboard"}, "Keyboard"),
        ({"clip_id": "c1"}, "c1"),
    ],
)
def test_stem_names_come_from_fields_or_titles(clip, name) -> None:
    assert _stem_name(clip) == name


# --- keys and errors ------------------------------------------------------------------------


def test_missing_key(wire, emu, files, upload, job) -> None:
    provider = wire(MusicAPIProvider, emu, public=files, api_key=None)
    assert provider.estimate(upload("full")).credits == 77  # pricing needs no key
    with pytest.raises(MissingKey, match="MUSICAPI_API_KEY"):
        provider.run(upload("basic"), job().context())
    assert emu.calls == []


def test_wrong_key_is_an_auth_error_without_the_key(wire, emu, files, upload, job, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "musicapi_wrong_key_123456"
    provider = wire(MusicAPIProvider, emu, public=files, api_key=secret)
    with pytest.raises(AuthError) as caught:
        provider.run(upload("basic"), job().context())
    assert secret not in str(caught.value) and "Settings" in str(caught.value)
    assert secret not in caplog.text
    with pytest.raises(AuthError):
        provider.check_connection()


def test_key_from_the_environment_and_balance(emu, files, settings, monkeypatch) -> None:
    monkeypatch.setenv("MUSICAPI_API_KEY", emu.api_key)
    monkeypatch.setenv("MUSICAPI_BASE_URL", emu.base_url)
    provider = MusicAPIProvider(settings, public=files)
    assert provider.check_connection() == "Connected. Balance: 1000 credits + 0 extra credits."


@pytest.mark.parametrize("status", [403, 402])
def test_too_few_credits_for_the_stems_keeps_the_imported_clip(
    wire, running, files, upload, job, status
) -> None:
    emu = running(MusicAPIEmulator, balance=10, credits_status=status)
    provider = wire(MusicAPIProvider, emu, public=files)
    run = job()
    with pytest.raises(InsufficientCredits, match="too few credits"):
        provider.run(upload("basic"), run.context())
    assert [ref.split(":")[0] for ref, _ in emu.ledger.charges] == ["upload"]
    assert run.facts["clip_id"] in emu.clips
    emu.ledger.charge("top-up", -100)
    assert len(provider.run(upload("basic"), run.context())) == 2  # the next attempt
    assert emu.calls_to("POST", UPLOAD) == 1


def test_duration_outside_the_import_limits(wire, running, files, upload, job) -> None:
    emu = running(MusicAPIEmulator, upload_min_s=6, upload_max_s=60)
    with pytest.raises(ProviderRejected, match="between 6 and 60 seconds"):
        wire(MusicAPIProvider, emu, public=files).run(upload("basic"), job().context())
    assert emu.ledger.charges == []


def test_unfetchable_url_is_rejected(provider, emu, song, job) -> None:
    request = request_for(song, "basic", source_url=emu.origin + "/missing.mp3")
    with pytest.raises(ProviderRejected, match="Unable to download"):
        provider.run(request, job().context())


def test_rate_limited_create_is_retried(provider, emu, upload, job) -> None:
    emu.inject(Fault("POST /sonic/stems/.*", status=429, times=2, retry_after=0.05))
    assert len(provider.run(upload("basic"), job().context())) == 2
    assert emu.calls_to("POST", STEMS) == 3 and len(emu.ledger.charges) == 2


def test_the_emulators_own_create_limit(wire, running, files, upload, job) -> None:
    emu = running(MusicAPIEmulator, create_per_minute=1)
    with pytest.raises(RateLimited, match="rate limiting") as caught:
        wire(MusicAPIProvider, emu, public=files).run(upload("basic"), job().context())
    assert caught.value.retry_after > 1 and emu.calls_to("POST", STEMS) == 1


@pytest.mark.parametrize("route", ["POST /sonic/upload", "POST /sonic/stems/basic"])
@pytest.mark.parametrize("kind", ["status", "drop"])
def test_paid_calls_are_never_repeated(provider, emu, upload, job, route, kind) -> None:
    emu.inject(Fault(route, kind=kind, status=500, after=True, times=5))
    with pytest.raises(ProviderUnavailable, match="not repeated"):
        provider.run(upload("basic"), job().context())
    on_upload = route.endswith("upload")
    assert emu.calls_to("POST", UPLOAD) == 1
    assert emu.calls_to("POST", STEMS) == (0 if on_upload else 1)
    assert len(emu.ledger.charges) == (1 if on_upload else 2)


def test_polls_survive_a_server_error_burst(provider, emu, upload, job) -> None:
    emu.inject(Fault("GET /sonic/task/.*", status=502, times=2))
    assert len(provider.run(upload("basic"), job().context())) == 2


def test_a_hanging_poll_times_out_then_recovers(wire, emu, files, impatient_client, upload, job):
    provider = wire(MusicAPIProvider, emu, public=files, via=impatient_client)
    emu.inject(Fault("GET /sonic/task/.*", kind="hang", hang_s=HANG_S))
    assert len(provider.run(upload("basic"), job().context())) == 2


def test_malformed_json(provider, emu, upload, job) -> None:
    emu.inject(Fault("GET /sonic/task/.*", kind="malformed"))
    with pytest.raises(MalformedResponse, match="not JSON"):
        provider.run(upload("basic"), job().context())


def test_failed_task_is_reported_and_refunded(wire, running, files, upload, job) -> None:
    emu = running(MusicAPIEmulator)
    emu.fail_next = 1
    with pytest.raises(ProviderError, match=r"could not separate.*refunded"):
        wire(MusicAPIProvider, emu, public=files).run(upload("full"), job().context())
    assert emu.ledger.total() == 2  # the import stays paid; the stems were refunded


def test_unknown_task_is_rejected(provider) -> None:
    with pytest.raises(ProviderRejected, match="task not found"):
        provider.poll("no-such-task", 1e12)


def test_deadline(wire, running, files, upload, job) -> None:
    emu = running(MusicAPIEmulator, latency_s=60)
    provider = wire(MusicAPIProvider, emu, public=files, deadline_s=0.3)
    with pytest.raises(ProviderTimeout, match="did not finish"):
        provider.run(upload("basic"), job().context())


def test_expired_result_urls_fail_clearly(wire, running, files, upload, job) -> None:
    emu = running(MusicAPIEmulator, result_ttl_s=0)
    with pytest.raises(ResultExpired, match="expired"):
        wire(MusicAPIProvider, emu, public=files).run(upload("basic"), job().context())


def test_a_refused_result_url_is_refreshed_once(provider, emu, upload, job) -> None:
    emu.inject(Fault("GET /files/.*", status=403))
    assert len(provider.run(upload("basic"), job().context())) == 2


def test_cancel_then_resume_neither_imports_nor_pays_twice(provider, emu, upload, job) -> None:
    run = job(cancel_when=lambda e: "queued" in e.stage or "running" in e.stage)
    with pytest.raises(JobCancelled):
        provider.run(upload("full"), run.context())
    run.cancel_when = None
    assert len(provider.run(upload("full"), run.context())) == 12
    assert emu.calls_to("POST", UPLOAD) == 1 and emu.calls_to("POST", STEMS) == 1
    assert len(emu.ledger.charges) == 2
