"""Emulator contract details an adapter does not exercise, checked with a plain HTTP client."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
import soundfile as sf

from sandbox.common import EMULATORS, start_emulator
from sandbox.musicgpt import DEFAULT_STEMS
from tests.providers.conftest import SONG_S, wait_for


@pytest.fixture
def http():
    with httpx.Client(timeout=10.0) as client:
        yield client


def test_launcher_api() -> None:
    assert set(EMULATORS) == {"aistemsplitter", "musicgpt"}
    with pytest.raises(KeyError, match="no emulator"):
        start_emulator("nope")
    base_url, api_key, emulator = start_emulator("aistemsplitter", latency_s=0.1)
    try:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert api_key.startswith("ast_")
        response = httpx.get(base_url + "/credits", headers={"Authorization": f"Bearer {api_key}"})
        assert response.json() == {"success": True, "data": {"balance": 6200.0, "unit": "seconds"}}
    finally:
        emulator.stop()


class TestAIStemSplitter:
    @pytest.fixture
    def emu(self, emulators):
        return emulators("aistemsplitter", latency_s=0.1)

    def auth(self, emu) -> dict[str, str]:
        return {"Authorization": f"Bearer {emu.api_key}"}

    def test_default_output_is_mp3_and_keys_conflict_on_a_new_body(self, emu, http, song) -> None:
        body = {"input": {"type": "direct_url", "url": emu.link(song, "audio/wav")}}
        headers = {**self.auth(emu), "Idempotency-Key": "k1"}
        created = http.post(emu.base_url + "/audio/splits", json=body, headers=headers).json()
        split_id = created["data"]["id"]
        assert created["data"]["status"] == "queued" and created["data"]["creditsUsed"] == 2
        again = http.post(emu.base_url + "/audio/splits", json=body, headers=headers).json()
        assert again["data"]["id"] == split_id
        changed = {**body, "stemModel": "4s"}
        conflict = http.post(emu.base_url + "/audio/splits", json=changed, headers=headers)
        assert conflict.status_code == 409
        assert conflict.json()["error"]["code"] == "VALIDATION_ERROR"
        assert len(emu.ledger.charges) == 1

        def finished() -> dict:
            got = http.get(f"{emu.base_url}/audio/splits/{split_id}", headers=self.auth(emu))
            return got.json()["data"] if got.json()["data"]["status"] == "succeeded" else {}

        wait_for(finished)
        data = finished()
        assert set(data["stems"]) == {"vocals", "drums", "bass", "guitar", "piano", "other"}
        mp3 = http.get(data["stems"]["vocals"])
        assert mp3.headers["content-type"] == "audio/mpeg"
        samples, rate = sf.read(io.BytesIO(mp3.content))
        assert rate == 44100 and abs(len(samples) / rate - SONG_S) < 0.2

    def test_errors_use_the_documented_envelope(self, emu, http) -> None:
        unknown = http.get(emu.base_url + "/audio/splits/split_nope", headers=self.auth(emu))
        assert unknown.status_code == 404 and unknown.json()["success"] is False
        noauth = http.get(emu.base_url + "/credits")
        assert noauth.status_code == 401
        assert noauth.json()["error"] == {
            "code": "UNAUTHORIZED",
            "message": "Missing or invalid API key",
        }
        bad = http.post(
            emu.base_url + "/audio/uploads", json={"filename": "a.wav"}, headers=self.auth(emu)
        )
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "VALIDATION_ERROR"

    def test_upload_worker_checks_its_token(self, emu, http) -> None:
        slot = http.post(
            emu.base_url + "/audio/uploads",
            json={"filename": "a.wav", "contentType": "audio/wav", "contentLength": 10},
            headers=self.auth(emu),
        ).json()["data"]
        refused = http.put(slot["uploadUrl"], content=b"0123456789")
        assert refused.status_code == 403 and refused.json()["error"] == "Invalid upload token"
        stored = http.put(slot["uploadUrl"], content=b"0123456789", headers=slot["uploadHeaders"])
        assert stored.json()["data"]["key"].endswith("/a.wav")


class TestMusicGPT:
    @pytest.fixture
    def emu(self, emulators):
        return emulators("musicgpt", latency_s=0.1)

    def test_fastapi_style_validation(self, emu, http, song) -> None:
        url = emu.base_url + "/Extraction"
        auth = {"Authorization": emu.api_key}
        not_multipart = http.post(url, json={"audio_url": "x"}, headers=auth)
        assert not_multipart.status_code == 422 and "loc" in not_multipart.json()["detail"][0]
        no_input = http.post(url, files={"stems": (None, "[]")}, headers=auth)
        assert no_input.json()["detail"][0]["msg"] == "Either audio_url or audio_file is required"
        bad_stems = http.post(url, files={"stems": (None, "vocals")}, headers=auth)
        assert bad_stems.status_code == 422
        by_id = http.get(emu.base_url + "/byId", params={"task_id": "x"}, headers=auth)
        assert by_id.status_code == 422
        assert http.get(emu.base_url + "/byId").status_code == 401

    def test_bearer_is_accepted_and_counted_default_stems_and_lazy_mp3(
        self, emu, http, song
    ) -> None:
        files = {
            "audio_file": ("song.wav", song.read_bytes(), "audio/wav"),
            "audio_url": (None, ""),
        }
        auth = {"Authorization": f"Bearer {emu.api_key}"}
        created = http.post(emu.base_url + "/Extraction", files=files, headers=auth).json()
        assert emu.bearer_requests == 1 and created["eta"] == 0
        query = {"conversionType": "EXTRACTION", "task_id": created["task_id"]}

        def completed() -> dict:
            body = http.get(emu.base_url + "/byId", params=query, headers=auth).json()
            return body["conversion"] if body["conversion"]["status"] == "COMPLETED" else {}

        wait_for(completed)
        conversion = completed()
        mp3 = json.loads(conversion["conversion_path"])
        assert sorted(mp3) == sorted(DEFAULT_STEMS)  # empty stem list → the documented default
        samples, rate = sf.read(io.BytesIO(http.get(mp3["bass"]).content))
        assert rate == 44100 and np.abs(samples).max() > 0.01

    def test_poll_rate_limit(self, emulators, http) -> None:
        emu = emulators("musicgpt", rate_limit_per_minute=2)
        auth = {"Authorization": emu.api_key}
        query = {"conversionType": "EXTRACTION", "task_id": "missing"}
        codes = [http.get(emu.base_url + "/byId", params=query, headers=auth) for _ in range(3)]
        assert [c.status_code for c in codes] == [404, 404, 429]
        assert int(codes[2].headers["Retry-After"]) > 0
