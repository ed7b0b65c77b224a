"""Local separation: the U-Net's vocal/accompaniment masks, DSP sub-masks, chunked streaming.

Per chunk: stereo STFT → network magnitude estimates (0–11 kHz) → ratio masks extended over the
full band → one multichannel Wiener pass (vocals / accompaniment) → for 4/6 stems, DSP fractions
of the accompaniment → iSTFT per stem (the last one: the chunk minus the others).

Long inputs are cut into overlapping chunks (default ≈35.7 s = exactly three 512-frame network
segments, 3 s overlap). Each chunk is separated on its own; its stems are cross-faded into the
previous chunk's over the overlap with complementary raised-cosine weights. Within a chunk the
stem masks partition unity and the fade weights sum to one, so the stems always sum to the mix;
memory stays bounded by the chunk size whatever the track length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from services.engine.decompose import accompaniment_masks
from services.engine.model import get_model
from services.engine.modes import MODE_STEMS
from services.engine.spectral import (
    HOP,
    MIN_SEGMENT,
    NET_BINS,
    SEGMENT,
    estimate_sources,
    full_band,
    istft,
    ratio_masks,
    stft,
)
from services.engine.wiener import refine
from services.progress import ProgressCallback, ProgressEvent, ignore

SAMPLE_RATE = 44100


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Tunables of the local engine; the defaults are what the app runs."""

    chunk_frames: int | None = (3 * SEGMENT - 1) * HOP  # None: the whole input at once
    overlap_frames: int = 3 * SAMPLE_RATE
    high_band: str = "extend"  # "zero" reproduces Spleeter's 11 kHz cut (baseline only)
    # Short inputs pad to a multiple of ``min_segment`` frames, filled by ``pad_mode``
    # ("mirror" or Spleeter's "zero"; see spectral.estimate_sources).
    min_segment: int = SEGMENT
    pad_mode: str = "mirror"
    mask_exponent: float = 1.0  # 2 = Spleeter's own soft masks; 1 = its Wiener initialisation
    wiener_iterations: int = 1  # multichannel Wiener/EM passes (services.engine.wiener)

    def __post_init__(self) -> None:
        if self.pad_mode not in ("mirror", "zero") or self.min_segment % MIN_SEGMENT:
            raise ValueError("pad_mode must be mirror or zero, min_segment a multiple of 64")
        if self.chunk_frames is not None and self.chunk_frames <= 2 * self.overlap_frames:
            raise ValueError("chunk_frames must exceed twice overlap_frames")


DEFAULT_OPTIONS = EngineOptions()
# Plain Spleeter inference, the benchmarks' baseline: whole input at once, 11 kHz cut, 512-frame
# padding, squared ratio masks, no refinement.
SPLEETER_BASELINE = EngineOptions(
    chunk_frames=None, high_band="zero", pad_mode="zero", mask_exponent=2.0, wiener_iterations=0
)


def separate(
    samples: np.ndarray,
    mode: str,
    progress: ProgressCallback = ignore,
    options: EngineOptions = DEFAULT_OPTIONS,
) -> dict[str, np.ndarray]:
    """Separate an in-memory (n, 2) float32 44.1 kHz signal into the stems of ``mode``."""
    _check(samples)
    _check_mode(mode)
    out = {stem: np.empty_like(samples, dtype=np.float32) for stem in MODE_STEMS[mode]}
    pos = 0
    for block in separate_stream([samples], mode, len(samples), progress, options):
        size = len(next(iter(block.values())))
        for stem, data in block.items():
            out[stem][pos : pos + size] = data
        pos += size
    return out


def separate_stream(
    blocks: Iterable[np.ndarray],
    mode: str,
    total_frames: int,
    progress: ProgressCallback = ignore,
    options: EngineOptions = DEFAULT_OPTIONS,
) -> Iterator[dict[str, np.ndarray]]:
    """Consume (m, 2) blocks of any size; yield consecutive ``{stem: (k, 2)}`` output blocks.

    ``total_frames`` (an estimate is fine) only scales progress, reported once per chunk.
    ``progress`` may raise :class:`services.errors.JobCancelled`; it propagates unchanged.
    """
    _check_mode(mode)
    overlap = options.overlap_frames if options.chunk_frames else 0
    done = 0
    tail: dict[str, np.ndarray] | None = None
    for chunk in _chunks(blocks, options.chunk_frames, overlap):
        stems = separate_chunk(chunk, mode, options)
        if tail is not None:
            _crossfade(tail, stems)
        split = max(0, len(chunk) - overlap)
        tail = {s: v[split:] for s, v in stems.items()}
        head = {s: v[:split] for s, v in stems.items()}
        done += split
        progress(ProgressEvent(min(done / max(total_frames, 1), 0.99), "Separating"))
        if split:
            yield head
    if tail is not None and len(next(iter(tail.values()))):
        yield tail
    progress(ProgressEvent(1.0, "Separated"))


def separate_chunk(
    chunk: np.ndarray, mode: str, options: EngineOptions = DEFAULT_OPTIONS
) -> dict[str, np.ndarray]:
    """One chunk, no overlap handling: network masks → source spectrograms → stems."""
    _check(chunk)
    if not len(chunk):
        return {stem: np.zeros((0, 2), np.float32) for stem in MODE_STEMS[mode]}
    with torch.inference_mode():
        wave = torch.from_numpy(np.ascontiguousarray(chunk.T, dtype=np.float32))
        spec = stft(wave)
        mag = spec[:, :NET_BINS].abs()  # the network sees only these bins
        est = estimate_sources(get_model(), mag, options.min_segment, options.pad_mode)
        del mag
        # (2 sources, 2 channels, F, T) masks, then the sources' complex spectrograms.
        masks = full_band(ratio_masks(est, options.mask_exponent), options.high_band)
        del est
        vocals, accompaniment = refine(spec, masks, options.wiener_iterations)
        del masks, spec
        # Accompaniment fractions per stem (each (F, T), summing to one); applied lazily so
        # only one stem's spectrogram exists at a time. While the masks partition the mix, the
        # last stem needs no iSTFT: the iSTFT is linear and reconstructs the chunk exactly, so
        # that stem is the chunk minus the others.
        fractions = (
            {}
            if mode == "2"
            else accompaniment_masks(accompaniment.abs().mean(0), MODE_STEMS[mode])
        )
        out = {"vocals": istft(vocals, len(chunk)).T.numpy()}
        rest = MODE_STEMS[mode][1:]
        remainder = rest[-1] if options.high_band == "extend" else None
        for stem in rest:
            if stem != remainder:
                frac = fractions.get(stem)
                part = accompaniment if frac is None else accompaniment * frac
                out[stem] = istft(part, len(chunk)).T.numpy()
        if remainder:
            out[remainder] = (chunk - sum(out.values())).astype(np.float32, copy=False)
        return {stem: out[stem] for stem in MODE_STEMS[mode]}


def _check(samples: np.ndarray) -> None:
    if samples.ndim != 2 or samples.shape[1] != 2:
        raise ValueError(f"expected (n, 2) stereo samples, got shape {samples.shape}")


def _check_mode(mode: str) -> None:
    if mode not in MODE_STEMS:
        raise ValueError(f"unknown local mode {mode!r}")


def _chunks(
    blocks: Iterable[np.ndarray], chunk_frames: int | None, overlap: int
) -> Iterator[np.ndarray]:
    """Regroup blocks into chunks of ``chunk_frames`` that overlap by ``overlap`` frames.

    The last chunk is shorter; it is skipped when it would hold only already-seen overlap.
    """
    pending: list[np.ndarray] = []
    buffered = 0
    emitted = False
    for block in blocks:
        _check(block)
        pending.append(block)
        buffered += len(block)
        while chunk_frames and buffered >= chunk_frames:
            joined = np.concatenate(pending)
            yield joined[:chunk_frames]
            emitted = True
            pending = [joined[chunk_frames - overlap :]]
            buffered = len(pending[0])
    if buffered > (overlap if emitted else 0) or not emitted:
        yield np.concatenate(pending) if pending else np.zeros((0, 2), np.float32)


def _crossfade(previous_tail: dict[str, np.ndarray], stems: dict[str, np.ndarray]) -> None:
    """Blend the previous chunk's tail into the head of ``stems`` (in place); weights sum to 1."""
    n = len(next(iter(previous_tail.values())))
    fade_in = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)[:, None]
    for stem, old in previous_tail.items():
        head = stems[stem][:n]
        head *= fade_in
        head += old * (1.0 - fade_in)
