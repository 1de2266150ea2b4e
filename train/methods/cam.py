"""CAM (Zhou et al. 2016): the WGAP head of FERModel, trained plainly (docs/method.md §6). The gradient
CAMs (GradCAM, GradCAM++, LayerCAM) are computed on this same model at evaluation."""

from __future__ import annotations

from aucues.train.methods.base import Method, register_method


@register_method
class CAMMethod(Method):
    name = "cam"
