"""Provider result downloads: pinned to the checked address, and refused when not plausible audio.

A result URL comes from the provider's answer, so it is as untrusted as a user's URL: the name
is resolved once per hop (the ``resolver`` seam stands in for DNS) and the connection goes to
that very address, and a downloaded file must be audio no longer than the input allows. The
result host is a real server on 127.0.0.1 that counts every request.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.config import Settings
from services.errors import MalformedResponse, ProviderError
from services.providers.aistemsplitter import AIStemSplitterProvider
from services.providers.base import RunContext, SeparationRequest
from services.providers.http import make_client
from services.providers.remote import RemoteStatus
from services.providers.retry import RetryPolicy
from tests.audiogen import tone, write
from tests.localserver import LocalServer, redirect, reply

SONG_S = 2.0
PUBLIC_IP = "93.184.216.34"  # a global address: passes the guard, and nothing here listens
QUICK = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02, deadline_s=10.0)


class Rebinding:
    """A resolver that answers from a script, then repeats its last answer; counts questions."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return [self.answers[min(len(self.asked), len(self.answers)) - 1]]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A short connect timeout: the public address never answers and must not stall a test."""
    with make_client(timeout=httpx.Timeout(5.0, connect=0.5)) as c:
        yield c


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as s:
        yield s


@pytest.fixture
def wav(tmp_path: Path) -> bytes:
    return write(tmp_path / "stem.wav", tone(440, SONG_S, amp=0.2), fmt="wav").read_bytes()


def provider(client: httpx.Client, base_url: str, resolver: Rebinding) -> AIStemSplitterProvider:
    adapter = AIStemSplitterProvider(
        Settings(), api_key="test-key", base_url=base_url, client=client, retry_policy=QUICK
    )
    adapter.resolver = resolver
    return adapter


def test_a_rebinding_name_never_reaches_a_local_server(client, server, wav, tmp_path) -> None:
    """Public at the check, 127.0.0.1 afterwards: the request must go to the checked address."""
    server.route("/stem.wav", lambda h: reply(h, 200, wav, "audio/wav"))
    resolver = Rebinding(PUBLIC_IP, "127.0.0.1")
    adapter = provider(client, "http://127.0.0.1:9", resolver)  # the API host is elsewhere
    url = f"http://localhost:{server.port}/stem.wav"  # the system resolver says 127.0.0.1
    with pytest.raises(ProviderError):
        adapter.download(url, tmp_path / "vocals", deadline=1e12, max_bytes=10 * len(wav))
    assert server.requests == []
    assert resolver.asked == ["localhost"]  # once per hop, retries included
    assert not list(tmp_path.glob("vocals*"))


def test_result_hosts_are_pinned_per_hop_with_the_real_host_name(
    client, server, wav, tmp_path
) -> None:
    """A name only the seam knows is fetched from the address it gave, hop by hop."""
    server.route("/stem.wav", lambda h: reply(h, 200, wav, "audio/wav"))
    server.route("/signed", redirect("/stem.wav"))
    resolver = Rebinding("127.0.0.1")
    base = f"http://stems.test:{server.port}"  # trusted: the configured API host:port
    path = provider(client, base, resolver).download(
        f"{base}/signed", tmp_path / "vocals", deadline=1e12, max_bytes=10 * len(wav)
    )
    assert path.read_bytes() == wav
    assert [p for p, _ in server.requests] == ["/signed", "/stem.wav"]
    assert {h["Host"] for _, h in server.requests} == {f"stems.test:{server.port}"}
    assert resolver.asked == ["stems.test", "stems.test"]


def test_a_redirect_to_a_rebinding_name_is_checked_and_pinned_too(
    client, server, wav, tmp_path
) -> None:
    server.route("/signed", redirect(f"http://localhost:{server.port}/stem.wav"))
    server.route("/stem.wav", lambda h: reply(h, 200, wav, "audio/wav"))
    resolver = Rebinding("127.0.0.1", PUBLIC_IP, "127.0.0.1")
    base = f"http://stems.test:{server.port}"
    with pytest.raises(ProviderError):
        provider(client, base, resolver).download(
            f"{base}/signed", tmp_path / "vocals", deadline=1e12, max_bytes=10 * len(wav)
        )
    assert [p for p, _ in server.requests] == ["/signed"]


# --- result files must be plausible audio ----------------------------------------------------


def wav_header(rate: int, data_bytes: int) -> bytes:
    """A 16-bit stereo PCM WAV declaring ``rate`` Hz, followed by ``data_bytes`` of silence."""
    fmt = struct.pack("<HHIIHH", 1, 2, rate, rate * 4, 4, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", data_bytes) + bytes(data_bytes)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def download_all(adapter: AIStemSplitterProvider, url: str, tmp_path: Path) -> dict:
    song = write(tmp_path / "song.wav", tone(220, SONG_S, amp=0.2), fmt="wav")
    digest = hashlib.sha256(song.read_bytes()).hexdigest()
    request = SeparationRequest(song, digest, SONG_S, "2stem")
    ctx = RunContext(tmp_path / "work", lambda _event: None)
    status = RemoteStatus("succeeded", {"vocals": url})
    return adapter.download_all("job-1", status, ctx, 1e12, request)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (wav_header(1, 8000), "2000 frames at 1 Hz: over half an hour of audio"),
        (wav_header(1_000_000_000, 8000), "a 1 GHz rate no resampler should face"),
        (wav_header(44100, 44100 * 4 * 60), "a minute of audio for a two-second song"),
        (b"<!doctype html><html><body>Access denied</body></html>", "a web page"),
        (b"\x00" * 4096, "no known container"),
    ],
    ids=["1-hz", "1-ghz", "too-long", "html", "zeros"],
)
def test_implausible_result_files_are_refused(
    client, server, tmp_path, body: bytes, why: str
) -> None:
    server.route("/stem.wav", lambda h: reply(h, 200, body, "audio/wav"))
    adapter = provider(client, server.url(""), Rebinding())
    with pytest.raises(MalformedResponse) as caught:
        download_all(adapter, server.url("/stem.wav"), tmp_path)
    assert "AIStemSplitter sent a result file" in caught.value.user_message, why


def test_a_plausible_result_file_is_kept(client, server, wav, tmp_path) -> None:
    server.route("/stem.wav", lambda h: reply(h, 200, wav, "audio/wav"))
    adapter = provider(client, server.url(""), Rebinding())
    files = download_all(adapter, server.url("/stem.wav"), tmp_path)
    assert files["vocals"][1].read_bytes() == wav
