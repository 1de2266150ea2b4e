"""Sources of the Triton Python models (`preprocess`, `classifier`, `postprocess`).

They are package data: `aucues repository build` copies each one to `<model>/1/model.py` of the
repository it writes, so a wheel install builds repositories without a checkout. They import
`triton_python_backend_utils`, which exists only inside Triton's Python backend, so they are read as
files here and never imported."""

from __future__ import annotations

from importlib import resources

MODELS = ("preprocess", "classifier", "postprocess", "landmark_model")


def model_source(name: str) -> str:
    """Text of the Python model `name` (one of MODELS)."""
    if name not in MODELS:
        raise KeyError(f"no Python model source named {name!r}; known: {', '.join(MODELS)}")
    return resources.files(__name__).joinpath(f"{name}.py").read_text(encoding="utf-8")
