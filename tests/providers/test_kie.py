"""kie.ai adapter against its emulator, over real sockets; signed callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging

import httpx
import numpy as np
import pytest

from sandbox.common import Fault
from sandbox.kie import FIELDS, KieEmulator
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
from services.providers.kie import (
    PLACEHOLDER_CALLBACK,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    KieCallbacks,
    KieProvider,
    callback_signature,
    verify_callback,
)
from services.providers.normalize import canonical_stem
from services.providers.remote import ResultExpired
from services.providers.webhooks import WebhookRejected
from tests.providers.conftest import (
    HANG_S,
    WebhookReceiver,
    audio,
    request_for,
    total,
    wait_for,
)

pytest_plugins = ("tests.providers.emulated",)
pytestmark = pytest.mark.usefixtures("clean_env")

GENERATE = r"/api/v1/vocal-removal/generate"
RECORD = r"/api/v1/vocal-removal/record-info"
KEY = "whk_test_key"
NOW = 1_700_000_000


@pytest.fixture
def emu(running):
    return running(KieEmulator, output_format="wav")


@pytest.fixture
def provider(wire, emu):
    return wire(KieProvider, emu)


def present(emu: KieEmulator) -> set[str]:
    """Canonical names of the stems the (only) task returned (absent ones are null)."""
    (job,) = emu.jobs.values()
    return {canonical_stem(FIELDS[s][0]) for s in job.outputs if s not in job.meta["absent"]}


def test_satisfies_the_protocol(provider) -> None:
    assert isinstance(provider, SeparationProvider)
    caps = provider.capabilities
    assert [m.id for m in caps.modes] == ["separate_vocal", "split_stem"]
    assert len(caps.mode("split_stem").stems) == 12 and caps.input_kinds == ("file", "url")


def test_separate_vocal_uploads_the_file_and_returns_two_stems(provider, emu, song, job) -> None:
    run = job()
    stems = provider.run(request_for(song, "separate_vocal"), run.context())
    assert [(s.stem, s.provider_stem) for s in stems] == [
        ("vocals", "vocalUrl"),
        ("instrumental", "instrumentalUrl"),
    ]
    assert np.allclose(total(stems, ("vocals", "instrumental")), audio(song), atol=1e-4)
    (uploaded,) = emu.upload.stored.values()
    assert uploaded.read_bytes() == song.read_bytes()
    (task_id,) = emu.jobs
    assert emu.ledger.charges == [(task_id, 10)] and run.facts["remote_id"] == task_id
    assert run.facts["audio_url"].startswith(emu.upload.origin)
    assert emu.jobs[task_id].meta["callback"] == PLACEHOLDER_CALLBACK
    assert emu.webhook_deliveries == [0]  # *.invalid is never reached; polling finished the job


def test_split_stem_returns_what_the_track_contains(provider, emu, song, job) -> None:
    stems = provider.run(request_for(song, "split_stem"), job().context())
    names = {s.stem for s in stems}
    assert names == present(emu)
    assert {"vocals", "vocals.backing", "bass", "guitar", "keys", "fx"} <= names
    assert names < set(provider.capabilities.mode("split_stem").stems)  # some came back null
    assert "mix" not in names
    error = total(stems, tuple(names)) - audio(song)  # only near-silent stems are missing
    assert np.sqrt(np.mean(error**2)) < 0.01 * np.sqrt(np.mean(audio(song) ** 2))
    assert emu.ledger.total() == 50


def test_extra_instrumental_removes_lead_and_backing_vocals(provider, song, job) -> None:
    stems = provider.run(request_for(song, "split_stem", stems=("instrumental",)), job().context())
    by_name = {s.stem: s for s in stems}
    assert by_name["instrumental"].provider_stem == "local:mix-vocalUrl-backingVocalsUrl"
    expected = audio(song) - total(stems, ("vocals", "vocals.backing"))
    assert np.allclose(audio(by_name["instrumental"].path), expected, atol=1e-4)


def test_mp3_results_by_default(wire, running, song, job) -> None:
    emu = running(KieEmulator)
    stems = wire(KieProvider, emu).run(request_for(song, "separate_vocal"), job().context())
    assert {s.path.suffix for s in stems} == {".mp3"}


def test_a_users_url_is_sent_without_uploading(wire, emu, song, job) -> None:
    provider = wire(KieProvider, emu, send_urls=True)
    url = emu.link(song, "audio/wav")
    provider.run(request_for(song, "separate_vocal", source_url=url), job().context())
    assert emu.upload.stored == {} and emu.upload.calls == []


def test_estimate_per_call(provider, song) -> None:
    assert provider.estimate(request_for(song, "separate_vocal")).credits == 10
    assert provider.estimate(request_for(song, "split_stem")).credits == 50


def test_unsupported_requests_are_refused_before_any_call(provider, emu, song) -> None:
    for request in (
        request_for(song, "split_stem_advanced"),
        request_for(song, "split_stem", pre=("denoise",)),
        request_for(song, "split_stem", stems=("drums.kick",)),
    ):
        with pytest.raises(InputRejected):
            provider.estimate(request)
    assert emu.calls == [] and emu.upload.calls == []


# --- keys and business codes ----------------------------------------------------------------


def test_missing_key(wire, emu, song, job) -> None:
    assert wire(KieProvider, emu, api_key=None).estimate(request_for(song, "split_stem")).credits
    with pytest.raises(MissingKey, match="KIE_API_KEY"):
        wire(KieProvider, emu, api_key=None).run(request_for(song, "split_stem"), job().context())
    assert emu.calls == []


@pytest.mark.parametrize("mirror", [False, True])
def test_wrong_key_inside_http_200_or_mirrored(wire, running, song, job, mirror, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    emu = running(KieEmulator, mirror_http=mirror)
    secret = "kie_wrong_key_1234567890"
    provider = wire(KieProvider, emu, api_key=secret, send_urls=True)
    request = request_for(song, "split_stem", source_url=emu.link(song, "audio/wav"))
    with pytest.raises(AuthError, match="code 401") as caught:
        provider.run(request, job().context())
    assert secret not in str(caught.value)
    assert secret not in caplog.text
    with pytest.raises(AuthError):
        provider.check_connection()


def test_key_from_the_environment_and_balance(emu, monkeypatch, settings) -> None:
    monkeypatch.setenv("KIE_API_KEY", emu.api_key)
    monkeypatch.setenv("KIE_BASE_URL", emu.base_url)
    monkeypatch.setenv("KIE_UPLOAD_BASE_URL", emu.upload.base_url)
    provider = KieProvider(settings)
    assert provider.upload_base_url == emu.upload.base_url
    assert provider.check_connection() == "Connected. Balance: 1000 credits."


def test_balance_falls_back_to_the_sunoapi_path(provider, emu) -> None:
    emu.inject(Fault("GET /api/v1/chat/credit", status=404))
    assert provider.check_connection() == "Connected. Balance: 1000 credits."
    assert emu.calls_to("GET", r"/api/v1/generate/credit") == 1


@pytest.mark.parametrize(("compat", "mirror"), [("new", False), ("old", False), ("new", True)])
def test_insufficient_credits_in_both_code_tables(wire, running, song, job, compat, mirror) -> None:
    emu = running(KieEmulator, balance=20, compat=compat, mirror_http=mirror)
    with pytest.raises(InsufficientCredits, match="too few credits"):
        wire(KieProvider, emu).run(request_for(song, "split_stem"), job().context())
    assert emu.ledger.charges == []
    assert emu.calls_to("POST", GENERATE) == 1  # refused, so not worth repeating


def test_an_ambiguous_429_is_read_against_the_balance(wire, running, song, job) -> None:
    emu = running(KieEmulator, balance=20)
    emu.queue_codes("POST /api/v1/vocal-removal/generate", 429)  # no telling message
    with pytest.raises(InsufficientCredits):
        wire(KieProvider, emu).run(request_for(song, "split_stem"), job().context())
    assert emu.calls_to("GET", r"/api/v1/chat/credit") == 1


def test_an_ambiguous_429_with_credits_left_is_a_rate_limit_and_retried(
    provider, emu, song, job
) -> None:
    emu.queue_codes("POST /api/v1/vocal-removal/generate", 429, 430, 405)
    assert len(provider.run(request_for(song, "separate_vocal"), job().context())) == 2
    assert emu.calls_to("POST", GENERATE) == 4 and len(emu.ledger.charges) == 1


def test_rate_limit_codes_that_do_not_stop(provider, emu, song, job) -> None:
    emu.queue_codes("POST /api/v1/vocal-removal/generate", *[430] * 10)
    with pytest.raises(RateLimited, match="code 430"):
        provider.run(request_for(song, "separate_vocal"), job().context())
    assert emu.ledger.charges == []


@pytest.mark.parametrize(
    ("code", "error", "text"),
    [
        (455, ProviderUnavailable, "maintenance"),
        (500, ProviderUnavailable, "having problems"),
        (422, ProviderRejected, "invalid"),
        (505, ProviderRejected, "disabled"),
        (408, ProviderTimeout, "timed out"),
        (401, AuthError, "API key"),
    ],
)
def test_business_codes_on_create(provider, emu, song, job, code, error, text) -> None:
    emu.queue_codes("POST /api/v1/vocal-removal/generate", code)
    with pytest.raises(error, match=text):
        provider.run(request_for(song, "separate_vocal"), job().context())
    assert emu.calls_to("POST", GENERATE) == 1


def test_validation_of_the_emulated_contract(running, song) -> None:
    emu = running(KieEmulator)
    auth = {"Authorization": f"Bearer {emu.api_key}"}
    url = emu.base_url + "/api/v1/vocal-removal/generate"
    link = emu.link(song, "audio/wav")
    cases = [
        ({"audioUrl": link, "type": "split_stem"}, 422, "callBackUrl"),
        ({"audioUrl": link, "type": "karaoke", "callBackUrl": "https://x.invalid"}, 422, "type"),
        ({"audioUrl": link, "taskId": "t", "callBackUrl": "https://x.invalid"}, 422, "either"),
        ({"taskId": "t", "audioId": "a", "callBackUrl": "https://x.invalid"}, 404, "not found"),
    ]
    for body, code, text in cases:
        answer = httpx.post(url, json=body, headers=auth)
        assert answer.status_code == 200  # business errors ride inside HTTP 200
        assert answer.json()["code"] == code and text in answer.json()["msg"]
    task_id, audio_ids = emu.register_music_task(song)  # the documented input
    body = {"taskId": task_id, "audioId": audio_ids[1], "callBackUrl": "https://x.invalid"}
    created = httpx.post(url, json=body, headers=auth).json()
    assert created["code"] == 200 and len(created["data"]["taskId"]) == 32
    assert emu.ledger.total() == 10  # separate_vocal is the default type


# --- transport faults, failures, expiry --------------------------------------------------------


def test_http_429_storm_with_retry_after(provider, emu, song, job) -> None:
    emu.inject(Fault("POST /api/v1/vocal-removal/generate", status=429, times=3, retry_after=0.05))
    assert len(provider.run(request_for(song, "separate_vocal"), job().context())) == 2
    assert emu.calls_to("POST", GENERATE) == 4 and len(emu.ledger.charges) == 1


def test_server_error_burst_while_polling_then_success(provider, emu, song, job) -> None:
    emu.inject(Fault("GET /api/v1/vocal-removal/record-info", status=503, times=2))
    assert len(provider.run(request_for(song, "separate_vocal"), job().context())) == 2


def test_flaky_upload_is_retried(provider, emu, song, job) -> None:
    emu.upload.inject(Fault("POST /api/file-stream-upload", status=500, times=2))
    assert len(provider.run(request_for(song, "separate_vocal"), job().context())) == 2
    assert emu.upload.calls_to("POST", r"/api/file-stream-upload") == 3


@pytest.mark.parametrize("kind", ["status", "drop"])
def test_a_create_that_may_have_charged_is_never_repeated(provider, emu, song, job, kind) -> None:
    emu.inject(Fault("POST /api/v1/vocal-removal/generate", kind=kind, after=True, times=5))
    run = job()
    with pytest.raises(ProviderUnavailable, match="not repeated"):
        provider.run(request_for(song, "split_stem"), run.context())
    assert emu.calls_to("POST", GENERATE) == 1 and len(emu.ledger.charges) == 1
    assert "audio_url" in run.facts and "remote_id" not in run.facts


def test_a_create_that_timed_out_is_never_repeated(wire, emu, impatient_client, song, job):
    provider = wire(KieProvider, emu, via=impatient_client)
    emu.inject(Fault("POST /api/v1/vocal-removal/generate", kind="hang", hang_s=HANG_S))
    with pytest.raises(ProviderTimeout, match="not repeated"):
        provider.run(request_for(song, "separate_vocal"), job().context())
    wait_for(lambda: emu.calls_to("POST", GENERATE))
    assert emu.calls_to("POST", GENERATE) == 1


def test_malformed_json(provider, emu, song, job) -> None:
    emu.inject(Fault("GET /api/v1/vocal-removal/record-info", kind="malformed"))
    with pytest.raises(MalformedResponse, match="not JSON"):
        provider.run(request_for(song, "separate_vocal"), job().context())


def test_failed_task_is_refunded(running, wire, song, job) -> None:
    emu = running(KieEmulator)
    emu.fail_next = 1
    with pytest.raises(ProviderError, match=r"could not separate.*credits were refunded"):
        wire(KieProvider, emu).run(request_for(song, "split_stem"), job().context())
    assert emu.ledger.total() == 0 and len(emu.ledger.charges) == 2


def test_unfetchable_source_fails_the_task(wire, emu, song, job) -> None:
    provider = wire(KieProvider, emu, send_urls=True)
    request = request_for(song, "split_stem", source_url=emu.origin + "/gone.mp3")
    with pytest.raises(ProviderError, match="could not be fetched"):
        provider.run(request, job().context())
    (task,) = emu.jobs.values()
    assert task.meta["error_code"] == 451


def test_deadline(wire, running, song, job) -> None:
    emu = running(KieEmulator, latency_s=60)
    with pytest.raises(ProviderTimeout, match="did not finish"):
        wire(KieProvider, emu, deadline_s=0.3).run(
            request_for(song, "separate_vocal"), job().context()
        )


def test_expired_result_urls_fail_clearly(wire, running, song, job) -> None:
    emu = running(KieEmulator, result_ttl_s=0)
    with pytest.raises(ResultExpired, match="expired"):
        wire(KieProvider, emu).run(request_for(song, "separate_vocal"), job().context())
    assert emu.calls_to("POST", GENERATE) == 1


def test_a_refused_result_url_is_refreshed_once(provider, emu, song, job) -> None:
    emu.inject(Fault("GET /files/.*", status=403))
    assert len(provider.run(request_for(song, "separate_vocal"), job().context())) == 2


def test_cancel_then_resume_does_not_upload_or_pay_twice(provider, emu, song, job) -> None:
    run = job(cancel_when=lambda e: "running" in e.stage)
    request = request_for(song, "split_stem")
    with pytest.raises(JobCancelled):
        provider.run(request, run.context())
    run.cancel_when = None
    assert provider.run(request, run.context())
    assert emu.calls_to("POST", GENERATE) == 1 and len(emu.ledger.charges) == 1
    assert emu.upload.calls_to("POST", r"/api/file-stream-upload") == 1


# --- callbacks -------------------------------------------------------------------------------


def signed(task_id: str, ts: int, key: str = KEY) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"code": 200, "msg": "ok", "data": {"task_id": task_id}}).encode()
    headers = {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: callback_signature(key, task_id, ts)}
    return headers, body


def test_signature_is_base64_hmac_over_task_id_and_timestamp() -> None:
    raw = hmac.new(KEY.encode(), b"abc.1700000000", hashlib.sha256).digest()
    assert callback_signature(KEY, "abc", NOW) == base64.b64encode(raw).decode()
    headers, body = signed("abc", NOW)
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify_callback(lower, body, KEY, now=NOW + 299)["data"]["task_id"] == "abc"


@pytest.mark.parametrize(
    ("headers", "body", "why"),
    [
        (signed("abc", NOW, "other")[0], signed("abc", NOW)[1], "does not match"),
        (signed("abc", NOW)[0], signed("xyz", NOW)[1], "does not match"),  # body for another task
        (signed("abc", NOW - 301)[0], signed("abc", NOW)[1], "tolerance"),
        (signed("abc", NOW + 301)[0], signed("abc", NOW)[1], "tolerance"),
        ({}, signed("abc", NOW)[1], "no signature"),
        ({TIMESTAMP_HEADER: "soon", SIGNATURE_HEADER: "x"}, b"{}", "not a number"),
        (signed("abc", NOW)[0], b'{"data": {}}', "no data.task_id"),
    ],
)
def test_forged_stale_and_malformed_callbacks_are_refused(headers, body, why) -> None:
    with pytest.raises(WebhookRejected, match=why):
        verify_callback(headers, body, KEY, now=NOW)


def test_a_replayed_callback_is_refused_once_seen() -> None:
    callbacks = KieCallbacks(KEY, clock=lambda: NOW)
    headers, body = signed("abc", NOW)
    assert callbacks.receive(headers, body) == 200
    assert callbacks.receive(headers, body) == 401
    assert callbacks.receive(*signed("abc", NOW + 1)) == 200  # a genuine re-delivery is new
    assert list(callbacks.received) == ["abc"]


def test_without_a_key_callbacks_are_only_hints() -> None:
    callbacks = KieCallbacks(None)
    assert callbacks.receive({}, signed("abc", NOW)[1]) == 200
    assert callbacks.receive({}, b"not json") == 401


@pytest.mark.parametrize(
    ("mode", "statuses"),
    [("normal", [200]), ("forged", [400]), ("stale", [400]), ("replay", [200, 400])],
)
def test_emulator_callbacks_are_verified(wire, running, song, job, mode, statuses) -> None:
    emu = running(KieEmulator)
    emu.webhook_mode = mode
    callbacks = KieCallbacks(emu.webhook_secret)
    receiver = WebhookReceiver(lambda _path, headers, body: callbacks.verify(headers, body))
    try:
        provider = wire(KieProvider, emu, webhook_url=receiver.url())
        stems = provider.run(request_for(song, "separate_vocal"), job().context())
        wait_for(lambda: len(emu.webhook_deliveries) == len(statuses))
        assert emu.webhook_deliveries == statuses and len(stems) == 2
        if statuses[0] == 200:
            (payload,) = receiver.accepted
            info = payload["data"]["vocal_separation_info"]
            assert info["vocal_url"] and info["instrumental_url"] and info["origin_url"] == ""
    finally:
        receiver.close()


def refuse(*_args: object) -> None:
    raise RuntimeError("the receiver is down")


def test_undeliverable_callback_is_callback_exception_and_still_succeeds(
    wire, emu, song, job
) -> None:
    receiver = WebhookReceiver(refuse)
    try:
        provider = wire(KieProvider, emu, webhook_url=receiver.url())
        request = request_for(song, "separate_vocal")
        run = job()
        assert len(provider.run(request, run.context())) == 2
        wait_for(lambda: emu.webhook_deliveries == [400])
        record = httpx.get(
            emu.base_url + "/api/v1/vocal-removal/record-info",
            params={"taskId": run.facts["remote_id"]},
            headers={"Authorization": f"Bearer {emu.api_key}"},
        ).json()
        assert record["data"]["successFlag"] == "CALLBACK_EXCEPTION"
        assert provider.poll(run.facts["remote_id"], 1e12).state == "succeeded"
    finally:
        receiver.close()


def test_the_app_takes_signed_callbacks_on_its_file_server(wire, running, files, song, job):
    emu = running(KieEmulator)
    provider = wire(KieProvider, emu, public=files, hmac_key=emu.webhook_secret)
    run = job()
    provider.run(request_for(song, "separate_vocal"), run.context())
    (task,) = emu.jobs.values()
    assert task.meta["callback"].startswith(files.local_url + "/hooks/kie/")
    wait_for(lambda: emu.webhook_deliveries == [200])
    assert provider.callbacks.received[run.facts["remote_id"]]["code"] == 200
    emu.webhook_mode = "forged"
    provider.run(request_for(song, "split_stem"), job().context())
    wait_for(lambda: len(emu.webhook_deliveries) == 2)
    assert emu.webhook_deliveries[1] == 401 and len(provider.callbacks.received) == 1


def test_old_brand_payload_key(wire, running, song, job) -> None:
    emu = running(KieEmulator, info_key="vocal_removal_info", compat="old")
    receiver = WebhookReceiver(lambda *_: None)
    try:
        wire(KieProvider, emu, webhook_url=receiver.url()).run(
            request_for(song, "separate_vocal"), job().context()
        )
        wait_for(lambda: receiver.accepted)
        assert receiver.accepted[0]["data"]["vocal_removal_info"]["vocal_url"]
    finally:
        receiver.close()
