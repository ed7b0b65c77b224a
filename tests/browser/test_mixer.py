"""The synchronized mixer in a real headless Chromium.

A job with four generated stems is finalised by the real job runner (16-bit WAV stems, MP3
previews, peaks JSON) and stored in a real job store; ``mixer_harness.py`` shows it with the
mixer's reports echoed as JSON. The test plays, checks that every lane advances together (the
reported positions, and a lane alignment *measured from the rendered audio*), solos a lane,
seeks, uses the keyboard, and downloads the karaoke mix, which must equal the sum of the three
other stems sample for sample.

Headless Chromium has no sound card: it renders Web Audio into a null sink in real time, so
the AudioContext runs and its clock advances (checked below) and analysers see real samples.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.audio.formats import ExportFormat
from services.config import Settings
from services.jobs.model import Job, JobSpec, JobStatus
from services.jobs.runner import finalize
from services.jobs.workspace import new_job_id
from services.progress import ignore
from services.providers.base import SeparatedStem
from services.runtime import Runtime
from tests.audiogen import SR, bass_like, drum_like, vocal_like, write
from tests.browser.conftest import needs_chromium

pytestmark = needs_chromium

SECONDS = 20.0
STEMS = ("vocals", "drums", "bass", "other")


def other_like(seconds: float, seed: int = 3) -> np.ndarray:
    """A pad: a slowly beating chord with a little noise (never periodic, never silent)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * SR)) / SR
    pad = sum(np.sin(2 * np.pi * f * t + p) for f, p in ((261.6, 0), (329.6, 1), (392.4, 2)))
    sig = 0.08 * pad + 0.02 * rng.standard_normal(len(t))
    return np.stack([sig, np.roll(sig, 37)], axis=1).astype(np.float32)


def build_job(settings: Settings, seconds: float = SECONDS) -> Job:
    """A succeeded 4-stem job finalised by the real runner and stored in the real store."""
    signals = {
        # vocal_like is slow to synthesise: a 4-second phrase, repeated
        "vocals": np.tile(vocal_like(4.0, amp=0.3, seed=1), (int(np.ceil(seconds / 4)), 1))[
            : round(seconds * SR)
        ],
        "drums": drum_like(seconds, amp=0.35, seed=2),
        "bass": bass_like(seconds, amp=0.25),
        "other": other_like(seconds),
    }
    runtime = Runtime.start(settings)
    try:
        job_id = new_job_id()
        workspace = runtime.workspaces.fresh(job_id)
        raw = workspace / "raw"
        raw.mkdir()
        separated = [
            SeparatedStem(stem, stem, write(raw / f"{stem}.wav", x, fmt="wav-float"))
            for stem, x in signals.items()
        ]
        export = ExportFormat("wav", 16)
        artifacts = finalize(separated, workspace, export, ignore)
        now = time.time()
        job = Job(
            id=job_id,
            spec=JobSpec(
                input_hash="0" * 64, input_name="Mixer Song.wav", duration_s=seconds,
                provider="local", mode="4", export=export.as_options(),
            ),
            status=JobStatus.SUCCEEDED, progress=1.0, stage="done",
            created_at=now, started_at=now, finished_at=now, artifacts=artifacts,
        )
        runtime.store.insert(job)
        return job
    finally:
        runtime.shutdown()


class Harness:
    """The harness page: read the last report Python received, and wait for a condition."""

    def __init__(self, page) -> None:
        self.page = page

    def report(self) -> dict | None:
        block = self.page.locator(".st-key-mixer-report code")
        if not block.count():
            return None
        try:
            return json.loads(block.first.inner_text())
        except ValueError:
            return None

    def wait(self, cond: Callable[[dict], bool], what: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = self.report()
            if last and cond(last):
                return last
            self.page.wait_for_timeout(100)
        pytest.fail(f"timed out waiting for {what}; last report: {json.dumps(last)[:2000]}")

    def lane(self, stem: str):
        return self.page.locator(f'.sdm-lane[data-stem="{stem}"]')


def lanes_by_stem(report: dict) -> dict[str, dict]:
    return {lane["stem"]: lane for lane in report["lanes"]}


@pytest.fixture
def mixer_url(settings: Settings, streamlit_server) -> tuple[str, Job]:
    job = build_job(settings)
    url = streamlit_server(
        "tests/browser/mixer_harness.py",
        {"STEMDECK_DATA_DIR": str(settings.data_dir), "STEMDECK_MIXER_JOB": job.id},
    )
    return url, job


def test_mixer_plays_in_sync_solos_seeks_and_downloads_karaoke(
    mixer_url, chromium_page, settings: Settings, tmp_path: Path
):
    url, job = mixer_url
    page = chromium_page
    h = Harness(page)
    page.goto(url)

    # Lazy loading: the lanes (waveforms from peaks) are on the page, then every lane decodes.
    page.locator(".sdm-lane").nth(3).wait_for()
    assert page.locator(".sdm-lane").count() == 4
    ready = h.wait(lambda r: r["ready"], "all lanes decoded")
    assert [lane["stem"] for lane in ready["lanes"]] == list(STEMS)
    assert all(lane["status"] == "ready" for lane in ready["lanes"])
    assert ready["playing"] is False

    # Play: the AudioContext runs (a null sink in headless) and every lane advances together.
    page.locator(".sdm-play").click()
    first = h.wait(lambda r: r["playing"] and r["position_s"] > 0.5, "playback")
    assert first["context"]["state"] == "running"
    samples = [first]
    while len(samples) < 9:
        seq = samples[-1]["seq"]
        samples.append(h.wait(lambda r, seq=seq: r["playing"] and r["seq"] > seq, "a new report"))
    samples = samples[1:]
    for r in samples:
        positions = [lane["position_s"] for lane in r["lanes"]]
        assert None not in positions
        assert max(positions) - min(positions) <= 1 / SR  # same schedule: within one frame
        assert abs(positions[0] - r["position_s"]) <= 1 / SR
    assert samples[-1]["position_s"] > samples[0]["position_s"] + 2.0  # it really advances

    measured = [r["sync"] for r in samples if r.get("sync") and r["sync"]["lanes_measured"] >= 3]
    assert len(measured) >= 4, samples[-1].get("sync")
    spreads = [m["spread_frames"] for m in measured]
    assert max(spreads) == 0, spreads  # the rendered audio of every lane: sample-aligned
    page.screenshot(path=str(tmp_path / "mixer-playing.png"), full_page=True)
    print(f"sync spread (frames) over {samples[-1]['position_s']:.1f} s: {spreads}")

    # Solo drums: only drums stays audible, and the others' post-fader meters go silent.
    h.lane("drums").locator(".sdm-s").click()
    h.wait(lambda r: lanes_by_stem(r)["drums"]["solo"], "drums solo reported")
    soloed = h.wait(
        lambda r: r["playing"]
        and lanes_by_stem(r)["drums"]["level_db"] is not None
        and all(lanes_by_stem(r)[s]["level_db"] is None for s in ("vocals", "bass", "other")),
        "only drums audible",
    )
    lanes = lanes_by_stem(soloed)
    assert lanes["drums"]["audible"] is True
    assert [lanes[s]["audible"] for s in ("vocals", "bass", "other")] == [False] * 3
    h.lane("drums").locator(".sdm-s").click()  # solo off again
    h.wait(lambda r: not any(lane["solo"] for lane in r["lanes"]), "solo off")

    # Seek by clicking the waveform at ~20 %, then pause: the position lands there.
    wave = h.lane("bass").locator(".sdm-wave")
    box = wave.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2)
    page.keyboard.press("Space")  # the mixer has focus: Space pauses
    paused = h.wait(lambda r: not r["playing"], "pause after seek")
    assert 0.2 * SECONDS - 0.1 <= paused["position_s"] <= 0.2 * SECONDS + 1.5
    positions = [lane["position_s"] for lane in paused["lanes"]]
    assert max(positions) - min(positions) == 0

    # Keyboard: M on the focused lane mutes it.
    h.lane("vocals").focus()
    page.keyboard.press("m")
    muted = h.wait(lambda r: lanes_by_stem(r)["vocals"]["mute"], "vocals muted by keyboard")
    assert lanes_by_stem(muted)["vocals"]["audible"] is False
    page.keyboard.press("m")
    h.wait(lambda r: not lanes_by_stem(r)["vocals"]["mute"], "vocals unmuted")

    # Download the karaoke mix (WAV 16-bit) and check it in Python.
    download_area = page.locator(".st-key-mixer-" + job.id + "-download")
    download_area.get_by_text("Karaoke", exact=True).click()
    button = download_area.get_by_role("button", name="Download karaoke")
    button.wait_for()
    with page.expect_download(timeout=60_000) as info:
        button.click()
    karaoke_path = tmp_path / info.value.suggested_filename
    info.value.save_as(karaoke_path)
    assert karaoke_path.name == "Mixer Song - karaoke.wav"
    karaoke, sr = sf.read(karaoke_path, dtype="int32", always_2d=True)
    assert sr == SR
    workspace = settings.jobs_dir / job.id
    stem = {a.stem: sf.read(workspace / a.file, dtype="int32", always_2d=True)[0]
            for a in job.artifacts}
    expected = stem["drums"] + stem["bass"] + stem["other"]
    assert karaoke.shape == expected.shape
    assert np.array_equal(karaoke, expected)  # sample-exact: no vocals, nothing else changed
    vocals = stem["vocals"].astype(np.float64)
    leak = np.dot(karaoke[:, 0].astype(np.float64), vocals[:, 0]) / np.dot(vocals[:, 0],
                                                                              vocals[:, 0])
    assert abs(leak) < 0.02  # no vocal energy
