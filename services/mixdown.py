"""Server-side mixdown of a job's stems with the mixer's settings (gain, mute, solo, pan).

The browser mixer and this module apply the *same* rules, so "Download this mix" sounds like
what the user just heard:

- **Gain** is in dB (``10 ** (gain_db / 20)``); ``-inf`` dB is silence.
- **Solo/mute**: when any lane is soloed only soloed lanes are audible; **mute wins over solo**
  (a lane both soloed and muted is silent), as on a hardware desk.
- **Pan** follows the W3C Web Audio ``StereoPannerNode`` law for stereo input, which is what
  the browser's panner does: the centre is unity (the stems still sum to the original mix);
  panning left keeps the left channel and moves the right channel across with equal-power
  gains ``cos(x·π/2)`` (to the left) and ``sin(x·π/2)`` (stays right), ``x = pan + 1``;
  mirrored for the right. Half-way (±0.5) the moved channel is at −3 dB on each side; hard left
  (−1) is ``L + R`` on the left and silence on the right.
- **Clipping protection**: the mix is summed in float64. Only when its peak would exceed full
  scale (1.0) is the *whole* mix lowered by one constant gain so the peak sits at
  ``CEILING_DBFS`` (headroom for MP3 encoding). Relative levels never change, and the applied
  gain is reported in :class:`MixStats`.

Mixing streams the stems block by block (bounded memory for 20-minute tracks): pass one writes
a float32 WAV and measures the peak, pass two (only if needed) rescales it, then the chosen
:class:`ExportFormat` is written by :func:`services.audio.encode.export_audio`.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from services import stems as stem_names
from services.audio.decode import SAMPLE_RATE, iter_blocks
from services.audio.encode import export_audio
from services.audio.formats import ExportFormat

BLOCK_FRAMES = 1 << 16
MAX_GAIN_DB = 24.0
CEILING_DBFS = -1.0
"""Peak level a clipping mix is lowered to (1 dB below full scale, room for MP3 overshoot)."""


@dataclass(frozen=True, slots=True)
class LaneSettings:
    """One lane of the mixer: gain in dB, mute, solo, pan in [-1 (left), +1 (right)]."""

    gain_db: float = 0.0
    mute: bool = False
    solo: bool = False
    pan: float = 0.0

    def __post_init__(self) -> None:
        if math.isnan(self.gain_db) or self.gain_db > MAX_GAIN_DB:
            raise ValueError(f"gain must be a number up to +{MAX_GAIN_DB:g} dB")
        if not -1.0 <= self.pan <= 1.0:
            raise ValueError("pan must be between -1 (left) and +1 (right)")

    @property
    def linear_gain(self) -> float:
        return 0.0 if self.gain_db == -math.inf else 10.0 ** (self.gain_db / 20.0)

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> LaneSettings:
        """Tolerant parse of the browser's report (missing keys keep defaults, pan clamped)."""
        gain = float(raw.get("gain_db", 0.0) or 0.0)  # type: ignore[arg-type]
        pan = float(raw.get("pan", 0.0) or 0.0)  # type: ignore[arg-type]
        return cls(
            gain_db=min(gain, MAX_GAIN_DB),
            mute=bool(raw.get("mute", False)),
            solo=bool(raw.get("solo", False)),
            pan=max(-1.0, min(1.0, pan)),
        )


@dataclass(frozen=True, slots=True)
class MixStats:
    """What a mixdown did: length, the peak before protection, and the gain applied for it."""

    frames: int
    peak: float  # before clipping protection (1.0 = full scale)
    protection_db: float  # 0.0 when the mix did not need lowering, else negative

    @property
    def duration_s(self) -> float:
        return self.frames / SAMPLE_RATE


def audible(lanes: Mapping[str, LaneSettings]) -> dict[str, bool]:
    """Which lanes are heard: with any solo only soloed lanes, and mute always silences."""
    any_solo = any(lane.solo for lane in lanes.values())
    return {stem: not lane.mute and (lane.solo or not any_solo) for stem, lane in lanes.items()}


def pan_matrix(pan: float) -> np.ndarray:
    """2×2 matrix ``M`` with ``[outL, outR] = [inL, inR] @ M`` (Web Audio stereo pan law)."""
    if pan == 0:  # exactly unity (cos(π/2) is 6e-17, not 0): a centred mix is bit-exact
        return np.eye(2)
    if pan < 0:
        x = (pan + 1.0) * math.pi / 2
        # outL = inL + inR·cos(x); outR = inR·sin(x)
        return np.array([[1.0, 0.0], [math.cos(x), math.sin(x)]])
    x = pan * math.pi / 2
    # outL = inL·cos(x); outR = inR + inL·sin(x)
    return np.array([[math.cos(x), math.sin(x)], [0.0, 1.0]])


def lane_matrices(lanes: Mapping[str, LaneSettings]) -> dict[str, np.ndarray]:
    """Per audible lane, the 2×2 matrix (gain × pan) applied to its stereo samples."""
    heard = audible(lanes)
    return {
        stem: lane.linear_gain * pan_matrix(lane.pan)
        for stem, lane in lanes.items()
        if heard[stem] and lane.linear_gain > 0.0
    }


def mix_arrays(signals: Mapping[str, np.ndarray], lanes: Mapping[str, LaneSettings]) -> np.ndarray:
    """Mix in memory (float64, no clipping protection): the reference the tests check against.

    ``signals`` are (n, 2) arrays; shorter ones are zero-padded to the longest. Lanes without
    settings use the defaults.
    """
    settings = {stem: lanes.get(stem, LaneSettings()) for stem in signals}
    frames = max((len(x) for x in signals.values()), default=0)
    out = np.zeros((frames, 2))
    for stem, matrix in lane_matrices(settings).items():
        x = np.asarray(signals[stem], dtype=np.float64)
        out[: len(x)] += x @ matrix
    return out


def mixdown(
    stem_files: Mapping[str, Path],
    lanes: Mapping[str, LaneSettings],
    dest: Path,
    fmt: ExportFormat | None,
) -> Path:
    """Mix ``stem_files`` with ``lanes`` into ``dest`` + the format's extension; return the file.

    ``dest`` is a path without extension (as for ``export_audio``). ``fmt=None`` keeps the mix
    as float32 WAV (exact; used by tests). Stems without settings use the defaults.
    """
    return mixdown_with_stats(stem_files, lanes, dest, fmt)[0]


def mixdown_with_stats(
    stem_files: Mapping[str, Path],
    lanes: Mapping[str, LaneSettings],
    dest: Path,
    fmt: ExportFormat | None,
) -> tuple[Path, MixStats]:
    """:func:`mixdown`, also returning what it did (peak, clipping protection applied)."""
    if not stem_files:
        raise ValueError("no stems to mix")
    dest.parent.mkdir(parents=True, exist_ok=True)
    settings = {stem: lanes.get(stem, LaneSettings()) for stem in stem_files}
    tag = uuid.uuid4().hex[:8]
    raw = dest.parent / f".{dest.name}.{tag}.mix.wav"
    scaled = dest.parent / f".{dest.name}.{tag}.scaled.wav"
    try:
        frames, peak = _mix_to_float_wav(stem_files, settings, raw)
        gain = 1.0
        if peak > 1.0:
            gain = 10.0 ** (CEILING_DBFS / 20.0) / peak
            _rescale(raw, scaled, gain)
            os.replace(scaled, raw)
        stats = MixStats(frames, peak, 20.0 * math.log10(gain))
        if fmt is None:
            final = dest.with_name(dest.name + ".wav")
            os.replace(raw, final)
        else:
            final = export_audio(raw, dest, fmt)
        return final, stats
    finally:
        raw.unlink(missing_ok=True)
        scaled.unlink(missing_ok=True)


def _mix_to_float_wav(
    stem_files: Mapping[str, Path], settings: Mapping[str, LaneSettings], dest: Path
) -> tuple[int, float]:
    """Pass one: stream every stem, sum per block in float64, write float32; (frames, peak).

    Every stem is read even when inaudible, so the mix is as long as the longest stem.
    """
    matrices = lane_matrices(settings)
    readers = {stem: _Frames(iter_blocks(path, BLOCK_FRAMES)) for stem, path in stem_files.items()}
    frames, peak = 0, 0.0
    with sf.SoundFile(dest, "w", SAMPLE_RATE, 2, subtype="FLOAT", format="WAV") as out:
        while True:
            blocks = {stem: reader.take(BLOCK_FRAMES) for stem, reader in readers.items()}
            n = max(len(b) for b in blocks.values())
            if n == 0:
                return frames, peak
            acc = np.zeros((n, 2))
            for stem, matrix in matrices.items():
                block = blocks[stem].astype(np.float64)
                acc[: len(block)] += block @ matrix
            mixed = acc.astype(np.float32)
            out.write(mixed)
            frames += n
            peak = max(peak, float(np.max(np.abs(mixed))))


def _rescale(src: Path, dest: Path, gain: float) -> None:
    """Pass two (only for a clipping mix): multiply every sample by one constant gain."""
    with sf.SoundFile(dest, "w", SAMPLE_RATE, 2, subtype="FLOAT", format="WAV") as out:
        for block in sf.blocks(str(src), blocksize=BLOCK_FRAMES, dtype="float64", always_2d=True):
            out.write((block * gain).astype(np.float32))


class _Frames:
    """Re-chunks a block iterator into exact sizes (decoders may yield ragged blocks)."""

    def __init__(self, blocks: Iterator[np.ndarray]) -> None:
        self._blocks = blocks
        self._pending: list[np.ndarray] = []
        self._count = 0

    def take(self, n: int) -> np.ndarray:
        while self._count < n:
            block = next(self._blocks, None)
            if block is None:
                break
            block = np.asarray(block, dtype=np.float32).reshape(-1, 2)
            self._pending.append(block)
            self._count += len(block)
        joined = np.concatenate(self._pending) if self._pending else np.zeros((0, 2), np.float32)
        head, rest = joined[:n], joined[n:]
        self._pending = [rest] if len(rest) else []
        self._count = len(rest)
        return head


@dataclass(frozen=True, slots=True)
class Preset:
    """A one-click mix defined by the stem families it leaves out; call it with the stem list."""

    name: str
    label: str
    drop: str  # stem family removed from the mix
    description: str

    def applies(self, stems: Sequence[str]) -> bool:
        """Meaningful only when the family to drop is present and something else remains."""
        fams = [stem_names.family(s) for s in stems]
        return self.drop in fams and any(f != self.drop for f in fams)

    def __call__(self, stems: Sequence[str]) -> dict[str, LaneSettings]:
        return {s: LaneSettings(mute=stem_names.family(s) == self.drop) for s in stems}


PRESETS: dict[str, Preset] = {
    "karaoke": Preset(
        "karaoke", "Karaoke", stem_names.VOCALS, "Everything but the vocals, to sing along."
    ),
    "drumless": Preset(
        "drumless", "Drumless", stem_names.DRUMS, "Everything but the drums, to play along."
    ),
}
