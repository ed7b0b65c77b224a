"""Split page under AppTest: widgets from capabilities, URL errors, uploads, a real run, the
cost table and the confirmation before a paid run."""

from __future__ import annotations

import pytest

from components.state import STATE_KEY
from services.jobs.model import JobStatus
from services.providers.credentials import Credential

pytest_plugins = ("tests.provider_fixtures",)
KIE_CREATE = r"/api/v1/vocal-removal/generate"


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


def upload(app, make_song, name: str = "Song.wav") -> None:
    app.run()
    app.file_uploader(key="split:upload").set_value((name, make_song(name).read_bytes(),
                                                     "audio/wav"))
    app.run()
    assert not app.exception and state(app).input is not None


def cost_rows(app) -> dict[str, dict[str, str]]:
    [table] = app.table
    return {row["Provider"]: row for row in table.value.reset_index().to_dict("records")}


@pytest.mark.usefixtures("clean_provider_env")
def test_the_cost_table_lists_every_provider_for_this_track_and_stem_count(app, make_song):
    upload(app, make_song)
    app.radio(key="split:local:mode").set_value("2").run()
    rows = cost_rows(app)
    assert set(rows) == {"▶ Local (built-in)", "Soundverse", "MusicGPT", "kie.ai", "MusicAPI.ai",
                         "AIStemSplitter"}
    assert rows["▶ Local (built-in)"]["Credits"] == "0 (free)"
    assert rows["▶ Local (built-in)"]["Covers"] == "✓"
    assert rows["kie.ai"]["Credits"] == "10" and rows["kie.ai"]["Status"] == "needs key"
    assert rows["AIStemSplitter"]["Credits"] == "3"  # 1 credit per second, 3 s rounded up
    assert rows["AIStemSplitter"]["Cost"] == "≈ 0.01 USD"
    assert rows["Soundverse"]["Credits"] == "unknown" and rows["MusicGPT"]["Cost"] == "unknown"
    assert any("Cost before you run" in h.value for h in app.subheader)

    app.radio(key="split:local:mode").set_value("4").run()  # the same intent on every provider
    rows = cost_rows(app)
    assert rows["kie.ai"]["Credits"] == "50" and rows["MusicAPI.ai"]["Credits"] == "77"

    app.switch_page("pages/settings.py").run()  # where the thresholds and credit values are told
    assert any("more than 0.5" in c.value and "AIStemSplitter 0.00233 USD" in c.value
               for c in app.caption)


@pytest.mark.usefixtures("clean_provider_env")
def test_paid_runs_above_the_threshold_or_unpriced_wait_for_confirmation(
    app, app_runtime, emulator, make_song
):
    musicgpt, kie = emulator("musicgpt"), emulator("kie")
    app_runtime.balances.wait_s = 30.0  # answers at once; no race with the balance pool
    upload(app, make_song)
    state(app).keys.update(musicgpt=Credential(musicgpt.api_key, musicgpt.base_url),
                           kie=Credential(kie.api_key, kie.base_url))
    # an unpublished price always asks; Cancel takes the question away
    app.selectbox(key="split:provider").set_value("musicgpt").run()
    app.radio(key="split:musicgpt:mode").set_value("2").run()
    app.button(key="split:run").click().run()
    assert any("does not publish" in w.value for w in app.warning)
    app.button(key="split:run:confirm:no").click().run()
    assert not any("anyway?" in w.value for w in app.warning)

    app.selectbox(key="split:provider").set_value("kie").run()
    app.radio(key="split:kie:mode").set_value("split_stem").run()  # 50 credits > 20
    assert cost_rows(app)["▶ kie.ai"]["Covers"] == "✓"  # the emulator's balance: 1000
    app.button(key="split:run").click().run()
    assert not app.exception
    assert any("50" in w.value and "anyway?" in w.value for w in app.warning)
    app.run()  # neither the clicks nor a rerun spend anything
    assert app_runtime.list_jobs() == [] and kie.calls_to("POST", KIE_CREATE) == 0
    assert musicgpt.calls_to("POST", r".*/Extraction") == 0

    app.button(key="split:run:confirm:yes").click().run()
    assert not app.exception
    [job] = app_runtime.list_jobs()
    assert (job.spec.provider, job.spec.mode, job.estimated_cost) == ("kie", "split_stem", 50.0)
    assert state(app).job_id == job.id
