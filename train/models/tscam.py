"""TS-CAM (Gao et al. 2021) on DeiT-S/16, timm's VisionTransformer (docs/method.md §12; docs/methods.md).

TS-CAM is one architecture (its encoder and its CAM are tied together), so it is a backbone entry,
`--backbone tscam`, trained by the plain "cam" method (or cutmix). The method registry's hooks (a head
over the layer-5 map, parameter-free backbone changes) cannot reach the per-block attention that the
TS-CAM CAM multiplies by, so this class computes its own forward.

- Encoder: DeiT-S/16 (384-d, 6 heads, 12 blocks; timm's `deit_small_patch16_224` configuration),
  random init or weights=PATH to a local timm state dict (never downloaded).
- Logits: the patch tokens after the final LayerNorm as a (384, H/16, W/16) map -> conv3x3 384 -> C
  (the class maps) -> global average pooling.
- Semantic-agnostic attention: each block's CLS-to-patch attention row, averaged over heads, summed
  over all blocks -> (N, 1, H/16, W/16).
- CAM = class maps x semantic-agnostic attention (raw, no ReLU/normalisation, like every CAM here).
- Layers 1..5 for the AU loss: the patch-token maps after blocks 2, 5, 7, 10 and 12 (the residual
  stream; layer 5 is the map the head reads, before the head's final LayerNorm, see `_stage`) - the
  same evenly spaced rule as `vit_b_16`, so a layer number means the same depth fraction in both
  transformers.

The attention weights are recomputed from each block's own qkv projection (timm's blocks use fused
attention, which does not return them): one extra qkv matmul per block."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aucues.errors import AucuesError
from aucues.train.models.base import FERModel
from aucues.train.models.patch_tokens import PATCH, PatchTokenMaps, timm_qkv
from aucues.train.models.registry import register_model

DEIT_S = {"embed_dim": 384, "depth": 12, "num_heads": 6}


def block_cls_attention(block: nn.Module, x: Tensor) -> Tensor:
    """(N, L) attention of the CLS token to the patch tokens in timm `block` for its input `x`,
    averaged over heads (TS-CAM's per-layer semantic-agnostic attention)."""
    q, k, _ = timm_qkv(block, x)
    weights = (q[:, :, :1] @ k.transpose(-2, -1)).softmax(-1)  # (N, heads, 1, L+1): the CLS row only
    return weights[:, :, 0, 1:].mean(1)


class TSCAMFER(PatchTokenMaps, FERModel):
    classifier_prefixes = ("head.",)

    def __init__(self, config, preprocess, depth: int = DEIT_S["depth"]):
        super().__init__(config, preprocess)
        from timm.models.vision_transformer import VisionTransformer

        size = preprocess.image_size
        if size % PATCH:
            raise AucuesError(f"tscam needs an image_size divisible by {PATCH}, got {size}")
        net = VisionTransformer(img_size=size, patch_size=PATCH, num_classes=0, global_pool="",
                                **{**DEIT_S, "depth": depth})
        self.backbone = net
        self.head = nn.Conv2d(net.embed_dim, config.num_classes, kernel_size=3, padding=1)
        # the project's CAM-head rule (§9, as the ResNet head): Xavier weight, zero bias. The reference's
        # TS-CAM keeps nn.Conv2d's default init here (its _init_weights only touches Linear/LayerNorm);
        # only training from scratch sees the difference, imported weights replace it.
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        n = len(net.blocks)
        # layer l ends after block ends[l] (1-based), evenly spaced as vit_b_16; >= 1 for shallow test models
        self._ends = {0: 0, **{l: max(1, round(l * n / 5)) for l in range(1, 6)}}
        self._sa: list[Tensor] | None = None  # per-block CLS attention, collected during forward
        self._load_weights("deit_small_patch16_224", config.weights)

    def _load_weights(self, arch: str, weights: str) -> None:
        if weights == "imagenet":
            raise AucuesError("tscam: no offline ImageNet DeiT-S weights; use weights=random or weights=PATH "
                              "to a local timm deit_small_patch16_224 state dict")
        super()._load_weights(arch, weights)

    def _adapt_state(self, state: dict) -> dict:
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]  # DeiT's own release format
        if isinstance(state, dict):
            pos = state.get("pos_embed")
            if isinstance(pos, Tensor) and pos.shape != self.backbone.pos_embed.shape:
                from timm.layers import resample_abs_pos_embed

                g = self.preprocess.image_size // PATCH
                state = {**state, "pos_embed": resample_abs_pos_embed(pos, (g, g), num_prefix_tokens=1)}
        return state

    def _stem(self, x: Tensor) -> Tensor:
        self._check_input(x)
        b = self.backbone
        return b.norm_pre(b.patch_drop(b._pos_embed(b.patch_embed(x))))

    def _stage(self, layer: int, h: Tensor) -> Tensor:
        blocks = self.backbone.blocks
        for i in range(self._ends[layer - 1], self._ends[layer]):
            if self._sa is not None:
                self._sa.append(block_cls_attention(blocks[i], h))
            h = blocks[i](h)
        # layer 5 too: before the final LayerNorm, which the head applies (patch_tokens.py says why;
        # measured: NaN in the first AU epoch at lr 0.01 and 0.001 when layer 5 was taken after it)
        return h

    def layer_module(self, layer: int) -> nn.Module:
        return self.backbone.blocks[self._ends[layer] - 1]

    def _final_norm(self) -> nn.Module:
        return self.backbone.norm

    def forward(self, x: Tensor, labels: Tensor | None = None):
        from aucues.train.models.base import ModelOutput

        if getattr(self.head, "is_method_head", False):
            raise AucuesError(f"tscam has its own head; method {self.config.method} does not apply")
        layers = self.config.attention_layers
        self._sa = []
        try:
            feats, head_in = self._run(x, tuple(layers) + (5,))
            sa = torch.stack(self._sa, 0).sum(0)  # (N, L): summed over all blocks
        finally:
            self._sa = None
        maps = self.head(self._head_input(head_in))  # (N, C, g, g) class maps
        cam = maps * sa.reshape(maps.shape[0], 1, *maps.shape[-2:])
        return ModelOutput(logits=maps.mean((2, 3)), cam=cam,
                           attentions={l: feats[l].mean(1) for l in layers},
                           features={l: feats[l] for l in layers})


@register_model("tscam")
def tscam(config, preprocess):
    return TSCAMFER(config, preprocess)
