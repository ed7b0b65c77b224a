"""AIStemSplitter (``https://api.aistemsplitter.org/v1``), per shared/providers/aistemsplitter.md.

Flow: ``POST /audio/uploads`` (reserve) → ``POST <uploadUrl>`` with the bytes and
``uploadHeaders`` → ``POST /audio/splits`` with an ``Idempotency-Key`` → ``GET
/audio/splits/{id}`` every 2 s → download the stems (see ``remote.py`` for the shared part).

Open or inferred points, resolved defensively:
- ``stemModel``: only ``4s``/``6s`` (the REST examples) are sent, never the ``htdemucs*`` aliases
  whose relation to them is our reading. ``outputFormat`` is always ``wav``: lossless for the
  user's export and for local mixing, and the default is undocumented.
- The 2-stem mode is not offered by the API: it runs ``4s`` and sums drums + bass + other into
  ``instrumental`` locally (README rule 4); it costs the same as 4 stems.
- ``Idempotency-Key``: ``stemdeck-`` + a hash of (provider, input hash, mode, stems, options) —
  the job cache key without the export format, which the provider never sees — and of the
  split's ``input`` object. The upload result is remembered on the job before the create,
  so every retry and every resumed attempt sends the identical body with the same key
  and is answered with the same split, never a second charge. A new job uploads anew and so
  gets a new key: reusing a key with a different body would be refused as a conflict. (A
  ``direct_url`` job has the same body every time, so re-runs get the same split back.)
- The upload goes by ``POST`` (what the shipped SDKs do) without ``Authorization`` (the URL
  carries its own token); its errors are plain ``error``/``message`` strings. A refused upload
  is reported as such, not as a bad key. Upload and result URLs pass the address guard.
- Creates are retried on 5xx/timeouts only because of the idempotency key; 429 always.
- Errors: the envelope's ``error.code`` wins (UNAUTHORIZED → AuthError, INSUFFICIENT_CREDITS →
  InsufficientCredits, VALIDATION_ERROR → ProviderRejected, RATE_LIMITED → RateLimited,
  SERVER_ERROR → ProviderUnavailable), else the HTTP status; a 2xx body without
  ``success: true`` and a ``data`` object is a MalformedResponse. 404 (unlisted) → rejected.
- Unknown status values count as running and are logged; the shape of a failed split's
  ``error`` is undocumented, so a string, ``{message}`` or ``{code}`` are all read.
- ``creditsUsed`` rounding is undocumented: estimates round the duration up.
- Input by URL (``direct_url``) only when built with ``send_urls=True`` and the job has a
  source URL; by default the validated bytes are uploaded, so the provider separates exactly
  what was hashed.
- Webhooks: ``webhook_url`` is forwarded when configured; verify deliveries with
  :func:`services.providers.webhooks.verify` (HMAC over ``t.rawBody``, 300 s tolerance).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any
from urllib.parse import quote

import httpx

from services import stems as stem_names
from services.errors import InputRejected, MalformedResponse, ProviderError
from services.providers.base import (
    Capabilities,
    ModeSpec,
    RunContext,
    SeparationRequest,
)
from services.providers.http import error_for_status, json_body, safe_detail
from services.providers.remote import Plan, RemoteProvider, RemoteStatus, RunState, content_type
from services.providers.retry import parse_retry_after

log = logging.getLogger(__name__)

FOUR = ("vocals", "drums", "bass", "other")
SIX = ("vocals", "drums", "bass", "guitar", "piano", "other")
# mode id → (stemModel, stems returned, keep stems beyond those)
_MODES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "2": ("4s", ("vocals", "instrumental"), False),
    "4": ("4s", FOUR, True),
    "6": ("6s", SIX, True),
}
_CODE_STATUS = {
    "UNAUTHORIZED": 401,
    "INSUFFICIENT_CREDITS": 402,
    "VALIDATION_ERROR": 422,
    "RATE_LIMITED": 429,
    "SERVER_ERROR": 500,
}
_STATES = {
    "queued": "queued",
    "processing": "running",
    "succeeded": "succeeded",
    "failed": "failed",
}


class AIStemSplitterProvider(RemoteProvider):
    name = "aistemsplitter"
    default_base_url = "https://api.aistemsplitter.org/v1"
    poll_interval_s = 2.0  # the official SDKs' cadence
    capabilities = Capabilities(
        display_name="AIStemSplitter",
        modes=(
            ModeSpec(
                "2",
                "2 stems (vocals / instrumental)",
                _MODES["2"][1],
                "Runs the 4-stem model and mixes drums, bass and other into the instrumental "
                "on this machine; billed like 4 stems.",
            ),
            ModeSpec("4", "4 stems", FOUR, "Hosted Demucs, stemModel 4s."),
            ModeSpec(
                "6", "6 stems", SIX, "Hosted Demucs 6-source model (stemModel 6s): + guitar, piano."
            ),
        ),
        input_kinds=("file", "url"),
        needs_key=True,
        pricing_unit="credits (1 per second of audio)",
        description="Hosted Demucs models; pay-as-you-go credits, 1 credit per audio second.",
    )

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    def plan(self, request: SeparationRequest) -> Plan:
        if request.mode not in _MODES:
            raise InputRejected(
                f"AIStemSplitter has no mode {request.mode!r}; pick one of {', '.join(_MODES)}."
            )
        if request.preprocessing:
            raise InputRejected("AIStemSplitter offers no pre-processing options.")
        model, wanted, keep = _MODES[request.mode]
        extra = [s for s in request.stems if s not in wanted]
        if any(s != stem_names.INSTRUMENTAL for s in extra):
            raise InputRejected(
                "AIStemSplitter returns fixed stems per mode; only an extra instrumental "
                "(mixed locally) can be asked for."
            )
        return Plan({"stemModel": model}, wanted + tuple(extra), keep)

    def submit(
        self,
        request: SeparationRequest,
        plan: Plan,
        ctx: RunContext,
        state: RunState,
        deadline: float,
    ) -> str:
        stored = state.get("remote_input")
        if stored:
            source = json.loads(stored)
        else:
            if self.send_urls and request.source_url:
                source = {"type": "direct_url", "url": request.source_url}
            else:
                source = self._upload(request, deadline)
            state.set("remote_input", json.dumps(source, sort_keys=True))
        body: dict[str, Any] = {
            "input": source,
            "stemModel": plan.params["stemModel"],
            "outputFormat": "wav",
        }
        if self.webhook_url:
            body["webhookUrl"] = self.webhook_url
        key = self.idempotency_key(request, source)
        headers = {**self.auth_headers(), "Idempotency-Key": key}
        data = self._data(
            self.call(
                "POST",
                self.url("/audio/splits"),
                idempotent=True,
                deadline=deadline,
                json=body,
                headers=headers,
            )
        )
        split_id = data.get("id")
        if not isinstance(split_id, str) or not split_id:
            raise MalformedResponse("AIStemSplitter created a split without an id.")
        if isinstance(data.get("creditsUsed"), int | float):
            ctx.remember("credits_used", str(data["creditsUsed"]))
        return split_id

    def idempotency_key(self, request: SeparationRequest, source: dict[str, str]) -> str:
        """Same request and same input object → same key (so the body is identical too)."""
        material = self.fingerprint(request) + json.dumps(source, sort_keys=True)
        return "stemdeck-" + hashlib.sha256(material.encode()).hexdigest()[:40]

    def _upload(self, request: SeparationRequest, deadline: float) -> dict[str, str]:
        """Reserve an upload slot, send the bytes, return the split's ``uploaded_file`` input."""
        path = request.input_path
        reservation = self._data(
            self.call(
                "POST",
                self.url("/audio/uploads"),
                idempotent=True,  # a reservation costs nothing; a spare one just expires
                deadline=deadline,
                json={
                    "filename": path.name,
                    "contentType": content_type(path),
                    "contentLength": path.stat().st_size,
                },
                headers=self.auth_headers(),
            )
        )
        upload_id = reservation.get("uploadId")
        upload_url = reservation.get("uploadUrl")
        extra = reservation.get("uploadHeaders") or {}
        if not (isinstance(upload_id, str) and isinstance(upload_url, str) and upload_url):
            raise MalformedResponse("AIStemSplitter reserved an upload without an id or URL.")
        if not isinstance(extra, dict):
            raise MalformedResponse("AIStemSplitter sent upload headers that are not a map.")
        self.guard(upload_url)
        headers = {str(k): str(v) for k, v in extra.items()}
        headers["Content-Type"] = content_type(path)
        stored = self._data(
            self.call(
                "POST",
                upload_url,
                idempotent=True,  # same slot, same bytes
                deadline=deadline,
                upload=path,
                headers=headers,
                errors=self._upload_error,
            )
        )
        file_url, key = stored.get("url"), stored.get("key")
        if not (isinstance(file_url, str) and isinstance(key, str)):
            raise MalformedResponse("AIStemSplitter's upload answer lacks the file URL or key.")
        return {
            "type": "uploaded_file",
            "uploadId": upload_id,
            "fileUrl": file_url,
            "storageKey": key,
        }

    def poll(self, remote_id: str, deadline: float) -> RemoteStatus:
        data = self._data(
            self.call(
                "GET",
                self.url(f"/audio/splits/{quote(remote_id, safe='')}"),
                idempotent=True,
                deadline=deadline,
                headers=self.auth_headers(),
            )
        )
        raw_state = data.get("status")
        state = _STATES.get(str(raw_state))
        if state is None:
            log.warning("aistemsplitter: unknown split status %r, treated as running", raw_state)
            state = "running"
        stems = data.get("stems") or {}
        if state == "succeeded" and not (isinstance(stems, dict) and stems):
            raise MalformedResponse("AIStemSplitter finished a split without stem URLs.")
        return RemoteStatus(state, stems if isinstance(stems, dict) else {}, _failure(data))

    def check_connection(self) -> str:
        """For the Settings page: the key works, and the balance (``GET /credits``)."""
        balance, unit = self._credits()
        return f"Connected. Balance: {balance:g} {unit} of audio."

    def balance(self) -> float:
        """Credits left (1 credit = 1 second of source audio)."""
        return self._credits()[0]

    def _credits(self) -> tuple[float, str]:
        data = self._data(
            self.call("GET", self.url("/credits"), idempotent=True, headers=self.auth_headers())
        )
        balance, unit = data.get("balance"), data.get("unit", "seconds")
        if not isinstance(balance, int | float):
            raise MalformedResponse("AIStemSplitter's balance answer has no balance.")
        return float(balance), str(unit)

    # --- envelope and errors -----------------------------------------------------------------

    def _data(self, response: httpx.Response) -> dict[str, Any]:
        """``data`` of a ``{"success": true, "data": {...}}`` envelope."""
        body = json_body(response, self.display)
        if isinstance(body, dict) and body.get("success") is False:
            raise self.error_for(response)
        if not (isinstance(body, dict) and body.get("success") is True):
            raise MalformedResponse("AIStemSplitter answered without its success envelope.")
        data = body.get("data")
        if not isinstance(data, dict):
            raise MalformedResponse("AIStemSplitter answered without a data object.")
        return data

    def error_for(self, response: httpx.Response) -> ProviderError:
        code, message = _error_fields(response)
        status = _CODE_STATUS.get(code or "", response.status_code)
        if status < 400:  # success: false with a code we do not know
            status = 400
        detail = safe_detail(message, (self._api_key or "",)) if status < 500 else ""
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return error_for_status(self.display, status, detail, retry_after)

    def _upload_error(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        if status == 429 or status >= 500:
            return error_for_status(self.display, status)
        _code, message = _error_fields(response)
        detail = safe_detail(message, (self._api_key or "",))
        return ProviderError(
            f"AIStemSplitter refused the file upload (HTTP {status})"
            f"{': ' + detail if detail else ''}; try again."
        )


def _error_fields(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from the nested envelope or the upload worker's plain strings."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    error = body.get("error")
    if isinstance(error, dict):
        return (str(error.get("code") or "") or None), str(error.get("message") or "")
    return None, str(error or body.get("message") or "")


def _failure(data: dict[str, Any]) -> str:
    error = data.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("code")
    return safe_detail(error) if error else ""
