"""Stem-name normalisation, key resolution and scrubbing secrets out of text."""

from __future__ import annotations

import pytest

from services.errors import MissingKey
from services.providers import keys
from services.providers.http import error_for_status, safe_detail
from services.providers.musicgpt import STEMS
from services.providers.normalize import CANONICAL, canonical_stem, normalize_urls


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("vocals", "vocals"),
        ("Drums", "drums"),
        ("kick_drum", "drums.kick"),
        ("hi_hat", "drums.hihat"),
        ("solo_guitar", "guitar.lead"),
        ("back_vocal", "vocals.backing"),
        ("backingVocalsUrl", "vocals.backing"),
        ("backing_vocals_url", "vocals.backing"),
        ("originUrl", "mix"),
        ("Backing Vocals", "vocals.backing"),
        ("keyboard_url", "keys"),
        ("brassUrl", "winds.brass"),
        ("fxUrl", "fx"),
        ("drums.kick", "drums.kick"),
        ("Trumpet", "instrument.trumpet"),
        ("Tin Whistle!", "instrument.tin_whistle"),
    ],
)
def test_canonical_names(raw: str, canonical: str) -> None:
    assert canonical_stem(raw) == canonical


def test_every_musicgpt_stem_is_canonical() -> None:
    assert {canonical_stem(name) for name in STEMS} <= CANONICAL
    assert len({canonical_stem(name) for name in STEMS}) == 23


def test_normalize_skips_empty_links_and_keeps_raw_names() -> None:
    found = normalize_urls(
        {"vocalUrl": "http://a/v.mp3", "drumsUrl": None, "bassUrl": "", "Vocals": "http://b"}
    )
    assert found == {"vocals": ("vocalUrl", "http://a/v.mp3")}


def test_key_resolution_order_and_blanks() -> None:
    env = {"ACME_API_KEY": "env-key-123456"}
    secrets = {"ACME_API_KEY": "secret-key-123456"}
    assert keys.resolve("acme", explicit="given-key-123456", secrets=secrets, env=env) == (
        "given-key-123456"
    )
    assert keys.resolve("acme", explicit="  ", secrets=secrets, env=env) == "secret-key-123456"
    assert keys.resolve("acme", env=env) == "env-key-123456"
    assert keys.resolve("acme", env={}) is None
    assert keys.resolve("acme", "BASE_URL", env={"ACME_BASE_URL": "http://x"}) == "http://x"


def test_missing_key_message_says_where_to_put_one() -> None:
    with pytest.raises(MissingKey, match="Settings page or set ACME_API_KEY"):
        keys.require_key("acme", "Acme", None)


def test_redact_scrubs_known_given_and_bearer_values() -> None:
    keys.resolve("acme", explicit="sk_live_remembered_1")
    text = "key sk_live_remembered_1, Bearer abc.def; Authorization: xyz other-secret-9"
    scrubbed = keys.redact(text, "other-secret-9")
    assert "sk_live_remembered_1" not in scrubbed and "abc.def" not in scrubbed
    assert "xyz" not in scrubbed and "other-secret-9" not in scrubbed
    assert keys.redact("Authorization failed") == "Authorization failed"


def test_mask() -> None:
    assert keys.mask("ast_live_1234567890abcd") == "••••abcd"
    assert keys.mask("short") == "••••••"
    assert keys.mask(None) == ""


def test_provider_details_are_short_and_scrubbed() -> None:
    detail = safe_detail("bad key k_123456789 " + "x" * 500, ("k_123456789",))
    assert "k_123456789" not in detail and len(detail) == 200 and detail.endswith("…")
    error = error_for_status("Acme", 422, detail="stems: unknown 'cowbell'")
    assert str(error) == "Acme rejected the request (HTTP 422) (stems: unknown 'cowbell')."
