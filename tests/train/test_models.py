"""Backbones: shapes (docs/method.md §5), the CAM-head identity, config validation, weight loading."""

from __future__ import annotations

import pytest
import torch

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig
from aucues.train.models import FERModel, ModelConfig, available_backbones, build_model

torch.set_num_threads(1)


def small_pp(backbone: str) -> PreprocessConfig:
    return PreprocessConfig(image_size=32 if backbone.startswith("vit") else 64)


def test_registry_lists_resnets_and_a_transformer():
    names = available_backbones()
    assert {"resnet18", "resnet34", "resnet50", "resnet101"} <= set(names)
    assert any(n.startswith(("vit", "swin")) for n in names)


# APViT has no CAM and only runs as its own method (tests/train/test_apvit.py)
@pytest.mark.parametrize("backbone", [b for b in available_backbones() if b != "apvit"])
def test_every_backbone_builds_and_runs(backbone):
    torch.manual_seed(0)
    pp = small_pp(backbone)
    model = build_model(ModelConfig(backbone=backbone), pp).eval()
    assert isinstance(model, FERModel) and model.preprocess.image_size == pp.image_size
    x = torch.randn(2, model.in_channels, pp.image_size, pp.image_size)
    with torch.no_grad():
        out = model(x)
    shapes = model.layer_shapes(pp.image_size)
    assert out.logits.shape == (2, 7)
    assert out.cam.shape == (2, 7, *shapes[5])
    assert sorted(out.attentions) == [1, 2, 3, 4, 5] == sorted(out.features)
    for layer, att in out.attentions.items():
        assert att.shape == (2, *shapes[layer])
        assert out.features[layer].shape[-2:] == shapes[layer]
        torch.testing.assert_close(att, out.features[layer].mean(1))
    assert torch.isfinite(out.logits).all()


def test_resnet50_large_maps_shapes_at_224():
    model = build_model(ModelConfig(backbone="resnet50", large_maps=True)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    got = {l: tuple(a.shape[-2:]) for l, a in out.attentions.items()}
    assert got == {1: (112, 112), 2: (56, 56), 3: (28, 28), 4: (28, 28), 5: (28, 28)}
    assert out.features[5].shape == (1, 2048, 28, 28)
    assert out.cam.shape == (1, 7, 28, 28)
    assert model.layer_shapes(224) == got


def test_resnet_without_large_maps_halves_layers_4_and_5():
    model = build_model(ModelConfig(backbone="resnet18", large_maps=False)).eval()
    assert model.layer_shapes(224) == {1: (112, 112), 2: (56, 56), 3: (28, 28), 4: (14, 14), 5: (7, 7)}
    with torch.no_grad():
        feats = model.forward_intermediates(torch.randn(1, 3, 96, 80), (4, 5))
    assert set(feats) == {4, 5}
    shapes = model.layer_shapes((96, 80))
    assert feats[4].shape[-2:] == shapes[4] and feats[5].shape[-2:] == shapes[5] == (3, 3)


def test_logits_equal_cam_spatial_mean_plus_bias_and_gap_linear():
    torch.manual_seed(1)
    model = build_model(ModelConfig(backbone="resnet18"), PreprocessConfig(image_size=64)).eval()
    with torch.no_grad():
        model.head.bias.normal_()
        x = torch.randn(3, 3, 64, 64)
        out = model(x)
        feats = model.forward_intermediates(x, (5,))[5]
    torch.testing.assert_close(out.logits, out.cam.mean((2, 3)) + model.head.bias, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, model.head(feats.mean((2, 3))), rtol=1e-5, atol=1e-5)
    # the CAM of class c is sum_k w[c, k] A_k, raw (negative values kept)
    manual = torch.einsum("ck,nkhw->nchw", model.head.weight, feats)
    torch.testing.assert_close(out.cam, manual, rtol=1e-4, atol=1e-5)
    assert (out.cam < 0).any()


def test_attention_layers_subset_and_self_attention_gating():
    torch.manual_seed(2)
    pp = PreprocessConfig(image_size=64)
    plain = build_model(ModelConfig(backbone="resnet18", attention_layers=(5, 3)), pp).eval()
    assert plain.config.attention_layers == (3, 5) and plain.preprocess.attention_layers == (3, 5)
    gated = build_model(ModelConfig(backbone="resnet18", attention_layers=(3, 5), self_attention_layers=(3,)), pp).eval()
    gated.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(x), gated(x)
    assert sorted(a.attentions) == [3, 5]
    f = a.features[3]  # the gated layer reports the gated features' attention (docs/method.md §5)
    torch.testing.assert_close(b.attentions[3], (f * f.mean(1, keepdim=True)).mean(1), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(a.logits, b.logits)
    with torch.no_grad():
        f3 = plain.forward_intermediates(x, (3,))[3]
        manual = plain.backbone.layer4(plain.backbone.layer3(f3 * f3.mean(1, keepdim=True)))
    torch.testing.assert_close(b.features[5], manual, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bad", [
    {"backbone": "resnet9000"}, {"num_classes": 1}, {"attention_layers": (0, 5)},
    {"self_attention_layers": (6,)}, {"large_maps": "yes"}, {"weights": ""}, {"colour": "blue"},
])
def test_config_validation(bad):
    with pytest.raises(AucuesError):
        ModelConfig.from_dict({**ModelConfig().to_dict(), **bad})


def test_config_round_trip():
    cfg = ModelConfig(backbone="resnet34", num_classes=8, large_maps=False, attention_layers=(4, 5),
                      self_attention_layers=(5,))
    d = cfg.to_dict()
    assert d["attention_layers"] == [4, 5]
    assert ModelConfig.from_dict(d) == cfg


def test_preprocess_must_match_num_classes():
    with pytest.raises(AucuesError, match="classes"):
        build_model(ModelConfig(backbone="resnet18", num_classes=8), PreprocessConfig())
    assert build_model(ModelConfig(backbone="resnet18", num_classes=8)).preprocess.class_names[-1] == "Contempt"


def test_local_weights_file(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    model = build_model(ModelConfig(backbone="resnet18", weights=str(tmp_path / "r18.pth")))
    torch.testing.assert_close(model.backbone.conv1.weight, ref.conv1.weight)
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(AucuesError, match="unexpected keys"):
        build_model(ModelConfig(backbone="resnet18", weights=str(tmp_path / "r34.pth")))
    with pytest.raises(AucuesError, match="missing keys"):
        build_model(ModelConfig(backbone="resnet34", weights=str(tmp_path / "r18.pth")))
    with pytest.raises(AucuesError, match="no such file"):
        build_model(ModelConfig(backbone="resnet18", weights=str(tmp_path / "nope.pth")))
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(AucuesError, match="cannot read weights"):
        build_model(ModelConfig(backbone="resnet18", weights=str(tmp_path / "junk.pth")))


def test_bad_input_shape_is_a_clear_error():
    model = build_model(ModelConfig(backbone="resnet18"))
    with pytest.raises(AucuesError, match="N, 3, H, W"):
        model(torch.randn(3, 64, 64))


def test_large_maps_change_strides_only_no_dilation():
    """docs/method.md §5: stride 1 in the first block of layer3/layer4, dilation 1, padding as torchvision."""
    model = build_model(ModelConfig(backbone="resnet50", large_maps=True))
    b = model.backbone
    for stage in (b.layer3, b.layer4):
        assert stage[0].conv2.stride == (1, 1) and stage[0].downsample[0].stride == (1, 1)
        for m in stage.modules():
            if isinstance(m, torch.nn.Conv2d):
                assert m.dilation == (1, 1)
                assert m.padding == ((1, 1) if m.kernel_size == (3, 3) else (0, 0))


def test_imagenet_means_imagenet1k_v1():
    import torchvision

    from aucues.train.models.base import imagenet_weights_enum

    assert imagenet_weights_enum("resnet50") is torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    assert imagenet_weights_enum("resnet50") is not torchvision.models.ResNet50_Weights.DEFAULT  # DEFAULT is V2


def test_self_attention_reports_gated_features():
    """docs/method.md §5: the loss aligns the gated features' attention."""
    torch.manual_seed(0)
    plain = build_model(ModelConfig(backbone="resnet18", attention_layers=(4,))).eval()
    gated = build_model(ModelConfig(backbone="resnet18", attention_layers=(4,), self_attention_layers=(4,))).eval()
    gated.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        f = plain.forward_intermediates(x, (4,))[4]
        g = gated.forward_intermediates(x, (4,))[4]
    assert torch.allclose(g, f * f.mean(1, keepdim=True), atol=1e-5)
    assert not torch.allclose(g, f)


def test_resnet_cam_head_is_xavier_with_zero_bias():
    from aucues.train.models import ModelConfig, build_model

    model = build_model(ModelConfig(backbone="resnet18", weights="random"))
    w, b = model.head.weight.detach(), model.head.bias.detach()
    bound = (6.0 / (w.shape[0] + w.shape[1])) ** 0.5   # xavier_uniform's limit
    assert float(b.abs().max()) == 0.0
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound


def test_vit_layer5_is_before_the_final_norm_and_the_head_reads_after_it():
    """Layer 5 of vit_b_16 is the residual stream before encoder.ln (after it the channel mean is 0
    by construction: a random-init layer-5 attention was ~1e-8 everywhere and the AU loss diverged);
    the head still reads torchvision's normed encoder output, so logits and CAM are unchanged."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="vit_b_16"), PreprocessConfig(image_size=32)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        enc = model.backbone.encoder
        tokens = model._stem(x)
        pre = enc.layers(tokens)                 # torchvision: encoder = ln(layers(dropout(x + pos)))
        post = enc.ln(pre)
    fmap = lambda t: t[:, 1:].transpose(1, 2).reshape(2, t.shape[-1], 2, 2)  # noqa: E731
    torch.testing.assert_close(out.features[5], fmap(pre))
    w = model.head.weight
    cam = F.conv2d(fmap(post), w.reshape(*w.shape, 1, 1))
    torch.testing.assert_close(out.cam, cam)
    torch.testing.assert_close(out.logits, cam.mean((2, 3)) + model.head.bias)
    assert out.attentions[5].flatten(1).std(1).min() > 1e-3
