"""Soundverse adapter against its emulator, over real sockets (synchronous, URL-only)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from sandbox.common import Fault
from sandbox.soundverse import SoundverseEmulator
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
from services.providers.remote import ResultExpired
from services.providers.soundverse import SoundverseProvider
from services.public_files import ENV_BASE_URL, NeedsPublicUrl, for_settings
from tests.providers.conftest import HANG_S, audio, request_for, total, wait_for

pytest_plugins = ("tests.providers.emulated",)
pytestmark = pytest.mark.usefixtures("clean_env")

CREATE = r"/v1/generate/stem-separation/.*"
SIX = ("vocals", "drums", "bass", "guitar", "piano", "other")


@pytest.fixture
def emu(running):
    return running(SoundverseEmulator)


@pytest.fixture
def provider(wire, emu, files):
    return wire(SoundverseProvider, emu, public=files)


@pytest.fixture
def upload(stored):
    """A job on an uploaded (stored) file: no source URL."""
    return lambda mode, **kw: request_for(stored.path, mode, **kw)


def test_satisfies_the_protocol(provider) -> None:
    assert isinstance(provider, SeparationProvider)
    caps = provider.capabilities
    assert [m.id for m in caps.modes] == ["vocals", "instruments", "all-stems"]
    assert caps.needs_key and caps.input_kinds == ("url", "file")
    assert caps.mode("instruments").stems == ("drums", "bass", "guitar", "piano", "other")


@pytest.mark.parametrize(
    ("mode", "expected", "raw"),
    [
        ("all-stems", SIX, ("vocals", "Drums", "Bass", "Guitar", "Piano", "Other")),
        ("instruments", SIX[1:], ("Drums", "Bass", "Guitar", "Piano", "Other")),
    ],
)
def test_stem_modes_return_named_stems(provider, emu, upload, song, job, mode, expected, raw):
    run = job()
    stems = provider.run(upload(mode), run.context())
    assert tuple(s.stem for s in stems) == expected
    assert tuple(s.provider_stem for s in stems) == raw
    assert all(s.path.parent == run.workspace / "raw" and s.path.suffix == ".mp3" for s in stems)
    assert all(abs(len(audio(s.path)) / 44100 - 2.0) < 0.05 for s in stems)
    if mode == "all-stems":  # MP3 stems of a partition: they sum back to the input, roughly
        error = total(stems, expected) - audio(song)
        assert np.sqrt(np.mean(error**2)) < 0.1 * np.sqrt(np.mean(audio(song) ** 2))
    assert emu.ledger.charges == [(next(iter(emu.jobs)), 1.0)]


def test_vocals_mode_mixes_the_instrumental_locally(provider, upload, song, job) -> None:
    stems = provider.run(upload("vocals"), job().context())
    assert [(s.stem, s.provider_stem) for s in stems] == [
        ("vocals", "vocals"),
        ("instrumental", "local:mix-vocals"),
    ]
    assert np.allclose(total(stems, ("vocals", "instrumental")), audio(song), atol=1e-4)


def test_extra_instrumental_is_the_sum_of_the_instruments(provider, upload, job) -> None:
    stems = provider.run(upload("instruments", stems=("instrumental",)), job().context())
    by_name = {s.stem: s for s in stems}
    recipe = by_name["instrumental"].provider_stem
    assert recipe.startswith("local:")
    assert sorted(recipe[6:].split("+")) == ["Bass", "Drums", "Guitar", "Other", "Piano"]
    assert np.allclose(audio(by_name["instrumental"].path), total(stems, SIX[1:]), atol=1e-4)


def test_an_uploaded_file_is_fetched_from_the_app_file_server(provider, emu, upload, job, song):
    provider.run(upload("vocals"), job().context())
    (call_id,) = emu.jobs
    assert (emu.dir / "calls" / call_id / "source").read_bytes() == song.read_bytes()


def test_a_users_url_is_sent_as_given(wire, emu, settings, song, job) -> None:
    provider = wire(SoundverseProvider, emu, public=for_settings(settings))
    assert provider.capabilities.input_kinds == ("url",)  # no public base URL here
    url = emu.link(song, "audio/wav")
    stems = provider.run(request_for(song, "all-stems", source_url=url), job().context())
    assert len(stems) == 6


def test_an_upload_without_a_public_url_fails_before_any_call(wire, emu, settings, upload, job):
    provider = wire(SoundverseProvider, emu, public=for_settings(settings))
    with pytest.raises(NeedsPublicUrl, match="Soundverse only accepts a public URL") as caught:
        provider.run(upload("vocals"), job().context())
    assert ENV_BASE_URL in str(caught.value) and "Paste a URL" in str(caught.value)
    assert emu.calls == []
    assert "only accepts a public URL" in provider.estimate(upload("vocals")).note


def test_estimate_is_unknown_not_zero(provider, upload) -> None:
    estimate = provider.estimate(upload("all-stems"))
    assert estimate.credits is None and "not published" in estimate.note


def test_unsupported_requests_are_refused_before_any_call(provider, emu, upload) -> None:
    for request in (
        upload("2"),
        upload("vocals", pre=("denoise",)),
        upload("all-stems", stems=("drums.kick",)),
    ):
        with pytest.raises(InputRejected):
            provider.estimate(request)
    assert emu.calls == []


# --- keys and errors ------------------------------------------------------------------------


def test_missing_key(wire, emu, files, upload, job) -> None:
    provider = wire(SoundverseProvider, emu, public=files, api_key=None)
    assert provider.estimate(upload("vocals")).note  # pricing needs no key
    with pytest.raises(MissingKey, match="SOUNDVERSE_API_KEY"):
        provider.run(upload("vocals"), job().context())
    assert emu.calls == []


def test_wrong_key_is_an_auth_error_without_the_key(wire, emu, files, upload, job, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "sv_live_wrong_key_123456"
    provider = wire(SoundverseProvider, emu, public=files, api_key=secret)
    with pytest.raises(AuthError) as caught:
        provider.run(upload("vocals"), job().context())
    assert secret not in str(caught.value) and "Settings" in str(caught.value)
    assert secret not in caplog.text
    with pytest.raises(AuthError):
        provider.check_connection()


def test_key_and_base_url_from_the_environment(emu, files, monkeypatch, settings) -> None:
    monkeypatch.setenv("SOUNDVERSE_API_KEY", emu.api_key)
    monkeypatch.setenv("SOUNDVERSE_BASE_URL", emu.base_url)
    provider = SoundverseProvider(settings, public=files)
    assert provider.base_url == emu.base_url
    assert provider.check_connection().startswith("Connected (key accepted)")


def test_plan_without_credits(wire, running, files, upload, job) -> None:
    emu = running(SoundverseEmulator, balance=0)
    provider = wire(SoundverseProvider, emu, public=files)
    with pytest.raises(InsufficientCredits, match="no credits left"):
        provider.run(upload("vocals"), job().context())
    assert emu.ledger.charges == []


@pytest.mark.parametrize(
    ("kind", "error", "text"),
    [
        ("nsfw", ProviderRejected, "NSFW words detected"),
        ("artist", ProviderRejected, "Artist name detected"),
        ("detail", ProviderUnavailable, "Generation failed"),
    ],
)
def test_documented_error_bodies(provider, emu, upload, job, kind, error, text) -> None:
    emu.next_error = kind
    with pytest.raises(error, match=text):
        provider.run(upload("vocals"), job().context())
    assert emu.calls_to("POST", CREATE) == 1


def test_unfetchable_url_is_rejected(provider, emu, song, job) -> None:
    request = request_for(song, "vocals", source_url=emu.origin + "/nothing-here.mp3")
    with pytest.raises(ProviderRejected, match="Could not download audio"):
        provider.run(request, job().context())


def test_failed_separation_is_not_repeated(provider, emu, upload, job) -> None:
    emu.fail_next = 1
    with pytest.raises(ProviderUnavailable, match=r"Stem separation failed.*not repeated"):
        provider.run(upload("vocals"), job().context())
    assert emu.calls_to("POST", CREATE) == 1


def test_rate_limit_storm_is_waited_out(provider, emu, upload, job) -> None:
    emu.inject(Fault("POST /v1/generate/.*", status=429, times=3, retry_after=0.05))
    assert len(provider.run(upload("all-stems"), job().context())) == 6
    assert emu.calls_to("POST", CREATE) == 4 and len(emu.ledger.charges) == 1


def test_rate_limit_from_the_emulators_own_window(wire, running, files, upload, job) -> None:
    emu = running(SoundverseEmulator, rate_limit_per_minute=1)
    provider = wire(SoundverseProvider, emu, public=files)
    provider.run(upload("vocals"), job().context())
    with pytest.raises(RateLimited, match="rate limiting") as caught:
        provider.run(upload("vocals"), job().context())
    assert caught.value.retry_after is not None and caught.value.retry_after > 1
    assert len(emu.ledger.charges) == 1


@pytest.mark.parametrize("kind", ["status", "drop"])
def test_a_call_that_may_have_been_charged_is_never_repeated(provider, emu, upload, job, kind):
    emu.inject(Fault("POST /v1/generate/.*", kind=kind, status=502, after=True, times=5))
    with pytest.raises(ProviderUnavailable, match="not repeated"):
        provider.run(upload("vocals"), job().context())
    assert emu.calls_to("POST", CREATE) == 1 and len(emu.ledger.charges) == 1


def test_a_call_that_timed_out_is_never_repeated(wire, emu, files, upload, job) -> None:
    provider = wire(SoundverseProvider, emu, public=files, sync_timeout_s=HANG_S / 3)
    emu.inject(Fault("POST /v1/generate/.*", kind="hang", hang_s=HANG_S))
    with pytest.raises(ProviderTimeout, match=r"did not answer in time.*not repeated"):
        provider.run(upload("vocals"), job().context())
    wait_for(lambda: emu.calls)  # the hung call is logged once its answer is written
    assert emu.calls_to("POST", CREATE) == 1


def test_malformed_json(provider, emu, upload, job) -> None:
    emu.inject(Fault("POST /v1/generate/.*", kind="malformed"))
    with pytest.raises(MalformedResponse, match="not JSON"):
        provider.run(upload("vocals"), job().context())


def test_expired_result_urls_fail_clearly_and_are_not_paid_again(
    wire, running, files, upload, job
) -> None:
    emu = running(SoundverseEmulator, result_ttl_s=0)
    provider = wire(SoundverseProvider, emu, public=files)
    with pytest.raises(ResultExpired, match="run the job again"):
        provider.run(upload("vocals"), job().context())
    assert emu.calls_to("POST", CREATE) == 1


def test_a_cancel_lands_during_the_long_request(wire, running, files, upload, job) -> None:
    emu = running(SoundverseEmulator, latency_s=5.0)
    provider = wire(SoundverseProvider, emu, public=files)
    run = job(cancel_when=lambda e: "separating" in e.stage)
    with pytest.raises(JobCancelled):
        provider.run(upload("vocals"), run.context())
    assert not (run.workspace / "raw").exists()


def test_a_restarted_job_never_calls_twice(wire, running, files, upload, job) -> None:
    emu = running(SoundverseEmulator, latency_s=1.5)  # longer than a progress heartbeat
    provider = wire(SoundverseProvider, emu, public=files)
    run = job(cancel_when=lambda e: "separating" in e.stage)
    with pytest.raises(JobCancelled):
        provider.run(upload("vocals"), run.context())
    assert "sync_call_sent" in run.facts
    run.cancel_when = None
    with pytest.raises(ProviderError, match="may have charged"):
        provider.run(upload("vocals"), run.context())
    wait_for(lambda: emu.calls)
    assert emu.calls_to("POST", CREATE) == 1
    provider.run(upload("all-stems"), run.context())  # another request is another call
