"""torchvision ResNets with the CAM head and optional "large maps" (docs/method.md §5).

Large maps (docs/method.md §5): in the first block of layer3 and of layer4, conv2 (conv1 for
BasicBlock nets) and downsample.0 get stride 1; every convolution keeps dilation 1 and padding 1.
There is NO dilation (torchvision's replace_stride_with_dilation computes something else with the
same weights). A 224 px input gives 112/56/28/28/28 maps at layers 1-5; the state_dict keeps
torchvision's keys and shapes, so torchvision weights and the reference's released encoders load.

Layers: 1 = conv1+bn+relu, 2 = maxpool+layer1, 3 = layer2, 4 = layer3, 5 = layer4."""

from __future__ import annotations

from torch import Tensor, nn

from aucues.errors import AucuesError
from aucues.train.models.base import FERModel
from aucues.train.models.registry import register_model


def _large_maps(stage: nn.Module) -> None:
    """Stride 1 instead of 2 in the stage's first block (§5); dilation and padding untouched."""
    for m in stage[0].modules():
        if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
            m.stride = (1, 1)


def _out(size: int) -> int:
    return (size - 1) // 2 + 1  # every stride-2 step here (k3/p1, k7/p3, k1/p0) rounds up


class ResNetFER(FERModel):
    classifier_prefixes = ("fc.",)

    def __init__(self, config, preprocess, arch: str):
        super().__init__(config, preprocess)
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None)
        if config.large_maps:
            _large_maps(net.layer3)
            _large_maps(net.layer4)
        width = net.fc.in_features
        net.fc = nn.Identity()  # replaced by the CAM head; no parameters left under backbone.fc
        self.backbone = net
        self.head = nn.Linear(width, config.num_classes)
        # §9: the CAM head is Xavier-initialised with a zero bias (not nn.Linear's default)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self._load_weights(arch, config.weights)

    def _stage(self, layer: int, h: Tensor) -> Tensor:
        b = self.backbone
        if layer == 1:
            return b.relu(b.bn1(b.conv1(h)))
        if layer == 2:
            return b.layer1(b.maxpool(h))
        return (b.layer2, b.layer3, b.layer4)[layer - 3](h)

    def layer_module(self, layer: int) -> nn.Module:
        b = self.backbone
        # backbone.relu runs once per forward (blocks own their ReLUs), so its output is layer 1.
        return {1: b.relu, 2: b.layer1, 3: b.layer2, 4: b.layer3, 5: b.layer4}[layer]

    def layer_shapes(self, image_size) -> dict[int, tuple[int, int]]:
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if min(h, w) < 1:
            raise AucuesError(f"bad image size {image_size!r}")
        shapes = {}
        for layer in range(1, 6):
            if layer <= 3 or not self.config.large_maps:
                h, w = _out(h), _out(w)
            shapes[layer] = (h, w)
        return shapes


def _factory(arch: str):
    def build(config, preprocess):
        return ResNetFER(config, preprocess, arch)

    build.__name__ = arch
    return build


for _arch in ("resnet18", "resnet34", "resnet50", "resnet101"):
    register_model(_arch)(_factory(_arch))
