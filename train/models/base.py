"""The model family's contract: `ModelConfig`, `ModelOutput` and the `FERModel` base class.

A backbone subclass only says how to run its stages 1..5 (docs/method.md §5 numbering), which module
emits each stage's output (for CAM hooks) and how that output becomes an (N, C, h, w) map. The base
class does the rest the same way for every backbone: the classic CAM head (global average pooling +
linear, docs/method.md §6), layer attentions (raw channel means) and optional self-attention gating."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aucues.errors import AucuesError
from aucues.preprocessing import LAYERS, PreprocessConfig



@dataclass
class ModelConfig:
    """What to build. Saved in checkpoints and ONNX metadata (`to_dict`)."""

    backbone: str = "resnet50"
    num_classes: int = 7
    # ResNet only: layer3 and layer4 with stride 1 and dilation, so 224 px gives 28x28 at layers 3-5.
    # Transformers have one token grid and ignore it.
    large_maps: bool = True
    # "imagenet" (torchvision weights API, needs the internet or a filled torch hub cache),
    # "random", or a path to a local .pth state_dict of the torchvision backbone.
    weights: str = "random"
    attention_layers: tuple[int, ...] = LAYERS
    self_attention_layers: tuple[int, ...] = ()
    # CAM method (docs/method.md §12; train/methods) and its options, completed with their defaults.
    # Checkpoints written before methods existed lack both and load as "cam" (the WGAP head).
    method: str = "cam"
    method_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from aucues.train.methods import resolve_options
        from aucues.train.models.registry import available_backbones

        if not isinstance(self.backbone, str) or self.backbone not in available_backbones():
            raise AucuesError(f"unknown backbone '{self.backbone}'; choose one of: {', '.join(available_backbones())}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 2:
            raise AucuesError(f"num_classes must be an integer >= 2, got {self.num_classes!r}")
        if not isinstance(self.large_maps, bool):
            raise AucuesError(f"large_maps must be true or false, got {self.large_maps!r}")
        if not isinstance(self.weights, str) or not self.weights:
            raise AucuesError(f"weights must be 'imagenet', 'random' or a file path, got {self.weights!r}")
        self.attention_layers = _layers(self.attention_layers, "attention_layers")
        self.self_attention_layers = _layers(self.self_attention_layers, "self_attention_layers")
        self.method_options = resolve_options(self.method, self.method_options, self.backbone)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attention_layers"] = list(self.attention_layers)
        d["self_attention_layers"] = list(self.self_attention_layers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        if not isinstance(d, dict):
            raise AucuesError(f"model config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise AucuesError(f"unknown model config keys: {', '.join(sorted(map(str, unknown)))}")
        return cls(**d)


def _layers(value, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        value = (value,)
    try:
        out = tuple(sorted(set(int(v) for v in value if not isinstance(v, bool))))
        ok = len(out) == len(tuple(value)) and all(l in LAYERS for l in out)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise AucuesError(f"{name} must be distinct layer numbers among 1..5, got {value!r}")
    return out


class ModelOutput(NamedTuple):
    logits: Tensor                 # (N, C)
    cam: Tensor | None             # (N, C, h, w) every class's CAM at layer 5: raw, no ReLU/normalisation;
                                   # None for an architecture without a CAM (APViT: FERModel.has_cam False)
    attentions: dict[int, Tensor]  # layer -> (N, h_l, w_l) raw channel mean
    features: dict[int, Tensor]    # layer -> (N, C_l, h_l, w_l) raw features (before any gating)
    aux: dict | None = None        # method extras of a training forward (ACoL: "logits_b"); None otherwise


class FERModel(nn.Module):
    """Base class of every backbone. Subclasses set `self.head = nn.Linear(C_5, num_classes)` and
    implement `_stem`, `_stage`, `layer_module`, `output_to_map` and `layer_shapes`."""

    def __init__(self, config: ModelConfig, preprocess: PreprocessConfig):
        super().__init__()
        self.config = config
        self.preprocess = preprocess

    # --- backbone-specific hooks -------------------------------------------------------------
    def _stem(self, x: Tensor) -> Tensor:
        """Input image -> the state fed to stage 1 (identity for CNNs)."""
        return x

    def _stage(self, layer: int, h: Tensor) -> Tensor:
        raise NotImplementedError

    def layer_module(self, layer: int) -> nn.Module:
        """The module whose forward output is layer `layer`'s features (CAM hooks attach here)."""
        raise NotImplementedError

    def output_to_map(self, layer: int, t: Tensor) -> Tensor:
        """That module's output (or its gradient) -> (N, C, h, w). Identity for CNNs."""
        return t

    def _gate(self, layer: int, h: Tensor, fmap: Tensor) -> Tensor:
        """Self-attention: features times their own channel mean (CNN form)."""
        return h * fmap.mean(1, keepdim=True)

    def layer_shapes(self, image_size) -> dict[int, tuple[int, int]]:
        raise NotImplementedError

    # whether forward gives a CAM (ModelOutput.cam); the one source of this fact: export writes it into
    # the ONNX metadata ("has_cam"), evaluate and the Triton configs follow it. APViT has none.
    has_cam: bool = True
    # the layer whose attention this architecture aligns and serves (docs/method.md §5: 5; APViT: 1, its
    # IR-50 map); exported as the metadata's "attention_layer"
    aligned_layer: int = 5

    # input channels _run accepts (mini_xception: 1, grayscale)
    in_channels: int = 3

    # torchvision's own classifier, dropped when backbone weights are loaded (the CAM head replaces it)
    classifier_prefixes: tuple[str, ...] = ()

    def _adapt_state(self, state: dict) -> dict:
        """A loaded state dict -> the backbone's keys and shapes (identity unless a backbone needs more)."""
        return state

    def _load_weights(self, arch: str, weights: str) -> None:
        found = weight_state(arch, weights)
        if found is None:
            return
        state, source = found
        load_backbone_state(self.backbone, self._adapt_state(state), source, skip_prefixes=self.classifier_prefixes)

    # --- shared -----------------------------------------------------------------------------
    def _run(self, x: Tensor, wanted: tuple[int, ...]) -> tuple[dict[int, Tensor], Tensor | None]:
        """Features (after gating where self-attention is on) of `wanted` layers, and the head input if layer 5 was reached."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise AucuesError(f"expected an image batch (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        last = max(wanted)
        gates = set(self.config.self_attention_layers)
        feats: dict[int, Tensor] = {}
        h = self._stem(x)
        head_in = None
        for layer in range(1, last + 1):
            h = self._stage(layer, h)
            fmap = self.output_to_map(layer, h)
            if layer in gates:
                h = self._gate(layer, h, fmap)
            if layer in wanted:  # self-attention: the GATED features, as the loss aligns them (docs/method.md §5)
                feats[layer] = self.output_to_map(layer, h) if layer in gates else fmap
            if layer == 5:
                head_in = self.output_to_map(5, h) if layer in gates else fmap
        return feats, head_in

    def forward_intermediates(self, x: Tensor, layers=LAYERS) -> dict[int, Tensor]:
        """Raw (N, C_l, h_l, w_l) features of `layers`; stops after the deepest one."""
        layers = _layers(layers, "layers")
        if not layers:
            return {}
        feats, _ = self._run(x, layers)
        return feats

    def _head_input(self, fmap: Tensor) -> Tensor:
        """The layer-5 map as the head reads it: itself, or (ViTs) after the encoder's final LayerNorm,
        which is applied here and not in layer 5 (train/models/vit.py says why)."""
        return fmap

    def forward(self, x: Tensor, labels: Tensor | None = None) -> ModelOutput:
        """`labels` only matter to a method head that uses them in training (ACoL); inference needs none."""
        wanted = tuple(self.config.attention_layers) + (5,)
        feats, head_in = self._run(x, wanted)
        head_in = self._head_input(head_in)
        layers = self.config.attention_layers
        if getattr(self.head, "is_method_head", False):  # WILDCAT, ACoL, PRM (train/methods)
            logits, cam, aux = self.head(head_in, labels)
            return ModelOutput(logits=logits, cam=cam, attentions={l: feats[l].mean(1) for l in layers},
                               features={l: feats[l] for l in layers}, aux=aux or None)
        # CAM head: cam_c = sum_k w[c,k] A_k; since averaging is linear, GAP + linear equals the
        # spatial mean of the CAM plus the bias, so one 1x1 convolution gives both.
        w = self.head.weight
        cam = F.conv2d(head_in, w.reshape(w.shape[0], w.shape[1], 1, 1))
        logits = cam.mean(dim=(2, 3)) + self.head.bias
        return ModelOutput(
            logits=logits,
            cam=cam,
            attentions={l: feats[l].mean(1) for l in layers},
            features={l: feats[l] for l in layers},
        )

    def extra_repr(self) -> str:
        return f"backbone={self.config.backbone}, num_classes={self.config.num_classes}, method={self.config.method}"


def load_backbone_state(module: nn.Module, state: dict, source: str, skip_prefixes: tuple[str, ...]) -> None:
    """Load a torchvision backbone state_dict: every backbone tensor must be present with its shape
    (strict), the original classifier (`skip_prefixes`) is dropped since our CAM head replaces it."""
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise AucuesError(f"{source}: not a state_dict of tensors")
    if state and all(k.startswith("backbone.") for k in state if not k.startswith("head.")):
        state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    state = {k: v for k, v in state.items() if not k.startswith(skip_prefixes)}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches (e.g. {'; '.join(wrong[:2])})")
    if problems:
        raise AucuesError(f"{source}: weights do not fit the {type(module).__name__} backbone: {'; '.join(problems)}")
    module.load_state_dict(state, strict=True)


def weight_state(arch: str, weights: str) -> tuple[dict, str] | None:
    """The state dict that `weights` names: None for "random", torchvision's ImageNet weights of
    `arch` for "imagenet", else a local file; with a description for error messages."""
    if weights == "random":
        return None
    if weights == "imagenet":
        return torchvision_imagenet_state(arch), f"{arch} ImageNet weights"
    return read_state_file(weights), weights


def read_state_file(path: str) -> dict:
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise AucuesError(f"weights '{path}': no such file (use 'imagenet', 'random' or a .pth path)")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or a pickle with arbitrary objects
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AucuesError(f"{path}: cannot read weights ({msg[:200]})") from None


def imagenet_weights_enum(arch: str):
    """The paper's ImageNet weights: torchvision's IMAGENET1K_V1 (the original resnet50 weights, hosted now as resnet50-0676ba61),
    not DEFAULT (V2 for resnet50/101) (docs/method.md §5, §9)."""
    import torchvision

    return torchvision.models.get_model_weights(arch).IMAGENET1K_V1


def torchvision_imagenet_state(arch: str) -> dict:
    """ImageNet weights through torchvision's weights API (downloads into the torch hub cache)."""
    try:
        import torchvision

        weights = imagenet_weights_enum(arch)
        return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AucuesError(
            f"cannot get ImageNet weights for {arch} ({msg[:160]}); offline machines need weights=PATH "
            f"to a local .pth or weights=random") from None
