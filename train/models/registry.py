"""Backbone registry: `@register_model("name")` on a factory `(ModelConfig, PreprocessConfig) -> FERModel`."""

from __future__ import annotations

import dataclasses
from typing import Callable

from aucues.errors import AucuesError
from aucues.labels import class_names as _class_names

_REGISTRY: dict[str, Callable] = {}


def register_model(name: str):
    def deco(factory: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"backbone '{name}' registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def _ensure_loaded() -> None:
    import aucues.train.models  # noqa: F401  (registers the built-in backbones)


def available_backbones() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def build_model(config, preprocess=None):
    """Build a FERModel. `preprocess` defaults to PreprocessConfig() with class names for
    `num_classes`; its attention_layers are set to the model config's (what forward returns)."""
    from aucues.preprocessing import PreprocessConfig

    _ensure_loaded()
    if config.backbone not in _REGISTRY:
        raise AucuesError(f"unknown backbone '{config.backbone}'; choose one of: {', '.join(sorted(_REGISTRY))}")
    if preprocess is None:
        names = _class_names(config.num_classes) if config.num_classes in (7, 8) else \
            tuple(f"class_{i}" for i in range(config.num_classes))
        preprocess = PreprocessConfig(class_names=names)
    if preprocess.num_classes != config.num_classes:
        raise AucuesError(f"model has {config.num_classes} classes but preprocessing names "
                          f"{preprocess.num_classes} ({', '.join(preprocess.class_names)})")
    if tuple(preprocess.attention_layers) != tuple(config.attention_layers):
        preprocess = dataclasses.replace(preprocess, attention_layers=tuple(config.attention_layers))
    from aucues.train.methods import apply_method

    model = _REGISTRY[config.backbone](config, preprocess)
    apply_method(model)  # the method's head / backbone changes (docs/method.md §12); none for "cam"
    return model
