"""Fuzzing the upload path the Split page calls (``ingest_bytes``), and its limits.

Every generated upload must end stored and decodable, or refused with a clear message, and a
refusal must leave nothing behind: the input store holds only complete ``<hash>.<ext>`` +
``<hash>.json`` pairs and staging is empty after every case.
"""

from __future__ import annotations

import re

import pytest

from services.audio.decode import load
from services.config import Settings
from services.errors import InputRejected
from services.inputs import display_name, ingest_bytes
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

SEED = 7_2026
_STORED = re.compile(r"[0-9a-f]{64}\.(json|wav|aiff|flac|ogg|m4a|webm|mp3|aac)")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    return make_seeds(tmp_path_factory.mktemp("seeds"))


def store_problem(settings: Settings) -> str | None:
    """Anything in the input store that is not a complete stored input, or left in staging."""
    if not settings.inputs_dir.exists():
        return None
    names = [p.name for p in settings.inputs_dir.iterdir() if p.is_file()]
    stray = [n for n in names if not _STORED.fullmatch(n)]
    audio = {n.split(".")[0] for n in names if not n.endswith(".json")}
    sidecars = {n.split(".")[0] for n in names if n.endswith(".json")}
    staging = settings.inputs_dir / "staging"
    leftovers = list(staging.iterdir()) if staging.exists() else []
    if stray or audio != sidecars or leftovers:
        return f"store not clean: stray={stray} unpaired={audio ^ sidecars} staging={leftovers}"
    return None


@pytest.mark.timeout(max(300, examples(300)))  # the full variant runs long
def test_upload_path_survives_generated_inputs(seeds, tmp_path, record_property):
    root = tmp_path / "data"
    items = list(cases(seeds, examples(300), SEED))

    def settings_for(i: int) -> Settings:
        """A store per case, so cases run in parallel and each check sees only its own effect.
        The size limit is above the largest seed (132 KB) but spliced copies can exceed it."""
        return Settings(data_dir=root / str(i), max_upload_bytes=150_000, max_duration_s=30)

    def upload(i: int, case: Case) -> str:
        settings = settings_for(i)
        try:
            stored = ingest_bytes(case.data, case.name, settings)
        finally:
            if problem := store_problem(settings):
                raise AssertionError(problem)
        assert stored.path.parent == settings.inputs_dir, stored.path
        assert stored.name == display_name(case.name)
        check_audio(load(stored.path))
        return "accepted"

    outcomes = run_many(items, upload)
    tally = Tally("fuzz upload")
    for case, outcome in zip(items, outcomes, strict=True):
        problem = None
        if outcome.kind == "rejected":
            problem = message_problem(outcome.detail, root)
        elif case.family.startswith(("non-audio", "empty")) and outcome.kind == "accepted":
            problem = "accepted non-audio"
        tally.add(case, outcome, problem)
    record_property("fuzz_upload", tally.line())
    tally.report()
    assert tally.counts.get("accepted", 0) > 0 and tally.counts.get("rejected", 0) > 0
    assert not tally.problems, "\n".join(tally.problems[:20])


def test_size_limit_exactly_and_one_byte_over(seeds, tmp_path):
    data = seeds["wav-mono8k"]
    at_limit = Settings(data_dir=tmp_path / "a", max_upload_bytes=len(data))
    assert ingest_bytes(data, "exact.wav", at_limit).info.size_bytes == len(data)
    over = Settings(data_dir=tmp_path / "b", max_upload_bytes=len(data) - 1)
    with pytest.raises(InputRejected, match=r"The file is 13 KB; the limit is 13 KB\."):
        ingest_bytes(data, "over.wav", over)
    assert store_problem(over) is None and not over.inputs_dir.exists()


def test_empty_upload(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(InputRejected, match=r"The file is empty \(0 bytes\)\."):
        ingest_bytes(b"", "song.mp3", settings)


def _silent_wav(seconds: float, rate: int = 8000) -> bytes:
    """Silence as 8-bit mono PCM (unsigned: 0x80 is zero): 8 KB per second of audio."""
    return wav_bytes(b"\x80" * int(seconds * rate), rate=rate, bits=8)


def test_long_silent_file_is_refused_for_its_length_before_decoding(tmp_path):
    """21 minutes of silence against the default 20-minute limit: the header decides."""
    settings = Settings(data_dir=tmp_path / "data")
    outcome = run_bounded(lambda: ingest_bytes(_silent_wav(21 * 60), "long.wav", settings))
    assert outcome.kind == "rejected", outcome.detail
    assert outcome.detail == "The audio is 21:00 long; the limit is 20:00."


def test_silent_file_just_under_the_limit_is_refused_as_silent(tmp_path):
    """19 minutes of silence is decoded to its end (nothing audible stops it early), within
    the case bound, and refused as silent."""
    settings = Settings(data_dir=tmp_path / "data")
    outcome = run_bounded(lambda: ingest_bytes(_silent_wav(19 * 60), "quiet.wav", settings))
    assert outcome.kind == "rejected", outcome.detail
    assert outcome.detail == "The file is silent: it contains no audible sound."
    assert store_problem(settings) is None


def test_silence_with_an_unknown_length_header_is_measured_not_trusted(tmp_path):
    """A streaming-style header (length 0) over 21 minutes of silence: measured, refused."""
    settings = Settings(data_dir=tmp_path / "data")
    data = _silent_wav(21 * 60)
    data = data[:4] + b"\x00" * 4 + data[8:40] + b"\x00" * 4 + data[44:]  # RIFF and data: 0
    outcome = run_bounded(lambda: ingest_bytes(data, "stream.wav", settings))
    assert outcome.kind == "rejected", outcome.detail
    assert "the limit is 20:00" in outcome.detail
