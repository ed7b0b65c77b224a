"""The shared HTTP client for remote providers and the status → typed-error fallback.

One process-wide ``httpx.Client`` pools connections to every provider; adapters accept an
injected client so tests can point them at an emulator with tight timeouts. Redirects are never
followed automatically: a redirect could lead to a private address, so downloads follow them by
hand through the address guard (see ``remote.py``).
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.errors import (
    AuthError,
    InputRejected,
    InsufficientCredits,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from services.providers.keys import redact

USER_AGENT = "StemDeck/0.1"
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=120.0, pool=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10)
MAX_DETAIL_CHARS = 200

_shared: httpx.Client | None = None
_shared_lock = threading.Lock()


class ProviderRejected(ProviderError, InputRejected):
    """The provider refused the request or the audio (validation errors, 400/404/409/422).

    Both a provider failure and an input rejection, so callers catching either see it.
    """


def make_client(
    *,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A client with StemDeck's user agent, bounded timeouts/pool and no automatic redirects."""
    return httpx.Client(
        timeout=timeout,
        limits=limits,
        transport=transport,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


def shared_client() -> httpx.Client:
    """The process-wide client (httpx clients are thread-safe), created on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = make_client()
        return _shared


def host_port(url: str) -> str:
    """``host:port`` of a URL with the scheme's default port filled in (the guard's trust key)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def json_body(response: httpx.Response, display: str) -> Any:
    """The parsed JSON body, or :class:`MalformedResponse` naming the provider."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedResponse(
            f"{display} answered with something that is not JSON (HTTP {response.status_code})."
        ) from exc


def safe_detail(text: object, secrets: tuple[str, ...] = ()) -> str:
    """A provider's own message, trimmed to one short line with any key scrubbed out."""
    line = " ".join(str(text or "").split())
    line = redact(line, *secrets)
    return line[: MAX_DETAIL_CHARS - 1] + "…" if len(line) > MAX_DETAIL_CHARS else line


def error_for_status(
    display: str, status: int, detail: str = "", retry_after: float | None = None
) -> ProviderError:
    """The typed error for an HTTP status when the body carries nothing more specific."""
    suffix = f" ({detail})" if detail else ""
    if status in (401, 403):
        return AuthError(
            f"{display} refused the API key (HTTP {status}); check it on the Settings page."
        )
    if status == 402:
        return InsufficientCredits(
            f"Your {display} account has too few credits for this job; top it up and retry."
        )
    if status == 429:
        wait = f" Try again in {retry_after:.0f} s." if retry_after else " Try again shortly."
        return RateLimited(f"{display} is rate limiting requests.{wait}", retry_after)
    if status >= 500:
        return ProviderUnavailable(
            f"{display} is having problems (HTTP {status}); try again later.{suffix}".rstrip()
        )
    if status == 404:
        return ProviderRejected(f"{display} does not know this job or file (HTTP 404){suffix}.")
    return ProviderRejected(f"{display} rejected the request (HTTP {status}){suffix}.")


def error_message(response: httpx.Response) -> str:
    """The reason in an error body: ``Detail``/``detail`` (a string or FastAPI's list of
    ``{msg}``), then ``message``, then ``error``; empty when the body says nothing usable."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    detail = body.get("Detail") or body.get("detail")
    if isinstance(detail, list):
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail or body.get("message") or body.get("error") or "")
