"""kie.ai "Suno API" emulator: vocal removal, record-info, credits and the File Upload API.

Implements shared/providers/kie_ai.md §3: ``POST /api/v1/vocal-removal/generate`` (``type``
enum, ``callBackUrl`` presence, either ``audioUrl`` or a registered ``taskId`` + ``audioId``),
``GET /api/v1/vocal-removal/record-info`` (``PENDING`` → ``SUCCESS``/``GENERATE_AUDIO_FAILED``/
``CREATE_TASK_FAILED``, or ``CALLBACK_EXCEPTION`` when the callback could not be delivered),
``GET /api/v1/chat/credit`` and its sunoapi.org alias ``/api/v1/generate/credit``; and, on a
second port (``emulator.upload``), ``/api/file-stream-upload``, ``/api/file-url-upload`` and
``/api/file-base64-upload`` whose ``downloadUrl`` expires after ``upload_ttl_s``.

Business errors use the ``{code, msg, data}`` envelope inside HTTP 200 (``mirror_http=True``
also mirrors the code into the HTTP status); injected ``Fault`` statuses are HTTP-level, as a
gateway's would be, and :meth:`KieEmulator.queue_codes` makes the next calls answer a given
envelope code. ``compat="old"`` switches to the older code table (insufficient credits 429,
rate limit 430, validation 400) instead of the newer one (402, 429, 422).

Credits: 10 (``separate_vocal``) / 50 (``split_stem``) taken at creation and refunded when the
task fails (the 531 text says so). The callback is POSTed once on completion, in snake_case
under ``info_key`` (``vocal_separation_info``, kie.ai; ``vocal_removal_info``, other brands),
signed with ``X-Webhook-Timestamp``/``X-Webhook-Signature`` when ``sign_callbacks`` (the HMAC
key is ``webhook_secret``); ``webhook_mode`` forges, backdates or replays it. A callback URL on
``*.invalid`` is never contacted (counted as undeliverable).

Stems: MP3 by default; ``separate_vocal`` = vocals 200–4000 Hz + the exact remainder;
``split_stem`` = twelve disjoint bands with ``FX`` as the remainder, and any stem quieter than
``absent_below_db`` comes back null ("up to 12").
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import numpy as np
import soundfile as sf

from sandbox.common import (
    Band,
    EmulatedJob,
    Emulator,
    Fault,
    Request,
    Residual,
    Response,
    StemSpec,
    duration_s,
    json_response,
    render_stems,
)
from services.errors import InputRejected
from services.providers.kie import SIGNATURE_HEADER, TIMESTAMP_HEADER, callback_signature

# file slug → (record-info field, callback field, stem_type_group_name)
FIELDS: dict[str, tuple[str, str, str]] = {
    "vocal": ("vocalUrl", "vocal_url", "Vocals"),
    "instrumental": ("instrumentalUrl", "instrumental_url", "Instrumental"),
    "backing_vocals": ("backingVocalsUrl", "backing_vocals_url", "Backing Vocals"),
    "drums": ("drumsUrl", "drums_url", "Drums"),
    "bass": ("bassUrl", "bass_url", "Bass"),
    "guitar": ("guitarUrl", "guitar_url", "Guitar"),
    "piano": ("pianoUrl", "piano_url", "Piano"),
    "keyboard": ("keyboardUrl", "keyboard_url", "Keyboard"),
    "percussion": ("percussionUrl", "percussion_url", "Percussion"),
    "strings": ("stringsUrl", "strings_url", "Strings"),
    "synth": ("synthUrl", "synth_url", "Synth"),
    "fx": ("fxUrl", "fx_url", "FX"),
    "brass": ("brassUrl", "brass_url", "Brass"),
    "woodwinds": ("woodwindsUrl", "woodwinds_url", "Woodwinds"),
}
SEPARATE_VOCAL: dict[str, StemSpec] = {
    "vocal": Band(200, 4000),
    "instrumental": Residual(("vocal",)),
}
_BANDS: dict[str, StemSpec] = {
    "vocal": Band(200, 2000),
    "backing_vocals": Band(2000, 4000),
    "bass": Band(None, 150),
    "guitar": Band(4500, 6000),
    "keyboard": Band(6500, 8000),
    "synth": Band(8000, 9000),
    "strings": Band(9000, 10500),
    "brass": Band(10500, 12000),
    "woodwinds": Band(12000, 12500),
    "percussion": Band(12500, 14000),
    "drums": Band(14000, None),
}
SPLIT_STEM: dict[str, StemSpec] = {**_BANDS, "fx": Residual(tuple(_BANDS))}
TYPES: dict[str, tuple[dict[str, StemSpec], int]] = {
    "separate_vocal": (SEPARATE_VOCAL, 10),
    "split_stem": (SPLIT_STEM, 50),
}
# compat → meaning → envelope code
CODES = {
    "new": {"credits": 402, "rate": 429, "invalid": 422},
    "old": {"credits": 429, "rate": 430, "invalid": 400},
}
Compat = Literal["new", "old"]


class KieUploadEmulator(Emulator):
    """The File Upload API host (``kieai.redpandaai.co``): free, temporary file hosting."""

    name = "kie-upload"
    api_prefix = ""

    def __init__(self, *, upload_ttl_s: float = 86400.0, **options: Any) -> None:
        super().__init__(**options)
        self.upload_ttl_s = upload_ttl_s
        self.stored: dict[str, Path] = {}  # filePath → file
        self.route("POST", r"/api/file-stream-upload", self.stream_upload)
        self.route("POST", r"/api/file-url-upload", self.url_upload)
        self.route("POST", r"/api/file-base64-upload", self.base64_upload)

    def authorized(self, request: Request) -> Response | None:
        if request.headers.get("Authorization", "") == f"Bearer {self.api_key}":
            return None
        return self.error(401, "Unauthorized: invalid or missing API key")

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        return json_response(
            status, {"success": False, "code": status, "msg": message, "data": None}
        )

    def stream_upload(self, request: Request) -> Response:
        form = request.form()
        if form is None or "file" not in form[1]:
            return self.error(400, "file is required (multipart/form-data)")
        fields, files = form
        filename, data = files["file"]
        return self._store(data, fields.get("uploadPath", ""), fields.get("fileName") or filename)

    def url_upload(self, request: Request) -> Response:
        body = request.json()
        url = body.get("fileUrl") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            return self.error(400, "fileUrl is required")
        folder = self.dir / "fetched" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            path = self.fetch_source(url, folder / "download")
        except Exception:  # any fetch problem is the caller's bad URL
            return self.error(400, "Could not download fileUrl within 30 s")
        name = body.get("fileName") or Path(urlsplit(url).path).name or "file"
        return self._store(path.read_bytes(), str(body.get("uploadPath") or ""), str(name))

    def base64_upload(self, request: Request) -> Response:
        body = request.json()
        raw = body.get("base64Data") if isinstance(body, dict) else None
        if not isinstance(raw, str) or not raw:
            return self.error(400, "base64Data is required")
        try:
            data = base64.b64decode(raw.split(",", 1)[-1], validate=True)
        except (binascii.Error, ValueError):
            return self.error(400, "base64Data is not valid base64")
        name = str(body.get("fileName") or f"{uuid.uuid4().hex}.bin")
        return self._store(data, str(body.get("uploadPath") or ""), name)

    def _store(self, data: bytes, upload_path: str, name: str) -> Response:
        if not data:
            return self.error(400, "the file is empty")
        safe_dir = "/".join(p for p in upload_path.split("/") if p not in ("", ".", ".."))
        safe_name = Path(name).name or "file"
        folder = self.dir / "files" / safe_dir
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / safe_name
        path.write_bytes(data)  # the same fileName overwrites, as documented
        file_path = f"{safe_dir}/{safe_name}".lstrip("/")
        self.stored[file_path] = path
        url = self.link(path, "application/octet-stream", self.upload_ttl_s)
        return json_response(
            200,
            {
                "success": True,
                "code": 200,
                "msg": "File uploaded successfully",
                "data": {
                    "fileName": safe_name,
                    "filePath": file_path,
                    "downloadUrl": url,
                    "fileSize": len(data),
                    "mimeType": "application/octet-stream",
                    "uploadedAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                },
            },
        )


class KieEmulator(Emulator):
    name = "kie"
    api_prefix = ""
    default_api_key = "kie_sandbox_0123456789abcdef"
    default_balance = 1000.0

    def __init__(
        self,
        *,
        compat: Compat = "new",
        mirror_http: bool = False,
        info_key: str = "vocal_separation_info",
        require_callback: bool = True,
        accept_audio_url: bool = True,
        sign_callbacks: bool = True,
        output_format: str = "mp3",
        absent_below_db: float = -60.0,
        upload_ttl_s: float = 86400.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.codes = CODES[compat]
        self.mirror_http = mirror_http
        self.info_key = info_key
        self.require_callback = require_callback
        self.accept_audio_url = accept_audio_url
        self.sign_callbacks = sign_callbacks
        self.output_format = output_format
        self.absent_below_db = absent_below_db
        self.upload = KieUploadEmulator(api_key=self.api_key, upload_ttl_s=upload_ttl_s)
        self.music: dict[str, tuple[Path, list[str]]] = {}  # music task → (audio, audio ids)
        self._queued_codes: list[tuple[str, int]] = []
        self.route("POST", r"/api/v1/vocal-removal/generate", self.generate)
        self.route("GET", r"/api/v1/vocal-removal/record-info", self.record_info)
        self.route("GET", r"/api/v1/(?:chat|generate)/credit", self.credit)

    # --- lifecycle and envelope --------------------------------------------------------------

    def start(self) -> str:
        self.upload.start()
        return super().start()

    def stop(self) -> None:
        super().stop()
        self.upload.stop()

    def authorized(self, request: Request) -> Response | None:
        if request.headers.get("Authorization", "") == f"Bearer {self.api_key}":
            return None
        return self.error(401, "You do not have access permissions")

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        http = status if self.mirror_http else 200
        return json_response(http, {"code": status, "msg": message, "data": None})

    def ok(self, data: Any) -> Response:
        return json_response(200, {"code": 200, "msg": "success", "data": data})

    def fault_response(self, fault: Fault) -> Response:
        """Injected statuses are HTTP-level (a gateway's), with the envelope as body."""
        if fault.kind != "status":
            return super().fault_response(fault)
        body = {"code": fault.status, "msg": "Injected fault", "data": None}
        response = json_response(fault.status, body)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        return response

    def rate_limited(self, bucket: str) -> Response | None:
        wait = self.rate_limiter.retry_after(bucket)
        if wait is None:
            return None
        response = self.error(self.codes["rate"], "Call frequency too high, try again later")
        response.headers["Retry-After"] = str(int(wait + 0.999))
        return response

    def queue_codes(self, route: str, *codes: int) -> None:
        """The next calls matching ``route`` (``"METHOD /path"``) answer these codes in HTTP 200."""
        with self._lock:
            self._queued_codes.extend((route, code) for code in codes)

    def dispatch(self, request: Request) -> Response:
        known = any(
            method == request.method and pattern.fullmatch(request.path)
            for method, pattern, _handler, _auth in self._routes
        )
        if not known:  # a real HTTP 404, not a business code: nothing answers there
            return json_response(404, {"code": 404, "msg": "Not found", "data": None})
        if (code := self._take_code(f"{request.method} {request.path}")) is not None:
            return json_response(200, {"code": code, "msg": f"Queued code {code}", "data": None})
        return super().dispatch(request)

    def _take_code(self, call: str) -> int | None:
        with self._lock:
            for i, (route, code) in enumerate(self._queued_codes):
                if re.fullmatch(route, call):
                    del self._queued_codes[i]
                    return code
        return None

    # --- music tasks (the documented input) --------------------------------------------------

    def register_music_task(self, audio: Path) -> tuple[str, list[str]]:
        """A fake finished music task with two variants, as ``/api/v1/generate`` would leave."""
        task_id = uuid.uuid4().hex
        ids = [str(uuid.uuid4()), str(uuid.uuid4())]
        self.music[task_id] = (audio, ids)
        return task_id, ids

    # --- routes --------------------------------------------------------------------------------

    def credit(self, request: Request) -> Response:
        return self.ok(self.ledger.balance)

    def generate(self, request: Request) -> Response:
        if limited := self.rate_limited(self.api_key):
            return limited
        body = request.json()
        if not isinstance(body, dict):
            return self.error(400, "Format error: the body is not valid JSON")
        kind = body.get("type", "separate_vocal")
        invalid = self.codes["invalid"]
        if kind not in TYPES:
            return self.error(invalid, "type must be separate_vocal or split_stem")
        callback = body.get("callBackUrl")
        has_callback = isinstance(callback, str) and callback.startswith(("http://", "https://"))
        if self.require_callback and not has_callback:
            return self.error(invalid, "callBackUrl is required")
        audio_url, music_id, audio_id = (
            body.get("audioUrl"),
            body.get("taskId"),
            body.get("audioId"),
        )
        if audio_url and (music_id or audio_id):
            return self.error(invalid, "Send either audioUrl or taskId + audioId, not both")
        source: str | Path
        if audio_url:
            if not self.accept_audio_url or not isinstance(audio_url, str):
                return self.error(invalid, "taskId and audioId are required")
            source = audio_url
        else:
            audio, ids = self.music.get(str(music_id), (None, []))
            if audio is None or audio_id not in ids:
                return self.error(404, "Music task or audioId not found")
            source = audio
        _spec, cost = TYPES[kind]
        task_id = uuid.uuid4().hex
        if not self.ledger.charge(task_id, cost):
            return self.error(self.codes["credits"], "Insufficient credits, please top up")
        job = self.new_job(
            task_id,
            type=kind,
            cost=cost,
            callback=callback if has_callback else None,
            audio_id=audio_id,
            error_code=None,
            absent=set(),
        )
        self.launch(job, lambda: self._render(job, source), self._finish)
        return self.ok({"taskId": task_id})

    def record_info(self, request: Request) -> Response:
        if limited := self.rate_limited(self.api_key):
            return limited
        task_id = request.arg("taskId")
        if not task_id:
            return self.error(self.codes["invalid"], "taskId is required")
        job = self.jobs.get(task_id)
        if job is None:
            return self.error(404, "Task not found")
        phase = job.phase()
        code = job.meta["error_code"]
        flag = {
            "queued": "PENDING",
            "processing": "PENDING",
            "succeeded": "CALLBACK_EXCEPTION" if job.meta.get("callback_failed") else "SUCCESS",
            "failed": "CREATE_TASK_FAILED" if code == 451 else "GENERATE_AUDIO_FAILED",
        }[phase]
        response = None
        if phase == "succeeded":
            urls = self._urls(job)
            response = {
                "id": None,
                "originUrl": None,
                "originData": [
                    {
                        "duration": job.meta.get("duration"),
                        "audio_url": url,
                        "stem_type_group_name": FIELDS[slug][2],
                        "id": str(uuid.uuid4()),
                    }
                    for slug, url in urls.items()
                    if url
                ],
                **{camel: urls.get(slug) for slug, (camel, _, _) in FIELDS.items()},
            }
        done = phase in ("succeeded", "failed")
        return self.ok(
            {
                "taskId": job.id,
                "musicId": job.meta["audio_id"],
                "callbackUrl": job.meta["callback"],
                "musicIndex": 0,
                "completeTime": int(job.updated_at * 1000) if done else None,
                "response": response,
                "successFlag": flag,
                "createTime": int(job.created_at * 1000),
                "errorCode": code if phase == "failed" else None,
                "errorMessage": job.meta.get("error_message") if phase == "failed" else None,
            }
        )

    # --- work and callbacks --------------------------------------------------------------------

    def _render(self, job: EmulatedJob, source: str | Path) -> dict[str, Path]:
        folder = self.dir / "tasks" / job.id
        folder.mkdir(parents=True)
        if isinstance(source, str):
            try:
                source = self.fetch_source(source, folder / "source")
            except Exception:
                job.meta.update(error_code=451, error_message="Could not fetch the source file")
                raise
        spec, _cost = TYPES[job.meta["type"]]
        try:
            paths = render_stems(source, spec, list(spec), folder / "out", self.output_format)
        except InputRejected:
            job.meta.update(error_code=400, error_message="Unsupported audio format")
            raise
        job.meta["duration"] = round(duration_s(source), 2)
        if job.meta["type"] == "split_stem":
            job.meta["absent"] = {s for s, p in paths.items() if _rms_db(p) < self.absent_below_db}
        return paths

    def _urls(self, job: EmulatedJob) -> dict[str, str | None]:
        ctype = "audio/mpeg" if self.output_format == "mp3" else "audio/wav"
        return {
            slug: None if slug in job.meta["absent"] else self.link(path, ctype)
            for slug, path in job.outputs.items()
        }

    def _finish(self, job: EmulatedJob) -> None:
        failed = job.fail or job.error is not None
        if failed:
            if job.meta["error_code"] is None:
                job.meta.update(error_code=531, error_message="Generation failed")
            self.ledger.charge(f"{job.id}:refund", -job.meta["cost"])
        url = job.meta["callback"]
        if url is None:
            return
        if failed:
            payload = {
                "code": job.meta["error_code"],
                "msg": job.meta["error_message"],
                "data": {"task_id": job.id, self.info_key: None},
            }
        else:
            info = {"origin_url": ""}
            info |= {FIELDS[slug][1]: link for slug, link in self._urls(job).items()}
            payload = {
                "code": 200,
                "msg": "vocal separation generated successfully.",
                "data": {"task_id": job.id, self.info_key: info},
            }
        if not self._deliver(url, job.id, payload) and not failed:
            job.meta["callback_failed"] = True

    def _deliver(self, url: str, task_id: str, payload: dict[str, Any]) -> bool:
        """POST the callback (signed as configured); True when one delivery got a 2xx."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        times = 1
        if self.sign_callbacks:
            key, stamp = self.webhook_secret, int(time.time())
            if self.webhook_mode == "forged":
                key = "forged-key"
            elif self.webhook_mode == "stale":
                stamp -= 3600
            elif self.webhook_mode == "replay":
                times = 2
            headers[TIMESTAMP_HEADER] = str(stamp)
            headers[SIGNATURE_HEADER] = callback_signature(key, task_id, stamp)
        delivered = False
        for _ in range(times):
            status = 0
            if not (urlsplit(url).hostname or "").endswith(".invalid"):
                try:
                    status = httpx.post(
                        url, content=body, headers=headers, timeout=15.0
                    ).status_code
                except httpx.HTTPError:
                    status = 0
            with self._lock:
                self.webhook_deliveries.append(status)
            delivered = delivered or 200 <= status < 300
        return delivered


def _rms_db(path: Path) -> float:
    data, _rate = sf.read(str(path), dtype="float32")
    rms = float(np.sqrt(np.mean(np.square(data)))) if data.size else 0.0
    return 20 * np.log10(max(rms, 1e-12))
