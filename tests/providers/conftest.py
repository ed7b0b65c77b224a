"""Provider contract fixtures: emulators on real sockets, a short song, adapters wired to them."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from sandbox.common import Emulator, start_emulator
from services.config import Settings
from services.errors import JobCancelled
from services.progress import ProgressEvent
from services.providers.base import RunContext, SeparatedStem, SeparationRequest
from services.providers.http import make_client
from services.providers.retry import RetryPolicy
from tests.audiogen import SR, mix, tone, vocal_like, write

SONG_S = 2.0
HANG_S = 1.5
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=0.05, deadline_s=10.0)


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real keys or base URLs must never leak into these tests."""
    for name in ("AISTEMSPLITTER", "MUSICGPT"):
        monkeypatch.delenv(f"{name}_API_KEY", raising=False)
        monkeypatch.delenv(f"{name}_BASE_URL", raising=False)


@pytest.fixture(scope="session")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s with energy in every emulator band: bass, voice, guitar, piano, keys and highs."""
    parts = [vocal_like(SONG_S, amp=0.3)]
    parts += [tone(f, SONG_S, amp=0.1) for f in (80, 5000, 7000, 8500, 13000)]
    return write(tmp_path_factory.mktemp("song") / "song.wav", mix(*parts), fmt="wav-float")


def request_for(
    path: Path, mode: str, stems: tuple[str, ...] = (), pre: tuple[str, ...] = (), **kw: Any
) -> SeparationRequest:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return SeparationRequest(path, digest, SONG_S, mode, stems, pre, **kw)


@dataclass(slots=True)
class ResumableContext(RunContext):
    """RunContext plus ``facts`` (what earlier attempts remembered), as proposed to the lead."""

    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Run:
    """One job: its facts survive attempts, each attempt gets a fresh workspace (as the worker)."""

    root: Path
    facts: dict[str, str] = field(default_factory=dict)
    events: list[ProgressEvent] = field(default_factory=list)
    cancel_when: Callable[[ProgressEvent], bool] | None = None
    attempts: int = 0

    @property
    def workspace(self) -> Path:
        return self.root / f"attempt{self.attempts}"

    def context(self) -> RunContext:
        def progress(event: ProgressEvent) -> None:
            self.events.append(event)
            if self.cancel_when and self.cancel_when(event):
                raise JobCancelled()

        self.attempts += 1
        self.workspace.mkdir(parents=True)
        return ResumableContext(self.workspace, progress, self.facts.__setitem__, dict(self.facts))


@pytest.fixture
def job(tmp_path: Path) -> Callable[..., Run]:
    count = iter(range(1000))

    def make(**kw: Any) -> Run:
        return Run(tmp_path / f"job{next(count)}", **kw)

    return make


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(timeout=httpx.Timeout(10.0)) as c:
        yield c


@pytest.fixture
def impatient_client() -> Iterator[httpx.Client]:
    """A short read timeout, so a ``hang`` fault (longer) becomes a client timeout."""
    with make_client(timeout=httpx.Timeout(10.0, read=HANG_S / 3)) as c:
        yield c


@pytest.fixture
def emulators() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def start(name: str, **options: Any) -> Emulator:
        options.setdefault("latency_s", 0.2)
        _base, _key, emulator = start_emulator(name, **options)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


def adapter(cls: type, emulator: Emulator, client: httpx.Client, **kw: Any) -> Any:
    kw.setdefault("api_key", emulator.api_key)
    return cls(
        Settings(),
        base_url=emulator.base_url,
        client=client,
        poll_interval_s=0.05,
        retry_policy=FAST_RETRY,
        **kw,
    )


def audio(path: Path) -> np.ndarray:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR
    return data


def total(stems: list[SeparatedStem], names: tuple[str, ...]) -> np.ndarray:
    by_name = {s.stem: audio(s.path) for s in stems}
    return sum(by_name[n] for n in names)


class WebhookReceiver:
    """The app side of a webhook: a real server that checks each delivery with ``check``."""

    def __init__(self, check: Callable[[str, dict[str, str], bytes], None]) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    check(self.path, dict(self.headers.items()), body)
                except Exception as exc:
                    owner.rejected.append(str(exc))
                    status = 400
                else:
                    owner.accepted.append(json.loads(body))
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Wait for something another thread does (a webhook delivery); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
