"""Backbones with the classic CAM head: `build_model(ModelConfig) -> FERModel` (ARCHITECTURE.md)."""

from aucues.train.models.base import LAYERS, FERModel, ModelConfig, ModelOutput
from aucues.train.models.registry import available_backbones, build_model, register_model
from aucues.train.models import resnet as _resnet  # noqa: F401,E402  (registration)
from aucues.train.models import vit as _vit  # noqa: F401,E402  (registration)
from aucues.train.models import mini_xception as _mini_xception  # noqa: F401,E402  (registration)
from aucues.train.models import tscam as _tscam  # noqa: F401,E402  (registration)
from aucues.train.models import apvit as _apvit  # noqa: F401,E402  (registration)

__all__ = ["LAYERS", "FERModel", "ModelConfig", "ModelOutput", "available_backbones", "build_model",
           "register_model"]
