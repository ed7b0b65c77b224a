"""An inline "are you sure?" in front of an action that may spend money.

A click on the action parks the question under ``key`` (with a token naming what was asked,
e.g. the job's cache key); nothing happens until "Yes" is pressed, and changing the settings
(a different token) makes a parked question disappear. Inline rather than a dialog so the
question stays next to the button and visible to AppTest.
"""

from __future__ import annotations

import streamlit as st


def gate(key: str, token: str, reason: str | None, clicked: bool, action: str = "Run") -> bool:
    """True when the action may go ahead now: clicked with nothing to confirm, or confirmed."""
    pending = f"{key}:confirm"
    if clicked:
        if reason is None:
            return True
        st.session_state[pending] = token
    if st.session_state.get(pending) != token:
        return False
    with st.container(border=True):
        st.warning(f"{reason} {action} it anyway?", icon=":material/payments:")
        yes, no = st.columns(2)
        if yes.button(f"Yes, {action.lower()} it", type="primary", key=f"{pending}:yes"):
            del st.session_state[pending]
            return True
        if no.button("Cancel", key=f"{pending}:no"):
            del st.session_state[pending]
            st.rerun()
    return False
