"""URL fetching against real HTTP servers on 127.0.0.1, and the address guard.

No test ever opens a connection to a non-loopback address: forbidden targets must be refused by
the guard first, which the recording transport and the untouched second server prove.
"""

from __future__ import annotations

import gzip
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from services.audio.fetch import FetchedFile, fetch_url, guard_url
from services.config import Settings
from services.errors import FetchError, InputRejected
from tests.audiogen import tone, write
from tests.localserver import LocalServer, redirect, reply


class RecordingTransport(httpx.HTTPTransport):
    """The real transport, noting every URL it is asked to connect to."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.urls: list[httpx.URL] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(request.url)
        return super().handle_request(request)


@pytest.fixture(scope="module")
def mp3_bytes(tmp_path_factory) -> bytes:
    path = write(tmp_path_factory.mktemp("fetch") / "song.mp3", tone(440, 1.0))
    return path.read_bytes()


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_upload_bytes=100_000, fetch_timeout_s=2.0)


def fetch(server: LocalServer, path: str, settings: Settings, dest: Path, **kw) -> FetchedFile:
    return fetch_url(server.url(path), dest, settings, trusted=[server.host_port], **kw)


# --- success ------------------------------------------------------------------------------


def test_fetch_from_trusted_local_server(server, settings, tmp_path, mp3_bytes):
    server.route("/song.mp3", lambda h: reply(h, 200, mp3_bytes, "audio/mpeg"))
    got = fetch(server, "/song.mp3", settings, tmp_path / "dl")
    assert got.path.read_bytes() == mp3_bytes
    assert got.path.suffix == ".mp3" and got.path.parent == tmp_path / "dl"
    assert got.size_bytes == len(mp3_bytes)
    assert got.content_type == "audio/mpeg"
    assert got.final_url == server.url("/song.mp3")
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [got.path.name]  # no leftovers


def test_octet_stream_with_audio_magic_is_accepted(server, settings, tmp_path, mp3_bytes):
    server.route("/f", lambda h: reply(h, 200, mp3_bytes, "application/octet-stream"))
    assert fetch(server, "/f", settings, tmp_path).path.suffix == ".mp3"


def test_redirects_within_trusted_server_are_followed(server, settings, tmp_path, mp3_bytes):
    server.route("/a", redirect("/b", 301))
    server.route("/b", redirect(server.url("/c"), 307))
    server.route("/c", lambda h: reply(h, 200, mp3_bytes, "audio/mpeg"))
    got = fetch(server, "/a", settings, tmp_path)
    assert got.final_url == server.url("/c")
    assert [p for p, _ in server.requests] == ["/a", "/b", "/c"]


def test_connects_to_the_checked_address_with_the_real_host_header(
    server, settings, tmp_path, mp3_bytes
):
    """DNS pinning: the URL given to the transport holds the IP that was checked."""
    server.route("/s", lambda h: reply(h, 200, mp3_bytes, "audio/mpeg"))
    transport = RecordingTransport()
    with httpx.Client(transport=transport) as client:
        got = fetch_url(
            f"http://localhost:{server.port}/s",
            tmp_path,
            settings,
            client=client,
            trusted=[f"localhost:{server.port}"],
        )
    assert got.final_url == f"http://localhost:{server.port}/s"
    assert {url.host for url in transport.urls} <= {"127.0.0.1", "::1"}
    assert transport.urls[-1].host == "127.0.0.1"  # the address the server listens on
    assert server.requests[-1][1]["Host"] == f"localhost:{server.port}"


@pytest.fixture(scope="module")
def localhost_cert(tmp_path_factory) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for ``localhost`` (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_pinned_to_the_ip_still_verifies_the_host_name(
    localhost_cert, settings, tmp_path, mp3_bytes
):
    """The request goes to 127.0.0.1, yet TLS sends SNI ``localhost`` and checks the
    certificate against it; asking for the bare IP fails verification (the cert has no IP)."""
    cert, key = localhost_cert
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with LocalServer(tls=server_ctx) as server:
        server.route("/s", lambda h: reply(h, 200, mp3_bytes, "audio/mpeg"))
        transport = RecordingTransport(verify=client_ctx)
        with httpx.Client(transport=transport) as client:
            got = fetch_url(
                f"https://localhost:{server.port}/s",
                tmp_path,
                settings,
                client=client,
                trusted=[f"localhost:{server.port}"],
            )
            assert got.path.read_bytes() == mp3_bytes
            assert transport.urls[-1].host == "127.0.0.1"
            with pytest.raises(FetchError, match="refused or broken"):
                fetch_url(server.url("/s"), tmp_path, settings, client, [server.host_port])


# --- the guard ----------------------------------------------------------------------------

FORBIDDEN = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://LOCALHOST./x",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/",  # shared address space (a cloud metadata endpoint)
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://239.255.255.250/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://2130706433/",  # decimal 127.0.0.1
    "http://0x7f000001/",  # hex
    "http://0177.1/",  # octal 127.0.0.1 (two parts)
    "http://127.1/",
    "http://0x7f.1/",
    "http://0x7f.0.0.1/",
    "http://012.1/",  # octal 10.0.0.1
    "http://[::1]/",
    "http://[::]/",
    "http://[fd00:ec2::254]/",
    "http://[fe80::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped 169.254.169.254
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of the metadata address
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "https://127.0.0.1:8443/",
]


@pytest.mark.parametrize("url", FORBIDDEN)
def test_guard_refuses_private_and_special_addresses(url):
    with pytest.raises(FetchError, match="local, private or reserved"):
        guard_url(url)


@pytest.mark.parametrize("url", ["http://0177.0.0.1/", "http://012.0.0.1/", "http://127.000.0.1/"])
def test_dotted_octal_spellings_are_refused(url):
    with pytest.raises(FetchError):  # as an invalid URL (httpx) or as a private address
        guard_url(url)


@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/a.mp3", "https://1.1.1.1/x", "http://[2606:4700:4700::1111]/"]
)
def test_guard_allows_public_addresses(url):
    guard_url(url)  # literal IPs: no DNS, no connection


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/a.mp3", "gopher://x/", "data:audio/mp3;base64,AA"],
)
def test_guard_refuses_other_schemes(url):
    with pytest.raises(FetchError, match="Only http:// and https://"):
        guard_url(url)


def test_guard_refuses_credentials_and_garbage():
    with pytest.raises(FetchError, match="user name or password"):
        guard_url("http://user:pw@93.184.216.34/")
    with pytest.raises(FetchError):
        guard_url("http://exa mple.com/")
    with pytest.raises(FetchError):
        guard_url("not a url")


def test_trusted_host_port_is_exempt_only_for_that_port():
    guard_url("http://127.0.0.1:8765/x", trusted=["127.0.0.1:8765"])
    guard_url("http://LocalHost:8765/x", trusted=["localhost:8765"])
    guard_url("http://[::1]:8765/x", trusted=["[::1]:8765"])
    with pytest.raises(FetchError):
        guard_url("http://127.0.0.1:8766/x", trusted=["127.0.0.1:8765"])
    with pytest.raises(FetchError):  # another spelling of the same address is not trusted
        guard_url("http://2130706433:8765/x", trusted=["127.0.0.1:8765"])


def test_untrusted_local_server_is_refused_and_never_contacted(server, settings, tmp_path):
    server.route("/s", lambda h: reply(h, 200, b"x", "audio/mpeg"))
    with pytest.raises(FetchError, match="local, private or reserved"):
        fetch_url(server.url("/s"), tmp_path, settings)
    assert server.requests == []


@pytest.mark.parametrize(
    "target",
    [
        "http://10.0.0.1/song.mp3",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:10.0.0.1]/",
        "http://0xa000001/",
        "file:///etc/passwd",
    ],
)
def test_redirect_to_forbidden_target_is_refused_before_connecting(
    server, settings, tmp_path, target
):
    server.route("/r", redirect(target))
    transport = RecordingTransport()
    with httpx.Client(transport=transport) as client, pytest.raises(FetchError):
        fetch(server, "/r", settings, tmp_path, client=client)
    assert [url.host for url in transport.urls] == ["127.0.0.1"]  # only the trusted server
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_another_untrusted_local_server_never_reaches_it(server, settings, tmp_path):
    with LocalServer() as other:
        other.route("/secret", lambda h: reply(h, 200, b"secret", "audio/mpeg"))
        server.route("/r", redirect(other.url("/secret")))
        with pytest.raises(FetchError, match="local, private or reserved"):
            fetch(server, "/r", settings, tmp_path)
        assert other.requests == []


def test_redirect_loop_stops(server, settings, tmp_path):
    server.route("/loop", redirect("/loop"))
    with pytest.raises(FetchError, match="redirects too many times"):
        fetch(server, "/loop", settings, tmp_path)
    assert len(server.requests) == 6  # the first request and five redirects


# --- content checks -----------------------------------------------------------------------


def test_html_page_is_refused_with_a_clear_message(server, settings, tmp_path):
    page = b"<!DOCTYPE html><html><body>song page</body></html>"
    server.route("/page", lambda h: reply(h, 200, page, "text/html; charset=utf-8"))
    with pytest.raises(FetchError, match="web page, not an audio file"):
        fetch(server, "/page", settings, tmp_path)


def test_html_served_as_octet_stream_is_recognised_by_content(server, settings, tmp_path):
    page = b"\n  <html><head><title>x</title></head></html>"
    server.route("/page", lambda h: reply(h, 200, page, "application/octet-stream"))
    with pytest.raises(FetchError, match="web page, not an audio file"):
        fetch(server, "/page", settings, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_audio_type_with_non_audio_body_is_refused(server, settings, tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000
    server.route("/fake.mp3", lambda h: reply(h, 200, png, "audio/mpeg"))
    with pytest.raises(FetchError, match="looks like a PNG image"):
        fetch(server, "/fake.mp3", settings, tmp_path)


@pytest.mark.parametrize(
    ("ctype", "what"), [("application/json", "another kind"), ("image/png", "an image")]
)
def test_non_audio_content_type_is_refused(server, settings, tmp_path, ctype, what):
    server.route("/x", lambda h: reply(h, 200, b"{}", ctype))
    with pytest.raises(FetchError, match=what):
        fetch(server, "/x", settings, tmp_path)


def test_http_errors_and_empty_bodies(server, settings, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(server, "/missing", settings, tmp_path)
    server.route("/500", lambda h: reply(h, 500, b"oops", "text/plain"))
    with pytest.raises(FetchError, match="HTTP 500 Internal Server Error"):
        fetch(server, "/500", settings, tmp_path)
    server.route("/empty", lambda h: reply(h, 200, b"", "audio/mpeg"))
    with pytest.raises(FetchError, match="empty file"):
        fetch(server, "/empty", settings, tmp_path)


def test_fetch_error_is_an_input_rejection():
    assert issubclass(FetchError, InputRejected)


# --- size limits --------------------------------------------------------------------------


def _big_mp3(mp3_bytes: bytes, size: int) -> bytes:
    return (mp3_bytes * (size // len(mp3_bytes) + 1))[:size]


def test_declared_oversize_is_refused_before_download(server, settings, tmp_path, mp3_bytes):
    body = _big_mp3(mp3_bytes, 300_000)
    server.route("/big", lambda h: reply(h, 200, body, "audio/mpeg"))
    with pytest.raises(FetchError, match="larger than the 98 KB limit"):
        fetch(server, "/big", settings, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_oversize_without_content_length_is_cut_off(server, settings, tmp_path, mp3_bytes):
    body = _big_mp3(mp3_bytes, 300_000)
    server.route("/big", lambda h: reply(h, 200, body, "audio/mpeg", content_length=None))
    with pytest.raises(FetchError, match="larger than"):
        fetch(server, "/big", settings, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_lying_small_content_length_never_yields_more_than_the_limit(
    server, settings, tmp_path, mp3_bytes
):
    body = _big_mp3(mp3_bytes, 300_000)
    server.route("/lie", lambda h: reply(h, 200, body, "audio/mpeg", content_length=20_000))
    try:
        got = fetch(server, "/lie", settings, tmp_path)
    except FetchError:
        assert list(tmp_path.iterdir()) == []
    else:
        assert got.size_bytes == got.path.stat().st_size <= settings.max_upload_bytes


def test_gzip_bomb_is_counted_after_decompression(server, settings, tmp_path, mp3_bytes):
    packed = gzip.compress(_big_mp3(mp3_bytes, 1_000_000))
    assert len(packed) < settings.max_upload_bytes
    headers = {"Content-Encoding": "gzip"}
    server.route("/gz", lambda h: reply(h, 200, packed, "audio/mpeg", headers))
    with pytest.raises(FetchError, match="larger than"):
        fetch(server, "/gz", settings, tmp_path)


def test_truncated_body_is_an_error(server, settings, tmp_path, mp3_bytes):
    server.route(
        "/cut", lambda h: reply(h, 200, mp3_bytes[:5000], "audio/mpeg", content_length=9000)
    )
    with pytest.raises(FetchError, match="refused or broken"):
        fetch(server, "/cut", settings, tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- timeouts and connection failures -----------------------------------------------------


def test_slow_server_times_out(server, tmp_path, mp3_bytes):
    settings = Settings(data_dir=tmp_path, fetch_timeout_s=0.3)

    def slow(h):
        time.sleep(1.5)
        reply(h, 200, mp3_bytes, "audio/mpeg")

    server.route("/slow", slow)
    with pytest.raises(FetchError, match=r"did not respond within 0\.3 seconds"):
        fetch(server, "/slow", settings, tmp_path / "dl")


def test_drip_fed_download_hits_the_total_deadline(server, tmp_path, mp3_bytes):
    settings = Settings(data_dir=tmp_path, fetch_timeout_s=0.2)

    def drip(h):
        h.send_response(200)
        h.send_header("Content-Type", "audio/mpeg")
        h.send_header("Connection", "close")
        h.end_headers()
        for byte in mp3_bytes[:200]:
            try:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
            except OSError:
                return
            time.sleep(0.05)

    server.route("/drip", drip)
    with pytest.raises(FetchError, match="took too long"):
        fetch(server, "/drip", settings, tmp_path / "dl")


def test_closed_port_gives_a_clean_error(settings, tmp_path):
    with LocalServer() as gone:
        url, host_port = gone.url("/x"), gone.host_port
    with pytest.raises(FetchError, match="refused or broken"):
        fetch_url(url, tmp_path, settings, trusted=[host_port])


def test_unknown_host_is_a_clean_error():
    with pytest.raises(FetchError, match=r"The host nothing-here\.invalid could not be found"):
        guard_url("http://nothing-here.invalid/song.mp3")
