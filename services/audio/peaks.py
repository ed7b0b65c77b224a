"""Waveform envelopes: a fixed number of min/max points, whatever the track's length.

A 10-minute stem has 26 million frames; the browser gets ``points`` (default 1200) pairs. The
envelope covers both channels (per bucket: the lowest and highest sample of either channel), so
a stem whose channels cancel in a mono sum still shows its real level.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from services.audio.decode import SAMPLE_RATE, iter_blocks
from services.audio.encode import atomic_path
from services.audio.ffmpeg import header_report, parse_report

DEFAULT_POINTS = 1200
SILENCE_DB = -120.0
# compute_peaks keeps this many fine buckets per output point while streaming, so bucket edges
# land within 1/8 of a point of where an in-memory computation puts them.
_FINE_PER_POINT = 8
_BLOCK_FRAMES = SAMPLE_RATE * 10


@dataclass(frozen=True, slots=True)
class Peaks:
    """A mono min/max envelope of ``len(mins)`` buckets and the whole track's RMS level (dBFS)."""

    duration_s: float
    mins: list[float]
    maxs: list[float]
    rms_db: float


def peaks_from_array(samples: np.ndarray, sample_rate: int, points: int = DEFAULT_POINTS) -> Peaks:
    """The envelope of an in-memory ``(n,)`` or ``(n, channels)`` array."""
    frames = _as_frames(samples)
    return _finish(frames, frames, _sum_sq(frames), frames.size, len(frames) / sample_rate, points)


def compute_peaks(path: Path, points: int = DEFAULT_POINTS) -> Peaks:
    """The envelope of any decodable file, streamed: memory is a block plus ~8×points floats."""
    stream = parse_report(header_report(Path(path)))
    expected = int((stream.duration_s if stream and stream.duration_s else 60.0) * SAMPLE_RATE)
    hop = max(1, expected // (points * _FINE_PER_POINT))
    lows: list[np.ndarray] = []
    highs: list[np.ndarray] = []
    sum_sq, values, frames = 0.0, 0, 0
    carry = np.empty((0, 2), dtype=np.float32)  # frames left over from a block's partial hop
    for block in iter_blocks(Path(path), _BLOCK_FRAMES):
        frames += len(block)
        sum_sq += _sum_sq(block)
        values += block.size
        data = np.concatenate([carry, block]) if len(carry) else block
        whole = len(data) - len(data) % hop
        if whole:
            buckets = data[:whole].reshape(-1, hop * data.shape[1])
            lows.append(buckets.min(axis=1))
            highs.append(buckets.max(axis=1))
        carry = data[whole:]
    if len(carry):
        lows.append(np.array([carry.min()]))
        highs.append(np.array([carry.max()]))
    low = np.concatenate(lows) if lows else np.zeros(0, np.float32)
    high = np.concatenate(highs) if highs else np.zeros(0, np.float32)
    return _finish(low, high, sum_sq, values, frames / SAMPLE_RATE, points)


def _as_frames(samples: np.ndarray) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float32)
    return array.reshape(-1, 1) if array.ndim == 1 else array


def _sum_sq(frames: np.ndarray) -> float:
    """Σx² accumulated in float64, a million frames at a time (no full-size float64 copy)."""
    total = 0.0
    for start in range(0, len(frames), 1 << 20):
        chunk = frames[start : start + (1 << 20)].astype(np.float64).ravel()
        total += float(np.dot(chunk, chunk))
    return total


def _finish(
    lows: np.ndarray,
    highs: np.ndarray,
    sum_sq: float,
    values: int,
    duration_s: float,
    points: int,
) -> Peaks:
    """Reduce fine ``lows``/``highs`` to at most ``points`` buckets and package the result.

    They are ``(k,)`` fine buckets, or ``(k, channels)`` frames (reduced over channels last).
    """
    if points < 1:
        raise ValueError("points must be at least 1")
    count = min(points, len(lows))
    if count:
        edges = np.linspace(0, len(lows), count + 1).astype(np.int64)[:-1]
        mins = np.minimum.reduceat(lows, edges, axis=0)
        maxs = np.maximum.reduceat(highs, edges, axis=0)
        if mins.ndim == 2:
            mins, maxs = mins.min(axis=1), maxs.max(axis=1)
    else:
        mins = maxs = np.zeros(0, np.float32)
    mean_sq = sum_sq / values if values else 0.0
    rms_db = 10 * math.log10(mean_sq) if mean_sq > 0 else SILENCE_DB
    return Peaks(
        duration_s=round(duration_s, 4),
        mins=[round(float(v), 4) for v in mins],
        maxs=[round(float(v), 4) for v in maxs],
        rms_db=round(max(rms_db, SILENCE_DB), 2),
    )


def save_peaks(peaks: Peaks, path: Path) -> Path:
    """Write ``peaks`` as JSON (atomically: readers never see half a file)."""
    path = Path(path)
    with atomic_path(path) as part:
        part.write_text(json.dumps(asdict(peaks), separators=(",", ":")), encoding="utf-8")
    return path


def load_peaks(path: Path) -> Peaks:
    """Read peaks written by :func:`save_peaks`; ValueError if the file is not such a file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        peaks = Peaks(
            duration_s=float(data["duration_s"]),
            mins=[float(v) for v in data["mins"]],
            maxs=[float(v) for v in data["maxs"]],
            rms_db=float(data["rms_db"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a peaks file: {path}") from exc
    if len(peaks.mins) != len(peaks.maxs):
        raise ValueError(f"not a peaks file: {path}")
    return peaks
