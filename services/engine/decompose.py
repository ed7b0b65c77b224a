"""Signal-processing split of the accompaniment into drums, bass, other (and piano, guitar).

No network is involved here: the accompaniment mask from the U-Net is divided by
median-filter harmonic/percussive separation (HPSS) and fixed frequency bands. Every function
returns masks that partition the accompaniment mask exactly, so all stems still sum to the mix.
Quality is rough by construction and the mode descriptions say so.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import median_filter

from services.engine.spectral import EPS, N_FFT

SAMPLE_RATE = 44100
HPSS_TIME_FRAMES = 31  # ~0.72 s: harmonic = stable over time (librosa's default kernel)
HPSS_FREQ_BINS = 31  # ~330 Hz: percussive = flat over frequency
BASS_FULL_HZ = 150.0  # harmonic content below this is all bass …
BASS_CUT_HZ = 250.0  # … fading to none above this
TONAL_BINS = 9  # neighbourhood for the peakiness measure (~100 Hz)
PIANO_BAND_HZ = (250.0, 4200.0)
GUITAR_BAND_HZ = (250.0, 5000.0)


def _freqs(bins: int) -> np.ndarray:
    return np.arange(bins) * SAMPLE_RATE / N_FFT


def _fade_down(freqs: np.ndarray, full: float, cut: float) -> np.ndarray:
    """1 below ``full``, raised-cosine to 0 at ``cut``."""
    t = np.clip((freqs - full) / (cut - full), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def _band(freqs: np.ndarray, low: float, high: float) -> np.ndarray:
    """Soft band-pass weight: 100 Hz rise above ``low``, 1 kHz fall below ``high``."""
    return (1.0 - _fade_down(freqs, low, low + 100.0)) * _fade_down(freqs, high - 1000.0, high)


def _pool(mag: np.ndarray, axis: int) -> np.ndarray:
    """Average pairs of bins (axis 0) or frames (axis 1); an odd tail repeats the last one."""
    if mag.shape[axis] % 2:
        mag = np.concatenate([mag, np.take(mag, [-1], axis=axis)], axis=axis)
    shape = (-1, 2, mag.shape[1]) if axis == 0 else (mag.shape[0], -1, 2)
    return mag.reshape(shape).mean(axis + 1)


def _hpss(mag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft harmonic and percussive masks (power 2, summing to one) for a (F, T) magnitude.

    Each median runs at half resolution along its own axis only (the harmonic one over frame
    pairs, the percussive one over bin pairs) with a kernel of the same physical extent: about
    3× faster than full resolution, and measured slightly better on all three DSP stems.
    """
    bins, frames = mag.shape
    harm = median_filter(_pool(mag, 1), size=(1, HPSS_TIME_FRAMES // 2 | 1), mode="reflect")
    perc = median_filter(_pool(mag, 0), size=(HPSS_FREQ_BINS // 2 | 1, 1), mode="reflect")
    h2 = np.repeat(harm, 2, axis=1)[:, :frames] ** 2
    p2 = np.repeat(perc, 2, axis=0)[:bins] ** 2
    total = h2 + p2 + EPS
    return (h2 + EPS / 2) / total, (p2 + EPS / 2) / total


def accompaniment_masks(acc_mag: torch.Tensor, stems: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Per-stem fractions (F, T) of the accompaniment; they sum to one.

    ``acc_mag`` is the channel-averaged accompaniment magnitude (F, T); piano and guitar are
    split off only when ``stems`` asks for them.
    """
    mag = acc_mag.numpy()
    harmonic, percussive = _hpss(mag)
    freqs = _freqs(mag.shape[0])[:, None].astype(np.float32)
    bass = harmonic * _fade_down(freqs, BASS_FULL_HZ, BASS_CUT_HZ)
    rest = harmonic - bass
    out = {"drums": percussive, "bass": bass}
    if "piano" in stems or "guitar" in stems:
        piano, guitar = _instrument_split(mag * rest, freqs)
        out["piano"] = rest * piano
        out["guitar"] = rest * guitar
        rest = rest * (1.0 - piano - guitar)
    out["other"] = rest
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}


def _instrument_split(mag: np.ndarray, freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rough piano / guitar weights in [0, 1] (their sum ≤ 1) for the mid-band harmonic part.

    Heuristic, not a model: sharp, isolated partials (high peak-to-neighbourhood ratio, as a
    struck string with stable pitch gives) lean to piano; dense, smeared harmonic energy (as
    strummed or distorted guitar gives) leans to guitar. Both are limited to their usual bands.
    Other harmonic instruments (strings, synths, organ, leaking voice) will land here too.
    """
    local = median_filter(mag, size=(TONAL_BINS, 1), mode="reflect") + EPS
    ratio = mag / local
    tonal = ratio**2 / (ratio**2 + 16.0)  # 0.5 where a partial stands 4× above its neighbours
    piano = tonal * _band(freqs, *PIANO_BAND_HZ)
    guitar = (1.0 - tonal) * _band(freqs, *GUITAR_BAND_HZ)
    return 0.6 * piano, 0.6 * guitar
