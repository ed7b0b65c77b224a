"""Export formats a user can pick for stems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Container = Literal["wav", "flac", "mp3"]
MP3_BITRATES = (128, 192, 256, 320)


@dataclass(frozen=True, slots=True)
class ExportFormat:
    """``wav``/``flac`` with a bit depth (16 or 24), or ``mp3`` with a bitrate in kbit/s."""

    container: Container = "wav"
    bit_depth: Literal[16, 24] = 16
    bitrate_kbps: int = 320

    def __post_init__(self) -> None:
        if self.container not in ("wav", "flac", "mp3"):
            raise ValueError(f"unknown format {self.container!r}")
        if self.bit_depth not in (16, 24):
            raise ValueError("bit depth must be 16 or 24")
        if self.bitrate_kbps not in MP3_BITRATES:
            raise ValueError(f"MP3 bitrate must be one of {MP3_BITRATES}")

    @property
    def extension(self) -> str:
        return self.container

    @property
    def label(self) -> str:
        if self.container == "mp3":
            return f"MP3 {self.bitrate_kbps} kbit/s"
        return f"{self.container.upper()} {self.bit_depth}-bit"

    def as_options(self) -> dict[str, object]:
        """The job-record form (JSON-safe), part of the result cache key."""
        if self.container == "mp3":
            return {"format": "mp3", "bitrate_kbps": self.bitrate_kbps}
        return {"format": self.container, "bit_depth": self.bit_depth}

    @classmethod
    def from_options(cls, options: dict[str, object]) -> ExportFormat:
        container = str(options.get("format", "wav"))
        if container == "mp3":
            return cls("mp3", bitrate_kbps=int(options.get("bitrate_kbps", 320)))  # type: ignore[arg-type]
        return cls(container, bit_depth=int(options.get("bit_depth", 16)))  # type: ignore[arg-type]
