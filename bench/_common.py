"""Shared by the benchmarks: repo import path, the benchmark data folder, SDR."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "benchdata" / "real"


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10·log10(Σs² / Σ(s−ŝ)²) over the whole track, both channels."""
    ref = np.asarray(reference, np.float64)
    err = ref - np.asarray(estimate, np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-20)))


def track_dirs(data: Path) -> list[Path]:
    return sorted(p for p in data.iterdir() if (p / "mixture.wav").is_file())
