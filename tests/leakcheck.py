"""Helpers for proving a key leaked nowhere: distinctive keys and a search through files."""

from __future__ import annotations

import secrets
from pathlib import Path


def distinctive_key(name: str) -> str:
    """A key no other test, file or log line could contain by chance."""
    return f"{name}_live_LEAKCHECK_{secrets.token_hex(10)}"


def files_containing(root: Path, needle: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``needle``."""
    wanted = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and wanted in p.read_bytes()]
