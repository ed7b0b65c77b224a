"""MusicGPT Extraction (``api.musicgpt.com/api/public/v1``), per shared/providers/musicgpt.md.

Flow: multipart ``POST /Extraction`` (the audio file, ``stems`` and ``preprocessing_options``
as JSON-encoded strings) → poll ``GET /byId?conversionType=EXTRACTION&task_id=…`` → download
the stems (see ``remote.py`` for the shared part).

Open or inferred points, resolved defensively:
- Auth is the raw key in ``Authorization`` (no ``Bearer``), as in every official example.
- No idempotency key exists, so a create is never repeated once it may have reached the
  server (5xx, read timeout, dropped connection): the user gets a clear error instead of a
  possible second charge. Only 429 and connection failures before sending are retried.
- The task id is remembered on the job right after the create, so a restarted job polls it
  instead of submitting (and paying) again.
- The extraction result schema is undocumented: stem maps are read from
  ``conversion_path_wav``, ``conversion_path`` and an object-valued ``audio_url``, each either
  a JSON-encoded string or an object; WAV links win over MP3 for the same stem. A plain
  string ``audio_url`` is never taken as a stem (identity by name only).
- Status: ``COMPLETED`` succeeded; ``FAILED``/``ERROR`` failed (reason from ``status_msg``);
  ``PENDING``/``QUEUED``/``IN_QUEUE`` queued; anything else counts as running and is logged.
- Poll every 5 s: ``byId`` allows 200 calls/min per account, shared by all jobs.
- Error bodies are undocumented: ``detail`` (FastAPI lists included), then ``message``, then
  ``error`` are read; codes map by HTTP status (401/403 key, 402 credits, 400/404/409/422
  rejected, 429 rate limit, 5xx unavailable). A 2xx with ``success: false`` is a rejection.
- An empty stem list makes MusicGPT pick drums/bass/piano/guitar (no vocals): StemDeck never
  sends one — the custom mode refuses an empty selection instead.
- Modes 4 and 6 ask for the named stems and compute ``other`` locally as the original minus
  them (MusicGPT has no residual stem); with pre-processing on, removed noise/echo/reverb
  ends up in that residual.
- Price: unpublished, so estimates are unknown; ``credit_estimate`` and ``conversion_cost``
  are remembered on the job as reported.
- Input by URL (``audio_url``) only when built with ``send_urls=True`` and the job has a
  source URL; by default the validated bytes are uploaded.
- Webhooks are unsigned: a configured ``webhook_url`` should carry a secret token
  (:func:`services.providers.webhooks.url_token`) and is only a hint; results come from polling.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import httpx

from services.errors import InputRejected, MalformedResponse, ProviderError
from services.providers.base import (
    Capabilities,
    ModeSpec,
    RunContext,
    SeparationRequest,
)
from services.providers.http import (
    ProviderRejected,
    error_for_status,
    error_message,
    json_body,
    safe_detail,
)
from services.providers.normalize import canonical_stem
from services.providers.remote import Plan, RemoteProvider, RemoteStatus, RunState
from services.providers.retry import parse_retry_after

log = logging.getLogger(__name__)

STEMS: tuple[str, ...] = (
    "vocals",
    "instrumental",
    "male_vocal",
    "female_vocal",
    "lead_vocal",
    "back_vocal",
    "bass",
    "drums",
    "guitar",
    "piano",
    "keys",
    "strings",
    "winds",
    "rhythm_guitar",
    "solo_guitar",
    "acoustic_guitar",
    "electric_guitar",
    "kick_drum",
    "snare_drum",
    "toms",
    "hi_hat",
    "ride",
    "crash",
)
_BY_CANONICAL = {canonical_stem(name): name for name in STEMS}
PREPROCESSING = {"denoise": "Denoise", "deecho": "Deecho", "dereverb": "Dereverb"}
# mode id → the MusicGPT stems asked for; "other" in a mode's stems is mixed locally
_MODES: dict[str, tuple[str, ...]] = {
    "2": ("vocals", "instrumental"),
    "4": ("vocals", "drums", "bass"),
    "6": ("vocals", "drums", "bass", "guitar", "piano"),
    "custom": (),
}
_QUEUED = {"PENDING", "QUEUED", "IN_QUEUE"}
_RUNNING = {"PROCESSING", "IN_PROGRESS"}
_FAILED = {"FAILED", "ERROR"}
# stem maps in order of preference (later ones override earlier ones)
_RESULT_FIELDS = ("audio_url", "conversion_path", "conversion_path_wav")
_RESIDUAL = "other computed locally as the original minus the returned stems"


class MusicGPTProvider(RemoteProvider):
    name = "musicgpt"
    default_base_url = "https://api.musicgpt.com/api/public/v1"
    poll_interval_s = 5.0
    capabilities = Capabilities(
        display_name="MusicGPT",
        modes=(
            ModeSpec("2", "2 stems (vocals / instrumental)", _MODES["2"], "Both made by MusicGPT."),
            ModeSpec("4", "4 stems", ("vocals", "drums", "bass", "other"), f"With {_RESIDUAL}."),
            ModeSpec(
                "6",
                "6 stems",
                ("vocals", "drums", "bass", "guitar", "piano", "other"),
                f"With {_RESIDUAL}.",
            ),
            ModeSpec("custom", "Pick stems", (), "Any of MusicGPT's 23 stems, e.g. kick or snare."),
        ),
        selectable_stems=tuple(_BY_CANONICAL),
        preprocessing=tuple(PREPROCESSING),
        input_kinds=("file", "url"),
        needs_key=True,
        pricing_unit="credits (price not published)",
        description="Hosted extraction of up to 23 named stems with optional clean-up.",
    )

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self.api_key(), "accept": "application/json"}

    def plan(self, request: SeparationRequest) -> Plan:
        if request.mode not in _MODES:
            raise InputRejected(
                f"MusicGPT has no mode {request.mode!r}; pick one of {', '.join(_MODES)}."
            )
        mode_stems = self.capabilities.mode(request.mode).stems
        asked = list(_MODES[request.mode])
        wanted = list(mode_stems)
        for stem in request.stems:
            provider_name = _BY_CANONICAL.get(stem) or (stem if stem in STEMS else None)
            if provider_name is None:
                raise InputRejected(
                    f"MusicGPT cannot extract {stem!r}; choose from: {', '.join(_BY_CANONICAL)}."
                )
            if provider_name not in asked:
                asked.append(provider_name)
                wanted.append(canonical_stem(provider_name))
        if not asked:
            raise InputRejected("Pick at least one stem for MusicGPT to extract.")
        unknown = [p for p in request.preprocessing if p.lower() not in PREPROCESSING]
        if unknown:
            raise InputRejected(
                f"MusicGPT has no pre-processing {unknown[0]!r}; "
                f"choose from: {', '.join(PREPROCESSING)}."
            )
        pre = [PREPROCESSING[p.lower()] for p in request.preprocessing]
        return Plan({"stems": asked, "preprocessing": pre}, tuple(wanted))

    def submit(
        self,
        request: SeparationRequest,
        plan: Plan,
        ctx: RunContext,
        state: RunState,
        deadline: float,
    ) -> str:
        use_url = bool(self.send_urls and request.source_url)
        form = {
            "audio_url": request.source_url if use_url and request.source_url else "",
            "stems": json.dumps(plan.params["stems"]),
            "preprocessing_options": json.dumps(plan.params["preprocessing"]),
        }
        if self.webhook_url:
            form["webhook_url"] = self.webhook_url
        response = self.call(
            "POST",
            self.url("/Extraction"),
            idempotent=False,
            deadline=deadline,
            form=form,
            upload=None if use_url else request.input_path,
            upload_field="audio_file",
            headers=self.auth_headers(),
        )
        body = self._body(response)
        task_id = body.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise MalformedResponse("MusicGPT accepted the extraction without a task id.")
        if isinstance(body.get("credit_estimate"), int | float):
            ctx.remember("credit_estimate", str(body["credit_estimate"]))
        return task_id

    def poll(self, remote_id: str, deadline: float) -> RemoteStatus:
        body = self._body(
            self.call(
                "GET",
                self.url("/byId"),
                idempotent=True,
                deadline=deadline,
                params={"conversionType": "EXTRACTION", "task_id": remote_id},
                headers=self.auth_headers(),
            )
        )
        conversion = body.get("conversion")
        if not isinstance(conversion, dict):
            raise MalformedResponse("MusicGPT's status answer has no conversion object.")
        status = str(conversion.get("status") or "").upper()
        if status == "COMPLETED":
            stems = _stem_map(conversion)
            if not stems:
                raise MalformedResponse("MusicGPT completed the extraction without stem links.")
            return RemoteStatus("succeeded", stems)
        if status in _FAILED:
            reason = conversion.get("status_msg") or conversion.get("message")
            return RemoteStatus("failed", message=safe_detail(reason))
        if status in _QUEUED:
            return RemoteStatus("queued")
        if status not in _RUNNING:
            log.warning("musicgpt: unknown conversion status %r, treated as running", status)
        return RemoteStatus("running")

    def check_connection(self) -> str:
        """For the Settings page: a lookup of a task that cannot exist proves the key works."""
        with contextlib.suppress(ProviderRejected):  # "not found" comes after the key check
            self.call(
                "GET",
                self.url("/byId"),
                idempotent=True,
                params={"conversionType": "EXTRACTION", "task_id": "stemdeck-connection-check"},
                headers=self.auth_headers(),
            )
        return "Connected (key accepted). MusicGPT has no balance endpoint."

    # --- envelope and errors -----------------------------------------------------------------

    def _body(self, response: httpx.Response) -> dict[str, Any]:
        body = json_body(response, self.display)
        if not isinstance(body, dict):
            raise MalformedResponse("MusicGPT answered with JSON that is not an object.")
        if body.get("success") is False:
            raise self.error_for(response)
        return body

    def error_for(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        if status < 400:  # success: false inside a 2xx
            status = 400
        detail = (
            safe_detail(error_message(response), (self._api_key or "",)) if status < 500 else ""
        )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return error_for_status(self.display, status, detail, retry_after)


def _stem_map(conversion: dict[str, Any]) -> dict[str, object]:
    """Merge the stem maps of every known result field; WAV links override MP3 ones."""
    merged: dict[str, object] = {}
    for field in _RESULT_FIELDS:
        value = conversion.get(field)
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                value = json.loads(value)
            except ValueError:
                log.warning("musicgpt: %s is not valid JSON", field)
                continue
        if isinstance(value, dict):
            merged.update({k: v for k, v in value.items() if isinstance(v, str) and v})
    return merged
