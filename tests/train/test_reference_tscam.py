"""`aucues import reference` for the released TS-CAM models (docs/import.md, train/reference_tscam.py): a
folder in the released layout (whole-model state dict under the reference's DeiT-S names, conv3x3
head), built from random weights, imports into an aucues `tscam` model whose logits, CAM and layer-5
attention match a forward written here: timm's own VisionTransformer.forward_features with those
weights, the conv head applied with F.conv2d, and the CLS-to-patch attention recomputed from the raw
state dict (LayerNorm, qkv projection, softmax) on each block's input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.train.reference_tscam_layout import make_tscam_folder

SIZE = 64  # crop_size 64: a 4x4 token grid; DeiT-S at its real width and depth
DIM, HEADS = 384, 6


def reference_forward(state: dict, x: torch.Tensor) -> dict:
    from timm.models.vision_transformer import VisionTransformer

    n, g = x.shape[0], SIZE // 16
    net = VisionTransformer(img_size=SIZE, patch_size=16, num_classes=0, global_pool="", embed_dim=DIM, depth=12,
                            num_heads=HEADS, qkv_bias=True).eval()
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.")}, strict=True)
    inputs = []
    hooks = [b.register_forward_pre_hook(lambda m, a: inputs.append(a[0])) for b in net.blocks]
    pre_norm = []  # layer 5 = the residual stream before the final LayerNorm (train/models/tscam.py)
    hooks.append(net.norm.register_forward_pre_hook(lambda m, a: pre_norm.append(a[0])))
    with torch.no_grad():
        tokens = net.forward_features(x)  # (n, 1 + g*g, 384), after the final LayerNorm
        sa = torch.zeros(n, g * g)
        for i, h in enumerate(inputs):  # semantic-agnostic attention: CLS row, mean over heads, sum over blocks
            p = f"blocks.{i}."
            y = F.layer_norm(h, (DIM,), state[p + "norm1.weight"], state[p + "norm1.bias"], eps=1e-6)
            qkv = F.linear(y, state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"])
            qkv = qkv.reshape(n, -1, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
            a = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) * (DIM // HEADS) ** -0.5, dim=-1)
            sa += a.mean(1)[:, 0, 1:]
        fmap = tokens[:, 1:].transpose(1, 2).reshape(n, DIM, g, g)
        maps = F.conv2d(fmap, state["head.weight"], state["head.bias"], padding=1)
    for hk in hooks:
        hk.remove()
    assert len(inputs) == 12
    layer5 = pre_norm[0][:, 1:].transpose(1, 2).reshape(n, DIM, g, g)
    return {"logits": maps.mean((2, 3)), "cam": maps * sa.reshape(n, 1, g, g), "attention_5": layer5.mean(1),
            "sa": sa}


def _check(ref: dict, got: dict, what: str, rel: float = 1e-4) -> None:
    for k, g in got.items():
        r = np.asarray(ref[k], np.float64)
        g = np.asarray(g, np.float64)
        assert g.shape == r.shape, (what, k, g.shape, r.shape)
        scale, err = float(np.abs(r).max()), float(np.abs(g - r).max())
        assert scale > 0 and err <= rel * scale, f"{what} {k}: max abs diff {err:.3g} > {rel} x {scale:.3g}"
        print(what, k, f"{err / scale:.2e}")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from aucues.train.reference_import import import_reference

    root = tmp_path_factory.mktemp("shared-trained-models")
    folder, state = make_tscam_folder(root, "RAF-DB", au=True, crop=SIZE, layers="1")
    out = tmp_path_factory.mktemp("imp") / "tscam.pt"
    summary = import_reference(folder, out)
    return out, summary, state


@pytest.mark.parametrize("batch", [1, 3])
def test_parity_with_independent_forward(imported, batch):
    from aucues.train.checkpoint import load_checkpoint

    out, _, state = imported
    model, _ = load_checkpoint(out)
    x = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        o = model(x)
    ref = reference_forward(state, x)
    # the attention must really weight the map, or the CAM comparison would not test it
    sa = ref["sa"]
    assert float((sa.max(1).values - sa.min(1).values).min()) > 0.1 * float(sa.mean())
    assert o.cam.shape == (batch, 7, SIZE // 16, SIZE // 16)
    _check(ref, {"logits": o.logits, "cam": o.cam, "attention_5": o.attentions[5]}, f"batch {batch}")


def test_checkpoint_records_the_method_and_layers(imported):
    from aucues.train.checkpoint import load_checkpoint

    out, summary, _ = imported
    model, info = load_checkpoint(out)
    assert model.config.backbone == "tscam" and model.config.method == "tscam"
    assert model.preprocess.image_size == SIZE and summary["method"] == "TSCAM"
    assert info["reference"]["au_layers"] == [1]  # the reference's numbering (its patch-token map)...
    assert info["au"]["layers"] == [5] and info["au"]["loss"] is True  # ...is aucues' layer 5
    assert info["reference"]["cam_method"] == "cam"


@pytest.mark.parametrize("layers,au,expected", [("1", True, (5,)), ("1-2", True, (5,)), ("2", True, ()),
                                                ("5", False, ())])
def test_layer_numbering(layers, au, expected):
    from aucues.train.reference_methods import ReferenceSpec
    from aucues.train.reference_tscam import aucues_layers

    spec = ReferenceSpec("TSCAM", "GAP", "RAF-DB", "deit_tscam_small_patch16_224", False, 7, 224, au,
                         tuple(int(l) for l in layers.split("-")), 9.0, False, "")
    assert aucues_layers(spec) == expected


def test_reference_key_table_is_timms():
    """The converter's table of the reference's names and shapes is timm's DeiT-S state dict plus the head."""
    from timm.models.vision_transformer import VisionTransformer

    from aucues.train.reference_tscam import reference_shapes

    timm_shapes = {k: tuple(v.shape) for k, v in VisionTransformer(
        img_size=224, patch_size=16, num_classes=0, global_pool="", embed_dim=384, depth=12, num_heads=6,
        qkv_bias=True).state_dict().items()}
    ours = reference_shapes(7, 224)
    assert {k: v for k, v in ours.items() if not k.startswith("head.")} == timm_shapes
    assert ours["head.weight"] == (7, 384, 3, 3) and ours["pos_embed"] == (1, 197, 384)
