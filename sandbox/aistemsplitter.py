"""AIStemSplitter emulator: the ``/v1`` contract of shared/providers/aistemsplitter.md.

Implements ``GET /credits``, ``POST /audio/uploads`` (reservation), ``POST|PUT
/upload/{id}`` (the upload worker, token-checked, plain-string errors), ``POST /audio/splits``
(validation, ``Idempotency-Key``: same key + same body → same split and no new charge; same key
+ different body → 409 VALIDATION_ERROR), ``GET /audio/splits/{id}`` (queued → processing →
succeeded/failed, fresh expiring stem links per call) and one signed terminal webhook
(``AIStemSplitter-Signature: t=…,v1=…``). 1 credit = 1 s of source audio, rounded up,
charged at creation (failed splits are not refunded: undocumented).

Stems: vocals = 200–4000 Hz band; bass below 150 Hz; drums above 9 kHz (4s: above 6 kHz);
guitar 4.5–6 kHz and piano 6.5–8 kHz (6s); ``other`` is the exact remainder, so every
model's stems sum back to the input.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sandbox.common import (
    Band,
    EmulatedJob,
    Emulator,
    Request,
    Residual,
    Response,
    StemSpec,
    duration_s,
    iso,
    json_response,
    render_stems,
)
from services.errors import InputRejected

FOUR_S: dict[str, StemSpec] = {
    "vocals": Band(200, 4000),
    "drums": Band(6000, None),
    "bass": Band(None, 150),
    "other": Residual(("vocals", "drums", "bass")),
}
SIX_S: dict[str, StemSpec] = {
    "vocals": Band(200, 4000),
    "drums": Band(9000, None),
    "bass": Band(None, 150),
    "guitar": Band(4500, 6000),
    "piano": Band(6500, 8000),
    "other": Residual(("vocals", "drums", "bass", "guitar", "piano")),
}
MODELS = {
    "4s": FOUR_S,
    "6s": SIX_S,
    "htdemucs": FOUR_S,
    "htdemucs_ft": FOUR_S,
    "htdemucs_6s": SIX_S,
}
SIGNATURE_HEADER = "AIStemSplitter-Signature"
UPLOAD_LIFETIME_S = 15 * 60


class AIStemSplitterEmulator(Emulator):
    name = "aistemsplitter"
    api_prefix = "/v1"
    default_api_key = "ast_live_sandbox_0123456789abcdef"
    default_balance = 6200.0

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.uploads: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, tuple[str, str]] = {}  # key → (body hash, split id)
        self._create_lock = threading.Lock()
        self.route("GET", r"/credits", self.credits)
        self.route("POST", r"/audio/uploads", self.reserve_upload)
        self.route("POST", r"/audio/splits", self.create_split)
        self.route("GET", r"/audio/splits/(?P<id>[^/]+)", self.get_split)
        for verb in ("POST", "PUT"):
            self.route(verb, r"/upload/(?P<id>[^/]+)", self.receive_upload, auth=False, api=False)

    # --- contract pieces ------------------------------------------------------------------------

    def authorized(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {self.api_key}":
            return None
        return self.error(401, "Missing or invalid API key", "UNAUTHORIZED")

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        code = code or ("SERVER_ERROR" if status >= 500 else "VALIDATION_ERROR")
        return json_response(
            status, {"success": False, "error": {"code": code, "message": message}}
        )

    def ok(self, data: dict[str, Any], status: int = 200) -> Response:
        return json_response(status, {"success": True, "data": data})

    def credits(self, request: Request) -> Response:
        return self.ok({"balance": self.ledger.balance, "unit": "seconds"})

    def reserve_upload(self, request: Request) -> Response:
        if limited := self.rate_limited("api"):
            return limited
        body = request.json()
        if not isinstance(body, dict):
            return self.error(422, "Body must be a JSON object")
        filename, ctype, length = (
            body.get("filename"),
            body.get("contentType"),
            body.get("contentLength"),
        )
        if not (isinstance(filename, str) and filename and "/" not in filename):
            return self.error(422, "filename is required")
        if not (isinstance(ctype, str) and "/" in ctype):
            return self.error(422, "contentType must be a MIME type")
        if not (isinstance(length, int) and length > 0):
            return self.error(422, "contentLength must be a positive integer")
        upload_id = "upl_" + uuid.uuid4().hex[:16]
        token = secrets.token_urlsafe(16)
        expires = time.time() + UPLOAD_LIFETIME_S
        self.uploads[upload_id] = {
            "filename": filename,
            "contentLength": length,
            "token": token,
            "expires": expires,
            "path": None,
        }
        return self.ok(
            {
                "uploadId": upload_id,
                "uploadUrl": f"{self.origin}/upload/{upload_id}",
                "uploadHeaders": {"X-Upload-Token": token},
                "expiresAt": iso(expires),
            }
        )

    def receive_upload(self, request: Request) -> Response:
        upload = self.uploads.get(request.params["id"])
        if upload is None or request.headers.get("X-Upload-Token") != upload["token"]:
            return json_response(403, {"success": False, "error": "Invalid upload token"})
        if time.time() > upload["expires"]:
            return json_response(410, {"success": False, "error": "Upload reservation expired"})
        if not request.body or len(request.body) > upload["contentLength"]:
            return json_response(400, {"success": False, "message": "Body size does not match"})
        folder = self.dir / "uploads" / request.params["id"]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / upload["filename"]
        path.write_bytes(request.body)
        upload["path"] = path
        key = f"audio/api/sandbox/{request.params['id']}/{upload['filename']}"
        upload["key"] = key
        upload["url"] = self.link(path, request.headers.get("Content-Type", "audio/mpeg"), 86400)
        return self.ok({"url": upload["url"], "key": key})

    def create_split(self, request: Request) -> Response:
        if limited := self.rate_limited("api"):
            return limited
        body = request.json()
        if not isinstance(body, dict):
            return self.error(422, "Body must be a JSON object")
        key = request.headers.get("Idempotency-Key")
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._create_lock:  # one create at a time keeps idempotency airtight
            if key and key in self.idempotency:
                seen_digest, split_id = self.idempotency[key]
                if seen_digest != digest:
                    return self.error(409, "Idempotency-Key was used with a different request")
                return self.ok(self._created(self.jobs[split_id]), 201)
            problem, source = self._resolve_input(body)
            if problem:
                return self.error(422, problem)
            model = body.get("stemModel", "6s")
            fmt = body.get("outputFormat", "mp3")
            webhook = body.get("webhookUrl")
            if model not in MODELS:
                return self.error(422, f"stemModel must be one of {', '.join(MODELS)}")
            if fmt not in ("mp3", "wav"):
                return self.error(422, "outputFormat must be mp3 or wav")
            if webhook is not None and not (
                isinstance(webhook, str) and webhook.startswith("http")
            ):
                return self.error(422, "webhookUrl must be an http(s) URL")
            assert source is not None
            try:
                duration = duration_s(source)
            except InputRejected:
                return self.error(422, "The audio source could not be decoded")
            cost = float(math.ceil(duration))
            split_id = "split_" + uuid.uuid4().hex[:24].upper()
            if not self.ledger.charge(split_id, cost):
                return self.error(402, "Not enough credits for this audio", "INSUFFICIENT_CREDITS")
            job = self.new_job(
                split_id,
                model=model,
                format=fmt,
                credits=cost,
                duration=duration,
                filename=source.name,
            )
            if key:
                self.idempotency[key] = (digest, split_id)
        stems = MODELS[model]
        out = self.dir / "splits" / split_id
        self.launch(
            job,
            lambda: render_stems(source, stems, list(stems), out, fmt),
            (lambda j: self._notify(j, webhook)) if webhook else None,
        )
        return self.ok(self._created(job), 201)

    def get_split(self, request: Request) -> Response:
        if limited := self.rate_limited("api"):
            return limited
        job = self.jobs.get(request.params["id"])
        if job is None:
            return self.error(404, "Split not found", "NOT_FOUND")
        phase = job.phase()
        stems = {}
        if phase == "succeeded":
            ctype = "audio/wav" if job.meta["format"] == "wav" else "audio/mpeg"
            stems = {name: self.link(path, ctype) for name, path in job.outputs.items()}
        return self.ok(
            {
                "id": job.id,
                "status": phase,
                "stemModel": job.meta["model"],
                "filename": job.meta["filename"],
                "durationSeconds": round(job.meta["duration"], 3),
                "creditsUsed": job.meta["credits"],
                "createdAt": iso(job.created_at),
                "updatedAt": iso(job.updated_at),
                "stems": stems,
                "error": {"message": "Separation failed"} if phase == "failed" else None,
            }
        )

    # --- helpers --------------------------------------------------------------------------------

    def _created(self, job: EmulatedJob) -> dict[str, Any]:
        return {
            "id": job.id,
            "status": "queued",
            "creditsUsed": job.meta["credits"],
            "createdAt": iso(job.created_at),
        }

    def _resolve_input(self, body: dict[str, Any]) -> tuple[str | None, Path | None]:
        source = body.get("input")
        if not isinstance(source, dict):
            return "input is required", None
        kind = source.get("type")
        if kind == "uploaded_file":
            upload = self.uploads.get(str(source.get("uploadId")))
            if upload is None or upload["path"] is None:
                return "uploadId is unknown or its bytes were never sent", None
            if source.get("storageKey") != upload["key"] or source.get("fileUrl") != upload["url"]:
                return "fileUrl/storageKey do not match the upload", None
            return None, upload["path"]
        if kind == "direct_url":
            url = source.get("url")
            if not isinstance(url, str):
                return "input.url is required for direct_url", None
            folder = self.dir / "direct" / uuid.uuid4().hex
            folder.mkdir(parents=True)
            name = Path(url.split("?")[0]).name or "source"
            try:
                return None, self.fetch_source(url, folder / name)
            except Exception:  # any fetch problem is the caller's bad source, as upstream
                return "The audio source URL could not be fetched", None
        return "input.type must be direct_url or uploaded_file", None

    def _notify(self, job: EmulatedJob, url: str) -> None:
        payload = {"event": "audio.split.completed", "data": {"id": job.id, "status": job.phase()}}
        self.deliver(url, payload, SIGNATURE_HEADER)
