"""Results page under AppTest: empty state, a finished job's gallery, a missing job."""

from __future__ import annotations

from components.navigation import RESULTS


def test_results_without_jobs_shows_the_empty_state(app):
    app.switch_page(RESULTS).run()
    assert not app.exception
    assert any("No results yet" in i.value for i in app.info)
    assert not app.get("plotly_chart")


def test_results_renders_every_stem_of_a_finished_job(app, finished_job):
    app.query_params["job"] = finished_job.id
    app.switch_page(RESULTS).run()
    assert not app.exception
    stems = {a.stem for a in finished_job.artifacts}
    assert stems == {"vocals", "instrumental"}
    job_id = finished_job.id
    charts = {c.key for c in app.get("plotly_chart")}
    assert {f"wave:{job_id}:{s}" for s in stems} <= charts
    assert len(app.get("audio")) >= 2  # one preview per stem (the mixer may add its own)
    buttons = {b.key for b in app.get("download_button")}
    assert {f"zip:{job_id}"} | {f"dl:{job_id}:{s}" for s in stems} <= buttons
    assert app.title[0].value == "Test Song\\.wav"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Stems"] == "2" and metrics["Length"] == "0:03"


def test_results_falls_back_to_latest_when_the_named_job_is_gone(app, finished_job):
    app.query_params["job"] = "0" * 32
    app.switch_page(RESULTS).run()
    assert not app.exception
    assert any("no longer exists" in w.value for w in app.warning)
    charts = {c.key for c in app.get("plotly_chart")}
    assert f"wave:{finished_job.id}:vocals" in charts
