"""Human-readable numbers for the pages (durations, sizes, times, speeds)."""

from __future__ import annotations

import math
import time

from services.audio import decode


def clock(seconds: float | None) -> str:
    """Track length as m:ss (the services' format), ``–`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    return decode.clock(seconds)


def span(seconds: float | None) -> str:
    """A wait or a run time in words: ``4.2`` → ``4.2 s``, ``95`` → ``1 min 35 s``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def size(n_bytes: int) -> str:
    """``3_500_000`` → ``3.3 MB`` (the services' format)."""
    return decode.human_bytes(n_bytes)


def when(epoch_s: float, now: float | None = None) -> str:
    """A creation time: relative when recent, else the date (server local time)."""
    now = time.time() if now is None else now
    age = now - epoch_s
    if age < 60:
        return "just now"
    if age < 3600:
        return f"{int(age // 60)} min ago"
    if age < 86400:
        return f"{int(age // 3600)} h ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch_s))


def speed(realtime_factor: float | None) -> str:
    """``12.3`` → ``12.3× real time``."""
    if realtime_factor is None or not math.isfinite(realtime_factor):
        return "–"
    return f"{realtime_factor:.1f}× real time"


_MD_SPECIAL = "\\`*_{}[]()<>#+-.!|~:$"


def md(text: str) -> str:
    """Escape user text (file names, URLs) so Markdown shows it literally."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in text)
