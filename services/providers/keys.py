"""API keys and base URLs for remote providers, and scrubbing keys out of text.

A key comes from (first hit wins) the caller (Settings page, CLI ``--api-key``), a secrets
mapping (``st.secrets`` passed in by a page), or the environment, always under the name
``<PROVIDER>_API_KEY`` (e.g. ``AISTEMSPLITTER_API_KEY``). Every key seen is remembered so
:func:`redact` can scrub it from any message or log line, whoever wrote it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping

from services.errors import MissingKey

_seen: set[str] = set()
_seen_lock = threading.Lock()
_AUTH_VALUE = re.compile(r"(?i)\b(bearer|authorization:)\s+[^\s,;]+")
MIN_SECRET_CHARS = 6  # shorter strings are too likely to occur in ordinary text


def env_var(provider: str, what: str = "API_KEY") -> str:
    """``aistemsplitter`` → ``AISTEMSPLITTER_API_KEY`` (also ``…_BASE_URL``)."""
    return f"{provider.upper()}_{what}"


def resolve(
    provider: str,
    what: str = "API_KEY",
    explicit: str | None = None,
    secrets: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The configured value or None; blank values count as missing. Keys are remembered."""
    name = env_var(provider, what)
    env = os.environ if env is None else env
    for candidate in (explicit, (secrets or {}).get(name), env.get(name)):
        value = str(candidate).strip() if candidate is not None else ""
        if value:
            if what == "API_KEY":
                remember_secret(value)
            return value
    return None


def require_key(provider: str, display: str, key: str | None) -> str:
    """The key, or :class:`MissingKey` telling the user where to put one."""
    if not key:
        raise MissingKey(
            f"{display} needs an API key: enter it on the Settings page or set "
            f"{env_var(provider)} in the environment."
        )
    return key


def remember_secret(secret: str) -> None:
    """Add a secret to the set :func:`redact` scrubs."""
    if len(secret) >= MIN_SECRET_CHARS:
        with _seen_lock:
            _seen.add(secret)


def redact(text: str, *secrets: str) -> str:
    """``text`` with every known or given secret and any ``Bearer …`` value replaced."""
    with _seen_lock:
        known = _seen | {s for s in secrets if s and len(s) >= MIN_SECRET_CHARS}
    for secret in sorted(known, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return _AUTH_VALUE.sub(lambda m: f"{m.group(1)} [redacted]", text)


def mask(key: str | None) -> str:
    """A display form that tells keys apart without revealing them: ``••••9f3c``.

    At most the last four characters are shown, and none of a key too short to spare them.
    """
    if not key:
        return ""
    if len(key) < 12:
        return "•" * 6
    return f"••••{key[-4:]}"


class RedactFilter(logging.Filter):
    """A handler filter that scrubs known keys from every record before it is written.

    Messages are rendered (arguments merged) and redacted once; tracebacks are rendered and
    redacted too, so an exception text quoting a header cannot leak a key into a log file.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
