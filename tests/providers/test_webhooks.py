"""Webhook signatures: unit rules, then real signed deliveries from the emulator."""

from __future__ import annotations

import pytest

from services.providers.aistemsplitter import AIStemSplitterProvider
from services.providers.webhooks import WebhookRejected, WebhookVerifier, sign, verify
from tests.providers.conftest import WebhookReceiver, adapter, request_for, wait_for

SECRET = "whsec_test_secret"
BODY = b'{"event":"audio.split.completed","data":{"id":"split_1","status":"succeeded"}}'
NOW = 1_700_000_000


def test_a_valid_signature_passes() -> None:
    assert verify(sign(SECRET, BODY, NOW), BODY, SECRET, now=NOW + 10) == NOW


@pytest.mark.parametrize(
    ("header", "body", "why"),
    [
        (sign("whsec_other", BODY, NOW), BODY, "does not match"),
        (sign(SECRET, BODY, NOW), BODY.replace(b"succeeded", b"failed"), "does not match"),
        (sign(SECRET, BODY, NOW - 301), BODY, "tolerance"),
        (sign(SECRET, BODY, NOW + 301), BODY, "tolerance"),
        (None, BODY, "no signature"),
        ("v1=abc", BODY, "lacks t="),
        (f"t=soon,v1={'0' * 64}", BODY, "not a number"),
    ],
)
def test_forged_tampered_stale_and_malformed_signatures_fail(header, body, why) -> None:
    with pytest.raises(WebhookRejected, match=why):
        verify(header, body, SECRET, now=NOW)


def test_several_v1_values_allow_secret_rotation() -> None:
    good = sign(SECRET, BODY, NOW).split(",")[1]
    assert verify(f"t={NOW},v1={'0' * 64},{good}", BODY, SECRET, now=NOW) == NOW


def test_a_replayed_delivery_is_refused() -> None:
    verifier = WebhookVerifier(SECRET, clock=lambda: NOW)
    header = sign(SECRET, BODY, NOW)
    verifier.verify(header, BODY)
    with pytest.raises(WebhookRejected, match="replay"):
        verifier.verify(header, BODY)
    verifier.verify(sign(SECRET, BODY, NOW + 1), BODY)  # a genuine re-delivery is new


@pytest.mark.parametrize(
    ("mode", "statuses"),
    [("normal", [200]), ("forged", [400]), ("stale", [400]), ("replay", [200, 400])],
)
def test_emulator_deliveries_are_verified_on_raw_bytes(
    emulators, client, song, job, mode, statuses
) -> None:
    emu = emulators("aistemsplitter")
    emu.webhook_mode = mode
    verifier = WebhookVerifier(emu.webhook_secret)
    receiver = WebhookReceiver(
        lambda _path, headers, body: verifier.verify(headers.get("AIStemSplitter-Signature"), body)
    )
    try:
        provider = adapter(AIStemSplitterProvider, emu, client, webhook_url=receiver.url())
        stems = provider.run(request_for(song, "4"), job().context())
        wait_for(lambda: len(emu.webhook_deliveries) == len(statuses))
        assert emu.webhook_deliveries == statuses
        if statuses[0] == 200:
            (payload,) = receiver.accepted
            assert payload["event"] == "audio.split.completed"
            assert payload["data"]["status"] == "succeeded" and len(stems) == 4
    finally:
        receiver.close()
