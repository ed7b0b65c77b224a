"""The waveform figure ships a bounded min/max envelope, whatever the peaks resolution."""

from __future__ import annotations

import numpy as np

from components import waveform
from services.audio.peaks import Peaks, peaks_from_array


def test_figure_is_a_filled_band_with_at_most_max_points():
    rng = np.random.default_rng(0)
    n = 5000  # a provider that shipped finer peaks than we draw
    maxs = rng.uniform(0, 0.9, n).tolist()
    mins = (-rng.uniform(0, 0.9, n)).tolist()
    maxs[4321], mins[17] = 0.999, -0.998  # single extreme buckets must survive thinning
    fig = waveform.figure(Peaks(600.0, mins, maxs, -12.0), "#e4572e")
    upper, lower = fig.data
    assert len(upper.x) <= waveform.MAX_POINTS and len(upper.x) == len(lower.y)
    assert lower.fill == "tonexty"
    assert np.isclose(max(upper.y), 0.999) and np.isclose(min(lower.y), -0.998)
    assert upper.x[0] == 0 and np.isclose(upper.x[-1], 600.0)


def test_figure_of_real_peaks_keeps_their_shape():
    sr = 44100
    t = np.arange(sr * 2) / sr
    loud_then_quiet = (np.sin(2 * np.pi * 220 * t) * np.where(t < 1, 0.8, 0.1)).astype(np.float32)
    peaks = peaks_from_array(loud_then_quiet, sr)
    upper = waveform.figure(peaks, "#4c6ef5").data[0]
    half = len(upper.y) // 2
    assert max(upper.y[:half]) > 0.7 > 0.15 > max(upper.y[half + 5 :])
