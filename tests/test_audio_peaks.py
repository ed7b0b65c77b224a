"""Waveform envelopes: bounded size, correct shape of known signals, streaming = in-memory."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from services.audio.decode import SAMPLE_RATE, load
from services.audio.peaks import Peaks, compute_peaks, load_peaks, peaks_from_array, save_peaks
from tests.audiogen import drum_like, tone, write


def test_ten_minutes_ship_a_bounded_number_of_points():
    # 10 minutes at a low rate keeps the test light; the bound does not depend on the rate.
    rate = 2000
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, (600 * rate, 2)).astype(np.float32)
    peaks = peaks_from_array(samples, rate)
    assert len(peaks.mins) == len(peaks.maxs) == 1200
    assert peaks.duration_s == pytest.approx(600.0)
    assert len(json.dumps(asdict(peaks))) < 40_000  # what the browser receives
    assert len(peaks_from_array(samples, rate, points=300).mins) == 300


def test_min_never_exceeds_max_and_bounds_the_signal():
    samples = drum_like(2.0)
    peaks = peaks_from_array(samples, SAMPLE_RATE, points=500)
    mins, maxs = np.array(peaks.mins), np.array(peaks.maxs)
    assert np.all(mins <= maxs)
    assert mins.min() == pytest.approx(samples.min(), abs=1e-4)
    assert maxs.max() == pytest.approx(samples.max(), abs=1e-4)


def test_envelope_of_a_ramped_tone_follows_the_ramp():
    ramp = np.linspace(0, 1, SAMPLE_RATE * 2, dtype=np.float32)[:, None]
    samples = tone(1000, 2.0, amp=1.0) * ramp
    peaks = peaks_from_array(samples, SAMPLE_RATE, points=100)
    expected = (np.arange(100) + 1) / 100  # each bucket's peak sits at its end
    np.testing.assert_allclose(peaks.maxs, expected, atol=0.02)
    np.testing.assert_allclose(peaks.mins, -expected, atol=0.02)


def test_envelope_covers_both_channels():
    left = tone(200, 1.0, channels=1, amp=0.8)
    samples = np.hstack([left, -left])  # cancels in a mono sum
    peaks = peaks_from_array(samples, SAMPLE_RATE, points=50)
    assert min(peaks.maxs) > 0.7 and max(peaks.mins) < -0.7


def test_rms_of_a_sine():
    peaks = peaks_from_array(tone(440, 1.0, amp=0.5), SAMPLE_RATE)
    assert peaks.rms_db == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.02)
    silent = peaks_from_array(np.zeros((1000, 2), np.float32), SAMPLE_RATE)
    assert silent.rms_db == -120.0 and set(silent.maxs) == {0.0}


def test_short_and_mono_input():
    peaks = peaks_from_array(np.array([0.1, -0.2, 0.3], np.float32), SAMPLE_RATE)
    assert peaks.mins == pytest.approx([0.1, -0.2, 0.3]) and peaks.maxs == peaks.mins
    empty = peaks_from_array(np.zeros((0, 2), np.float32), SAMPLE_RATE)
    assert empty.mins == [] and empty.duration_s == 0.0
    with pytest.raises(ValueError):
        peaks_from_array(np.zeros((10, 2), np.float32), SAMPLE_RATE, points=0)


def test_streamed_peaks_match_in_memory_peaks(tmp_path):
    samples = drum_like(3.0) * 0.7 + tone(300, 3.0, amp=0.2)
    path = write(tmp_path / "d.flac", samples)
    streamed = compute_peaks(path, points=200)
    in_memory = peaks_from_array(load(path), SAMPLE_RATE, points=200)
    assert len(streamed.mins) == 200
    assert streamed.duration_s == pytest.approx(3.0, abs=1e-3)
    assert streamed.rms_db == pytest.approx(in_memory.rms_db, abs=0.01)
    # Bucket edges may differ by one fine bucket (1/8 of a point); the extremes agree.
    assert min(streamed.mins) == pytest.approx(min(in_memory.mins), abs=1e-4)
    assert max(streamed.maxs) == pytest.approx(max(in_memory.maxs), abs=1e-4)
    close = np.isclose(streamed.maxs, in_memory.maxs, atol=0.02)
    assert close.mean() > 0.9


def test_save_and_load_round_trip(tmp_path):
    peaks = peaks_from_array(drum_like(1.0), SAMPLE_RATE, points=64)
    path = save_peaks(peaks, tmp_path / "p" / "drums.json")
    assert load_peaks(path) == peaks
    assert isinstance(load_peaks(path), Peaks)


@pytest.mark.parametrize(
    "content",
    ["", "{}", "[1, 2]", '{"duration_s": 1, "mins": [1], "maxs": [], "rms_db": 0}', "not json"],
)
def test_load_rejects_malformed_files(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        load_peaks(path)
