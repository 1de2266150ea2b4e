"""Grad-CAM (Selvaraju et al. 2017): channel weights = spatial mean of the gradients; ReLU."""

from __future__ import annotations

import torch
from torch import Tensor

from aucues.train.cams.base import BaseCAM, register_cam


@register_cam("gradcam")
class GradCAM(BaseCAM):
    def compute(self, activations: Tensor, grads: Tensor, out, classes: Tensor) -> Tensor:
        weights = grads.mean(dim=(2, 3), keepdim=True)
        return torch.relu((weights * activations).sum(1))
