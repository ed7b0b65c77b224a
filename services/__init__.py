"""StemDeck services: all logic behind the pages and the CLI (never imports streamlit).

``__all__`` is the supported surface for pages and the CLI; deeper modules may change. Names
resolve lazily (PEP 562) so that importing a light module such as ``services.errors`` does not
drag in the audio stack, the job store and their dependencies.
"""

from importlib import import_module as _import_module

_EXPORTS: dict[str, str] = {
    "Artifact": "services.jobs.model",
    "Capabilities": "services.providers.base",
    "ExportFormat": "services.audio.formats",
    "FetchError": "services.errors",
    "InputInfo": "services.inputs",
    "InputRejected": "services.errors",
    "Job": "services.jobs.model",
    "JobCancelled": "services.errors",
    "JobSpec": "services.jobs.model",
    "JobStatus": "services.jobs.model",
    "ModeSpec": "services.providers.base",
    "Peaks": "services.audio.peaks",
    "ProviderError": "services.errors",
    "Runtime": "services.runtime",
    "SeparationProvider": "services.providers.base",
    "Settings": "services.config",
    "StemDeckError": "services.errors",
    "find_input": "services.inputs",
    "get_provider": "services.providers.registry",
    "ingest_bytes": "services.inputs",
    "ingest_path": "services.inputs",
    "ingest_url": "services.inputs",
    "load_peaks": "services.audio.peaks",
    "load_settings": "services.config",
    "provider_names": "services.providers.registry",
}

__all__ = [
    "Artifact",
    "Capabilities",
    "ExportFormat",
    "FetchError",
    "InputInfo",
    "InputRejected",
    "Job",
    "JobCancelled",
    "JobSpec",
    "JobStatus",
    "ModeSpec",
    "Peaks",
    "ProviderError",
    "Runtime",
    "SeparationProvider",
    "Settings",
    "StemDeckError",
    "find_input",
    "get_provider",
    "ingest_bytes",
    "ingest_path",
    "ingest_url",
    "load_peaks",
    "load_settings",
    "provider_names",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'services' has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
