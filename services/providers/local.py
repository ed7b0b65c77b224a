"""The built-in local provider: no key, no network, the engine in :mod:`services.engine`.

The input is decoded as a stream and separated chunk by chunk; each stem is written to a float
WAV as chunks come out, so a 20-minute track never sits in memory whole.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import soundfile as sf

from services import engine
from services.audio import decode
from services.config import Settings
from services.engine.modes import MODE_STEMS
from services.pricing.table import estimate_request
from services.progress import ProgressEvent, scaled
from services.providers.base import (
    Capabilities,
    Estimate,
    ModeSpec,
    RunContext,
    SeparatedStem,
    SeparationRequest,
)

BLOCK_FRAMES = 10 * decode.SAMPLE_RATE
MODEL_SHARE = 0.03  # progress share of the (first-time) model load
# Real-time factors (audio seconds per wall second), 3-minute input, 2 CPU cores, measured by
# bench/engine_speed.py on a quiet machine at the end of session 2 (14.9 / 9.4 / 7.8; figures in
# bench/README.md), rounded down. Estimates, not promises.
REALTIME_FACTOR: dict[str, float] = {"2": 14.0, "4": 9.0, "6": 7.5}
PROVIDER_STEM = {"instrumental": "accompaniment"}  # Spleeter's own name, kept for transparency

# Quality figures: mean SDR on the benchmark excerpts, measured by bench/quality.py.
_NEURAL = "Vocals: neural (Spleeter 2-stem U-Net + Wiener refinement), ≈10.1 dB SDR."
MODES = (
    ModeSpec(
        "2",
        "2 stems · vocals / instrumental",
        MODE_STEMS["2"],
        "Neural: Spleeter 2-stem U-Net with full-band masks and one multichannel Wiener pass; "
        "the two stems sum to the mix. Measured on the benchmark excerpts (6–8 s clips): vocals "
        "≈ 10.1 dB SDR, instrumental ≈ 12.9 dB (plain Spleeter: 9.4 / 12.1). "
        f"About {REALTIME_FACTOR['2']:g}× real time.",
    ),
    ModeSpec(
        "4",
        "4 stems · vocals / drums / bass / other",
        MODE_STEMS["4"],
        f"{_NEURAL} Drums, bass and other: signal processing on the instrumental "
        "(harmonic/percussive split, low band for bass) — rough, with bleed between them: "
        f"≈ 4.5 / 3.3 / 3.8 dB SDR. About {REALTIME_FACTOR['4']:g}× real time.",
    ),
    ModeSpec(
        "6",
        "6 stems · + piano / guitar",
        MODE_STEMS["6"],
        f"{_NEURAL} Drums/bass/other as in 4 stems. Piano and guitar: spectral heuristics "
        "only — very rough, unmeasured (no references); they also pick up other instruments, "
        f"even on tracks without piano or guitar. About {REALTIME_FACTOR['6']:g}× real time.",
    ),
)


class LocalProvider:
    """:class:`~services.providers.base.SeparationProvider` for the built-in engine."""

    name = "local"

    def __init__(self, settings: Settings, options: engine.EngineOptions | None = None) -> None:
        self.settings = settings
        self.options = options  # None: the engine's defaults; tests and bench pass small chunks
        self.capabilities = Capabilities(
            display_name="Local (built-in)",
            modes=MODES,
            input_kinds=("file", "url"),
            max_duration_s=settings.max_duration_s,
            needs_key=False,
            pricing_unit="free",
            description="Runs on this machine: free, private, no key or network needed.",
        )

    def estimate(self, request: SeparationRequest) -> Estimate:
        return estimate_request(self.name, request, self.settings)

    def run(self, request: SeparationRequest, ctx: RunContext) -> list[SeparatedStem]:
        self.capabilities.mode(request.mode)  # KeyError for an unknown mode: a caller bug
        engine.set_threads(self.settings.torch_threads)
        ctx.progress(ProgressEvent(0.0, "Loading model"))
        engine.get_model()
        raw = ctx.workspace / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        stems = MODE_STEMS[request.mode]
        paths = {stem: raw / f"{stem}.wav" for stem in stems}
        total = max(1, round(request.duration_s * decode.SAMPLE_RATE))
        with contextlib.ExitStack() as stack:
            blocks = stack.enter_context(
                contextlib.closing(decode.iter_blocks(request.input_path, BLOCK_FRAMES))
            )
            writers = {stem: stack.enter_context(_wav_writer(path)) for stem, path in paths.items()}
            progress = scaled(ctx.progress, MODEL_SHARE, 1.0)
            for out in engine.separate_stream(
                blocks, request.mode, total, progress, self.options or engine.DEFAULT_OPTIONS
            ):
                for stem, data in out.items():
                    writers[stem].write(data)
        return [SeparatedStem(s, PROVIDER_STEM.get(s, s), paths[s]) for s in stems]


def _wav_writer(path: Path) -> sf.SoundFile:
    return sf.SoundFile(
        path, "w", samplerate=decode.SAMPLE_RATE, channels=2, subtype="FLOAT", format="WAV"
    )
