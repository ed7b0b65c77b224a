"""The price list and the pure estimate: every provider and mode, unknown prices, per-second vs
flat, uploads, pre-processing, credit values, the confirmation rule and the recorded cost."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from components import cost_table
from services.config import load_settings, parse_credit_values
from services.jobs.model import Job, JobSpec
from services.pricing import intents
from services.pricing.actual import actual_cost
from services.pricing.quotes import Quote, confirm_reason
from services.pricing.table import (
    estimate_cost,
    load_table,
    money_for,
    parse_table,
    price_table,
)
from services.providers import local
from services.providers.base import Estimate, SeparationRequest
from services.providers.registry import PROVIDERS, Registry

DURATION = 100.2  # not a whole second: per-second prices round up
AST_VALUE = 6.99 / (50 * 60)  # AIStemSplitter's smallest pack, per credit (= second)

# provider, mode → (credits, money, currency, seconds); None = unknown
EXPECTED: dict[tuple[str, str], tuple[float | None, float | None, str | None, float | None]] = {
    ("local", "2"): (0.0, 0.0, None, DURATION / local.REALTIME_FACTOR["2"]),
    ("local", "4"): (0.0, 0.0, None, DURATION / local.REALTIME_FACTOR["4"]),
    ("local", "6"): (0.0, 0.0, None, DURATION / local.REALTIME_FACTOR["6"]),
    ("soundverse", "vocals"): (None, None, None, None),
    ("soundverse", "instruments"): (None, None, None, None),
    ("soundverse", "all-stems"): (None, None, None, None),
    ("musicgpt", "2"): (None, None, None, None),
    ("musicgpt", "4"): (None, None, None, None),
    ("musicgpt", "6"): (None, None, None, None),
    ("musicgpt", "custom"): (None, None, None, None),
    ("kie", "separate_vocal"): (10.0, None, None, 90.0),
    ("kie", "split_stem"): (50.0, None, None, 240.0),
    ("musicapi", "basic"): (17.0, None, None, None),  # 15 + 2 to import the audio
    ("musicapi", "full"): (77.0, None, None, None),
    ("aistemsplitter", "2"): (101.0, 101 * AST_VALUE, "USD", None),
    ("aistemsplitter", "4"): (101.0, 101 * AST_VALUE, "USD", None),
    ("aistemsplitter", "6"): (101.0, 101 * AST_VALUE, "USD", None),
}


def every_mode() -> list[tuple[str, str]]:
    registry, settings = Registry(PROVIDERS), load_settings({})
    return [
        (name, mode.id)
        for name in PROVIDERS
        for mode in registry.get(name, settings).capabilities.modes
    ]


def test_the_expectations_cover_every_provider_and_mode():
    assert sorted(EXPECTED) == sorted(every_mode())


@pytest.mark.parametrize(("provider", "mode"), sorted(EXPECTED))
def test_estimate_for_every_provider_and_mode(provider, mode):
    credits, money, currency, seconds = EXPECTED[(provider, mode)]
    est = estimate_cost(provider, mode, (), DURATION)
    assert est.credits == credits
    assert est.money == pytest.approx(money) if money is not None else est.money is None
    assert est.currency == currency
    assert est.seconds == pytest.approx(seconds) if seconds is not None else est.seconds is None
    if credits is None:
        assert "unknown" in est.note.lower()  # said, never shown as 0
    assert est.note


@pytest.mark.parametrize(("provider", "mode"), sorted(EXPECTED))
def test_each_adapter_estimates_from_the_price_list(provider, mode, tmp_path: Path):
    settings = load_settings({"STEMDECK_DATA_DIR": str(tmp_path)})
    adapter = Registry(PROVIDERS).get(provider, settings)
    stems = ("vocals",) if mode == "custom" else ()  # MusicGPT's custom mode needs a stem
    request = SeparationRequest(tmp_path / "x.wav", "0" * 64, DURATION, mode, stems)
    from_adapter = adapter.estimate(request)
    from_table = estimate_cost(provider, mode, stems, DURATION)
    assert (from_adapter.credits, from_adapter.money, from_adapter.seconds) == (
        from_table.credits, from_table.money, from_table.seconds
    )
    assert from_table.note in from_adapter.note


def test_per_second_prices_scale_with_length_and_flat_ones_do_not():
    per_second = [estimate_cost("aistemsplitter", "4", (), d).credits for d in (10.0, 600.0)]
    assert per_second == [10.0, 600.0]
    assert estimate_cost("aistemsplitter", "4", (), 0.4).credits == 1.0  # rounded up
    flat = {estimate_cost("kie", "split_stem", (), d).credits for d in (5.0, 60.0, 1200.0)}
    assert flat == {50.0}


def test_upload_fees_stems_and_preprocessing_from_a_table():
    table = parse_table({
        "x": {
            "modes": {"a": {"credits": 3}},
            "per_audio_second": 0.5,
            "per_stem": 2,
            "upload": 1,
            "preprocessing": {"denoise": 0.25},
            "currency": "EUR",
            "credit_value": 0.1,
        },
    })
    est = estimate_cost("x", "a", ("vocals", "drums"), 10.0, ("Denoise",), table=table)
    assert est.credits == 3 + 5 + 4 + 1 + 0.25
    assert est.money == pytest.approx(1.325) and est.currency == "EUR"
    # a pre-processing step without a published price makes the whole figure unknown
    unknown = estimate_cost("x", "a", (), 10.0, ("dereverb",), table=table)
    assert unknown.credits is None and unknown.money is None and "unknown" in unknown.note.lower()
    assert estimate_cost("musicgpt", "2", (), 10.0, ("denoise",)).credits is None
    assert estimate_cost("nobody", "2", (), 10.0).credits is None


def test_money_per_credit_is_configurable():
    settings = load_settings({"STEMDECK_CREDIT_VALUES": "kie=0.005 usd, aistemsplitter=0.001"})
    table = price_table(settings.credit_values)
    est = estimate_cost("kie", "separate_vocal", (), 30.0, table=table)
    assert est.money == pytest.approx(0.05) and est.currency == "USD"
    ast = estimate_cost("aistemsplitter", "2", (), 30.0, table=table)
    assert ast.money == pytest.approx(0.03) and ast.currency == "USD"  # listed currency kept
    assert money_for("kie", 50.0, settings) == (pytest.approx(0.25), "USD")
    assert money_for("musicapi", 17.0, settings) is None
    with pytest.raises(ValueError):
        parse_credit_values("kie")
    with pytest.raises(ValueError, match="STEMDECK_CREDIT_VALUES"):
        load_settings({"STEMDECK_CREDIT_VALUES": "kie=cheap"})


def test_local_time_comes_from_the_engines_measured_factor(monkeypatch):
    monkeypatch.setitem(local.REALTIME_FACTOR, "2", 4.0)
    assert estimate_cost("local", "2", (), 100.0).seconds == 25.0


def test_the_price_list_and_intents_name_only_real_providers_and_modes():
    modes = {name: set() for name in PROVIDERS}
    for name, mode in every_mode():
        modes[name].add(mode)
    table = load_table()
    assert set(table.providers) == set(PROVIDERS)
    for name, entry in table.providers.items():
        assert set(entry.modes) <= modes[name], name
        assert entry.source, f"{name} has no source line"
    for intent in intents.INTENTS:
        assert set(intent.modes) == set(PROVIDERS)
        for name, mode in intent.modes.items():
            assert mode in modes[name], (intent.id, name, mode)
    assert intents.intent_of("kie", "separate_vocal").id == "2"
    assert intents.intent_of("musicgpt", "custom") is None
    assert intents.mode_for("2", "musicapi") == "basic"


def quote(est: Estimate | None, free: bool = False, balance: float | None = None) -> Quote:
    return Quote("p", "P", "m", "M", est, free, balance=balance)


def test_confirmation_above_the_threshold_or_when_the_cost_is_unknown():
    settings = load_settings({
        "STEMDECK_CONFIRM_ABOVE_MONEY": "0.30", "STEMDECK_CONFIRM_ABOVE_CREDITS": "20",
    })
    assert confirm_reason(quote(Estimate(0.0, 1.0, money=0.0), free=True), settings) is None
    assert "does not publish" in confirm_reason(quote(Estimate(None, None)), settings)
    assert confirm_reason(quote(None), settings)
    assert confirm_reason(quote(Estimate(101, None, money=0.24, currency="USD")), settings) is None
    assert "0.47 USD" in confirm_reason(quote(Estimate(200, None, money=0.466, currency="USD")),
                                        settings)
    # money unknown: credits decide
    assert confirm_reason(quote(Estimate(17, None)), settings) is None
    assert "77" in confirm_reason(quote(Estimate(77, None)), settings)


def test_covers_compares_the_balance_with_the_credits():
    assert quote(Estimate(10, None), balance=10).covers is True
    assert quote(Estimate(17, None), balance=5).covers is False
    assert quote(Estimate(17, None)).covers is None  # balance unknown
    assert quote(Estimate(None, None), balance=1000).covers is None  # price unknown
    assert quote(Estimate(0.0, 1.0), free=True).covers is True


def test_actual_cost_prefers_what_the_provider_reported():
    est = Estimate(17.0, None)
    assert actual_cost({"credits_used": "214"}, est, False) == (214.0, "reported")
    assert actual_cost({"credit_estimate": "2.5"}, est, False) == (2.5, "reported")
    assert actual_cost({"credit_estimate": "n/a"}, est, False) == (17.0, "estimated")
    assert actual_cost({}, Estimate(None, None), False) == (None, None)
    assert actual_cost({}, None, True) == (0.0, "free")


def test_cost_table_rows_say_unknown_never_zero():
    quotes = [
        Quote("local", "Local", "2", "2 stems", Estimate(0.0, 9.0, money=0.0), True),
        Quote("kie", "kie.ai", "separate_vocal", "2 stems", Estimate(10.0, 90.0), False,
              balance=5.0),
        Quote("soundverse", "Soundverse", "vocals", "Vocals", Estimate(None, None), False,
              needs_key=True, problem="needs a key"),
        Quote("aistemsplitter", "AIStemSplitter", "2", "2 stems",
              Estimate(101.0, None, money=0.2353, currency="USD"), False, balance=6200.0),
    ]
    rows = cost_table.rows(quotes, chosen=("kie", "separate_vocal"))
    assert [r["Provider"] for r in rows] == ["Local", "▶ kie.ai", "Soundverse", "AIStemSplitter"]
    assert [r["Credits"] for r in rows] == ["0 (free)", "10", "unknown", "101"]
    assert [r["Cost"] for r in rows] == ["free", "unknown", "unknown", "≈ 0.24 USD"]
    assert [r["Covers"] for r in rows] == ["✓", "✗", "unknown", "✓"]
    assert [r["Status"] for r in rows] == ["ready", "ready", "needs key", "ready"]
    assert rows[1]["Time"] == "≈ 1 min 30 s" and rows[3]["Time"] == "unknown"
    assert cost_table.cost_text(quotes[3].estimate, False, "credits (1 per second of audio)") == (
        "≈ 101 credits (1 per second of audio) · ≈ 0.24 USD"
    )
    assert cost_table.cost_text(quotes[2].estimate, False) == "cost unknown"
    together = cost_table.total(quotes)
    assert "≈ 0.24 USD" in together and "kie.ai, Soundverse" in together
    assert "time unknown" in together


def test_a_jobs_cost_line_shows_estimate_and_actual():
    spec = JobSpec("0" * 64, "a.wav", 3.0, "kie", "separate_vocal")
    job = Job("j", spec, estimated_cost=10.0, actual_cost=10.0,
              facts={"actual_cost_source": "estimated"})
    assert cost_table.job_cost_text(job) == (
        "Cost: estimated 10 credits · actual 10 credits (list price)"
    )
    job.facts = {"actual_cost_source": "reported"}
    assert cost_table.job_cost_text(job, (0.05, "USD")).endswith("(reported), ≈ 0.05 USD")
    assert "unknown" in cost_table.job_cost_text(Job("k", spec))


def test_the_listed_credit_value_is_the_smallest_pack():
    entry = load_table().providers["aistemsplitter"]
    assert math.isclose(entry.credit_value, AST_VALUE, rel_tol=1e-3)
