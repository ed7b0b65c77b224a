"""Give the browser a URL for a job's preview MP3, served by Streamlit itself.

Options considered (Streamlit 1.67):

- **Static serving** (``server.enableStaticServing``): only files physically inside
  ``<app>/static/`` are served, and symlinks are resolved and refused when they leave it, so
  every job's previews would have to be *copied* into the source tree. Rejected.
- **Base64 in the component's data**: the data is re-sent on every rerun of the mixer's fragment
  (several per second while playing) and a 10-minute stem is ~10 MB. Rejected.
- **An ASGI route** (``st.App(routes=…)``): public and clean, but it changes how the whole app is
  started (``app.py`` becomes an ASGI entry, owned by the UI/lead) and is marked experimental.
  A good follow-up; see the mixer report.
- **Streamlit's media file storage** (chosen): the same in-memory store ``st.audio`` uses. It
  serves ``/media/<id>.mp3`` with HTTP range support, is scoped to the session that registered
  it, and is garbage-collected with the page. Registration is ``runtime.media_file_mgr.add``,
  which is not documented API, so it sits behind this one function; ``requirements.txt`` pins
  Streamlit exactly, and the browser test exercises it end to end.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit import runtime


def preview_url(path: Path, coordinates: str, mimetype: str = "audio/mpeg") -> str | None:
    """A same-origin URL for ``path`` valid for this session, or None outside a Streamlit server.

    ``coordinates`` must be unique per file on the page (it is the storage's reference key); call
    this on every run that shows the mixer so the file stays referenced.
    """
    if not runtime.exists():
        return None
    url = runtime.get_instance().media_file_mgr.add(str(path), mimetype, coordinates)
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}{url}" if base else url
