"""Soundverse stem separation (``https://api.soundverse.ai``), per shared/providers/soundverse.md.

Flow: one synchronous ``POST /v1/generate/stem-separation/{vocals|instruments|all-stems}``
with ``{"audioUrl": …}``; the answer is the stem list itself (``[{audioName, audioUrl}]``),
whose files are downloaded at once (see ``remote.py`` for the shared download and mixing).

Open or inferred points, resolved defensively:
- Input is a public URL only: the user's URL as given, or this app's file server
  (``services.public_files``) when ``STEMDECK_PUBLIC_BASE_URL`` is set; otherwise an upload
  fails before any call with a message saying how to fix it. ``input_kinds`` says the same.
- The call is synchronous and may take minutes: it gets its own read timeout
  (``sync_timeout_s``, 300 s) and runs in a helper thread so progress (and a cancel) keeps
  flowing. A cancel abandons the request; the provider may still bill it.
- No job id, idempotency key or price exists, so the POST is never repeated once it may have
  reached the server (5xx, read timeout, dropped connection); only 429 and connection
  failures before sending are retried. For the same reason a job restarted after the call
  was sent (remembered on the job) stops with a clear message instead of paying again.
- Modes are the three path segments. ``vocals`` returns vocals only; the instrumental is the
  original minus those vocals, mixed here (README rule 4). ``instruments`` returns five stems
  and no vocals (not a mixed instrumental); an ``instrumental`` stem may be asked for in the
  ``instruments``/``all-stems`` modes and is the sum of the returned instruments.
- Stems are matched by ``audioName`` case-insensitively, never by position.
- HTTP codes are undocumented: 401/403 key, 402 or a message about credits/quota/plan →
  credits, 400/404/422 and ``{"success": false}`` (NSFW/artist texts, even inside a 200) →
  rejected, 429 rate limit, 5xx unavailable. ``Detail``/``detail`` (string or FastAPI list)
  and ``message`` are read for the reason.
- A JSON object carrying a ``message_id``/``job_id`` instead of the stem array (a third-party
  reading of an async variant) is reported as an unsupported answer rather than polled.
- Result links have no published lifetime and cannot be refreshed (no id to ask again):
  an expired link fails the job with a clear message.
- Price and balance are unpublished: estimates are unknown (``credits=None``).
- Limits are unpublished: no size/duration cap is declared (other Soundverse endpoints cap
  URLs at 10 MB, which may apply here too).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpx

from services import public_files
from services.config import Settings
from services.errors import InputRejected, InsufficientCredits, MalformedResponse, ProviderError
from services.progress import ProgressEvent
from services.providers.base import (
    Capabilities,
    ModeSpec,
    RunContext,
    SeparatedStem,
    SeparationRequest,
)
from services.providers.http import (
    ProviderRejected,
    error_for_status,
    error_message,
    json_body,
    safe_detail,
)
from services.providers.remote import (
    Plan,
    RemoteProvider,
    RemoteStatus,
    ResultExpired,
    RunState,
)
from services.providers.retry import parse_retry_after

log = logging.getLogger(__name__)

INSTRUMENTS = ("drums", "bass", "guitar", "piano", "other")
_MODES: dict[str, tuple[str, ...]] = {
    "vocals": ("vocals", "instrumental"),
    "instruments": INSTRUMENTS,
    "all-stems": ("vocals", *INSTRUMENTS),
}
_CREDIT_WORDS = ("credit", "quota", "plan", "balance", "insufficient")
HEARTBEAT_S = 1.0
SENT_FACT = "sync_call_sent"
CAPABILITIES = Capabilities(
    display_name="Soundverse",
    modes=(
        ModeSpec(
            "vocals",
            "Vocals / instrumental",
            _MODES["vocals"],
            "Soundverse returns the vocals; the instrumental is the original minus them, "
            "mixed on this machine.",
        ),
        ModeSpec(
            "instruments",
            "Instruments (5 stems, no vocals)",
            INSTRUMENTS,
            "Drums, bass, guitar, piano and other, without a vocal stem.",
        ),
        ModeSpec(
            "all-stems", "All stems (6)", _MODES["all-stems"], "Vocals plus five instruments."
        ),
    ),
    input_kinds=("url", "file"),
    needs_key=True,
    pricing_unit="plan (per-call price not published)",
    description="Synchronous hosted separation of a public audio URL; billed by plan.",
)


class SoundverseProvider(RemoteProvider):
    name = "soundverse"
    capabilities = CAPABILITIES
    default_base_url = "https://api.soundverse.ai"
    sync_timeout_s = 300.0

    def __init__(
        self,
        settings: Settings,
        *,
        sync_timeout_s: float | None = None,
        public: public_files.PublicFiles | None = None,
        **options: Any,
    ) -> None:
        super().__init__(settings, **options)
        if sync_timeout_s is not None:
            self.sync_timeout_s = sync_timeout_s
        self.public = public or public_files.for_settings(settings)
        self.capabilities = public_files.url_only(CAPABILITIES, self.public)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    def plan(self, request: SeparationRequest) -> Plan:
        if request.mode not in _MODES:
            raise InputRejected(
                f"Soundverse has no mode {request.mode!r}; pick one of {', '.join(_MODES)}."
            )
        if request.preprocessing:
            raise InputRejected("Soundverse offers no pre-processing options.")
        wanted = _MODES[request.mode]
        extra = tuple(s for s in request.stems if s not in wanted)
        if any(s != "instrumental" for s in extra):
            raise InputRejected(
                "Soundverse returns fixed stems per mode; only an extra instrumental "
                "(mixed locally) can be asked for."
            )
        return Plan({"path": request.mode}, wanted + extra)

    # --- the run ---------------------------------------------------------------------------

    def run(self, request: SeparationRequest, ctx: RunContext) -> list[SeparatedStem]:
        self.api_key()
        plan = self.plan(request)
        audio_url = self.public.public_url(request, self.display)
        deadline = time.monotonic() + self.deadline_for(request)
        state = RunState(ctx, self.fingerprint(request))
        if state.get(SENT_FACT):
            raise ProviderError(
                "An earlier attempt of this job already sent the track to Soundverse, which may "
                "have charged for it, and its result cannot be fetched again. Start a new job "
                "to separate it again."
            )
        state.set(SENT_FACT, str(int(time.time())))
        ctx.progress(ProgressEvent(0.0, f"sending to {self.display}"))
        response = self._in_background(
            lambda: self.call(
                "POST",
                self.url(f"/v1/generate/stem-separation/{plan.params['path']}"),
                idempotent=False,
                deadline=deadline,
                json={"audioUrl": audio_url},
                headers=self.auth_headers(),
                timeout=httpx.Timeout(30.0, read=self.sync_timeout_s),
            ),
            request,
            ctx,
        )
        status = RemoteStatus("succeeded", self._stems(response))
        files = self.download_all("", status, ctx, deadline, request)
        return self.assemble(plan, files, request, ctx)

    def _in_background(
        self, send: Any, request: SeparationRequest, ctx: RunContext
    ) -> httpx.Response:
        """Run the long request in a thread; report progress (where a cancel lands) meanwhile."""
        future: Future[httpx.Response] = Future()

        def work() -> None:
            try:
                future.set_result(send())
            except BaseException as exc:  # handed to the waiting thread, raised there
                future.set_exception(exc)

        threading.Thread(target=work, name="soundverse-request", daemon=True).start()
        started = time.monotonic()
        expected_s = max(10.0, request.duration_s * 0.5)
        while True:
            try:
                return future.result(timeout=HEARTBEAT_S)
            except FutureTimeout:
                fraction = 1.0 - math.exp(-(time.monotonic() - started) / expected_s)
                ctx.progress(ProgressEvent(0.05 + 0.7 * fraction, f"{self.display}: separating"))

    def poll(self, remote_id: str, deadline: float) -> RemoteStatus:
        """Asked for fresh links after one expired: a synchronous result has none to give."""
        raise ResultExpired(
            "Soundverse's result links expired before they could be downloaded, and a "
            "finished separation cannot be fetched again; run the job again."
        )

    def check_connection(self) -> str:
        """For the Settings page: an empty request is refused for its body only if the key works."""
        response = self.client.post(
            self.url("/v1/generate/stem-separation/vocals"), json={}, headers=self.auth_headers()
        )
        if response.status_code in (401, 403, 429) or response.status_code >= 500:
            raise self.error_for(response)
        return "Connected (key accepted). Soundverse has no balance endpoint."

    # --- answers and errors ----------------------------------------------------------------

    def _stems(self, response: httpx.Response) -> dict[str, object]:
        body = json_body(response, self.display)
        if isinstance(body, dict):
            if body.get("success") is False or "Detail" in body or "detail" in body:
                raise self.error_for(response)
            if body.get("message_id") or body.get("job_id"):
                raise MalformedResponse(
                    "Soundverse answered with a job id instead of stems; this asynchronous "
                    "variant of the API is not supported."
                )
        if not isinstance(body, list):
            raise MalformedResponse("Soundverse answered without the list of stems.")
        stems: dict[str, object] = {}
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get("audioName"), str):
                raise MalformedResponse("Soundverse sent a stem without a name.")
            stems[item["audioName"]] = item.get("audioUrl")
        return stems

    def error_for(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        message = safe_detail(error_message(response), (self._api_key or "",))
        if status < 400:  # {"success": false, …} inside a 200
            return ProviderRejected(f"Soundverse refused the request: {message or 'no reason'}.")
        if status not in (401, 403) and any(w in message.lower() for w in _CREDIT_WORDS):
            return InsufficientCredits(
                f"Your Soundverse plan has no credits left for this job ({message})."
            )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return error_for_status(self.display, status, message, retry_after)
