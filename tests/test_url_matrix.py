"""Hostile URLs against real local servers: 0 requests may reach a forbidden address.

Two servers on 127.0.0.1: ``origin`` is trusted (it stands for a public site and serves the
redirects and abusive bodies), ``target`` is not (it stands for every internal address: any
request it records is a breach). The client's transport also notes every connection attempt
and refuses, without a packet, any address other than loopback, so nothing here ever touches a
real network; an attempt to a forbidden address counts as a breach too. Names resolve through
the resolver seam of :func:`fetch_url` (``evil.test`` → 127.0.0.1, DNS rebinding, …).

``test_fetch.py`` covers each guard rule once; this matrix tries every spelling, directly and
behind each redirect status, plus the resource attacks, and prints the totals.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from services.audio.fetch import FetchedFile, fetch_url, system_resolver
from services.config import Settings
from services.errors import FetchError
from tests.audiogen import tone, write
from tests.figures import report
from tests.fuzzgen import message_problem, run_bounded
from tests.localserver import LocalServer, redirect, reply

_SHARED = ipaddress.ip_network("100.64.0.0/10")


def forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An independent definition (not the guard's): anything not plainly public."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return forbidden(ip.ipv4_mapped)
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
        or ip.is_multicast
        or ip in _SHARED
    )


class GuardedTransport(httpx.HTTPTransport):
    """The real transport for the trusted origin; every other attempt is noted, and only
    loopback ones are let through (so the target server can record them too)."""

    def __init__(self, origin: LocalServer) -> None:
        super().__init__()
        self.origin = ("127.0.0.1", origin.port)
        self.attempts: list[str] = []
        self.breaches: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host, port = request.url.host, request.url.port
        self.attempts.append(f"{host}:{port}")
        if (host, port) == self.origin:
            return super().handle_request(request)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:  # not pinned to a checked address
            self.breaches.append(f"unpinned {host}:{port}")
            raise httpx.ConnectError("refused by the test transport") from None
        if forbidden(ip):
            self.breaches.append(f"{host}:{port}")
        if ip.is_loopback:
            return super().handle_request(request)
        raise httpx.ConnectError("no outside network in tests")


class Resolver:
    """Test DNS: fixed answers per name, answers that change (rebinding), else the system's."""

    def __init__(self, target_ip: str = "127.0.0.1") -> None:
        self.calls: dict[str, int] = {}
        self.names: dict[str, list[list[str]]] = {
            "evil.test": [[target_ip]],
            "metadata.test": [["169.254.169.254"]],
            "internal.test": [["10.1.2.3"]],
            "cgnat.test": [["100.64.0.1"]],
            "v6-loopback.test": [["::1"]],
            "v6-ula.test": [["fd12:3456::1"]],
            "mapped.test": [["::ffff:127.0.0.1"]],
            "mixed.test": [["93.184.216.34", "10.0.0.7"]],  # one private answer is enough
            # DNS rebinding: public when checked, loopback on any later lookup.
            "rebind.test": [["93.184.216.34"], [target_ip]],
        }

    def __call__(self, host: str, port: int) -> list[str]:
        n = self.calls[host] = self.calls.get(host, 0) + 1
        if host in self.names:
            answers = self.names[host]
            return answers[min(n, len(answers)) - 1]
        if host.endswith(".test"):
            raise OSError("unknown test name")
        return system_resolver(host, port)


def spellings(port: int) -> list[str]:
    """Every way to write an internal address; the reachable ones point at the target."""
    p = port
    loopback = [
        f"http://127.0.0.1:{p}/s.mp3",
        f"http://127.0.0.1.:{p}/s.mp3",
        f"http://localhost:{p}/s.mp3",
        f"http://LOCALHOST.:{p}/s.mp3",
        f"http://[::1]:{p}/s.mp3",
        f"http://[::1%25lo]:{p}/s.mp3",
        f"http://[0:0:0:0:0:0:0:1]:{p}/s.mp3",
        f"http://[::ffff:127.0.0.1]:{p}/s.mp3",
        f"http://[::ffff:7f00:1]:{p}/s.mp3",
        f"http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/s.mp3",
        f"http://[64:ff9b::127.0.0.1]:{p}/s.mp3",
        f"http://[2002:7f00:1::]:{p}/s.mp3",
        f"http://0.0.0.0:{p}/s.mp3",
        f"http://0:{p}/s.mp3",
        f"http://[::]:{p}/s.mp3",
        f"http://2130706433:{p}/s.mp3",
        f"http://0x7f000001:{p}/s.mp3",
        f"http://0x7f.0.0.1:{p}/s.mp3",
        f"http://0x7f.0x0.0x0.0x1:{p}/s.mp3",
        f"http://0177.0.0.1:{p}/s.mp3",
        f"http://0177.0.0.01:{p}/s.mp3",
        f"http://017700000001:{p}/s.mp3",
        f"http://127.1:{p}/s.mp3",
        f"http://127.0.1:{p}/s.mp3",
        f"http://127。0。0。1:{p}/s.mp3",
        f"HTTP://127.0.0.1:{p}/s.mp3",
        f"http://evil.test:{p}/s.mp3",
        f"http://mapped.test:{p}/s.mp3",
        f"http://v6-loopback.test:{p}/s.mp3",
    ]
    private = [
        "http://10.0.0.1/s.mp3",
        "http://10.255.255.255/s.mp3",
        "http://172.16.0.1/s.mp3",
        "http://172.31.255.254/s.mp3",
        "http://192.168.0.1/s.mp3",
        "http://192.168.255.255/s.mp3",
        "http://100.64.0.1/s.mp3",
        "http://100.127.255.254/s.mp3",
        "http://169.254.0.1/s.mp3",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fc00::1]/s.mp3",
        "http://[fdff:ffff::1]/s.mp3",
        "http://[fe80::1]/s.mp3",
        "http://[fe80::1%25eth0]/s.mp3",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://2852039166/latest/meta-data/",
        "http://012.0.0.1/s.mp3",
        "http://10.1/s.mp3",
        "http://metadata.test/latest/meta-data/",
        "http://internal.test/s.mp3",
        "http://cgnat.test/s.mp3",
        "http://v6-ula.test/s.mp3",
        "http://mixed.test/s.mp3",
    ]
    schemes = [
        "file:///etc/passwd",
        f"file://127.0.0.1:{p}/etc/passwd",
        f"ftp://127.0.0.1:{p}/s.mp3",
        f"gopher://127.0.0.1:{p}/_GET%20/s.mp3",
        f"dict://127.0.0.1:{p}/info",
        f"ws://127.0.0.1:{p}/s.mp3",
        "data:audio/mpeg;base64,SUQzBAAAAAAAAA==",
        "javascript:alert(document.cookie)",
        f"//127.0.0.1:{p}/s.mp3",
        f"http:/127.0.0.1:{p}/s.mp3",
        f"http:\\\\127.0.0.1:{p}\\s.mp3",
        f" http://127.0.0.1:{p}/s.mp3",
        f"127.0.0.1:{p}/s.mp3",
    ]
    userinfo = [
        f"http://example.com@127.0.0.1:{p}/s.mp3",
        f"http://93.184.216.34@127.0.0.1:{p}/s.mp3",
        f"http://user:pass@127.0.0.1:{p}/s.mp3",
        f"http://93.184.216.34\\@127.0.0.1:{p}/s.mp3",
        f"http://93.184.216.34:80@127.0.0.1:{p}/s.mp3",
        f"http://93.184.216.34#@127.0.0.1:{p}/s.mp3",  # public host; the rest is a fragment
        "http://rebind.test/s.mp3",  # public when checked: the pinned IP is the public one
    ]
    return loopback + private + schemes + userinfo


@pytest.fixture(scope="module")
def mp3(tmp_path_factory) -> bytes:
    return write(tmp_path_factory.mktemp("matrix") / "s.mp3", tone(440, 1.0)).read_bytes()


@pytest.fixture
def servers() -> Iterator[tuple[LocalServer, LocalServer]]:
    with LocalServer() as origin, LocalServer() as target:
        yield origin, target


def trickle(data: bytes, pause_s: float) -> Callable:
    """A route writing ``data`` one byte at a time (slow-loris), from the status line on."""

    def route(h) -> None:
        for byte in data:
            try:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
            except OSError:
                return
            time.sleep(pause_s)
        h.close_connection = True

    return route


def endless(chunk: bytes) -> Callable:
    """A chunked body that never ends (until the client hangs up)."""

    def route(h) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "audio/mpeg")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        try:
            while True:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except OSError:
            h.close_connection = True

    return route


def abuse_routes(origin: LocalServer, target_urls: list[str], mp3: bytes) -> dict[str, str]:
    """Routes on the trusted origin, by name → the URL to fetch."""
    big = (mp3 * 20)[:400_000]
    routes: dict[str, Callable] = {
        "/loop": redirect("/loop"),
        "/ping": redirect("/pong"),
        "/pong": redirect("/ping"),
        "/bad-location": redirect("http://[::1"),
        "/no-location": lambda h: reply(h, 302, b"", None),
        "/slow-headers": trickle(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 5000 + b"\r\n\r\n", 0.01),
        "/slow-body": trickle(
            b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nConnection: close\r\n\r\n" + mp3,
            0.01,
        ),
        "/endless": endless(mp3[:8192]),
        "/length-over": lambda h: reply(h, 200, big, "audio/mpeg", content_length=10**12),
        "/length-short": lambda h: reply(h, 200, mp3[:5000], "audio/mpeg", content_length=9000),
        "/length-under": lambda h: reply(h, 200, big, "audio/mpeg", content_length=50_000),
        "/no-length-big": lambda h: reply(h, 200, big, "audio/mpeg", content_length=None),
    }
    for hop in range(8):  # a chain longer than the redirect limit
        routes[f"/hop{hop}"] = redirect(f"/hop{hop + 1}")
    for i, (url, status) in enumerate(itertools.product(target_urls, (301, 302, 303, 307, 308))):
        routes[f"/to/{i}"] = redirect(url, status)
    for path, route in routes.items():
        origin.route(path, route)
    return {path: origin.url(path) for path in routes if path != "/pong" and path != "/hop1"}


def test_hostile_url_matrix(servers, mp3, tmp_path, record_property):
    origin, target = servers
    target.route("/s.mp3", lambda h: reply(h, 200, mp3, "audio/mpeg"))
    target.route("/latest/meta-data/", lambda h: reply(h, 200, mp3, "audio/mpeg"))
    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=100_000, fetch_timeout_s=0.2)
    direct = spellings(target.port)
    redirected = [u for u in direct if "rebind" not in u]
    urls = direct + list(abuse_routes(origin, redirected, mp3).values())
    transport = GuardedTransport(origin)
    resolver = Resolver()
    dest = tmp_path / "downloads"
    blocked, delivered, problems = 0, 0, []
    slowest = 0.0
    with httpx.Client(transport=transport) as client:
        for url in urls:

            def attempt(url: str = url) -> FetchedFile:
                return fetch_url(url, dest, settings, client, [origin.host_port], resolver)

            outcome = run_bounded(attempt, bound_s=20)
            slowest = max(slowest, outcome.seconds)
            if outcome.kind == "rejected" and isinstance(outcome.error, FetchError):
                blocked += 1
                if problem := message_problem(outcome.detail, settings.data_dir):
                    problems.append(f"{url}: {problem}")
            elif outcome.kind == "accepted" and url.endswith("/length-under"):
                delivered += 1  # the declared 50 KB arrive, within the limit
            else:
                problems.append(f"{url}: {outcome.kind} {outcome.detail}")
    breaches = len(target.requests) + len(transport.breaches)
    line = (
        f"url matrix: {len(urls)} tried, {blocked} blocked, {delivered} delivered within limits, "
        f"{breaches} reached a forbidden address, max {slowest:.2f} s"
    )
    record_property("url_matrix", report(line))
    assert target.requests == [] and transport.breaches == [], transport.breaches
    assert not problems, "\n".join(problems)
    assert resolver.calls["rebind.test"] == 1  # resolved once, then pinned
    leftovers = list(dest.iterdir()) if dest.exists() else []
    assert [p.suffix for p in leftovers] == [".mp3"] * delivered  # no .part files


def test_dns_rebinding_is_pinned_to_the_checked_address(servers, tmp_path):
    """A name that answers public, then loopback: the request goes to the public answer."""
    origin, target = servers
    transport = GuardedTransport(origin)
    resolver = Resolver()
    settings = Settings(data_dir=tmp_path, fetch_timeout_s=0.5)
    with httpx.Client(transport=transport) as client, pytest.raises(FetchError, match="broken"):
        fetch_url("http://rebind.test/s.mp3", tmp_path, settings, client, (), resolver)
    assert [a.split(":")[0] for a in transport.attempts] == ["93.184.216.34"]
    assert resolver.calls["rebind.test"] == 1
    assert target.requests == []


def test_slow_headers_hit_the_total_deadline(servers, tmp_path):
    """Bytes trickled into the status line and headers reset every read timeout; only the
    total deadline (10 × 0.1 s) ends it. Before the fix this ran for minutes."""
    origin, _ = servers
    origin.route("/loris", trickle(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 20_000, 0.01))
    settings = Settings(data_dir=tmp_path, fetch_timeout_s=0.1)
    outcome = run_bounded(
        lambda: fetch_url(origin.url("/loris"), tmp_path, settings, trusted=[origin.host_port])
    )
    assert outcome.kind == "rejected", outcome.detail
    assert outcome.detail == "The download took too long and was stopped."
    assert list(Path(tmp_path).iterdir()) == []
