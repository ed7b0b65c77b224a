"""Exports (WAV/FLAC 16/24-bit, MP3 bitrates), previews and zips, checked by reading back."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import soundfile as sf

from services.audio.decode import SAMPLE_RATE, load
from services.audio.encode import export_audio, write_preview, zip_files
from services.audio.formats import ExportFormat
from services.errors import InputRejected
from tests.audiogen import mix, tone, vocal_like, write

_MPEG1_L3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)


def mp3_frame_bitrates(data: bytes) -> set[int]:
    """Bitrates (kbit/s) of the MPEG-1 layer III frame headers, walking frame by frame."""
    at = (
        10 + ((data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9])
        if data[:3] == b"ID3"
        else 0
    )
    rates = set()
    while at + 4 <= len(data) and data[at] == 0xFF and data[at + 1] & 0xFE == 0xFA:
        kbps = _MPEG1_L3_KBPS[data[at + 2] >> 4]
        padding = (data[at + 2] >> 1) & 1
        rates.add(kbps)
        at += 144 * kbps * 1000 // SAMPLE_RATE + padding
    return rates


@pytest.fixture
def source(tmp_path):
    """A float WAV stem (as engines write them) with a musical signal."""
    return write(
        tmp_path / "stem.wav", mix(vocal_like(1.5), tone(110, 1.5, amp=0.3)), fmt="wav-float"
    )


@pytest.mark.parametrize(
    ("container", "depth", "subtype"),
    [
        ("wav", 16, "PCM_16"),
        ("wav", 24, "PCM_24"),
        ("flac", 16, "PCM_16"),
        ("flac", 24, "PCM_24"),
    ],
)
def test_lossless_round_trip(tmp_path, source, container, depth, subtype):
    out = export_audio(source, tmp_path / "out" / "vocals", ExportFormat(container, depth))
    assert out == tmp_path / "out" / f"vocals.{container}"
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 2, subtype)
    back, original = load(out), load(source)
    assert back.shape == original.shape
    step = 2.0 ** -(depth - 1)
    assert np.abs(back - original).max() <= step  # within one quantisation step
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp files left


@pytest.mark.parametrize("kbps", [128, 320])
def test_mp3_export_uses_the_chosen_bitrate(tmp_path, source, kbps):
    out = export_audio(source, tmp_path / "drums", ExportFormat("mp3", bitrate_kbps=kbps))
    assert out.suffix == ".mp3"
    assert mp3_frame_bitrates(out.read_bytes()) == {kbps}
    back = load(out)
    assert len(back) == pytest.approx(1.5 * SAMPLE_RATE, abs=2)
    original = load(source)
    corr = np.corrcoef(back[:, 0], original[: len(back), 0])[0, 1]
    assert corr > 0.99


def test_values_beyond_full_scale_clip_instead_of_wrapping(tmp_path):
    hot = tone(100, 1.0, amp=1.6)  # float stems may exceed ±1
    src = write(tmp_path / "hot.wav", hot, fmt="wav-float")
    assert np.abs(load(src)).max() == pytest.approx(1.6, abs=1e-3)  # float keeps it exactly
    for fmt in (ExportFormat("wav", 16), ExportFormat("flac", 24), ExportFormat("mp3")):
        back = load(export_audio(src, tmp_path / f"hot-{fmt.container}", fmt))
        # wrapped integers would show up as sign flips at the peaks
        peaks = np.abs(hot[:, 0]) > 1.2
        assert np.all(np.sign(back[: len(hot)][peaks, 0]) == np.sign(hot[peaks, 0]))
        assert np.abs(back).max() <= 1.1


def test_export_accepts_any_decodable_source(tmp_path):
    src = write(tmp_path / "in.ogg", tone(440, 1.0, channels=1, sr=22050), sr=22050)
    out = export_audio(src, tmp_path / "x", ExportFormat("wav", 16))
    info = sf.info(out)
    assert (info.samplerate, info.channels) == (SAMPLE_RATE, 2)


def test_failed_export_leaves_nothing_behind(tmp_path):
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"this is not audio at all" * 100)
    for fmt in (ExportFormat("wav"), ExportFormat("mp3")):
        with pytest.raises(InputRejected):
            export_audio(bogus, tmp_path / "out" / "stem", fmt)
    assert list((tmp_path / "out").iterdir()) == []


def test_preview_is_a_small_mp3(tmp_path, source):
    out = write_preview(source, tmp_path / "previews" / "vocals.mp3")
    assert out.read_bytes()[:3] == b"ID3"
    assert mp3_frame_bitrates(out.read_bytes()) == {128}
    assert len(load(out)) == pytest.approx(1.5 * SAMPLE_RATE, abs=2)


def test_zip_contains_the_files_unchanged(tmp_path, source):
    a = export_audio(source, tmp_path / "vocals", ExportFormat("flac"))
    b = export_audio(source, tmp_path / "drums", ExportFormat("mp3"))
    out = zip_files([("stems/vocals.flac", a), ("stems/drums.mp3", b)], tmp_path / "all.zip")
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == ["stems/vocals.flac", "stems/drums.mp3"]
        assert archive.read("stems/vocals.flac") == a.read_bytes()
        assert archive.read("stems/drums.mp3") == b.read_bytes()
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
        assert archive.testzip() is None


@pytest.mark.parametrize("bad", ["../evil.wav", "/abs.wav", "a/../../b.wav", "", "c:\\x.wav"])
def test_zip_refuses_unsafe_names(tmp_path, source, bad):
    with pytest.raises(ValueError, match="unsafe"):
        zip_files([(bad, source)], tmp_path / "z.zip")
    assert not (tmp_path / "z.zip").exists()


def test_zip_refuses_duplicate_names(tmp_path, source):
    with pytest.raises(ValueError, match="duplicate"):
        zip_files([("a.wav", source), ("a.wav", source)], tmp_path / "z.zip")
