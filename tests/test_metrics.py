"""Quality figures on constructed signals whose answers are known analytically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.metrics import (
    FIGURE_HELP,
    FLOOR_DB,
    FRAME,
    MAX_SECONDS,
    SEGMENT,
    lane_figures,
    sdr,
)
from tests.audiogen import SR, vocal_like

SECONDS = 5.0


@pytest.fixture
def wav(tmp_path: Path):
    def write(name: str, audio: np.ndarray) -> Path:
        path = tmp_path / f"{name}.wav"
        sf.write(path, audio.astype(np.float32), SR, subtype="FLOAT")
        return path

    return write


def noise(seed: int, seconds: float = SECONDS, level: float = 0.1) -> np.ndarray:
    """Independent stereo noise: unrelated to any other seed's, like two instruments."""
    return np.random.default_rng(seed).standard_normal((int(seconds * SR), 2)) * level


def scaled_to(part: np.ndarray, rest: np.ndarray, share: float) -> np.ndarray:
    """``part`` scaled so it is ``share`` of the energy of ``rest + part``."""
    return part * np.sqrt(share / (1 - share) * np.sum(rest**2) / np.sum(part**2))


def test_sdr_is_the_benchmark_definition() -> None:
    ref = noise(1)
    assert sdr(ref, ref + scaled_to(noise(2), ref, 0.5)) == pytest.approx(0.0, abs=1e-6)


def test_stems_that_sum_to_the_mix_have_no_residual_and_no_leakage(wav) -> None:
    a, b = noise(1), noise(2)
    figures = lane_figures(wav("mix", a + b), {"drums": wav("a", a), "bass": wav("b", b)})
    assert figures.residual_db is not None and figures.residual_db <= -60.0
    assert all(v < -30.0 for v in figures.leakage_db.values()), figures.leakage_db
    assert figures.vocal_in_instrumental_db is None  # no vocal stem
    assert figures.sdr_db == {}  # no references
    assert figures.seconds_analysed == pytest.approx(SECONDS)


def test_a_missing_stem_shows_in_the_residual(wav) -> None:
    a, b = noise(1), noise(2)
    figures = lane_figures(wav("mix", a + b), {"drums": wav("a", a)})
    assert figures.residual_db == pytest.approx(10 * np.log10(0.5), abs=0.2)


def test_ten_percent_of_another_stem_is_about_minus_20_db_of_leakage(wav) -> None:
    a, b = noise(1), noise(2)
    leaky = a + 0.1 * b  # 0.01/1.01 of its energy is a copy of b: -20.04 dB
    figures = lane_figures(wav("mix", a + b), {"drums": wav("a", leaky), "bass": wav("b", b)})
    assert figures.leakage_db["drums"] == pytest.approx(-20.04, abs=1.0)


def test_leakage_survives_a_delay_a_waveform_correlation_would_miss(wav) -> None:
    a, b = noise(1), noise(2)
    late = np.roll(b, 7, axis=0)  # 0.16 ms later: uncorrelated sample by sample
    figures = lane_figures(
        wav("mix", a + b), {"drums": wav("a", a + 0.1 * late), "bass": wav("b", b)}
    )
    assert figures.leakage_db["drums"] == pytest.approx(-20.04, abs=1.5)


def test_reference_plus_noise_at_a_known_snr_gives_that_sdr(wav) -> None:
    voice = vocal_like(SECONDS, seed=3).astype(np.float64)
    error = scaled_to(noise(4), voice, 1 / (1 + 10 ** (12.0 / 10)))  # SNR 12 dB
    estimate = voice + error
    figures = lane_figures(
        wav("mix", estimate), {"vocals": wav("est", estimate)}, {"vocals": wav("ref", voice)}
    )
    assert figures.sdr_db["vocals"] == pytest.approx(12.0, abs=0.1)


def test_vocal_bleed_at_minus_20_db_reads_as_minus_20_db(wav) -> None:
    voice, backing = vocal_like(SECONDS, seed=3).astype(np.float64) * 0.5, noise(5)
    instrumental = backing + scaled_to(voice, backing, 0.01)
    figures = lane_figures(
        wav("mix", voice + backing),
        {"vocals": wav("v", voice), "instrumental": wav("i", instrumental)},
    )
    assert figures.vocal_in_instrumental_db == pytest.approx(-20.0, abs=1.0)
    clean = lane_figures(
        wav("mix", voice + backing), {"vocals": wav("v", voice), "instrumental": wav("c", backing)}
    )
    assert clean.vocal_in_instrumental_db is not None and clean.vocal_in_instrumental_db < -30


def test_bleed_that_comes_and_goes_is_still_found(wav) -> None:
    """A separator's masks change over time: here the bleed flips sign every ~3 s, which a
    single fit over the whole track would average away."""
    seconds = 12.0
    voice = vocal_like(seconds, seed=3).astype(np.float64) * 0.5
    backing = noise(5, seconds)
    stretch = 2 * SEGMENT * FRAME
    sign = np.where((np.arange(len(voice)) // stretch) % 2 == 0, 1.0, -1.0)[:, None]
    instrumental = backing + sign * scaled_to(voice, backing, 0.01)
    figures = lane_figures(
        wav("mix", voice + backing),
        {"vocals": wav("v", voice), "instrumental": wav("i", instrumental)},
    )
    assert figures.vocal_in_instrumental_db == pytest.approx(-20.0, abs=1.5)


def test_the_instrumental_of_a_four_stem_lane_is_the_sum_of_its_other_stems(wav) -> None:
    voice = vocal_like(SECONDS, seed=3).astype(np.float64) * 0.5
    drums, bass = noise(6), noise(7)
    bleed = scaled_to(voice, drums + bass, 0.01)
    stems = {"vocals": wav("v", voice), "drums": wav("d", drums + bleed), "bass": wav("b", bass)}
    refs = {"vocals": wav("rv", voice), "drums": wav("rd", drums), "bass": wav("rb", bass)}
    figures = lane_figures(wav("mix", voice + drums + bass), stems, refs)
    assert figures.vocal_in_instrumental_db == pytest.approx(-20.0, abs=1.0)
    assert figures.sdr_db["bass"] > 100  # identical to its reference
    two = lane_figures(
        wav("mix", voice + drums + bass),
        {"vocals": wav("v", voice), "instrumental": wav("i", drums + bass)},
        refs,
    )
    assert two.sdr_db["instrumental"] > 100  # reference built from drums + bass


def test_only_the_first_minutes_are_read(wav, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.metrics.MAX_SECONDS", 2.0)
    a = noise(1)
    assert lane_figures(wav("mix", a), {"other": wav("a", a)}).seconds_analysed == 2.0
    assert MAX_SECONDS >= 60


def test_silence_and_help_texts() -> None:
    assert set(FIGURE_HELP) == {"sdr", "residual", "leakage", "vocal_in_instrumental"}
    assert all(len(text) < 160 and "\n" not in text for text in FIGURE_HELP.values())
    assert FLOOR_DB == -60.0
