"""Webhook signatures: sign and verify ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>." + body)>``.

This is the AIStemSplitter scheme (MusicAPI's differs only in header layout). Verification
uses the raw body bytes, compares in constant time, rejects timestamps outside a tolerance
(stale or from the future) and, with a :class:`WebhookVerifier`, rejects a delivery replayed
within that window. Providers that sign nothing (MusicGPT) get a secret token embedded in the
webhook URL instead (:func:`url_token` / :func:`check_url_token`); such a webhook is only a
hint, and the job is confirmed by polling.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable

DEFAULT_TOLERANCE_S = 300.0  # not published by the provider; Stripe-style default


class WebhookRejected(Exception):
    """A webhook that must be ignored; ``str()`` says why (for the receiver's log)."""


def hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``AIStemSplitter-Signature`` header value for ``body``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={ts},v1={hmac_hex(secret, str(ts).encode() + b'.' + body)}"


def parse_header(header: str) -> tuple[int, list[str]]:
    """``t=…,v1=…[,v1=…]`` → (timestamp, signatures); several ``v1`` allow secret rotation."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise WebhookRejected("signature timestamp is not a number") from exc
        elif name == "v1" and value:
            signatures.append(value.strip().lower())
    if timestamp is None or not signatures:
        raise WebhookRejected("signature header lacks t= or v1=")
    return timestamp, signatures


def verify(
    header: str | None,
    body: bytes,
    secret: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a signature header against the raw body; return its timestamp or raise."""
    if not header:
        raise WebhookRejected("no signature header")
    timestamp, signatures = parse_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise WebhookRejected("signature timestamp outside the tolerance (stale or replayed)")
    expected = hmac_hex(secret, str(timestamp).encode() + b"." + body)
    if not any(hmac.compare_digest(expected, sig) for sig in signatures):
        raise WebhookRejected("signature does not match")
    return timestamp


class WebhookVerifier:
    """:func:`verify` plus replay protection: each signature is accepted once per window."""

    def __init__(
        self,
        secret: str,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.tolerance_s = tolerance_s
        self._clock = clock
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def verify(self, header: str | None, body: bytes) -> None:
        now = self._clock()
        timestamp = verify(header, body, self._secret, tolerance_s=self.tolerance_s, now=now)
        fingerprint = hashlib.sha256(f"{timestamp}.".encode() + body).hexdigest()
        with self._lock:
            # Entries older than the window can no longer pass the timestamp check anyway.
            self._seen = {k: t for k, t in self._seen.items() if now - t <= self.tolerance_s}
            if fingerprint in self._seen:
                raise WebhookRejected("delivery already received (replay)")
            self._seen[fingerprint] = timestamp


def url_token(secret: str, job_ref: str) -> str:
    """A per-job token to put in an unsigned provider's webhook URL."""
    return hmac_hex(secret, job_ref.encode())[:32]


def check_url_token(secret: str, job_ref: str, token: str | None) -> None:
    if not token or not hmac.compare_digest(url_token(secret, job_ref), token):
        raise WebhookRejected("webhook URL token does not match")
