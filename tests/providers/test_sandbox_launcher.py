"""Sandbox mode: every emulator answers with the variables the launcher hands the app, jobs
complete through the real runtime, and ``python -m sandbox`` stops everything it started."""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.__main__ import EMULATORS, ROOT, Sandbox, free_port, start
from services import cli, public_files
from services.audio.formats import ExportFormat
from services.config import load_settings
from services.inputs import ingest_path
from services.jobs.model import JobSpec, JobStatus
from services.providers.registry import Registry
from services.runtime import Runtime

pytest_plugins = ("tests.providers.emulated",)
pytestmark = pytest.mark.usefixtures("clean_env")

READY = "Sandbox ready"
STARTUP_S = 90.0


def probes(env: dict[str, str]) -> dict[str, Callable[[httpx.Client, bool], int]]:
    """Per emulator: one cheap authenticated (or, with ``auth=False``, anonymous) call."""

    def bearer(name: str, auth: bool) -> dict[str, str]:
        return {"Authorization": f"Bearer {env[f'{name}_API_KEY']}"} if auth else {}

    return {
        "aistemsplitter": lambda c, a: (
            c.get(
                env["AISTEMSPLITTER_BASE_URL"] + "/credits", headers=bearer("AISTEMSPLITTER", a)
            ).status_code
        ),
        "musicgpt": lambda c, a: (
            c.get(
                env["MUSICGPT_BASE_URL"] + "/byId",
                params={"conversionType": "EXTRACTION", "task_id": "none"},
                headers={"Authorization": env["MUSICGPT_API_KEY"]} if a else {},
            ).status_code
        ),
        "soundverse": lambda c, a: (
            c.post(
                env["SOUNDVERSE_BASE_URL"] + "/v1/generate/stem-separation/vocals",
                json={},
                headers=bearer("SOUNDVERSE", a),
            ).status_code
        ),
        "kie": lambda c, a: c.get(
            env["KIE_BASE_URL"] + "/api/v1/chat/credit", headers=bearer("KIE", a)
        ).json()["code"],
        "musicapi": lambda c, a: (
            c.get(
                env["MUSICAPI_BASE_URL"] + "/get-credits", headers=bearer("MUSICAPI", a)
            ).status_code
        ),
    }


# authenticated answer (key accepted) and anonymous answer (refused), per emulator
EXPECTED = {
    "aistemsplitter": (200, 401),
    "musicgpt": (404, 401),
    "soundverse": (422, 401),
    "kie": (200, 401),
    "musicapi": (200, 401),
}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    running = start(latency_s=0.1, app_port=None, data_dir=tmp_path / "sandbox-data")
    try:
        yield running
    finally:
        running.stop()


def test_every_emulator_answers_with_the_variables_the_app_gets(sandbox, tmp_path) -> None:
    env = sandbox.env
    assert set(sandbox.emulators) == set(EMULATORS) == set(EXPECTED)
    for name in EXPECTED:
        assert env[f"{name.upper()}_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["STEMDECK_SANDBOX"] == "1"
    assert env["STEMDECK_DATA_DIR"] == str(tmp_path / "sandbox-data")
    port = env[public_files.ENV_PORT]
    assert env[public_files.ENV_BASE_URL] == f"http://127.0.0.1:{port}"
    assert env["KIE_WEBHOOK_HMAC_KEY"] == sandbox.emulators["kie"].webhook_secret
    with httpx.Client(timeout=10) as client:
        for name, probe in probes(env).items():
            assert (probe(client, True), probe(client, False)) == EXPECTED[name], name
        upload = client.post(
            env["KIE_UPLOAD_BASE_URL"] + "/api/file-base64-upload",
            json={"base64Data": "AAEC", "fileName": "x.bin"},
            headers={"Authorization": f"Bearer {env['KIE_API_KEY']}"},
        )
        assert upload.json()["data"]["fileSize"] == 3
    sandbox.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(env["KIE_BASE_URL"] + "/api/v1/chat/credit")


@pytest.mark.parametrize(
    ("provider", "mode", "stems"),
    [
        ("soundverse", "all-stems", 6),
        ("kie", "separate_vocal", 2),
        ("musicapi", "basic", 2),
    ],
)
def test_a_job_completes_through_the_runtime_in_sandbox_mode(
    sandbox, song, monkeypatch, provider, mode, stems
) -> None:
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    registry = Registry(
        {
            "soundverse": "services.providers.soundverse:SoundverseProvider",
            "kie": "services.providers.kie:KieProvider",
            "musicapi": "services.providers.musicapi:MusicAPIProvider",
        }
    )
    runtime = Runtime.start(settings, registry)
    files = public_files.for_settings(settings)
    try:
        stored = ingest_path(song, settings)  # an upload: URL-only providers need the file server
        spec = JobSpec(
            input_hash=stored.hash,
            input_name=stored.name,
            duration_s=stored.info.duration_s,
            provider=provider,
            mode=mode,
            export=ExportFormat("wav").as_options(),
        )
        job = runtime.wait(runtime.submit(spec).id, timeout_s=60)
        assert job.status is JobStatus.SUCCEEDED, job.error
        assert len(job.artifacts) == stems
        assert all(runtime.artifact_path(job, a.file).is_file() for a in job.artifacts)
    finally:
        runtime.shutdown()
        files.stop()


def test_the_cli_splits_with_a_provider_in_sandbox_mode(sandbox, song, monkeypatch, tmp_path):
    for name, value in sandbox.env.items():
        monkeypatch.setenv(name, value)
    registry = Registry({"kie": "services.providers.kie:KieProvider"})
    out, err = io.StringIO(), io.StringIO()
    argv = ["split", str(song), "--provider", "kie", "--mode", "split_stem"]
    try:
        status = cli.main([*argv, "--out", str(tmp_path / "stems")], registry, out, err)
    finally:
        public_files.for_settings(load_settings()).stop()
    assert status == 0, err.getvalue()
    lines = [line.split("\t") for line in out.getvalue().splitlines()]
    assert {"vocals", "vocals.backing", "bass"} <= {stem for stem, _path in lines}
    assert all(Path(path).is_file() for _stem, path in lines)


class Launcher:
    """``python -m sandbox …`` as a child process, its output collected line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandbox", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float = STARTUP_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.output):
            remaining = deadline - time.monotonic()
            assert remaining > 0, "\n".join(self.output)
            try:
                self.output.append(self.lines.get(timeout=min(remaining, 1.0)))
            except queue.Empty:
                assert self.process.poll() is None, "\n".join(self.output)

    def env(self) -> dict[str, str]:
        found = (re.fullmatch(r"export (\w+)=(.*)", line) for line in self.output)
        return {m[1]: m[2] for m in found if m}

    def app_pid(self) -> int | None:
        found = (re.search(r"pid (\d+)\)", line) for line in self.output)
        return next((int(m[1]) for m in found if m), None)

    def close(self) -> None:
        """Whatever happened, nothing this test started is left running."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        pid = self.app_pid()
        if pid is not None and _alive(pid):
            os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_python_m_sandbox_serves_until_ctrl_c(tmp_path) -> None:
    launcher = Launcher("--no-app", "--latency", "0.1", "--data-dir", str(tmp_path))
    try:
        launcher.wait_for(READY)
        env = launcher.env()
        assert set(EXPECTED) <= {k.removesuffix("_BASE_URL").lower() for k in env}
        with httpx.Client(timeout=10) as client:
            for name, probe in probes(env).items():
                assert probe(client, True) == EXPECTED[name][0], name
        launcher.process.send_signal(signal.SIGINT)
        assert launcher.process.wait(30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(env["MUSICAPI_BASE_URL"] + "/get-credits")
    finally:
        launcher.close()


def test_python_m_sandbox_runs_the_app_and_stops_it(tmp_path) -> None:
    port = free_port()
    launcher = Launcher("--port", str(port), "--latency", "0.1", "--data-dir", str(tmp_path))
    health = f"http://127.0.0.1:{port}/_stcore/health"
    try:
        launcher.wait_for(READY)
        pid = launcher.app_pid()
        assert pid is not None and f"App: http://127.0.0.1:{port}" in "\n".join(launcher.output)
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the app never became healthy"
            time.sleep(0.3)
        launcher.process.send_signal(signal.SIGTERM)
        assert launcher.process.wait(30) == 0
        assert not _alive(pid)
        with pytest.raises(httpx.ConnectError):
            httpx.get(health, timeout=2)
    finally:
        launcher.close()
