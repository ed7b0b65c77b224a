"""Turn exceptions into friendly messages: a page never shows a traceback.

Expected failures (:class:`services.errors.StemDeckError`) carry a user message and are shown
as-is; anything else is logged with its traceback on the server and replaced by a generic
message. Streamlit's own control flow (rerun, stop, switch_page) derives from BaseException
and passes through untouched.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import streamlit as st

from components.state import get_state
from services.errors import StemDeckError

log = logging.getLogger("stemdeck.ui")

GENERIC_MESSAGE = (
    "Something went wrong while showing this part of the page. "
    "The details were written to the server log; try again or reload the page."
)

P = ParamSpec("P")
R = TypeVar("R")


def show_error(exc: Exception, where: str) -> None:
    """Render ``exc`` as a one-line message; log unexpected ones with their traceback."""
    if isinstance(exc, StemDeckError):
        st.error(exc.user_message, icon=":material/error:")
        return
    log.exception("unexpected error in %s", where)
    st.error(GENERIC_MESSAGE, icon=":material/error:")


@contextmanager
def friendly_errors(where: str) -> Iterator[None]:
    """Run a block; on failure show a message in its place instead of a traceback."""
    try:
        yield
    except Exception as exc:
        show_error(exc, where)


def guarded(fn: Callable[P, R]) -> Callable[P, R | None]:
    """Decorator form of :func:`friendly_errors`, for fragments and callbacks."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            show_error(exc, fn.__qualname__)
            return None

    return wrapper


def callback(fn: Callable[P, object]) -> Callable[P, None]:
    """Wrap a widget callback: a failure becomes a notice shown by :func:`show_notice`.

    Callbacks run before the page (often in a fragment rerun), where drawing an error is not
    supported, so the message is parked in the session state instead.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except StemDeckError as exc:
            get_state().notice = exc.user_message
        except Exception:
            log.exception("unexpected error in callback %s", fn.__qualname__)
            get_state().notice = GENERIC_MESSAGE

    return wrapper


def show_notice() -> None:
    """Show (once) the message a failed callback left behind."""
    state = get_state()
    if state.notice:
        st.warning(state.notice, icon=":material/warning:")
        state.notice = None
