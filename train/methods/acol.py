"""ACoL, adversarial complementary learning (Zhang et al. 2018), docs/method.md §12.

Two heads A and B, each conv3x3 -> ReLU -> conv3x3 -> ReLU -> conv1x1 to C class maps, then GAP.
In training, head B sees the layer-5 features with the positions where A's min-max normalised map of
the TRUE class is >= drop_threshold zeroed (the label enters the forward in training only; without
one, A's prediction stands in), and the loss is CE(A) + CE(B). At inference there is no erasing (so
the exported graph has no training branch): B sees the same features as A, the logits are A's and
the CAM of every class is the maximum of the two normalised maps.

The reference implementation also erases at inference (with A's predicted class); this project does
not, so its B map can differ from the reference's there (logits and A's map do not)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aucues.train.methods.base import RESNETS, Method, Opt, register_method


def _branch(in_channels: int, hidden: int, num_classes: int) -> nn.Sequential:
    # indices 0, 2, 4 hold the weights: the reference's classifier_{A,B}.{0,2,4} keys (§11)
    return nn.Sequential(nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(inplace=False),
                         nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=False),
                         nn.Conv2d(hidden, num_classes, 1))


def normalize_maps(maps: Tensor) -> Tensor:
    """Per sample and class min-max to [0, 1]; a constant map becomes 0."""
    flat = maps.flatten(2)
    lo = flat.min(-1, keepdim=True).values
    span = flat.max(-1, keepdim=True).values - lo
    out = (flat - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return out.reshape(maps.shape)


class ACoLHead(nn.Module):
    is_method_head = True

    def __init__(self, in_channels: int, num_classes: int, drop_threshold: float, hidden: int):
        super().__init__()
        self.drop_threshold = drop_threshold
        self.classifier_A = _branch(in_channels, hidden, num_classes)
        self.classifier_B = _branch(in_channels, hidden, num_classes)

    def erase(self, features: Tensor, map_a: Tensor, classes: Tensor) -> Tensor:
        att = normalize_maps(map_a.detach())[torch.arange(len(classes), device=classes.device), classes]
        keep = (att < self.drop_threshold).to(features.dtype)
        return features * keep[:, None]

    def forward(self, features: Tensor, labels: Tensor | None = None):
        map_a = self.classifier_A(features)
        logits_a = map_a.mean((2, 3))
        if not self.training:
            map_b = self.classifier_B(features)
            return logits_a, torch.maximum(normalize_maps(map_a), normalize_maps(map_b)), {}
        classes = logits_a.argmax(1) if labels is None else labels.long()
        map_b = self.classifier_B(self.erase(features, map_a, classes))
        cam = torch.maximum(normalize_maps(map_a), normalize_maps(map_b))
        return logits_a, cam, {"logits_b": map_b.mean((2, 3))}

    def extra_repr(self) -> str:
        return f"drop_threshold={self.drop_threshold}"


@register_method
class ACoL(Method):
    name = "acol"
    backbones = RESNETS
    head_keys = "acol_pooler.classifier_A/B"
    options = {"drop_threshold": Opt(float, 0.1, 0.0, 1.0), "hidden": Opt(int, 1024, 1, 8192)}

    def build_head(self, in_channels, num_classes, opts):
        return ACoLHead(in_channels, num_classes, **opts)

    def forward_kwargs(self, labels) -> dict:
        return {"labels": labels}

    def loss(self, criterion, out, y, au_map, valid, opts):
        parts = criterion(out, y, au_map, valid)
        logits_b = (out.aux or {}).get("logits_b")
        if logits_b is None:  # a forward in eval mode: nothing erased, one head's CE
            return parts
        ce_b = F.cross_entropy(logits_b, y)
        return type(parts)(parts.total + ce_b, parts.ce + ce_b, parts.align)
