"""WILDCAT (Durand et al. 2017), docs/method.md §12: a 1x1 conv makes C x M "modality" maps, their
mean per class gives C class maps (the CAM), and each class map is pooled as
    mean of its top kmax share of positions + alpha * mean of its bottom kmin share.
The reference implementation adds the kmin term out of place and loses it, so the released models
pool with the top-kmax mean only: option `reference_pooling` reproduces that as-run behaviour.

Shares are fractions of the h*w positions (rounded, at least one position for kmax; kmin 0 turns
the bottom term off). Spatial sizes are fixed at export, so k is a constant in the ONNX graph."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aucues.train.methods.base import RESNETS, Method, Opt, register_method


def top_k_count(share: float, n: int) -> int:
    return 0 if share <= 0 else max(1, min(n, int(round(share * n))))


class WildcatHead(nn.Module):
    is_method_head = True

    def __init__(self, in_channels: int, num_classes: int, modalities: int, kmax: float, kmin: float,
                 alpha: float, reference_pooling: bool):
        super().__init__()
        self.num_classes, self.modalities = num_classes, modalities
        self.kmax, self.kmin, self.alpha, self.reference_pooling = kmax, kmin, alpha, reference_pooling
        self.to_modalities = nn.Conv2d(in_channels, num_classes * modalities, kernel_size=1)

    def class_maps(self, features: Tensor) -> Tensor:
        m = self.to_modalities(features)
        n, _, h, w = m.shape
        # channel c*M + j is modality j of class c (class-wise pooling of the reference layout)
        return m.reshape(n, self.num_classes, self.modalities, h, w).mean(2)

    def pool(self, maps: Tensor) -> Tensor:
        flat = maps.flatten(2)
        size = flat.shape[-1]
        kmax = top_k_count(self.kmax, size)
        out = flat.topk(kmax, dim=-1).values.mean(-1)
        kmin = top_k_count(self.kmin, size)
        if kmin and self.alpha and not self.reference_pooling:
            out = out + self.alpha * flat.topk(kmin, dim=-1, largest=False).values.mean(-1)
        return out

    def forward(self, features: Tensor, labels: Tensor | None = None):
        maps = self.class_maps(features)
        return self.pool(maps), maps, {}

    def extra_repr(self) -> str:
        return (f"modalities={self.modalities}, kmax={self.kmax}, kmin={self.kmin}, alpha={self.alpha}, "
                f"reference_pooling={self.reference_pooling}")


@register_method
class Wildcat(Method):
    name = "wildcat"
    backbones = RESNETS
    head_keys = "to_modalities"
    options = {
        "modalities": Opt(int, 5, 1, 64),
        "kmax": Opt(float, 0.5, 0.0, 1.0, lo_open=True),
        "kmin": Opt(float, 0.1, 0.0, 1.0),
        "alpha": Opt(float, 0.6, 0.0, 100.0),
        "reference_pooling": Opt(bool, False),
    }

    def build_head(self, in_channels, num_classes, opts):
        return WildcatHead(in_channels, num_classes, **opts)
