"""Public URLs for providers that only take a URL (Soundverse, MusicAPI.ai's import).

When the user gave a URL it is passed on as given. When the user uploaded a file, the stored
input (``<inputs_dir>/<sha256>.<ext>``) is served by a small threaded HTTP server inside the
app process at ``/files/<token>/<sha256>.<ext>``:
- ``token`` is an HMAC of the file name (content hash + extension) under a per-install
  secret (a file in the data dir, owner-only), so a URL cannot be guessed from the hash and
  the server keeps no state;
- only that exact shape is served (GET/HEAD, single byte ranges); anything else — a wrong
  token, another name, ``..``, a folder — is a bare 404, so there is no listing or traversal;
- the server starts lazily, bound to ``STEMDECK_FILE_SERVER_HOST:PORT`` (default
  127.0.0.1:8765), and what the provider is sent is ``STEMDECK_PUBLIC_BASE_URL`` (e.g. a
  tunnel forwarding to that port). Without a public base URL, a file upload to a URL-only
  provider fails at once with :class:`NeedsPublicUrl`, never silently at the provider.
If the port is taken by another StemDeck process of the same install (the app while the CLI
runs), that server is reused: it serves the same files under the same secret.

The same server takes provider callbacks at ``/hooks/<name>/<token>`` (``POST`` only) for
adapters that register a handler (kie.ai); the token keeps random traffic off the handler.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.config import Settings
from services.errors import InputRejected, ProviderError
from services.providers.base import Capabilities, SeparationRequest
from services.providers.remote import content_type

log = logging.getLogger(__name__)

ENV_BASE_URL = "STEMDECK_PUBLIC_BASE_URL"
ENV_HOST = "STEMDECK_FILE_SERVER_HOST"
ENV_PORT = "STEMDECK_FILE_SERVER_PORT"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
SECRET_FILE = "public-files.key"
IDENTITY_PATH = "/.well-known/stemdeck-files"
TOKEN_CHARS = 32
MAX_HOOK_BODY = 1024 * 1024
_NAME = r"(?P<hash>[0-9a-f]{64})\.[a-z0-9]{1,5}"
_FILE = re.compile(rf"/files/(?P<token>[0-9a-f]{{32}})/(?P<name>{_NAME})")
_HOOK = re.compile(r"/hooks/(?P<name>[a-z0-9_-]{1,40})/(?P<token>[0-9a-f]{32})")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

HookHandler = Callable[[Mapping[str, str], bytes], int]
"""Gets a callback's headers (lower-case names) and raw body; returns the HTTP status."""


class NeedsPublicUrl(ProviderError, InputRejected):
    """A URL-only provider got an uploaded file and this app has no public address."""


@dataclass(frozen=True, slots=True)
class FileServerConfig:
    """Where the server listens, what address providers are given, and what it serves."""

    inputs_dir: Path
    secret_path: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    public_base_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> FileServerConfig:
        base = settings.public_base_url
        return cls(
            settings.inputs_dir,
            settings.data_dir / SECRET_FILE,
            settings.file_server_host,
            settings.file_server_port,
            _check_base(base) if base else None,
        )


def url_only(capabilities: Capabilities, public: PublicFiles) -> Capabilities:
    """A URL-only provider's capabilities as this install can honour them."""
    if public.configured:
        return capabilities
    return replace(
        capabilities,
        input_kinds=("url",),
        description=f"{capabilities.description} Uploaded files need {ENV_BASE_URL} "
        "(a public address of this app's file server).",
    )


def _check_base(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{ENV_BASE_URL} must be an http(s) URL, got {url!r}")
    return url.strip().rstrip("/")


def load_secret(path: Path) -> bytes:
    """The per-install signing secret, created on first use with owner-only permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} does not hold a usable secret; delete it to make a new one")
    return secret.encode()


class PublicFiles:
    """The file server of one install: signs URLs, serves them, routes callbacks."""

    def __init__(self, config: FileServerConfig) -> None:
        self.config = config
        self._secret_value: bytes | None = None
        self._hooks: dict[str, HookHandler] = {}
        self._server: ThreadingHTTPServer | None = None
        self._shared = False  # another process of this install serves our port
        self._lock = threading.Lock()

    @classmethod
    def local(cls, inputs_dir: Path, secret_path: Path, host: str = DEFAULT_HOST) -> PublicFiles:
        """A server on a free port whose own address is its public base URL (sandbox, tests):
        enough when the provider runs on this machine."""
        files = cls(FileServerConfig(inputs_dir, secret_path, host, 0))
        files.start()
        files.config = replace(files.config, public_base_url=files.local_url)
        return files

    # --- signing --------------------------------------------------------------------------

    def _mac(self, message: str) -> str:
        if self._secret_value is None:  # read (or made) on first use, not when providers load
            self._secret_value = load_secret(self.config.secret_path)
        mac = hmac.new(self._secret_value, message.encode(), hashlib.sha256)
        return mac.hexdigest()[:TOKEN_CHARS]

    def token(self, name: str) -> str:
        """The token of one stored file, ``<sha256>.<ext>``: it covers the whole name, so the
        JSON sidecar beside an input (same hash) is not reachable with the audio's token."""
        return self._mac("file:" + name)

    def hook_token(self, name: str) -> str:
        return self._mac("hook:" + name)

    # --- what providers are sent ----------------------------------------------------------

    @property
    def configured(self) -> bool:
        return self.config.public_base_url is not None

    def require(self, request: SeparationRequest, display: str) -> None:
        """Fail fast (before any call) when ``request`` cannot be given to a URL-only provider."""
        if problem := self.problem(request, display):
            raise NeedsPublicUrl(problem)

    def problem(self, request: SeparationRequest, display: str) -> str:
        """Why ``request`` cannot reach a URL-only provider, or "" when it can."""
        if request.source_url or self.configured:
            return ""
        return (
            f"{display} only accepts a public URL. Paste a URL instead of uploading, or set "
            f"{ENV_BASE_URL} to a public address (for example a tunnel) that forwards to "
            f"this app's file server on {self.config.host}:{self.config.port}."
        )

    def public_url(self, request: SeparationRequest, display: str) -> str:
        """The URL a URL-only provider fetches: the user's own, or this server's."""
        self.require(request, display)
        if request.source_url:
            return request.source_url
        return self.url_for(request.input_path, request.input_hash)

    def url_for(self, path: Path, content_hash: str) -> str:
        """The public URL of a stored input; starts the server if needed."""
        name = path.name
        stored = self.config.inputs_dir / name
        match = re.fullmatch(_NAME, name)
        if match is None or match["hash"] != content_hash:
            raise ProviderError("Only validated inputs can be shared with a provider by URL.")
        if path.resolve() != stored.resolve() or not stored.is_file():
            raise ProviderError("The input file is not in StemDeck's input store; add it again.")
        self.start()
        return f"{self.config.public_base_url}/files/{self.token(name)}/{name}"

    def hook_url(self, name: str, handler: HookHandler) -> str | None:
        """A public callback URL routed to ``handler``, or None when none can be offered."""
        if not self.configured:
            return None
        try:
            self.start()
        except ProviderError:
            return None
        if self._shared:
            return None  # the server belongs to another process: its hooks are not ours
        self._hooks[name] = handler
        return f"{self.config.public_base_url}/hooks/{name}/{self.hook_token(name)}"

    # --- the server -----------------------------------------------------------------------

    @property
    def local_url(self) -> str:
        """Where the server listens (started if needed), as seen from this machine."""
        self.start()
        return self._address()

    def _address(self) -> str:
        host = "127.0.0.1" if self.config.host in ("", "0.0.0.0") else self.config.host
        return f"http://{host}:{self.config.port}"

    def start(self) -> None:
        with self._lock:
            if self._server is not None or self._shared:
                return
            handler = type("Handler", (_Handler,), {"owner": self})
            try:
                server = ThreadingHTTPServer((self.config.host, self.config.port), handler)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE and self._is_ours_at_port():
                    log.info("public files: reusing this install's server on %d", self.config.port)
                    self._shared = True
                    return
                raise ProviderError(
                    f"StemDeck's file server could not listen on {self.config.host}:"
                    f"{self.config.port} ({exc.strerror}); set {ENV_PORT} to a free port."
                ) from exc
            server.daemon_threads = True
            self.config = replace(self.config, port=int(server.server_address[1]))
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="public-files",
                daemon=True,
            ).start()
            self._server = server
            log.info("public files served on %s:%d", self.config.host, self.config.port)

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None

    def identity(self) -> str:
        return self._mac("identity")

    def _is_ours_at_port(self) -> bool:
        """Does the server on our port belong to this install (same secret)?"""
        try:
            answer = httpx.get(self._address() + IDENTITY_PATH, timeout=2.0)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and hmac.compare_digest(answer.text, self.identity())

    # --- requests -------------------------------------------------------------------------

    def resolve_file(self, raw_path: str) -> Path | None:
        """The stored file a request path names, when its token is right; else None."""
        match = _FILE.fullmatch(raw_path.split("?", 1)[0])
        if match is None or not hmac.compare_digest(match["token"], self.token(match["name"])):
            return None
        path = self.config.inputs_dir / match["name"]
        return path if path.is_file() and not path.is_symlink() else None

    def hook_for(self, raw_path: str) -> HookHandler | None:
        match = _HOOK.fullmatch(raw_path.split("?", 1)[0])
        if match is None or not hmac.compare_digest(match["token"], self.hook_token(match["name"])):
            return None
        return self._hooks.get(match["name"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "StemDeck"
    sys_version = ""
    owner: PublicFiles

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_POST(self) -> None:
        handler = self.owner.hook_for(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if handler is None or length > MAX_HOOK_BODY:
            self._plain(404 if handler is None else 413, "Not found" if handler is None else "")
            return
        body = self.rfile.read(length)
        try:
            status = handler({k.lower(): v for k, v in self.headers.items()}, body)
        except Exception:  # a handler bug must not kill the server thread
            log.exception("public files: callback handler failed")
            status = 500
        self._plain(status, "")

    def _refuse(self) -> None:
        self._plain(405, "Method not allowed", {"Allow": "GET, HEAD"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _serve(self, body: bool) -> None:
        if self.path == IDENTITY_PATH:
            self._plain(200, self.owner.identity(), send_body=body)
            return
        path = self.owner.resolve_file(self.path)
        if path is None:
            self._plain(404, "Not found", send_body=body)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        status = 200
        wanted = _RANGE.fullmatch(self.headers.get("Range", "").strip())
        if wanted and (wanted[1] or wanted[2]):
            if wanted[1]:
                start, end = int(wanted[1]), min(int(wanted[2] or size - 1), size - 1)
            else:
                start = max(0, size - int(wanted[2]))
            if start > end or start >= size:
                self._plain(416, "", {"Content-Range": f"bytes */{size}"}, send_body=body)
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "private, no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError), path.open("rb") as fh:
                fh.seek(start)
                _copy(fh, self.wfile, end - start + 1)

    def _plain(
        self,
        status: int,
        text: str,
        headers: Mapping[str, str] | None = None,
        send_body: bool = True,
    ) -> None:
        data = text.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Paths carry tokens: log the status only, at debug level.
        log.debug("public files: %s", args[1] if len(args) > 1 else "")


def _copy(src: Any, dest: Any, remaining: int) -> None:
    while remaining > 0:
        chunk = src.read(min(1 << 16, remaining))
        if not chunk:
            return
        dest.write(chunk)
        remaining -= len(chunk)


_instances: dict[FileServerConfig, PublicFiles] = {}
_instances_lock = threading.Lock()


def for_settings(settings: Settings) -> PublicFiles:
    """The process-wide file server for these settings (one per configuration)."""
    config = FileServerConfig.from_settings(settings)
    with _instances_lock:
        found = _instances.get(config)
        if found is None:
            found = _instances[config] = PublicFiles(config)
        return found
