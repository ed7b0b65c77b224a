"""The shared life of an asynchronous remote provider: submit → poll → download → stems.

Adapters only translate (build the submit request, read a status, map errors); this base does
the rest the same way for every provider:
- the key is checked when a job runs, not when the adapter is built, so the UI can list a
  provider that still "needs a key";
- the remote id is remembered on the job (``ctx.remember``) *before* polling, and read back
  on a later attempt (``ctx.facts``), so a restarted job resumes polling instead of paying
  again;
- polling keeps the provider's cadence and stops at an overall deadline that grows with the
  track length; every poll reports progress, which is where a cancel lands;
- result files are downloaded at once (URLs expire) into ``workspace/raw``, each through the
  address guard — only the configured base URL's host:port is trusted — with manual redirects,
  each hop resolved once and connected to the address checked (no DNS rebinding), and a size
  cap; an expired URL is refreshed by polling once more, then fails clearly;
- stems are normalised by name; ``instrumental`` and a residual ``other`` the provider does not
  make are mixed locally, block by block.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import numpy as np
import soundfile as sf

from services import stems as stem_names
from services.audio.decode import (
    HEAD_BYTES,
    SAMPLE_RATE,
    clock,
    describe_non_audio,
    iter_blocks,
    probe,
    sniff,
)
from services.audio.fetch import Resolver, Target, check_url, open_pinned
from services.audio.ffmpeg import header_report, parse_report
from services.config import Settings
from services.errors import (
    FetchError,
    InputRejected,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from services.pricing.table import estimate_request
from services.progress import ProgressEvent
from services.providers import keys, retry
from services.providers.base import (
    Capabilities,
    Estimate,
    RunContext,
    SeparatedStem,
    SeparationRequest,
)
from services.providers.http import host_port, json_body, shared_client
from services.providers.normalize import normalize_urls

if TYPE_CHECKING:  # public_files imports this module
    from services.public_files import PublicFiles

log = logging.getLogger(__name__)

RAW_DIR = "raw"
FINGERPRINT_FACT = "remote_fingerprint"
MAX_REDIRECTS = 5
CHUNK = 1 << 16
MIX_BLOCK_FRAMES = SAMPLE_RATE * 10
# A stem can never be bigger than 48 kHz float32 stereo of the source's length (plus headers).
MAX_BYTES_PER_AUDIO_S = 48_000 * 2 * 4
RESULT_SLACK_BYTES = 16 * 1024 * 1024
# A stem is as long as its input; a result much longer (or at an absurd rate: a few KB declaring
# 1 Hz decode to hours at 44.1 kHz) is refused before anything decodes it.
RESULT_LENGTH_FACTOR = 1.5
RESULT_LENGTH_SLACK_S = 10.0
RESULT_RATES_HZ = (8_000, 384_000)
AUDIO_SUFFIXES = {"wav", "mp3", "flac", "ogg", "m4a", "aac", "aiff", "opus", "webm"}
CONTENT_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "aiff": "audio/aiff",
    "aif": "audio/aiff",
    "webm": "audio/webm",
}
_SUFFIX_FOR_TYPE = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
}

State = Literal["queued", "running", "succeeded", "failed"]


class ResultExpired(ProviderError):
    """A result URL was refused (403/404/410): signed links expire, so the files are gone."""


@dataclass(frozen=True, slots=True)
class RemoteStatus:
    """One poll's answer, already in canonical terms."""

    state: State
    stems: Mapping[str, object] = field(default_factory=dict)  # provider stem name → URL
    message: str = ""  # the provider's failure reason (already made safe)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run asks the provider for (``params``) and which canonical stems it returns."""

    params: Mapping[str, Any]
    wanted: tuple[str, ...]
    keep_extras: bool = True  # also return stems the provider sent beyond ``wanted``


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix.lower().lstrip("."), "application/octet-stream")


def file_chunks(fh: BinaryIO) -> Iterator[bytes]:
    """Stream a file body in fixed chunks (a file object itself iterates by lines)."""
    while chunk := fh.read(CHUNK):
        yield chunk


class RunState:
    """Facts about one job's remote run, kept on the job record so a restart can resume it.

    Written with ``ctx.remember`` (the job's ``facts``) as soon as they are known; read back
    from ``ctx.facts`` — what earlier attempts of the same job remembered — because each
    attempt starts in a fresh, empty workspace. Facts of a different request are ignored.
    """

    def __init__(self, ctx: RunContext, fingerprint: str) -> None:
        self._remember = ctx.remember
        self.fingerprint = fingerprint
        facts: Mapping[str, str] = getattr(ctx, "facts", None) or {}
        same = facts.get(FINGERPRINT_FACT) == fingerprint
        self.data: dict[str, str] = dict(facts) if same else {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str) -> None:
        if FINGERPRINT_FACT not in self.data:
            self.data[FINGERPRINT_FACT] = self.fingerprint
            self._remember(FINGERPRINT_FACT, self.fingerprint)
        self.data[key] = value
        self._remember(key, value)


class RemoteProvider:
    """Base of the async HTTP adapters; subclasses fill in the translation hooks."""

    name: str
    capabilities: Capabilities
    default_base_url: str
    poll_interval_s: float = 2.0
    base_deadline_s: float = 300.0  # plus one second per second of audio, at most max
    max_deadline_s: float = 1800.0
    resolver: Resolver | None = None
    public: PublicFiles | None = None
    """Set by providers that only take a URL: their estimate says when no public URL exists."""

    def __init__(
        self,
        settings: Settings,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        client: httpx.Client | None = None,
        poll_interval_s: float | None = None,
        deadline_s: float | None = None,
        retry_policy: retry.RetryPolicy | None = None,
        send_urls: bool = False,
        webhook_url: str | None = None,
    ) -> None:
        self.settings = settings
        self._api_key = keys.resolve(self.name, explicit=api_key)
        base = keys.resolve(self.name, "BASE_URL", explicit=base_url) or self.default_base_url
        self.base_url = base.rstrip("/")
        self.client = client or shared_client()
        if poll_interval_s is not None:
            self.poll_interval_s = poll_interval_s
        self._deadline_s = deadline_s
        self.retry_policy = retry_policy or retry.RetryPolicy()
        self.send_urls = send_urls  # pass the user's URL instead of uploading the bytes
        self.webhook_url = webhook_url

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # --- translation hooks -------------------------------------------------------------------

    def plan(self, request: SeparationRequest) -> Plan:
        raise NotImplementedError

    def submit(
        self,
        request: SeparationRequest,
        plan: Plan,
        ctx: RunContext,
        state: RunState,
        deadline: float,
    ) -> str:
        """Start the remote job and return its id (``state`` keeps facts a resume needs)."""
        raise NotImplementedError

    def poll(self, remote_id: str, deadline: float) -> RemoteStatus:
        raise NotImplementedError

    def error_for(self, response: httpx.Response) -> ProviderError:
        """The typed error for a non-2xx answer (the provider's envelope first)."""
        raise NotImplementedError

    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def estimate(self, request: SeparationRequest) -> Estimate:
        """The price list's figure, after the checks a run makes (a bad mode fails here)."""
        self.plan(request)
        estimate = estimate_request(self.name, request, self.settings)
        if self.public is None:
            return estimate
        note = f"{estimate.note} {self.public.problem(request, self.display)}"
        return replace(estimate, note=note.strip())

    # --- shared helpers ----------------------------------------------------------------------

    @property
    def display(self) -> str:
        return self.capabilities.display_name

    @property
    def trusted(self) -> tuple[str, ...]:
        """Result and upload URLs on the configured API host:port pass the address guard."""
        return (host_port(self.base_url),)

    def guard(self, url: str) -> Target:
        """The address guard for a URL the provider handed us (upload or result); the target
        keeps the addresses checked, so a download connects to those and never asks DNS again."""
        try:
            return check_url(url, self.trusted, self.resolver)
        except FetchError as exc:
            message = f"{self.display} sent a link StemDeck will not follow: {exc}"
            raise ProviderError(message) from exc

    def api_key(self) -> str:
        return keys.require_key(self.name, self.display, self._api_key)

    def url(self, path: str) -> str:
        return self.base_url + path

    def deadline_for(self, request: SeparationRequest) -> float:
        if self._deadline_s is not None:
            return self._deadline_s
        return min(self.max_deadline_s, self.base_deadline_s + request.duration_s)

    def call(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        deadline: float | None = None,
        upload: Path | None = None,
        form: Mapping[str, str] | None = None,
        upload_field: str = "file",
        errors: Callable[[httpx.Response], ProviderError] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise the mapped typed error.

        ``form`` makes a multipart body (with ``upload`` as its part ``upload_field``); without
        it ``upload`` is the raw body. The file is reopened for every attempt. ``errors`` maps
        failures where the answer does not come from the API itself (an upload worker).
        """

        def attempt() -> httpx.Response:
            with contextlib.ExitStack() as stack:
                fh = stack.enter_context(upload.open("rb")) if upload else None
                extra: dict[str, Any] = {}
                if form is not None:
                    parts: dict[str, Any] = {k: (None, v) for k, v in form.items()}
                    if upload and fh:
                        parts[upload_field] = (upload.name, fh, content_type(upload))
                    extra["files"] = parts
                elif upload and fh:
                    size = str(upload.stat().st_size)
                    extra["content"] = file_chunks(fh)
                    extra["headers"] = {**kwargs.get("headers", {}), "Content-Length": size}
                return self.client.request(method, url, **{**kwargs, **extra})

        response = retry.send(
            attempt,
            display=self.display,
            idempotent=idempotent,
            policy=self.retry_policy,
            deadline=deadline,
        )
        if response.is_success:
            return response
        error = (errors or self.error_for)(response)
        if not idempotent and response.status_code >= 500 and type(error) is ProviderUnavailable:
            error = ProviderUnavailable(error.user_message + retry.NOT_REPEATED)
        raise error

    def call_json(self, method: str, url: str, **kwargs: Any) -> Any:
        return json_body(self.call(method, url, **kwargs), self.display)

    # --- the run -----------------------------------------------------------------------------

    def fingerprint(self, request: SeparationRequest) -> str:
        """Same provider, audio, mode and options → same fingerprint (and idempotency key)."""
        payload = {
            "provider": self.name,
            "input": request.input_hash,
            "mode": request.mode,
            "stems": sorted(request.stems),
            "pre": sorted(request.preprocessing),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def run(self, request: SeparationRequest, ctx: RunContext) -> list[SeparatedStem]:
        self.api_key()
        plan = self.plan(request)
        deadline = time.monotonic() + self.deadline_for(request)
        state = RunState(ctx, self.fingerprint(request))
        remote_id = state.get("remote_id")
        if remote_id:
            log.info("%s: resuming remote job %s", self.name, remote_id)
        else:
            ctx.progress(ProgressEvent(0.0, f"sending to {self.display}"))
            remote_id = self.submit(request, plan, ctx, state, deadline)
            state.set("remote_id", remote_id)
        status = self.wait(remote_id, request, ctx, deadline)
        files = self.download_all(remote_id, status, ctx, deadline, request)
        return self.assemble(plan, files, request, ctx)

    def wait(
        self, remote_id: str, request: SeparationRequest, ctx: RunContext, deadline: float
    ) -> RemoteStatus:
        """Poll at the provider's cadence until a terminal state or the deadline."""
        started = time.monotonic()
        expected_s = max(10.0, request.duration_s * 0.3)
        while True:
            status = self.poll(remote_id, deadline)
            if status.state == "succeeded":
                return status
            if status.state == "failed":
                reason = f": {status.message}" if status.message else "."
                raise ProviderError(f"{self.display} could not separate this track{reason}")
            now = time.monotonic()
            if now >= deadline:
                raise ProviderTimeout(
                    f"{self.display} did not finish within {math.ceil((now - started) / 60)} min; "
                    "the job may still complete on their side — run it again later."
                )
            fraction = 1.0 - math.exp(-(now - started) / expected_s)
            ctx.progress(ProgressEvent(0.1 + 0.7 * fraction, f"{self.display}: {status.state}"))
            time.sleep(max(0.0, min(self.poll_interval_s, deadline - now)))

    def download_all(
        self,
        remote_id: str,
        status: RemoteStatus,
        ctx: RunContext,
        deadline: float,
        request: SeparationRequest,
    ) -> dict[str, tuple[str, Path]]:
        """Every stem the provider returned → ``{canonical: (provider name, file)}``."""
        raw_dir = ctx.workspace / RAW_DIR
        raw_dir.mkdir(parents=True, exist_ok=True)
        max_bytes = RESULT_SLACK_BYTES + int(request.duration_s * MAX_BYTES_PER_AUDIO_S)
        files: dict[str, tuple[str, Path]] = {}
        for refreshed in (False, True):
            urls = normalize_urls(status.stems)
            if not urls:
                raise MalformedResponse(f"{self.display} reported success but sent no stems.")
            try:
                for done, (stem, (raw, url)) in enumerate(urls.items()):
                    if stem in files:
                        continue
                    ctx.progress(ProgressEvent(0.8 + 0.15 * done / len(urls), "downloading stems"))
                    path = self.download(url, raw_dir / stem, deadline, max_bytes)
                    self.check_result(path, request, max_bytes)
                    files[stem] = (raw, path)
                return files
            except ResultExpired:
                if refreshed:
                    raise
                log.info("%s: result URL refused, asking for fresh links", self.name)
                status = self.poll(remote_id, deadline)
        raise AssertionError("unreachable")

    def download(self, url: str, dest_stem: Path, deadline: float, max_bytes: int) -> Path:
        """One result file, guarded at every redirect hop, streamed to disk with a size cap."""
        tmp = dest_stem.with_name(dest_stem.name + ".part")
        for _hop in range(MAX_REDIRECTS + 1):
            target = self.guard(url)  # resolved once per hop; every retry reuses the answer

            def attempt(target: Target = target) -> httpx.Response:
                response = open_pinned(self.client, target)
                try:
                    if response.is_success:
                        _write_capped(response, tmp, max_bytes, self.display)
                    else:
                        response.read()
                    return response
                finally:
                    response.close()

            response = retry.send(
                attempt,
                display=self.display,
                idempotent=True,
                policy=self.retry_policy,
                deadline=deadline,
            )
            if response.is_redirect:
                url = urljoin(url, response.headers.get("Location", ""))
                continue
            if response.status_code in (401, 403, 404, 410):
                raise ResultExpired(
                    f"{self.display}'s result files expired or were refused before they could be "
                    f"downloaded (HTTP {response.status_code}); run the job again."
                )
            if not response.is_success:
                raise ProviderUnavailable(
                    f"Downloading a result from {self.display} failed "
                    f"(HTTP {response.status_code}); try again later."
                )
            dest = dest_stem.with_name(f"{dest_stem.name}.{_suffix(url, response)}")
            tmp.replace(dest)
            return dest
        raise MalformedResponse(f"{self.display} redirected a result file too many times.")

    def check_result(self, path: Path, request: SeparationRequest, max_bytes: int) -> None:
        """Refuse a result that is not audio, or whose length or rate makes decoding it (in the
        mix, export and preview) unbounded: the header is read before any decode."""
        bad = f"{self.display} sent a result file that"
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
        if sniff(head) is None:
            what = describe_non_audio(head)
            raise MalformedResponse(
                f"{bad} is not audio{f' (it looks like {what})' if what else ''}."
            )
        stream = parse_report(header_report(path))
        if stream is None:
            raise MalformedResponse(f"{bad} cannot be decoded.")
        low, high = RESULT_RATES_HZ
        if not low <= stream.sample_rate <= high:
            raise MalformedResponse(
                f"{bad} declares an implausible rate ({stream.sample_rate} Hz)."
            )
        bound = request.duration_s * RESULT_LENGTH_FACTOR + RESULT_LENGTH_SLACK_S
        if stream.duration_s is not None and stream.duration_s > bound:
            raise MalformedResponse(
                f"{bad} is {clock(stream.duration_s)} long, for a "
                f"{clock(request.duration_s)} track."
            )
        try:  # what the header does not state (or under-states) is measured, up to the bound
            probe(path, replace(self.settings, max_duration_s=bound, max_upload_bytes=max_bytes))
        except InputRejected as exc:
            raise MalformedResponse(f"{bad} is not usable audio: {exc.user_message}") from None

    def assemble(
        self,
        plan: Plan,
        files: Mapping[str, tuple[str, Path]],
        request: SeparationRequest,
        ctx: RunContext,
    ) -> list[SeparatedStem]:
        """The wanted stems, mixing ``instrumental``/``other`` locally when not returned."""
        raw_dir = ctx.workspace / RAW_DIR
        result: list[SeparatedStem] = []
        for stem in plan.wanted:
            if stem in files:
                raw, path = files[stem]
                result.append(SeparatedStem(stem, raw, path))
                continue
            ctx.progress(ProgressEvent(0.95, f"mixing {stem_names.label(stem).lower()}"))
            parts = self.derivation(stem, files, request)
            path = mix_files(parts, raw_dir / f"{stem}.wav")
            result.append(SeparatedStem(stem, _recipe(parts, files, request.input_path), path))
        if plan.keep_extras:
            extra = [s for s in files if s not in plan.wanted and s != "mix"]
            result += [SeparatedStem(s, files[s][0], files[s][1]) for s in extra]
        return result

    def derivation(
        self, stem: str, files: Mapping[str, tuple[str, Path]], request: SeparationRequest
    ) -> list[tuple[Path, float]]:
        """How to mix a stem the provider did not return, as weighted files (or refuse)."""
        skip = ("mix", stem_names.INSTRUMENTAL)
        top = {s: p for s, (_, p) in files.items() if "." not in s and s not in skip}
        if stem == stem_names.INSTRUMENTAL:
            if stem_names.OTHER in top:  # the top-level stems partition the mix
                return [(p, 1.0) for s, p in top.items() if s != stem_names.VOCALS]
            if stem_names.VOCALS in top:
                return [(request.input_path, 1.0), (top[stem_names.VOCALS], -1.0)]
        if stem == stem_names.OTHER and top:
            return [(request.input_path, 1.0)] + [(p, -1.0) for p in top.values()]
        raise MalformedResponse(
            f"{self.display} did not return the {stem_names.label(stem).lower()} stem."
        )


def _recipe(
    parts: list[tuple[Path, float]], files: Mapping[str, tuple[str, Path]], mix: Path
) -> str:
    """The provider-stem label of a locally mixed stem, e.g. ``local:mix-vocals``."""
    names = {p: raw for raw, p in files.values()} | {mix: "mix"}
    text = "".join(("-" if w < 0 else "+") + names[p] for p, w in parts)
    return "local:" + text.lstrip("+")


def _write_capped(response: httpx.Response, dest: Path, max_bytes: int, display: str) -> None:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise MalformedResponse(f"{display} sent a result file that is implausibly large.")
    written = 0
    with dest.open("wb") as out:
        for chunk in response.iter_bytes(CHUNK):
            written += len(chunk)
            if written > max_bytes:
                out.close()
                dest.unlink(missing_ok=True)
                raise MalformedResponse(f"{display} sent a result file that is implausibly large.")
            out.write(chunk)
    if written == 0:
        raise MalformedResponse(f"{display} sent an empty result file.")


def _suffix(url: str, response: httpx.Response) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower().lstrip(".")
    if suffix in AUDIO_SUFFIXES:
        return suffix
    ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return _SUFFIX_FOR_TYPE.get(ctype, "audio")


def mix_files(parts: list[tuple[Path, float]], dest: Path) -> Path:
    """Σ weight·file, decoded block by block (bounded memory), as a float WAV at 44.1 kHz.

    Shorter files count as silence past their end, so the result is as long as the longest.
    """
    streams = [(iter_blocks(path, MIX_BLOCK_FRAMES), weight) for path, weight in parts]
    with sf.SoundFile(dest, "w", SAMPLE_RATE, 2, subtype="FLOAT", format="WAV") as out:
        while True:
            blocks = [(next(it, None), weight) for it, weight in streams]
            present = [(b, w) for b, w in blocks if b is not None]
            if not present:
                break
            acc = np.zeros((max(len(b) for b, _ in present), 2), dtype=np.float32)
            for block, weight in present:
                acc[: len(block)] += weight * block
            out.write(acc)
    return dest
