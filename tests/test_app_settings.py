"""Settings page, the Split page's "needs a key" and "needs a public URL" states, and the
Sandbox badge, under AppTest with real emulators on local sockets."""

from __future__ import annotations

import stat
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from components.navigation import SETTINGS
from components.state import STATE_KEY, runtime_for
from tests.conftest import ROOT

pytest_plugins = ("tests.provider_fixtures",)
pytestmark = pytest.mark.usefixtures("clean_provider_env")


def field(name: str, what: str) -> str:
    return f"settings:{name}:{what}"


def open_settings(app: AppTest) -> AppTest:
    app.run()
    return app.switch_page(SETTINGS).run()


def page_links(app: AppTest) -> list[str]:
    """The url path of every page link (``settings`` for pages/settings.py)."""
    return [link.proto.page for link in app.get("page_link")]


def test_keys_are_typed_masked_and_the_connection_test_shows_the_balance(app, emulator):
    emu = emulator("aistemsplitter")
    open_settings(app)
    assert not app.exception
    key_input = app.text_input(key=field("aistemsplitter", "key"))
    assert key_input.proto.type == key_input.proto.PASSWORD and key_input.value == ""
    assert any("No key yet" in m.value and "AISTEMSPLITTER_API_KEY" in m.value
               for m in app.markdown)

    key_input.input(emu.api_key)
    app.text_input(key=field("aistemsplitter", "base")).input(emu.base_url)
    app.button(key=field("aistemsplitter", "use")).click().run()
    assert not app.exception and not app.warning
    assert app.text_input(key=field("aistemsplitter", "key")).value == ""  # not sent back
    assert any(f"••••{emu.api_key[-4:]}" in m.value and "typed in this session" in m.value
               for m in app.markdown)
    assert any(emu.base_url in c.value for c in app.caption)

    app.button(key=field("aistemsplitter", "test")).click().run()
    assert not app.error
    balance = f"{emu.ledger.balance:g} seconds of audio"
    assert any(f"Connected. Balance: {balance}" in s.value for s in app.success)
    assert emu.api_key not in str(app)

    app.button(key=field("aistemsplitter", "forget")).click().run()
    assert any("No key yet" in m.value for m in app.markdown)
    assert "aistemsplitter" not in app.session_state[STATE_KEY].keys


def test_a_wrong_key_fails_the_test_with_a_friendly_message(app, emulator):
    emu = emulator("musicapi")
    open_settings(app)
    app.text_input(key=field("musicapi", "key")).input(emu.api_key + "x")
    app.text_input(key=field("musicapi", "base")).input(emu.base_url)
    app.button(key=field("musicapi", "use")).click().run()
    app.button(key=field("musicapi", "test")).click().run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "MusicAPI.ai refused the API key (HTTP 401); check it on the Settings page."
    ]


def test_a_saved_key_lands_in_an_owner_only_file_outside_the_app(app, app_runtime, emulator):
    emu = emulator("kie")
    open_settings(app)
    app.text_input(key=field("kie", "key")).input(emu.api_key)
    app.text_input(key=field("kie", "base")).input(emu.base_url)
    app.checkbox(key=field("kie", "save")).check()
    app.button(key=field("kie", "use")).click().run()
    assert any("saved on this computer" in m.value for m in app.markdown)
    path = app_runtime.credentials.saved.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.resolve().is_relative_to(ROOT)
    app.button(key=field("kie", "test")).click().run()
    assert any("Connected. Balance:" in s.value for s in app.success)
    app.button(key=field("kie", "forget")).click().run()
    assert emu.api_key not in path.read_text()


def test_an_invalid_base_url_is_refused_with_a_message(app):
    open_settings(app)
    app.text_input(key=field("musicgpt", "base")).input("ftp://example.com")
    app.button(key=field("musicgpt", "use")).click().run()
    assert not app.exception
    assert any("must be an http(s) address" in w.value for w in app.warning)


def test_split_shows_needs_a_key_with_a_link_and_a_disabled_button(app):
    app.run()
    app.selectbox(key="split:provider").set_value("musicgpt").run()
    assert not app.exception
    assert any("MusicGPT needs an API key" in w.value for w in app.warning)
    assert "settings" in page_links(app)
    assert app.button(key="split:run").disabled
    # MusicGPT's own options come from its capabilities
    assert app.multiselect(key="split:musicgpt:stems")
    assert app.get("button_group")  # the pre-processing pills


def test_an_upload_for_a_url_only_provider_is_explained_before_running(
    app, make_song, monkeypatch
):
    monkeypatch.setenv("SOUNDVERSE_API_KEY", "sv_test_key_0123456789")
    app.run()
    app.file_uploader(key="split:upload").set_value(
        ("Song.wav", make_song("Song.wav", 1.0).read_bytes(), "audio/wav")
    )
    app.run()
    app.selectbox(key="split:provider").set_value("soundverse").run()
    assert not app.exception
    assert any("Soundverse only accepts a public URL" in w.value for w in app.warning)
    assert app.button(key="split:run").disabled


@pytest.fixture
def sandbox_app(data_dir, monkeypatch) -> Iterator[AppTest]:
    monkeypatch.setenv("STEMDECK_SANDBOX", "1")
    runtime_for.clear()
    yield AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    runtime_for.clear()


def test_sandbox_mode_is_labelled_on_every_page(sandbox_app):
    sandbox_app.run()
    for page in ("pages/split.py", "pages/results.py", "pages/history.py", SETTINGS):
        sandbox_app.switch_page(page).run()
        assert not sandbox_app.exception, page
        assert any("Sandbox" in m.value for m in sandbox_app.markdown), page


def test_outside_sandbox_mode_there_is_no_badge(app):
    app.run()
    assert not any("Sandbox" in m.value for m in app.markdown)
