"""Split page under AppTest: widgets from capabilities, URL errors, uploads, a real run."""

from __future__ import annotations

from components.state import STATE_KEY
from services.jobs.model import JobStatus


def state(app):
    return app.session_state[STATE_KEY]


def test_provider_mode_and_format_widgets_come_from_capabilities(app, app_runtime):
    app.run()
    caps = app_runtime.providers()["local"].capabilities
    provider = app.selectbox(key="split:provider")
    assert provider.value == "local"
    assert caps.display_name in provider.options[0]
    mode = app.radio(key="split:local:mode")
    assert mode.options == [m.label for m in caps.modes]
    assert mode.value == caps.modes[0].id
    assert app.button(key="split:run").disabled  # nothing to split yet
    assert any("Upload a song" in i.value for i in app.info)


def test_private_address_url_is_refused_with_a_clear_message(app):
    app.run()
    app.text_input(key="split:url").input("http://127.0.0.1:9/song.mp3")
    next(b for b in app.button if b.label == "Fetch").click().run()
    assert not app.exception
    assert len(app.error) == 1
    assert "127.0.0.1" in app.error[0].value or "address" in app.error[0].value.lower()
    assert state(app).input is None


def test_uploaded_non_audio_file_is_refused(app):
    app.run()
    app.file_uploader(key="split:upload").set_value(("song.mp3", b"<html>no</html>" * 50,
                                                     "audio/mpeg"))
    app.run()
    assert not app.exception
    assert len(app.error) == 1
    assert state(app).input is None


def test_upload_shows_preview_and_a_split_runs_to_results(app, app_runtime, make_song):
    song = make_song("My Tune.wav").read_bytes()
    app.run()
    app.file_uploader(key="split:upload").set_value(("My Tune.wav", song, "audio/wav"))
    app.run()
    assert not app.exception
    info = state(app).input
    assert info is not None and info.name == "My Tune.wav"
    assert any("0:03" in c.value for c in app.caption)  # duration in the preview facts
    assert len(app.get("plotly_chart")) == 1 and len(app.get("audio")) == 1

    app.radio(key="split:local:mode").set_value("2")
    app.button(key="split:run").click().run()
    assert not app.exception
    job_id = state(app).job_id
    assert job_id is not None
    job = app_runtime.wait(job_id, timeout_s=240)
    assert job.status is JobStatus.SUCCEEDED, job.error

    app.run()  # the finished job is shown with a link to its results
    assert any("is split" in s.value for s in app.success)
    # the same input and settings now offer the stored result or a fresh run
    assert app.button(key="split:open") and app.button(key="split:fresh")


def test_settings_and_input_survive_a_visit_to_another_page(app, make_song):
    app.run()
    app.file_uploader(key="split:upload").set_value(
        ("Keep Me.wav", make_song("Keep Me.wav").read_bytes(), "audio/wav")
    )
    app.radio(key="split:local:mode").set_value("4")
    app.run()
    app.switch_page("pages/history.py").run()
    app.switch_page("pages/split.py").run()
    assert not app.exception
    assert app.radio(key="split:local:mode").value == "4"
    assert state(app).input is not None and state(app).input.name == "Keep Me.wav"
    assert any("Keep Me" in m.value for m in app.markdown)
