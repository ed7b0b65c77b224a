"""Where a provider's API key and base URL come from, without ever writing a key into a job.

Sources, first hit wins, per field (key and base URL separately):
1. ``session`` — typed on the Settings page and kept in that browser session only (or given
   to the CLI as ``--api-key``/``--base-url``);
2. ``saved`` — typed and saved on request to ``<data_dir>/keys.json`` (owner-only, refused
   inside the app's own folder so it can never be committed);
3. ``secrets`` — ``.streamlit/secrets.toml`` values the app passes in (services never import
   streamlit);
4. ``env`` — ``<NAME>_API_KEY`` / ``<NAME>_BASE_URL``.

A job runs later, in a worker thread, so a session key reaches it through the :class:`Vault`:
the job record only holds an opaque random reference (``CREDENTIAL_FACT``). The vault lives in
memory; after a restart the reference finds nothing and the job falls back to the saved,
secret or environment key, or fails asking the user to re-enter it. Keys never enter
:class:`services.jobs.model.JobSpec`, so the cache key does not depend on them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from services.config import Settings
from services.errors import InputRejected, MissingKey, StemDeckError
from services.providers import keys

log = logging.getLogger(__name__)

Source = Literal["session", "saved", "secrets", "env", "none"]
CREDENTIAL_FACT = "credential_ref"
KEYS_FILE = "keys.json"
APP_ROOT = Path(__file__).resolve().parents[2]
SOURCE_LABELS: dict[Source, str] = {
    "session": "typed in this session",
    "saved": "saved on this computer",
    "secrets": ".streamlit/secrets.toml",
    "env": "environment variable",
    "none": "not set",
}


def check_base_url(url: str) -> str:
    """An http(s) URL with a host, without a trailing slash; else a clear InputRejected."""
    value = url.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputRejected(f"A base URL must be an http(s) address, e.g. https://api.example.com "
                            f"(got {value[:80]!r}).")
    return value


@dataclass(frozen=True, slots=True)
class Credential:
    """A key and/or base URL for one provider. Its repr never shows the key."""

    api_key: str | None = None
    base_url: str | None = None

    def __post_init__(self) -> None:
        key = (self.api_key or "").strip() or None
        base = check_base_url(self.base_url) if (self.base_url or "").strip() else None
        object.__setattr__(self, "api_key", key)
        object.__setattr__(self, "base_url", base)
        if key:
            keys.remember_secret(key)

    def __repr__(self) -> str:
        return f"Credential(api_key={keys.mask(self.api_key)!r}, base_url={self.base_url!r})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.api_key or self.base_url)

    def over(self, fallback: Credential) -> Credential:
        """This credential's fields, each filled from ``fallback`` where missing."""
        return Credential(self.api_key or fallback.api_key, self.base_url or fallback.base_url)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The credential a provider will use, and where each part came from."""

    credential: Credential
    key_source: Source
    url_source: Source

    @property
    def has_key(self) -> bool:
        return self.credential.api_key is not None

    @property
    def hint(self) -> str:
        """The masked key (last four characters at most), or "" when none is set."""
        return keys.mask(self.credential.api_key)


class KeyFile:
    """Keys saved on request: one JSON file, owner-only, outside the app's folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _refuse_inside_app(self) -> None:
        if self.path.resolve().is_relative_to(APP_ROOT):
            raise StemDeckError(
                f"Keys are never saved inside the app folder ({self.path}); point "
                "STEMDECK_DATA_DIR somewhere else to save keys, or keep them in this session."
            )

    def load(self) -> dict[str, Credential]:
        """Saved credentials by provider name; an unreadable file counts as empty (logged)."""
        with self._lock:
            return self._read()

    def _read(self) -> dict[str, Credential]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("saved keys file %s is unreadable; ignoring it", self.path)
            return {}
        self._tighten()
        found: dict[str, Credential] = {}
        for name, entry in raw.items() if isinstance(raw, dict) else ():
            if isinstance(entry, dict):
                with contextlib.suppress(InputRejected):
                    found[name] = Credential(entry.get("api_key"), entry.get("base_url"))
        return found

    def _tighten(self) -> None:
        """A file someone loosened goes back to owner-only (it holds keys)."""
        with contextlib.suppress(OSError):
            if self.path.stat().st_mode & 0o077:
                log.warning("saved keys file %s was readable by others; now owner-only", self.path)
                self.path.chmod(0o600)

    def save(self, name: str, credential: Credential) -> None:
        self._refuse_inside_app()
        with self._lock:
            entries = self._read()
            entries[name] = credential
            self._write(entries)

    def forget(self, name: str) -> bool:
        with self._lock:
            entries = self._read()
            if entries.pop(name, None) is None:
                return False
            self._write(entries)
            return True

    def _write(self, entries: Mapping[str, Credential]) -> None:
        """Atomic replace of a file created owner-only (never world-readable, not even briefly)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = {
            name: {"api_key": c.api_key, "base_url": c.base_url} for name, c in entries.items()
        }
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)


class Vault:
    """Session credentials handed to jobs by an opaque reference, in this process's memory."""

    def __init__(self) -> None:
        self._by_ref: dict[str, tuple[str, Credential]] = {}
        self._lock = threading.Lock()

    def put(self, provider: str, credential: Credential) -> str:
        """A reference for ``credential``; the same credential keeps the same reference."""
        with self._lock:
            for ref, held in self._by_ref.items():
                if held == (provider, credential):
                    return ref
            ref = secrets.token_urlsafe(16)
            self._by_ref[ref] = (provider, credential)
            return ref

    def get(self, provider: str, ref: str) -> Credential | None:
        with self._lock:
            held = self._by_ref.get(ref)
        return held[1] if held is not None and held[0] == provider else None

    def drop(self, provider: str, api_key: str) -> None:
        """Forget every credential of ``provider`` holding ``api_key``."""
        with self._lock:
            self._by_ref = {
                ref: (name, c)
                for ref, (name, c) in self._by_ref.items()
                if name != provider or c.api_key != api_key
            }


class Credentials:
    """Resolves credentials from the four sources; one per Runtime."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        self.env = os.environ if env is None else env
        self.saved = KeyFile(settings.data_dir / KEYS_FILE)
        self.vault = Vault()
        self._secrets: dict[str, str] = {}

    def set_secrets(self, values: Mapping[str, object]) -> None:
        """The app's ``st.secrets`` (only ``<NAME>_API_KEY``/``<NAME>_BASE_URL`` are read)."""
        clean = {k: str(v) for k, v in values.items() if isinstance(v, str | int | float)}
        for name, value in clean.items():
            if name.endswith("_API_KEY"):
                keys.remember_secret(value)
        self._secrets = clean

    def _configured(self, provider: str) -> list[tuple[Source, Credential]]:
        layers: list[tuple[Source, Credential]] = []
        saved = self.saved.load().get(provider)
        if saved:
            layers.append(("saved", saved))
        for source, values in (("secrets", self._secrets), ("env", self.env)):
            api_key = (values.get(keys.env_var(provider)) or "").strip() or None
            base = (values.get(keys.env_var(provider, "BASE_URL")) or "").strip() or None
            try:
                found = Credential(api_key, base)
            except InputRejected:
                log.warning("%s: ignoring an invalid base URL from %s", provider, source)
                found = Credential(api_key)
            if found:
                layers.append((source, found))  # type: ignore[arg-type]
        return layers

    def resolve(self, provider: str, session: Credential | None = None) -> Resolved:
        """What ``provider`` uses now, given this session's (or command line's) credential."""
        layers = self._configured(provider)
        if session:
            layers.insert(0, ("session", session))
        key_source: Source = next((s for s, c in layers if c.api_key), "none")
        url_source: Source = next((s for s, c in layers if c.base_url), "none")
        merged = Credential()
        for _source, credential in reversed(layers):
            merged = credential.over(merged)
        return Resolved(merged, key_source, url_source)

    def hand_over(self, provider: str, session: Credential | None) -> str | None:
        """The reference a job carries instead of ``session`` (None when there is none)."""
        return self.vault.put(provider, session) if session else None

    def for_job(self, provider: str, display: str, ref: str | None) -> Credential:
        """The credential a job runs with: its own when still held, else the configured one."""
        session = self.vault.get(provider, ref) if ref else None
        resolved = self.resolve(provider, session)
        if ref and session is None and not resolved.has_key:
            raise MissingKey(
                f"The {display} API key this job was started with is gone (it was only kept in "
                "memory and the app restarted). Re-enter the key on the Settings page and run "
                "the job again."
            )
        return resolved.credential

    def save(self, provider: str, credential: Credential) -> None:
        """Save on request: merged over what was saved before, so a URL alone keeps the key."""
        before = self.saved.load().get(provider, Credential())
        self.saved.save(provider, credential.over(before))

    def forget(self, provider: str, session: Credential | None = None) -> None:
        """Drop the saved entry and the vault's copy of this session's key (queued jobs that
        carried it then fall back to the configured key, or ask for it again)."""
        self.saved.forget(provider)
        if session is not None and session.api_key:
            self.vault.drop(provider, session.api_key)
