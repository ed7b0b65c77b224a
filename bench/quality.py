"""Separation quality of the local engine: SDR per stem on real multitrack excerpts.

SDR = 10·log10(Σs² / Σ(s−ŝ)²) over the whole track (both channels). References are the
track's stem files; a missing stem is skipped; ``accompaniment`` is compared with the
instrumental estimate (mixture − vocals when the folder has no accompaniment file). Two
baselines are computed in the same run: the mixture itself as every estimate, and plain
Spleeter inference (11 kHz cut, no chunking, 512-frame padding). Tracks without vocals also
report vocal leakage: estimated-vocals energy relative to the mixture (lower is better).

    python bench/quality.py [--data ../shared/benchdata/real] [--methods ...] [--tile SECONDS]

``--tile`` repeats every mixture and its references to that length: the excerpts are shorter than
one network segment and one chunk, so only tiled inputs exercise whole segments and chunk borders.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import DEFAULT_DATA, sdr, track_dirs

from services import engine

STEMS = ("vocals", "accompaniment", "drums", "bass", "other")
LABEL = {"accompaniment": "accomp."}
Estimator = Callable[[np.ndarray], dict[str, np.ndarray]]


def _engine(mode: str, options: engine.EngineOptions = engine.DEFAULT_OPTIONS) -> Estimator:
    def run(mix: np.ndarray) -> dict[str, np.ndarray]:
        stems = engine.separate(mix, mode, options=options)
        # 2-stem: the engine's own instrumental; 4-stem: drums+bass+other (= mix − vocals).
        stems["accompaniment"] = stems.get("instrumental", mix - stems["vocals"])
        return stems

    return run


# Before mirror padding: short inputs zero-padded to a multiple of 64 frames.
_ZERO_PADDED = {"min_segment": 64, "pad_mode": "zero"}
METHODS: dict[str, Estimator] = {
    "mixture (baseline)": lambda mix: dict.fromkeys(STEMS, mix),
    "plain Spleeter (baseline)": _engine("2", engine.SPLEETER_BASELINE),
    "local 2-stem, no Wiener (first version)": _engine(
        "2", engine.EngineOptions(mask_exponent=2.0, wiener_iterations=0, **_ZERO_PADDED)
    ),
    "local 2-stem, zero padding (previous)": _engine("2", engine.EngineOptions(**_ZERO_PADDED)),
    "local 2-stem": _engine("2"),
    "local 4-stem, zero padding (previous)": _engine("4", engine.EngineOptions(**_ZERO_PADDED)),
    "local 4-stem": _engine("4"),
}


def references(track: Path, mix: np.ndarray) -> dict[str, np.ndarray]:
    refs = {
        s: sf.read(track / f"{s}.wav", dtype="float32")[0]
        for s in STEMS
        if (track / f"{s}.wav").is_file()
    }
    if "accompaniment" not in refs and "vocals" in refs:
        refs["accompaniment"] = mix - refs["vocals"]
    return refs


def _tile(audio: np.ndarray, seconds: float | None) -> np.ndarray:
    """``audio`` repeated (whole copies, then a cut one) to ``seconds``; unchanged without it."""
    if not seconds:
        return audio
    frames = int(seconds * 44100)
    return np.resize(audio, (frames, audio.shape[1]))


def _fmt(value: float | None) -> str:
    return f"{value:>10.2f}" if value is not None else f"{'–':>10}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--tile", type=float, help="repeat each track to this many seconds")
    parser.add_argument("--no-six", dest="six", action="store_false", help="skip the 6-stem table")
    args = parser.parse_args()
    tracks = track_dirs(args.data)
    if not tracks:
        raise SystemExit(f"no tracks (folders with mixture.wav) under {args.data}")
    scores: dict[str, dict[str, dict[str, float]]] = {m: {} for m in args.methods}
    leakage: dict[str, dict[str, float]] = {m: {} for m in args.methods}
    for track in tracks:
        raw = sf.read(track / "mixture.wav", dtype="float32")[0]
        refs = {s: _tile(r, args.tile) for s, r in references(track, raw).items()}
        mix = _tile(raw, args.tile)
        for method in args.methods:
            est = METHODS[method](mix)
            scores[method][track.name] = {s: sdr(r, est[s]) for s, r in refs.items() if s in est}
            if "vocals" not in refs and "vocals" in est and method != "mixture (baseline)":
                ratio = np.sum(est["vocals"].astype(np.float64) ** 2) / np.sum(
                    mix.astype(np.float64) ** 2
                )
                leakage[method][track.name] = float(10 * np.log10(max(ratio, 1e-20)))
    header = f"{'track':<38}" + "".join(f"{LABEL.get(s, s):>10}" for s in STEMS)
    means: dict[str, dict[str, float | None]] = {}
    for method in args.methods:
        print(f"\n## {method}  (SDR dB)\n{header}")
        for track, row in scores[method].items():
            print(f"{track:<38}" + "".join(_fmt(row.get(s)) for s in STEMS))
        means[method] = {}
        for s in STEMS:
            values = [row[s] for row in scores[method].values() if s in row]
            means[method][s] = float(np.mean(values)) if values else None
        print(f"{'mean':<38}" + "".join(_fmt(means[method][s]) for s in STEMS))
        for track, db in leakage[method].items():
            print(f"  vocal leakage on {track} (no vocals): {db:.1f} dB re mixture")
    print(f"\n## mean SDR (dB) per method over {len(tracks)} tracks\n{'method':<42}" + header[38:])
    for method in args.methods:
        print(f"{method:<42}" + "".join(_fmt(means[method][s]) for s in STEMS))
    if args.six:
        six_stem_shares(tracks)


def six_stem_shares(tracks: list[Path]) -> None:
    """No piano/guitar references exist here: show how much each stem takes, in dB re mix."""
    print("\n## local 6-stem: stem energy relative to the mixture (dB; no references)")
    names = engine.MODE_STEMS["6"]
    print(f"{'track':<38}" + "".join(f"{n:>10}" for n in names))
    for track in tracks:
        mix = sf.read(track / "mixture.wav", dtype="float32")[0]
        est = engine.separate(mix, "6")
        total = np.sum(mix.astype(np.float64) ** 2)
        row = [
            10 * np.log10(max(np.sum(est[n].astype(np.float64) ** 2) / total, 1e-20)) for n in names
        ]
        print(f"{track.name:<38}" + "".join(_fmt(v) for v in row))


if __name__ == "__main__":
    main()
