"""CAM methods (docs/method.md §12): each head's shapes and CAM checked against a forward written here,
ADL/CutMix training-only behaviour, a training step with and without the AU loss, option validation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig
from aucues.train.loss import AUAlignmentLoss
from aucues.train.methods import available_methods, get_method, resolve_options
from aucues.train.models import ModelConfig, build_model

torch.set_num_threads(1)
SIZE = 48
METHODS = ("cam", "wildcat", "acol", "prm", "adl", "cutmix")


def build(method: str, backbone: str = "resnet18", **opts):
    torch.manual_seed(0)
    return build_model(ModelConfig(backbone=backbone, method=method, method_options=opts),
                       PreprocessConfig(image_size=SIZE))


def test_registry_lists_the_papers_methods():
    # the CNN methods, plus the architectures that pin their backbone (test_tscam.py, test_apvit.py)
    assert available_methods()[0] == "cam" and set(METHODS) < set(available_methods())
    assert {m for m in available_methods() if get_method(m).architecture} == set(available_methods()) - set(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_shapes_on_large_maps(method):
    model = build(method, **({"hidden": 64} if method == "acol" else {})).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        out = model(x)
    shapes = model.layer_shapes(SIZE)
    assert out.logits.shape == (2, 7) and out.cam.shape == (2, 7, *shapes[5]) and out.aux is None
    assert sorted(out.attentions) == [1, 2, 3, 4, 5]
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.cam).all()


@pytest.mark.parametrize("backbone", ["resnet34", "resnet50"])
def test_heads_on_deeper_resnets(backbone):
    for method in ("wildcat", "prm"):
        model = build(method, backbone).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, 32, 32))
        assert out.cam.shape == (1, 7, 4, 4)
    assert build("wildcat", "resnet50").head.to_modalities.weight.shape == (35, 2048, 1, 1)  # §11 keys
    assert build("prm", "resnet50").head.conv.weight.shape == (7, 2048, 1, 1)


def _features(model, x):
    with torch.no_grad():
        return model.forward_intermediates(x, (5,))[5]


@pytest.mark.parametrize("reference", [False, True])
def test_wildcat_class_maps_and_pooling(reference):
    model = build("wildcat", reference_pooling=reference).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    feats = _features(model, x)
    with torch.no_grad():
        out = model(x)
        conv = model.head.to_modalities
        mods = F.conv2d(feats, conv.weight, conv.bias)  # (N, 35, h, w), channel c*5 + j
    maps = torch.stack([mods[:, c * 5:(c + 1) * 5].mean(1) for c in range(7)], 1)
    torch.testing.assert_close(out.cam, maps, rtol=1e-4, atol=1e-5)
    flat = maps.flatten(2).sort(-1, descending=True).values
    n = flat.shape[-1]  # 36 positions: top 18, bottom round(3.6) = 4
    expect = flat[..., :18].mean(-1)
    if not reference:
        expect = expect + 0.6 * flat[..., n - 4:].mean(-1)
    torch.testing.assert_close(out.logits, expect, rtol=1e-4, atol=1e-5)


def test_prm_peak_stimulation_then_gap():
    model = build("prm").eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    feats = _features(model, x)
    with torch.no_grad():
        out = model(x)
    maps = torch.einsum("ck,nkhw->nchw", model.head.conv.weight[:, :, 0, 0], feats) + model.head.conv.bias[:, None, None]
    torch.testing.assert_close(out.cam, maps, rtol=1e-4, atol=1e-5)
    h, w = maps.shape[-2:]
    peaks = torch.stack([maps[..., i:i + 3, j:j + 3].amax((-2, -1)) for i in range(h - 2) for j in range(w - 2)], -1)
    torch.testing.assert_close(out.logits, peaks.mean(-1), rtol=1e-4, atol=1e-5)


def _norm(m):
    lo = m.amin((-2, -1), keepdim=True)
    hi = m.amax((-2, -1), keepdim=True)
    return (m - lo) / (hi - lo)


def test_acol_inference_needs_no_label_and_fuses_normalised_maps():
    model = build("acol", hidden=32).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    feats = _features(model, x)
    with torch.no_grad():
        out = model(x)
        out_lab = model(x, labels=torch.tensor([3, 4]))  # eval: the label changes nothing
        a, b = model.head.classifier_A(feats), model.head.classifier_B(feats)
    torch.testing.assert_close(out.logits, a.mean((2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.cam, torch.maximum(_norm(a), _norm(b)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out_lab.cam, out.cam)
    assert out.cam.min() >= 0 and out.cam.max() <= 1
    assert [k for k in model.state_dict() if k.startswith("head.")] == [
        f"head.classifier_{h}.{i}.{p}" for h in "AB" for i in (0, 2, 4) for p in ("weight", "bias")]


def test_acol_training_erases_the_true_class_region_for_head_b():
    model = build("acol", hidden=32, drop_threshold=0.5).train()
    x = torch.randn(2, 3, SIZE, SIZE)
    seen = {}
    model.head.classifier_B[0].register_forward_hook(lambda m, i, o: seen.update(b_in=i[0].detach()))
    labels = torch.tensor([2, 5])
    out = model(x, labels=labels)
    assert set(out.aux) == {"logits_b"}
    feats = model.forward_intermediates(x, (5,))[5].detach()  # train-mode BN: batch statistics, same batch
    with torch.no_grad():
        att = _norm(model.head.classifier_A(feats))[torch.arange(2), labels]
    erased = att >= 0.5
    assert erased.any() and (~erased).any()
    torch.testing.assert_close(seen["b_in"], feats * (~erased)[:, None].float(), rtol=1e-4, atol=1e-5)
    # two-head loss: CE(A) + CE(B)
    crit = AUAlignmentLoss(enabled=False)
    parts = get_method("acol").loss(crit, out, labels, torch.zeros(2, SIZE, SIZE), torch.zeros(2, dtype=torch.bool), {})
    want = F.cross_entropy(out.logits, labels) + F.cross_entropy(out.aux["logits_b"], labels)
    torch.testing.assert_close(parts.total, want)


def test_adl_is_training_only_and_keeps_torchvision_keys():
    from aucues.train.methods.adl import adl

    cam, model = build("cam"), build("adl")
    assert list(model.state_dict()) == list(cam.state_dict())
    model.load_state_dict(cam.state_dict())
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x).logits, cam.eval()(x).logits)
    assert model.backbone.layer3.after == (0,) and model.backbone.layer4.after == (0, 1)  # resnet18: 2 blocks
    assert build("adl", "resnet50").backbone.layer4.after == (0, 2)  # the paper's positions
    f = torch.randn(2, 4, 5, 5)
    att = f.mean(1, keepdim=True)
    torch.testing.assert_close(adl(f, 0.0, 0.1), f * torch.sigmoid(att))  # never drops
    peak = att.flatten(1).amax(1)[:, None, None, None]
    torch.testing.assert_close(adl(f, 1.0, 0.5), f * (att < 0.5 * peak).float())  # always drops


def test_cutmix_mixes_images_maps_and_flags_with_area_weights():
    from aucues.train.methods.cutmix import cutmix_batch

    torch.manual_seed(3)
    x = torch.arange(4.0)[:, None, None, None].expand(4, 3, 40, 40).clone()
    maps = torch.arange(1.0, 5.0)[:, None, None].expand(4, 20, 20).clone()  # maps at half resolution
    valid = torch.tensor([True, False, True, False])
    xm, mm, vm, perm, lam, box = cutmix_batch(x, maps, valid, 1.0)
    assert perm.sort().values.tolist() == [0, 1, 2, 3]

    def region(h, w):  # the box in pixels of an h x w tensor
        m = torch.zeros(h, w, dtype=torch.bool)
        m[round(box[0] * h):round(box[1] * h), round(box[2] * w):round(box[3] * w)] = True
        return m

    img_box, map_box = region(40, 40), region(20, 20)
    assert abs(lam - (1 - img_box.float().mean().item())) < 1e-6  # CE weight = area share kept
    for i in range(4):
        j = perm[i].item()
        torch.testing.assert_close(xm[i, :, img_box], x[j, :, img_box])
        torch.testing.assert_close(xm[i, :, ~img_box], x[i, :, ~img_box])
        src, own = maps[j] * valid[j], maps[i] * valid[i]  # an invalid map counts as empty
        torch.testing.assert_close(mm[i][map_box], src[map_box])
        torch.testing.assert_close(mm[i][~map_box], own[~map_box])
        assert bool(vm[i]) == bool((valid[i] or valid[j]) and mm[i].max() > 1e-3)


@pytest.mark.parametrize("au", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_training_step_with_and_without_au_loss(method, au):
    model = build(method, **({"hidden": 32} if method == "acol" else {})).train()
    x = torch.randn(4, 3, SIZE, SIZE)
    y = torch.tensor([1, 2, 0, 6])
    amap = torch.rand(4, SIZE, SIZE)
    valid = torch.tensor([True, True, False, True])
    crit = AUAlignmentLoss((5,), 9.0, enabled=au)
    parts = get_method(method).step_loss(model, crit, x, y, amap, valid, model.config.method_options)
    assert torch.isfinite(parts.total) and (parts.align > 0) == au
    parts.total.backward()
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head)
    if method != "adl":  # ADL's drop mask (threshold 0.1) may zero the whole small map in a step
        assert model.backbone.conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("method,backbone,opts,match", [
    ("foo", "resnet18", {}, "unknown method 'foo'; choose one of: cam, acol"),
    ("acol", "vit_b_16", {}, "acol needs a ResNet backbone"),
    ("adl", "mini_xception", {}, "adl needs a ResNet backbone"),
    ("wildcat", "resnet18", {"kmax": 1.5}, r"kmax must be a number in \(0.0, 1.0\]"),
    ("wildcat", "resnet18", {"modalities": 0}, r"modalities must be an integer in \[1, 64\]"),
    ("prm", "resnet18", {"ks": "three"}, "ks must be an integer"),
    ("adl", "resnet18", {"drop_rate": -0.1}, "drop_rate must be a number in"),
    ("cutmix", "resnet18", {"beta": 0}, "beta must be a number in"),
    ("cam", "resnet18", {"k": 1}, "unknown cam option.*valid options: none"),
    ("wildcat", "resnet18", {"reference_pooling": "maybe"}, "must be true or false"),
])
def test_bad_method_or_options_one_line(method, backbone, opts, match):
    with pytest.raises(AucuesError, match=match) as e:
        resolve_options(method, opts, backbone)
    assert "\n" not in str(e.value)


def test_cutmix_works_on_any_backbone_and_options_are_typed():
    assert resolve_options("cutmix", {"prob": "0.5"}, "vit_b_16") == {"beta": 1.0, "prob": 0.5}
    assert resolve_options("wildcat", {"reference_pooling": "true", "modalities": "3"}, "resnet50")["modalities"] == 3


def test_old_checkpoint_config_loads_as_cam(tmp_path):
    from aucues.train.checkpoint import load_checkpoint, save_checkpoint

    model = build("cam")
    path = tmp_path / "old.pt"
    save_checkpoint(path, model)
    data = torch.load(path, weights_only=True)
    for k in ("method", "method_options"):
        data["model_config"].pop(k)  # written before methods existed
    torch.save(data, path)
    loaded, _ = load_checkpoint(path)
    assert loaded.config.method == "cam" and loaded.config.method_options == {}


def test_method_checkpoint_round_trip(tmp_path):
    from aucues.train.checkpoint import load_checkpoint, save_checkpoint

    model = build("wildcat", reference_pooling=True, modalities=3).eval()
    save_checkpoint(tmp_path / "w.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "w.pt")
    assert loaded.config.method == "wildcat" and loaded.config.method_options["reference_pooling"] is True
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x).logits)


def test_init_takes_the_checkpoints_method(tmp_path):
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.config import TrainConfig
    from aucues.train.init_from import apply_init

    save_checkpoint(tmp_path / "w.pt", build("wildcat", modalities=2))
    cfg = apply_init(TrainConfig(data="x", dataset="synthetic", init=str(tmp_path / "w.pt")).validate())
    assert cfg.method == "wildcat" and cfg.method_options["modalities"] == 2 and cfg.backbone == "resnet18"
