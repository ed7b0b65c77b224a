"""Soundverse emulator: ``POST /v1/generate/stem-separation/{mode}`` (providers/soundverse.md).

Synchronous, as documented: the handler fetches ``audioUrl`` (it runs on this machine, so it
can fetch the app's file server or any local URL), renders the stems, holds the answer until
``latency_s`` has passed and answers with the bare array ``[{audioName, audioUrl}]`` in the
documented casing (``vocals`` lowercase, instruments Title Case). Result files are MP3 links
served by the emulator that expire after ``result_ttl_s``.

Invented where the docs are silent (each marked [inf] in the spec): 401 ``{"detail"}`` for a
bad key, 422 FastAPI list for a missing ``audioUrl``, 404 for an unknown mode, 400
``{"Detail"}`` when the URL cannot be fetched or decoded, 429 ``{"detail"}`` with
``Retry-After`` past the rate limit, 500 ``{"Detail"}`` for a failed separation (``fail_next``),
and a plan quota of ``balance`` calls (1 per successful call) answered with 402
``{"success": false, "message": "…credits…"}``. ``next_error`` returns one of the documented
bodies (``"nsfw"``, ``"artist"``: HTTP 400 ``{"success": false, "message"}``; ``"detail"``:
HTTP 500 ``{"Detail"}``) on the next call.

Stems: the Demucs-6s layout of the AIStemSplitter emulator (vocals 200–4000 Hz, bass < 150 Hz,
…, ``Other`` the exact remainder), so ``all-stems`` sums back to the input.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from sandbox.aistemsplitter import SIX_S
from sandbox.common import Emulator, Request, Response, json_response, render_stems
from services.errors import InputRejected

# mode → (stem spec name, documented audioName), in the documented order
MODES: dict[str, tuple[tuple[str, str], ...]] = {
    "vocals": (("vocals", "vocals"),),
    "instruments": (
        ("guitar", "Guitar"),
        ("other", "Other"),
        ("drums", "Drums"),
        ("bass", "Bass"),
        ("piano", "Piano"),
    ),
    "all-stems": (
        ("vocals", "vocals"),
        ("guitar", "Guitar"),
        ("other", "Other"),
        ("drums", "Drums"),
        ("bass", "Bass"),
        ("piano", "Piano"),
    ),
}
DOCUMENTED_ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "nsfw": (
        400,
        {
            "success": False,
            "message": "NSFW words detected. Please try again with a different prompt.",
        },
    ),
    "artist": (
        400,
        {
            "success": False,
            "message": "Artist name detected. Please try again with a different prompt.",
        },
    ),
    "detail": (500, {"Detail": "Generation failed"}),
}
ErrorKind = Literal["nsfw", "artist", "detail"]


class SoundverseEmulator(Emulator):
    name = "soundverse"
    api_prefix = ""
    default_api_key = "sv_sandbox_0123456789abcdef"
    default_balance = 100.0  # calls left on the plan

    def __init__(self, **options: Any) -> None:
        options.setdefault("rate_limit_per_minute", 60)
        super().__init__(**options)
        self.next_error: ErrorKind | None = None
        self.route("POST", r"/v1/generate/stem-separation/(?P<mode>[^/]+)", self.separate)

    def authorized(self, request: Request) -> Response | None:
        if request.headers.get("Authorization", "") == f"Bearer {self.api_key}":
            return None
        return json_response(401, {"detail": "Invalid or missing API key"})

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        key = "detail" if status in (401, 404, 429) else "Detail"
        return json_response(status, {key: message})

    def separate(self, request: Request) -> Response:
        started = time.time()
        mode = request.params["mode"]
        if mode not in MODES:
            return self.error(404, "Not Found")
        if limited := self.rate_limited(self.api_key):
            return limited
        body = request.json()
        url = body.get("audioUrl") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.strip():
            detail = [{"loc": ["body", "audioUrl"], "msg": "field required", "type": "missing"}]
            return json_response(422, {"detail": detail})
        if self.next_error is not None:
            status, payload = DOCUMENTED_ERRORS[self.next_error]
            self.next_error = None
            return json_response(status, payload)
        if self.ledger.balance < 1:
            return json_response(
                402, {"success": False, "message": "Insufficient credits on your plan."}
            )
        call_id = uuid.uuid4().hex
        folder = self.dir / "calls" / call_id
        folder.mkdir(parents=True)
        try:
            source = self.fetch_source(url, folder / "source")
        except Exception:  # any fetch problem is the caller's bad URL, as upstream
            return self.error(400, "Could not download audio from audioUrl")
        job = self.new_job(call_id, mode=mode)
        if job.fail:
            return self.error(500, "Stem separation failed")
        wanted = [spec for spec, _ in MODES[mode]]
        try:
            paths = render_stems(source, SIX_S, wanted, folder / "out", "mp3")
        except InputRejected:
            return self.error(400, "Unsupported or unreadable audio file")
        remaining = started + self.latency_s - time.time()
        if remaining > 0 and self._stopping.wait(remaining):
            return self.error(503, "Shutting down")
        if not self.ledger.charge(call_id, 1.0):
            return json_response(
                402, {"success": False, "message": "Insufficient credits on your plan."}
            )
        job.outputs = paths
        job.done.set()
        return json_response(
            200,
            [
                {"audioName": name, "audioUrl": self.link(paths[spec], "audio/mpeg")}
                for spec, name in MODES[mode]
            ],
        )
