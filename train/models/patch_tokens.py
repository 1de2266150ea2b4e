"""What the ViT backbones share (vit_b_16 on torchvision's ViT, tscam on timm's DeiT-S): a fixed input
size, a CLS token before (size / 16)^2 patch tokens, layer maps = the patch tokens on their grid,
self-attention gating by the tokens' channel mean, and a head that reads layer 5 after the encoder's
final LayerNorm (layer 5 itself is taken before it: after a LayerNorm the channel mean is 0 by
construction, so a random-init model's layer-5 attention was 0 everywhere and the AU loss diverged)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from aucues.errors import AucuesError

PATCH = 16


def fixed_size_shapes(name: str, size: int, image_size, stride: int) -> dict[int, tuple[int, int]]:
    """Layer shapes of a model that takes only its own input `size` (a token grid of side size / stride
    at every layer; also APViT's)."""
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if hw != (size, size):
        raise AucuesError(f"{name} takes {size}x{size} inputs, got {hw[0]}x{hw[1]}")
    return {l: (size // stride, size // stride) for l in range(1, 6)}


def timm_qkv(block: nn.Module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q (scaled), k, v of a timm ViT `block`'s attention for its input `x`, each (N, heads, L, head_dim):
    what its fused attention computes but does not return (TS-CAM's CLS attention, APViT's pooling)."""
    attn = block.attn
    n, length, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(n, length, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    return attn.q_norm(qkv[0]) * attn.scale, attn.k_norm(qkv[1]), qkv[2]


class PatchTokenMaps:
    """Mixin placed before FERModel; the subclass says which module is the encoder's final norm."""

    def _final_norm(self) -> nn.Module:
        raise NotImplementedError

    def _check_input(self, x: Tensor) -> None:
        size = self.preprocess.image_size
        if x.shape[-2:] != (size, size):
            raise AucuesError(f"{self.config.backbone} takes {size}x{size} inputs, "
                              f"got {x.shape[-2]}x{x.shape[-1]}")

    def output_to_map(self, layer: int, t: Tensor) -> Tensor:
        n, _, d = t.shape
        g = self.preprocess.image_size // PATCH
        return t[:, 1:].transpose(1, 2).reshape(n, d, g, g)

    def _gate(self, layer: int, h: Tensor, fmap: Tensor) -> Tensor:
        gate = h[:, 1:].mean(-1, keepdim=True)  # patch tokens times their channel mean
        return torch.cat([h[:, :1], h[:, 1:] * gate], dim=1)

    def _head_input(self, fmap: Tensor) -> Tensor:
        """The final LayerNorm on the layer-5 patch-token map (per token, over channels)."""
        n, d, g, w = fmap.shape
        return self._final_norm()(fmap.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(n, d, g, w)

    def layer_shapes(self, image_size) -> dict[int, tuple[int, int]]:
        return fixed_size_shapes(self.config.backbone, self.preprocess.image_size, image_size, PATCH)
