"""The ffmpeg binary and a header probe built on ``ffmpeg -i``.

A fresh ``pip install`` must be enough, so the binary shipped in the ``imageio-ffmpeg`` wheel is
the fallback when no system ``ffmpeg`` is on PATH. That wheel has no ``ffprobe``: the probe
parses the stream summary ``ffmpeg -i`` prints, which has been stable for many years. Pydub is
not used; decoding and encoding call ffmpeg directly through pipes.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Options every invocation gets: never read the terminal, print only real errors.
QUIET = ("-nostdin", "-hide_banner", "-loglevel", "error")

_DURATION = re.compile(r"Duration:\s*(?:(\d+):(\d+):(\d+(?:\.\d+)?)|N/A)")
_AUDIO = re.compile(r"Stream #\d+:\d+(?:\[[^\]]*\])?(?:\([^)]*\))?: Audio: ([^\n]*)")
_LAYOUTS = {
    "mono": 1,
    "stereo": 2,
    "downmix": 2,
    "quad": 4,
    "hexagonal": 6,
    "octagonal": 8,
    "hexadecagonal": 16,
}


@functools.cache
def ffmpeg_exe() -> str:
    """A system ``ffmpeg`` if present (often newer, with more codecs), else the wheel's."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg  # deferred: importing it is only needed without a system ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def input_arg(path: Path) -> str:
    """``file:`` forces the file protocol, so no name is ever read as a URL or option."""
    return "file:" + str(Path(path).resolve())


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What ``ffmpeg -i`` says about a file's first audio stream."""

    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None  # None when the container does not say (e.g. live-recorded webm)


def header_report(path: Path, timeout_s: float = 30.0) -> str:
    """The text ``ffmpeg -i`` prints for ``path`` (it always exits 1: no output was given).

    Empty when ffmpeg takes longer than ``timeout_s`` (a pathological file): callers then see
    no audio stream and refuse the file as undecodable.
    """
    try:
        proc = subprocess.run(
            [ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", input_arg(path)],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ""
    return proc.stderr.decode("utf-8", "replace")


def parse_report(report: str) -> StreamInfo | None:
    """The first audio stream of an ``ffmpeg -i`` report, or None when it has none."""
    stream = _AUDIO.search(report)
    if stream is None:
        return None
    fields = [part.strip() for part in stream.group(1).split(",")]
    codec = fields[0].split()[0] if fields and fields[0] else "unknown"
    rate = next((int(m.group(1)) for f in fields if (m := re.fullmatch(r"(\d+) Hz", f))), 0)
    channels = next((n for f in fields if (n := _channel_count(f))), 0)
    duration = _DURATION.search(report)
    seconds = None
    if duration and duration.group(1) is not None:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    return StreamInfo(codec, rate, channels, seconds)


def _channel_count(field: str) -> int:
    """Channels from a layout field: ``stereo``, ``5.1(side)``, ``6 channels``, ``7.1(wide)``."""
    if m := re.fullmatch(r"(\d+) channels(?: \(.*\))?", field):
        return int(m.group(1))
    if m := re.fullmatch(r"(\d+)\.(\d+)(?:\(.*\))?", field):
        return int(m.group(1)) + int(m.group(2))
    return _LAYOUTS.get(re.sub(r"\(.*\)$", "", field), 0)
