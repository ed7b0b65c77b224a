"""Small real providers for the job-system tests, and the registry tests that use them.

``BandSplitProvider`` implements the provider protocol for real: it splits the input into a low
and a high band (which sum to the mix) and writes them as float WAVs, reporting progress as it
goes. Variants are slow (for cancel and kill tests), fail with a typed error, or crash. They let
the store/worker/runner tests run without the neural engine.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.config import Settings, load_settings
from services.errors import ProviderUnavailable
from services.inputs import InputInfo
from services.jobs.model import JobSpec
from services.progress import ProgressEvent
from services.providers.base import (
    Capabilities,
    Estimate,
    ModeSpec,
    RunContext,
    SeparatedStem,
    SeparationProvider,
    SeparationRequest,
)
from services.providers.registry import PROVIDERS, Registry, UnknownProvider
from tests.audiogen import mix, tone, write

ROOT = Path(__file__).resolve().parents[1]
CROSSOVER_HZ = 500.0
RATE = 44100
WAIT_S = 60.0  # generous: only a hung job ever reaches it


def split_bands(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Low band by an FFT brick-wall mask; high = mix − low, so the two sum to the mix."""
    spectrum = np.fft.rfft(audio, axis=0)
    freqs = np.fft.rfftfreq(audio.shape[0], 1.0 / rate)
    spectrum[freqs >= CROSSOVER_HZ] = 0
    low = np.fft.irfft(spectrum, n=audio.shape[0], axis=0).astype(np.float32)
    return low, (audio - low).astype(np.float32)


class BandSplitProvider:
    """A real two-band "separator": bass (low band) and other (high band)."""

    name = "bands"
    steps = 8
    step_delay_s = 0.0
    capabilities = Capabilities(
        display_name="Band split (test)",
        modes=(ModeSpec("2", "Low / high", ("bass", "other"), "FFT crossover at 500 Hz"),),
        pricing_unit="free",
    )

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def estimate(self, request: SeparationRequest) -> Estimate:
        return Estimate(credits=0.0, seconds=request.duration_s / 100)

    def run(self, request: SeparationRequest, ctx: RunContext) -> list[SeparatedStem]:
        ctx.remember("thread", threading.current_thread().name)
        if "remote_id" in ctx.facts:  # what a remote provider does: resume, never pay twice
            ctx.remember("resumed", ctx.facts["remote_id"])
        audio, rate = sf.read(request.input_path, dtype="float32", always_2d=True)
        for step in range(self.steps):
            ctx.progress(ProgressEvent(step / self.steps, "splitting bands"))
            time.sleep(self.step_delay_s)
        low, high = split_bands(audio, rate)
        raw = ctx.workspace / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        stems = []
        for stem, provider_stem, data in (("other", "high", high), ("bass", "low", low)):
            path = raw / f"{stem}.wav"
            sf.write(path, data, rate, subtype="FLOAT")
            stems.append(SeparatedStem(stem, provider_stem, path))
        ctx.progress(ProgressEvent(1.0, "bands split"))
        return stems


class SlowProvider(BandSplitProvider):
    """About a minute of work in small steps: long enough to cancel or kill mid-job."""

    name = "slow"
    steps = 1200
    step_delay_s = 0.05


class FailingProvider(BandSplitProvider):
    name = "failing"

    def run(self, request: SeparationRequest, ctx: RunContext) -> list[SeparatedStem]:
        ctx.progress(ProgressEvent(0.1, "calling the service"))
        raise ProviderUnavailable("The band service is down; try again later.")


class CrashingProvider(BandSplitProvider):
    name = "crashing"
    SECRET = "boom-internal-detail-4242"

    def run(self, request: SeparationRequest, ctx: RunContext) -> list[SeparatedStem]:
        ctx.progress(ProgressEvent(0.1, "about to crash"))
        raise RuntimeError(self.SECRET)


def registry_of(**entries: type) -> Registry:
    """A registry whose entries point at classes of this module by ``module:Class``."""
    return Registry({name: f"{cls.__module__}:{cls.__name__}" for name, cls in entries.items()})


TEST_PROVIDERS = registry_of(
    bands=BandSplitProvider, slow=SlowProvider, failing=FailingProvider, crashing=CrashingProvider
)


def write_tone(path: Path, seconds: float = 1.5, low_hz: float = 110.0, seed: int = 0) -> Path:
    """A stereo test signal with energy in both bands (different ``seed`` → different hash)."""
    signal = mix(tone(low_hz, seconds, amp=0.4), tone(3000.0, seconds, amp=0.2))
    noise = 0.01 * np.random.default_rng(seed).standard_normal(signal.shape)
    return write(path, signal + noise)


def spec_for(stored: InputInfo, provider: str = "bands", **changes: object) -> JobSpec:
    values = {
        "input_hash": stored.hash,
        "input_name": stored.name,
        "duration_s": stored.info.duration_s,
        "provider": provider,
        "mode": "2",
        "export": {"format": "flac", "bit_depth": 24},
        **changes,
    }
    return JobSpec(**values)  # type: ignore[arg-type]


def wait_until(predicate, timeout_s: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_band_split_sums_to_the_mix() -> None:
    rng = np.random.default_rng(1)
    audio = rng.standard_normal((4096, 2)).astype(np.float32)
    low, high = split_bands(audio, RATE)
    assert np.allclose(low + high, audio, atol=1e-5)
    assert 0 < np.abs(low).sum() < np.abs(audio).sum()


def test_test_providers_satisfy_the_protocol(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={"data_dir": tmp_path})
    for name in TEST_PROVIDERS.names():
        assert isinstance(TEST_PROVIDERS.get(name, settings), SeparationProvider)


def test_registry_builds_once_per_settings_and_is_thread_safe(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={"data_dir": tmp_path})
    registry = registry_of(bands=BandSplitProvider)
    seen: list[object] = []
    threads = [
        threading.Thread(target=lambda: seen.append(registry.get("bands", settings)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(p) for p in seen}) == 1
    other = load_settings(env={}, overrides={"data_dir": tmp_path / "other"})
    assert registry.get("bands", other) is not seen[0]


def test_unknown_provider_is_a_clear_error(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={"data_dir": tmp_path})
    with pytest.raises(UnknownProvider, match=r"Unknown provider 'nope' \(available: bands\)"):
        registry_of(bands=BandSplitProvider).get("nope", settings)


def test_default_registry_imports_providers_lazily() -> None:
    """Listing providers must not import them (the local one pulls in torch)."""
    code = (
        "import sys; from services.providers import provider_names; "
        "assert 'local' in provider_names(); "
        "assert 'services.providers.local' not in sys.modules; "
        "assert 'torch' not in sys.modules"
    )
    assert "local" in PROVIDERS
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
