"""The reference's released TS-CAM models (docs/method.md §11-12) -> the aucues `--method tscam` model
(train/models/tscam.py; docs/import.md).

The reference's TS-CAM (its `TSCAMClassifier` arch, encoder `deit_tscam_small_patch16_224`, pooling
`GAP`) is the TS-CAM authors' fork of an early timm VisionTransformer: the same module names and shapes
as timm's (`cls_token`, `pos_embed`, `patch_embed.proj`, `blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,
mlp.fc1,mlp.fc2}`, `norm`, LayerNorm eps 1e-6, exact GELU, qkv with bias), with its linear head replaced
by a conv3x3 embed_dim -> C (`head.*`) followed by a parameter-free average pooling. Its `model.pt` is
that whole module's state dict (no `encoder` / `classification_head` split, no prefix). At evaluation
it computes what the aucues model computes: the logits are the mean of the conv head's class maps over
the patch-token map after the final LayerNorm, and the CAM is the class maps times the CLS-to-patch
attention averaged over heads and summed over the 12 blocks. So the import is a rename: every key but
`head.*` goes under `backbone.`.

AU-loss layers: the reference numbers TS-CAM's aligned maps by its feature list [input, patch-token map
after the final LayerNorm, semantic-agnostic attention], so its layer 1 is aucues' layer 5 (that map
taken just before the final LayerNorm, train/models/patch_tokens.py) and its layer 2 is the
semantic-agnostic attention, which has no aucues layer number; the checkpoint's `au.layers` gives
aucues' numbering, `reference.au_layers` the reference's."""

from __future__ import annotations

from aucues.errors import AucuesError
from aucues.train.reference_methods import Conversion, MethodConverter, ReferenceSpec, check_keys, register_method

ARCH = "TSCAMClassifier"
ENCODER = "deit_tscam_small_patch16_224"  # DeiT-S/16; the reference also knows tiny/base (not in the paper)
DIM, DEPTH, PATCH = 384, 12, 16
HEAD_PREFIX = "head."
# reference TS-CAM feature index -> aucues layer (None: the semantic-agnostic attention, no layer number)
LAYER_MAP = {1: 5, 2: None}


def reference_shapes(num_classes: int, crop: int, depth: int = DEPTH, dim: int = DIM) -> dict[str, tuple]:
    """Every key of the reference TS-CAM DeiT-S state dict with its shape, for a `crop` px input."""
    grid = crop // PATCH
    shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, grid * grid + 1, dim),
              "patch_embed.proj.weight": (dim, 3, PATCH, PATCH), "patch_embed.proj.bias": (dim,)}
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
                       b + "attn.qkv.weight": (3 * dim, dim), b + "attn.qkv.bias": (3 * dim,),
                       b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,),
                       b + "norm2.weight": (dim,), b + "norm2.bias": (dim,),
                       b + "mlp.fc1.weight": (4 * dim, dim), b + "mlp.fc1.bias": (4 * dim,),
                       b + "mlp.fc2.weight": (dim, 4 * dim), b + "mlp.fc2.bias": (dim,)})
    shapes.update({"norm.weight": (dim,), "norm.bias": (dim,),
                   "head.weight": (num_classes, dim, 3, 3), "head.bias": (num_classes,)})
    return shapes


def aucues_layers(spec: ReferenceSpec) -> tuple[int, ...]:
    """The reference's aligned TS-CAM layers in aucues' numbering (empty without the AU loss)."""
    if not spec.au_loss:
        return ()
    bad = [l for l in spec.au_layers if l not in LAYER_MAP]
    if bad:
        raise AucuesError(f"TSCAM model: align_atten_to_heatmap_layers {list(spec.au_layers)} - the reference's "
                          f"TS-CAM has layers 1 (the patch-token map) and 2 (the semantic-agnostic attention) only")
    return tuple(sorted({LAYER_MAP[l] for l in spec.au_layers if LAYER_MAP[l] is not None}))


def convert_tscam(state: dict, _head: dict, spec: ReferenceSpec) -> Conversion:
    if spec.crop_size % PATCH:
        raise AucuesError(f"TSCAM model: crop_size {spec.crop_size} is not a multiple of the {PATCH} px patch")
    if spec.self_attention:  # the reference allows self-attention on ResNets only
        raise AucuesError("TSCAM model: align_atten_to_heatmap_use_self_atten=True is not a TS-CAM option")
    check_keys(state, reference_shapes(spec.num_classes, spec.crop_size), f"the {spec.method} {spec.encoder} state dict")
    renamed = {(k if k.startswith(HEAD_PREFIX) else f"backbone.{k}"): v for k, v in state.items()}
    return Conversion({"backbone": "tscam", "method": "tscam"}, renamed, "cam", au_layers=aucues_layers(spec))


register_method(MethodConverter("TSCAM", "GAP", convert_tscam, arch=ARCH, encoders=(ENCODER,)))
