"""``python -m services.cli split INPUT …``: the same service path as the web app, in a shell.

stdout carries only results (``<stem>\\t<path>`` per stem, canonical order) so the output can
be piped; progress goes to stderr when it is a terminal. Errors are one human line on stderr:
exit 2 for usage mistakes, 1 for input or processing failures, never a traceback.

Every provider in the registry works the same way: ``--provider NAME --api-key KEY --base-url
URL`` (the key defaults to ``<NAME>_API_KEY`` or the key saved on the Settings page; the base
URL is the provider's, exactly as documented, e.g. ``https://api.aistemsplitter.org/v1``).
``--mode``, ``--stems`` and ``--preprocess`` are checked against the provider's capabilities
after parsing. A key given here is never printed, logged or stored with the job.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import TextIO

from services import stems
from services.audio.formats import MP3_BITRATES, ExportFormat
from services.config import Settings, load_settings
from services.errors import InputRejected, StemDeckError
from services.inputs import InputInfo, ingest_path, ingest_url
from services.jobs.model import Job, JobSpec, JobStatus
from services.providers import keys
from services.providers.base import Capabilities
from services.providers.credentials import Credential
from services.providers.registry import DEFAULT, Registry
from services.runtime import Runtime

log = logging.getLogger(__name__)

PROG = "python -m services.cli"
POLL_S = 0.2


class UsageError(Exception):
    """A choice the provider's capabilities rule out: exit 2, like argparse's own errors."""


class _Parser(argparse.ArgumentParser):
    """argparse that prints one line (not the whole usage) before exiting 2.

    Stray arguments are named by their options only: a mistyped ``--apikey KEY`` must not
    echo the key back to the terminal.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        head, sep, rest = message.partition("unrecognized arguments: ")
        if sep:
            shown = [a if a.startswith("-") else "…" for a in rest.split()]
            message = head + sep + " ".join(shown)
        self.exit(2, f"{self.prog}: error: {keys.redact(message)}\n")


def csv(value: str) -> tuple[str, ...]:
    """``a,b , c`` → ``("a", "b", "c")``."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def build_parser(registry: Registry = DEFAULT) -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Split music into stems.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    split = commands.add_parser("split", help="split one file or URL into stems")
    split.add_argument("input", help="an audio file path or an http(s) URL")
    split.add_argument("--provider", default="local", choices=registry.names())
    split.add_argument(
        "--mode", help="a mode of the provider (local: 2, 4 or 6); default: its first mode"
    )
    split.add_argument(
        "--stems",
        type=csv,
        default=(),
        metavar="A,B,…",
        help="canonical stem names, where the provider takes a stem list (e.g. drums.kick)",
    )
    split.add_argument(
        "--preprocess",
        type=csv,
        default=(),
        metavar="X,Y",
        help="clean-up before separation, where the provider offers it (e.g. denoise)",
    )
    split.add_argument(
        "--api-key",
        metavar="KEY",
        help="the provider's API key (default: <PROVIDER>_API_KEY or the key saved in the "
        "app). Other local users can see command lines: prefer the variable.",
    )
    split.add_argument(
        "--base-url",
        metavar="URL",
        help="the provider's API base URL as documented (default: <PROVIDER>_BASE_URL or the "
        "provider's own)",
    )
    split.add_argument("--format", default="wav", choices=("wav", "flac", "mp3"))
    split.add_argument("--bit-depth", type=int, default=16, choices=(16, 24))
    split.add_argument(
        "--bitrate", type=int, default=320, choices=MP3_BITRATES, help="MP3 bitrate in kbit/s"
    )
    split.add_argument("--out", required=True, type=Path, help="folder for the stem files")
    split.add_argument(
        "--fresh", action="store_true", help="separate again even if this exact job was done before"
    )
    split.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def export_format(args: argparse.Namespace) -> ExportFormat:
    return ExportFormat(args.format, bit_depth=args.bit_depth, bitrate_kbps=args.bitrate)


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def check_local_input(source: str) -> None:
    """Name the missing file at once, before the engine loads (the quick, common mistake)."""
    if not is_url(source) and not Path(source).expanduser().is_file():
        raise InputRejected(f"No such file: {source}")


def ingest(source: str, settings: Settings) -> InputInfo:
    if is_url(source):
        return ingest_url(source, settings)
    return ingest_path(Path(source).expanduser(), settings)


def job_spec(args: argparse.Namespace, stored: InputInfo) -> JobSpec:
    """Everything the user chose on the command line, as the job's cache key sees it."""
    return JobSpec.for_input(
        stored, args.provider, args.mode, export_format(args), args.stems, args.preprocess
    )


def check_choices(args: argparse.Namespace, caps: Capabilities) -> None:
    """Mode, stems and pre-processing against the provider's capabilities (fills the mode)."""
    modes = [m.id for m in caps.modes]
    args.mode = args.mode or modes[0]
    if args.mode not in modes:
        raise UsageError(f"--mode must be one of {', '.join(modes)} for {args.provider}")
    known = {"instrumental", *caps.selectable_stems, *(s for m in caps.modes for s in m.stems)}
    unknown = [s for s in args.stems if s not in known]
    if unknown:
        raise UsageError(
            f"--stems: {args.provider} cannot return {', '.join(unknown)} "
            f"(choose from {', '.join(sorted(known))})"
        )
    extra = [p for p in args.preprocess if p not in caps.preprocessing]
    if extra:
        offered = ", ".join(caps.preprocessing) or "none"
        raise UsageError(f"--preprocess: {args.provider} offers {offered}")


def credential(args: argparse.Namespace) -> Credential | None:
    """The command line's key/base URL (an invalid URL is a usage error)."""
    try:
        given = Credential(args.api_key, args.base_url)
    except InputRejected as exc:
        raise UsageError(f"--base-url: {exc.user_message}") from None
    return given or None


def watch(runtime: Runtime, job_id: str, err: TextIO, show: bool) -> Job:
    """Wait for the job, drawing a one-line progress display on a terminal."""
    while True:
        job = runtime.wait(job_id, POLL_S)
        if show:
            eta = f", about {job.eta_s:.0f} s left" if job.eta_s is not None else ""
            err.write(f"\r\x1b[2K{job.progress:4.0%} {job.stage}{eta}")
            err.flush()
        if job.status.terminal:
            if show:
                err.write("\n")
            return job


def copy_stems(runtime: Runtime, job: Job, out: Path) -> list[tuple[str, Path]]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for artifact in sorted(job.artifacts, key=lambda a: stems.sort_key(a.stem)):
        src = runtime.artifact_path(job, artifact.file)
        dest = out / f"{artifact.stem}{src.suffix}"
        shutil.copyfile(src, dest)
        written.append((artifact.stem, dest.resolve()))
    return written


def split(
    args: argparse.Namespace, settings: Settings, registry: Registry, out: TextIO, err: TextIO
) -> int:
    session = credential(args)
    check_local_input(args.input)
    runtime = Runtime.start(settings, registry)
    try:
        check_choices(args, runtime.provider(args.provider).capabilities)
        if problem := runtime.key_problem(args.provider, session):
            raise problem.error()
        stored = ingest(args.input, settings)
        job = runtime.submit(job_spec(args, stored), fresh=args.fresh, session=session)
        try:
            job = watch(runtime, job.id, err, show=not args.quiet and err.isatty())
        except KeyboardInterrupt:
            runtime.cancel(job.id)
            err.write("\nCancelled.\n")
            return 130
        if job.status is not JobStatus.SUCCEEDED:
            err.write(f"{job.error or 'The job did not finish.'}\n")
            return 1
        for stem, path in copy_stems(runtime, job, args.out):
            out.write(f"{stem}\t{path}\n")
        return 0
    finally:
        runtime.shutdown()


def log_path(settings: Settings) -> Path:
    return settings.data_dir / "logs" / "cli.log"


def main(
    argv: list[str] | None = None,
    registry: Registry = DEFAULT,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the CLI; returns the exit status (argparse exits 2 itself on usage errors)."""
    out, err = out or sys.stdout, err or sys.stderr
    args = build_parser(registry).parse_args(argv)
    settings: Settings | None = None
    try:
        settings = load_settings()
        return split(args, settings, registry, out, err)
    except UsageError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return 2
    except StemDeckError as exc:
        err.write(f"{exc.user_message}\n")
    except KeyboardInterrupt:
        err.write("Interrupted.\n")
        return 130
    except (OSError, ValueError) as exc:
        err.write(f"{PROG}: {keys.redact(str(exc))}\n")
    except Exception:
        log.exception("internal error")
        where = log_path(settings) if settings else "the log"
        err.write(f"{PROG}: internal error; details are in {where}\n")
    return 1


def _log_to_file() -> None:
    """Details (tracebacks of internal errors) go to a log file, never to the terminal."""
    try:
        path = log_path(load_settings())
        path.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError):
        logging.getLogger().addHandler(logging.NullHandler())  # never Python's stderr fallback
        return  # main() reports the bad setting
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(keys.RedactFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])


if __name__ == "__main__":
    _log_to_file()
    sys.exit(main())
