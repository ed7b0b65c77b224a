"""The built-in local separation engine (Spleeter 2-stem U-Net + signal processing).

Public surface: :func:`separate` for in-memory signals, :func:`separate_stream` for bounded-memory
streaming of long tracks, :func:`get_model` (cached, thread-safe) and :data:`MODE_STEMS`. Names
are imported on first use, so reading :data:`MODE_STEMS` (capabilities, pages, the CLI's
argument check) does not pay the multi-second torch import.

Threading: the model loads once under a lock; inference takes no lock and is safe to run from
several threads at once (frozen eval-mode modules, ``torch.inference_mode``, no shared state) —
concurrent jobs just share the cores and each holds its own chunk-sized working memory.

OpenMP threads are told to sleep rather than spin while waiting (``OMP_WAIT_POLICY=PASSIVE``,
unless the environment already sets it). It must happen before torch is first imported; torch
is imported only through this package. Measured on a busy 2-core machine: the Wiener step's
many short parallel regions took 3–10 s per 36 s chunk with spinning threads, ~1 s without.
"""

import importlib
import os
import threading
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_HOME: dict[str, str] = {
    "DEFAULT_OPTIONS": "pipeline",
    "MODE_STEMS": "modes",
    "SAMPLE_RATE": "pipeline",
    "SPLEETER_BASELINE": "pipeline",
    "EngineOptions": "pipeline",
    "WeightsMissing": "weights",
    "get_model": "model",
    "separate": "pipeline",
    "separate_chunk": "pipeline",
    "separate_stream": "pipeline",
    "set_threads": "model",
}
__all__ = sorted(_HOME)
_IMPORT_LOCK = threading.Lock()
"""One first import at a time: the app's warm-up thread and a job thread may both trigger it;
a concurrent first import of the torch-backed modules was seen failing with ``KeyError``."""


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'services.engine' has no attribute {name!r}")
    with _IMPORT_LOCK:
        value = getattr(importlib.import_module(f"services.engine.{home}"), name)
        globals()[name] = value
    return value
