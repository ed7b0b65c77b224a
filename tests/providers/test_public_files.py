"""The public file server: signed URLs for URL-only providers, over real sockets."""

from __future__ import annotations

import http.client
import os
import stat

import httpx
import pytest

from services.config import load_settings
from services.errors import InputRejected, ProviderError
from services.providers.base import Capabilities, ModeSpec
from services.public_files import (
    ENV_BASE_URL,
    ENV_HOST,
    ENV_PORT,
    FileServerConfig,
    NeedsPublicUrl,
    PublicFiles,
    for_settings,
    url_only,
)
from tests.providers.conftest import request_for

pytest_plugins = ("tests.providers.emulated",)
pytestmark = pytest.mark.usefixtures("clean_env")


def raw_get(files: PublicFiles, path: str, method: str = "GET", headers=None):
    """Send ``path`` byte for byte (httpx would normalise ``..`` away)."""
    conn = http.client.HTTPConnection("127.0.0.1", files.config.port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_a_stored_input_is_served_at_its_signed_url(files, stored, song) -> None:
    url = files.public_url(request_for(stored.path, "x"), "Soundverse")
    token = files.token(stored.path.name)
    assert url == f"{files.local_url}/files/{token}/{stored.path.name}"
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == song.read_bytes()
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["accept-ranges"] == "bytes"
    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(song.stat().st_size)


def test_the_users_url_is_passed_as_given(files, stored) -> None:
    request = request_for(stored.path, "x", source_url="https://example.com/a%20b.mp3?x=1")
    assert files.public_url(request, "Soundverse") == "https://example.com/a%20b.mp3?x=1"


def test_an_upload_without_a_public_base_url_fails_fast_and_says_how_to_fix_it(
    settings, stored
) -> None:
    files = for_settings(settings)
    assert not files.configured
    with pytest.raises(NeedsPublicUrl) as caught:
        files.public_url(request_for(stored.path, "x"), "Soundverse")
    message = str(caught.value)
    assert message.startswith("Soundverse only accepts a public URL. Paste a URL instead")
    assert ENV_BASE_URL in message and "127.0.0.1:8765" in message
    assert isinstance(caught.value, InputRejected) and isinstance(caught.value, ProviderError)
    assert not (settings.data_dir / "public-files.key").exists()  # nothing was started


def test_token_is_required_and_must_match(files, stored) -> None:
    name = stored.path.name
    good = files.token(stored.path.name)
    other = "f" * 64
    for path in (
        f"/files/{name}",
        f"/files/{'0' * 32}/{name}",
        f"/files/{good.upper()}/{name}",
        f"/files/{files.token(other + '.wav')}/{name}",  # a token for another file
        f"/files/{files.token(other + '.wav')}/{other}.wav",  # valid token, no such file
        f"/files/{good}/{stored.hash}.json",  # the sidecar next to the input
        f"/files/{good}/{name}/",
    ):
        assert raw_get(files, path)[0] == 404, path
    assert raw_get(files, f"/files/{good}/{name}")[0] == 200


def test_no_listing_and_no_traversal(files, stored) -> None:
    good = files.token(stored.path.name)
    for path in (
        "/",
        "/files",
        "/files/",
        f"/files/{good}/",
        f"/files/{good}/../{stored.path.name}",
        f"/files/{good}/..%2f..%2fpublic-files.key",
        f"/files/{good}/%2e%2e/public-files.key",
        f"/files/{good}/../../data/public-files.key",
        "/../../../etc/passwd",
        "//etc/passwd",
        f"/files/{good}/{stored.path.name}%00.txt",
    ):
        status, _headers, body = raw_get(files, path)
        assert status == 404, path
        assert body == b"Not found"


def test_only_get_and_head(files, stored) -> None:
    path = f"/files/{files.token(stored.path.name)}/{stored.path.name}"
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        status, headers, _ = raw_get(files, path, method)
        assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert raw_get(files, path, "POST")[0] == 404  # POST only reaches registered hooks


def test_byte_ranges(files, stored, song) -> None:
    data = song.read_bytes()
    path = f"/files/{files.token(stored.path.name)}/{stored.path.name}"
    status, headers, body = raw_get(files, path, headers={"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert raw_get(files, path, headers={"Range": "bytes=-5"})[2] == data[-5:]
    assert raw_get(files, path, headers={"Range": "bytes=100-"})[2] == data[100:]
    status, headers, _ = raw_get(files, path, headers={"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    status, _, body = raw_get(files, path, headers={"Range": "bytes=0-1,5-6"})
    assert status == 200 and body == data  # several ranges: the whole file is allowed


def test_secret_is_per_install_private_and_persistent(settings, stored, tmp_path) -> None:
    key = settings.data_dir / "public-files.key"
    first = PublicFiles(FileServerConfig(settings.inputs_dir, key))
    token = first.token(stored.path.name)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert PublicFiles(FileServerConfig(settings.inputs_dir, key)).token(stored.path.name) == token
    other = PublicFiles(FileServerConfig(settings.inputs_dir, tmp_path / "other.key"))
    assert other.token(stored.path.name) != token
    assert len(token) == 32


def test_only_stored_inputs_are_shared(files, song) -> None:
    with pytest.raises(ProviderError, match="Only validated inputs"):
        files.public_url(request_for(song, "x"), "Soundverse")


def test_a_second_process_of_the_same_install_reuses_the_port(files, stored, settings) -> None:
    key = settings.data_dir / "public-files.key"
    same = PublicFiles(
        FileServerConfig(
            settings.inputs_dir, key, port=files.config.port, public_base_url=files.local_url
        )
    )
    url = same.public_url(request_for(stored.path, "x"), "MusicAPI.ai")
    assert httpx.get(url).status_code == 200
    assert same.hook_url("kie", lambda _h, _b: 200) is None  # its hooks would not reach us
    stranger = PublicFiles(
        FileServerConfig(
            settings.inputs_dir,
            settings.data_dir / "stranger.key",
            port=files.config.port,
            public_base_url="https://tunnel.example",
        )
    )
    with pytest.raises(ProviderError, match=f"could not listen.*{ENV_PORT}"):
        stranger.public_url(request_for(stored.path, "x"), "MusicAPI.ai")


def test_configuration_from_the_environment(settings) -> None:
    env = {
        ENV_BASE_URL: "https://abc.trycloudflare.com/stemdeck/",
        ENV_PORT: "9911",
        ENV_HOST: "0.0.0.0",
        "STEMDECK_DATA_DIR": str(settings.data_dir),
    }
    config = FileServerConfig.from_settings(load_settings(env))
    assert config.public_base_url == "https://abc.trycloudflare.com/stemdeck"
    assert (config.host, config.port) == ("0.0.0.0", 9911)
    assert for_settings(settings) is for_settings(settings)
    with pytest.raises(ValueError, match=ENV_PORT):
        load_settings({**env, ENV_PORT: "eighty"})
    with pytest.raises(ValueError, match=ENV_BASE_URL):
        FileServerConfig.from_settings(load_settings({**env, ENV_BASE_URL: "ftp://nope"}))


def test_the_provider_gets_the_public_base_not_the_bind_address(settings, stored) -> None:
    files = PublicFiles(
        FileServerConfig(
            settings.inputs_dir,
            settings.data_dir / "k",
            port=0,
            public_base_url="https://abc.trycloudflare.com",
        )
    )
    try:
        url = files.public_url(request_for(stored.path, "x"), "Soundverse")
        assert url.startswith("https://abc.trycloudflare.com/files/")
        local = url.replace("https://abc.trycloudflare.com", files.local_url)
        assert httpx.get(local).status_code == 200  # what the tunnel would forward to
    finally:
        files.stop()


def test_hooks(files) -> None:
    got = []

    def handler(headers, body) -> int:
        got.append((headers["x-test"], body))
        return 202

    url = files.hook_url("kie", handler)
    assert url.startswith(files.local_url + "/hooks/kie/")
    assert httpx.post(url, content=b"{}", headers={"X-Test": "1"}).status_code == 202
    assert got == [("1", b"{}")]
    wrong = url.rsplit("/", 1)[0] + "/" + "0" * 32
    assert httpx.post(wrong, content=b"{}").status_code == 404
    assert (
        httpx.post(files.local_url + "/hooks/other/" + files.hook_token("other")).status_code == 404
    )
    assert len(got) == 1


def test_url_only_capabilities(settings, files) -> None:
    caps = Capabilities("X", (ModeSpec("m", "M", ("vocals",)),), input_kinds=("url", "file"))
    assert url_only(caps, files) is caps
    narrowed = url_only(caps, for_settings(settings))
    assert narrowed.input_kinds == ("url",) and ENV_BASE_URL in narrowed.description
