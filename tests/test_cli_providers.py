"""The CLI against every provider's emulator: ``--api-key``/``--base-url``/``--stems``, canonical
output, capability-checked choices, and a key that never shows up in any output or log."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services import cli, stems
from services.providers.registry import Registry

pytest_plugins = ("tests.provider_fixtures",)
pytestmark = pytest.mark.usefixtures("clean_provider_env")

ROOT = Path(__file__).resolve().parents[1]

# provider, extra arguments, the stems the output must list (canonical names)
CASES = [
    ("aistemsplitter", ["--mode", "4"], {"vocals", "drums", "bass", "other"}),
    (
        "musicgpt",
        ["--mode", "custom", "--stems", "vocals,drums.kick", "--preprocess", "denoise"],
        {"vocals", "drums.kick"},
    ),
    ("kie", ["--mode", "separate_vocal"], {"vocals", "instrumental"}),
    ("musicapi", ["--mode", "basic"], {"vocals", "instrumental"}),
    ("soundverse", ["--mode", "vocals"], {"vocals", "instrumental"}),
]


def run_main(argv: list[str], registry: Registry) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(argv, registry, out, err)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(("name", "extra", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_provider_splits_with_key_and_base_url_on_the_command_line(
    name, extra, expected, emulator, fast_registry, public_base, make_song, tmp_path
):
    emu = emulator(name)
    song = make_song("Song.wav", 2.0)
    argv = ["split", str(song), "--provider", name, *extra, "--api-key", emu.api_key,
            "--base-url", emu.base_url, "--out", str(tmp_path / "out")]
    status, out, err = run_main(argv, fast_registry)
    assert status == 0, err
    lines = [line.split("\t") for line in out.splitlines()]
    names = [stem for stem, _ in lines]
    assert set(names) == expected
    assert names == sorted(names, key=stems.sort_key)  # canonical order, as for the local engine
    for stem, path in lines:
        assert Path(path) == (tmp_path / "out" / f"{stem}.wav").resolve() and Path(path).is_file()
    assert emu.api_key not in out + err


def test_a_wrong_key_exits_1_with_one_line_that_does_not_contain_it(
    emulator, make_song, data_dir, tmp_path
):
    emu = emulator("aistemsplitter")
    wrong = emu.api_key + "_WRONG"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AISTEMSPLITTER_")}
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "split", str(make_song("Song.wav", 2.0)),
         "--provider", "aistemsplitter", "--mode", "2", "--api-key", wrong,
         "--base-url", emu.base_url, "--out", str(tmp_path / "out")],
        cwd=ROOT, env={**env, "STEMDECK_DATA_DIR": str(data_dir)},
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "refused the API key" in result.stderr
    assert result.stdout == ""
    log = (data_dir / "logs" / "cli.log").read_text()
    for text in (result.stderr, log):
        assert wrong not in text and emu.api_key not in text


def test_modes_stems_and_preprocessing_come_from_the_capabilities(
    emulator, fast_registry, make_song, tmp_path
):
    emu = emulator("aistemsplitter")
    base = ["split", str(make_song("Song.wav", 1.0)), "--provider", "aistemsplitter",
            "--api-key", emu.api_key, "--base-url", emu.base_url, "--out", str(tmp_path)]
    status, _out, err = run_main([*base, "--mode", "separate_vocal"], fast_registry)
    assert status == 2 and "--mode must be one of 2, 4, 6 for aistemsplitter" in err
    status, _out, err = run_main([*base, "--preprocess", "denoise"], fast_registry)
    assert status == 2 and "--preprocess: aistemsplitter offers none" in err
    status, _out, err = run_main([*base, "--stems", "cowbell"], fast_registry)
    assert status == 2 and "cannot return cowbell" in err
    status, _out, err = run_main([*base, "--base-url", "ftp://api.example.com"], fast_registry)
    assert status == 2 and "--base-url: A base URL must be an http(s) address" in err
    assert emu.api_key not in err


def test_a_remote_provider_without_any_key_says_where_to_put_one(
    fast_registry, make_song, tmp_path
):
    argv = ["split", str(make_song("Song.wav", 1.0)), "--provider", "musicgpt",
            "--out", str(tmp_path)]
    status, out, err = run_main(argv, fast_registry)
    assert status == 1 and out == ""
    assert err.strip() == (
        "MusicGPT needs an API key: add one on the Settings page, or set MUSICGPT_API_KEY "
        "in the environment."
    )


def test_a_mistyped_key_option_is_not_echoed(capsys, tmp_path):
    secret = "sk_live_mistyped_0123456789"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["split", "x.wav", "--out", str(tmp_path), "--apikey", secret])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --apikey …" in err and secret not in err
