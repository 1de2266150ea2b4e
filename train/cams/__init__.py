"""CAM methods: `get_cam(name)(model, layer) -> BaseCAM`; names in CAM_METHODS."""

from aucues.train.cams.base import CAM_METHODS, ActivationsAndGradients, BaseCAM, get_cam, normalize_cam, register_cam
from aucues.train.cams import cam as _cam  # noqa: F401,E402  (registration)
from aucues.train.cams import gradcam as _gradcam  # noqa: F401,E402
from aucues.train.cams import gradcampp as _gradcampp  # noqa: F401,E402
from aucues.train.cams import layercam as _layercam  # noqa: F401,E402

__all__ = ["CAM_METHODS", "ActivationsAndGradients", "BaseCAM", "get_cam", "normalize_cam", "register_cam"]
