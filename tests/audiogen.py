"""Deterministic test signals and a writer for every supported container.

Shared by all test modules (``from tests.audiogen import tone, vocal_like, write``). Signals are
float32 ``(n, channels)`` arrays in [-1, 1]; every generator takes a ``seed`` where randomness is
involved, so tests are reproducible.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from services.audio.ffmpeg import QUIET, ffmpeg_exe

SR = 44100

# Containers soundfile writes natively, and the ffmpeg encoder arguments for the others.
_SOUNDFILE = {"wav": "WAV", "flac": "FLAC", "aiff": "AIFF"}
_FFMPEG = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"],
    "m4a": ["-c:a", "aac", "-b:a", "160k", "-f", "ipod"],
    "aac": ["-c:a", "aac", "-b:a", "160k", "-f", "adts"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "5", "-f", "ogg"],
    "opus": ["-c:a", "libopus", "-b:a", "128k", "-f", "opus"],
    "webm": ["-c:a", "libopus", "-b:a", "128k", "-f", "webm"],
}
FORMATS = tuple(_SOUNDFILE) + tuple(_FFMPEG)


def _shape(mono: np.ndarray, channels: int) -> np.ndarray:
    return np.repeat(mono.astype(np.float32)[:, None], channels, axis=1)


def _time(seconds: float, sr: int) -> np.ndarray:
    return np.arange(round(seconds * sr)) / sr


def tone(
    freq: float = 440.0, seconds: float = 1.0, sr: int = SR, channels: int = 2, amp: float = 0.5
) -> np.ndarray:
    """A sine at ``freq`` Hz and peak ``amp``, identical in every channel."""
    return _shape(amp * np.sin(2 * np.pi * freq * _time(seconds, sr)), channels)


def vocal_like(
    seconds: float = 2.0,
    sr: int = SR,
    channels: int = 2,
    f0: float = 220.0,
    amp: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """A sung-vowel-like signal: harmonics of a gliding f0 with 5.5 Hz vibrato, shaped by
    vowel formants (~700/1200/2600 Hz) and phrased into ~0.4 s syllables. Centred in stereo."""
    rng = np.random.default_rng(seed)
    t = _time(seconds, sr)
    # A slow melody (a few notes) with vibrato on top, integrated to a phase.
    notes = f0 * 2 ** (rng.integers(-3, 5, size=max(1, int(seconds * 2) + 1)) / 12)
    pitch = notes[np.minimum((t * 2).astype(int), len(notes) - 1)]
    pitch = pitch * 2 ** (0.35 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    voice = np.zeros_like(t)
    for k in range(1, 30):
        harmonic = k * pitch
        gain = (
            sum(
                np.exp(-0.5 * ((harmonic - centre) / width) ** 2) * level
                for centre, width, level in ((700, 130, 1.0), (1200, 160, 0.6), (2600, 250, 0.3))
            )
            + 0.02 / k
        )
        voice += np.where(harmonic < sr / 2 - 500, gain, 0.0) * np.sin(k * phase)
    syllables = 0.5 - 0.5 * np.cos(2 * np.pi * np.minimum((t % 0.4) / 0.4, 1.0))
    voice *= 0.3 + 0.7 * syllables
    voice += 0.003 * rng.standard_normal(len(t))  # breath
    return _shape(amp * voice / max(np.abs(voice).max(), 1e-9), channels)


def drum_like(
    seconds: float = 2.0,
    sr: int = SR,
    channels: int = 2,
    bpm: float = 120.0,
    amp: float = 0.8,
    seed: int = 0,
) -> np.ndarray:
    """Kick on every beat (a 55 Hz sweep), snare on 2 and 4 (noise burst), hi-hats on eighths."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    out = np.zeros(n)
    beat = 60.0 / bpm

    def hit(start_s: float, sound: np.ndarray) -> None:
        start = round(start_s * sr)
        if start < n:
            end = min(n, start + len(sound))
            out[start:end] += sound[: end - start]

    k = _time(0.25, sr)
    kick = np.sin(2 * np.pi * (55 * k + 60 * (1 - np.exp(-k * 30)) / 30)) * np.exp(-k * 12)
    s = _time(0.18, sr)
    snare = rng.standard_normal(len(s)) * np.exp(-s * 25) * 0.6 + np.sin(2 * np.pi * 190 * s) * (
        np.exp(-s * 30) * 0.4
    )
    h = _time(0.05, sr)
    hat = np.diff(rng.standard_normal(len(h) + 1)) * np.exp(-h * 90) * 0.2
    for i in range(int(seconds / beat) + 1):
        hit(i * beat, kick)
        if i % 2 == 1:
            hit(i * beat, snare)
        hit(i * beat, hat)
        hit(i * beat + beat / 2, hat)
    return _shape(amp * out / max(np.abs(out).max(), 1e-9), channels)


def bass_like(
    seconds: float = 2.0, sr: int = SR, channels: int = 2, root: float = 55.0, amp: float = 0.6
) -> np.ndarray:
    """A plucked bass line: root/fifth/octave notes of a few harmonics, decaying per note."""
    t = _time(seconds, sr)
    steps = np.array([1.0, 1.5, 2.0, 1.5])
    freq = root * steps[(t / 0.5).astype(int) % len(steps)]
    phase = 2 * np.pi * np.cumsum(freq) / sr
    env = np.exp(-(t % 0.5) * 4)
    sig = sum(np.sin(k * phase) / k for k in range(1, 5)) * env
    return _shape(amp * sig / max(np.abs(sig).max(), 1e-9), channels)


def mix(*signals: np.ndarray) -> np.ndarray:
    """Sum signals of possibly different lengths (padded with silence to the longest)."""
    n = max(len(s) for s in signals)
    out = np.zeros((n, signals[0].shape[1]), dtype=np.float32)
    for s in signals:
        out[: len(s)] += s
    return out


def write(path: Path, samples: np.ndarray, sr: int = SR, fmt: str | None = None) -> Path:
    """Write ``samples`` to ``path`` in ``fmt`` (default: the path's suffix).

    wav/flac/aiff go through soundfile (16-bit; pass ``fmt="wav-float"`` for 32-bit float WAV);
    mp3, m4a, aac, ogg (Vorbis), opus and webm (Opus) are encoded by ffmpeg.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or path.suffix.lstrip(".").lower()
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if fmt == "wav-float":
        sf.write(path, data, sr, subtype="FLOAT", format="WAV")
    elif fmt in _SOUNDFILE:
        sf.write(path, data, sr, subtype="PCM_16", format=_SOUNDFILE[fmt])
    elif fmt in _FFMPEG:
        args = [ffmpeg_exe(), *QUIET, "-y", "-f", "f32le", "-ar", str(sr)]
        args += ["-ac", str(data.shape[1]), "-i", "-", *_FFMPEG[fmt], "file:" + str(path)]
        subprocess.run(args, input=np.ascontiguousarray(data).tobytes(), check=True)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return path
