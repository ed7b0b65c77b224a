"""Fuzzing the decoder: every generated input ends in clean audio or a clear rejection.

``probe`` (validation) runs on every case; what it accepts must ``load`` as finite float32
stereo. Every third case it refuses is also streamed with ``iter_blocks``, as provider results
are (they are decoded without a probe), which must likewise end cleanly. Any other exception, or
a case still running after the bound, is a bug. The counts go to the terminal summary.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from services.audio.decode import MAX_SAMPLE, SAMPLE_RATE, iter_blocks, load, probe, sniff
from services.audio.ffmpeg import QUIET, ffmpeg_exe
from services.config import Settings
from services.errors import InputRejected
from tests.audiogen import tone, write
from tests.fuzzgen import (
    Case,
    Tally,
    cases,
    check_audio,
    examples,
    make_seeds,
    message_problem,
    run_bounded,
    run_many,
    wav_bytes,
)

SEED = 20261123


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    return make_seeds(tmp_path_factory.mktemp("seeds"))


def check_stream(path: Path, max_frames: int = 60 * SAMPLE_RATE) -> None:
    """Stream ``path`` as provider results are (no probe), checking every block. Stops after a
    minute: a few KB with a 1 Hz header decode to hours (and GB) of audio at 44.1 kHz."""
    blocks = iter_blocks(path, 1 << 15)
    frames = 0
    try:
        for block in blocks:
            check_audio(block)
            frames += len(block)
            if frames >= max_frames:
                break
    finally:
        blocks.close()


@pytest.mark.timeout(max(300, examples(700)))  # the full variant runs long
def test_decoder_survives_generated_inputs(seeds, tmp_path, record_property):
    settings = Settings(data_dir=tmp_path / "data", max_duration_s=30)
    folder = tmp_path / "cases"
    folder.mkdir()
    items = list(cases(seeds, examples(700), SEED))

    def decode(i: int, case: Case) -> str:
        path = folder / f"{i}{Path(case.name).suffix}"
        path.write_bytes(case.data)
        try:
            probe(path, settings)
        except InputRejected:
            if i % 3 == 0 and sniff(case.data[:4096]):
                check_stream(path)
            raise
        else:
            check_audio(load(path))
        finally:
            path.unlink()
        return "accepted"

    outcomes = run_many(items, decode)
    tally = Tally("fuzz decode")
    for case, outcome in zip(items, outcomes, strict=True):
        problem = None
        if outcome.kind == "rejected":
            problem = message_problem(outcome.detail, settings.data_dir)
        elif case.family.startswith(("non-audio", "empty")) and outcome.kind == "accepted":
            problem = "accepted non-audio"
        elif case.family.startswith("valid") and outcome.kind != "accepted":
            problem = f"refused a valid file: {outcome.detail}"
        tally.add(case, outcome, problem)
    record_property("fuzz_decode", tally.line())
    tally.report()
    assert tally.total >= examples(700)
    assert tally.counts.get("accepted", 0) > 0 and tally.counts.get("rejected", 0) > 0
    assert not tally.problems, "\n".join(tally.problems[:20])


def test_corrupt_float_samples_decode_finite_and_bounded(tmp_path):
    """A float WAV holding NaN, ±inf and 1e38 (found by the fuzzer) decodes to usable audio."""
    samples = tone(440, 1.0, sr=8000)
    samples[100] = (np.nan, np.inf)
    samples[200] = (-np.inf, 1e38)
    path = write(tmp_path / "bad.wav", samples, sr=8000, fmt="wav-float")
    for audio in (load(path), np.concatenate(list(iter_blocks(path, 1000)))):
        check_audio(audio)
        assert np.abs(audio).max() == MAX_SAMPLE  # 1e38 was clipped, not dropped


_UNUSABLE = r"cannot be decoded|could not be decoded|contains no audio"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate": 0}, _UNUSABLE),
        ({"rate": 10**9}, _UNUSABLE),
        ({"channels": 0}, _UNUSABLE),
        ({"channels": 65535}, _UNUSABLE),
        ({"data_size": 2**31}, "incomplete"),
        ({"rate": 1}, r"The audio is .* long; the limit is 0:30\."),
    ],
)
def test_absurd_wav_header_fields_are_refused_clearly(tmp_path, fields, message):
    body = (tone(330, 1.0, sr=8000, channels=1)[:, 0] * 32767).astype("<i2").tobytes()
    path = tmp_path / "h.wav"
    path.write_bytes(wav_bytes(body, **fields))
    with pytest.raises(InputRejected, match=message):
        probe(path, Settings(data_dir=tmp_path, max_duration_s=30))


@pytest.mark.parametrize("declared", [0, 0xFFFFFFFF])
def test_streamed_wav_with_unknown_length_is_measured(tmp_path, declared):
    """Streaming writers leave the data size 0 or all-ones: the real length is used."""
    body = (tone(330, 1.0, sr=8000, channels=1)[:, 0] * 32767).astype("<i2").tobytes()
    path = tmp_path / "s.wav"
    path.write_bytes(wav_bytes(body, data_size=declared, riff_size=declared))
    info = probe(path, Settings(data_dir=tmp_path))
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    check_audio(load(path))


@pytest.mark.parametrize("fmt", ["ogg", "opus", "flac"])
def test_audio_beyond_the_declared_length_counts_against_the_limit(tmp_path, fmt):
    """Chained Ogg streams and appended FLAC (found by the fuzzer) decode far beyond the
    header's length: probe measures them, load keeps every sample."""
    one = write(tmp_path / f"one.{fmt}", tone(440, 1.0, sr=48000), sr=48000).read_bytes()
    path = tmp_path / f"chained.{fmt}"
    path.write_bytes(one * 4)
    with pytest.raises(InputRejected, match=r"longer than 0:02; the limit is 0:02"):
        probe(path, Settings(data_dir=tmp_path, max_duration_s=2))
    info = probe(path, Settings(data_dir=tmp_path, max_duration_s=10))
    assert info.duration_s > 3
    audio = load(path)  # grows past the header's estimate
    check_audio(audio)
    assert len(audio) > 3 * 44100


def test_the_runner_reports_hangs_and_crashes():
    """The harness itself can fail: an endless ffmpeg is a hang (and is killed), a raw
    exception is a crash, an InputRejected a clean rejection."""
    endless = [ffmpeg_exe(), *QUIET, "-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"]
    hang = run_bounded(lambda: subprocess.run(endless, check=False), bound_s=1.0)
    assert (hang.kind, hang.detail) == ("hang", "still running after 1 s; killed 1 ffmpeg")
    assert run_bounded(lambda: int("x")).kind == "crash"
    rejected = run_bounded(lambda: probe(Path("/nonexistent.wav"), Settings()))
    assert (rejected.kind, rejected.detail) == ("rejected", "The file could not be read.")
