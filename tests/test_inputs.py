"""Ingesting uploads, paths and URLs into the content-addressed input store."""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np
import pytest

from services.config import Settings
from services.errors import FetchError, InputRejected
from services.inputs import (
    display_name,
    find_input,
    ingest_bytes,
    ingest_path,
    ingest_url,
    safe_filename,
)
from tests.audiogen import tone, vocal_like, write
from tests.localserver import LocalServer, reply


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", max_upload_bytes=2_000_000, max_duration_s=10)


@pytest.fixture
def song(tmp_path) -> bytes:
    return write(tmp_path / "src" / "song.mp3", vocal_like(1.5)).read_bytes()


def stored_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.inputs_dir.iterdir() if p.is_file())


def test_upload_is_stored_once_under_its_hash(settings, song):
    digest = hashlib.sha256(song).hexdigest()
    first = ingest_bytes(song, "My Song.mp3", settings)
    assert first.hash == digest and first.name == "My Song.mp3"
    assert first.path == settings.inputs_dir / f"{digest}.mp3"
    assert first.path.read_bytes() == song
    assert first.info.format == "mp3" and first.info.duration_s == pytest.approx(1.5, abs=0.05)
    again = ingest_bytes(song, "copy of song.mp3", settings)
    assert again.path == first.path and again.name == "copy of song.mp3"
    assert stored_files(settings) == [f"{digest}.json", f"{digest}.mp3"]
    assert list((settings.inputs_dir / "staging").iterdir()) == []


def test_sidecar_and_find_input(settings, song):
    stored = ingest_bytes(song, "a.mp3", settings)
    sidecar = json.loads((settings.inputs_dir / f"{stored.hash}.json").read_text())
    assert sidecar["name"] == "a.mp3" and sidecar["info"]["format"] == "mp3"
    found = find_input(stored.hash, settings)
    assert found == stored
    assert find_input("0" * 64, settings) is None


@pytest.mark.parametrize("bad", ["../../etc/passwd", "", "ABC", "a" * 64, "0" * 63, None])
def test_find_input_refuses_malformed_hashes(settings, bad):
    assert find_input(bad, settings) is None


def test_content_not_extension_decides_the_format(settings, tmp_path):
    wav = write(tmp_path / "x.wav", tone(440, 1.0)).read_bytes()
    stored = ingest_bytes(wav, "actually-a-wav.mp3", settings)
    assert stored.info.format == "wav" and stored.path.suffix == ".wav"


def test_user_file_names_never_become_paths(settings, song):
    stored = ingest_bytes(song, "../../../../tmp/evil\x00name\n.mp3", settings)
    assert stored.path.parent == settings.inputs_dir
    assert stored.name == "evilname .mp3"
    assert not (settings.inputs_dir.parent / "tmp").exists()


def test_ingest_path_copies_and_leaves_the_original(settings, tmp_path):
    src = write(tmp_path / "in" / "track.flac", tone(330, 1.2))
    stored = ingest_path(src, settings)
    assert src.exists() and stored.path != src
    assert stored.path.read_bytes() == src.read_bytes()
    assert stored.name == "track.flac" and stored.source_url is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"PK\x03\x04" + bytes(500), "ZIP archive"),
        (b"x" * 2_000_001, "the limit is 1.9 MB"),
    ],
)
def test_rejected_uploads_leave_nothing_behind(settings, data, message):
    with pytest.raises(InputRejected, match=message):
        ingest_bytes(data, "song.mp3", settings)
    assert not settings.inputs_dir.exists() or stored_files(settings) == []


def test_silent_upload_is_rejected(settings, tmp_path):
    silent = write(tmp_path / "s.wav", np.zeros((44100 * 2, 2), np.float32)).read_bytes()
    with pytest.raises(InputRejected, match="The file is silent"):
        ingest_bytes(silent, "s.wav", settings)
    assert stored_files(settings) == []


def test_too_long_upload_is_rejected(settings, tmp_path):
    long = write(tmp_path / "l.mp3", tone(440, 12.0)).read_bytes()
    with pytest.raises(InputRejected, match="the limit is 0:10"):
        ingest_bytes(long, "l.mp3", settings)


def test_ingest_url(settings, song):
    with LocalServer() as server:
        server.route("/music/My%20Song.mp3", lambda h: reply(h, 200, song, "audio/mpeg"))
        url = server.url("/music/My%20Song.mp3")
        stored = ingest_url(url, settings, trusted=[server.host_port])
        assert stored.name == "My Song.mp3" and stored.source_url == url
        assert stored.path.read_bytes() == song
        assert find_input(stored.hash, settings).source_url == url
        with pytest.raises(FetchError, match="local, private or reserved"):
            ingest_url(url, settings)  # not trusted
    assert list((settings.inputs_dir / "staging").iterdir()) == []


def test_url_to_silent_audio_is_rejected_and_cleaned_up(settings, tmp_path):
    silent = write(tmp_path / "s.flac", np.zeros((44100, 2), np.float32)).read_bytes()
    with LocalServer() as server:
        server.route("/s.flac", lambda h: reply(h, 200, silent, "audio/flac"))
        with pytest.raises(InputRejected, match="silent"):
            ingest_url(server.url("/s.flac"), settings, trusted=[server.host_port])
    assert list((settings.inputs_dir / "staging").iterdir()) == []
    assert stored_files(settings) == []


@pytest.mark.parametrize(
    ("given", "shown", "download"),
    [
        ("song.mp3", "song.mp3", "song.mp3"),
        ("C:\\Users\\me\\Müsic\\Ünïcode song.flac", "Ünïcode song.flac", "Ünïcode song.flac"),
        ("a/b/c.wav", "c.wav", "c.wav"),
        ("..", "audio", "audio"),
        ("", "audio", "audio"),
        ("x<y>:z?.wav", "x<y>:z?.wav", "x_y__z_.wav"),
        ("n" * 300 + ".mp3", "n" * 116 + ".mp3", "n" * 116 + ".mp3"),
    ],
)
def test_display_and_download_names(given, shown, download):
    assert display_name(given) == shown
    assert safe_filename(given) == download


def test_staging_leftovers_from_a_crash_are_swept(settings, song):
    staging = settings.inputs_dir / "staging"
    staging.mkdir(parents=True)
    old, fresh = staging / "upload-old", staging / "upload-fresh"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    ingest_bytes(song, "a.mp3", settings)
    assert sorted(p.name for p in staging.iterdir()) == ["upload-fresh"]
