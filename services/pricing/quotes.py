"""Quotes: one provider's estimate for a run next to its current balance, and the confirm rule.

Balances come from the providers' own balance endpoints (``provider.balance()`` where one
exists). A page must never wait long for them: :class:`Balances` asks all providers at once,
waits a short while, and answers "unknown" for whatever is still out; the late answer is cached
and shows on the next rerun. Errors are cached briefly too, so a down endpoint is not hammered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from services.config import Settings
from services.errors import StemDeckError
from services.providers.base import Estimate

log = logging.getLogger(__name__)

BALANCE_TTL_S = 30.0
BALANCE_ERROR_TTL_S = 10.0
BALANCE_WAIT_S = 1.5
NO_ENDPOINT = "no balance endpoint"
UNKNOWN = "balance unknown"


@dataclass(frozen=True, slots=True)
class Quote:
    """What one (provider, mode) run of one input would cost, and whether the balance covers it."""

    provider: str
    display_name: str
    mode: str
    mode_label: str
    estimate: Estimate | None  # None: the run cannot be estimated as asked (see ``problem``)
    free: bool
    problem: str | None = None  # why it cannot run now (no key, too long, …)
    needs_key: bool = False
    balance: float | None = None
    balance_note: str = ""  # "" when known, else why not ("no balance endpoint", …)

    @property
    def covers(self) -> bool | None:
        """Does the balance cover the estimate? None when either is unknown."""
        if self.free:
            return True
        credits = self.estimate.credits if self.estimate else None
        if credits is None or self.balance is None:
            return None
        return self.balance >= credits


def confirm_reason(quote: Quote, settings: Settings) -> str | None:
    """Why this run should be confirmed before it spends anything, or None (free, or cheap).

    Money is compared where the value of a credit is known (credits of different providers are
    not comparable), else credits; an unknown cost on a paid provider always asks.
    """
    if quote.free:
        return None
    est = quote.estimate
    if est is None or est.credits is None:
        return f"{quote.display_name} does not publish the price of this run; it may charge you."
    if est.money is not None:
        if est.money > settings.confirm_above_money:
            limit = f"{settings.confirm_above_money:g} {est.currency or ''}".strip()
            return f"This run costs about {est.money:.2f} {est.currency or ''} (above {limit})."
        return None
    if est.credits > settings.confirm_above_credits:
        return (
            f"This run costs about {est.credits:g} {quote.display_name} credits "
            f"(above {settings.confirm_above_credits:g})."
        )
    return None


@dataclass(frozen=True, slots=True)
class _Entry:
    at: float
    value: float | None
    note: str


class Balances:
    """Balances per (provider, credential) key, fetched in parallel, cached for a short while."""

    def __init__(
        self,
        ttl_s: float = BALANCE_TTL_S,
        error_ttl_s: float = BALANCE_ERROR_TTL_S,
        wait_s: float = BALANCE_WAIT_S,
    ) -> None:
        self.ttl_s, self.error_ttl_s, self.wait_s = ttl_s, error_ttl_s, wait_s
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="stemdeck-balance")
        self._lock = threading.Lock()
        self._entries: dict[Hashable, _Entry] = {}
        self._pending: dict[Hashable, Future[None]] = {}

    def get_many(
        self, fetchers: Mapping[Hashable, Callable[[], float]]
    ) -> dict[Hashable, tuple[float | None, str]]:
        """(balance, note) per key; waits at most ``wait_s`` in total, and only for questions
        asked now: one still out from an earlier call (a hanging endpoint) is not waited for
        again on every rerun."""
        now = time.monotonic()
        asked = []
        with self._lock:
            for key, fetch in fetchers.items():
                if not self._fresh(key, now) and key not in self._pending:
                    self._pending[key] = self._pool.submit(self._fetch, key, fetch)
                    asked.append(self._pending[key])
        if asked:
            wait(asked, timeout=self.wait_s)
        with self._lock:
            return {key: self._answer(key) for key in fetchers}

    def forget(self, match: Callable[[Hashable], bool]) -> None:
        """Drop cached balances (after a paid submit the balance is about to change)."""
        with self._lock:
            for key in [k for k in self._entries if match(k)]:
                del self._entries[key]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _fresh(self, key: Hashable, now: float) -> bool:
        entry = self._entries.get(key)
        if entry is None:
            return False
        ttl = self.ttl_s if entry.value is not None else self.error_ttl_s
        return now - entry.at < ttl

    def _answer(self, key: Hashable) -> tuple[float | None, str]:
        entry = self._entries.get(key)
        if entry is None:
            return None, f"{UNKNOWN} (still asking)"
        return entry.value, entry.note

    def _fetch(self, key: Hashable, fetch: Callable[[], float]) -> None:
        try:
            entry = _Entry(time.monotonic(), float(fetch()), "")
        except StemDeckError as exc:  # typed, user-safe message
            log.info("balance check failed: %s", exc.user_message)
            entry = _Entry(time.monotonic(), None, UNKNOWN)
        except Exception:
            log.exception("balance check crashed")
            entry = _Entry(time.monotonic(), None, UNKNOWN)
        with self._lock:
            self._entries[key] = entry
            self._pending.pop(key, None)
