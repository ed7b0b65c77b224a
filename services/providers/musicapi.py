"""MusicAPI.ai Sonic stems (``https://api.musicapi.ai/api/v1``), per shared/providers/musicapi.md.

Flow: import the audio to a clip (``POST /sonic/upload {url}`` → ``clip_id``, synchronous,
~20 s) → ``POST /sonic/stems/{basic|full} {clip_id}`` → ``task_id`` → poll ``GET
/sonic/task/{task_id}`` (HTTP 202 while not ready) every 15 s → download the stems (see
``remote.py`` for the shared part).

Open or inferred points, resolved defensively:
- The import takes a public URL only: the user's URL as given, or this app's file server
  (``services.public_files``) when ``STEMDECK_PUBLIC_BASE_URL`` is set; otherwise an upload
  fails before any call with a message saying how to fix it.
- Whether stems accept an imported clip is not stated (third parties do it): a refusal is
  shown with MusicAPI's own reason.
- Neither the import (≈2 credits) nor the stems create has an idempotency key, so neither is
  repeated once it may have reached the server (5xx, read timeout, dropped connection); 429
  is retried honouring ``Retry-After``. The clip id is remembered on the job before the
  create and the task id right after it, so a resumed job neither imports nor creates again.
- Cadence: every 15 s (the docs ask for 15–25 s), configurable per instance or with
  ``MUSICAPI_POLL_INTERVAL_S`` (the sandbox uses 2 s).
- Task states: HTTP 202 / ``type: not_ready`` → queued; ``type`` ∈ {failed, timeout,
  forbidden, api_error} → failed (auto-refunded, per the SDK); ``code: 200`` → done only
  when every clip is terminal — any ``failed`` clip fails the job, ``pending``/``running``
  keep polling, unknown states count as running and are logged.
- How stems appear in ``data[]`` is undocumented: a stem-type field
  (``stem_type_group_name``/``stem_type``/``stem``) wins, else the last parenthesised part of
  the clip ``title`` ("Song (Vocals)"), else the title. Stems are mapped by those names only,
  never by position or count (the set drifts: 2/12 vs 4/24); ``full`` keeps whatever comes.
- Errors: the body varies (``error``/``message``/``detail``/``type``); 401 key, 402 credits,
  403 credits or subscription when its message says so, refused content (moderation,
  copyright) → rejected, else a key problem; 400/404/422 rejected; 429 rate limit; 5xx
  unavailable. A 200 carrying ``code`` ≠ 200 is mapped the same way by that code.
- Prices: basic 15, full 75 credits per call (official guide) plus ≈2 for the import
  (third-party figure); balance from ``GET /get-credits`` (``credits`` + ``extra_credits``).
- Limits: imports up to 8 min (newer guide; an older page said 6–60 s).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote

import httpx

from services import public_files
from services.config import Settings
from services.errors import InputRejected, InsufficientCredits, MalformedResponse, ProviderError
from services.progress import ProgressEvent
from services.providers import keys
from services.providers.base import (
    Capabilities,
    ModeSpec,
    RunContext,
    SeparationRequest,
)
from services.providers.http import ProviderRejected, error_for_status, json_body, safe_detail
from services.providers.kie import TWELVE
from services.providers.remote import Plan, RemoteProvider, RemoteStatus, RunState
from services.providers.retry import parse_retry_after

log = logging.getLogger(__name__)

IMPORT_TIMEOUT = httpx.Timeout(30.0, read=180.0)  # the import is synchronous (~20 s)
# mode id → (stems, credits per call)
_MODES: dict[str, tuple[tuple[str, ...], int]] = {
    "basic": (("vocals", "instrumental"), 15),
    "full": (TWELVE, 75),
}
_TASK_FAILED = {"failed", "timeout", "forbidden", "api_error"}
_CLIP_RUNNING = {"pending", "running", "queued", "submitted", "streaming"}
_STEM_FIELDS = ("stem_type_group_name", "stem_type", "stem")
_TITLE_STEM = re.compile(r"\(([^()]+)\)\s*$")
_REFUSED_WORDS = ("moderat", "copyright", "content", "nsfw", "policy")


class MusicAPIProvider(RemoteProvider):
    name = "musicapi"
    default_base_url = "https://api.musicapi.ai/api/v1"
    poll_interval_s = 15.0  # the docs ask for 15–25 s between polls
    base_deadline_s = 600.0
    capabilities = Capabilities(
        display_name="MusicAPI.ai",
        modes=(
            ModeSpec(
                "basic",
                "2 stems (vocals / instrumental)",
                _MODES["basic"][0],
                "Sonic stems/basic: 15 credits, plus about 2 to import the audio.",
            ),
            ModeSpec(
                "full",
                "Full (up to 12 stems)",
                TWELVE,
                "Sonic stems/full: 75 credits, plus about 2 to import the audio.",
            ),
        ),
        input_kinds=("url", "file"),
        max_duration_s=8 * 60,
        needs_key=True,
        pricing_unit="credits per call (15 or 75, + ≈2 per import)",
        description="Suno-based stems for audio imported by public URL; polled every 15 s.",
    )

    def __init__(
        self,
        settings: Settings,
        *,
        public: public_files.PublicFiles | None = None,
        **options: Any,
    ) -> None:
        super().__init__(settings, **options)
        if options.get("poll_interval_s") is None:
            configured = keys.resolve(self.name, "POLL_INTERVAL_S")
            try:
                self.poll_interval_s = float(configured) if configured else self.poll_interval_s
            except ValueError:
                log.warning("musicapi: MUSICAPI_POLL_INTERVAL_S=%r is not a number", configured)
        self.public = public or public_files.for_settings(settings)
        self.capabilities = public_files.url_only(type(self).capabilities, self.public)
        self._sources: dict[str, str] = {}  # task id → the clip it separates

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    def plan(self, request: SeparationRequest) -> Plan:
        if request.mode not in _MODES:
            raise InputRejected(
                f"MusicAPI.ai has no mode {request.mode!r}; pick one of {', '.join(_MODES)}."
            )
        if request.preprocessing:
            raise InputRejected("MusicAPI.ai offers no pre-processing options.")
        stems, credits = _MODES[request.mode]
        extra = tuple(s for s in request.stems if s not in stems)
        if any(s != "instrumental" for s in extra):
            raise InputRejected(
                "MusicAPI.ai returns fixed stems per mode; only an extra instrumental "
                "(mixed locally) can be asked for."
            )
        if request.mode == "full":
            return Plan({"kind": "full", "credits": credits}, extra, keep_extras=True)
        return Plan({"kind": "basic", "credits": credits}, stems, keep_extras=False)

    # --- flow --------------------------------------------------------------------------------

    def submit(
        self,
        request: SeparationRequest,
        plan: Plan,
        ctx: RunContext,
        state: RunState,
        deadline: float,
    ) -> str:
        clip_id = state.get("clip_id")
        if not clip_id:
            audio_url = self.public.public_url(request, self.display)
            ctx.progress(ProgressEvent(0.02, "importing the audio into MusicAPI.ai"))
            imported = self._ok(
                self.call(
                    "POST",
                    self.url("/sonic/upload"),
                    idempotent=False,  # costs credits, no idempotency key
                    deadline=deadline,
                    json={"url": audio_url},
                    headers=self.auth_headers(),
                    timeout=IMPORT_TIMEOUT,
                )
            )
            clip_id = _field(imported, "clip_id")
            if not clip_id:
                raise MalformedResponse("MusicAPI.ai imported the audio without a clip id.")
            state.set("clip_id", clip_id)
        created = self._ok(
            self.call(
                "POST",
                self.url(f"/sonic/stems/{plan.params['kind']}"),
                idempotent=False,
                deadline=deadline,
                json={"clip_id": clip_id},
                headers=self.auth_headers(),
            )
        )
        task_id = _field(created, "task_id")
        if not task_id:
            raise MalformedResponse("MusicAPI.ai created the stems task without a task id.")
        self._sources[task_id] = clip_id
        return task_id

    def poll(self, remote_id: str, deadline: float) -> RemoteStatus:
        response = self.call(
            "GET",
            self.url(f"/sonic/task/{quote(remote_id, safe='')}"),
            idempotent=True,
            deadline=deadline,
            headers=self.auth_headers(),
        )
        if response.status_code == 202:
            return RemoteStatus("queued")
        body = self._ok(response)
        kind = str(body.get("type") or "").lower()
        if kind in _TASK_FAILED:
            reason = safe_detail(body.get("error") or body.get("message") or kind)
            return RemoteStatus("failed", message=f"{reason} (credits are refunded)")
        clips = body.get("data")
        if kind == "not_ready" or not clips:
            return RemoteStatus("queued")
        if not isinstance(clips, list) or not all(isinstance(c, dict) for c in clips):
            raise MalformedResponse("MusicAPI.ai's task answer has no list of clips.")
        clips = [c for c in clips if c.get("clip_id") != self._sources.get(remote_id)]
        states = [str(c.get("state") or "").lower() for c in clips]
        if "failed" in states:
            failed = next(c for c, s in zip(clips, states, strict=True) if s == "failed")
            reason = safe_detail(failed.get("error") or failed.get("message") or "a stem failed")
            return RemoteStatus("failed", message=reason)
        if not all(s == "succeeded" for s in states):
            unknown = {s for s in states if s not in _CLIP_RUNNING and s != "succeeded"}
            if unknown:
                log.warning("musicapi: unknown clip states %s, treated as running", unknown)
            return RemoteStatus("running")
        return RemoteStatus("succeeded", {_stem_name(c): c.get("audio_url") for c in clips})

    def check_connection(self) -> str:
        """For the Settings page: the key works, and the balance (``GET /get-credits``)."""
        credits, extra = self._credits()
        return f"Connected. Balance: {credits:g} credits + {extra:g} extra credits."

    def balance(self) -> float:
        """Credits left: subscription plus extra credits (both are spent on stems)."""
        return float(sum(self._credits()))

    def _credits(self) -> tuple[float, float]:
        body = self._ok(
            self.call("GET", self.url("/get-credits"), idempotent=True, headers=self.auth_headers())
        )
        credits, extra = body.get("credits"), body.get("extra_credits") or 0
        if not isinstance(credits, int | float) or not isinstance(extra, int | float):
            raise MalformedResponse("MusicAPI.ai's balance answer has no credits.")
        return credits, extra

    # --- answers and errors ------------------------------------------------------------------

    def _ok(self, response: httpx.Response) -> dict[str, Any]:
        """The JSON object of a 2xx answer; a ``code`` other than 200 inside it is an error."""
        body = json_body(response, self.display)
        if not isinstance(body, dict):
            raise MalformedResponse("MusicAPI.ai answered with JSON that is not an object.")
        code = body.get("code")
        if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
            raise self.error(code, _message(body), None)
        return body

    def error_for(self, response: httpx.Response) -> ProviderError:
        try:
            body = response.json()
        except ValueError:
            body = None
        message = _message(body) if isinstance(body, dict) else ""
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return self.error(response.status_code, message, retry_after)

    def error(self, status: int, message: str, retry_after: float | None) -> ProviderError:
        detail = safe_detail(message, (self._api_key or "",))
        lower = detail.lower()
        if status == 402 or (status == 403 and "credit" in lower):
            return InsufficientCredits(
                "Your MusicAPI.ai account has too few credits for this job; top it up and retry."
            )
        if status == 403 and "subscription" in lower:
            return InsufficientCredits(
                "Your MusicAPI.ai account has no active subscription, which stems need."
            )
        if status == 403 and any(word in lower for word in _REFUSED_WORDS):
            return ProviderRejected(f"MusicAPI.ai refused this audio ({detail}).")
        return error_for_status(self.display, status, detail if status < 500 else "", retry_after)


def _field(body: dict[str, Any], name: str) -> str | None:
    """``name`` at the top level or inside ``data`` (schemas differ between readings)."""
    value = body.get(name)
    if value is None and isinstance(body.get("data"), dict):
        value = body["data"].get(name)
    return value if isinstance(value, str) and value else None


def _message(body: dict[str, Any]) -> str:
    for key in ("error", "message", "detail", "msg"):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("message") or value.get("code")
        if value:
            return str(value)
    return str(body.get("type") or "")


def _stem_name(clip: dict[str, Any]) -> str:
    """A stem-type field when present, else "Song (Vocals)" → "Vocals", else the title."""
    for field in _STEM_FIELDS:
        value = clip.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
    title = str(clip.get("title") or "").strip()
    found = _TITLE_STEM.search(title)
    return found.group(1).strip() if found else (title or str(clip.get("clip_id") or "unnamed"))
