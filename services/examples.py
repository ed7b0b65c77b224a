"""Bundled example tracks with known stems, synthesised deterministically (no downloads).

An example gives the Compare page reference stems for SDR without the user uploading any: the
stems are generated with numpy from a fixed seed, the mix is their exact sum, and the mix is
ingested like any upload, so the same bytes (and input hash) come back every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

from services.audio.encode import atomic_path
from services.config import Settings
from services.errors import InputRejected
from services.inputs import InputInfo, ingest_path

SR = 44100
BPM = 110.0
CONTROL = 256  # samples between updates of slowly changing synthesis parameters


@dataclass(frozen=True)
class Example:
    id: str
    name: str
    description: str
    stems: tuple[str, ...]
    seconds: float = 16.0
    seed: int = 7


EXAMPLES: tuple[Example, ...] = (
    Example(
        id="synth-pop",
        name="Synth pop (example, 16 s)",
        description="A synthesised song with a sung-like vocal, drums, bass and chords whose "
        "true stems are known, so every lane gets an SDR per stem.",
        stems=("vocals", "drums", "bass", "other"),
    ),
)


def example(example_id: str) -> Example:
    for item in EXAMPLES:
        if item.id == example_id:
            return item
    raise InputRejected(f"There is no example called {example_id!r}.")


def materialize(example_id: str, settings: Settings) -> tuple[InputInfo, dict[str, Path]]:
    """The example's mix as a stored input, and its reference stem WAVs (they sum to the mix).

    Files are written once under ``<data dir>/examples/<id>/`` and reused afterwards.
    """
    item = example(example_id)
    folder = settings.data_dir / "examples" / item.id
    refs = {stem: folder / f"{stem}.wav" for stem in item.stems}
    mix_path = folder / f"{item.id}.wav"
    if not (mix_path.is_file() and all(p.is_file() for p in refs.values())):
        stems = render(item)
        for stem, audio in stems.items():
            with atomic_path(refs[stem]) as part:
                sf.write(part, audio, SR, subtype="PCM_16", format="WAV")
        # The mix is the exact sum of the 16-bit stems: 24-bit holds it without rounding (and,
        # unlike float WAV, libsndfile writes no timestamp into it, so the bytes never change).
        mix = sum(sf.read(refs[s], dtype="int32")[0] for s in item.stems)
        with atomic_path(mix_path) as part:
            sf.write(part, mix, SR, subtype="PCM_24", format="WAV")
    stored = ingest_path(mix_path, settings)
    return InputInfo(stored.hash, item.name, stored.path, stored.info), refs


def render(item: Example) -> dict[str, np.ndarray]:
    """The example's stems as float32 ``(n, 2)`` arrays, peak of their sum ≈ 0.9."""
    rng = np.random.default_rng(item.seed)
    n = int(item.seconds * SR)
    t = np.arange(n) / SR
    beat = 60.0 / BPM
    roots = 110.0 * 2 ** (np.array([0, 8, 3, 10]) / 12)  # A F C G, one chord per bar
    bar = np.minimum((t / (4 * beat)).astype(int) % len(roots), len(roots) - 1)
    stems = {
        "vocals": _pan(_vocal(t, rng, beat), 0.0),
        "drums": _drums(n, rng, beat),
        "bass": _pan(_bass(t, roots[bar], beat), 0.0),
        "other": _chords(t, roots[bar]),
    }
    peak = np.abs(sum(stems.values())).max()
    return {name: (0.9 * audio / peak).astype(np.float32) for name, audio in stems.items()}


def _pan(mono: np.ndarray, position: float) -> np.ndarray:
    """Constant-power pan, ``position`` in [-1, 1]."""
    angle = (position + 1) * np.pi / 4
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)], axis=1) * np.sqrt(2)


def _vocal(t: np.ndarray, rng: np.random.Generator, beat: float) -> np.ndarray:
    """Harmonics of a gliding melody with vibrato, vowel formants, phrased in syllables."""
    steps = rng.choice([0, 2, 3, 5, 7, 8, 10, 12], size=int(t[-1] / beat) + 2)
    target = 220.0 * 2 ** (steps[(t / beat).astype(int)] / 12)
    glide = np.exp(-1.0 / (0.03 * SR))  # one-pole portamento of ~30 ms
    pitch, _ = lfilter([1 - glide], [1, -glide], target, zi=[glide * target[0]])
    pitch *= 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / SR
    # Harmonic gains change slowly: compute them every CONTROL samples, interpolate between.
    slow = t[::CONTROL]
    vowel = (np.sin(2 * np.pi * slow / (2 * beat)) > 0).astype(float)  # "ah" / "ee" alternate
    voice = np.zeros_like(t)
    for k in range(1, 24):
        f = k * pitch[::CONTROL]
        ah = _formants(f, ((730, 90), (1090, 110), (2440, 160)))
        ee = _formants(f, ((270, 60), (2290, 120), (3010, 180)))
        gain = np.where(f < SR / 2 - 1000, vowel * ee + (1 - vowel) * ah, 0)
        voice += np.interp(t, slow, gain) * np.sin(k * phase)
    syllable = np.clip(np.sin(np.pi * (t % beat) / beat) * 1.6, 0, 1)
    phrase = (t % (8 * beat)) < 6 * beat  # breathe for two beats every two bars
    voice *= syllable * phrase
    voice += 0.002 * rng.standard_normal(len(t)) * syllable * phrase
    return 0.35 * voice / np.abs(voice).max()


def _formants(f: np.ndarray, peaks: tuple[tuple[float, float], ...]) -> np.ndarray:
    return sum(np.exp(-0.5 * ((f - c) / w) ** 2) for c, w in peaks) + 0.01


def _drums(n: int, rng: np.random.Generator, beat: float) -> np.ndarray:
    """Kick on 1 and 3, snare on 2 and 4, closed hats on eighths (hats panned right).

    Hits wander by a few ms like a drummer's; exactly on the grid, a kick would be
    phase-locked to the bass (30 bass cycles per beat at 110 bpm) and read as leakage.
    """
    out = np.zeros((n, 2))
    hit_t = np.arange(int(0.35 * SR)) / SR
    kick = np.sin(2 * np.pi * (45 * hit_t + 75 * 0.04 * (1 - np.exp(-hit_t / 0.04))))
    kick *= np.exp(-hit_t / 0.12)
    snare = rng.standard_normal(len(hit_t)) * np.exp(-hit_t / 0.07) * 0.5
    snare += 0.4 * np.sin(2 * np.pi * 185 * hit_t) * np.exp(-hit_t / 0.05)
    hat = np.diff(rng.standard_normal(int(0.05 * SR) + 1)) * np.exp(-hit_t[: int(0.05 * SR)] / 0.01)
    eighths = int(n / SR / (beat / 2))
    jitter = rng.normal(0, 0.006, size=eighths)  # a human drummer: never sample-exact
    for i in range(eighths):
        start = max(0, int((i * beat / 2 + jitter[i]) * SR))
        if i % 4 == 0:
            _add(out, start, _pan(0.9 * kick, 0.0))
        if i % 4 == 2:
            _add(out, start, _pan(0.6 * snare, -0.1))
        _add(out, start, _pan(0.12 * hat, 0.5))
    return out


def _add(out: np.ndarray, start: int, hit: np.ndarray) -> None:
    end = min(len(out), start + len(hit))
    out[start:end] += hit[: end - start]


def _bass(t: np.ndarray, root: np.ndarray, beat: float) -> np.ndarray:
    """The chord root an octave down, plucked on every beat, a few soft harmonics."""
    f = root / 2
    phase = 2 * np.pi * np.cumsum(f) / SR
    tone = sum(np.sin(k * phase) / k**1.5 for k in range(1, 6))
    return 0.3 * tone * np.exp(-(t % beat) / 0.25)


def _chords(t: np.ndarray, root: np.ndarray) -> np.ndarray:
    """A soft pad on each bar's triad, slightly wide in stereo and a few cents off the bass.

    Detuned and drifting like a real player, so its partials are not phase-locked to the bass
    ones at the same pitch (which no real pair of instruments is, and leakage would flag).
    """
    pad = np.zeros((len(t), 2))
    for semis, pan in ((12, -0.4), (16, 0.4), (19, 0.0)):
        cents = 6 + 4 * np.sin(2 * np.pi * t / (3.0 + semis / 10))
        phase = 2 * np.pi * np.cumsum(root * 2 ** ((semis + cents / 100) / 12)) / SR
        voice = sum(np.sin(k * phase) * 0.5**k for k in range(1, 5))
        pad += _pan(voice, pan)
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * t / 4.0) ** 2
    return 0.08 * pad * swell[:, None]
