"""CAM (Zhou et al. 2016): the model's own head, sum_k w[c, k] A_k at layer 5, no ReLU
(docs/method.md §6)."""

from __future__ import annotations

import torch
from torch import Tensor

from aucues.errors import AucuesError
from aucues.train.cams.base import BaseCAM, register_cam


@register_cam("cam")
class CAM(BaseCAM):
    uses_gradients = False

    def __init__(self, model, layer: int = 5):
        if layer != 5:
            raise AucuesError(f"plain CAM exists only at layer 5 (the CAM head's input), got layer {layer}")
        super().__init__(model, layer)

    def compute(self, activations: Tensor, grads, out, classes: Tensor) -> Tensor:
        # out.cam already is sum_k w[c,k] A_k for every class (with self-attention gating applied)
        return out.cam.detach()[torch.arange(len(classes), device=classes.device), classes].float()
