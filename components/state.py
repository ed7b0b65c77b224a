"""The process-wide Runtime and the one typed per-session state object.

Durable facts (jobs, inputs) live in the job store; session state only remembers what this
browser tab is looking at, under a single key so it stays typed and easy to reset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from services.compare import Comparisons, LaneSpec
from services.config import Settings, load_settings
from services.inputs import InputInfo
from services.providers.credentials import Credential
from services.runtime import Runtime

log = logging.getLogger("stemdeck.ui")

STATE_KEY = "stemdeck"
PERSIST = "session"  # widget values (engine, mode, format…) survive a visit to another page


DEFAULT_LANES = (LaneSpec("local", "4"),)


@dataclass
class CompareDraft:
    """The comparison being set up on Compare, and the one it shows."""

    input: InputInfo | None = None
    input_error: str | None = None
    upload_id: str | None = None  # file_id of the last upload ingested
    example_id: str | None = None  # the bundled example the input came from (it has references)
    references: dict[str, Path] = field(default_factory=dict)  # stem → reference stem file
    reference_files: dict[str, tuple[str, InputInfo]] = field(default_factory=dict)
    """Uploaded reference files by upload file_id: (file name, stored file), ingested once."""
    lanes: list[LaneSpec] = field(default_factory=lambda: list(DEFAULT_LANES))
    comparison_id: str | None = None  # shown when the URL names none
    revealed: set[str] = field(default_factory=set)  # comparisons whose blind round is revealed


@dataclass
class AppState:
    """What this session is looking at; everything else is read from the runtime."""

    input: InputInfo | None = None  # the validated input shown on Split
    upload_id: str | None = None  # file_id of the last upload ingested (ingest once per upload)
    input_error: str | None = None  # why the last input was refused, shown until the next one
    job_id: str | None = None  # the job started from Split in this session
    results_job_id: str | None = None  # the job Results shows when the URL names none
    notice: str | None = None  # why a button callback failed; shown once, then cleared
    keys: dict[str, Credential] = field(default_factory=dict)
    """Keys/base URLs typed on Settings for this browser session only (repr is masked)."""
    compare: CompareDraft = field(default_factory=CompareDraft)

    def session_key(self, provider: str) -> Credential | None:
        return self.keys.get(provider)


def get_state() -> AppState:
    """The session's AppState, created on first use."""
    state = st.session_state.get(STATE_KEY)
    if not isinstance(state, AppState):
        state = AppState()
        st.session_state[STATE_KEY] = state
    return state


def _shutdown(runtime: Runtime) -> None:
    runtime.shutdown()


@st.cache_resource(show_spinner="Starting StemDeck…", on_release=_shutdown)
def runtime_for(key: str, _settings: Settings) -> Runtime:
    """One Runtime (store + worker threads) per settings, shared by every session.

    ``key`` is ``repr(settings)`` so a changed configuration starts a fresh runtime;
    ``.clear()`` shuts the cached runtimes down (tests rely on this). Providers load in the
    background (``warm``), so the first page does not wait for the local engine's import.
    """
    return Runtime.start(_settings, warm=True)


def _secrets() -> dict[str, object]:
    """``.streamlit/secrets.toml`` as a plain mapping ({} when there is none)."""
    try:
        return dict(st.secrets)
    except FileNotFoundError:  # no secrets file: keys come from elsewhere
        return {}
    except Exception:
        log.warning("secrets.toml could not be read; ignoring it")
        return {}


def get_runtime() -> Runtime:
    """The shared Runtime for the current environment's settings (and current secrets)."""
    settings = load_settings()
    runtime = runtime_for(repr(settings), settings)
    runtime.set_secrets(_secrets())
    return runtime


def _close(comparisons: Comparisons) -> None:
    comparisons.close()


@st.cache_resource(show_spinner=False, on_release=_close)
def comparisons_for(key: str, _runtime: Runtime) -> Comparisons:
    """One Comparisons service per runtime (``key`` names the runtime's settings and identity)."""
    return Comparisons(_runtime)


def get_comparisons() -> Comparisons:
    """The comparison service next to the shared Runtime."""
    runtime = get_runtime()
    return comparisons_for(f"{runtime.settings!r}:{id(runtime)}", runtime)
