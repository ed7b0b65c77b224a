"""What a finished run cost: what the provider reported where it does, else the estimate.

Adapters remember what the provider reports on the job's facts (``ctx.remember``); the names
below are theirs. A run without a report is charged its list price (``prices.toml``), and the
job says so (fact :data:`SOURCE_FACT`), so a page can tell a reported charge from an estimate.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.providers.base import Estimate

# Facts holding a provider-reported charge, most authoritative first: AIStemSplitter's
# ``creditsUsed``, MusicGPT's ``conversion_cost`` (on completion) and ``credit_estimate``
# (on submit, which is what its ledger takes).
REPORTED_FACTS = ("credits_used", "conversion_cost", "credit_estimate")
SOURCE_FACT = "actual_cost_source"
REPORTED, ESTIMATED, FREE = "reported", "estimated", "free"


def actual_cost(
    facts: Mapping[str, str], estimate: Estimate | None, free: bool
) -> tuple[float | None, str | None]:
    """(credits, where the figure comes from) for a succeeded run; (None, None) if unknown."""
    if free:
        return 0.0, FREE
    for name in REPORTED_FACTS:
        try:
            return float(facts[name]), REPORTED
        except (KeyError, ValueError):
            continue
    if estimate is not None and estimate.credits is not None:
        return estimate.credits, ESTIMATED
    return None, None
