"""The price list (``prices.toml``) as typed data, and the pure estimate built from it.

Prices are data, not code: a provider changing its prices is a one-line edit of the TOML file,
and the estimate for every provider is computed the same way here. Unknown stays ``None``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from services.config import Settings
from services.providers.base import Estimate, SeparationRequest

PRICES_FILE = Path(__file__).with_name("prices.toml")
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ModePrice:
    credits: float | None = None  # flat per call
    seconds: float | None = None  # typical processing time of one call


@dataclass(frozen=True, slots=True)
class ProviderPrice:
    note: str = ""
    source: str = ""
    free: bool = False
    modes: Mapping[str, ModePrice] = field(default_factory=dict)
    per_audio_second: float | None = None
    per_stem: float | None = None
    upload: float = 0.0
    preprocessing: Mapping[str, float] = field(default_factory=dict)
    currency: str | None = None
    credit_value: float | None = None  # money per credit, in ``currency``
    realtime_factor: str | None = None  # "measured": the local engine's bench figures


@dataclass(frozen=True, slots=True)
class PriceTable:
    providers: Mapping[str, ProviderPrice]

    def with_credit_values(self, values: Iterable[tuple[str, float, str]]) -> PriceTable:
        """Override money per credit (``STEMDECK_CREDIT_VALUES``); "" keeps the listed currency."""
        providers = dict(self.providers)
        for name, value, currency in values:
            entry = providers.get(name, ProviderPrice())
            providers[name] = replace(
                entry, credit_value=value, currency=currency or entry.currency or "USD"
            )
        return PriceTable(providers)


def parse_table(data: Mapping[str, Any]) -> PriceTable:
    providers = {}
    for name, raw in data.items():
        values = dict(raw)
        modes = {
            m: ModePrice(**{k: float(v) for k, v in spec.items()})
            for m, spec in values.pop("modes", {}).items()
        }
        providers[name] = ProviderPrice(modes=modes, **values)
    return PriceTable(providers)


@cache
def load_table(path: Path = PRICES_FILE) -> PriceTable:
    with path.open("rb") as fh:
        return parse_table(tomllib.load(fh))


@cache
def price_table(credit_values: tuple[tuple[str, float, str], ...] = ()) -> PriceTable:
    """The shipped table with the configured money-per-credit overrides applied."""
    return load_table().with_credit_values(credit_values)


def _measured_rtf(mode: str) -> float:
    # imported here: the local provider module imports this one for its own estimate
    from services.providers.local import REALTIME_FACTOR

    return REALTIME_FACTOR.get(mode, min(REALTIME_FACTOR.values()))


def estimate_cost(
    provider: str,
    mode: str,
    stems: tuple[str, ...] = (),
    duration_s: float = 0.0,
    preprocessing: tuple[str, ...] = (),
    table: PriceTable | None = None,
) -> Estimate:
    """Credits, money and expected seconds for one run; whatever is not published is ``None``."""
    entry = (table or load_table()).providers.get(provider)
    if entry is None:
        return Estimate(None, None, f"Price {UNKNOWN}: {provider} is not in the price list.")
    mode_price = entry.modes.get(mode, ModePrice())
    seconds = mode_price.seconds
    if entry.realtime_factor == "measured":
        rtf = _measured_rtf(mode)
        seconds = duration_s / rtf
        note = f"{entry.note} ≈{rtf:g}× real time on 2 CPU cores (bench/engine_speed.py)."
    else:
        note = entry.note
    if entry.free:
        return Estimate(0.0, seconds, note.strip(), money=0.0)
    credits = _credits(entry, mode_price, stems, duration_s, preprocessing)
    if credits is None and UNKNOWN not in note.lower():
        note = f"Price {UNKNOWN}. {note}"
    money = to_money(entry, credits)
    if money is None:
        return Estimate(credits, seconds, note.strip())
    return Estimate(credits, seconds, note.strip(), money=money[0], currency=money[1])


def to_money(entry: ProviderPrice | None, credits: float | None) -> tuple[float, str] | None:
    """``credits`` in money (amount, currency) where a credit's value is known, else None."""
    if entry is None or credits is None or entry.credit_value is None:
        return None
    return credits * entry.credit_value, entry.currency or "USD"


def money_for(provider: str, credits: float | None, settings: Settings) -> tuple[float, str] | None:
    """A recorded cost (credits of ``provider``) in money, with the configured credit values."""
    return to_money(price_table(settings.credit_values).providers.get(provider), credits)


def estimate_request(provider: str, request: SeparationRequest, settings: Settings) -> Estimate:
    """What provider adapters' ``estimate`` return: the price list applied to their request."""
    return estimate_cost(
        provider,
        request.mode,
        request.stems,
        request.duration_s,
        request.preprocessing,
        price_table(settings.credit_values),
    )


def _credits(
    entry: ProviderPrice,
    mode_price: ModePrice,
    stems: tuple[str, ...],
    duration_s: float,
    preprocessing: tuple[str, ...],
) -> float | None:
    """Flat + per-second + per-stem + upload + pre-processing; ``None`` if any part is unknown."""
    parts = [
        mode_price.credits,
        None if entry.per_audio_second is None else math.ceil(duration_s) * entry.per_audio_second,
        None if entry.per_stem is None else len(stems) * entry.per_stem,
    ]
    known = [p for p in parts if p is not None]
    if not known:
        return None
    surcharges = [entry.preprocessing.get(p.lower()) for p in preprocessing]
    if any(s is None for s in surcharges):
        return None
    return float(sum(known) + entry.upload + sum(s for s in surcharges if s is not None))
