"""MusicAPI.ai emulator: the Sonic upload / stems / task / credits calls of providers/musicapi.md.

Implements ``POST /api/v1/sonic/upload {url}`` (synchronous import of a public URL into a
clip: fetches it, checks ``upload_min_s``–``upload_max_s``, 2 credits), ``POST
/api/v1/sonic/stems/{basic|full} {clip_id}`` (15 / 75 credits → ``task_id``), ``GET
/api/v1/sonic/task/{id}`` (HTTP 202 ``{"type": "not_ready"}`` first, then HTTP 200 with
``code: 200`` and one clip per stem whose ``state`` goes ``running`` → ``succeeded``; a
failed task answers HTTP 200 ``{"type": "failed", "error"}`` and is refunded) and ``GET
/api/v1/get-credits`` (``{credits, extra_credits}``).

Errors in the documented, non-uniform shapes: 401 ``{"error": "Authorization header is
missing."}`` / ``"Invalid authorization format."`` / ``{"message": "Invalid API key."}``; 400
``{"code": 400, "message": …}`` (``"task not found."``, ``"clip not found."``); 403 ``"The
remaining credits are not enough. …"`` (402 with ``credits_status=402``); 429 ``{"message"}``
with ``Retry-After`` past ``create_per_minute`` creates (the docs quote 1 per 3 s); 5xx
``{"type": "api_error", "error"}``.

Stems (invented: the result shape is undocumented) are titled ``"<song> (<Stem>)"``: basic =
Vocals + Instrumental (exact complement); full = the twelve kie.ai bands (same Suno stem
engine), every one returned. MP3 by default.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sandbox.common import (
    EmulatedJob,
    Emulator,
    RateLimiter,
    Request,
    Response,
    StemSpec,
    duration_s,
    iso,
    json_response,
    render_stems,
)
from sandbox.kie import FIELDS, SEPARATE_VOCAL, SPLIT_STEM
from services.errors import InputRejected

KINDS: dict[str, tuple[dict[str, StemSpec], int]] = {
    "basic": (SEPARATE_VOCAL, 15),
    "full": (SPLIT_STEM, 75),
}
UPLOAD_CREDITS = 2.0
NOT_ENOUGH = "The remaining credits are not enough. Please top up or upgrade your plan."


class MusicAPIEmulator(Emulator):
    name = "musicapi"
    api_prefix = "/api/v1"
    default_api_key = "musicapi_sandbox_0123456789abcdef"
    default_balance = 1000.0

    def __init__(
        self,
        *,
        upload_min_s: float = 0.0,
        upload_max_s: float = 480.0,
        upload_latency_s: float = 0.0,
        credits_status: int = 403,
        create_per_minute: int = 20,
        output_format: str = "mp3",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.upload_min_s, self.upload_max_s = upload_min_s, upload_max_s
        self.upload_latency_s = upload_latency_s
        self.credits_status = credits_status
        self.output_format = output_format
        self.create_limiter = RateLimiter(create_per_minute)
        self.clips: dict[str, tuple[Path, str]] = {}  # clip id → (audio, title)
        self.route("POST", r"/sonic/upload", self.upload)
        self.route("POST", r"/sonic/stems/(?P<kind>basic|full)", self.stems)
        self.route("GET", r"/sonic/task/(?P<id>[^/]+)", self.task)
        self.route("GET", r"/get-credits", self.credits)

    # --- contract pieces ------------------------------------------------------------------------

    def authorized(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return json_response(401, {"error": "Authorization header is missing."})
        scheme, _, key = header.partition(" ")
        if scheme != "Bearer" or not key:
            return json_response(401, {"error": "Invalid authorization format."})
        if key != self.api_key:
            return json_response(401, {"message": "Invalid API key."})
        return None

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        if status >= 500:
            return json_response(status, {"type": "api_error", "error": message})
        if status == 429:
            return json_response(status, {"message": message})
        return json_response(status, {"code": status, "message": message})

    def _limited(self) -> Response | None:
        wait = self.create_limiter.retry_after(self.api_key)
        if wait is None:
            return None
        response = self.error(429, "Too many requests, please slow down.")
        response.headers["Retry-After"] = str(int(wait + 0.999))
        return response

    def _charge(self, ref: str, amount: float) -> Response | None:
        if self.ledger.charge(ref, amount):
            return None
        return self.error(self.credits_status, NOT_ENOUGH)

    # --- routes -----------------------------------------------------------------------------------

    def credits(self, request: Request) -> Response:
        return json_response(200, {"credits": self.ledger.balance, "extra_credits": 0.0})

    def upload(self, request: Request) -> Response:
        if limited := self._limited():
            return limited
        body = request.json()
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.strip():
            return self.error(400, "url is required.")
        clip_id = str(uuid.uuid4())
        folder = self.dir / "clips" / clip_id
        folder.mkdir(parents=True)
        try:
            source = self.fetch_source(url, folder / "source")
            length = duration_s(source)
        except InputRejected:
            return self.error(400, "Unsupported audio format.")
        except Exception:  # any fetch problem is the caller's bad URL, as upstream
            return self.error(400, "Unable to download audio from url.")
        if not self.upload_min_s <= length <= self.upload_max_s:
            return self.error(
                400,
                f"Audio duration must be between {self.upload_min_s:g} and "
                f"{self.upload_max_s:g} seconds.",
            )
        if denied := self._charge(f"upload:{clip_id}", UPLOAD_CREDITS):
            return denied
        if self.upload_latency_s and self._stopping.wait(self.upload_latency_s):
            return self.error(503, "Shutting down")
        title = Path(url.split("?")[0]).stem or "Uploaded audio"
        self.clips[clip_id] = (source, title)
        return json_response(200, {"code": 200, "message": "success", "clip_id": clip_id})

    def stems(self, request: Request) -> Response:
        if limited := self._limited():
            return limited
        body = request.json()
        clip_id = body.get("clip_id") if isinstance(body, dict) else None
        if not isinstance(clip_id, str) or not clip_id:
            return self.error(400, "clip_id is required.")
        if clip_id not in self.clips:
            return self.error(400, "clip not found.")
        kind = request.params["kind"]
        spec, cost = KINDS[kind]
        task_id = str(uuid.uuid4())
        if denied := self._charge(task_id, cost):
            return denied
        source, title = self.clips[clip_id]
        job = self.new_job(task_id, kind=kind, cost=cost, clip_id=clip_id, title=title)
        job.meta["clip_ids"] = {slug: str(uuid.uuid4()) for slug in spec}
        out = self.dir / "tasks" / task_id
        self.launch(
            job,
            lambda: render_stems(source, spec, list(spec), out, self.output_format),
            self._refund_if_failed,
        )
        return json_response(200, {"message": "success", "task_id": task_id})

    def task(self, request: Request) -> Response:
        job = self.jobs.get(request.params["id"])
        if job is None:
            return self.error(400, "task not found.")
        phase = job.phase()
        if phase == "queued":
            return json_response(202, {"type": "not_ready", "message": "Task is not ready yet."})
        if phase == "failed":
            return json_response(
                200, {"type": "failed", "error": "Stem separation failed; credits refunded."}
            )
        return json_response(
            200, {"code": 200, "message": "success", "data": self._clips(job, phase)}
        )

    # --- helpers ----------------------------------------------------------------------------------

    def _clips(self, job: EmulatedJob, phase: str) -> list[dict[str, Any]]:
        done = phase == "succeeded"
        ctype = "audio/mpeg" if self.output_format == "mp3" else "audio/wav"
        clips = []
        for slug, clip_id in job.meta["clip_ids"].items():
            clips.append(
                {
                    "clip_id": clip_id,
                    "state": "succeeded" if done else "running",
                    "title": f"{job.meta['title']} ({FIELDS[slug][2]})",
                    "tags": "",
                    "lyrics": "",
                    "image_url": "",
                    "audio_url": self.link(job.outputs[slug], ctype) if done else "",
                    "video_url": "",
                    "created_at": iso(job.created_at),
                    "mv": "sonic-v4-5",
                    "gpt_description_prompt": "",
                    "duration": f"{duration_s(job.outputs[slug]):.2f}" if done else "",
                }
            )
        return clips

    def _refund_if_failed(self, job: EmulatedJob) -> None:
        if job.fail or job.error is not None:
            self.ledger.charge(f"{job.id}:refund", -job.meta["cost"])
