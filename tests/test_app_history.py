"""History page under AppTest: empty state, a run job listed, delete with confirmation."""

from __future__ import annotations

from components.navigation import HISTORY


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
