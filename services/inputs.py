"""Validated inputs, stored once per content hash.

Every input (upload, local path, URL) is validated the same way (:func:`probe`, then a silence
check) and stored as ``<inputs_dir>/<sha256>.<container>`` beside a small JSON sidecar holding
its :class:`AudioInfo`, original name and source URL. The sidecar is written last, so its
presence means the audio file is complete. User-given names are only ever displayed: they never
become part of a path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote

import httpx

from services.audio.decode import AudioInfo, check_size, ensure_audible, probe
from services.audio.encode import atomic_path
from services.audio.fetch import fetch_url
from services.config import Settings

_HASH = re.compile(r"[0-9a-f]{64}")
_NAME_LIMIT = 120
_FILE_NAME_BYTES = 255
_FALLBACK_NAME = "audio"
_STALE_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class InputInfo:
    """A stored, validated input: ``hash`` is the sha256 of its bytes, ``name`` for display."""

    hash: str
    name: str
    path: Path
    info: AudioInfo
    source_url: str | None = None


def ingest_bytes(data: bytes, filename: str, settings: Settings) -> InputInfo:
    """Validate and store uploaded bytes (the size limit is checked before anything is written).

    Any bytes-like object works; Streamlit's ``UploadedFile.getbuffer()`` avoids a copy.
    """
    check_size(len(data), settings)
    staged = _staging_dir(settings) / f"upload-{uuid.uuid4().hex}"
    try:
        staged.write_bytes(data)
        return _adopt(staged, display_name(filename), settings, None, move=True)
    finally:
        staged.unlink(missing_ok=True)


def ingest_path(path: Path, settings: Settings) -> InputInfo:
    """Validate a local file and store a copy of it (the original is left untouched)."""
    path = Path(path)
    return _adopt(path, display_name(path.name), settings, None, move=False)


def ingest_url(
    url: str,
    settings: Settings,
    client: httpx.Client | None = None,
    trusted: Iterable[str] = (),
) -> InputInfo:
    """Download ``url`` behind the address guard, then validate and store it."""
    fetched = fetch_url(url, _staging_dir(settings), settings, client, trusted)
    try:
        return _adopt(fetched.path, _name_from_url(fetched.final_url), settings, url, move=True)
    finally:
        fetched.path.unlink(missing_ok=True)


def find_input(hash: str, settings: Settings) -> InputInfo | None:
    """The stored input with this sha256, or None (also for malformed hashes)."""
    if not isinstance(hash, str) or not _HASH.fullmatch(hash):
        return None
    try:
        data = json.loads((settings.inputs_dir / f"{hash}.json").read_text(encoding="utf-8"))
        info = AudioInfo(**data["info"])
        path = settings.inputs_dir / f"{hash}.{info.format}"
        name, source_url = str(data["name"]), data.get("source_url")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not path.is_file():
        return None
    return InputInfo(hash, name, path, info, source_url)


def display_name(filename: str) -> str:
    """A user's file name made safe to show: last path component, no control or bidi-override
    characters, composed accents (macOS sends them decomposed), at most 120 characters."""
    name = re.split(r"[/\\]", unicodedata.normalize("NFC", filename or ""))[-1]
    name = "".join(c for c in re.sub(r"\s", " ", name) if unicodedata.category(c)[0] != "C")
    name = " ".join(name.split()).strip(" .")
    return _shorten(name, _NAME_LIMIT, len) or _FALLBACK_NAME


def safe_filename(name: str) -> str:
    """A display name turned into a portable download file name (letters, digits, ``-_.() ``),
    never hidden, at most 255 bytes of UTF-8 (what common filesystems allow)."""
    safe = re.sub(r"[^\w\-. ()]", "_", display_name(name)).strip(" .")
    stem, dot, ext = safe.rpartition(".") if "." in safe else (safe, "", "")
    if not stem.strip("_ ."):  # nothing readable was left
        safe = _FALLBACK_NAME + dot + ext
    return _shorten(safe, _FILE_NAME_BYTES, lambda s: len(s.encode()))


def _shorten(name: str, limit: int, size: Callable[[str], int]) -> str:
    """``name`` cut to ``limit`` as ``size`` measures it, keeping a short extension."""
    if size(name) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not (dot and 0 < len(ext) <= 8):
        stem, dot, ext = name, "", ""
    while stem and size(stem + dot + ext) > limit:
        stem = stem[:-1]
    return stem + dot + ext


def _adopt(
    src: Path, name: str, settings: Settings, source_url: str | None, move: bool
) -> InputInfo:
    """Validate ``src`` and store it under its hash (once); ``move`` consumes ``src``."""
    info = probe(src, settings)
    ensure_audible(src)
    digest = _sha256(src)
    existing = find_input(digest, settings)
    if existing is not None:
        return InputInfo(digest, name, existing.path, existing.info, source_url)
    settings.inputs_dir.mkdir(parents=True, exist_ok=True)
    dest = settings.inputs_dir / f"{digest}.{info.format}"
    with atomic_path(dest) as part:
        if move:
            src.replace(part)
        else:
            shutil.copyfile(src, part)
    sidecar = {"name": name, "source_url": source_url, "info": asdict(info)}
    with atomic_path(settings.inputs_dir / f"{digest}.json") as part:
        part.write_text(json.dumps(sidecar, indent=1), encoding="utf-8")
    return InputInfo(digest, name, dest, info, source_url)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _staging_dir(settings: Settings) -> Path:
    """Where downloads and uploads wait for validation; swept of files a crash left behind."""
    staging = settings.inputs_dir / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - _STALE_S
    for leftover in staging.iterdir():
        with contextlib.suppress(OSError):
            if leftover.stat().st_mtime < cutoff:
                leftover.unlink()
    return staging


def _name_from_url(url: str) -> str:
    """The last path segment of the URL, decoded, as a display name (the host if none)."""
    parsed = httpx.URL(url)
    segment = unquote(parsed.path.rstrip("/").rpartition("/")[2])
    return display_name(segment or parsed.host)
