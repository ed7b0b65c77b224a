"""Quotes against the sandbox emulators (real sockets, real credit ledgers): balances, whether
they cover a run, failing and slow balance endpoints, and the cost recorded after a real run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.common import Fault
from services.audio.formats import ExportFormat
from services.config import Settings
from services.inputs import InputInfo, ingest_path
from services.jobs.model import JobSpec, JobStatus
from services.pricing.quotes import NO_ENDPOINT, UNKNOWN
from services.providers.credentials import Credential
from services.providers.registry import PROVIDERS
from services.runtime import Runtime

pytest_plugins = ("tests.provider_fixtures",)
pytestmark = pytest.mark.usefixtures("clean_provider_env")

WAV = ExportFormat("wav", 16)
KIE_CREDIT = r"/api/v1/(chat|generate)/credit"


@pytest.fixture
def runtime(public_base: str, settings: Settings, fast_registry) -> Iterator[Runtime]:
    rt = Runtime.start(settings, fast_registry)
    rt.balances.wait_s = 30.0  # returns as soon as every answer is in: no race with the pool
    yield rt
    rt.shutdown()


@pytest.fixture
def song(settings: Settings, make_song) -> InputInfo:
    return ingest_path(make_song("Song.wav", 2.0), settings)


def typed(**emulators) -> dict[str, Credential]:
    """Keys as typed on the Settings page, one per emulator."""
    return {name: Credential(e.api_key, e.base_url) for name, e in emulators.items()}


def test_quotes_say_whether_each_balance_covers_the_run(runtime, emulator, song):
    kie = emulator("kie", balance=1000)
    musicapi = emulator("musicapi", balance=5)  # a 2-stem run costs 15 + 2
    ast = emulator("aistemsplitter")
    ast.inject(Fault("GET /credits", status=500, times=100))  # its balance endpoint is down
    musicgpt = emulator("musicgpt")  # has no balance endpoint at all
    sessions = typed(kie=kie, musicapi=musicapi, aistemsplitter=ast, musicgpt=musicgpt)

    quotes = {q.provider: q for q in runtime.quotes(song, "2", WAV, sessions)}

    assert set(quotes) == set(PROVIDERS)
    assert (quotes["kie"].balance, quotes["kie"].covers) == (1000.0, True)
    assert quotes["kie"].estimate.credits == 10.0
    assert (quotes["musicapi"].balance, quotes["musicapi"].covers) == (5.0, False)
    assert quotes["aistemsplitter"].balance is None and quotes["aistemsplitter"].covers is None
    assert quotes["aistemsplitter"].balance_note == UNKNOWN
    assert quotes["aistemsplitter"].estimate.credits == 2.0  # known even without a balance
    assert quotes["local"].covers is True and quotes["local"].estimate.credits == 0.0
    assert not quotes["musicgpt"].needs_key and quotes["musicgpt"].problem is None
    assert quotes["musicgpt"].balance_note == NO_ENDPOINT and quotes["musicgpt"].covers is None
    # no key typed: listed with its (unknown) price, marked as needing a key, no balance asked
    assert quotes["soundverse"].needs_key and quotes["soundverse"].estimate.credits is None
    assert quotes["soundverse"].balance_note == "" and quotes["soundverse"].covers is None
    assert {q.mode for q in quotes.values()} >= {"separate_vocal", "basic", "vocals", "2"}


def test_balances_are_cached_briefly_and_refreshed_after_a_paid_run(runtime, emulator, song):
    kie = emulator("kie", balance=1000)
    sessions = typed(kie=kie)
    for _ in range(3):
        runtime.quotes(song, "2", WAV, sessions)
    assert kie.calls_to("GET", KIE_CREDIT) == 1
    spec = JobSpec.for_input(song, "kie", "separate_vocal", WAV)
    job = runtime.wait(runtime.submit(spec, session=sessions["kie"]).id, 60)
    assert job.status is JobStatus.SUCCEEDED, job.error
    [quote] = runtime.quote_specs([spec], sessions)
    assert kie.calls_to("GET", KIE_CREDIT) == 2 and quote.balance == 990.0
    # kie.ai reports no charge: the job records the list price, which is what its ledger took
    assert (job.estimated_cost, job.actual_cost, kie.ledger.total()) == (10.0, 10.0, 10.0)
    assert job.facts["actual_cost_source"] == "estimated"


def test_a_slow_balance_endpoint_does_not_hold_the_page(runtime, emulator, song):
    kie = emulator("kie", balance=1000)
    kie.inject(Fault("GET /api/v1/chat/credit", kind="hang", hang_s=10.0))
    runtime.balances.wait_s = 0.2
    specs, sessions = [JobSpec.for_input(song, "kie", "separate_vocal", WAV)], typed(kie=kie)
    [quote] = runtime.quote_specs(specs, sessions)
    assert quote.balance is None and "still asking" in quote.balance_note
    assert quote.estimate.credits == 10.0  # the price is there regardless
    runtime.balances.wait_s = 30.0  # a rerun meanwhile neither waits nor asks again
    [again] = runtime.quote_specs(specs, sessions)
    assert "still asking" in again.balance_note  # waiting would have returned the 1000


@pytest.mark.parametrize(
    ("name", "mode", "source"),
    [
        ("aistemsplitter", "2", "reported"),  # creditsUsed in the create answer
        ("musicgpt", "2", "reported"),  # credit_estimate, what its ledger takes
    ],
)
def test_the_recorded_cost_of_a_run_equals_the_emulators_charge(
    runtime, emulator, song, name, mode, source
):
    emu = emulator(name)
    spec = JobSpec.for_input(song, name, mode, WAV)
    job = runtime.submit(spec, session=Credential(emu.api_key, emu.base_url))
    assert job.estimated_cost == runtime.estimate(spec).credits
    job = runtime.wait(job.id, 60)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert emu.ledger.total() > 0
    assert job.actual_cost == pytest.approx(emu.ledger.total())
    assert job.facts["actual_cost_source"] == source
