"""The app shell: it starts, navigates, and turns any failure into a friendly message."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from components.guard import GENERIC_MESSAGE


def test_app_starts_on_split_without_exception(app):
    app.run()
    assert not app.exception
    assert app.title[0].value == "Split a song into stems"


def test_every_page_renders_without_exception(app):
    app.run()
    for page in ("pages/results.py", "pages/compare.py", "pages/history.py", "pages/split.py"):
        app.switch_page(page).run()
        assert not app.exception, page


def _page_that_fails(kind: str) -> None:
    import streamlit as st

    from components.guard import friendly_errors
    from services.errors import InputRejected

    st.write("before")
    with friendly_errors("test"):
        if kind == "expected":
            raise InputRejected("That file is not audio.")
        raise RuntimeError("secret internal detail")


def test_unexpected_error_shows_generic_message_not_traceback():
    at = AppTest.from_function(_page_that_fails, args=("unexpected",)).run()
    assert not at.exception
    assert [e.value for e in at.error] == [GENERIC_MESSAGE]
    assert "secret internal detail" not in str(at)


def test_expected_error_shows_its_user_message():
    at = AppTest.from_function(_page_that_fails, args=("expected",)).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["That file is not audio."]
