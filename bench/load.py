"""Load: N browser sessions split at once on one Streamlit server; is an idle session still served?

Starts ``streamlit run app.py`` on a fresh data dir with a bounded local pool
(``STEMDECK_LOCAL_WORKERS``, default 1), then drives one headless Chromium with N browser
contexts (real sessions: websocket, upload, widgets). Each session uploads its own generated
song (distinct content, so nothing is served from the result cache) and splits it into 2 stems
on the local engine, its session kept open until the job store says the job is terminal.
Meanwhile:
- an idle session reloads the History page over and over (time until it has rendered), and
  ``GET /_stcore/health`` is timed twice a second — the responsiveness a bystander sees;
- the RSS of the server's whole process tree is sampled (psutil) for the peak.
At the end the job store is read: how many jobs succeeded. Prints the figures.

    python3 bench/load.py --sessions 20 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.jobs.model import JobStatus  # noqa: E402
from services.jobs.store import JobStore  # noqa: E402
from tests.audiogen import bass_like, drum_like, mix, tone, vocal_like, write  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

STARTUP_S = 120.0
SAMPLE_EVERY_S = 0.5
IDLE_PAUSE_S = 1.0
IDLE_TIMEOUT_MS = 120_000


@dataclass
class LoadReport:
    sessions: int
    song_s: float
    succeeded: int = 0
    failed_sessions: list[str] = field(default_factory=list)
    wall_s: float = 0.0  # first session opened → last session saw its stems
    busy_s: float = 0.0  # first job queued → last job finished (from the job store)
    health_ms: list[float] = field(default_factory=list)
    idle_page_ms: list[float] = field(default_factory=list)
    peak_rss_bytes: int = 0
    idle_timeouts: int = 0  # idle page loads that took longer than IDLE_TIMEOUT_MS

    @property
    def jobs_per_min(self) -> float:
        return 60.0 * self.succeeded / self.busy_s if self.busy_s else 0.0

    @property
    def audio_per_wall_s(self) -> float:
        return self.succeeded * self.song_s / self.busy_s if self.busy_s else 0.0

    def lines(self) -> list[str]:
        return [
            f"sessions: {self.sessions}, song {self.song_s:.1f} s each, 2 stems, local engine",
            f"jobs finished: {self.succeeded}/{self.sessions} succeeded in {self.wall_s:.1f} s"
            + (
                f" (session errors: {'; '.join(self.failed_sessions)})"
                if self.failed_sessions
                else ""
            ),
            f"throughput (first job queued → last finished, {self.busy_s:.1f} s): "
            f"{self.jobs_per_min:.1f} jobs/min, "
            f"{self.audio_per_wall_s:.2f} audio s per wall s",
            f"idle session page load: {describe(self.idle_page_ms)}, "
            f"{self.idle_timeouts} over {IDLE_TIMEOUT_MS / 1000:.0f} s",
            f"GET /_stcore/health: {describe(self.health_ms)}",
            f"peak RSS of the server process tree: {self.peak_rss_bytes / 2**20:.0f} MiB",
        ]


def log(message: str) -> None:
    """Progress on stderr, so a long run shows where it is."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    return (
        f"p50 {statistics.median(samples):.0f} ms, p95 {percentile(samples, 0.95):.0f} ms, "
        f"max {max(samples):.0f} ms ({len(samples)} samples)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path, local_workers: int, log_path: Path
) -> tuple[subprocess.Popen, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "STEMDECK_DATA_DIR": str(data_dir),
        "STEMDECK_LOCAL_WORKERS": str(local_workers),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.fileWatcherType",
                "none",
                "--browser.gatherUsageStats",
                "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not become healthy")


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def sample(stop: threading.Event, url: str, pid: int, report: LoadReport) -> None:
    """Health latency and tree RSS every half second until ``stop``."""
    proc = psutil.Process(pid)
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            report.peak_rss_bytes = max(report.peak_rss_bytes, tree_rss(proc))
            started = time.perf_counter()
            try:
                client.get(f"{url}/_stcore/health")
                report.health_ms.append(1000 * (time.perf_counter() - started))
            except httpx.HTTPError:
                report.health_ms.append(30_000.0)
            stop.wait(SAMPLE_EVERY_S)


def make_songs(folder: Path, count: int, seconds: float) -> list[Path]:
    """Distinct songs: a different lead pitch per session."""
    songs = []
    for i in range(count):
        audio = mix(
            vocal_like(seconds, amp=0.3),
            drum_like(seconds, amp=0.35),
            bass_like(seconds, amp=0.3),
            tone(300.0 + 17 * i, seconds, amp=0.05),
        )
        songs.append(write(folder / f"Load Song {i:02d}.wav", audio))
    return songs


def job_status(database: Path, input_name: str) -> JobStatus | None:
    """The status of the job for ``input_name`` in the server's store (None: not queued yet)."""
    if not database.exists():
        return None
    store = JobStore(database)
    try:
        found = [j for j in store.list(limit=1000) if j.spec.input_name == input_name]
    finally:
        store.close()
    return found[0].status if found else None


async def split_session(browser, url: str, song: Path, database: Path, timeout_s: float) -> None:
    """Upload and split in a real browser session, kept open until the job is terminal.

    Completion is read from the job store rather than the page: the Results page's progress
    fragment redraws on its own timer, which under heavy load says more about the browser's
    share of CPU than about the server.
    """
    timeout_ms = timeout_s * 1000
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        page = await context.new_page()
        page.set_default_timeout(timeout_ms)
        await page.goto(url)
        await page.get_by_text("Split a song into stems").wait_for()
        await page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(song))
        await page.locator('[data-testid="stAudio"]').first.wait_for()
        await page.get_by_text("2 stems", exact=False).first.click()
        await page.locator(".st-key-split-run button").click()
        deadline = time.monotonic() + timeout_s
        while not ((status := job_status(database, song.name)) and status.terminal):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{song.name}: job not finished ({status})")
            await asyncio.sleep(1.0)
        log(f"{song.stem}: {status.value}")
    finally:
        await context.close()


async def idle_session(browser, url: str, done: asyncio.Event, report: LoadReport) -> None:
    """A bystander: reload History until the load is over, timing each full render."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    context = await browser.new_context()
    try:
        page = await context.new_page()
        page.set_default_timeout(IDLE_TIMEOUT_MS)
        while not done.is_set():
            started = time.perf_counter()
            try:
                await page.goto(f"{url}/history")
                await page.get_by_role("heading", name="History").first.wait_for()
            except PlaywrightTimeout:  # a figure (the page took over the timeout), not a crash
                report.idle_timeouts += 1
            report.idle_page_ms.append(1000 * (time.perf_counter() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), IDLE_PAUSE_S)
    finally:
        await context.close()


async def drive(
    url: str, songs: list[Path], database: Path, report: LoadReport, timeout_s: float
) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        done = asyncio.Event()
        idle = asyncio.create_task(idle_session(browser, url, done, report))
        started = time.monotonic()
        results = await asyncio.gather(
            *(split_session(browser, url, s, database, timeout_s) for s in songs),
            return_exceptions=True,
        )
        report.wall_s = time.monotonic() - started
        done.set()
        await idle
        report.failed_sessions = [
            f"{type(r).__name__}: {str(r).splitlines()[0][:120]}"
            for r in results
            if isinstance(r, BaseException)
        ]
        await browser.close()


def run_load(
    sessions: int,
    song_s: float = 3.0,
    local_workers: int = 1,
    timeout_s: float = 900.0,
    workdir: Path | None = None,
) -> LoadReport:
    """Run the whole load once and return its figures (the server is stopped afterwards)."""
    with tempfile.TemporaryDirectory(prefix="stemdeck-load-") as tmp:
        base = Path(workdir or tmp)
        data_dir = base / "data"
        songs = make_songs(base, sessions, song_s)
        report = LoadReport(sessions, song_s)
        proc, url = start_server(data_dir, local_workers, base / "streamlit.log")
        stop = threading.Event()
        sampler = threading.Thread(target=sample, args=(stop, url, proc.pid, report))
        sampler.start()
        try:
            asyncio.run(drive(url, songs, data_dir / "jobs.sqlite3", report, timeout_s))
        finally:
            stop.set()
            sampler.join()
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        store = JobStore(data_dir / "jobs.sqlite3")
        try:
            jobs = store.list(limit=10 * sessions)
        finally:
            store.close()
        done = [job for job in jobs if job.status is JobStatus.SUCCEEDED]
        report.succeeded = len(done)
        if done:
            report.busy_s = max(j.finished_at or 0.0 for j in done) - min(
                j.created_at for j in done
            )
        return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each song")
    parser.add_argument("--local-workers", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0, help="per session, seconds")
    args = parser.parse_args(argv)
    report = run_load(args.sessions, args.seconds, args.local_workers, args.timeout)
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
