"""AIStemSplitter adapter against its emulator, over real sockets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sandbox.common import Fault
from services.config import Settings
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
from services.providers.aistemsplitter import AIStemSplitterProvider
from services.providers.base import SeparationProvider
from services.providers.http import ProviderRejected
from services.providers.remote import ResultExpired
from tests.audiogen import write
from tests.providers.conftest import HANG_S, adapter, audio, request_for, total

SPLITS = r"/v1/audio/splits"


@pytest.fixture
def emu(emulators):
    return emulators("aistemsplitter")


@pytest.fixture
def provider(emu, client):
    return adapter(AIStemSplitterProvider, emu, client)


def test_satisfies_the_protocol(provider) -> None:
    assert isinstance(provider, SeparationProvider)
    assert [m.id for m in provider.capabilities.modes] == ["2", "4", "6"]
    assert provider.capabilities.needs_key


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("4", ("vocals", "drums", "bass", "other")),
        ("6", ("vocals", "drums", "bass", "guitar", "piano", "other")),
    ],
)
def test_model_modes_return_named_stems_that_sum_to_the_input(
    provider, emu, song, job, mode, expected
) -> None:
    run = job()
    stems = provider.run(request_for(song, mode), run.context())
    assert tuple(s.stem for s in stems) == expected
    assert all(s.provider_stem == s.stem for s in stems)
    assert all(s.path.parent == run.workspace / "raw" and s.path.suffix == ".wav" for s in stems)
    assert np.allclose(total(stems, expected), audio(song), atol=1e-4)
    vocals = audio(next(s.path for s in stems if s.stem == "vocals"))
    assert 0.01 < np.sqrt(np.mean(vocals**2)) < np.sqrt(np.mean(audio(song) ** 2))
    assert emu.ledger.charges == [(emu.jobs.popitem()[0], 2.0)]  # 1 credit per second
    assert run.facts["remote_id"].startswith("split_")
    assert run.facts["credits_used"] == "2.0"


def test_two_stem_mode_mixes_the_instrumental_locally(provider, emu, song, job) -> None:
    stems = provider.run(request_for(song, "2"), job().context())
    assert [s.stem for s in stems] == ["vocals", "instrumental"]
    assert stems[1].provider_stem == "local:drums+bass+other"
    assert np.allclose(total(stems, ("vocals", "instrumental")), audio(song), atol=1e-4)
    assert next(iter(emu.jobs.values())).meta["model"] == "4s"


def test_extra_instrumental_next_to_a_model_mode(provider, song, job) -> None:
    stems = provider.run(request_for(song, "6", stems=("instrumental",)), job().context())
    assert [s.stem for s in stems][-1] == "instrumental"


def test_estimate_is_one_credit_per_started_second(provider, song) -> None:
    estimate = provider.estimate(request_for(song, "6"))
    assert estimate.credits == 2.0
    assert "second" in estimate.note


def test_direct_url_input(emu, client, song, job) -> None:
    provider = adapter(AIStemSplitterProvider, emu, client, send_urls=True)
    url = emu.link(song, "audio/wav")
    stems = provider.run(request_for(song, "4", source_url=url), job().context())
    assert len(stems) == 4
    assert emu.calls_to("POST", r"/v1/audio/uploads") == 0


def test_unsupported_requests_are_refused_before_any_call(provider, emu, song) -> None:
    for request in (
        request_for(song, "5"),
        request_for(song, "4", pre=("denoise",)),
        request_for(song, "4", stems=("drums.kick",)),
    ):
        with pytest.raises(InputRejected):
            provider.estimate(request)
    assert emu.calls == []


# --- keys and errors ------------------------------------------------------------------------


def test_missing_key_is_reported_at_use_not_at_construction(emu, client, song, job) -> None:
    provider = adapter(AIStemSplitterProvider, emu, client, api_key=None)
    # pricing is public: the cost is shown before a key is set
    assert provider.estimate(request_for(song, "4")).credits == 2.0
    with pytest.raises(MissingKey, match="AISTEMSPLITTER_API_KEY") as err:
        provider.run(request_for(song, "4"), job().context())
    assert "Settings page" in str(err.value)
    assert emu.calls == []


def test_key_from_environment(emu, client, song, job, monkeypatch) -> None:
    monkeypatch.setenv("AISTEMSPLITTER_API_KEY", emu.api_key)
    monkeypatch.setenv("AISTEMSPLITTER_BASE_URL", emu.base_url)
    provider = AIStemSplitterProvider(Settings())
    assert provider.base_url == emu.base_url
    assert provider.check_connection() == "Connected. Balance: 6200 seconds of audio."


def test_wrong_key_is_an_auth_error_without_the_key(emu, client, song, job) -> None:
    secret = "ast_live_wrong_key_123456"
    provider = adapter(AIStemSplitterProvider, emu, client, api_key=secret)
    with pytest.raises(AuthError) as caught:
        provider.run(request_for(song, "4"), job().context())
    assert secret not in str(caught.value) and "Settings" in str(caught.value)
    assert secret not in repr(provider)
    with pytest.raises(AuthError):
        provider.check_connection()


def test_insufficient_credits(emulators, client, song, job) -> None:
    emu = emulators("aistemsplitter", balance=1)
    provider = adapter(AIStemSplitterProvider, emu, client)
    with pytest.raises(InsufficientCredits):
        provider.run(request_for(song, "4"), job().context())
    assert emu.ledger.charges == []


def test_validation_error_for_undecodable_audio(provider, emu, tmp_path, job) -> None:
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"RIFF" + b"\0" * 2000)
    request = request_for(fake, "4")
    with pytest.raises(ProviderRejected, match="could not be decoded") as caught:
        provider.run(request, job().context())
    assert isinstance(caught.value, InputRejected) and isinstance(caught.value, ProviderError)


def test_rate_limit_storm_is_waited_out(provider, emu, song, job) -> None:
    emu.inject(Fault("POST /audio/splits", status=429, times=3, retry_after=0.05))
    stems = provider.run(request_for(song, "4"), job().context())
    assert len(stems) == 4
    assert emu.calls_to("POST", SPLITS) == 4
    assert len(emu.ledger.charges) == 1


def test_rate_limit_longer_than_the_deadline_is_reported(provider, emu, song, job) -> None:
    emu.inject(Fault("POST /audio/splits", status=429, times=1, retry_after=3600))
    with pytest.raises(RateLimited) as caught:
        provider.run(request_for(song, "4"), job().context())
    assert caught.value.retry_after == 3600
    assert "3600 s" in str(caught.value)


def test_server_errors_after_charging_are_retried_without_a_second_charge(
    provider, emu, song, job
) -> None:
    # The split is created and charged, then the answer is lost (500, then a dropped line):
    # the idempotency key makes the resend return the same split.
    emu.inject(
        Fault("POST /audio/splits", status=500, after=True),
        Fault("POST /audio/splits", kind="drop", after=True),
    )
    stems = provider.run(request_for(song, "4"), job().context())
    assert len(stems) == 4
    assert emu.calls_to("POST", SPLITS) == 3
    assert len(emu.jobs) == 1 and len(emu.ledger.charges) == 1


def test_server_error_burst_while_polling_then_success(provider, emu, song, job) -> None:
    emu.inject(Fault("GET /audio/splits/.*", status=503, times=2))
    assert len(provider.run(request_for(song, "4"), job().context())) == 4


def test_persistent_server_errors_become_unavailable(provider, emu, song, job) -> None:
    emu.inject(Fault("GET /audio/splits/.*", status=500, times=100))
    with pytest.raises(ProviderUnavailable, match="HTTP 500"):
        provider.run(request_for(song, "4"), job().context())


def test_hanging_poll_times_out_then_recovers(emu, impatient_client, song, job) -> None:
    provider = adapter(AIStemSplitterProvider, emu, impatient_client)
    emu.inject(Fault("GET /audio/splits/.*", kind="hang", hang_s=HANG_S))
    assert len(provider.run(request_for(song, "4"), job().context())) == 4


def test_malformed_json(provider, emu, song, job) -> None:
    emu.inject(Fault("GET /audio/splits/.*", kind="malformed"))
    with pytest.raises(MalformedResponse, match="not JSON"):
        provider.run(request_for(song, "4"), job().context())


def test_failed_split(emulators, client, song, job) -> None:
    emu = emulators("aistemsplitter")
    emu.fail_next = 1
    with pytest.raises(ProviderError, match="could not separate this track: Separation failed"):
        adapter(AIStemSplitterProvider, emu, client).run(request_for(song, "4"), job().context())


def test_deadline(emulators, client, song, job) -> None:
    emu = emulators("aistemsplitter", latency_s=60)
    provider = adapter(AIStemSplitterProvider, emu, client, deadline_s=0.3)
    with pytest.raises(ProviderTimeout, match="did not finish"):
        provider.run(request_for(song, "4"), job().context())


def test_expired_result_urls_fail_clearly(emulators, client, song, job) -> None:
    emu = emulators("aistemsplitter", result_ttl_s=0)
    provider = adapter(AIStemSplitterProvider, emu, client)
    with pytest.raises(ResultExpired, match="expired"):
        provider.run(request_for(song, "4"), job().context())


def test_a_refused_result_url_is_refreshed_once(provider, emu, song, job) -> None:
    emu.inject(Fault("GET /files/.*", status=403))
    assert len(provider.run(request_for(song, "4"), job().context())) == 4


def test_refused_upload_is_not_blamed_on_the_key(provider, emu, song, job) -> None:
    emu.inject(Fault("POST /upload/.*", status=403))
    with pytest.raises(ProviderError, match="refused the file upload") as caught:
        provider.run(request_for(song, "4"), job().context())
    assert not isinstance(caught.value, AuthError)


# --- resume, cancel, idempotency across jobs -------------------------------------------------


def test_cancel_then_resume_does_not_pay_twice(provider, emu, song, job) -> None:
    run = job(cancel_when=lambda e: "queued" in e.stage or "running" in e.stage)
    request = request_for(song, "4")
    with pytest.raises(JobCancelled):
        provider.run(request, run.context())
    assert run.facts["remote_id"] in emu.jobs
    assert json.loads(run.facts["remote_input"])["type"] == "uploaded_file"
    run.cancel_when = None
    assert len(provider.run(request, run.context())) == 4  # next attempt, fresh workspace
    assert emu.calls_to("POST", SPLITS) == 1
    assert emu.calls_to("POST", r"/upload/.*") == 1
    assert len(emu.ledger.charges) == 1


def test_lost_create_answer_then_restart_reuses_the_key(provider, emu, song, job) -> None:
    # The process dies after the upload but before the create's answer arrives: the next
    # attempt sends the same input and key, so the provider answers with the same split.
    emu.inject(Fault("POST /audio/splits", status=500, times=10, after=True))
    run = job()
    request = request_for(song, "4")
    with pytest.raises(ProviderUnavailable):
        provider.run(request, run.context())
    assert "remote_id" not in run.facts and "remote_input" in run.facts
    emu.faults.clear()
    assert len(provider.run(request, run.context())) == 4
    assert len(emu.jobs) == 1 and len(emu.ledger.charges) == 1
    assert emu.calls_to("POST", r"/upload/.*") == 1


def test_facts_of_another_request_are_ignored(provider, emu, song, job) -> None:
    run = job()
    provider.run(request_for(song, "4"), run.context())
    provider.run(request_for(song, "6"), run.context())
    assert len(emu.jobs) == 2


def test_a_new_job_uploads_again_and_is_a_new_split(provider, emu, song, job) -> None:
    request = request_for(song, "4")
    provider.run(request, job().context())
    provider.run(request, job().context())
    assert len(emu.jobs) == 2  # a fresh run is a fresh (paid) split, never a key conflict


def test_download_guard_refuses_untrusted_private_hosts(provider, emu, song, job) -> None:
    # A result link on another local port is not the configured provider: refused.
    with pytest.raises(ProviderError, match="will not follow"):
        provider.download("http://127.0.0.1:9/x.wav", Path(job().workspace / "x"), 1e12, 10)


def test_compressed_input_is_uploaded_as_is(provider, emu, song, job, tmp_path) -> None:
    mp3 = write(tmp_path / "song.mp3", audio(song))
    stems = provider.run(request_for(mp3, "4"), job().context())
    upload = next(iter(emu.uploads.values()))
    assert upload["path"].read_bytes() == mp3.read_bytes()
    assert all(abs(len(audio(s.path)) / 44100 - 2.0) < 0.1 for s in stems)
