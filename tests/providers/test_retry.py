"""Retry rules over real sockets (the waits are recorded, not slept)."""

from __future__ import annotations

import random
import socket
from email.utils import formatdate

import httpx
import pytest

from sandbox.common import Fault
from services.errors import ProviderTimeout, ProviderUnavailable
from services.providers.http import make_client
from services.providers.retry import NOT_REPEATED, RetryPolicy, parse_retry_after, send

POLICY = RetryPolicy(max_attempts=4, base_delay_s=1.0, max_delay_s=8.0, deadline_s=60.0)


class Clock:
    """A fake clock that the recorded sleeps advance, so deadlines are exercised exactly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def emu(emulators):
    return emulators("aistemsplitter")


def credits(emu, client: httpx.Client):
    headers = {"Authorization": f"Bearer {emu.api_key}"}
    return lambda: client.get(emu.base_url + "/credits", headers=headers)


def go(attempt, clock: Clock, idempotent: bool, policy: RetryPolicy = POLICY) -> httpx.Response:
    return send(
        attempt,
        display="Test",
        idempotent=idempotent,
        policy=policy,
        sleep=clock.sleep,
        clock=clock,
        rng=random.Random(1),
    )


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(formatdate(1000.0 + 10, usegmt=True), now=1000.0) == 10.0
    assert parse_retry_after(formatdate(1000.0 - 10, usegmt=True), now=1000.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_exponential_jittered_and_capped() -> None:
    rng = random.Random(7)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        delays = {POLICY.backoff(failures, rng) for _ in range(20)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_rate_limit_honours_retry_after(emu, client) -> None:
    emu.inject(Fault("GET /credits", status=429, times=2, retry_after=7))
    clock = Clock()
    response = go(credits(emu, client), clock, idempotent=False)
    assert response.status_code == 200
    assert len(clock.sleeps) == 2 and all(7.0 <= s <= 7.7 for s in clock.sleeps)


def test_server_errors_are_retried_only_when_idempotent(emu, client) -> None:
    emu.inject(Fault("GET /credits", status=503, times=2))
    clock = Clock()
    assert go(credits(emu, client), clock, idempotent=False).status_code == 503
    assert clock.sleeps == []
    assert go(credits(emu, client), clock, idempotent=True).status_code == 200
    assert len(clock.sleeps) == 1  # one 503 was left


def test_attempts_run_out(emu, client) -> None:
    emu.inject(Fault("GET /credits", status=500, times=10))
    clock = Clock()
    assert go(credits(emu, client), clock, idempotent=True).status_code == 500
    assert emu.calls_to("GET", "/v1/credits") == POLICY.max_attempts


def test_a_wait_beyond_the_deadline_is_not_taken(emu, client) -> None:
    emu.inject(Fault("GET /credits", status=429, retry_after=600))
    clock = Clock()
    assert go(credits(emu, client), clock, idempotent=True).status_code == 429
    assert clock.sleeps == [] and emu.calls_to("GET", "/v1/credits") == 1


def test_refused_connections_are_retried_even_for_paid_requests() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = Clock()
    with make_client() as client:
        attempt = lambda: client.post(f"http://127.0.0.1:{port}/x")  # noqa: E731
        with pytest.raises(ProviderUnavailable, match="Could not reach Test") as caught:
            go(attempt, clock, idempotent=False)
    assert len(clock.sleeps) == POLICY.max_attempts - 1
    assert NOT_REPEATED not in str(caught.value)


def test_read_timeouts(emu) -> None:
    clock = Clock()
    with make_client(timeout=httpx.Timeout(5.0, read=0.3)) as client:
        emu.inject(Fault("GET /credits", kind="hang", hang_s=1.0))
        with pytest.raises(ProviderTimeout) as caught:
            go(credits(emu, client), clock, idempotent=False)
        assert str(caught.value) == "Test did not answer in time." + NOT_REPEATED
        emu.inject(Fault("GET /credits", kind="hang", hang_s=1.0))
        assert go(credits(emu, client), clock, idempotent=True).status_code == 200
