"""Compare page under AppTest: empty state, lanes, the estimate, a real local comparison with
figures, a blind round and its reveal, exports — on a temp data dir with the bundled example."""

from __future__ import annotations

import json

import pytest

from components.navigation import COMPARE, COMPARISON_PARAM
from components.state import STATE_KEY
from services.jobs.model import JobStatus

pytest_plugins = ("tests.provider_fixtures",)
JOB_TIMEOUT_S = 240


def draft(app):
    return app.session_state[STATE_KEY].compare


def add_lane(app, provider: str, mode: str) -> None:
    app.selectbox(key="compare:add:provider").set_value(provider).run()
    app.selectbox(key=f"compare:add:{provider}:mode").set_value(mode).run()
    app.button(key="compare:add").click().run()


@pytest.fixture
def compare(app):
    app.switch_page(COMPARE).run()
    assert not app.exception
    return app


@pytest.mark.usefixtures("clean_provider_env")
def test_empty_page_then_lanes_are_added_estimated_and_removed(compare):
    app = compare
    assert any("Compare providers" in t.value for t in app.title)
    assert any("Pick a bundled example" in i.value for i in app.info)
    assert app.button(key="compare:run").disabled
    assert [lane.provider for lane in draft(app).lanes] == ["local"]  # a free default lane

    app.button(key="compare:use-example").click().run()
    assert not app.exception
    assert draft(app).input is not None and draft(app).example_id is not None
    assert any("Reference stems: the example's true" in c.value for c in app.caption)
    assert app.button(key="compare:run").disabled  # one lane is not a comparison

    add_lane(app, "local", "2")
    add_lane(app, "aistemsplitter", "4")  # needs a key this test environment lacks
    assert not app.exception
    assert [(lane.provider, lane.mode) for lane in draft(app).lanes] == [
        ("local", "4"), ("local", "2"), ("aistemsplitter", "4")
    ]
    estimate = app.table[0].value  # the Split page's cost table, for exactly these lanes
    assert list(estimate.index) == ["Local (built-in)", "Local (built-in)", "AIStemSplitter"]
    assert list(estimate["Status"]) == ["ready", "ready", "needs key"]
    assert any("Together:" in c.value and "lanes run at once" in c.value for c in app.caption)
    assert any("AIStemSplitter" in w.value for w in app.warning)
    assert app.button(key="compare:run").disabled  # the key problem blocks the run

    app.selectbox(key="compare:add:provider").set_value("local").run()
    app.selectbox(key="compare:add:local:mode").set_value("2").run()
    assert app.button(key="compare:add").disabled  # the same lane twice is refused

    app.button(key="compare:remove:2").click().run()
    assert not app.exception
    assert len(draft(app).lanes) == 2
    assert not app.button(key="compare:run").disabled


def song_and_references(tmp_path) -> tuple[bytes, list[tuple[str, bytes, str]]]:
    """A 3 s generated mix and two of its true stems, as upload tuples."""
    from tests.audiogen import bass_like, drum_like, mix, vocal_like, write

    vocals, drums = vocal_like(3.0, amp=0.35), drum_like(3.0, amp=0.4)
    song = write(tmp_path / "Mix.wav", mix(vocals, drums, bass_like(3.0, amp=0.3)))
    refs = [(f"Mix - {name}.wav", write(tmp_path / f"{name}.wav", part).read_bytes(), "audio/wav")
            for name, part in (("vocals", vocals), ("drums", drums))]
    return song.read_bytes(), refs


@pytest.mark.usefixtures("clean_provider_env")
def test_a_comparison_runs_shows_figures_a_blind_round_and_exports(
    compare, app_runtime, emulator, tmp_path
):
    """Local 2 stems against an emulated AIStemSplitter 4 stems, with uploaded references."""
    from services.compare import Comparisons
    from services.providers.credentials import Credential

    app = compare
    aistemsplitter = emulator("aistemsplitter")
    app.session_state[STATE_KEY].keys["aistemsplitter"] = Credential(
        aistemsplitter.api_key, aistemsplitter.base_url
    )
    song, refs = song_and_references(tmp_path)
    app.file_uploader(key="compare:upload").set_value(("Mix.wav", song, "audio/wav")).run()
    app.file_uploader(key="compare:refs").set_value(refs).run()
    assert not app.exception
    assert set(draft(app).references) == {"vocals", "drums"}  # stems guessed from file names
    app.button(key="compare:remove:0").click().run()
    add_lane(app, "local", "2")
    add_lane(app, "aistemsplitter", "4")
    app.button(key="compare:run").click().run()  # ≈ 0.01 USD: below the confirmation threshold
    assert not app.exception
    comparison_id = app.query_params[COMPARISON_PARAM]
    comparisons = Comparisons(app_runtime)
    comparison = comparisons.get(comparison_id)
    assert comparison is not None and set(comparison.references) == {"vocals", "drums"}
    for job_id in comparison.job_ids:
        job = app_runtime.wait(job_id, timeout_s=JOB_TIMEOUT_S)
        assert job.status is JobStatus.SUCCEEDED, job.error

    app.run()
    assert not app.exception
    assert any("All lanes done in" in c.value for c in app.caption)
    assert any("Cost: free" in c.value for c in app.caption)
    assert any("Cost: estimated 3 credits" in c.value for c in app.caption)
    figures = app.table[0].value
    assert {"SDR · Vocals", "SDR · Drums", "Residual"} <= set(figures.index)
    assert list(figures.columns) == ["Local (built-in) · 2 stems", "AIStemSplitter · 4 stems"]
    assert figures.loc["SDR · Drums"].isna().tolist() == [True, False]  # local 2 has no drums
    assert any("Signal-to-distortion ratio" in c.value for c in app.caption)
    # local: vocals, instrumental; AIStemSplitter: vocals, drums, bass, other
    assert len(app.get("audio")) == 6
    assert sum("missing" in c.value for c in app.caption) == 4

    app.segmented_control(key="compare:view").set_value("blind").run()
    assert not app.exception
    assert any("Names are hidden" in c.value for c in app.caption)
    assert not any("AIStemSplitter" in m.value for m in app.markdown)  # names stay hidden
    order = comparisons.blind_order(comparison, "vocals")
    assert sorted(order) == [0, 1]
    stars = {order[0]: 4, order[1]: 1}  # st.feedback stars: 0-4, i.e. 5 and 2 stars
    for lane, value in stars.items():
        app.feedback(key=f"blind:rate:{comparison_id}:default:vocals:{lane}").set_value(value).run()
        assert not app.exception
    assert {(r.lane_index, r.score) for r in comparisons.ratings(comparison_id)} == {
        (order[0], 5), (order[1], 2)
    }
    app.button(key=f"blind:reveal:{comparison_id}").click().run()
    assert not app.exception
    assert any("Results of the blind round" in m.value for m in app.markdown)
    revealed = app.table[0].value.reset_index()
    winner = comparisons.label(comparison, order[0])
    assert revealed.loc[revealed["Lane"] == winner, "Wins"].tolist() == [1]

    app.segmented_control(key="compare:view").set_value("side").run()
    assert {b.key for b in app.get("download_button")} >= {
        "compare:export:html", "compare:export:csv", "compare:export:json"
    }
    assert json.loads(comparisons.export_json(comparison_id))
