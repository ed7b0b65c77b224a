"""Export stems as WAV/FLAC (16/24-bit) or MP3, write browser previews, zip a set of files.

Everything streams one block at a time from any decodable source, so a 20-minute stem never
sits in memory whole. Files are written under a temporary name and renamed when complete: an
interrupted export never leaves a half file under the real name.

Clipping: engines write float WAV stems that may exceed ±1 (so stems still sum exactly to the
mix). Integer PCM and MP3 cannot hold those values, so exports clip hard at ±1 (libsndfile would
otherwise wrap around, which sounds far worse) and the number of clipped samples is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf

from services.audio.decode import CHANNELS, SAMPLE_RATE, iter_blocks
from services.audio.ffmpeg import QUIET, ffmpeg_exe
from services.audio.formats import ExportFormat
from services.errors import StemDeckError

log = logging.getLogger(__name__)

BLOCK_FRAMES = SAMPLE_RATE * 10
_SUBTYPES = {16: "PCM_16", 24: "PCM_24"}


def export_audio(src: Path, dest_without_ext: Path, fmt: ExportFormat) -> Path:
    """Write ``src`` as ``dest_without_ext.<ext>`` in ``fmt``; return the written path."""
    dest = Path(dest_without_ext).with_name(Path(dest_without_ext).name + "." + fmt.extension)
    if fmt.container == "mp3":
        return _write_mp3(Path(src), dest, fmt.bitrate_kbps)
    with atomic_path(dest) as part:
        sf_format = "WAV" if fmt.container == "wav" else "FLAC"
        subtype = _SUBTYPES[fmt.bit_depth]
        with sf.SoundFile(part, "w", SAMPLE_RATE, CHANNELS, subtype, format=sf_format) as out:
            for block in _clipped_blocks(Path(src)):
                out.write(block)
    return dest


def write_preview(src: Path, dest: Path, bitrate_kbps: int = 128) -> Path:
    """An MP3 of ``src`` for the browser's audio player (small, universally playable)."""
    return _write_mp3(Path(src), Path(dest), bitrate_kbps)


def zip_files(members: list[tuple[str, Path]], dest: Path) -> Path:
    """Zip ``(arcname, file)`` pairs into ``dest``, streaming each file from disk.

    Stored, not deflated: audio barely compresses and deflating would cost CPU on every download.
    Arcnames must be plain relative names (no ``..``, no absolute paths) and unique.
    """
    seen: set[str] = set()
    for arcname, _ in members:
        pure = PurePosixPath(arcname)
        if not arcname or pure.is_absolute() or ".." in pure.parts or "\\" in arcname:
            raise ValueError(f"unsafe name in zip: {arcname!r}")
        if arcname in seen:
            raise ValueError(f"duplicate name in zip: {arcname!r}")
        seen.add(arcname)
    dest = Path(dest)
    with atomic_path(dest) as part, zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as archive:
        for arcname, path in members:
            archive.write(path, arcname)
    return dest


def _clipped_blocks(src: Path) -> Iterator[np.ndarray]:
    """Blocks of ``src`` clipped to ±1, logging how much was clipped (see module docstring)."""
    clipped = 0
    for block in iter_blocks(src, BLOCK_FRAMES):
        over = np.abs(block) > 1.0
        if over.any():
            clipped += int(over.sum())
            np.clip(block, -1.0, 1.0, out=block)
        yield block
    if clipped:
        log.info("clipped %d samples of %s to ±1 for export", clipped, src.name)


def _write_mp3(src: Path, dest: Path, bitrate_kbps: int) -> Path:
    """Encode with libmp3lame at a constant bitrate, fed raw float blocks through a pipe."""
    with atomic_path(dest) as part, tempfile.TemporaryFile() as errors:
        args = [ffmpeg_exe(), *QUIET, "-y", "-f", "f32le", "-ar", str(SAMPLE_RATE)]
        args += ["-ac", str(CHANNELS), "-i", "-", "-c:a", "libmp3lame", "-b:a"]
        args += [f"{bitrate_kbps}k", "-f", "mp3", "file:" + str(part)]
        proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors
        )
        assert proc.stdin is not None
        try:
            try:
                for block in _clipped_blocks(src):
                    proc.stdin.write(block.tobytes())
            except BrokenPipeError:
                pass  # the encoder died: its exit code below says so
            except BaseException:
                proc.kill()
                raise
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            proc.wait()
        if proc.returncode != 0:
            errors.seek(0)
            log.error("mp3 encoder failed: %s", errors.read(2000).decode("utf-8", "replace"))
            raise StemDeckError("Encoding the MP3 failed.")
    return dest


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A temporary sibling path to write, renamed onto ``dest`` only when writing succeeded.

    Readers never see a half-written file, and concurrent writers of the same ``dest`` each
    get their own temporary name (the last rename wins with a complete file).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    part = Path(name)
    try:
        yield part
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.chmod(0o644)  # mkstemp makes 0600; outputs are ordinary files
    os.replace(part, dest)
