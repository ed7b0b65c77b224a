"""``python -m services.cli split``: real subprocesses for exit codes and output, in-process for
the paths that need a test provider."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from test_jobs_providers import TEST_PROVIDERS, write_tone

from services.cli import main
from services.config import load_settings
from services.jobs.store import JobStore

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STEMDECK_DATA_DIR": str(data_dir)}
    env.pop("STEMDECK_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_line_error(stderr: str) -> None:
    assert stderr.strip(), "no message on stderr"
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr


def test_split_with_the_local_engine(make_song, data_dir: Path, tmp_path: Path) -> None:
    song = make_song("Three Seconds.wav", 3.0)
    out = tmp_path / "out"
    result = run_cli(
        "split",
        str(song),
        "--provider",
        "local",
        "--mode",
        "2",
        "--format",
        "wav",
        "--bit-depth",
        "24",
        "--out",
        str(out),
        data_dir=data_dir,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [stem for stem, _ in lines] == ["vocals", "instrumental"]
    for stem, path in lines:
        assert Path(path) == (out / f"{stem}.wav").resolve()
        info = sf.info(path)
        assert (info.subtype, info.channels, info.samplerate) == ("PCM_24", 2, 44100)
        assert abs(info.duration - 3.0) < 0.05


def test_bad_input_file_exits_1_with_one_line(data_dir: Path, tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp3"
    fake.write_text("these are my lyrics, not audio\n" * 50)
    result = run_cli("split", str(fake), "--out", str(tmp_path / "out"), data_dir=data_dir)
    assert result.returncode == 1
    assert_one_line_error(result.stderr)
    assert result.stdout == ""


def test_bad_arguments_exit_2_in_a_real_process(data_dir: Path, tmp_path: Path) -> None:
    result = run_cli("split", "x.wav", "--out", str(tmp_path), "--format", "ogg", data_dir=data_dir)
    assert result.returncode == 2
    assert_one_line_error(result.stderr)
    assert "--format" in result.stderr


def test_missing_input_exits_1(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.wav"
    assert main(["split", str(missing), "--out", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"No such file: {missing}\n"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["split"],
        ["split", "x.wav"],  # --out is required
        ["split", "x.wav", "--out", "o", "--format", "ogg"],
        ["split", "x.wav", "--out", "o", "--bit-depth", "20"],
        ["split", "x.wav", "--out", "o", "--provider", "nope"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args, registry=TEST_PROVIDERS)
    assert info.value.code == 2
    assert_one_line_error(capsys.readouterr().err)


def test_unknown_mode_is_a_usage_error(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_tone(tmp_path / "in.wav")
    assert main(["split", str(source), "--mode", "7", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert "--mode must be one of 2, 4, 6 for local" in err


def test_failed_job_exits_1_with_its_message(data_dir: Path, tmp_path: Path) -> None:
    source = write_tone(tmp_path / "in.wav")
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["split", str(source), "--provider", "failing", "--out", str(tmp_path / "o")],
        registry=TEST_PROVIDERS,
        out=out,
        err=err,
    )
    assert code == 1 and out.getvalue() == ""
    assert err.getvalue() == "The band service is down; try again later.\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal_and_cached_rerun(data_dir: Path, tmp_path: Path) -> None:
    source = write_tone(tmp_path / "in.wav")
    argv = [
        "split",
        str(source),
        "--provider",
        "bands",
        "--format",
        "mp3",
        "--bitrate",
        "192",
        "--out",
        str(tmp_path / "o"),
    ]
    out, err = io.StringIO(), _Terminal()
    assert main(argv, registry=TEST_PROVIDERS, out=out, err=err) == 0
    assert "\r" in err.getvalue() and "100%" in err.getvalue()
    first = out.getvalue()
    assert [line.split("\t")[0] for line in first.splitlines()] == ["bass", "other"]
    assert all(Path(line.split("\t")[1]).suffix == ".mp3" for line in first.splitlines())

    out, err = io.StringIO(), _Terminal()
    assert main([*argv, "--quiet"], registry=TEST_PROVIDERS, out=out, err=err) == 0
    assert err.getvalue() == "" and out.getvalue() == first  # no progress with --quiet
    store = JobStore(load_settings().database)
    assert len(store.list()) == 1  # the second run reused the stored result
    store.close()
