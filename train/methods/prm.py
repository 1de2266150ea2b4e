"""PRM, peak response maps (Zhou et al. 2018), docs/method.md §12: a 1x1 conv makes C class maps
(the CAM); peak stimulation is a max pooling (kernel ks, stride st, no padding, as the reference)
whose output is then globally averaged into the logits."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from aucues.errors import AucuesError
from aucues.train.methods.base import RESNETS, Method, Opt, register_method


class PRMHead(nn.Module):
    is_method_head = True

    def __init__(self, in_channels: int, num_classes: int, ks: int, st: int):
        super().__init__()
        self.ks, self.st = ks, st
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, features: Tensor, labels: Tensor | None = None):
        maps = self.conv(features)
        if min(maps.shape[-2:]) < self.ks:
            raise AucuesError(f"prm: the layer-5 map {tuple(maps.shape[-2:])} is smaller than the peak "
                              f"kernel ks={self.ks}; use a larger image_size or a smaller ks")
        peaks = F.max_pool2d(maps, kernel_size=self.ks, stride=self.st)
        return peaks.mean((2, 3)), maps, {}

    def extra_repr(self) -> str:
        return f"ks={self.ks}, st={self.st}"


@register_method
class PRM(Method):
    name = "prm"
    backbones = RESNETS
    head_keys = "conv"
    options = {"ks": Opt(int, 3, 1, 15), "st": Opt(int, 1, 1, 15)}

    def build_head(self, in_channels, num_classes, opts):
        return PRMHead(in_channels, num_classes, **opts)
