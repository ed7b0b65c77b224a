"""The emulator framework: real HTTP servers on 127.0.0.1 that speak a provider's contract.

Each provider emulator (``sandbox/<name>.py``) subclasses :class:`Emulator` and adds its routes,
auth check and error shapes. This module gives them what every provider needs:
- a threaded HTTP/1.1 server on a free (or given) port, JSON and multipart helpers;
- a credit :class:`Ledger`, per-key :class:`RateLimiter`, and a record of every call;
- fault injection (:class:`Fault`): an HTTP status (429 with ``Retry-After``, 5xx), malformed
  JSON, a 200 whose JSON lacks every field, a hang (client timeouts), a dropped connection or
  a TCP reset — before or *after* the real handler ran
  (the "charged, then the answer was lost" case); plus ``fail_next`` failed jobs and short or
  zero-lifetime result links (``result_ttl_s``);
- async jobs with a configurable latency, finished by a background thread that renders stems;
- deterministic stems derived from the input by complementary filters (:func:`render_stems`),
  served from the emulator itself as expiring links;
- webhook delivery, optionally signed, forged, stale or replayed.

A launcher starts one with :func:`start_emulator` (``name → (base_url, api_key, emulator)``);
``python -m sandbox.common NAME`` runs one in the foreground.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import importlib
import json
import logging
import re
import secrets
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import soundfile as sf
from scipy import signal

from services.audio.decode import SAMPLE_RATE, iter_blocks
from services.providers import webhooks

log = logging.getLogger(__name__)

EMULATORS: dict[str, str] = {
    "aistemsplitter": "sandbox.aistemsplitter:AIStemSplitterEmulator",
    "musicgpt": "sandbox.musicgpt:MusicGPTEmulator",
}
MAX_BODY_BYTES = 512 * 1024 * 1024
RENDER_BLOCK_FRAMES = SAMPLE_RATE * 5
FILTER_ORDER = 4
QUEUED_SHARE = 0.3  # first part of the latency reported as queued, the rest as processing


# --- requests and responses ------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str  # relative to the emulator's API prefix when it starts with it
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route pattern

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        """The JSON body, or None when it is not valid JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]] | None:
        """A multipart body as (text fields, {name: (filename, bytes)}), or None if not one."""
        ctype = self.headers.get("Content-Type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            return None
        raw = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode() + self.body
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        if not message.is_multipart():
            return None
        fields: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                files[str(name)] = (filename, payload)
            else:
                fields[str(name)] = payload.decode("utf-8", "replace")
        return fields, files


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    file: Path | None = None  # streamed instead of ``body``


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status,
        json.dumps(payload).encode(),
        {"Content-Type": "application/json", **(headers or {})},
    )


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- faults, ledger, rate limits ---------------------------------------------------------------

FaultKind = Literal["status", "malformed", "missing", "hang", "drop", "reset"]


@dataclass
class Fault:
    """Misbehave on the next ``times`` requests whose ``"METHOD /path"`` fully matches ``route``.

    ``after=True`` runs the real handler first (so a create is stored and charged) and then
    replaces its answer — the case a client must never "fix" by resending a paid request.
    """

    route: str
    kind: FaultKind = "status"
    status: int = 500
    times: int = 1
    retry_after: float | None = None
    after: bool = False
    hang_s: float = 2.0
    message: str = "Injected fault"  # e.g. one that echoes the caller's key, as some APIs do


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    status: int
    fault: str | None


class Ledger:
    """A credit balance and every charge against it, so tests can prove nothing was paid twice."""

    def __init__(self, balance: float) -> None:
        self._balance = float(balance)
        self.charges: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    @property
    def balance(self) -> float:
        with self._lock:
            return self._balance

    def charge(self, ref: str, amount: float) -> bool:
        """Take ``amount`` for ``ref``; False (and nothing taken) when the balance is too low."""
        with self._lock:
            if amount > self._balance:
                return False
            self._balance -= amount
            self.charges.append((ref, amount))
            return True

    def total(self) -> float:
        with self._lock:
            return sum(amount for _, amount in self.charges)


class RateLimiter:
    """A sliding one-minute window per (key, bucket)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> float | None:
        """None when allowed (and counted), else seconds until a slot frees up."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] >= 60.0:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(1.0, 60.0 - (now - hits[0]))
            hits.append(now)
            return None


# --- deterministic stems -----------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    """A Butterworth filter: low-pass (no ``low``), high-pass (no ``high``) or band-pass."""

    low: float | None = None
    high: float | None = None

    def sos(self) -> np.ndarray:
        if self.low is None:
            return signal.butter(FILTER_ORDER, self.high, "lowpass", fs=SAMPLE_RATE, output="sos")
        if self.high is None:
            return signal.butter(FILTER_ORDER, self.low, "highpass", fs=SAMPLE_RATE, output="sos")
        return signal.butter(
            FILTER_ORDER, [self.low, self.high], "bandpass", fs=SAMPLE_RATE, output="sos"
        )


@dataclass(frozen=True)
class Residual:
    """The input minus the named stems: with it, a stem set sums back to the input exactly."""

    of: tuple[str, ...]


StemSpec = Band | Residual


def render_stems(
    src: Path, spec: Mapping[str, StemSpec], wanted: list[str], out_dir: Path, fmt: str = "wav"
) -> dict[str, Path]:
    """Write each wanted stem of ``src`` (streamed block by block) as ``out_dir/<stem>.<fmt>``."""
    needed = set(wanted)
    for name in wanted:
        part = spec[name]
        if isinstance(part, Residual):
            needed.update(part.of)
    filters = {}
    for name in sorted(needed):
        part = spec[name]
        if isinstance(part, Band):
            sos = part.sos()
            filters[name] = (sos, np.zeros((sos.shape[0], 2, 2)))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"{name}.{fmt}" for name in wanted}
    options = (
        {"format": "MP3", "subtype": "MPEG_LAYER_III"}
        if fmt == "mp3"
        else {
            "format": "WAV",
            "subtype": "FLOAT",
        }
    )
    writers = {n: sf.SoundFile(p, "w", SAMPLE_RATE, 2, **options) for n, p in paths.items()}
    try:
        for block in iter_blocks(src, RENDER_BLOCK_FRAMES):
            parts: dict[str, np.ndarray] = {}
            for name, (sos, state) in list(filters.items()):
                out, state = signal.sosfilt(sos, block, axis=0, zi=state)
                parts[name] = out.astype(np.float32)
                filters[name] = (sos, state)
            for name in wanted:
                part = spec[name]
                if isinstance(part, Residual):
                    data = block - sum((parts[o] for o in part.of), np.zeros_like(block))
                else:
                    data = parts[name]
                writers[name].write(data.astype(np.float32))
    finally:
        for writer in writers.values():
            writer.close()
    return paths


def duration_s(src: Path) -> float:
    """Length in seconds: the header when libsndfile reads it, else a streamed decode.

    Raises InputRejected for audio that does not decode.
    """
    try:
        info = sf.info(str(src))
        if info.frames > 0:
            return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError):
        pass
    return sum(len(block) for block in iter_blocks(src, RENDER_BLOCK_FRAMES)) / SAMPLE_RATE


# --- jobs ---------------------------------------------------------------------------------------


@dataclass
class EmulatedJob:
    """An async job: rendered by a background thread, terminal once ``latency_s`` has passed."""

    id: str
    latency_s: float
    created_at: float = field(default_factory=time.time)
    fail: bool = False
    outputs: dict[str, Path] = field(default_factory=dict)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def updated_at(self) -> float:
        return self.created_at + (self.latency_s if self.done.is_set() else 0.0)

    def phase(self) -> Literal["queued", "processing", "succeeded", "failed"]:
        if self.done.is_set():
            return "failed" if self.fail or self.error else "succeeded"
        elapsed = time.time() - self.created_at
        return "queued" if elapsed < self.latency_s * QUEUED_SHARE else "processing"


# --- the server -------------------------------------------------------------------------------

Handler = Callable[[Request], Response]


class Emulator:
    """Base of every provider emulator. Subclasses set the class attributes and add routes."""

    name: str = ""
    api_prefix: str = ""
    default_api_key: str = ""
    default_balance: float = 1_000_000.0

    def __init__(
        self,
        *,
        api_key: str | None = None,
        port: int = 0,
        latency_s: float = 2.0,
        balance: float | None = None,
        result_ttl_s: float = 3600.0,
        webhook_secret: str | None = None,
        rate_limit_per_minute: int = 600,
    ) -> None:
        self.api_key = api_key or self.default_api_key
        self.latency_s = latency_s
        self.ledger = Ledger(self.default_balance if balance is None else balance)
        self.result_ttl_s = result_ttl_s
        self.webhook_secret = webhook_secret or "whsec_sandbox_" + self.name
        self.webhook_mode: Literal["normal", "forged", "stale", "replay"] = "normal"
        self.rate_limiter = RateLimiter(rate_limit_per_minute)
        self.fail_next = 0  # the next N jobs end failed
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self.webhook_deliveries: list[int] = []  # HTTP status each delivery got (0: no answer)
        self.jobs: dict[str, EmulatedJob] = {}
        self.dir = Path(tempfile.mkdtemp(prefix=f"stemdeck-{self.name}-"))
        self._files: dict[str, tuple[Path, float, str]] = {}  # token → (file, expiry, type)
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self.route(
            "GET",
            r"/files/(?P<token>[A-Za-z0-9_-]+)/(?P<name>[^/]+)",
            self._serve_file,
            auth=False,
            api=False,
        )

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        emulator = self

        class _Handler(_RequestHandler):
            pass

        _Handler.emulator = emulator
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-emulator",
            daemon=True,
        ).start()
        log.info("%s emulator on %s", self.name, self.base_url)
        return self.base_url

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        assert self._server is not None, "emulator not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        """The provider's base URL as the adapters take it (e.g. ``…/v1``)."""
        return self.origin + self.api_prefix

    # --- subclass hooks --------------------------------------------------------------------------

    def authorized(self, request: Request) -> Response | None:
        """None when the request carries this emulator's key, else the provider's 401/403."""
        raise NotImplementedError

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        """An error in the provider's own body shape."""
        raise NotImplementedError

    # --- routing ----------------------------------------------------------------------------------

    def route(
        self, method: str, pattern: str, handler: Handler, *, auth: bool = True, api: bool = True
    ) -> None:
        full = (re.escape(self.api_prefix) if api else "") + pattern
        self._routes.append((method, re.compile(full), handler, auth))

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def calls_to(self, method: str, path_regex: str) -> int:
        """How many requests reached ``METHOD path`` (whatever their answer)."""
        pattern = re.compile(path_regex)
        with self._lock:
            return sum(1 for c in self.calls if c.method == method and pattern.fullmatch(c.path))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        relative = path[len(self.api_prefix) :] if path.startswith(self.api_prefix) else path
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and re.fullmatch(fault.route, f"{method} {relative}"):
                    fault.times -= 1
                    return fault
        return None

    def dispatch(self, request: Request) -> Response:
        for method, pattern, handler, auth in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                if auth and (denied := self.authorized(request)) is not None:
                    return denied
                request.params = match.groupdict()
                return handler(request)
        return self.error(404, f"No route for {request.method} {request.path}", "NOT_FOUND")

    def fault_response(self, fault: Fault) -> Response:
        if fault.kind == "malformed":
            return Response(
                200, b'{"success": true, "data": {"id": ', {"Content-Type": "application/json"}
            )
        if fault.kind == "missing":  # valid JSON, but none of the fields a client reads
            return json_response(200, {})
        response = self.error(fault.status, fault.message, _code_for(fault.status))
        if fault.retry_after is not None:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        return response

    def rate_limited(self, bucket: str) -> Response | None:
        wait = self.rate_limiter.retry_after(bucket)
        if wait is None:
            return None
        response = self.error(429, "Rate limit exceeded", "RATE_LIMITED")
        response.headers["Retry-After"] = str(int(wait + 0.999))
        return response

    # --- result files -------------------------------------------------------------------------

    def link(self, path: Path, content_type: str, ttl_s: float | None = None) -> str:
        """A fresh expiring URL for ``path`` (like a presigned link: new on every status call)."""
        token = secrets.token_urlsafe(12)
        expiry = time.time() + (self.result_ttl_s if ttl_s is None else ttl_s)
        with self._lock:
            self._files[token] = (path, expiry, content_type)
        return f"{self.origin}/files/{token}/{path.name}"

    def _serve_file(self, request: Request) -> Response:
        with self._lock:
            entry = self._files.get(request.params["token"])
        if entry is None or entry[0].name != request.params["name"]:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        path, expiry, content_type = entry
        if time.time() >= expiry:
            return _s3_error(403, "AccessDenied", "Request has expired")
        if not path.exists():
            self.materialize(path)
        return Response(200, headers={"Content-Type": content_type}, file=path)

    def materialize(self, path: Path) -> None:
        """Create a lazily rendered file (e.g. an MP3 copy) on first download."""
        raise FileNotFoundError(path)

    # --- jobs ---------------------------------------------------------------------------------

    def new_job(self, job_id: str | None = None, **meta: Any) -> EmulatedJob:
        with self._lock:
            fail = self.fail_next > 0
            self.fail_next -= 1 if fail else 0
            job = EmulatedJob(job_id or uuid.uuid4().hex, self.latency_s, fail=fail, meta=meta)
            self.jobs[job.id] = job
        return job

    def launch(
        self,
        job: EmulatedJob,
        render: Callable[[], dict[str, Path]],
        on_done: Callable[[EmulatedJob], None] | None = None,
    ) -> None:
        """Render in the background, finish after the latency, then call ``on_done``."""

        def work() -> None:
            try:
                if not job.fail:
                    job.outputs = render()
            except Exception:  # any render failure becomes a failed job, as at a provider
                log.exception("%s: rendering job %s failed", self.name, job.id)
                job.error = "Processing failed"
            # re-read each step: a test may shorten ``job.latency_s`` to finish a job on cue
            while (remaining := job.created_at + job.latency_s - time.time()) > 0:
                if self._stopping.wait(min(remaining, 0.1)):
                    return
            job.done.set()
            if on_done is not None:
                on_done(job)

        threading.Thread(target=work, name=f"{self.name}-job", daemon=True).start()

    # --- webhooks -----------------------------------------------------------------------------

    def deliver(self, url: str, payload: Mapping[str, Any], signature_header: str | None) -> None:
        """POST ``payload``; signed when ``signature_header`` is set, per ``webhook_mode``."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        times = 1
        if signature_header:
            secret, ts = self.webhook_secret, int(time.time())
            if self.webhook_mode == "forged":
                secret = "whsec_forged"
            elif self.webhook_mode == "stale":
                ts -= 3600
            elif self.webhook_mode == "replay":
                times = 2
            headers[signature_header] = webhooks.sign(secret, body, ts)
        for _ in range(times):
            try:
                status = httpx.post(url, content=body, headers=headers, timeout=5.0).status_code
            except httpx.HTTPError:
                status = 0
            with self._lock:
                self.webhook_deliveries.append(status)

    def fetch_source(self, url: str, dest: Path) -> Path:
        """Download a caller's input URL (this emulator plays the provider's fetcher)."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("not an http(s) URL")
        with httpx.stream("GET", url, timeout=30.0, follow_redirects=True) as response:
            response.raise_for_status()
            size = 0
            with dest.open("wb") as out:
                for chunk in response.iter_bytes(1 << 16):
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise ValueError("source too large")
                    out.write(chunk)
        return dest

    # --- one request ------------------------------------------------------------------------------

    def handle(self, handler: _RequestHandler) -> None:
        split = urlsplit(handler.path)
        body = _read_body(handler)
        request = Request(handler.command, split.path, parse_qs(split.query), handler.headers, body)
        fault = self._take_fault(request.method, request.path)
        response: Response | None
        if fault and fault.kind == "hang":
            self._stopping.wait(fault.hang_s)
        lost = ("drop", "reset")  # kinds that answer nothing at all
        if fault and fault.kind in ("status", "malformed", "missing") and not fault.after:
            response = self.fault_response(fault)
        elif fault and fault.kind in lost and not fault.after:
            response = None
        else:
            try:
                response = self.dispatch(request)
            except Exception:
                log.exception("%s: handler crashed", self.name)
                response = self.error(500, "Internal error", "SERVER_ERROR")
            if fault and fault.after:
                response = None if fault.kind in lost else self.fault_response(fault)
        with self._lock:
            self.calls.append(
                Call(
                    request.method,
                    request.path,
                    response.status if response else 0,
                    fault.kind if fault else None,
                )
            )
        if response is None:
            handler.close_connection = True
            if fault and fault.kind == "reset":  # SO_LINGER 0: close sends RST, not FIN
                handler.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                handler.connection.close()
            return
        _write(handler, response)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emulator: Emulator

    def _any(self) -> None:
        self.emulator.handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.emulator.name, *args)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    if length > MAX_BODY_BYTES:
        raise ValueError("request body too large")
    return handler.rfile.read(length) if length else b""


def _write(handler: BaseHTTPRequestHandler, response: Response) -> None:
    try:
        handler.send_response(response.status)
        for name, value in response.headers.items():
            handler.send_header(name, value)
        if response.file is not None:
            handler.send_header("Content-Length", str(response.file.stat().st_size))
            handler.end_headers()
            with response.file.open("rb") as fh:
                shutil.copyfileobj(fh, handler.wfile, 1 << 16)
        else:
            handler.send_header("Content-Length", str(len(response.body)))
            handler.end_headers()
            handler.wfile.write(response.body)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True  # the client gave up (e.g. its read timeout)


def _s3_error(status: int, code: str, message: str) -> Response:
    body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
    return Response(status, body, {"Content-Type": "application/xml"})


def _code_for(status: int) -> str:
    return {
        401: "UNAUTHORIZED",
        402: "INSUFFICIENT_CREDITS",
        422: "VALIDATION_ERROR",
        429: "RATE_LIMITED",
    }.get(status, "SERVER_ERROR" if status >= 500 else "ERROR")


# --- launcher API -----------------------------------------------------------------------------


def start_emulator(name: str, **options: Any) -> tuple[str, str, Emulator]:
    """Start emulator ``name`` on 127.0.0.1; return (base URL, its API key, the emulator)."""
    target = EMULATORS.get(name)
    if target is None:
        raise KeyError(f"no emulator {name!r} (have: {', '.join(EMULATORS)})")
    module, _, cls_name = target.partition(":")
    emulator: Emulator = getattr(importlib.import_module(module), cls_name)(**options)
    return emulator.start(), emulator.api_key, emulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a provider emulator in the foreground.")
    parser.add_argument("name", choices=sorted(EMULATORS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=3.0, help="seconds per job")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    base_url, api_key, emulator = start_emulator(args.name, port=args.port, latency_s=args.latency)
    prefix = args.name.upper()
    print(f"{prefix}_BASE_URL={base_url}\n{prefix}_API_KEY={api_key}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emulator.stop()


if __name__ == "__main__":
    main()
