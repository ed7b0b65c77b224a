"""Hostile and colliding file names: the workspace stays confined, nothing is overwritten.

Names go through the real upload path (``ingest_bytes``), real jobs (``Runtime.submit`` with
the FFT band-split test provider, real SQLite and workspaces) and the export/zip names. The
whole pytest temp tree is listed before and after: every new file must be inside the data dir.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_jobs_providers import TEST_PROVIDERS, WAIT_S, spec_for, write_tone

from services.config import Settings
from services.inputs import display_name, find_input, ingest_bytes, safe_filename
from services.jobs.model import Job, JobSpec, JobStatus
from services.runtime import Runtime, zip_name

HOSTILE = [
    "../../etc/passwd.wav",
    "../../../../../../tmp/stemdeck-escape.wav",
    "/etc/passwd.wav",
    "/absolute/path/to/song.wav",
    "..\\..\\Windows\\System32\\evil.wav",
    "C:\\Users\\me\\Music\\song.wav",
    "\\\\server\\share\\song.wav",
    "nul\x00byte.wav",
    "ctrl\x01\x07\x1b[31mred\r\nline.wav",
    "tab\tand\vform\ffeed.wav",
    "\u202egnp.wav",  # right-to-left override: shows as "vaw.png"
    "zero\u200bwidth\ufeffbom.wav",
    "مرحبا بالعالم.wav",
    "🎵🔥 song 🎸.wav",
    "Ünïcode café.wav",  # NFC
    unicodedata.normalize("NFD", "Ünïcode café.wav"),  # as macOS sends it
    "ü" * 200 + ".wav",  # 400+ bytes of UTF-8
    "n" * 300,
    "𝄞" * 100 + ".flac",  # 4-byte characters
    "",
    ".",
    "..",
    "...wav",
    " .wav ",
    "CON.wav",
    "%2e%2e%2fetc%2fpasswd.wav",
    "$(touch pwned).wav",
    "~/song.wav",
    "song.wav/",
    "song.wav\x00.exe",
]


def tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.fixture
def confined(tmp_path_factory, tmp_path, monkeypatch, songs) -> Iterator[Settings]:
    """Settings with a nested data dir, the cwd inside the temp tree (so relative escapes are
    seen), and a check afterwards that every new file of the temp tree is in the data dir."""
    base = tmp_path_factory.getbasetemp()
    data = tmp_path / "outer" / "data"
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    before = tree(base)
    yield Settings(data_dir=data, max_upload_bytes=2_000_000)
    escaped = [p for p in tree(base) - before if not p.is_relative_to(data)]
    escaped = [p for p in escaped if p not in (data.parent, data)]
    assert escaped == [], f"written outside the data dir: {escaped}"


def check_display(name: str) -> None:
    """A shown name: one path component, printable, NFC, bounded."""
    assert name and "/" not in name and "\\" not in name
    assert all(unicodedata.category(c)[0] != "C" for c in name), ascii(name)
    assert name == unicodedata.normalize("NFC", name)
    assert name not in (".", "..") and len(name) <= 120


def check_download(name: str) -> None:
    """A download file name: portable characters, not hidden, ≤ 255 bytes on any filesystem."""
    assert re.fullmatch(r"[\w\-. ()]+", name), ascii(name)
    assert not name.startswith(".") and name not in (".", "..")
    assert len(name.encode()) <= 255, len(name.encode())


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> list[bytes]:
    """Three different short songs (written before any test's tree snapshot)."""
    folder = tmp_path_factory.mktemp("songs")
    return [
        write_tone(folder / f"{i}.wav", seconds=0.8, seed=i, low_hz=110.0 * (i + 1)).read_bytes()
        for i in range(3)
    ]


@pytest.fixture(scope="module")
def song(songs) -> bytes:
    return songs[0]


def test_hostile_upload_names_never_become_paths(confined, song):
    settings = confined
    for given in HOSTILE:
        stored = ingest_bytes(song, given, settings)
        assert stored.path.parent == settings.inputs_dir
        assert stored.path.name == f"{stored.hash}.wav"
        check_display(stored.name)
        check_download(safe_filename(given))
    assert sorted(p.name for p in settings.inputs_dir.iterdir()) == sorted(
        [f"{stored.hash}.json", f"{stored.hash}.wav", "staging"]
    )
    assert list((settings.inputs_dir / "staging").iterdir()) == []


def test_nfd_names_read_and_download_like_nfc():
    """macOS sends decomposed accents; they must not turn into ``U_n_i_code``."""
    nfd = unicodedata.normalize("NFD", "Ünïcode café.wav")
    assert display_name(nfd) == "Ünïcode café.wav"
    assert safe_filename(nfd) == "Ünïcode café.wav"


def test_long_multibyte_names_fit_a_filesystem():
    name = safe_filename("𝄞" * 100 + ".flac")  # 120 characters would be 476 bytes
    assert name.endswith(".flac") and len(name.encode()) <= 255
    assert safe_filename("ü" * 300).encode().__len__() <= 255


def test_same_name_different_content_never_overwrites(confined, songs):
    settings = confined
    first, second = songs[1], songs[2]
    a = ingest_bytes(first, "song.wav", settings)
    b = ingest_bytes(second, "song.wav", settings)
    assert a.hash != b.hash and a.path != b.path
    assert a.path.read_bytes() == first and b.path.read_bytes() == second


def test_same_content_different_names_is_stored_once(confined, song):
    settings = confined
    a = ingest_bytes(song, "first.wav", settings)
    b = ingest_bytes(song, "second.wav", settings)
    assert a.path == b.path and (a.name, b.name) == ("first.wav", "second.wav")
    assert find_input(a.hash, settings).name == "first.wav"  # the sidecar is not rewritten
    assert len(list(settings.inputs_dir.glob("*.wav"))) == 1


@pytest.mark.parametrize("given", HOSTILE)
def test_zip_names_are_safe_for_any_input_name(given):
    """``zip_name`` becomes a file in the job folder: it must stay a plain, short name, even
    for a spec built directly (CLI, old records) from an unsanitized name."""
    for raw in (given, display_name(given)):
        spec = JobSpec(
            input_hash="0" * 64, input_name=raw, duration_s=1.0, provider="local", mode="2"
        )
        name = zip_name(Job(id="0" * 32, spec=spec, created_at=0))
        assert re.fullmatch(r"[A-Za-z0-9._-]+-2-stems\.zip", name), name
        assert not name.startswith(".") and len(name.encode()) <= 255


def test_colliding_names_in_two_jobs_stay_apart(confined, songs):
    """Two uploads called the same, split at once: two workspaces, two zips, each holding its
    own input's stems; a hostile name in a job never leaves its workspace."""
    settings = confined
    names = ["../../song.wav", "/tmp/song.wav"]
    inputs = [ingest_bytes(data, n, settings) for data, n in zip(songs[1:], names, strict=True)]
    assert inputs[0].name == inputs[1].name == "song.wav"
    runtime = Runtime.start(settings, registry=TEST_PROVIDERS)
    try:
        jobs = [runtime.submit(spec_for(stored)) for stored in inputs]
        assert jobs[0].id != jobs[1].id
        done = [runtime.wait(job.id, WAIT_S) for job in jobs]
        assert all(job.status is JobStatus.SUCCEEDED for job in done), [j.error for j in done]
        zips = [runtime.zip_for(job.id) for job in done]
    finally:
        runtime.shutdown()
    assert zips[0].name == zips[1].name == "song-2-stems.zip"
    assert zips[0].parent != zips[1].parent
    for job, archive in zip(done, zips, strict=True):
        folder = settings.jobs_dir / job.id
        assert archive.parent == folder
        with zipfile.ZipFile(archive) as z:
            for artifact in job.artifacts:
                member = Path(artifact.file).name
                assert z.read(member) == (folder / artifact.file).read_bytes()
    with zipfile.ZipFile(zips[0]) as z0, zipfile.ZipFile(zips[1]) as z1:
        assert z0.read("bass.flac") != z1.read("bass.flac")  # 220 Hz vs 330 Hz inputs
