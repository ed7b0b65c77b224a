"""Mixdown math on constructed signals: gains, mute/solo, pan law, clipping protection, presets.

Stems are written as float WAVs and mixed through the real streaming path (ffmpeg decode,
block-wise sum, soundfile/ffmpeg encode), then compared with values computed here by hand.
"""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.audio.formats import ExportFormat
from services.inputs import safe_filename
from services.mixdown import (
    BLOCK_FRAMES,
    CEILING_DBFS,
    PRESETS,
    LaneSettings,
    _Frames,
    audible,
    mix_arrays,
    mixdown,
    mixdown_with_stats,
    pan_matrix,
)
from tests.audiogen import SR, bass_like, drum_like, tone, write

SECONDS = 2.0  # longer than one mixdown block (BLOCK_FRAMES), so block edges are crossed
assert SECONDS * SR > BLOCK_FRAMES


def noise(seconds: float = SECONDS, amp: float = 0.2, seed: int = 0) -> np.ndarray:
    """Stereo noise with different left and right channels (so pan mistakes show)."""
    rng = np.random.default_rng(seed)
    return (amp * rng.uniform(-1, 1, (round(seconds * SR), 2))).astype(np.float32)


@pytest.fixture
def four_stems(tmp_path: Path) -> tuple[dict[str, Path], dict[str, np.ndarray]]:
    signals = {
        "vocals": noise(seed=1, amp=0.15),
        "drums": drum_like(SECONDS, amp=0.3, seed=2),
        "bass": bass_like(SECONDS, amp=0.2),
        "other": noise(seed=4, amp=0.1),
    }
    files = {n: write(tmp_path / f"{n}.wav", x, fmt="wav-float") for n, x in signals.items()}
    return files, signals


def read(path: Path) -> np.ndarray:
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == SR
    return data


# ---------------------------------------------------------------- rules


def test_solo_and_mute_rules():
    lanes = {
        "a": LaneSettings(),
        "b": LaneSettings(solo=True),
        "c": LaneSettings(solo=True, mute=True),  # mute wins over solo
        "d": LaneSettings(mute=True),
    }
    assert audible(lanes) == {"a": False, "b": True, "c": False, "d": False}
    assert audible({"a": LaneSettings(), "d": LaneSettings(mute=True)}) == {"a": True, "d": False}
    assert audible({"a": LaneSettings(solo=True), "b": LaneSettings(solo=True)}) == {
        "a": True, "b": True,
    }


@pytest.mark.parametrize(
    ("pan", "expected"),
    [
        (-1.0, [[1, 0], [1, 0]]),  # hard left: L + R on the left, right silent
        (0.0, [[1, 0], [0, 1]]),  # centre: unity, the stems still sum to the mix
        (1.0, [[0, 1], [0, 1]]),  # hard right: L + R on the right
        (-0.5, [[1, 0], [math.sqrt(0.5), math.sqrt(0.5)]]),  # R split −3 dB / −3 dB
        (0.5, [[math.sqrt(0.5), math.sqrt(0.5)], [0, 1]]),  # L split −3 dB / −3 dB
    ],
)
def test_pan_law_values(pan, expected):
    matrix = pan_matrix(pan)
    np.testing.assert_allclose(matrix, expected, atol=1e-12)
    moved = matrix[1] if pan <= 0 else matrix[0]  # the channel that crosses over
    assert math.isclose(float(np.sum(moved**2)), 1.0)  # equal power at every position


def test_lane_settings_validation_and_browser_parsing():
    with pytest.raises(ValueError):
        LaneSettings(pan=1.5)
    with pytest.raises(ValueError):
        LaneSettings(gain_db=float("nan"))
    with pytest.raises(ValueError):
        LaneSettings(gain_db=40.0)
    silent = LaneSettings.from_dict({"gain_db": "-inf", "pan": -3, "mute": 1})
    assert silent == LaneSettings(gain_db=-math.inf, mute=True, pan=-1.0)
    assert silent.linear_gain == 0.0
    assert LaneSettings.from_dict({}) == LaneSettings()
    assert LaneSettings(gain_db=-6.0).linear_gain == pytest.approx(0.501187, rel=1e-6)


# ---------------------------------------------------------------- mixing through files


def test_karaoke_of_four_stems_is_the_sum_of_the_other_three_exactly(four_stems, tmp_path):
    files, signals = four_stems
    lanes = PRESETS["karaoke"](list(files))
    out = read(mixdown(files, lanes, tmp_path / "karaoke", None))
    expected = (
        signals["drums"].astype(np.float64) + signals["bass"] + signals["other"]
    ).astype(np.float32)
    assert out.shape == expected.shape
    assert np.array_equal(out, expected)  # sample-exact in float WAV


def test_gains_pan_and_mute_through_the_streaming_path(four_stems, tmp_path):
    files, signals = four_stems
    lanes = {
        "vocals": LaneSettings(gain_db=-6.0, pan=-0.5),
        "drums": LaneSettings(gain_db=3.0),
        "bass": LaneSettings(mute=True),
        "other": LaneSettings(pan=1.0),
    }
    out = read(mixdown(files, lanes, tmp_path / "mix", None))
    g = 10 ** (-6 / 20)
    v, d, o = (signals[s].astype(np.float64) for s in ("vocals", "drums", "other"))
    c = math.sqrt(0.5)
    left = g * (v[:, 0] + c * v[:, 1]) + 10 ** (3 / 20) * d[:, 0]
    right = g * c * v[:, 1] + 10 ** (3 / 20) * d[:, 1] + o[:, 0] + o[:, 1]
    np.testing.assert_allclose(out, np.stack([left, right], 1), atol=1e-6)
    np.testing.assert_allclose(out, mix_arrays(signals, lanes), atol=1e-6)


def test_solo_leaves_only_the_soloed_stem(four_stems, tmp_path):
    files, signals = four_stems
    lanes = {"bass": LaneSettings(solo=True), "vocals": LaneSettings(solo=True, mute=True)}
    out = read(mixdown(files, lanes, tmp_path / "solo", None))
    assert np.array_equal(out, signals["bass"])


def test_clipping_protection_lowers_the_whole_mix_evenly(tmp_path):
    a = tone(220, SECONDS, amp=0.8)
    b = tone(220, SECONDS, amp=0.4)  # in phase: the sum peaks at 1.2 (would clip)
    files = {
        "a": write(tmp_path / "a.wav", a, fmt="wav-float"),
        "b": write(tmp_path / "b.wav", b, fmt="wav-float"),
    }
    path, stats = mixdown_with_stats(files, {}, tmp_path / "loud", None)
    out = read(path)
    raw = a.astype(np.float64) + b
    assert stats.peak == pytest.approx(np.abs(raw).max(), rel=1e-6)
    ceiling = 10 ** (CEILING_DBFS / 20)
    assert np.abs(out).max() == pytest.approx(ceiling, rel=1e-5)
    gain = ceiling / stats.peak
    assert stats.protection_db == pytest.approx(20 * math.log10(gain))
    np.testing.assert_allclose(out, raw * gain, atol=1e-6)  # one gain: relative levels kept

    # A mix that fits is never touched.
    quiet_path, quiet = mixdown_with_stats(
        files, {"a": LaneSettings(gain_db=-6)}, tmp_path / "quiet", None
    )
    assert quiet.protection_db == 0.0
    np.testing.assert_allclose(read(quiet_path), a * 10 ** (-6 / 20) + b, atol=1e-6)


def test_shorter_stems_are_padded_and_muted_stems_still_set_the_length(tmp_path):
    long = noise(SECONDS, seed=5)
    short = noise(0.5, seed=6)
    files = {
        "long": write(tmp_path / "long.wav", long, fmt="wav-float"),
        "short": write(tmp_path / "short.wav", short, fmt="wav-float"),
    }
    out = read(mixdown(files, {"long": LaneSettings(mute=True)}, tmp_path / "m", None))
    assert len(out) == len(long)
    assert np.array_equal(out[: len(short)], short)
    assert not out[len(short) :].any()


@pytest.mark.parametrize(
    "fmt",
    [ExportFormat("wav", 16), ExportFormat("flac", 24), ExportFormat("mp3", bitrate_kbps=192)],
)
def test_export_formats(four_stems, tmp_path, fmt):
    files, signals = four_stems
    path = mixdown(files, PRESETS["drumless"](list(files)), tmp_path / "drumless", fmt)
    assert path == tmp_path / f"drumless.{fmt.extension}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    info = sf.info(path)
    assert info.samplerate == SR and info.channels == 2
    assert abs(info.frames - len(signals["drums"])) <= (2 * 1152 if fmt.container == "mp3" else 0)
    if fmt.container != "mp3":
        expected = signals["vocals"].astype(np.float64) + signals["bass"] + signals["other"]
        np.testing.assert_allclose(read(path), expected, atol=2.0 ** -(fmt.bit_depth - 1))


def test_stems_in_other_formats_are_decoded(tmp_path):
    x = noise(seed=7)
    files = {"pcm": write(tmp_path / "pcm.wav", x), "mp3": write(tmp_path / "lossy.mp3", x)}
    out = read(mixdown(files, {"mp3": LaneSettings(mute=True)}, tmp_path / "m", None))
    np.testing.assert_allclose(out, x, atol=2.0**-15)  # 16-bit WAV stem, MP3 lane muted


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    gains=st.lists(st.floats(-30, 6), min_size=2, max_size=2),
    pans=st.lists(st.floats(-1, 1), min_size=2, max_size=2),
)
def test_streamed_mix_matches_the_in_memory_reference(tmp_path, gains, pans):
    signals = {"a": noise(seed=8, amp=0.2), "b": noise(seed=9, amp=0.2)}
    files = {k: write(tmp_path / f"{k}.wav", x, fmt="wav-float") for k, x in signals.items()}
    lanes = {k: LaneSettings(gain_db=g, pan=p) for k, g, p in zip("ab", gains, pans, strict=True)}
    path, stats = mixdown_with_stats(files, lanes, tmp_path / "h", None)
    reference = mix_arrays(signals, lanes) * 10 ** (stats.protection_db / 20)  # 1.0 unless loud
    np.testing.assert_allclose(read(path), reference, atol=1e-6)


def test_frames_rechunks_ragged_blocks():
    blocks = [np.full((n, 2), i, np.float32) for i, n in enumerate((3, 1, 5, 2))]
    frames = _Frames(iter(blocks))
    sizes = []
    while len(chunk := frames.take(4)):
        sizes.append(len(chunk))
    assert sizes == [4, 4, 3]


# ---------------------------------------------------------------- presets


def test_presets_are_functions_of_the_stem_list():
    four = ["vocals", "drums", "bass", "other"]
    assert PRESETS["karaoke"](four) == {
        "vocals": LaneSettings(mute=True), "drums": LaneSettings(),
        "bass": LaneSettings(), "other": LaneSettings(),
    }
    drumless = PRESETS["drumless"](four)
    assert [s for s, lane in drumless.items() if lane.mute] == ["drums"]
    two = ["vocals", "instrumental"]
    assert PRESETS["karaoke"].applies(two)
    assert not PRESETS["drumless"].applies(two)
    assert not PRESETS["karaoke"].applies(["vocals"])  # nothing would remain
    assert PRESETS["karaoke"](["vocals.lead", "vocals.backing", "drums"])["vocals.backing"].mute


def test_no_stems_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        mixdown({}, {}, tmp_path / "x", None)


# ---------------------------------------------------------------- the mixer's report → settings


def test_browser_report_becomes_lane_settings_and_a_summary():
    from components.mixer.download import describe
    from components.mixer.state import MixerState

    report = {
        "seq": 3, "playing": True, "position_s": 1.5, "duration_s": 20, "ready": True,
        "loop": {"enabled": False, "start_s": 0, "end_s": 0},
        "lanes": [
            {"stem": "vocals", "gain_db": "-inf", "mute": False, "solo": False, "pan": 0},
            {"stem": "drums", "gain_db": -3, "mute": False, "solo": False, "pan": -0.25},
            {"stem": "bass", "gain_db": 0, "mute": True, "solo": False, "pan": 0},
            {"stem": "other", "gain_db": 0, "mute": False, "solo": False, "pan": 0},
        ],
    }
    state = MixerState.parse(report)
    assert state is not None and state.playing and state.position_s == 1.5
    lanes = state.settings()
    assert lanes["drums"] == LaneSettings(gain_db=-3, pan=-0.25)
    assert lanes["vocals"].linear_gain == 0.0
    names = list(lanes)
    assert describe(lanes, names) == "Vocals −∞ dB · Drums −3.0 dB L25 · Bass muted"
    soloed = {**lanes, "other": LaneSettings(solo=True)}
    assert describe(soloed, names) == "Only Other"
    assert describe({s: LaneSettings() for s in names}, names).startswith("All stems")


@pytest.mark.parametrize(
    "raw", [None, "x", {"lanes": [{"gain_db": 0}]}, {"lanes": [{"stem": "a", "pan": "left"}]}]
)
def test_malformed_browser_reports_are_ignored(raw):
    from components.mixer.state import MixerState

    assert MixerState.parse(raw) is None


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd.wav",
        "..\\..\\Windows\\evil.wav",
        "nul\x00byte\r\n.wav",
        "\u202egnp.wav",
        "ü" * 200 + ".wav",
        unicodedata.normalize("NFD", "Ünïcode café.wav"),
        "..",
    ],
    ids=["traversal", "windows", "control", "rtl", "long", "nfd", "dots"],
)
def test_mix_download_names_are_safe_file_names(name):
    from components.mixer.download import mix_file_name
    from services.jobs.model import Job, JobSpec

    job = Job("j1", JobSpec("0" * 64, name, 2.0, "local", "4stem"))
    saved = mix_file_name(job, "karaoke", "mp3")
    assert saved == safe_filename(saved)  # already in the portable form
    assert not set(saved) & set("/\\\x00\r\n\u202e")
    assert unicodedata.is_normalized("NFC", saved)
    assert len(saved.encode()) <= 255 and saved.endswith(".mp3")
    assert not saved.startswith(".")
