"""ADL, attention-based dropout layer (Choe & Shim 2019), docs/method.md §12.

Parameter-free modules after layer3 block 0 and after layer4 blocks 0 and 2 (2 is ResNet50's last
layer4 block; shallower ResNets with 2 layer4 blocks get it after their last block), active in
training only. Per call, with probability drop_rate the features are multiplied by the drop mask
(0 where the channel mean reaches drop_threshold x its per-sample maximum: the most activated region
is hidden), otherwise by the importance map sigmoid(channel mean). At eval they are the identity,
so the exported graph is the plain WGAP model's.

The blocks stay where torchvision has them (keys layer3.0, layer3.1 ...: the ADL steps own no
weights); the reference's checkpoints list ADL entries in the block lists and shift the indices
(layer3 = [0, ADL, 1, ...], layer4 = [0, ADL, 1, 2, ADL]), which the importer maps back."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aucues.train.methods.base import RESNETS, Method, Opt, register_method


def adl(x: Tensor, drop_rate: float, threshold: float) -> Tensor:
    att = x.mean(1, keepdim=True)
    if bool(torch.rand(()) < drop_rate):
        peak = att.flatten(1).max(1).values[:, None, None, None]
        return x * (att < peak * threshold).to(x.dtype)  # strict, as the original ADL
    return x * torch.sigmoid(att)


class ADLSequential(nn.Sequential):
    """A ResNet stage that applies ADL after the blocks in `after` while training."""

    def __init__(self, blocks, after: tuple[int, ...], drop_rate: float, threshold: float):
        super().__init__(*blocks)
        self.after, self.drop_rate, self.threshold = tuple(after), drop_rate, threshold

    def forward(self, x: Tensor) -> Tensor:
        for i, block in enumerate(self):
            x = block(x)
            if self.training and i in self.after:
                x = adl(x, self.drop_rate, self.threshold)
        return x

    def extra_repr(self) -> str:
        return f"adl_after={self.after}, drop_rate={self.drop_rate}, drop_threshold={self.threshold}"


@register_method
class ADL(Method):
    name = "adl"
    backbones = RESNETS
    options = {"drop_rate": Opt(float, 0.4, 0.0, 1.0), "drop_threshold": Opt(float, 0.1, 0.0, 1.0)}

    def modify_backbone(self, model, opts):
        b = model.backbone
        rate, thr = opts["drop_rate"], opts["drop_threshold"]
        b.layer3 = ADLSequential(list(b.layer3), (0,), rate, thr)
        b.layer4 = ADLSequential(list(b.layer4), (0, len(b.layer4) - 1), rate, thr)
