"""TS-CAM on DeiT-S/16 (train/models/tscam.py, docs/methods.md): shapes, the CAM checked against a
forward built here from timm's own blocks (unfused attention read off timm's attention dropout), a
training step with and without the AU loss, local weights with a resampled position embedding, and
bad use as one-line errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig
from aucues.train.loss import AUAlignmentLoss
from aucues.train.methods import get_method, resolve_options
from aucues.train.models import ModelConfig, build_model

torch.set_num_threads(1)
SIZE = 64  # a 4x4 token grid: DeiT-S at its real width and depth, 17 tokens


def build(**kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="tscam", **kw), PreprocessConfig(image_size=SIZE))


def test_shapes_and_layer_blocks():
    model = build().eval()
    assert len(model.backbone.blocks) == 12 and model.backbone.embed_dim == 384
    assert model.head.weight.shape == (7, 384, 3, 3)  # conv3x3 384 -> C
    assert [model._ends[l] for l in range(1, 6)] == [2, 5, 7, 10, 12]  # blocks of layers 1..5
    with torch.no_grad():
        out = model(torch.randn(2, 3, SIZE, SIZE))
    assert out.logits.shape == (2, 7) and out.cam.shape == (2, 7, 4, 4) and out.aux is None
    assert sorted(out.attentions) == [1, 2, 3, 4, 5]
    assert all(out.attentions[l].shape == (2, 4, 4) and out.features[l].shape == (2, 384, 4, 4) for l in range(1, 6))
    assert model.layer_shapes(SIZE) == {l: (4, 4) for l in range(1, 6)}


def test_cam_is_class_maps_times_semantic_agnostic_attention():
    model = build().eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        out = model(x)
        # independent forward: timm's forward_features and its own (unfused) attention matrices
        net = model.backbone
        rows = []
        hooks = []
        for blk in net.blocks:
            blk.attn.fused_attn = False
            hooks.append(blk.attn.attn_drop.register_forward_hook(lambda m, i, o: rows.append(o)))
        pre_norm = []
        hooks.append(net.norm.register_forward_pre_hook(lambda m, a: pre_norm.append(a[0])))
        tokens = net.forward_features(x)
        for h in hooks:
            h.remove()
    assert len(rows) == 12 and rows[0].shape == (2, 6, 17, 17)
    sa = torch.stack([a[:, :, 0, 1:].mean(1) for a in rows]).sum(0).reshape(2, 1, 4, 4)
    fmap = tokens[:, 1:].transpose(1, 2).reshape(2, 384, 4, 4)
    maps = F.conv2d(fmap, model.head.weight, model.head.bias, padding=1)
    torch.testing.assert_close(out.logits, maps.mean((2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.cam, maps * sa, rtol=1e-4, atol=1e-5)
    # layer 5 is the residual stream before the final LayerNorm (the head reads it normed)
    torch.testing.assert_close(out.features[5], pre_norm[0][:, 1:].transpose(1, 2).reshape(2, 384, 4, 4),
                               rtol=1e-4, atol=1e-5)
    assert not torch.allclose(sa, sa.mean().expand_as(sa))  # the attention really weights the map


@pytest.mark.parametrize("au", [False, True])
def test_training_step_with_and_without_au_loss(au):
    model = build().train()
    x = torch.randn(4, 3, SIZE, SIZE)
    y = torch.tensor([1, 2, 0, 6])
    amap = torch.rand(4, SIZE, SIZE)
    valid = torch.tensor([True, True, False, True])
    crit = AUAlignmentLoss((1, 5), 9.0, enabled=au)
    parts = get_method("cam").step_loss(model, crit, x, y, amap, valid, {})
    assert torch.isfinite(parts.total) and (parts.align > 0) == au
    parts.total.backward()
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0


def test_local_weights_with_resampled_position_embedding(tmp_path):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(1)
    src = VisionTransformer(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6, num_classes=1000)
    torch.save(src.state_dict(), tmp_path / "deit_s.pth")
    model = build(weights=str(tmp_path / "deit_s.pth"))
    torch.testing.assert_close(model.backbone.blocks[3].attn.qkv.weight, src.blocks[3].attn.qkv.weight)
    assert model.backbone.pos_embed.shape == (1, 17, 384)
    torch.testing.assert_close(model.backbone.pos_embed[:, 0], src.pos_embed[:, 0])  # CLS kept as is


def test_bad_use_is_one_line(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"foo": torch.zeros(1)}, bad)
    for kw, match in [({"weights": "imagenet"}, "no offline ImageNet DeiT-S weights"),
                      ({"weights": str(bad)}, "weights do not fit")]:
        with pytest.raises(AucuesError, match=match) as e:
            build(**kw)
        assert "\n" not in str(e.value)
    with pytest.raises(AucuesError, match="needs an image_size divisible by 16"):
        build_model(ModelConfig(backbone="tscam"), PreprocessConfig(image_size=40))
    with pytest.raises(AucuesError, match="wildcat needs a ResNet backbone"):
        resolve_options("wildcat", {}, "tscam")
    with pytest.raises(AucuesError, match="tscam takes 64x64 inputs"):
        build().eval()(torch.randn(1, 3, 32, 32))


def test_method_tscam_pins_its_backbone():
    from aucues.train.config import TrainConfig

    cfg = TrainConfig(method="tscam").validate()
    assert cfg.backbone == "tscam" and cfg.method == "tscam"
    assert TrainConfig().validate().backbone == "resnet50"  # no method architecture: the paper's ResNet50
    with pytest.raises(AucuesError, match="fixed by method tscam"):
        TrainConfig(method="tscam", backbone="resnet18").validate()
    with pytest.raises(AucuesError, match="method wildcat needs a ResNet backbone"):
        TrainConfig(method="wildcat", backbone="tscam").validate()


def test_head_init_is_xavier_with_zero_bias():
    """The project's CAM-head rule (docs/method.md §9, as the ResNet head): Xavier-uniform weight, zero
    bias; not nn.Conv2d's default (kaiming-uniform with a=sqrt(5): bound 1/sqrt(fan_in), random bias)."""
    import math

    head = build().head
    w, b = head.weight.detach(), head.bias.detach()
    fan_in, fan_out = 384 * 9, 7 * 9
    bound = math.sqrt(6 / (fan_in + fan_out))  # xavier_uniform_ with gain 1
    assert torch.count_nonzero(b) == 0
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.95 * bound
    # uniform on [-bound, bound] has std bound/sqrt(3); the default init's bound here is 1/sqrt(fan_in), 2.4x smaller
    assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.05 * bound


def test_random_init_layer5_attention_has_a_direction_and_au_training_stays_finite():
    """The channel mean of a LayerNorm output is 0 by construction, so a post-norm layer 5 gave the
    AU loss an all-zero map at random init and NaN in the first epoch (lr 0.01 and 0.001)."""
    torch.manual_seed(0)
    model = build().train()
    x, y = torch.randn(8, 3, SIZE, SIZE), torch.arange(8) % 7
    amap, valid = torch.rand(8, SIZE, SIZE), torch.ones(8, dtype=torch.bool)
    with torch.no_grad():
        att = model(x).attentions[5]
    assert att.flatten(1).std(1).min() > 1e-3  # post-norm it was ~1e-8
    crit = AUAlignmentLoss((5,), 9.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    for _ in range(4):
        opt.zero_grad()
        parts = get_method("tscam").step_loss(model, crit, x, y, amap, valid, {})
        parts.total.backward()
        opt.step()
        assert torch.isfinite(parts.total), parts
