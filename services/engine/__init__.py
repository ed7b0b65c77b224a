"""The built-in local separation engine (Spleeter 2-stem U-Net + signal processing).

Public surface: :func:`separate` for in-memory signals, :func:`separate_stream` for bounded-memory
streaming of long tracks, :func:`get_model` (cached, thread-safe) and :data:`MODE_STEMS`.

Threading: the model loads once under a lock; inference takes no lock and is safe to run from
several threads at once (frozen eval-mode modules, ``torch.inference_mode``, no shared state) —
concurrent jobs just share the cores and each holds its own chunk-sized working memory.

OpenMP threads are told to sleep rather than spin while waiting (``OMP_WAIT_POLICY=PASSIVE``,
unless the environment already sets it). It must happen before torch is first imported; torch
is imported only through this package. Measured on a busy 2-core machine: the Wiener step's
many short parallel regions took 3–10 s per 36 s chunk with spinning threads, ~1 s without.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from services.engine.model import get_model, set_threads
from services.engine.pipeline import (
    DEFAULT_OPTIONS,
    MODE_STEMS,
    SAMPLE_RATE,
    SPLEETER_BASELINE,
    EngineOptions,
    separate,
    separate_chunk,
    separate_stream,
)
from services.engine.weights import WeightsMissing

__all__ = [
    "DEFAULT_OPTIONS",
    "MODE_STEMS",
    "SAMPLE_RATE",
    "SPLEETER_BASELINE",
    "EngineOptions",
    "WeightsMissing",
    "get_model",
    "separate",
    "separate_chunk",
    "separate_stream",
    "set_threads",
]
