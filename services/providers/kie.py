"""kie.ai "Suno API" vocal/stem separation (``https://api.kie.ai``), per shared/providers/kie_ai.md.

The same contract is served by sunoapi.org and api.box: point ``KIE_BASE_URL`` (and
``KIE_UPLOAD_BASE_URL``) at them. Flow: host the validated file with the free File Upload API
(``POST <upload base>/api/file-stream-upload`` → ``downloadUrl``) → ``POST
/api/v1/vocal-removal/generate {audioUrl, type, callBackUrl}`` → poll ``GET
/api/v1/vocal-removal/record-info?taskId=…`` every 3 s (and take the callback) → download the
MP3 stems (see ``remote.py`` for the shared part).

Open or inferred points, resolved defensively:
- Own audio goes in as ``audioUrl`` (the input third-party clients send to kie.ai and that
  sunoapi.org documents as an alternative to ``taskId``+``audioId``; kie.ai's own schema does
  not list it). The file is hosted with kie's upload service, so the provider fetches its own
  host, not this app; with ``send_urls=True`` the user's URL is sent as given instead. The
  ``taskId``+``audioId`` path (tracks generated on the platform) is not offered: StemDeck
  inputs are files. ``split_stem_advanced`` (sunoapi.org only) is not offered either.
- The hosted URL is remembered on the job before the create, so a resumed job never uploads
  again; the task id is remembered right after, so it never creates (pays) again.
- ``callBackUrl`` is documented as required. Sent, in order: the configured webhook URL
  (``KIE_CALLBACK_URL``), this app's callback hook when a public base URL is configured
  (``services.public_files``), else ``https://callback.invalid/stemdeck`` — a name that can
  never resolve, so nothing receives the result; polling alone then finishes the job and
  ``CALLBACK_EXCEPTION`` is read as success when the stem links are present.
- Callbacks are verified with ``X-Webhook-Timestamp`` + ``X-Webhook-Signature`` = base64
  HMAC-SHA256(key, ``taskId.timestamp``) when ``KIE_WEBHOOK_HMAC_KEY`` is set: constant-time
  compare, ±300 s window (unpublished), each signature accepted once (replay). The body is
  not covered by the signature, so a callback is only recorded as a hint: stems are always
  taken from ``record-info``, an authenticated read.
- Business errors come as ``{code, msg, data}``, often inside HTTP 200; both code tables are
  accepted (union). ``429`` means "rate limited" in the newer table and "insufficient
  credits" in the older one: on a create it counts as credits when ``msg`` says so, or when
  the balance endpoint shows fewer credits than the mode costs; otherwise it is a rate limit
  and retried like 405/430 (a refused create was not run, so retrying cannot charge twice).
- Creates are never repeated after a 5xx, a read timeout or a dropped connection (no
  idempotency key; re-submits are charged). Polls and uploads (free; same file name
  overwrites) are retried.
- ``record-info``: ``successFlag`` (or ``status``) and ``response`` (or a
  ``vocal_removal_info`` object) are read; ``PENDING``/unknown → running; camelCase and
  snake_case URL fields are both accepted, null ones skipped ("up to 12" stems), and the
  ``originUrl`` (the source mix) is not downloaded.
- ``split_stem``'s ``vocalUrl`` is probably lead vocals only: an extra ``instrumental`` is the
  original minus every vocal stem returned.
- Prices: 10 credits (``separate_vocal``), 50 (``split_stem``), upload free; balance from
  ``/api/v1/chat/credit`` (kie.ai), falling back to ``/api/v1/generate/credit`` (sunoapi.org).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from services import public_files
from services import stems as stem_names
from services.config import Settings
from services.errors import (
    AuthError,
    InputRejected,
    InsufficientCredits,
    MalformedResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from services.progress import ProgressEvent
from services.providers import keys
from services.providers.base import (
    Capabilities,
    ModeSpec,
    RunContext,
    SeparationRequest,
)
from services.providers.http import ProviderRejected, json_body, safe_detail
from services.providers.remote import Plan, RemoteProvider, RemoteStatus, RunState
from services.providers.retry import parse_retry_after
from services.providers.webhooks import DEFAULT_TOLERANCE_S, WebhookRejected

log = logging.getLogger(__name__)

DISPLAY = "kie.ai"
DEFAULT_UPLOAD_BASE_URL = "https://kieai.redpandaai.co"
PLACEHOLDER_CALLBACK = "https://callback.invalid/stemdeck"
UPLOAD_PATH = "stemdeck/inputs"
CREDIT_PATHS = ("/api/v1/chat/credit", "/api/v1/generate/credit")
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
TWELVE = (
    "vocals",
    "vocals.backing",
    "drums",
    "bass",
    "guitar",
    "keys",
    "strings",
    "winds.brass",
    "winds.woodwinds",
    "percussion",
    "synth",
    "fx",
)
# mode id (the API's ``type``) → (stems, credits per call)
_MODES: dict[str, tuple[tuple[str, ...], int]] = {
    "separate_vocal": (("vocals", "instrumental"), 10),
    "split_stem": (TWELVE, 50),
}
_FAILED = {"CREATE_TASK_FAILED", "GENERATE_AUDIO_FAILED"}
_RATE_CODES = {405, 429, 430}
_CREDIT_WORDS = ("credit", "balance", "insufficient")
_RATE_WORDS = ("rate", "frequen", "too many")
# envelope code → (error class, what happened); union of the old and new tables
_CODES: dict[int, tuple[type[ProviderError], str]] = {
    400: (ProviderRejected, "rejected the request as invalid"),
    404: (ProviderRejected, "does not know this task or path"),
    408: (ProviderTimeout, "timed out upstream (no result for over 10 minutes); run it again"),
    409: (ProviderRejected, "reports a conflict (the record already exists)"),
    413: (ProviderRejected, "refused the request as too long"),
    422: (ProviderRejected, "rejected the request as invalid"),
    451: (ProviderRejected, "could not fetch the source audio"),
    455: (ProviderUnavailable, "is under maintenance; try again later"),
    501: (ProviderError, "could not generate the stems"),
    505: (ProviderRejected, "has this feature disabled for your account"),
    531: (ProviderError, "could not generate the stems (credits were refunded)"),
}
# callback / record-info ``errorCode`` → reason shown for a failed task
_REASONS = {
    400: "the audio was refused (e.g. copyrighted content or an unsupported format)",
    408: "it timed out",
    413: "the audio matches an existing work",
    451: "the source audio could not be fetched",
    501: "generation failed",
    531: "generation failed; the credits were refunded",
}


def callback_signature(key: str, task_id: str, timestamp: str | int) -> str:
    """``base64(HMAC-SHA256(key, taskId + "." + timestamp))`` as kie.ai sends it."""
    mac = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


def verify_callback(
    headers: Mapping[str, str],
    body: bytes,
    key: str,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a callback's signature; return its JSON payload or raise WebhookRejected."""
    lower = {k.lower(): v for k, v in headers.items()}
    stamp = lower.get(TIMESTAMP_HEADER.lower(), "").strip()
    signature = lower.get(SIGNATURE_HEADER.lower(), "").strip()
    if not stamp or not signature:
        raise WebhookRejected("no signature headers")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookRejected("signature timestamp is not a number") from exc
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise WebhookRejected("signature timestamp outside the tolerance (stale or replayed)")
    task_id = _task_id(body)
    if not hmac.compare_digest(callback_signature(key, task_id, stamp), signature):
        raise WebhookRejected("signature does not match")
    return json.loads(body)


def _task_id(body: bytes) -> str:
    try:
        payload = json.loads(body)
        task_id = payload["data"]["task_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookRejected("callback body has no data.task_id") from exc
    if not isinstance(task_id, str) or not task_id:
        raise WebhookRejected("callback body has no data.task_id")
    return task_id


class KieCallbacks:
    """The receiving end of kie.ai callbacks: verify, refuse replays, remember per task."""

    def __init__(
        self,
        hmac_key: str | None,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = hmac_key
        self.tolerance_s = tolerance_s
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self.received: dict[str, dict[str, Any]] = {}  # task id → last accepted payload

    def verify(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The payload of an acceptable callback, else WebhookRejected.

        Without a key nothing can be authenticated: the callback is accepted as a hint only.
        """
        if self._key is None:
            _task_id(body)
            return json.loads(body)
        now = self._clock()
        payload = verify_callback(headers, body, self._key, tolerance_s=self.tolerance_s, now=now)
        lower = {k.lower(): v for k, v in headers.items()}
        seen = f"{lower[SIGNATURE_HEADER.lower()]}|{lower[TIMESTAMP_HEADER.lower()]}"
        with self._lock:
            self._seen = {k: t for k, t in self._seen.items() if now - t <= self.tolerance_s}
            if seen in self._seen:
                raise WebhookRejected("callback already received (replay)")
            self._seen[seen] = now
        return payload

    def receive(self, headers: Mapping[str, str], body: bytes) -> int:
        """A web handler: 200 for an accepted callback, 401 for a refused one."""
        try:
            payload = self.verify(headers, body)
        except WebhookRejected as exc:
            log.warning("kie: callback refused: %s", exc)
            return 401
        task_id = payload["data"]["task_id"]
        with self._lock:
            self.received[task_id] = payload
        log.info("kie: callback for task %s (code %s)", task_id, payload.get("code"))
        return 200


class KieProvider(RemoteProvider):
    name = "kie"
    default_base_url = "https://api.kie.ai"
    poll_interval_s = 3.0  # the community SDK's cadence; the docs suggest 3–10 s
    base_deadline_s = 600.0  # split_stem takes 3–5 min
    capabilities = Capabilities(
        display_name=DISPLAY,
        modes=(
            ModeSpec(
                "separate_vocal",
                "2 stems (vocals / instrumental)",
                _MODES["separate_vocal"][0],
                "10 credits per call.",
            ),
            ModeSpec(
                "split_stem",
                "Up to 12 stems",
                TWELVE,
                "50 credits per call. Instruments the track does not contain are not returned.",
            ),
        ),
        input_kinds=("file", "url"),
        max_bytes=100 * 1024 * 1024,  # the upload service's recommended maximum
        needs_key=True,
        pricing_unit="credits per call (10 or 50)",
        description="The Suno stem engine as sold by kie.ai (same API: sunoapi.org, api.box); "
        "MP3 results.",
    )

    def __init__(
        self,
        settings: Settings,
        *,
        upload_base_url: str | None = None,
        hmac_key: str | None = None,
        public: public_files.PublicFiles | None = None,
        **options: Any,
    ) -> None:
        super().__init__(settings, **options)
        upload = keys.resolve(self.name, "UPLOAD_BASE_URL", explicit=upload_base_url)
        self.upload_base_url = (upload or DEFAULT_UPLOAD_BASE_URL).rstrip("/")
        self.webhook_url = self.webhook_url or keys.resolve(self.name, "CALLBACK_URL")
        key = keys.resolve(self.name, "WEBHOOK_HMAC_KEY", explicit=hmac_key)
        if key:
            keys.remember_secret(key)
        self.callbacks = KieCallbacks(key)
        self._public = public
        self._rng = random.Random()

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key()}"}

    def plan(self, request: SeparationRequest) -> Plan:
        if request.mode not in _MODES:
            raise InputRejected(
                f"kie.ai has no mode {request.mode!r}; pick one of {', '.join(_MODES)}."
            )
        if request.preprocessing:
            raise InputRejected("kie.ai offers no pre-processing options.")
        stems, credits = _MODES[request.mode]
        extra = tuple(s for s in request.stems if s not in stems)
        if any(s != stem_names.INSTRUMENTAL for s in extra):
            raise InputRejected(
                "kie.ai returns fixed stems per mode; only an extra instrumental "
                "(mixed locally) can be asked for."
            )
        if request.mode == "split_stem":  # "up to 12": only what the track contains comes back
            return Plan({"type": request.mode, "credits": credits}, extra, keep_extras=True)
        return Plan({"type": request.mode, "credits": credits}, stems, keep_extras=False)

    # --- flow --------------------------------------------------------------------------------

    def submit(
        self,
        request: SeparationRequest,
        plan: Plan,
        ctx: RunContext,
        state: RunState,
        deadline: float,
    ) -> str:
        audio_url = state.get("audio_url")
        if not audio_url:
            if self.send_urls and request.source_url:
                audio_url = request.source_url
            else:
                ctx.progress(ProgressEvent(0.02, "uploading to kie.ai"))
                audio_url = self._upload(request, deadline)
            state.set("audio_url", audio_url)
        body = {
            "audioUrl": audio_url,
            "type": plan.params["type"],
            "callBackUrl": self.callback_url(),
        }
        data = self.envelope(
            "POST",
            self.url("/api/v1/vocal-removal/generate"),
            idempotent=False,
            cost=plan.params["credits"],
            deadline=deadline,
            json=body,
            headers=self.auth_headers(),
        )
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise MalformedResponse("kie.ai created the task without a task id.")
        return task_id

    def _upload(self, request: SeparationRequest, deadline: float) -> str:
        """Host the validated bytes with kie's File Upload API; return their download URL."""
        path = request.input_path
        data = self.envelope(
            "POST",
            self.upload_base_url + "/api/file-stream-upload",
            idempotent=True,  # free, and the same file name overwrites
            deadline=deadline,
            form={
                "uploadPath": UPLOAD_PATH,
                "fileName": f"{request.input_hash[:32]}{path.suffix.lower()}",
            },
            upload=path,
            headers=self.auth_headers(),
        )
        url = (data.get("downloadUrl") or data.get("fileUrl")) if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise MalformedResponse("kie.ai's upload answer has no download URL.")
        return url

    def callback_url(self) -> str:
        if self.webhook_url:
            return self.webhook_url
        public = self._public or public_files.for_settings(self.settings)
        return public.hook_url(self.name, self.callbacks.receive) or PLACEHOLDER_CALLBACK

    def poll(self, remote_id: str, deadline: float) -> RemoteStatus:
        data = self.envelope(
            "GET",
            self.url("/api/v1/vocal-removal/record-info"),
            idempotent=True,
            deadline=deadline,
            params={"taskId": remote_id},
            headers=self.auth_headers(),
        )
        if not isinstance(data, dict):
            raise MalformedResponse("kie.ai's task answer has no data object.")
        flag = str(data.get("successFlag") or data.get("status") or "PENDING").upper()
        info = data.get("response") or data.get("vocal_removal_info") or {}
        stems = _stem_urls(info) if isinstance(info, dict) else {}
        if flag == "SUCCESS" or (flag == "CALLBACK_EXCEPTION" and stems):
            if not stems:
                raise MalformedResponse("kie.ai finished the task without stem links.")
            return RemoteStatus("succeeded", stems)
        if flag in _FAILED or flag == "CALLBACK_EXCEPTION":
            return RemoteStatus("failed", message=_failure(data, self._api_key))
        if flag != "PENDING":
            log.warning("kie: unknown successFlag %r, treated as running", flag)
        return RemoteStatus("running")

    def derivation(
        self, stem: str, files: Mapping[str, tuple[str, Path]], request: SeparationRequest
    ) -> list[tuple[Path, float]]:
        """``instrumental`` = the original minus every vocal stem (lead and backing)."""
        vocal = [p for s, (_, p) in files.items() if stem_names.family(s) == stem_names.VOCALS]
        if stem == stem_names.INSTRUMENTAL and vocal:
            return [(request.input_path, 1.0)] + [(p, -1.0) for p in vocal]
        return super().derivation(stem, files, request)

    def balance(self) -> float:
        """Remaining credits (kie.ai path first, then the sunoapi.org/api.box one)."""
        first: ProviderRejected | None = None
        for path in CREDIT_PATHS:
            try:
                data = self.envelope(
                    "GET", self.url(path), idempotent=True, headers=self.auth_headers()
                )
            except ProviderRejected as exc:
                first = first or exc
                continue
            if not isinstance(data, int | float):
                raise MalformedResponse("kie.ai's balance answer is not a number.")
            return float(data)
        assert first is not None
        raise first

    def check_connection(self) -> str:
        """For the Settings page: the key works, and the balance."""
        return f"Connected. Balance: {self.balance():g} credits."

    # --- envelope and errors -----------------------------------------------------------------

    def envelope(
        self,
        method: str,
        url: str,
        *,
        idempotent: bool,
        cost: float | None = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """``data`` of a ``{code: 200, msg, data}`` answer; business errors become typed errors.

        Rate-limit codes inside an HTTP 200 are retried here with the shared backoff (HTTP 429
        and 5xx are retried by ``call``); ``cost`` marks a create, for the ambiguous 429.
        """
        end = time.monotonic() + self.retry_policy.deadline_s
        if deadline is not None:
            end = min(end, deadline)
        failures = 0
        while True:
            response = self.call(
                method,
                url,
                idempotent=idempotent,
                deadline=deadline,
                errors=lambda r: self.error_for(r, cost),
                **kwargs,
            )
            body = json_body(response, self.display)
            if not isinstance(body, dict) or "code" not in body:
                raise MalformedResponse("kie.ai answered without its {code, msg, data} envelope.")
            code = _int(body.get("code"))
            if code == 200 and body.get("success") is not False:
                return body.get("data")
            error = self.code_error(code, body.get("msg"), cost)
            failures += 1
            wait = self.retry_policy.backoff(failures, self._rng)
            retry = isinstance(error, RateLimited) and failures < self.retry_policy.max_attempts
            if not retry or time.monotonic() + wait > end:
                raise error
            log.info("kie: code %s, retry %d in %.1f s", code, failures, wait)
            time.sleep(wait)

    def error_for(self, response: httpx.Response, cost: float | None = None) -> ProviderError:
        """An HTTP error: the envelope's ``code`` when there is one, else the HTTP status."""
        code, message = response.status_code, ""
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict):
                message = str(body.get("msg") or body.get("message") or "")
                inner = _int(body.get("code"))
                if inner and inner != 200:
                    code = inner
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return self.code_error(code, message, cost, retry_after)

    def code_error(
        self,
        code: int | None,
        message: object,
        cost: float | None = None,
        retry_after: float | None = None,
    ) -> ProviderError:
        detail = safe_detail(message, (self._api_key or "",))
        said = f" ({detail})" if detail else ""
        if code == 401 or code == 403:
            return AuthError(
                f"kie.ai refused the API key (code {code}); check it on the Settings page."
            )
        if code == 402 or (code == 429 and cost is not None and self._means_credits(detail, cost)):
            return InsufficientCredits(
                f"Your kie.ai account has too few credits for this job; top it up and retry{said}."
            )
        if code in _RATE_CODES:
            wait = f" Try again in {retry_after:.0f} s." if retry_after else " Try again shortly."
            return RateLimited(
                f"kie.ai is rate limiting requests (code {code}).{wait}", retry_after
            )
        if code in _CODES:
            cls, what = _CODES[code]
            return cls(f"kie.ai {what} (code {code}){said}.")
        if code is not None and code >= 500:
            return ProviderUnavailable(f"kie.ai is having problems (code {code}); try again later.")
        return ProviderRejected(f"kie.ai rejected the request (code {code}){said}.")

    def _means_credits(self, detail: str, cost: float) -> bool:
        """Old-table 429 (insufficient credits) or new-table 429 (rate limited)?"""
        text = detail.lower()
        if any(word in text for word in _CREDIT_WORDS):
            return True
        if any(word in text for word in _RATE_WORDS):
            return False
        with contextlib.suppress(ProviderError):
            return self.balance() < cost
        return False


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _stem_urls(info: Mapping[str, Any]) -> dict[str, object]:
    """The ``…Url``/``…_url`` fields except the source mix (``originUrl``)."""
    return {
        key: value
        for key, value in info.items()
        if key.lower().endswith("url") and key.lower().replace("_", "") != "originurl"
    }


def _failure(data: Mapping[str, Any], key: str | None) -> str:
    code = _int(data.get("errorCode"))
    reason = _REASONS.get(code or 0, "")
    message = safe_detail(data.get("errorMessage"), (key or "",))
    return "; ".join(part for part in (reason, message) if part) or "no reason given"
