"""Provider faults, end to end: every fault the emulators can inject, at every step of every
provider's flow, through the real job system (Runtime → worker → adapter → emulator sockets).

Each case must end SUCCEEDED or FAILED — never stuck — with a short user message (no
traceback, no key), and the emulator's own ledger must show no paid step charged twice. Faults
a correct client can always ride out (429 with ``Retry-After``, 5xx/reset/timeout on a GET,
a result link refused once) must end SUCCEEDED. ``test_zz_summary`` prints the tally.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.common import Emulator, Fault
from services.audio.formats import ExportFormat
from services.config import Settings
from services.inputs import ingest_path
from services.jobs.model import Job, JobSpec, JobStatus
from services.providers import keys, webhooks
from services.providers.http import make_client
from services.providers.registry import PROVIDERS, Registry
from services.runtime import Runtime
from tests.figures import report
from tests.providers.conftest import FAST_RETRY, WebhookReceiver, wait_for

pytest_plugins = ("tests.provider_fixtures",)
pytestmark = pytest.mark.usefixtures("clean_provider_env", "public_base")

READ_TIMEOUT_S = 1.0  # the client's; a hang fault lasts longer, so it becomes a timeout
HANG_S = 2.5
JOB_DEADLINE_S = 30.0  # the adapters' own polling deadline
WAIT_S = 90.0  # only a stuck job ever reaches it
SONG_S = 2.0
MAX_MESSAGE_CHARS = 400
TRACE_MARKS = ("Traceback", 'File "', "httpx.", "Exception:")

# provider → (mode, {step: fault route}); "upload@" routes are on kie.ai's second host.
FLOWS: dict[str, tuple[str, dict[str, str]]] = {
    "aistemsplitter": (
        "2",
        {
            "upload": "(?:PUT|POST) /upload/.*",
            "create": "POST /audio/splits",
            "poll": "GET /audio/splits/.*",
            "download": "GET /files/.*",
        },
    ),
    "musicgpt": (
        "2",
        {
            "create": "POST /Extraction",
            "poll": "GET /byId",
            "download": "GET /files/.*",
        },
    ),
    "kie": (
        "separate_vocal",
        {
            "upload@": "POST /api/file-stream-upload",
            "create": "POST /api/v1/vocal-removal/generate",
            "poll": "GET /api/v1/vocal-removal/record-info",
            "download": "GET /files/.*",
        },
    ),
    "musicapi": (
        "basic",
        {
            "upload": "POST /sonic/upload",
            "create": "POST /sonic/stems/.*",
            "poll": "GET /sonic/task/.*",
            "download": "GET /files/.*",
        },
    ),
    "soundverse": (
        "vocals",
        {  # synchronous: the create call returns the stems
            "create": "POST /v1/generate/.*",
            "download": "GET /files/.*",
        },
    ),
}
RIDE_OUT = "succeeded"  # the outcome a correct client always reaches
EITHER = "either"  # succeeded or a clear failure; what matters is no loss, no double charge
FAILS = "failed"


@dataclass(frozen=True)
class Case:
    """One fault at one step; ``options`` are emulator settings instead of an injected fault."""

    label: str
    step: str | None
    fault: dict[str, Any] = field(default_factory=dict)
    expect: str = EITHER
    options: dict[str, Any] = field(default_factory=dict)
    fail_next: int = 0


def cases_for(steps: dict[str, str]) -> list[Case]:
    """The fault catalogue, applied to the steps this provider has."""
    has = {s.rstrip("@") for s in steps}
    found: list[Case] = []
    for step in ("upload", "create", "poll", "download"):
        if step not in has:
            continue
        safe = step in ("poll", "download")  # GETs: always safe to resend
        ride = RIDE_OUT if safe else EITHER
        found += [
            Case(
                f"429 storm ({step})",
                step,
                {"status": 429, "times": 3, "retry_after": 0.05},
                RIDE_OUT,
            ),
            Case(f"5xx burst ({step})", step, {"status": 503, "times": 2}, ride),
            Case(f"reset ({step})", step, {"kind": "reset"}, ride),
            Case(f"timeout ({step})", step, {"kind": "hang", "hang_s": HANG_S}, ride),
        ]
    if "create" in has:
        found += [
            Case("5xx after charging (create)", "create", {"status": 500, "after": True}),
            Case("dropped after charging (create)", "create", {"kind": "drop", "after": True}),
            Case("reset after charging (create)", "create", {"kind": "reset", "after": True}),
            Case("malformed JSON (create)", "create", {"kind": "malformed"}),
            Case("missing fields (create)", "create", {"kind": "missing"}),
        ]
    if "poll" in has:
        found += [
            Case("malformed JSON (poll)", "poll", {"kind": "malformed"}),
            Case("missing fields (poll)", "poll", {"kind": "missing"}),
            Case("5xx storm past retries (poll)", "poll", {"status": 500, "times": 100}, FAILS),
        ]
    found += [
        # a synchronous provider has no status call to get fresh links from
        Case("result 404 once", "download", {"status": 404}, RIDE_OUT if "poll" in has else EITHER),
        Case("result 404 always", "download", {"status": 404, "times": 100}, FAILS),
        Case("result links expired", None, options={"result_ttl_s": 0.0}, expect=FAILS),
        Case("provider failed the job", None, expect=FAILS, fail_next=1),
    ]
    return found


FULL_ENV = "STEMDECK_FULL_FAULTS"


def matrix(full: bool) -> list[tuple[str, Case]]:
    """Every (provider, case); in CI each case once, on providers taken in turn (the whole
    matrix — about 135 jobs — is minutes of work: ``STEMDECK_FULL_FAULTS=1`` runs it)."""
    every = [(name, case) for name, (_m, steps) in FLOWS.items() for case in cases_for(steps)]
    if full:
        return every
    chosen: list[tuple[str, Case]] = []
    for turn, label in enumerate(dict.fromkeys(case.label for _n, case in every)):
        having = [(n, c) for n, c in every if c.label == label]
        chosen.append(having[turn % len(having)])
    return chosen


FULL = os.environ.get(FULL_ENV) == "1"
MATRIX = matrix(FULL)
RESULTS: list[dict[str, Any]] = []


@pytest.fixture
def fast_client() -> Iterator[httpx.Client]:
    with make_client(timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S)) as c:
        yield c


@pytest.fixture
def run_job(
    settings: Settings,
    make_song: Callable[..., Path],
    fast_client: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Job]:
    """``run_job(emulator, name, **adapter options)``: one job through a fresh Runtime."""
    stored = ingest_path(make_song("Fault Song.wav", SONG_S), settings)

    def run(emu: Emulator, name: str, **options: Any) -> Job:
        monkeypatch.setenv(keys.env_var(name, "API_KEY"), emu.api_key)
        monkeypatch.setenv(keys.env_var(name, "BASE_URL"), emu.base_url)
        fast = {
            "poll_interval_s": 0.05,
            "retry_policy": FAST_RETRY,
            "client": fast_client,
            "deadline_s": JOB_DEADLINE_S,
        }
        registry = Registry(PROVIDERS, options={name: {**fast, **options}})
        runtime = Runtime.start(settings, registry)
        try:
            spec = JobSpec.for_input(stored, name, FLOWS[name][0], ExportFormat("wav", 16))
            return runtime.wait(runtime.submit(spec).id, WAIT_S)
        finally:
            runtime.shutdown()

    return run


def paid_twice(emu: Emulator) -> list[str]:
    """Paid steps (uploads, jobs) the ledger charged more than once; refunds are negative."""
    kinds = Counter(
        "upload" if ref.startswith("upload:") else "job"
        for ref, amount in emu.ledger.charges
        if amount > 0
    )
    return [kind for kind, n in kinds.items() if n > 1]


def check_outcome(job: Job, emu: Emulator, expect: str) -> None:
    assert job.status.terminal, f"job stuck in {job.status.value} ({job.stage})"
    if job.status is JobStatus.FAILED:
        message = job.error or ""
        assert message.strip(), "failed without a reason"
        assert len(message) < MAX_MESSAGE_CHARS, message
        assert not any(mark in message for mark in TRACE_MARKS), message
        assert emu.api_key not in message
    else:
        assert job.status is JobStatus.SUCCEEDED and job.artifacts
    assert emu.api_key not in json.dumps(job.facts)
    if expect != EITHER:
        assert job.status.value == expect, job.error
    assert paid_twice(emu) == [], emu.ledger.charges


def record(provider: str, label: str, job: Job, emu: Emulator) -> None:
    RESULTS.append(
        {
            "provider": provider,
            "case": label,
            "status": job.status.value,
            "terminal": job.status.terminal,
            "double": bool(paid_twice(emu)),
            "charged_failed": job.status is JobStatus.FAILED
            and bool(emu.ledger.charges)
            and emu.ledger.total() > 0,
        }
    )


@pytest.mark.parametrize(("name", "case"), MATRIX, ids=[f"{n}-{c.label}" for n, c in MATRIX])
def test_fault(name: str, case: Case, emulator, run_job) -> None:
    emu = emulator(name, latency_s=0.1, **case.options)
    emu.fail_next = case.fail_next
    if case.step is not None:
        steps = FLOWS[name][1]
        host, route = (
            (emu.upload, steps["upload@"])
            if "upload@" in steps and case.step == "upload"
            else (emu, steps[case.step])
        )
        fault = Fault(route, **case.fault)
        host.inject(fault)
    job = run_job(emu, name)
    record(name, case.label, job, emu)
    check_outcome(job, emu, case.expect)
    if case.step is not None:
        assert fault.times < case.fault.get("times", 1), "the fault was never hit"


# --- webhooks: hints only; a job is confirmed by polling ---------------------------------------

WEBHOOK_MODES = ["normal", "forged", "stale", "replay"]


@pytest.mark.parametrize(
    "mode", [*WEBHOOK_MODES, "unreachable"] if FULL else ["replay", "unreachable"]
)
def test_signed_webhooks_aistemsplitter(mode: str, emulator, run_job) -> None:
    """Signed deliveries before/while polling, never (receiver down), forged, stale, duplicated:
    the job ends by polling either way, and only a genuine first delivery is accepted."""
    emu = emulator("aistemsplitter", latency_s=0.3)
    emu.webhook_mode = "normal" if mode == "unreachable" else mode
    verifier = webhooks.WebhookVerifier(emu.webhook_secret)
    receiver = WebhookReceiver(
        lambda _p, headers, body: verifier.verify(headers.get("AIStemSplitter-Signature"), body)
    )
    if mode == "unreachable":
        receiver.close()
    try:
        job = run_job(emu, "aistemsplitter", webhook_url=receiver.url())
        check_outcome(job, emu, RIDE_OUT)
        expected = {
            "normal": [200],
            "forged": [400],
            "stale": [400],
            "replay": [200, 400],
            "unreachable": [0],
        }[mode]
        wait_for(lambda: len(emu.webhook_deliveries) == len(expected))
        assert emu.webhook_deliveries == expected
        assert len(receiver.accepted) == (1 if expected[0] == 200 else 0)
        record("aistemsplitter", f"webhook {mode}", job, emu)
    finally:
        if mode != "unreachable":
            receiver.close()


@pytest.mark.parametrize("mode", WEBHOOK_MODES if FULL else ["forged"])
def test_signed_callbacks_to_the_app_kie(mode: str, emulator, run_job, monkeypatch) -> None:
    """kie.ai calls back the app's own file server (``/hooks/kie/…``), verified with the HMAC
    key: forged/stale/replayed callbacks are refused (401), the job still ends by polling."""
    emu = emulator("kie", latency_s=0.3)
    emu.webhook_mode = mode
    monkeypatch.setenv(keys.env_var("kie", "WEBHOOK_HMAC_KEY"), emu.webhook_secret)
    job = run_job(emu, "kie")
    check_outcome(job, emu, RIDE_OUT)
    expected = {"normal": [200], "forged": [401], "stale": [401], "replay": [200, 401]}[mode]
    wait_for(lambda: len(emu.webhook_deliveries) == len(expected))
    assert emu.webhook_deliveries == expected
    record("kie", f"callback {mode}", job, emu)


def test_zz_summary() -> None:
    """Print what the matrix tried (``-s`` shows it; CI logs keep it) and re-check the totals."""
    if not RESULTS:
        pytest.skip("no fault case ran in this session")
    by_provider = Counter(r["provider"] for r in RESULTS)
    outcomes = Counter((r["provider"], r["status"]) for r in RESULTS)
    lines = [f"{'provider':<16}{'cases':>6}{'succeeded':>11}{'failed':>8}"]
    for name, count in by_provider.items():
        lines.append(
            f"{name:<16}{count:>6}{outcomes[(name, 'succeeded')]:>11}"
            f"{outcomes[(name, 'failed')]:>8}"
        )
    terminal = sum(r["terminal"] for r in RESULTS)
    doubles = sum(r["double"] for r in RESULTS)
    charged_failed = sum(r["charged_failed"] for r in RESULTS)
    lines.append(
        f"provider faults: {len(RESULTS)} cases, {terminal} terminal, "
        f"{len(RESULTS) - terminal} lost, {doubles} double charges "
        f"({charged_failed} failed jobs left a charge on the provider's ledger)"
    )
    print("\n" + "\n".join(lines[:-1]))
    report(lines[-1])
    assert terminal == len(RESULTS) and doubles == 0
