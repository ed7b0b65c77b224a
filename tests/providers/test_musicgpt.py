"""MusicGPT adapter against its emulator, over real sockets."""

from __future__ import annotations

import numpy as np
import pytest

from sandbox.common import Fault
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
from services.providers.musicgpt import STEMS, MusicGPTProvider
from services.providers.remote import ResultExpired
from services.providers.retry import NOT_REPEATED
from services.providers.webhooks import check_url_token, url_token
from tests.providers.conftest import (
    HANG_S,
    WebhookReceiver,
    adapter,
    audio,
    request_for,
    total,
    wait_for,
)

EXTRACTION = r"/api/public/v1/Extraction"


@pytest.fixture
def emu(emulators):
    return emulators("musicgpt")


@pytest.fixture
def provider(emu, client):
    return adapter(MusicGPTProvider, emu, client)


def only_job(emu):
    (job,) = emu.jobs.values()
    return job


def test_capabilities(provider) -> None:
    caps = provider.capabilities
    assert isinstance(provider, SeparationProvider)
    assert [m.id for m in caps.modes] == ["2", "4", "6", "custom"]
    assert len(caps.selectable_stems) == len(STEMS) == 23
    assert {"vocals.male", "drums.kick", "guitar.lead", "instrumental"} <= set(
        caps.selectable_stems
    )
    assert caps.preprocessing == ("denoise", "deecho", "dereverb")


def test_two_stems_are_both_native(provider, emu, song, job) -> None:
    run = job()
    stems = provider.run(request_for(song, "2"), run.context())
    assert [(s.stem, s.provider_stem) for s in stems] == [
        ("vocals", "vocals"),
        ("instrumental", "instrumental"),
    ]
    assert np.allclose(total(stems, ("vocals", "instrumental")), audio(song), atol=1e-4)
    task = only_job(emu)
    assert task.meta["stems"] == ["vocals", "instrumental"]
    assert run.facts["remote_id"] == task.id
    assert run.facts["credit_estimate"] == str(task.meta["cost"])
    assert emu.bearer_requests == 0  # the raw key, as documented


@pytest.mark.parametrize(
    ("mode", "asked"),
    [("4", ["vocals", "drums", "bass"]), ("6", ["vocals", "drums", "bass", "guitar", "piano"])],
)
def test_band_modes_compute_other_locally(provider, emu, song, job, mode, asked) -> None:
    stems = provider.run(request_for(song, mode), job().context())
    names = tuple(s.stem for s in stems)
    assert names == (*asked, "other")
    assert stems[-1].provider_stem == "local:mix-" + "-".join(asked)
    assert np.allclose(total(stems, names), audio(song), atol=1e-4)
    assert only_job(emu).meta["stems"] == asked


def test_custom_stems_and_preprocessing(provider, emu, song, job) -> None:
    request = request_for(
        song,
        "custom",
        stems=("drums.kick", "vocals.male", "solo_guitar"),
        pre=("Denoise", "dereverb"),
    )
    stems = provider.run(request, job().context())
    assert [(s.stem, s.provider_stem) for s in stems] == [
        ("drums.kick", "kick_drum"),
        ("vocals.male", "male_vocal"),
        ("guitar.lead", "solo_guitar"),
    ]
    meta = only_job(emu).meta
    assert meta["stems"] == ["kick_drum", "male_vocal", "solo_guitar"]
    assert meta["preprocessing"] == ["Denoise", "Dereverb"]
    assert all(np.abs(audio(s.path)).max() > 0.001 for s in stems)


@pytest.mark.parametrize("shape", ["json_string", "object", "audio_url"])
def test_every_documented_result_shape(emulators, client, song, job, shape) -> None:
    emu = emulators("musicgpt", result_shape=shape)
    stems = adapter(MusicGPTProvider, emu, client).run(request_for(song, "2"), job().context())
    assert [s.path.suffix for s in stems] == [".wav", ".wav"]


def test_url_input(emu, client, song, job) -> None:
    provider = adapter(MusicGPTProvider, emu, client, send_urls=True)
    url = emu.link(song, "audio/wav")
    assert len(provider.run(request_for(song, "2", source_url=url), job().context())) == 2


def test_estimate_is_unknown_not_zero(provider, song) -> None:
    estimate = provider.estimate(request_for(song, "2"))
    assert estimate.credits is None and "publish" in estimate.note


@pytest.mark.parametrize(
    ("mode", "stems", "pre", "message"),
    [
        ("custom", (), (), "at least one stem"),
        ("custom", ("cowbell",), (), "cannot extract 'cowbell'"),
        ("2", (), ("autotune",), "no pre-processing 'autotune'"),
        ("8", (), (), "no mode '8'"),
    ],
)
def test_bad_requests_are_refused_before_any_call(
    provider, emu, song, mode, stems, pre, message
) -> None:
    with pytest.raises(InputRejected, match=message):
        provider.estimate(request_for(song, mode, stems, pre))
    assert emu.calls == []


# --- keys and errors ------------------------------------------------------------------------


def test_missing_key(emu, client, song, job) -> None:
    provider = adapter(MusicGPTProvider, emu, client, api_key=" ")
    with pytest.raises(MissingKey, match="MUSICGPT_API_KEY"):
        provider.run(request_for(song, "2"), job().context())
    assert emu.calls == []


def test_wrong_key(emu, client, song, job) -> None:
    secret = "mgpt_definitely_wrong_key"
    provider = adapter(MusicGPTProvider, emu, client, api_key=secret)
    with pytest.raises(AuthError, match="HTTP 403") as caught:
        provider.run(request_for(song, "2"), job().context())
    assert secret not in str(caught.value)
    with pytest.raises(AuthError):
        provider.check_connection()


def test_check_connection(provider) -> None:
    assert provider.check_connection().startswith("Connected")


def test_insufficient_credits(emulators, client, song, job) -> None:
    emu = emulators("musicgpt", balance=0.1)
    with pytest.raises(InsufficientCredits):
        adapter(MusicGPTProvider, emu, client).run(request_for(song, "2"), job().context())


def test_undecodable_audio_is_rejected(provider, tmp_path, job) -> None:
    fake = tmp_path / "fake.mp3"
    fake.write_bytes(b"ID3" + b"\0" * 3000)
    with pytest.raises(ProviderRejected, match="Could not read the audio"):
        provider.run(request_for(fake, "2"), job().context())


def test_rate_limited_create_is_retried_once_the_limit_allows(provider, emu, song, job) -> None:
    emu.inject(Fault("POST /Extraction", status=429, times=2, retry_after=0.05))
    assert len(provider.run(request_for(song, "2"), job().context())) == 2
    assert emu.calls_to("POST", EXTRACTION) == 3
    assert len(emu.ledger.charges) == 1


def test_long_rate_limit_is_reported(provider, emu, song, job) -> None:
    emu.inject(Fault("POST /Extraction", status=429, retry_after=120))
    with pytest.raises(RateLimited, match="120 s"):
        provider.run(request_for(song, "2"), job().context())


def test_a_create_that_may_have_charged_is_never_repeated(provider, emu, song, job) -> None:
    emu.inject(Fault("POST /Extraction", status=500, after=True))
    with pytest.raises(ProviderUnavailable) as caught:
        provider.run(request_for(song, "2"), job().context())
    assert str(caught.value).endswith(NOT_REPEATED)
    assert emu.calls_to("POST", EXTRACTION) == 1
    assert len(emu.ledger.charges) == 1  # charged once, by the one request that got through


def test_a_create_that_timed_out_is_never_repeated(emu, impatient_client, song, job) -> None:
    provider = adapter(MusicGPTProvider, emu, impatient_client)
    emu.inject(Fault("POST /Extraction", kind="hang", hang_s=HANG_S))
    with pytest.raises(ProviderTimeout, match="did not answer") as caught:
        provider.run(request_for(song, "2"), job().context())
    assert NOT_REPEATED in str(caught.value)
    wait_for(lambda: emu.calls_to("POST", EXTRACTION) == 1)
    assert emu.calls_to("POST", EXTRACTION) == 1


def test_polls_survive_a_server_error_burst(provider, emu, song, job) -> None:
    emu.inject(Fault("GET /byId", status=502, times=3))
    assert len(provider.run(request_for(song, "2"), job().context())) == 2
    assert len(emu.ledger.charges) == 1


def test_malformed_status(provider, emu, song, job) -> None:
    emu.inject(Fault("GET /byId", kind="malformed"))
    with pytest.raises(MalformedResponse):
        provider.run(request_for(song, "2"), job().context())


def test_failed_extraction(emu, provider, song, job) -> None:
    emu.fail_next = 1
    with pytest.raises(ProviderError, match="could not be processed"):
        provider.run(request_for(song, "2"), job().context())


def test_deadline(emulators, client, song, job) -> None:
    emu = emulators("musicgpt", latency_s=60)
    provider = adapter(MusicGPTProvider, emu, client, deadline_s=0.3)
    with pytest.raises(ProviderTimeout, match="did not finish"):
        provider.run(request_for(song, "2"), job().context())


def test_expired_links(emulators, client, song, job) -> None:
    emu = emulators("musicgpt", result_ttl_s=0)
    with pytest.raises(ResultExpired, match="run the job again"):
        adapter(MusicGPTProvider, emu, client).run(request_for(song, "2"), job().context())


def test_unsigned_webhook_carries_a_url_token(emu, client, song, job) -> None:
    secret = "local-webhook-secret"
    ref = "job-42"

    def check(path: str, _headers: dict[str, str], _body: bytes) -> None:
        check_url_token(secret, ref, path.partition("token=")[2] or None)

    receiver = WebhookReceiver(check)
    try:
        hook = receiver.url(f"/musicgpt?token={url_token(secret, ref)}")
        provider = adapter(MusicGPTProvider, emu, client, webhook_url=hook)
        provider.run(request_for(song, "2"), job().context())
        wait_for(lambda: emu.webhook_deliveries)
        assert emu.webhook_deliveries == [200]
        assert receiver.accepted[0]["status"] == "COMPLETED"
        forged = adapter(MusicGPTProvider, emu, client, webhook_url=receiver.url("/m?token=x"))
        forged.run(request_for(song, "4"), job().context())
        wait_for(lambda: len(emu.webhook_deliveries) == 2)
        assert emu.webhook_deliveries[1] == 400
    finally:
        receiver.close()


def test_a_restarted_job_polls_instead_of_paying_again(provider, emu, song, job) -> None:
    run = job(cancel_when=lambda e: "MusicGPT:" in e.stage)
    request = request_for(song, "2")
    with pytest.raises(JobCancelled):
        provider.run(request, run.context())
    run.cancel_when = None
    assert len(provider.run(request, run.context())) == 2
    assert emu.calls_to("POST", EXTRACTION) == 1 and len(emu.ledger.charges) == 1
