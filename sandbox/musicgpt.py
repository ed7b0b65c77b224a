"""MusicGPT emulator: ``POST /Extraction`` and ``GET /byId`` of shared/providers/musicgpt.md.

Auth is the raw key in ``Authorization`` (a ``Bearer`` form is accepted and counted in
``bearer_requests``, since whether the real server accepts it is open). Validation answers in
FastAPI's shapes (422 ``{"detail": [{loc, msg, type}]}``, other errors ``{"detail": "…"}``).
Submits are limited to 60/min and ``byId`` to 200/min per key (429 with ``Retry-After``).
Credits are charged at submit (0.5 + 0.01 per stem-second + 0.25 per pre-processing step, our
invention: the real formula is unpublished). Status goes ``IN_QUEUE`` → ``PROCESSING`` →
``COMPLETED``/``FAILED``; a completed extraction carries stem maps in the shape chosen by
``result_shape``: ``json_string`` (``conversion_path``/``conversion_path_wav`` as JSON strings,
the third-party reading), ``object`` (the same as objects) or ``audio_url`` (an object-valued
``audio_url`` only). MP3 links are rendered lazily on first download. A ``webhook_url`` gets
one unsigned completion POST.

Stems are band-limited parts of the input: families on disjoint bands, sub-stems on parts of
their family's band, ``instrumental`` the exact complement of ``vocals``. Pre-processing
options are accepted and reported but do not change the audio.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any, Literal

import soundfile as sf

from sandbox.common import (
    Band,
    EmulatedJob,
    Emulator,
    RateLimiter,
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

log = logging.getLogger(__name__)

BANDS: dict[str, StemSpec] = {
    "vocals": Band(200, 4000),
    "male_vocal": Band(200, 1000),
    "female_vocal": Band(1000, 4000),
    "lead_vocal": Band(200, 2000),
    "back_vocal": Band(2000, 4000),
    "instrumental": Residual(("vocals",)),
    "bass": Band(None, 150),
    "guitar": Band(4500, 6000),
    "rhythm_guitar": Band(4500, 5200),
    "solo_guitar": Band(5200, 6000),
    "acoustic_guitar": Band(4500, 5200),
    "electric_guitar": Band(5200, 6000),
    "piano": Band(6500, 8000),
    "keys": Band(8000, 9000),
    "strings": Band(9000, 10500),
    "winds": Band(10500, 12000),
    "drums": Band(12000, 18000),
    "kick_drum": Band(12000, 13000),
    "snare_drum": Band(13000, 14000),
    "toms": Band(14000, 15000),
    "hi_hat": Band(15000, 16000),
    "ride": Band(16000, 17000),
    "crash": Band(17000, 18000),
}
DEFAULT_STEMS = ["drums", "bass", "piano", "guitar"]
PREPROCESSING = ("Denoise", "Deecho", "Dereverb")
ResultShape = Literal["json_string", "object", "audio_url"]


class MusicGPTEmulator(Emulator):
    name = "musicgpt"
    api_prefix = "/api/public/v1"
    default_api_key = "mgpt_sandbox_0123456789abcdef"
    default_balance = 1000.0

    def __init__(self, *, result_shape: ResultShape = "json_string", **options: Any) -> None:
        options.setdefault("rate_limit_per_minute", 200)
        super().__init__(**options)
        self.result_shape: ResultShape = result_shape
        self.submit_limit = 60
        self.bearer_requests = 0
        self.route("POST", r"/Extraction", self.extraction)
        self.route("GET", r"/byId", self.by_id)
        self.submit_limiter = RateLimiter(self.submit_limit)  # its own 60/min window

    # --- contract pieces ------------------------------------------------------------------------

    def authorized(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return self.error(401, "Not authenticated")
        if header.startswith("Bearer "):
            self.bearer_requests += 1
            log.warning("musicgpt: request used 'Bearer'; the docs send the raw key")
            header = header.removeprefix("Bearer ")
        if header != self.api_key:
            return self.error(403, "Invalid API key")
        return None

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        return json_response(status, {"success": False, "detail": message})

    def invalid(self, field: str, message: str) -> Response:
        detail = [{"loc": ["body", field], "msg": message, "type": "value_error"}]
        return json_response(422, {"detail": detail})

    def extraction(self, request: Request) -> Response:
        wait = self.submit_limiter.retry_after(self.api_key)
        if wait is not None:
            response = self.error(429, "Rate limit exceeded: 60 conversions per minute")
            response.headers["Retry-After"] = str(int(wait + 0.999))
            return response
        form = request.form()
        if form is None:
            return self.invalid("audio_file", "Expected multipart/form-data")
        fields, files = form
        stems = _json_list(fields.get("stems", "[]"))
        pre = _json_list(fields.get("preprocessing_options", "[]"))
        if stems is None:
            return self.invalid("stems", "stems must be a JSON-encoded list of strings")
        if pre is None:
            return self.invalid("preprocessing_options", "must be a JSON-encoded list")
        unknown = [s for s in stems if s not in BANDS] + [p for p in pre if p not in PREPROCESSING]
        if unknown:
            return self.invalid("stems", f"Unsupported value: {unknown[0]}")
        stems = list(dict.fromkeys(stems)) or list(DEFAULT_STEMS)
        task_id = str(uuid.uuid4())
        folder = self.dir / "tasks" / task_id
        folder.mkdir(parents=True)
        try:
            source = self._source(fields, files, folder)
        except ValueError as exc:
            return self.invalid("audio_url", str(exc))
        try:
            duration = duration_s(source)
        except InputRejected:
            return self.error(400, "Could not read the audio file")
        cost = round(0.5 + 0.01 * duration * len(stems) + 0.25 * len(pre), 2)
        if not self.ledger.charge(task_id, cost):
            return self.error(402, "Insufficient credits")
        job = self.new_job(
            task_id,
            conversion_id=str(uuid.uuid4()),
            stems=stems,
            preprocessing=pre,
            cost=cost,
            duration=duration,
        )
        webhook = fields.get("webhook_url") or None
        self.launch(
            job,
            lambda: render_stems(source, BANDS, stems, folder / "out", "wav"),
            (lambda j: self.deliver(webhook, self._conversion(j), None)) if webhook else None,
        )
        return json_response(
            200,
            {
                "success": True,
                "task_id": task_id,
                "conversion_id": job.meta["conversion_id"],
                "eta": round(self.latency_s),
                "credit_estimate": cost,
            },
        )

    def by_id(self, request: Request) -> Response:
        if limited := self.rate_limited(self.api_key):
            return limited
        if not request.arg("conversionType"):
            return self.invalid("conversionType", "field required")
        task_id, conversion_id = request.arg("task_id"), request.arg("conversion_id")
        if not task_id and not conversion_id:
            return self.invalid("task_id", "task_id or conversion_id is required")
        job = self.jobs.get(task_id or "") or next(
            (j for j in self.jobs.values() if j.meta["conversion_id"] == conversion_id), None
        )
        if job is None or request.arg("conversionType") != "EXTRACTION":
            return self.error(404, "Conversion not found")
        return json_response(200, {"success": True, "conversion": self._conversion(job)})

    # --- helpers --------------------------------------------------------------------------------

    def _source(
        self, fields: dict[str, str], files: dict[str, tuple[str, bytes]], folder: Path
    ) -> Path:
        if "audio_file" in files and files["audio_file"][1]:
            name, data = files["audio_file"]
            path = folder / (Path(name).name or "audio")
            path.write_bytes(data)
            return path
        url = fields.get("audio_url", "").strip()
        if not url:
            raise ValueError("Either audio_url or audio_file is required")
        try:
            return self.fetch_source(url, folder / "source")
        except Exception as exc:  # any fetch problem is the caller's bad source
            raise ValueError("audio_url could not be fetched") from exc

    def _conversion(self, job: EmulatedJob) -> dict[str, Any]:
        phase = job.phase()
        status = {
            "queued": "IN_QUEUE",
            "processing": "PROCESSING",
            "succeeded": "COMPLETED",
            "failed": "FAILED",
        }[phase]
        conversion: dict[str, Any] = {
            "task_id": job.id,
            "conversion_id": job.meta["conversion_id"],
            "conversion_type": "EXTRACTION",
            "status": status,
            "status_msg": {
                "IN_QUEUE": "Queued",
                "PROCESSING": "Processing",
                "COMPLETED": "Conversion successful",
                "FAILED": "Extraction failed: the audio could not be processed",
            }[status],
            "conversion_cost": job.meta["cost"],
            "conversion_duration": round(job.meta["duration"], 3),
            "preprocessing_options": job.meta["preprocessing"],
            "createdAt": iso(job.created_at),
            "updatedAt": iso(job.updated_at),
        }
        if phase == "succeeded":
            wav = {n: self.link(p, "audio/wav") for n, p in job.outputs.items()}
            mp3 = {
                n: self.link(p.with_suffix(".mp3"), "audio/mpeg") for n, p in job.outputs.items()
            }
            if self.result_shape == "audio_url":
                conversion["audio_url"] = wav
            elif self.result_shape == "object":
                conversion.update(conversion_path=mp3, conversion_path_wav=wav)
            else:
                conversion.update(
                    conversion_path=json.dumps(mp3), conversion_path_wav=json.dumps(wav)
                )
        return conversion

    def materialize(self, path: Path) -> None:
        """MP3 copies are encoded from the WAV on first download."""
        wav = path.with_suffix(".wav")
        if path.suffix != ".mp3" or not wav.exists():
            raise FileNotFoundError(path)
        data, rate = sf.read(wav, dtype="float32")
        tmp = path.with_name(path.name + ".part")
        sf.write(tmp, data, rate, format="MP3", subtype="MPEG_LAYER_III")
        tmp.replace(path)


def _json_list(text: str) -> list[str] | None:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value
