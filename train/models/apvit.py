"""APViT (Xue et al. 2022) as the paper ran it (docs/method.md §12; docs/methods.md, APViT).

image -> IR-50 face CNN, first three stages (stride 8: 112 px -> a 256 x 14 x 14 map) -> 1x1 projection
to 768 channels + position embedding -> attention pooling: the k tokens whose attention (sum over
channels of |projected map|) is largest, kept in raster order -> CLS token + the pooling ViT (8 blocks,
8 heads, MLP ratio 3; blocks 1-4 keep every token, blocks 5-8 keep the fraction r of their patch tokens,
ranked by the CLS row of their attention logits summed over heads) -> LayerNorm -> CLS -> linear head.

Module and parameter names are those of the reference implementation (`extractor.*` the IR-50,
`vit.*` the pooling ViT, `classification_head.fc.*`), so a released whole-model state dict
(docs/method.md §11) loads as is. The ViT blocks are timm's `Block`: the same parameter names; our
forward calls their parts because token pooling happens between attention and MLP.

No CAM: the ViT's output is one vector, not a map (ModelOutput.cam is None, `has_cam` False).
Layer attention for the AU loss / ATT-COS (docs/method.md §5 numbering):
- layer 1: the IR-50 map the ViT reads (256, H/8, W/8): the map the paper aligns and scores;
- layers 2..5: the patch tokens after ViT blocks 2, 4, 6, 8 (the residual stream, 8 before the final
  LayerNorm, as for TS-CAM and vit_b_16) put back on the H/8 x W/8 grid at their positions; tokens
  pooled away are 0 there (no feature, no attention).
Self-attention gating (docs/method.md §5) is not defined for this architecture and is refused."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from aucues.errors import AucuesError
from aucues.train.models.base import FERModel, ModelOutput
from aucues.train.models.registry import register_model

STRIDE = 8                      # three stride-2 IR-50 stages
IR50_WIDTHS = (64, 128, 256)
# The paper's sizes: units of the three IR-50 stages the reference builds (of IR-50's 3, 4, 14, 3) and the
# pooling ViT. Read when a model is built, so tests can build the same architecture narrower and shallower.
SIZES = {"units": (3, 4, 14), "depth": 8, "embed_dim": 768, "num_heads": 8}
MLP_RATIO = 3.0
FULL_KEEP_BLOCKS = 4            # blocks 1-4 keep every token; the rest keep the fraction r
DEFAULT_K, DEFAULT_R = 160, 0.9


class IRUnit(nn.Module):
    """face.evoLVe's bottleneck_IR: BN-conv3x3-PReLU-conv3x3(stride)-BN plus a shortcut (a strided
    1x1 max pool, i.e. subsampling, when the width is unchanged; else a strided 1x1 conv + BN)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.shortcut_layer = nn.MaxPool2d(1, stride) if cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IR50(nn.Module):
    """The first three stages of IR-50 (the reference keeps stages up to index 2)."""

    def __init__(self, units):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        body, cin = [], 64
        for n, cout in zip(units, IR50_WIDTHS):
            body.append(nn.Sequential(*[IRUnit(cin if i == 0 else cout, cout, 2 if i == 0 else 1) for i in range(n)]))
            cin = cout
        self.body = nn.ModuleList(body)
        for m in self.modules():  # the reference's init: Xavier convs, BN at identity
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_layer(x)
        for stage in self.body:
            x = stage(x)
        return x


def keep_counts(k: int, r: float, depth: int) -> list[int]:
    """Patch tokens after each block: k through the full-keep blocks, then max(int(n r), 1) per block."""
    counts, n = [], k
    for i in range(depth):
        if i >= FULL_KEEP_BLOCKS:
            n = max(int(n * r), 1)
        counts.append(n)
    return counts


def top_tokens(score: Tensor, keep: int) -> Tensor:
    """(N, L) scores -> (N, keep) indices of the largest, in ascending (raster) order."""
    return torch.topk(score, keep, dim=1, sorted=False).indices.sort(dim=1).values


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class PoolingViT(nn.Module):
    """The reference's PoolingViT (input_type 'feature', one input stage, attn_method SUM_ABS_1)."""

    def __init__(self, grid: int, k: int, r: float, depth: int, embed_dim: int, num_heads: int,
                 in_channels: int = IR50_WIDTHS[-1]):
        super().__init__()
        from timm.layers import trunc_normal_
        from timm.models.vision_transformer import Block

        self.grid, self.k = grid, k
        self.projs = nn.ModuleList([nn.Conv2d(in_channels, embed_dim, 1)])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.patch_pos_embed = nn.Parameter(torch.zeros(1, grid * grid, embed_dim))
        self.cls_pos_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio=MLP_RATIO, qkv_bias=False,
                                           norm_layer=norm) for _ in range(depth)])
        self.norm = norm(embed_dim)
        self.counts = keep_counts(k, r, depth)
        trunc_normal_(self.patch_pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():  # the reference's init (timm's ViT rule)
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def block(self, i: int, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Block i on (N, 1 + L, D) -> its output and, when it pools, the kept patch-token indices (into L).
        Pooling ranks the patch tokens by the CLS row of the attention logits (before softmax) summed
        over heads, and drops the others after the attention residual, before the MLP."""
        from aucues.train.models.patch_tokens import timm_qkv

        blk = self.blocks[i]
        n, length, d = x.shape
        q, k, v = timm_qkv(blk, x)
        logits = q @ k.transpose(-2, -1)                            # (N, heads, 1 + L, 1 + L)
        y = (logits.softmax(-1) @ v).transpose(1, 2).reshape(n, length, d)
        x = x + blk.attn.proj(y)
        keep, idx = self.counts[i], None
        if keep < length - 1:
            idx = top_tokens(logits[:, :, 0, 1:].sum(1), keep)
            x = torch.cat([x[:, :1], gather_tokens(x[:, 1:], idx)], dim=1)
        return x + blk.mlp(blk.norm2(x)), idx


class APViTFER(FERModel):
    has_cam = False
    aligned_layer = 1  # the IR-50 map: where the paper aligns and scores APViT

    def __init__(self, config, preprocess):
        super().__init__(config, preprocess)
        units, depth, dim = SIZES["units"], SIZES["depth"], SIZES["embed_dim"]
        if config.method != "apvit":
            raise AucuesError(f"backbone apvit is the APViT architecture: train it with --method apvit "
                              f"(got method {config.method})")
        if config.self_attention_layers:
            raise AucuesError("apvit: self-attention gating is not defined for APViT (self_attention_layers must be empty)")
        size = preprocess.image_size
        if size % STRIDE:
            raise AucuesError(f"apvit needs an image_size divisible by {STRIDE}, got {size}")
        grid = size // STRIDE
        k = int(config.method_options.get("k", DEFAULT_K))
        r = float(config.method_options.get("r", DEFAULT_R))
        if not 1 <= k <= grid * grid:
            raise AucuesError(f"apvit option k must be in [1, {grid * grid}] (the {grid}x{grid} tokens of a "
                              f"{size} px input), got {k}")
        self.extractor = IR50(units)
        self.vit = PoolingViT(grid, k, r, depth, dim, SIZES["num_heads"])
        self.classification_head = nn.Module()
        self.classification_head.fc = nn.Linear(dim, config.num_classes)
        nn.init.zeros_(self.classification_head.fc.weight)  # the reference's head init (constant 0)
        nn.init.zeros_(self.classification_head.fc.bias)
        # layer l (2..5) ends after ViT block ends[l] (1-based), evenly spaced; >= 1 for shallow test models
        self._ends = {l: max(1, round((l - 1) * depth / 4)) for l in range(2, 6)}
        if config.weights != "random":
            self._load_weights("apvit", config.weights)

    @property
    def head(self) -> nn.Module:  # the method machinery looks for `head`; APViT keeps the reference name
        return self.classification_head.fc

    def _load_weights(self, arch: str, weights: str) -> None:
        from aucues.train.models.base import load_backbone_state, read_state_file

        if weights == "imagenet":
            raise AucuesError("apvit: no offline IR-50 / ViT weights; use weights=random or weights=PATH to an "
                              "APViT state dict (the reference's key names)")
        load_backbone_state(self, read_state_file(weights), weights, skip_prefixes=())

    def layer_module(self, layer: int) -> nn.Module:
        raise AucuesError("apvit has no CAM: gradient CAMs (gradcam, gradcampp, layercam) do not apply")

    def layer_shapes(self, image_size) -> dict[int, tuple[int, int]]:
        from aucues.train.models.patch_tokens import fixed_size_shapes

        return fixed_size_shapes("apvit", self.preprocess.image_size, image_size, STRIDE)

    def _features(self, x: Tensor, wanted: tuple[int, ...]) -> tuple[dict[int, Tensor], Tensor | None]:
        """Layer features of `wanted` (1..5) and the logits if the ViT ran to its end (5 in wanted)."""
        size = self.preprocess.image_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (size, size):
            raise AucuesError(f"apvit takes an image batch (N, 3, {size}, {size}), got shape {tuple(x.shape)}")
        fmap = self.extractor(x)                                     # (N, 256, g, g): layer 1
        feats = {1: fmap} if 1 in wanted else {}
        last = max(wanted)
        if last == 1:
            return feats, None
        vit = self.vit
        proj = vit.projs[0](fmap)                                    # (N, D, g, g)
        n, d, g, _ = proj.shape
        tokens = proj.flatten(2).transpose(1, 2) + vit.patch_pos_embed
        pos = torch.arange(g * g, device=x.device).expand(n, -1)     # grid position of every token
        if vit.k < g * g:  # attention pooling: SUM_ABS_1, the channel sum of |projected map|
            pos = top_tokens(proj.abs().sum(1).flatten(1), vit.k)
            tokens = gather_tokens(tokens, pos)
        h = torch.cat([(vit.cls_token + vit.cls_pos_embed).expand(n, -1, -1), tokens], dim=1)
        for i in range(self._ends[last]):
            h, idx = vit.block(i, h)
            if idx is not None:
                pos = pos.gather(1, idx)
            for layer in range(2, 6):
                if layer in wanted and self._ends[layer] == i + 1:
                    # the residual stream, layer 5 too (before vit.norm: after a LayerNorm the channel
                    # mean is 0 by construction, train/models/patch_tokens.py)
                    feats[layer] = self._on_grid(h[:, 1:], pos, g)
        logits = self.classification_head.fc(vit.norm(h)[:, 0]) if last == 5 else None  # _ends[5] = the last block
        return feats, logits

    @staticmethod
    def _on_grid(tokens: Tensor, pos: Tensor, g: int) -> Tensor:
        """(N, L, D) tokens at grid positions (N, L) -> (N, D, g, g), 0 where no token is left."""
        n, _, d = tokens.shape
        grid = tokens.new_zeros(n, d, g * g)
        return grid.scatter(2, pos.unsqueeze(1).expand(-1, d, -1), tokens.transpose(1, 2)).reshape(n, d, g, g)

    def forward_intermediates(self, x: Tensor, layers=(1, 2, 3, 4, 5)) -> dict[int, Tensor]:
        from aucues.train.models.base import _layers

        layers = _layers(layers, "layers")
        return self._features(x, layers)[0] if layers else {}

    def forward(self, x: Tensor, labels: Tensor | None = None) -> ModelOutput:
        layers = tuple(self.config.attention_layers)
        feats, logits = self._features(x, layers + (5,))
        return ModelOutput(logits=logits, cam=None, attentions={l: feats[l].mean(1) for l in layers},
                           features={l: feats[l] for l in layers})


@register_model("apvit")
def apvit(config, preprocess):
    return APViTFER(config, preprocess)
