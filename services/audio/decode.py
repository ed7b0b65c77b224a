"""Validate and decode any supported audio file to float32 stereo at 44.1 kHz.

Validation (:func:`probe`) runs cheapest-first so a bad input is refused before any heavy work:
size, emptiness, the content's magic bytes (never the file name), the container header, the
duration limit, then a short decode of the start and of the declared end (which catches corrupt
and truncated files). Decoding pipes raw float samples out of ffmpeg, which handles every
container with one code path, downmixes surround to stereo, duplicates mono and resamples.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.audio.ffmpeg import (
    QUIET,
    StreamInfo,
    ffmpeg_exe,
    header_report,
    input_arg,
    parse_report,
)
from services.config import Settings
from services.errors import InputRejected

SAMPLE_RATE = 44100
CHANNELS = 2
HEAD_BYTES = 4096
MIN_DURATION_S = 0.5
# Peak level under which a whole file counts as silent (-60 dBFS: dither and encoder noise sit
# far below it, any audible recording far above it).
SILENCE_PEAK = 10 ** (-60 / 20)
# Largest sample magnitude decoding passes on (+24 dBFS). Float WAV stems legitimately exceed
# ±1 a little; a corrupt float file can hold NaN, ±inf or 1e38, which would poison every later
# computation, so non-finite samples become 0 and the rest is clipped here.
MAX_SAMPLE = 16.0

FORMAT_LABELS = {
    "wav": "WAV",
    "aiff": "AIFF",
    "flac": "FLAC",
    "ogg": "Ogg (Vorbis/Opus)",
    "mp3": "MP3",
    "aac": "AAC",
    "m4a": "M4A/MP4",
    "webm": "WebM/Matroska",
}
SUPPORTED = "MP3, WAV, FLAC, Ogg/Opus, M4A/AAC, AIFF or WebM"

# Counting decodes (duration, head and tail checks) run at a low rate: only frames are counted.
_COUNT_RATE = 8000
_WINDOW_S = 2.0
# Audio decoding past the declared end by more than this means the header under-states it.
_OVERRUN_S = 0.5


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a validated input is: container (sniffed), codec, length and source layout."""

    format: str
    codec: str
    duration_s: float
    sample_rate: int
    channels: int
    size_bytes: int

    @property
    def label(self) -> str:
        """A short human description, e.g. ``MP3 · 3:12 · 44.1 kHz stereo``."""
        layout = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} ch")
        rate = f"{self.sample_rate / 1000:g} kHz" if self.sample_rate else "? kHz"
        name = FORMAT_LABELS.get(self.format, self.format)
        return f"{name} · {clock(self.duration_s)} · {rate} {layout}"


# --- content sniffing -----------------------------------------------------------------------

_MPEG_BITRATES = {
    (3, 3): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (3, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (3, 1): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 3): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_ADTS_RATES = 13
_IMAGE_BRANDS = (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis")


def sniff(head: bytes) -> str | None:
    """The audio container ``head`` (the first bytes of a file) starts with, or None."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head[4:8] == b"ftyp":
        return None if head[8:12] in _IMAGE_BRANDS else "m4a"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    tag = _id3_length(head)
    if tag:
        after = head[tag:]
        if after.startswith(b"fLaC"):
            return "flac"
        return "aac" if _adts_frame(after, 0) else "mp3"
    start = len(head) - len(head.lstrip(b"\x00"))  # some encoders pad the start with zeros
    if _frame_chain(head, start, _mpeg_frame):
        return "mp3"
    if _frame_chain(head, start, _adts_frame):
        return "aac"
    return None


def _id3_length(head: bytes) -> int:
    """Length of a leading ID3v2 tag (header, body, footer), 0 when there is none."""
    if len(head) < 10 or not head.startswith(b"ID3") or head[3] not in (2, 3, 4):
        return 0
    if head[4] == 0xFF or any(b >= 0x80 for b in head[6:10]):
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    return 10 + size + (10 if head[5] & 0x10 else 0)


def _mpeg_frame(data: bytes, at: int) -> int:
    """Byte length of the MPEG audio frame whose header is at ``at``, 0 if none is there."""
    if len(data) < at + 4 or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return 0
    version, layer = (data[at + 1] >> 3) & 3, (data[at + 1] >> 1) & 3
    bitrate_idx, rate_idx = data[at + 2] >> 4, (data[at + 2] >> 2) & 3
    if version == 1 or layer == 0 or bitrate_idx in (0, 15) or rate_idx == 3:
        return 0
    if data[at + 3] & 3 == 2:  # reserved emphasis
        return 0
    table = _MPEG_BITRATES[(3, layer) if version == 3 else (2, 3 if layer == 3 else 2)]
    bitrate = table[bitrate_idx - 1] * 1000
    rate = _MPEG_RATES[version][rate_idx]
    padding = (data[at + 2] >> 1) & 1
    if layer == 3:  # layer I
        return (12 * bitrate // rate + padding) * 4
    per_frame = 72 if (layer == 1 and version != 3) else 144
    return per_frame * bitrate // rate + padding


def _adts_frame(data: bytes, at: int) -> int:
    """Byte length of the ADTS (raw AAC) frame whose header is at ``at``, 0 if none is there."""
    if len(data) < at + 7 or data[at] != 0xFF or data[at + 1] & 0xF6 != 0xF0:
        return 0
    if (data[at + 2] >> 2) & 0xF >= _ADTS_RATES:
        return 0
    length = ((data[at + 3] & 3) << 11) | (data[at + 4] << 3) | (data[at + 5] >> 5)
    return length if length >= 7 else 0


def _frame_chain(head: bytes, at: int, frame) -> bool:
    """A frame header at ``at`` followed by another where its length says: rules out chance."""
    length = frame(head, at)
    if not length:
        return False
    nxt = at + length
    return nxt + 4 > len(head) or bool(frame(head, nxt))


_NOT_AUDIO = (
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program"),
)


def describe_non_audio(head: bytes) -> str:
    """What a non-audio file looks like, for the rejection message."""
    for magic, what in _NOT_AUDIO:
        if head.startswith(magic):
            return what
    if head.startswith(b"MZ") and b"This program" in head[:512]:
        return "a program"
    if head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS:
        return "an image (HEIC/AVIF)"
    if head[:4] == b"RIFF":
        return {b"AVI ": "an AVI video", b"WEBP": "a WebP image"}.get(head[8:12], "a RIFF file")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "a web page (HTML)"
    if text.startswith(b"<?xml") or text.startswith(b"<svg"):
        return "an XML document"
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        # A cut multi-byte character at the very end is still text.
        decoded = head[:-3].decode("utf-8", "ignore") if len(head) > 3 else ""
    if decoded and all(c.isprintable() or c in "\r\n\t" for c in decoded):
        return "a text file"
    return ""


def not_audio_message(head: bytes) -> str:
    """The one-line rejection for content that no supported audio container starts with."""
    what = describe_non_audio(head)
    if what:
        return f"This file is not audio (it looks like {what}). Upload {SUPPORTED}."
    return f"This file is not in a supported audio format. Upload {SUPPORTED}."


# --- validation -----------------------------------------------------------------------------


def probe(path: Path, settings: Settings) -> AudioInfo:
    """Check ``path`` is a usable audio file within the limits; raise InputRejected if not."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError:
        raise InputRejected("The file could not be read.") from None
    check_size(size, settings)
    fmt = sniff(head)
    if fmt is None:
        raise InputRejected(not_audio_message(head))
    label = FORMAT_LABELS[fmt]
    if fmt == "wav" and _wav_is_truncated(head, size):
        raise InputRejected(_TRUNCATED)
    report = header_report(path)
    stream = parse_report(report)
    if stream is None:
        if "Stream #" in report:
            raise InputRejected(f"This {label} file has no audio track.")
        raise InputRejected(f"This file looks like {label} but cannot be decoded; {_CORRUPT}")
    if fmt == "mp3" and stream.codec in ("flac", "aac"):
        fmt = stream.codec  # an ID3 tag longer than the sniffed head hid the real container
    estimated = "Estimating duration from bitrate" in report
    duration = stream.duration_s
    if duration is None or estimated:
        # The container does not state its length: measure it, but never past the limit.
        duration = _measured_length(path, settings)
    if duration > settings.max_duration_s:
        raise InputRejected(
            f"The audio is {clock(duration)} long; the limit is {clock(settings.max_duration_s)}."
        )
    if duration == 0:
        raise InputRejected(f"This {label} file contains no audio (its length is 0 seconds).")
    if _decoded_seconds(path, 0.0, _WINDOW_S) == 0:
        raise InputRejected(f"This {label} file could not be decoded; {_CORRUPT}")
    if duration < MIN_DURATION_S:
        raise InputRejected(
            f"The audio is only {duration:.2f} s long; at least {MIN_DURATION_S:g} s is needed."
        )
    if not estimated:
        # Decode past the declared end too: chained Ogg streams or appended FLAC decode far
        # beyond what the header states, which would slip past the duration limit.
        start = max(0.0, duration - _WINDOW_S)
        tail = _decoded_seconds(path, start, 2 * _WINDOW_S)
        if tail < 0.25 * (duration - start):
            raise InputRejected(_TRUNCATED)
        if start + tail > duration + _OVERRUN_S:
            duration = _measured_length(path, settings)
    return AudioInfo(fmt, stream.codec, duration, stream.sample_rate, stream.channels, size)


def _measured_length(path: Path, settings: Settings) -> float:
    """Seconds that really decode, measured up to just past the limit (refused beyond it)."""
    seconds = _decoded_seconds(path, 0.0, settings.max_duration_s + 1)
    if seconds > settings.max_duration_s:
        limit = clock(settings.max_duration_s)
        raise InputRejected(f"The audio is longer than {limit}; the limit is {limit}.")
    return seconds


def check_size(size: int, settings: Settings) -> None:
    """Refuse empty and oversized inputs (callers holding bytes check before writing them)."""
    if size == 0:
        raise InputRejected("The file is empty (0 bytes).")
    if size > settings.max_upload_bytes:
        limit = human_bytes(settings.max_upload_bytes)
        raise InputRejected(f"The file is {human_bytes(size)}; the limit is {limit}.")


_CORRUPT = "it may be corrupt."
_TRUNCATED = (
    "The file is incomplete (it ends before its declared length); "
    "it may have been cut off during a download or copy."
)


def _wav_is_truncated(head: bytes, size: int) -> bool:
    """True when the WAV ``data`` chunk declares more bytes than the file has.

    ffmpeg quietly plays a cut WAV up to where it ends, so only the header can tell.
    Streaming writers leave the size 0 or all-ones ("unknown"): those are accepted.
    """
    at = 12
    while at + 8 <= len(head):
        chunk, length = head[at : at + 4], int.from_bytes(head[at + 4 : at + 8], "little")
        if chunk == b"data":
            return length not in (0, 0xFFFFFFFF) and length > size - (at + 8)
        at += 8 + length + (length & 1)
    return False


def ensure_audible(path: Path) -> None:
    """Raise InputRejected if the whole file is silent.

    Cheap for real music: decoding stops at the first block above -60 dBFS, usually within
    the first second; only a silent file is decoded to its end (and it is then refused).
    """
    blocks = iter_blocks(path, SAMPLE_RATE)
    try:
        for block in blocks:
            if block.size and float(np.abs(block).max()) > SILENCE_PEAK:
                return
    finally:
        blocks.close()
    raise InputRejected("The file is silent: it contains no audible sound.")


# --- decoding -------------------------------------------------------------------------------


@contextlib.contextmanager
def _decoder(
    path: Path,
    rate: int,
    channels: int,
    start: float = 0.0,
    length: float | None = None,
    mono_source: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """An ffmpeg process writing float32 little-endian frames of ``path`` to its stdout.

    A mono source is copied to both channels at full level (ffmpeg's own upmix treats mono as a
    centre speaker and lowers it by 3 dB); surround is downmixed with ffmpeg's standard matrix.
    stderr goes to /dev/null: a corrupt file can print errors faster than anyone reads them.
    The process is killed when the block exits, so abandoned streams never linger.
    """
    args = [ffmpeg_exe(), *QUIET]
    if start > 0:
        args += ["-ss", f"{start:.3f}"]
    if length is not None:
        args += ["-t", f"{length:.3f}"]
    args += ["-i", input_arg(path), "-map", "0:a:0", "-vn", "-sn", "-dn"]
    if mono_source and channels == 2:
        args += ["-af", "pan=stereo|c0=c0|c1=c0"]
    args += ["-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(channels), "-ar", str(rate), "-"]
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        assert proc.stdout is not None
        proc.stdout.close()
        proc.wait()


def _decoded_seconds(path: Path, start: float, length: float) -> float:
    """How many seconds of audio actually decode from ``start`` (at most ``length``)."""
    total = 0
    with _decoder(path, _COUNT_RATE, 1, start, length) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 16):
            total += len(chunk)
    return total / 4 / _COUNT_RATE


def _readinto_full(stream, view: memoryview) -> int:
    """Fill ``view`` from ``stream`` until full or EOF; return the bytes read."""
    filled = 0
    while filled < len(view):
        n = stream.readinto(view[filled:])
        if not n:
            break
        filled += n
    return filled


def _source(path: Path) -> StreamInfo:
    """The header facts decoding needs (source layout, length estimate)."""
    stream = parse_report(header_report(path))
    if stream is None:
        raise _undecodable()
    return stream


def _undecodable() -> InputRejected:
    return InputRejected("The audio could not be decoded; the file may be corrupt.")


def iter_blocks(path: Path, block_frames: int) -> Iterator[np.ndarray]:
    """Yield float32 ``(≤block_frames, 2)`` blocks at 44.1 kHz; memory stays one block."""
    if block_frames <= 0:
        raise ValueError("block_frames must be positive")
    frame_bytes = 4 * CHANNELS
    produced = 0
    path = Path(path)
    mono = _source(path).channels == 1
    with _decoder(path, SAMPLE_RATE, CHANNELS, mono_source=mono) as proc:
        assert proc.stdout is not None
        while True:
            block = np.empty((block_frames, CHANNELS), dtype=np.float32)
            with memoryview(block).cast("B") as view:
                got = _readinto_full(proc.stdout, view) // frame_bytes
            if got == 0:
                break
            produced += got
            yield _finite(block[:got])
            if got < block_frames:
                break
        if proc.wait() != 0 or produced == 0:
            raise _undecodable()


def load(path: Path) -> np.ndarray:
    """The whole file as float32 ``(n, 2)`` at 44.1 kHz.

    The buffer is sized from the header's duration and filled in place, so peak memory is about
    one copy of the decoded audio (≈ 212 MB for 10 minutes), not two.
    """
    path = Path(path)
    stream = _source(path)
    estimate = int(((stream.duration_s or 60.0) + 1.0) * SAMPLE_RATE)
    buf = np.empty((estimate, CHANNELS), dtype=np.float32)
    frames = 0
    frame_bytes = 4 * CHANNELS
    with _decoder(path, SAMPLE_RATE, CHANNELS, mono_source=stream.channels == 1) as proc:
        assert proc.stdout is not None
        while True:
            if frames == len(buf):  # the header under-stated the length: grow by a quarter
                buf = _grown(buf, len(buf) + len(buf) // 4 + SAMPLE_RATE)
            with memoryview(buf[frames:]).cast("B") as view:
                got = _readinto_full(proc.stdout, view) // frame_bytes
            frames += got
            if frames < len(buf):
                break
        if proc.wait() != 0 or frames == 0:
            raise _undecodable()
    buf.resize((frames, CHANNELS), refcheck=False)  # shrinks in place, no copy
    return _finite(buf)


def _grown(buf: np.ndarray, frames: int) -> np.ndarray:
    """A larger buffer owning its memory (``np.resize`` returns a view, which the final
    in-place ``resize`` refuses), holding ``buf``'s samples first."""
    grown = np.empty((frames, CHANNELS), dtype=np.float32)
    grown[: len(buf)] = buf
    return grown


def _finite(samples: np.ndarray) -> np.ndarray:
    """``samples`` with NaN/±inf zeroed and magnitudes clipped to MAX_SAMPLE, in place."""
    np.nan_to_num(samples, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(samples, -MAX_SAMPLE, MAX_SAMPLE, out=samples)


# --- formatting -----------------------------------------------------------------------------


def clock(seconds: float) -> str:
    """``m:ss`` (minutes may exceed 59), as users read durations."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def human_bytes(n: int) -> str:
    """``512 bytes``, ``300 KB``, ``12.5 MB``, ``200 MB``."""
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f}".removesuffix(".0") + " MB"
