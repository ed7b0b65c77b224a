"""``python -m sandbox``: every provider emulator plus the app wired to them — no key, no network.

Starts the five emulators on free 127.0.0.1 ports (in this process), then the Streamlit app as
a child process whose environment points every provider at its emulator:
``<NAME>_BASE_URL`` / ``<NAME>_API_KEY`` per provider (plus ``KIE_UPLOAD_BASE_URL``,
``KIE_WEBHOOK_HMAC_KEY`` and a 2 s ``MUSICAPI_POLL_INTERVAL_S``), ``STEMDECK_SANDBOX=1`` so the
UI labels itself, a separate data dir (sandbox results must never be served from the cache to
a real provider), and the app's file server on a free port as ``STEMDECK_PUBLIC_BASE_URL`` —
the emulators run on this machine, so they can fetch uploads from it. Ctrl-C (or SIGTERM)
stops the app and the emulators. ``--no-app`` only runs the emulators and prints the
variables, e.g. for the CLI in another shell.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import common
from sandbox.common import Emulator
from services import public_files
from services.config import load_settings
from services.providers import keys

ROOT = Path(__file__).resolve().parent.parent
EMULATORS: dict[str, str] = {
    **common.EMULATORS,
    "soundverse": "sandbox.soundverse:SoundverseEmulator",
    "kie": "sandbox.kie:KieEmulator",
    "musicapi": "sandbox.musicapi:MusicAPIEmulator",
}
SANDBOX_FLAG = "STEMDECK_SANDBOX"
MUSICAPI_POLL_S = "2"
STOP_GRACE_S = 10.0


@dataclass
class Sandbox:
    """What ``start`` started; ``stop`` ends all of it (and only it)."""

    emulators: dict[str, Emulator]
    env: dict[str, str]
    app: subprocess.Popen[bytes] | None = None
    app_url: str | None = None
    stopped: bool = field(default=False, init=False)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.app is not None and self.app.poll() is None:
            _end_process_group(self.app)
        for emulator in self.emulators.values():
            emulator.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the child binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def default_data_dir() -> Path:
    """Next to the normal data dir, never inside it."""
    return load_settings(env={}).data_dir.with_name("stemdeck-sandbox")


def start_emulators(latency_s: float) -> tuple[dict[str, Emulator], dict[str, str]]:
    """Every emulator on a free port, and the variables that point the adapters at them."""
    started: dict[str, Emulator] = {}
    env: dict[str, str] = {}
    try:
        for name, target in EMULATORS.items():
            module, _, cls_name = target.partition(":")
            cls = getattr(importlib.import_module(module), cls_name)
            emulator: Emulator = cls(latency_s=latency_s)
            env[keys.env_var(name, "BASE_URL")] = emulator.start()
            started[name] = emulator
            env[keys.env_var(name)] = emulator.api_key
    except BaseException:
        for emulator in started.values():
            emulator.stop()
        raise
    kie: Any = started["kie"]
    env[keys.env_var("kie", "UPLOAD_BASE_URL")] = kie.upload.base_url
    env[keys.env_var("kie", "WEBHOOK_HMAC_KEY")] = kie.webhook_secret
    env[keys.env_var("musicapi", "POLL_INTERVAL_S")] = MUSICAPI_POLL_S
    return started, env


def app_env(emulator_env: Mapping[str, str], data_dir: Path, file_port: int) -> dict[str, str]:
    """The app's environment on top of the emulators': sandbox label, data dir, file server."""
    return {
        **emulator_env,
        SANDBOX_FLAG: "1",
        "STEMDECK_DATA_DIR": str(data_dir),
        public_files.ENV_HOST: "127.0.0.1",
        public_files.ENV_PORT: str(file_port),
        public_files.ENV_BASE_URL: f"http://127.0.0.1:{file_port}",
    }


def start_app(env: Mapping[str, str], port: int) -> subprocess.Popen[bytes]:
    """Streamlit in its own session, so stopping it reaches every process it spawned."""
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, start_new_session=True)


def start(
    *,
    latency_s: float = 3.0,
    app_port: int | None = 8501,
    data_dir: Path | None = None,
) -> Sandbox:
    """Emulators, then (unless ``app_port`` is None) the app wired to them."""
    emulators, env = start_emulators(latency_s)
    data_dir = data_dir or default_data_dir()
    env = app_env(env, data_dir, free_port())
    sandbox = Sandbox(emulators, env)
    if app_port is not None:
        try:
            sandbox.app = start_app(env, app_port)
        except BaseException:
            sandbox.stop()
            raise
        sandbox.app_url = f"http://127.0.0.1:{app_port}"
    return sandbox


def describe(sandbox: Sandbox) -> str:
    """What is running, and the variables to reuse it from another shell (e.g. the CLI)."""
    lines = ["StemDeck sandbox — fake providers, no keys, no network, no charges.", ""]
    for name, emulator in sandbox.emulators.items():
        lines.append(f"  {name:<15} {emulator.base_url}")
    lines.append(f"  {'file server':<15} {sandbox.env[public_files.ENV_BASE_URL]}")
    lines.append(f"  {'data dir':<15} {sandbox.env['STEMDECK_DATA_DIR']}")
    if sandbox.app_url and sandbox.app is not None:
        lines += ["", f"App: {sandbox.app_url}  (labelled Sandbox; pid {sandbox.app.pid})"]
    lines += ["", "Environment (for the CLI in another shell):"]
    lines += [f"export {name}={value}" for name, value in sorted(sandbox.env.items())]
    lines += ["", "Sandbox ready. Press Ctrl-C to stop everything."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Every provider emulator plus the StemDeck app wired to them: no key, "
        "no network, no charges.",
    )
    parser.add_argument("--port", type=int, default=8501, help="the app's port (default 8501)")
    parser.add_argument("--latency", type=float, default=3.0, help="seconds per emulated job")
    parser.add_argument("--data-dir", type=Path, help="the sandbox's own data dir")
    parser.add_argument("--no-app", action="store_true", help="run only the emulators")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    sandbox = start(
        latency_s=args.latency,
        app_port=None if args.no_app else args.port,
        data_dir=args.data_dir,
    )
    status = 0
    try:
        print(describe(sandbox), flush=True)
        while sandbox.app is None or sandbox.app.poll() is None:
            time.sleep(0.5)
        status = sandbox.app.returncode or 0
        print(f"The app exited ({status}); stopping the emulators.", file=sys.stderr)
    except KeyboardInterrupt:
        print("\nStopping the sandbox…", file=sys.stderr)
    finally:
        sandbox.stop()
    return status


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _end_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the child's own process group, SIGKILL if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


if __name__ == "__main__":
    sys.exit(main())
