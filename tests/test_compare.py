"""Comparisons over a real Runtime: the local engine and sandbox emulators as lanes, real SQLite.

One scenario runs five lanes at once (local, two slow emulators, one with a refused key, one
that cannot even be submitted) and checks isolation, concurrency (from the job records, not
timings), figures, exports and persistence; the rest check ratings on a stored comparison.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator

import pytest

from services.audio.formats import ExportFormat
from services.compare import Comparison, Comparisons, LaneSpec, lane_label
from services.compare.service import RatingRejected
from services.config import Settings
from services.inputs import ingest_path
from services.jobs.model import JobStatus
from services.metrics import FIGURE_HELP
from services.providers.credentials import Credential
from services.runtime import Runtime
from tests.leakcheck import files_containing

pytest_plugins = ("tests.provider_fixtures",)
pytestmark = pytest.mark.usefixtures("clean_provider_env")

WAIT_S = 120.0
SLOW_S = 2.0  # emulator latency: long enough that two lanes must overlap if run at once


@pytest.fixture
def runtime(settings: Settings, fast_registry) -> Iterator[Runtime]:
    rt = Runtime.start(settings, fast_registry)
    try:
        yield rt
    finally:
        rt.shutdown()


def wait_all(comparisons: Comparisons, comparison: Comparison) -> None:
    deadline = time.monotonic() + WAIT_S
    for job_id in filter(None, comparison.job_ids):
        comparisons.runtime.wait(job_id, max(0.0, deadline - time.monotonic()))


def test_five_lanes_run_at_once_and_one_bad_lane_never_breaks_the_others(
    settings: Settings, runtime: Runtime, fast_registry, emulator, make_song
) -> None:
    splitter = emulator("aistemsplitter", latency_s=SLOW_S)
    gpt = emulator("musicgpt", latency_s=SLOW_S)
    kie = emulator("kie")
    stored = ingest_path(make_song("Duel.wav", 4.0), settings)
    lanes = [
        LaneSpec("local", "2"),
        LaneSpec("aistemsplitter", "4"),
        LaneSpec("musicgpt", "2"),
        LaneSpec("kie", "separate_vocal"),  # refused key: fails while running
        LaneSpec("local", "no-such-mode"),  # refused before it runs
    ]
    sessions = {
        "aistemsplitter": Credential(splitter.api_key, splitter.base_url),
        "musicgpt": Credential(gpt.api_key, gpt.base_url),
        "kie": Credential("kie_wrong_key_0123456789", kie.base_url),
    }
    comparisons = Comparisons(runtime)
    comparison = comparisons.start(stored, lanes, ExportFormat("wav"), sessions)
    assert comparison.job_ids[4] == "" and comparison.job_ids[:4].count("") == 0
    assert "no-such-mode" in comparisons.lane_error(comparison, 4)
    wait_all(comparisons, comparison)

    jobs = comparisons.jobs(comparison)
    assert [j.status if j else None for j in jobs] == [
        JobStatus.SUCCEEDED,
        JobStatus.SUCCEEDED,
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        None,
    ], [comparisons.lane_error(comparison, i) for i in range(5)]
    assert [comparisons.lane_error(comparison, i) is None for i in range(5)] == [
        True, True, True, False, False,
    ]  # fmt: skip
    slow = [jobs[1], jobs[2]]  # both remote lanes ran at the same time, not one after another
    assert max(j.started_at for j in slow) < min(j.finished_at for j in slow)

    figures = [comparisons.figures(comparison, i) for i in range(5)]
    assert figures[3] is None and figures[4] is None
    for lane_figures in figures[:3]:
        assert lane_figures.residual_db is not None and lane_figures.seconds_analysed > 3.5
        assert lane_figures.vocal_in_instrumental_db is not None
        assert lane_figures.sdr_db == {}  # no references given
    assert set(figures[1].leakage_db) == {"vocals", "drums", "bass", "other"}
    assert comparisons.figures(comparison, 0) == figures[0]  # cached, same answer

    order = comparisons.blind_order(comparison, "vocals")
    assert sorted(order) == [0, 1, 2] and comparisons.blind_order(comparison, "vocals") == order
    assert comparisons.blind_order(comparison, "drums") == [1]

    comparisons.rate(comparison.id, "vocals", order[0], 4)
    report = json.loads(comparisons.export_json(comparison.id))
    assert report["lanes"][0]["figures"]["residual_db"] == pytest.approx(figures[0].residual_db)
    assert report["lanes"][3]["error"] and report["lanes"][4]["status"] == "not run"
    assert report["figure_help"] == FIGURE_HELP
    assert report["lanes"][1]["stems"][0]["file"].startswith(jobs[1].id + "/")
    rows = list(csv.DictReader(io.StringIO(comparisons.export_csv(comparison.id))))
    assert {r["stem"] for r in rows if r["lane"] == "1"} == {"vocals", "drums", "bass", "other"}
    page = comparisons.export_html(comparison.id)
    assert "Duel.wav" in page and FIGURE_HELP["leakage"] in page
    for exported in (page, json.dumps(report), str(rows)):
        assert splitter.api_key not in exported and gpt.api_key not in exported
        assert str(settings.data_dir) not in exported
    assert files_containing(settings.data_dir, splitter.api_key) == []

    # Another process (a new runtime) finds the comparison, its figures and ratings.
    runtime.shutdown()
    again = Runtime.start(settings, fast_registry)
    try:
        reopened = Comparisons(again)
        assert reopened.get(comparison.id) == comparison
        assert [c.id for c in reopened.list()] == [comparison.id]
        assert reopened.store.figures(comparison.id, 0, jobs[0].id) == figures[0]
        assert [(r.stem, r.lane_index, r.score) for r in reopened.ratings(comparison.id)] == [
            ("vocals", order[0], 4)
        ]
        reopened.delete(comparison.id)
        assert reopened.get(comparison.id) is None and reopened.ratings(comparison.id) == []
        assert again.get(jobs[0].id) is not None  # the jobs stay in History
    finally:
        again.shutdown()


@pytest.fixture
def stored_comparison(runtime: Runtime) -> tuple[Comparisons, Comparison]:
    """A comparison record without jobs (ratings and exports need none)."""
    comparisons = Comparisons(runtime)
    comparison = Comparison(
        id="c1",
        input_hash="0" * 64,
        input_name="<script>alert(1)</script>.wav",
        duration_s=30.0,
        lanes=(LaneSpec("local", "4"), LaneSpec("musicgpt", "4"), LaneSpec("local", "4")),
        job_ids=("", "", ""),
        created_at=1.0,
        lane_errors={0: "x", 1: "y", 2: "z"},
    )
    comparisons.store.insert(comparison)
    return comparisons, comparison


def test_reveal_aggregates_per_provider_and_stem_and_counts_wins(stored_comparison) -> None:
    comparisons, comparison = stored_comparison
    for lane, score in ((0, 5), (1, 3), (2, 1)):
        comparisons.rate("c1", "vocals", lane, score, rater="ann")
    for lane, score in ((0, 2), (1, 4)):
        comparisons.rate("c1", "vocals", lane, score, rater="bob")
    comparisons.rate("c1", "vocals", 1, 5, rater="ann")  # re-rated: a tie for ann's top score
    comparisons.rate("c1", "drums", 1, 3, rater="ann")
    assert len(comparisons.ratings("c1")) == 6

    local, gpt = (comparisons.label(comparison, i) for i in (0, 1))
    assert gpt == "MusicGPT · 4 stems" and local.endswith("· 4 stems")
    scores = {(s.provider_label, s.stem): s for s in comparisons.reveal("c1")}
    assert set(scores) == {(local, "vocals"), (gpt, "vocals"), (gpt, "drums")}
    # local = lanes 0 and 2 (same label): ann 5 and 1, bob 2 → mean 8/3; wins: ann's tie only
    assert (scores[(local, "vocals")].count, scores[(local, "vocals")].wins) == (3, 1)
    assert scores[(local, "vocals")].mean == pytest.approx(8 / 3)
    assert (scores[(gpt, "vocals")].mean, scores[(gpt, "vocals")].wins) == (4.5, 2)
    assert (scores[(gpt, "drums")].count, scores[(gpt, "drums")].wins) == (1, 1)


@pytest.mark.parametrize(
    ("lane", "score", "comparison_id"), [(0, 0, "c1"), (0, 6, "c1"), (3, 3, "c1"), (0, 3, "no")]
)
def test_impossible_ratings_are_refused(stored_comparison, lane, score, comparison_id) -> None:
    comparisons, _ = stored_comparison
    with pytest.raises(RatingRejected):
        comparisons.rate(comparison_id, "vocals", lane, score)
    assert comparisons.ratings("c1") == []


def test_exports_escape_what_the_user_named(stored_comparison) -> None:
    comparisons, _ = stored_comparison
    page = comparisons.export_html("c1")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "No ratings yet." in page
    assert json.loads(comparisons.export_json("c1"))["track"] == "<script>alert(1)</script>.wav"


def test_lane_labels_come_from_capabilities_when_there_are_any(runtime: Runtime) -> None:
    caps = runtime.provider("musicgpt").capabilities
    custom = LaneSpec("musicgpt", "custom", ("vocals", "drums.kick"), ("denoise",))
    assert lane_label(custom, caps) == "MusicGPT · Vocals, Drums · kick + denoise"
    assert lane_label(LaneSpec("musicgpt", "2"), caps) == "MusicGPT · 2 stems"
    assert LaneSpec("gone", "x").label == "gone · mode x"
