"""The bundled example: deterministic bytes, stems that sum to the mix, a normal stored input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.errors import InputRejected
from services.examples import EXAMPLES, materialize
from services.inputs import find_input
from services.metrics import lane_figures


def test_the_example_is_the_same_input_everywhere_and_its_stems_sum_to_it(
    settings, tmp_path: Path
) -> None:
    example = EXAMPLES[0]
    stored, refs = materialize(example.id, settings)
    elsewhere, _ = materialize(example.id, dataclasses.replace(settings, data_dir=tmp_path / "b"))
    assert stored.hash == elsewhere.hash  # same bytes, so the same cached results
    assert find_input(stored.hash, settings) is not None and stored.name == example.name
    assert set(refs) == set(example.stems) and all(p.is_file() for p in refs.values())
    assert stored.info.duration_s == pytest.approx(example.seconds)

    mix, rate = sf.read(stored.path, dtype="int32")
    total = sum(sf.read(refs[s], dtype="int32")[0].astype(np.int64) for s in example.stems)
    assert rate == 44100 and np.array_equal(mix, total)  # exactly, not approximately
    for stem in example.stems:  # every stem is really there
        assert np.sqrt(np.mean(sf.read(refs[stem])[0] ** 2)) > 0.005, stem

    again, _ = materialize(example.id, settings)  # reused, not rewritten
    assert again.hash == stored.hash

    figures = lane_figures(stored.path, refs)  # the true stems: they add up and do not leak
    assert figures.residual_db is not None and figures.residual_db <= -60
    assert all(v < -20 for v in figures.leakage_db.values()), figures.leakage_db


def test_an_unknown_example_is_refused(settings) -> None:
    with pytest.raises(InputRejected):
        materialize("no-such-example", settings)
