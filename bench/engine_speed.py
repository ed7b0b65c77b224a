"""Speed and memory of the local engine: real-time factor and peak RSS per mode and length.

Each measurement runs in its own subprocess so peak RSS is per run. The input is the benchmark
mixtures tiled to length (or a synthetic signal when the data folder is absent), written once as
a 16-bit WAV. The "local" rows run :class:`LocalProvider` exactly as a job does (stream decode,
chunked separation, float WAV writing); the baseline rows are plain Spleeter inference on the whole
decoded track at once (no chunking, 11 kHz cut, 512-frame padding) and the local engine before
its Wiener refinement, both in the same run. "audio s/CPU s" divides by the process's CPU time;
on a shared machine it is steadier than wall time (record the load average printed on top).

    python bench/engine_speed.py [--lengths 180 600] [--modes 2 4 6] [--threads N] [--data DIR]
                                 [--baseline OTHER_CHECKOUT] [--no-reference]

``--baseline`` names another copy of this repository (e.g. the previous commit, exported to a
temp folder): each "local" row is then preceded by the same run of that copy's engine, so old
and new are measured interleaved, under the same machine load. The new/old ratios of the
real-time factor and of CPU time are printed; on a busy machine the CPU ratio is the steadier.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import DEFAULT_DATA, ROOT, track_dirs

SR = 44100
LABELS = {
    "plain": "plain Spleeter (whole)",
    "local-no-wiener": "local, no Wiener (v1)",
    "local": "local (chunked)",
    "baseline": "previous (baseline)",
}


def make_input(path: Path, seconds: float, data: Path) -> Path:
    """Tile the benchmark mixtures (real music) to ``seconds``; synthetic if there are none."""
    dirs = track_dirs(data) if data.is_dir() else []
    if dirs:
        material = np.concatenate([sf.read(d / "mixture.wav", dtype="float32")[0] for d in dirs])
    else:
        t = np.arange(30 * SR) / SR
        rng = np.random.default_rng(0)
        tone = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t)))
        material = np.stack([tone, tone], 1) + 0.05 * rng.standard_normal((len(t), 2))
    frames = int(seconds * SR)
    with sf.SoundFile(path, "w", SR, 2, "PCM_16") as out:
        for start in range(0, frames, len(material)):
            out.write(material[: frames - start])
    return path


def _variants():
    from services import engine

    return {
        "local": None,
        "local-no-wiener": engine.EngineOptions(
            mask_exponent=2.0, wiener_iterations=0, min_segment=64, pad_mode="zero"
        ),
    }


def child(variant: str, mode: str, path: Path, threads: int) -> dict:
    """One measurement inside a fresh process; returns timings and peak RSS."""
    from services import engine
    from services.audio import decode
    from services.config import Settings
    from services.progress import ignore
    from services.providers.base import RunContext, SeparationRequest
    from services.providers.local import LocalProvider

    engine.set_threads(threads)
    engine.get_model()
    seconds = sf.info(path).duration
    start = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = start.ru_utime + start.ru_stime
    t0 = time.perf_counter()
    if variant == "plain":  # whole track in memory
        engine.separate(decode.load(path), mode, ignore, engine.SPLEETER_BASELINE)
    else:
        options = _variants()[variant]
        with tempfile.TemporaryDirectory() as work:
            request = SeparationRequest(path, "bench", seconds, mode)
            provider = LocalProvider(Settings(torch_threads=threads), options)
            provider.run(request, RunContext(Path(work), ignore))
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - cpu0
    return {
        "wall_s": wall,
        "rtf": seconds / wall,
        "cpu_rtf": seconds / cpu,
        "rss_mb": usage.ru_maxrss / 1024,
    }


def measure(variant: str, mode: str, path: Path, threads: int, baseline: Path | None) -> dict:
    """Run one measurement in a fresh process; ``baseline`` runs that checkout's "local"."""
    root = baseline if variant == "baseline" and baseline else ROOT
    script = root / "bench" / Path(__file__).name
    child_variant = "local" if variant == "baseline" else variant
    cmd = [sys.executable, str(script), "--child", child_variant, mode, str(path)]
    cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=root)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[180, 600])
    parser.add_argument("--modes", nargs="+", default=["2", "4", "6"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--baseline", type=Path, help="another checkout to measure interleaved")
    parser.add_argument(
        "--no-reference", dest="reference", action="store_false", help="skip the baseline rows"
    )
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "MODE", "PATH"))
    args = parser.parse_args()
    if args.child:
        variant, mode, path = args.child
        print(json.dumps(child(variant, mode, Path(path), args.threads)))
        return
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"cores: {os.cpu_count()}  torch threads: {args.threads or 'default'}  load avg: {load}")
    print(
        f"{'variant':<22}{'mode':>5}{'audio':>8}{'wall s':>9}{'× real time':>13}"
        f"{'audio s/CPU s':>15}{'peak RSS MB':>13}{'new/old wall':>14}{'new/old CPU':>13}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {s: make_input(Path(tmp) / f"in_{int(s)}.wav", s, args.data) for s in args.lengths}
        shortest = min(args.lengths)
        runs = [("plain", "2", shortest), ("local-no-wiener", "2", shortest)]
        runs = runs if args.reference else []
        for s in args.lengths:
            for m in args.modes:
                runs += [("baseline", m, s)] if args.baseline else []
                runs.append(("local", m, s))
        previous: dict | None = None
        for variant, mode, seconds in runs:
            r = measure(variant, mode, inputs[seconds], args.threads, args.baseline)
            ratio = ""
            if variant == "local" and previous:
                gains = (r["rtf"] / previous["rtf"], r["cpu_rtf"] / previous["cpu_rtf"])
                ratio = f"{gains[0]:>14.2f}{gains[1]:>13.2f}"
            previous = r if variant == "baseline" else None
            audio = f"{seconds / 60:g} min"
            print(
                f"{LABELS[variant]:<22}{mode:>5}{audio:>8}{r['wall_s']:>9.1f}{r['rtf']:>13.1f}"
                f"{r['cpu_rtf']:>15.1f}{r['rss_mb']:>13.0f}{ratio}",
                flush=True,
            )


if __name__ == "__main__":
    main()
