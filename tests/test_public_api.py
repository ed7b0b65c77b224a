"""The public surface (``services.__all__``) is explicit, sorted, complete, and Streamlit-free."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import services

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "services"


def service_modules() -> list[str]:
    """Every importable module under services/, found on disk (not by importing)."""
    names = []
    for path in sorted(SERVICES.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_all_is_sorted_and_resolves() -> None:
    assert services.__all__ == sorted(services.__all__)
    assert len(set(services.__all__)) == len(services.__all__)
    for name in services.__all__:
        assert getattr(services, name) is not None, name


def test_all_is_complete() -> None:
    """Nothing public hides outside ``__all__`` (submodules aside)."""
    for name in services.__all__:
        getattr(services, name)
    public = {
        name
        for name in dir(services)
        if not name.startswith("_") and not isinstance(getattr(services, name), types.ModuleType)
    }
    assert public == set(services.__all__)
    assert set(services._EXPORTS) == set(services.__all__)
    star: dict[str, object] = {}
    exec("from services import *", star)
    assert set(star) - {"__builtins__"} == set(services.__all__)


def test_no_services_module_imports_streamlit() -> None:
    modules = service_modules()
    assert "services.runtime" in modules and "services.cli" in modules
    code = (
        "import importlib, json, sys\n"
        "import services\n"
        "[getattr(services, n) for n in services.__all__]\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'streamlit')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
