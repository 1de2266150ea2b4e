"""Grad-CAM++ (Chattopadhyay et al. 2018), with the usual exponential-score closed form of the
alphas (as in pytorch-grad-cam): alpha = g^2 / (2 g^2 + sum(A) g^3); weights = sum(alpha relu(g))."""

from __future__ import annotations

import torch
from torch import Tensor

from aucues.train.cams.base import BaseCAM, register_cam


@register_cam("gradcampp")
class GradCAMPlusPlus(BaseCAM):
    def compute(self, activations: Tensor, grads: Tensor, out, classes: Tensor) -> Tensor:
        g2, g3 = grads.pow(2), grads.pow(3)
        sum_a = activations.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + sum_a * g3 + 1e-7)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        weights = (alpha * torch.relu(grads)).sum(dim=(2, 3), keepdim=True)
        return torch.relu((weights * activations).sum(1))


@register_cam("gradcampp_reference")
class GradCAMPlusPlusReference(BaseCAM):
    """Grad-CAM++ as the reference code runs it (docs/method.md §6): its alpha division is lost, so
    the channel weights are sum over pixels of grad^2 * relu(grad) = relu(grad)^3. With a GAP head
    this is norm(relu(sum_k relu(w[c, k])^3 A_k)). Not the published formula (`gradcampp` is); this
    variant is what reproduces the paper's Grad-CAM++ table."""

    def compute(self, activations: Tensor, grads: Tensor, out, classes: Tensor) -> Tensor:
        weights = torch.relu(grads).pow(3).sum(dim=(2, 3), keepdim=True)
        return torch.relu((weights * activations).sum(1))
