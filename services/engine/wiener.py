"""Multichannel Wiener filtering (EM refinement) of source spectrograms, norbert-style.

Starting from masked estimates ``y_j = M_j · x`` (``M_j`` the network's ratio masks), each
iteration fits every source a power spectrogram ``v_j(f, t)`` and a 2×2 spatial covariance
``R_j(f)``, then re-filters the stereo mix with ``G_j = (v_j R_j + δ_j I) · C⁻¹`` where
``C = Σ_j v_j R_j + δ I`` (δ a small load relative to the bin's power, shared out as δ_j by
power). The filters sum to the identity, so the sources still sum to the mix. Unlike a
per-channel mask, a source may use the stereo image (e.g. a centred voice): that is the gain.
Frequencies are processed in bands so memory stays small; R_j is per frequency, so banding is
exact.
"""

from __future__ import annotations

import torch

EPS = 1e-10
RELATIVE_LOAD = 1e-3
BAND_BINS = 256


def refine(mix: torch.Tensor, masks: torch.Tensor, iterations: int = 1) -> torch.Tensor:
    """``mix`` (2, F, T) complex, ``masks`` (S, 2, F, T) real → sources (S, 2, F, T) complex.

    Band by band, straight into the output, so the only full-size allocation is the result.
    The first pass takes its statistics from the masks and the mix's own (shared) powers, so
    the masked estimates are never built: ≈1.5× less CPU than filtering them.
    """
    out = torch.empty(masks.shape, dtype=mix.dtype)
    for lo in range(0, mix.shape[1], BAND_BINS):
        band = slice(lo, lo + BAND_BINS)
        x, m = mix[:, band], masks[:, :, band]
        if not iterations:
            out[:, :, band] = m * x
            continue
        y = _filter(x, m.square() * _power(x), m[:, 0] * m[:, 1] * _cross(x))
        for _ in range(iterations - 1):
            y = _filter(x, _power(y), _cross(y))
        out[:, :, band] = y
    return out


def _power(z: torch.Tensor) -> torch.Tensor:
    return z.real.square() + z.imag.square()


def _cross(z: torch.Tensor) -> torch.Tensor:
    """``z[..., 0, f, t] · conj(z[..., 1, f, t])``: the stereo cross-power."""
    return z.select(-3, 0) * z.select(-3, 1).conj()


def _filter(x: torch.Tensor, power: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
    """One EM pass from the sources' channel powers (S, 2, F, T) and cross-powers (S, F, T).

    Hermitian 2×2 algebra written out (diagonals and det are real). ``C⁻¹x`` is shared by all
    sources, so each source but the last (the remainder) then costs one 2×2 product per bin.
    """
    v = power.mean(1)  # (S, F, T)
    norm = v.sum(-1, keepdim=True) + EPS  # (S, F, 1)
    r00 = power[:, 0].sum(-1, keepdim=True) / norm
    r11 = power[:, 1].sum(-1, keepdim=True) / norm
    r01 = cross.sum(-1, keepdim=True) / norm
    c00 = (v * r00).sum(0)
    c11 = (v * r11).sum(0)
    c01 = (v * r01).sum(0)
    # Diagonal loading relative to the bin's power: mono (or near-mono) input makes C singular.
    # Each source takes its power share of it, so the filters still sum to the identity.
    load = RELATIVE_LOAD * (c00 + c11) + EPS
    total = v.sum(0)
    share = torch.where(total > 0, v / total.clamp_min(EPS), 1.0 / v.shape[0])
    c00, c11 = c00 + load, c11 + load
    det = c00 * c11 - (c01.real.square() + c01.imag.square())
    z0 = (c11 * x[0] - c01 * x[1]) / det  # z = C⁻¹ x
    z1 = (c00 * x[1] - c01.conj() * x[0]) / det
    # y_j = (v_j R_j + share_j · load · I) z for all but the last source; Σ_j of the filters is
    # C C⁻¹ = I, so the last source is the mix minus the others: one filter product saved, and
    # the sources sum to the mix exactly, however ill-conditioned C is (near-mono bins).
    v, r00, r01, r11, own = v[:-1], r00[:-1], r01[:-1], r11[:-1], share[:-1] * load
    y0 = v * (r00 * z0 + r01 * z1) + own * z0
    y1 = v * (r01.conj() * z0 + r11 * z1) + own * z1
    out = torch.stack([y0, y1], 1)
    return torch.cat([out, (x - out.sum(0))[None]])
