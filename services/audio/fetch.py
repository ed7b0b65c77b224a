"""Download a user-given audio URL safely.

The address guard refuses any URL whose host resolves to a loopback, private, link-local,
multicast, reserved, unspecified or cloud-metadata address, in every spelling (decimal, hex and
octal IPv4, IPv4-mapped / 6to4 / NAT64 / Teredo IPv6). Redirects are followed here, not by httpx,
so every hop passes the guard before any packet is sent to it.

DNS rebinding: the host is resolved once per hop and the request goes to the very address that
was checked. The URL's host is replaced by that IP while the ``Host`` header and the TLS server
name (httpx's ``sni_hostname`` extension, also used for certificate verification) keep the real
name, so a resolver that answers differently a second time never gets asked. This works with any
``httpx.Client`` a caller passes, because it only shapes the request. Requests say
``Connection: close`` so no pooled connection, verified for one host name, is reused for another
name that resolves to the same IP. :func:`check_url` and :func:`open_pinned` expose the same
two steps to provider result downloads (``services/providers/remote.py``).

Limits: the size limit counts the bytes actually received (after any content decoding), so a
missing or lying ``Content-Length`` cannot bypass it; each read waits at most
``fetch_timeout_s`` and the whole fetch (every hop, headers included) at most
``TOTAL_TIMEOUT_FACTOR`` times that: a server trickling bytes has its connection shut down.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.audio.decode import HEAD_BYTES, describe_non_audio, human_bytes, sniff
from services.config import Settings
from services.errors import FetchError

MAX_REDIRECTS = 5
TOTAL_TIMEOUT_FACTOR = 10
_REDIRECTS = (301, 302, 303, 307, 308)
_PAGE_TYPES = ("text/html", "application/xhtml+xml")
_MEDIA_TYPES = ("application/ogg", "video/webm", "video/mp4", "video/ogg", "video/x-matroska")
_BINARY_TYPES = (
    "",
    "application/octet-stream",
    "binary/octet-stream",
    "application/download",
    "application/force-download",
    "application/x-download",
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HEADERS = {
    "Accept": "audio/*, application/octet-stream;q=0.9, */*;q=0.1",
    "Accept-Encoding": "identity",
    "User-Agent": "StemDeck (audio fetch)",
}
WEB_PAGE = (
    "This URL is a web page, not an audio file. Use a direct link to the audio file "
    "(for example one ending in .mp3 or .wav)."
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port → the addresses it stands for (tests pass their own to make names resolve anywhere)
Resolver = Callable[[str, int], Iterable[str]]
TOO_SLOW = "The download took too long and was stopped."


@dataclass(frozen=True, slots=True)
class FetchedFile:
    """A downloaded file whose first bytes are a supported audio container."""

    path: Path
    content_type: str
    final_url: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the guard, with the addresses it was checked at: connect only to these."""

    url: httpx.URL
    addresses: tuple[IPAddress, ...]


def guard_url(url: str, trusted: Iterable[str] = (), resolver: Resolver | None = None) -> None:
    """Raise FetchError if ``url`` is not http(s) or its host is a forbidden address."""
    check_url(url, trusted, resolver)


def check_url(url: str, trusted: Iterable[str] = (), resolver: Resolver | None = None) -> Target:
    """Guard ``url`` (FetchError if refused) and keep the addresses checked, for
    :func:`open_pinned`. ``trusted`` ``host:port`` entries may resolve anywhere."""
    return _check(url, _normalise_trusted(trusted), resolver or system_resolver)


def open_pinned(
    client: httpx.Client,
    target: Target,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, object] | None = None,
    timeout: httpx.Timeout | None = None,
) -> httpx.Response:
    """A streamed GET of ``target`` sent to its checked addresses only, in order (a refused
    connection tries the next); the caller closes the response. Redirects are not followed.

    The URL's host becomes the IP while ``Host`` and the TLS server name keep the real name, so
    no second DNS answer is ever used. ``Connection: close``: a pooled connection verified for
    one name must not carry another name's request to the same IP.
    """
    sent = {**(headers or {}), "Host": target.url.netloc.decode("ascii"), "Connection": "close"}
    ext = dict(extensions or {})
    if target.url.scheme == "https":
        ext["sni_hostname"] = _ascii_host(target.url)
    last: httpx.ConnectError | None = None
    for ip in target.addresses:
        request = client.build_request(
            "GET",
            target.url.copy_with(host=str(ip)),
            headers=sent,
            extensions=ext,
            timeout=timeout or httpx.USE_CLIENT_DEFAULT,
        )
        try:
            return client.send(request, stream=True, follow_redirects=False)
        except httpx.ConnectError as exc:
            last = exc
    assert last is not None
    raise last


def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's answer for ``host`` (every address family)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_forbidden(ip: IPAddress) -> bool:
    """True for anything that is not a public unicast address, including IPv4 inside IPv6."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(inner is not None and is_forbidden(inner) for inner in embedded):
            return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def fetch_url(
    url: str,
    dest_dir: Path,
    settings: Settings,
    client: httpx.Client | None = None,
    trusted: Iterable[str] = (),
    resolver: Resolver | None = None,
) -> FetchedFile:
    """Download ``url`` into ``dest_dir`` within the settings' limits; FetchError on any failure."""
    allowed = _normalise_trusted(trusted)
    own = client is None
    if client is None:
        client = httpx.Client(trust_env=False, follow_redirects=False)
    timeout = settings.fetch_timeout_s
    deadline = _Deadline(timeout * TOTAL_TIMEOUT_FACTOR)
    try:
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            target = _check(current, allowed, resolver or system_resolver)
            with _send(client, target, timeout, deadline) as response:
                if response.status_code in _REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError("The server sent a redirect without a destination.")
                    try:
                        current = str(target.url.join(location))
                    except httpx.InvalidURL:
                        raise FetchError("The server sent an invalid redirect.") from None
                    continue
                if response.status_code != 200:
                    raise FetchError(_status_message(response.status_code))
                return _download(response, target.url, Path(dest_dir), settings, deadline)
        raise FetchError(f"The URL redirects too many times (more than {MAX_REDIRECTS}).")
    except httpx.TimeoutException:
        raise FetchError(f"The server did not respond within {timeout:g} seconds.") from None
    except (httpx.HTTPError, httpx.InvalidURL):
        if deadline.passed:  # the deadline shut the connection down
            raise FetchError(TOO_SLOW) from None
        raise FetchError("The download failed: the connection was refused or broken.") from None
    finally:
        deadline.cancel()
        if own:
            client.close()


class _Deadline:
    """The whole fetch's time limit, kept even while a server trickles bytes (read timeouts
    never fire then): when it passes, every connection opened so far is shut down, which wakes
    the blocked read. Connections are learnt from httpcore's ``trace`` request extension."""

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def passed(self) -> bool:
        return self._expired or time.monotonic() >= self._at

    def trace(self, event: str, info: dict) -> None:
        if event != "connection.connect_tcp.complete":
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self._expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            for sock in self._sockets:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    """Wake any read blocked on ``sock`` (a closed socket raises, which is fine)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _normalise_trusted(trusted: Iterable[str]) -> frozenset[str]:
    """``host:port`` strings (``[v6]:port`` too) in the form :func:`_key` produces."""
    keys = set()
    for entry in trusted:
        host, _, port = entry.strip().rpartition(":")
        keys.add(f"{host.strip('[]').lower().rstrip('.')}:{port}")
    return frozenset(keys)


def _key(url: httpx.URL) -> str:
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{url.host.lower().rstrip('.')}:{port}"


def _ascii_host(url: httpx.URL) -> str:
    """The host as DNS and TLS see it (IDNA-encoded by httpx, e.g. ``xn--msic-0ra.com``)."""
    return url.raw_host.decode("ascii")


def _check(url: str | httpx.URL, trusted: frozenset[str], resolver: Resolver) -> Target:
    """Parse, check the scheme, resolve, and refuse forbidden addresses (unless trusted)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise FetchError("This is not a valid URL.") from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError("Only http:// and https:// URLs can be fetched.")
    if not parsed.host:
        raise FetchError("This URL has no host name.")
    if parsed.userinfo:
        raise FetchError("URLs with a user name or password are not supported.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(_ascii_host(parsed), port, parsed.host, resolver)
    if _key(parsed) not in trusted and any(is_forbidden(ip) for ip in addresses):
        raise FetchError(
            f"Refused: {parsed.host} points to a local, private or reserved network address."
        )
    return Target(parsed, addresses)


def _resolve(host: str, port: int, shown: str, resolver: Resolver) -> tuple[IPAddress, ...]:
    """Every address ``host`` stands for; numeric spellings never reach DNS.

    ``shown`` is the host as the user wrote it, for the error message.
    """
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        # 2130706433, 0x7f000001, 0177.0.0.1, 127.1: what the C library would make of it.
        with contextlib.suppress(OSError):
            return (ipaddress.IPv4Address(socket.inet_aton(host)),)
    try:
        answers = list(resolver(host.rstrip("."), port))
    except (OSError, UnicodeError):
        raise FetchError(f"The host {shown} could not be found.") from None
    found = dict.fromkeys(ipaddress.ip_address(str(ip).split("%")[0]) for ip in answers)
    if not found:
        raise FetchError(f"The host {shown} could not be found.")
    return tuple(found)


@contextlib.contextmanager
def _send(
    client: httpx.Client, target: Target, timeout: float, deadline: _Deadline
) -> Iterator[httpx.Response]:
    """GET ``target`` from the checked addresses only, under the whole fetch's deadline."""
    response = open_pinned(
        client, target, _HEADERS, {"trace": deadline.trace}, httpx.Timeout(timeout)
    )
    try:
        yield response
    finally:
        response.close()


def _download(
    response: httpx.Response,
    url: httpx.URL,
    dest_dir: Path,
    settings: Settings,
    deadline: _Deadline,
) -> FetchedFile:
    """Stream the body to disk, enforcing type, size and the total deadline."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    _check_content_type(content_type)
    limit = settings.max_upload_bytes
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise FetchError(_too_large(limit))
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = f"download-{uuid.uuid4().hex}"
    part = dest_dir / f"{name}.part"
    size, head, container = 0, b"", None
    try:
        with part.open("wb") as out:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchError(_too_large(limit))
                if deadline.passed:
                    raise FetchError(TOO_SLOW)
                if container is None:
                    head += chunk[: HEAD_BYTES - len(head)]
                    if len(head) >= HEAD_BYTES:
                        container = _sniff_or_refuse(head)
                out.write(chunk)
        if deadline.passed:  # a body cut short by the deadline can look complete
            raise FetchError(TOO_SLOW)
        if size == 0:
            raise FetchError("The URL returned an empty file.")
        container = container or _sniff_or_refuse(head)
        path = part.rename(dest_dir / f"{name}.{container}")
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return FetchedFile(path, content_type, str(url), size)


def _check_content_type(content_type: str) -> None:
    if content_type in _PAGE_TYPES:
        raise FetchError(WEB_PAGE)
    if content_type.startswith("audio/") or content_type in _MEDIA_TYPES + _BINARY_TYPES:
        return
    kinds = {"image": "an image", "text": "text", "video": "a video"}
    what = kinds.get(content_type.partition("/")[0], "another kind of file")
    raise FetchError(f"This URL did not return audio (the server says it is {what}).")


def _sniff_or_refuse(head: bytes) -> str:
    container = sniff(head)
    if container:
        return container
    what = describe_non_audio(head)
    if what == "a web page (HTML)":
        raise FetchError(WEB_PAGE)
    if what:
        raise FetchError(f"This URL did not return audio (it looks like {what}).")
    raise FetchError("This URL did not return a supported audio file.")


def _too_large(limit: int) -> str:
    return f"The file at this URL is larger than the {human_bytes(limit)} limit."


def _status_message(code: int) -> str:
    status = f"HTTP {code} {httpx.codes.get_reason_phrase(code)}".strip()
    if code == 404:
        return f"Nothing was found at this URL ({status})."
    if code in (401, 403):
        return f"The server refused access to this URL ({status})."
    return f"The server answered {status} instead of the file."
