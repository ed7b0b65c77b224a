"""Quality figures computed on the stems themselves (the Compare page's numbers).

Everything streams: the files are decoded side by side in blocks (:func:`iter_blocks`), only
the first :data:`MAX_SECONDS` are read, and what is kept between blocks is a few sums per stem
(and per pair of stems), so memory does not grow with the track.

SDR and the residual use both channels at 44.1 kHz, as the benchmark does. Leakage and
vocal-in-instrumental work in the short-time Fourier domain (see :class:`Shared`): the energy
two stems have in common, found per frequency bin and 1.5 s stretch so the delays, filtering
and time-varying masks of a provider's processing do not hide it, and debiased so unrelated
stems score far below real leakage (about −35 dB for a few seconds of noise, lower for
longer tracks). A common part cannot tell which stem it belongs to, so both stems of a
leaking pair show it (each relative to its own energy).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.audio.decode import SAMPLE_RATE, iter_blocks
from services.stems import INSTRUMENTAL, VOCALS, family

MAX_SECONDS = 120.0
"""Only the start of a track is analysed: figures settle long before two minutes."""
FRAME = 2048
"""STFT frame (46 ms), non-overlapping Hann windows so frames count as independent samples."""
SEGMENT = 32
"""Frames (1.5 s) over which one gain per frequency bin is fitted. Separators' masks change
over time, so a copy fitted over the whole track misses most of what leaks; much shorter
stretches make two instruments holding the same note look like copies of each other."""
BLOCK_FRAMES = FRAME * SEGMENT
FLOOR_DB = -60.0
"""Figures are clipped here: below it, the difference is not audible nor measurable."""

FIGURE_HELP: dict[str, str] = {
    "sdr": "Signal-to-distortion ratio against the known reference stem, in dB (higher is "
    "better; as in the benchmark, first 2 minutes).",
    "residual": "Energy of the mix minus the sum of the stems, relative to the mix, in dB "
    "(very negative: the stems add back up to the mix).",
    "leakage": "Share of energy a stem has in common with another stem (the worst one), in dB "
    "(very negative: well separated; −60 dB is the floor).",
    "vocal_in_instrumental": "Share of the instrumental's energy that is a copy of the vocal "
    "stem, in dB (very negative: no vocal left in the backing).",
}


@dataclass(frozen=True)
class LaneFigures:
    """One lane's figures; ``None``/a missing key means "not computable for this lane"."""

    sdr_db: dict[str, float] = field(default_factory=dict)
    residual_db: float | None = None
    leakage_db: dict[str, float] = field(default_factory=dict)
    vocal_in_instrumental_db: float | None = None
    seconds_analysed: float = 0.0


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10·log10(Σs² / Σ(s−ŝ)²) over the whole track, both channels."""
    ref = np.asarray(reference, np.float64)
    err = ref - np.asarray(estimate, np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum(err**2), 1e-20)))


def db(ratio: float) -> float:
    """A power ratio in dB, clipped at :data:`FLOOR_DB` (also for 0 and negative estimates)."""
    return float(10 * np.log10(max(ratio, 10 ** (FLOOR_DB / 10))))


class Shared:
    """Accumulates the energy two stems have in common, per frequency bin and 1.5 s stretch.

    In each bin f of each stretch (:data:`SEGMENT` frames t) the common part is fitted with any
    gain and phase, so delays, filtering and slowly changing masks do not hide it: its energy
    is ≈|Σ A·B̄|²/Σ|B|² inside ``a`` and |Σ A·B̄|²/Σ|A|² inside ``b``. The smaller of the two
    (the quieter copy: the leak, not the source) is what the pair has in common; for
    ``a = n + g·b`` with ``n`` unrelated to ``b`` it is the copy g²‖b‖² wherever the copy is
    quieter than ``b`` itself. |Σ A·B̄|² is debiased first (see :meth:`add`), so unrelated
    stems land near zero even on short tracks.
    """

    def __init__(self) -> None:
        self.common_energy = 0.0
        self.energy_a = 0.0
        self.energy_b = 0.0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        """``a``/``b``: STFT frames ``(frames, bins)`` of the same stretch of audio, in runs of
        :data:`SEGMENT` consecutive frames (each run fitted on its own)."""
        shape = (-1, SEGMENT, a.shape[1])
        a, b = a.reshape(shape), b.reshape(shape)
        pa, pb = np.abs(a) ** 2, np.abs(b) ** 2
        product = a * np.conj(b)
        cross, power_a, power_b = product.sum(axis=1), pa.sum(axis=1), pb.sum(axis=1)
        # |Σ A·B̄|² estimates g²(Σ|B|²)² with a bias; for a = n + g·b its expectation is
        # g²((Σ|B|²)² − Σ|B|⁴) + Σ|A|²|B|², which this inverts (expectation 0 when unrelated).
        spread = power_b**2 - np.sum(pb * pb, axis=1)
        fitted = np.where(
            spread > 1e-12 * power_b**2,
            (np.abs(cross) ** 2 - np.sum(pa * pb, axis=1)) * power_b**2 / np.maximum(spread, 1e-30),
            0.0,
        )
        louder = np.maximum(np.maximum(power_a, power_b), 1e-20)
        self.common_energy += float(np.sum(fitted / louder))
        self.energy_a += float(power_a.sum())
        self.energy_b += float(power_b.sum())

    def share(self, of_a: bool = True) -> float:
        """The common energy as a share of ``a``'s energy (``of_a=False``: of ``b``'s)."""
        total = self.energy_a if of_a else self.energy_b
        return self.common_energy / total if total > 0 else 0.0


def lane_figures(
    mix: Path, stems: dict[str, Path], references: dict[str, Path] | None = None
) -> LaneFigures:
    """Every figure for one lane's stems (``references``: stem name → reference audio file).

    A missing ``instrumental`` reference is the sum of the non-vocal references, so a 2-stem
    lane still gets an SDR on a 4-stem example.
    """
    references = dict(references or {})
    scored = sorted(set(stems) & (set(references) | _derivable(references)))
    names = sorted(stems)
    parts = _partition(names)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :] if _comparable(a, b)]
    vocal_pair = _vocal_pair(names)

    energy_mix = energy_residual = 0.0
    energy_ref = dict.fromkeys(scored, 0.0)
    energy_err = dict.fromkeys(scored, 0.0)
    leak = {pair: Shared() for pair in pairs}
    vocal = Shared() if vocal_pair else None
    frames = 0
    with contextlib.ExitStack() as stack:
        files = {f"s:{n}": stems[n] for n in names} | {"mix": mix}
        needed = set(scored) | (set(references) - {VOCALS} if _derivable(references) else set())
        files |= {f"r:{n}": p for n, p in references.items() if n in needed}
        for block in _aligned(stack, files, int(MAX_SECONDS * SAMPLE_RATE)):
            stem_audio = {n: block[f"s:{n}"] for n in names}
            frames += len(block["mix"])
            energy_mix += _energy(block["mix"])
            energy_residual += _energy(block["mix"] - sum(stem_audio[n] for n in parts))
            for name in scored:
                ref = _reference(name, block, references)
                energy_ref[name] += _energy(ref)
                energy_err[name] += _energy(ref - stem_audio[name])
            spectra = {n: _stft(a) for n, a in stem_audio.items()}
            for (a, b), shared in leak.items():
                shared.add(spectra[a], spectra[b])
            if vocal is not None and vocal_pair is not None:
                vox, backing = vocal_pair
                vocal.add(sum(spectra[n] for n in backing), spectra[vox])
    leakage: dict[str, float] = {}
    for (a, b), shared in leak.items():
        for name, of_a in ((a, True), (b, False)):
            leakage[name] = max(leakage.get(name, FLOOR_DB), db(shared.share(of_a)))
    return LaneFigures(
        sdr_db={n: _ratio_db(energy_ref[n], energy_err[n]) for n in scored},
        residual_db=db(energy_residual / energy_mix) if energy_mix > 0 and parts else None,
        leakage_db=leakage,
        vocal_in_instrumental_db=db(vocal.share()) if vocal is not None else None,
        seconds_analysed=frames / SAMPLE_RATE,
    )


def _aligned(
    stack: contextlib.ExitStack, files: dict[str, Path], limit: int
) -> Iterator[dict[str, np.ndarray]]:
    """Blocks of every file side by side, cut to the shortest, until one ends or ``limit``."""
    streams = {
        key: stack.enter_context(contextlib.closing(iter_blocks(path, BLOCK_FRAMES)))
        for key, path in files.items()
    }
    done = 0
    while done < limit:
        block = {key: next(stream, None) for key, stream in streams.items()}
        if any(b is None or len(b) == 0 for b in block.values()):
            return
        n = min(min(len(b) for b in block.values() if b is not None), limit - done)
        done += n
        yield {key: b[:n].astype(np.float64) for key, b in block.items() if b is not None}
        if n < BLOCK_FRAMES:
            return


def _energy(audio: np.ndarray) -> float:
    return float(np.sum(np.square(audio)))


def _ratio_db(signal: float, error: float) -> float:
    return float(10 * np.log10(max(signal, 1e-20) / max(error, 1e-20)))


_WINDOW = np.hanning(FRAME)


def _stft(audio: np.ndarray) -> np.ndarray:
    """Non-overlapping Hann frames of each channel → ``(frames × channels, bins)`` spectra.

    Channels are stacked as more frames, not downmixed: a downmix would halve what differs
    between the channels (e.g. stereo reverb) and so skew every energy share.
    """
    whole = len(audio) // (FRAME * SEGMENT) * FRAME * SEGMENT  # whole segments only
    frames = audio[:whole].T.reshape(-1, FRAME)
    return np.fft.rfft(frames * _WINDOW, axis=1)


def _derivable(references: dict[str, Path]) -> set[str]:
    """Stems whose reference can be built from the given ones (instrumental = non-vocals)."""
    if INSTRUMENTAL not in references and VOCALS in references and len(references) > 1:
        return {INSTRUMENTAL}
    return set()


def _reference(name: str, block: dict[str, np.ndarray], references: dict[str, Path]) -> np.ndarray:
    if name in references:
        return block[f"r:{name}"]
    return sum(block[f"r:{n}"] for n in references if n != VOCALS)  # the instrumental


def _partition(names: Sequence[str]) -> list[str]:
    """The stems that together should make up the mix, each sound counted once.

    vocals + instrumental when a lane returned both; otherwise whole families (a sub-stem such
    as ``drums.kick`` only when its family ``drums`` is not there too).
    """
    if VOCALS in names and INSTRUMENTAL in names:
        return [VOCALS, INSTRUMENTAL]
    return [n for n in names if n == family(n) or family(n) not in names]


def _comparable(a: str, b: str) -> bool:
    """Pairs whose overlap is leakage, not design: not one family, not instrumental vs a part."""
    if family(a) == family(b):
        return False
    if INSTRUMENTAL in (a, b):
        return VOCALS in (a, b)
    return True


def _vocal_pair(names: Sequence[str]) -> tuple[str, list[str]] | None:
    """(vocal stem, the stems that make the instrumental), when a lane has both sides."""
    if VOCALS not in names:
        return None
    if INSTRUMENTAL in names:
        return VOCALS, [INSTRUMENTAL]
    backing = [n for n in _partition(names) if family(n) != VOCALS]
    return (VOCALS, backing) if backing else None
