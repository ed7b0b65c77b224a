"""The 2-source Spleeter model, loaded once per process.

Loading is guarded by a lock and cached (``functools.lru_cache``), so concurrent first calls
build one model. Inference needs no lock: the modules are frozen in eval mode and only read
under ``torch.inference_mode()``, so concurrent jobs are safe (they just share the cores).
"""

from __future__ import annotations

import functools
import threading

import torch
from torch import nn

from services.engine.unet import UNet, for_inference
from services.engine.weights import iter_state_dicts

SOURCES: tuple[str, ...] = ("vocals", "accompaniment")
_LOCK = threading.Lock()


class SpleeterModel(nn.Module):
    """One U-Net per source; ``forward`` returns magnitude estimates stacked on a new dim 0."""

    def __init__(self) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({s: UNet() for s in SOURCES})

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, 2, T, F) magnitudes → (sources, B, 2, T, F) estimates."""
        return torch.stack([self.nets[s](mag) for s in SOURCES])


@functools.lru_cache(maxsize=1)
def _build() -> SpleeterModel:
    with torch.device("meta"):  # no throw-away random init: parameters come from the files
        model = SpleeterModel()
    for source, state in iter_state_dicts():  # one checkpoint in memory at a time
        net = model.nets[source]
        for name, buf in net.named_buffers():
            state.setdefault(name, torch.zeros_like(buf, device="cpu"))  # BN step counters
        net.load_state_dict(state, strict=True, assign=True)
        for_inference(net)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def get_model() -> SpleeterModel:
    """The process-wide model (first call reads ~120 MB of weights)."""
    with _LOCK:
        return _build()


def set_threads(threads: int) -> None:
    """Apply ``Settings.torch_threads`` (0 keeps torch's default: all cores)."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
