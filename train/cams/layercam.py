"""LayerCAM (Jiang et al. 2021): element-wise relu(gradient) * activation, summed over channels; ReLU."""

from __future__ import annotations

import torch
from torch import Tensor

from aucues.train.cams.base import BaseCAM, register_cam


@register_cam("layercam")
class LayerCAM(BaseCAM):
    def compute(self, activations: Tensor, grads: Tensor, out, classes: Tensor) -> Tensor:
        return torch.relu((torch.relu(grads) * activations).sum(1))
