"""LocalProvider end to end on real files: decode → chunked separation → float WAVs on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.config import Settings
from services.engine import MODE_STEMS, EngineOptions
from services.errors import JobCancelled
from services.progress import ProgressEvent
from services.providers.base import RunContext, SeparationProvider, SeparationRequest
from services.providers.local import LocalProvider
from tests.audiogen import bass_like, drum_like, mix, vocal_like, write

SR = 44100
SMALL_CHUNKS = EngineOptions(chunk_frames=2 * SR, overlap_frames=SR // 2)


@pytest.fixture(scope="module")
def song_file(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 5-second FLAC song (voice over drums and bass) and the samples it decodes to."""
    samples = mix(vocal_like(5.0, amp=0.4), drum_like(5.0, amp=0.4), bass_like(5.0, amp=0.3))
    path = write(tmp_path_factory.mktemp("in") / "song.flac", samples)
    decoded, _ = sf.read(path, dtype="float32")
    return path, decoded


def _request(path: Path, mode: str, seconds: float = 5.0) -> SeparationRequest:
    return SeparationRequest(input_path=path, input_hash="0" * 64, duration_s=seconds, mode=mode)


def test_capabilities_describe_the_local_engine():
    provider = LocalProvider(Settings(max_duration_s=600))
    assert isinstance(provider, SeparationProvider)
    caps = provider.capabilities
    assert provider.name == "local"
    assert {m.id: m.stems for m in caps.modes} == MODE_STEMS
    assert caps.input_kinds == ("file", "url")
    assert caps.max_duration_s == 600 and not caps.needs_key and caps.pricing_unit == "free"
    assert all(m.description for m in caps.modes)
    assert "rough" in caps.mode("4").description and "neural" in caps.mode("4").description.lower()


def test_estimate_is_free_and_scales_with_duration(tmp_path):
    provider = LocalProvider(Settings())
    short = provider.estimate(_request(tmp_path / "x.wav", "2", 60))
    long = provider.estimate(_request(tmp_path / "x.wav", "2", 600))
    assert short.credits == 0 and long.credits == 0
    assert short.seconds is not None and long.seconds == pytest.approx(10 * short.seconds)
    assert provider.estimate(_request(tmp_path / "x.wav", "4", 60)).seconds > short.seconds


@pytest.mark.parametrize("mode", ["2", "4"])
def test_run_writes_float_wavs_that_sum_to_the_input(mode, song_file, tmp_path):
    path, decoded = song_file
    events: list[ProgressEvent] = []
    ctx = RunContext(workspace=tmp_path, progress=events.append)
    stems = LocalProvider(Settings(), SMALL_CHUNKS).run(_request(path, mode), ctx)
    assert [s.stem for s in stems] == list(MODE_STEMS[mode])
    total = np.zeros_like(decoded)
    for stem in stems:
        assert stem.path == tmp_path / "raw" / f"{stem.stem}.wav"
        info = sf.info(stem.path)
        assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "FLOAT")
        data, _ = sf.read(stem.path, dtype="float32")
        assert data.shape == decoded.shape
        total += data
    residual = np.sum((decoded - total) ** 2) / np.sum(decoded**2)
    assert 10 * np.log10(residual) < -60
    fractions = [e.fraction for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 4
    if mode == "2":
        assert stems[1].provider_stem == "accompaniment"


def test_cancel_stops_the_run(song_file, tmp_path):
    path, _ = song_file
    seen: list[ProgressEvent] = []

    def cancel_once_separating(event: ProgressEvent) -> None:
        seen.append(event)
        if event.stage == "Separating":
            raise JobCancelled()

    provider = LocalProvider(Settings(), SMALL_CHUNKS)
    with pytest.raises(JobCancelled):
        provider.run(_request(path, "2"), RunContext(tmp_path, cancel_once_separating))
    assert seen[-1].fraction < 1.0
