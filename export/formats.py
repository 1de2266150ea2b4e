"""Export format registry. A format is one small module that subclasses ExportFormat and decorates
it with @register_format; `aucues export`/`engine` and the library look formats up here.

    @register_format
    class MyFormat(ExportFormat):
        name, suffix, source = "myfmt", ".myfmt", "checkpoint"   # or "onnx": built from an ONNX file
        def export(self, source, out, **options) -> ExportReport: ...

Built-in: onnx (export/onnx_export.py), tensorrt (export/tensorrt_engine.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from aucues.errors import AucuesError

BUILTIN_MODULES = ("aucues.export.onnx_export", "aucues.export.tensorrt_engine")
_REGISTRY: dict[str, type["ExportFormat"]] = {}


class ExportFormat:
    name: str = ""
    suffix: str = ""
    source: str = "checkpoint"   # what export() takes: a checkpoint/model, or an ONNX file
    description: str = ""

    def available(self) -> tuple[bool, str]:
        """(usable here, why not). Heavy/optional libraries are probed here, never at import."""
        return True, ""

    def export(self, source, out, **options):
        raise NotImplementedError


def register_format(cls: type[ExportFormat]) -> type[ExportFormat]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"export format '{cls.name}' registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _ensure_loaded() -> None:
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)


def available_formats() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_format(name: str) -> ExportFormat:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise AucuesError(f"unknown export format '{name}'; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


def format_for_path(path: str | Path) -> ExportFormat:
    """The format whose suffix the output path has (.onnx, .plan)."""
    _ensure_loaded()
    suffix = Path(path).suffix.lower()
    for cls in _REGISTRY.values():
        if cls.suffix == suffix:
            return cls()
    known = ", ".join(f"{c.suffix} ({c.name})" for c in _REGISTRY.values())
    raise AucuesError(f"{path}: unknown export suffix '{suffix}'; known: {known}")
