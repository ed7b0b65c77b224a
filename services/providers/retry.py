"""Resend a provider request on transient failures without ever paying twice.

What is retried, and why:
- connection failures before the request left this machine (connect/pool errors): always, the
  provider never saw the request;
- HTTP 429: always, honouring ``Retry-After`` — a rate-limited request was refused, not run;
- HTTP 5xx and failures after the request was sent (read timeouts, dropped connections): only
  when ``idempotent`` (a GET, an upload, or a create carrying an idempotency key). Otherwise
  the provider may have started — and charged — the job, so the answer is handed back as is.
Waits are exponential with jitter, and everything stops at an overall deadline.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from services.errors import ProviderError, ProviderTimeout, ProviderUnavailable

log = logging.getLogger(__name__)

NOT_REPEATED = " It was not repeated, because the provider may already have charged for it."

# Raised before any byte of the request reached the provider.
_NOT_SENT: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: attempts in all, backoff base and cap, and an overall deadline."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    deadline_s: float = 120.0

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (failures - 1))
        return ceiling * (0.5 + rng.random() / 2)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def send(
    attempt: Callable[[], httpx.Response],
    *,
    display: str,
    idempotent: bool,
    policy: RetryPolicy = RetryPolicy(),
    deadline: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> httpx.Response:
    """Call ``attempt`` until it gives a final answer; return that response.

    ``attempt`` builds and sends the request afresh each time (so file bodies are reopened).
    Non-retryable answers (2xx, 4xx, unsafe 5xx) and the last retryable one once attempts or
    time run out are returned for the adapter to map. Network failures that cannot be retried
    raise :class:`ProviderTimeout` / :class:`ProviderUnavailable`. ``deadline`` is an absolute
    ``clock()`` time that further bounds the policy's own deadline.
    """
    rng = rng or random.Random()
    end = clock() + policy.deadline_s
    if deadline is not None:
        end = min(end, deadline)
    failures = 0
    while True:
        try:
            response = attempt()
        except httpx.TransportError as exc:
            sent = not isinstance(exc, _NOT_SENT)
            if sent and not idempotent:
                raise network_error(display, exc, repeated=False) from exc
            failures += 1
            wait = policy.backoff(failures, rng)
            if failures >= policy.max_attempts or clock() + wait > end:
                raise network_error(display, exc, repeated=True) from exc
            log.info("%s: %s, retry %d in %.1f s", display, type(exc).__name__, failures, wait)
            sleep(wait)
            continue
        status = response.status_code
        if not (status == 429 or (status >= 500 and idempotent)):
            return response
        failures += 1
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            wait = policy.backoff(failures, rng)
        else:
            wait = retry_after + min(1.0, retry_after * 0.1) * rng.random()
        if failures >= policy.max_attempts or clock() + wait > end:
            return response
        log.info("%s: HTTP %d, retry %d in %.1f s", display, status, failures, wait)
        response.close()
        sleep(wait)


def network_error(display: str, exc: httpx.TransportError, *, repeated: bool) -> ProviderError:
    """The typed error for a request that never got an answer."""
    note = "" if repeated else NOT_REPEATED
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"{display} did not answer in time.{note}")
    return ProviderUnavailable(f"Could not reach {display} ({type(exc).__name__}).{note}")
