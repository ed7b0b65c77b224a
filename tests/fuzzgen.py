"""Corrupt-input generators and a bounded case runner for the fuzz suites.

Inputs come from a seeded generator (not hypothesis) so a CI run always tries the very same
files and a failure names a reproducible case: ``cases(seeds, n, seed)`` yields ``Case``s built
from small valid files (truncated, bit-flipped, overwritten, spliced), hand-made WAV headers with
absurd fields, and non-audio content wearing audio file names. ``run_bounded`` runs one case
under a wall-clock bound and classifies its outcome; ``Tally`` counts outcomes for the summary
the conftest hook prints. ``STEMDECK_FUZZ_EXAMPLES`` scales the number of cases.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import re
import struct
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from services.audio.decode import MAX_SAMPLE
from services.errors import StemDeckError
from tests import figures
from tests.audiogen import mix, tone, vocal_like, write

# A case running longer than this counts as hung (a detector for hangs, not a speed check).
CASE_BOUND_S = 30.0
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aiff", ".opus", ".webm")


def examples(default: int) -> int:
    """How many generated inputs a suite tries: ``default`` scaled by STEMDECK_FUZZ_EXAMPLES
    (the total wanted over both suites; 1,000 is the CI value)."""
    wanted = int(os.environ.get("STEMDECK_FUZZ_EXAMPLES", "0") or 0)
    return max(1, round(default * wanted / 1000)) if wanted else default


@dataclass(frozen=True, slots=True)
class Case:
    """One generated input: ``family`` says how it was made (for counts and failure reports)."""

    family: str
    data: bytes
    name: str


# --- valid seeds ---------------------------------------------------------------------------


def make_seeds(folder: Path) -> dict[str, bytes]:
    """Small valid files (0.6–1.5 s) in every container the fuzzers mutate."""
    song = mix(vocal_like(1.5, sr=22050, amp=0.4), tone(110, 1.5, sr=22050, amp=0.2))
    files = {
        "wav": write(folder / "s.wav", song, sr=22050),
        "wav-mono8k": write(folder / "m.wav", tone(330, 0.8, sr=8000, channels=1), sr=8000),
        "wav-float": write(folder / "f.wav", tone(500, 0.6, sr=16000), sr=16000, fmt="wav-float"),
        "flac": write(folder / "s.flac", song, sr=22050),
        "mp3": write(folder / "s.mp3", song, sr=22050),
        "ogg": write(folder / "s.ogg", song, sr=22050),
        "opus": write(folder / "s.opus", tone(440, 1.0, sr=48000), sr=48000),
        "m4a": write(folder / "s.m4a", tone(440, 1.0)),
        "aiff": write(folder / "s.aiff", tone(440, 0.7, sr=11025), sr=11025),
    }
    return {kind: path.read_bytes() for kind, path in files.items()}


# --- mutators ------------------------------------------------------------------------------


def _position(rng: np.random.Generator, size: int) -> int:
    """A byte offset, half the time inside the first 256 bytes where headers live."""
    if size <= 1:
        return 0
    limit = min(size, 256) if rng.random() < 0.5 else size
    return int(rng.integers(0, limit))


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: _position(rng, len(data))]


def flip_bits(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 33))):
        at = _position(rng, len(out))
        out[at] ^= 1 << int(rng.integers(0, 8))
    return bytes(out)


def overwrite(data: bytes, rng: np.random.Generator) -> bytes:
    """A run of random, zero or 0xFF bytes over part of the file."""
    at, length = _position(rng, len(data)), int(rng.integers(1, 512))
    fill = rng.choice(3)
    run = (rng.bytes(length), bytes(length), b"\xff" * length)[fill]
    return data[:at] + run + data[at + length :]


def splice(data: bytes, rng: np.random.Generator) -> bytes:
    """Cut a slice out, or repeat one: frames end up out of order or missing."""
    a, b = sorted(int(x) for x in rng.integers(0, len(data), 2))
    return data[:a] + data[b:] if rng.random() < 0.5 else data[:b] + data[a:b] + data[b:]


MUTATORS: dict[str, Callable[[bytes, np.random.Generator], bytes]] = {
    "truncated": truncate,
    "bitflip": flip_bits,
    "overwritten": overwrite,
    "spliced": splice,
}


# --- hand-made WAV headers -----------------------------------------------------------------


def wav_bytes(
    body: bytes,
    rate: int = 8000,
    channels: int = 1,
    bits: int = 16,
    fmt_tag: int = 1,
    riff_size: int | None = None,
    data_size: int | None = None,
    block_align: int | None = None,
    fmt_size: int = 16,
) -> bytes:
    """A RIFF/WAVE file with every header field settable, including impossible values."""
    align = block_align if block_align is not None else max(1, channels * bits // 8)
    byte_rate = (rate * align) & 0xFFFFFFFF
    fmt = struct.pack(
        "<HHIIHH",
        fmt_tag & 0xFFFF,
        channels & 0xFFFF,
        rate & 0xFFFFFFFF,
        byte_rate,
        align & 0xFFFF,
        bits & 0xFFFF,
    )
    fmt = fmt.ljust(min(fmt_size, 64), b"\x00")[:fmt_size]  # a huge size is declared, not sent
    declared = len(body) if data_size is None else data_size
    chunks = b"fmt " + struct.pack("<I", fmt_size & 0xFFFFFFFF) + fmt
    chunks += b"data" + struct.pack("<I", declared & 0xFFFFFFFF) + body
    riff = 4 + len(chunks) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", riff & 0xFFFFFFFF) + b"WAVE" + chunks


_ABSURD = {
    "rate": (0, 1, 7, 10**9, 2**32 - 1),
    "channels": (0, 3, 255, 65535),
    "bits": (0, 1, 7, 12, 33, 64, 255),
    "fmt_tag": (0, 2, 3, 0x55, 0xFFFE, 0xFFFF),
    "riff_size": (0, 4, 2**31, 2**32 - 1),
    "data_size": (0, 1, 3, 2**31, 2**32 - 2, 2**32 - 1),
    "block_align": (0, 1, 3, 65535),
    "fmt_size": (0, 2, 14, 18, 40, 10**6),
}


def wav_header_case(rng: np.random.Generator, body: bytes) -> Case:
    """One or two absurd header fields over a real 8 kHz mono 16-bit body."""
    fields = rng.choice(sorted(_ABSURD), size=int(rng.integers(1, 3)), replace=False)
    values = {str(f): int(rng.choice(_ABSURD[str(f)])) for f in fields}
    label = ",".join(f"{k}={v}" for k, v in sorted(values.items()))
    return Case(f"wav-header[{label}]", wav_bytes(body, **values), "header.wav")


# --- non-audio wearing audio names ---------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def non_audio(seeds: dict[str, bytes]) -> dict[str, bytes]:
    """Files that are not audio at all, several of them carrying real audio inside."""
    wav = seeds["wav-mono8k"]
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + bytes(17) + b"IEND\xaeB`\x82"
    return {
        "png": png,
        "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(600),
        "gif": b"GIF89a" + bytes(400),
        "pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n",
        "zip-with-wav": _zip({"song.wav": wav}),
        "zip-empty": _zip({}),
        "tar-with-wav": _tar({"song.wav": wav}),
        "gzip-wav": gzip.compress(wav),
        "bzip2-wav": bz2.compress(wav),
        "xz-wav": lzma.compress(wav),
        "7z-magic": b"7z\xbc\xaf\x27\x1c" + bytes(200),
        "rar-magic": b"Rar!\x1a\x07\x00" + bytes(200),
        "elf": b"\x7fELF\x02\x01\x01" + bytes(500),
        "html": b"<!DOCTYPE html><html><head><title>song</title></head><body></body></html>",
        "svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>',
        "json": b'{"audio": "song.mp3", "duration": 180}',
        "text": "Liedtext ♪ la la la\n".encode() * 40,
        "utf16-text": "plain words\n".encode("utf-16") * 30,
        "avi": b"RIFF\x24\x00\x00\x00AVI LIST" + bytes(200),
        "webp": b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(200),
        "heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200),
        "nul-bytes": bytes(5000),
        "one-byte": b"\x00",
        "ff-bytes": b"\xff" * 5000,
        # Magic bytes of an audio container followed by nothing that decodes.
        "riff-wave-only": b"RIFF\x04\x00\x00\x00WAVE",
        "flac-magic-garbage": b"fLaC" + bytes(300),
        "ogg-magic-garbage": b"OggS" + bytes(300),
        "id3-huge-tag": b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + bytes(300),
        "id3-then-text": b"ID3\x03\x00\x00\x00\x00\x00\x05hello and nothing else",
        "ftyp-m4a-empty": b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom",
        "ebml-empty": b"\x1a\x45\xdf\xa3" + bytes(100),
        "aiff-form-only": b"FORM\x00\x00\x00\x04AIFF",
    }


# --- the generator -------------------------------------------------------------------------


def cases(seeds: dict[str, bytes], n: int, seed: int) -> Iterator[Case]:
    """``n`` cases: every valid seed and non-audio file once, then mutated and hand-made ones.

    The same ``(seeds, n, seed)`` always gives the same cases.
    """
    rng = np.random.default_rng(seed)
    fixed = [Case(f"valid[{k}]", v, f"valid.{k.split('-')[0]}") for k, v in seeds.items()]
    fixed += [Case(f"non-audio[{k}]", v, f"{k}{_ext(rng)}") for k, v in non_audio(seeds).items()]
    fixed.append(Case("empty", b"", "empty.mp3"))
    yield from fixed[:n]
    body = tone(330, 0.8, sr=8000, channels=1)[:, 0]
    pcm = (body * 32767).astype("<i2").tobytes()
    kinds = sorted(seeds)
    names = sorted(MUTATORS)
    for i in range(max(0, n - len(fixed))):
        if i % 5 == 4:
            yield wav_header_case(rng, pcm)
            continue
        kind = kinds[int(rng.integers(len(kinds)))]
        data = seeds[kind]
        steps = [names[int(rng.integers(len(names)))] for _ in range(int(rng.integers(1, 3)))]
        for step in steps:
            data = MUTATORS[step](data, rng)
        yield Case(f"{'+'.join(steps)}[{kind}]", data, f"case{i}{_ext(rng)}")


def _ext(rng: np.random.Generator) -> str:
    return AUDIO_EXTENSIONS[int(rng.integers(len(AUDIO_EXTENSIONS)))]


def check_audio(audio: np.ndarray) -> None:
    """What every decode must give: non-empty, finite float32 stereo within MAX_SAMPLE."""
    assert audio.dtype == np.float32, audio.dtype
    assert audio.ndim == 2 and audio.shape[1] == 2 and len(audio) > 0, audio.shape
    assert np.isfinite(audio).all(), "non-finite samples"
    assert np.abs(audio).max() <= MAX_SAMPLE


# --- running cases -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """``accepted``, ``rejected`` (a StemDeckError), ``crash`` (any other exception) or
    ``hang`` (still running after the bound; its ffmpeg children were killed)."""

    kind: str
    seconds: float
    detail: str = ""
    error: StemDeckError | None = None


def run_bounded(action: Callable[[], object], bound_s: float = CASE_BOUND_S) -> Outcome:
    """Run ``action`` in a thread, at most ``bound_s`` seconds, and classify how it ended."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = action()
        except StemDeckError as exc:
            box["rejected"] = exc
        except BaseException as exc:  # anything else is the bug the fuzzers look for
            box["crash"] = f"{type(exc).__name__}: {exc}"

    born = time.time()
    started = time.monotonic()
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(bound_s)
    seconds = time.monotonic() - started
    if worker.is_alive():
        stuck = _ffmpeg_children(since=born)  # what this case started
        for proc in stuck:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        worker.join(5)
        detail = f"still running after {bound_s:g} s; killed {len(stuck)} ffmpeg"
        return Outcome("hang", seconds, detail)
    if "crash" in box:
        return Outcome("crash", seconds, str(box["crash"]))
    if "rejected" in box:
        err = box["rejected"]
        assert isinstance(err, StemDeckError)
        return Outcome("rejected", seconds, err.user_message, err)
    return Outcome("accepted", seconds)


def run_many(
    items: list[Case], action: Callable[[int, Case], object], workers: int = 2
) -> list[Outcome]:
    """``run_bounded`` over every case, ``workers`` at a time (the cost is ffmpeg processes,
    which run in parallel). On a hang, ffmpeg processes a concurrent case started meanwhile may
    be killed too: the run fails anyway."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda ic: run_bounded(lambda: action(*ic)), enumerate(items)))


def _ffmpeg_children(since: float) -> list[psutil.Process]:
    """ffmpeg processes this test process started since ``since`` (epoch seconds; psutil's
    start times can be up to a second early, as the boot time it adds is whole seconds)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "ffmpeg" in proc.name() and proc.create_time() >= since - 1.5:
                found.append(proc)
    return found


_PATHISH = re.compile(r"(?:^|[\s'\"(=])(/[^\s'\")]+)")


def message_problem(message: str, data_dir: Path) -> str | None:
    """Why ``message`` is not fit to show a user, or None: empty, traceback-like, or naming a
    path outside ``data_dir``."""
    if not message or not message.strip():
        return "empty message"
    if any(s in message for s in ("Traceback", 'File "', "Error:", "Exception", "file:")):
        return "looks like a traceback or raw error"
    for path in _PATHISH.findall(message):
        if not Path(path).is_relative_to(data_dir):
            return f"names a path outside the data dir: {path}"
    return None


@dataclass
class Tally:
    """Outcome counts of one suite, with the slowest case and every problem found."""

    suite: str
    counts: dict[str, int] = field(default_factory=dict)
    slowest: tuple[float, str] = (0.0, "")
    problems: list[str] = field(default_factory=list)

    def add(self, case: Case, outcome: Outcome, problem: str | None = None) -> None:
        self.counts[outcome.kind] = self.counts.get(outcome.kind, 0) + 1
        if outcome.seconds > self.slowest[0]:
            self.slowest = (outcome.seconds, case.family)
        if outcome.kind in ("crash", "hang"):
            problem = problem or outcome.detail
        if problem:
            self.problems.append(f"{case.family} ({case.name!r}, {len(case.data)} B): {problem}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        c = self.counts
        return (
            f"{self.suite}: {self.total} inputs, {c.get('accepted', 0)} accepted, "
            f"{c.get('rejected', 0)} rejected cleanly, {c.get('crash', 0)} crashes, "
            f"{c.get('hang', 0)} hangs, {len(self.problems)} problems, "
            f"max {self.slowest[0]:.2f} s ({self.slowest[1]})"
        )

    def report(self) -> str:
        """The summary line, recorded for the terminal summary, and printed."""
        return figures.report(self.line())
