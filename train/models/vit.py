"""torchvision ViT-B/16 with the CAM head (the transformer family member).

Tokens of 16x16 patches form an (H/16, W/16) grid; the class token is dropped for maps. Layers
1..5 are the outputs of evenly spaced encoder blocks (2, 5, 7, 10, 12 of 12); layer 5 is the last
block after the final LayerNorm, and the CAM head (GAP + linear) reads its patch tokens, so the
class token is unused. The positional embedding fixes the input size to preprocess.image_size
(ImageNet weights are interpolated to it). `large_maps` does not apply and is ignored."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aucues.errors import AucuesError
from aucues.train.models.base import FERModel
from aucues.train.models.patch_tokens import PATCH, PatchTokenMaps
from aucues.train.models.registry import register_model


class ViTFER(PatchTokenMaps, FERModel):
    classifier_prefixes = ("heads.",)

    def __init__(self, config, preprocess, arch: str = "vit_b_16"):
        super().__init__(config, preprocess)
        import torchvision

        size = preprocess.image_size
        if size % PATCH:
            raise AucuesError(f"{arch} needs an image_size divisible by {PATCH}, got {size}")
        net = getattr(torchvision.models, arch)(weights=None, image_size=size)
        net.heads = nn.Identity()  # replaced by the CAM head
        self.backbone = net
        self.head = nn.Linear(net.hidden_dim, config.num_classes)
        self._arch = arch
        n = len(net.encoder.layers)
        # layer l ends after block ends[l] (1-based); evenly spaced, the last one is the last block
        self._ends = {l: round(l * n / 5) for l in range(1, 6)}
        self._load_weights(self._arch, config.weights)

    def _adapt_state(self, state: dict) -> dict:
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if isinstance(state, dict):
            state = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in state.items()
                     if not k.startswith("head.")}
            pos = state.get("encoder.pos_embedding")
            if isinstance(pos, Tensor) and pos.shape != self.backbone.encoder.pos_embedding.shape:
                from torchvision.models.vision_transformer import interpolate_embeddings

                state = interpolate_embeddings(self.preprocess.image_size, PATCH, state)
        return state

    def _stem(self, x: Tensor) -> Tensor:
        self._check_input(x)
        b = self.backbone
        t = b.conv_proj(x).flatten(2).transpose(1, 2)  # (N, L, D)
        t = torch.cat([b.class_token.expand(t.shape[0], -1, -1), t], dim=1)
        return b.encoder.dropout(t + b.encoder.pos_embedding)

    def _stage(self, layer: int, h: Tensor) -> Tensor:
        enc = self.backbone.encoder
        start = self._ends[layer - 1] if layer > 1 else 0
        for i in range(start, self._ends[layer]):
            h = enc.layers[i](h)
        return h  # layer 5 too: before the final LayerNorm, which the head applies (patch_tokens.py)

    def layer_module(self, layer: int) -> nn.Module:
        return self.backbone.encoder.layers[self._ends[layer] - 1]

    def _final_norm(self) -> nn.Module:
        return self.backbone.encoder.ln


@register_model("vit_b_16")
def vit_b_16(config, preprocess):
    return ViTFER(config, preprocess, "vit_b_16")
