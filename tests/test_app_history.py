"""History page under AppTest: empty state, a run job listed, delete with confirmation, and
stored comparisons listed, reopened on Compare and deleted."""

from __future__ import annotations

import pytest

from components.navigation import COMPARE, COMPARISON_PARAM, HISTORY

pytest_plugins = ("tests.provider_fixtures",)


def test_history_empty_state(app):
    app.switch_page(HISTORY).run()
    assert not app.exception
    assert any("Nothing here yet" in i.value for i in app.info)


def test_a_submitted_job_is_listed_and_can_be_deleted(app, app_runtime, finished_job):
    app.switch_page(HISTORY).run()
    assert not app.exception
    assert any("Test Song" in m.value for m in app.markdown)
    delete = app.button(key=f"history:delete:{finished_job.id}")
    workspace = app_runtime.workspace(finished_job.id)
    assert workspace.exists()

    delete.click().run()
    assert not app.exception
    assert app_runtime.get(finished_job.id) is None
    assert not workspace.exists()
    assert any("Nothing here yet" in i.value for i in app.info)


def test_a_waiting_job_shows_progress_and_can_be_cancelled(app, app_runtime, settings, make_song):
    from services.audio.formats import ExportFormat
    from services.inputs import ingest_path
    from services.jobs.model import JobSpec, JobStatus

    info = ingest_path(make_song("Busy.wav", 20.0), settings)
    specs = [
        JobSpec(info.hash, info.name, info.info.duration_s, "local", mode,
                export=ExportFormat().as_options())
        for mode in ("6", "4")
    ]
    running, waiting = (app_runtime.submit(spec) for spec in specs)  # one worker: 2nd waits
    app.switch_page(HISTORY).run()
    assert not app.exception
    assert any("Waiting for a free worker" in p.proto.text for p in app.get("progress"))
    app.button(key=f"history:cancel:{waiting.id}").click().run()
    assert not app.exception
    assert app_runtime.get(waiting.id).status is JobStatus.CANCELLED
    keys = {b.key for b in app.button}
    assert f"history:delete:{waiting.id}" in keys  # now finished: delete replaces cancel
    assert f"history:cancel:{waiting.id}" not in keys
    app_runtime.cancel(running.id)


@pytest.mark.usefixtures("clean_provider_env")
def test_a_comparison_is_listed_reopened_and_deleted(app, app_runtime, settings, finished_job):
    """A stored comparison (one lane reusing a finished split, one refused for want of a key)
    is listed with its lanes' states, opens on Compare, and is deleted without its splits."""
    from services.audio.formats import ExportFormat
    from services.compare import Comparisons, LaneSpec
    from services.inputs import find_input

    comparisons = Comparisons(app_runtime)
    comparison = comparisons.start(
        find_input(finished_job.spec.input_hash, settings),
        [LaneSpec("local", "2"), LaneSpec("aistemsplitter", "4")],
        ExportFormat("wav", 16),
    )
    assert comparison.job_ids == (finished_job.id, "")  # the stored result is reused

    app.switch_page(HISTORY).run()
    assert not app.exception
    assert any("Comparisons" in h.value for h in app.subheader)
    captions = [c.value for c in app.caption]
    assert "Local \\(built\\-in\\) · 2 stems vs AIStemSplitter · 4 stems" in captions
    assert "1 done · 1 not run" in captions
    links = [p.proto for p in app.get("page_link")]
    assert any(comparison.id in str(link) for link in links)  # Open carries ?comparison=<id>

    app.query_params[COMPARISON_PARAM] = comparison.id
    app.switch_page(COMPARE).run()
    assert not app.exception
    assert any("Test Song" in t.value for t in app.title)
    assert any("AIStemSplitter" in c.value and "key" in c.value for c in app.caption)
    assert any("reused a stored result" in c.value for c in app.caption)
    assert len(app.get("audio")) == 2  # the reused local lane's vocals and instrumental

    app.query_params.clear()
    app.switch_page(HISTORY).run()
    app.button(key=f"history:cmp:delete:{comparison.id}").click().run()
    assert not app.exception
    assert comparisons.get(comparison.id) is None
    assert app_runtime.get(finished_job.id) is not None  # its split stays in History
    assert not any("Comparisons" in h.value for h in app.subheader)
