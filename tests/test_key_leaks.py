"""A key typed on the Settings page runs a real sandbox job from the Split page, and then is
found nowhere: not in the job store, the workspace, the logs (DEBUG, every thread), the
rendered pages, nor any other file of the data directory."""

from __future__ import annotations

import logging

import pytest

from components.navigation import SETTINGS
from components.state import STATE_KEY
from services.jobs.model import JobStatus
from tests.leakcheck import files_containing

pytest_plugins = ("tests.provider_fixtures",)
pytestmark = pytest.mark.usefixtures("clean_provider_env")

JOB_WAIT_S = 60.0


def test_a_typed_key_splits_from_the_browser_session_and_leaks_nowhere(
    app, app_runtime, emulator, make_song, settings, caplog
):
    caplog.set_level(logging.DEBUG)
    emu = emulator("aistemsplitter")
    key = emu.api_key
    rendered: list[str] = []

    app.run()
    app.switch_page(SETTINGS).run()
    app.text_input(key="settings:aistemsplitter:key").input(key)
    app.text_input(key="settings:aistemsplitter:base").input(emu.base_url)
    app.button(key="settings:aistemsplitter:use").click().run()
    app.button(key="settings:aistemsplitter:test").click().run()
    assert any("Connected" in s.value for s in app.success)
    rendered.append(str(app))

    app.switch_page("pages/split.py").run()
    app.file_uploader(key="split:upload").set_value(
        ("Leak Check.wav", make_song("Leak Check.wav", 2.0).read_bytes(), "audio/wav")
    )
    app.run()
    app.selectbox(key="split:provider").set_value("aistemsplitter").run()
    app.radio(key="split:aistemsplitter:mode").set_value("4").run()
    assert not app.warning  # the session key counts: no "needs a key"
    rendered.append(str(app))
    app.button(key="split:run").click().run()
    assert not app.exception
    job = app_runtime.wait(app.session_state[STATE_KEY].job_id, JOB_WAIT_S)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert [a.stem for a in job.artifacts] == ["vocals", "drums", "bass", "other"]
    assert emu.ledger.charges, "the emulator did not bill the job: it did not run there"

    app.run()
    rendered.append(str(app))
    app.switch_page("pages/results.py").run()
    assert not app.exception and len(app.get("audio")) >= 4
    rendered.append(str(app))
    app.switch_page("pages/history.py").run()
    rendered.append(str(app))

    assert key not in repr(app_runtime.get(job.id))
    assert files_containing(settings.data_dir, key) == []  # store (+WAL), workspace, inputs
    assert key not in caplog.text
    assert any("aistemsplitter" in r.getMessage() or "/v1/" in r.getMessage()
               for r in caplog.records), "the job's own logging was not captured"
    for page in rendered:
        assert key not in page
