"""Typed settings: limits, paths and worker sizing, read from the environment.

Pages pass ``st.secrets`` values in through :func:`load_settings`'s ``overrides``; services never
read Streamlit themselves. Every knob is listed in the README's configuration table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "stemdeck"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything tunable. Defaults are what a fresh install runs with."""

    data_dir: Path = field(default_factory=_default_data_dir)
    db_path: Path | None = None
    max_upload_bytes: int = 200 * MB
    max_duration_s: float = 20 * 60
    fetch_timeout_s: float = 30.0
    local_workers: int = 1
    torch_threads: int = 0  # 0 = let torch decide (all cores)
    public_base_url: str | None = None  # what URL-only providers are sent for uploaded files
    file_server_host: str = "127.0.0.1"
    file_server_port: int = 8765
    sandbox: bool = False  # wired to local provider emulators (python -m sandbox)
    remote_workers: int = 6  # remote-provider jobs at once (they wait on the network, not CPU)
    # Cost confirmation: a paid run above either threshold (money where the value of a credit
    # is known, else credits) or of unknown cost asks before it spends (services/pricing).
    confirm_above_credits: float = 20.0
    confirm_above_money: float = 0.5
    credit_values: tuple[tuple[str, float, str], ...] = ()  # (provider, money per credit, currency)

    @property
    def database(self) -> Path:
        """The SQLite job store (``STEMDECK_DB`` or ``<data_dir>/jobs.sqlite3``)."""
        return self.db_path or self.data_dir / "jobs.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        """Per-job workspaces live under here, one folder per job id."""
        return self.data_dir / "jobs"

    @property
    def inputs_dir(self) -> Path:
        """Validated inputs, stored once per content hash."""
        return self.data_dir / "inputs"


_ENV: dict[str, tuple[str, Any]] = {
    "STEMDECK_DATA_DIR": ("data_dir", Path),
    "STEMDECK_DB": ("db_path", Path),
    "STEMDECK_MAX_UPLOAD_MB": ("max_upload_bytes", lambda v: int(float(v) * MB)),
    "STEMDECK_MAX_DURATION_S": ("max_duration_s", float),
    "STEMDECK_FETCH_TIMEOUT_S": ("fetch_timeout_s", float),
    "STEMDECK_LOCAL_WORKERS": ("local_workers", int),
    "STEMDECK_TORCH_THREADS": ("torch_threads", int),
    "STEMDECK_PUBLIC_BASE_URL": ("public_base_url", str),
    "STEMDECK_FILE_SERVER_HOST": ("file_server_host", str),
    "STEMDECK_FILE_SERVER_PORT": ("file_server_port", int),
    "STEMDECK_SANDBOX": ("sandbox", lambda v: v.strip().lower() in ("1", "true", "yes")),
    "STEMDECK_REMOTE_WORKERS": ("remote_workers", int),
    "STEMDECK_CONFIRM_ABOVE_CREDITS": ("confirm_above_credits", float),
    "STEMDECK_CONFIRM_ABOVE_MONEY": ("confirm_above_money", float),
    "STEMDECK_CREDIT_VALUES": ("credit_values", lambda v: parse_credit_values(v)),
}


def parse_credit_values(raw: str) -> tuple[tuple[str, float, str], ...]:
    """``"kie=0.005 USD, musicapi=0.01"`` → ((provider, value, currency or ""), …)."""
    values = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, rest = item.partition("=")
        amount, _, currency = rest.strip().partition(" ")
        if not sep or not name.strip():
            raise ValueError(f"{item!r} is not provider=value")
        values.append((name.strip().lower(), float(amount), currency.strip().upper()))
    return tuple(values)


def load_settings(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings from ``env`` (default ``os.environ``), then apply explicit ``overrides``."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for var, (name, parse) in _ENV.items():
        raw = env.get(var)
        if raw:
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise ValueError(f"{var}={raw!r} is not a valid value") from exc
    values.update(overrides or {})
    return replace(Settings(), **values)
