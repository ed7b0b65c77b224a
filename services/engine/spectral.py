"""STFT framing and the network's ratio masks, as Spleeter computes them.

Spleeter works on the magnitude of the first 1024 bins (0–11 kHz) of a 4096/1024 Hann STFT, in
segments of 512 frames, and builds soft masks ``est_i² / Σ est²``. Unlike Spleeter, which
zeroes everything above 11 kHz, :func:`full_band` extends the masks over the whole band so the
masks still partition unity and the stems sum back to the mix.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from services.engine.model import SpleeterModel

N_FFT = 4096
HOP = 1024
BINS = N_FFT // 2 + 1  # 2049
NET_BINS = 1024  # the network sees 0 .. 11 kHz
SEGMENT = 512  # frames per network input
MIN_SEGMENT = 64  # the U-Net halves time six times, so inputs must be a multiple of 64
EPS = 1e-10
HIGH_REF_BINS = 64  # mask of the top 64 network bins (~10.3–11 kHz) stands in above 11 kHz

_WINDOW = torch.hann_window(N_FFT)


def stft(wave: torch.Tensor) -> torch.Tensor:
    """(2, n) float → (2, 2049, frames) complex64 (centred frames, zero padded)."""
    return torch.stft(
        wave, N_FFT, HOP, window=_WINDOW, center=True, pad_mode="constant", return_complex=True
    )


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`, trimmed to ``length`` samples."""
    return torch.istft(spec, N_FFT, HOP, window=_WINDOW, center=True, length=length)


def estimate_sources(
    model: SpleeterModel,
    mag: torch.Tensor,
    min_segment: int = SEGMENT,
    pad_mode: str = "mirror",
) -> torch.Tensor:
    """Network magnitude estimates for (2, 1024, T) → (sources, 2, 1024, T).

    Frames are padded to whole 512-frame segments (inputs shorter than a segment: to a multiple
    of ``min_segment``), run one segment at a time: batching them measured no faster on CPU and
    cost ~75 MB of activations per extra segment. ``pad_mode="mirror"`` fills the padding with
    the signal mirrored at its end rather than Spleeter's zeros: the network was trained on
    whole segments of music, and with a short clip's segment padded with silence it measured
    0.4 dB worse (bench/README.md). It only matters for the last, partial segment.
    """
    frames = mag.shape[-1]
    seg = SEGMENT if frames >= SEGMENT else -(-frames // min_segment) * min_segment
    n_seg = max(1, -(-frames // seg))
    x = _pad(mag, n_seg * seg, pad_mode)  # (2, F, n_seg*T)
    est = torch.empty((len(model.nets), *x.shape), dtype=x.dtype)
    for i in range(n_seg):
        part = x[..., i * seg : (i + 1) * seg].transpose(1, 2).unsqueeze(0)  # (1, 2, T, F)
        part = part.contiguous(memory_format=torch.channels_last)
        est[..., i * seg : (i + 1) * seg] = model(part)[:, 0].transpose(2, 3)
    return est[..., :frames]


def _pad(mag: torch.Tensor, frames: int, mode: str) -> torch.Tensor:
    """Extend the last axis to ``frames``: zeros, or mirror images (repeated if short)."""
    if mode == "zero":
        return F.pad(mag, (0, frames - mag.shape[-1]))
    while mag.shape[-1] < frames:
        need = frames - mag.shape[-1]
        mag = torch.cat([mag, mag[..., -need:].flip(-1)], dim=-1)
    return mag


def ratio_masks(est: torch.Tensor, exponent: float = 2.0) -> torch.Tensor:
    """Spleeter's soft masks (est^p + eps/S) / (Σ est^p + eps): they sum to one per bin."""
    power = est.pow(exponent)
    return (power + EPS / est.shape[0]) / (power.sum(0, keepdim=True) + EPS)


def full_band(masks: torch.Tensor, high_band: str = "extend") -> torch.Tensor:
    """Masks over 1024 bins → all 2049 bins.

    ``extend``: above 11 kHz, each frame reuses the mean mask of the top network bins, so masks
    still sum to one and nothing is lost. ``zero``: Spleeter's own behaviour (baseline only).
    """
    extra = BINS - masks.shape[-2]
    if high_band == "zero":
        return F.pad(masks, (0, 0, 0, extra))
    top = masks[..., -HIGH_REF_BINS:, :].mean(-2, keepdim=True)
    return torch.cat([masks, top.expand(*top.shape[:-2], extra, top.shape[-1])], dim=-2)
