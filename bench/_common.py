"""Shared by the benchmarks: repo import path, the benchmark data folder, SDR."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "benchdata" / "real"

from services.metrics import sdr  # noqa: E402, F401  (re-exported: one definition, shared)


def track_dirs(data: Path) -> list[Path]:
    return sorted(p for p in data.iterdir() if (p / "mixture.wav").is_file())
