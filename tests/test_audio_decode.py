"""Decoding every supported container, content sniffing, and the validation limits."""

from __future__ import annotations

import contextlib
import io
import subprocess
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.audio.decode import (
    SAMPLE_RATE,
    AudioInfo,
    ensure_audible,
    iter_blocks,
    load,
    probe,
    sniff,
)
from services.audio.ffmpeg import QUIET, ffmpeg_exe
from services.config import Settings
from services.errors import InputRejected
from tests.audiogen import FORMATS, mix, tone, write

# The container each written format must be sniffed as.
CONTAINER = {"opus": "ogg"} | {f: f for f in FORMATS if f != "opus"}


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def dominant_hz(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x[:, 0] * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sr / len(x))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes_to_stereo_float32_at_44k1(tmp_path, settings, fmt):
    path = write(tmp_path / f"in.{fmt}", tone(440, 2.0, amp=0.5))
    info = probe(path, settings)
    assert info.format == CONTAINER[fmt]
    assert info.duration_s == pytest.approx(2.0, abs=0.06)
    assert info.channels == 2 and info.size_bytes == path.stat().st_size
    audio = load(path)
    assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] == 2
    assert len(audio) / SAMPLE_RATE == pytest.approx(2.0, abs=0.06)
    assert dominant_hz(audio) == pytest.approx(440, abs=2)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.08)


def test_codecs_are_reported(tmp_path, settings):
    codecs = {
        fmt: probe(write(tmp_path / f"c.{fmt}", tone(300, 1.0)), settings).codec
        for fmt in ("mp3", "opus", "ogg", "m4a", "webm", "flac")
    }
    assert codecs == {
        "mp3": "mp3",
        "opus": "opus",
        "ogg": "vorbis",
        "m4a": "aac",
        "webm": "opus",
        "flac": "flac",
    }


def test_mono_is_duplicated_at_full_level(tmp_path):
    path = write(tmp_path / "mono.wav", tone(440, 1.0, channels=1, amp=0.5))
    audio = load(path)
    assert audio.shape == (SAMPLE_RATE, 2)
    np.testing.assert_array_equal(audio[:, 0], audio[:, 1])
    assert np.abs(audio).max() == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize("sr", [22050, 48000, 96000])
def test_other_rates_are_resampled(tmp_path, settings, sr):
    path = write(tmp_path / "r.flac", tone(1000, 1.5, sr=sr), sr=sr)
    assert probe(path, settings).sample_rate == sr
    audio = load(path)
    assert len(audio) == pytest.approx(1.5 * SAMPLE_RATE, abs=2)
    assert dominant_hz(audio) == pytest.approx(1000, abs=2)


def test_surround_is_downmixed_to_stereo(tmp_path, settings):
    six = np.zeros((SAMPLE_RATE, 6), np.float32)
    six[:, 0] = tone(440, 1.0, channels=1)[:, 0]  # front left only
    path = write(tmp_path / "surround.wav", six)
    assert probe(path, settings).channels == 6
    audio = load(path)
    assert audio.shape == (SAMPLE_RATE, 2)
    assert np.abs(audio[:, 0]).max() > 0.1 > np.abs(audio[:, 1]).max()


def test_iter_blocks_streams_the_same_samples(tmp_path):
    path = write(tmp_path / "s.flac", mix(tone(200, 1.3), tone(3000, 1.3, amp=0.2)))
    blocks = list(iter_blocks(path, 10_000))
    assert all(len(b) == 10_000 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 10_000
    assert all(b.dtype == np.float32 and b.shape[1] == 2 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), load(path))


def test_iter_blocks_can_be_abandoned(tmp_path):
    path = write(tmp_path / "s.wav", tone(200, 3.0))
    stream = iter_blocks(path, 1000)
    first = next(stream)
    stream.close()  # kills the decoder; must not hang or raise
    assert first.shape == (1000, 2)


def test_video_webm_uses_its_audio_track(tmp_path, settings):
    path = tmp_path / "clip.webm"
    subprocess.run(
        [
            *(ffmpeg_exe(), *QUIET, "-f", "lavfi", "-i", "sine=frequency=660:duration=1.5"),
            *("-f", "lavfi", "-i", "color=c=red:s=32x32:d=1.5", "-c:a", "libopus"),
            *("-c:v", "libvpx", "-shortest", "file:" + str(path)),
        ],
        check=True,
    )
    assert probe(path, settings).format == "webm"
    assert dominant_hz(load(path)) == pytest.approx(660, abs=3)


# --- sniffing ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_sniff_recognises_generated_files(tmp_path, fmt):
    path = write(tmp_path / f"x.{fmt}", tone(440, 0.5))
    assert sniff(path.read_bytes()[:4096]) == CONTAINER[fmt]


def test_sniff_mp3_without_id3_tag_by_frame_sync(tmp_path):
    data = write(tmp_path / "x.mp3", tone(440, 0.5)).read_bytes()
    tag = 10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
    assert data[:3] == b"ID3"
    assert sniff(data[tag : tag + 4096]) == "mp3"
    assert sniff(b"\x00" * 32 + data[tag : tag + 4096]) == "mp3"  # zero padding first


def test_id3_tag_longer_than_the_sniffed_head_does_not_hide_flac(tmp_path, settings):
    flac = write(tmp_path / "x.flac", tone(440, 1.0)).read_bytes()
    size = 20_000
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    path = tmp_path / "tagged.mp3"
    path.write_bytes(b"ID3\x04\x00\x00" + syncsafe + bytes(size) + flac)
    assert sniff(path.read_bytes()[:4096]) == "mp3"  # the head alone cannot tell
    info = probe(path, settings)
    assert (info.format, info.codec) == ("flac", "flac")
    assert len(load(path)) == SAMPLE_RATE


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"hello world, this is text",
        b"ID3 is the name of my text file",
        b"\xff\xfb",  # a lone half header
        b"\xff\xfb\x90\x64" + b"\x00" * 2000,  # a valid-looking header with no second frame
        b"PK\x03\x04" + bytes(100),
        b"\x89PNG\r\n\x1a\n" + bytes(100),
        b"RIFF\x00\x00\x00\x00AVI LIST",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",  # a phone photo, same box as MP4
    ],
)
def test_sniff_rejects_non_audio(head):
    assert sniff(head) is None


@given(st.binary(max_size=600))
def test_sniff_never_raises(data):
    assert sniff(data) in (None, "wav", "aiff", "flac", "ogg", "m4a", "webm", "mp3", "aac")


# --- limits and bad input ------------------------------------------------------------------


def test_size_limit(tmp_path):
    path = write(tmp_path / "big.wav", tone(440, 1.0))
    with pytest.raises(InputRejected, match=r"The file is 172 KB; the limit is 98 KB\."):
        probe(path, Settings(data_dir=tmp_path, max_upload_bytes=100_000))


def test_duration_limit(tmp_path):
    path = write(tmp_path / "long.mp3", tone(440, 3.0))
    with pytest.raises(InputRejected, match=r"The audio is 0:03 long; the limit is 0:02\."):
        probe(path, Settings(data_dir=tmp_path, max_duration_s=2.0))


def test_duration_limit_when_the_container_does_not_state_it(tmp_path):
    """A raw AAC stream has no length header: it is measured, never beyond the limit."""
    path = write(tmp_path / "long.aac", tone(440, 3.0))
    assert probe(path, Settings(data_dir=tmp_path)).duration_s == pytest.approx(3.0, abs=0.1)
    with pytest.raises(InputRejected, match="the limit is 0:02"):
        probe(path, Settings(data_dir=tmp_path, max_duration_s=2.0))


def test_empty_file(tmp_path, settings):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    with pytest.raises(InputRejected, match=r"empty \(0 bytes\)"):
        probe(path, settings)


def test_header_only_wav_has_no_audio(tmp_path, settings):
    path = write(tmp_path / "zero.wav", np.zeros((0, 2), np.float32))
    with pytest.raises(InputRejected, match="contains no audio"):
        probe(path, settings)


def test_too_short(tmp_path, settings):
    path = write(tmp_path / "blip.wav", tone(440, 0.2))
    with pytest.raises(InputRejected, match=r"only 0\.20 s long"):
        probe(path, settings)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "webm", "aiff", "m4a"])
def test_truncated_files_are_rejected(tmp_path, settings, fmt):
    whole = write(tmp_path / f"whole.{fmt}", tone(440, 4.0)).read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputRejected, match=r"incomplete|could not be decoded|cannot be decoded"):
        probe(cut, settings)
    # load() never leaks a raw exception either: it refuses or returns what decodes.
    with contextlib.suppress(InputRejected):
        assert load(cut).shape[1] == 2


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("song.txt", "not a song")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (_zip_bytes(), "a ZIP archive"),
        (b"\x89PNG\r\n\x1a\n" + bytes(3000), "a PNG image"),
        (b"%PDF-1.7\n" + bytes(3000), "a PDF document"),
        (b"<!doctype html><html><body>hi</body></html>", r"a web page \(HTML\)"),
        ("Liedtext: ♪ la la la\n".encode() * 50, "a text file"),
    ],
)
def test_non_audio_renamed_mp3_is_named(tmp_path, settings, content, looks_like):
    path = tmp_path / "song.mp3"
    path.write_bytes(content)
    with pytest.raises(
        InputRejected, match=rf"This file is not audio \(it looks like {looks_like}\)"
    ):
        probe(path, settings)
    with pytest.raises(InputRejected):
        load(path)


def test_unknown_binary_is_rejected_without_guessing(tmp_path, settings):
    path = tmp_path / "noise.mp3"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(InputRejected, match="not in a supported audio format"):
        probe(path, settings)


def test_garbage_after_a_valid_header_is_rejected(tmp_path, settings):
    real = write(tmp_path / "r.flac", tone(440, 2.0)).read_bytes()
    path = tmp_path / "bad.flac"
    noise = np.random.default_rng(2).integers(0, 256, len(real), dtype=np.uint8).tobytes()
    path.write_bytes(real[:42] + noise)  # STREAMINFO intact, frames garbage
    with pytest.raises(InputRejected):
        probe(path, settings)


def test_missing_file(tmp_path, settings):
    with pytest.raises(InputRejected, match="could not be read"):
        probe(tmp_path / "nope.wav", settings)


def test_silence_is_detected(tmp_path):
    silent = write(tmp_path / "silent.flac", np.zeros((SAMPLE_RATE * 2, 2), np.float32))
    with pytest.raises(InputRejected, match="The file is silent"):
        ensure_audible(silent)
    hiss = write(tmp_path / "hiss.wav", np.full((SAMPLE_RATE, 2), 1e-4, np.float32))
    with pytest.raises(InputRejected, match="silent"):
        ensure_audible(hiss)


def test_late_start_is_not_silence(tmp_path):
    late = np.concatenate([np.zeros((SAMPLE_RATE * 3, 2), np.float32), tone(440, 0.5)])
    ensure_audible(write(tmp_path / "late.mp3", late))  # no exception


def test_audio_info_label():
    info = AudioInfo("mp3", "mp3", 192.4, 44100, 2, 1000)
    assert info.label == "MP3 · 3:12 · 44.1 kHz stereo"
