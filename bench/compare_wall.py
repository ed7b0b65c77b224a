"""Wall time of a 5-lane comparison against its slowest single lane, over the sandbox.

Starts every provider emulator (as ``python -m sandbox --no-app`` does) with ``--latency``
seconds per job, renders the bundled example song at ``--seconds`` length, then

1. runs each lane alone, one after another (``fresh``: nothing comes from the cache);
2. runs all lanes as one comparison (``Comparisons.start``), and times it until every lane
   is done; then the quality figures of every lane.

It prints each lane's time alone and inside the comparison, the slowest single lane, the sum,
and the comparison's wall time (the Compare page's promise: close to the slowest, not the sum).

    python bench/compare_wall.py [--seconds 24] [--latency 8] [--remote-workers 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.__main__ import app_env, free_port, start_emulators
from services.audio.formats import ExportFormat
from services.compare import Comparisons, LaneSpec
from services.config import load_settings
from services.examples import EXAMPLES, SR, render
from services.inputs import ingest_path
from services.jobs.model import JobSpec
from services.runtime import Runtime

LANES = (
    LaneSpec("local", "4"),
    LaneSpec("musicgpt", "4"),
    LaneSpec("aistemsplitter", "4"),
    LaneSpec("kie", "separate_vocal"),
    LaneSpec("musicapi", "basic"),
)
WAIT_S = 900.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=24.0, help="song length")
    parser.add_argument("--latency", type=float, default=8.0, help="emulator seconds per job")
    parser.add_argument("--remote-workers", type=int, default=6)
    args = parser.parse_args()

    emulators, emulator_env = start_emulators(args.latency)
    tmp = Path(tempfile.mkdtemp(prefix="stemdeck-compare-bench-"))
    os.environ.update(app_env(emulator_env, tmp / "data", free_port()))
    os.environ["STEMDECK_REMOTE_WORKERS"] = str(args.remote_workers)
    settings = load_settings()
    runtime = Runtime.start(settings)
    try:
        song = tmp / "bench-song.wav"
        stems = render(dataclasses.replace(EXAMPLES[0], seconds=args.seconds))
        sf.write(song, sum(stems.values()), SR, subtype="PCM_16")
        stored = ingest_path(song, settings)
        fmt = ExportFormat("wav")
        print(
            f"song {args.seconds:.0f} s · emulator latency {args.latency:g} s · "
            f"remote workers {settings.remote_workers} · local workers "
            f"{settings.local_workers} · load {os.getloadavg()[0]:.1f}"
        )

        alone: list[float] = []
        for lane in LANES:
            spec = JobSpec.for_input(stored, lane.provider, lane.mode, fmt, lane.stems)
            began = time.monotonic()
            job = runtime.wait(runtime.submit(spec, fresh=True).id, WAIT_S)
            alone.append(time.monotonic() - began)
            if job.error:
                print(f"  {lane.label}: {job.status} {job.error}")

        comparisons = Comparisons(runtime)
        began = time.monotonic()
        comparison = comparisons.start(stored, LANES, fmt, fresh=True)
        for job_id in filter(None, comparison.job_ids):
            runtime.wait(job_id, WAIT_S)
        wall = time.monotonic() - began
        began = time.monotonic()
        for index in range(len(LANES)):
            comparisons.figures(comparison, index)
        figures_s = time.monotonic() - began

        print(f"{'lane':<34}{'alone s':>9}{'in comparison s':>17}  status")
        jobs = comparisons.jobs(comparison)
        for index, (seconds, job) in enumerate(zip(alone, jobs, strict=True)):
            label = comparisons.label(comparison, index)
            if job is None or job.finished_at is None:
                error = comparisons.lane_error(comparison, index)
                print(f"{label:<34}{seconds:>9.1f}{'—':>17}  {error}")
                continue
            inside = job.finished_at - comparison.created_at
            print(f"{label:<34}{seconds:>9.1f}{inside:>17.1f}  {job.status}")
        print(f"slowest single lane   {max(alone):7.1f} s")
        print(f"sum of lanes          {sum(alone):7.1f} s")
        print(
            f"5-lane comparison     {wall:7.1f} s  "
            f"({wall / max(alone):.2f}× the slowest, {wall / sum(alone):.2f}× the sum)"
        )
        print(f"figures, all lanes    {figures_s:7.1f} s")
    finally:
        runtime.shutdown()
        for emulator in emulators.values():
            emulator.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
