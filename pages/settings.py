"""Settings: API keys and base URLs of the hosted providers, and a connection test.

A typed key stays in this browser session (the page's state on the server) unless the user
asks to save it; it is never shown again — only where it comes from and its last four
characters — and the password field is emptied as soon as it is used.
"""

from __future__ import annotations

import streamlit as st

from components import cost_table
from components.guard import callback, friendly_errors, show_notice
from components.shell import run_page
from components.state import get_runtime, get_state
from services.errors import StemDeckError
from services.providers import keys
from services.providers.base import SeparationProvider
from services.providers.credentials import SOURCE_LABELS, Credential
from services.runtime import Runtime

COLUMNS = 2
FLASH = "settings:flash"  # (provider, message) shown once in that provider's card


def _field(name: str, what: str) -> str:
    return f"settings:{name}:{what}"


def _flash(name: str, message: str) -> None:
    st.session_state[FLASH] = (name, message)


def _take(name: str, what: str, empty: object = "") -> object:
    """A form field's value, emptied at once: the key must not travel back to the browser."""
    value = st.session_state.get(_field(name, what))
    st.session_state[_field(name, what)] = empty
    return value


@callback
def apply(name: str) -> None:
    """Use (and maybe save) what was typed."""
    state, runtime = get_state(), get_runtime()
    api_key, base_url, save = _take(name, "key"), _take(name, "base"), _take(name, "save", False)
    typed = Credential(str(api_key or ""), str(base_url or ""))
    if not typed:
        raise StemDeckError("Type a key or a base URL first.")
    session = typed.over(state.session_key(name) or Credential())
    if save:
        runtime.save_credential(name, session)
        state.keys.pop(name, None)  # the saved copy is the one in use now
        _flash(name, "Saved on this computer (owner-only file) and in use.")
    else:
        state.keys[name] = session
        _flash(name, "In use for this browser session; it is not stored anywhere.")


@callback
def forget(name: str) -> None:
    state = get_state()
    get_runtime().forget_credential(name, state.keys.pop(name, None))
    _flash(name, "Forgotten: the typed and the saved key are gone.")


def status_lines(runtime: Runtime, name: str, provider: SeparationProvider) -> bool:
    """Where the key and base URL come from; True when there is something to forget."""
    session = get_state().session_key(name)
    status = runtime.key_status(name, session)
    if status.has_key:
        st.markdown(
            f":material/key: Key `{status.hint}` · {SOURCE_LABELS[status.key_source]}"
        )
    else:
        st.markdown(
            f":material/key_off: No key yet · paste one below, or set "
            f"`{keys.env_var(name)}` in the environment or `.streamlit/secrets.toml`."
        )
    base_url = getattr(runtime.provider(name, session), "base_url", None)
    if base_url:
        where = "default" if status.url_source == "none" else SOURCE_LABELS[status.url_source]
        st.caption(f"Base URL: `{base_url}` · {where}")
    return status.key_source in ("session", "saved") or status.url_source in ("session", "saved")


def key_form(name: str) -> None:
    with st.form(_field(name, "form"), border=False):
        st.text_input(
            "API key",
            type="password",
            key=_field(name, "key"),
            autocomplete="off",
            placeholder="Paste a new key",
        )
        st.text_input(
            "Base URL override (optional)",
            key=_field(name, "base"),
            placeholder="https://… exactly as the provider documents it",
            help="For a compatible server or a local emulator; leave empty for the default.",
        )
        st.checkbox(
            "Save to disk (an owner-only file outside the app folder)",
            key=_field(name, "save"),
            help="Otherwise the key is kept only for this browser session.",
        )
        st.form_submit_button(
            "Use this key", key=_field(name, "use"), on_click=apply, args=(name,), type="primary"
        )


def provider_card(runtime: Runtime, name: str, provider: SeparationProvider) -> None:
    caps = provider.capabilities
    with st.container(border=True, key=f"settings-{name}"):
        st.subheader(caps.display_name, divider=False)
        st.caption(f"{caps.description} Pricing: {caps.pricing_unit}.")
        forgettable = status_lines(runtime, name, provider)
        flash = st.session_state.get(FLASH)
        if flash and flash[0] == name:
            st.success(flash[1], icon=":material/check_circle:")
            del st.session_state[FLASH]
        key_form(name)
        left, right = st.columns(2)
        test = left.button(
            "Test connection", key=_field(name, "test"), icon=":material/wifi_tethering:",
            width="stretch",
        )
        right.button(
            "Forget", key=_field(name, "forget"), icon=":material/delete:", width="stretch",
            on_click=forget, args=(name,), disabled=not forgettable,
            help="Removes the key typed in this session and the saved one.",
        )
        if test:
            with friendly_errors(f"connection test {name}"), st.spinner("Connecting…"):
                message = runtime.check_connection(name, get_state().session_key(name))
                st.success(message, icon=":material/check_circle:")


def main() -> None:
    runtime = get_runtime()
    st.title("Settings")
    st.caption(
        "API keys for the hosted providers. The local engine needs none. A key is never shown "
        "again once entered, and never written into a job or a log."
    )
    show_notice()
    with st.spinner("Loading the separation engines…"):
        providers = runtime.providers()
    hosted = {n: p for n, p in providers.items() if p.capabilities.needs_key}
    if not hosted:
        st.info("No provider here needs a key.", icon=":material/info:")
    columns = st.columns(COLUMNS, gap="medium")
    for index, (name, provider) in enumerate(hosted.items()):
        with columns[index % COLUMNS]:
            provider_card(runtime, name, provider)
    cost_table.settings_note(
        runtime.settings, {n: p.capabilities.display_name for n, p in providers.items()}
    )


run_page(main)
